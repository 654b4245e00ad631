//! The bench history: each gate run's medians and speed factors, one JSON line per run.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{BudgetError, Report};

/// The environment variable naming the history file (`--history` wins over it).
pub const HISTORY_ENV: &str = "LIFT_BENCH_HISTORY";
/// The history file's name in the cargo target directory, when neither names another.
pub const DEFAULT_HISTORY_FILE: &str = "bench-history.jsonl";

/// The history file: `--history`, else `$LIFT_BENCH_HISTORY`, else
/// `<cargo target dir>/bench-history.jsonl`.
pub fn history_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os(HISTORY_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| super::criterion::target_directory().join(DEFAULT_HISTORY_FILE))
}

/// One group's reading in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The bench group.
    pub group: String,
    /// Median of `<group>/layer`, in ns.
    pub layer_median_ns: f64,
    /// Median of `<group>/bare`, in ns.
    pub bare_median_ns: f64,
    /// The overhead the gate reported: over several attempts the median of each attempt's
    /// `layer - bare`, which need not be the difference of the two medians above (none in
    /// records written before it was kept: then it is that difference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_ns: Option<f64>,
    /// What the budget was scaled by for the machine's speed in the run (none: the budgets
    /// file has no calibration).
    pub speed_factor: Option<f64>,
    /// The budget the gate compared with, in ns.
    pub effective_budget_ns: f64,
    /// PASS or FAIL.
    pub verdict: String,
}

impl HistoryEntry {
    /// The overhead the gate reported, in ns (`layer - bare` for older records).
    pub fn overhead_ns(&self) -> f64 {
        self.overhead_ns.unwrap_or(self.layer_median_ns - self.bare_median_ns)
    }

    /// The overhead at the reference machine's speed: `overhead / speed factor`, the gate's
    /// own model of a slower machine (it scales budgets the same way).
    pub fn normalized_overhead_ns(&self) -> f64 {
        self.overhead_ns() / self.speed_factor.filter(|f| *f > 0.0).unwrap_or(1.0)
    }
}

/// One run of the gate: when, and each measured group's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The run's id, in seconds since the epoch: its start (`--since`), else when its newest
    /// result was written, else when it was recorded. A gate that measures again within a
    /// run, or checks the same results again, records under the same id, and the last record
    /// of an id is the run's.
    pub run: u64,
    /// When the record was written, in seconds since the epoch.
    pub recorded_at: u64,
    /// The groups with a measurement.
    pub groups: Vec<HistoryEntry>,
}

impl HistoryRecord {
    /// The record of a gate report: every group with a measurement.
    pub fn from_report(report: &Report, run: u64, recorded_at: u64) -> Self {
        let groups = report
            .groups()
            .iter()
            .filter_map(|g| {
                let m = g.measurement()?;
                Some(HistoryEntry {
                    group: g.group().to_owned(),
                    layer_median_ns: m.layer_median_ns(),
                    bare_median_ns: m.bare_median_ns(),
                    overhead_ns: Some(m.overhead_ns()),
                    speed_factor: g.speed().map(|s| s.factor()),
                    effective_budget_ns: g.effective_budget_ns(),
                    verdict: g.verdict().to_string(),
                })
            })
            .collect();
        Self { run, recorded_at, groups }
    }
}

/// Appends one record, as one line, creating the file and its directory if needed.
///
/// # Errors
/// [`BudgetError::Io`] when the file cannot be written.
pub fn append(path: &Path, record: &HistoryRecord) -> Result<(), BudgetError> {
    let io = |source| BudgetError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut line = serde_json::to_string(record).map_err(|e| io(std::io::Error::other(e)))?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)
}

/// The runs of a history file, one per run id (the last record of each), oldest first.
///
/// # Errors
/// [`BudgetError::MissingFile`] when there is no history yet, [`BudgetError::Io`] when it
/// cannot be read, [`BudgetError::MalformedHistory`] naming the first bad line.
pub fn load(path: &Path) -> Result<Vec<HistoryRecord>, BudgetError> {
    if !path.exists() {
        return Err(BudgetError::MissingFile { what: "bench history", path: path.to_owned() });
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| BudgetError::Io { path: path.to_owned(), source })?;
    parse(&text, path)
}

/// [`load`] for text already read (`path` is for messages).
///
/// # Errors
/// [`BudgetError::MalformedHistory`] naming the first bad line.
pub fn parse(text: &str, path: &Path) -> Result<Vec<HistoryRecord>, BudgetError> {
    let mut runs: Vec<HistoryRecord> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: HistoryRecord = serde_json::from_str(line).map_err(|e| {
            BudgetError::MalformedHistory { path: path.to_owned(), line: n + 1, reason: e.to_string() }
        })?;
        match runs.iter_mut().find(|r| r.run == record.run) {
            Some(earlier) => *earlier = record,
            None => runs.push(record),
        }
    }
    runs.sort_by_key(|r| r.run);
    Ok(runs)
}
