//! Cold-start measurement: what the first request to a new sandbox costs, as its caller sees
//! it inside Lambda: Init Duration plus the first invocation's Duration (setup an app defers
//! from init to its first request is counted either way), of one binary or of two measured
//! alternately in one run, with median, p90 and max of each part.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::logs::ms;
use super::{Function, LocalLambda};

/// The cold starts of one function.
#[derive(Debug, Clone, Default)]
pub struct ColdStarts {
    /// The function's name.
    pub name: String,
    /// Each successful run's cold start: its Init Duration plus its first invocation's
    /// Duration.
    pub cold_start: Vec<Duration>,
    /// Each run's Init Duration.
    pub init: Vec<Duration>,
    /// Each run's first invocation's Duration (the REPORT's, after init).
    pub first_duration: Vec<Duration>,
    /// Each run's first-invocation latency (init plus the invocation, as the caller waits).
    pub first_invocation: Vec<Duration>,
    /// How many answers carried each HTTP status (answers shaped as API Gateway responses,
    /// with a `statusCode`).
    pub statuses: BTreeMap<u16, usize>,
    /// The largest Max Memory Used of any run, in MB.
    pub max_memory_used_mb: u64,
    /// Runs whose invocation failed (an init or function error, or no answer): counted
    /// here and in no timing above.
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

    /// The median cold start (Init Duration plus the first invocation's Duration).
    pub fn cold_start_median(&self) -> Duration {
        quantile(&self.cold_start, 0.5)
    }

    /// The median Duration of the first invocation.
    pub fn first_duration_median(&self) -> Duration {
        quantile(&self.first_duration, 0.5)
    }

    /// Answers whose HTTP status is not `expected`, or that carry no status at all.
    pub fn answers_other_than(&self, expected: u16) -> usize {
        let with_status: usize = self.statuses.values().sum();
        let other: usize = self.statuses.iter().filter(|(s, _)| **s != expected).map(|(_, n)| n).sum();
        other + self.cold_start.len().saturating_sub(with_status)
    }

    /// Answers with an HTTP status of 400 or more: the event was refused, so the run measured
    /// the refusal rather than the handler.
    pub fn refused(&self) -> usize {
        self.statuses.iter().filter(|(s, _)| **s >= 400).map(|(_, n)| n).sum()
    }

    /// One summary line.
    pub fn summary(&self) -> String {
        let part = |v: &[Duration]| {
            format!(
                "median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
                ms(quantile(v, 0.5)),
                ms(quantile(v, 0.9)),
                ms(quantile(v, 1.0))
            )
        };
        let statuses = if self.statuses.is_empty() {
            "no HTTP statuses".to_owned()
        } else {
            let each: Vec<String> = self.statuses.iter().map(|(s, n)| format!("{s} x{n}")).collect();
            format!("answers {}", each.join(", "))
        };
        format!(
            "{}: cold start (init + first invocation) {}; init {}; first invocation {}; caller's wait {}; {statuses}; max memory used {} MB; {} runs, {} failed",
            self.name,
            part(&self.cold_start),
            part(&self.init),
            part(&self.first_duration),
            part(&self.first_invocation),
            self.max_memory_used_mb,
            self.init.len() + self.failures,
            self.failures,
        )
    }
}

/// Whether `a`'s median cold start (init plus the first invocation) is within `budget` of
/// `b`'s.
pub fn within_budget(a: &ColdStarts, b: &ColdStarts, budget: Duration) -> bool {
    a.cold_start_median() <= b.cold_start_median() + budget
}

/// Measures `runs` cold starts of each function (alternately when there are two), invoking
/// each with `payload`: an event the function answers as it would a user's first request,
/// or the run measures something else (an app with auth refuses an event without
/// credentials before its handler runs; [`ColdStarts::refused`] counts such answers).
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
                // A run that failed is counted, not timed: how fast a start crashes says
                // nothing of how fast it starts, and a median of crashes is no baseline.
                Ok(resp) if resp.report.init_duration.is_some() && resp.function_error.is_none() => {
                    let init = resp.report.init_duration.unwrap_or_default();
                    stats.init.push(init);
                    stats.first_duration.push(resp.report.duration);
                    stats.cold_start.push(init + resp.report.duration);
                    stats.first_invocation.push(latency);
                    if let Some(status) = resp.json()["statusCode"].as_u64() {
                        *stats.statuses.entry(u16::try_from(status).unwrap_or(u16::MAX)).or_default() += 1;
                    }
                    stats.max_memory_used_mb = stats.max_memory_used_mb.max(resp.report.max_memory_used_mb);
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

    fn runs(name: &str, init_ms: &[u64], first_ms: &[u64], statuses: &[(u16, usize)]) -> ColdStarts {
        let d = |v: &[u64]| v.iter().copied().map(Duration::from_millis).collect::<Vec<_>>();
        ColdStarts {
            name: name.to_owned(),
            cold_start: init_ms.iter().zip(first_ms).map(|(i, f)| Duration::from_millis(i + f)).collect(),
            init: d(init_ms),
            first_duration: d(first_ms),
            statuses: statuses.iter().copied().collect(),
            ..ColdStarts::default()
        }
    }

    #[test]
    fn the_budget_counts_setup_deferred_to_the_first_invocation() {
        let bare = runs("bare", &[2, 2, 2], &[1, 1, 1], &[]);
        // The same init, but 40 ms of setup in the first request.
        let deferred = runs("app", &[2, 2, 2], &[41, 41, 41], &[]);
        assert!(!within_budget(&deferred, &bare, Duration::from_millis(5)));
        assert!(within_budget(&deferred, &bare, Duration::from_millis(45)));
        assert_eq!(deferred.cold_start_median(), Duration::from_millis(43));
        let line = deferred.summary();
        assert!(line.contains("cold start (init + first invocation) median 43.00 ms"), "{line}");
        assert!(
            line.contains("init median 2.00 ms") && line.contains("first invocation median 41.00 ms"),
            "{line}"
        );
    }

    #[test]
    fn refused_answers_are_counted() {
        let app = runs("app", &[1, 1, 1], &[1, 1, 1], &[(401, 2), (200, 1)]);
        assert_eq!(app.refused(), 2);
        assert_eq!(app.answers_other_than(200), 2);
        let plain = runs("plain", &[1, 1], &[1, 1], &[]);
        assert_eq!((plain.refused(), plain.answers_other_than(200)), (0, 2));
        assert!(app.summary().contains("answers 200 x1, 401 x2"), "{}", app.summary());
    }
}
