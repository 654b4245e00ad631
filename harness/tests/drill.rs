//! Chaos drills end to end over a workload that is not payments (tests/support's notes):
//! the short CI region outage passes, the same drill without failover fails, the reports
//! are what they claim, and `lift-harness drill` says where drills run.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use lift_harness::drill::{fis_template, Drill, Scenario, Summary, Topology};
use lift_harness::Workload;
use serde_json::Value;
use support::{ci_scenario, scenarios_dir, short_failing_scenario, CheckFails, Notes};

/// Drills measure time: two at once on a small machine would measure each other.
static DRILLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lift-drill-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_shipped_scenario_parses_asserts_fits_its_time_and_exports_to_fis() {
    let (mut names, mut backups, mut deploys) = (Vec::new(), Vec::new(), Vec::new());
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if lift_harness::backup::BackupScenario::is_backup_drill(&text) {
            // A backup drill has a schema of its own (harness/tests/backup_drill.rs runs it).
            let backup = lift_harness::backup::BackupScenario::parse(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            backups.push(backup.name);
            continue;
        }
        if lift_harness::deploy_drill::DeployScenario::is_deploy_drill(&text) {
            // A deployment drill has a schema of its own (payments' tests/deploy_drill.rs runs it).
            let deploy = lift_harness::deploy_drill::DeployScenario::parse(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            deploys.push(deploy.name);
            continue;
        }
        let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The noise drill holds its noise for a full minute, with load either side of it.
        let limit = if scenario.name == "noise" { 75 } else { 60 };
        assert!(scenario.duration() <= Duration::from_secs(limit), "{} runs too long", scenario.name);
        assert!(!scenario.faults.is_empty() && !scenario.description.is_empty(), "{}", scenario.name);
        assert!(!scenario.assertions.is_empty(), "{} asserts nothing", scenario.name);
        let template = fis_template(&scenario, "payments", "payments");
        assert!(!template["actions"].as_object().unwrap().is_empty(), "{}", scenario.name);
        names.push(scenario.name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "ci_noise",
            "ci_region_outage",
            "latency_brownout",
            "noise",
            "partition",
            "process_crash",
            "region_outage",
            "throttling_storm"
        ]
    );
    backups.sort();
    assert_eq!(backups, ["backup_restore", "backup_restore_full"]);
    deploys.sort();
    assert_eq!(
        deploys,
        [
            "deploy_canary_errors",
            "deploy_canary_errors_full",
            "deploy_canary_good",
            "deploy_canary_good_full",
            "deploy_canary_latency",
            "deploy_init_crash"
        ]
    );
}

#[test]
fn a_mix_naming_another_services_operations_is_refused() {
    // The shipped scenarios weigh payments' operations; notes has put and get.
    let scenario = Scenario::load(scenarios_dir().join("ci_region_outage.toml")).unwrap();
    let err = Drill::new(scenario, Notes::default()).unwrap_err().to_string();
    assert!(err.contains("unknown operation \"create\"") && err.contains("notes has put, get"), "{err}");
}

/// The working directories of dedicated DynamoDB Local JVMs now present: each is removed
/// when its JVM is stopped (`DedicatedDynamoDb`'s drop).
fn instance_dirs() -> std::collections::BTreeSet<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with("lift-dynamodb-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ci_region_outage_drill_fails_over_loses_nothing_and_reports_it() {
    let _one_at_a_time = DRILLS.lock().await;
    let before = instance_dirs();
    let drill = Drill::new(ci_scenario(true), Notes::default()).unwrap();
    let report = drill.quiet(true).settle(Duration::from_secs(10)).run().await.unwrap();
    let summary = Summary(&report).to_string();
    println!("{summary}");
    assert!(report.passed, "{summary}");
    // The drill's own DynamoDB Local stopped with it.
    let left: Vec<_> = instance_dirs().difference(&before).cloned().collect();
    assert!(left.is_empty(), "the drill left its DynamoDB Local running: {left:?}");
    let failover = report.time_to_failover_ms.expect("a failover");
    assert!(failover > 0.0 && failover < 30_000.0, "{summary}");
    let detect = report.time_to_detect_ms.expect("a detection");
    assert!(detect <= failover + 1.0, "detected after traffic moved? {summary}");
    assert_eq!(report.writes.lost, 0, "{summary}");
    assert!(report.writes.acknowledged > 50, "too few writes to mean anything: {summary}");
    assert_eq!(report.final_primary, "eu-west-1");
    assert!(report.failovers >= 1);
    // Read from eu-west-1 at the failover, before the heal: it held every acknowledged write.
    assert_eq!(report.writes.missing_at_failover, vec![0; report.failovers as usize], "{summary}");
    assert_eq!(report.writes.failovers_unmeasured, 0, "{summary}");
    let at_failover = report.assertions.iter().find(|a| a.name == "max_writes_missing_at_failover");
    assert!(at_failover.is_some_and(|a| a.passed && a.actual == "0"), "{summary}");
    // After the failover us-east-1 is held down: eu-west-1 alone takes the writes.
    assert!(report.writes.degraded > 0, "{summary}");
    // The outage's own figures, from us-east-1's events: its failover is a failover (no
    // failback without `failback = true`), and the headline is its worst case.
    assert_eq!(report.failbacks, 0, "{summary}");
    assert!(report.switches.iter().all(|s| s.kind == "failover" && s.from == "us-east-1"), "{summary}");
    let outage = &report.faults[0];
    assert!(outage.detect_bound && outage.failover_bound, "{summary}");
    assert_eq!(outage.time_to_detect_ms, report.time_to_detect_ms);
    assert_eq!(outage.switched_at_ms, Some(report.switches[0].at_ms));
    assert!(outage.time_to_detect_from_probe_ms.is_some(), "{summary}");
    assert!(report.events.iter().any(|e| e.kind == "region_down" && e.region == "us-east-1"));
    assert!(report.target.starts_with("notes through lift::disaster"), "{}", report.target);
    // The outage really cut traffic: some operations failed or stalled before the failover.
    assert!(report.faults[0].errors_in_window > 0, "{summary}");
    // Every operation is one of the workload's, attributed to a drill region.
    let by_region = &report.totals.ok_by_region;
    assert!(by_region.keys().all(|r| r == "us-east-1" || r == "eu-west-1"), "{by_region:?}");

    let dir = temp_dir("ci");
    let files = report.write_to(&dir).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    assert_eq!(json["scenario"], "ci_region_outage");
    assert_eq!(json["passed"], true);
    assert_eq!(json["writes"]["lost"], 0);
    assert_eq!(json["writes"]["degraded"], report.writes.degraded);
    assert_eq!(json["writes"]["missing_at_failover"][0], 0);
    assert!(json["time_to_failover_ms"].as_f64().unwrap() > 0.0);
    let samples = json["samples"].as_array().unwrap();
    assert!(samples.len() >= 180, "a sample every 100 ms over 20 s: {}", samples.len());
    for field in ["t_ms", "success_rate", "in_flight", "active_region"] {
        assert!(samples[0].get(field).is_some(), "sample without {field}");
    }
    assert!(samples.iter().any(|s| s["active_region"] == "eu-west-1"));
    let junit = std::fs::read_to_string(&files.junit).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), report.assertions.len());
    assert!(junit.contains("name=\"max_failover_secs\""));
    assert!(!junit.contains("<failure"), "{junit}");
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("<svg") && html.contains("</svg>") && html.contains("<polyline"));
    assert!(html.contains("Detect after injection") && html.contains("Detect after the first failing probe"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A drill that ends in an error stops its DynamoDB Local as one that ends in a report
/// does. The error comes at the last stage (the read-back), after the tables were made, the
/// load ran and the fault was injected and healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_that_ends_in_an_error_leaves_nothing_running() {
    let _one_at_a_time = DRILLS.lock().await;
    let before = instance_dirs();
    let err = Drill::new(short_failing_scenario(), CheckFails::default())
        .unwrap()
        .quiet(true)
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the read-back broke"), "{err}");
    let left: Vec<_> = instance_dirs().difference(&before).cloned().collect();
    assert!(left.is_empty(), "the failed drill left its DynamoDB Local running: {left:?}");
}

/// Each drill's `shared` regions share one DynamoDB Local, started for that drill and
/// stopped with it: nothing an earlier drill left (DynamoDB Local keeps a deleted table's
/// stream records, and reads them on every write) can slow a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_drill_runs_on_a_dynamodb_local_of_its_own() {
    let _one_at_a_time = DRILLS.lock().await;
    let scenario = ci_scenario(true);
    let endpoints = |topology: &Topology| -> Vec<String> {
        topology.regions().iter().map(|r| r.direct_endpoint().expect("a local region")).collect()
    };
    let answers = |endpoint: &str| {
        let address = endpoint.trim_start_matches("http://");
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(1)).is_ok()
    };
    let first = Topology::start(&scenario.regions, Notes::default().table()).await.unwrap();
    let second = Topology::start(&scenario.regions, Notes::default().table()).await.unwrap();
    let (ours, theirs) = (endpoints(&first), endpoints(&second));
    assert_eq!(ours[0], ours[1], "one instance for a drill's shared regions");
    assert_ne!(ours[0], theirs[0], "another drill gets another instance");
    assert!(!lift_harness::dynamodb::DynamoDbLocal::shared().await.is_ok_and(|s| s.endpoint() == ours[0]));
    assert!(answers(&ours[0]));
    drop(first);
    assert!(!answers(&ours[0]), "the instance stopped with its drill");
    assert!(answers(&theirs[0]), "and only that one");
}

