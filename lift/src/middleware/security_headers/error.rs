//! Errors of the security headers and CORS builders.

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
pub use crate::config::InvalidConfig;
