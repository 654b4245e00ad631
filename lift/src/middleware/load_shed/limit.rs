//! The adaptive concurrency limit (AIMD).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::Priority;

/// The shared limit of a load-shed layer: in-flight count, current limit, counters.
///
/// AIMD as in Netflix's concurrency-limits `AIMDLimit`: a sample that timed out or took
/// longer than the latency target multiplies the limit by the backoff ratio; any other
/// sample, taken while at least half the limit was in use, adds one. The limit stays
/// within `[min, max]`.
#[derive(Debug)]
pub struct AdaptiveLimit {
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    shed: AtomicU64,
    min: usize,
    max: usize,
    backoff_ratio: f64,
    low_share: f64,
    pub(crate) latency_target: Duration,
}

impl AdaptiveLimit {
    pub(crate) fn new(
        initial: usize,
        min: usize,
        max: usize,
        backoff_ratio: f64,
        low_share: f64,
        latency_target: Duration,
    ) -> Self {
        Self {
            limit: AtomicUsize::new(initial),
            in_flight: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
            min,
            max,
            backoff_ratio,
            low_share,
            latency_target,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Requests in flight now (critical ones included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests shed so far.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Counts a request in, or sheds it; `true` when admitted.
    #[inline]
    pub(crate) fn try_admit(&self, priority: Priority) -> bool {
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let cap = match priority {
            Priority::Critical => return true,
            Priority::Normal => self.limit(),
            Priority::Low => (self.limit() as f64 * self.low_share) as usize,
        };
        if in_flight <= cap {
            return true;
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.shed.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Counts a request out without a sample (critical, or cancelled).
    #[inline]
    pub(crate) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts a request out and adapts the limit to how it went.
    #[inline]
    pub(crate) fn sample(&self, latency: Duration, timed_out: bool) {
        let in_flight = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let dropped = timed_out || latency > self.latency_target;
        let _ = self.limit.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |limit| {
            if dropped {
                let decreased = (limit as f64 * self.backoff_ratio) as usize;
                Some(decreased.clamp(self.min, self.max))
            } else if in_flight * 2 >= limit && limit < self.max {
                Some(limit + 1)
            } else {
                None
            }
        });
    }
}
