//! Exponential backoff with full jitter.

use std::time::Duration;

use rand::Rng;

/// How long to wait before a retry: exponential growth, capped, with full jitter.
///
/// Before retry `n` (1 for the first retry) the cap is `min(max, base * 2^(n-1))`; with full
/// jitter (the default) the wait is uniform in `[0, cap]`, which spreads retries of many
/// clients best (AWS Architecture Blog, "Exponential Backoff And Jitter").
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::retry::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(backoff.cap(1), Duration::from_millis(100));
/// assert_eq!(backoff.cap(3), Duration::from_millis(400));
/// assert_eq!(backoff.cap(10), Duration::from_secs(1));
/// assert!(backoff.delay(3) <= Duration::from_millis(400));
/// assert_eq!(backoff.without_jitter().delay(2), Duration::from_millis(200));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::exponential(Duration::from_millis(50), Duration::from_secs(1))
    }
}

impl Backoff {
    /// Exponential backoff from `base`, capped at `max`, with full jitter.
    pub const fn exponential(base: Duration, max: Duration) -> Self {
        Self { base, max, jitter: true }
    }

    /// Waits exactly the cap (for tests and for callers that add their own jitter).
    pub const fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The base wait.
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The most a wait can be.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The longest wait before retry `n` (1 for the first retry).
    pub fn cap(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).map_or(self.max, |d| d.min(self.max))
    }

    /// The wait before retry `n`: uniform in `[0, cap(n)]` with jitter, else `cap(n)`.
    pub fn delay(&self, n: u32) -> Duration {
        let cap = self.cap(n);
        if !self.jitter || cap.is_zero() {
            return cap;
        }
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }
}
