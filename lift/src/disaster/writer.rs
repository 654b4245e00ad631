//! Writes through a replicated table, of every kind: puts, updates, deletes and
//! transactions, each stamped with a new version and the writing region.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::conflict::{WriteCondition, ORIGIN_ATTRIBUTE, VERSION_ATTRIBUTE};
use super::error::{sdk_message, RegionFailure};
use super::table::{Item, ReplicatedTable};
use super::{ConfigError, Region, RegionSet};

/// The placeholders the writer adds to every expression; a caller's must not use them.
const V_NAME: &str = "#lift_v";
const O_NAME: &str = "#lift_o";
const V_VALUE: &str = ":lift_v";
const O_VALUE: &str = ":lift_o";

/// One write through a [`ReplicatedWriter`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Creates or replaces an item (`PutItem`), if the condition holds.
    Put {
        /// The whole item, key included.
        item: Item,
        /// A condition on the stored item.
        condition: Option<WriteCondition>,
    },
    /// Changes an item (`UpdateItem`): the writer adds `SET <version> = :new, <origin> = :region`.
    Update {
        /// The item key.
        key: Item,
        /// The update expression (`SET a = a + :x REMOVE b`).
        expression: String,
        /// Its names and values, and the condition (its `expression` may be empty when the
        /// update has no condition; names and values are shared by both).
        condition: WriteCondition,
    },
    /// Deletes an item (`DeleteItem`), if the condition holds.
    Delete {
        /// The item key.
        key: Item,
        /// A condition on the stored item.
        condition: Option<WriteCondition>,
    },
}

impl Write {
    /// A put of `item`.
    pub fn put(item: Item) -> Self {
        Write::Put { item, condition: None }
    }

    /// An update of the item with `key` by `expression`.
    pub fn update(key: Item, expression: impl Into<String>) -> Self {
        Write::Update { key, expression: expression.into(), condition: WriteCondition::default() }
    }

    /// A delete of the item with `key`.
    pub fn delete(key: Item) -> Self {
        Write::Delete { key, condition: None }
    }

    /// Applies only if `expression` holds on the stored item.
    pub fn when(mut self, expression: impl Into<String>) -> Self {
        self.condition_mut().expression = expression.into();
        self
    }

    /// Names `#placeholder` as `attribute` in the expressions.
    pub fn name(mut self, placeholder: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.condition_mut().names.insert(placeholder.into(), attribute.into());
        self
    }

    /// Binds `:placeholder` to `value` in the expressions.
    pub fn value(mut self, placeholder: impl Into<String>, value: AttributeValue) -> Self {
        self.condition_mut().values.insert(placeholder.into(), value);
        self
    }

    /// The kind, for reports: `put`, `update` or `delete`.
    pub fn kind(&self) -> &'static str {
        match self {
            Write::Put { .. } => "put",
            Write::Update { .. } => "update",
            Write::Delete { .. } => "delete",
        }
    }

    fn condition_mut(&mut self) -> &mut WriteCondition {
        match self {
            Write::Update { condition, .. } => condition,
            Write::Put { condition, .. } | Write::Delete { condition, .. } => {
                condition.get_or_insert_with(WriteCondition::default)
            }
        }
    }
}

/// What a write through a [`ReplicatedWriter`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteAck {
    /// The regions that hold the write, in target order.
    pub acknowledged: Vec<String>,
    /// The keys written, in the order of the writes.
    pub keys: Vec<Item>,
    /// The version stamped on every put and update (deletes leave none).
    pub version: AttributeValue,
}

/// A write that not every target region acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} acknowledged by {} of {} regions", acknowledged.len(), acknowledged.len() + failures.len())]
pub struct WriteError {
    /// The write kind (`put`, `update`, `delete`, `transaction`).
    pub kind: &'static str,
    /// The regions that hold the write.
    pub acknowledged: Vec<String>,
    /// The regions that do not, and why.
    pub failures: Vec<RegionFailure>,
    /// The regions whose copy refused the write on a condition (the caller's, or a newer
    /// version stored there).
    pub condition_failed: Vec<String>,
    /// Of those, the regions that held a version at least as new as this write's: it lost
    /// a race with another write of the same item there (or met a version a clock ahead of
    /// ours stamped). DynamoDB hands the stored item back with the refusal
    /// (`ReturnValuesOnConditionCheckFailure`), and its version says so.
    pub superseded: Vec<String>,
}

impl WriteError {
    /// Whether every target refused the write on a condition: nothing was written, and
    /// the caller's condition (or a newer version) is why. A write whose answer was lost
    /// after it was applied, sent again by the SDK and refused on the version its earlier
    /// attempt stored, does not count as refused there: the writer recognises the write in
    /// the stored item handed back and goes on as if the answer had come (see
    /// [`ReplicatedWriter`]).
    pub fn is_rejected(&self) -> bool {
        self.acknowledged.is_empty() && self.condition_failed.len() == self.failures.len()
    }

    /// Whether nothing was written and a newer version stored in a region is a reason: the
    /// write lost a race with another write of the same item (or met a clock ahead of
    /// ours). The caller's condition may have held there or not: trying again, with a new
    /// version, may succeed, or fail on that condition. A rejection that is not superseded
    /// is the caller's condition alone.
    pub fn is_superseded(&self) -> bool {
        self.is_rejected() && !self.superseded.is_empty()
    }
}

/// How a [`ReplicatedWriter`] replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every target region at once; acknowledged only when all of them hold the write
    /// (RPO 0 for acknowledged writes).
    Sync,
    /// The first target only; the [`Replicator`](super::Replicator) carries the write to
    /// the others from its stream.
    Async,
}

/// Writes a replicated table, every kind of write, so that replication can order them.
///
/// Every put and update gets a new [`VERSION_ATTRIBUTE`] (epoch microseconds, and never
/// below the stored one: the write is conditional on the stored version being older) and
/// the writing region (the first target) as [`ORIGIN_ATTRIBUTE`]. A service writing
/// through this type cannot forget either, and so cannot write a change that stream
/// replication would take for an old or already replicated one.
///
/// - [`WriteMode::Sync`]: every write goes to every target and is acknowledged only when
///   all of them hold it; a partial write reports which regions hold it. Puts and deletes
///   go to every target at once. A write with updates is applied by the first target (its
///   conditions judged there), and the others receive the items it left, each applied
///   only over an older version: an update computed again in a region that missed earlier
///   writes would leave another item under the same version, which no replication repairs.
///   A region that refuses an image because a racing write's image got there first, or
///   whose transaction a racing one cancelled, is compared item by item with the first
///   target: holding what the first target holds now, it holds this write; behind it, it
///   is sent the first target's item as it is now; holding a version the first target
///   does not, the write is not acknowledged there.
/// - [`WriteMode::Async`]: every write goes to the first target; stream replication
///   carries puts, updates (as the new image) and deletes (the `REMOVE` record) on.
///
/// A write whose answer was lost after DynamoDB applied it (a 5xx or a reset connection)
/// is sent again by the SDK, and its version condition then fails on the version the first
/// attempt stored. Such a refusal is taken as the write applied when the request was sent
/// more than once and the stored item handed back is the write itself: a put's exact item,
/// an update's version and origin (versions never repeat within a process), a transaction
/// with an item holding its write and none holding what it could not have left. A
/// transaction also carries a `ClientRequestToken` derived from its content, so DynamoDB
/// answers its repetition as the first one. A delete leaves nothing to recognise: a delete
/// with a condition on the item's existence, whose answer is lost, is refused when sent
/// again.
///
/// Deletes leave no tombstone: a delete removes the item if it is not newer than the
/// writer's clock, and a replicated delete removes it if the target holds the deleted
/// version or an older one. A put older than the delete that reaches a region after it
/// (async mode, a region that was cut off, or in sync mode an update's image racing a
/// delete of the same item) can bring the item back; services that must
/// never see that erase attributes with an update instead (as payments' erasure does),
/// which replicates by version like any update.
///
/// # Examples
///
/// ```no_run
/// # async fn run(regions: lift::disaster::RegionSet, table: lift::disaster::ReplicatedTable)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use aws_sdk_dynamodb::types::AttributeValue;
/// use lift::disaster::{ReplicatedWriter, Write};
///
/// let writer = ReplicatedWriter::sync(regions, table).build()?;
/// let key = [("pk".to_owned(), AttributeValue::S("order#1".into()))].into();
/// let refund = Write::update(key, "SET refunded = refunded + :a")
///     .when("refundable >= :a")
///     .value(":a", AttributeValue::N("5".into()));
/// match writer.write(refund).await {
///     Ok(ack) => println!("durable in {:?} at {:?}", ack.acknowledged, ack.version),
///     Err(err) => println!("only in {:?}: {err}", err.acknowledged),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReplicatedWriter {
    targets: Vec<Region>,
    table: ReplicatedTable,
    timeout: Duration,
    version_attribute: String,
    mode: WriteMode,
    skip_updates: bool,
    acks: Option<Arc<Mutex<Vec<WriteAck>>>>,
}

