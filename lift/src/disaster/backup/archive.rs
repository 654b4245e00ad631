//! The stream archive: every change of a table's DynamoDB Stream, kept in the backup target
//! so a restore can replay changes up to a chosen moment between backups.

use std::collections::{BTreeMap, HashMap};
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
use super::key::{BackupKey, Signature, SignatureProblem};
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
/// How often an idle archive writes an empty chunk, so that what it covers keeps up with
/// the clock.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// Failed rounds after which a stopping archive gives up (and says so).
const STOP_ATTEMPTS: u32 = 3;
/// How far the stream's own creation time may lie from a change's: AWS rounds it to the
/// second, DynamoDB Local to the minute.
const CREATION_SLACK_MS: u64 = 60_000;
/// Why a backup or an archive without a key is refused.
pub(crate) const NO_KEY: &str =
    "no backup key: backups and the stream archive are signed (BackupKey::from_env reads LIFT_BACKUP_KEY)";

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
    /// The stream's `ApproximateCreationDateTime` (epoch ms), when it has one. Absent in
    /// chunks written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) created_ms: Option<u64>,
}

impl ArchivedRecord {
    /// The earliest and latest moment the change can have been made: the writer's own time
    /// when the item carries one that lies within what the archive observed, else between
    /// the last read of its shard that did not see it and the read that did.
    ///
    /// A writer's time outside those bounds (a wrong clock, or a forged attribute) is not
    /// believed: it would move the change across a restore's moment.
    pub(crate) fn window_ms(&self) -> (u64, u64) {
        let earliest =
            self.created_ms.map_or(self.after_ms, |c| self.after_ms.max(c.saturating_sub(CREATION_SLACK_MS)));
        match self.written_ms {
            Some(at) if (earliest..=self.observed_ms).contains(&at) => (at, at),
            _ => (self.after_ms, self.observed_ms),
        }
    }
}

/// Where a chunk leaves one shard: a restore checks that each chunk of a run takes up the
/// shard where the run's chunk before left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardSpan {
    /// The shard's last sequence number the run archived before this chunk; `None` when
    /// this chunk holds the first records the run read from the shard (from its oldest).
    pub(crate) after: Option<String>,
    /// The shard's last sequence number in this chunk.
    pub(crate) last: String,
}

/// The index of one chunk, written after the chunk.
///
/// Each start of an archive is a run; a run numbers its chunks from 0 without gaps and
/// says in each what it covers, so a restore can tell a chunk lost, or a span of time no
/// run archived. Chunks written before runs were recorded have no run, and cannot show
/// that the archive is complete.
///
/// The index is signed with the backup key, bound to the chunk's name: it holds the
/// chunk's SHA-256, so the signature covers the chunk's records too. It names the archived
/// table, so that archives of several tables may share a target and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkIndex {
    pub(crate) records: u64,
    pub(crate) sha256: String,
    pub(crate) first_ms: u64,
    pub(crate) last_ms: u64,
    /// The run that wrote the chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) run: Option<String>,
    /// The chunk's number in its run: 0, 1, 2, ...
    #[serde(default)]
    pub(crate) number: u64,
    /// When the run started (epoch ms): it archives every change made from then on.
    #[serde(default)]
    pub(crate) run_started_ms: u64,
    /// Every change made from the run's start until this moment (epoch ms) is in this chunk
    /// or in an earlier one of the run.
    #[serde(default)]
    pub(crate) covered_to_ms: u64,
    /// Where the chunk leaves each shard it holds records of.
    #[serde(default)]
    pub(crate) shards: BTreeMap<String, ShardSpan>,
    /// The table whose stream the chunk holds, under the signature: a restore replays only
    /// chunks of its source table. Absent in indexes written before it was recorded; a
    /// restore trusts those only as it trusts unsigned ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) table: Option<String>,
    /// The signature of the rest, bound to the chunk's name; absent in indexes written
    /// before the archive signed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<Signature>,
}

/// The name of chunk `number` of the run `run` started at `started_ms`, without its
/// extension (`.jsonl.gz` for the chunk, `.json` for its index).
pub(crate) fn chunk_stem(started_ms: u64, run: &str, number: u64) -> String {
    format!("stream/chunk-{started_ms:013}-{run}-{number:06}")
}

