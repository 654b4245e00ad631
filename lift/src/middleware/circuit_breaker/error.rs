//! Errors of the circuit breaker.

use std::fmt;
use std::time::Duration;

/// A call rejected because its circuit breaker is open (or half-open with its probe out).
///
/// Lift renders it as 503 with `Retry-After` set to the time the breaker stays open. The
/// breaker refuses with that [`lift::Error`](crate::Error), which carries this rejection:
/// [`lift::Error::find`](crate::Error::find) gets it back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::circuit_breaker::CircuitOpen;
///
/// let err = CircuitOpen::new(Duration::from_millis(2500));
/// assert_eq!(err.to_string(), "circuit breaker is open");
/// assert_eq!(err.retry_after_secs(), 3);
/// assert_eq!(lift::Error::from(err).status(), 503);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen {
    retry_after: Duration,
}

impl CircuitOpen {
    /// A rejection; the breaker stays open for `retry_after`.
    pub const fn new(retry_after: Duration) -> Self {
        Self { retry_after }
    }

    /// How long the breaker stays open (zero while a half-open probe is out).
    pub const fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// `Retry-After` in whole seconds: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after)
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub(crate) fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit breaker is open")
    }
}

impl std::error::Error for CircuitOpen {}

impl From<CircuitOpen> for crate::Error {
    fn from(err: CircuitOpen) -> Self {
        crate::Error::service_unavailable(err.retry_after_secs())
            .with_type("https://lift.dev/problems/circuit-open", "Circuit open")
            .with_detail("a dependency of this service is failing; retry later")
            .with_cause(err)
    }
}

pub use crate::config::InvalidConfig;
