//! Criterion's results on disk: `<dir>/<group>/<function>/new/estimates.json`.

use std::path::{Path, PathBuf};

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
}

impl CriterionResults {
    /// The results in this directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where criterion writes when `cargo bench` runs it, found the way criterion finds it:
    /// `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the target directory
    /// `cargo metadata` reports (under `cargo run`, which sets `$CARGO`), else
    /// `target/criterion`.
    pub fn locate() -> Self {
        if let Some(home) = std::env::var_os("CRITERION_HOME").filter(|v| !v.is_empty()) {
            return Self::new(home);
        }
        if let Some(target) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
            return Self::new(PathBuf::from(target).join("criterion"));
        }
        if let Some(target) = cargo_target_directory() {
            return Self::new(target.join("criterion"));
        }
        Self::new("target/criterion")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where criterion writes the latest estimates of a bench, with its directory-name
    /// rules applied to the group and function names.
    pub fn estimates_path(&self, group: &str, function: &str) -> PathBuf {
        self.dir.join(directory_name(group)).join(directory_name(function)).join("new").join("estimates.json")
    }

    /// The median of a bench's latest run, in nanoseconds per iteration.
    ///
    /// # Errors
    /// [`BudgetError::MissingResults`] when criterion has no results for it,
    /// [`BudgetError::MalformedEstimates`] when its `estimates.json` is unusable.
    pub fn median_ns(&self, group: &str, function: &str) -> Result<f64, BudgetError> {
        let expected = self.estimates_path(group, function);
        let path = if expected.is_file() {
            expected
        } else {
            // Criterion renames a directory whose sanitized name collides with another
            // bench's (`group_2`); its `benchmark.json` still names the real bench.
            self.find_by_id(group, function).ok_or_else(|| BudgetError::MissingResults {
                group: group.to_owned(),
                function: function.to_owned(),
                path: expected,
            })?
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|source| BudgetError::Io { path: path.clone(), source })?;
        parse_median(&text).map_err(|reason| BudgetError::MalformedEstimates { path, reason })
    }

    /// Scans `<dir>/*/*/new/benchmark.json` for the bench with this group and function id.
    fn find_by_id(&self, group: &str, function: &str) -> Option<PathBuf> {
        #[derive(serde::Deserialize)]
        struct BenchmarkId {
            group_id: String,
            function_id: Option<String>,
            value_str: Option<String>,
        }
        let subdirs = |dir: &Path| {
            std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir())
        };
        subdirs(&self.dir).flat_map(|g| subdirs(&g).collect::<Vec<_>>()).find_map(|bench| {
            let new = bench.join("new");
            let text = std::fs::read_to_string(new.join("benchmark.json")).ok()?;
            let id: BenchmarkId = serde_json::from_str(&text).ok()?;
            let matches =
                id.group_id == group && id.function_id.as_deref() == Some(function) && id.value_str.is_none();
            matches.then(|| new.join("estimates.json")).filter(|p| p.is_file())
        })
    }
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

/// The target directory `cargo metadata` reports, when running under cargo.
fn cargo_target_directory() -> Option<PathBuf> {
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
    fn malformed_estimates_say_what_is_wrong() {
        assert!(parse_median("{").unwrap_err().starts_with("not json"));
        assert_eq!(parse_median(r#"{"mean":{}}"#).unwrap_err(), "no median.point_estimate");
        assert!(parse_median(r#"{"median":{"point_estimate":"fast"}}"#).unwrap_err().contains("\"fast\""));
        assert!(parse_median(r#"{"median":{"point_estimate":-1.0}}"#).is_err());
    }
}
