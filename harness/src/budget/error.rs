//! The error types of [`crate::budget`].

use std::path::PathBuf;

/// Why the budget gate could not read its inputs.
///
/// A bench that is merely over budget is not an error but a [`Verdict::Fail`] in the
/// [`Report`]; see [`GateFailed`] for the error the command line turns that into.
///
/// [`Verdict::Fail`]: super::Verdict::Fail
/// [`Report`]: super::Report
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// A file the gate needs does not exist.
    #[error("{what} {} not found", path.display())]
    MissingFile {
        /// What the file is, e.g. `budgets file`.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The budgets file is not valid TOML, or not in the budgets format.
    #[error("bad budgets file {}{}: {}", path.display(), at(*location), source.message().trim_end())]
    BadToml {
        /// The budgets file.
        path: PathBuf,
        /// Where the error is: line and column, from 1.
        location: Option<(usize, usize)>,
        /// The parser's error (with line and column).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The budgets file is valid TOML but declares something unusable.
    #[error("bad budgets file {}: {reason}", path.display())]
    InvalidBudget {
        /// The budgets file.
        path: PathBuf,
        /// What is wrong, naming the group.
        reason: String,
    },
    /// The criterion directory does not exist: nothing was benched.
    #[error("no criterion results in {}: run cargo bench first, or pass --criterion-dir", path.display())]
    NoCriterionDir {
        /// The criterion directory that was looked for.
        path: PathBuf,
    },
    /// Criterion has no results for a bench the budgets file names.
    #[error("no results for {group}/{function}: run cargo bench first (looked for {})", path.display())]
    MissingResults {
        /// The criterion group (the budget's key).
        group: String,
        /// The bench function (`bare` or `layer`).
        function: String,
        /// The `estimates.json` that does not exist.
        path: PathBuf,
    },
    /// A bench's results are older than the run: it was not measured this time.
    #[error(
        "results for {group}/{function} are {age_s} s older than the run: it was not measured this time ({})",
        path.display()
    )]
    StaleResults {
        /// The criterion group (the budget's key).
        group: String,
        /// The bench function.
        function: String,
        /// The stale `estimates.json`.
        path: PathBuf,
        /// How much older than the run's start it is, in seconds.
        age_s: u64,
    },
    /// A line of the bench history file is not a run record.
    #[error("malformed bench history {} line {line}: {reason}", path.display())]
    MalformedHistory {
        /// The history file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The instruction bench's callgrind output is not one plausible count per bench: a bench
    /// with several outputs, a count of 0, a layer below bare, or the output of a bench the
    /// baseline does not name.
    #[error("instruction counts of {bench}: {reason}")]
    BadInstructionCounts {
        /// The bench.
        bench: String,
        /// What is wrong, naming the files.
        reason: String,
    },
    /// A criterion `estimates.json` cannot be parsed or holds no usable median.
    #[error("malformed criterion estimates {}: {reason}", path.display())]
    MalformedEstimates {
        /// The `estimates.json` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The gate ran and at least one bench is over budget, or has no results.
///
/// # Examples
///
/// ```
/// use lift_harness::budget::GateFailed;
/// let err = GateFailed { over_budget: vec!["bulkhead".into()], missing: vec![], stale: vec![] };
/// assert_eq!(err.to_string(), "budget gate failed: over budget: bulkhead");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget gate failed: {}", describe(over_budget, missing, stale))]
pub struct GateFailed {
    /// The groups whose overhead exceeds their budget.
    pub over_budget: Vec<String>,
    /// The groups without criterion results (when missing results are not allowed).
    pub missing: Vec<String>,
    /// The groups whose results are older than the run.
    pub stale: Vec<String>,
}

fn at(location: Option<(usize, usize)>) -> String {
    location.map(|(line, column)| format!(" at line {line}, column {column}")).unwrap_or_default()
}

fn describe(over_budget: &[String], missing: &[String], stale: &[String]) -> String {
    let mut parts = Vec::new();
    if !over_budget.is_empty() {
        parts.push(format!("over budget: {}", over_budget.join(", ")));
    }
    if !missing.is_empty() {
        parts.push(format!("no results (run cargo bench first): {}", missing.join(", ")));
    }
    if !stale.is_empty() {
        parts.push(format!("results older than the run: {}", stale.join(", ")));
    }
    parts.join("; ")
}
