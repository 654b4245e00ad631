//! `benches/budgets.toml`: the overhead budget of each bench group.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::BudgetError;

/// The bench function that measures the no-op service alone, unless a budget says otherwise.
pub const DEFAULT_BARE: &str = "bare";
/// The bench function that measures the middleware over the no-op service, unless a budget
/// says otherwise.
pub const DEFAULT_LAYER: &str = "layer";

/// The overhead budgets of a budgets file, in the order the file declares them.
///
/// # Examples
///
/// ```
/// use lift_harness::budget::Budgets;
///
/// let budgets = Budgets::parse(
///     r#"
///     [budgets.circuit_breaker]
///     budget_ns = 150
///     description = "circuit breaker over a no-op service"
///     "#,
///     "budgets.toml",
/// )?;
/// let breaker = budgets.get("circuit_breaker").unwrap();
/// assert_eq!(breaker.budget_ns(), 150);
/// assert_eq!(breaker.layer_function(), "layer");
/// # Ok::<(), lift_harness::budget::BudgetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    path: PathBuf,
    budgets: Vec<Budget>,
    calibration: Option<Calibration>,
}

/// The machine's speed, measured in every group and run by a fixed workload that is not
/// Lift's code: bench functions of the given names in each group (`calibrate_before`, first,
/// and `calibrate_after`, last), and the workload's median on the machine the budgets were
/// set on.
///
/// A shared CI machine runs everything 1.3-2.3 times slower for minutes at a time when its
/// host is busy, and an absolute budget then fails on the host's load, not on the layer.
/// With a calibration, a group's budget holds on the reference machine and scales by how
/// much slower (or faster) the workload ran beside the group, at most `max_factor`:
///
/// ```text
/// speed  = min(min over the functions of median(<group>/<function>) / reference_ns, max_factor)
/// budget = budget_ns * speed
/// budget = (budget_ns - kernel_reference_ns) * speed + median(<group>/<kernel>)   (with a kernel)
/// ```
///
/// The fastest reading counts: a slowdown that lasts through the group shows in all of them,
/// while a burst of a few seconds that hits one reading does not loosen the budget (a burst
/// that hits the layer fails it, and the CI measures it again). With several attempts, each
/// attempt's speed comes from its own readings, never from readings of different attempts.
/// The workload is the same in every commit, so a slower layer is never excused by it, and
/// on a machine so slow that `max_factor` caps the speed, the budgets stop loosening.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    functions: Vec<String>,
    reference_ns: u64,
    max_factor: f64,
}

impl Calibration {
    /// The bench functions, in every group, that run the calibration workload.
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    /// The workload's median on the reference machine, in nanoseconds.
    pub fn reference_ns(&self) -> u64 {
        self.reference_ns
    }

    /// The most a budget is scaled by, however slow the machine measured.
    pub fn max_factor(&self) -> f64 {
        self.max_factor
    }
}

/// The overhead budget of one criterion group.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    group: String,
    budget_ns: u64,
    description: String,
    bare: String,
    layer: String,
    kernel: Option<Kernel>,
    twin: Option<Twin>,
    measured_ns: Option<f64>,
}

/// Another implementation of the same job, measured in the same group over the same bare
/// service (tower's own layer, for Lift's resilience layers): the layer's median may be at
/// most `max_ratio` times the twin's.
///
/// The ratio is taken in the same run, between functions of one group, so the machine's
/// speed cancels out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Twin {
    function: String,
    max_ratio: f64,
}

impl Twin {
    /// The bench function of the group that measures the twin over the bare service.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The most the layer's median may be, as a multiple of the twin's.
    pub fn max_ratio(&self) -> f64 {
        self.max_ratio
    }
}

/// Work a layer hands to the kernel (a UDP send, say), measured on its own in the same group
/// and run: its cost is the machine's, and on a shared machine it swings by half from one
/// minute to the next. The budget counts it at `reference_ns`, its median on the machine the
/// budget was set on, and moves by however much the run measured it above or below that, so
/// the layer's own work is held to the same bound whatever the kernel costs today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    function: String,
    reference_ns: u64,
}

