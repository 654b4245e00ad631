//! The instruction gate: instruction counts from callgrind (the `instructions` bench, run by
//! gungraun) against a committed baseline, `benches/instructions.toml`.
//!
//! A count does not move with a busy host, so this gate needs no calibration and no retries:
//!
//! ```text
//! over_bare = Ir(<layer>) - Ir(bare)       fails above baseline over_bare x (1 + max_rise)
//! ratio     = Ir(<layer>) / Ir(<twin>)     fails above max_twin_ratio
//! ```
//!
//! `Ir(<bench>)` is the `totals:` line's first event (`Ir`, instructions) of the callgrind
//! output gungraun writes, `<dir>/<bench>.<id>/callgrind.<bench>.<id>.out`. Updating the
//! baseline is one command (`lift-harness budget --instructions --update`), which rewrites the
//! `over_bare` numbers in place, so the change shows in review.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BudgetError;

/// The baseline file `lift-harness budget --instructions` reads unless told otherwise.
pub const DEFAULT_BASELINE_FILE: &str = "benches/instructions.toml";

/// Where gungraun writes the `instructions` bench's group, under the target directory.
pub const DEFAULT_CALLGRIND_SUBDIR: &str = "gungraun/lift-benches/instructions/resilience";

/// The committed baseline: each layer's instructions over the bare service, and its twin.
///
/// # Examples
///
/// ```
/// use lift_harness::budget::InstructionBaseline;
///
/// let baseline = InstructionBaseline::parse(
///     "max_rise = 0.02\nmax_twin_ratio = 1.2\n[layers.bulkhead]\nover_bare = 11000\ntwin = \"tower_concurrency_limit\"\n",
///     "instructions.toml",
/// )?;
/// assert_eq!(baseline.layers()[0].name, "bulkhead");
/// # Ok::<(), lift_harness::budget::BudgetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionBaseline {
    /// How much a layer's instructions over bare may rise above the baseline (0.02: 2%).
    pub max_rise: f64,
    /// The most a layer may cost, whole calls, as a multiple of its twin's.
    pub max_twin_ratio: f64,
    /// The bench of the bare service.
    #[serde(default = "default_bare")]
    pub bare: String,
    #[serde(default)]
    layers: toml::Table,
    #[serde(skip)]
    parsed: Vec<LayerBaseline>,
    #[serde(skip)]
    path: PathBuf,
}

fn default_bare() -> String {
    "bare".to_owned()
}

/// One layer's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerBaseline {
    /// The layer's bench (and the key in the file).
    #[serde(skip_deserializing)]
    pub name: String,
    /// Its instructions over the bare service's, at the baseline.
    pub over_bare: u64,
    /// The bench of tower's twin, when it has one.
    #[serde(default)]
    pub twin: Option<String>,
    /// A ratio to the twin for this layer instead of the file's `max_twin_ratio`.
    #[serde(default)]
    pub max_twin_ratio: Option<f64>,
    /// More twins the layer is held against, each with its own ratio: another of tower's
    /// ways to do the same job (`also = [{ twin = "...", max_twin_ratio = 1.0 }]`).
    #[serde(default)]
    pub also: Vec<AlsoTwin>,
}

/// One more twin of a layer's, and the most the layer may cost against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsoTwin {
    /// The twin's bench.
    pub twin: String,
    /// The most the layer's instructions may be, as a multiple of the twin's.
    pub max_twin_ratio: f64,
}

