//! Local sampling (a reservoir per second plus a fixed rate) and id generation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The local rule used when the caller left the decision open: take the first
/// `reservoir_per_second` requests of each second, then `fixed_rate` of the rest.
///
/// The default is X-Ray's own default rule: 1 per second and 5 %.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::SamplingRule;
/// let rule = SamplingRule::new(10, 0.01);
/// assert_eq!(SamplingRule::default(), SamplingRule::new(1, 0.05));
/// # let _ = rule;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingRule {
    /// Requests sampled per second before the rate applies.
    pub reservoir_per_second: u32,
    /// The share of the other requests that is sampled (0.0–1.0).
    pub fixed_rate: f64,
}

impl SamplingRule {
    /// A rule with a reservoir and a rate.
    pub fn new(reservoir_per_second: u32, fixed_rate: f64) -> Self {
        Self { reservoir_per_second, fixed_rate }
    }
}

impl Default for SamplingRule {
    fn default() -> Self {
        Self::new(1, 0.05)
    }
}

/// The rule with its per-second reservoir, shared by every clone of the layer.
#[derive(Debug)]
pub(crate) struct Sampler {
    rule: SamplingRule,
    /// (second, requests taken from the reservoir in it)
    reservoir: Mutex<(u64, u32)>,
}

impl Sampler {
    pub(crate) fn new(rule: SamplingRule) -> Self {
        Self { rule, reservoir: Mutex::new((0, 0)) }
    }

    /// Decides for a request at `now_secs`, drawing from `ids` for the rate.
    pub(crate) fn decide(&self, now_secs: u64, ids: &IdGenerator) -> bool {
        {
            let mut r = self.reservoir.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if r.0 != now_secs {
                *r = (now_secs, 0);
            }
            if r.1 < self.rule.reservoir_per_second {
                r.1 += 1;
                return true;
            }
        }
        ids.unit() < self.rule.fixed_rate
    }
}

/// Fast random ids (splitmix64); X-Ray ids need to be unique, not secret.
#[derive(Debug)]
pub(crate) struct IdGenerator(AtomicU64);

impl IdGenerator {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(uuid::Uuid::new_v4().as_u64_pair().0))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self.0.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1).
    pub(crate) fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A segment id that is never zero.
    pub(crate) fn segment_id(&self) -> super::SegmentId {
        super::SegmentId::new(self.next_u64().max(1))
    }

    /// A new trace id starting now.
    pub(crate) fn trace_id(&self) -> super::TraceId {
        let random = u128::from(self.next_u64()) << 32 | u128::from(self.next_u64() >> 32);
        super::TraceId::from_parts(now_secs() as u32, random)
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservoir_then_rate() {
        let ids = IdGenerator::new();
        let never = Sampler::new(SamplingRule::new(2, 0.0));
        let taken: Vec<bool> = (0..5).map(|_| never.decide(100, &ids)).collect();
        assert_eq!(taken, [true, true, false, false, false]);
        assert!(never.decide(101, &ids), "a new second refills the reservoir");
        let always = Sampler::new(SamplingRule::new(0, 1.0));
        assert!((0..100).all(|_| always.decide(5, &ids)));
        let some = Sampler::new(SamplingRule::new(0, 0.05));
        let n = (0..20_000).filter(|_| some.decide(5, &ids)).count();
        assert!((600..1400).contains(&n), "about 5 % of 20000, got {n}");
    }

    #[test]
    fn ids_are_well_formed() {
        let ids = IdGenerator::new();
        let id = ids.trace_id().to_string();
        assert!(id.len() == 35 && id.parse::<super::super::TraceId>().is_ok(), "{id}");
        assert_ne!(ids.segment_id(), ids.segment_id());
    }
}
