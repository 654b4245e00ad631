//! What the checks found, kept as evidence, and the report per framework built from it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::rule::{Framework, Rule, Severity, Verdict};
use crate::security::audit::{AuditStorage, AuditTrail, Checkpoint, Verified};

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

/// The record of one rule (one requirement).
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
    /// Invocations it applied to (held + violated + blocked + unknown).
    pub applied: u64,
    /// Invocations it applied to and that kept it.
    pub held: u64,
    /// Invocations that broke it and were answered (the breach happened).
    pub violated: u64,
    /// Invocations that would have broken it and were refused before the handler ran.
    pub blocked: u64,
    /// Invocations it applied to that cannot prove it held (transport or region unknown).
    pub unknown: u64,
    /// Its verdict over everything recorded.
    pub status: RequirementStatus,
    /// The latest violations (and unknowns).
    pub evidence: VecDeque<Evidence>,
}

impl RuleRecord {
    fn new(rule: &dyn Rule) -> Self {
        Self {
            id: rule.id().to_owned(),
            framework: rule.framework(),
            title: rule.title().to_owned(),
            severity: rule.severity(),
            applied: 0,
            held: 0,
            violated: 0,
            blocked: 0,
            unknown: 0,
            status: RequirementStatus::NotExercised,
            evidence: VecDeque::new(),
        }
    }

    /// Whether no invocation it applied to was recorded.
    pub fn not_exercised(&self) -> bool {
        self.applied == 0
    }

    fn status(&self) -> RequirementStatus {
        if self.violated > 0 {
            RequirementStatus::Violated
        } else if self.applied == 0 {
            RequirementStatus::NotExercised
        } else if self.unknown > 0 {
            RequirementStatus::Unknown
        } else {
            RequirementStatus::Held
        }
    }

    fn keep(&mut self, evidence: Evidence) {
        if self.evidence.len() == KEPT {
            self.evidence.pop_front();
        }
        self.evidence.push_back(evidence);
    }
}

/// A requirement's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RequirementStatus {
    /// It applied at least once and held every time (refusals before the handler count as
    /// holding: the breach was prevented).
    Held,
    /// It was broken at least once.
    Violated,
    /// It applied, but some invocations could not prove it held.
    Unknown,
    /// It never applied: no evidence either way.
    NotExercised,
}

/// How many responses had their audit entry stored, answered without it (degraded), or
/// were refused because it could not be stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuditStorageCounts {
    /// Entries stored before the response.
    pub stored: u64,
    /// Responses answered although their entry was not stored (the layer degrades).
    pub degraded: u64,
    /// Requests refused with 503 because their entry could not be stored.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Recorded {
    rules: BTreeMap<String, RuleRecord>,
    audit: AuditStorageCounts,
}

/// Where the checks of a [`ComplianceLayer`](super::ComplianceLayer) are recorded: per
/// rule, how many invocations it applied to and what it found.
#[derive(Debug, Clone, Default)]
pub struct ComplianceRecorder {
    recorded: Arc<Mutex<Recorded>>,
}

