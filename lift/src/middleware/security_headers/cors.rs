//! CORS: a checked policy that builds tower-http's `CorsLayer`.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::InvalidConfig;

/// Which origins may read responses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origins {
    None,
    List(Vec<String>),
    Any,
    Mirror,
}

/// A CORS policy with an explicit origin list, checked at build, that becomes tower-http's
/// [`CorsLayer`] (which answers preflights and sets the headers: Lift reuses it and adds
/// only the checks).
///
/// The build refuses what would let any site act with the user's credentials: `*` or
/// mirroring the request's origin together with credentials, the `null` origin, and
/// origins that are not `scheme://host[:port]`. A request from an origin not on the list
/// gets no `Access-Control-Allow-Origin`, so the browser withholds the response.
///
/// tower-http answers every `OPTIONS` request as a preflight; it never reaches the routes.
///
/// # Examples
///
/// ```
/// use http::Method;
/// use lift::middleware::security_headers::CorsPolicy;
///
/// let cors = CorsPolicy::new()
///     .allow_origins(["https://app.example.com", "https://admin.example.com"])
///     .allow_methods([Method::GET, Method::POST])
///     .allow_credentials(true)
///     .build()
///     .unwrap();
/// let app = lift::App::new().layer(cors);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CorsPolicy {
    origins: Origins,
    methods: Vec<Method>,
    headers: Vec<String>,
    expose: Vec<String>,
    credentials: bool,
    max_age: Duration,
}

impl Default for CorsPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl CorsPolicy {
    /// A policy with no origins yet; methods GET, POST, PUT, PATCH, DELETE; request headers
    /// `Content-Type`, `Authorization`, `Idempotency-Key`, `X-Request-Id`; exposed headers
    /// `Location`, `Retry-After`, `X-Request-Id`, `Idempotent-Replayed` and the
    /// `RateLimit-*` trio; no credentials; preflights cached 10 minutes.
    pub fn new() -> Self {
        Self {
            origins: Origins::None,
            methods: vec![Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
            headers: ["content-type", "authorization", "idempotency-key", "x-request-id"]
                .map(String::from)
                .to_vec(),
            expose: [
                "location",
                "retry-after",
                "x-request-id",
                "idempotent-replayed",
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
            ]
            .map(String::from)
            .to_vec(),
            credentials: false,
            max_age: Duration::from_secs(600),
        }
    }

    /// A policy seeded from `LIFT_CORS_ALLOWED_ORIGINS` (comma-separated) and
    /// `LIFT_CORS_ALLOW_CREDENTIALS` (`true`); methods called afterwards win.
    ///
    /// # Examples
    ///
    /// ```
    /// let cors = lift::middleware::security_headers::CorsPolicy::from_env()
    ///     .allow_origins(["https://app.example.com"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = cors;
    /// ```
    pub fn from_env() -> Self {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let env = crate::config::Env::from_lookup(lookup);
        let var = |name: &str| env.get(name);
        let mut policy = Self::new();
        if let Some(origins) = var("LIFT_CORS_ALLOWED_ORIGINS") {
            policy = policy.allow_origins(origins.split(',').map(str::trim).filter(|o| !o.is_empty()));
        }
        if let Some(flag) = var("LIFT_CORS_ALLOW_CREDENTIALS") {
            policy.credentials = matches!(flag.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
        }
        policy
    }

    /// The origins allowed, e.g. `https://app.example.com` (replaces any earlier choice).
    pub fn allow_origins<I: IntoIterator<Item = S>, S: Into<String>>(mut self, origins: I) -> Self {
        self.origins = Origins::List(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Any origin (`*`): only for public, credential-free APIs.
    pub fn allow_any_origin(mut self) -> Self {
        self.origins = Origins::Any;
        self
    }

    /// Echo the request's origin: only for public, credential-free APIs.
    pub fn mirror_origin(mut self) -> Self {
        self.origins = Origins::Mirror;
        self
    }

    /// The methods allowed in preflights.
    pub fn allow_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// The request headers allowed in preflights.
    pub fn allow_headers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, headers: I) -> Self {
        self.headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// The response headers scripts may read.
    pub fn expose_headers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, headers: I) -> Self {
        self.expose = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Whether cookies and `Authorization` are sent cross-origin (needs listed origins).
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// How long browsers may cache a preflight.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Checks the policy and builds tower-http's layer.
    pub fn build(self) -> Result<CorsLayer, InvalidConfig> {
        let allow_origin = match (&self.origins, self.credentials) {
            (Origins::None, _) => {
                return Err(InvalidConfig::new("security headers", "list the allowed origins"))
            }
            (Origins::Any | Origins::Mirror, true) => {
                return Err(InvalidConfig::new(
                    "security headers",
                    "credentials cannot be allowed for any origin; list the origins",
                ))
            }
            (Origins::Any, false) => AllowOrigin::any(),
            (Origins::Mirror, false) => AllowOrigin::mirror_request(),
            (Origins::List(list), _) => {
                if list.is_empty() {
                    return Err(InvalidConfig::new("security headers", "list the allowed origins"));
                }
                let values = list.iter().map(|o| check_origin(o)).collect::<Result<Vec<_>, _>>()?;
                AllowOrigin::list(values)
            }
        };
        let names = |list: &[String], what: &str| {
            list.iter()
                .map(|h| {
                    HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
                        InvalidConfig::new(
                            "security headers",
                            format!("{what} must be header names, not {h:?}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods(self.methods)
            .allow_headers(names(&self.headers, "allowed headers")?)
            .expose_headers(names(&self.expose, "exposed headers")?)
            .allow_credentials(self.credentials)
            .max_age(self.max_age))
    }
}

/// An origin must be exactly `http(s)://host[:port]`, as browsers send it.
fn check_origin(origin: &str) -> Result<HeaderValue, InvalidConfig> {
    let bad = |why: &str| InvalidConfig::new("security headers", format!("origin {origin:?} {why}"));
    if origin == "*" {
        return Err(bad("is a wildcard; use allow_any_origin for public APIs"));
    }
    if origin.eq_ignore_ascii_case("null") {
        return Err(bad("is the opaque origin of sandboxed and file pages, which any page can claim"));
    }
    let (scheme, rest) = origin.split_once("://").ok_or_else(|| bad("needs a scheme"))?;
    if scheme != "https" && scheme != "http" {
        return Err(bad("must be http or https"));
    }
    let uri: http::Uri = origin.parse().map_err(|_| bad("is not a valid origin"))?;
    let path_free = uri.path_and_query().is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/")
        && !rest.contains('/')
        && !rest.contains('*');
    if uri.host().is_none_or(str::is_empty) || !path_free || rest.contains('@') {
        return Err(bad("must be scheme://host[:port] without path, wildcard or user"));
    }
    HeaderValue::from_str(origin).map_err(|_| bad("is not a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        for good in ["https://app.example.com", "http://localhost:3000"] {
            assert!(check_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "null",
            "app.example.com",
            "https://app.example.com/",
            "https://*.example.com",
            "ftp://x",
            "https://u@x.com",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_need_listed_origins() {
        assert!(CorsPolicy::new().mirror_origin().allow_credentials(true).build().is_err());
        assert!(CorsPolicy::new().allow_any_origin().allow_credentials(true).build().is_err());
        assert!(CorsPolicy::new().allow_any_origin().build().is_ok());
        assert!(CorsPolicy::new().allow_credentials(true).build().is_err());
        assert!(CorsPolicy::new()
            .allow_origins(["https://a.example"])
            .allow_credentials(true)
            .build()
            .is_ok());
    }
}