impl Kernel {
    /// The bench function of the group that measures the kernel's work alone.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// Its median on the reference machine, in nanoseconds: the part of the budget it is.
    pub fn reference_ns(&self) -> u64 {
        self.reference_ns
    }
}

impl Budget {
    /// The criterion group, which is the key in the budgets file.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The most the middleware may add over the bare service, in nanoseconds.
    pub fn budget_ns(&self) -> u64 {
        self.budget_ns
    }

    /// What is measured, for people reading the report.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The bench function that measures the bare service (`bare` by default).
    pub fn bare_function(&self) -> &str {
        &self.bare
    }

    /// The bench function that measures the middleware (`layer` by default).
    pub fn layer_function(&self) -> &str {
        &self.layer
    }

    /// The kernel work the budget includes, when it is adjusted for it.
    pub fn kernel(&self) -> Option<&Kernel> {
        self.kernel.as_ref()
    }

    /// The twin the layer is held against, when it has one.
    pub fn twin(&self) -> Option<&Twin> {
        self.twin.as_ref()
    }

    /// The overhead measured on the reference machine when the budget was set (its median
    /// in nanoseconds), when the file records it: the budget is at most 1.5 times it.
    pub fn measured_ns(&self) -> Option<f64> {
        self.measured_ns
    }
}

