//! Asynchronous replication: each region's DynamoDB Streams applied to the other regions.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType};
use aws_sdk_dynamodbstreams::types::{OperationType, Record, ShardIteratorType};
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use tokio::task::JoinHandle;

use super::conflict::{
    compare_versions, Change, ChangeKind, ConflictResolver, LastWriterWins, WriteCondition, ORIGIN_ATTRIBUTE,
};
use super::error::sdk_message;
use super::rpo::key_text;
use super::table::{Item, ReplicatedTable};
use super::writer::same_item;
use super::{ConfigError, Region, RegionSet, ReplicationError};

/// The longest wait between retries of a failing link.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a link looks for new shards while its shards are open.
const SHARD_REFRESH: Duration = Duration::from_secs(10);
/// How far a stream record's `ApproximateCreationDateTime` may lie before the change: AWS
/// rounds it down to the second, DynamoDB Local to the minute.
const STREAM_TIME_ROUNDING: Duration = Duration::from_secs(60);

/// Where a link starts reading the shards that exist when replication starts (shards that
/// appear later are always read from their start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// The oldest record still in the stream (24 h on AWS): nothing written before the
    /// replicator started is missed.
    #[default]
    TrimHorizon,
    /// Only changes made after the replicator started: [`ReplicatorBuilder::start`]
    /// returns once each link that reaches its source holds a place at the end of each
    /// shard, and a link resumes after the last change it applied, or at the first it did
    /// not (a target down, a failed write). A link that has no such place (its source did
    /// not answer at the start) or lost it before reading a change (its stream reads
    /// failed) reads the shard from its oldest record instead and skips the changes made
    /// before the start. Record times are coarse ([`ReplicationStats`]), so a change made
    /// up to a minute before the start may be applied too, only where it is newer. Nothing
    /// made after `start` returned is skipped; a change made while it ran (between its
    /// first stream check and a link's place at the end) may be. A restarted replicator is
    /// a new start: what the
    /// previous one had not applied is skipped; use [`TrimHorizon`](Self::TrimHorizon) for
    /// a replicator that must resume where another stopped.
    Latest,
}

/// Counters and lag of replication, for one link or summed over all.
///
/// Lag is measured when a change is applied: apply time minus the stream record's
/// `ApproximateCreationDateTime`, or, when a lag attribute is configured
/// ([`ReplicatorBuilder::lag_attribute`]), minus that attribute of the new image (epoch
/// milliseconds; deletes and changes without it are then not measured). The stream's time
/// is coarse: AWS rounds it down to the second, DynamoDB Local further.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicationStats {
    /// Changes applied in the target.
    pub applied: u64,
    /// Changes dropped because the target held a newer version.
    pub superseded: u64,
    /// Stream records that were themselves replicated writes, not sent on (no loops).
    pub skipped_replicated: u64,
    /// Changes made without a new version (a raw `UpdateItem`, `PutItem` or
    /// `BatchWriteItem` around [`ReplicatedWriter`](super::ReplicatedWriter)): the same
    /// version as the item before with other contents, or the version removed. Nothing
    /// orders them against the target's copy, so they are not replicated and the regions
    /// differ on those items until a versioned write; each link logs a warning (table and
    /// key, never the item's values) at the first.
    pub unversioned: u64,
    /// Failed requests (each retried).
    pub errors: u64,
    /// The lag of the last measured applied change.
    pub last_lag: Option<Duration>,
    /// The largest lag seen.
    pub max_lag: Option<Duration>,
    /// When the last change was applied.
    pub last_applied_at: Option<SystemTime>,
    /// The last error.
    pub last_error: Option<String>,
}

impl ReplicationStats {
    fn add(&mut self, other: &ReplicationStats) {
        self.applied += other.applied;
        self.superseded += other.superseded;
        self.skipped_replicated += other.skipped_replicated;
        self.unversioned += other.unversioned;
        self.errors += other.errors;
        self.max_lag = self.max_lag.max(other.max_lag);
        if other.last_applied_at > self.last_applied_at {
            self.last_applied_at = other.last_applied_at;
            self.last_lag = other.last_lag.or(self.last_lag);
        } else if self.last_lag.is_none() {
            self.last_lag = other.last_lag;
        }
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }
}

/// The stats of one link: one table's stream in one region, applied to another region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    /// The table's logical name.
    pub table: String,
    /// The region whose stream is read.
    pub source: String,
    /// The region changes are applied to.
    pub target: String,
    /// Its counters.
    pub stats: ReplicationStats,
}