impl ComplianceRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `rules` known, so the report lists them as not exercised until they apply.
    pub fn register(&self, rules: &[Arc<dyn Rule>]) {
        let mut recorded = self.lock();
        for rule in rules {
            recorded.rules.entry(rule.id().to_owned()).or_insert_with(|| RuleRecord::new(&**rule));
        }
    }

    /// Records the verdicts of one invocation's rules (`blocked`: the request was refused
    /// before the handler, so its violations count as blocked).
    pub fn record(&self, verdicts: &[(Arc<dyn Rule>, Verdict)], request_id: &str, blocked: bool) {
        let mut recorded = self.lock();
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        for (rule, verdict) in verdicts {
            let record =
                recorded.rules.entry(rule.id().to_owned()).or_insert_with(|| RuleRecord::new(&**rule));
            if verdict.applied() {
                record.applied += 1;
            }
            let evidence = |detail: &str| Evidence {
                request_id: request_id.to_owned(),
                at_ms,
                detail: detail.to_owned(),
                blocked,
            };
            match verdict {
                Verdict::NotApplicable => {}
                Verdict::Held => record.held += 1,
                Verdict::Violated(detail) if blocked => {
                    record.blocked += 1;
                    record.keep(evidence(detail));
                }
                Verdict::Violated(detail) => {
                    record.violated += 1;
                    record.keep(evidence(detail));
                }
                Verdict::Unknown(detail) => {
                    record.unknown += 1;
                    record.keep(evidence(detail));
                }
            }
            record.status = record.status();
        }
    }

    /// Records what became of one response's audit entry.
    pub fn record_audit(&self, storage: AuditStorage) {
        let mut recorded = self.lock();
        match storage {
            AuditStorage::Stored => recorded.audit.stored += 1,
            AuditStorage::Degraded => recorded.audit.degraded += 1,
            AuditStorage::Refused => recorded.audit.refused += 1,
        }
    }

    /// Adds everything `other` recorded to this recorder (e.g. one scenario's recorder to
    /// the run's), keeping the newest evidence.
    pub fn absorb(&self, other: &ComplianceRecorder) {
        if Arc::ptr_eq(&self.recorded, &other.recorded) {
            return;
        }
        let (records, audit) = {
            let theirs = other.lock();
            (theirs.rules.values().cloned().collect::<Vec<_>>(), theirs.audit)
        };
        let mut mine = self.lock();
        for theirs in records {
            let record = mine.rules.entry(theirs.id.clone()).or_insert_with(|| RuleRecord {
                applied: 0,
                held: 0,
                violated: 0,
                blocked: 0,
                unknown: 0,
                evidence: VecDeque::new(),
                ..theirs.clone()
            });
            record.applied += theirs.applied;
            record.held += theirs.held;
            record.violated += theirs.violated;
            record.blocked += theirs.blocked;
            record.unknown += theirs.unknown;
            for e in theirs.evidence {
                record.keep(e);
            }
            record.status = record.status();
        }
        mine.audit.stored += audit.stored;
        mine.audit.degraded += audit.degraded;
        mine.audit.refused += audit.refused;
    }

    /// Every rule's record.
    pub fn records(&self) -> Vec<RuleRecord> {
        self.lock().rules.values().cloned().collect()
    }

    /// The report per framework, from what was recorded.
    pub fn report(&self) -> ComplianceReport {
        let (records, audit_storage) = {
            let recorded = self.lock();
            (recorded.rules.values().cloned().collect::<Vec<_>>(), recorded.audit)
        };
        let frameworks = Framework::ALL
            .iter()
            .map(|f| {
                let requirements: Vec<RuleRecord> =
                    records.iter().filter(|r| r.framework == *f).cloned().collect();
                FrameworkReport::new(*f, requirements)
            })
            .collect();
        ComplianceReport { frameworks, audit_storage }
    }
}

/// A framework's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    /// Every requirement applied at least once and held every time (attempts refused
    /// before the handler ran are breaches prevented, in `blocked`).
    Pass,
    /// A requirement was broken (or an audit chain did not verify).
    Fail,
    /// Some requirements held, but others never applied or could not be proven
    /// (`not_exercised`, `unknown`): no verdict.
    Incomplete,
    /// No requirement applied: no evidence either way.
    NotExercised,
}

/// The audit chain of a tenant, verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEvidence {
    /// The tenant.
    pub tenant: String,
    /// Entries in the chain, or none when it is broken or unreadable.
    pub entries: Option<u64>,
    /// The chain's head seq.
    pub head_seq: Option<u64>,
    /// The chain's head hash (hex), to anchor elsewhere.
    pub head: Option<String>,
    /// Signed checkpoints checked (0: the trail has no checkpoint key, so the chain is
    /// only self-consistent and a deleted tail or a re-hashed rewrite would pass).
    pub checkpoints: u64,
    /// The newest signed checkpoint, to keep outside the tables and anchor the next
    /// report with.
    pub latest_checkpoint: Option<CheckpointEvidence>,
    /// The checkpoint (number) the chain was verified against, if an anchor was given.
    pub anchored_to: Option<u64>,
    /// Why it did not verify.
    pub problem: Option<String>,
}

