//! One breaker's state machine: closed, open, half-open.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::window::{SlidingWindow, Window};
use super::CircuitOpen;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until the wait is over.
    Open,
    /// One probe call decides between closed and open; other calls are rejected.
    HalfOpen,
}

impl State {
    fn from_u8(value: u8) -> Self {
        match value {
            CLOSED => State::Closed,
            OPEN => State::Open,
            _ => State::HalfOpen,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        })
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// A state-change callback: key, from, to.
pub(crate) type Listener<K> = Box<dyn Fn(&K, State, State) + Send + Sync>;

/// What every breaker of a layer shares: thresholds, clock origin and callbacks.
pub(crate) struct Policy<K> {
    pub(crate) failure_rate: f64,
    /// The slow-call threshold and rate, when slow-call detection is on.
    pub(crate) slow: Option<(Duration, f64)>,
    pub(crate) minimum_calls: u32,
    pub(crate) window: SlidingWindow,
    pub(crate) open_for: Duration,
    pub(crate) listeners: Vec<Listener<K>>,
    pub(crate) epoch: Instant,
}

impl<K> Policy<K> {
    fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Whether recording an outcome needs the time: to time slow calls, or to find the
    /// second of a time window. A count window without slow-call detection reads no clock.
    fn timed(&self) -> bool {
        self.slow.is_some() || matches!(self.window, SlidingWindow::Seconds(_))
    }
}

/// Counters of one breaker, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerMetrics {
    /// The current state.
    pub state: State,
    /// Calls let through (probes included).
    pub calls: u64,
    /// Calls classified as failures.
    pub failures: u64,
    /// Calls slower than the slow-call threshold.
    pub slow_calls: u64,
    /// Calls rejected with [`CircuitOpen`].
    pub rejections: u64,
}

/// The breaker of one key.
pub(crate) struct Breaker<K> {
    key: K,
    policy: Arc<Policy<K>>,
    state: AtomicU8,
    probing: AtomicBool,
    /// While open: when the wait ends, in nanoseconds since `policy.epoch`.
    open_until: AtomicU64,
    /// Transitions and the window are serialized here, so callbacks fire in order.
    window: Mutex<Window>,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
    rejections: AtomicU64,
}

/// Admission of one call; [`Breaker::complete`] or drop ends it.
pub(crate) struct Permit<K> {
    breaker: Arc<Breaker<K>>,
    probe: bool,
    /// When the call started, if slow calls are timed.
    start: Option<Instant>,
}

impl<K> Breaker<K> {
    pub(crate) fn new(key: K, policy: Arc<Policy<K>>) -> Self {
        Self {
            window: Mutex::new(Window::new(policy.window)),
            key,
            policy,
            state: AtomicU8::new(CLOSED),
            probing: AtomicBool::new(false),
            open_until: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
        }
    }

    pub(crate) fn metrics(&self) -> BreakerMetrics {
        BreakerMetrics {
            state: State::from_u8(self.state.load(Ordering::Acquire)),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            slow_calls: self.slow.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
        }
    }

    /// Lets a call through, or rejects it while open or while a probe is out.
    pub(crate) fn admit(self: Arc<Self>) -> Result<Permit<K>, CircuitOpen> {
        let probe = match self.state.load(Ordering::Acquire) {
            CLOSED => false,
            OPEN => {
                let until = self.open_until.load(Ordering::Acquire);
                let at = self.policy.nanos(Instant::now());
                if at < until {
                    return Err(self.reject(Duration::from_nanos(until - at)));
                }
                self.half_open(at);
                self.claim_probe()?
            }
            _ => self.claim_probe()?,
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let start = self.policy.slow.map(|_| Instant::now());
        Ok(Permit { breaker: self, probe, start })
    }

    fn reject(&self, retry_after: Duration) -> CircuitOpen {
        self.rejections.fetch_add(1, Ordering::Relaxed);
        CircuitOpen::new(retry_after)
    }

    /// `Ok(true)` for the one probe of a half-open breaker.
    fn claim_probe(&self) -> Result<bool, CircuitOpen> {
        if self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // The probe decides soon; its outcome is unknown, so say "soon".
            return Err(self.reject(Duration::ZERO));
        }
        // The previous probe may have decided between our state read and the claim: a
        // transition stores the state before it frees `probing`, so this read is current.
        match self.state.load(Ordering::Acquire) {
            HALF_OPEN => Ok(true),
            CLOSED => {
                self.probing.store(false, Ordering::Release);
                Ok(false)
            }
            _ => {
                self.probing.store(false, Ordering::Release);
                let until = self.open_until.load(Ordering::Acquire);
                let left = until.saturating_sub(self.policy.nanos(Instant::now()));
                Err(self.reject(Duration::from_nanos(left)))
            }
        }
    }

    fn half_open(&self, at: u64) {
        let _window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        // Another caller may have moved on already.
        // `probing` is already free: `open` freed it.
        if self.state.load(Ordering::Acquire) == OPEN && at >= self.open_until.load(Ordering::Acquire) {
            self.state.store(HALF_OPEN, Ordering::Release);
            self.notify(State::Open, State::HalfOpen);
        }
    }

    /// Holds the window lock: only called from transitions.
    fn open(&self, now: Instant, from: State) {
        let until = self.policy.nanos(now).saturating_add(self.policy.open_for.as_nanos() as u64);
        self.open_until.store(until, Ordering::Release);
        self.state.store(OPEN, Ordering::Release);
        self.probing.store(false, Ordering::Release);
        self.notify(from, State::Open);
    }

    fn notify(&self, from: State, to: State) {
        for listener in &self.policy.listeners {
            listener(&self.key, from, to);
        }
    }

    /// Records the outcome of an admitted call.
    pub(crate) fn complete(mut permit: Permit<K>, failure: bool) {
        let this = &permit.breaker;
        let now = this.policy.timed().then(Instant::now);
        let slow = match (this.policy.slow, permit.start, now) {
            (Some((threshold, _)), Some(start), Some(now)) => {
                now.saturating_duration_since(start) >= threshold
            }
            _ => false,
        };
        if failure {
            this.failures.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            this.slow.fetch_add(1, Ordering::Relaxed);
        }
        if std::mem::take(&mut permit.probe) {
            let mut window = this.window.lock().unwrap_or_else(PoisonError::into_inner);
            if failure || slow {
                this.open(now.unwrap_or_else(Instant::now), State::HalfOpen);
            } else {
                window.reset();
                this.state.store(CLOSED, Ordering::Release);
                this.probing.store(false, Ordering::Release);
                this.notify(State::HalfOpen, State::Closed);
            }
            return;
        }
        if this.state.load(Ordering::Acquire) != CLOSED {
            return; // admitted before the breaker opened: that window is gone
        }
        let mut window = this.window.lock().unwrap_or_else(PoisonError::into_inner);
        if this.state.load(Ordering::Acquire) != CLOSED {
            return;
        }
        let second = now.map_or(0, |now| now.saturating_duration_since(this.policy.epoch).as_secs());
        let totals = window.record(second, failure, slow);
        if totals.calls >= this.policy.minimum_calls {
            let calls = f64::from(totals.calls);
            let too_slow = this.policy.slow.is_some_and(|(_, rate)| f64::from(totals.slow) / calls >= rate);
            if too_slow || f64::from(totals.failures) / calls >= this.policy.failure_rate {
                this.open(now.unwrap_or_else(Instant::now), State::Closed);
            }
        }
    }
}

impl<K> Drop for Permit<K> {
    fn drop(&mut self) {
        if self.probe {
            // The probe was cancelled before its outcome: let the next call probe instead.
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}