/// Reads the DynamoDB Stream of every replicated table in every region and applies each
/// change to the other regions with a conditional write ([`ConflictResolver`], by default
/// [`LastWriterWins`]).
///
/// Each (table, source, target) link runs on its own, so a region that is down stalls only
/// the links that read from it or write to it; they resume after the last applied record
/// when it returns (within the stream's retention). A link reads its open shards
/// concurrently and applies each batch of records with up to
/// [`apply_concurrency`](ReplicatorBuilder::apply_concurrency) items at a time, each item's
/// changes one after another in stream order, so a link that fell behind (a region back
/// from an outage) catches up at the target's throughput rather than one round trip per
/// record; it polls again at once while records keep coming and waits
/// [`poll_interval`](ReplicatorBuilder::poll_interval) only when every shard was empty.
/// Replicated writes carry
/// [`ORIGIN_ATTRIBUTE`]; the echo of a target's own write is never sent back to it, and a
/// change whose origin is a third region is forwarded only where it is strictly newer than
/// the target's item (so the exact version a region already holds is
/// never written back, and no write loops), whatever its origin: an update made after a
/// failover on an item born in the other region replicates back to it. Deletes replicate
/// from the `REMOVE` record (no tombstones, see [`ReplicatedWriter`](super::ReplicatedWriter)). Tables need a stream with new and old
/// images ([`TableDef::with_stream`](crate::store::TableDef::with_stream)). A change made
/// around the versioning (a raw write that keeps the item's version) cannot be ordered: it
/// is counted in [`ReplicationStats::unversioned`] and logged, not replicated. Progress is
/// kept in memory: a restarted replicator starts from its [`StartPosition`] again; from
/// [`TrimHorizon`](StartPosition::TrimHorizon) the conditional writes make the records
/// read again harmless, from [`Latest`](StartPosition::Latest) the changes the previous
/// replicator had not applied are skipped. The tasks stop when the replicator is dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use lift::disaster::{RegionSet, ReplicatedTable, Replicator};
/// use lift::store::{KeyAttribute, StreamView, TableDef};
///
/// let orders = TableDef::new("orders", KeyAttribute::string("pk")).with_stream(StreamView::NewAndOldImages);
/// let replicator = Replicator::builder(RegionSet::from_env()?)
///     .table(ReplicatedTable::new(orders))
///     .start()
///     .await?;
/// let stats = replicator.stats();
/// println!("applied {} changes, max lag {:?}", stats.applied, stats.max_lag);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Replicator {
    links: Vec<Arc<Link>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Replicator {
    /// A builder over `regions`, with no tables yet.
    pub fn builder(regions: RegionSet) -> ReplicatorBuilder {
        ReplicatorBuilder {
            regions,
            tables: Vec::new(),
            resolver: Arc::new(LastWriterWins::new()),
            poll_interval: Duration::from_millis(250),
            apply_concurrency: 16,
            start_position: StartPosition::default(),
            lag_attribute: None,
            skip_modify: false,
        }
    }

    /// The stats summed over every link.
    pub fn stats(&self) -> ReplicationStats {
        let mut total = ReplicationStats::default();
        for link in &self.links {
            total.add(&link.stats());
        }
        total
    }

    /// The stats of each link.
    pub fn link_stats(&self) -> Vec<LinkStats> {
        self.links
            .iter()
            .map(|link| LinkStats {
                table: link.table.def().name.clone(),
                source: link.source.name().to_owned(),
                target: link.target.name().to_owned(),
                stats: link.stats(),
            })
            .collect()
    }

    /// Stops replicating (as dropping does).
    pub fn stop(self) {}
}

impl Drop for Replicator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Configures and starts a [`Replicator`].
#[derive(Debug)]
pub struct ReplicatorBuilder {
    regions: RegionSet,
    tables: Vec<ReplicatedTable>,
    resolver: Arc<dyn ConflictResolver>,
    poll_interval: Duration,
    apply_concurrency: usize,
    start_position: StartPosition,
    lag_attribute: Option<String>,
    skip_modify: bool,
}

impl ReplicatorBuilder {
    /// For drills that prove their check catches lost updates: `MODIFY` records (updates,
    /// and puts over an existing item) are read and dropped. Never set it in a service.
    #[doc(hidden)]
    pub fn break_update_replication(mut self) -> Self {
        self.skip_modify = true;
        self
    }

    /// Replicates `table` between every pair of regions.
    pub fn table(mut self, table: ReplicatedTable) -> Self {
        self.tables.push(table);
        self
    }

    /// Sets the conflict resolver (default [`LastWriterWins`] on `_version`).
    pub fn resolver(mut self, resolver: impl ConflictResolver) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Sets the wait between reads of an idle stream (default 250 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets how many items a link writes to its target at once while it applies a batch of
    /// stream records (default 16). The changes of one item are always applied one after
    /// another in stream order; the conditional write on the version keeps the newest
    /// version whatever the order across items.
    pub fn apply_concurrency(mut self, items: usize) -> Self {
        self.apply_concurrency = items;
        self
    }

    /// Sets where reading starts (default [`StartPosition::TrimHorizon`]).
    pub fn start_position(mut self, position: StartPosition) -> Self {
        self.start_position = position;
        self
    }

    /// Measures lag from this item attribute (epoch milliseconds, a number, set by the
    /// writer) instead of the stream record's coarse creation time; changes without it
    /// (deletes) are not measured.
    pub fn lag_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.lag_attribute = Some(attribute.into());
        self
    }

