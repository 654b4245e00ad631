//! The manifest of a backup: the table definition, the segments with their item counts and
//! SHA-256, when the backup started and ended, and its signature.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex,
    Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableDescription,
};
use serde::{Deserialize, Serialize};

use super::key::{BackupKey, Signature, SignatureProblem};

/// The manifest's format version.
pub const MANIFEST_FORMAT: u32 = 1;

/// What a backup holds: written last, so a backup without one is incomplete.
///
/// A backup signs its manifest with its [`BackupKey`] (HMAC-SHA256 over the manifest's
/// canonical bytes: its compact JSON without the signature, bound to its backup id). The
/// manifest holds the SHA-256 of every segment, so the signature covers the data too: a
/// changed item, a recomputed hash, a manifest copied from another backup or a removed
/// signature are refused by a restore.
///
/// # Examples
///
/// ```
/// use lift::disaster::backup::{BackupKey, Manifest};
///
/// let text = r#"{"format":1,"backup_id":"b1","table":"orders","definition":{"key_schema":[["pk","HASH"]],
///   "attributes":[["pk","S"]]},"item_count":0,"segments":[],"started_at_ms":1,"ended_at_ms":2}"#;
/// let mut manifest: Manifest = serde_json::from_str(text)?;
/// assert_eq!(manifest.definition.key_schema[0].0, "pk");
/// let key = BackupKey::new([7u8; 32]).unwrap();
/// assert!(manifest.verify(&key).is_err(), "unsigned");
/// manifest.sign(&key);
/// assert!(manifest.verify(&key).is_ok());
/// manifest.item_count += 1;
/// assert!(manifest.verify(&key).is_err(), "changed after it was signed");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The backup's id: its start in epoch milliseconds and a random suffix, so ids sort
    /// by time.
    pub backup_id: String,
    /// The table backed up.
    pub table: String,
    /// Its definition, from DescribeTable.
    pub definition: TableDefinition,
    /// Items over every segment.
    pub item_count: u64,
    /// The segments, by index.
    pub segments: Vec<SegmentEntry>,
    /// When the scan started (epoch milliseconds).
    pub started_at_ms: u64,
    /// When the last segment was written (epoch milliseconds).
    pub ended_at_ms: u64,
    /// The signature of the rest, by the backup's key. Absent in manifests written before
    /// backups were signed: a restore refuses them unless it allows unsigned backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// What a manifest's signature is over: this domain, the backup id, the canonical bytes.
const DOMAIN: &str = "lift-backup-manifest-v1";

impl Manifest {
    /// The canonical bytes that are signed: the manifest's compact JSON without its
    /// signature. A restore verifies what it parsed (never the file's own layout), so
    /// whitespace or key order in the stored file do not matter, and any changed value does.
    fn canonical(&self) -> Vec<u8> {
        let unsigned = Manifest { signature: None, ..self.clone() };
        serde_json::to_vec(&unsigned).expect("a manifest serializes")
    }

    /// Signs the manifest with `key` (replacing any signature it had).
    pub fn sign(&mut self, key: &BackupKey) {
        self.signature = Some(key.sign(DOMAIN, &self.backup_id, &self.canonical()));
    }

    /// Whether `key` signed the manifest as it is.
    ///
    /// # Errors
    /// [`SignatureProblem::Missing`] without a signature, [`SignatureProblem::OtherKey`] when
    /// it names another key, [`SignatureProblem::Mismatch`] when it was changed after it was
    /// signed.
    pub fn verify(&self, key: &BackupKey) -> Result<(), SignatureProblem> {
        let signature = self.signature.as_ref().ok_or(SignatureProblem::Missing)?;
        key.verify(DOMAIN, &self.backup_id, &self.canonical(), signature)
    }
}

/// One segment of a backup: the items of one parallel-scan segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// The scan segment.
    pub index: u32,
    /// The file, relative to the backup's folder.
    pub file: String,
    /// Items in it.
    pub items: u64,
    /// Its size in bytes (compressed).
    pub bytes: u64,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
}

/// What a restore needs to create the table again: keys, attribute types, indexes,
/// capacity and stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TableDefinition {
    /// (attribute, `HASH` or `RANGE`).
    pub key_schema: Vec<(String, String)>,
    /// (attribute, `S`, `N` or `B`).
    pub attributes: Vec<(String, String)>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    #[serde(default)]
    pub billing_mode: Option<String>,
    /// (read, write) capacity units when provisioned.
    #[serde(default)]
    pub capacity: Option<(i64, i64)>,
    /// Global secondary indexes.
    #[serde(default)]
    pub global_indexes: Vec<IndexDefinition>,
    /// Local secondary indexes.
    #[serde(default)]
    pub local_indexes: Vec<IndexDefinition>,
    /// The stream view type, when the table has a stream.
    #[serde(default)]
    pub stream_view: Option<String>,
    /// The time-to-live attribute, when TTL is on: a restore turns it on again, so that
    /// retention enforced by TTL (expired PHI deleted) holds on the restored table too.
    /// Absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_attribute: Option<String>,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDefinition {
    /// Its name.
    pub name: String,
    /// (attribute, `HASH` or `RANGE`).
    pub key_schema: Vec<(String, String)>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
    /// The attributes of an `INCLUDE` projection.
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
    /// (read, write) capacity units when provisioned.
    #[serde(default)]
    pub capacity: Option<(i64, i64)>,
}

fn keys(schema: &[KeySchemaElement]) -> Vec<(String, String)> {
    schema.iter().map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned())).collect()
}

