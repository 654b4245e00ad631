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
    assert!(report.refused_after_drop + report.acknowledged > 0);
    assert!(report.restore_items_per_sec > 0.0);
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
}
