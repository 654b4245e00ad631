//! Compliance rules for SOC 2, PCI DSS, HIPAA and GDPR, the middleware that applies them,
//! and the report built from what it recorded (feature `compliance`).
//!
//! - **Rules** ([`Rule`]) carry an id that cites their requirement (`PCI-DSS 3.4`,
//!   `HIPAA 164.312(b)`, `GDPR Art. 44`), a framework and a severity, say when they apply,
//!   and judge one invocation ([`InvocationRecord`]): its request, response, log lines and
//!   audit entries, as held, violated, unknown or not applicable ([`Verdict`]).
//!   [`builtin`] lists the shipped ones; [`rule`] makes a custom one from a closure.
//! - **The middleware** ([`ComplianceLayer`]) sanitizes headers and query strings, blocks
//!   critical violations before the handler runs, and records every check. It buffers the
//!   request body up to a [`BodyLimit`] (6 MiB unless the request carries another) and
//!   answers a larger one 413, recording nothing.
//! - **The report** ([`ComplianceReport`]), per framework: its requirements, how often each
//!   applied, held, was violated, blocked or unknown, the evidence (request ids, details),
//!   and the verified audit chains. A framework is [`Status::Pass`] only when every one of
//!   its requirements applied and held every time; one that never applied is listed as not
//!   exercised. It comes from recorded checks and the audit trail, never from constants.
//!
//! # Examples
//!
//! ```
//! use lift::security::compliance::{ComplianceLayer, ComplianceRecorder, Framework, Status};
//!
//! let recorder = ComplianceRecorder::new();
//! let app = lift::App::new().layer(ComplianceLayer::new(recorder.clone()));
//! // ... requests ...
//! let report = recorder.report();
//! assert_eq!(report.frameworks[0].framework, Framework::PciDss);
//! assert_eq!(report.frameworks[0].status, Status::NotExercised);
//! # let _ = app;
//! ```

mod layer;
mod report;
mod rule;
mod rules;

pub use crate::buffered::BodyLimit;
pub use layer::{check, judge, sanitize, Compliance, ComplianceLayer, LogTap};
pub use report::{
    AuditEvidence, AuditStorageCounts, CheckpointEvidence, ComplianceRecorder, ComplianceReport, Evidence,
    FrameworkReport, RequirementStatus, RuleRecord, Status,
};
pub use rule::{
    rule, AppliesFn, CheckFn, Facts, FnRule, Framework, InvocationRecord, Phase, RequestView, ResponseView,
    Rule, Severity, Transport, Verdict, Violation,
};
pub use rules::builtin;
