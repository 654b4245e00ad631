//! Health records in DynamoDB, PHI sealed.
//!
//! One table; a patient's record is one partition: `pk = TENANT#<tenant>#PATIENT#<id>`, and
//! `sk = PATIENT` (demographics), `ENCOUNTER#<id>` or `OBSERVATION#<id>`. Every read and
//! write names the caller's tenant in the partition key, so no tenant reaches another's
//! items, and a whole record is one consistent query.
//!
//! # What is stored
//!
//! | attribute | |
//! |---|---|
//! | `pk`, `sk`, `tenant`, `patient_id`, `id`, `kind` (S) | identifiers, in clear |
//! | `created_at` (S) | RFC 3339 |
//! | `expires_at` (N) | the end of the class's retention ([`Retention`]), the table's TTL |
//! | `phi` (B) | everything else (name, date of birth, diagnoses, procedures, medications, notes, values), sealed |
//!
//! `phi` is sealed by a [`PhiCipher`]: under the patient's own key
//! ([`SubjectKeys`], how the service runs: KMS wraps the key, the tenant is in the KMS
//! encryption context and in the AES-GCM associated data, the patient in the sealed header),
//! and the plaintext names its record (`tenant/patient/sk`), checked on every read: a
//! ciphertext copied onto another record, patient or tenant is refused as corrupt.
//! Erasing the patient deletes their key: every copy of their PHI, here and in any backup,
//! becomes unreadable at once in the instance that erased it and in any that had not cached
//! the key; another running instance that had cached the key reads it until its cached copy
//! ages out (60 s, [`SubjectKeys`]' default cache).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use lift::disaster::{ReplicatedWriter, Write};
use lift::security::protection::{Envelope, ProtectionError, SubjectKeys};
use lift::store::{KeyAttribute, TableDef};
use serde::{Deserialize, Serialize};

use crate::model::{Encounter, Observation, Patient, Record};

/// The health-records table: `pk`/`sk`, items expire through `expires_at`.
pub fn table_def() -> TableDef {
    TableDef::new("health-records", KeyAttribute::string("pk"))
        .with_sort_key(KeyAttribute::string("sk"))
        .with_ttl("expires_at")
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An item with this id exists already.
    #[error("a record with this id already exists")]
    Duplicate,
    /// Nothing is stored for the patient.
    #[error("patient not found")]
    NotFound,
    /// The record is under retention: it may not be erased before `until` (RFC 3339).
    #[error("the record is kept until {until} by its retention")]
    Retained {
        /// When the last retained entry's retention ends.
        until: String,
    },
    /// A stored item is malformed, or its ciphertext is not this record's.
    #[error("a stored record is corrupt ({0})")]
    Corrupt(&'static str),
    /// DynamoDB is throttling or unavailable: retry later.
    #[error("the store is unavailable ({0})")]
    Unavailable(String),
    /// Sealing or opening PHI failed (KMS, the key table).
    #[error("the records cannot be sealed or opened")]
    Protection(#[source] ProtectionError),
    /// Any other failure.
    #[error("store failure: {0}")]
    Other(String),
}

impl From<ProtectionError> for StoreError {
    fn from(err: ProtectionError) -> Self {
        StoreError::Protection(err)
    }
}

fn classify<E: ProvideErrorMetadata, R>(err: SdkError<E, R>) -> StoreError {
    match err.code() {
        // Throttling and server errors: the codes failover's passive detection counts.
        Some(code) if lift::disaster::FailureKind::from_error_code(code).is_some() => {
            StoreError::Unavailable(code.to_owned())
        }
        Some(code) => StoreError::Other(code.to_owned()),
        None => StoreError::Unavailable("no answer from DynamoDB".to_owned()),
    }
}

/// How PHI is sealed.
#[derive(Debug, Clone)]
pub enum PhiCipher {
    /// Under each patient's own key: erasure reaches every copy (how the service runs).
    Subject(SubjectKeys),
    /// Under the tenant's envelope data keys: erasure deletes the items but cannot reach
    /// copies elsewhere (drills and benches, which have no key table).
    Envelope(Envelope),
}

impl PhiCipher {
    async fn seal(&self, tenant: &str, patient: &str, plain: &[u8]) -> Result<Vec<u8>, ProtectionError> {
        match self {
            PhiCipher::Subject(keys) => keys.encrypt(tenant, patient, plain).await,
            PhiCipher::Envelope(envelope) => envelope.encrypt(tenant, plain).await,
        }
    }

    /// The plaintext, or `None` when the patient's key was erased.
    async fn open(&self, tenant: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>, ProtectionError> {
        match self {
            PhiCipher::Subject(keys) => keys.decrypt(tenant, sealed).await,
            PhiCipher::Envelope(envelope) => envelope.decrypt(tenant, sealed).await.map(Some),
        }
    }

    async fn erase(&self, tenant: &str, patient: &str) -> Result<(), ProtectionError> {
        match self {
            PhiCipher::Subject(keys) => keys.erase(tenant, patient).await.map(|_| ()),
            PhiCipher::Envelope(_) => Ok(()),
        }
    }
}

/// How long each class of entry is kept (the item's `expires_at`), and so how long it
/// blocks erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Demographics (`PATIENT`): kept as long, but never block erasure on their own (a
    /// patient registered and never seen).
    pub demographics: Duration,
    /// Encounters.
    pub encounters: Duration,
    /// Observations.
    pub observations: Duration,
}

const YEAR: u64 = 365 * 86_400;

impl Default for Retention {
    /// Ten years for every class: HIPAA keeps its own documentation six years (164.316);
    /// medical records follow state law, commonly seven to ten years for adults.
    fn default() -> Self {
        let ten = Duration::from_secs(10 * YEAR);
        Self { demographics: ten, encounters: ten, observations: ten }
    }
}

/// The kind of an entry of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Patient,
    Encounter,
    Observation,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Patient => "patient",
            Kind::Encounter => "encounter",
            Kind::Observation => "observation",
        }
    }

    fn ttl(self, retention: &Retention) -> Duration {
        match self {
            Kind::Patient => retention.demographics,
            Kind::Encounter => retention.encounters,
            Kind::Observation => retention.observations,
        }
    }
}

