//! What the checks found, kept as evidence, and the report per framework built from it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::rule::{Framework, Rule, Severity, Violation};
use crate::security::audit::{AuditTrail, Verified};

/// How many violations of each rule are kept as evidence.
const KEPT: usize = 20;

/// One violation kept as evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    /// The request.
    pub request_id: String,
    /// When, in milliseconds since the epoch.
    pub at_ms: u64,
    /// What was found.
    pub detail: String,
    /// Whether the request was blocked.
    pub blocked: bool,
}

/// The record of one rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleRecord {
    /// The rule's id.
    pub id: String,
    /// Its framework.
    pub framework: Framework,
    /// What it asks.
    pub title: String,
    /// Its severity.
    pub severity: Severity,
    /// Invocations it checked.
    pub checked: u64,
    /// Invocations that broke it and were answered (the breach happened).
    pub violated: u64,
    /// Invocations that would have broken it and were refused before the handler ran.
    pub blocked: u64,
    /// The latest violations.
    pub evidence: VecDeque<Evidence>,
}

/// Where the checks of a [`ComplianceLayer`](super::ComplianceLayer) are recorded: per
/// rule, how many invocations it checked and which broke it.
#[derive(Debug, Clone, Default)]
pub struct ComplianceRecorder {
    rules: Arc<Mutex<BTreeMap<String, RuleRecord>>>,
}

impl ComplianceRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `rules` checked one invocation and found `violations`.
    pub fn record(&self, rules: &[&dyn Rule], violations: &[Violation], request_id: &str, blocked: bool) {
        let mut map = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        for rule in rules {
            let record = map.entry(rule.id().to_owned()).or_insert_with(|| RuleRecord {
                id: rule.id().to_owned(),
                framework: rule.framework(),
                title: rule.title().to_owned(),
                severity: rule.severity(),
                checked: 0,
                violated: 0,
                blocked: 0,
                evidence: VecDeque::new(),
            });
            record.checked += 1;
            for v in violations.iter().filter(|v| v.rule == rule.id()) {
                if blocked {
                    record.blocked += 1;
                } else {
                    record.violated += 1;
                }
                if record.evidence.len() == KEPT {
                    record.evidence.pop_front();
                }
                record.evidence.push_back(Evidence {
                    request_id: request_id.to_owned(),
                    at_ms,
                    detail: v.detail.clone(),
                    blocked,
                });
            }
        }
    }

    /// Every rule's record.
    pub fn records(&self) -> Vec<RuleRecord> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// The report per framework, from what was recorded.
    pub fn report(&self) -> ComplianceReport {
        let records = self.records();
        let frameworks = Framework::ALL
            .iter()
            .map(|f| {
                let requirements: Vec<RuleRecord> =
                    records.iter().filter(|r| r.framework == *f).cloned().collect();
                let status = if requirements.is_empty() || requirements.iter().all(|r| r.checked == 0) {
                    Status::NotExercised
                } else if requirements.iter().any(|r| r.violated > 0) {
                    Status::Fail
                } else {
                    Status::Pass
                };
                FrameworkReport { framework: *f, status, requirements, audit: Vec::new() }
            })
            .collect();
        ComplianceReport { frameworks }
    }
}

/// A framework's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    /// Every requirement was checked and never broken (attempts refused before the handler
    /// ran do not count as breaches; they are in `blocked`).
    Pass,
    /// A requirement was broken.
    Fail,
    /// Nothing was checked: no evidence either way.
    NotExercised,
}

/// The audit chain of a tenant, verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEvidence {
    /// The tenant.
    pub tenant: String,
    /// Entries in the chain, or none when it is broken or unreadable.
    pub entries: Option<u64>,
    /// The chain's head hash (hex), to anchor elsewhere.
    pub head: Option<String>,
    /// Why it did not verify.
    pub problem: Option<String>,
}

/// One framework in the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FrameworkReport {
    /// The framework.
    pub framework: Framework,
    /// The verdict.
    pub status: Status,
    /// Its requirements, with their checks and evidence.
    pub requirements: Vec<RuleRecord>,
    /// The audit chains verified for it.
    pub audit: Vec<AuditEvidence>,
}

/// The compliance report: per framework, its requirements, how often each was checked and
/// broken, the evidence, and the audit chains verified. Built from recorded checks and
/// the audit trail, never from constants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComplianceReport {
    /// One entry per framework.
    pub frameworks: Vec<FrameworkReport>,
}

impl ComplianceReport {
    /// Verifies the audit chains of `tenants` and adds them as evidence to every framework;
    /// a broken chain fails every framework (each relies on its audit trail).
    pub async fn with_audit(mut self, trail: &AuditTrail, tenants: &[&str]) -> Self {
        let mut evidence = Vec::new();
        for tenant in tenants {
            evidence.push(match trail.verify(tenant).await {
                Ok(Verified { entries, head, .. }) => AuditEvidence {
                    tenant: (*tenant).to_owned(),
                    entries: Some(entries),
                    head: Some(head.1.iter().map(|b| format!("{b:02x}")).collect()),
                    problem: None,
                },
                Err(err) => AuditEvidence {
                    tenant: (*tenant).to_owned(),
                    entries: None,
                    head: None,
                    problem: Some(err.to_string()),
                },
            });
        }
        let broken = evidence.iter().any(|e| e.problem.is_some());
        for f in &mut self.frameworks {
            f.audit = evidence.clone();
            if broken {
                f.status = Status::Fail;
            }
        }
        self
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The report as Markdown, for people.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::from("# Compliance report\n");
        for f in &self.frameworks {
            let _ = write!(out, "\n## {} — {:?}\n\n| Requirement | Severity | Checked | Violated | Blocked | Latest evidence |\n|---|---|---|---|---|---|\n", f.framework, f.status);
            for r in &f.requirements {
                let latest =
                    r.evidence.back().map_or(String::new(), |e| format!("{} ({})", e.detail, e.request_id));
                let _ = writeln!(
                    out,
                    "| {} {} | {:?} | {} | {} | {} |",
                    r.id, r.title, r.severity, r.checked, r.violated, latest
                );
            }
            for a in &f.audit {
                let _ = writeln!(
                    out,
                    "\nAudit chain of `{}`: {}",
                    a.tenant,
                    match (&a.entries, &a.problem) {
                        (Some(n), _) => format!("{n} entries verified"),
                        (_, Some(p)) => format!("BROKEN: {p}"),
                        _ => "unknown".to_owned(),
                    }
                );
            }
        }
        out
    }
}
