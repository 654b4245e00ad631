//! The compliance suites: `features/*.feature`, run with cucumber against a service (a
//! [`ComplianceTarget`]: the payments example for PCI DSS, SOC 2 and GDPR, the
//! health-records example for HIPAA), behind Lift's JWT, threat, compliance and audit
//! middleware. A service that serves no health records of its own gets a small
//! health-records route (records stored encrypted in DynamoDB Local under the KMS mock), so
//! the HIPAA steps have something to store and read.
//!
//! [`run`] runs them (a service's `compliance_suites` test and its harness binary call it)
//! and writes JUnit XML, cucumber JSON and the per-framework compliance report.
//!
//! # The step library
//!
//! Write new scenarios in Gherkin with the steps of [`library::STEPS`] (listed with an
//! example each in `features/README.md`); no Rust needed. Each scenario gets its own
//! service, tables, audit trail and compliance recorder, so "was violated" and "refused"
//! speak of the scenario's own requests. Requests carry real RS256 JWTs signed by the
//! harness's JWKS issuer ([`crate::aws::JwksIssuer`]).
//!
//! Before anything runs, the features are checked ([`library::problems`]): a step that
//! matches no library step, or several, fails the run and names the closest step; so do a
//! feature that does not parse (with its file and line), a tag the report cannot count,
//! a placeholder nothing fills and Examples with no row.
//!
//! Tags: `@pci_dss`, `@hipaa`, `@soc2`, `@gdpr` per framework, and one per requirement
//! (`@PCI-DSS-3.4`...) beside its own framework's tag. A framework without a scenario of
//! its own is never Pass.

pub mod library;
mod steps;
mod target;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cucumber::writer::Stats as _;
use cucumber::{writer, World as _, WriterExt as _};
use lift::middleware::logging::MemoryWriter;
use lift::security::compliance::{AuditEvidence, ComplianceRecorder, ComplianceReport, Framework, Status};

pub use steps::ComplianceWorld;
pub use target::{Assembly, ComplianceTarget, TargetEnv};

/// The log lines of the services under test (one process-wide sink, read per scenario), as
/// the service wrote them: every event and span field in clear, JSON per line
/// (`"level":"ERROR"`...). Lift's own log layer scrubs card numbers, SSNs, IBANs, tokens
/// and secret-named values before they reach its writer; the rules must judge what the
/// handler wrote, not what a redacting logger made of it, so a handler that passes a card
/// number to `tracing::info!` breaks PCI-DSS 3.4 here even though production's logs would
/// show `[REDACTED:pan]`.
///
/// Debug events are kept (a sampled request logs at debug), except those of the AWS SDK
/// and the HTTP stack beneath it, which speak of the transport, not of the request's data.
pub(crate) fn logs() -> &'static MemoryWriter {
    &capture().0
}

/// Whether the suites' log capture is the process's subscriber: when another subscriber
/// was installed first, the capture sees nothing, and every log-based rule would hold on
/// no lines at all.
fn logs_captured() -> bool {
    capture().1
}

fn capture() -> &'static (MemoryWriter, bool) {
    static LOGS: OnceLock<(MemoryWriter, bool)> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::Layer as _;
        let logs = MemoryWriter::new();
        let transport =
            ["aws_smithy", "aws_sdk", "aws_config", "aws_runtime", "hyper", "h2", "rustls", "reqwest"];
        let filter = transport.into_iter().fold(Targets::new().with_default(LevelFilter::DEBUG), |f, t| {
            f.with_target(t, LevelFilter::INFO)
        });
        let raw = tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .with_writer(logs.clone())
            .with_filter(filter);
        let installed =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(raw)).is_ok();
        (logs, installed)
    })
}

/// The mocks the suites' services use: the JWKS issuer that signs the callers' tokens
/// and the KMS that holds the health records' keys. Started once per process.
pub(crate) struct Mocks {
    pub(crate) jwks: crate::aws::JwksIssuer,
    pub(crate) kms: crate::aws::KmsMock,
}

