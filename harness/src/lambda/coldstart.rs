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
    /// The round (0, 1, ...) of each successful run, in the order of `cold_start`: runs of
    /// two functions measured alternately pair up by round ([`paired_differences`]).
    pub rounds: Vec<usize>,
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

/// `a`'s cold start minus `b`'s, in milliseconds, for each round in which both started:
/// the two runs of a round are next to each other in time, so a slow spell of the host
/// weighs on both sides of a pair alike.
pub fn paired_differences(a: &ColdStarts, b: &ColdStarts) -> Vec<f64> {
    let of_b: BTreeMap<usize, Duration> =
        b.rounds.iter().copied().zip(b.cold_start.iter().copied()).collect();
    a.rounds
        .iter()
        .zip(&a.cold_start)
        .filter_map(|(round, start)| Some(ms(*start) - ms(*of_b.get(round)?)))
        .collect()
}

/// How much `a`'s cold start exceeds `b`'s: the median, over the rounds in which both
/// started, of `a`'s cold start minus `b`'s, in milliseconds. Decided on pairs rather than
/// on the difference of the two medians, so that a host that slows down for part of the run
/// moves both sides of every pair it slows, not one side's median more than the other's.
/// `None` when no round measured both.
pub fn excess_ms(a: &ColdStarts, b: &ColdStarts) -> Option<f64> {
    let leads = paired_differences(a, b);
    (!leads.is_empty()).then(|| crate::budget::median(&leads))
}

/// Whether `a`'s cold start exceeds `b`'s by at most `budget` ([`excess_ms`]). No pair
/// measured is not within any budget.
pub fn within_budget(a: &ColdStarts, b: &ColdStarts, budget: Duration) -> bool {
    excess_ms(a, b).is_some_and(|excess| excess <= ms(budget))
}

/// A budget set on a reference machine, moved to this host's speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledBudget {
    /// The budget on the reference machine, in milliseconds.
    pub reference_budget_ms: f64,
    /// How much slower (above 1) or faster (below 1) this host started the baseline than
    /// the reference machine did, within `[1 / cap, cap]`.
    pub speed: f64,
    /// The speed as measured, before the cap.
    pub measured_speed: f64,
    /// The budget here: `reference_budget_ms × speed`.
    pub budget_ms: f64,
}

/// Moves `budget_ms`, set on a machine where the baseline's median cold start was
/// `reference_ms`, to a host where it is `baseline_ms`: the budget times their ratio, the
/// ratio held within `[1 / max_scale, max_scale]`, as the time gate scales its budgets by
/// its calibration and caps the kernel's term at 2× its reference. Spawning a process, its
/// page faults and its first system calls are most of either function's cold start, and a
/// busy host slows them for both: on a host that started the bare function 2.7× slower than
/// the reference, payments' lead over it measured 2.2× the reference's. A host twice as
/// slow gets twice the budget, no more; one twice as fast, half.
pub fn scaled_budget(budget_ms: f64, baseline_ms: f64, reference_ms: f64, max_scale: f64) -> ScaledBudget {
    let cap = max_scale.max(1.0);
    let measured_speed =
        if reference_ms > 0.0 && baseline_ms > 0.0 { baseline_ms / reference_ms } else { 1.0 };
    let speed = measured_speed.clamp(1.0 / cap, cap);
    ScaledBudget { reference_budget_ms: budget_ms, speed, measured_speed, budget_ms: budget_ms * speed }
}

