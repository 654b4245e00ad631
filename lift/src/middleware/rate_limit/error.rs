//! Errors of the rate limiter.

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

/// `RateLimit-Limit`: the request quota of the window (IETF draft `ratelimit-headers`).
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left in the window.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the quota resets.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Whole seconds for a header: rounded up, so a client never retries too early.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A request refused because its key is over the limit.
///
/// Lift renders it as 429 with `Retry-After` and the `RateLimit-*` headers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::rate_limit::RateLimited;
///
/// let err = RateLimited::new(50, Duration::from_millis(1500), Duration::from_secs(30));
/// assert_eq!(err.to_string(), "rate limit exceeded");
/// let res = lift::Error::from(err).into_response();
/// assert_eq!(res.status(), 429);
/// assert_eq!(res.headers()["retry-after"], "2");
/// assert_eq!(res.headers()["ratelimit-remaining"], "0");
/// assert_eq!(res.headers()["ratelimit-reset"], "30");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    limit: u32,
    retry_after: Duration,
    reset: Duration,
}

impl RateLimited {
    /// A refusal under `limit`, with when to retry and when the quota resets.
    pub const fn new(limit: u32, retry_after: Duration, reset: Duration) -> Self {
        Self { limit, retry_after, reset }
    }

    /// The limit of the window.
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// When the key may send again.
    pub const fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// When the quota resets.
    pub const fn reset(&self) -> Duration {
        self.reset
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rate limit exceeded")
    }
}

impl std::error::Error for RateLimited {}

impl From<RateLimited> for crate::Error {
    fn from(err: RateLimited) -> Self {
        let retry = ceil_secs(err.retry_after).max(1);
        crate::Error::new(http::StatusCode::TOO_MANY_REQUESTS)
            .with_type("https://lift.dev/problems/rate-limited", "Too many requests")
            .with_detail(format!("the rate limit of {} requests is exhausted; retry in {retry} s", err.limit))
            .with_header(http::header::RETRY_AFTER, HeaderValue::from(retry))
            .with_header(RATELIMIT_LIMIT, HeaderValue::from(err.limit))
            .with_header(RATELIMIT_REMAINING, HeaderValue::from(0u32))
            .with_header(RATELIMIT_RESET, HeaderValue::from(ceil_secs(err.reset.max(err.retry_after))))
    }
}

/// The shared limit could not be checked (DynamoDB throttled, failing or unreachable) and
/// the limiter fails closed.
///
/// Lift renders it as 503 with `Retry-After`: the service, not the caller, is at fault.
///
/// # Examples
///
/// ```
/// use lift::middleware::rate_limit::LimiterUnavailable;
///
/// let err = LimiterUnavailable::new("dispatch failure");
/// assert_eq!(err.to_string(), "rate limiter unavailable: dispatch failure");
/// assert_eq!(lift::Error::from(err).status(), 503);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterUnavailable {
    reason: String,
}

impl LimiterUnavailable {
    /// An unavailable limiter, with why (no request data, no secrets).
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

impl fmt::Display for LimiterUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limiter unavailable: {}", self.reason)
    }
}

impl std::error::Error for LimiterUnavailable {}

impl From<LimiterUnavailable> for crate::Error {
    fn from(err: LimiterUnavailable) -> Self {
        crate::Error::service_unavailable(1)
            .with_type("https://lift.dev/problems/rate-limiter-unavailable", "Rate limiter unavailable")
            .with_detail("the rate limit cannot be checked right now; retry later")
            .with_source(err)
    }
}

pub use crate::config::InvalidConfig;
