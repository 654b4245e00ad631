//! Criterion's results on disk: `<dir>/<group>/<function>/new/estimates.json`, from one run
//! of the benches or from several (attempts), each no older than the gate's run.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::BudgetError;

/// Criterion caps each directory name at this many bytes.
const MAX_DIRECTORY_NAME_LEN: usize = 64;

/// A criterion output directory (`target/criterion` unless told otherwise).
///
/// # Examples
///
/// ```no_run
/// use lift_harness::budget::CriterionResults;
///
/// let results = CriterionResults::locate();
/// let median = results.median_ns("router", "layer")?;
/// println!("router/layer: {median:.1} ns");
/// # Ok::<(), lift_harness::budget::BudgetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriterionResults {
    dir: PathBuf,
    attempts: Option<PathBuf>,
    since: Option<SystemTime>,
}

impl CriterionResults {
    /// The results in this directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), attempts: None, since: None }
    }

    /// Reads the results of every attempt instead of the directory's latest: each
    /// subdirectory of `dir` holds what one run of the benches wrote (criterion's layout,
    /// `<attempt>/<group>/<function>/new/estimates.json`, only for the groups that run
    /// measured), [`median_ns`](Self::median_ns) is the median of a bench's medians over the
    /// attempts that measured it, and the [`Gate`](super::Gate) takes each attempt's figures
    /// from that attempt's medians and decides on their median over the attempts. A noisy
    /// attempt then moves the verdict no more than any other one does.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use lift_harness::budget::CriterionResults;
    ///
    /// let results = CriterionResults::new("target/criterion").with_attempts("target/bench-attempts");
    /// let median = results.median_ns("bulkhead", "layer")?; // over every attempt
    /// # Ok::<(), lift_harness::budget::BudgetError>(())
    /// ```
    pub fn with_attempts(mut self, dir: impl Into<PathBuf>) -> Self {
        self.attempts = Some(dir.into());
        self
    }

    /// Refuses results written before `start` (the run's start): an `estimates.json` older
    /// than it is a [`BudgetError::StaleResults`], so a bench that did not run this time
    /// cannot pass on an old measurement.
    pub fn fresh_since(mut self, start: SystemTime) -> Self {
        self.since = Some(start);
        self
    }

    /// When the newest `estimates.json` it would read was written: the results' own time,
    /// over the attempts when there are attempts, else over the directory. `None` when
    /// there are none.
    pub fn newest_write(&self) -> Option<SystemTime> {
        let mut newest = None;
        let mut dirs = vec![self.attempts.clone().unwrap_or_else(|| self.dir.clone())];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.file_name().is_some_and(|n| n == "estimates.json")
                    && path.parent().and_then(Path::file_name).is_some_and(|n| n == "new")
                {
                    newest = newest.max(entry.metadata().and_then(|m| m.modified()).ok());
                }
            }
        }
        newest
    }

    /// The directory of attempts, when the results come from several runs.
    pub fn attempts(&self) -> Option<&Path> {
        self.attempts.as_deref()
    }

    /// Where criterion writes when `cargo bench` runs it, found the way criterion finds it:
    /// `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the target directory
    /// `cargo metadata` reports (under `cargo run`, which sets `$CARGO`), else
    /// `target/criterion`.
    pub fn locate() -> Self {
        if let Some(home) = std::env::var_os("CRITERION_HOME").filter(|v| !v.is_empty()) {
            return Self::new(home);
        }
        Self::new(target_directory().join("criterion"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where criterion writes the latest estimates of a bench, with its directory-name
    /// rules applied to the group and function names.
    pub fn estimates_path(&self, group: &str, function: &str) -> PathBuf {
        estimates_path(&self.dir, group, function)
    }

    /// The median of a bench, in nanoseconds per iteration: of its latest run, or, with
    /// [attempts](Self::with_attempts), the median of its medians over the attempts.
    ///
    /// # Errors
    /// [`BudgetError::MissingResults`] when criterion has no results for it,
    /// [`BudgetError::StaleResults`] when one is older than the run,
    /// [`BudgetError::MalformedEstimates`] when its `estimates.json` is unusable.
    pub fn median_ns(&self, group: &str, function: &str) -> Result<f64, BudgetError> {
        Ok(median(&self.medians_ns(group, function)?))
    }

    /// A bench's median in each attempt that measured it (one value without attempts).
    ///
    /// # Errors
    /// As [`median_ns`](Self::median_ns).
    pub fn medians_ns(&self, group: &str, function: &str) -> Result<Vec<f64>, BudgetError> {
        let sources = self.sources()?;
        let mut medians = Vec::with_capacity(sources.len());
        for (_, source) in &sources {
            let Some(path) = estimates_in(source, group, function) else { continue };
            medians.push(self.read_median(group, function, path)?);
        }
        if medians.is_empty() {
            return Err(missing(sources.first().map_or(&self.dir, |(_, dir)| dir), group, function));
        }
        Ok(medians)
    }

    /// Each attempt's medians of these functions of a group, in the order of `functions`,
    /// one row per attempt that measured the group (one row without attempts), in attempt
    /// order: what the gate decides on attempt by attempt. An attempt that measured none of
    /// them did not measure the group and has no row.
    ///
    /// # Errors
    /// [`BudgetError::MissingResults`] when no attempt measured the group, or when one
    /// measured some of the functions but not all (its figures would mix attempts),
    /// naming the first function missing; otherwise as [`median_ns`](Self::median_ns).
    pub(super) fn group_medians(
        &self,
        group: &str,
        functions: &[&str],
    ) -> Result<Vec<AttemptMedians>, BudgetError> {
        let sources = self.sources()?;
        let mut rows = Vec::with_capacity(sources.len());
        for (attempt, source) in &sources {
            let paths: Vec<Option<PathBuf>> =
                functions.iter().map(|f| estimates_in(source, group, f)).collect();
            if paths.iter().all(Option::is_none) {
                continue;
            }
            let mut medians_ns = Vec::with_capacity(functions.len());
            for (function, path) in functions.iter().zip(paths) {
                let path = path.ok_or_else(|| missing(source, group, function))?;
                medians_ns.push(self.read_median(group, function, path)?);
            }
            rows.push(AttemptMedians { attempt: attempt.clone(), medians_ns });
        }
        if rows.is_empty() {
            let first = functions.first().copied().unwrap_or_default();
            return Err(missing(sources.first().map_or(&self.dir, |(_, dir)| dir), group, first));
        }
        Ok(rows)
    }

    /// The directories to read, each with its attempt's name (none without attempts), in
    /// attempt order: `2` before `10`, as the gate numbers them.
    fn sources(&self) -> Result<Vec<(Option<String>, PathBuf)>, BudgetError> {
        let Some(attempts) = &self.attempts else { return Ok(vec![(None, self.dir.clone())]) };
        let mut dirs: Vec<(Option<String>, PathBuf)> = std::fs::read_dir(attempts)
            .map_err(|source| BudgetError::Io { path: attempts.clone(), source })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .map(|p| (p.file_name().map(|n| n.to_string_lossy().into_owned()), p))
            .collect();
        dirs.sort_by(|(a, _), (b, _)| {
            let number = |name: &Option<String>| name.as_deref().and_then(|n| n.parse::<u64>().ok());
            match (number(a), number(b)) {
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.cmp(b),
            }
        });
        Ok(dirs)
    }

    /// The median in an `estimates.json`, refused when it is older than the run.
    fn read_median(&self, group: &str, function: &str, path: PathBuf) -> Result<f64, BudgetError> {
        if let Some(start) = self.since {
            let written = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|source| BudgetError::Io { path: path.clone(), source })?;
            if written < start {
                return Err(BudgetError::StaleResults {
                    group: group.to_owned(),
                    function: function.to_owned(),
                    path,
                    age_s: start.duration_since(written).unwrap_or_default().as_secs(),
                });
            }
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|source| BudgetError::Io { path: path.clone(), source })?;
        parse_median(&text).map_err(|reason| BudgetError::MalformedEstimates { path, reason })
    }
}

/// One attempt's medians of a group's functions.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AttemptMedians {
    /// The attempt's directory name (none without attempts).
    pub(super) attempt: Option<String>,
    /// The medians, in the order the functions were asked for.
    pub(super) medians_ns: Vec<f64>,
}