/// What a chunk index's signature is over: this domain, the chunk's name, the canonical bytes.
const INDEX_DOMAIN: &str = "lift-backup-chunk-index-v1";

impl ChunkIndex {
    /// The canonical bytes that are signed: the index's compact JSON without its signature.
    fn canonical(&self) -> Vec<u8> {
        let unsigned = ChunkIndex { signature: None, ..self.clone() };
        serde_json::to_vec(&unsigned).expect("an index serializes")
    }

    /// Signs the index of the chunk `name` (`stream/chunk-....jsonl.gz`).
    pub(crate) fn sign(&mut self, key: &BackupKey, name: &str) {
        self.signature = Some(key.sign(INDEX_DOMAIN, name, &self.canonical()));
    }

    /// Whether `key` signed this index for the chunk `name`.
    pub(crate) fn verify(&self, key: &BackupKey, name: &str) -> Result<(), SignatureProblem> {
        let signature = self.signature.as_ref().ok_or(SignatureProblem::Missing)?;
        key.verify(INDEX_DOMAIN, name, &self.canonical(), signature)
    }
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
/// changes as gzip JSON-lines chunks `stream/chunk-<run start ms>-<run>-<number>.jsonl.gz`,
/// each followed by its index (record count, SHA-256, time range), every
/// [`flush_interval`](StreamArchiveBuilder::flush_interval), when a caller waits in
/// [`caught_up`](Self::caught_up), and when it stops; an idle archive writes an empty
/// chunk every minute.
///
/// Each start of the archive is a run. A run numbers its chunks 0, 1, 2, ... and each
/// index says where the chunk leaves every shard (its last sequence number) and until when
/// the run holds every change made since it started. A restore checks these: a chunk
/// missing from a run, or a span of time between the backup and the moment that no run
/// covers (an archive started after the backup, or stopped before the moment), is refused.
/// Start the archive before the first backup and keep it running.
///
/// Every index is signed with the [`BackupKey`] (HMAC-SHA256, bound to the chunk's name),
/// and holds the chunk's SHA-256: a restore refuses an index changed or signed with another
/// key, and does not trust an unsigned one. Every index names the archived table, so a
/// restore replays only chunks of the table it restores
/// ([`source_table`](super::RestoreBuilder::source_table)): archives of several tables may
/// share a target and a key. What signatures cannot show: the newest chunks
/// of a run deleted together with their indexes leave an older archive that is still
/// validly signed, and a restore to the latest moment then restores that older state.
/// Only a record kept outside the target (the newest chunk's name and time) reveals it.
///
/// Each change is placed in time at the writer's own time when items carry a
/// [`time_attribute`](StreamArchiveBuilder::time_attribute) (epoch milliseconds) that lies
/// within what the archive observed of the change; otherwise (and always for deletes, which
/// carry no new image) between the last read of its shard that reached the end without it
/// and the read that returned it: a window of about one poll interval. A restore to a moment inside a change's window keeps the change and
/// counts it in [`RestoreReport::changes_near_moment`](super::RestoreReport). The window is
/// exact on DynamoDB Local, where a change is in the stream when its write returns; on AWS
/// records appear within about a second, so give the moment that much room. (The stream's
/// own `ApproximateCreationDateTime` is too coarse to place a change: AWS rounds it to the
/// second, DynamoDB Local to the minute; it only bounds a time attribute.)
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
/// use lift::disaster::backup::{BackupKey, BackupTarget, StreamArchive};
///
/// let archive = StreamArchive::builder(region, "orders")
///     .target(BackupTarget::dir("/var/backups/orders"))
///     .key(BackupKey::from_env()?)
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
    task: Option<JoinHandle<Result<(), BackupError>>>,
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
    key: Option<BackupKey>,
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
            key: None,
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
    /// It returns `Ok` only once a round that started after the call listed the shards,
    /// read every open one to its end and the children of every closed one, and wrote what
    /// it read: every change made before the call is then in the target.
    ///
    /// # Errors
    /// [`BackupError::Target`] when the stream could not be read to its end (after a few
    /// attempts) or the last records could not be written (they are lost from the archive;
    /// the stats say how many).
    pub async fn stop(mut self) -> Result<ArchiveStats, BackupError> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.await
                .map_err(|e| BackupError::target("stream archive", format!("the reader ended: {e}")))??;
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