impl InstructionBaseline {
    /// Reads a baseline file.
    ///
    /// # Errors
    /// [`BudgetError::MissingFile`], [`BudgetError::Io`], or [`BudgetError::InvalidBudget`]
    /// when it is not in the baseline format.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, BudgetError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => {
                BudgetError::MissingFile { what: "instruction baseline", path: path.to_owned() }
            }
            _ => BudgetError::Io { path: path.to_owned(), source },
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a baseline file; `path` names it in errors.
    ///
    /// # Errors
    /// [`BudgetError::InvalidBudget`] when it is not in the baseline format.
    pub fn parse(text: &str, path: impl Into<PathBuf>) -> Result<Self, BudgetError> {
        let path = path.into();
        let invalid = |reason: String| BudgetError::InvalidBudget { path: path.clone(), reason };
        let mut baseline: Self =
            toml::from_str(text).map_err(|e| invalid(e.message().trim_end().to_owned()))?;
        if !(baseline.max_rise.is_finite() && baseline.max_rise >= 0.0) {
            return Err(invalid(format!(
                "max_rise must be a share of at least 0, not {}",
                baseline.max_rise
            )));
        }
        for (name, value) in &baseline.layers {
            let mut layer: LayerBaseline = value.clone().try_into().map_err(|e: toml::de::Error| {
                invalid(format!("layers.{name}: {}", e.message().trim_end()))
            })?;
            layer.name = name.clone();
            let mut ratios =
                layer.max_twin_ratio.into_iter().chain(layer.also.iter().map(|a| a.max_twin_ratio));
            if let Some(bad) = ratios.find(|r| !(r.is_finite() && *r > 0.0)) {
                return Err(invalid(format!(
                    "layers.{name}: a twin ratio must be a number above 0, not {bad}"
                )));
            }
            // A twin that is the layer itself passes any ratio of 1 or more, and one named twice
            // holds nothing more: a typo must not make a check that cannot fail.
            let twins: Vec<&str> = layer
                .twin
                .iter()
                .map(String::as_str)
                .chain(layer.also.iter().map(|a| a.twin.as_str()))
                .collect();
            for (i, twin) in twins.iter().enumerate() {
                if *twin == name || *twin == baseline.bare {
                    return Err(invalid(format!(
                        "layers.{name}: twin {twin:?} must be a bench of its own, not the layer or bare"
                    )));
                }
                if twins[..i].contains(twin) {
                    return Err(invalid(format!("layers.{name}: twin {twin:?} is named twice")));
                }
            }
            baseline.parsed.push(layer);
        }
        if baseline.parsed.is_empty() {
            return Err(invalid("no layers: add a [layers.<bench>] table".to_owned()));
        }
        baseline.path = path;
        Ok(baseline)
    }

    /// The layers, in file order.
    pub fn layers(&self) -> &[LayerBaseline] {
        &self.parsed
    }

    /// Checks measured counts against the baseline.
    ///
    /// # Errors
    /// [`BudgetError::MissingResults`] when a bench the baseline names was not counted.
    pub fn check(&self, counts: &InstructionCounts) -> Result<InstructionReport, BudgetError> {
        let bare = counts.get(&self.bare)?;
        let mut layers = Vec::new();
        for layer in &self.parsed {
            let ir = counts.get(&layer.name)?;
            let over_bare = ir as i64 - bare as i64;
            let allowed = layer.over_bare as f64 * (1.0 + self.max_rise);
            let against = |twin: &str, max_ratio: f64| -> Result<TwinCount, BudgetError> {
                let twin_ir = counts.get(twin)?;
                let ratio = ir as f64 / twin_ir.max(1) as f64;
                Ok(TwinCount { twin: twin.to_owned(), instructions: twin_ir, ratio, max_ratio })
            };
            let twin = match &layer.twin {
                Some(twin) => Some(against(twin, layer.max_twin_ratio.unwrap_or(self.max_twin_ratio))?),
                None => None,
            };
            let also = layer
                .also
                .iter()
                .map(|a| against(&a.twin, a.max_twin_ratio))
                .collect::<Result<Vec<_>, _>>()?;
            let rise = over_bare as f64 / layer.over_bare.max(1) as f64 - 1.0;
            let passed =
                over_bare as f64 <= allowed && twin.iter().chain(&also).all(|t| t.ratio <= t.max_ratio);
            layers.push(LayerCount {
                layer: layer.name.clone(),
                instructions: ir,
                over_bare,
                baseline_over_bare: layer.over_bare,
                rise,
                twin,
                also,
                passed,
            });
        }
        Ok(InstructionReport {
            bare,
            max_rise: self.max_rise,
            passed: layers.iter().all(|l| l.passed),
            layers,
        })
    }

    /// The baseline file's text with every layer's `over_bare` set to what `counts` measured,
    /// comments and order kept: what `--update` writes.
    ///
    /// # Errors
    /// [`BudgetError::MissingResults`] when a bench the baseline names was not counted.
    pub fn updated(text: &str, baseline: &Self, counts: &InstructionCounts) -> Result<String, BudgetError> {
        let bare = counts.get(&baseline.bare)?;
        let mut section: Option<String> = None;
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_prefix("[layers.").and_then(|r| r.strip_suffix(']')) {
                section = Some(name.trim_matches('"').to_owned());
            } else if trimmed.starts_with('[') {
                section = None;
            }
            match (&section, trimmed.starts_with("over_bare")) {
                (Some(name), true) => {
                    let over = counts.get(name)?.saturating_sub(bare);
                    out.push_str(&format!("over_bare = {over}\n"));
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        Ok(out)
    }

    /// The file the baseline came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Instruction counts of the benches in one callgrind output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionCounts {
    dir: PathBuf,
}

impl InstructionCounts {
    /// The counts gungraun wrote under `dir` (`<dir>/<bench>.<id>/callgrind.<bench>.<id>.out`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The instructions (`Ir`) a bench executed.
    ///
    /// # Errors
    /// [`BudgetError::MissingResults`] when the bench has no callgrind output,
    /// [`BudgetError::MalformedEstimates`] when it has no usable `totals:` line.
    pub fn get(&self, bench: &str) -> Result<u64, BudgetError> {
        let missing = || BudgetError::MissingResults {
            group: "instructions".to_owned(),
            function: bench.to_owned(),
            path: self.dir.join(format!("{bench}.*")).join(format!("callgrind.{bench}.*.out")),
        };
        let prefix = format!("{bench}.");
        let out = std::fs::read_dir(&self.dir)
            .map_err(|_| missing())?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix))
            })
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("callgrind.{bench}.")) && n.ends_with(".out"))
            })
            .ok_or_else(missing)?;
        let text =
            std::fs::read_to_string(&out).map_err(|source| BudgetError::Io { path: out.clone(), source })?;
        parse_totals(&text).map_err(|reason| BudgetError::MalformedEstimates { path: out, reason })
    }
}

