//! RPO accounting: which acknowledged writes a region does not hold.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::conflict::{compare_versions, VERSION_ATTRIBUTE};
use super::error::sdk_message;
use super::table::{Item, ReplicatedTable};
use super::{Region, RpoError};

/// `BatchGetItem` takes at most 100 keys.
const BATCH: usize = 100;
/// Rounds of unprocessed keys before giving up.
const ATTEMPTS: u32 = 8;

/// A write the service acknowledged: its key, and its version if known.
#[derive(Debug, Clone, PartialEq)]
pub struct AckedWrite {
    /// The item key.
    pub key: Item,
    /// The acknowledged version; a region holding an older one lost the write.
    pub version: Option<AttributeValue>,
}

impl AckedWrite {
    /// An acknowledged write of the item with `key`.
    pub fn new(key: Item) -> Self {
        Self { key, version: None }
    }

    /// Sets the acknowledged version.
    pub fn with_version(mut self, version: AttributeValue) -> Self {
        self.version = Some(version);
        self
    }
}

/// What a region holds of the acknowledged writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RpoReport {
    /// The region read.
    pub region: String,
    /// Distinct keys checked.
    pub checked: usize,
    /// Keys the region does not hold at all.
    pub missing: Vec<Item>,
    /// Keys the region holds at an older version than acknowledged.
    pub stale: Vec<Item>,
}

impl RpoReport {
    /// How many acknowledged writes the region lost.
    pub fn lost(&self) -> usize {
        self.missing.len() + self.stale.len()
    }

    /// Whether no acknowledged write was lost (RPO 0).
    pub fn is_zero(&self) -> bool {
        self.lost() == 0
    }
}

/// Reads acknowledged writes back from a region (typically the new primary after a
/// failover) and lists those it does not hold.
///
/// Reads are strongly consistent `BatchGetItem`s of 100 keys. A key acknowledged several
/// times is checked once, against its highest version.
///
/// # Examples
///
/// ```no_run
/// # async fn run(new_primary: &lift::disaster::Region, table: &lift::disaster::ReplicatedTable,
/// #     acked: Vec<lift::disaster::AckedWrite>) -> Result<(), lift::disaster::RpoError> {
/// use lift::disaster::RpoCheck;
///
/// let report = RpoCheck::new(new_primary, table).check(&acked).await?;
/// println!("{} of {} acknowledged writes lost", report.lost(), report.checked);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RpoCheck {
    region: String,
    client: aws_sdk_dynamodb::Client,
    table: String,
    version_attribute: String,
}

impl RpoCheck {
    /// A check of `table` in `region`, versions in [`VERSION_ATTRIBUTE`].
    pub fn new(region: &Region, table: &ReplicatedTable) -> Self {
        Self {
            region: region.name().to_owned(),
            client: region.dynamodb().clone(),
            table: table.name_in(region.name()).to_owned(),
            version_attribute: VERSION_ATTRIBUTE.to_owned(),
        }
    }

    /// Compares versions in `attribute` instead.
    pub fn version_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.version_attribute = attribute.into();
        self
    }

    /// Reads every acknowledged key and reports the missing and stale ones.
    pub async fn check(&self, writes: &[AckedWrite]) -> Result<RpoReport, RpoError> {
        // One entry per key (the highest version acknowledged), found by its canonical
        // text: linear in the writes, as drills check hundreds of thousands.
        let mut wanted: Vec<AckedWrite> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for write in writes {
            match index.get(&canonical(&write.key, write.key.keys())) {
                Some(&i) => {
                    let existing = &mut wanted[i];
                    let newer = match (&existing.version, &write.version) {
                        (_, None) => false,
                        (None, Some(_)) => true,
                        (Some(a), Some(b)) => compare_versions(b, a) == Some(std::cmp::Ordering::Greater),
                    };
                    if newer {
                        existing.version.clone_from(&write.version);
                    }
                }
                None => {
                    index.insert(canonical(&write.key, write.key.keys()), wanted.len());
                    wanted.push(write.clone());
                }
            }
        }
        let mut found: HashMap<String, Item> = HashMap::new();
        for chunk in wanted.chunks(BATCH) {
            for item in self.read(chunk.iter().map(|w| w.key.clone()).collect()).await? {
                // The item as the key it answers: the same attributes as the keys asked.
                if let Some(asked) = chunk.first() {
                    found.insert(canonical(&item, asked.key.keys()), item);
                }
            }
        }
        let mut report =
            RpoReport { region: self.region.clone(), checked: wanted.len(), ..Default::default() };
        for write in wanted {
            let held = found.get(&canonical(&write.key, write.key.keys()));
            match (held, &write.version) {
                (None, _) => report.missing.push(write.key),
                (Some(item), Some(acked)) => {
                    let current = item.get(&self.version_attribute);
                    let older =
                        current.is_none_or(|v| compare_versions(v, acked) == Some(std::cmp::Ordering::Less));
                    if older {
                        report.stale.push(write.key);
                    }
                }
                (Some(_), None) => {}
            }
        }
        Ok(report)
    }

    async fn read(&self, keys: Vec<Item>) -> Result<Vec<Item>, RpoError> {
        let mut items = Vec::new();
        let mut pending = keys;
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            let request =
                KeysAndAttributes::builder().set_keys(Some(pending)).consistent_read(true).build().map_err(
                    |err| RpoError::Request {
                        operation: "BatchGetItem",
                        region: self.region.clone(),
                        message: err.to_string(),
                    },
                )?;
            let out = self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(
                |err| RpoError::Request {
                    operation: "BatchGetItem",
                    region: self.region.clone(),
                    message: sdk_message(&err),
                },
            )?;
            if let Some(mut responses) = out.responses {
                items.extend(responses.remove(&self.table).unwrap_or_default());
            }
            pending = crate::store::unprocessed_keys(out.unprocessed_keys, &self.table);
            if pending.is_empty() {
                return Ok(items);
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
        Err(RpoError::Unprocessed { region: self.region.clone(), remaining: pending.len() })
    }
}

/// `item`'s values of the attributes `names`, in name order, as one text: equal for a key
/// and the item it reads.
fn canonical<'a>(item: &Item, names: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&String> = names.collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        use std::fmt::Write as _;
        let _ = write!(text, "{name}={:?};", item.get(name));
    }
    text
}

/// Keys as an easy-to-read map for reports: attribute name to its string or number.
pub fn key_text(key: &Item) -> HashMap<String, String> {
    key.iter()
        .map(|(k, v)| {
            let text = match v {
                AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
                other => format!("{other:?}"),
            };
            (k.clone(), text)
        })
        .collect()
}
