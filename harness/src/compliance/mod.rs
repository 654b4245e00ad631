//! The compliance suites: `features/*.feature`, run with cucumber against a service (a
//! [`ComplianceTarget`], e.g. the payments example) and a small health-records service on
//! DynamoDB Local, behind Lift's audit, compliance and threat middleware.
//!
//! [`run`] runs them (a service's `compliance_suites` test and its harness binary call it)
//! and writes JUnit XML, cucumber JSON and the per-framework compliance report.
//!
//! # The step library
//!
//! Write new scenarios in Gherkin with these steps; no Rust needed. `<tenant>`, `<region>`
//! and `<id>` are single words; strings are in double quotes.
//!
//! | Step | Does |
//! |---|---|
//! | `Given the service runs in region <region>` | (re)builds the service under test in that region (default `eu-west-1`) |
//! | `When tenant <tenant> pays <amount> <currency> with card "<number>"` | `POST /payments` as that tenant |
//! | `When tenant <tenant> pays for a customer in <country>` | a payment whose customer lives in that country |
//! | `When tenant <tenant> erases customer <id>` | `DELETE /customers/<id>` (GDPR erasure) |
//! | `When tenant <tenant> reads the records of patient <id>` | `GET /patients/<id>/records` (ePHI) |
//! | `When an anonymous caller reads the records of patient <id>` | the same, without credentials |
//! | `When tenant <tenant> looks up payment "<text>"` | `GET /payments/<text>` (the text is URL-encoded) |
//! | `When the stored audit entry <n> of tenant <tenant> is altered` | rewrites the actor of that entry in DynamoDB |
//! | `Then the answer is <status>` | the last response's status |
//! | `Then no card number appears in the answer, the logs or the stored payments` | scans all three for a PAN in clear |
//! | `Then no stored payment of tenant <tenant> names customer <id>` | their name, email and country are gone from DynamoDB |
//! | `Then the audit trail of tenant <tenant> records "<action>" with data class <class>` | reads the trail back from DynamoDB |
//! | `Then the audit chain of tenant <tenant> verifies` | walks the stored chain |
//! | `Then the audit chain of tenant <tenant> is broken at entry <n>` | and names the entry |
//! | `Then the rule "<id>" was never violated` / `... was violated` / `... refused the request` | the compliance recorder's evidence |
//! | `Then a threat incident was recorded for tenant <tenant>` | a `threat.incident` audit entry exists |
//!
//! Tags: `@pci_dss`, `@hipaa`, `@soc2`, `@gdpr` per framework, and one per requirement
//! (`@PCI-DSS-3.4`...).

mod steps;
mod target;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cucumber::writer::Stats as _;
use cucumber::{writer, World as _, WriterExt as _};
use lift::middleware::logging::MemoryWriter;
use lift::security::compliance::{ComplianceRecorder, ComplianceReport};

pub use steps::ComplianceWorld;
pub use target::{ComplianceTarget, TargetEnv};

/// The log lines of the services under test (one process-wide sink, read per scenario).
pub(crate) fn logs() -> &'static MemoryWriter {
    static LOGS: OnceLock<MemoryWriter> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = MemoryWriter::new();
        if let Ok(layer) = lift::middleware::logging::LogConfig::new().writer(logs.clone()).build() {
            use lift::middleware::logging::tracing_subscriber::layer::SubscriberExt as _;
            let subscriber = lift::middleware::logging::tracing_subscriber::registry().with(layer);
            let _ = lift::middleware::logging::tracing::subscriber::set_global_default(subscriber);
        }
        logs
    })
}

/// Every check the suites' services made, for the report.
pub(crate) fn recorder() -> &'static ComplianceRecorder {
    static RECORDER: OnceLock<ComplianceRecorder> = OnceLock::new();
    RECORDER.get_or_init(ComplianceRecorder::new)
}

/// What a run produced.
#[derive(Debug)]
pub struct SuiteRun {
    /// Steps that failed, plus features that did not parse and hooks that failed.
    pub failed: usize,
    /// Steps that passed.
    pub passed: usize,
    /// The JUnit XML file.
    pub junit: PathBuf,
    /// The cucumber JSON file.
    pub json: PathBuf,
    /// The compliance report (JSON) built from the recorded checks.
    pub report: PathBuf,
    /// The report as Markdown.
    pub report_markdown: PathBuf,
}

