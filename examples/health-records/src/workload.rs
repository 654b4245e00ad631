//! The harness side of health records (feature `harness`): the drill
//! [`HealthRecordsWorkload`] and the compliance suites' [`HealthRecordsCompliance`] target.

mod compliance;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{AckedWrite, Item, ReplicatedWriter};
use lift::security::protection::{AwsKmsClient, Envelope};
use lift::store::TableDef;
use lift_harness::drill::Load;
use lift_harness::{Call, Effect, OpError, Workload};
use rand::Rng as _;

pub use compliance::HealthRecordsCompliance;

use crate::model::{Encounter, Patient};
use crate::store::record_pk;
use crate::{PhiCipher, RecordStore, StoreError};

/// A health-records operation of a drill.
#[derive(Debug, Clone)]
pub enum Op {
    /// `RecordStore::register` of a new patient.
    Register {
        /// The tenant.
        tenant: String,
        /// The patient.
        patient: Patient,
    },
    /// `RecordStore::add_encounter` to a patient registered earlier.
    Encounter {
        /// The tenant.
        tenant: String,
        /// The patient id.
        patient: String,
        /// The encounter (with its id).
        encounter: Encounter,
    },
    /// `RecordStore::record` (decrypt everything) of a patient registered earlier.
    Read {
        /// The tenant.
        tenant: String,
        /// The patient id.
        patient: String,
    },
}

/// Health records under a drill: registrations, encounters and reads over `RecordStore`,
/// PHI sealed by envelope encryption under a KMS mock the workload starts itself, writes
/// through the drill's replicated writer. A registration must leave the patient item, an
/// encounter its item ([`Effect::Written`]); reads leave nothing.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lift_harness::drill::DrillError> {
/// use health_records::workload::HealthRecordsWorkload;
/// use lift_harness::drill::{Drill, Scenario};
///
/// let scenario = Scenario::load("scenarios/ci_region_outage.toml")?;
/// let report = Drill::new(scenario, HealthRecordsWorkload::default())?.run().await?;
/// assert!(report.passed);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct HealthRecordsWorkload {
    kms: tokio::sync::OnceCell<(lift_harness::aws::KmsMock, Envelope)>,
    /// Acknowledged registrations: tenant and patient id.
    registered: Mutex<Vec<(String, String)>>,
}

impl HealthRecordsWorkload {
    async fn store(&self, call: &Call<'_>) -> Result<RecordStore, OpError> {
        let (_, envelope) = self
            .kms
            .get_or_try_init(|| async {
                let kms = lift_harness::aws::KmsMock::start("eu-west-1").await;
                let client = AwsKmsClient::endpoint(&kms.uri(), "eu-west-1")
                    .map_err(|e| OpError::new("kms", e.to_string()))?;
                let envelope = Envelope::new(client, lift_harness::aws::DEFAULT_KEY_ALIAS);
                Ok::<_, OpError>((kms, envelope))
            })
            .await?;
        Ok(RecordStore::new(call.dynamodb().clone(), call.table(), PhiCipher::Envelope(envelope.clone())))
    }
}

fn key(tenant: &str, patient: &str, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(record_pk(tenant, patient))),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// The version the writer stamped on its last acknowledged write of `key`.
fn acked(writer: &ReplicatedWriter, key: Item) -> AckedWrite {
    let version = writer.acks().into_iter().rev().find(|ack| ack.keys.contains(&key)).map(|ack| ack.version);
    let acked = AckedWrite::new(key);
    match version {
        Some(version) => acked.with_version(version),
        None => acked,
    }
}

fn store_error(err: StoreError) -> OpError {
    match err {
        StoreError::Unavailable(code) => OpError::new("unavailable", code),
        StoreError::NotFound => OpError::new("not_found", "patient not found"),
        StoreError::Duplicate => OpError::new("duplicate", "record exists"),
        other => OpError::new("other", other.to_string()),
    }
}

impl Workload for HealthRecordsWorkload {
    type Op = Op;

