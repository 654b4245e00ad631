//! Errors of the logging configuration.

/// A logging setting that cannot be used.
///
/// # Examples
///
/// ```
/// use lift::middleware::logging::{LogConfig, LogConfigError};
/// let err = LogConfig::new().sample_rate(1.5).build().unwrap_err();
/// assert!(matches!(err, LogConfigError::InvalidSampleRate { .. }));
/// assert_eq!(err.to_string(), "invalid log sample rate `1.5`: expected a number from 0.0 to 1.0");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LogConfigError {
    /// A level that is not one of trace, debug, info, warn, error (or Lambda's fatal).
    #[error("invalid log level `{value}` from {origin}: expected trace, debug, info, warn or error")]
    InvalidLevel {
        /// The rejected value.
        value: String,
        /// Where it came from (an environment variable or the builder).
        origin: &'static str,
    },
    /// A sample rate outside 0.0–1.0, or not a number.
    #[error("invalid log sample rate `{value}`: expected a number from 0.0 to 1.0")]
    InvalidSampleRate {
        /// The rejected value.
        value: String,
    },
    /// The global subscriber was already set.
    #[error("a global tracing subscriber is already set")]
    AlreadyInitialized,
}
