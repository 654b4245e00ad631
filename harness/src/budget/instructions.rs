//! The instruction gate: instruction counts from callgrind (the `instructions` bench, run by
//! gungraun) against a committed baseline, `benches/instructions.toml`.
//!
//! A count does not move with a busy host, so this gate needs no calibration and no retries:
//!
//! ```text
//! over_bare = Ir(<layer>) - Ir(bare)       fails above baseline over_bare x (1 + max_rise)
//! ratio     = Ir(<layer>) / Ir(<twin>)     fails above max_twin_ratio
//! Ir(bare), Ir(<twin>)                     fail above their baseline count x (1 + max_rise)
//! ```
//!
//! Bare's and the twins' own counts are held as well: a costlier bare would shrink every
//! layer's `over_bare`, and a costlier twin would loosen every ratio against it.
//!
//! `Ir(<bench>)` is the `totals:` line's first event (`Ir`, instructions) of the callgrind
//! output gungraun writes, `<dir>/<bench>.<id>/callgrind.<bench>.<id>.out`. The gate reads
//! exactly one such output per bench. Several (the bench ran threads or processes, or under
//! more than one bench id), an output directory of a bench the baseline does not name, a
//! count of 0 and a layer that counted fewer instructions than bare are errors, not
//! verdicts; with [`InstructionCounts::fresh_since`], so is an output written before the run.
//! Updating the baseline is one command (`lift-harness budget --instructions --update`),
//! which rewrites its counts in place, so the change shows in review.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::BudgetError;

/// The baseline file `lift-harness budget --instructions` reads unless told otherwise.
pub const DEFAULT_BASELINE_FILE: &str = "benches/instructions.toml";

/// Where gungraun writes the `instructions` bench's group, under the target directory.
pub const DEFAULT_CALLGRIND_SUBDIR: &str = "gungraun/lift-benches/instructions/resilience";

/// The committed baseline: bare's instructions, each layer's over the bare service and its
/// twin, and each twin's instructions.
///
/// # Examples
///
/// ```
/// use lift_harness::budget::InstructionBaseline;
///
/// let baseline = InstructionBaseline::parse(
///     r#"
/// max_rise = 0.02
/// max_twin_ratio = 1.2
/// bare_instructions = 8193
///
/// [twins]
/// tower_concurrency_limit = 17793
///
/// [layers.bulkhead]
/// over_bare = 11520
/// twin = "tower_concurrency_limit"
/// "#,
///     "instructions.toml",
/// )?;
/// assert_eq!(baseline.layers()[0].name, "bulkhead");
/// assert_eq!(baseline.twins()[0].instructions, 17793);
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
    /// The bare service's instructions at the baseline.
    pub bare_instructions: u64,
    #[serde(default)]
    twins: toml::Table,
    #[serde(default)]
    layers: toml::Table,
    #[serde(skip)]
    parsed: Vec<LayerBaseline>,
    #[serde(skip)]
    parsed_twins: Vec<TwinBaseline>,
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

