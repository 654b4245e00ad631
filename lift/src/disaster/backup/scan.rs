//! Taking a backup: a parallel segmented Scan, each segment written as gzip JSON lines, then
//! the manifest.

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::archive::NO_KEY;
use super::manifest::{Manifest, SegmentEntry, TableDefinition, MANIFEST_FORMAT};
use super::segment::{sha256_hex, LineWriter};
use super::{BackupError, BackupKey, BackupTarget};
use crate::disaster::ConfigError;

/// The most segments DynamoDB's parallel Scan takes.
const MAX_SEGMENTS: u32 = 1_000_000;

pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// A logical backup of one table: DescribeTable for its definition, then a parallel Scan of
/// `segments` segments (strongly consistent reads), each written to the target as
/// `backups/<id>/segment-NNNNN.jsonl.gz` with its item count and SHA-256 in the manifest,
/// written last as `backups/<id>/manifest.json`, signed with the [`BackupKey`].
///
/// A scan is not a snapshot: an item changed while it runs may be read before or after the
/// change. Run a [`StreamArchive`](super::StreamArchive) on the table while backups run, and
/// a restore replays every change from the backup's start, which makes each restored item
/// its state at the restore's moment.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::disaster::backup::BackupError> {
/// use lift::disaster::backup::{BackupKey, BackupTarget, TableBackup};
///
/// let manifest = TableBackup::builder(client, "orders")
///     .target(BackupTarget::dir("/var/backups/orders"))
///     .key(BackupKey::from_env()?)
///     .segments(8)
///     .build()?
///     .run()
///     .await?;
/// println!("backup {}: {} items", manifest.backup_id, manifest.item_count);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TableBackup {
    client: aws_sdk_dynamodb::Client,
    table: String,
    target: BackupTarget,
    key: BackupKey,
    segments: u32,
    page_size: Option<i32>,
}

/// Configures a [`TableBackup`].
#[derive(Debug, Clone)]
pub struct TableBackupBuilder {
    client: aws_sdk_dynamodb::Client,
    table: String,
    target: Option<BackupTarget>,
    key: Option<BackupKey>,
    segments: u32,
    page_size: Option<i32>,
}

impl TableBackup {
    /// A builder for a backup of `table` (4 segments by default, no target or key yet).
    pub fn builder(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> TableBackupBuilder {
        TableBackupBuilder {
            client,
            table: table.into(),
            target: None,
            key: None,
            segments: 4,
            page_size: None,
        }
    }

    /// The table's TTL attribute when TTL is on (or being turned on).
    async fn ttl_attribute(&self) -> Result<Option<String>, BackupError> {
        let out = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| BackupError::request("DescribeTimeToLive", &self.table, &e))?;
        Ok(out
            .time_to_live_description()
            .filter(|d| {
                matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
            })
            .and_then(|d| d.attribute_name())
            .map(str::to_owned))
    }

    /// Takes the backup and returns its manifest, signed.
    ///
    /// # Errors
    /// [`BackupError::Request`] when DescribeTable or a Scan fails, [`BackupError::Target`]
    /// when a file cannot be written (the backup then has no manifest and is never restored).
    pub async fn run(&self) -> Result<Manifest, BackupError> {
        let started = SystemTime::now();
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| BackupError::request("DescribeTable", &self.table, &e))?;
        let mut definition = described.table().map(TableDefinition::from_description).unwrap_or_default();
        definition.ttl_attribute = self.ttl_attribute().await?;
        let backup_id =
            format!("{:013}-{}", epoch_ms(started), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let segments: Vec<SegmentEntry> = stream::iter(0..self.segments)
            .map(|index| self.segment(&backup_id, index))
            .buffer_unordered(self.segments.min(64) as usize)
            .try_collect()
            .await?;
        let mut segments = segments;
        segments.sort_by_key(|s| s.index);
        let mut manifest = Manifest {
            format: MANIFEST_FORMAT,
            backup_id: backup_id.clone(),
            table: self.table.clone(),
            definition,
            item_count: segments.iter().map(|s| s.items).sum(),
            segments,
            started_at_ms: epoch_ms(started),
            ended_at_ms: epoch_ms(SystemTime::now()),
            signature: None,
        };
        manifest.sign(&self.key);
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        self.target.put(&format!("backups/{backup_id}/manifest.json"), text).await?;
        Ok(manifest)
    }