fn missing(dir: &Path, group: &str, function: &str) -> BudgetError {
    BudgetError::MissingResults {
        group: group.to_owned(),
        function: function.to_owned(),
        path: estimates_path(dir, group, function),
    }
}

/// The median of some values (the mean of the middle two for an even count); `values` is
/// never empty here (the cold-start gate's leads use it too).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn estimates_path(dir: &Path, group: &str, function: &str) -> PathBuf {
    dir.join(directory_name(group)).join(directory_name(function)).join("new").join("estimates.json")
}

/// The `estimates.json` of a bench in one criterion directory, if it has one.
fn estimates_in(dir: &Path, group: &str, function: &str) -> Option<PathBuf> {
    let expected = estimates_path(dir, group, function);
    if expected.is_file() {
        return Some(expected);
    }
    // Criterion renames a directory whose sanitized name collides with another bench's
    // (`group_2`); its `benchmark.json` still names the real bench.
    find_by_id(dir, group, function)
}

/// Scans `<dir>/*/*/new/benchmark.json` for the bench with this group and function id.
fn find_by_id(dir: &Path, group: &str, function: &str) -> Option<PathBuf> {
    #[derive(serde::Deserialize)]
    struct BenchmarkId {
        group_id: String,
        function_id: Option<String>,
        value_str: Option<String>,
    }
    let subdirs = |dir: &Path| {
        std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir())
    };
    subdirs(dir).flat_map(|g| subdirs(&g).collect::<Vec<_>>()).find_map(|bench| {
        let new = bench.join("new");
        let text = std::fs::read_to_string(new.join("benchmark.json")).ok()?;
        let id: BenchmarkId = serde_json::from_str(&text).ok()?;
        let matches =
            id.group_id == group && id.function_id.as_deref() == Some(function) && id.value_str.is_none();
        matches.then(|| new.join("estimates.json")).filter(|p| p.is_file())
    })
}

