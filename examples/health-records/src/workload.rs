//! The harness side of health records (feature `harness`): the drill
//! [`HealthRecordsWorkload`] and the compliance suites' [`HealthRecordsCompliance`] target.

mod compliance;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{AckedWrite, Item, Region, ReplicatedTable, ReplicatedWriter, RpoError};
use lift::security::protection::{AwsKmsClient, Envelope};
use lift::store::TableDef;
use lift_harness::drill::Load;
use lift_harness::workload::check_effects;
use lift_harness::{Acked, Call, Effect, EffectCheck, OpError, Workload};
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
/// The check opens what it finds: beyond the items being there at their version, every
/// acknowledged patient and encounter must decrypt, in the region (or restored table)
/// checked, to exactly what was written ([`drill_patient`], [`drill_encounter`]). An item
/// whose PHI does not open (a corrupt or swapped ciphertext, a lost data key) or opens to
/// something else counts as stale.
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
        self.store_on(call.dynamodb().clone(), call.table()).await
    }

    /// A `RecordStore` over `table` sealing PHI as the workload's operations do (under the
    /// KMS mock it starts on first use).
    ///
    /// # Errors
    /// [`OpError`] `kms` when the KMS client cannot be built.
    pub async fn store_on(
        &self,
        client: aws_sdk_dynamodb::Client,
        table: &str,
    ) -> Result<RecordStore, OpError> {
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
        Ok(RecordStore::new(client, table, PhiCipher::Envelope(envelope.clone())))
    }

    /// Opens every acknowledged patient and encounter that `check` found present, and
    /// marks stale each one that does not open to what was written.
    async fn open_all(
        &self,
        region: &Region,
        table: &ReplicatedTable,
        acked: &[Acked],
        check: &mut EffectCheck,
    ) -> Result<(), RpoError> {
        let failed = |message: String| RpoError::Request {
            operation: "Query",
            region: region.name().to_owned(),
            message,
        };
        let store = self
            .store_on(region.dynamodb().clone(), table.name_in(region.name()))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let counted: Vec<&Item> =
            check.by_op.values().flat_map(|c| c.missing.iter().chain(c.stale.iter())).collect();
        // Per patient, each acknowledged item found there: its operation, key and sort key.
        let mut patients: BTreeMap<(String, String), Vec<Found>> = BTreeMap::new();
        for a in acked {
            let key = a.effect.key();
            if counted.contains(&key) {
                continue;
            }
            let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let Some((tenant, patient)) = split_record_pk(&text("pk")) else { continue };
            let entry = patients.entry((tenant, patient)).or_default();
            if !entry.iter().any(|(_, k, _)| k == key) {
                entry.push((a.op, key.clone(), text("sk")));
            }
        }
        for ((tenant, patient), items) in patients {
            let record = match store.record(&tenant, &patient).await {
                Ok(record) => Some(record),
                Err(StoreError::Unavailable(message)) => return Err(failed(message)),
                // The record does not open: nothing of it counts as held.
                Err(_) => None,
            };
            for (op, key, sk) in items {
                let opens = record.as_ref().is_some_and(|record| match sk.strip_prefix("ENCOUNTER#") {
                    Some(id) => record.encounters.contains(&drill_encounter(id)),
                    None => sk == "PATIENT" && record.patient.as_ref() == Some(&drill_patient(&patient)),
                });
                if !opens {
                    check.by_op.entry(op.to_owned()).or_default().stale.push(key);
                }
            }
        }
        Ok(())
    }
}

/// An acknowledged item found where it was checked: its operation, key and sort key.
type Found = (&'static str, Item, String);

/// The tenant and patient of a record's partition key (`TENANT#t#PATIENT#p`).
fn split_record_pk(pk: &str) -> Option<(String, String)> {
    let rest = pk.strip_prefix("TENANT#")?;
    let (tenant, patient) = rest.rsplit_once("#PATIENT#")?;
    Some((tenant.to_owned(), patient.to_owned()))
}

/// A number drawn from `id` alone (FNV-1a): the same id always makes the same record.
fn drawn(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The demographics a drill registers as patient `id`: fake, and made from the id alone, so
/// the check knows what each patient must open to wherever it is read.
pub fn drill_patient(id: &str) -> Patient {
    const GIVEN: [&str; 8] = ["Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Grace", "Hiro"];
    const FAMILY: [&str; 8] =
        ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Kowalski"];
    let h = drawn(id);
    Patient {
        id: id.to_owned(),
        name: format!("{} {}", GIVEN[(h % 8) as usize], FAMILY[((h >> 3) % 8) as usize]),
        date_of_birth: format!(
            "{}-{:02}-{:02}",
            1930 + (h >> 6) % 80,
            1 + (h >> 13) % 12,
            1 + (h >> 17) % 28
        ),
        member_id: Some(format!("M{:08}", (h >> 22) % 100_000_000)),
    }
}

/// The encounter a drill adds as encounter `id`: fake, and made from the id alone.
pub fn drill_encounter(id: &str) -> Encounter {
    const DIAGNOSES: [&str; 4] = ["Z00.00", "J06.9", "I10", "E11.9"];
    const MEDICATIONS: [&str; 4] =
        ["amoxicillin 500 mg", "lisinopril 10 mg", "metformin 500 mg", "ibuprofen 400 mg"];
    let h = drawn(id);
    Encounter {
        id: Some(id.to_owned()),
        date: Some(format!("2026-{:02}-{:02}", 1 + h % 12, 1 + (h >> 4) % 28)),
        diagnoses: vec![DIAGNOSES[((h >> 9) % 4) as usize].to_owned()],
        procedures: vec!["99213".to_owned()],
        medications: vec![MEDICATIONS[((h >> 11) % 4) as usize].to_owned()],
        notes: Some(format!("drill encounter {id}: follow up in {} weeks", 1 + (h >> 13) % 6)),
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

    async fn check<'a>(
        &'a self,
        region: &'a Region,
        table: &'a ReplicatedTable,
        acked: &'a [Acked],
    ) -> Result<EffectCheck, RpoError> {
        let mut check = check_effects(region, table, acked).await?;
        self.open_all(region, table, acked, &mut check).await?;
        Ok(check)
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
                encounter: drill_encounter(&format!("enc_{}", uuid::Uuid::new_v4().simple())),
            },
            _ => Op::Register {
                tenant: format!("drill-t{}", rng.gen_range(0..load.tenants.max(1))),
                patient: drill_patient(&format!("p_{}", uuid::Uuid::new_v4().simple())),
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
