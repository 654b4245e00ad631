//! Verifying a token: pick the issuer by `iss`, the key by `kid`, the algorithm from the
//! key and the issuer's allow-list, then the signature and the claims.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::claims::{self, Claims};
use super::error::{AuthError, ConfigError};
use super::fetch::{Fetch, HttpFetch};
use super::issuer::{Issuer, KeySource};
use super::jwks::{JwksCache, Lookup, VerifyKey};
use super::token::{self, Parsed};
use crate::context::Principal;

/// The default tolerance for clock differences on `exp`, `nbf` and `iat`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// The default maximum token size; larger tokens are refused before any parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A token that verified: who it is for, and all its claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The principal the claims map to.
    pub principal: Principal,
    /// Every claim of the token.
    pub claims: Claims,
}

enum Keys {
    Secret(Arc<VerifyKey>),
    Jwks(Box<JwksCache>),
}

struct Trusted {
    config: Issuer,
    keys: Keys,
}

struct Inner {
    issuers: Vec<Trusted>,
    clock_skew: Duration,
    max_token_bytes: usize,
}

/// Verifies JWTs from one or more trusted issuers. Cheap to clone: clones share the key
/// caches.
///
/// # Examples
///
/// ```
/// # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use lift::middleware::auth::{Issuer, Verifier};
///
/// let verifier = Verifier::builder()
///     .issuer(Issuer::jwks("https://id.example.com", "https://id.example.com/.well-known/jwks.json").audience("api"))
///     .build()?;
/// let verified = verifier.verify(token).await?;
/// println!("{} acts for {}", verified.principal.subject, verified.principal.tenant);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "issuers",
                &self.inner.issuers.iter().map(|i| i.config.issuer.as_str()).collect::<Vec<_>>(),
            )
            .field("clock_skew", &self.inner.clock_skew)
            .field("max_token_bytes", &self.inner.max_token_bytes)
            .finish()
    }
}

/// Builds a [`Verifier`]; the configuration is checked by [`VerifierBuilder::build`].
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifierBuilder {
    issuers: Vec<Issuer>,
    clock_skew: Duration,
    max_token_bytes: usize,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self { issuers: Vec::new(), clock_skew: DEFAULT_CLOCK_SKEW, max_token_bytes: DEFAULT_MAX_TOKEN_BYTES }
    }
}

impl VerifierBuilder {
    /// Trusts an issuer (call again for several; each `iss` at most once, and each bound to
    /// its tenants or declared to speak for any: see [`Issuer::tenants`]).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The tolerance for clock differences (default 60 s, at most 10 minutes).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The maximum token size in bytes (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Checks the configuration and builds the verifier. Keys are fetched on first use.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        self.build_with(None)
    }

    pub(crate) fn build_with(self, fetcher: Option<Arc<dyn Fetch>>) -> Result<Verifier, ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        if self.clock_skew > Duration::from_secs(600) {
            return Err(ConfigError::InvalidSetting("clock_skew must be at most 10 minutes"));
        }
        if !(256..=64 * 1024).contains(&self.max_token_bytes) {
            return Err(ConfigError::InvalidSetting("max_token_bytes must be between 256 and 65536"));
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            issuer.validate()?;
            if self.issuers[..i].iter().any(|other| other.issuer == issuer.issuer) {
                return Err(ConfigError::InvalidIssuer(issuer.issuer.clone()));
            }
        }
        // Beside others, an issuer says which tenants it speaks for, or that it speaks for all.
        if self.issuers.len() > 1 {
            if let Some(unbound) = self.issuers.iter().find(|i| i.tenants.is_none() && !i.any_tenant) {
                return Err(ConfigError::UnboundIssuer(unbound.issuer.clone()));
            }
        }
        let needs_http = self.issuers.iter().any(|i| matches!(i.keys, Ok(KeySource::Jwks(_))));
        let fetcher: Option<Arc<dyn Fetch>> = match fetcher {
            Some(f) => Some(f),
            None if needs_http => Some(HttpFetch::new(self.issuers.iter().any(Issuer::uses_https))?),
            None => None,
        };
        let issuers = self
            .issuers
            .into_iter()
            .map(|config| {
                let keys = match (&config.keys, &fetcher) {
                    (Ok(KeySource::Secret(secret)), _) => Keys::Secret(Arc::new(VerifyKey::hs256(secret))),
                    (Ok(KeySource::Jwks(url)), Some(fetcher)) => Keys::Jwks(Box::new(JwksCache::new(
                        url.clone(),
                        config.jwks_ttl,
                        config.jwks_max_staleness,
                        config.refetch_cooldown,
                        config.fetch_timeout,
                        config.algorithms.clone(),
                        fetcher.clone(),
                    ))),
                    (Err(raw), _) => return Err(ConfigError::InvalidJwksUrl(raw.clone())),
                    (Ok(KeySource::Jwks(url)), None) => {
                        return Err(ConfigError::InvalidJwksUrl(url.to_string()))
                    }
                };
                Ok(Trusted { config, keys })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuers,
                clock_skew: self.clock_skew,
                max_token_bytes: self.max_token_bytes,
            }),
        })
    }
}

