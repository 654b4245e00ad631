//! Synchronous replication: a write acknowledged only once every target region holds it.

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;

use super::conflict::{ORIGIN_ATTRIBUTE, VERSION_ATTRIBUTE};
use super::error::{sdk_message, RegionFailure};
use super::table::{Item, ReplicatedTable};
use super::{ConfigError, Region, RegionSet, SyncWriteError};

/// What a synchronous write did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncAck {
    /// The regions that hold the write, in target order.
    pub acknowledged: Vec<String>,
    /// The item key.
    pub key: Item,
    /// The version written (puts).
    pub version: Option<AttributeValue>,
}

/// Writes to several regions at once and acknowledges only when all of them hold the write
/// (RPO 0 for acknowledged writes).
///
/// A put without a version gets one ([`VERSION_ATTRIBUTE`], epoch microseconds), so stream
/// replication and [`LastWriterWins`](super::LastWriterWins) order it like any other write.
/// Both copies carry the first target as [`ORIGIN_ATTRIBUTE`]: the streams then see one
/// write, not two. A put never replaces a newer version already in a region, nor another
/// item of the same version; that region reports a failure instead (a region that holds
/// this very put already, from an attempt whose answer was lost, holds the write).
///
/// # Examples
///
/// ```no_run
/// # async fn run(regions: lift::disaster::RegionSet, table: lift::disaster::ReplicatedTable)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use aws_sdk_dynamodb::types::AttributeValue;
/// use lift::disaster::SyncWriter;
///
/// let writer = SyncWriter::builder(regions, table).build()?;
/// let item = [("pk".to_owned(), AttributeValue::S("order#1".into()))].into();
/// match writer.put(item).await {
///     Ok(ack) => println!("durable in {:?}", ack.acknowledged),
///     Err(err) => println!("only in {:?}: {err}", err.acknowledged),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SyncWriter {
    targets: Vec<Region>,
    table: ReplicatedTable,
    timeout: Duration,
    version_attribute: String,
}

impl SyncWriter {
    /// A builder writing `table` to the primary and the first secondary of `regions`.
    pub fn builder(regions: RegionSet, table: ReplicatedTable) -> SyncWriterBuilder {
        SyncWriterBuilder {
            regions,
            table,
            targets: None,
            timeout: Duration::from_secs(2),
            version_attribute: VERSION_ATTRIBUTE.to_owned(),
        }
    }

    /// The regions every write goes to.
    pub fn targets(&self) -> Vec<&str> {
        self.targets.iter().map(Region::name).collect()
    }

    /// Puts `item` in every target region at once; `Ok` once all of them hold it.
    pub async fn put(&self, mut item: Item) -> Result<SyncAck, SyncWriteError> {
        let key = self.key(&item)?;
        let version = item
            .entry(self.version_attribute.clone())
            .or_insert_with(|| {
                let micros =
                    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros();
                AttributeValue::N(micros.to_string())
            })
            .clone();
        let origin = self.targets[0].name().to_owned();
        item.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S(origin));
        let pk = self.table.def().partition_key.name.clone();
        let writes = self.targets.iter().map(|region| {
            let request = region
                .dynamodb()
                .put_item()
                .table_name(self.table.name_in(region.name()))
                .set_item(Some(item.clone()))
                // Strictly older only: two different puts of one version (caller-chosen, or
                // stamped in the same microsecond) must not both be acknowledged, each region
                // holding the one it took last, which no replication would ever repair.
                .condition_expression("attribute_not_exists(#k) OR attribute_not_exists(#v) OR #v < :v")
                .expression_attribute_names("#k", &pk)
                .expression_attribute_names("#v", &self.version_attribute)
                .expression_attribute_values(":v", version.clone())
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let item = &item;
            async move {
                match tokio::time::timeout(self.timeout, request.send()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err))
                        if err
                            .as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                    {
                        // The region holds this very put already (an attempt whose answer
                        // was lost): it holds the write.
                        let held = match err.as_service_error() {
                            Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                                e,
                            )) => e.item(),
                            _ => None,
                        };
                        if held == Some(item) {
                            Ok(())
                        } else {
                            Err("an equal or newer version of another item exists".to_owned())
                        }
                    }
                    Ok(Err(err)) => Err(sdk_message(&err)),
                    Err(_) => Err(format!("no answer within {:?}", self.timeout)),
                }
            }
        });
        let outcomes = futures_util::future::join_all(writes).await;
        self.ack(outcomes, key, Some(version))
    }

    /// Deletes the item with `key` in every target region at once.
    pub async fn delete(&self, key: Item) -> Result<SyncAck, SyncWriteError> {
        let key = self.key(&key)?;
        let deletes = self.targets.iter().map(|region| {
            let request = region
                .dynamodb()
                .delete_item()
                .table_name(self.table.name_in(region.name()))
                .set_key(Some(key.clone()));
            async move {
                match tokio::time::timeout(self.timeout, request.send()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => Err(sdk_message(&err)),
                    Err(_) => Err(format!("no answer within {:?}", self.timeout)),
                }
            }
        });
        let outcomes = futures_util::future::join_all(deletes).await;
        self.ack(outcomes, key, None)
    }

    fn key(&self, item: &Item) -> Result<Item, SyncWriteError> {
        self.table.key_of(item).ok_or_else(|| SyncWriteError {
            acknowledged: Vec::new(),
            failures: vec![RegionFailure {
                region: self.targets[0].name().to_owned(),
                reason: "the item lacks a key attribute".into(),
            }],
        })
    }

    fn ack(
        &self,
        outcomes: Vec<Result<(), String>>,
        key: Item,
        version: Option<AttributeValue>,
    ) -> Result<SyncAck, SyncWriteError> {
        let mut acknowledged = Vec::new();
        let mut failures = Vec::new();
        for (region, outcome) in self.targets.iter().zip(outcomes) {
            match outcome {
                Ok(()) => acknowledged.push(region.name().to_owned()),
                Err(reason) => failures.push(RegionFailure { region: region.name().to_owned(), reason }),
            }
        }
        if failures.is_empty() {
            Ok(SyncAck { acknowledged, key, version })
        } else {
            tracing::warn!(?acknowledged, ?failures, "synchronous write not acknowledged by every region");
            Err(SyncWriteError { acknowledged, failures })
        }
    }
}