/// A twin's instructions at the baseline (`[twins]` in the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TwinBaseline {
    /// The twin's bench (and the key in the file).
    pub name: String,
    /// Its instructions at the baseline.
    pub instructions: u64,
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
        if baseline.bare_instructions == 0 {
            return Err(invalid("bare_instructions must be a count above 0".to_owned()));
        }
        // Every twin a layer is held against has its own count held too, and a count no layer
        // uses is a typo that holds nothing.
        for layer in &baseline.parsed {
            for twin in layer.twin.iter().chain(layer.also.iter().map(|a| &a.twin)) {
                if !baseline.twins.contains_key(twin) {
                    return Err(invalid(format!(
                        "layers.{}: twin {twin:?} has no count: add `{twin} = <instructions>` under [twins]",
                        layer.name
                    )));
                }
            }
        }
        for (name, value) in &baseline.twins {
            let instructions = value
                .as_integer()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(format!("twins.{name} must be a count above 0, not {value}")))?;
            let named = baseline
                .parsed
                .iter()
                .any(|l| l.twin.as_ref() == Some(name) || l.also.iter().any(|a| &a.twin == name));
            if !named {
                return Err(invalid(format!("twins.{name}: no layer names it as a twin")));
            }
            baseline.parsed_twins.push(TwinBaseline { name: name.clone(), instructions });
        }
        baseline.path = path;
        Ok(baseline)
    }

    /// The layers, by name (the file is read into a sorted table).
    pub fn layers(&self) -> &[LayerBaseline] {
        &self.parsed
    }

    /// The twins' counts, by name.
    pub fn twins(&self) -> &[TwinBaseline] {
        &self.parsed_twins
    }

    /// Every bench the baseline names: bare, the layers, the twins.
    fn benches(&self) -> Vec<&str> {
        let mut benches = vec![self.bare.as_str()];
        benches.extend(self.parsed.iter().map(|l| l.name.as_str()));
        benches.extend(self.parsed_twins.iter().map(|t| t.name.as_str()));
        benches
    }

    /// Every bench's count, each from the one fresh output of a bench the baseline names
    /// ([`InstructionCounts::count`]), and no layer below bare.
    fn measure(&self, counts: &InstructionCounts) -> Result<HashMap<String, u64>, BudgetError> {
        let benches = self.benches();
        counts.only(&benches, &self.path)?;
        let mut measured = HashMap::with_capacity(benches.len());
        let bare = counts.get(&self.bare)?;
        measured.insert(self.bare.clone(), bare);
        for layer in &self.parsed {
            let (ir, path) = counts.count(&layer.name)?;
            // A layer runs the bare service's code and its own: fewer instructions means the
            // two were not counted alike, and every over_bare and ratio would be wrong.
            if ir < bare {
                return Err(BudgetError::BadInstructionCounts {
                    bench: layer.name.clone(),
                    reason: format!(
                        "{ir} instructions, fewer than bare's {bare}: a layer cannot cost less than \
                         the service it wraps ({})",
                        path.display()
                    ),
                });
            }
            measured.insert(layer.name.clone(), ir);
        }
        for twin in &self.parsed_twins {
            measured.insert(twin.name.clone(), counts.get(&twin.name)?);
        }
        Ok(measured)
    }

    /// Checks measured counts against the baseline.
    ///
    /// # Errors
    /// [`BudgetError::MissingResults`] when a bench the baseline names was not counted,
    /// [`BudgetError::StaleResults`] when its output is older than the run,
    /// [`BudgetError::BadInstructionCounts`] when a bench has several outputs or counted 0
    /// instructions, a layer counted fewer than bare, or a bench the baseline does not name
    /// has an output directory.
    pub fn check(&self, counts: &InstructionCounts) -> Result<InstructionReport, BudgetError> {
        let measured = self.measure(counts)?;
        let bare = measured[&self.bare];
        let mut layers = Vec::new();
        for layer in &self.parsed {
            let ir = measured[&layer.name];
            let over_bare = ir as i64 - bare as i64;
            let allowed = layer.over_bare as f64 * (1.0 + self.max_rise);
            // No count is 0 (`measure`), so no ratio divides by 0.
            let against = |twin: &str, max_ratio: f64| {
                let twin_ir = measured[twin];
                let ratio = ir as f64 / twin_ir as f64;
                TwinCount { twin: twin.to_owned(), instructions: twin_ir, ratio, max_ratio }
            };
            let twin = layer
                .twin
                .as_ref()
                .map(|twin| against(twin, layer.max_twin_ratio.unwrap_or(self.max_twin_ratio)));
            let also: Vec<TwinCount> =
                layer.also.iter().map(|a| against(&a.twin, a.max_twin_ratio)).collect();
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
        let held = |bench: &str, baseline: u64| {
            let instructions = measured[bench];
            BenchCount {
                bench: bench.to_owned(),
                instructions,
                baseline,
                rise: instructions as f64 / baseline as f64 - 1.0,
                passed: instructions as f64 <= baseline as f64 * (1.0 + self.max_rise),
            }
        };
        let mut benches = vec![held(&self.bare, self.bare_instructions)];
        benches.extend(self.parsed_twins.iter().map(|t| held(&t.name, t.instructions)));
        Ok(InstructionReport {
            bare,
            max_rise: self.max_rise,
            passed: layers.iter().all(|l| l.passed) && benches.iter().all(|b| b.passed),
            layers,
            benches,
        })
    }

    /// The baseline file's text with its counts set to what `counts` measured (bare's
    /// `bare_instructions`, every layer's `over_bare`, every twin's line under `[twins]`),
    /// comments and order kept: what `--update` writes.
    ///
    /// # Errors
    /// As [`check`](Self::check); [`BudgetError::InvalidBudget`] when a count is not on a
    /// `key = value` line of its own (an inline table), which this rewrite cannot reach.
    pub fn updated(text: &str, baseline: &Self, counts: &InstructionCounts) -> Result<String, BudgetError> {
        enum Section {
            Top,
            Twins,
            Layer(String),
            Other,
        }
        let measured = baseline.measure(counts)?;
        let bare = measured[&baseline.bare];
        let mut section = Section::Top;
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('[') {
                section =
                    if let Some(name) = trimmed.strip_prefix("[layers.").and_then(|r| r.strip_suffix(']')) {
                        Section::Layer(name.trim_matches('"').to_owned())
                    } else if trimmed == "[twins]" {
                        Section::Twins
                    } else {
                        Section::Other
                    };
            }
            let key = line.split_once('=').map(|(key, _)| key.trim_end());
            let count = key.and_then(|key| match (&section, key.trim_start().trim_matches('"')) {
                (Section::Top, "bare_instructions") => Some(bare),
                (Section::Twins, twin) => measured.get(twin).copied(),
                (Section::Layer(name), "over_bare") => measured.get(name).map(|ir| ir - bare),
                _ => None,
            });
            match (key, count) {
                (Some(key), Some(count)) => out.push_str(&format!("{key} = {count}\n")),
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        // A count written another way (an inline table) would be left as it was: say so rather
        // than write a baseline that is partly old.
        let again = Self::parse(&out, baseline.path.clone())?;
        let stale = |what: String| BudgetError::InvalidBudget {
            path: baseline.path.clone(),
            reason: format!(
                "--update rewrites `key = <count>` lines only: write {what} on a line of its own"
            ),
        };
        if again.bare_instructions != bare {
            return Err(stale("bare_instructions".to_owned()));
        }
        for layer in &again.parsed {
            if layer.over_bare != measured[&layer.name] - bare {
                return Err(stale(format!("layers.{}.over_bare", layer.name)));
            }
        }
        for twin in &again.parsed_twins {
            if twin.instructions != measured[&twin.name] {
                return Err(stale(format!("twins.{}", twin.name)));
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
    since: Option<SystemTime>,
}

impl InstructionCounts {
    /// The counts gungraun wrote under `dir` (`<dir>/<bench>.<id>/callgrind.<bench>.<id>.out`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), since: None }
    }

    /// Refuses outputs written before `start` (the run's start): gungraun's directory outlives
    /// a run, so a bench that did not run this time (removed from the group, filtered out, or
    /// written elsewhere) would otherwise pass on an old count.
    pub fn fresh_since(mut self, start: SystemTime) -> Self {
        self.since = Some(start);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The instructions (`Ir`) a bench executed.
    ///
    /// # Errors
    /// As [`count`](Self::count).
    pub fn get(&self, bench: &str) -> Result<u64, BudgetError> {
        self.count(bench).map(|(ir, _)| ir)
    }

    /// The instructions (`Ir`) a bench executed, and the output they come from: the bench's
    /// only `.out` file (`.out.old` is gungraun's previous run) in its only output directory.
    ///
    /// # Errors
    /// [`BudgetError::MissingResults`] when the bench has no callgrind output,
    /// [`BudgetError::BadInstructionCounts`] when it has more than one (it ran several threads
    /// or processes, or under several bench ids: which one to gate would be a guess) or
    /// counted 0 instructions, [`BudgetError::StaleResults`] when it was written before
    /// [`fresh_since`](Self::fresh_since)'s time, [`BudgetError::MalformedEstimates`] when it
    /// has no usable `totals:` line.
    pub fn count(&self, bench: &str) -> Result<(u64, PathBuf), BudgetError> {
        let missing = || BudgetError::MissingResults {
            group: "instructions".to_owned(),
            function: bench.to_owned(),
            path: self.dir.join(format!("{bench}.*")).join(format!("callgrind.{bench}.*.out")),
        };
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|_| missing())?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && dir_bench(p).is_some_and(|b| b == bench))
            .collect();
        dirs.sort();
        let mut outs = Vec::new();
        let mut ids = 0;
        for dir in &dirs {
            let Some(prefix) = dir.file_name().and_then(|n| n.to_str()).map(|n| format!("callgrind.{n}."))
            else {
                continue;
            };
            let entries =
                std::fs::read_dir(dir).map_err(|source| BudgetError::Io { path: dir.clone(), source })?;
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".out"))
                })
                .collect();
            found.sort();
            ids += usize::from(!found.is_empty());
            outs.extend(found);
        }
        let out = match outs.len() {
            0 => return Err(missing()),
            1 => outs.remove(0),
            n => {
                let why = if ids > 1 {
                    format!("it ran under {ids} bench ids")
                } else if outs.iter().all(|p| names_a_thread(p)) {
                    format!("it ran {n} threads")
                } else {
                    "it ran several processes or parts".to_owned()
                };
                let files: Vec<String> = outs.iter().map(|p| p.display().to_string()).collect();
                return Err(BudgetError::BadInstructionCounts {
                    bench: bench.to_owned(),
                    reason: format!("{n} callgrind outputs, one expected ({why}): {}", files.join(", ")),
                });
            }
        };
        if let Some(start) = self.since {
            let written = std::fs::metadata(&out)
                .and_then(|m| m.modified())
                .map_err(|source| BudgetError::Io { path: out.clone(), source })?;
            if written < start {
                return Err(BudgetError::StaleResults {
                    group: "instructions".to_owned(),
                    function: bench.to_owned(),
                    path: out,
                    age_s: start.duration_since(written).unwrap_or_default().as_secs(),
                });
            }
        }
        let text =
            std::fs::read_to_string(&out).map_err(|source| BudgetError::Io { path: out.clone(), source })?;
        let ir = parse_totals(&text)
            .map_err(|reason| BudgetError::MalformedEstimates { path: out.clone(), reason })?;
        if ir == 0 {
            return Err(BudgetError::BadInstructionCounts {
                bench: bench.to_owned(),
                reason: format!(
                    "0 instructions in {}: the bench ran nothing that was counted",
                    out.display()
                ),
            });
        }
        Ok((ir, out))
    }

    /// Fails on an output directory of a bench not in `benches`: a bench added to the group
    /// but not to the baseline (`baseline`) would otherwise never be gated.
    fn only(&self, benches: &[&str], baseline: &Path) -> Result<(), BudgetError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // Nothing counted: each bench's own error says so.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(BudgetError::Io { path: self.dir.clone(), source }),
        };
        let mut unknown: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !dir_bench(p).is_some_and(|b| benches.contains(&b)))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(dir) => Err(BudgetError::BadInstructionCounts {
                bench: dir_bench(dir).unwrap_or_default().to_owned(),
                reason: format!(
                    "{} holds the output of a bench that is neither bare, a layer nor a twin in {}: \
                     add it there, or remove the directory if the bench is gone",
                    dir.display(),
                    baseline.display()
                ),
            }),
        }
    }
}