    /// Validates the configuration, checks that every table has a stream with new and old
    /// images in every region that answers, and starts a task per link. A region that does
    /// not answer is not an error: its links retry until it does. From
    /// [`StartPosition::Latest`], each link first takes its place at the end of its
    /// source's shards (see there).
    pub async fn start(self) -> Result<Replicator, ReplicationError> {
        let started_at = SystemTime::now();
        if self.regions.len() < 2 {
            return Err(ConfigError::TooFewRegions(self.regions.len()).into());
        }
        if self.tables.is_empty() {
            return Err(ConfigError::invalid("tables", "no table to replicate").into());
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::invalid("poll_interval", "must be greater than zero").into());
        }
        if self.apply_concurrency == 0 {
            return Err(ConfigError::invalid("apply_concurrency", "must be at least 1").into());
        }
        for table in &self.tables {
            for region in &self.regions {
                check_stream(region, table.name_in(region.name())).await?;
            }
        }
        let mut links = Vec::new();
        for table in &self.tables {
            for source in &self.regions {
                for target in self.regions.iter().filter(|t| t.name() != source.name()) {
                    links.push(Arc::new(Link {
                        table: table.clone(),
                        source: source.clone(),
                        target: target.clone(),
                        resolver: self.resolver.clone(),
                        poll_interval: self.poll_interval,
                        apply_concurrency: self.apply_concurrency,
                        start_position: self.start_position,
                        lag_attribute: self.lag_attribute.clone(),
                        skip_modify: self.skip_modify,
                        started_at,
                        warned_unversioned: AtomicBool::new(false),
                        stats: Mutex::new(ReplicationStats::default()),
                    }));
                }
            }
        }
        let cursors = match self.start_position {
            StartPosition::Latest => join_all(links.iter().map(|link| link.at_the_end())).await,
            StartPosition::TrimHorizon => links.iter().map(|_| Cursor::default()).collect(),
        };
        let tasks =
            links.iter().zip(cursors).map(|(link, cursor)| tokio::spawn(link.clone().run(cursor))).collect();
        Ok(Replicator { links, tasks })
    }
}

async fn check_stream(region: &Region, table: &str) -> Result<(), ReplicationError> {
    use aws_sdk_dynamodb::error::SdkError;
    let out = match region.dynamodb().describe_table().table_name(table).send().await {
        Ok(out) => out,
        Err(err @ SdkError::ServiceError(_)) => {
            return Err(ReplicationError::Request {
                operation: "DescribeTable",
                region: region.name().to_owned(),
                message: sdk_message(&err),
            })
        }
        Err(err) => {
            tracing::warn!(region = region.name(), table, error = %sdk_message(&err), "cannot check the stream yet");
            return Ok(());
        }
    };
    let spec = out.table().and_then(|t| t.stream_specification());
    let view = spec.filter(|s| s.stream_enabled()).and_then(|s| s.stream_view_type());
    if view == Some(&StreamViewType::NewAndOldImages) {
        return Ok(());
    }
    Err(ReplicationError::NoStream {
        table: table.to_owned(),
        region: region.name().to_owned(),
        found: view.map_or("no stream".to_owned(), |v| format!("a {} stream", v.as_str())),
    })
}

#[derive(Debug)]
struct Link {
    table: ReplicatedTable,
    source: Region,
    target: Region,
    resolver: Arc<dyn ConflictResolver>,
    poll_interval: Duration,
    apply_concurrency: usize,
    start_position: StartPosition,
    lag_attribute: Option<String>,
    skip_modify: bool,
    /// When the replicator started: shards read from [`StartPosition::Latest`] skip the
    /// records made before.
    started_at: SystemTime,
    /// Whether this link warned of an unversioned change already (once per link).
    warned_unversioned: AtomicBool,
    stats: Mutex<ReplicationStats>,
}

/// Reading progress in one shard: the iterator to read next, and where a new one starts
/// when it is lost (an error, or expired).
#[derive(Debug)]
struct Shard {
    id: String,
    iterator: Option<String>,
    position: Position,
    /// Records made before this are skipped: a shard read from [`StartPosition::Latest`].
    /// Its first iterator (`LATEST`, taken at the start) marks the end of the shard then
    /// and nothing else: when it is lost before a record was read, a new `LATEST` iterator
    /// would skip whatever came since, and having read no record the link has no sequence
    /// number to resume from, so the shard is read from its oldest record instead, bounded
    /// by the start time.
    since: Option<SystemTime>,
    closed: bool,
}

/// Where a new iterator of a shard starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// The shard's oldest record.
    TrimHorizon,
    /// This record, the first not applied yet.
    At(String),
    /// After this record, the last applied.
    After(String),
}

#[derive(Debug, Default)]
struct Cursor {
    stream_arn: Option<String>,
    shards: Vec<Shard>,
    refreshed_at: Option<tokio::time::Instant>,
    refresh: bool,
}

/// What reading one shard found.
struct ShardRead {
    records: usize,
    closed: bool,
}

/// What applying one record did.
enum Outcome {
    Applied(Option<Duration>),
    Superseded,
    Replicated,
    Unversioned,
    Ignored,
}

/// Whether a change was made without a new version: the item had a version, and the change
/// removed it, or kept it (and the origin) with other contents. A versioned write always
/// stamps a newer version; the conflict resolver's tie-break replaces an item with one of
/// the same version from another origin, which is not this.
fn unversioned(old: Option<&Item>, new: &Item, version_attribute: &str) -> bool {
    let Some(old) = old else { return false };
    let Some(old_version) = old.get(version_attribute) else { return false };
    match new.get(version_attribute) {
        None => true,
        Some(version) => {
            compare_versions(version, old_version) == Some(std::cmp::Ordering::Equal)
                && new.get(ORIGIN_ATTRIBUTE) == old.get(ORIGIN_ATTRIBUTE)
                && !same_item(old, new)
        }
    }
}