impl ReplicatedWriter {
    /// A synchronous writer to the primary and first secondary of `regions` (see
    /// [`ReplicatedWriterBuilder::targets`]).
    pub fn sync(regions: RegionSet, table: ReplicatedTable) -> ReplicatedWriterBuilder {
        ReplicatedWriterBuilder::new(regions, table, WriteMode::Sync)
    }

    /// An asynchronous writer to the primary of `regions` (or the first of
    /// [`ReplicatedWriterBuilder::targets`]).
    pub fn async_(regions: RegionSet, table: ReplicatedTable) -> ReplicatedWriterBuilder {
        ReplicatedWriterBuilder::new(regions, table, WriteMode::Async)
    }

    /// The regions every write goes to (one in async mode).
    pub fn targets(&self) -> Vec<&str> {
        self.targets.iter().map(Region::name).collect()
    }

    /// How the writer replicates.
    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    /// The table.
    pub fn table(&self) -> &ReplicatedTable {
        &self.table
    }

    /// The acknowledgements of this writer and its clones, oldest first, when built with
    /// [`ReplicatedWriterBuilder::record_acks`] (empty otherwise): what a caller that
    /// writes through another API (a store) must account for, versions included.
    pub fn acks(&self) -> Vec<WriteAck> {
        self.acks.as_ref().map(|a| a.lock().unwrap_or_else(|p| p.into_inner()).clone()).unwrap_or_default()
    }

    /// One write.
    pub async fn write(&self, write: Write) -> Result<WriteAck, WriteError> {
        let kind = write.kind();
        self.run(kind, vec![write]).await
    }

    /// A put of `item`.
    pub async fn put(&self, item: Item) -> Result<WriteAck, WriteError> {
        self.write(Write::put(item)).await
    }

    /// A delete of the item with `key`.
    pub async fn delete(&self, key: Item) -> Result<WriteAck, WriteError> {
        self.write(Write::delete(key)).await
    }

    /// Several writes in one transaction per region (`TransactWriteItems`): in each region
    /// all of them apply or none. Across regions it is as atomic as a single write: in sync
    /// mode each region's transaction is acknowledged or reported on its own.
    pub async fn transact(&self, writes: Vec<Write>) -> Result<WriteAck, WriteError> {
        self.run("transaction", writes).await
    }

    /// Makes every target hold what the first target holds under `keys`, and acknowledges
    /// only then: for a caller that finds its write in the first target already (an
    /// earlier attempt's, whose answer it never got, or that another region refused or
    /// missed), which is no evidence that the other targets hold it too.
    ///
    /// The items are read in the first target (consistently) and sent to the others as a
    /// synchronous write's images are: each applied only over an older version, and a
    /// region that refuses one is compared with the first target (see
    /// [`WriteMode::Sync`]). In async mode the first target is the only target. A key the
    /// first target does not hold, or holds without a version, is a failure: there is
    /// nothing to replicate by. The acknowledgement's version is the lowest of the items'
    /// versions: every key holds at least it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(writer: lift::disaster::ReplicatedWriter, key: lift::disaster::Item)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// // The refund is in the region called; acknowledge it once every region holds it.
    /// let ack = writer.replicate(vec![key]).await?;
    /// println!("held by {:?}", ack.acknowledged);
    /// # Ok(()) }
    /// ```
    pub async fn replicate(&self, keys: Vec<Item>) -> Result<WriteAck, WriteError> {
        const KIND: &str = "replicate";
        let first = &self.targets[0];
        let failed = |reason: String| WriteError {
            kind: KIND,
            acknowledged: Vec::new(),
            failures: vec![RegionFailure { region: first.name().to_owned(), reason }],
            condition_failed: Vec::new(),
            superseded: Vec::new(),
        };
        let mut images = Vec::with_capacity(keys.len());
        let mut lowest: Option<AttributeValue> = None;
        let mut checked = Vec::with_capacity(keys.len());
        for key in &keys {
            let key =
                self.table.key_of(key).ok_or_else(|| failed("the item lacks a key attribute".into()))?;
            let item = self
                .read(first, &key)
                .await
                .map_err(|reason| failed(format!("the item could not be read: {reason}")))?
                .ok_or_else(|| failed("the item is not there".into()))?;
            let version = item
                .get(&self.version_attribute)
                .cloned()
                .ok_or_else(|| failed("the item has no version to replicate by".into()))?;
            let lower = lowest.as_ref().is_none_or(|l| {
                super::conflict::compare_versions(&version, l) == Some(std::cmp::Ordering::Less)
            });
            if lower {
                lowest = Some(version);
            }
            images.push(Image::Put(item));
            checked.push(key);
        }
        let version = lowest.unwrap_or_else(|| AttributeValue::N("0".into()));
        let sends =
            self.targets[1..].iter().map(|region| self.send_images(first, region, images.clone(), &version));
        let outcomes = futures_util::future::join_all(sends).await;
        let mut acknowledged = vec![first.name().to_owned()];
        let mut failures = Vec::new();
        let mut condition_failed = Vec::new();
        let mut superseded = Vec::new();
        for (region, outcome) in self.targets[1..].iter().zip(outcomes) {
            match outcome {
                Ok(()) => acknowledged.push(region.name().to_owned()),
                Err(refusal) => {
                    if refusal.condition {
                        condition_failed.push(region.name().to_owned());
                    }
                    if refusal.superseded {
                        superseded.push(region.name().to_owned());
                    }
                    failures.push(RegionFailure { region: region.name().to_owned(), reason: refusal.reason });
                }
            }
        }
        if !failures.is_empty() {
            tracing::warn!(?acknowledged, ?failures, "items not held by every region");
            return Err(WriteError { kind: KIND, acknowledged, failures, condition_failed, superseded });
        }
        let ack = WriteAck { acknowledged, keys: checked, version };
        if let Some(acks) = &self.acks {
            acks.lock().unwrap_or_else(|p| p.into_inner()).push(ack.clone());
        }
        Ok(ack)
    }

    async fn run(&self, kind: &'static str, writes: Vec<Write>) -> Result<WriteAck, WriteError> {
        let origin = self.targets[0].name().to_owned();
        let mut keys = Vec::with_capacity(writes.len());
        for write in &writes {
            let key = match write {
                Write::Put { item, .. } => self.table.key_of(item),
                Write::Update { key, .. } | Write::Delete { key, .. } => self.table.key_of(key),
            };
            match key {
                Some(key) => keys.push(key),
                None => {
                    return Err(WriteError {
                        kind,
                        acknowledged: Vec::new(),
                        failures: vec![RegionFailure {
                            region: origin,
                            reason: "the item lacks a key attribute".into(),
                        }],
                        condition_failed: Vec::new(),
                        superseded: Vec::new(),
                    })
                }
            }
        }
        let version = AttributeValue::N(next_version().to_string());
        let updates = writes.iter().any(|w| matches!(w, Write::Update { .. }));
        let targets: Vec<&Region> = if self.skip_updates && updates {
            // The drill's broken-replication switch: the update stays in the first region.
            self.targets.iter().take(1).collect()
        } else {
            self.targets.iter().collect()
        };
        let outcomes = if self.mode == WriteMode::Sync && updates && targets.len() > 1 {
            self.by_image(&targets, &writes, &keys, &version, &origin).await
        } else {
            let sends = targets.iter().map(|region| {
                let stamped: Vec<Stamped> =
                    writes.iter().map(|w| self.stamp(w, &version, &origin, region)).collect();
                async move { self.send(region, stamped, 0).await.map(|_| ()) }
            });
            futures_util::future::join_all(sends).await
        };
        let mut acknowledged = Vec::new();
        let mut failures = Vec::new();
        let mut condition_failed = Vec::new();
        let mut superseded = Vec::new();
        for (region, outcome) in targets.iter().zip(outcomes) {
            match outcome {
                Ok(()) => acknowledged.push(region.name().to_owned()),
                Err(refusal) => {
                    if refusal.condition {
                        condition_failed.push(region.name().to_owned());
                    }
                    if refusal.superseded {
                        superseded.push(region.name().to_owned());
                    }
                    failures.push(RegionFailure { region: region.name().to_owned(), reason: refusal.reason });
                }
            }
        }
        if failures.is_empty() {
            let ack = WriteAck { acknowledged, keys, version };
            if let Some(acks) = &self.acks {
                acks.lock().unwrap_or_else(|p| p.into_inner()).push(ack.clone());
            }
            Ok(ack)
        } else {
            if !acknowledged.is_empty() {
                tracing::warn!(
                    kind,
                    ?acknowledged,
                    ?failures,
                    "replicated write not acknowledged by every region"
                );
            }
            Err(WriteError { kind, acknowledged, failures, condition_failed, superseded })
        }
    }

