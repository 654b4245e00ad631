//! Right-sizing (power tuning): from durations measured at several memory sizes, the
//! duration distribution and cost per invocation of each size, and three recommendations.
//!
//! - **cheapest**: the lowest mean cost per invocation (ties: the faster, then the smaller);
//! - **fastest**: the lowest median real duration (ties: the cheaper);
//! - **balanced**: the lowest `w · cost / max cost + (1 − w) · p50 / max p50` over the
//!   sizes, with `w` = [`DEFAULT_BALANCE_WEIGHT`] (0.5), as aws-lambda-power-tuning's
//!   `balanced` strategy weighs them (ties: the smaller).
//!
//! Cost per invocation is the mean billed duration × memory (GB) × the first-tier price per
//! GB-second, plus the price of one request: cost adds up over means, not medians.
//!
//! # Examples
//!
//! ```
//! use lift_monitoring::cost::rightsize::{recommend, SizeSamples};
//! use lift_monitoring::cost::{Arch, PriceTable};
//!
//! let prices = PriceTable::embedded();
//! let lambda = &prices.region("us-east-1")?.lambda;
//! let samples = vec![
//!     SizeSamples::new(128, vec![80.0; 5], vec![80; 5]),
//!     SizeSamples::new(1024, vec![10.0; 5], vec![10; 5]),
//! ];
//! let r = recommend(&samples, lambda.arch(Arch::X86_64), 0.5).unwrap();
//! assert_eq!(r.fastest, 1024);
//! # Ok::<(), lift_monitoring::cost::PriceError>(())
//! ```

use serde::{Deserialize, Serialize};

use super::LambdaArchPrices;

/// The weight of cost against speed in the balanced recommendation.
pub const DEFAULT_BALANCE_WEIGHT: f64 = 0.5;

/// What was measured at one memory size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeSamples {
    /// The memory size in MB.
    pub memory_mb: u32,
    /// Real durations in ms (from the `REPORT` lines).
    pub duration_ms: Vec<f64>,
    /// Billed durations in ms.
    pub billed_ms: Vec<u64>,
}

impl SizeSamples {
    /// Samples of one size.
    pub fn new(memory_mb: u32, duration_ms: Vec<f64>, billed_ms: Vec<u64>) -> Self {
        Self { memory_mb, duration_ms, billed_ms }
    }
}

/// One size's distribution and cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeSummary {
    /// The memory size in MB.
    pub memory_mb: u32,
    /// Invocations measured.
    pub invocations: usize,
    /// Real duration p50, p90, p99 (ms).
    pub duration_p50_ms: f64,
    /// p90.
    pub duration_p90_ms: f64,
    /// p99.
    pub duration_p99_ms: f64,
    /// Billed duration p50, p90, p99 (ms).
    pub billed_p50_ms: f64,
    /// p90.
    pub billed_p90_ms: f64,
    /// p99.
    pub billed_p99_ms: f64,
    /// Mean billed duration (ms).
    pub billed_mean_ms: f64,
    /// Mean cost of one invocation (duration and request).
    pub cost_per_invocation: f64,
}

/// The three recommendations, as memory sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Every size's summary, by memory.
    pub sizes: Vec<SizeSummary>,
    /// The cheapest size.
    pub cheapest: u32,
    /// The fastest size.
    pub fastest: u32,
    /// The balanced size.
    pub balanced: u32,
    /// The weight of cost used for `balanced`.
    pub balance_weight: f64,
}

/// `q` (0..=1) of `values` by nearest rank; 0 when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Summarises one size with `prices`.
pub fn summarize(samples: &SizeSamples, prices: &LambdaArchPrices) -> SizeSummary {
    let billed: Vec<f64> = samples.billed_ms.iter().map(|&b| b as f64).collect();
    let mean = if billed.is_empty() { 0.0 } else { billed.iter().sum::<f64>() / billed.len() as f64 };
    let gb = f64::from(samples.memory_mb) / 1024.0;
    SizeSummary {
        memory_mb: samples.memory_mb,
        invocations: samples.duration_ms.len(),
        duration_p50_ms: quantile(&samples.duration_ms, 0.5),
        duration_p90_ms: quantile(&samples.duration_ms, 0.9),
        duration_p99_ms: quantile(&samples.duration_ms, 0.99),
        billed_p50_ms: quantile(&billed, 0.5),
        billed_p90_ms: quantile(&billed, 0.9),
        billed_p99_ms: quantile(&billed, 0.99),
        billed_mean_ms: mean,
        cost_per_invocation: gb * mean / 1000.0 * prices.gb_second.first()
            + prices.requests_per_million / 1e6,
    }
}

