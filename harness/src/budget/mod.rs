//! The overhead budget gate: fails when a middleware costs more than its budget.
//!
//! Each bench group measures a middleware twice in the same run (see `benches/src/lib.rs`):
//! `bare`, the no-op service alone, and `layer`, the middleware over that same service.
//! `benches/budgets.toml` gives each group a budget in nanoseconds, and the gate compares
//!
//! ```text
//! overhead = median(<group>/layer) - median(<group>/bare)
//! ```
//!
//! from criterion's latest results (`<criterion dir>/<group>/<function>/new/estimates.json`)
//! with it. Criterion itself never fails on a regression; this gate does. A budget without
//! results fails the gate too, unless missing results are allowed (for benches not written
//! yet).
//!
//! A budget that includes work done by the kernel (X-Ray's UDP send) can name a bench
//! function of the group that measures that work alone, and its median on the reference
//! machine ([`Kernel`]); the budget then moves by the difference between the two:
//!
//! ```text
//! budget = budget_ns + median(<group>/<kernel>) - kernel_reference_ns
//! ```
//!
//! A shared machine also slows down as a whole, by up to 2.3 times for minutes at a time
//! when its host is busy. A budgets file with a `[calibration]` ([`Calibration`]) has every
//! group run a fixed workload that is not Lift's code first and last, and scales each budget
//! by how much slower or faster than on the reference machine the faster of the two ran, at
//! most `max_factor` times (the kernel's part, measured on its own, is not scaled):
//!
//! ```text
//! speed  = min(median(<group>/calibrate_before), median(<group>/calibrate_after)) / reference_ns
//! speed  = min(speed, max_factor)
//! budget = (budget_ns - kernel_reference_ns) * speed + min(median(<group>/<kernel>), 2 x kernel_reference_ns)
//! ```
//!
//! The kernel's reading counts at most [`KERNEL_CAP_FACTOR`] times its reference: a host so
//! busy that a UDP send takes ten times as long does not widen the budget past that.
//!
//! A budget may name a twin ([`Twin`]): another implementation of the same job (tower's own
//! layer) measured in the same group over the same bare service; the gate fails when
//! `median(layer) > max_twin_ratio x median(twin)`, a ratio in which the machine's speed
//! cancels out.
//!
//! Honest medians: with [`CriterionResults::with_attempts`] every run of the benches is one
//! attempt. Each attempt's figures come from that attempt's medians alone
//! ([`AttemptFigures`]): its overhead, its speed (its own calibration readings, the faster
//! one, capped), its kernel term (capped), its effective budget and its twin ratio. The
//! verdict is on the median over the attempts that measured the group of
//! `overhead / effective budget` (at most 1 passes) and of the twin ratio (at most its
//! limit), so neither a noisy nor a lucky attempt decides alone, and figures of different
//! attempts never mix (a bare service measured fast in one attempt is not set against a
//! layer measured slow in another, nor a calibration reading of one attempt against the
//! other reading of another). The report's figures are the medians of the attempts' own.
//! [`Report::remeasure`] lists the groups the CI measures again ([`RemeasurePolicy`]): those
//! that fail, and those whose first attempt came above 0.8 of their budget or twin limit,
//! until they have 3 attempts. With [`CriterionResults::fresh_since`], results older than
//! the run are refused ([`Verdict::Stale`]).
//!
//! The history ([`history`]): `lift-harness budget` appends each run's medians and speed
//! factors to a JSON-lines file, and `lift-harness budget --trend` ([`TrendReport`]) shows
//! each bench's trend over the runs and flags a sustained regression smaller than the
//! budget (the last 3 runs more than 20% over the baseline at the same speed).
//!
//! The instruction gate ([`InstructionBaseline`]) checks callgrind's instruction counts of
//! the resilience layers, their tower twins and the bare service against a committed
//! baseline; with [`InstructionCounts::fresh_since`], outputs older than the run are refused.
//!
//! # Examples
//!
//! ```no_run
//! use lift_harness::budget::{Budgets, CriterionResults, Gate};
//!
//! let budgets = Budgets::load("benches/budgets.toml")?;
//! let report = Gate::new(budgets, CriterionResults::locate()).check()?;
//! println!("{report}");
//! report.ensure_passed()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod budgets;
mod criterion;
mod error;
pub mod history;
mod instructions;
mod report;
mod trend;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use budgets::{
    Budget, Budgets, Calibration, Kernel, Twin, DEFAULT_BARE, DEFAULT_CALIBRATION, DEFAULT_LAYER,
};
pub(crate) use criterion::median;
pub use criterion::{directory_name, CriterionResults};
pub use error::{BudgetError, GateFailed};
pub use history::{HistoryEntry, HistoryRecord, DEFAULT_HISTORY_FILE, HISTORY_ENV};
pub use instructions::{
    AlsoTwin, BenchCount, InstructionBaseline, InstructionCounts, InstructionReport, LayerBaseline,
    LayerCount, TwinBaseline, TwinCount, DEFAULT_BASELINE_FILE, DEFAULT_CALLGRIND_SUBDIR,
};
pub use report::{
    AttemptFigures, GroupReport, KernelAdjustment, Measurement, Reading, Remeasure, RemeasurePolicy,
    RemeasureReason, Report, SpeedAdjustment, TwinComparison, Verdict, KERNEL_CAP_FACTOR,
};
pub use trend::{trends, Trend, TrendPolicy, TrendReport, TrendVerdict};