    /// A synchronous write with updates: an update's effect depends on the item it finds,
    /// and a region that missed earlier writes (it was cut off, and replication has not
    /// caught up) would compute another item under the same version, a divergence stream
    /// replication never repairs (it does not resend a version a region holds). So the
    /// first target applies the writes (the caller's conditions are judged there only),
    /// and the others receive the resulting items: puts of the new images and the deletes,
    /// each applied only over an older version. One outcome per target, in order.
    async fn by_image(
        &self,
        targets: &[&Region],
        writes: &[Write],
        keys: &[Item],
        version: &AttributeValue,
        origin: &str,
    ) -> Vec<Result<(), Refusal>> {
        let first = targets[0];
        let stamped: Vec<Stamped> = writes.iter().map(|w| self.stamp(w, version, origin, first)).collect();
        let mut outcomes = Vec::with_capacity(targets.len());
        let image = match self.send(first, stamped, 0).await {
            Ok(image) => image,
            Err(failure) => {
                // Nothing was written: the others are not asked.
                outcomes.push(Err(failure));
                return outcomes;
            }
        };
        let mut images: Vec<Option<Image>> = Vec::with_capacity(writes.len());
        for (write, key) in writes.iter().zip(keys) {
            images.push(match write {
                Write::Put { item, .. } => {
                    let mut item = item.clone();
                    item.insert(self.version_attribute.clone(), version.clone());
                    item.insert(ORIGIN_ATTRIBUTE.to_owned(), AttributeValue::S(origin.to_owned()));
                    Some(Image::Put(item))
                }
                Write::Update { .. } => match (&image, writes.len()) {
                    (Some(item), 1) => Some(Image::Put(item.clone())),
                    _ => match self.read(first, key).await {
                        Ok(found) => found.map(Image::Put),
                        Err(reason) => {
                            outcomes.push(Ok(()));
                            for _ in 1..targets.len() {
                                outcomes.push(Err(Refusal::failed(format!(
                                    "not sent: the item could not be read back from {}: {reason}",
                                    first.name()
                                ))));
                            }
                            return outcomes;
                        }
                    },
                },
                Write::Delete { .. } => Some(Image::Delete(key.clone())),
            });
        }
        outcomes.push(Ok(()));
        let images: Vec<Image> = images.into_iter().flatten().collect();
        let sends =
            targets[1..].iter().map(|region| self.send_images(first, region, images.clone(), version));
        outcomes.extend(futures_util::future::join_all(sends).await);
        outcomes
    }

    /// Sends the first target's images to `region`, each applied only over an older
    /// version.
    ///
    /// A write racing this one on the same item can get there first: its image may be
    /// newer than ours (the first target applied it after ours), or the very same item
    /// (both read back the first target's item after both writes). The region then refuses
    /// ours, though nothing is missing. So after a refusal each image's item is read in
    /// both regions ([`catch_up`]): a region that holds exactly what the first target holds
    /// now holds this write, since the first target's item only moves forward from it; a
    /// region behind the first target is sent its item as it is now. A region holding a
    /// version the first target does not (a clock ahead of ours stamped it there) stays a
    /// failure: a newer version in a region is no evidence by itself. A transaction
    /// cancelled by one image wrote none of them, so the others are sent again too.
    async fn send_images(
        &self,
        first: &Region,
        region: &Region,
        images: Vec<Image>,
        version: &AttributeValue,
    ) -> Result<(), Refusal> {
        let mut pending: Vec<(Image, AttributeValue)> =
            images.into_iter().map(|image| (image, version.clone())).collect();
        let mut waiting = Vec::new();
        for round in 1..=CATCH_UP_ROUNDS {
            if pending.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            if round > 1 {
                // Racing writers send the same items: back off, jittered, so that one of
                // them lands and the others find it there.
                let jitter = (now_micros() % 10) as u64;
                tokio::time::sleep(Duration::from_millis(5 * u64::from(round - 1) + jitter)).await;
            }
            let refusal = if pending.is_empty() {
                // Only items the first target deleted after this write, while the region
                // holds them still: a racing delete on its way there.
                "waiting for a racing delete".to_owned()
            } else {
                let replicas: Vec<Stamped> =
                    pending.iter().map(|(image, v)| self.replica(image, v, region)).collect();
                match self.send(region, replicas, round).await {
                    Ok(_) if waiting.is_empty() => return Ok(()),
                    Ok(_) => {
                        pending.clear();
                        continue;
                    }
                    // Refused on a version condition, or cancelled by a transaction racing
                    // on one of the items (the images are conditional: sending them again
                    // is safe): compare. Anything else is the region's failure.
                    Err(refusal) if refusal.condition || refusal.conflict => refusal.reason,
                    Err(failure) => return Err(failure),
                }
            };
            let checks = pending.drain(..).chain(waiting.drain(..)).map(|(image, v)| async move {
                let key = match &image {
                    Image::Put(item) => self.table.key_of(item).unwrap_or_default(),
                    Image::Delete(key) => key.clone(),
                };
                // The region first, then the first target: an item the region got from the
                // first target is then never newer than the one read there, whatever
                // racing writes land between the reads.
                let not_checked = |reason: String| {
                    Refusal::failed(format!("refused, and the items could not be compared: {reason}"))
                };
                let held = self.read(region, &key).await.map_err(not_checked)?;
                let now = self.read(first, &key).await.map_err(not_checked)?;
                Ok::<_, Refusal>(catch_up(image, v, now, held, &self.version_attribute))
            });
            for verdict in futures_util::future::join_all(checks).await {
                match verdict? {
                    CatchUp::Held => {}
                    CatchUp::Send(image, v) => pending.push((image, v)),
                    CatchUp::Wait(image, v) => waiting.push((image, v)),
                    CatchUp::Diverged => {
                        return Err(Refusal::superseded(format!(
                            "{} holds a version that {} does not: {}",
                            region.name(),
                            first.name(),
                            refusal
                        )))
                    }
                }
            }
        }
        if pending.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        Err(Refusal::superseded(format!(
            "{} still behind {} after {CATCH_UP_ROUNDS} rounds of racing writes",
            region.name(),
            first.name()
        )))
    }

    /// An item as the first target holds it now (consistent read).
    async fn read(&self, region: &Region, key: &Item) -> Result<Option<Item>, String> {
        let read = region
            .dynamodb()
            .get_item()
            .table_name(self.table.name_in(region.name()))
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send();
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(out)) => Ok(out.item().cloned()),
            Ok(Err(e)) => Err(sdk_message(&e)),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// An image for another target: applied only over an older version.
    fn replica(&self, image: &Image, version: &AttributeValue, region: &Region) -> Stamped {
        let table = self.table.name_in(region.name()).to_owned();
        let condition = format!("(attribute_not_exists({V_NAME}) OR {V_NAME} < {V_VALUE})");
        let names = HashMap::from([(V_NAME.to_owned(), self.version_attribute.clone())]);
        match image {
            Image::Put(item) => {
                // The image's own version: the item read back may be newer than our write.
                let v = item.get(&self.version_attribute).cloned().unwrap_or_else(|| version.clone());
                let values = HashMap::from([(V_VALUE.to_owned(), v)]);
                Stamped::Put { table, item: item.clone(), condition, names, values }
            }
            Image::Delete(key) => {
                let values = HashMap::from([(V_VALUE.to_owned(), version.clone())]);
                Stamped::Delete { table, key: key.clone(), condition, names, values }
            }
        }
    }

