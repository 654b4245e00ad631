//! The layer and its builder.

use std::sync::Arc;
use std::time::Duration;

use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use tower_layer::Layer;

use super::{InvalidConfig, SecurityHeaders};

/// The default HSTS policy: two years, subdomains, preload.
pub const DEFAULT_HSTS: &str = "max-age=63072000; includeSubDomains; preload";

/// Decides which requests get `Cache-Control: no-store`.
pub type SensitiveFn = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// The headers to set, computed once at build.
pub(crate) struct Headers {
    /// Set on every response, replacing the handler's value.
    pub(crate) always: Vec<(HeaderName, HeaderValue)>,
    /// Set on every response unless the handler set its own.
    pub(crate) if_absent: Vec<(HeaderName, HeaderValue)>,
    pub(crate) sensitive: Option<SensitiveFn>,
}

/// Applies [`SecurityHeaders`] to services.
///
/// # Examples
///
/// ```
/// use lift::middleware::security_headers::SecurityHeadersLayer;
///
/// let layer = SecurityHeadersLayer::builder()
///     .no_store_when(|head| head.uri.path().starts_with("/payments"))
///     .build()
///     .unwrap();
/// let app = lift::App::new().layer(layer);
/// ```
#[derive(Clone)]
pub struct SecurityHeadersLayer {
    headers: Arc<Headers>,
}

impl std::fmt::Debug for SecurityHeadersLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityHeadersLayer")
            .field("always", &self.headers.always)
            .field("if_absent", &self.headers.if_absent)
            .finish_non_exhaustive()
    }
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SecurityHeadersLayer {
    /// The defaults: HSTS, `nosniff`, `DENY` framing, `no-referrer`, and `no-store` on
    /// every response.
    pub fn new() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }

    /// A builder.
    pub fn builder() -> SecurityHeadersBuilder {
        SecurityHeadersBuilder::default()
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders::from_parts(inner, Arc::clone(&self.headers))
    }
}

/// Configures a [`SecurityHeadersLayer`].
///
/// | Header | Default | |
/// |---|---|---|
/// | `Strict-Transport-Security` | [`DEFAULT_HSTS`] | replaced |
/// | `X-Content-Type-Options` | `nosniff` | replaced |
/// | `X-Frame-Options` | `DENY` | replaced |
/// | `Content-Security-Policy` | `frame-ancestors 'none'` | kept if the handler set one |
/// | `Referrer-Policy` | `no-referrer` | replaced |
/// | `Cache-Control` | `no-store` on sensitive requests (all by default) | replaced |
#[derive(Default)]
#[must_use]
pub struct SecurityHeadersBuilder {
    hsts: Option<Option<String>>,
    content_security_policy: Option<String>,
    referrer_policy: Option<String>,
    sensitive: Option<Option<SensitiveFn>>,
}

impl std::fmt::Debug for SecurityHeadersBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityHeadersBuilder")
            .field("hsts", &self.hsts)
            .field("content_security_policy", &self.content_security_policy)
            .field("referrer_policy", &self.referrer_policy)
            .finish_non_exhaustive()
    }
}

impl SecurityHeadersBuilder {
    /// HSTS with this `max-age`, optionally for subdomains and with `preload` (which the
    /// preload list accepts only with subdomains and at least a year).
    pub fn hsts(mut self, max_age: Duration, include_subdomains: bool, preload: bool) -> Self {
        let mut value = format!("max-age={}", max_age.as_secs());
        if include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if preload {
            value.push_str("; preload");
        }
        self.hsts = Some(Some(value));
        self
    }

    /// No HSTS header (a service only reachable over plain HTTP, behind a TLS terminator
    /// that sets its own).
    pub fn without_hsts(mut self) -> Self {
        self.hsts = Some(None);
        self
    }

    /// The `Content-Security-Policy` for responses without one; keep `frame-ancestors`.
    pub fn content_security_policy(mut self, policy: impl Into<String>) -> Self {
        self.content_security_policy = Some(policy.into());
        self
    }

    /// The `Referrer-Policy` (default `no-referrer`).
    pub fn referrer_policy(mut self, policy: impl Into<String>) -> Self {
        self.referrer_policy = Some(policy.into());
        self
    }

    /// `Cache-Control: no-store` only on requests the predicate calls sensitive (default:
    /// every response, as fits an API that serves account and payment data).
    pub fn no_store_when(mut self, sensitive: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.sensitive = Some(Some(Arc::new(sensitive)));
        self
    }

    /// Never set `Cache-Control`.
    pub fn without_no_store(mut self) -> Self {
        self.sensitive = Some(None);
        self
    }

    /// Checks the values and builds the layer.
    pub fn build(self) -> Result<SecurityHeadersLayer, InvalidConfig> {
        let value = |name: &str, v: &str| {
            HeaderValue::from_str(v).map_err(|_| {
                InvalidConfig::new("security headers", format!("{name} is not a valid header value"))
            })
        };
        let mut always = vec![
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        ];
        if let Some(hsts) = self.hsts.unwrap_or_else(|| Some(DEFAULT_HSTS.to_owned())) {
            check_hsts(&hsts)?;
            always.push((STRICT_TRANSPORT_SECURITY, value("the HSTS policy", &hsts)?));
        }
        let referrer = self.referrer_policy.unwrap_or_else(|| "no-referrer".to_owned());
        always.push((REFERRER_POLICY, value("the referrer policy", &referrer)?));
        let csp = self.content_security_policy.unwrap_or_else(|| "frame-ancestors 'none'".to_owned());
        let if_absent = vec![(CONTENT_SECURITY_POLICY, value("the content security policy", &csp)?)];
        let sensitive = self.sensitive.unwrap_or_else(|| Some(Arc::new(|_: &Parts| true)));
        Ok(SecurityHeadersLayer { headers: Arc::new(Headers { always, if_absent, sensitive }) })
    }
}

/// `Cache-Control` for sensitive responses.
pub(crate) const NO_STORE: (HeaderName, HeaderValue) = (CACHE_CONTROL, HeaderValue::from_static("no-store"));

fn check_hsts(policy: &str) -> Result<(), InvalidConfig> {
    let directives: Vec<String> = policy.split(';').map(|d| d.trim().to_ascii_lowercase()).collect();
    let max_age = directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
        .ok_or_else(|| InvalidConfig::new("security headers", "the HSTS policy needs a max-age"))?;
    if directives.iter().any(|d| d == "preload")
        && (max_age < 31_536_000 || !directives.iter().any(|d| d == "includesubdomains"))
    {
        return Err(InvalidConfig::new(
            "security headers",
            "HSTS preload needs includeSubDomains and a max-age of at least a year",
        ));
    }
    Ok(())
}
