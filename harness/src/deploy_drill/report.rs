//! What a deployment drill measured, judged against its assertions, as JSON, HTML and JUnit.

use std::fmt::{self, Write as _};
use std::path::Path;

use lift_deploy::rollout::{RolloutEvent, RolloutOutcome, Status};
use serde::Serialize;

use super::DeployScenario;
use crate::drill::{escape, junit_suite, AssertionResult, ReportFiles};

/// What the drill measured besides the rollout's own outcome.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub(crate) requests: u64,
    pub(crate) client_errors: u64,
    pub(crate) new_version_requests: u64,
    pub(crate) final_version: String,
    pub(crate) split: bool,
    pub(crate) rollout_secs: f64,
    pub(crate) baseline_secs: f64,
    pub(crate) warm_up: crate::dynamodb::WarmUp,
}

/// A deployment drill's report.
#[derive(Debug, Clone, Serialize)]
pub struct DeployDrillReport {
    /// The scenario.
    pub scenario: String,
    /// What it shows.
    pub description: String,
    /// The strategy.
    pub strategy: String,
    /// Whether the gates could roll back.
    pub auto_rollback: bool,
    /// The version traffic came from.
    pub from_version: String,
    /// The version deployed.
    pub to_version: String,
    /// How the rollout ended.
    pub status: Status,
    /// Why, when it did not succeed.
    pub reason: Option<String>,
    /// From the new version's first traffic to the failed gate, seconds.
    pub detect_secs: Option<f64>,
    /// From the failed gate to traffic back on the old version, seconds.
    pub rollback_secs: Option<f64>,
    /// The rollout, start to end, seconds.
    pub total_secs: f64,
    /// Load on version 1 before it met its SLOs and the rollout started, seconds.
    pub baseline_secs: f64,
    /// How DynamoDB Local was warmed before the load started.
    pub dynamodb_warm_up: crate::dynamodb::WarmUp,
    /// Requests the load made.
    pub requests: u64,
    /// Requests sent once the rollout started that failed (5xx or no answer).
    pub client_errors: u64,
    /// Requests the new version served.
    pub new_version_requests: u64,
    /// The alias's version at the end.
    pub final_version: String,
    /// Whether the alias was still split at the end.
    pub split_at_end: bool,
    /// Each assertion.
    pub assertions: Vec<AssertionResult>,
    /// Whether all held.
    pub passed: bool,
    /// The rollout's events.
    pub events: Vec<RolloutEvent>,
}

fn check(name: &str, limit: String, actual: String, passed: bool) -> AssertionResult {
    let message = (!passed).then(|| format!("{name}: {actual} against {limit}"));
    AssertionResult { name: name.to_owned(), limit, actual, passed, message }
}

impl DeployDrillReport {
    pub(crate) fn judge(scenario: &DeployScenario, outcome: &RolloutOutcome, m: Measured) -> Self {
        let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
        let detect = match (outcome.first_traffic_after, outcome.detected_after) {
            (Some(first), Some(detected)) => Some(detected.saturating_sub(first).as_secs_f64()),
            // Caught before any traffic moved (pre-traffic hooks): nothing to detect from.
            (None, Some(_)) => Some(0.0),
            _ => None,
        };
        let rollback = match (outcome.detected_after, outcome.rolled_back_after) {
            (Some(d), Some(r)) => Some(r.saturating_sub(d).as_secs_f64()),
            _ => None,
        };
        let a = &scenario.assertions;
        let mut assertions = Vec::new();
        let status = match outcome.status {
            Status::Succeeded => "promoted",
            Status::RolledBack => "rolled_back",
            Status::Halted => "halted",
            Status::InProgress => "in_progress",
        };
        assertions.push(check(
            "outcome",
            a.outcome.clone(),
            status.to_owned(),
            Self::expected(outcome.status, &a.outcome),
        ));
        let expected_version =
            if a.outcome == "promoted" { &outcome.to_version } else { &outcome.from_version };
        assertions.push(check(
            "alias_at_end",
            format!("{expected_version}, not split"),
            format!("{}{}", m.final_version, if m.split { ", split" } else { "" }),
            &m.final_version == expected_version && !m.split,
        ));
        assertions.push(check(
            "min_requests",
            a.min_requests.to_string(),
            m.requests.to_string(),
            m.requests >= a.min_requests,
        ));
        let bound = |name: &str, limit: Option<f64>, actual: Option<f64>, out: &mut Vec<AssertionResult>| {
            if let Some(limit) = limit {
                let shown = actual.map_or("not measured".to_owned(), |v| format!("{v:.3}"));
                out.push(check(name, format!("{limit}"), shown, actual.is_some_and(|v| v <= limit)));
            }
        };
        bound("max_detect_secs", a.max_detect_secs, detect, &mut assertions);
        bound("max_rollback_secs", a.max_rollback_secs, rollback, &mut assertions);
        bound("max_total_secs", a.max_total_secs, Some(m.rollout_secs), &mut assertions);
        if let Some(limit) = a.max_new_version_requests {
            assertions.push(check(
                "max_new_version_requests",
                limit.to_string(),
                m.new_version_requests.to_string(),
                m.new_version_requests <= limit,
            ));
        }
        if let Some(limit) = a.max_client_errors {
            assertions.push(check(
                "max_client_errors",
                limit.to_string(),
                m.client_errors.to_string(),
                m.client_errors <= limit,
            ));
        }
        let passed = assertions.iter().all(|a| a.passed);
        Self {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            strategy: scenario.deploy.strategy.clone(),
            auto_rollback: scenario.deploy.auto_rollback,
            from_version: outcome.from_version.clone(),
            to_version: outcome.to_version.clone(),
            status: outcome.status,
            reason: outcome.reason.clone(),
            detect_secs: detect,
            rollback_secs: rollback,
            total_secs: secs(Some(outcome.total)).unwrap_or_default(),
            baseline_secs: m.baseline_secs,
            dynamodb_warm_up: m.warm_up,
            requests: m.requests,
            client_errors: m.client_errors,
            new_version_requests: m.new_version_requests,
            final_version: m.final_version,
            split_at_end: m.split,
            assertions,
            passed,
            events: outcome.events.clone(),
        }
    }

