//! The adaptive concurrency limit (AIMD), and the tickets that count requests in flight.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Priority;

/// The shared limit of a load-shed layer: in-flight count, current limit, counters.
///
/// AIMD as in Netflix's concurrency-limits `AIMDLimit`: a sample that timed out or took
/// longer than the latency target multiplies the limit by the backoff ratio; any other
/// sample, taken while at least half the limit was in use, adds one. The limit stays
/// within `[min, max]`.
///
/// # How requests are counted
///
/// Every admitted request holds a [`Ticket`]: a reference to the limit's core, which only
/// this `AdaptiveLimit` holds otherwise. The core's reference count is therefore the number
/// of requests in flight plus one, and counting a request in and out is the ticket's clone
/// and its drop: two atomic operations per request, with no counter of its own beside the
/// reference count (a separate one cost two more, and they were most of the layer's time).
///
/// Admission clones the ticket first and reads the count after, so a request sees its own
/// increment and every one ordered before it: of requests admitted together, the last to
/// read sees them all, so no more than the limit are ever in flight. Requests racing each
/// other may each see the other and both be shed where one could have passed; the count
/// errs only on the side of shedding.
#[derive(Debug)]
pub struct AdaptiveLimit {
    core: Arc<Core>,
}

/// What a ticket needs to adapt the limit when its request ends.
#[derive(Debug)]
struct Core {
    limit: AtomicUsize,
    shed: AtomicU64,
    min: usize,
    max: usize,
    backoff_ratio: f64,
    low_share: f64,
    latency_target: Duration,
}

impl Core {
    /// The limit after a slow sample: `limit` × backoff ratio, within `[min, max]`.
    #[inline(always)]
    fn decreased(&self, limit: usize) -> usize {
        ((limit as f64 * self.backoff_ratio) as usize).clamp(self.min, self.max)
    }

    /// Takes a slow sample: the limit moves to [`decreased`](Self::decreased).
    #[cold]
    #[inline(never)]
    fn decrease(&self) {
        let limit = self.limit.load(Ordering::Relaxed);
        // A plain load first: at the floor already, no compare-and-swap.
        if self.decreased(limit) != limit {
            let _ = self
                .limit
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| Some(self.decreased(current)));
        }
    }

    /// After a good sample with at least half the limit in use: one more, up to `max`.
    /// Checked again against the current limit, so a concurrent decrease is not undone.
    #[inline(always)]
    fn increase(&self, in_flight: usize) {
        let _ = self.limit.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
            (in_flight * 2 >= current && current < self.max).then_some(current + 1)
        });
    }
}

/// One request in flight: counted in when made, out when dropped.
#[derive(Debug)]
pub(crate) struct Ticket(Arc<Core>);

impl AdaptiveLimit {
    pub(crate) fn new(
        initial: usize,
        min: usize,
        max: usize,
        backoff_ratio: f64,
        low_share: f64,
        latency_target: Duration,
    ) -> Self {
        let core = Core {
            limit: AtomicUsize::new(initial),
            shed: AtomicU64::new(0),
            min,
            max,
            backoff_ratio,
            low_share,
            latency_target,
        };
        Self { core: Arc::new(core) }
    }

    /// The current limit.
    #[inline]
    pub fn limit(&self) -> usize {
        self.core.limit.load(Ordering::Relaxed)
    }

    /// Requests in flight now (critical ones included).
    #[inline]
    pub fn in_flight(&self) -> usize {
        // The core's references: this limit's own, and one per ticket.
        Arc::strong_count(&self.core) - 1
    }

    /// Requests shed so far.
    pub fn shed(&self) -> u64 {
        self.core.shed.load(Ordering::Relaxed)
    }

