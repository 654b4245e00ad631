//! The in-process pre-filter: refuses obvious excess before any DynamoDB round trip.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::{Algorithm, InvalidConfig, RateLimited};

/// How often (in checks) idle keys are dropped from the GCRA state.
const RETAIN_EVERY: u64 = 8192;
/// How many blocked keys trigger a sweep of the expired ones.
const BLOCKED_SWEEP_AT: usize = 1024;

/// A keyed GCRA limiter (governor) plus what DynamoDB already refused, per process.
///
/// It decides locally, in well under a microsecond, and never calls DynamoDB:
///
/// - **GCRA**: a key that sends faster than the shared limit could ever admit *from this
///   instance alone* is refused here. It is sized so that it never refuses what the
///   shared limit would admit to a single instance: for the token bucket it is the same
///   bucket (GCRA is a token bucket: burst `limit`, one token per `window / limit`); for
///   the window algorithms the burst is `2 × limit`, because a window counter admits
///   `limit` at the end of one window and `limit` again at the start of the next. The
///   trade-off: with N instances the shared limit refuses long before any local filter
///   does, so the pre-filter only saves round trips for floods that a single instance
///   sees (one noisy client pinned to a warm Lambda instance, a retry storm).
/// - **Known refusals**: when DynamoDB refuses a key, its counter cannot go down before
///   the reset it reported (counts only grow inside a window, a token bucket's arrival
///   time only moves forward), so the key is refused locally until then. This is exact.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::rate_limit::{Algorithm, LocalPrefilter};
///
/// let filter = LocalPrefilter::for_algorithm(Algorithm::TokenBucket, 2, Duration::from_secs(60)).unwrap();
/// assert!(filter.check("t:acme").is_ok());
/// assert!(filter.check("t:acme").is_ok());
/// let refused = filter.check("t:acme").unwrap_err();
/// assert!(refused.retry_after() > Duration::from_secs(25));
/// assert!(filter.check("t:globex").is_ok());
/// ```
pub struct LocalPrefilter {
    gcra: DefaultKeyedRateLimiter<u64>,
    hasher: std::hash::RandomState,
    blocked: RwLock<HashMap<u64, Instant>>,
    blocked_len: AtomicUsize,
    checks: AtomicU64,
    limit: u32,
}

impl std::fmt::Debug for LocalPrefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPrefilter")
            .field("limit", &self.limit)
            .field("keys", &self.gcra.len())
            .field("blocked", &self.blocked_len.load(Ordering::Relaxed))
            .finish()
    }
}

impl LocalPrefilter {
    /// A pre-filter that never refuses what `algorithm` with `limit` per `window` would
    /// admit to a single instance (see the type's docs).
    pub fn for_algorithm(algorithm: Algorithm, limit: u32, window: Duration) -> Result<Self, InvalidConfig> {
        let burst = match algorithm {
            Algorithm::TokenBucket => limit,
            Algorithm::FixedWindow | Algorithm::SlidingWindow => limit.saturating_mul(2),
        };
        Self::new(limit, burst, window)
    }

    /// A pre-filter admitting bursts of `burst` and `limit` per `window` on average;
    /// `limit` is what refusals report in `RateLimit-Limit`.
    pub fn new(limit: u32, burst: u32, window: Duration) -> Result<Self, InvalidConfig> {
        let limit_nz = NonZeroU32::new(limit)
            .ok_or_else(|| InvalidConfig::new("rate limit", "the limit must be at least 1"))?;
        let burst = NonZeroU32::new(burst)
            .ok_or_else(|| InvalidConfig::new("rate limit", "the burst must be at least 1"))?;
        let quota = Quota::with_period(window / limit_nz.get())
            .ok_or_else(|| InvalidConfig::new("rate limit", "the window is too short for the limit"))?
            .allow_burst(burst);
        Ok(Self {
            gcra: DefaultKeyedRateLimiter::keyed(quota),
            hasher: std::hash::RandomState::new(),
            blocked: RwLock::new(HashMap::new()),
            blocked_len: AtomicUsize::new(0),
            checks: AtomicU64::new(0),
            limit,
        })
    }

    /// Whether `key` may go on to the shared limit; a refusal says when to retry.
    pub fn check(&self, key: &str) -> Result<(), RateLimited> {
        let hash = self.hasher.hash_one(key);
        if self.blocked_len.load(Ordering::Relaxed) > 0 {
            let blocked = self.blocked.read().unwrap_or_else(|e| e.into_inner());
            if let Some(until) = blocked.get(&hash) {
                let now = Instant::now();
                if *until > now {
                    let wait = *until - now;
                    return Err(RateLimited::new(self.limit, wait, wait));
                }
            }
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.gcra.retain_recent();
        }
        match self.gcra.check_key(&hash) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.gcra.clock().now());
                Err(RateLimited::new(self.limit, wait, wait))
            }
        }
    }

    /// Refuses `key` locally for `period`: DynamoDB said it is over the limit until then.
    pub fn block(&self, key: &str, period: Duration) {
        let hash = self.hasher.hash_one(key);
        let now = Instant::now();
        let mut blocked = self.blocked.write().unwrap_or_else(|e| e.into_inner());
        if blocked.len() >= BLOCKED_SWEEP_AT {
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(hash, now + period);
        self.blocked_len.store(blocked.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_get_twice_the_burst() {
        let filter =
            LocalPrefilter::for_algorithm(Algorithm::FixedWindow, 3, Duration::from_secs(3600)).unwrap();
        let admitted = (0..10).filter(|_| filter.check("k").is_ok()).count();
        assert_eq!(admitted, 6);
    }

    #[test]
    fn known_refusals_block_until_the_reset() {
        let filter =
            LocalPrefilter::for_algorithm(Algorithm::TokenBucket, 100, Duration::from_secs(1)).unwrap();
        filter.block("k", Duration::from_secs(30));
        let refused = filter.check("k").unwrap_err();
        assert!(refused.retry_after() > Duration::from_secs(29));
        assert!(filter.check("other").is_ok());
        filter.block("gone", Duration::ZERO);
        assert!(filter.check("gone").is_ok());
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(LocalPrefilter::new(0, 1, Duration::from_secs(1)).is_err());
        assert!(LocalPrefilter::new(10, 10, Duration::ZERO).is_err());
    }
}
