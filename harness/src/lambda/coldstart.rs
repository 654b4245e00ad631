//! Cold-start measurement: Init Duration and first-invocation latency of one binary, or of
//! two measured alternately in one run, with median, p90 and max.

use std::time::{Duration, Instant};

use super::logs::ms;
use super::{Function, LocalLambda};

/// The cold starts of one function.
#[derive(Debug, Clone, Default)]
pub struct ColdStarts {
    /// The function's name.
    pub name: String,
    /// Each run's Init Duration.
    pub init: Vec<Duration>,
    /// Each run's first-invocation latency (init plus the invocation, as the caller waits).
    pub first_invocation: Vec<Duration>,
    /// The largest Max Memory Used of any run, in MB.
    pub max_memory_used_mb: u64,
    /// Runs whose invocation failed.
    pub failures: usize,
}

/// `q` (0..=1) of `values`, by nearest rank.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl ColdStarts {
    /// The median Init Duration.
    pub fn init_median(&self) -> Duration {
        quantile(&self.init, 0.5)
    }

    /// One summary line.
    pub fn summary(&self) -> String {
        format!(
            "{}: init median {:.2} ms, p90 {:.2} ms, max {:.2} ms; first invocation median {:.2} ms, p90 {:.2} ms, max {:.2} ms; max memory used {} MB; {} runs, {} failed",
            self.name,
            ms(quantile(&self.init, 0.5)),
            ms(quantile(&self.init, 0.9)),
            ms(quantile(&self.init, 1.0)),
            ms(quantile(&self.first_invocation, 0.5)),
            ms(quantile(&self.first_invocation, 0.9)),
            ms(quantile(&self.first_invocation, 1.0)),
            self.max_memory_used_mb,
            self.init.len(),
            self.failures,
        )
    }
}

/// Measures `runs` cold starts of each function (alternately when there are two), invoking
/// each with `payload`.
pub async fn measure(
    functions: Vec<Function>,
    runs: usize,
    payload: &[u8],
) -> Result<Vec<ColdStarts>, super::FunctionConfigError> {
    let mut builder = LocalLambda::builder();
    for f in &functions {
        builder = builder.function(f.clone());
    }
    let lambda = builder.build()?;
    let mut out: Vec<ColdStarts> =
        functions.iter().map(|f| ColdStarts { name: f.name.clone(), ..ColdStarts::default() }).collect();
    for _ in 0..runs {
        for stats in &mut out {
            let started = Instant::now();
            let result = lambda.invoke(&stats.name, payload.to_vec()).await;
            let latency = started.elapsed();
            match result {
                Ok(resp) if resp.report.init_duration.is_some() => {
                    stats.init.push(resp.report.init_duration.unwrap_or_default());
                    stats.first_invocation.push(latency);
                    stats.max_memory_used_mb = stats.max_memory_used_mb.max(resp.report.max_memory_used_mb);
                    if resp.function_error.is_some() {
                        stats.failures += 1;
                    }
                }
                _ => stats.failures += 1,
            }
            // The sandbox goes idle once its runtime polls again; then it is killed, so the
            // next run is cold.
            lambda.settle(&stats.name, Duration::from_secs(2)).await;
            lambda.reset().await;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<Duration> = [5, 1, 4, 2, 3].into_iter().map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(3));
        assert_eq!(quantile(&v, 0.9), Duration::from_millis(5));
        assert_eq!(quantile(&v, 1.0), Duration::from_millis(5));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