/// Criterion's directory name for a group or function name (criterion 0.5's
/// `make_filename_safe`): path and shell metacharacters become `_`, the name is cut to 64
/// bytes, and on Windows trailing spaces go and letters are lowercased.
///
/// # Examples
///
/// ```
/// use lift_harness::budget::directory_name;
/// assert_eq!(directory_name("circuit_breaker"), "circuit_breaker");
/// assert_eq!(directory_name("GET /payments/:id"), "GET _payments__id");
/// ```
pub fn directory_name(name: &str) -> String {
    let mut safe = name.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_");
    let mut end = safe.len().min(MAX_DIRECTORY_NAME_LEN);
    while !safe.is_char_boundary(end) {
        end -= 1;
    }
    safe.truncate(end);
    if cfg!(windows) {
        safe = safe.trim_end().to_lowercase();
    }
    safe
}

/// `median.point_estimate` of an `estimates.json`, in nanoseconds.
fn parse_median(text: &str) -> Result<f64, String> {
    let estimates: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not json: {e}"))?;
    let point = estimates
        .get("median")
        .and_then(|m| m.get("point_estimate"))
        .ok_or_else(|| "no median.point_estimate".to_owned())?;
    match point.as_f64() {
        Some(ns) if ns.is_finite() && ns >= 0.0 => Ok(ns),
        _ => Err(format!("median.point_estimate is {point}, not a duration in nanoseconds")),
    }
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else the one `cargo metadata` reports
/// (under `cargo run`, which sets `$CARGO`), else `target`. Criterion's `$CRITERION_HOME`
/// moves criterion's results only, never the target directory.
pub(super) fn target_directory() -> PathBuf {
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(target);
    }
    cargo_target_directory().unwrap_or_else(|| PathBuf::from("target"))
}

/// The target directory `cargo metadata` reports, when running under cargo. Asked once per
/// process: the criterion results, the history and the callgrind outputs all default to it,
/// and each ask is a cargo process.
fn cargo_target_directory() -> Option<PathBuf> {
    static ASKED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ASKED.get_or_init(ask_cargo_target_directory).clone()
}

fn ask_cargo_target_directory() -> Option<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        target_directory: PathBuf,
    }
    let cargo = std::env::var_os("CARGO")?;
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice::<Metadata>(&output.stdout).ok().map(|m| m.target_directory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_like_criterion() {
        assert_eq!(directory_name("load_shed"), "load_shed");
        assert_eq!(directory_name("a b"), "a b");
        assert_eq!(directory_name(r#"a?"/\*<>:|^b"#), "a__________b");
        assert_eq!(directory_name(&"x".repeat(70)).len(), 64);
        // A cut never splits a character.
        assert_eq!(directory_name(&format!("{}é", "x".repeat(63))), "x".repeat(63));
    }

    #[test]
    fn median_comes_from_the_point_estimate() {
        let json = r#"{"mean":{"point_estimate":12.0},"median":{"confidence_interval":
            {"confidence_level":0.95,"lower_bound":10.0,"upper_bound":11.0},
            "point_estimate":10.5,"standard_error":0.1},"slope":null}"#;
        assert_eq!(parse_median(json), Ok(10.5));
    }

    #[test]
    fn the_median_of_attempts_is_the_middle_one() {
        assert_eq!(median(&[5.0]), 5.0);
        assert_eq!(median(&[100.0, 300.0, 110.0]), 110.0);
        assert_eq!(median(&[100.0, 120.0]), 110.0);
    }

    #[test]
    fn malformed_estimates_say_what_is_wrong() {
        assert!(parse_median("{").unwrap_err().starts_with("not json"));
        assert_eq!(parse_median(r#"{"mean":{}}"#).unwrap_err(), "no median.point_estimate");
        assert!(parse_median(r#"{"median":{"point_estimate":"fast"}}"#).unwrap_err().contains("\"fast\""));
        assert!(parse_median(r#"{"median":{"point_estimate":-1.0}}"#).is_err());
    }
}
