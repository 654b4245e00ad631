//! The gate's verdicts and how they print: a table for people, JSON for machines.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::GateFailed;

/// The verdict on one bench group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// The overhead is within the budget.
    Pass,
    /// The overhead exceeds the budget.
    Fail,
    /// Criterion has no results for the group: a failure.
    Missing,
    /// Criterion has no results for the group, and the gate was told to allow that.
    Skipped,
    /// The group's results are older than the run: a failure, allowed or not.
    Stale,
}

impl Verdict {
    /// Whether this verdict fails the gate.
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Missing | Verdict::Stale)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Missing => "MISSING",
            Verdict::Skipped => "SKIPPED",
            Verdict::Stale => "STALE",
        })
    }
}

/// The medians of one group's latest run and what they imply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measurement {
    layer_median_ns: f64,
    bare_median_ns: f64,
    overhead_ns: f64,
    ratio: Option<f64>,
}

impl Measurement {
    /// From the medians of the layer and of the bare service, in nanoseconds.
    pub fn new(layer_median_ns: f64, bare_median_ns: f64) -> Self {
        let ratio = (bare_median_ns > 0.0).then(|| layer_median_ns / bare_median_ns);
        Self { layer_median_ns, bare_median_ns, overhead_ns: layer_median_ns - bare_median_ns, ratio }
    }

    /// Median time of the middleware over the no-op service.
    pub fn layer_median_ns(&self) -> f64 {
        self.layer_median_ns
    }

    /// Median time of the no-op service alone.
    pub fn bare_median_ns(&self) -> f64 {
        self.bare_median_ns
    }

    /// What the middleware adds: the difference of the medians (negative when noise wins).
    pub fn overhead_ns(&self) -> f64 {
        self.overhead_ns
    }

    /// Layer median over bare median (none when the bare median is zero).
    pub fn ratio(&self) -> Option<f64> {
        self.ratio
    }
}

/// A bench function of a group, measured in this run, against its median on the reference
/// machine: what the kernel adjustment and the speed scaling are made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    function: String,
    median_ns: f64,
    reference_ns: u64,
}

impl Reading {
    /// The group's bench function.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// Its median in this run.
    pub fn median_ns(&self) -> f64 {
        self.median_ns
    }

    /// Its median on the reference machine.
    pub fn reference_ns(&self) -> u64 {
        self.reference_ns
    }
}

/// The most the kernel's part of a budget counts for, as a multiple of its reference: a
/// kernel reading above it (a host so busy that a UDP send takes ten times as long) does not
/// widen the budget past `2 x reference`, so a layer cannot hide its own growth in it.
pub const KERNEL_CAP_FACTOR: f64 = 2.0;

/// How much a budget moved for the kernel work it includes (see [`Kernel`](super::Kernel)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelAdjustment {
    #[serde(flatten)]
    reading: Reading,
    counted_ns: f64,
}

impl KernelAdjustment {
    pub(super) fn new(kernel: &super::Kernel, median_ns: f64) -> Self {
        let reading = Reading {
            function: kernel.function().to_owned(),
            median_ns,
            reference_ns: kernel.reference_ns(),
        };
        let counted_ns = median_ns.min(kernel.reference_ns() as f64 * KERNEL_CAP_FACTOR);
        Self { reading, counted_ns }
    }

    /// What the kernel's part of the budget counts for: the median measured, at most
    /// [`KERNEL_CAP_FACTOR`] times the reference.
    pub fn counted_ns(&self) -> f64 {
        self.counted_ns
    }

    /// Whether the kernel measured slower than the cap lets the budget follow.
    pub fn capped(&self) -> bool {
        self.counted_ns < self.reading.median_ns
    }

    /// The function that measured the kernel's work alone, its median and its reference
    /// (the part of the budget it is).
    pub fn reading(&self) -> &Reading {
        &self.reading
    }

    /// What the budget moves by: this run's median minus the reference (negative when the
    /// kernel was faster than on the reference machine).
    pub fn shift_ns(&self) -> f64 {
        self.counted_ns - self.reading.reference_ns as f64
    }
}

/// How much a budget scaled for the machine's speed in this run (see
/// [`Calibration`](super::Calibration)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedAdjustment {
    readings: Vec<Reading>,
    max_factor: f64,
    measured_factor: f64,
    factor: f64,
}