/// Whether a record whose stream time is `created` was certainly made before `since`: its
/// time is rounded down ([`STREAM_TIME_ROUNDING`]), so only a time that far before counts.
/// A record without a time is kept.
fn made_before(created: Option<SystemTime>, since: SystemTime) -> bool {
    created.is_some_and(|created| created + STREAM_TIME_ROUNDING <= since)
}

impl Link {
    /// A cursor holding a `LATEST` iterator of each of the source's shards, taken now (for
    /// [`StartPosition::Latest`]). Shards without one are read whole, skipping the records
    /// made before the start ([`Shard::since`]).
    async fn at_the_end(self: &Arc<Self>) -> Cursor {
        let mut cursor = Cursor::default();
        let stream_arn = match self.open(&mut cursor).await {
            Ok(arn) => arn,
            Err(message) => {
                tracing::debug!(
                    table = %self.table.def().name,
                    source = self.source.name(),
                    error = %message,
                    "no place at the end of the stream yet; the link reads the changes made since the start"
                );
                return cursor;
            }
        };
        let ends = cursor.shards.iter().map(|shard| {
            self.source
                .streams()
                .get_shard_iterator()
                .stream_arn(&stream_arn)
                .shard_id(&shard.id)
                .shard_iterator_type(ShardIteratorType::Latest)
                .send()
        });
        let ends = join_all(ends).await;
        for (shard, end) in cursor.shards.iter_mut().zip(ends) {
            shard.iterator = end.ok().and_then(|out| out.shard_iterator);
        }
        cursor
    }

    fn stats(&self) -> ReplicationStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut ReplicationStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    async fn run(self: Arc<Self>, mut cursor: Cursor) {
        let mut backoff = self.poll_interval;
        loop {
            match self.step(&mut cursor).await {
                Ok(read) => {
                    backoff = self.poll_interval;
                    if read == 0 {
                        tokio::time::sleep(self.poll_interval).await;
                    }
                }
                Err(message) => {
                    tracing::debug!(
                        table = %self.table.def().name,
                        source = self.source.name(),
                        target = self.target.name(),
                        error = %message,
                        "replication link failed; retrying"
                    );
                    self.update(|s| {
                        s.errors += 1;
                        s.last_error = Some(message);
                    });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Reads every open shard once and applies what it finds; returns how many records.
    async fn step(&self, cursor: &mut Cursor) -> Result<usize, String> {
        let stream_arn = self.open(cursor).await?;
        let reads = join_all(
            cursor.shards.iter_mut().filter(|s| !s.closed).map(|shard| self.read_shard(&stream_arn, shard)),
        )
        .await;
        let mut read = 0;
        let mut failure = None;
        for result in reads {
            match result {
                Ok(ShardRead { records, closed }) => {
                    read += records;
                    cursor.refresh |= closed;
                }
                Err(message) => failure = failure.or(Some(message)),
            }
        }
        match failure {
            Some(message) => Err(message),
            None => Ok(read),
        }
    }

    /// The source's stream, its shards discovered (again, when due); returns its ARN.
    async fn open(&self, cursor: &mut Cursor) -> Result<String, String> {
        let source_table = self.table.name_in(self.source.name());
        let stream_arn = match &cursor.stream_arn {
            Some(arn) => arn.clone(),
            None => {
                let out = self
                    .source
                    .dynamodb()
                    .describe_table()
                    .table_name(source_table)
                    .send()
                    .await
                    .map_err(|err| format!("DescribeTable: {}", sdk_message(&err)))?;
                let arn = out
                    .table()
                    .and_then(|t| t.latest_stream_arn())
                    .ok_or_else(|| format!("table {source_table} has no stream"))?
                    .to_owned();
                cursor.stream_arn = Some(arn.clone());
                arn
            }
        };
        let stale = cursor.refreshed_at.is_none_or(|at| at.elapsed() >= SHARD_REFRESH);
        if cursor.refresh || stale {
            self.discover_shards(cursor, &stream_arn).await?;
        }
        Ok(stream_arn)
    }

    /// Reads one batch of a shard and applies it, item by item concurrently.
    async fn read_shard(&self, stream_arn: &str, shard: &mut Shard) -> Result<ShardRead, String> {
        let iterator = match shard.iterator.take() {
            Some(iterator) => iterator,
            None => self.iterator(stream_arn, shard).await?,
        };
        let out = match self.source.streams().get_records().shard_iterator(iterator).limit(1000).send().await
        {
            Ok(out) => out,
            Err(err) => {
                let expired = err.as_service_error().is_some_and(|e| {
                    e.is_expired_iterator_exception() || e.is_trimmed_data_access_exception()
                });
                if expired {
                    // A fresh iterator from the shard's position, next round. (DynamoDB Local
                    // answers so a `LATEST` iterator taken on an empty shard once the shard's
                    // first record is written: a new `LATEST` one would skip that record.)
                    return Ok(ShardRead { records: 0, closed: false });
                }
                return Err(format!("GetRecords: {}", sdk_message(&err)));
            }
        };
        let records = out.records();
        let since = shard.since;
        let batch =
            apply_by_key(records, record_key, self.apply_concurrency, |record| self.apply(record, since))
                .await;
        let applied_at = SystemTime::now();
        self.update(|s| {
            for outcome in batch.outcomes.iter().flatten() {
                match outcome {
                    Outcome::Applied(lag) => {
                        s.applied += 1;
                        s.last_applied_at = Some(applied_at);
                        if lag.is_some() {
                            s.last_lag = *lag;
                            s.max_lag = s.max_lag.max(*lag);
                        }
                    }
                    Outcome::Superseded => s.superseded += 1,
                    Outcome::Replicated => s.skipped_replicated += 1,
                    Outcome::Unversioned => s.unversioned += 1,
                    Outcome::Ignored => {}
                }
            }
        });
        // Progress is the unbroken prefix of applied records: after a failure the next round
        // resumes at the first record not applied (the iterator stays taken), so nothing is
        // skipped while the target is down, whatever the start position. Records of other
        // items past that point that were applied already come again and are dropped by
        // their version condition.
        let sequence = |i: usize| records[i].dynamodb().and_then(|r| r.sequence_number()).map(str::to_owned);
        let resume = match records.get(batch.done) {
            Some(_) => sequence(batch.done).map(Position::At),
            None => batch.done.checked_sub(1).and_then(sequence).map(Position::After),
        };
        if let Some(position) = resume {
            shard.position = position;
        }
        if let Some(message) = batch.error {
            return Err(message);
        }
        let closed = match out.next_shard_iterator() {
            Some(next) => {
                shard.iterator = Some(next.to_owned());
                false
            }
            None => {
                shard.closed = true;
                true
            }
        };
        Ok(ShardRead { records: records.len(), closed })
    }

    async fn discover_shards(&self, cursor: &mut Cursor, stream_arn: &str) -> Result<(), String> {
        let first = cursor.refreshed_at.is_none();
        let mut start_after: Option<String> = None;
        loop {
            let out = self
                .source
                .streams()
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start_after.take())
                .send()
                .await
                .map_err(|err| format!("DescribeStream: {}", sdk_message(&err)))?;
            let Some(description) = out.stream_description() else { break };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if cursor.shards.iter().any(|s| s.id == id) {
                    continue;
                }
                // Shards found later were made after the start: read whole.
                let since =
                    (first && self.start_position == StartPosition::Latest).then_some(self.started_at);
                cursor.shards.push(Shard {
                    id: id.to_owned(),
                    iterator: None,
                    position: Position::TrimHorizon,
                    since,
                    closed: false,
                });
            }
            match description.last_evaluated_shard_id() {
                Some(last) => start_after = Some(last.to_owned()),
                None => break,
            }
        }
        cursor.refreshed_at = Some(tokio::time::Instant::now());
        cursor.refresh = false;
        Ok(())
    }

    async fn iterator(&self, stream_arn: &str, shard: &Shard) -> Result<String, String> {
        let request = self.source.streams().get_shard_iterator().stream_arn(stream_arn).shard_id(&shard.id);
        let request = match &shard.position {
            Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Position::At(seq) => {
                request.shard_iterator_type(ShardIteratorType::AtSequenceNumber).sequence_number(seq)
            }
            Position::After(seq) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq)
            }
        };
        let out = request.send().await.map_err(|err| format!("GetShardIterator: {}", sdk_message(&err)))?;
        out.shard_iterator().map(str::to_owned).ok_or_else(|| format!("no iterator for shard {}", shard.id))
    }