    /// Counts a request in and gives its ticket, or sheds it.
    #[inline(always)]
    pub(crate) fn try_admit(&self, priority: Priority) -> Option<Ticket> {
        // Counted in before the count is read: see "How requests are counted".
        let ticket = Ticket(Arc::clone(&self.core));
        let cap = match priority {
            Priority::Critical => return Some(ticket),
            Priority::Normal => self.limit(),
            Priority::Low => (self.limit() as f64 * self.core.low_share) as usize,
        };
        if ticket.in_flight() <= cap {
            return Some(ticket);
        }
        self.core.shed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Ticket {
    /// Requests in flight, this one included.
    #[inline]
    fn in_flight(&self) -> usize {
        Arc::strong_count(&self.0) - 1
    }

    /// Adapts the limit to how the request went. The request stays counted in until the
    /// ticket is dropped. Only the checks are inline: a decrease is a call.
    #[inline(always)]
    pub(crate) fn sample(&self, latency: Duration, timed_out: bool) {
        let core = &*self.0;
        if timed_out || latency > core.latency_target {
            core.decrease();
            return;
        }
        let in_flight = self.in_flight();
        let limit = core.limit.load(Ordering::Relaxed);
        if in_flight * 2 >= limit && limit < core.max {
            core.increase(in_flight);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use proptest::prelude::*;

    use super::*;

    fn limit(initial: usize, max: usize) -> AdaptiveLimit {
        AdaptiveLimit::new(initial, 1, max, 0.5, 0.5, Duration::from_millis(100))
    }

    /// Threads racing for 2 places never hold more than 2 at once. A limit that read the
    /// count before counting itself in (check, then clone) lets a third in when two
    /// requests read the same count. That race is narrow: on a 2-core machine this test
    /// caught such a limit in 2 runs of 5. It is a tripwire; the proof is the ordering
    /// argument on `AdaptiveLimit`.
    #[test]
    fn racing_threads_never_exceed_the_limit() {
        let limit = Arc::new(limit(2, 2));
        let (holding, most, admitted) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
        let start = Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..50_000 {
                        if let Some(ticket) = limit.try_admit(Priority::Normal) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            // Counted after admission and before the ticket goes: never more
                            // than the tickets out.
                            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            for _ in 0..64 {
                                std::hint::spin_loop();
                            }
                            holding.fetch_sub(1, Ordering::SeqCst);
                            drop(ticket);
                        }
                    }
                });
            }
        });
        let (admitted, shed) = (admitted.load(Ordering::Relaxed) as u64, limit.shed());
        assert!(most.load(Ordering::SeqCst) <= 2, "{} held at once", most.load(Ordering::SeqCst));
        assert_eq!(admitted + shed, 200_000, "every attempt was admitted or shed");
        assert!(admitted > 0);
        assert_eq!(limit.in_flight(), 0, "every ticket counted out");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit(Priority),
        Finish { which: usize, slow: bool, timed_out: bool },
        Cancel(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop_oneof![Just(Priority::Low), Just(Priority::Normal), Just(Priority::Critical)].prop_map(Op::Admit),
            2 => (any::<usize>(), any::<bool>(), any::<bool>())
                .prop_map(|(which, slow, timed_out)| Op::Finish { which, slow, timed_out }),
            1 => any::<usize>().prop_map(Op::Cancel),
        ]
    }

    proptest! {
        /// Against a model of the limit: the in-flight count is the tickets out, whatever
        /// mix of admissions, samples and cancellations; a critical request is always
        /// admitted; normal and low ones only within their caps; the limit stays within
        /// its bounds and moves as AIMD says.
        #[test]
        fn the_count_and_the_limit_follow_the_model(ops in proptest::collection::vec(op(), 1..200)) {
            let (min, max) = (1, 8);
            let limit = AdaptiveLimit::new(4, min, max, 0.5, 0.5, Duration::from_millis(100));
            let mut out: Vec<(Ticket, Priority)> = Vec::new();
            let (mut model_limit, mut model_shed) = (4usize, 0u64);
            for op in ops {
                match op {
                    Op::Admit(priority) => {
                        let after = out.len() + 1;
                        let cap = match priority {
                            Priority::Critical => usize::MAX,
                            Priority::Normal => model_limit,
                            Priority::Low => (model_limit as f64 * 0.5) as usize,
                        };
                        match limit.try_admit(priority) {
                            Some(ticket) => {
                                prop_assert!(after <= cap, "{priority:?} admitted as #{after} over {cap}");
                                out.push((ticket, priority));
                            }
                            None => {
                                prop_assert!(after > cap, "{priority:?} shed as #{after} within {cap}");
                                model_shed += 1;
                            }
                        }
                    }
                    Op::Finish { which, slow, timed_out } if !out.is_empty() => {
                        let (ticket, _) = out.swap_remove(which % out.len());
                        let in_flight = out.len() + 1;
                        let latency = if slow { Duration::from_millis(150) } else { Duration::from_millis(5) };
                        ticket.sample(latency, timed_out);
                        drop(ticket);
                        if slow || timed_out {
                            model_limit = ((model_limit as f64 * 0.5) as usize).clamp(min, max);
                        } else if in_flight * 2 >= model_limit && model_limit < max {
                            model_limit += 1;
                        }
                    }
                    Op::Cancel(which) if !out.is_empty() => {
                        drop(out.swap_remove(which % out.len()));
                    }
                    _ => {}
                }
                prop_assert_eq!(limit.in_flight(), out.len());
                prop_assert_eq!(limit.limit(), model_limit);
                prop_assert_eq!(limit.shed(), model_shed);
            }
            drop(out);
            prop_assert_eq!(limit.in_flight(), 0);
        }
    }
}