/// Configures a [`SyncWriter`].
#[derive(Debug, Clone)]
pub struct SyncWriterBuilder {
    regions: RegionSet,
    table: ReplicatedTable,
    targets: Option<Vec<String>>,
    timeout: Duration,
    version_attribute: String,
}

impl SyncWriterBuilder {
    /// Writes to these regions instead (at least two).
    pub fn targets<I, S>(mut self, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.targets = Some(regions.into_iter().map(Into::into).collect());
        self
    }

    /// Sets how long each region may take to acknowledge (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the version attribute (default [`VERSION_ATTRIBUTE`]).
    pub fn version_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.version_attribute = attribute.into();
        self
    }

    /// Validates the targets and builds the writer.
    pub fn build(self) -> Result<SyncWriter, ConfigError> {
        let names = match self.targets {
            Some(names) => names,
            None => self.regions.iter().take(2).map(|r| r.name().to_owned()).collect(),
        };
        if names.len() < 2 {
            return Err(ConfigError::TooFewRegions(names.len()));
        }
        let mut targets: Vec<Region> = Vec::with_capacity(names.len());
        for name in &names {
            let region =
                self.regions.by_name(name).ok_or_else(|| ConfigError::UnknownRegion(name.clone()))?;
            if targets.iter().any(|t| t.name() == name) {
                return Err(ConfigError::DuplicateRegion(name.clone()));
            }
            targets.push(region.clone());
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid("timeout", "must be greater than zero"));
        }
        Ok(SyncWriter {
            targets,
            table: self.table,
            timeout: self.timeout,
            version_attribute: self.version_attribute,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disaster::RegionConfig;
    use crate::store::{KeyAttribute, TableDef};

    #[test]
    fn targets_must_be_two_known_regions() {
        let regions = RegionSet::builder()
            .region(RegionConfig::new("us-east-1"))
            .region(RegionConfig::new("eu-west-1"))
            .build()
            .unwrap();
        let table = ReplicatedTable::new(TableDef::new("t", KeyAttribute::string("pk")));
        let writer = SyncWriter::builder(regions.clone(), table.clone()).build().unwrap();
        assert_eq!(writer.targets(), ["us-east-1", "eu-west-1"]);
        let err =
            SyncWriter::builder(regions.clone(), table.clone()).targets(["us-east-1"]).build().unwrap_err();
        assert_eq!(err, ConfigError::TooFewRegions(1));
        let err = SyncWriter::builder(regions, table).targets(["us-east-1", "mars-1"]).build().unwrap_err();
        assert_eq!(err, ConfigError::UnknownRegion("mars-1".into()));
    }
}
