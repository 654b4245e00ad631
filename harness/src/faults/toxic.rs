//! What a [`FaultProxy`](super::FaultProxy) does to the bytes that pass through it.

use std::time::Duration;

/// Which way through the proxy a toxic acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client to upstream (requests).
    Upstream,
    /// Upstream to client (responses).
    Downstream,
    /// Both ways.
    Both,
}

impl Direction {
    /// Whether a toxic on `self` acts on bytes flowing `flow` (never [`Direction::Both`]).
    pub(crate) fn covers(self, flow: Direction) -> bool {
        self == Direction::Both || self == flow
    }
}

/// The kind of harm a toxic does.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ToxicKind {
    /// Delays every chunk by `delay` plus a uniform random `0..=jitter`, in order.
    Latency {
        /// The fixed part of the delay.
        #[serde(with = "millis")]
        delay: Duration,
        /// The random part, added to `delay`.
        #[serde(with = "millis")]
        jitter: Duration,
    },
    /// Accepts and holds: nothing passes, connections stay open, until the toxic goes. Held
    /// bytes pass afterwards, like TCP retransmitting once a route comes back.
    Blackhole,
    /// Resets connections (TCP RST): existing ones at once, new ones on accept.
    Reset,
    /// Limits throughput to `bytes_per_sec`.
    Bandwidth {
        /// The rate limit.
        bytes_per_sec: u64,
    },
    /// Holds data like [`ToxicKind::Blackhole`] and closes the connection `after` the toxic
    /// was set (or the connection opened, whichever is later).
    Timeout {
        /// How long a connection lives under the toxic.
        #[serde(with = "millis")]
        after: Duration,
    },
}

impl ToxicKind {
    /// A short name: `latency`, `blackhole`, `reset`, `bandwidth`, `timeout`.
    pub fn name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Blackhole => "blackhole",
            ToxicKind::Reset => "reset",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::Timeout { .. } => "timeout",
        }
    }
}

/// A toxic: a kind of harm, the direction it acts on, and the probability that it applies to
/// a given connection (rolled once per connection and toxic, as Toxiproxy's "toxicity").
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift_harness::faults::{Direction, Toxic};
///
/// let toxic = Toxic::latency(Duration::from_millis(200))
///     .jitter(Duration::from_millis(50))
///     .direction(Direction::Downstream)
///     .probability(0.5);
/// assert_eq!(toxic.name(), "latency-downstream");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Toxic {
    /// What it does.
    #[serde(flatten)]
    pub kind: ToxicKind,
    /// Which way it acts.
    pub direction: Direction,
    /// The probability in `0.0..=1.0` that it applies to a connection.
    pub probability: f64,
}

impl Toxic {
    /// A toxic of this kind on both directions, always applied.
    pub fn new(kind: ToxicKind) -> Self {
        Self { kind, direction: Direction::Both, probability: 1.0 }
    }

    /// Latency: `delay` per chunk, on the downstream direction (responses), like Toxiproxy.
    pub fn latency(delay: Duration) -> Self {
        Self::new(ToxicKind::Latency { delay, jitter: Duration::ZERO }).direction(Direction::Downstream)
    }

    /// Blackhole: nothing passes either way.
    pub fn blackhole() -> Self {
        Self::new(ToxicKind::Blackhole)
    }

    /// Reset: connections are reset.
    pub fn reset() -> Self {
        Self::new(ToxicKind::Reset)
    }

    /// Bandwidth limit on the downstream direction.
    pub fn bandwidth(bytes_per_sec: u64) -> Self {
        Self::new(ToxicKind::Bandwidth { bytes_per_sec: bytes_per_sec.max(1) })
            .direction(Direction::Downstream)
    }

    /// Timeout: data stops and connections close `after` this long.
    pub fn timeout(after: Duration) -> Self {
        Self::new(ToxicKind::Timeout { after })
    }

    /// Adds up to `jitter` of uniform random delay (latency toxics only; others ignore it).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        if let ToxicKind::Latency { jitter: j, .. } = &mut self.kind {
            *j = jitter;
        }
        self
    }

    /// Acts on this direction only.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Applies to a connection with this probability (clamped to `0.0..=1.0`).
    pub fn probability(mut self, probability: f64) -> Self {
        self.probability = if probability.is_nan() { 0.0 } else { probability.clamp(0.0, 1.0) };
        self
    }

    /// The key [`FaultProxy::set`](super::FaultProxy::set) replaces by: kind and direction,
    /// e.g. `blackhole-both`.
    pub fn name(&self) -> String {
        let direction = match self.direction {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::Both => "both",
        };
        format!("{}-{direction}", self.kind.name())
    }
}

mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_kind_direction_and_probability() {
        let t = Toxic::latency(Duration::from_millis(10)).jitter(Duration::from_millis(5)).probability(2.0);
        assert_eq!(
            t.kind,
            ToxicKind::Latency { delay: Duration::from_millis(10), jitter: Duration::from_millis(5) }
        );
        assert_eq!(t.direction, Direction::Downstream);
        assert_eq!(t.probability, 1.0);
        assert_eq!(Toxic::blackhole().probability(f64::NAN).probability, 0.0);
        assert_eq!(Toxic::reset().direction(Direction::Upstream).name(), "reset-upstream");
    }

    #[test]
    fn directions_cover_flows() {
        assert!(Direction::Both.covers(Direction::Upstream));
        assert!(Direction::Upstream.covers(Direction::Upstream));
        assert!(!Direction::Upstream.covers(Direction::Downstream));
    }
}