/// Summarises every size and picks the cheapest, the fastest and the balanced one (see the
/// module docs for the rules); `None` when no size has samples.
pub fn recommend(
    samples: &[SizeSamples],
    prices: &LambdaArchPrices,
    balance_weight: f64,
) -> Option<Recommendation> {
    let mut sizes: Vec<SizeSummary> =
        samples.iter().filter(|s| !s.duration_ms.is_empty()).map(|s| summarize(s, prices)).collect();
    sizes.sort_by_key(|s| s.memory_mb);
    let w = balance_weight.clamp(0.0, 1.0);
    let cheapest = sizes
        .iter()
        .min_by(|a, b| {
            a.cost_per_invocation
                .total_cmp(&b.cost_per_invocation)
                .then(a.duration_p50_ms.total_cmp(&b.duration_p50_ms))
        })?
        .memory_mb;
    let fastest = sizes
        .iter()
        .min_by(|a, b| {
            a.duration_p50_ms
                .total_cmp(&b.duration_p50_ms)
                .then(a.cost_per_invocation.total_cmp(&b.cost_per_invocation))
        })?
        .memory_mb;
    let max_cost = sizes.iter().map(|s| s.cost_per_invocation).fold(0.0, f64::max);
    let max_p50 = sizes.iter().map(|s| s.duration_p50_ms).fold(0.0, f64::max);
    let norm = |v: f64, max: f64| if max > 0.0 { v / max } else { 0.0 };
    let score = |s: &SizeSummary| {
        w * norm(s.cost_per_invocation, max_cost) + (1.0 - w) * norm(s.duration_p50_ms, max_p50)
    };
    // min_by keeps the first of equal scores: the smallest size, as sizes are sorted.
    let balanced = sizes.iter().min_by(|a, b| score(a).total_cmp(&score(b)))?.memory_mb;
    Some(Recommendation { sizes, cheapest, fastest, balanced, balance_weight: w })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{Arch, PriceTable};

    fn prices() -> LambdaArchPrices {
        PriceTable::embedded().region("us-east-1").unwrap().lambda.arch(Arch::X86_64).clone()
    }

    /// A CPU-bound function: 20 ms of fixed work plus 1 s of CPU at 128 MB, shrinking with
    /// the CPU share up to one vCPU (1769 MB) and flat after.
    fn cpu_bound() -> Vec<SizeSamples> {
        let at = |mb: u32| {
            let ms = 20.0 + 1000.0 * 128.0 / f64::from(mb.min(1769));
            SizeSamples::new(mb, vec![ms, ms * 1.1, ms * 0.95], vec![ms.ceil() as u64; 3])
        };
        [128, 256, 512, 1024, 1769, 3008].into_iter().map(at).collect()
    }

    #[test]
    fn recommendations_on_a_cpu_bound_shape() {
        let r = recommend(&cpu_bound(), &prices(), DEFAULT_BALANCE_WEIGHT).unwrap();
        let by = |mb: u32| r.sizes.iter().find(|s| s.memory_mb == mb).unwrap().clone();
        assert_eq!(r.fastest, 1769, "3008 MB is as fast and dearer");
        assert!(by(3008).cost_per_invocation > by(1769).cost_per_invocation);
        // 128 MB: 0.125 GB × 1.020 s; the fixed 20 ms weighs least there.
        assert_eq!(r.cheapest, 128);
        let hand = 0.125 * 1.020 * 0.0000166667 + 0.20 / 1e6;
        assert!((by(128).cost_per_invocation - hand).abs() < 1e-15);
        assert_eq!(by(1769).billed_p50_ms, 93.0);
        // Scores (cost / max cost + p50 / max p50) / 2: 1024 MB 0.3463, 1769 MB 0.3480,
        // 512 MB 0.3901, 256 MB 0.5039, 3008 MB 0.5453, 128 MB 0.7446.
        assert_eq!(r.balanced, 1024);
    }

    #[test]
    fn an_io_bound_function_is_cheapest_and_balanced_at_the_smallest_size() {
        // Waiting on the network: the same 50 ms at every size.
        let flat: Vec<SizeSamples> = [128, 256, 512, 1024]
            .iter()
            .map(|&mb| SizeSamples::new(mb, vec![50.0; 4], vec![50; 4]))
            .collect();
        let r = recommend(&flat, &prices(), DEFAULT_BALANCE_WEIGHT).unwrap();
        assert_eq!(r.cheapest, 128);
        assert_eq!(r.fastest, 128, "ties in speed go to the cheaper");
        assert_eq!(r.balanced, 128);
    }

    #[test]
    fn the_weight_moves_the_balanced_pick_between_the_extremes() {
        let samples = vec![
            SizeSamples::new(128, vec![400.0], vec![400]),
            SizeSamples::new(512, vec![120.0], vec![120]),
            SizeSamples::new(2048, vec![40.0], vec![40]),
        ];
        let all_cost = recommend(&samples, &prices(), 1.0).unwrap();
        assert_eq!(all_cost.balanced, all_cost.cheapest);
        let all_speed = recommend(&samples, &prices(), 0.0).unwrap();
        assert_eq!(all_speed.balanced, all_speed.fastest);
        assert_eq!(all_speed.fastest, 2048);
        assert!(recommend(&[], &prices(), 0.5).is_none());
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.9), 5.0);
        assert_eq!(quantile(&v, 0.99), 5.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