/// `Drill::new` checks a scenario as `Scenario::parse` does: one built or changed in code
/// cannot skip the checks, such as a drill that asserts nothing and so cannot fail.
#[test]
fn a_scenario_changed_in_code_is_checked_as_a_file_is() {
    let mut asserts_nothing = ci_scenario(true);
    asserts_nothing.assertions = Default::default();
    let err = Drill::new(asserts_nothing, Notes::default()).unwrap_err().to_string();
    assert!(err.contains("asserts nothing"), "{err}");
    let mut crash_on_shared = ci_scenario(true);
    crash_on_shared.faults[0].kind = lift_harness::drill::FaultKind::ProcessKill;
    let err = Drill::new(crash_on_shared, Notes::default()).unwrap_err().to_string();
    assert!(err.contains("needs dynamodb = \"dedicated\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_failover_the_same_drill_fails() {
    let _one_at_a_time = DRILLS.lock().await;
    let drill = Drill::new(ci_scenario(false), Notes::default()).unwrap();
    let report = drill.quiet(true).settle(Duration::from_secs(5)).run().await.unwrap();
    let summary = Summary(&report).to_string();
    assert!(!report.passed, "the drill passed without failover:\n{summary}");
    assert_eq!(report.final_primary, "us-east-1", "{summary}");
    assert_eq!(report.failovers, 0);
    let failover = report.assertions.iter().find(|a| a.name == "max_failover_secs").unwrap();
    assert!(!failover.passed, "{summary}");
    assert!(report.failed_assertions().contains(&"max_failover_secs"));
    // The region was still detected as down: only the move was missing.
    assert!(report.time_to_detect_ms.is_some(), "{summary}");
}

#[test]
fn lift_harness_drill_and_compliance_say_which_command_to_run() {
    for args in [&["drill", "scenarios/region_outage.toml"][..], &["compliance"][..]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lift-harness")).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains("links no service"), "{stderr}");
        assert!(stderr.contains("--bin payments-harness -- drill scenarios/region_outage.toml"), "{stderr}");
    }
}

/// `ci_region_outage` with stream replication lagging when us-east-1 goes dark, and cut to
/// 14 s of load. Unfaulted, the stream carries a write over within milliseconds, so a write
/// acknowledged by us-east-1 alone is nearly always in eu-west-1 before the outage (a run
/// with the client below measured 0 missing at the failover): here replication between the
/// regions is cut from 7 s, as a stream lags when a region degrades before it fails. Sync
/// writes do not go through the stream: with them, eu-west-1 still holds every acknowledged
/// write at the failover. The outage is at 10 s, the failover within about 0.5 s and its
/// check after it; what follows (the heal, the settle) is not what the drill proves.
fn ci_scenario_lagging_at_the_outage() -> Scenario {
    let mut scenario = ci_scenario(true);
    scenario.load.duration = Duration::from_secs(14);
    let mut lag: lift_harness::drill::FaultSpec =
        toml::from_str("at = \"7s\"\nkind = \"partition\"\nregion = \"us-east-1\"\npeer = \"eu-west-1\"")
            .unwrap();
    lag.name = Some("stream-lag".into());
    scenario.faults.insert(0, lag);
    scenario
}

/// A client that acknowledges once the first region holds a write (stream replication
/// carries it on later) passes a check that reads the regions only after the heal: what
/// us-east-1 alone held is copied to eu-west-1 by then. Read at the failover, with
/// replication from us-east-1 held cut, eu-west-1 lacks it, and the drill fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_acknowledging_after_the_first_region_fails_the_check_at_failover() {
    let _one_at_a_time = DRILLS.lock().await;
    let drill = Drill::new(ci_scenario_lagging_at_the_outage(), Notes::default()).unwrap();
    let report = drill
        .acknowledge_after_first_region()
        .quiet(true)
        .settle(Duration::from_secs(2))
        .run()
        .await
        .unwrap();
    let summary = Summary(&report).to_string();
    println!("{summary}");
    assert!(!report.passed, "a drill whose client acknowledges after one region must fail: {summary}");
    assert_eq!(report.failovers, 1, "{summary}");
    let at_failover = report.assertions.iter().find(|a| a.name == "max_writes_missing_at_failover").unwrap();
    assert!(!at_failover.passed, "{summary}");
    assert!(report.writes.missing_at_failover[0] > 0, "{summary}");
    // None of them counted as degraded: the client believed itself synchronous.
    assert_eq!(report.writes.degraded, 0, "{summary}");
}

/// The control of the test above: the same lagging scenario with a synchronous client
/// passes, nothing missing at the failover, so what fails there is the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_client_passes_the_check_at_failover_with_replication_lagging() {
    let _one_at_a_time = DRILLS.lock().await;
    let drill = Drill::new(ci_scenario_lagging_at_the_outage(), Notes::default()).unwrap();
    let report = drill.quiet(true).settle(Duration::from_secs(2)).run().await.unwrap();
    let summary = Summary(&report).to_string();
    println!("{summary}");
    assert!(report.passed, "{summary}");
    assert_eq!(report.failovers, 1, "{summary}");
    assert_eq!(report.writes.missing_at_failover, [0], "{summary}");
}

