//! The algorithms, what the limiter does when DynamoDB fails, and what it decided.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::error::{ceil_secs, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET};

/// How the shared limit counts requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `limit` requests per window, windows aligned on the epoch. Exact, but a client can
    /// send `limit` at the end of one window and `limit` again at the start of the next.
    #[default]
    FixedWindow,
    /// The current window's count plus the previous window's, weighted by how much of it
    /// still overlaps a sliding window: smooths the boundary burst of the fixed window.
    SlidingWindow,
    /// A bucket of `limit` tokens, refilled at `limit` per window (one every
    /// `window / limit`): bursts up to `limit`, then a steady rate.
    TokenBucket,
}

impl Algorithm {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "fixed-window" | "fixed" => Some(Self::FixedWindow),
            "sliding-window" | "sliding" => Some(Self::SlidingWindow),
            "token-bucket" | "bucket" => Some(Self::TokenBucket),
            _ => None,
        }
    }
}

/// What the limiter does when the shared limit cannot be checked (DynamoDB throttled,
/// failing, slow beyond the store timeout, or unreachable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FailMode {
    /// Admit the request (the local pre-filter still applies). Availability first: for
    /// read APIs and anything where an outage of the limiter must not become an outage
    /// of the service.
    Open,
    /// Refuse with 503 [`LimiterUnavailable`](super::LimiterUnavailable). The default:
    /// Lift targets payments, where an unchecked burst (card testing, runaway clients
    /// hitting a processor) costs more than a short refusal.
    #[default]
    Closed,
}

impl FailMode {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// The quota state of an admitted request, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) limit: u32,
    /// `None` when the shared limit could not be read (fail open).
    pub(crate) remaining: Option<u32>,
    pub(crate) reset: Duration,
}

impl Quota {
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        if let Some(remaining) = self.remaining {
            headers.insert(RATELIMIT_REMAINING, HeaderValue::from(remaining));
            headers.insert(RATELIMIT_RESET, HeaderValue::from(ceil_secs(self.reset)));
        }
    }
}