pub(crate) async fn mocks() -> &'static Mocks {
    static MOCKS: tokio::sync::OnceCell<Mocks> = tokio::sync::OnceCell::const_new();
    MOCKS
        .get_or_init(|| async {
            Mocks {
                jwks: crate::aws::JwksIssuer::start().await.expect("the JWKS issuer"),
                kms: crate::aws::KmsMock::start("eu-west-1").await,
            }
        })
        .await
}

/// What one run gathered from its scenarios: every check, and the audit chains.
#[derive(Default)]
struct Gathered {
    recorder: ComplianceRecorder,
    chains: Vec<AuditEvidence>,
}

fn gathered() -> &'static Mutex<Gathered> {
    static GATHERED: OnceLock<Mutex<Gathered>> = OnceLock::new();
    GATHERED.get_or_init(Mutex::default)
}

/// After each scenario: its checks join the run's, and the audit chains of its tenants are
/// verified (with their signed checkpoints) through [`ComplianceReport::with_audit`].
fn after_scenario<'a>(
    _feature: &'a cucumber::gherkin::Feature,
    _rule: Option<&'a cucumber::gherkin::Rule>,
    scenario: &'a cucumber::gherkin::Scenario,
    _event: &'a cucumber::event::ScenarioFinished,
    world: Option<&'a mut ComplianceWorld>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>> {
    Box::pin(async move {
        let Some(world) = world else { return };
        let mut tenants: Vec<&str> =
            world.tenants.iter().filter(|t| !world.altered.contains(*t)).map(String::as_str).collect();
        tenants.sort_unstable();
        let chains = match world.trail() {
            Some(trail) => {
                let report = world.recorder.report().with_audit(&trail, &tenants).await;
                report.frameworks.first().map(|f| f.audit.clone()).unwrap_or_default()
            }
            None => Vec::new(),
        };
        let mut gathered = gathered().lock().unwrap_or_else(|p| p.into_inner());
        gathered.recorder.absorb(&world.recorder);
        // The chains of a service the scenario replaced (it moved region) were verified then.
        for mut chain in world.earlier_chains.drain(..).chain(chains) {
            chain.tenant = format!("{} ({})", chain.tenant, scenario.name);
            gathered.chains.push(chain);
        }
    })
}

