//! The stream archive: every change of a table's DynamoDB Stream, kept in the backup target
//! so a restore can replay changes up to a chosen moment between backups.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType};
use aws_sdk_dynamodbstreams::types::{OperationType, Record, ShardIteratorType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::json::item_to_json;
use super::scan::epoch_ms;
use super::segment::{sha256_hex, LineWriter};
use super::{BackupError, BackupTarget};
use crate::disaster::replication::convert_item;
use crate::disaster::{ConfigError, Region};

/// GetRecords' page size; a shard that returns fewer is read to its end.
const PAGE: i32 = 1000;
/// A chunk is written once this many records wait, whatever the flush interval.
const MAX_PENDING: usize = 10_000;
/// How often shards are listed while they stay open.
const SHARD_REFRESH: Duration = Duration::from_secs(5);

/// One archived change, a line of a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArchivedRecord {
    /// The shard it was read from.
    pub(crate) shard: String,
    /// Its sequence number in the shard.
    pub(crate) seq: String,
    /// `put` (INSERT, MODIFY) or `delete` (REMOVE).
    pub(crate) kind: String,
    /// The item's key, in DynamoDB JSON.
    pub(crate) keys: Value,
    /// The new image of a put, in DynamoDB JSON.
    #[serde(default)]
    pub(crate) image: Option<Value>,
    /// When the archive read it (epoch ms): never before the change was made.
    pub(crate) observed_ms: u64,
    /// When the archive last read the shard to its end without it (epoch ms; 0 for the
    /// shard's first read): the change was made after this.
    #[serde(default)]
    pub(crate) after_ms: u64,
    /// When the writer says it made the change (the time attribute, epoch ms), if it says.
    #[serde(default)]
    pub(crate) written_ms: Option<u64>,
}

impl ArchivedRecord {
    /// The earliest and latest moment the change can have been made: the writer's own time
    /// when the item carries one, else between the last read of its shard that did not see
    /// it and the read that did.
    pub(crate) fn window_ms(&self) -> (u64, u64) {
        match self.written_ms {
            Some(at) => (at, at),
            None => (self.after_ms, self.observed_ms),
        }
    }
}

/// The index of one chunk, written after the chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkIndex {
    pub(crate) records: u64,
    pub(crate) sha256: String,
    pub(crate) first_ms: u64,
    pub(crate) last_ms: u64,
}

/// What the archive did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Stream records read.
    pub records: u64,
    /// Chunks written to the target.
    pub chunks: u64,
    /// Records read but not written yet.
    pub pending: u64,
    /// Failed requests or writes (each retried).
    pub errors: u64,
    /// The last error.
    pub last_error: Option<String>,
}

/// Archives a table's DynamoDB Stream into a [`BackupTarget`], for point-in-time restores
/// between backups.
///
/// It reads every shard from its oldest record (the stream's 24 hours on AWS), writes the
/// changes as gzip JSON-lines chunks `stream/chunk-<ms>-<id>.jsonl.gz`, each followed by its
/// index (record count, SHA-256, time range), every
/// [`flush_interval`](StreamArchiveBuilder::flush_interval), when a caller waits in
/// [`caught_up`](Self::caught_up), and when it stops.
///
/// Each change is placed in time at the writer's own time when items carry a
/// [`time_attribute`](StreamArchiveBuilder::time_attribute) (epoch milliseconds); otherwise
/// (and always for deletes, which carry no new image) between the last read of its shard
/// that reached the end without it and the read that returned it: a window of about one
/// poll interval. A restore to a moment inside a change's window keeps the change and
/// counts it in [`RestoreReport::changes_near_moment`](super::RestoreReport). The window is
/// exact on DynamoDB Local, where a change is in the stream when its write returns; on AWS
/// records appear within about a second, so give the moment that much room. (The stream's
/// own `ApproximateCreationDateTime` is too coarse: AWS rounds it to the second, DynamoDB
/// Local to the minute.)
///
/// This is lift's point-in-time recovery for DynamoDB Local and for tables where native PITR
/// is not available. **On AWS, prefer DynamoDB's native point-in-time recovery**
/// (`PointInTimeRecoverySpecification` in lift-deploy's templates, restores to any second of
/// the last 35 days with `RestoreTableToPointInTime`); keep this archive where a copy
/// outside the account or the region is wanted.
///
/// The same reader walks shards as the [`Replicator`](crate::disaster::Replicator) does
/// (shards listed every few seconds and whenever one closes, iterators renewed after the
/// last record read when they expire), and its stream values are converted by the same code.
/// A table dropped while the archive runs keeps its stream readable (24 h on AWS, DynamoDB
/// Local alike), so the changes made right before a drop are still archived.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(region: lift::disaster::Region) -> Result<(), lift::disaster::backup::BackupError> {
/// use lift::disaster::backup::{BackupTarget, StreamArchive};
///
/// let archive = StreamArchive::builder(region, "orders")
///     .target(BackupTarget::dir("/var/backups/orders"))
///     .time_attribute("updated_at_ms")
///     .start()
///     .await?;
/// // ... backups run; the archive keeps every change in between ...
/// let stats = archive.stop().await?;
/// println!("{} changes archived in {} chunks", stats.records, stats.chunks);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamArchive {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    stats: Mutex<ArchiveStats>,
    /// The start of the last round that read every shard to its end and flushed.
    caught_up: watch::Sender<Option<Instant>>,
    waiters: AtomicUsize,
}