/// The first event (`Ir`) of a callgrind output's `totals:` (or `summary:`) line.
fn parse_totals(text: &str) -> Result<u64, String> {
    let events = text.lines().find_map(|l| l.strip_prefix("events:")).ok_or("no events: line")?;
    if events.split_whitespace().next() != Some("Ir") {
        return Err(format!("the first event is not Ir: {}", events.trim()));
    }
    let totals = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
        .ok_or("no totals: line")?;
    let first = totals.split_whitespace().next().ok_or("an empty totals: line")?;
    first.parse().map_err(|_| format!("totals: {first:?} is not a count"))
}

/// A layer against its twin, in instructions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TwinCount {
    /// The twin's bench.
    pub twin: String,
    /// Its instructions.
    pub instructions: u64,
    /// The layer's instructions over the twin's.
    pub ratio: f64,
    /// The most the ratio may be.
    pub max_ratio: f64,
}

/// One layer's counts and verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerCount {
    /// The layer's bench.
    pub layer: String,
    /// Its instructions.
    pub instructions: u64,
    /// Its instructions over the bare service's.
    pub over_bare: i64,
    /// The baseline's.
    pub baseline_over_bare: u64,
    /// How much `over_bare` rose above the baseline (0.05: 5%).
    pub rise: f64,
    /// Against its twin.
    pub twin: Option<TwinCount>,
    /// Against its other twins (`also`).
    pub also: Vec<TwinCount>,
    /// Whether it is within the baseline and every twin ratio.
    pub passed: bool,
}

/// The instruction gate's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstructionReport {
    /// The bare service's instructions.
    pub bare: u64,
    /// The rise allowed.
    pub max_rise: f64,
    /// Every layer.
    pub layers: Vec<LayerCount>,
    /// Whether every layer passed.
    pub passed: bool,
}

impl fmt::Display for InstructionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<24} {:>12} {:>10} {:>10} {:>8} {:>26}  verdict",
            "layer", "instructions", "over bare", "baseline", "rise", "twin ratio"
        )?;
        let ratio = |t: &TwinCount| format!("{:.2}x {} (<= {:.2}x)", t.ratio, t.twin, t.max_ratio);
        for l in &self.layers {
            let twin = l.twin.as_ref().map_or_else(|| "-".to_owned(), ratio);
            writeln!(
                f,
                "{:<24} {:>12} {:>10} {:>10} {:>7.1}% {:>26}  {}",
                l.layer,
                l.instructions,
                l.over_bare,
                l.baseline_over_bare,
                l.rise * 100.0,
                twin,
                if l.passed { "PASS" } else { "FAIL" }
            )?;
            for t in &l.also {
                writeln!(f, "{:<24} {:>12} {:>10} {:>10} {:>8} {:>26}", "", "", "", "", "also", ratio(t))?;
            }
        }
        write!(
            f,
            "bare: {} instructions; a layer fails {:.0}% over its baseline or over its twin ratio: gate {}",
            self.bare,
            self.max_rise * 100.0,
            if self.passed { "passed" } else { "FAILED" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_the_first_event() {
        assert_eq!(parse_totals("events: Ir Dr\nsummary: 17 3\ntotals: 17 3\n"), Ok(17));
        assert!(parse_totals("events: Dr Ir\ntotals: 1 2\n").is_err());
        assert!(parse_totals("events: Ir\n").is_err());
        assert!(parse_totals("events: Ir\ntotals: x\n").is_err());
    }
}