impl Verifier {
    /// A builder with no issuers, 60 s of clock skew and an 8 KiB token limit.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// The maximum token size in bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.inner.max_token_bytes
    }

    /// Verifies a compact JWS, fetching the issuer's keys when they are not cached.
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let (parsed, trusted) = self.prepare(token)?;
        let key = match &trusted.keys {
            Keys::Secret(key) => key.clone(),
            Keys::Jwks(cache) => cache.resolve(parsed.header.kid.as_deref()).await?,
        };
        self.finish(parsed, trusted, &key)
    }

    /// Verifies a token with cached keys only: `Ok(None)` when the keys must be fetched
    /// first (use [`Verifier::verify`]).
    pub fn verify_cached(&self, token: &str) -> Result<Option<Verified>, AuthError> {
        let (parsed, trusted) = self.prepare(token)?;
        let key = match &trusted.keys {
            Keys::Secret(key) => key.clone(),
            Keys::Jwks(cache) => match cache.lookup(parsed.header.kid.as_deref()) {
                Lookup::Found(key) => key,
                Lookup::Fetch => return Ok(None),
                Lookup::Unknown => return Err(AuthError::UnknownKey),
                Lookup::Unavailable(err) => return Err(AuthError::KeysUnavailable(err)),
            },
        };
        self.finish(parsed, trusted, &key).map(Some)
    }

    /// Parses the token and picks its issuer from the (not yet trusted) `iss`.
    fn prepare<'t>(&self, token: &'t str) -> Result<(Parsed<'t>, &Trusted), AuthError> {
        let parsed = token::parse(token, self.inner.max_token_bytes)?;
        let iss = parsed.claims.get("iss").and_then(|v| v.as_str()).ok_or(AuthError::UntrustedIssuer)?;
        let trusted =
            self.inner.issuers.iter().find(|t| t.config.issuer == iss).ok_or(AuthError::UntrustedIssuer)?;
        Ok((parsed, trusted))
    }

    fn finish(&self, parsed: Parsed<'_>, trusted: &Trusted, key: &VerifyKey) -> Result<Verified, AuthError> {
        // The algorithm is the key's, and the issuer must allow it; the header only has to
        // agree. An HS256 header on an RSA key (the confusion attack) stops here.
        if parsed.header.alg != key.alg.as_str() || !trusted.config.algorithms.contains(&key.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let signature = URL_SAFE_NO_PAD.decode(parsed.signature).map_err(|_| AuthError::Malformed)?;
        if !key.verify(parsed.signing_input.as_bytes(), &signature) {
            return Err(AuthError::BadSignature);
        }
        claims::check_times(&parsed.claims, SystemTime::now(), self.inner.clock_skew)?;
        claims::check_audience(&parsed.claims, &trusted.config)?;
        claims::check_type(parsed.header.typ.as_ref(), &trusted.config)?;
        claims::check_token_use(&parsed.claims, &trusted.config)?;
        claims::check_client(&parsed.claims, &trusted.config)?;
        let principal = claims::principal(&parsed.claims, &trusted.config)?;
        Ok(Verified { principal, claims: claims::into_claims(parsed.claims) })
    }
}
