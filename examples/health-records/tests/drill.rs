//! Health records through the harness's `Workload` trait: a short two-region drill
//! registers patients, adds encounters (PHI sealed under the workload's KMS mock) and reads
//! them back; every acknowledged write is found in both regions.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use health_records::store::record_pk;
use health_records::workload::{drill_encounter, drill_patient, HealthRecordsWorkload};
use lift::disaster::{AckedWrite, RegionConfig, RegionSet, ReplicatedTable};
use lift_harness::drill::{Drill, Scenario, Summary};
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::{Acked, Effect, Workload};

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

/// The check opens what it finds: items that are there at their version but whose PHI does
/// not open (a corrupt ciphertext, another record's ciphertext) or opens to something other
/// than what was written count as stale; the rest are held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_counts_phi_that_does_not_open_to_what_was_written_as_lost() {
    let local = DynamoDbLocal::shared().await.unwrap();
    let workload = HealthRecordsWorkload::default();
    let table = local.create_table(&workload.table()).await.unwrap();
    let client = local.client().await;
    let store = workload.store_on(client.clone(), &table).await.unwrap();
    let tenant = "drill-t0";
    let key = |patient: &str, sk: String| {
        [
            ("pk".to_owned(), AttributeValue::S(record_pk(tenant, patient))),
            ("sk".to_owned(), AttributeValue::S(sk)),
        ]
        .into_iter()
        .collect::<lift::disaster::Item>()
    };
    let mut acked = Vec::new();
    for id in ["p_intact", "p_corrupt", "p_swapped", "p_other"] {
        let mut patient = drill_patient(id);
        if id == "p_other" {
            // Stored, and opens, but is not what the drill wrote.
            patient.name.push_str(" Jr");
        }
        store.register(tenant, &patient).await.unwrap();
        let encounter = format!("enc_{id}");
        store.add_encounter(tenant, id, drill_encounter(&encounter)).await.unwrap();
        for (op, sk) in [("register", "PATIENT".to_owned()), ("encounter", format!("ENCOUNTER#{encounter}"))]
        {
            acked.push(Acked {
                op,
                region: "us-east-1".into(),
                effect: Effect::Written(AckedWrite::new(key(id, sk))),
            });
        }
    }
    let region = RegionSet::builder()
        .region(RegionConfig::new("us-east-1").dynamodb_endpoint(local.endpoint()))
        .build()
        .unwrap()
        .primary()
        .clone();
    let replicated = ReplicatedTable::new(workload.table()).with_name_in("us-east-1", table.clone());
    // Before any tampering: only the patient stored as something else.
    let before = workload.check(&region, &replicated, &acked).await.unwrap();
    assert_eq!(before.lost(), 1, "{before:?}");
    let other = &before.by_op["register"].stale;
    assert_eq!(other.len(), 1, "{before:?}");
    assert_eq!(other[0]["pk"].as_s().unwrap(), &record_pk(tenant, "p_other"));

    let phi = |patient: &str, sk: String| {
        let (client, table, key) = (client.clone(), table.clone(), key(patient, sk));
        async move {
            let out = client.get_item().table_name(&table).set_key(Some(key)).send().await.unwrap();
            out.item().unwrap()["phi"].as_b().unwrap().as_ref().to_vec()
        }
    };
    let set_phi = |patient: &str, sk: String, bytes: Vec<u8>| {
        let (client, table, key) = (client.clone(), table.clone(), key(patient, sk));
        async move {
            client
                .update_item()
                .table_name(&table)
                .set_key(Some(key))
                .update_expression("SET phi = :p")
                .expression_attribute_values(":p", AttributeValue::B(bytes.into()))
                .send()
                .await
                .unwrap();
        }
    };
    // One byte of a ciphertext flipped.
    let mut corrupt = phi("p_corrupt", "PATIENT".into()).await;
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    set_phi("p_corrupt", "PATIENT".into(), corrupt).await;
    // Another patient's valid ciphertext in its place.
    let intact = phi("p_intact", "ENCOUNTER#enc_p_intact".into()).await;
    set_phi("p_swapped", "ENCOUNTER#enc_p_swapped".into(), intact).await;

    let check = workload.check(&region, &replicated, &acked).await.unwrap();
    let stale: Vec<String> = check
        .by_op
        .values()
        .flat_map(|c| c.stale.iter())
        .map(|k| format!("{}|{}", k["pk"].as_s().unwrap(), k["sk"].as_s().unwrap()))
        .collect();
    let missing: usize = check.by_op.values().map(|c| c.missing.len()).sum();
    assert_eq!(missing, 0, "every item is there: {check:?}");
    for patient in ["p_corrupt", "p_swapped"] {
        // A record that does not open holds none of its items.
        for sk in ["PATIENT".to_owned(), format!("ENCOUNTER#enc_{patient}")] {
            let label = format!("{}|{sk}", record_pk(tenant, patient));
            assert!(stale.contains(&label), "{label} does not open but was counted held: {stale:?}");
        }
    }
    assert!(stale.contains(&format!("{}|PATIENT", record_pk(tenant, "p_other"))), "{stale:?}");
    assert_eq!(stale.len(), 5, "only what does not open as written: {stale:?}");
    let _ = client.delete_table().table_name(&table).send().await;
}
