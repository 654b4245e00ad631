//! [`JwtLayer`]: configuration only; the work is in [`Jwt`](super::Jwt).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, Method, Uri};
use tower_layer::Layer;

use super::error::{realm_char, ConfigError};
use super::issuer::Issuer;
use super::service::Jwt;
use super::verifier::{Verifier, VerifierBuilder};

/// Headers a caller might use to claim a tenant; removed from every authenticated request
/// because the tenant comes from the token alone.
pub const DEFAULT_TENANT_HEADERS: [&str; 5] =
    ["x-tenant-id", "x-tenant", "tenant-id", "x-lift-tenant", "x-lift-tenant-id"];

/// The realm of the `WWW-Authenticate` challenge unless configured.
pub const DEFAULT_REALM: &str = "api";

/// What an exemption predicate sees of a request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    pub(crate) fn of<B>(req: &'a http::Request<B>) -> Self {
        Self { method: req.method(), uri: req.uri(), headers: req.headers() }
    }
}

type ExemptFn = Arc<dyn Fn(&RequestHead<'_>) -> bool + Send + Sync>;

pub(crate) struct Shared {
    pub(crate) verifier: Verifier,
    pub(crate) realm: String,
    exempt_paths: Vec<String>,
    exempt: Vec<ExemptFn>,
    pub(crate) strip: Vec<HeaderName>,
}

impl Shared {
    pub(crate) fn is_exempt(&self, head: &RequestHead<'_>) -> bool {
        let path = head.uri.path();
        self.exempt_paths.iter().any(|p| exempt_path_matches(p, path)) || self.exempt.iter().any(|f| f(head))
    }
}

/// Whether `path` falls under an exemption `pattern`: an exact path, or with a trailing `*`
/// the path before it and anything below it, segment by segment. `/health*` covers
/// `/health` and `/health/ready`, never `/healthcare/patients` or `/healthz`: a bare
/// prefix would exempt every route that happens to start with the same letters.
fn exempt_path_matches(pattern: &str, path: &str) -> bool {
    let Some(base) = pattern.strip_suffix('*') else {
        return path == pattern;
    };
    // `/health/*` and `/health*` mean the same; `/*` exempts every path.
    let base = base.strip_suffix('/').unwrap_or(base);
    path == base || path.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'))
}

/// Authenticates requests with a bearer JWT and puts the [`Principal`](crate::Principal)
/// in the request's [`Context`](crate::Context) (which sets the tenant).
///
/// A request without a valid token is refused with 401 and an RFC 6750 challenge (503
/// when the issuer's keys cannot be fetched); exempt routes pass untouched. Tenant headers
/// are removed from authenticated requests. The verified [`Claims`](super::Claims) are in
/// request extensions too.
///
/// # Examples
///
/// ```
/// use lift::middleware::auth::{require_scope, Issuer, JwtLayer};
/// use lift::{App, Request, Response};
///
/// async fn list(_req: Request) -> Response { Response::default() }
/// async fn health(_req: Request) -> Response { Response::default() }
///
/// # fn main() -> Result<(), lift::middleware::auth::ConfigError> {
/// let jwt = JwtLayer::builder()
///     .issuer(Issuer::jwks("https://id.example.com", "https://id.example.com/.well-known/jwks.json").audience("payments"))
///     .realm("payments")
///     .exempt_path("/health*")
///     .build()?;
/// let app = App::new()
///     .get("/health", health)
///     .get("/payments", lift::app::Route::from_handler(list).layer(require_scope("payments:read")))
///     .layer(jwt);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwtLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for JwtLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtLayer")
            .field("verifier", &self.shared.verifier)
            .field("realm", &self.shared.realm)
            .field("exempt_paths", &self.shared.exempt_paths)
            .finish_non_exhaustive()
    }
}

impl JwtLayer {
    /// A builder: add issuers, then [`JwtBuilder::build`].
    pub fn builder() -> JwtBuilder {
        JwtBuilder::default()
    }

    /// A layer from the environment: see [`JwtBuilder::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        JwtBuilder::from_env()?.build()
    }

    /// A layer over an existing verifier, with the default realm and no exemptions.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            shared: Arc::new(Shared {
                verifier,
                realm: DEFAULT_REALM.to_owned(),
                exempt_paths: Vec::new(),
                exempt: Vec::new(),
                strip: default_strip(),
            }),
        }
    }

    /// The verifier, shared with every service this layer made.
    pub fn verifier(&self) -> &Verifier {
        &self.shared.verifier
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = Jwt<S>;

    fn layer(&self, inner: S) -> Jwt<S> {
        Jwt::new(inner, self.shared.clone())
    }
}

fn default_strip() -> Vec<HeaderName> {
    DEFAULT_TENANT_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect()
}