    /// Applies one record; with `since`, a record made before it is skipped.
    async fn apply(&self, record: &Record, since: Option<SystemTime>) -> Result<Outcome, String> {
        let kind = match record.event_name() {
            Some(OperationType::Modify) if self.skip_modify => return Ok(Outcome::Ignored),
            Some(OperationType::Insert | OperationType::Modify) => ChangeKind::Put,
            Some(OperationType::Remove) => ChangeKind::Delete,
            _ => return Ok(Outcome::Ignored),
        };
        let Some(data) = record.dynamodb() else { return Ok(Outcome::Ignored) };
        if let Some(since) = since {
            let created = data.approximate_creation_date_time().and_then(|t| SystemTime::try_from(*t).ok());
            if made_before(created, since) {
                return Ok(Outcome::Ignored);
            }
        }
        let key = data.keys().map(convert_item).unwrap_or_default();
        let new_image = data.new_image().map(convert_item);
        let old_image = data.old_image().map(convert_item);
        if kind == ChangeKind::Put {
            let Some(image) = &new_image else {
                return Err(format!(
                    "stream of {} carries no new images",
                    self.table.name_in(self.source.name())
                ));
            };
            // Before the origin is looked at: a raw update keeps the origin of the write
            // before it, and would pass for an echo or for another region's write.
            if unversioned(old_image.as_ref(), image, self.resolver_attribute()) {
                self.warn_unversioned(&key);
                return Ok(Outcome::Unversioned);
            }
            if let Some(AttributeValue::S(origin)) = image.get(ORIGIN_ATTRIBUTE) {
                if origin == self.target.name() {
                    // The echo of the target's own write: it holds that version or a newer
                    // change, a delete included. Forwarding it would bring a deleted item
                    // back whenever the echo arrives after the delete (a link catching up a
                    // backlog), and the resurrected item would then loop between regions.
                    return Ok(Outcome::Replicated);
                }
                if origin != self.source.name() {
                    // Written elsewhere: forward it only where it is newer than what the
                    // target holds. The exact version already there (the write came from
                    // the target, or went there too) is skipped; a newer version made in
                    // another region (an update after failover on an item born here) is not.
                    return self.forward(image, origin).await;
                }
            }
        }
        let change = Change {
            kind,
            table: &self.table,
            source_region: self.source.name(),
            target_region: self.target.name(),
            key: &key,
            new_image: new_image.as_ref(),
            old_image: old_image.as_ref(),
        };
        let condition = self.resolver.condition(&change);
        let target_table = self.table.name_in(self.target.name());
        let client = self.target.dynamodb();
        let result = match kind {
            ChangeKind::Put => {
                let mut item = new_image.clone().unwrap_or_default();
                item.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S(self.source.name().to_owned()));
                let request = client.put_item().table_name(target_table).set_item(Some(item));
                let request = match condition {
                    Some(c) => request
                        .condition_expression(c.expression)
                        .set_expression_attribute_names(non_empty(c.names))
                        .set_expression_attribute_values(non_empty(c.values)),
                    None => request,
                };
                request.send().await.map(|_| ()).map_err(|err| {
                    let lost =
                        err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception());
                    (lost, format!("PutItem: {}", sdk_message(&err)))
                })
            }
            ChangeKind::Delete => {
                let request = client.delete_item().table_name(target_table).set_key(Some(key.clone()));
                let request = match condition {
                    Some(WriteCondition { expression, names, values }) => request
                        .condition_expression(expression)
                        .set_expression_attribute_names(non_empty(names))
                        .set_expression_attribute_values(non_empty(values)),
                    None => request,
                };
                request.send().await.map(|_| ()).map_err(|err| {
                    let lost =
                        err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception());
                    (lost, format!("DeleteItem: {}", sdk_message(&err)))
                })
            }
        };
        match result {
            Ok(()) => Ok(Outcome::Applied(self.lag(data, new_image.as_ref()))),
            Err((true, _)) => Ok(Outcome::Superseded),
            Err((false, message)) => Err(message),
        }
    }

    /// Applies a change that another region wrote, if it is strictly newer than the
    /// target's item (or the target has none); keeps the writing region as its origin.
    async fn forward(&self, image: &Item, origin: &str) -> Result<Outcome, String> {
        let Some(version) = image.get(self.resolver_attribute()) else {
            // Unversioned: nothing orders it against the target's copy.
            return Ok(Outcome::Replicated);
        };
        let mut item = image.clone();
        item.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S(origin.to_owned()));
        let result = self
            .target
            .dynamodb()
            .put_item()
            .table_name(self.table.name_in(self.target.name()))
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k) OR attribute_not_exists(#v) OR #v < :v")
            .expression_attribute_names("#k", &self.table.def().partition_key.name)
            .expression_attribute_names("#v", self.resolver_attribute())
            .expression_attribute_values(":v", version.clone())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Outcome::Applied(None)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Outcome::Replicated)
            }
            Err(err) => Err(format!("PutItem: {}", sdk_message(&err))),
        }
    }

    fn resolver_attribute(&self) -> &str {
        self.resolver.version_attribute()
    }

    fn warn_unversioned(&self, key: &Item) {
        if self.warned_unversioned.swap(true, AtomicOrdering::Relaxed) {
            return;
        }
        // The key only: the item's values may be personal data.
        tracing::warn!(
            table = %self.table.def().name,
            source = self.source.name(),
            source_table = self.table.name_in(self.source.name()),
            target = self.target.name(),
            key = ?key_text(key),
            "a change without a new version (written around the replicated writer) is not replicated: \
             the regions differ on this item until a versioned write; later ones on this link are only counted"
        );
    }

    fn lag(
        &self,
        data: &aws_sdk_dynamodbstreams::types::StreamRecord,
        image: Option<&Item>,
    ) -> Option<Duration> {
        let now = SystemTime::now();
        // With a lag attribute, only changes that carry it are measured (not deletes): the
        // stream's own time is too coarse to mix in.
        let created = match &self.lag_attribute {
            Some(attr) => {
                let ms = image?.get(attr)?.as_n().ok()?.parse::<u64>().ok()?;
                SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
            }
            None => SystemTime::try_from(*data.approximate_creation_date_time()?).ok()?,
        };
        Some(now.duration_since(created).unwrap_or_default())
    }
}