    /// The write with the version and origin added to its item or expression and its
    /// condition extended so that it never replaces a newer stored version.
    fn stamp(&self, write: &Write, version: &AttributeValue, origin: &str, region: &Region) -> Stamped {
        let table = self.table.name_in(region.name()).to_owned();
        let newer = format!("(attribute_not_exists({V_NAME}) OR {V_NAME} < {V_VALUE})");
        let mut names = HashMap::from([(V_NAME.to_owned(), self.version_attribute.clone())]);
        let mut values = HashMap::from([(V_VALUE.to_owned(), version.clone())]);
        let mut merge = |condition: Option<&WriteCondition>| -> String {
            match condition {
                Some(c) => {
                    names.extend(c.names.clone());
                    values.extend(c.values.clone());
                    if c.expression.trim().is_empty() {
                        newer.clone()
                    } else {
                        format!("({}) AND {newer}", c.expression)
                    }
                }
                None => newer.clone(),
            }
        };
        match write {
            Write::Put { item, condition } => {
                let condition = merge(condition.as_ref());
                let mut item = item.clone();
                item.insert(self.version_attribute.clone(), version.clone());
                item.insert(ORIGIN_ATTRIBUTE.to_owned(), AttributeValue::S(origin.to_owned()));
                Stamped::Put { table, item, condition, names, values }
            }
            Write::Update { key, expression, condition } => {
                let condition = merge(Some(condition));
                names.insert(O_NAME.to_owned(), ORIGIN_ATTRIBUTE.to_owned());
                values.insert(O_VALUE.to_owned(), AttributeValue::S(origin.to_owned()));
                let expression = add_set(expression, &format!("{V_NAME} = {V_VALUE}, {O_NAME} = {O_VALUE}"));
                Stamped::Update { table, key: key.clone(), expression, condition, names, values }
            }
            Write::Delete { key, condition } => {
                let condition = merge(condition.as_ref());
                Stamped::Delete { table, key: key.clone(), condition, names, values }
            }
        }
    }

    /// Sends the writes to one region (a transaction when there are several); a single
    /// update returns the item it left. `round` is the catch-up round of an image sent
    /// again (0 for a first sending); it keeps that sending's request token its own.
    ///
    /// A request the SDK sent more than once (a 5xx or a reset connection after the first
    /// attempt) can be refused because an earlier attempt applied it: the version
    /// condition meets the version that attempt stored. A single write whose refusal hands
    /// back exactly its own write ([`Proof`]) is taken as applied; so is a transaction
    /// cancelled on conditions whose items hold its write ([`transaction_applied`]), which
    /// its request token (the same for every attempt) normally spares: DynamoDB answers
    /// the repeated transaction as the first one.
    async fn send(&self, region: &Region, writes: Vec<Stamped>, round: u32) -> Result<Option<Item>, Refusal> {
        use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld;
        let client = region.dynamodb();
        let attribute = self.version_attribute.as_str();
        let attempts = Attempts::default();
        let applied = |what: &str| {
            tracing::info!(
                region = region.name(),
                table = self.table.name_in(region.name()),
                "a {what} sent again by the SDK was refused on the version an earlier attempt of it stored: applied"
            );
        };
        let attempt = async {
            if writes.len() != 1 {
                // Each item's version, to judge the stored item handed back with a refusal.
                let versions: Vec<Option<AttributeValue>> = writes.iter().map(Stamped::version).collect();
                let proofs: Vec<Proof> = writes.iter().map(Stamped::proof).collect();
                let token = request_token(&writes, round);
                let mut items = Vec::with_capacity(writes.len());
                for write in writes {
                    items.push(transact_item(write).map_err(Refusal::failed)?);
                }
                let result = client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .client_request_token(token)
                    .customize()
                    .interceptor(attempts.clone())
                    .send()
                    .await;
                let Err(e) = result else { return Ok(None) };
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as T;
                let reasons = match e.as_service_error() {
                    Some(T::TransactionCanceledException(c)) => c.cancellation_reasons(),
                    _ => &[],
                };
                let any = |code: &str| reasons.iter().any(|r| r.code() == Some(code));
                let judged: Vec<(Option<&str>, Option<&Item>)> =
                    reasons.iter().map(|r| (r.code(), r.item())).collect();
                if any("ConditionalCheckFailed")
                    && attempts.retried()
                    && transaction_applied(&judged, &proofs, attribute)
                {
                    applied("transaction");
                    return Ok(None);
                }
                // Reasons come in the order of the items, one each.
                let superseded = reasons.iter().zip(&versions).any(|(r, v)| {
                    r.code() == Some("ConditionalCheckFailed") && holds_newer(r.item(), attribute, v.as_ref())
                });
                return Err(Refusal {
                    condition: any("ConditionalCheckFailed"),
                    superseded,
                    conflict: any("TransactionConflict"),
                    reason: sdk_message(&e),
                });
            }
            let write = writes.into_iter().next().expect("one write");
            let version = write.version();
            let proof = write.proof();
            let (result, stored) = match write {
                Stamped::Put { table, item, condition, names, values } => {
                    match client
                        .put_item()
                        .table_name(table)
                        .set_item(Some(item))
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(Some(values))
                        .return_values_on_condition_check_failure(AllOld)
                        .customize()
                        .interceptor(attempts.clone())
                        .send()
                        .await
                    {
                        Ok(_) => return Ok(None),
                        Err(e) => single_failure(e, attribute, version.as_ref()),
                    }
                }
                Stamped::Update { table, key, expression, condition, names, values } => {
                    match client
                        .update_item()
                        .table_name(table)
                        .set_key(Some(key))
                        .update_expression(expression)
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(Some(values))
                        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                        .return_values_on_condition_check_failure(AllOld)
                        .customize()
                        .interceptor(attempts.clone())
                        .send()
                        .await
                    {
                        Ok(out) => return Ok(out.attributes),
                        Err(e) => single_failure(e, attribute, version.as_ref()),
                    }
                }
                Stamped::Delete { table, key, condition, names, values } => {
                    match client
                        .delete_item()
                        .table_name(table)
                        .set_key(Some(key))
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(Some(values))
                        .return_values_on_condition_check_failure(AllOld)
                        .customize()
                        .interceptor(attempts.clone())
                        .send()
                        .await
                    {
                        Ok(_) => return Ok(None),
                        Err(e) => single_failure(e, attribute, version.as_ref()),
                    }
                }
            };
            if result.condition
                && attempts.retried()
                && proof.judge(stored.as_ref(), attribute) == Stored::Ours
            {
                // The item as the earlier attempt left it: an update's image for the others.
                applied("write");
                return Ok(stored);
            }
            Err(result)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Refusal::failed(format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// Why a region did not take a write.
#[derive(Debug)]
struct Refusal {
    /// A condition failed: the caller's, or the version condition.
    condition: bool,
    /// The region held a version at least as new as the write's (so the version condition
    /// failed, whatever the caller's did).
    superseded: bool,
    /// A transaction racing on one of the items cancelled it (`TransactionConflict`).
    conflict: bool,
    reason: String,
}

impl Refusal {
    fn failed(reason: String) -> Self {
        Self { condition: false, superseded: false, conflict: false, reason }
    }

    fn superseded(reason: String) -> Self {
        Self { condition: true, superseded: true, conflict: false, reason }
    }
}

/// Whether `stored` (the item DynamoDB handed back with a failed condition) holds a
/// version at least as new as `version`.
fn holds_newer(stored: Option<&Item>, version_attribute: &str, version: Option<&AttributeValue>) -> bool {
    let stored = stored.and_then(|item| item.get(version_attribute));
    match (stored, version) {
        (Some(stored), Some(version)) => {
            super::conflict::compare_versions(stored, version).is_some_and(|o| o != std::cmp::Ordering::Less)
        }
        _ => false,
    }
}

/// How many times a region that refused an image is compared with the first target and
/// sent what it lacks before the write is reported as not held there (waiting 5 ms more
/// each round, 0–9 ms of jitter added: about 140–210 ms in all).
const CATCH_UP_ROUNDS: u32 = 8;

/// What a region that refused an image (or was cancelled with it in one transaction) still
/// needs, judged from the item the first target holds now (`now`) and the one the region
/// holds (`held`), both read after the refusal.
#[derive(Debug, PartialEq)]
enum CatchUp {
    /// The region holds what the first target holds: this write, or a later one of the
    /// first target's that includes it.
    Held,
    /// The region is behind: send this image, applied over a version older than this one.
    Send(Image, AttributeValue),
    /// The first target deleted the item after this write and the region still holds an
    /// item at least as new as this image: a racing delete is on its way. Look again.
    Wait(Image, AttributeValue),
    /// The region holds a version of the item the first target does not: not this write.
    Diverged,
}

/// See [`CatchUp`]. `image` is what was sent, at `version` (a put image's own version
/// when it has one).
fn catch_up(
    image: Image,
    version: AttributeValue,
    now: Option<Item>,
    held: Option<Item>,
    version_attribute: &str,
) -> CatchUp {
    use std::cmp::Ordering;
    let version_of = |item: &Item| item.get(version_attribute).cloned();
    match (now, held) {
        (None, None) => CatchUp::Held,
        (Some(now), Some(held)) if same_item(&now, &held) => CatchUp::Held,
        (Some(now), held) => {
            let Some(now_version) = version_of(&now) else {
                // The first target's item was written around the writer: no version to
                // replicate by.
                return CatchUp::Diverged;
            };
            let behind = match held.as_ref().and_then(version_of) {
                None => true,
                Some(held_version) => {
                    super::conflict::compare_versions(&held_version, &now_version) == Some(Ordering::Less)
                }
            };
            if behind {
                CatchUp::Send(Image::Put(now), now_version)
            } else {
                CatchUp::Diverged
            }
        }
        (None, Some(held)) => {
            let held_version = version_of(&held);
            let older = held_version
                .as_ref()
                .is_none_or(|h| super::conflict::compare_versions(h, &version) == Some(Ordering::Less));
            match image {
                // Our delete, cancelled with another image: still ours to apply.
                Image::Delete(key) if older => CatchUp::Send(Image::Delete(key), version),
                image => CatchUp::Wait(image, version),
            }
        }
    }
}

/// Whether two items are the same, sets compared as sets (their order on the wire is not
/// theirs).
pub(super) fn same_item(a: &Item, b: &Item) -> bool {
    a.len() == b.len()
        && a.iter().all(|(name, value)| b.get(name).is_some_and(|other| same_value(value, other)))
}

fn same_value(a: &AttributeValue, b: &AttributeValue) -> bool {
    use AttributeValue as A;
    fn same_set<T: Ord + Clone>(a: &[T], b: &[T]) -> bool {
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        a.sort();
        b.sort();
        a == b
    }
    match (a, b) {
        (A::Ss(a), A::Ss(b)) | (A::Ns(a), A::Ns(b)) => same_set(a, b),
        (A::Bs(a), A::Bs(b)) => same_set(
            &a.iter().map(|x| x.as_ref().to_vec()).collect::<Vec<_>>(),
            &b.iter().map(|x| x.as_ref().to_vec()).collect::<Vec<_>>(),
        ),
        (A::M(a), A::M(b)) => same_item(a, b),
        (A::L(a), A::L(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b)),
        _ => a == b,
    }
}

/// What another target must hold after a synchronous write with updates.
#[derive(Debug, Clone, PartialEq)]
enum Image {
    /// The item, as the first target left it.
    Put(Item),
    /// The key of a deleted item.
    Delete(Item),
}

/// A write with its version, origin and condition added, for one region's table.
enum Stamped {
    Put {
        table: String,
        item: Item,
        condition: String,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    },
    Update {
        table: String,
        key: Item,
        expression: String,
        condition: String,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    },
    Delete {
        table: String,
        key: Item,
        condition: String,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    },
}

impl Stamped {
    /// The version its condition compares the stored one with.
    fn version(&self) -> Option<AttributeValue> {
        match self {
            Self::Put { values, .. } | Self::Update { values, .. } | Self::Delete { values, .. } => {
                values.get(V_VALUE).cloned()
            }
        }
    }

    /// What the stored item holds once this write is applied, as far as it can be told.
    fn proof(&self) -> Proof {
        match self {
            Self::Put { item, .. } => Proof::Image(item.clone()),
            Self::Update { values, .. } => match (values.get(V_VALUE), values.get(O_VALUE)) {
                (Some(version), Some(origin)) => {
                    Proof::Stamp { version: version.clone(), origin: origin.clone() }
                }
                _ => Proof::Nothing,
            },
            Self::Delete { .. } => Proof::Nothing,
        }
    }

    /// Hashes what the write sends, maps in a fixed order.
    fn hash_content(&self, hasher: &mut impl Hasher) {
        let strings = |v: &String, mut h: &mut dyn Hasher| v.hash(&mut h);
        let (kind, table, item, expression, condition, names, values) = match self {
            Self::Put { table, item, condition, names, values } => {
                (0u8, table, item, "", condition, names, values)
            }
            Self::Update { table, key, expression, condition, names, values } => {
                (1, table, key, expression.as_str(), condition, names, values)
            }
            Self::Delete { table, key, condition, names, values } => {
                (2, table, key, "", condition, names, values)
            }
        };
        (kind, table, expression, condition).hash(hasher);
        hash_map(item, hasher, hash_value);
        hash_map(names, hasher, strings);
        hash_map(values, hasher, hash_value);
    }
}

fn transact_item(write: Stamped) -> Result<TransactWriteItem, String> {
    use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld;
    let item = match write {
        Stamped::Put { table, item, condition, names, values } => TransactWriteItem::builder().put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(AllOld)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        Stamped::Update { table, key, expression, condition, names, values } => TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(table)
                    .set_key(Some(key))
                    .update_expression(expression)
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .return_values_on_condition_check_failure(AllOld)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
        Stamped::Delete { table, key, condition, names, values } => TransactWriteItem::builder().delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(key))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(AllOld)
                .build()
                .map_err(|e| e.to_string())?,
        ),
    };
    Ok(item.build())
}

fn now_micros() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros()
}

/// A new version: the clock in epoch microseconds, and above every version this process
/// stamped before. Two writes of one process never share a version, and two transactions
/// never share a request token. The origin is a region, not a process: an update refused
/// with this exact version and origin is taken as this write's, which another process of the
/// same region writing the same item in the same microsecond would also match ([`Proof`];
/// a transaction is taken as applied only if none of its items contradicts it, which a
/// put of a new item does).
fn next_version() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(now_micros()).unwrap_or(u64::MAX - 1);
    // The closure always returns `Some`: `fetch_update` cannot fail.
    let last = LAST.fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |last| {
        Some(now.max(last.saturating_add(1)))
    });
    now.max(last.unwrap_or_else(|last| last).saturating_add(1))
}

