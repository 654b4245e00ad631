//! Each bench's trend over the runs of the history, and sustained regressions smaller than
//! the budget.
//!
//! A group's value in a run is its overhead at the reference machine's speed,
//! `(median(layer) - median(bare)) / speed factor` ([`HistoryEntry::normalized_overhead_ns`]),
//! so that runs on a busier machine compare with runs on a quiet one. The group regressed
//! when each of its last [`TrendPolicy::recent_runs`] runs is more than
//! [`TrendPolicy::threshold`] over the baseline (the median of up to
//! [`TrendPolicy::baseline_runs`] runs before them) and more than
//! [`TrendPolicy::min_delta_ns`] above it: sustained, not one noisy run, and flagged
//! whether or not the runs stayed within their budget.

use std::fmt;

use serde::Serialize;

use super::history::{HistoryEntry, HistoryRecord};

/// What counts as a sustained regression.
///
/// # Examples
///
/// ```
/// use lift_harness::budget::TrendPolicy;
/// let policy = TrendPolicy::default();
/// assert_eq!((policy.recent_runs, policy.threshold), (3, 0.20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendPolicy {
    /// How many of the latest runs must all be over (3).
    pub recent_runs: usize,
    /// How far over the baseline, as a fraction (0.20: 20%).
    pub threshold: f64,
    /// How many runs before those make the baseline, at most (10).
    pub baseline_runs: usize,
    /// An increase smaller than this, in ns, is noise whatever its percentage (1 ns).
    pub min_delta_ns: f64,
}

impl Default for TrendPolicy {
    fn default() -> Self {
        Self { recent_runs: 3, threshold: 0.20, baseline_runs: 10, min_delta_ns: 1.0 }
    }
}

/// A group's verdict over the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrendVerdict {
    /// Not a sustained regression.
    Steady,
    /// Every recent run is over the baseline by more than the policy allows.
    Regression,
    /// Fewer runs than the recent runs plus one for a baseline.
    NotEnoughRuns,
}

/// One group's trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// The bench group.
    pub group: String,
    /// Its normalized overhead in every run that measured it, oldest first, in ns.
    pub values_ns: Vec<f64>,
    /// The median of the baseline runs, in ns (none: not enough runs).
    pub baseline_ns: Option<f64>,
    /// The recent runs' change over the baseline, the smallest of them, as a fraction.
    pub change: Option<f64>,
    /// The verdict.
    pub verdict: TrendVerdict,
}

/// The trends of every group in the history, in the order groups first appear.
pub fn trends(runs: &[HistoryRecord], policy: &TrendPolicy) -> Vec<Trend> {
    let mut groups: Vec<&str> = Vec::new();
    for entry in runs.iter().flat_map(|r| &r.groups) {
        if !groups.contains(&entry.group.as_str()) {
            groups.push(&entry.group);
        }
    }
    groups
        .into_iter()
        .map(|group| {
            let values_ns: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.groups.iter().find(|e| e.group == group))
                .map(HistoryEntry::normalized_overhead_ns)
                .collect();
            trend(group, values_ns, policy)
        })
        .collect()
}

fn trend(group: &str, values_ns: Vec<f64>, policy: &TrendPolicy) -> Trend {
    let recent_runs = policy.recent_runs.max(1);
    if values_ns.len() <= recent_runs {
        return Trend {
            group: group.to_owned(),
            values_ns,
            baseline_ns: None,
            change: None,
            verdict: TrendVerdict::NotEnoughRuns,
        };
    }
    let split = values_ns.len() - recent_runs;
    let mut baseline: Vec<f64> = values_ns[split.saturating_sub(policy.baseline_runs.max(1))..split].to_vec();
    baseline.sort_by(f64::total_cmp);
    let mid = baseline.len() / 2;
    let baseline_ns =
        if baseline.len() % 2 == 1 { baseline[mid] } else { (baseline[mid - 1] + baseline[mid]) / 2.0 };
    let recent = &values_ns[split..];
    let lowest = recent.iter().copied().fold(f64::INFINITY, f64::min);
    let over = |v: f64| {
        v > baseline_ns + baseline_ns.abs() * policy.threshold && v - baseline_ns > policy.min_delta_ns
    };
    let verdict =
        if recent.iter().all(|v| over(*v)) { TrendVerdict::Regression } else { TrendVerdict::Steady };
    let change = (baseline_ns.abs() > f64::EPSILON).then(|| (lowest - baseline_ns) / baseline_ns.abs());
    Trend { group: group.to_owned(), values_ns, baseline_ns: Some(baseline_ns), change, verdict }
}

/// The trends as a table, with a sparkline of every run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendReport {
    /// How many runs the history holds.
    pub runs: usize,
    /// The policy's numbers, for the header.
    #[serde(skip)]
    pub policy: TrendPolicy,
    /// Each group's trend.
    pub trends: Vec<Trend>,
}

impl TrendReport {
    /// The trends of `runs` under `policy`.
    pub fn new(runs: &[HistoryRecord], policy: TrendPolicy) -> Self {
        Self { runs: runs.len(), policy, trends: trends(runs, &policy) }
    }

    /// The groups flagged as regressed.
    pub fn regressions(&self) -> Vec<&str> {
        self.trends
            .iter()
            .filter(|t| t.verdict == TrendVerdict::Regression)
            .map(|t| t.group.as_str())
            .collect()
    }
}

fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) =
        values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    values
        .iter()
        .map(|v| {
            let at = if hi > lo { ((v - lo) / (hi - lo) * 7.0).round() as usize } else { 0 };
            BARS[at.min(7)]
        })
        .collect()
}

impl fmt::Display for TrendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.policy;
        writeln!(
            f,
            "bench trend over {} runs: overhead at the reference speed (overhead / speed factor); \
             a regression is the last {} runs all more than {:.0}% (and {} ns) over the median of up to {} runs before them",
            self.runs,
            p.recent_runs,
            p.threshold * 100.0,
            p.min_delta_ns,
            p.baseline_runs
        )?;
        writeln!(
            f,
            "{:<28} {:>4} {:>12} {:>12} {:>8}  {:<16} verdict",
            "group", "runs", "baseline", "latest", "change", "trend"
        )?;
        for t in &self.trends {
            let ns = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ns"));
            let change = t.change.map_or_else(|| "-".to_owned(), |c| format!("{:+.0}%", c * 100.0));
            let start = t.values_ns.len().saturating_sub(16);
            let verdict = match t.verdict {
                TrendVerdict::Steady => "steady".to_owned(),
                TrendVerdict::Regression => format!("REGRESSION (last {} runs over)", p.recent_runs),
                TrendVerdict::NotEnoughRuns => "not enough runs".to_owned(),
            };
            writeln!(
                f,
                "{:<28} {:>4} {:>12} {:>12} {:>8}  {:<16} {verdict}",
                t.group,
                t.values_ns.len(),
                ns(t.baseline_ns),
                ns(t.values_ns.last().copied()),
                change,
                sparkline(&t.values_ns[start..]),
            )?;
        }
        Ok(())
    }
}
