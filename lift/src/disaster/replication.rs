//! Asynchronous replication: each region's DynamoDB Streams applied to the other regions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType};
use aws_sdk_dynamodbstreams::types::{OperationType, Record, ShardIteratorType};
use tokio::task::JoinHandle;

use super::conflict::{
    Change, ChangeKind, ConflictResolver, LastWriterWins, WriteCondition, ORIGIN_ATTRIBUTE,
};
use super::error::sdk_message;
use super::table::{Item, ReplicatedTable};
use super::{ConfigError, Region, RegionSet, ReplicationError};

/// The longest wait between retries of a failing link.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a link looks for new shards while its shards are open.
const SHARD_REFRESH: Duration = Duration::from_secs(10);

/// Where a link starts reading the shards that exist when replication starts (shards that
/// appear later are always read from their start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// The oldest record still in the stream (24 h on AWS): nothing written before the
    /// replicator started is missed.
    #[default]
    TrimHorizon,
    /// Only changes made after the replicator started.
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
/// when it returns (within the stream's retention). Replicated writes carry
/// [`ORIGIN_ATTRIBUTE`]; a change whose origin is another region is forwarded only where it
/// is strictly newer than the target's item (so the exact version a region already holds is
/// never written back, and no write loops), whatever its origin: an update made after a
/// failover on an item born in the other region replicates back to it. Deletes replicate
/// from the `REMOVE` record (no tombstones, see [`ReplicatedWriter`](super::ReplicatedWriter)). Tables need a stream with new and old
/// images ([`TableDef::with_stream`](crate::store::TableDef::with_stream)). Progress is
/// kept in memory: a restarted replicator starts from its [`StartPosition`] again, which
/// conditional writes make harmless. The tasks stop when the replicator is dropped.
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
    /// not answer is not an error: its links retry until it does.
    pub async fn start(self) -> Result<Replicator, ReplicationError> {
        if self.regions.len() < 2 {
            return Err(ConfigError::TooFewRegions(self.regions.len()).into());
        }
        if self.tables.is_empty() {
            return Err(ConfigError::invalid("tables", "no table to replicate").into());
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::invalid("poll_interval", "must be greater than zero").into());
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
                        start_position: self.start_position,
                        lag_attribute: self.lag_attribute.clone(),
                        skip_modify: self.skip_modify,
                        stats: Mutex::new(ReplicationStats::default()),
                    }));
                }
            }
        }
        let tasks = links.iter().map(|link| tokio::spawn(link.clone().run())).collect();
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
    start_position: StartPosition,
    lag_attribute: Option<String>,
    skip_modify: bool,
    stats: Mutex<ReplicationStats>,
}

/// Reading progress in one shard.
#[derive(Debug)]
struct Shard {
    id: String,
    iterator: Option<String>,
    last_sequence: Option<String>,
    start: ShardIteratorType,
    closed: bool,
}

#[derive(Debug, Default)]
struct Cursor {
    stream_arn: Option<String>,
    shards: Vec<Shard>,
    refreshed_at: Option<tokio::time::Instant>,
    refresh: bool,
}

/// What applying one record did.
enum Outcome {
    Applied(Option<Duration>),
    Superseded,
    Replicated,
    Ignored,
}

impl Link {
    fn stats(&self) -> ReplicationStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut ReplicationStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    async fn run(self: Arc<Self>) {
        let mut cursor = Cursor::default();
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
        let mut read = 0;
        for shard in cursor.shards.iter_mut().filter(|s| !s.closed) {
            let iterator = match shard.iterator.take() {
                Some(iterator) => iterator,
                None => self.iterator(&stream_arn, shard).await?,
            };
            let out =
                match self.source.streams().get_records().shard_iterator(iterator).limit(1000).send().await {
                    Ok(out) => out,
                    Err(err) => {
                        let expired = err.as_service_error().is_some_and(|e| {
                            e.is_expired_iterator_exception() || e.is_trimmed_data_access_exception()
                        });
                        if expired {
                            // A fresh iterator after the last applied record, next round.
                            continue;
                        }
                        return Err(format!("GetRecords: {}", sdk_message(&err)));
                    }
                };
            for record in out.records() {
                match self.apply(record).await {
                    Ok(outcome) => self.update(|s| match outcome {
                        Outcome::Applied(lag) => {
                            s.applied += 1;
                            s.last_applied_at = Some(SystemTime::now());
                            if lag.is_some() {
                                s.last_lag = lag;
                                s.max_lag = s.max_lag.max(lag);
                            }
                        }
                        Outcome::Superseded => s.superseded += 1,
                        Outcome::Replicated => s.skipped_replicated += 1,
                        Outcome::Ignored => {}
                    }),
                    // The iterator stays taken: the next round resumes after the last
                    // applied record, so nothing is skipped while the target is down.
                    Err(message) => return Err(message),
                }
                shard.last_sequence = record.dynamodb().and_then(|r| r.sequence_number()).map(str::to_owned);
                read += 1;
            }
            match out.next_shard_iterator() {
                Some(next) => shard.iterator = Some(next.to_owned()),
                None => {
                    shard.closed = true;
                    cursor.refresh = true;
                }
            }
        }
        Ok(read)
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
                let start = match (first, self.start_position) {
                    (true, StartPosition::Latest) => ShardIteratorType::Latest,
                    _ => ShardIteratorType::TrimHorizon,
                };
                cursor.shards.push(Shard {
                    id: id.to_owned(),
                    iterator: None,
                    last_sequence: None,
                    start,
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
        let request = match &shard.last_sequence {
            Some(seq) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq)
            }
            None => request.shard_iterator_type(shard.start.clone()),
        };
        let out = request.send().await.map_err(|err| format!("GetShardIterator: {}", sdk_message(&err)))?;
        out.shard_iterator().map(str::to_owned).ok_or_else(|| format!("no iterator for shard {}", shard.id))
    }

    async fn apply(&self, record: &Record) -> Result<Outcome, String> {
        let kind = match record.event_name() {
            Some(OperationType::Modify) if self.skip_modify => return Ok(Outcome::Ignored),
            Some(OperationType::Insert | OperationType::Modify) => ChangeKind::Put,
            Some(OperationType::Remove) => ChangeKind::Delete,
            _ => return Ok(Outcome::Ignored),
        };
        let Some(data) = record.dynamodb() else { return Ok(Outcome::Ignored) };
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
            if let Some(AttributeValue::S(origin)) = image.get(ORIGIN_ATTRIBUTE) {
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

fn non_empty<K, V>(map: std::collections::HashMap<K, V>) -> Option<std::collections::HashMap<K, V>> {
    (!map.is_empty()).then_some(map)
}

/// A stream record's item in DynamoDB's own attribute types.
fn convert_item(
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
