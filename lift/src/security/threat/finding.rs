//! Findings, their severity and where they were found, and the request's risk score.

use std::fmt;

use serde::Serialize;

/// How serious a finding is; each level weighs into the [risk score](ThreatAssessment::score).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Odd, rarely an attack on its own (weight 10).
    Low,
    /// Suspicious (weight 30).
    Medium,
    /// An attack pattern (weight 70: blocks at the default threshold).
    High,
    /// An attack on something that must never be reached, e.g. cloud metadata (weight 90).
    Critical,
}

impl Severity {
    /// The weight of the severity in the risk score.
    pub fn weight(self) -> u8 {
        match self {
            Self::Low => 10,
            Self::Medium => 30,
            Self::High => 70,
            Self::Critical => 90,
        }
    }
}

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// SQL injection: tautologies after a quote, `UNION SELECT`, stacked statements, timing functions.
    SqlInjection,
    /// Cross-site scripting: script tags, event handler attributes, `javascript:` URLs.
    Xss,
    /// Path traversal: `../`, well-known system files, NUL bytes.
    PathTraversal,
    /// Command injection: a shell command after a separator (`;`, `|`, `&`, `` ` ``, `$(`).
    CommandInjection,
    /// Server-side request forgery: a URL to a private, loopback, link-local or metadata
    /// address, or with a scheme such as `file://` or `gopher://`.
    Ssrf,
    /// A body larger than the configured limit.
    OversizedBody,
    /// A JSON body nested deeper than the configured limit.
    DeepNesting,
    /// A burst of failed authentication from one IP or for one user.
    AuthFailureBurst,
    /// One principal touching more tenants than allowed in a window.
    TenantHopping,
}

impl FindingKind {
    /// A stable name, as stored in snapshots.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SqlInjection => "sql_injection",
            Self::Xss => "xss",
            Self::PathTraversal => "path_traversal",
            Self::CommandInjection => "command_injection",
            Self::Ssrf => "ssrf",
            Self::OversizedBody => "oversized_body",
            Self::DeepNesting => "deep_nesting",
            Self::AuthFailureBurst => "auth_failure_burst",
            Self::TenantHopping => "tenant_hopping",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the request a finding was made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "in", content = "name", rename_all = "snake_case")]
pub enum Location {
    /// The URL path.
    Path,
    /// The query string: the parameter's name, or `[redacted]` when it is not a short
    /// identifier (the name is the client's: it may be the payload itself).
    Query(String),
    /// A header: its name.
    Header(String),
    /// The body: the JSON field (the last key seen before the value; empty at the top level
    /// or outside JSON), or `[redacted]` when the key is not a short identifier.
    Body(String),
    /// The client's behaviour over many requests, not this request's content.
    Behaviour,
}

/// One finding: its kind, where it was found, how serious it is, and which rule matched.
///
/// The rule is a fixed description (`"union select"`), never the matched text: findings
/// go into audit snapshots and alerts, which must not carry request data.
///
/// # Examples
///
/// ```
/// use lift::security::threat::{Finding, FindingKind, Location, Severity};
///
/// let f = Finding::new(FindingKind::Xss, Location::Path, Severity::High, "script tag");
/// assert_eq!(f.kind.as_str(), "xss");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// Where.
    pub location: Location,
    /// How serious it is.
    pub severity: Severity,
    /// The rule that matched.
    pub rule: &'static str,
}

impl Finding {
    /// A finding.
    pub fn new(kind: FindingKind, location: Location, severity: Severity, rule: &'static str) -> Self {
        Self { kind, location, severity, rule }
    }
}

/// The threat assessment of one request: its findings and a risk score from 0 to 100.
///
/// A [`ThreatLayer`](super::ThreatLayer) puts it in the extensions of every request it lets
/// through, for handlers and inner middleware.
///
/// # Examples
///
/// ```
/// use lift::security::threat::{Finding, FindingKind, Location, Severity, ThreatAssessment};
///
/// let clean = ThreatAssessment::default();
/// assert_eq!(clean.score(), 0);
/// let one = ThreatAssessment::from_findings(vec![Finding::new(
///     FindingKind::SqlInjection, Location::Query("id".into()), Severity::High, "union select",
/// )]);
/// assert_eq!(one.score(), 70);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThreatAssessment {
    score: u8,
    findings: Vec<Finding>,
}

impl ThreatAssessment {
    /// The assessment of these findings.
    pub fn from_findings(findings: Vec<Finding>) -> Self {
        Self { score: score(&findings), findings }
    }

    /// The assessment a request carries, if a [`ThreatLayer`](super::ThreatLayer) let it through.
    pub fn of<B>(req: &http::Request<B>) -> Option<&ThreatAssessment> {
        req.extensions().get::<ThreatAssessment>()
    }

    /// The risk score, 0 (nothing found) to 100.
    pub fn score(&self) -> u8 {
        self.score
    }

    /// The findings.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Adds findings and rescores.
    pub fn extend(&mut self, findings: impl IntoIterator<Item = Finding>) {
        self.findings.extend(findings);
        self.score = score(&self.findings);
    }
}

/// The most serious finding's weight, plus 5 for each further finding, capped at 100: one
/// high finding blocks at the default threshold (70), several medium ones add up to
/// suspicion without blocking on their own.
fn score(findings: &[Finding]) -> u8 {
    let Some(top) = findings.iter().map(|f| f.severity.weight()).max() else {
        return 0;
    };
    let more = (findings.len() as u32 - 1).saturating_mul(5);
    (u32::from(top) + more).min(100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(severity: Severity) -> Finding {
        Finding::new(FindingKind::Xss, Location::Path, severity, "t")
    }

    #[test]
    fn score_takes_the_worst_and_adds_a_little_per_extra_finding() {
        assert_eq!(score(&[]), 0);
        assert_eq!(score(&[f(Severity::Medium)]), 30);
        assert_eq!(score(&[f(Severity::Medium), f(Severity::High)]), 75);
        assert_eq!(score(&vec![f(Severity::Critical); 10]), 100);
    }
}
