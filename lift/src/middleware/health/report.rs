//! The JSON health report.

use serde::{Deserialize, Serialize};

/// The overall status of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check passed.
    Ok,
    /// Only non-critical checks failed: still ready.
    Degraded,
    /// A critical check failed: not ready.
    Unhealthy,
}

impl Status {
    /// The HTTP status to answer with: 200 unless unhealthy (503).
    pub fn http_status(self) -> http::StatusCode {
        match self {
            Status::Ok | Status::Degraded => http::StatusCode::OK,
            Status::Unhealthy => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The check passed.
    Ok,
    /// The check returned an error (or panicked).
    Failed,
    /// The check did not finish within its timeout.
    Timeout,
}

/// One check in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// How it went.
    pub status: CheckStatus,
    /// Whether it is critical.
    pub critical: bool,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The body of `/health` and `/health/ready`.
///
/// # Examples
///
/// ```
/// use lift::middleware::health::{HealthReport, Status};
/// let report: HealthReport = serde_json::from_str(r#"{"status":"degraded","checks":[]}"#).unwrap();
/// assert_eq!(report.status, Status::Degraded);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The overall status.
    pub status: Status,
    /// Every check that ran, in the order they were added.
    pub checks: Vec<CheckReport>,
}

impl HealthReport {
    /// A report over these check results.
    pub fn from_checks(checks: Vec<CheckReport>) -> Self {
        let failed =
            |critical: bool| checks.iter().any(|c| c.critical == critical && c.status != CheckStatus::Ok);
        let status = if failed(true) {
            Status::Unhealthy
        } else if failed(false) {
            Status::Degraded
        } else {
            Status::Ok
        };
        Self { status, checks }
    }

    /// The same report restricted to critical checks (what readiness looks at).
    pub fn critical_only(&self) -> Self {
        Self::from_checks(self.checks.iter().filter(|c| c.critical).cloned().collect())
    }
}