/// Counts the attempts the SDK makes for one request, its retries included. A request
/// refused after more than one attempt may be refused because an earlier attempt wrote it
/// (committed, and its answer lost); after one attempt, it cannot.
#[derive(Debug, Clone, Default)]
struct Attempts(Arc<AtomicU32>);

impl Attempts {
    fn retried(&self) -> bool {
        self.0.load(AtomicOrdering::Relaxed) > 1
    }
}

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "LiftWriteAttempts"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, AtomicOrdering::Relaxed);
        Ok(())
    }
}

/// What the stored item handed back with a refusal must be for the refused request to be
/// one whose earlier attempt wrote it: the SDK sends a write again after a 5xx or a reset
/// connection that came after DynamoDB applied it, and the version condition then fails
/// on the version that attempt stored.
#[derive(Debug, Clone, PartialEq)]
enum Proof {
    /// A put: exactly its item (version and origin included).
    Image(Item),
    /// An update: its version and origin (what else it did cannot be told from the item).
    Stamp { version: AttributeValue, origin: AttributeValue },
    /// A delete leaves nothing to recognise.
    Nothing,
}

/// How the stored item handed back with a refusal relates to the refused write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// The write itself (its version, its origin, its item for a put).
    Ours,
    /// A newer version: a later write.
    Newer,
    /// Anything else: not the write.
    Other,
}

impl Proof {
    fn judge(&self, stored: Option<&Item>, version_attribute: &str) -> Stored {
        let Some(stored) = stored else { return Stored::Other };
        let (version, origin) = match self {
            Proof::Image(item) if same_item(item, stored) => return Stored::Ours,
            Proof::Image(item) => (item.get(version_attribute), item.get(ORIGIN_ATTRIBUTE)),
            Proof::Stamp { version, origin } => (Some(version), Some(origin)),
            Proof::Nothing => return Stored::Other,
        };
        let Some(version) = version else { return Stored::Other };
        match stored.get(version_attribute).and_then(|v| super::conflict::compare_versions(v, version)) {
            Some(std::cmp::Ordering::Greater) => Stored::Newer,
            Some(std::cmp::Ordering::Equal)
                if matches!(self, Proof::Stamp { .. }) && stored.get(ORIGIN_ATTRIBUTE) == origin =>
            {
                Stored::Ours
            }
            _ => Stored::Other,
        }
    }
}