impl SpeedAdjustment {
    /// From the medians of the calibration's functions, in its order.
    pub(super) fn new(calibration: &super::Calibration, medians_ns: &[f64]) -> Self {
        let readings: Vec<Reading> = calibration
            .functions()
            .iter()
            .zip(medians_ns)
            .map(|(function, &median_ns)| Reading {
                function: function.clone(),
                median_ns,
                reference_ns: calibration.reference_ns(),
            })
            .collect();
        let fastest = readings.iter().map(|r| r.median_ns).fold(f64::INFINITY, f64::min);
        let measured_factor = fastest / calibration.reference_ns() as f64;
        Self {
            readings,
            max_factor: calibration.max_factor(),
            measured_factor,
            factor: measured_factor.min(calibration.max_factor()),
        }
    }

    /// The calibration workload's medians beside the group, each with the reference median.
    pub fn readings(&self) -> &[Reading] {
        &self.readings
    }

    /// How much slower (above 1) or faster (below 1) than the reference the fastest reading
    /// was.
    pub fn measured_factor(&self) -> f64 {
        self.measured_factor
    }

    /// What the budget was scaled by: the measured factor, at most the calibration's
    /// `max_factor`.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Whether the machine measured slower than `max_factor` allows for, so the budget
    /// scaled by less than the machine slowed down.
    pub fn capped(&self) -> bool {
        self.measured_factor > self.max_factor
    }
}

/// A budget scaled for the machine's speed and moved by its kernel adjustment, when it has
/// them: what the gate compares the overhead with. The kernel's part is not scaled: its
/// median in the run stands in for it.
pub(super) fn effective_budget_ns(
    budget_ns: u64,
    kernel: Option<&KernelAdjustment>,
    speed: Option<&SpeedAdjustment>,
) -> f64 {
    let factor = speed.map_or(1.0, SpeedAdjustment::factor);
    match kernel {
        Some(kernel) => (budget_ns as f64 - kernel.reading.reference_ns as f64) * factor + kernel.counted_ns,
        None => budget_ns as f64 * factor,
    }
}

/// A layer against its twin in the same group and run: the ratio of their medians, each the
/// whole call over the same bare service (what a caller pays with one or the other).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TwinComparison {
    function: String,
    median_ns: f64,
    overhead_ns: f64,
    ratio: f64,
    max_ratio: f64,
}

impl TwinComparison {
    pub(super) fn new(twin: &super::Twin, median_ns: f64, bare_ns: f64, layer_median_ns: f64) -> Self {
        let overhead_ns = median_ns - bare_ns;
        let ratio = if median_ns > 0.0 { layer_median_ns / median_ns } else { f64::INFINITY };
        Self {
            function: twin.function().to_owned(),
            median_ns,
            overhead_ns,
            ratio,
            max_ratio: twin.max_ratio(),
        }
    }

    /// The twin's bench function.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The twin's median.
    pub fn median_ns(&self) -> f64 {
        self.median_ns
    }

    /// What the twin adds over the bare service.
    pub fn overhead_ns(&self) -> f64 {
        self.overhead_ns
    }

    /// The layer's median over the twin's.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The most the ratio may be.
    pub fn max_ratio(&self) -> f64 {
        self.max_ratio
    }

    /// Whether the layer is within its ratio of the twin.
    pub fn within(&self) -> bool {
        self.ratio <= self.max_ratio
    }
}

/// The gate's result for one bench group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    pub(super) group: String,
    pub(super) description: String,
    pub(super) budget_ns: u64,
    pub(super) verdict: Verdict,
    #[serde(flatten)]
    pub(super) measurement: Option<Measurement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) kernel: Option<KernelAdjustment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) speed: Option<SpeedAdjustment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) twin: Option<TwinComparison>,
    /// How many attempts measured the layer; its median is the median over them.
    pub(super) attempts: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) missing: Option<String>,
}

impl GroupReport {
    /// The criterion group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// What the group measures.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The budget, in nanoseconds of overhead, as the budgets file gives it.
    pub fn budget_ns(&self) -> u64 {
        self.budget_ns
    }

    /// The budget the verdict used: [`budget_ns`](Self::budget_ns) scaled for the machine's
    /// speed and moved by the kernel adjustment, when the budget has them.
    pub fn effective_budget_ns(&self) -> f64 {
        effective_budget_ns(self.budget_ns, self.kernel.as_ref(), self.speed.as_ref())
    }

    /// The machine-speed scaling, when the budgets have a calibration and it was measured.
    pub fn speed(&self) -> Option<&SpeedAdjustment> {
        self.speed.as_ref()
    }

    /// The kernel adjustment, when the budget has one and it was measured.
    pub fn kernel(&self) -> Option<&KernelAdjustment> {
        self.kernel.as_ref()
    }

    /// The verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The medians, when criterion has results.
    pub fn measurement(&self) -> Option<&Measurement> {
        self.measurement.as_ref()
    }