/// Configures and starts a [`StreamArchive`].
#[derive(Debug)]
pub struct StreamArchiveBuilder {
    region: Region,
    table: String,
    target: Option<BackupTarget>,
    poll_interval: Duration,
    flush_interval: Duration,
    time_attribute: Option<String>,
}

impl StreamArchive {
    /// A builder for the archive of `table` in `region`.
    pub fn builder(region: Region, table: impl Into<String>) -> StreamArchiveBuilder {
        StreamArchiveBuilder {
            region,
            table: table.into(),
            target: None,
            poll_interval: Duration::from_millis(200),
            flush_interval: Duration::from_secs(5),
            time_attribute: None,
        }
    }

    /// What the archive did so far.
    pub fn stats(&self) -> ArchiveStats {
        self.shared.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until a round that started after this call read every shard to its end and
    /// wrote what it read: every change made before the call is then in the target.
    ///
    /// # Errors
    /// [`BackupError::Target`] when the archive stopped.
    pub async fn caught_up(&self) -> Result<(), BackupError> {
        let asked = Instant::now();
        self.shared.waiters.fetch_add(1, Ordering::SeqCst);
        let mut rx = self.shared.caught_up.subscribe();
        let result = rx.wait_for(|t| t.is_some_and(|t| t >= asked)).await.map(|_| ());
        self.shared.waiters.fetch_sub(1, Ordering::SeqCst);
        result.map_err(|_| BackupError::target("stream archive", "the archive stopped"))
    }

    /// Reads the stream to its end, writes what is pending, stops, and returns the stats.
    ///
    /// # Errors
    /// [`BackupError::Target`] when the last records could not be written (they are lost
    /// from the archive; the stats say how many).
    pub async fn stop(mut self) -> Result<ArchiveStats, BackupError> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let stats = self.stats();
        if stats.pending > 0 {
            return Err(BackupError::target(
                "stream archive",
                format!(
                    "{} records could not be written: {}",
                    stats.pending,
                    stats.last_error.unwrap_or_default()
                ),
            ));
        }
        Ok(stats)
    }
}

impl Drop for StreamArchive {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl StreamArchiveBuilder {
    /// Where chunks are written (required).
    pub fn target(mut self, target: BackupTarget) -> Self {
        self.target = Some(target);
        self
    }

    /// The wait between reads of an idle stream (default 200 ms): the most a change read
    /// time lags its write on DynamoDB Local.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How often pending records are written as a chunk (default 5 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Places changes in time by this item attribute (epoch milliseconds, a number, set by
    /// the writer) rather than by when the archive read them.
    pub fn time_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.time_attribute = Some(attribute.into());
        self
    }

    /// Checks the table has a stream with new images and starts reading it.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a missing target or a zero interval,
    /// [`BackupError::NoStream`] when the table has no stream with new images,
    /// [`BackupError::Request`] when DescribeTable fails.
    pub async fn start(self) -> Result<StreamArchive, BackupError> {
        let target = self.target.ok_or_else(|| ConfigError::invalid("target", "no backup target"))?;
        if self.poll_interval.is_zero() || self.flush_interval.is_zero() {
            return Err(ConfigError::invalid("poll_interval", "intervals must be greater than zero").into());
        }
        let out = self
            .region
            .dynamodb()
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| BackupError::request("DescribeTable", &self.table, &e))?;
        let table = out.table();
        let view = table
            .and_then(|t| t.stream_specification())
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type());
        let arn = table.and_then(|t| t.latest_stream_arn());
        let (Some(view @ (StreamViewType::NewImage | StreamViewType::NewAndOldImages)), Some(arn)) =
            (view, arn)
        else {
            return Err(BackupError::NoStream {
                table: self.table,
                found: view.map_or("no stream".to_owned(), |v| format!("a {} stream", v.as_str())),
            });
        };
        let _ = view;
        let shared = Arc::new(Shared {
            stats: Mutex::default(),
            caught_up: watch::channel(None).0,
            waiters: AtomicUsize::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let reader = Reader {
            region: self.region,
            table: self.table,
            stream_arn: arn.to_owned(),
            target,
            poll_interval: self.poll_interval,
            flush_interval: self.flush_interval,
            time_attribute: self.time_attribute,
            shared: shared.clone(),
        };
        let task = tokio::spawn(reader.run(stopped));
        Ok(StreamArchive { shared, stop, task: Some(task) })
    }
}