/// Whether a transaction cancelled on conditions is one an earlier attempt of the same
/// request committed: an item holds exactly this transaction's write, and no item holds
/// what the transaction could not have left (an older version, another item under its
/// version, or a refusal for another reason). Items a later write changed since, and
/// deletes (nothing left to recognise), say nothing either way. `reasons` come in the
/// order of the writes, one each.
fn transaction_applied(
    reasons: &[(Option<&str>, Option<&Item>)],
    proofs: &[Proof],
    version_attribute: &str,
) -> bool {
    let mut ours = false;
    for ((code, stored), proof) in reasons.iter().zip(proofs) {
        match *code {
            // An item that passed its condition does not hold this write: the write's own
            // version condition refuses its second sending. Only an item whose write leaves
            // nothing to recognise says nothing either way. (An item deleted since passes
            // too: refusing then is the safe side.)
            None | Some("None") | Some("NONE") if *proof == Proof::Nothing => {}
            None | Some("None") | Some("NONE") => return false,
            Some("ConditionalCheckFailed") => match proof.judge(*stored, version_attribute) {
                Stored::Ours => ours = true,
                Stored::Newer => {}
                Stored::Other if *proof == Proof::Nothing => {}
                Stored::Other => return false,
            },
            Some(_) => return false,
        }
    }
    ours && reasons.len() == proofs.len()
}

/// The `ClientRequestToken` of a transaction: a hash of its content (versions included)
/// and of the catch-up round that sends it, so that the SDK's retries of one request are
/// one transaction to DynamoDB (for 10 minutes), while two requests never share a token
/// (an identical token with other content would be refused as an
/// `IdempotentParameterMismatch`; with the same content it would not be applied). Versions
/// are unique within the process ([`next_version`]), and the hash is keyed per process, so
/// two processes sending the same content in the same microsecond do not share one either.
fn request_token(writes: &[Stamped], round: u32) -> String {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let key = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    let half = |part: u8| {
        let mut hasher = key.build_hasher();
        (part, round).hash(&mut hasher);
        for write in writes {
            write.hash_content(&mut hasher);
        }
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(0), half(1))
}

/// Hashes a map in the order of its names (a `HashMap` iterates in no fixed order).
fn hash_map<V>(map: &HashMap<String, V>, hasher: &mut impl Hasher, value: impl Fn(&V, &mut dyn Hasher)) {
    let mut names: Vec<&String> = map.keys().collect();
    names.sort_unstable();
    names.len().hash(hasher);
    for name in names {
        name.hash(hasher);
        value(&map[name], hasher);
    }
}

fn hash_value(value: &AttributeValue, mut hasher: &mut dyn Hasher) {
    use AttributeValue as A;
    std::mem::discriminant(value).hash(&mut hasher);
    match value {
        A::S(s) | A::N(s) => s.hash(&mut hasher),
        A::B(b) => b.as_ref().hash(&mut hasher),
        A::Ss(v) | A::Ns(v) => v.hash(&mut hasher),
        A::Bs(v) => v.iter().for_each(|b| b.as_ref().hash(&mut hasher)),
        A::Bool(b) | A::Null(b) => b.hash(&mut hasher),
        A::L(list) => {
            list.len().hash(&mut hasher);
            for v in list {
                hash_value(v, &mut *hasher);
            }
        }
        A::M(map) => hash_map(map, &mut hasher, hash_value),
        other => format!("{other:?}").hash(&mut hasher),
    }
}

/// Adds `assignments` to the `SET` clause of `expression`, or a `SET` clause if it has none.
fn add_set(expression: &str, assignments: &str) -> String {
    let mut at = None;
    let bytes = expression.as_bytes();
    for (i, window) in bytes.windows(3).enumerate() {
        let boundary_before = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let boundary_after =
            bytes.get(i + 3).is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'#'));
        if window.eq_ignore_ascii_case(b"SET") && boundary_before && boundary_after {
            at = Some(i + 3);
            break;
        }
    }
    match at {
        Some(at) => format!("{} {assignments},{}", &expression[..at], &expression[at..]),
        None if expression.trim().is_empty() => format!("SET {assignments}"),
        None => format!("{expression} SET {assignments}"),
    }
}

/// Configures a [`ReplicatedWriter`].
#[derive(Debug, Clone)]
pub struct ReplicatedWriterBuilder {
    regions: RegionSet,
    table: ReplicatedTable,
    mode: WriteMode,
    targets: Option<Vec<String>>,
    timeout: Duration,
    version_attribute: String,
    skip_updates: bool,
    record_acks: bool,
}

impl ReplicatedWriterBuilder {
    fn new(regions: RegionSet, table: ReplicatedTable, mode: WriteMode) -> Self {
        Self {
            regions,
            table,
            mode,
            targets: None,
            timeout: Duration::from_secs(2),
            version_attribute: VERSION_ATTRIBUTE.to_owned(),
            skip_updates: false,
            record_acks: false,
        }
    }

    /// Keeps every acknowledgement, for [`ReplicatedWriter::acks`] (for short-lived
    /// writers: one request's, one drill operation's).
    pub fn record_acks(mut self) -> Self {
        self.record_acks = true;
        self
    }

    /// Writes to these regions, the writing region first (sync: at least two; async: the
    /// first is written, the rest are ignored).
    pub fn targets<I, S>(mut self, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.targets = Some(regions.into_iter().map(Into::into).collect());
        self
    }

    /// Sets how long each region may take to answer (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the version attribute (default [`VERSION_ATTRIBUTE`]).
    pub fn version_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.version_attribute = attribute.into();
        self
    }

    /// For drills that prove their check catches lost updates: updates go to the writing
    /// region only, even in sync mode. Never set it in a service.
    #[doc(hidden)]
    pub fn break_update_replication(mut self) -> Self {
        self.skip_updates = true;
        self
    }

    /// Validates the targets and builds the writer.
    pub fn build(self) -> Result<ReplicatedWriter, ConfigError> {
        let mut names = match self.targets {
            Some(names) => names,
            None => self.regions.iter().take(2).map(|r| r.name().to_owned()).collect(),
        };
        match self.mode {
            WriteMode::Sync if names.len() < 2 => return Err(ConfigError::TooFewRegions(names.len())),
            WriteMode::Async if names.is_empty() => return Err(ConfigError::NoRegions),
            WriteMode::Async => names.truncate(1),
            WriteMode::Sync => {}
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
        Ok(ReplicatedWriter {
            targets,
            table: self.table,
            timeout: self.timeout,
            version_attribute: self.version_attribute,
            mode: self.mode,
            skip_updates: self.skip_updates,
            acks: self.record_acks.then(Default::default),
        })
    }
}

/// How a single-item write failed: whether its condition did, on a version at least as new
/// as `version` (the stored item handed back with the refusal), or a conflict, and why;
/// with that stored item.
fn single_failure<E, R>(
    err: aws_sdk_dynamodb::error::SdkError<E, R>,
    version_attribute: &str,
    version: Option<&AttributeValue>,
) -> (Refusal, Option<Item>)
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + StoredOnRefusal + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let code = err.as_service_error().and_then(|e| e.code());
    let condition = code == Some("ConditionalCheckFailedException");
    let stored = err.as_service_error().and_then(StoredOnRefusal::stored);
    let refusal = Refusal {
        condition,
        superseded: condition && holds_newer(stored, version_attribute, version),
        conflict: code == Some("TransactionConflictException"),
        reason: sdk_message(&err),
    };
    (refusal, stored.cloned())
}

/// The stored item a single-item write's error hands back when its condition failed
/// (`ReturnValuesOnConditionCheckFailure`).
trait StoredOnRefusal {
    fn stored(&self) -> Option<&Item>;
}

macro_rules! stored_on_refusal {
    ($($error:ty),*) => {$(
        impl StoredOnRefusal for $error {
            fn stored(&self) -> Option<&Item> {
                match self {
                    Self::ConditionalCheckFailedException(c) => c.item(),
                    _ => None,
                }
            }
        }
    )*};
}

