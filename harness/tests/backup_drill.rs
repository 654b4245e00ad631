//! The backup drill of scenarios/backup_restore.toml on DynamoDB Local: a backup under
//! load, the table dropped mid-load, a restore to the moment before the drop. It passes
//! with no acknowledged write lost, and fails when the restore skips the stream archive.

use lift_harness::backup::{run_drill, BackupScenario};

fn scenario() -> BackupScenario {
    BackupScenario::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/backup_restore.toml")).unwrap()
}

#[tokio::test]
async fn the_ci_backup_drill_loses_no_acknowledged_write() {
    let report = run_drill(&scenario(), true).await.unwrap();
    println!("{report}");
    assert!(report.passed, "{:?}\n{report}", report.failed_assertions());
    assert_eq!(report.missing_before_backup + report.missing_after_backup, 0);
    // Every seeded item is checked (its last write may come after the backup).
    assert!(report.acknowledged >= 300, "{report}");
    assert!(report.acknowledged_before_backup > 0, "{report}");
    assert!(
        report.acknowledged_after_backup > 0,
        "no write after the backup: the archive was not exercised\n{report}"
    );
    assert!(report.changes_replayed > 0, "{report}");
    // Every write kind was acknowledged and checked, the deletes among them.
    for op in ["put", "overwrite", "delete"] {
        let (checked, lost) = report.by_op.get(op).copied().unwrap_or_default();
        assert!(checked > 0 && lost == 0, "{op}: {checked} checked, {lost} lost\n{report}");
    }
    assert!(report.restore_items_per_sec > 0.0);
    // Metered: the restore alone wrote every item it restored, a unit each at least.
    let cost = report.cost.as_ref().expect("the drill is metered");
    assert!(cost.write_units >= report.items_in_backup as f64, "{report}");
    assert!(cost.read_units > 0.0 && cost.dollars > 0.0, "{report}");
    // The reports: JSON, HTML and JUnit, the JUnit with one case per assertion.
    let dir = std::env::temp_dir().join(format!("lift-backup-reports-{}", std::process::id()));
    let files = report.write_to(&dir).unwrap();
    let junit = std::fs::read_to_string(&files.junit).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), report.assertions.len(), "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("PASSED") && html.contains("<svg"), "{html}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    assert_eq!(json["workload"], "items");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_drill_fails_when_the_restore_skips_the_stream_archive() {
    let mut s = scenario();
    s.name = "backup_restore_no_replay".into();
    s.backup.replay_archive = false;
    let report = run_drill(&s, true).await.unwrap();
    assert!(!report.passed, "{report}");
    assert_eq!(report.failed_assertions(), ["max_missing_acknowledged"], "{report}");
    assert!(report.missing_after_backup > 0, "{report}");
    assert_eq!(report.missing_before_backup, 0, "{report}");
    assert!(junit_names_the_failure(&report), "the JUnit report shows the failure");
}

fn junit_names_the_failure(report: &lift_harness::backup::BackupDrillReport) -> bool {
    let dir = std::env::temp_dir().join(format!("lift-backup-failed-{}", std::process::id()));
    let files = report.write_to(&dir).unwrap();
    let junit = std::fs::read_to_string(&files.junit).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    junit.contains("<failure message=\"max_missing_acknowledged")
}

#[test]
fn the_scenarios_parse_and_bad_timelines_are_refused() {
    let full =
        BackupScenario::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/backup_restore_full.toml"))
            .unwrap();
    assert_eq!(full.load.seed_items, 100_000);
    assert_eq!(full.assertions.max_rto_secs, Some(900.0));
    let ci =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/backup_restore.toml"))
            .unwrap();
    assert!(BackupScenario::is_backup_drill(&ci));
    let outage =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/ci_region_outage.toml"))
            .unwrap();
    assert!(!BackupScenario::is_backup_drill(&outage));
    let bad = ci.replace("drop_at = \"5s\"", "drop_at = \"1s\"");
    assert!(BackupScenario::parse(&bad).unwrap_err().to_string().contains("before"));
    // A misspelt key is refused by name, not ignored.
    let typo = ci.replace("archive_poll", "archive_pol");
    assert!(format!("{:#}", BackupScenario::parse(&typo).unwrap_err()).contains("archive_pol"));
}

/// A drill without assertions would report PASSED whatever the restore lost: refused in a
/// file, and in a scenario whose assertions were cleared in code, before anything runs.
#[tokio::test]
async fn a_drill_that_asserts_nothing_is_refused() {
    let ci =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/backup_restore.toml"))
            .unwrap();
    let start = ci.find("[assertions]").expect("the CI scenario asserts");
    let end = ci[start + 1..].find("\n[").map_or(ci.len(), |i| start + 1 + i);
    let unasserted = format!("{}{}", &ci[..start], &ci[end..]);
    let err = format!("{:#}", BackupScenario::parse(&unasserted).unwrap_err());
    assert!(err.contains("asserts nothing"), "{err}");
    let mut cleared = scenario();
    cleared.assertions = Default::default();
    let err = format!("{:#}", run_drill(&cleared, true).await.unwrap_err());
    assert!(err.contains("asserts nothing"), "{err}");
}

#[tokio::test]
async fn a_mix_or_seed_operation_the_workload_lacks_is_refused_before_anything_runs() {
    let mut s = scenario();
    s.load.mix = [("upsert".to_owned(), 1)].into();
    let err = format!("{:#}", run_drill(&s, true).await.unwrap_err());
    assert!(err.contains("upsert") && err.contains("put, overwrite, delete"), "{err}");
    let mut s = scenario();
    s.load.mix = [("overwrite".to_owned(), 1)].into();
    let err = format!("{:#}", run_drill(&s, true).await.unwrap_err());
    assert!(err.contains("put needs a weight"), "{err}");
    let mut s = scenario();
    s.load.seed_op = Some("create".into());
    let err = format!("{:#}", run_drill(&s, true).await.unwrap_err());
    assert!(err.contains("seed_op") && err.contains("create"), "{err}");
}