/// A signed checkpoint as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointEvidence {
    /// Its place among the tenant's checkpoints.
    pub number: u64,
    /// The head seq it certifies.
    pub seq: u64,
    /// The head hash it certifies (hex).
    pub head: String,
    /// Its HMAC-SHA256 signature (hex).
    pub signature: String,
}

impl From<&Checkpoint> for CheckpointEvidence {
    fn from(c: &Checkpoint) -> Self {
        Self { number: c.number, seq: c.seq, head: hex(&c.head), signature: hex(&c.signature) }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One framework in the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FrameworkReport {
    /// The framework.
    pub framework: Framework,
    /// The verdict.
    pub status: Status,
    /// Its requirements, with their counts and evidence.
    pub requirements: Vec<RuleRecord>,
    /// The ids of requirements that never applied.
    pub not_exercised: Vec<String>,
    /// The ids of requirements with invocations that could not prove them.
    pub unknown: Vec<String>,
    /// The audit chains verified for it.
    pub audit: Vec<AuditEvidence>,
}

impl FrameworkReport {
    /// The verdict of a framework over its requirements: Pass only when every one applied
    /// and held every time.
    pub fn new(framework: Framework, requirements: Vec<RuleRecord>) -> Self {
        let not_exercised: Vec<String> =
            requirements.iter().filter(|r| r.not_exercised()).map(|r| r.id.clone()).collect();
        let unknown: Vec<String> =
            requirements.iter().filter(|r| r.unknown > 0).map(|r| r.id.clone()).collect();
        let status = if requirements.iter().any(|r| r.violated > 0) {
            Status::Fail
        } else if requirements.iter().all(RuleRecord::not_exercised) {
            Status::NotExercised
        } else if !not_exercised.is_empty() || !unknown.is_empty() {
            Status::Incomplete
        } else {
            Status::Pass
        };
        Self { framework, status, requirements, not_exercised, unknown, audit: Vec::new() }
    }
}

/// The compliance report: per framework, its requirements, how often each applied, held,
/// was broken, blocked or unknown, the evidence, and the audit chains verified. Built from
/// recorded checks and the audit trail, never from constants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComplianceReport {
    /// One entry per framework.
    pub frameworks: Vec<FrameworkReport>,
    /// What became of the audit entries of the recorded responses.
    pub audit_storage: AuditStorageCounts,
}

impl ComplianceReport {
    /// Verifies the audit chains of `tenants` (with their signed checkpoints, when the
    /// trail has a checkpoint key) and adds them as evidence to every framework; a broken
    /// chain fails every framework (each relies on its audit trail).
    pub async fn with_audit(self, trail: &AuditTrail, tenants: &[&str]) -> Self {
        let chains: Vec<(&str, Option<&Checkpoint>)> = tenants.iter().map(|t| (*t, None)).collect();
        self.with_anchored_audit(trail, &chains).await
    }