fn capacity(read: Option<i64>, write: Option<i64>) -> Option<(i64, i64)> {
    match (read, write) {
        (Some(r), Some(w)) if r > 0 && w > 0 => Some((r, w)),
        _ => None,
    }
}

impl TableDefinition {
    /// The definition in a DescribeTable answer.
    pub fn from_description(table: &TableDescription) -> Self {
        let billing_mode =
            table.billing_mode_summary().and_then(|b| b.billing_mode()).map(|m| m.as_str().to_owned());
        let throughput = |t: Option<&aws_sdk_dynamodb::types::ProvisionedThroughputDescription>| {
            t.and_then(|t| capacity(t.read_capacity_units(), t.write_capacity_units()))
        };
        let projection = |p: Option<&Projection>| {
            (
                p.and_then(|p| p.projection_type()).map_or("ALL".to_owned(), |t| t.as_str().to_owned()),
                p.map(|p| p.non_key_attributes().to_vec()).unwrap_or_default(),
            )
        };
        Self {
            key_schema: keys(table.key_schema()),
            attributes: table
                .attribute_definitions()
                .iter()
                .map(|a| (a.attribute_name().to_owned(), a.attribute_type().as_str().to_owned()))
                .collect(),
            capacity: if billing_mode.as_deref() == Some("PAY_PER_REQUEST") {
                None
            } else {
                throughput(table.provisioned_throughput())
            },
            billing_mode,
            global_indexes: table
                .global_secondary_indexes()
                .iter()
                .map(|g| {
                    let (projection, non_key_attributes) = projection(g.projection());
                    IndexDefinition {
                        name: g.index_name().unwrap_or_default().to_owned(),
                        key_schema: keys(g.key_schema()),
                        projection,
                        non_key_attributes,
                        capacity: throughput(g.provisioned_throughput()),
                    }
                })
                .collect(),
            local_indexes: table
                .local_secondary_indexes()
                .iter()
                .map(|l| {
                    let (projection, non_key_attributes) = projection(l.projection());
                    IndexDefinition {
                        name: l.index_name().unwrap_or_default().to_owned(),
                        key_schema: keys(l.key_schema()),
                        projection,
                        non_key_attributes,
                        capacity: None,
                    }
                })
                .collect(),
            stream_view: table
                .stream_specification()
                .filter(|s| s.stream_enabled())
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str().to_owned()),
            // DescribeTable does not say; the backup reads it with DescribeTimeToLive.
            ttl_attribute: None,
        }
    }

    /// The names of the key attributes (partition key first).
    pub fn key_names(&self) -> Vec<&str> {
        let mut keys: Vec<&(String, String)> = self.key_schema.iter().collect();
        keys.sort_by_key(|(_, t)| t != "HASH");
        keys.into_iter().map(|(n, _)| n.as_str()).collect()
    }

    /// A CreateTable request for this definition under `name`, without its stream: a
    /// restore turns the stream on once the items are back, so consumers of the new
    /// table's stream do not see every restored item as a new insert.
    pub(crate) fn create_table(
        &self,
        client: &aws_sdk_dynamodb::Client,
        name: &str,
    ) -> Result<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder, String> {
        let key = |(n, t): &(String, String)| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(KeyType::from(t.as_str()))
                .build()
                .map_err(|e| e.to_string())
        };
        let throughput = |(r, w): (i64, i64)| {
            ProvisionedThroughput::builder()
                .read_capacity_units(r)
                .write_capacity_units(w)
                .build()
                .map_err(|e| e.to_string())
        };
        let projection = |i: &IndexDefinition| {
            Projection::builder()
                .projection_type(ProjectionType::from(i.projection.as_str()))
                .set_non_key_attributes(
                    (!i.non_key_attributes.is_empty()).then(|| i.non_key_attributes.clone()),
                )
                .build()
        };
        let provisioned = self.billing_mode.as_deref() == Some("PROVISIONED") || self.capacity.is_some();
        let mut request = client.create_table().table_name(name);
        for k in &self.key_schema {
            request = request.key_schema(key(k)?);
        }
        for (n, t) in &self.attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(n)
                    .attribute_type(ScalarAttributeType::from(t.as_str()))
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        request = match (provisioned, self.capacity) {
            (true, Some(c)) => {
                request.billing_mode(BillingMode::Provisioned).provisioned_throughput(throughput(c)?)
            }
            _ => request.billing_mode(BillingMode::PayPerRequest),
        };
        for g in &self.global_indexes {
            let mut index = GlobalSecondaryIndex::builder().index_name(&g.name).projection(projection(g));
            for k in &g.key_schema {
                index = index.key_schema(key(k)?);
            }
            if let (true, Some(c)) = (provisioned, g.capacity.or(self.capacity)) {
                index = index.provisioned_throughput(throughput(c)?);
            }
            request = request.global_secondary_indexes(index.build().map_err(|e| e.to_string())?);
        }
        for l in &self.local_indexes {
            let mut index = LocalSecondaryIndex::builder().index_name(&l.name).projection(projection(l));
            for k in &l.key_schema {
                index = index.key_schema(key(k)?);
            }
            request = request.local_secondary_indexes(index.build().map_err(|e| e.to_string())?);
        }
        Ok(request)
    }

    /// The stream specification of this definition, if it has a stream.
    pub(crate) fn stream_specification(&self) -> Option<StreamSpecification> {
        let view = self.stream_view.as_ref()?;
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::from(view.as_str()))
            .build()
            .ok()
    }
}
