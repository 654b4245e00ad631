//! One trusted token issuer: who it is, which audiences and algorithms it may use, where
//! its keys come from, and how its claims map to a [`Principal`](crate::Principal).

use std::fmt;
use std::time::Duration;

use super::algorithm::Algorithm;
use super::error::ConfigError;

/// The default lifetime of a fetched JWKS.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(600);
/// How long past its TTL a JWKS may still be used while refetches fail, by default.
pub const DEFAULT_JWKS_MAX_STALENESS: Duration = Duration::from_secs(60 * 60);
/// The default minimum time between two refetches caused by unknown `kid`s.
pub const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);
/// The default time limit of one JWKS fetch.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// The claims the tenant is read from by default, first found wins.
///
/// The tenant claim decides whose data a caller reaches, so it must be one the user cannot
/// write. `custom:tenant_id` is a Cognito custom attribute, and custom attributes are
/// writable by the user (`UpdateUserAttributes` with their own access token) unless the app
/// client's write attributes leave it out; a user who can write it can name another
/// tenant in their next ID token. With Cognito, make the attribute read-only for every app
/// client, and prefer [`Issuer::token_use`]`("access")` with [`Issuer::client_ids`] (access
/// tokens carry custom attributes only when a pre-token-generation trigger adds them).
pub const DEFAULT_TENANT_CLAIMS: [&str; 2] = ["tenant_id", "custom:tenant_id"];
/// The claims roles are read from by default (all of them, merged).
pub const DEFAULT_ROLE_CLAIMS: [&str; 2] = ["roles", "cognito:groups"];

/// Where an issuer's verification keys come from.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// A JWK set fetched over HTTP(S).
    Jwks(http::Uri),
    /// A shared HS256 secret from configuration.
    Secret(Vec<u8>),
}