/// The order the functions start in, in round `round`: forwards in even rounds, backwards in
/// odd ones, so each of two functions goes first in half the rounds. A run that follows
/// another pays for what the one before it left (its sandbox killed and reaped, its pages
/// evicted, the host's caches turned over). With payments always first, the bare function
/// once measured a median of 14.08 ms to payments' 11.29 ms; alternating the order takes
/// whatever the order adds out of the lead, whichever way it leans.
pub fn round_order(round: usize, functions: usize) -> Vec<usize> {
    if round % 2 == 0 {
        (0..functions).collect()
    } else {
        (0..functions).rev().collect()
    }
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
    for round in 0..runs {
        for i in round_order(round, out.len()) {
            let stats = &mut out[i];
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
                    stats.rounds.push(round);
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
            rounds: (0..init_ms.len()).collect(),
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

    /// Each of two functions starts first in every other round; one alone is always first.
    #[test]
    fn each_function_goes_first_in_every_other_round() {
        let firsts: Vec<usize> = (0..6).map(|round| round_order(round, 2)[0]).collect();
        assert_eq!(firsts, [0, 1, 0, 1, 0, 1]);
        assert!((0..6).all(|round| round_order(round, 2).len() == 2));
        assert_eq!(round_order(3, 1), [0]);
    }

    /// A host that slows down partway through the run: the difference of the two medians
    /// takes one side's quick runs and the other's slow ones (here +6 ms against a 5 ms
    /// budget, though the pairs' median is 3), the pairs do not.
    #[test]
    fn the_excess_is_taken_pair_by_pair() {
        // The baseline's median falls among its quick runs, the app's among its slow ones.
        let bare = runs("bare", &[2, 2, 2, 2, 2, 2, 20, 20, 20, 20], &[0; 10], &[]);
        let app = runs("app", &[5, 5, 5, 5, 8, 22, 22, 22, 22, 22], &[0; 10], &[]);
        assert!(ms(app.cold_start_median()) - ms(bare.cold_start_median()) > 5.0);
        assert_eq!(excess_ms(&app, &bare), Some(3.0));
        assert!(within_budget(&app, &bare, Duration::from_millis(5)));
        // A lead in every pair is not averaged away by the host: 6 ms in each fails.
        let slower = runs("app", &[8, 8, 8, 8, 8, 8, 26, 26, 26, 26], &[0; 10], &[]);
        assert_eq!(excess_ms(&slower, &bare), Some(6.0));
        assert!(!within_budget(&slower, &bare, Duration::from_millis(5)));
    }

    /// A round in which one side failed pairs with nothing: the rest pair by round, not by
    /// position (by position, every pair after the gap would be a round apart).
    #[test]
    fn pairs_are_matched_by_round() {
        let mut bare = runs("bare", &[1, 2, 3, 4], &[0; 4], &[]);
        // The baseline's round 1 failed.
        bare.cold_start.remove(1);
        bare.rounds.remove(1);
        let app = runs("app", &[11, 12, 13, 14], &[0; 4], &[]);
        assert_eq!(paired_differences(&app, &bare), vec![10.0, 10.0, 10.0]);
        let none = ColdStarts { name: "none".to_owned(), ..ColdStarts::default() };
        assert_eq!(excess_ms(&app, &none), None);
        assert!(
            !within_budget(&app, &none, Duration::from_secs(3600)),
            "nothing compared is not within budget"
        );
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        // The budget gate's median, as `excess_ms` takes it: none of no lead.
        let median = |v: &[f64]| (!v.is_empty()).then(|| crate::budget::median(v));
        assert_eq!(median(&[3.0, -1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    /// The budget follows the host's speed, within the cap either way.
    #[test]
    fn the_budget_moves_with_the_hosts_speed_within_its_cap() {
        let same = scaled_budget(5.0, 2.3, 2.3, 2.0);
        assert_eq!((same.speed, same.budget_ms), (1.0, 5.0));
        let slower = scaled_budget(5.0, 3.45, 2.3, 2.0);
        assert!((slower.speed - 1.5).abs() < 1e-9 && (slower.budget_ms - 7.5).abs() < 1e-9, "{slower:?}");
        // A host 10x slower gets twice the budget, not ten times.
        let crawling = scaled_budget(5.0, 23.0, 2.3, 2.0);
        assert_eq!((crawling.speed, crawling.budget_ms), (2.0, 10.0));
        assert!((crawling.measured_speed - 10.0).abs() < 1e-9);
        // A faster host tightens it, to half at most.
        let faster = scaled_budget(5.0, 0.23, 2.3, 2.0);
        assert_eq!((faster.speed, faster.budget_ms), (0.5, 2.5));
        // A cap below 1 is no cap that loosens: it holds the budget as set.
        assert_eq!(scaled_budget(5.0, 23.0, 2.3, 0.5).budget_ms, 5.0);
        // Nothing measured, or no reference: the budget as set.
        assert_eq!(scaled_budget(5.0, 0.0, 2.3, 2.0).budget_ms, 5.0);
        assert_eq!(scaled_budget(5.0, 6.0, 0.0, 2.0).budget_ms, 5.0);
    }
}