    /// The layer against its twin, when the budget has one and it was measured.
    pub fn twin(&self) -> Option<&TwinComparison> {
        self.twin.as_ref()
    }

    /// How many attempts measured the layer (its median is the median over them).
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// The effective budget over the overhead measured: how many times the layer could grow
    /// before it fails (none without a positive overhead).
    pub fn headroom(&self) -> Option<f64> {
        let overhead = self.measurement.as_ref()?.overhead_ns;
        (overhead > 0.0).then(|| self.effective_budget_ns() / overhead)
    }

    /// Why there is no measurement (`no results for ...: run cargo bench first`), or why
    /// the results were refused.
    pub fn missing(&self) -> Option<&str> {
        self.missing.as_deref()
    }
}

/// The gate's result: a verdict per budget, in budgets-file order.
///
/// `Display` prints the table; `serde::Serialize` gives the JSON of `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub(super) passed: bool,
    pub(super) budgets_file: PathBuf,
    pub(super) criterion_dir: PathBuf,
    pub(super) allow_missing: bool,
    pub(super) groups: Vec<GroupReport>,
}

impl Report {
    /// Whether no group is over budget (nor missing, unless missing results are allowed).
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// Every group's result.
    pub fn groups(&self) -> &[GroupReport] {
        &self.groups
    }

    /// One group's result.
    pub fn group(&self, name: &str) -> Option<&GroupReport> {
        self.groups.iter().find(|g| g.group == name)
    }

    /// The budgets file that was checked.
    pub fn budgets_file(&self) -> &Path {
        &self.budgets_file
    }

    /// The criterion directory the medians came from.
    pub fn criterion_dir(&self) -> &Path {
        &self.criterion_dir
    }

