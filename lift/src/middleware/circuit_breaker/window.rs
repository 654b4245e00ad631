//! Sliding windows of call outcomes: the last N calls, or the last T seconds in 1 s buckets.

/// Which calls the failure and slow-call rates are computed over.
///
/// # Examples
///
/// ```
/// use lift::middleware::circuit_breaker::SlidingWindow;
/// let last_50_calls = SlidingWindow::Calls(50);
/// let last_30_seconds = SlidingWindow::Seconds(30);
/// # let _ = (last_50_calls, last_30_seconds);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last N calls.
    Calls(u32),
    /// The calls of the last N seconds, counted in one-second buckets.
    Seconds(u32),
}

impl Default for SlidingWindow {
    fn default() -> Self {
        Self::Calls(100)
    }
}

/// Sums over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

const FAILURE: u8 = 1;
const SLOW: u8 = 2;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bucket {
    second: u64,
    totals: Totals,
}

/// The window of one breaker.
#[derive(Debug)]
pub(crate) enum Window {
    Calls { outcomes: Box<[u8]>, next: usize, filled: usize, totals: Totals },
    Seconds { buckets: Box<[Bucket]> },
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Calls(n) => Self::Calls {
                outcomes: vec![0; n as usize].into_boxed_slice(),
                next: 0,
                filled: 0,
                totals: Totals::default(),
            },
            SlidingWindow::Seconds(n) => {
                Self::Seconds { buckets: vec![Bucket::default(); n as usize].into_boxed_slice() }
            }
        }
    }

    /// Records an outcome at `now_secs` (seconds since the registry started) and returns
    /// the totals of the window.
    pub(crate) fn record(&mut self, now_secs: u64, failure: bool, slow: bool) -> Totals {
        match self {
            Self::Calls { outcomes, next, filled, totals } => {
                if *filled == outcomes.len() {
                    let old = outcomes[*next];
                    totals.calls -= 1;
                    totals.failures -= u32::from(old & FAILURE != 0);
                    totals.slow -= u32::from(old & SLOW != 0);
                } else {
                    *filled += 1;
                }
                outcomes[*next] = (u8::from(failure) * FAILURE) | (u8::from(slow) * SLOW);
                *next = (*next + 1) % outcomes.len();
                totals.calls += 1;
                totals.failures += u32::from(failure);
                totals.slow += u32::from(slow);
                *totals
            }
            Self::Seconds { buckets } => {
                let len = buckets.len() as u64;
                // Second 0 is a valid second, so an empty bucket is marked by `second + 1`.
                let bucket = &mut buckets[(now_secs % len) as usize];
                if bucket.second != now_secs + 1 {
                    *bucket = Bucket { second: now_secs + 1, totals: Totals::default() };
                }
                bucket.totals.calls += 1;
                bucket.totals.failures += u32::from(failure);
                bucket.totals.slow += u32::from(slow);
                buckets.iter().filter(|b| b.second > 0 && b.second - 1 + len > now_secs).fold(
                    Totals::default(),
                    |acc, b| Totals {
                        calls: acc.calls + b.totals.calls,
                        failures: acc.failures + b.totals.failures,
                        slow: acc.slow + b.totals.slow,
                    },
                )
            }
        }
    }

    /// Forgets every outcome (when the breaker closes again).
    pub(crate) fn reset(&mut self) {
        match self {
            Self::Calls { outcomes, next, filled, totals } => {
                outcomes.fill(0);
                *next = 0;
                *filled = 0;
                *totals = Totals::default();
            }
            Self::Seconds { buckets } => buckets.fill(Bucket::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_forgets_the_oldest_call() {
        let mut w = Window::new(SlidingWindow::Calls(3));
        w.record(0, true, false);
        w.record(0, false, true);
        let t = w.record(0, false, false);
        assert_eq!(t, Totals { calls: 3, failures: 1, slow: 1 });
        let t = w.record(0, false, false);
        assert_eq!(t, Totals { calls: 3, failures: 0, slow: 1 });
        w.reset();
        assert_eq!(w.record(0, true, true), Totals { calls: 1, failures: 1, slow: 1 });
    }

    #[test]
    fn time_window_forgets_old_seconds() {
        let mut w = Window::new(SlidingWindow::Seconds(2));
        w.record(0, true, false);
        assert_eq!(w.record(1, true, false).calls, 2);
        // Second 0 left the 2-second window.
        assert_eq!(w.record(2, false, false), Totals { calls: 2, failures: 1, slow: 0 });
        // Seconds 3 and 4 went by without calls.
        assert_eq!(w.record(5, false, false), Totals { calls: 1, failures: 0, slow: 0 });
    }
}