/// The bench whose output a directory of gungraun's group holds: `<bench>.<id>`, or
/// `<bench>` for a bench without an id (a bench's name is a Rust identifier: no dot).
fn dir_bench(dir: &Path) -> Option<&str> {
    let name = dir.file_name()?.to_str()?;
    Some(name.split_once('.').map_or(name, |(bench, _)| bench))
}

/// Whether a callgrind output's name holds a thread (`callgrind.<bench>.<id>.t2.p1.out`:
/// gungraun's name for one of several threads).
fn names_a_thread(out: &Path) -> bool {
    let dir = out.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or_default();
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.strip_prefix(&format!("callgrind.{dir}.")).is_some_and(|rest| {
        rest.split('.').any(|part| {
            part.strip_prefix('t').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
    })
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

/// Bare's or a twin's count against the one the baseline holds for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchCount {
    /// The bench.
    pub bench: String,
    /// Its instructions.
    pub instructions: u64,
    /// The baseline's.
    pub baseline: u64,
    /// How much it rose above the baseline (0.05: 5%).
    pub rise: f64,
    /// Whether it is within the baseline.
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
    /// Bare, then every twin, against their baseline counts.
    pub benches: Vec<BenchCount>,
    /// Whether every layer and every bench passed.
    pub passed: bool,
}

impl InstructionReport {
    /// The layers and benches that failed, by name.
    pub fn failed(&self) -> Vec<&str> {
        let layers = self.layers.iter().filter(|l| !l.passed).map(|l| l.layer.as_str());
        layers.chain(self.benches.iter().filter(|b| !b.passed).map(|b| b.bench.as_str())).collect()
    }
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
        writeln!(f)?;
        writeln!(
            f,
            "{:<24} {:>12} {:>10} {:>10} {:>8}  verdict",
            "bench", "instructions", "", "baseline", "rise"
        )?;
        for b in &self.benches {
            writeln!(
                f,
                "{:<24} {:>12} {:>10} {:>10} {:>7.1}%  {}",
                b.bench,
                b.instructions,
                "",
                b.baseline,
                b.rise * 100.0,
                if b.passed { "PASS" } else { "FAIL" }
            )?;
        }
        write!(
            f,
            "bare: {} instructions; a layer fails {:.0}% over its baseline or over its twin ratio, bare or a \
             twin {:.0}% over its count: gate {}",
            self.bare,
            self.max_rise * 100.0,
            self.max_rise * 100.0,
            if self.passed { "passed" } else { "FAILED" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_named_after_the_bench_and_id() {
        let out = |name: &str| PathBuf::from(format!("dir/retry.calls/{name}"));
        assert!(names_a_thread(&out("callgrind.retry.calls.t2.p1.out")));
        assert!(names_a_thread(&out("callgrind.retry.calls.t10.out")));
        assert!(!names_a_thread(&out("callgrind.retry.calls.out")));
        assert!(!names_a_thread(&out("callgrind.retry.calls.1234.out")));
        // A bench or id that looks like a thread is not one.
        assert!(!names_a_thread(Path::new("dir/t1.t2/callgrind.t1.t2.out")));
    }

    #[test]
    fn an_output_directory_names_its_bench() {
        assert_eq!(dir_bench(Path::new("dir/tower_load_shed.calls")), Some("tower_load_shed"));
        assert_eq!(dir_bench(Path::new("dir/retry.light.x")), Some("retry"));
        assert_eq!(dir_bench(Path::new("dir/bare")), Some("bare"));
    }

    #[test]
    fn totals_are_the_first_event() {
        assert_eq!(parse_totals("events: Ir Dr\nsummary: 17 3\ntotals: 17 3\n"), Ok(17));
        assert!(parse_totals("events: Dr Ir\ntotals: 1 2\n").is_err());
        assert!(parse_totals("events: Ir\n").is_err());
        assert!(parse_totals("events: Ir\ntotals: x\n").is_err());
    }
}