    /// The names of the failed assertions.
    pub fn failed_assertions(&self) -> Vec<&str> {
        self.assertions.iter().filter(|a| !a.passed).map(|a| a.name.as_str()).collect()
    }

    /// Writes `<name>.json`, `.html` and `.junit.xml` into `dir`.
    ///
    /// # Errors
    /// When the directory or a file cannot be written.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<ReportFiles> {
        std::fs::create_dir_all(dir)?;
        let files = ReportFiles {
            json: dir.join(format!("{}.json", self.scenario)),
            html: dir.join(format!("{}.html", self.scenario)),
            junit: dir.join(format!("{}.junit.xml", self.scenario)),
        };
        std::fs::write(&files.json, serde_json::to_string_pretty(self)? + "\n")?;
        std::fs::write(&files.html, self.html())?;
        std::fs::write(&files.junit, self.junit())?;
        Ok(files)
    }

    fn html(&self) -> String {
        let mut h = String::from("<!doctype html><meta charset=\"utf-8\"><title>");
        let _ = write!(
            h,
            "{}</title><h1>Deployment drill {}</h1>",
            escape(&self.scenario),
            escape(&self.scenario)
        );
        let _ = write!(h, "<p>{}</p><pre>{}</pre><table><tr><th>assertion</th><th>limit</th><th>actual</th><th>passed</th></tr>", escape(&self.description), escape(&self.to_string()));
        for a in &self.assertions {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.name),
                escape(&a.limit),
                escape(&a.actual),
                if a.passed { "yes" } else { "NO" }
            );
        }
        h.push_str("</table><h2>Rollout events</h2><ol>");
        for e in &self.events {
            let _ =
                write!(h, "<li>{} ms {} {}</li>", e.after_ms, escape(&e.kind), escape(&e.detail.to_string()));
        }
        h.push_str("</ol>\n");
        h
    }

    fn junit(&self) -> String {
        let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let properties: Vec<(String, String)> = [
            ("status", format!("{:?}", self.status)),
            ("from_version", self.from_version.clone()),
            ("to_version", self.to_version.clone()),
            ("detect_secs", secs(self.detect_secs)),
            ("rollback_secs", secs(self.rollback_secs)),
            ("requests", self.requests.to_string()),
            ("client_errors", self.client_errors.to_string()),
            ("new_version_requests", self.new_version_requests.to_string()),
            ("final_version", self.final_version.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        junit_suite(&self.scenario, self.total_secs, &properties, &self.assertions, &self.to_string())
    }
}

impl fmt::Display for DeployDrillReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} s"));
        writeln!(
            f,
            "deployment drill {} ({}, rollback {}): version {} → {}: {:?}{}",
            self.scenario,
            self.strategy,
            if self.auto_rollback { "on" } else { "off" },
            self.from_version,
            self.to_version,
            self.status,
            self.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        )?;
        writeln!(
            f,
            "  version 1 met its SLOs after {:.1} s of load; detect {}, roll back {}, deployment {:.2} s; {} requests, {} client errors once the rollout started, {} served by version {}; alias at {}{}",
            self.baseline_secs,
            opt(self.detect_secs),
            opt(self.rollback_secs),
            self.total_secs,
            self.requests,
            self.client_errors,
            self.new_version_requests,
            self.to_version,
            self.final_version,
            if self.split_at_end { " (split)" } else { "" }
        )?;
        writeln!(f, "  DynamoDB Local before the load: {}", self.dynamodb_warm_up)?;
        for a in &self.assertions {
            writeln!(
                f,
                "  [{}] {}: {} (limit {})",
                if a.passed { "ok" } else { "FAIL" },
                a.name,
                a.actual,
                a.limit
            )?;
        }
        write!(f, "  {}", if self.passed { "PASSED" } else { "FAILED" })
    }
}