#[derive(Debug)]
struct Shard {
    id: String,
    iterator: Option<String>,
    last_sequence: Option<String>,
    /// When the last read that reached the shard's end was sent (epoch ms).
    end_read_ms: u64,
    closed: bool,
}

struct Reader {
    region: Region,
    table: String,
    stream_arn: String,
    target: BackupTarget,
    poll_interval: Duration,
    flush_interval: Duration,
    time_attribute: Option<String>,
    shared: Arc<Shared>,
}

impl Reader {
    fn update(&self, f: impl FnOnce(&mut ArchiveStats)) {
        f(&mut self.shared.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn failed(&self, message: String) {
        tracing::debug!(table = %self.table, error = %message, "stream archive round failed; retrying");
        self.update(|s| {
            s.errors += 1;
            s.last_error = Some(message);
        });
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut shards: Vec<Shard> = Vec::new();
        let mut refreshed: Option<Instant> = None;
        let mut pending: Vec<ArchivedRecord> = Vec::new();
        let mut last_flush = Instant::now();
        let mut failures = 0u32;
        loop {
            let round = Instant::now();
            let stopping = *stopped.borrow();
            let mut result = Ok(true);
            if refreshed.is_none_or(|at| at.elapsed() >= SHARD_REFRESH) {
                match self.discover(&mut shards).await {
                    Ok(()) => refreshed = Some(Instant::now()),
                    Err(e) => result = Err(e),
                }
            }
            if result.is_ok() {
                let open = shards.iter().filter(|s| !s.closed).count();
                result = self.read_round(&mut shards, &mut pending).await;
                if shards.iter().filter(|s| !s.closed).count() < open {
                    // A shard closed: its children are listed before the next round.
                    refreshed = None;
                }
            }
            self.update(|s| s.pending = pending.len() as u64);
            match result {
                Ok(at_end) => {
                    failures = 0;
                    let waited = self.shared.waiters.load(Ordering::SeqCst) > 0;
                    let due = last_flush.elapsed() >= self.flush_interval || pending.len() >= MAX_PENDING;
                    if !pending.is_empty() && (due || (at_end && (waited || stopping))) {
                        match self.flush(&pending).await {
                            Ok(()) => {
                                self.update(|s| {
                                    s.chunks += 1;
                                    s.pending = 0;
                                });
                                pending.clear();
                                last_flush = Instant::now();
                            }
                            Err(e) => {
                                self.failed(e.to_string());
                                if stopping {
                                    return;
                                }
                                tokio::time::sleep(self.poll_interval).await;
                                continue;
                            }
                        }
                    }
                    if at_end {
                        if pending.is_empty() {
                            self.shared.caught_up.send_replace(Some(round));
                        }
                        if stopping {
                            return;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(self.poll_interval) => {}
                            _ = stopped.changed() => {}
                        }
                    }
                }
                Err(message) => {
                    self.failed(message);
                    failures += 1;
                    if stopping && failures >= 3 {
                        if !pending.is_empty() && self.flush(&pending).await.is_ok() {
                            self.update(|s| {
                                s.chunks += 1;
                                s.pending = 0;
                            });
                        }
                        return;
                    }
                    tokio::time::sleep(self.poll_interval * failures.min(10)).await;
                }
            }
        }
    }

    async fn discover(&self, shards: &mut Vec<Shard>) -> Result<(), String> {
        let mut start_after: Option<String> = None;
        loop {
            let out = self
                .region
                .streams()
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start_after.take())
                .send()
                .await
                .map_err(|e| format!("DescribeStream: {}", crate::error::error_chain(&e)))?;
            let Some(description) = out.stream_description() else { break };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if !shards.iter().any(|s| s.id == id) {
                    shards.push(Shard {
                        id: id.to_owned(),
                        iterator: None,
                        last_sequence: None,
                        end_read_ms: 0,
                        closed: false,
                    });
                }
            }
            match description.last_evaluated_shard_id() {
                Some(last) => start_after = Some(last.to_owned()),
                None => break,
            }
        }
        Ok(())
    }

