//! Health records through the harness's `Workload` trait: a short two-region drill
//! registers patients, adds encounters (PHI sealed under the workload's KMS mock) and reads
//! them back; every acknowledged write is found in both regions.

use std::time::Duration;

use health_records::workload::HealthRecordsWorkload;
use lift_harness::drill::{Drill, Scenario, Summary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_drill_loses_no_acknowledged_registration_or_encounter() {
    let scenario = Scenario::parse(include_str!("fixtures/drill_smoke.toml")).unwrap();
    let report = Drill::new(scenario, HealthRecordsWorkload::default())
        .unwrap()
        .quiet(true)
        .settle(Duration::from_secs(2))
        .run()
        .await
        .unwrap();
    let summary = Summary(&report).to_string();
    println!("{summary}\nerrors: {:?}", report.totals.errors_by_class);
    assert!(report.passed, "{summary}");
    assert_eq!(report.writes.lost, 0, "{summary}");
    assert!(report.writes.acknowledged > 5, "too few writes to mean anything: {summary}");
    // Reads found what registrations wrote, and decrypted it (no not_found, no other error).
    assert!(report.totals.errors_by_class.is_empty(), "{summary}");
    for kind in ["register", "encounter"] {
        let check =
            report.writes.by_kind.get(kind).unwrap_or_else(|| panic!("{kind} not checked: {summary}"));
        assert!(check.checked > 0, "{kind}: {summary}");
        assert_eq!((check.lost, check.divergent), (0, 0), "{kind}: {summary}");
    }
}

/// The shipped backup drill over health records: registrations and encounters (PHI sealed)
/// under load, a backup, the table dropped mid-load, a restore to the moment before the
/// drop; the workload reads every acknowledged write back from the restored table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_drill_restores_every_acknowledged_registration_and_encounter() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/backup_restore.toml");
    let scenario = lift_harness::backup::BackupScenario::load(path).unwrap();
    let report = lift_harness::backup::run_drill_with(&scenario, HealthRecordsWorkload::default(), true)
        .await
        .unwrap();
    println!("{report}");
    assert!(report.passed, "{report}");
    assert_eq!(report.workload, "health-records");
    assert_eq!(report.missing_before_backup + report.missing_after_backup, 0, "{report}");
    for kind in ["register", "encounter"] {
        let (checked, lost) = report.by_op.get(kind).copied().unwrap_or_default();
        assert!(checked > 0 && lost == 0, "{kind}: {checked} checked, {lost} lost: {report}");
    }
    assert!(report.acknowledged_after_backup > 0, "the stream archive was not exercised: {report}");
    assert!(report.failed_before_drop.is_empty(), "{report}");
}
