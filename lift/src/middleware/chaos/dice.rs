//! Uniform draws for the fault rates: a SplitMix64 sequence over one atomic counter, so
//! concurrent requests draw without a lock and a seed repeats the sequence.

use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Debug)]
pub(crate) struct Dice {
    state: AtomicU64,
}

impl Dice {
    pub(crate) fn seeded(seed: u64) -> Self {
        Self { state: AtomicU64::new(seed) }
    }

    /// A seed that differs between processes and between layers.
    pub(crate) fn random_seed() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        hasher.finish()
    }

    /// The next draw in [0, 1).
    pub(crate) fn next(&self) -> f64 {
        let mut z = self.state.fetch_add(GOLDEN, Ordering::Relaxed).wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether an event of probability `rate` happens on this draw (never at 0, always at 1).
    pub(crate) fn hits(&self, rate: f64) -> bool {
        rate > 0.0 && (rate >= 1.0 || self.next() < rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_and_a_seed_repeats_them() {
        let dice = Dice::seeded(42);
        let draws: Vec<f64> = (0..100_000).map(|_| dice.next()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        for decile in 0..10 {
            let lo = f64::from(decile) / 10.0;
            let n = draws.iter().filter(|d| (lo..lo + 0.1).contains(*d)).count();
            // 10,000 expected; the binomial standard deviation is about 95.
            assert!((9_500..10_500).contains(&n), "decile {decile}: {n}");
        }
        let again = Dice::seeded(42);
        assert!(draws.iter().take(100).all(|d| *d == again.next()));
        assert_ne!(Dice::seeded(43).next(), draws[0]);
    }

    #[test]
    fn rate_zero_never_hits_and_rate_one_always_does() {
        let dice = Dice::seeded(1);
        assert!((0..10_000).all(|_| !dice.hits(0.0)));
        assert!((0..10_000).all(|_| dice.hits(1.0)));
    }
}