/// What [`apply_by_key`] did with a batch.
#[derive(Debug)]
struct Batch<O> {
    /// Per record, in stream order: its outcome, or `None` if it failed or was not tried.
    outcomes: Vec<Option<O>>,
    /// How many leading records were all applied (the batch's safe progress).
    done: usize,
    /// The error of the earliest failed record.
    error: Option<String>,
}

/// Applies `records` with up to `concurrency` keys in flight: the records of one key one
/// after another in their order, stopping that key at its first error (a later change of
/// an item is never applied before an earlier one, so a retry resumes in order), while
/// the other keys go on.
async fn apply_by_key<'a, T, K, O, Fut>(
    records: &'a [T],
    key_of: impl Fn(&T) -> K,
    concurrency: usize,
    apply: impl Fn(&'a T) -> Fut,
) -> Batch<O>
where
    K: Eq + Hash,
    Fut: Future<Output = Result<O, String>>,
{
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<K, usize> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        let group = *by_key.entry(key_of(record)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(i);
    }
    let apply = &apply;
    let results: Vec<Vec<(usize, Result<O, String>)>> = stream::iter(groups)
        .map(|group| async move {
            let mut done = Vec::with_capacity(group.len());
            for i in group {
                let result = apply(&records[i]).await;
                let failed = result.is_err();
                done.push((i, result));
                if failed {
                    break;
                }
            }
            done
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut outcomes: Vec<Option<O>> = std::iter::repeat_with(|| None).take(records.len()).collect();
    let mut error: Option<(usize, String)> = None;
    for (i, result) in results.into_iter().flatten() {
        match result {
            Ok(outcome) => outcomes[i] = Some(outcome),
            Err(message) => {
                if error.as_ref().is_none_or(|(first, _)| i < *first) {
                    error = Some((i, message));
                }
            }
        }
    }
    let done = outcomes.iter().take_while(|o| o.is_some()).count();
    Batch { outcomes, done, error: error.map(|(_, message)| message) }
}

/// A record's item key in a canonical form (attribute names sorted), to group its changes.
fn record_key(record: &Record) -> String {
    let Some(keys) = record.dynamodb().and_then(|d| d.keys()) else { return String::new() };
    let mut parts: Vec<String> = keys.iter().map(|(name, value)| format!("{name}={value:?}")).collect();
    parts.sort_unstable();
    parts.join("\u{1f}")
}

fn non_empty<K, V>(map: std::collections::HashMap<K, V>) -> Option<std::collections::HashMap<K, V>> {
    (!map.is_empty()).then_some(map)
}

/// A stream record's item in DynamoDB's own attribute types.
pub(in crate::disaster) fn convert_item(
    item: &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
) -> Item {
    item.iter().map(|(k, v)| (k.clone(), convert(v))).collect()
}

fn convert(value: &aws_sdk_dynamodbstreams::types::AttributeValue) -> AttributeValue {
    use aws_sdk_dynamodbstreams::types::AttributeValue as S;
    match value {
        S::S(s) => AttributeValue::S(s.clone()),
        S::N(n) => AttributeValue::N(n.clone()),
        S::B(b) => AttributeValue::B(b.clone()),
        S::Ss(v) => AttributeValue::Ss(v.clone()),
        S::Ns(v) => AttributeValue::Ns(v.clone()),
        S::Bs(v) => AttributeValue::Bs(v.clone()),
        S::Bool(b) => AttributeValue::Bool(*b),
        S::Null(b) => AttributeValue::Null(*b),
        S::L(list) => AttributeValue::L(list.iter().map(convert).collect()),
        S::M(map) => AttributeValue::M(convert_item(map)),
        // A type this SDK does not know yet; NULL keeps the item writable.
        _ => AttributeValue::Null(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::AttributeValue as S;
    use std::collections::HashMap;

    #[test]
    fn stream_values_convert_recursively() {
        let nested = S::M(HashMap::from([(
            "l".to_owned(),
            S::L(vec![S::N("1".into()), S::Bool(true), S::Ss(vec!["a".into()]), S::Null(true)]),
        )]));
        let converted = convert(&nested);
        let AttributeValue::M(map) = converted else { panic!("not a map") };
        assert_eq!(
            map["l"],
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::Bool(true),
                AttributeValue::Ss(vec!["a".into()]),
                AttributeValue::Null(true),
            ])
        );
    }

    /// An in-memory target that keeps, per key, the highest version written with the
    /// replicator's rule (apply only over an older version), and the order it saw each
    /// key's records in. Each write takes `delay` ms of (paused) time, so keys interleave.
    #[derive(Default)]
    struct Target {
        held: Mutex<HashMap<u8, u32>>,
        seen: Mutex<HashMap<u8, Vec<usize>>>,
    }

    impl Target {
        async fn write(&self, (index, key, version, delay): (usize, u8, u32, u64)) -> Result<bool, String> {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            self.seen.lock().unwrap().entry(key).or_default().push(index);
            let mut held = self.held.lock().unwrap();
            let current = held.entry(key).or_insert(0);
            let applied = *current < version;
            if applied {
                *current = version;
            }
            Ok(applied)
        }
    }

    fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
    }

    proptest::proptest! {
        /// Whatever the interleaving across keys, each key's records reach the target in
        /// stream order and the target ends with each key's highest version (its own or
        /// the batch's), and the whole batch counts as progress.
        #[test]
        fn concurrent_application_keeps_per_key_order_and_the_highest_version(
            batch in proptest::collection::vec((0u8..6, 1u32..20, 0u64..30), 0..60),
            seeded in proptest::collection::vec((0u8..6, 1u32..20), 0..6),
            concurrency in 1usize..8,
        ) {
            let records: Vec<(usize, u8, u32, u64)> =
                batch.iter().enumerate().map(|(i, &(k, v, d))| (i, k, v, d)).collect();
            let target = Target::default();
            for &(k, v) in &seeded {
                let mut held = target.held.lock().unwrap();
                let e = held.entry(k).or_insert(0);
                *e = (*e).max(v);
            }
            let result = paused_runtime().block_on(apply_by_key(
                &records,
                |r| r.1,
                concurrency,
                |r| target.write(*r),
            ));
            proptest::prop_assert_eq!(result.done, records.len());
            proptest::prop_assert!(result.error.is_none());
            proptest::prop_assert!(result.outcomes.iter().all(Option::is_some));
            let mut expected: HashMap<u8, u32> = HashMap::new();
            for (k, v) in seeded.iter().copied().chain(batch.iter().map(|&(k, v, _)| (k, v))) {
                let e = expected.entry(k).or_insert(0);
                *e = (*e).max(v);
            }
            let held = target.held.lock().unwrap().clone();
            for (k, v) in &expected {
                proptest::prop_assert_eq!(held.get(k), Some(v), "key {}", k);
            }
            for (key, order) in target.seen.lock().unwrap().iter() {
                let stream: Vec<usize> = records.iter().filter(|r| r.1 == *key).map(|r| r.0).collect();
                proptest::prop_assert_eq!(order, &stream, "key {} applied out of stream order", key);
            }
        }
    }

    #[test]
    fn a_failed_record_stops_its_key_and_bounds_progress_while_other_keys_go_on() {
        // Stream: a1 b1 c1 b2(fails) a2 b3 c2 b4.
        let records: [(char, u32); 8] =
            [('a', 1), ('b', 1), ('c', 1), ('b', 2), ('a', 2), ('b', 3), ('c', 2), ('b', 4)];
        let tried = Mutex::new(Vec::new());
        let batch = paused_runtime().block_on(apply_by_key(
            &records,
            |r| r.0,
            4,
            |r| {
                tried.lock().unwrap().push(*r);
                async move {
                    tokio::time::sleep(Duration::from_millis(u64::from(r.1))).await;
                    if *r == ('b', 2) {
                        Err("target down".to_owned())
                    } else {
                        Ok(*r)
                    }
                }
            },
        ));
        assert_eq!(batch.error.as_deref(), Some("target down"));
        assert_eq!(batch.done, 3, "progress stops before the failed record");
        let tried = tried.into_inner().unwrap();
        assert!(!tried.contains(&('b', 3)) && !tried.contains(&('b', 4)), "{tried:?}");
        assert!(tried.contains(&('a', 2)) && tried.contains(&('c', 2)), "{tried:?}");
        let applied: Vec<_> = batch.outcomes.iter().flatten().copied().collect();
        assert_eq!(applied, [('a', 1), ('b', 1), ('c', 1), ('a', 2), ('c', 2)]);
    }

    #[test]
    fn the_earliest_failure_in_stream_order_is_reported() {
        let records = [(1, "slow"), (2, "fast")];
        let batch = paused_runtime().block_on(apply_by_key(
            &records,
            |r| r.0,
            2,
            |r| async move {
                // The later record fails first in time.
                tokio::time::sleep(Duration::from_millis(if r.1 == "slow" { 50 } else { 1 })).await;
                Err::<(), _>(format!("{} failed", r.1))
            },
        ));
        assert_eq!(batch.error.as_deref(), Some("slow failed"));
        assert_eq!(batch.done, 0);
    }

    fn image(version: Option<u64>, origin: Option<&str>, name: &str) -> Item {
        let mut item: Item = [("pk".to_owned(), AttributeValue::S("k".into()))].into();
        if let Some(version) = version {
            item.insert("_version".into(), AttributeValue::N(version.to_string()));
        }
        if let Some(origin) = origin {
            item.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S(origin.into()));
        }
        item.insert("name".into(), AttributeValue::S(name.into()));
        item
    }

    #[test]
    fn a_change_that_keeps_or_removes_the_version_is_unversioned() {
        let old = image(Some(5), Some("us-east-1"), "a");
        let unversioned = |new: Item| super::unversioned(Some(&old), &new, "_version");
        // A raw update: same version, same origin, other contents.
        assert!(unversioned(image(Some(5), Some("us-east-1"), "b")));
        // A raw put without the version.
        assert!(unversioned(image(None, None, "b")));
        // A versioned write, the tie-break's replacement from another origin, no change.
        assert!(!unversioned(image(Some(6), Some("us-east-1"), "b")));
        assert!(!unversioned(image(Some(5), Some("eu-west-1"), "b")));
        assert!(!unversioned(old.clone()));
        // Nothing to compare with: a new item, or one that never had a version.
        assert!(!super::unversioned(None, &image(None, None, "b"), "_version"));
        let never = image(None, None, "a");
        assert!(!super::unversioned(Some(&never), &image(None, None, "b"), "_version"));
    }

    #[test]
    fn only_records_certainly_made_before_the_start_are_skipped() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // DynamoDB Local rounds down to the minute: a change 1 s after the start can read
        // 59 s before it.
        assert!(!made_before(Some(start - Duration::from_secs(59)), start));
        assert!(!made_before(Some(start + Duration::from_secs(1)), start));
        assert!(!made_before(None, start), "no time: kept");
        assert!(made_before(Some(start - Duration::from_secs(60)), start));
    }

    #[test]
    fn stats_sum_and_keep_the_latest_lag() {
        let t = SystemTime::UNIX_EPOCH;
        let mut total = ReplicationStats::default();
        total.add(&ReplicationStats {
            applied: 2,
            last_lag: Some(Duration::from_millis(300)),
            max_lag: Some(Duration::from_millis(900)),
            last_applied_at: Some(t + Duration::from_secs(2)),
            ..Default::default()
        });
        total.add(&ReplicationStats {
            applied: 1,
            superseded: 1,
            last_lag: Some(Duration::from_millis(100)),
            max_lag: Some(Duration::from_millis(100)),
            last_applied_at: Some(t + Duration::from_secs(1)),
            ..Default::default()
        });
        assert_eq!((total.applied, total.superseded), (3, 1));
        assert_eq!(total.last_lag, Some(Duration::from_millis(300)));
        assert_eq!(total.max_lag, Some(Duration::from_millis(900)));
    }
}