/// Builds a [`JwtLayer`]; everything is checked by [`JwtBuilder::build`].
#[must_use]
pub struct JwtBuilder {
    verifier: VerifierBuilder,
    realm: String,
    exempt_paths: Vec<String>,
    exempt: Vec<ExemptFn>,
    strip: Vec<String>,
}

impl fmt::Debug for JwtBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBuilder")
            .field("verifier", &self.verifier)
            .field("realm", &self.realm)
            .field("exempt_paths", &self.exempt_paths)
            .field("strip", &self.strip)
            .finish_non_exhaustive()
    }
}

impl Default for JwtBuilder {
    fn default() -> Self {
        Self {
            verifier: Verifier::builder(),
            realm: DEFAULT_REALM.to_owned(),
            exempt_paths: Vec::new(),
            exempt: Vec::new(),
            strip: Vec::new(),
        }
    }
}

/// The old name of [`JwtBuilder`].
#[deprecated(note = "renamed `JwtBuilder`")]
pub type JwtLayerBuilder = JwtBuilder;

impl JwtBuilder {
    /// A builder with the issuer from [`Issuer::from_env`] and the realm from
    /// `LIFT_JWT_REALM` if set. Calls made afterwards win over the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = crate::config::Env::from_lookup(lookup);
        let mut builder = Self::default().issuer(Issuer::from_env_vars(|name| env.get(name))?);
        if let Some(realm) = env.get("LIFT_JWT_REALM") {
            builder = builder.realm(realm);
        }
        Ok(builder)
    }

    /// Trusts an issuer (call again for several; then each must be bound to its tenants or
    /// declared to speak for any: see [`Issuer::tenants`]).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.verifier = self.verifier.issuer(issuer);
        self
    }

    /// The tolerance for clock differences on `exp`, `nbf` and `iat` (default 60 s).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.verifier = self.verifier.clock_skew(skew);
        self
    }

    /// The maximum token size (default 8 KiB); larger tokens are refused unparsed.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.verifier = self.verifier.max_token_bytes(bytes);
        self
    }

    /// The realm of the `WWW-Authenticate` challenge (letters, digits, `-_.:/` and spaces).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Lets requests to a path through without a token: an exact path, or a path ending in
    /// `*` that covers itself and the paths below it (`/health*` and `/health/*` cover
    /// `/health` and `/health/ready`, not `/healthz` nor `/healthcare/patients`: `*` matches
    /// whole path segments, never the rest of one).
    pub fn exempt_path(mut self, pattern: impl Into<String>) -> Self {
        self.exempt_paths.push(pattern.into());
        self
    }

    /// Lets requests through without a token when the predicate says so.
    pub fn exempt<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    {
        self.exempt.push(Arc::new(predicate));
        self
    }

    /// Also removes this header from authenticated requests (in addition to
    /// [`DEFAULT_TENANT_HEADERS`]).
    pub fn strip_header(mut self, name: impl Into<String>) -> Self {
        self.strip.push(name.into());
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<JwtLayer, ConfigError> {
        let Self { verifier, realm, exempt_paths, exempt, strip: extra } = self;
        let verifier = verifier.build()?;
        if realm.is_empty() || !realm.chars().all(realm_char) {
            return Err(ConfigError::InvalidSetting(
                "the realm may hold letters, digits, -_.:/ and spaces only",
            ));
        }
        if exempt_paths.iter().any(|p| !p.starts_with('/')) {
            return Err(ConfigError::InvalidSetting("exempt paths must start with '/'"));
        }
        let mut strip = default_strip();
        for name in &extra {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| ConfigError::InvalidSetting("strip_header needs a valid header name"))?;
            if !strip.contains(&name) {
                strip.push(name);
            }
        }
        Ok(JwtLayer { shared: Arc::new(Shared { verifier, realm, exempt_paths, exempt, strip }) })
    }
}

#[cfg(test)]
mod tests {
    use super::exempt_path_matches;

    #[test]
    fn a_star_matches_whole_segments_only() {
        for path in ["/health", "/health/", "/health/live", "/health/ready"] {
            assert!(exempt_path_matches("/health*", path), "{path}");
            assert!(exempt_path_matches("/health/*", path), "{path}");
        }
        for path in ["/healthcare/patients", "/health-records/1", "/healthz", "/", "/me"] {
            assert!(!exempt_path_matches("/health*", path), "{path}");
            assert!(!exempt_path_matches("/health/*", path), "{path}");
        }
        assert!(exempt_path_matches("/health", "/health"));
        assert!(!exempt_path_matches("/health", "/health/ready"), "no star: the exact path only");
        assert!(exempt_path_matches("/*", "/anything/at/all"));
    }
}