    async fn segment(&self, backup_id: &str, index: u32) -> Result<SegmentEntry, BackupError> {
        let mut writer = LineWriter::new();
        let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .segment(index as i32)
                .total_segments(self.segments as i32)
                .set_limit(self.page_size)
                .set_exclusive_start_key(start.clone())
                .send()
                .await;
            let page = match result {
                Ok(page) => page,
                Err(e) if is_throttling(&e) && backoff < Duration::from_secs(5) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    continue;
                }
                Err(e) => return Err(BackupError::request("Scan", &self.table, &e)),
            };
            backoff = Duration::from_millis(50);
            page.items().iter().for_each(|item| writer.push_item(item));
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        let items = writer.lines();
        let bytes = writer.finish();
        let file = format!("segment-{index:05}.jsonl.gz");
        let entry = SegmentEntry {
            index,
            file: file.clone(),
            items,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        };
        self.target.put(&format!("backups/{backup_id}/{file}"), bytes).await?;
        Ok(entry)
    }
}

fn is_throttling<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c.contains("Throughput") || c.contains("Throttl") || c == "RequestLimitExceeded")
}

impl TableBackupBuilder {
    /// Where the backup is written (required).
    pub fn target(mut self, target: BackupTarget) -> Self {
        self.target = Some(target);
        self
    }

    /// The key that signs the manifest (required): keep it outside the target, and restore
    /// with the same key.
    pub fn key(mut self, key: BackupKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Scan segments read in parallel (default 4; 1 to 1,000,000).
    pub fn segments(mut self, segments: u32) -> Self {
        self.segments = segments;
        self
    }

    /// Items per Scan page (default: DynamoDB's 1 MB pages).
    pub fn page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] without a target or a key, with an empty table name, with a
    /// segment count out of range or a page size below 1.
    pub fn build(self) -> Result<TableBackup, BackupError> {
        let target = self.target.ok_or_else(|| ConfigError::invalid("target", "no backup target"))?;
        let key = self.key.ok_or_else(|| ConfigError::invalid("key", NO_KEY))?;
        if self.table.is_empty() {
            return Err(ConfigError::invalid("table", "empty table name").into());
        }
        if !(1..=MAX_SEGMENTS).contains(&self.segments) {
            return Err(ConfigError::invalid(
                "segments",
                format!("must be 1 to {MAX_SEGMENTS}, got {}", self.segments),
            )
            .into());
        }
        if self.page_size.is_some_and(|p| p < 1) {
            return Err(ConfigError::invalid("page_size", "must be at least 1").into());
        }
        Ok(TableBackup {
            client: self.client,
            table: self.table,
            target,
            key,
            segments: self.segments,
            page_size: self.page_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    #[test]
    fn the_builder_refuses_what_cannot_work() {
        let key = || BackupKey::new([1u8; 32]).unwrap();
        let dir = || BackupTarget::dir("/tmp/x");
        let err = |b: TableBackupBuilder| b.key(key()).build().unwrap_err().to_string();
        assert_eq!(err(TableBackup::builder(client(), "t")), "invalid target: no backup target");
        let unkeyed = TableBackup::builder(client(), "t").target(dir()).build().unwrap_err().to_string();
        assert!(unkeyed.starts_with("invalid key: no backup key"), "{unkeyed}");
        assert!(err(TableBackup::builder(client(), "t").target(dir()).segments(0)).contains("segments"));
        assert!(err(TableBackup::builder(client(), "t").target(dir()).segments(MAX_SEGMENTS + 1))
            .contains("segments"));
        assert!(err(TableBackup::builder(client(), "").target(dir())).contains("table"));
        assert!(err(TableBackup::builder(client(), "t").target(dir()).page_size(0)).contains("page_size"));
        assert!(TableBackup::builder(client(), "t").target(dir()).key(key()).segments(16).build().is_ok());
    }
}