    /// `Ok` when the gate passed, else the groups that failed it.
    ///
    /// # Errors
    /// [`GateFailed`] naming the groups over budget and the groups without results.
    pub fn ensure_passed(&self) -> Result<(), GateFailed> {
        if self.passed {
            return Ok(());
        }
        let named =
            |verdict| self.groups.iter().filter(|g| g.verdict == verdict).map(|g| g.group.clone()).collect();
        Err(GateFailed {
            over_budget: named(Verdict::Fail),
            missing: named(Verdict::Missing),
            stale: named(Verdict::Stale),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEADER: [&str; 8] =
            ["bench", "layer median", "bare median", "overhead", "ratio", "speed", "budget", "verdict"];
        let rows: Vec<[String; 8]> = self
            .groups
            .iter()
            .map(|g| {
                let (layer, bare, overhead, ratio) = match &g.measurement {
                    Some(m) => (
                        format_ns(m.layer_median_ns),
                        format_ns(m.bare_median_ns),
                        format_ns(m.overhead_ns),
                        m.ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x")),
                    ),
                    None => ("-".into(), "-".into(), "-".into(), "-".into()),
                };
                [
                    g.group.clone(),
                    layer,
                    bare,
                    overhead,
                    ratio,
                    g.speed.as_ref().map_or_else(
                        || "-".to_owned(),
                        |s| format!("{:.2}x{}", s.factor, if s.capped() { "!" } else { "" }),
                    ),
                    if g.kernel.is_some() || g.speed.is_some() {
                        format!("{} *", format_ns(g.effective_budget_ns()))
                    } else {
                        format_budget(g.budget_ns)
                    },
                    g.verdict.to_string(),
                ]
            })
            .collect();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 8]| {
            // The bench name reads left-aligned, the numbers right-aligned.
            write!(f, "{:<w$}", cells[0], w = widths[0])?;
            for (cell, width) in cells.iter().zip(widths).skip(1).take(6) {
                write!(f, "  {cell:>width$}")?;
            }
            writeln!(f, "  {}", cells[7])
        };
        line(f, HEADER)?;
        for row in &rows {
            line(f, row.each_ref().map(String::as_str))?;
        }
        writeln!(f)?;
        if let Some(s) = self.groups.iter().find_map(|g| g.speed.as_ref()) {
            let medians: Vec<String> =
                s.readings.iter().map(|r| format!("median(<group>/{})", r.function)).collect();
            let fastest =
                if medians.len() == 1 { medians[0].clone() } else { format!("min({})", medians.join(", ")) };
            writeln!(
                f,
                "* budget = budget_ns x speed, speed = {fastest} / reference {}, at most {:.1}x: \
                 the calibration workload, run in each group, against its median on the reference machine",
                s.readings.first().map_or_else(String::new, |r| format_budget(r.reference_ns)),
                s.max_factor,
            )?;
        }
        for g in &self.groups {
            let Some(k) = &g.kernel else { continue };
            match &g.speed {
                None => writeln!(
                    f,
                    "* {}: budget {} + ({}/{} {} - reference {}) = {}: the kernel's part, measured in the same run",
                    g.group,
                    format_budget(g.budget_ns),
                    g.group,
                    k.reading.function,
                    format_ns(k.counted_ns),
                    format_budget(k.reading.reference_ns),
                    format_ns(g.effective_budget_ns()),
                )?,
                Some(s) => writeln!(
                    f,
                    "* {}: (budget {} - {} reference {}) x speed {:.2} + {}/{} {} = {}: the kernel's part, \
                     measured in the same run, is not scaled",
                    g.group,
                    format_budget(g.budget_ns),
                    k.reading.function,
                    format_budget(k.reading.reference_ns),
                    s.factor,
                    g.group,
                    k.reading.function,
                    format_ns(k.counted_ns),
                    format_ns(g.effective_budget_ns()),
                )?,
            }
            if k.capped() {
                writeln!(
                    f,
                    "! {}: {}/{} measured {}, counted at {} ({KERNEL_CAP_FACTOR:.0}x its reference): a busy \
                     kernel does not widen the budget further",
                    g.group,
                    g.group,
                    k.reading.function,
                    format_ns(k.reading.median_ns),
                    format_ns(k.counted_ns),
                )?;
            }
        }
        for g in &self.groups {
            let Some(t) = &g.twin else { continue };
            writeln!(
                f,
                "{} {}: layer {} is {:.2}x {}/{} {} (at most {:.2}x; overheads {} and {})",
                if t.within() { "*" } else { "!" },
                g.group,
                g.measurement.as_ref().map_or_else(|| "-".to_owned(), |m| format_ns(m.layer_median_ns)),
                t.ratio,
                g.group,
                t.function,
                format_ns(t.median_ns),
                t.max_ratio,
                g.measurement.as_ref().map_or_else(|| "-".to_owned(), |m| format_ns(m.overhead_ns)),
                format_ns(t.overhead_ns),
            )?;
        }
        for g in &self.groups {
            if let Some(s) = g.speed.as_ref().filter(|s| s.capped()) {
                writeln!(
                    f,
                    "! {}: the calibration ran {:.2}x slower than the reference at its fastest, beyond the \
                     {:.1}x the budgets scale by: its budget scaled by {:.1}x only",
                    g.group, s.measured_factor, s.max_factor, s.max_factor,
                )?;
            }
        }
        for g in &self.groups {
            if let Some(missing) = &g.missing {
                let allowed = if g.verdict == Verdict::Skipped { " (allowed)" } else { "" };
                writeln!(f, "{missing}{allowed}")?;
            }
        }
        let count = |v: Verdict| self.groups.iter().filter(|g| g.verdict == v).count();
        let attempts = self.groups.iter().map(|g| g.attempts).max().unwrap_or(0);
        writeln!(
            f,
            "overhead = median(<group>/layer) - median(<group>/bare) from criterion's results in {}{}",
            self.criterion_dir.display(),
            if attempts > 1 {
                format!(", each the median over the attempts that measured it (up to {attempts})")
            } else {
                String::new()
            }
        )?;
        write!(
            f,
            "{} passed, {} over budget, {} missing, {} stale, {} skipped: gate {}",
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Missing),
            count(Verdict::Stale),
            count(Verdict::Skipped),
            if self.passed { "passed" } else { "FAILED" }
        )
    }
}

/// A duration in nanoseconds in the unit that reads best.
fn format_ns(ns: f64) -> String {
    let abs = ns.abs();
    if abs < 1_000.0 {
        format!("{ns:.1} ns")
    } else if abs < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// A budget: whole nanoseconds below a microsecond, else as [`format_ns`].
fn format_budget(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else {
        format_ns(ns as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(format_ns(150.0), "150.0 ns");
        assert_eq!(format_ns(-3.25), "-3.2 ns");
        assert_eq!(format_ns(2_000.0), "2.00 µs");
        assert_eq!(format_ns(20_512.0), "20.51 µs");
        assert_eq!(format_ns(1_500_000.0), "1.50 ms");
        assert_eq!(format_budget(150), "150 ns");
        assert_eq!(format_budget(10_000), "10.00 µs");
    }

    #[test]
    fn measurement_is_the_difference_of_medians() {
        let m = Measurement::new(300.0, 100.0);
        assert_eq!((m.overhead_ns(), m.ratio()), (200.0, Some(3.0)));
        assert_eq!(Measurement::new(5.0, 0.0).ratio(), None);
    }
}