    /// Reads one page of every open shard; whether every shard was read to its end.
    async fn read_round(
        &self,
        shards: &mut [Shard],
        pending: &mut Vec<ArchivedRecord>,
    ) -> Result<bool, String> {
        let mut at_end = true;
        for shard in shards.iter_mut().filter(|s| !s.closed) {
            let iterator = match shard.iterator.take() {
                Some(iterator) => iterator,
                None => self.iterator(shard).await?,
            };
            let sent_ms = epoch_ms(SystemTime::now());
            let out =
                match self.region.streams().get_records().shard_iterator(iterator).limit(PAGE).send().await {
                    Ok(out) => out,
                    Err(err) => {
                        let expired =
                            err.as_service_error().is_some_and(|e| e.is_expired_iterator_exception());
                        if expired {
                            // A fresh iterator after the last record read, next round.
                            at_end = false;
                            continue;
                        }
                        return Err(format!("GetRecords: {}", crate::error::error_chain(&err)));
                    }
                };
            let observed_ms = epoch_ms(SystemTime::now());
            let records = out.records();
            for record in records {
                if let Some(archived) = self.archived(&shard.id, record, shard.end_read_ms, observed_ms) {
                    pending.push(archived);
                }
            }
            if let Some(seq) = records.last().and_then(|r| r.dynamodb()).and_then(|d| d.sequence_number()) {
                shard.last_sequence = Some(seq.to_owned());
            }
            self.update(|s| s.records += records.len() as u64);
            if records.len() < PAGE as usize {
                // Whatever this read did not return was written after it was sent.
                shard.end_read_ms = sent_ms;
            } else {
                at_end = false;
            }
            match out.next_shard_iterator() {
                Some(next) => shard.iterator = Some(next.to_owned()),
                None => shard.closed = true,
            }
        }
        Ok(at_end)
    }

    async fn iterator(&self, shard: &Shard) -> Result<String, String> {
        let request =
            self.region.streams().get_shard_iterator().stream_arn(&self.stream_arn).shard_id(&shard.id);
        let request = match &shard.last_sequence {
            Some(seq) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq)
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = request
            .send()
            .await
            .map_err(|e| format!("GetShardIterator: {}", crate::error::error_chain(&e)))?;
        out.shard_iterator().map(str::to_owned).ok_or_else(|| format!("no iterator for shard {}", shard.id))
    }

    fn archived(
        &self,
        shard: &str,
        record: &Record,
        after_ms: u64,
        observed_ms: u64,
    ) -> Option<ArchivedRecord> {
        let kind = match record.event_name()? {
            OperationType::Insert | OperationType::Modify => "put",
            OperationType::Remove => "delete",
            _ => return None,
        };
        let data = record.dynamodb()?;
        let image = data.new_image().map(convert_item);
        let written_ms = match (&self.time_attribute, &image) {
            (Some(attr), Some(image)) => match image.get(attr) {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            },
            _ => None,
        };
        Some(ArchivedRecord {
            shard: shard.to_owned(),
            seq: data.sequence_number()?.to_owned(),
            kind: kind.to_owned(),
            keys: item_to_json(&data.keys().map(convert_item).unwrap_or_default()),
            image: image.as_ref().map(item_to_json),
            observed_ms,
            after_ms,
            written_ms,
        })
    }

    async fn flush(&self, records: &[ArchivedRecord]) -> Result<(), BackupError> {
        let mut writer = LineWriter::new();
        for record in records {
            writer.push(&serde_json::to_value(record).expect("a record serializes"));
        }
        let bytes = writer.finish();
        let first_ms = records.iter().map(|r| r.observed_ms).min().unwrap_or_default();
        let index = ChunkIndex {
            records: records.len() as u64,
            sha256: sha256_hex(&bytes),
            first_ms,
            last_ms: records.iter().map(|r| r.observed_ms).max().unwrap_or_default(),
        };
        let name = format!("stream/chunk-{first_ms:013}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        self.target.put(&format!("{name}.jsonl.gz"), bytes).await?;
        self.target
            .put(&format!("{name}.json"), serde_json::to_vec(&index).expect("an index serializes"))
            .await
    }
}
