//! Errors of the bulkhead.

use std::fmt;
use std::time::Duration;

use crate::middleware::circuit_breaker::retry_after_secs;

/// Which compartment of a bulkhead was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compartment {
    /// The limit shared by every request.
    Global,
    /// The limit of the request's tenant.
    Tenant,
}

/// A request rejected because no permit became free within the bulkhead's wait.
///
/// Lift renders it as 503 with `Retry-After`. The bulkhead refuses with that
/// [`lift::Error`](crate::Error), which carries this rejection:
/// [`lift::Error::find`](crate::Error::find) gets it back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::bulkhead::{BulkheadFull, Compartment};
///
/// let err = BulkheadFull::new(Compartment::Tenant, Duration::from_secs(2));
/// assert_eq!(err.to_string(), "bulkhead is full");
/// let res = lift::Error::from(err).into_response();
/// assert_eq!(res.status(), 503);
/// assert_eq!(res.headers()["retry-after"], "2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadFull {
    compartment: Compartment,
    retry_after: Duration,
}

impl BulkheadFull {
    /// A rejection by a full compartment, suggesting a retry after `retry_after`.
    pub const fn new(compartment: Compartment, retry_after: Duration) -> Self {
        Self { compartment, retry_after }
    }

    /// The compartment that was full.
    pub const fn compartment(&self) -> Compartment {
        self.compartment
    }

    /// When to retry.
    pub const fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// `Retry-After` in whole seconds: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after)
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bulkhead is full")
    }
}

impl std::error::Error for BulkheadFull {}

impl From<BulkheadFull> for crate::Error {
    fn from(err: BulkheadFull) -> Self {
        let detail = match err.compartment {
            Compartment::Global => "the service is at its concurrency limit; retry later",
            Compartment::Tenant => "your tenant is at its concurrency limit; retry later",
        };
        crate::Error::service_unavailable(err.retry_after_secs())
            .with_type("https://lift.dev/problems/bulkhead-full", "Too many concurrent requests")
            .with_detail(detail)
            .with_cause(err)
    }
}

pub use crate::config::InvalidConfig;
