//! The gate's verdicts and how they print: a table for people, JSON for machines.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::criterion::median;
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

    /// The medians over attempts of each attempt's layer and bare medians, overhead and
    /// ratio: with one attempt, [`new`](Self::new).
    fn median_of(attempts: &[AttemptFigures]) -> Self {
        let ratios: Vec<f64> =
            attempts.iter().filter(|a| a.bare_ns > 0.0).map(|a| a.layer_ns / a.bare_ns).collect();
        Self {
            layer_median_ns: median_by(attempts, |a| a.layer_ns),
            bare_median_ns: median_by(attempts, |a| a.bare_ns),
            overhead_ns: median_by(attempts, |a| a.overhead_ns),
            ratio: (ratios.len() == attempts.len()).then(|| median(&ratios)),
        }
    }

    /// Median time of the middleware over the no-op service.
    pub fn layer_median_ns(&self) -> f64 {
        self.layer_median_ns
    }

    /// Median time of the no-op service alone.
    pub fn bare_median_ns(&self) -> f64 {
        self.bare_median_ns
    }

    /// What the middleware adds: the difference of the medians (negative when noise wins);
    /// over several attempts, the median of each attempt's difference.
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

    /// The kernel's medians over attempts: its reading and what it counted for, each the
    /// median of the attempts' (`attempts` is never empty).
    fn median_of(attempts: &[&Self]) -> Self {
        let first = attempts[0];
        Self {
            reading: Reading {
                function: first.reading.function.clone(),
                median_ns: median(&attempts.iter().map(|k| k.reading.median_ns).collect::<Vec<_>>()),
                reference_ns: first.reading.reference_ns,
            },
            counted_ns: median(&attempts.iter().map(|k| k.counted_ns).collect::<Vec<_>>()),
        }
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

    /// The speed's medians over attempts: each reading's, the measured factor's and the
    /// factor's, the factors being each attempt's own (its faster reading, capped), never
    /// one made of readings from different attempts (`attempts` is never empty).
    fn median_of(attempts: &[&Self]) -> Self {
        let first = attempts[0];
        let readings = (0..first.readings.len())
            .map(|i| Reading {
                function: first.readings[i].function.clone(),
                median_ns: median(&attempts.iter().map(|s| s.readings[i].median_ns).collect::<Vec<_>>()),
                reference_ns: first.readings[i].reference_ns,
            })
            .collect();
        Self {
            readings,
            max_factor: first.max_factor,
            measured_factor: median(&attempts.iter().map(|s| s.measured_factor).collect::<Vec<_>>()),
            factor: median(&attempts.iter().map(|s| s.factor).collect::<Vec<_>>()),
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

/// The overhead as a fraction of the effective budget: at most 1 is within it. A budget of
/// 0 or less (a calibration reading of 0) leaves no room: any overhead above 0 is over it.
fn budget_fraction(overhead_ns: f64, effective_budget_ns: f64) -> f64 {
    if effective_budget_ns > 0.0 {
        overhead_ns / effective_budget_ns
    } else if overhead_ns > 0.0 {
        f64::INFINITY
    } else {
        0.0
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

    /// The twin's medians over attempts: its median's, its overhead's and the ratio's, each
    /// ratio the layer's over the twin's in the same attempt (`attempts` is never empty).
    fn median_of(attempts: &[&Self]) -> Self {
        let first = attempts[0];
        Self {
            function: first.function.clone(),
            median_ns: median(&attempts.iter().map(|t| t.median_ns).collect::<Vec<_>>()),
            overhead_ns: median(&attempts.iter().map(|t| t.overhead_ns).collect::<Vec<_>>()),
            ratio: median(&attempts.iter().map(|t| t.ratio).collect::<Vec<_>>()),
            max_ratio: first.max_ratio,
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

    /// The layer's median over the twin's; over several attempts, the median of each
    /// attempt's ratio.
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

/// One attempt's figures for a group: its overhead, speed factor, kernel term, effective
/// budget and twin ratio, each from that attempt's medians alone. The gate decides on their
/// medians over the attempts, so figures of different attempts never mix: a fast bare
/// service in one attempt is not set against a slow layer in another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptFigures {
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<String>,
    layer_ns: f64,
    bare_ns: f64,
    overhead_ns: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_counted_ns: Option<f64>,
    effective_budget_ns: f64,
    budget_fraction: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    twin_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_twin_ratio: Option<f64>,
    #[serde(skip)]
    kernel: Option<KernelAdjustment>,
    #[serde(skip)]
    speed: Option<SpeedAdjustment>,
    #[serde(skip)]
    twin: Option<TwinComparison>,
}

impl AttemptFigures {
    /// One attempt's figures from its medians and adjustments.
    pub(super) fn new(
        attempt: Option<String>,
        budget_ns: u64,
        layer_ns: f64,
        bare_ns: f64,
        kernel: Option<KernelAdjustment>,
        speed: Option<SpeedAdjustment>,
        twin: Option<TwinComparison>,
    ) -> Self {
        let overhead_ns = layer_ns - bare_ns;
        let effective_budget_ns = effective_budget_ns(budget_ns, kernel.as_ref(), speed.as_ref());
        Self {
            attempt,
            layer_ns,
            bare_ns,
            overhead_ns,
            speed_factor: speed.as_ref().map(SpeedAdjustment::factor),
            kernel_counted_ns: kernel.as_ref().map(KernelAdjustment::counted_ns),
            effective_budget_ns,
            budget_fraction: budget_fraction(overhead_ns, effective_budget_ns),
            twin_ratio: twin.as_ref().map(TwinComparison::ratio),
            max_twin_ratio: twin.as_ref().map(TwinComparison::max_ratio),
            kernel,
            speed,
            twin,
        }
    }

    /// The attempt's directory name (none when the results are one directory's latest).
    pub fn attempt(&self) -> Option<&str> {
        self.attempt.as_deref()
    }

    /// The layer's median in this attempt.
    pub fn layer_ns(&self) -> f64 {
        self.layer_ns
    }

    /// The bare service's median in this attempt.
    pub fn bare_ns(&self) -> f64 {
        self.bare_ns
    }

    /// `layer - bare` in this attempt.
    pub fn overhead_ns(&self) -> f64 {
        self.overhead_ns
    }

    /// The speed factor of this attempt's own calibration readings (the faster, capped).
    pub fn speed_factor(&self) -> Option<f64> {
        self.speed_factor
    }

    /// The budget in this attempt, scaled by its speed and moved by its kernel reading.
    pub fn effective_budget_ns(&self) -> f64 {
        self.effective_budget_ns
    }

    /// The overhead over the effective budget: at most 1 is within budget.
    pub fn budget_fraction(&self) -> f64 {
        self.budget_fraction
    }

    /// The layer's median over the twin's in this attempt.
    pub fn twin_ratio(&self) -> Option<f64> {
        self.twin_ratio
    }

    /// The larger of the budget fraction and the twin ratio over its limit: how close to
    /// failing this attempt came (above 1 failed).
    pub fn closeness(&self) -> f64 {
        let twin = match (self.twin_ratio, self.max_twin_ratio) {
            (Some(ratio), Some(max)) => ratio / max,
            _ => f64::NEG_INFINITY,
        };
        self.budget_fraction.max(twin)
    }
}

/// The median of a figure over attempts (`attempts` is never empty).
fn median_by(attempts: &[AttemptFigures], figure: impl Fn(&AttemptFigures) -> f64) -> f64 {
    median(&attempts.iter().map(figure).collect::<Vec<_>>())
}

/// When the CI measures a group again: a group that fails is measured again (up to the
/// CI's limit of attempts), and so is one that passed its first attempt closely, until it
/// has `min_attempts`, so that neither a noisy nor a lucky first attempt decides alone.
///
/// # Examples
///
/// ```
/// use lift_harness::budget::RemeasurePolicy;
/// let policy = RemeasurePolicy::default();
/// assert_eq!((policy.close, policy.min_attempts), (0.8, 3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RemeasurePolicy {
    /// A first attempt whose overhead is above this fraction of its effective budget, or
    /// whose twin ratio is above this fraction of its limit, is close (0.8).
    pub close: f64,
    /// How many attempts a close group is measured in, at least (3).
    pub min_attempts: usize,
}

impl Default for RemeasurePolicy {
    fn default() -> Self {
        Self { close: 0.8, min_attempts: 3 }
    }
}

/// Why a group is to be measured again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemeasureReason {
    /// The group fails the gate: over budget or its twin ratio, without results, or with
    /// results older than the run.
    Fails,
    /// The group passes, but its first attempt came close to failing and it has fewer
    /// attempts than the policy asks for.
    Close,
}

/// A group the CI is to measure again, and why (the JSON report's `remeasure`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remeasure {
    /// The criterion group.
    pub group: String,
    /// Why.
    pub reason: RemeasureReason,
    /// How many attempts measured it so far.
    pub attempts: usize,
    /// How close its first attempt came to failing (see [`AttemptFigures::closeness`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_attempt: Option<f64>,
    /// The reason in words, for the CI's log.
    pub why: String,
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
    /// The median over attempts of each attempt's effective budget.
    pub(super) effective_budget_ns: f64,
    /// The median over attempts of each attempt's overhead over its effective budget: the
    /// verdict's figure (at most 1 passes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) budget_fraction: Option<f64>,
    /// How many attempts measured the group; its figures are medians over them.
    pub(super) attempts: usize,
    /// Each attempt's figures, in attempt order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) per_attempt: Vec<AttemptFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) missing: Option<String>,
}

impl GroupReport {
    /// The report of a group measured in these attempts (never empty): each figure the
    /// median over the attempts of that attempt's own, and the verdict on the median of the
    /// budget fractions (at most 1) and of the twin ratios (at most their limit).
    pub(super) fn measured(budget: &super::Budget, per_attempt: Vec<AttemptFigures>) -> Self {
        let kernels: Option<Vec<&KernelAdjustment>> = per_attempt.iter().map(|a| a.kernel.as_ref()).collect();
        let speeds: Option<Vec<&SpeedAdjustment>> = per_attempt.iter().map(|a| a.speed.as_ref()).collect();
        let twins: Option<Vec<&TwinComparison>> = per_attempt.iter().map(|a| a.twin.as_ref()).collect();
        let kernel = kernels.map(|k| KernelAdjustment::median_of(&k));
        let speed = speeds.map(|s| SpeedAdjustment::median_of(&s));
        let twin = twins.map(|t| TwinComparison::median_of(&t));
        let budget_fraction = median_by(&per_attempt, |a| a.budget_fraction);
        let within = budget_fraction <= 1.0 && twin.as_ref().is_none_or(TwinComparison::within);
        Self {
            group: budget.group().to_owned(),
            description: budget.description().to_owned(),
            budget_ns: budget.budget_ns(),
            verdict: if within { Verdict::Pass } else { Verdict::Fail },
            measurement: Some(Measurement::median_of(&per_attempt)),
            kernel,
            speed,
            twin,
            effective_budget_ns: median_by(&per_attempt, |a| a.effective_budget_ns),
            budget_fraction: Some(budget_fraction),
            attempts: per_attempt.len(),
            per_attempt,
            missing: None,
        }
    }

    /// The report of a group without usable results: missing, skipped or stale.
    pub(super) fn unmeasured(budget: &super::Budget, verdict: Verdict, attempts: usize, why: String) -> Self {
        Self {
            group: budget.group().to_owned(),
            description: budget.description().to_owned(),
            budget_ns: budget.budget_ns(),
            verdict,
            measurement: None,
            kernel: None,
            speed: None,
            twin: None,
            effective_budget_ns: budget.budget_ns() as f64,
            budget_fraction: None,
            attempts,
            per_attempt: Vec::new(),
            missing: Some(why),
        }
    }

    /// Whether the CI is to measure this group again under `policy`, and why: it fails, or
    /// its first attempt came closer to failing than `policy.close` and it has fewer than
    /// `policy.min_attempts` attempts.
    pub fn remeasure(&self, policy: &RemeasurePolicy) -> Option<Remeasure> {
        let first_attempt = self.per_attempt.first().map(AttemptFigures::closeness);
        let (reason, why) = if self.verdict.fails() {
            let why = match self.verdict {
                Verdict::Missing => "fails: no results".to_owned(),
                Verdict::Stale => "fails: results older than the run".to_owned(),
                _ => {
                    let mut over = Vec::new();
                    if let Some(fraction) = self.budget_fraction.filter(|f| *f > 1.0) {
                        over.push(format!("{} of its budget", format_fraction(fraction)));
                    }
                    if let Some(twin) = self.twin.as_ref().filter(|t| !t.within()) {
                        over.push(format!("{:.2}x its twin, above {:.2}x", twin.ratio, twin.max_ratio));
                    }
                    format!(
                        "fails: {} (median over {} attempt{})",
                        over.join(", "),
                        self.attempts,
                        if self.attempts == 1 { "" } else { "s" },
                    )
                }
            };
            (RemeasureReason::Fails, why)
        } else if self.verdict == Verdict::Pass
            && self.attempts < policy.min_attempts
            && first_attempt.is_some_and(|c| c > policy.close)
        {
            let first = &self.per_attempt[0];
            let came_to = match (first.twin_ratio, first.max_twin_ratio) {
                (Some(ratio), Some(max)) if ratio / max > first.budget_fraction => {
                    format!("{ratio:.2}x its twin, {} of its limit {max:.2}x", format_fraction(ratio / max))
                }
                _ => format!("{} of its budget", format_fraction(first.budget_fraction)),
            };
            let why = format!(
                "close: its first attempt came to {came_to}, above {}: measured in at least {} attempts, {} \
                 so far",
                format_fraction(policy.close),
                policy.min_attempts,
                self.attempts,
            );
            (RemeasureReason::Close, why)
        } else {
            return None;
        };
        Some(Remeasure { group: self.group.clone(), reason, attempts: self.attempts, first_attempt, why })
    }

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
    /// speed and moved by the kernel adjustment, when the budget has them; over several
    /// attempts, the median of each attempt's own.
    pub fn effective_budget_ns(&self) -> f64 {
        self.effective_budget_ns
    }

    /// What the verdict is on: the median over attempts of each attempt's overhead over its
    /// effective budget (at most 1 passes), when the group was measured.
    pub fn budget_fraction(&self) -> Option<f64> {
        self.budget_fraction
    }

    /// Each attempt's figures, in attempt order (none when the group was not measured).
    pub fn per_attempt(&self) -> &[AttemptFigures] {
        &self.per_attempt
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

    /// How many attempts measured the group (its figures are medians over them).
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// The effective budget over the overhead measured (the inverse of the budget
    /// fraction): how many times the layer could grow before it fails (none without a
    /// positive overhead).
    pub fn headroom(&self) -> Option<f64> {
        self.budget_fraction.filter(|f| *f > 0.0).map(|f| 1.0 / f)
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
    /// The groups the CI is to measure again, and why.
    pub(super) remeasure: Vec<Remeasure>,
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

    /// The groups to measure again under the gate's [`RemeasurePolicy`], in budgets-file
    /// order: `.ci/bench-gate` reads them from the JSON report.
    pub fn remeasure(&self) -> &[Remeasure] {
        &self.remeasure
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
        const HEADER: [&str; 9] = [
            "bench",
            "layer median",
            "bare median",
            "overhead",
            "ratio",
            "speed",
            "budget",
            "of budget",
            "verdict",
        ];
        let rows: Vec<[String; 9]> = self
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
                    g.budget_fraction.map_or_else(|| "-".to_owned(), |f| format!("{:.0}%", f * 100.0)),
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
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 9]| {
            // The bench name reads left-aligned, the numbers right-aligned.
            write!(f, "{:<w$}", cells[0], w = widths[0])?;
            for (cell, width) in cells.iter().zip(widths).skip(1).take(7) {
                write!(f, "  {cell:>width$}")?;
            }
            writeln!(f, "  {}", cells[8])
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
            "overhead = median(<group>/layer) - median(<group>/bare), of budget = overhead / budget, from \
             criterion's results in {}{}",
            self.criterion_dir.display(),
            if attempts > 1 {
                format!(
                    "; over several attempts (up to {attempts}), each figure is the median over the attempts \
                     that measured the group of that attempt's own (its overhead, speed, budget and twin ratio \
                     from its own medians), and the verdict is on the medians of overhead / budget (at most \
                     100%) and of the twin ratio"
                )
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

/// A fraction of a budget or limit, to two places.
fn format_fraction(fraction: f64) -> String {
    format!("{fraction:.2}")
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