/// The budgets file `lift-harness budget` reads unless told otherwise.
pub const DEFAULT_BUDGETS_FILE: &str = "benches/budgets.toml";

/// Checks criterion's results against the budgets.
///
/// # Examples
///
/// ```no_run
/// use lift_harness::budget::{Budgets, CriterionResults, Gate};
///
/// let gate = Gate::new(Budgets::load("benches/budgets.toml")?, CriterionResults::new("target/criterion"))
///     .allow_missing(true);
/// assert!(gate.check()?.passed());
/// # Ok::<(), lift_harness::budget::BudgetError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gate {
    budgets: Budgets,
    results: CriterionResults,
    allow_missing: bool,
    remeasure: RemeasurePolicy,
}

impl Gate {
    /// A gate over these budgets and results; missing results fail it.
    pub fn new(budgets: Budgets, results: CriterionResults) -> Self {
        Self { budgets, results, allow_missing: false, remeasure: RemeasurePolicy::default() }
    }

    /// Whether a budget without criterion results is skipped instead of failing the gate.
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Which groups the report lists to measure again ([`Report::remeasure`]); the default
    /// policy unless told otherwise.
    pub fn remeasure_policy(mut self, policy: RemeasurePolicy) -> Self {
        self.remeasure = policy;
        self
    }

    /// Reads the medians and gives a verdict per budget.
    ///
    /// # Errors
    /// [`BudgetError::NoCriterionDir`] when the criterion directory does not exist (nothing
    /// was benched, so even allowed missing results cannot pass), and
    /// [`BudgetError::MalformedEstimates`] or [`BudgetError::Io`] when results cannot be
    /// read. Benches over budget or without results are verdicts in the report, not errors.
    pub fn check(&self) -> Result<Report, BudgetError> {
        if !self.results.dir().is_dir() {
            return Err(BudgetError::NoCriterionDir { path: self.results.dir().to_owned() });
        }
        let mut groups = Vec::with_capacity(self.budgets.len());
        for budget in &self.budgets {
            groups.push(self.check_one(budget)?);
        }
        Ok(Report {
            passed: !groups.iter().any(|g| g.verdict.fails()),
            budgets_file: self.budgets.path().to_owned(),
            criterion_dir: self.results.dir().to_owned(),
            allow_missing: self.allow_missing,
            remeasure: groups.iter().filter_map(|g| g.remeasure(&self.remeasure)).collect(),
            groups,
        })
    }

    fn check_one(&self, budget: &Budget) -> Result<GroupReport, BudgetError> {
        // Every function the group's figures need, read attempt by attempt: the layer first,
        // so a group nothing measured is missing its layer.
        let calibration = self.budgets.calibration();
        let mut functions = vec![budget.layer_function(), budget.bare_function()];
        functions.extend(budget.kernel().map(Kernel::function));
        functions.extend(calibration.into_iter().flat_map(|c| c.functions().iter().map(String::as_str)));
        functions.extend(budget.twin().map(Twin::function));
        let rows = match self.results.group_medians(budget.group(), &functions) {
            Ok(rows) => rows,
            Err(err @ (BudgetError::MissingResults { .. } | BudgetError::StaleResults { .. })) => {
                let verdict = match err {
                    BudgetError::StaleResults { .. } => Verdict::Stale,
                    _ if self.allow_missing => Verdict::Skipped,
                    _ => Verdict::Missing,
                };
                let attempts =
                    self.results.medians_ns(budget.group(), budget.layer_function()).map_or(0, |m| m.len());
                return Ok(GroupReport::unmeasured(budget, verdict, attempts, err.to_string()));
            }
            Err(err) => return Err(err),
        };
        let per_attempt = rows
            .into_iter()
            .map(|row| {
                let mut medians = row.medians_ns.into_iter();
                let mut next = || medians.next().expect("one median per function asked for");
                let (layer, bare) = (next(), next());
                let kernel = budget.kernel().map(|kernel| KernelAdjustment::new(kernel, next()));
                let speed = calibration.map(|calibration| {
                    let readings: Vec<f64> = calibration.functions().iter().map(|_| next()).collect();
                    SpeedAdjustment::new(calibration, &readings)
                });
                let twin = budget.twin().map(|twin| TwinComparison::new(twin, next(), bare, layer));
                AttemptFigures::new(row.attempt, budget.budget_ns(), layer, bare, kernel, speed, twin)
            })
            .collect();
        Ok(GroupReport::measured(budget, per_attempt))
    }
}

