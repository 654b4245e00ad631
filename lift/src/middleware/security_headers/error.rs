//! Errors of the security headers and CORS builders.

use std::fmt;

/// A security-headers or CORS configuration that cannot work or would be unsafe.
///
/// # Examples
///
/// ```
/// use lift::middleware::security_headers::CorsPolicy;
///
/// let err = CorsPolicy::new().allow_any_origin().allow_credentials(true).build().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid security headers configuration: credentials cannot be allowed for any origin; list the origins"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    reason: String,
}

impl InvalidConfig {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid security headers configuration: {}", self.reason)
    }
}

impl std::error::Error for InvalidConfig {}
