//! What chaos injects: one validated set of faults.

use std::time::Duration;

use http::StatusCode;

use super::dice::Dice;
use super::Denylist;

/// A set of faults and whether it is on; built by [`ChaosBuilder`](super::ChaosBuilder)
/// (validated there) and swapped at run time through a [`ChaosSwitch`](super::ChaosSwitch).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    pub(crate) enabled: bool,
    pub(crate) latency: Option<Latency>,
    pub(crate) error: Option<(StatusCode, f64)>,
    pub(crate) exception_rate: f64,
    pub(crate) denylist: Denylist,
}

/// Added latency: uniform in `min..=max`, on a share `rate` of requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latency {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) rate: f64,
}

impl Latency {
    pub(crate) fn draw(&self, dice: &Dice) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        self.min + (self.max - self.min).mul_f64(dice.next())
    }
}

impl Faults {
    /// No fault, off.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether the faults are switched on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether any fault is configured, on or off.
    pub fn configured(&self) -> bool {
        self.latency.is_some()
            || self.error.is_some()
            || self.exception_rate > 0.0
            || !self.denylist.is_empty()
    }

    /// The added latency's bounds and rate, if any.
    pub fn latency(&self) -> Option<(Duration, Duration, f64)> {
        self.latency.map(|l| (l.min, l.max, l.rate))
    }

    /// The injected error status and its rate, if any.
    pub fn error(&self) -> Option<(StatusCode, f64)> {
        self.error
    }

    /// The share of requests whose handler fails with an exception.
    pub fn exception_rate(&self) -> f64 {
        self.exception_rate
    }

    /// The hosts downstream calls may not reach.
    pub fn denylist(&self) -> &Denylist {
        &self.denylist
    }

    /// The same faults, switched on or off.
    pub fn switched(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }
}