/// Runs the features under `features` (a directory or one file) against `target`, one
/// scenario at a time, writing `compliance.junit.xml`, `compliance.cucumber.json` and
/// `compliance-report.{json,md}` into `out`.
///
/// # Errors
/// When the output files cannot be written.
pub async fn run(target: impl ComplianceTarget, features: &Path, out: &Path) -> std::io::Result<SuiteRun> {
    target::set(Arc::new(target));
    std::fs::create_dir_all(out)?;
    let junit = out.join("compliance.junit.xml");
    let json = out.join("compliance.cucumber.json");
    let _ = logs();
    let result = ComplianceWorld::cucumber()
        .max_concurrent_scenarios(1)
        .with_writer(
            writer::Basic::stdout()
                .summarized()
                .tee::<ComplianceWorld, _>(writer::JUnit::for_tee(std::fs::File::create(&junit)?, 0))
                .tee::<ComplianceWorld, _>(writer::Json::for_tee(std::fs::File::create(&json)?))
                .normalized(),
        )
        // Options come from the caller, never from the process's arguments (they belong to
        // `lift-harness` or to the test binary).
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .run(features)
        .await;
    let failed = result.failed_steps() + result.parsing_errors() + result.hook_errors();
    let passed = result.passed_steps();
    let report: ComplianceReport = recorder().report();
    let scenarios = scenarios(&std::fs::read_to_string(&json).unwrap_or_default());
    let mut report_json = report.to_json();
    let mut markdown = report.to_markdown();
    markdown
        .push_str("\n# Scenarios\n\n| Framework | Scenario | Requirements | Result |\n|---|---|---|---|\n");
    if let Some(frameworks) = report_json["frameworks"].as_array_mut() {
        for f in frameworks {
            let tag = match f["framework"].as_str() {
                Some("PciDss") => "pci_dss",
                Some("Hipaa") => "hipaa",
                Some("Soc2") => "soc2",
                _ => "gdpr",
            };
            let mine: Vec<&Scenario> = scenarios.iter().filter(|s| s.tags.iter().any(|t| t == tag)).collect();
            if mine.iter().any(|s| !s.passed) {
                f["status"] = "Fail".into();
            }
            for s in &mine {
                let requirements: Vec<&str> = s
                    .tags
                    .iter()
                    .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
                    .map(String::as_str)
                    .collect();
                markdown.push_str(&format!(
                    "| {tag} | {} | {} | {} |\n",
                    s.name,
                    requirements.join(" "),
                    if s.passed { "pass" } else { "FAIL" }
                ));
            }
            f["scenarios"] = serde_json::to_value(&mine).unwrap_or_default();
        }
    }
    let report_path = out.join("compliance-report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report_json).unwrap_or_default())?;
    let report_markdown = out.join("compliance-report.md");
    std::fs::write(&report_markdown, markdown)?;
    Ok(SuiteRun { failed, passed, junit, json, report: report_path, report_markdown })
}

/// A scenario's result, from the cucumber JSON.
#[derive(Debug, serde::Serialize)]
struct Scenario {
    feature: String,
    name: String,
    /// Feature and scenario tags, without `@`.
    tags: Vec<String>,
    passed: bool,
}

fn scenarios(cucumber_json: &str) -> Vec<Scenario> {
    let tags = |v: &serde_json::Value| -> Vec<String> {
        v["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["name"].as_str())
                    .map(|n| n.trim_start_matches('@').to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let features: serde_json::Value = serde_json::from_str(cucumber_json).unwrap_or_default();
    let mut out = Vec::new();
    for feature in features.as_array().into_iter().flatten() {
        let feature_tags = tags(feature);
        for element in feature["elements"].as_array().into_iter().flatten() {
            let steps = element["steps"].as_array().cloned().unwrap_or_default();
            let passed = !steps.is_empty() && steps.iter().all(|s| s["result"]["status"] == "passed");
            let mut all = feature_tags.clone();
            all.extend(tags(element));
            out.push(Scenario {
                feature: feature["name"].as_str().unwrap_or_default().to_owned(),
                name: element["name"].as_str().unwrap_or_default().to_owned(),
                tags: all,
                passed,
            });
        }
    }
    out
}