    /// The key that signs every chunk index (required): the same key as the backups'.
    pub fn key(mut self, key: BackupKey) -> Self {
        self.key = Some(key);
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
    /// the writer) rather than by when the archive read them. A time outside what the
    /// archive observed of the change (after the read that returned it, before the last read
    /// of its shard without it, or more than a minute from the stream's creation time) is not
    /// believed, and the change keeps the window the archive observed.
    pub fn time_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.time_attribute = Some(attribute.into());
        self
    }

    /// Checks the table has a stream with new images and starts reading it.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a missing target or key or a zero interval,
    /// [`BackupError::NoStream`] when the table has no stream with new images,
    /// [`BackupError::Request`] when DescribeTable fails.
    pub async fn start(self) -> Result<StreamArchive, BackupError> {
        let target = self.target.ok_or_else(|| ConfigError::invalid("target", "no backup target"))?;
        let key = self.key.ok_or_else(|| ConfigError::invalid("key", NO_KEY))?;
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
        // The stream is on now: every change from here on is in it.
        let started_ms = epoch_ms(SystemTime::now());
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
            key,
            poll_interval: self.poll_interval,
            flush_interval: self.flush_interval,
            time_attribute: self.time_attribute,
            shared: shared.clone(),
            started_ms,
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
    key: BackupKey,
    poll_interval: Duration,
    flush_interval: Duration,
    time_attribute: Option<String>,
    shared: Arc<Shared>,
    /// When the archive started (epoch ms).
    started_ms: u64,
}

/// What the chunks of this run hold so far.
#[derive(Debug)]
struct Run {
    id: String,
    started_ms: u64,
    next_chunk: u64,
    covered_to_ms: u64,
    /// Per shard, the last sequence number written.
    archived: HashMap<String, String>,
}

/// Until when every change is read: the last listing of the shards found every shard a
/// change before it can be in, and every open one was read to its end since (closed ones
/// were read to their last record).
fn coverage_ms(shards: &[Shard], listed_ms: u64) -> u64 {
    shards.iter().filter(|s| !s.closed).map(|s| s.end_read_ms).fold(listed_ms, u64::min)
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

    async fn run(self, mut stopped: watch::Receiver<bool>) -> Result<(), BackupError> {
        let mut shards: Vec<Shard> = Vec::new();
        let mut refreshed: Option<Instant> = None;
        let mut listed_ms = 0u64;
        let mut pending: Vec<ArchivedRecord> = Vec::new();
        let mut last_flush = Instant::now();
        let mut failures = 0u32;
        let mut run = Run {
            id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            started_ms: self.started_ms,
            next_chunk: 0,
            covered_to_ms: self.started_ms,
            archived: HashMap::new(),
        };
        loop {
            let round = Instant::now();
            let stopping = *stopped.borrow();
            let mut result = Ok(true);
            // What the archive covers reaches no further than its last listing of the shards
            // (a shard created after it is not read yet): a round that stops, or that someone
            // waits for, lists them again.
            let waited = self.shared.waiters.load(Ordering::SeqCst) > 0;
            if stopping || waited || refreshed.is_none_or(|at| at.elapsed() >= SHARD_REFRESH) {
                let sent_ms = epoch_ms(SystemTime::now());
                match self.discover(&mut shards).await {
                    Ok(()) => {
                        refreshed = Some(Instant::now());
                        listed_ms = sent_ms;
                    }
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
            let failed = match result {
                Ok(at_end) => {
                    let covered = coverage_ms(&shards, listed_ms).max(run.covered_to_ms);
                    let waited = self.shared.waiters.load(Ordering::SeqCst) > 0;
                    let due = last_flush.elapsed() >= self.flush_interval || pending.len() >= MAX_PENDING;
                    let write = if pending.is_empty() {
                        // An empty chunk carries what the archive covers forward.
                        covered > run.covered_to_ms
                            && ((at_end && (waited || stopping)) || last_flush.elapsed() >= HEARTBEAT)
                    } else {
                        due || (at_end && (waited || stopping))
                    };
                    match if write { self.flush(&mut run, &pending, covered).await } else { Ok(()) } {
                        Ok(()) => {
                            failures = 0;
                            if write {
                                self.update(|s| {
                                    s.chunks += 1;
                                    s.pending = 0;
                                });
                                pending.clear();
                                last_flush = Instant::now();
                            }
                            if at_end {
                                if pending.is_empty() {
                                    self.shared.caught_up.send_replace(Some(round));
                                }
                                if stopping {
                                    return Ok(());
                                }
                                tokio::select! {
                                    _ = tokio::time::sleep(self.poll_interval) => {}
                                    _ = stopped.changed() => {}
                                }
                            }
                            None
                        }
                        Err(e) => Some(e.to_string()),
                    }
                }
                Err(message) => Some(message),
            };
            if let Some(message) = failed {
                self.failed(message.clone());
                failures += 1;
                if stopping && failures >= STOP_ATTEMPTS {
                    // What was read is kept if it can be; the archive is still incomplete.
                    let covered = coverage_ms(&shards, listed_ms).max(run.covered_to_ms);
                    if !pending.is_empty() && self.flush(&mut run, &pending, covered).await.is_ok() {
                        self.update(|s| {
                            s.chunks += 1;
                            s.pending = 0;
                        });
                    }
                    return Err(BackupError::target(
                        "stream archive",
                        format!("stopped before every shard was read to its end: {message}"),
                    ));
                }
                tokio::time::sleep(self.poll_interval * failures.min(10)).await;
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

    /// Reads one page of every open shard; whether every shard was read to its end (not
    /// when one closed: its children are still to be listed and read).
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
                None => {
                    shard.closed = true;
                    at_end = false;
                }
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
            created_ms: data
                .approximate_creation_date_time()
                .and_then(|t| u64::try_from(t.to_millis().ok()?).ok()),
        })
    }

    /// Writes `records` as the run's next chunk, with what the run covers up to `covered_ms`.
    /// A retry writes the same names again, so a chunk is never there twice.
    async fn flush(
        &self,
        run: &mut Run,
        records: &[ArchivedRecord],
        covered_ms: u64,
    ) -> Result<(), BackupError> {
        let mut writer = LineWriter::new();
        let mut shards: BTreeMap<String, ShardSpan> = BTreeMap::new();
        for record in records {
            writer.push(&serde_json::to_value(record).expect("a record serializes"));
            shards
                .entry(record.shard.clone())
                .or_insert_with(|| ShardSpan {
                    after: run.archived.get(&record.shard).cloned(),
                    last: String::new(),
                })
                .last = record.seq.clone();
        }
        let bytes = writer.finish();
        let mut index = ChunkIndex {
            records: records.len() as u64,
            sha256: sha256_hex(&bytes),
            first_ms: records.iter().map(|r| r.observed_ms).min().unwrap_or_default(),
            last_ms: records.iter().map(|r| r.observed_ms).max().unwrap_or_default(),
            run: Some(run.id.clone()),
            number: run.next_chunk,
            run_started_ms: run.started_ms,
            covered_to_ms: covered_ms,
            shards,
            table: Some(self.table.clone()),
            signature: None,
        };
        let name = chunk_stem(run.started_ms, &run.id, run.next_chunk);
        index.sign(&self.key, &format!("{name}.jsonl.gz"));
        self.target.put(&format!("{name}.jsonl.gz"), bytes).await?;
        self.target
            .put(&format!("{name}.json"), serde_json::to_vec(&index).expect("an index serializes"))
            .await?;
        run.next_chunk += 1;
        run.covered_to_ms = covered_ms;
        for (shard, span) in index.shards {
            run.archived.insert(shard, span.last);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ChunkIndex {
        ChunkIndex {
            records: 2,
            sha256: "ab".repeat(32),
            first_ms: 10,
            last_ms: 20,
            run: Some("r1".into()),
            number: 3,
            run_started_ms: 5,
            covered_to_ms: 25,
            shards: [("s1".to_owned(), ShardSpan { after: Some("1".into()), last: "9".into() })].into(),
            table: Some("orders".into()),
            signature: None,
        }
    }

    /// A signed index verifies under its key and name only; any changed field, a name it
    /// was moved to, another key or a removed signature is refused.
    #[test]
    fn a_chunk_index_is_bound_to_its_key_its_name_and_its_fields() {
        let key = BackupKey::new([3u8; 32]).unwrap();
        let name = "stream/chunk-0000000000005-r1-000003.jsonl.gz";
        let mut signed = index();
        signed.sign(&key, name);
        assert_eq!(signed.verify(&key, name), Ok(()));
        let text = serde_json::to_vec(&signed).unwrap();
        let parsed: ChunkIndex = serde_json::from_slice(&text).unwrap();
        assert_eq!(parsed.verify(&key, name), Ok(()), "a stored index verifies once read back");
        assert_eq!(
            signed.verify(&key, "stream/chunk-0000000000005-r1-000004.jsonl.gz"),
            Err(SignatureProblem::Mismatch)
        );
        let edits: [fn(&mut ChunkIndex); 8] = [
            |i| i.table = Some("patients".into()),
            |i| i.table = None,
            |i| i.sha256 = "cd".repeat(32),
            |i| i.records += 1,
            |i| i.covered_to_ms += 1,
            |i| i.number = 4,
            |i| i.run = None,
            |i| i.shards.get_mut("s1").unwrap().after = None,
        ];
        for edit in edits {
            let mut changed = signed.clone();
            edit(&mut changed);
            assert_eq!(changed.verify(&key, name), Err(SignatureProblem::Mismatch), "{changed:?}");
        }
        let other = BackupKey::new([4u8; 32]).unwrap();
        assert!(matches!(signed.verify(&other, name), Err(SignatureProblem::OtherKey { .. })));
        assert_eq!(index().verify(&key, name), Err(SignatureProblem::Missing));
        // An index written before indexes were signed still reads.
        let old: ChunkIndex =
            serde_json::from_str(r#"{"records":0,"sha256":"","first_ms":0,"last_ms":0}"#).unwrap();
        assert_eq!((old.signature, old.table), (None, None));
        // One signed before indexes named their table still verifies: the field is left out
        // of the signed bytes when absent.
        let mut unnamed = ChunkIndex { table: None, ..index() };
        unnamed.sign(&key, name);
        let text = serde_json::to_string(&unnamed).unwrap();
        assert!(!text.contains("table"), "{text}");
        assert_eq!(serde_json::from_str::<ChunkIndex>(&text).unwrap().verify(&key, name), Ok(()));
    }

    fn record(
        after_ms: u64,
        observed_ms: u64,
        written_ms: Option<u64>,
        created_ms: Option<u64>,
    ) -> ArchivedRecord {
        ArchivedRecord {
            shard: "s".into(),
            seq: "1".into(),
            kind: "put".into(),
            keys: serde_json::json!({"pk": {"S": "a"}}),
            image: None,
            observed_ms,
            after_ms,
            written_ms,
            created_ms,
        }
    }

    #[test]
    fn a_writer_time_within_what_the_archive_observed_places_the_change() {
        assert_eq!(record(1_000, 2_000, Some(1_500), None).window_ms(), (1_500, 1_500));
        assert_eq!(record(1_000, 2_000, None, None).window_ms(), (1_000, 2_000));
        assert_eq!(record(1_000, 2_000, Some(1_000), Some(1_900)).window_ms(), (1_000, 1_000));
    }

    /// A time attribute before the last read that did not see the change, or after the read
    /// that did, would move the change across a restore's moment: the archive's own window
    /// holds instead.
    #[test]
    fn a_writer_time_outside_what_the_archive_observed_is_not_believed() {
        assert_eq!(record(1_000, 2_000, Some(10), None).window_ms(), (1_000, 2_000));
        assert_eq!(record(1_000, 2_000, Some(999), None).window_ms(), (1_000, 2_000));
        assert_eq!(record(1_000, 2_000, Some(2_001), None).window_ms(), (1_000, 2_000));
        assert_eq!(record(1_000, 2_000, Some(u64::MAX), None).window_ms(), (1_000, 2_000));
        // A shard's first read has no earlier read to bound it: the stream's creation time does.
        let created = 10_000_000;
        let first = record(0, created + 500, Some(created - CREATION_SLACK_MS - 1), Some(created));
        assert_eq!(first.window_ms(), (0, created + 500));
        let first = record(0, created + 500, Some(created - 1_000), Some(created));
        assert_eq!(first.window_ms(), (created - 1_000, created - 1_000));
    }
}