/// `lift-harness budget`: checks the budgets, prints the table, writes the JSON report when
/// asked, and fails when the gate fails.
///
/// `criterion_dir` defaults to [`CriterionResults::locate`]; `attempts` reads every attempt's
/// results instead ([`CriterionResults::with_attempts`]) and the JSON report then lists the
/// groups to measure again ([`Report::remeasure`]); `since` refuses results written
/// before it ([`CriterionResults::fresh_since`]). With `history`, the run's medians and
/// speed factors are appended there ([`history::append`]), under the run id `since` (so the
/// gate's retries within a run count once), else the time the newest result it read was
/// written (so checking the same results again records no second run), else the time of
/// the check.
///
/// # Errors
/// A [`BudgetError`] when the inputs cannot be read or the history cannot be written,
/// [`GateFailed`] when a bench is over budget or has no results (unless `allow_missing`),
/// an I/O error when the JSON report cannot be written.
pub fn run(
    budgets_file: &Path,
    criterion_dir: Option<PathBuf>,
    allow_missing: bool,
    json: Option<&Path>,
    attempts: Option<PathBuf>,
    since: Option<std::time::SystemTime>,
    history: Option<&Path>,
) -> anyhow::Result<()> {
    let budgets = Budgets::load(budgets_file)?;
    let mut results = criterion_dir.map_or_else(CriterionResults::locate, CriterionResults::new);
    if let Some(attempts) = attempts {
        results = results.with_attempts(attempts);
    }
    if let Some(since) = since {
        results = results.fresh_since(since);
    }
    let measured_at = results.newest_write();
    let report = Gate::new(budgets, results).allow_missing(allow_missing).check()?;
    println!("{report}");
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).context("serializing the budget report")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("writing the budget report to {}", path.display()))?;
    }
    if let Some(path) = history {
        let secs =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let now = secs(std::time::SystemTime::now());
        let record = HistoryRecord::from_report(&report, since.or(measured_at).map_or(now, secs), now);
        history::append(path, &record)?;
    }
    report.ensure_passed()?;
    Ok(())
}

/// `lift-harness budget --trend`: prints each bench's trend over the history's runs, and
/// fails when a group regressed if `fail_on_regression`.
///
/// # Errors
/// A [`BudgetError`] when the history cannot be read; an error naming the regressed groups
/// when `fail_on_regression` and some did.
pub fn run_trend(history: &Path, policy: TrendPolicy, fail_on_regression: bool) -> anyhow::Result<()> {
    let runs = history::load(history)?;
    let report = TrendReport::new(&runs, policy);
    println!("history: {}", history.display());
    print!("{report}");
    let regressed = report.regressions();
    if !regressed.is_empty() {
        let message = format!("sustained regression: {}", regressed.join(", "));
        if fail_on_regression {
            anyhow::bail!(message);
        }
        eprintln!("warning: {message}");
    }
    Ok(())
}

/// `lift-harness budget --instructions`: checks the instruction counts against the baseline,
/// prints the table, and fails when a layer rose above it or costs too much against its
/// twin, or bare or a twin rose above its count; with `update`, rewrites the baseline's
/// counts instead.
///
/// `callgrind_dir` defaults to [`DEFAULT_CALLGRIND_SUBDIR`] under the cargo target directory;
/// `since` refuses outputs written before it ([`InstructionCounts::fresh_since`]), in a check
/// and in an update alike.
///
/// # Errors
/// A [`BudgetError`] when the inputs cannot be read or are not one plausible count per
/// bench; an error naming the failed layers and benches when the gate fails.
pub fn run_instructions(
    baseline_file: &Path,
    callgrind_dir: Option<PathBuf>,
    update: bool,
    since: Option<std::time::SystemTime>,
) -> anyhow::Result<()> {
    let baseline = InstructionBaseline::load(baseline_file)?;
    let dir = callgrind_dir.unwrap_or_else(|| criterion::target_directory().join(DEFAULT_CALLGRIND_SUBDIR));
    let mut counts = InstructionCounts::new(dir);
    if let Some(since) = since {
        counts = counts.fresh_since(since);
    }
    if update {
        let text = std::fs::read_to_string(baseline_file)
            .with_context(|| format!("reading {}", baseline_file.display()))?;
        let updated = InstructionBaseline::updated(&text, &baseline, &counts)?;
        std::fs::write(baseline_file, updated)
            .with_context(|| format!("writing {}", baseline_file.display()))?;
        println!("updated {} from {}", baseline_file.display(), counts.dir().display());
        return Ok(());
    }
    let report = baseline.check(&counts)?;
    println!("{report}");
    if !report.passed {
        anyhow::bail!("instruction gate failed: {}", report.failed().join(", "));
    }
    Ok(())
}