impl Budgets {
    /// Reads and checks a budgets file.
    ///
    /// # Errors
    /// [`BudgetError::MissingFile`] when it does not exist, [`BudgetError::BadToml`] or
    /// [`BudgetError::InvalidBudget`] when it is not in the budgets format.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, BudgetError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => {
                BudgetError::MissingFile { what: "budgets file", path: path.to_owned() }
            }
            _ => BudgetError::Io { path: path.to_owned(), source },
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a budgets file; `path` names it in errors and reports.
    ///
    /// # Errors
    /// [`BudgetError::BadToml`] for invalid TOML, unknown keys or wrong types;
    /// [`BudgetError::InvalidBudget`] for a file without budgets, an empty group name or
    /// bench function name, or a budget whose two functions are the same.
    pub fn parse(text: &str, path: impl Into<PathBuf>) -> Result<Self, BudgetError> {
        let path = path.into();
        let file: File = toml::from_str(text).map_err(|source| BudgetError::BadToml {
            location: source.span().map(|span| line_column(text, span.start)),
            path: path.clone(),
            source: Box::new(source),
        })?;
        let invalid = |reason: String| BudgetError::InvalidBudget { path: path.clone(), reason };
        if file.budgets.0.is_empty() {
            return Err(invalid("no budgets: add a [budgets.<group>] table".to_owned()));
        }
        let mut budgets = Vec::with_capacity(file.budgets.0.len());
        for (group, spec) in file.budgets.0 {
            if group.trim().is_empty() {
                return Err(invalid("a budget has an empty group name".to_owned()));
            }
            if spec.bare.trim().is_empty() || spec.layer.trim().is_empty() {
                return Err(invalid(format!("{group}: bench function names must not be empty")));
            }
            if spec.bare == spec.layer {
                return Err(invalid(format!(
                    "{group}: bare and layer are the same function {:?}",
                    spec.bare
                )));
            }
            let kernel = match (spec.kernel, spec.kernel_reference_ns) {
                (None, None) => None,
                (Some(function), Some(reference_ns)) => {
                    if function.trim().is_empty() || function == spec.bare || function == spec.layer {
                        return Err(invalid(format!(
                            "{group}: kernel must name a bench function of its own, not {function:?}"
                        )));
                    }
                    if reference_ns == 0 || reference_ns >= spec.budget_ns {
                        return Err(invalid(format!(
                            "{group}: kernel_reference_ns must be above 0 and below budget_ns ({})",
                            spec.budget_ns
                        )));
                    }
                    Some(Kernel { function, reference_ns })
                }
                _ => {
                    return Err(invalid(format!("{group}: kernel and kernel_reference_ns go together")));
                }
            };
            let twin = match (spec.twin, spec.max_twin_ratio) {
                (None, None) => None,
                (Some(function), Some(max_ratio)) => {
                    let taken = function == spec.bare
                        || function == spec.layer
                        || kernel.as_ref().is_some_and(|k| k.function == function);
                    if function.trim().is_empty() || taken {
                        return Err(invalid(format!(
                            "{group}: twin must name a bench function of its own, not {function:?}"
                        )));
                    }
                    if !(max_ratio.is_finite() && max_ratio > 0.0) {
                        return Err(invalid(format!(
                            "{group}: max_twin_ratio must be a number above 0, not {max_ratio}"
                        )));
                    }
                    Some(Twin { function, max_ratio })
                }
                _ => return Err(invalid(format!("{group}: twin and max_twin_ratio go together"))),
            };
            if let Some(measured) = spec.measured_ns {
                if !(measured.is_finite() && measured >= 0.0) {
                    return Err(invalid(format!("{group}: measured_ns must be a duration, not {measured}")));
                }
            }
            budgets.push(Budget {
                group,
                budget_ns: spec.budget_ns,
                description: spec.description,
                bare: spec.bare,
                layer: spec.layer,
                kernel,
                twin,
                measured_ns: spec.measured_ns,
            });
        }
        let calibration = match file.calibration {
            None => None,
            Some(spec) => {
                let functions = spec.functions;
                if functions.is_empty() || functions.iter().any(|f| f.trim().is_empty()) {
                    return Err(invalid(
                        "calibration: functions must name at least one function, none empty".to_owned(),
                    ));
                }
                if let Some(twice) =
                    functions.iter().enumerate().find_map(|(i, f)| functions[..i].contains(f).then_some(f))
                {
                    return Err(invalid(format!("calibration: function {twice:?} is listed twice")));
                }
                for function in &functions {
                    if let Some(b) = budgets.iter().find(|b| {
                        b.bare == *function
                            || b.layer == *function
                            || b.kernel.as_ref().is_some_and(|k| k.function == *function)
                            || b.twin.as_ref().is_some_and(|t| t.function == *function)
                    }) {
                        return Err(invalid(format!(
                            "calibration: function {function:?} is already a function of {}'s budget",
                            b.group
                        )));
                    }
                }
                if spec.reference_ns == 0 {
                    return Err(invalid("calibration: reference_ns must be above 0".to_owned()));
                }
                if !(spec.max_factor.is_finite() && spec.max_factor >= 1.0) {
                    return Err(invalid(format!(
                        "calibration: max_factor must be a number of at least 1, not {}",
                        spec.max_factor
                    )));
                }
                Some(Calibration { functions, reference_ns: spec.reference_ns, max_factor: spec.max_factor })
            }
        };
        Ok(Self { path, budgets, calibration })
    }

    /// The file the budgets came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The budget of a group.
    pub fn get(&self, group: &str) -> Option<&Budget> {
        self.budgets.iter().find(|b| b.group == group)
    }

    /// The machine-speed calibration the budgets scale by, when the file has one.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// The budgets, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Budget> {
        self.budgets.iter()
    }

    /// How many budgets there are.
    pub fn len(&self) -> usize {
        self.budgets.len()
    }

    /// Whether there are none (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }
}

impl<'a> IntoIterator for &'a Budgets {
    type Item = &'a Budget;
    type IntoIter = std::slice::Iter<'a, Budget>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    budgets: Ordered,
    #[serde(default)]
    calibration: Option<CalibrationSpec>,
}

/// The `[calibration]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationSpec {
    #[serde(default = "default_calibration")]
    functions: Vec<String>,
    reference_ns: u64,
    max_factor: f64,
}