/// A trusted issuer of tokens, selected by the token's `iss`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::auth::{Algorithm, Issuer};
///
/// let cognito = Issuer::jwks(
///     "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc",
///     "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc/.well-known/jwks.json",
/// )
/// .audience("payments-api")
/// .algorithms([Algorithm::Rs256])
/// .jwks_ttl(Duration::from_secs(300))
/// .jwks_max_staleness(Duration::from_secs(15 * 60));
///
/// // Cognito access tokens carry no `aud`: accept access tokens of the app's own clients.
/// let pool = Issuer::jwks(
///     "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc",
///     "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc/.well-known/jwks.json",
/// )
/// .any_audience()
/// .token_use("access")
/// .client_ids(["4f1b2c3d4e5f6a7b8c9d0e1f2a"]);
///
/// let internal = Issuer::hs256("internal-batch", b"a-secret-of-at-least-thirty-two-bytes!".to_vec())
///     .audience("payments-api");
/// ```
#[derive(Clone)]
#[must_use]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) any_audience: bool,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) keys: Result<KeySource, String>,
    pub(crate) jwks_ttl: Duration,
    pub(crate) jwks_max_staleness: Duration,
    pub(crate) refetch_cooldown: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) allow_insecure_http: bool,
    pub(crate) tenant_claims: Vec<String>,
    pub(crate) tenants: Option<Vec<String>>,
    pub(crate) any_tenant: bool,
    pub(crate) role_claims: Vec<String>,
    pub(crate) token_use: Option<String>,
    pub(crate) client_ids: Option<Vec<String>>,
    pub(crate) typ: Option<String>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.keys {
            Ok(KeySource::Jwks(url)) => format!("jwks {url}"),
            Ok(KeySource::Secret(_)) => "hs256 secret [redacted]".to_owned(),
            Err(raw) => format!("invalid jwks url {raw:?}"),
        };
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("keys", &keys)
            .field("jwks_ttl", &self.jwks_ttl)
            .field("jwks_max_staleness", &self.jwks_max_staleness)
            .field("refetch_cooldown", &self.refetch_cooldown)
            .field("tenants", &self.tenants)
            .field("any_tenant", &self.any_tenant)
            .field("token_use", &self.token_use)
            .field("client_ids", &self.client_ids)
            .field("typ", &self.typ)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    fn with_keys(issuer: String, keys: Result<KeySource, String>, algorithms: Vec<Algorithm>) -> Self {
        Self {
            issuer,
            audiences: Vec::new(),
            any_audience: false,
            algorithms,
            keys,
            jwks_ttl: DEFAULT_JWKS_TTL,
            jwks_max_staleness: DEFAULT_JWKS_MAX_STALENESS,
            refetch_cooldown: DEFAULT_REFETCH_COOLDOWN,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            allow_insecure_http: false,
            tenant_claims: DEFAULT_TENANT_CLAIMS.iter().map(|s| (*s).to_owned()).collect(),
            tenants: None,
            any_tenant: false,
            role_claims: DEFAULT_ROLE_CLAIMS.iter().map(|s| (*s).to_owned()).collect(),
            token_use: None,
            client_ids: None,
            typ: None,
        }
    }

    /// An issuer whose public keys are published as a JWK set at `jwks_url`; it may sign
    /// with RS256, ES256 or EdDSA unless [`Issuer::algorithms`] narrows the list.
    pub fn jwks(issuer: impl Into<String>, jwks_url: impl AsRef<str>) -> Self {
        let raw = jwks_url.as_ref();
        let keys = raw.parse::<http::Uri>().map(KeySource::Jwks).map_err(|_| raw.to_owned());
        Self::with_keys(issuer.into(), keys, vec![Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa])
    }

    /// An issuer that signs with HS256 and a secret shared with this service (at least
    /// 32 bytes). Its tokens are never checked against a JWKS.
    pub fn hs256(issuer: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self::with_keys(issuer.into(), Ok(KeySource::Secret(secret.into())), vec![Algorithm::Hs256])
    }

    /// One issuer from the environment: `LIFT_JWT_ISSUER`, `LIFT_JWKS_URL`, and optionally
    /// `LIFT_JWT_AUDIENCE` (comma-separated) and `LIFT_JWT_ALGORITHMS` (comma-separated,
    /// e.g. `RS256,ES256`). Builder calls made afterwards win over the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = crate::config::Env::from_lookup(lookup);
        let var = |name: &str| env.get(name);
        let issuer =
            var("LIFT_JWT_ISSUER").ok_or_else(|| ConfigError::Env("LIFT_JWT_ISSUER is not set".into()))?;
        let url = var("LIFT_JWKS_URL").ok_or_else(|| ConfigError::Env("LIFT_JWKS_URL is not set".into()))?;
        let mut out = Issuer::jwks(issuer, url);
        if let Some(audiences) = var("LIFT_JWT_AUDIENCE") {
            out = audiences.split(',').map(str::trim).filter(|a| !a.is_empty()).fold(out, Issuer::audience);
        }
        if let Some(names) = var("LIFT_JWT_ALGORITHMS") {
            let algorithms = names
                .split(',')
                .filter(|n| !n.trim().is_empty())
                .map(str::parse::<Algorithm>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ConfigError::Env(format!("LIFT_JWT_ALGORITHMS: {e}")))?;
            out = out.algorithms(algorithms);
        }
        Ok(out)
    }

    /// Accepts tokens whose `aud` names this audience (call again to accept several).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens for any audience. Only for issuers that mint tokens for this
    /// service alone: otherwise a token meant for another service would be accepted.
    ///
    /// A Cognito user pool is such an issuer only together with [`token_use`](Self::token_use)
    /// and [`client_ids`](Self::client_ids): its access tokens have no `aud`, and without
    /// those two every ID token of the pool, and every token minted for any app client of
    /// the pool, is accepted as well.
    pub fn any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Replaces the allow-list of algorithms.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms.clear();
        for algorithm in algorithms {
            if !self.algorithms.contains(&algorithm) {
                self.algorithms.push(algorithm);
            }
        }
        self
    }

    /// How long a fetched JWKS is used before it is fetched again (default 10 minutes).
    /// If that refetch fails, the set is used for up to
    /// [`jwks_max_staleness`](Self::jwks_max_staleness) longer.
    pub fn jwks_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_ttl = ttl;
        self
    }

    /// How long past its TTL a JWKS may still be used while refetches fail (default 1 hour).
    ///
    /// Past that bound its keys verify nothing: tokens are refused with
    /// [`AuthError::KeysUnavailable`](super::AuthError::KeysUnavailable) (503) until the
    /// issuer answers again, so a key the issuer removed (after a compromise, say) stops
    /// verifying at most TTL + max staleness after the last successful fetch, even while the
    /// issuer cannot be reached. Zero uses no stale keys at all.
    pub fn jwks_max_staleness(mut self, staleness: Duration) -> Self {
        self.jwks_max_staleness = staleness;
        self
    }

    /// The minimum time between two refetches caused by tokens with an unknown `kid`
    /// (default 30 s), so a flood of random `kid`s cannot hammer the issuer.
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.refetch_cooldown = cooldown;
        self
    }

    /// The time limit of one JWKS fetch (default 3 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Allows a plain `http://` JWKS URL to a host other than localhost. Tests only: keys
    /// fetched over plain http can be replaced by anyone on the path.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// The claims the tenant is read from, first found wins (default `tenant_id`, then
    /// `custom:tenant_id`).
    ///
    /// Name only claims the user cannot write: whoever writes the tenant claim chooses
    /// whose data the token reaches. See [`DEFAULT_TENANT_CLAIMS`] on Cognito's
    /// `custom:` attributes.
    pub fn tenant_claims<I: IntoIterator<Item = S>, S: Into<String>>(mut self, claims: I) -> Self {
        self.tenant_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// The only tenants this issuer may speak for: a token of this issuer naming another
    /// tenant is refused ([`AuthError::InvalidTenant`](super::AuthError::InvalidTenant)).
    ///
    /// A lone issuer speaks for any tenant unless bound. With several, say the customers'
    /// pool and a partner's, each must be bound with this or declared with
    /// [`any_tenant`](Self::any_tenant): a build that trusts an issuer that is neither is
    /// refused ([`ConfigError::UnboundIssuer`](super::ConfigError::UnboundIssuer)), since
    /// otherwise every issuer could mint tokens for every tenant.
    pub fn tenants<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tenants: I) -> Self {
        self.tenants = Some(tenants.into_iter().map(Into::into).collect());
        self
    }

    /// Declares that this issuer speaks for every tenant, which an issuer trusted beside
    /// others must say in so many words (see [`tenants`](Self::tenants)). For the issuer
    /// of the service's own users, whose tenant claim it alone controls.
    pub fn any_tenant(mut self) -> Self {
        self.any_tenant = true;
        self
    }

    /// Accepts only tokens whose `token_use` claim is `token_use` (by default the claim is
    /// not looked at). Cognito puts `access` or `id` there: `token_use("access")` refuses
    /// ID tokens, whose claims (custom attributes among them) are meant for the client, not
    /// for an API. A token without the claim is refused
    /// ([`AuthError::WrongTokenUse`](super::AuthError::WrongTokenUse)).
    pub fn token_use(mut self, token_use: impl Into<String>) -> Self {
        self.token_use = Some(token_use.into());
        self
    }

    /// Accepts only tokens issued to one of these clients (by default any client).
    ///
    /// The client is the `client_id` claim when the token has one (Cognito and RFC 9068
    /// access tokens), else the `aud` claim (ID tokens name their client there; with several
    /// audiences one must be listed). A token naming no listed client is refused
    /// ([`AuthError::WrongClient`](super::AuthError::WrongClient)). Call it with every app
    /// client of a Cognito pool that may call this service: the pool mints tokens for all
    /// its app clients alike.
    pub fn client_ids<I: IntoIterator<Item = S>, S: Into<String>>(mut self, clients: I) -> Self {
        self.client_ids = Some(clients.into_iter().map(Into::into).collect());
        self
    }

    /// Accepts only tokens whose JOSE header `typ` is this media type (by default `typ` is
    /// not looked at), e.g. `at+jwt` for RFC 9068 access tokens, which keeps other JWTs
    /// of the same issuer (ID tokens, logout tokens) out. Compared as RFC 7515 says: without
    /// regard to case, and `at+jwt` is `application/at+jwt`. A token with another `typ`, or
    /// none, is refused ([`AuthError::WrongType`](super::AuthError::WrongType)).
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// The claims roles are read from, merged (default `roles` and `cognito:groups`).
    pub fn role_claims<I: IntoIterator<Item = S>, S: Into<String>>(mut self, claims: I) -> Self {
        self.role_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// The `iss` value this issuer's tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let name = || self.issuer.clone();
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::InvalidIssuer(name()));
        }
        if self.audiences.iter().all(|a| a.is_empty()) && !self.any_audience {
            return Err(ConfigError::MissingAudience(name()));
        }
        if self.tenant_claims.is_empty() {
            return Err(ConfigError::InvalidSetting("tenant_claims must name at least one claim"));
        }
        if self.tenants.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(ConfigError::InvalidSetting("tenants must name at least one tenant"));
        }
        if self.tenants.is_some() && self.any_tenant {
            return Err(ConfigError::InvalidSetting(
                "an issuer is bound to tenants or speaks for any, not both",
            ));
        }
        if self.token_use.as_ref().is_some_and(|u| u.is_empty()) {
            return Err(ConfigError::InvalidSetting("token_use must not be empty"));
        }
        if self.client_ids.as_ref().is_some_and(|c| c.is_empty() || c.iter().any(String::is_empty)) {
            return Err(ConfigError::InvalidSetting("client_ids must name at least one client, none empty"));
        }
        if self.typ.as_deref().is_some_and(|t| super::claims::media_type(t).is_empty()) {
            return Err(ConfigError::InvalidSetting("typ must name a media type"));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::InvalidAlgorithms(name()));
        }
        match &self.keys {
            Err(raw) => return Err(ConfigError::InvalidJwksUrl(raw.clone())),
            Ok(KeySource::Secret(secret)) => {
                if self.algorithms.iter().any(|a| !a.is_symmetric()) {
                    return Err(ConfigError::InvalidAlgorithms(name()));
                }
                if secret.len() < 32 {
                    return Err(ConfigError::WeakSecret(name()));
                }
            }
            Ok(KeySource::Jwks(url)) => {
                // Symmetric keys are never taken from a JWKS: that is how HS/RS confusion starts.
                if self.algorithms.iter().any(|a| a.is_symmetric()) {
                    return Err(ConfigError::InvalidAlgorithms(name()));
                }
                check_url(url, self.allow_insecure_http)?;
                if self.jwks_ttl.is_zero() {
                    return Err(ConfigError::InvalidSetting("jwks_ttl must be more than zero"));
                }
                if self.fetch_timeout.is_zero() {
                    return Err(ConfigError::InvalidSetting("fetch_timeout must be more than zero"));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn uses_https(&self) -> bool {
        matches!(&self.keys, Ok(KeySource::Jwks(url)) if url.scheme_str() == Some("https"))
    }
}

fn check_url(url: &http::Uri, allow_insecure_http: bool) -> Result<(), ConfigError> {
    let raw = || url.to_string();
    let host = url.host().ok_or_else(|| ConfigError::InvalidJwksUrl(raw()))?;
    match url.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allow_insecure_http || is_loopback(host) => Ok(()),
        Some("http") => Err(ConfigError::InsecureJwksUrl(raw())),
        _ => Err(ConfigError::InvalidJwksUrl(raw())),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks(url: &str) -> Issuer {
        Issuer::jwks("https://id.example.com", url).audience("api")
    }

    #[test]
    fn plain_http_only_for_loopback_or_when_allowed() {
        assert!(jwks("https://id.example.com/jwks").validate().is_ok());
        assert!(jwks("http://127.0.0.1:8080/jwks").validate().is_ok());
        assert!(jwks("http://localhost/jwks").validate().is_ok());
        assert!(jwks("http://[::1]:9/jwks").validate().is_ok());
        assert!(matches!(
            jwks("http://id.example.com/jwks").validate(),
            Err(ConfigError::InsecureJwksUrl(_))
        ));
        assert!(jwks("http://id.example.com/jwks").allow_insecure_http(true).validate().is_ok());
        assert!(matches!(jwks("ftp://id.example.com/jwks").validate(), Err(ConfigError::InvalidJwksUrl(_))));
        assert!(matches!(jwks("not a url").validate(), Err(ConfigError::InvalidJwksUrl(_))));
    }

    #[test]
    fn allow_lists_cannot_mix_key_kinds() {
        let hs_from_jwks =
            jwks("https://id.example.com/jwks").algorithms([Algorithm::Rs256, Algorithm::Hs256]);
        assert!(matches!(hs_from_jwks.validate(), Err(ConfigError::InvalidAlgorithms(_))));
        let rs_with_secret = Issuer::hs256("i", vec![7; 32]).audience("a").algorithms([Algorithm::Rs256]);
        assert!(matches!(rs_with_secret.validate(), Err(ConfigError::InvalidAlgorithms(_))));
        let empty = jwks("https://id.example.com/jwks").algorithms([]);
        assert!(matches!(empty.validate(), Err(ConfigError::InvalidAlgorithms(_))));
    }

    #[test]
    fn weak_secrets_and_missing_audiences_are_refused() {
        assert!(matches!(
            Issuer::hs256("i", vec![1; 31]).audience("a").validate(),
            Err(ConfigError::WeakSecret(_))
        ));
        assert!(matches!(Issuer::hs256("i", vec![1; 32]).validate(), Err(ConfigError::MissingAudience(_))));
        assert!(Issuer::hs256("i", vec![1; 32]).any_audience().validate().is_ok());
    }

    #[test]
    fn token_use_clients_and_typ_must_name_something() {
        let issuer = || Issuer::hs256("i", vec![1; 32]).any_audience();
        assert!(issuer().token_use("access").client_ids(["a"]).typ("at+jwt").validate().is_ok());
        assert!(matches!(issuer().token_use("").validate(), Err(ConfigError::InvalidSetting(_))));
        assert!(matches!(
            issuer().client_ids(Vec::<String>::new()).validate(),
            Err(ConfigError::InvalidSetting(_))
        ));
        assert!(matches!(issuer().client_ids(["a", ""]).validate(), Err(ConfigError::InvalidSetting(_))));
        for typ in ["", "application/", " "] {
            assert!(matches!(issuer().typ(typ).validate(), Err(ConfigError::InvalidSetting(_))), "{typ:?}");
        }
    }

    #[test]
    fn debug_redacts_the_secret() {
        let issuer = Issuer::hs256("i", b"super-secret-value-that-is-long-enough".to_vec());
        assert!(!format!("{issuer:?}").contains("super-secret"));
    }

    #[test]
    fn from_vars_reads_lists() {
        let vars = |name: &str| match name {
            "LIFT_JWT_ISSUER" => Some("https://id.example.com".to_owned()),
            "LIFT_JWKS_URL" => Some("https://id.example.com/jwks".to_owned()),
            "LIFT_JWT_AUDIENCE" => Some("a, b".to_owned()),
            "LIFT_JWT_ALGORITHMS" => Some("ES256".to_owned()),
            _ => None,
        };
        let issuer = Issuer::from_env_vars(vars).unwrap();
        assert_eq!(issuer.audiences, ["a", "b"]);
        assert_eq!(issuer.algorithms, [Algorithm::Es256]);
        assert!(issuer.validate().is_ok());
        assert!(Issuer::from_env_vars(|_| None).is_err());
    }
}