/// What a run produced.
#[derive(Debug)]
pub struct SuiteRun {
    /// Steps that failed (or passed only when retried), plus features that did not parse,
    /// steps that match no library step or several, hooks that failed, and frameworks the
    /// report fails ([`failed_frameworks`](Self::failed_frameworks)).
    pub failed: usize,
    /// Steps that passed.
    pub passed: usize,
    /// What was wrong with the features before they ran: `file:line: ...`, with the
    /// closest library step for a step that matches none; or with the process, when the
    /// suites cannot capture the service's logs (another tracing subscriber came first).
    pub problems: Vec<String>,
    /// The frameworks (their tags, `pci_dss`...) the report fails: on a failed scenario,
    /// a broken audit chain, or evidence of a breach, whether or not a step asserted on it.
    pub failed_frameworks: Vec<&'static str>,
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
/// One run at a time in a process: the target and the evidence gathered are the process's
/// (cucumber builds each scenario's world with no argument), so a second run waits for the
/// first to end rather than mixing its evidence and its target with the first's.
///
/// # Errors
/// When the output files cannot be written.
pub async fn run(target: impl ComplianceTarget, features: &Path, out: &Path) -> std::io::Result<SuiteRun> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    target::set(Arc::new(target));
    std::fs::create_dir_all(out)?;
    *gathered().lock().unwrap_or_else(|p| p.into_inner()) = Gathered::default();
    let mut problems = library::problems(features);
    if !logs_captured() {
        problems.push(
            "the suites cannot read the service's logs: another tracing subscriber is the process's default \
             (install none before `compliance::run`)"
                .to_owned(),
        );
    }
    for problem in &problems {
        eprintln!("compliance suites: {problem}");
    }
    let junit = out.join("compliance.junit.xml");
    let json = out.join("compliance.cucumber.json");
    let result = ComplianceWorld::cucumber()
        .max_concurrent_scenarios(1)
        .after(after_scenario)
        .with_writer(
            writer::Basic::stdout()
                .summarized()
                .tee::<ComplianceWorld, _>(writer::JUnit::for_tee(std::fs::File::create(&junit)?, 0))
                .tee::<ComplianceWorld, _>(writer::Json::for_tee(std::fs::File::create(&json)?))
                .normalized(),
        )
        // After the writer: a step that matches nothing fails instead of being skipped.
        .fail_on_skipped()
        // Options come from the caller, never from the process's arguments (they belong to
        // `lift-harness` or to the test binary).
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .run(features)
        .await;
    // A step that passed only when retried (cucumber's `@retry` tags) failed once: a
    // compliance proof that passes some of the time is not one.
    let steps_failed = result.failed_steps()
        + result.retried_steps()
        + result.skipped_steps()
        + result.parsing_errors()
        + result.hook_errors()
        + problems.len();
    let passed = result.passed_steps();
    let (recorder, chains) = {
        let gathered = gathered().lock().unwrap_or_else(|p| p.into_inner());
        (gathered.recorder.clone(), gathered.chains.clone())
    };
    let scenarios = scenarios(&std::fs::read_to_string(&json).unwrap_or_default());
    let report = verdicts(recorder.report(), &chains, &scenarios);
    // The report's verdict decides too: evidence of a breach that no step asserted on (a
    // handler that logged a card number in a scenario that never asks) fails the run.
    let failed_frameworks: Vec<&'static str> = report
        .frameworks
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| library::framework_tag(f.framework))
        .collect();
    let failed = steps_failed + failed_frameworks.len();
    let mut report_json = report.to_json();
    let mut markdown = report.to_markdown();
    if !problems.is_empty() {
        markdown.push_str("\n# Problems in the features\n\n");
        for problem in &problems {
            markdown.push_str(&format!("- {problem}\n"));
        }
        report_json["problems"] = serde_json::to_value(&problems).unwrap_or_default();
    }
    markdown
        .push_str("\n# Scenarios\n\n| Framework | Scenario | Requirements | Result |\n|---|---|---|---|\n");
    if let Some(frameworks) = report_json["frameworks"].as_array_mut() {
        for (f, framework) in frameworks.iter_mut().zip(&report.frameworks) {
            let tag = library::framework_tag(framework.framework);
            let mine: Vec<&Scenario> = scenarios.iter().filter(|s| s.tags.iter().any(|t| t == tag)).collect();
            for s in &mine {
                markdown.push_str(&format!(
                    "| {tag} | {} | {} | {} |\n",
                    s.name.replace('|', "\\|"),
                    s.requirements().join(" "),
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
    Ok(SuiteRun {
        failed,
        passed,
        problems,
        failed_frameworks,
        junit,
        json,
        report: report_path,
        report_markdown,
    })
}

/// The framework's tag in the features.
/// The run's verdicts, one place for both report formats: the recorded checks, the audit
/// chains (a broken one fails every framework), and the scenarios (a failed scenario fails
/// its framework; a framework without a scenario of its own is never Pass).
fn verdicts(
    mut report: ComplianceReport,
    chains: &[AuditEvidence],
    scenarios: &[Scenario],
) -> ComplianceReport {
    let broken = chains.iter().any(|c| c.problem.is_some());
    for f in &mut report.frameworks {
        f.audit = chains.to_vec();
        let mine: Vec<&Scenario> = scenarios
            .iter()
            .filter(|s| s.tags.iter().any(|t| t == library::framework_tag(f.framework)))
            .collect();
        if broken || mine.iter().any(|s| !s.passed) {
            f.status = Status::Fail;
        } else if mine.is_empty() && f.status == Status::Pass {
            f.status = Status::Incomplete;
        }
    }
    report
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

impl Scenario {
    /// The requirement tags (`PCI-DSS-3.4`, `SOC2-CC7.2`...), not the framework tags.
    fn requirements(&self) -> Vec<&str> {
        self.tags
            .iter()
            .filter(|t| Framework::ALL.iter().any(|f| t.starts_with(&format!("{}-", f.name()))))
            .map(String::as_str)
            .collect()
    }
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