    /// As [`with_audit`](Self::with_audit), each chain also verified against a checkpoint
    /// kept outside the tables (from an earlier report's
    /// [`latest_checkpoint`](AuditEvidence::latest_checkpoint), through
    /// [`AuditTrail::verify_against`]): this names the deletion of the newest entries
    /// together with their checkpoints.
    pub async fn with_anchored_audit(
        mut self,
        trail: &AuditTrail,
        chains: &[(&str, Option<&Checkpoint>)],
    ) -> Self {
        let mut evidence = Vec::new();
        for (tenant, anchor) in chains {
            let verified = match anchor {
                Some(anchor) => trail.verify_against(tenant, anchor).await,
                None => trail.verify(tenant).await,
            };
            let anchored_to = anchor.map(|a| a.number);
            evidence.push(match verified {
                Ok(Verified { entries, head, checkpoints, latest_checkpoint, .. }) => AuditEvidence {
                    tenant: (*tenant).to_owned(),
                    entries: Some(entries),
                    head_seq: Some(head.0),
                    head: Some(hex(&head.1)),
                    checkpoints,
                    latest_checkpoint: latest_checkpoint.as_ref().map(CheckpointEvidence::from),
                    anchored_to,
                    problem: None,
                },
                Err(err) => AuditEvidence {
                    tenant: (*tenant).to_owned(),
                    entries: None,
                    head_seq: None,
                    head: None,
                    checkpoints: 0,
                    latest_checkpoint: None,
                    anchored_to,
                    problem: Some(err.to_string()),
                },
            });
        }
        let broken = evidence.iter().any(|e| e.problem.is_some());
        for f in &mut self.frameworks {
            f.audit.clone_from(&evidence);
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

    /// The report as Markdown, for people: per framework its verdict, a row per
    /// requirement (applied, held, violated, blocked, unknown), the requirements not
    /// exercised, and the audit chains.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::from("# Compliance report\n");
        let a = self.audit_storage;
        if a.degraded > 0 || a.refused > 0 {
            let _ = write!(
                out,
                "\n**Audit degraded:** {} answer(s) went out without their audit entry stored; {} request(s) were refused because it could not be stored ({} stored).\n",
                a.degraded, a.refused, a.stored
            );
        }
        for f in &self.frameworks {
            let _ = write!(
                out,
                "\n## {} — {}\n\n| Requirement | Severity | Applied | Held | Violated | Blocked | Unknown | Status | Latest evidence |\n|---|---|---|---|---|---|---|---|---|\n",
                f.framework,
                status_text(f.status)
            );
            for r in &f.requirements {
                let latest = r
                    .evidence
                    .back()
                    .map_or(String::new(), |e| cell(&format!("{} ({})", e.detail, e.request_id)));
                let _ = writeln!(
                    out,
                    "| {} {} | {:?} | {} | {} | {} | {} | {} | {} | {} |",
                    r.id,
                    cell(&r.title),
                    r.severity,
                    r.applied,
                    r.held,
                    r.violated,
                    r.blocked,
                    r.unknown,
                    requirement_text(r.status),
                    latest
                );
            }
            if !f.not_exercised.is_empty() {
                let _ = writeln!(out, "\nNot exercised: {}", f.not_exercised.join(", "));
            }
            if !f.unknown.is_empty() {
                let _ = writeln!(out, "\nNot proven (unknown): {}", f.unknown.join(", "));
            }
            for a in &f.audit {
                let _ = writeln!(out, "\nAudit chain of `{}`: {}", a.tenant, chain_text(a));
            }
        }
        out
    }
}

/// A framework's verdict in words.
pub(crate) fn status_text(status: Status) -> &'static str {
    match status {
        Status::Pass => "Pass",
        Status::Fail => "Fail",
        Status::Incomplete => "Incomplete",
        Status::NotExercised => "Not exercised",
    }
}

fn requirement_text(status: RequirementStatus) -> &'static str {
    match status {
        RequirementStatus::Held => "held",
        RequirementStatus::Violated => "VIOLATED",
        RequirementStatus::Unknown => "unknown",
        RequirementStatus::NotExercised => "not exercised",
    }
}

fn chain_text(a: &AuditEvidence) -> String {
    match (&a.entries, &a.problem) {
        (_, Some(p)) => format!("BROKEN: {p}"),
        (Some(n), None) => {
            let mut text = format!(
                "{n} entries verified, head {} at seq {}",
                a.head.as_deref().unwrap_or("-"),
                a.head_seq.unwrap_or(0)
            );
            match &a.latest_checkpoint {
                Some(c) => text.push_str(&format!(
                    "; {} signed checkpoint(s), latest #{} at seq {} (signature {})",
                    a.checkpoints, c.number, c.seq, c.signature
                )),
                None => text.push_str("; no signed checkpoint (the chain is only self-consistent)"),
            }
            if let Some(n) = a.anchored_to {
                text.push_str(&format!("; anchored to checkpoint #{n}"));
            }
            text
        }
        (None, None) => "unknown".to_owned(),
    }
}

/// Text safe in a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
