//! The run-time handle on a chaos layer's faults, and what it injected.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::dice::Dice;
use super::{DeniedHost, Faults};

/// Turns a [`ChaosLayer`](super::ChaosLayer)'s faults on and off, or replaces them, while
/// the service runs; shared by every service the layer made and by its
/// [`ChaosInterceptor`](super::ChaosLayer::interceptor). Cloning shares it.
///
/// # Examples
///
/// ```
/// use http::StatusCode;
/// use lift::middleware::chaos::ChaosLayer;
///
/// let chaos = ChaosLayer::builder().error(StatusCode::SERVICE_UNAVAILABLE, 1.0).enabled(false).build().unwrap();
/// let switch = chaos.switch();
/// assert!(!switch.is_on());
/// switch.enable();
/// assert!(switch.is_on());
/// ```
#[derive(Debug, Clone)]
pub struct ChaosSwitch {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    faults: RwLock<Arc<Faults>>,
    on: AtomicBool,
    dice: Dice,
    requests: AtomicU64,
    delayed: AtomicU64,
    errors: AtomicU64,
    exceptions: AtomicU64,
    denied: AtomicU64,
}

/// What a chaos layer injected since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChaosStats {
    /// Requests seen while the faults were on.
    pub requests: u64,
    /// Requests given added latency.
    pub delayed: u64,
    /// Requests answered with the injected error status.
    pub errors: u64,
    /// Requests failed with an injected exception.
    pub exceptions: u64,
    /// Downstream calls refused by the denylist.
    pub denied: u64,
}

impl ChaosSwitch {
    pub(crate) fn new(faults: Faults, seed: u64) -> Self {
        let on = faults.enabled && faults.configured();
        Self {
            shared: Arc::new(Shared {
                faults: RwLock::new(Arc::new(faults)),
                on: AtomicBool::new(on),
                dice: Dice::seeded(seed),
                requests: AtomicU64::new(0),
                delayed: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                exceptions: AtomicU64::new(0),
                denied: AtomicU64::new(0),
            }),
        }
    }

    /// Whether faults are being injected.
    pub fn is_on(&self) -> bool {
        self.shared.on.load(Ordering::Acquire)
    }

    /// The current faults.
    pub fn faults(&self) -> Arc<Faults> {
        Arc::clone(&self.shared.faults.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Replaces the faults (on or off as `faults` says) for the next request.
    pub fn set(&self, faults: Faults) {
        let on = faults.enabled && faults.configured();
        *self.shared.faults.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(faults);
        self.shared.on.store(on, Ordering::Release);
        if on {
            tracing::warn!(target: "lift::chaos", "chaos fault injection is on");
        }
    }

    /// Switches the configured faults on (nothing happens when none is configured).
    pub fn enable(&self) {
        self.set(Faults::clone(&self.faults()).switched(true));
    }

    /// Switches the faults off; they stay configured.
    pub fn disable(&self) {
        self.set(Faults::clone(&self.faults()).switched(false));
    }

    /// Refuses `host` (a host, `host:port` or URL) when the faults are on and it is on the
    /// denylist: for clients the SDK interceptor does not cover.
    ///
    /// # Errors
    /// [`DeniedHost`] naming the host.
    pub fn check_host(&self, host: &str) -> Result<(), DeniedHost> {
        if self.is_on() && self.faults().denylist.denies(host) {
            self.shared.denied.fetch_add(1, Ordering::Relaxed);
            return Err(DeniedHost::new(super::denylist::host_of(host)));
        }
        Ok(())
    }

    /// What was injected so far.
    pub fn stats(&self) -> ChaosStats {
        let s = &self.shared;
        ChaosStats {
            requests: s.requests.load(Ordering::Relaxed),
            delayed: s.delayed.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            exceptions: s.exceptions.load(Ordering::Relaxed),
            denied: s.denied.load(Ordering::Relaxed),
        }
    }

    /// Draws this request's faults.
    pub(crate) fn draw(&self) -> Draw {
        let s = &self.shared;
        let faults = self.faults();
        s.requests.fetch_add(1, Ordering::Relaxed);
        let delay = faults.latency.filter(|l| s.dice.hits(l.rate)).map(|l| l.draw(&s.dice));
        if delay.is_some() {
            s.delayed.fetch_add(1, Ordering::Relaxed);
        }
        let failure = if faults.error.is_some_and(|(_, rate)| s.dice.hits(rate)) {
            s.errors.fetch_add(1, Ordering::Relaxed);
            faults.error.map(|(status, _)| Failure::Status(status))
        } else if s.dice.hits(faults.exception_rate) {
            s.exceptions.fetch_add(1, Ordering::Relaxed);
            Some(Failure::Exception)
        } else {
            None
        };
        Draw { delay, failure }
    }
}

/// One request's faults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Draw {
    pub(crate) delay: Option<std::time::Duration>,
    pub(crate) failure: Option<Failure>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Failure {
    Status(http::StatusCode),
    Exception,
}