/// The calibration's bench functions, unless the file names others: one first in each
/// group, one last.
pub const DEFAULT_CALIBRATION: [&str; 2] = ["calibrate_before", "calibrate_after"];

fn default_calibration() -> Vec<String> {
    DEFAULT_CALIBRATION.map(str::to_owned).to_vec()
}

/// One `[budgets.<group>]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    budget_ns: u64,
    #[serde(default)]
    description: String,
    #[serde(default = "default_bare")]
    bare: String,
    #[serde(default = "default_layer")]
    layer: String,
    #[serde(default)]
    kernel: Option<String>,
    #[serde(default)]
    kernel_reference_ns: Option<u64>,
    #[serde(default)]
    twin: Option<String>,
    #[serde(default)]
    max_twin_ratio: Option<f64>,
    #[serde(default)]
    measured_ns: Option<f64>,
}

fn default_bare() -> String {
    DEFAULT_BARE.to_owned()
}

fn default_layer() -> String {
    DEFAULT_LAYER.to_owned()
}

/// The `[budgets]` table with its keys in file order (a map type would sort them), so the
/// report reads in the order the file was written.
struct Ordered(Vec<(String, Spec)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;

        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of [budgets.<group>] tables")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Spec>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }

        deserializer.deserialize_map(OrderedVisitor)
    }
}

/// Line and column (from 1) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_budgets_in_file_order_with_defaults() {
        let budgets = Budgets::parse(
            r#"
            [budgets.timeout]
            budget_ns = 150
            description = "deadline-aware timeout"

            [budgets.bulkhead]
            budget_ns = 200
            layer = "per_tenant"
            "#,
            "b.toml",
        )
        .unwrap();
        let groups: Vec<_> = budgets.iter().map(Budget::group).collect();
        assert_eq!(groups, ["timeout", "bulkhead"]);
        let bulkhead = budgets.get("bulkhead").unwrap();
        assert_eq!((bulkhead.bare_function(), bulkhead.layer_function()), ("bare", "per_tenant"));
        assert_eq!(bulkhead.description(), "");
        assert_eq!(budgets.path(), Path::new("b.toml"));
    }

    #[test]
    fn invalid_toml_names_the_file_and_line() {
        let err = Budgets::parse("[budgets.timeout]\nbudget_ns = = 3\n", "b.toml").unwrap_err();
        assert!(matches!(err, BudgetError::BadToml { location: Some((2, _)), .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("bad budgets file b.toml at line 2"), "{msg}");
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_bad_toml() {
        for text in [
            "[budgets.timeout]\nbudget_ns = -1\n",
            "[budgets.timeout]\nbudget_ns = 1.5\n",
            "[budgets.timeout]\nbudget_ns = \"150\"\n",
            "[budgets.timeout]\nbudget = 150\n",
            "[budgets.timeout]\nbudget_ns = 150\noptional = true\n",
            "[budget.timeout]\nbudget_ns = 150\n",
        ] {
            let err = Budgets::parse(text, "b.toml").unwrap_err();
            assert!(matches!(err, BudgetError::BadToml { .. }), "{text}: {err:?}");
        }
    }

    #[test]
    fn unusable_budgets_are_invalid() {
        for text in [
            "[budgets]\n",
            "[budgets.timeout]\nbudget_ns = 1\nbare = \"x\"\nlayer = \"x\"\n",
            "[budgets.timeout]\nbudget_ns = 1\nlayer = \"\"\n",
            "[budgets.\" \"]\nbudget_ns = 1\n",
        ] {
            let err = Budgets::parse(text, "b.toml").unwrap_err();
            assert!(matches!(err, BudgetError::InvalidBudget { .. }), "{text}: {err:?}");
        }
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = Budgets::load("/nonexistent/budgets.toml").unwrap_err();
        assert_eq!(err.to_string(), "budgets file /nonexistent/budgets.toml not found");
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