/// What is sealed: the entry's data and the record it belongs to.
#[derive(Serialize, Deserialize)]
struct Sealed<T> {
    record: String,
    data: T,
}

/// The partition key of a patient's record.
pub fn record_pk(tenant: &str, patient: &str) -> String {
    format!("TENANT#{tenant}#PATIENT#{patient}")
}

/// The health-records store.
#[derive(Debug, Clone)]
pub struct RecordStore {
    client: Client,
    table: String,
    cipher: PhiCipher,
    retention: Retention,
    writer: Option<ReplicatedWriter>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn epoch(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn rfc3339(secs: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Milliseconds since the epoch as RFC 3339 (seconds precision).
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    rfc3339(ms / 1_000)
}

impl RecordStore {
    /// A store over `table`, sealing PHI with `cipher`, with the default [`Retention`].
    pub fn new(client: Client, table: impl Into<String>, cipher: PhiCipher) -> Self {
        Self { client, table: table.into(), cipher, retention: Retention::default(), writer: None }
    }

    /// Sets the retention per class.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Writes through `writer` (a replicated table, as drills run it) instead of the client.
    pub fn with_writer(mut self, writer: ReplicatedWriter) -> Self {
        self.writer = Some(writer);
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Registers a patient; refuses an id the tenant already used.
    pub async fn register(&self, tenant: &str, patient: &Patient) -> Result<(), StoreError> {
        self.put(tenant, &patient.id, Kind::Patient, &patient.id, patient).await
    }

    /// Adds an encounter to a patient's record; returns its id.
    pub async fn add_encounter(
        &self,
        tenant: &str,
        patient: &str,
        mut encounter: Encounter,
    ) -> Result<String, StoreError> {
        let id = encounter.id.get_or_insert_with(|| format!("enc_{}", uuid::Uuid::new_v4().simple())).clone();
        self.put(tenant, patient, Kind::Encounter, &id, &encounter).await?;
        Ok(id)
    }

    /// Adds an observation to a patient's record; returns its id.
    pub async fn add_observation(
        &self,
        tenant: &str,
        patient: &str,
        mut observation: Observation,
    ) -> Result<String, StoreError> {
        let id =
            observation.id.get_or_insert_with(|| format!("obs_{}", uuid::Uuid::new_v4().simple())).clone();
        self.put(tenant, patient, Kind::Observation, &id, &observation).await?;
        Ok(id)
    }

    fn sk(kind: Kind, id: &str) -> String {
        match kind {
            Kind::Patient => "PATIENT".to_owned(),
            Kind::Encounter => format!("ENCOUNTER#{id}"),
            Kind::Observation => format!("OBSERVATION#{id}"),
        }
    }

    async fn put<T: Serialize>(
        &self,
        tenant: &str,
        patient: &str,
        kind: Kind,
        id: &str,
        data: &T,
    ) -> Result<(), StoreError> {
        let item =
            sealed_item(&self.cipher, tenant, patient, kind, id, data, &self.retention, SystemTime::now())
                .await?;
        const NEW: &str = "attribute_not_exists(pk)";
        if let Some(writer) = &self.writer {
            return match writer.write(Write::put(item).when(NEW)).await {
                Ok(_) => Ok(()),
                Err(err) if err.is_rejected() => Err(StoreError::Duplicate),
                Err(err) => Err(StoreError::Unavailable(err.to_string())),
            };
        }
        let put =
            self.client.put_item().table_name(&self.table).set_item(Some(item)).condition_expression(NEW);
        match put.send().await {
            Ok(_) => Ok(()),
            Err(err)
                if err.as_service_error().and_then(|e| e.code())
                    == Some("ConditionalCheckFailedException") =>
            {
                Err(StoreError::Duplicate)
            }
            Err(err) => Err(classify(err)),
        }
    }

    /// Every stored item of a patient's record, raw.
    async fn items(
        &self,
        tenant: &str,
        patient: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(record_pk(tenant, patient)))
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(classify)?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// A patient's whole record, decrypted; [`StoreError::NotFound`] when nothing is
    /// stored (or everything was erased).
    pub async fn record(&self, tenant: &str, patient: &str) -> Result<Record, StoreError> {
        let items = self.items(tenant, patient).await?;
        open_record(&self.cipher, tenant, patient, &items).await
    }

    /// Erases a patient's record where the law allows it: refused with
    /// [`StoreError::Retained`] while an encounter or observation is under retention.
    /// Otherwise the patient's key is deleted first (every copy of their PHI, in backups
    /// too, is unreadable from then on), then the items. Returns how many items went.
    pub async fn erase(&self, tenant: &str, patient: &str, now: SystemTime) -> Result<usize, StoreError> {
        let items = self.items(tenant, patient).await?;
        if items.is_empty() {
            return Err(StoreError::NotFound);
        }
        let retained = items
            .iter()
            .filter(|i| i.get("kind").and_then(|v| v.as_s().ok()).is_some_and(|k| k != "patient"))
            .filter_map(|i| {
                i.get("expires_at").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok())
            })
            .filter(|until| *until > epoch(now))
            .max();
        if let Some(until) = retained {
            return Err(StoreError::Retained { until: rfc3339(until) });
        }
        self.cipher.erase(tenant, patient).await?;
        for item in &items {
            let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk")) else { continue };
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk.clone())
                .key("sk", sk.clone())
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(items.len())
    }
}

/// An entry of a record, to seal ([`seal_entry`]).
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// Demographics.
    Patient(&'a Patient),
    /// An encounter (its id set).
    Encounter(&'a Encounter),
    /// An observation (its id set).
    Observation(&'a Observation),
}

/// The stored item of one entry of a patient's record, its PHI sealed with `cipher` (what
/// the store writes; public for benches and tools).
pub async fn seal_entry(
    cipher: &PhiCipher,
    tenant: &str,
    patient: &str,
    entry: Entry<'_>,
    retention: &Retention,
    now: SystemTime,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    match entry {
        Entry::Patient(p) => {
            sealed_item(cipher, tenant, patient, Kind::Patient, &p.id, p, retention, now).await
        }
        Entry::Encounter(e) => {
            let id = e.id.as_deref().unwrap_or_default();
            sealed_item(cipher, tenant, patient, Kind::Encounter, id, e, retention, now).await
        }
        Entry::Observation(o) => {
            let id = o.id.as_deref().unwrap_or_default();
            sealed_item(cipher, tenant, patient, Kind::Observation, id, o, retention, now).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn sealed_item<T: Serialize>(
    cipher: &PhiCipher,
    tenant: &str,
    patient: &str,
    kind: Kind,
    id: &str,
    data: &T,
    retention: &Retention,
    now: SystemTime,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let sk = RecordStore::sk(kind, id);
    let sealed = Sealed { record: format!("{tenant}/{patient}/{sk}"), data };
    let plain = serde_json::to_vec(&sealed).map_err(|e| StoreError::Other(e.to_string()))?;
    let phi = cipher.seal(tenant, patient, &plain).await?;
    Ok([
        ("pk", s(record_pk(tenant, patient))),
        ("sk", s(sk)),
        ("tenant", s(tenant)),
        ("patient_id", s(patient)),
        ("id", s(id)),
        ("kind", s(kind.as_str())),
        ("created_at", s(rfc3339(epoch(now)))),
        ("expires_at", AttributeValue::N((epoch(now) + kind.ttl(retention).as_secs()).to_string())),
        ("phi", AttributeValue::B(Blob::new(phi))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect())
}

/// A patient's record from its stored items, each opened and checked to be this tenant's,
/// patient's and entry's; [`StoreError::NotFound`] when nothing is readable (nothing
/// stored, or the patient's key was erased). Public for benches and tools.
pub async fn open_record(
    cipher: &PhiCipher,
    tenant: &str,
    patient: &str,
    items: &[HashMap<String, AttributeValue>],
) -> Result<Record, StoreError> {
    let mut record = Record { patient_id: patient.to_owned(), ..Record::default() };
    for item in items {
        let sk = item.get("sk").and_then(|v| v.as_s().ok()).ok_or(StoreError::Corrupt("sk"))?;
        let sealed = item.get("phi").and_then(|v| v.as_b().ok()).ok_or(StoreError::Corrupt("phi"))?;
        let Some(plain) = cipher.open(tenant, sealed.as_ref()).await? else {
            // The patient's key was erased: nothing of theirs is readable any more.
            continue;
        };
        let expected = format!("{tenant}/{patient}/{sk}");
        if sk == "PATIENT" {
            record.patient = Some(open_as::<Patient>(&plain, &expected)?);
        } else if sk.starts_with("ENCOUNTER#") {
            record.encounters.push(open_as(&plain, &expected)?);
        } else if sk.starts_with("OBSERVATION#") {
            record.observations.push(open_as(&plain, &expected)?);
        }
    }
    if record.is_empty() {
        return Err(StoreError::NotFound);
    }
    Ok(record)
}

fn open_as<T: serde::de::DeserializeOwned>(plain: &[u8], expected: &str) -> Result<T, StoreError> {
    let sealed: Sealed<T> = serde_json::from_slice(plain).map_err(|_| StoreError::Corrupt("phi"))?;
    if sealed.record != expected {
        return Err(StoreError::Corrupt("phi of another record"));
    }
    Ok(sealed.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_entry_opens_only_as_its_own_record() {
        let plain =
            serde_json::to_vec(&Sealed { record: "t/p-1/ENCOUNTER#e-1".into(), data: Encounter::default() })
                .unwrap();
        assert!(open_as::<Encounter>(&plain, "t/p-1/ENCOUNTER#e-1").is_ok());
        assert!(matches!(open_as::<Encounter>(&plain, "t/p-2/ENCOUNTER#e-1"), Err(StoreError::Corrupt(_))));
        assert!(matches!(open_as::<Encounter>(&plain, "u/p-1/ENCOUNTER#e-1"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            open_as::<Encounter>(b"not json", "t/p-1/ENCOUNTER#e-1"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn retention_is_per_class() {
        let r = Retention {
            demographics: Duration::from_secs(1),
            encounters: Duration::from_secs(2),
            ..Retention::default()
        };
        assert_eq!(Kind::Patient.ttl(&r), Duration::from_secs(1));
        assert_eq!(Kind::Encounter.ttl(&r), Duration::from_secs(2));
        assert_eq!(Kind::Observation.ttl(&r), Duration::from_secs(10 * YEAR));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
