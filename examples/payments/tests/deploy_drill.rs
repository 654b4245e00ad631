//! The deployment drills of `scenarios/deploy_*.toml` (their CI forms) over the real
//! payments binary, built with the `chaos` feature, in the local Lambda runtime: a good
//! version is promoted, a version failing 20% of requests and one 300 ms slower are rolled
//! back on the SLO gate, a version that crashes in init never gets traffic, and the bad
//! version's drill fails when rollback is off.

use std::path::PathBuf;

use lift_deploy::rollout::Status;
use lift_harness::deploy_drill::{self, DeployDrillReport, DeployScenario};
use serde_json::Value;

/// One drill at a time: each measures latency on two shared cores.
static DRILLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn scenario(name: &str) -> DeployScenario {
    let mut scenario = DeployScenario::load(&scenarios_dir().join(name)).unwrap();
    scenario.function.bootstrap = env!("CARGO_BIN_EXE_payments").to_owned();
    scenario
}

async fn drill(scenario: &DeployScenario) -> DeployDrillReport {
    let _one_at_a_time = DRILLS.lock().await;
    let report = deploy_drill::run(scenario, "payments", payments::table_def(), true).await.unwrap();
    println!("{report}");
    report
}

/// The SLO gate's verdicts, in the order it read them.
fn slo_verdicts(report: &DeployDrillReport) -> Vec<String> {
    report
        .events
        .iter()
        .filter(|e| e.kind == "gate")
        .flat_map(|e| e.detail["readings"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["gate"] == "slo")
        .map(|r| r["reading"]["verdict"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The rollout was rolled back on the SLO gate's evidence, after as many failing readings in
/// a row as the scenario's `failures_to_fail` asks. A lone failing reading decides only at
/// the end of a step, and these canaries are rolled back within their `max_detect_secs`, before
/// their 10 s step ends. A rollback for want of evidence ("no evidence by the end of the
/// step") names the SLO gate too, and ends on a `no_data` reading, not a failing one.
fn assert_rolled_back_on_failing_readings(report: &DeployDrillReport, scenario: &DeployScenario) {
    let verdicts = slo_verdicts(report);
    let streak = verdicts.iter().rev().take_while(|v| *v == "fail").count();
    let asked = scenario.deploy.failures_to_fail as usize;
    assert!(asked >= 2, "the scenario forgives a transient reading");
    assert!(
        streak >= asked,
        "rolled back after {streak} failing reading(s), not {asked}: {verdicts:?}\n{report}"
    );
    assert!(report.reason.as_deref().is_some_and(|r| r.starts_with("gate slo: ")), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_is_promoted_and_serves_everything() {
    let report = drill(&scenario("deploy_canary_good.toml")).await;
    assert!(report.passed, "{report}");
    assert_eq!(report.status, Status::Succeeded);
    assert_eq!((report.from_version.as_str(), report.to_version.as_str()), ("1", "2"));
    assert_eq!(report.final_version, "2");
    assert!(report.new_version_requests > 0, "the canary served traffic: {report}");
    assert_eq!(report.client_errors, 0, "{report}");
    // The gates read the canary before promoting it: a shift to 50%, readings, then everything.
    let shifts: Vec<f64> = report
        .events
        .iter()
        .filter(|e| e.kind == "shift")
        .map(|e| e.detail["weight"].as_f64().unwrap())
        .collect();
    assert_eq!(shifts, vec![0.5, 1.0], "{report}");
    let passing_slo_readings = report
        .events
        .iter()
        .filter(|e| e.kind == "gate")
        .flat_map(|e| e.detail["readings"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["gate"] == "slo" && r["reading"]["verdict"] == "pass")
        .count();
    assert!(passing_slo_readings > 0, "the SLO gate passed on evidence: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_failing_a_fifth_of_requests_is_rolled_back_by_the_slo_gate() {
    let errors = scenario("deploy_canary_errors.toml");
    let report = drill(&errors).await;
    assert!(report.passed, "{report}");
    assert_eq!(report.status, Status::RolledBack);
    assert_eq!(report.final_version, "1", "{report}");
    assert_rolled_back_on_failing_readings(&report, &errors);
    assert!(
        report.new_version_requests > 0 && report.client_errors > 0,
        "the canary was really bad: {report}"
    );
    let detect = report.detect_secs.unwrap();
    assert!(detect > 0.0, "detected from evidence after the first traffic: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_300_ms_slower_is_rolled_back_on_the_latency_slo() {
    let latency = scenario("deploy_canary_latency.toml");
    let report = drill(&latency).await;
    assert!(report.passed, "{report}");
    assert_eq!(report.status, Status::RolledBack);
    assert_rolled_back_on_failing_readings(&report, &latency);
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("latency") && reason.contains(" bad, burn rate "),
        "the latency SLO decided: {reason}"
    );
    assert_eq!(report.client_errors, 0, "slow is not failed: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_crashes_in_init_never_gets_traffic() {
    let report = drill(&scenario("deploy_init_crash.toml")).await;
    assert!(report.passed, "{report}");
    assert_eq!(report.status, Status::RolledBack);
    assert!(report.reason.as_deref().unwrap_or_default().contains("pre-traffic hook health"), "{report}");
    assert!(report.events.iter().all(|e| e.kind != "shift"), "no weight ever moved: {report}");
    assert_eq!(report.new_version_requests, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_configured_with_a_missing_table_is_not_ready_and_gets_no_traffic() {
    let mut misconfigured = scenario("deploy_canary_good.toml");
    misconfigured.name = "deploy_missing_table".into();
    misconfigured.new_version.env = [("LIFT_TABLE_PAYMENTS".to_owned(), "no-such-table".to_owned())].into();
    misconfigured.assertions.outcome = "rolled_back".into();
    let report = drill(&misconfigured).await;
    assert!(report.passed, "{report}");
    let reason = report.reason.clone().unwrap_or_default();
    assert!(reason.contains("pre-traffic hook health") && reason.contains("503"), "{reason}");
    assert_eq!((report.new_version_requests, report.client_errors), (0, 0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rollback_off_the_bad_version_drill_fails() {
    let mut bad = scenario("deploy_canary_errors.toml");
    bad.name = "deploy_canary_errors_no_rollback".into();
    bad.deploy.auto_rollback = false;
    let report = drill(&bad).await;
    assert!(!report.passed, "a drill that left the bad version in place passed: {report}");
    assert_eq!(report.status, Status::Halted);
    let failed = report.failed_assertions();
    assert!(failed.contains(&"outcome") && failed.contains(&"alias_at_end"), "{failed:?}\n{report}");
    assert!(report.split_at_end, "halted mid-canary, as told: {report}");
    let dir = std::env::temp_dir().join(format!("lift-deploy-drill-{}", std::process::id()));
    let files = report.write_to(&dir).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(files.json).unwrap()).unwrap();
    assert_eq!(json["passed"], false);
    // The report says how DynamoDB Local was warmed before the load.
    let warm_up = &json["dynamodb_warm_up"];
    assert!(warm_up["operations"].as_u64().is_some_and(|n| n >= 192), "{warm_up}");
    assert!(
        ["warm", "settled", "limit"].contains(&warm_up["outcome"].as_str().unwrap_or_default()),
        "{warm_up}"
    );
    assert!(std::fs::read_to_string(files.junit).unwrap().contains("<failure"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_deploy_scenario_parses_and_a_typo_is_named() {
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("deploy_") {
            let scenario = DeployScenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(scenario.deploy.slo.is_some() && scenario.deploy.health.is_some(), "{name}");
            assert!(deploy_drill::is_deploy_drill_file(&path));
        }
    }
    let text = std::fs::read_to_string(scenarios_dir().join("deploy_canary_errors.toml")).unwrap();
    let typo = text.replace("max_detect_secs", "max_detect_sec");
    assert!(DeployScenario::parse(&typo).unwrap_err().contains("max_detect_sec"));
}

/// The full forms (canary 10%, a 10 s bake; the good one at 40 requests a second for 240 s,
/// about four and a half minutes, the failing one about a minute):
/// `cargo test -p payments --test deploy_drill -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full forms take about five minutes; CI runs the short ones"]
async fn the_full_form_drills_pass() {
    for (file, status) in [
        ("deploy_canary_good_full.toml", Status::Succeeded),
        ("deploy_canary_errors_full.toml", Status::RolledBack),
    ] {
        let report = drill(&scenario(file)).await;
        assert!(report.passed, "{report}");
        assert_eq!(report.status, status, "{report}");
    }
}