stored_on_refusal!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disaster::RegionConfig;
    use crate::store::{KeyAttribute, TableDef};

    fn regions() -> RegionSet {
        RegionSet::builder()
            .region(RegionConfig::new("us-east-1"))
            .region(RegionConfig::new("eu-west-1"))
            .build()
            .unwrap()
    }

    fn table() -> ReplicatedTable {
        ReplicatedTable::new(TableDef::new("t", KeyAttribute::string("pk")))
    }

    #[test]
    fn the_version_joins_the_set_clause() {
        let add = "#lift_v = :lift_v";
        assert_eq!(add_set("SET a = :a", add), "SET #lift_v = :lift_v, a = :a");
        assert_eq!(add_set("REMOVE a, b", add), "REMOVE a, b SET #lift_v = :lift_v");
        assert_eq!(add_set("", add), "SET #lift_v = :lift_v");
        // A name that contains the word is not the clause.
        assert_eq!(add_set("REMOVE settled", add), "REMOVE settled SET #lift_v = :lift_v");
        assert_eq!(add_set("ADD n :one set x = :x", add), "ADD n :one set #lift_v = :lift_v, x = :x");
    }

    #[test]
    fn every_kind_is_stamped_with_version_origin_and_a_newer_than_condition() {
        let writer = ReplicatedWriter::sync(regions(), table()).build().unwrap();
        let key: Item = [("pk".to_owned(), AttributeValue::S("1".into()))].into();
        let version = AttributeValue::N("42".into());
        let region = writer.targets[1].clone();
        let writes = [
            Write::put(key.clone()).when("attribute_not_exists(pk)"),
            Write::update(key.clone(), "SET n = n + :a").when("n >= :a").value(":a", version.clone()),
            Write::delete(key.clone()),
        ];
        for write in &writes {
            match writer.stamp(write, &version, "us-east-1", &region) {
                Stamped::Put { item, condition, names, values, .. } => {
                    assert_eq!(item[VERSION_ATTRIBUTE], version);
                    assert_eq!(item[ORIGIN_ATTRIBUTE], AttributeValue::S("us-east-1".into()));
                    assert_eq!(
                        condition,
                        "(attribute_not_exists(pk)) AND (attribute_not_exists(#lift_v) OR #lift_v < :lift_v)"
                    );
                    assert_eq!(names[V_NAME], VERSION_ATTRIBUTE);
                    assert_eq!(values[V_VALUE], version);
                }
                Stamped::Update { expression, condition, names, values, .. } => {
                    assert_eq!(expression, "SET #lift_v = :lift_v, #lift_o = :lift_o, n = n + :a");
                    assert!(condition.starts_with("(n >= :a) AND "), "{condition}");
                    assert_eq!(names[O_NAME], ORIGIN_ATTRIBUTE);
                    assert_eq!(values[O_VALUE], AttributeValue::S("us-east-1".into()));
                    assert_eq!(values[":a"], version);
                }
                Stamped::Delete { condition, .. } => {
                    assert_eq!(condition, "(attribute_not_exists(#lift_v) OR #lift_v < :lift_v)");
                }
            }
        }
    }

    #[test]
    fn modes_validate_their_targets() {
        let sync = ReplicatedWriter::sync(regions(), table()).build().unwrap();
        assert_eq!((sync.targets(), sync.mode()), (vec!["us-east-1", "eu-west-1"], WriteMode::Sync));
        let err = ReplicatedWriter::sync(regions(), table()).targets(["eu-west-1"]).build().unwrap_err();
        assert_eq!(err, ConfigError::TooFewRegions(1));
        let one = ReplicatedWriter::async_(regions(), table()).targets(["eu-west-1"]).build().unwrap();
        assert_eq!(one.targets(), ["eu-west-1"]);
        let err = ReplicatedWriter::async_(regions(), table()).targets(["mars-1"]).build().unwrap_err();
        assert_eq!(err, ConfigError::UnknownRegion("mars-1".into()));
    }

    fn at(version: u64, refunded: u64) -> Item {
        [
            ("pk".to_owned(), AttributeValue::S("pay-1".into())),
            (VERSION_ATTRIBUTE.to_owned(), AttributeValue::N(version.to_string())),
            ("refunded".to_owned(), AttributeValue::N(refunded.to_string())),
        ]
        .into()
    }

    fn v(version: u64) -> AttributeValue {
        AttributeValue::N(version.to_string())
    }

    fn judge(image: Image, version: u64, now: Option<Item>, held: Option<Item>) -> CatchUp {
        catch_up(image, v(version), now, held, VERSION_ATTRIBUTE)
    }

    #[test]
    fn a_region_holding_what_the_first_holds_holds_the_write() {
        // A racing refund's newer image got there first: the first target holds it too.
        assert_eq!(judge(Image::Put(at(10, 5)), 10, Some(at(11, 8)), Some(at(11, 8))), CatchUp::Held);
        // The same read-back image sent twice.
        assert_eq!(judge(Image::Put(at(11, 8)), 10, Some(at(11, 8)), Some(at(11, 8))), CatchUp::Held);
        // A delete, and the item gone in both.
        assert_eq!(judge(Image::Delete(at(0, 0)), 10, None, None), CatchUp::Held);
        // Sets compared as sets.
        let with_tags = |tags: [&str; 2]| {
            let mut item = at(11, 8);
            item.insert("tags".into(), AttributeValue::Ss(tags.map(str::to_owned).to_vec()));
            item
        };
        assert_eq!(
            judge(Image::Put(at(10, 5)), 10, Some(with_tags(["a", "b"])), Some(with_tags(["b", "a"]))),
            CatchUp::Held
        );
    }

    #[test]
    fn a_region_behind_the_first_is_sent_the_first_targets_item_now() {
        // The first target moved on after the image was taken; the region is behind it.
        assert_eq!(
            judge(Image::Put(at(10, 5)), 10, Some(at(12, 9)), Some(at(11, 8))),
            CatchUp::Send(Image::Put(at(12, 9)), v(12))
        );
        assert_eq!(
            judge(Image::Put(at(10, 5)), 10, Some(at(12, 9)), None),
            CatchUp::Send(Image::Put(at(12, 9)), v(12))
        );
        // Our delete, cancelled with another image of its transaction.
        assert_eq!(
            judge(Image::Delete(at(0, 0)), 10, None, Some(at(9, 1))),
            CatchUp::Send(Image::Delete(at(0, 0)), v(10))
        );
    }

    #[test]
    fn a_version_the_first_target_does_not_hold_is_not_the_write() {
        // A clock ahead of ours stamped the region's item: newer, and not the first's.
        assert_eq!(judge(Image::Put(at(10, 5)), 10, Some(at(10, 5)), Some(at(99, 5))), CatchUp::Diverged);
        // The first target's version, with other contents: not what the first holds.
        assert_eq!(judge(Image::Put(at(10, 5)), 10, Some(at(11, 8)), Some(at(11, 7))), CatchUp::Diverged);
        // An item written around the writer in the first target: nothing to order by.
        let mut unversioned = at(11, 8);
        unversioned.remove(VERSION_ATTRIBUTE);
        assert_eq!(judge(Image::Put(at(10, 5)), 10, Some(unversioned), Some(at(9, 1))), CatchUp::Diverged);
    }

    #[test]
    fn an_item_the_first_target_deleted_since_is_waited_for() {
        let wait = judge(Image::Put(at(10, 5)), 10, None, Some(at(11, 8)));
        assert_eq!(wait, CatchUp::Wait(Image::Put(at(10, 5)), v(10)));
        // Our own delete, where the region holds a newer item than it: not ours to delete.
        let wait = judge(Image::Delete(at(0, 0)), 10, None, Some(at(11, 8)));
        assert_eq!(wait, CatchUp::Wait(Image::Delete(at(0, 0)), v(10)));
    }

    /// The first target's history of one item: versions rising, each with its refunds.
    fn history(steps: &[u64]) -> Vec<Item> {
        let mut version = 100;
        steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                version += step;
                at(version, i as u64)
            })
            .collect()
    }

    proptest::proptest! {
        /// Whatever order racing writes' images reach the region in, judged from the first
        /// target's history: an image of state `i` was sent; the region holds state `j` (or
        /// nothing yet), read before the first target, which holds state `k >= i, j` by
        /// then. The region holds the write exactly when it holds what the first target
        /// holds; when behind, it is sent the first target's item; it never diverges.
        #[test]
        fn a_region_on_the_first_targets_history_is_never_taken_for_diverged(
            steps in proptest::collection::vec(1u64..1_000, 1..12),
            picks in (0usize..64, 0usize..64, 0usize..64),
            region_has_it in proptest::bool::ANY,
        ) {
            let states = history(&steps);
            let n = states.len();
            let (i, j) = (picks.0 % n, picks.1 % n);
            let k = i.max(j) + picks.2 % (n - i.max(j));
            let held = region_has_it.then(|| states[j].clone());
            let image = Image::Put(states[i].clone());
            let verdict = catch_up(image, v(0), Some(states[k].clone()), held.clone(), VERSION_ATTRIBUTE);
            if held.as_ref() == Some(&states[k]) {
                proptest::prop_assert_eq!(verdict, CatchUp::Held);
            } else {
                proptest::prop_assert_eq!(verdict, CatchUp::Send(Image::Put(states[k].clone()), v(100 + steps[..=k].iter().sum::<u64>())));
            }
        }

        /// A region holding an item the first target's history does not: a version past
        /// the first target's, or one of its versions with other contents. Never held,
        /// never overwritten: the write is reported as not acknowledged there.
        #[test]
        fn an_item_off_the_first_targets_history_is_never_taken_for_the_write(
            steps in proptest::collection::vec(1u64..1_000, 1..12),
            picks in (0usize..64, 0usize..64),
            ahead in 1u64..1_000_000,
            same_version in proptest::bool::ANY,
        ) {
            let states = history(&steps);
            let n = states.len();
            let i = picks.0 % n;
            let k = i + picks.1 % (n - i);
            let now_version = 100 + steps[..=k].iter().sum::<u64>();
            let foreign = if same_version { at(now_version, 999) } else { at(now_version + ahead, k as u64) };
            let verdict = catch_up(Image::Put(states[i].clone()), v(0), Some(states[k].clone()), Some(foreign), VERSION_ATTRIBUTE);
            proptest::prop_assert_eq!(verdict, CatchUp::Diverged);
        }
    }

    #[test]
    fn versions_of_one_process_never_repeat() {
        let versions: Vec<u64> = (0..10_000).map(|_| next_version()).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "strictly increasing, even within a microsecond");
        let now = u64::try_from(now_micros()).unwrap();
        assert!(now.abs_diff(versions[0]) < 60_000_000, "epoch microseconds");
    }

    fn stamped(writer: &ReplicatedWriter, write: &Write, version: u64) -> Stamped {
        writer.stamp(write, &v(version), "us-east-1", &writer.targets[0])
    }

    #[test]
    fn a_refusal_that_hands_back_the_write_itself_proves_it_applied() {
        let writer = ReplicatedWriter::sync(regions(), table()).build().unwrap();
        let key: Item = [("pk".to_owned(), AttributeValue::S("pay-1".into()))].into();
        let origin = |item: &mut Item, region: &str| {
            item.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S(region.into()));
        };
        // An update: its version and origin.
        let update = stamped(&writer, &Write::update(key.clone(), "SET refunded = :a"), 10).proof();
        let mut ours = at(10, 5);
        origin(&mut ours, "us-east-1");
        assert_eq!(update.judge(Some(&ours), VERSION_ATTRIBUTE), Stored::Ours);
        let mut other_origin = at(10, 5);
        origin(&mut other_origin, "eu-west-1");
        assert_eq!(update.judge(Some(&other_origin), VERSION_ATTRIBUTE), Stored::Other, "another region's");
        assert_eq!(update.judge(Some(&at(10, 5)), VERSION_ATTRIBUTE), Stored::Other, "no origin");
        assert_eq!(update.judge(Some(&at(9, 5)), VERSION_ATTRIBUTE), Stored::Other, "older");
        assert_eq!(update.judge(Some(&at(11, 5)), VERSION_ATTRIBUTE), Stored::Newer);
        assert_eq!(update.judge(None, VERSION_ATTRIBUTE), Stored::Other, "nothing handed back");
        // A put: exactly its item.
        let put = stamped(&writer, &Write::put(at(0, 5)), 10).proof();
        assert_eq!(put.judge(Some(&ours), VERSION_ATTRIBUTE), Stored::Ours);
        let mut changed = ours.clone();
        changed.insert("refunded".into(), v(6));
        assert_eq!(put.judge(Some(&changed), VERSION_ATTRIBUTE), Stored::Other, "another item, same version");
        // A delete leaves nothing to recognise.
        let delete = stamped(&writer, &Write::delete(key), 10).proof();
        assert_eq!(delete.judge(Some(&ours), VERSION_ATTRIBUTE), Stored::Other);
    }

    #[test]
    fn a_cancelled_transaction_is_applied_only_when_an_item_holds_it_and_none_contradicts() {
        let writer = ReplicatedWriter::sync(regions(), table()).build().unwrap();
        let key: Item = [("pk".to_owned(), AttributeValue::S("pay-1".into()))].into();
        let child: Item = [("pk".to_owned(), AttributeValue::S("re-1".into()))].into();
        let writes = [Write::update(key.clone(), "SET refunded = :a"), Write::put(child.clone())];
        let proofs: Vec<Proof> = writes.iter().map(|w| stamped(&writer, w, 10).proof()).collect();
        let mut payment = at(10, 5);
        payment.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S("us-east-1".into()));
        let Proof::Image(refund) = &proofs[1] else { panic!("a put's proof is its item") };
        let ccf = Some("ConditionalCheckFailed");
        let judge = |reasons: &[(Option<&str>, Option<&Item>)]| {
            transaction_applied(reasons, &proofs, VERSION_ATTRIBUTE)
        };
        assert!(judge(&[(ccf, Some(&payment)), (ccf, Some(refund))]), "both items hold it");
        assert!(judge(&[(ccf, Some(&at(12, 6))), (ccf, Some(refund))]), "the payment moved on since");
        // Another process's write under the same version and origin holds the payment; the
        // refund item passed its condition, so this transaction never committed.
        assert!(!judge(&[(ccf, Some(&payment)), (Some("None"), None)]), "an item without it: not committed");
        assert!(
            !judge(&[(Some("None"), None), (ccf, Some(refund))]),
            "a payment without it (deleted since?)"
        );
        assert!(!judge(&[(None, None), (ccf, Some(refund))]), "a reason missing says nothing for it");
        assert!(!judge(&[(ccf, Some(&at(9, 5))), (ccf, Some(refund))]), "an older payment: not committed");
        assert!(!judge(&[(ccf, Some(&at(12, 6))), (Some("None"), None)]), "nothing proves it");
        assert!(!judge(&[(ccf, Some(&payment)), (Some("TransactionConflict"), None)]));
        assert!(!judge(&[(ccf, Some(&payment))]), "a reason for every item");
        let mut other = refund.clone();
        other.insert("amount".into(), v(1));
        assert!(!judge(&[(ccf, Some(&payment)), (ccf, Some(&other))]), "another item under its version");
    }

    #[test]
    fn a_request_token_is_the_same_for_the_same_sending_and_differs_otherwise() {
        let writer = ReplicatedWriter::sync(regions(), table()).build().unwrap();
        let key: Item = [("pk".to_owned(), AttributeValue::S("pay-1".into()))].into();
        let writes = |version| {
            vec![
                stamped(&writer, &Write::update(key.clone(), "SET n = :a").value(":a", v(1)), version),
                stamped(&writer, &Write::put(at(0, 5)), version),
            ]
        };
        let token = request_token(&writes(10), 0);
        assert_eq!(token.len(), 32, "within ClientRequestToken's 36 characters");
        assert_eq!(token, request_token(&writes(10), 0), "maps hashed in a fixed order");
        assert_ne!(token, request_token(&writes(11), 0), "another version");
        assert_ne!(token, request_token(&writes(10), 1), "another catch-up round");
        let other = vec![
            stamped(&writer, &Write::update(key.clone(), "SET n = :a").value(":a", v(2)), 10),
            stamped(&writer, &Write::put(at(0, 5)), 10),
        ];
        assert_ne!(token, request_token(&other, 0), "another value");
    }

    #[test]
    fn a_rejection_is_a_condition_failure_everywhere() {
        let failure = |r: &str| RegionFailure { region: r.into(), reason: "condition".into() };
        let err = WriteError {
            kind: "update",
            acknowledged: vec![],
            failures: vec![failure("a"), failure("b")],
            condition_failed: vec!["a".into(), "b".into()],
            superseded: vec![],
        };
        assert!(err.is_rejected());
        assert!(!err.is_superseded(), "no region held a newer version: the caller's condition");
        let raced = WriteError { superseded: vec!["b".into()], ..err.clone() };
        assert!(raced.is_rejected() && raced.is_superseded());
        assert_eq!(err.to_string(), "update acknowledged by 0 of 2 regions");
        let partial =
            WriteError { acknowledged: vec!["a".into()], failures: vec![failure("b")], ..err.clone() };
        assert!(!partial.is_rejected(), "a write one region holds is not a rejection");
    }
}