/// `process_crash` over notes (its mix is payments': create, get, refund), with replication
/// between the regions cut from 7 s until the kill at 10 s: asynchronous replication's tail
/// at the kill is then the writes of those 3 s, where unfaulted it is a handful at most
/// (runs measured 0 and 1 missing in eu-west-1 at the failover), too few to show anything.
fn process_crash_scenario_with_a_tail() -> Scenario {
    let text = std::fs::read_to_string(scenarios_dir().join("process_crash.toml")).unwrap();
    assert!(text.contains("create = 6\nget = 3\nrefund = 1"));
    let text = text.replace("create = 6\nget = 3\nrefund = 1", "put = 3\nget = 1")
        + "\n[[fault]]\nname = \"tail\"\nat = \"7s\"\nheal_at = \"10s\"\nkind = \"partition\"\nregion = \"us-east-1\"\npeer = \"eu-west-1\"\n";
    Scenario::parse(&text).unwrap()
}

/// `process_crash` asserts convergence after the restart both ways: eu-west-1, the final
/// primary, comes to hold what us-east-1 acknowledged alone before it died (asynchronous
/// replication's tail), once us-east-1's stream is read again. With replication out of
/// us-east-1 stopped once its faults heal, eu-west-1 never does, and the drill fails.
/// About two minutes, with a JVM of its own to kill: not in CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process_crash runs 45 s of load around a JVM of its own, twice; CI runs the short drills"]
async fn process_crash_converges_both_ways_and_fails_when_the_restarted_region_never_replicates() {
    let _one_at_a_time = DRILLS.lock().await;
    let run = |stop: bool| async move {
        let drill = Drill::new(process_crash_scenario_with_a_tail(), Notes::default()).unwrap().quiet(true);
        let drill = if stop { drill.stop_replication_from_healed_regions() } else { drill };
        let report = drill.settle(Duration::from_secs(10)).run().await.unwrap();
        let summary = Summary(&report).to_string();
        println!("{summary}");
        (report, summary)
    };
    let (report, summary) = run(false).await;
    assert!(report.passed, "{summary}");
    assert_eq!(report.final_primary, "eu-west-1", "{summary}");
    assert!(report.writes.missing_at_failover[0] > 10, "the tail is the partition's writes: {summary}");
    assert_eq!(report.writes.missing_in_primary_by_region["us-east-1"], 0, "{summary}");

    let (report, summary) = run(true).await;
    assert!(!report.passed, "a region whose writes never replicate again must fail the drill: {summary}");
    let back =
        report.assertions.iter().find(|a| a.name == "max_writes_missing_in_primary_after_settle").unwrap();
    assert!(!back.passed, "{summary}");
    assert!(report.writes.missing_in_primary_by_region["us-east-1"] > 0, "{summary}");
    // The other direction still runs: us-east-1 holds what eu-west-1 holds.
    assert_eq!(report.writes.missing_by_region["us-east-1"], 0, "{summary}");
}