    fn name(&self) -> &str {
        "health-records"
    }

    fn table(&self) -> TableDef {
        crate::table_def()
    }

    fn operations(&self) -> &[&'static str] {
        &["register", "encounter", "read"]
    }

    fn default_mix(&self) -> BTreeMap<String, u32> {
        [("register", 3), ("encounter", 4), ("read", 5)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn check_mix(&self, mix: &BTreeMap<String, u32>) -> Result<(), String> {
        match mix.get("register") {
            Some(n) if *n > 0 => Ok(()),
            _ => Err("register must be positive: encounters and reads need patients".into()),
        }
    }

    fn next(&self, kind: &'static str, load: &Load) -> Op {
        let mut rng = rand::thread_rng();
        let existing = {
            let registered = self.registered.lock().expect("registered lock");
            (!registered.is_empty()).then(|| registered[rng.gen_range(0..registered.len())].clone())
        };
        match (kind, existing) {
            ("read", Some((tenant, patient))) => Op::Read { tenant, patient },
            ("encounter", Some((tenant, patient))) => Op::Encounter {
                tenant,
                patient,
                encounter: Encounter {
                    id: Some(format!("enc_{}", uuid::Uuid::new_v4().simple())),
                    diagnoses: vec!["Z00.00".into()],
                    notes: Some("drill encounter".into()),
                    ..Encounter::default()
                },
            },
            _ => Op::Register {
                tenant: format!("drill-t{}", rng.gen_range(0..load.tenants.max(1))),
                patient: Patient {
                    id: format!("p_{}", uuid::Uuid::new_v4().simple()),
                    name: "Drill Patient".into(),
                    date_of_birth: "1970-01-01".into(),
                    member_id: None,
                },
            },
        }
    }

    fn kind(&self, op: &Op) -> &'static str {
        match op {
            Op::Register { .. } => "register",
            Op::Encounter { .. } => "encounter",
            Op::Read { .. } => "read",
        }
    }

    async fn execute<'a>(&'a self, op: &'a Op, call: &'a Call<'a>) -> Result<Option<Effect>, OpError> {
        let store = self.store(call).await?;
        match op {
            Op::Read { tenant, patient } => {
                store.record(tenant, patient).await.map_err(store_error)?;
                Ok(None)
            }
            Op::Register { tenant, patient } => {
                let writer = call.writer()?;
                store.with_writer(writer.clone()).register(tenant, patient).await.map_err(store_error)?;
                self.registered.lock().expect("registered lock").push((tenant.clone(), patient.id.clone()));
                Ok(Some(Effect::Written(acked(&writer, key(tenant, &patient.id, "PATIENT")))))
            }
            Op::Encounter { tenant, patient, encounter } => {
                let writer = call.writer()?;
                let id = store
                    .with_writer(writer.clone())
                    .add_encounter(tenant, patient, encounter.clone())
                    .await
                    .map_err(store_error)?;
                Ok(Some(Effect::Written(acked(&writer, key(tenant, patient, &format!("ENCOUNTER#{id}"))))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load() -> Load {
        Load {
            rate: 1.0,
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            concurrency: 1,
            tenants: 2,
            mix: Default::default(),
            warmup: Duration::ZERO,
        }
    }

    #[test]
    fn encounters_and_reads_wait_for_a_registration() {
        let w = HealthRecordsWorkload::default();
        assert!(matches!(w.next("read", &load()), Op::Register { .. }));
        assert!(matches!(w.next("encounter", &load()), Op::Register { .. }));
        w.registered.lock().unwrap().push(("drill-t0".into(), "p_1".into()));
        assert!(matches!(w.next("read", &load()), Op::Read { ref patient, .. } if patient == "p_1"));
        assert!(matches!(w.next("encounter", &load()), Op::Encounter { .. }));
        assert!(w.check_mix(&w.default_mix()).is_ok());
        let reads: BTreeMap<String, u32> = [("read".to_owned(), 1)].into_iter().collect();
        assert!(w.check_mix(&reads).is_err());
    }
}
