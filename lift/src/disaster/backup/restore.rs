//! Restoring a backup into a new table: verify the manifest's signature and every segment,
//! create the table, write the items, replay the stream archive up to the chosen moment,
//! report what failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::{PutRequest, TableStatus, TimeToLiveSpecification, WriteRequest};
use futures_util::stream::{self, StreamExt};

use super::archive::{chunk_stem, ArchivedRecord, ChunkIndex};
use super::coverage;
use super::json::json_to_item;
use super::key::{self, BackupKey, SignatureProblem};
use super::manifest::Manifest;
use super::scan::epoch_ms;
use super::segment::{decode_items, decode_lines, sha256_hex};
use super::table::TableRef;
use super::{BackupError, BackupTarget};
use crate::disaster::{ConfigError, Item};

/// Changes from this long before a backup started are replayed too (the default of
/// [`RestoreBuilder::replay_margin`]).
const REPLAY_MARGIN: Duration = Duration::from_secs(10);
/// Attempts for a batch or a replayed change that DynamoDB throttles or leaves unprocessed.
const ATTEMPTS: u32 = 8;
/// How long a new table may take to become active.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// What replaying the archive did.
struct Replay {
    replayed: u64,
    later: u64,
    near: u64,
    failed: Vec<NotRestored>,
}

/// The moment a restore brings the table back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PointInTime {
    /// The latest backup and every archived change after it.
    #[default]
    Latest,
    /// The latest backup that ended by then, and the archived changes made by then.
    Moment(SystemTime),
}

/// A change or an item that a restore could not bring back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRestored {
    /// The item's key, in DynamoDB JSON.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    /// The new table.
    pub table: String,
    /// The backup restored.
    pub backup_id: String,
    /// When that backup ended (epoch ms).
    pub backup_ended_at_ms: u64,
    /// The moment restored to (epoch ms), `None` for [`PointInTime::Latest`].
    pub until_ms: Option<u64>,
    /// Items written from the backup.
    pub items_from_backup: u64,
    /// Archived changes replayed over them.
    pub changes_replayed: u64,
    /// Archived changes left out because they were made after the moment.
    pub changes_after_moment: u64,
    /// Archived changes kept although they may have been made up to one archive poll
    /// interval after the moment (their time is known only to that window).
    pub changes_near_moment: u64,
    /// Stream archive chunks read.
    pub chunks_read: u64,
    /// Whether the manifest and every chunk index used were signed by the restore's key, and
    /// every chunk index used names the source table: false only when
    /// [`allow_unsigned`](RestoreBuilder::allow_unsigned) let in an unsigned one, or one
    /// written before indexes named their table.
    pub authenticated: bool,
    /// What could not be restored (empty when everything was).
    pub not_restored: Vec<NotRestored>,
    /// How long the restore took, from the first read to the last write.
    pub duration: Duration,
}

impl RestoreReport {
    /// Items and changes written per second.
    pub fn items_per_sec(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs == 0.0 {
            return 0.0;
        }
        (self.items_from_backup + self.changes_replayed) as f64 / secs
    }
}

/// Restores a backup into a new table, then replays the stream archive up to a moment.
///
/// Before any table is created or any item read, every manifest the restore looks at is
/// verified with the [`BackupKey`] the backup was signed with: one without a signature,
/// changed after it was signed, signed with another key, or copied from another backup is
/// refused ([`BackupError::Unauthenticated`]). Backups written before manifests were signed
/// are refused too unless [`allow_unsigned`](RestoreBuilder::allow_unsigned) says otherwise.
/// Every chunk index of the stream archive is verified the same way: a changed one, or one
/// signed with another key, is refused; an unsigned one is left out (unless unsigned ones
/// are allowed), so its records are not replayed and what it covered counts as a gap.
///
/// A restore also names the table the backup must have been taken of
/// ([`source_table`](RestoreBuilder::source_table), required), because a signature only
/// shows that a holder of the key wrote a backup, not of which table: with one key shared
/// by several tables, a validly signed backup of another table (a mistyped target, or one
/// put there by someone who can write the target) would otherwise restore in its place.
/// Every manifest names its table under its signature. A backup chosen by
/// [`backup`](RestoreBuilder::backup) that is of another table is refused
/// ([`BackupError::WrongTable`]). Choosing the latest backup (by the moment, or of all)
/// considers only backups of the source table: backups of other tables in the same target
/// are passed over, whether newer or older, and a target that holds backups of other tables
/// but none of the source table is refused with [`BackupError::WrongTable`] as well (it names
/// the newest one found). Every manifest met on the way is still verified first, so a
/// manifest of another table that is not signed by the key refuses the restore, as any
/// other does. Every chunk index of the stream archive names its table too: chunks of
/// another table's archive in the same target are left out (neither replayed nor counted
/// as covering time), and an index written before indexes named their table is left out
/// like an unsigned one (trusted only with [`allow_unsigned`](RestoreBuilder::allow_unsigned),
/// and then reported as not authenticated).
///
/// A table is named by its name or by its ARN, and the two are compared as tables: `orders`
/// and `arn:aws:dynamodb:us-east-1:123456789012:table/orders` are the same table, two ARNs
/// that differ in partition, region or account are two tables, and a bare name (which says
/// nothing of where its table is) matches its ARN in any account and region. A source table
/// given by name, whose chosen backup names an ARN, replays only chunks of that ARN's table
/// (or of the bare name).
///
/// A chunk's table is read from its index, and only from a trusted one (signed by the key,
/// or unsigned with `allow_unsigned`), before the chunk itself is looked at. So a missing
/// or damaged chunk of another table's archive in the same target does not stop the
/// restore (its signed index names the other table), while a missing or damaged chunk of
/// the source table refuses it. A chunk whose table cannot be read from a trusted index
/// (its index missing, unreadable, or not signed by the key; or, unsigned or naming no
/// table, its chunk missing) may be the source table's, and refuses the restore too,
/// unless its name puts it in an archive run whose trusted indexes all name other tables:
/// a run is one archive of one table, a signed index vouches for the name of its chunk,
/// and a chunk of the source table moved into another table's run is gone from its own
/// run, which the coverage check below refuses as it refuses a deleted chunk (unless it
/// was the run's newest: see below).
///
/// Then every segment of the backup is checked against the manifest (present, SHA-256,
/// readable, item count) and so is every archive chunk the restore needs against its
/// index; a bad one is refused with an error that names it. The archive must hold
/// every change from the backup's start to the moment (to its newest chunk for
/// [`PointInTime::Latest`]): a chunk missing from a run, or time no run covered, is refused
/// by name, and so is a target with no archive, or only chunks written before archive runs
/// were recorded. [`replay_archive(false)`](RestoreBuilder::replay_archive) restores the
/// backup alone. The target table must not exist: a restore never merges into a table.
/// The table is created from the manifest's definition (keys, indexes, capacity), the
/// items are written with BatchWriteItem (unprocessed items retried), then every archived
/// change from the backup's start up to the moment is applied in stream order per item:
/// puts write the new image, deletes delete. The stream, if the table had one, is turned
/// on last, so the new table's stream starts after the restore rather than replaying every
/// restored item. What could not be written is listed in the [`RestoreReport`], never
/// dropped silently.
///
/// What the signatures cannot show: the newest backup, or the newest chunks of the
/// archive, deleted whole (with their manifest or index) leave an older state that is
/// still validly signed, and a restore to the latest moment restores that older state.
/// Only a record kept outside the target (the newest backup id, the newest chunk's time)
/// reveals such a rollback.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::disaster::backup::BackupError> {
/// use lift::disaster::backup::{BackupKey, BackupTarget, PointInTime, Restore};
/// use std::time::{Duration, SystemTime};
///
/// let report = Restore::builder(client, BackupTarget::dir("/var/backups/orders"), "orders-restored")
///     .source_table("orders")
///     .key(BackupKey::from_env()?)
///     .until(PointInTime::Moment(SystemTime::now() - Duration::from_secs(600)))
///     .build()?
///     .run()
///     .await?;
/// assert!(report.not_restored.is_empty(), "{:?}", report.not_restored);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Restore {
    client: aws_sdk_dynamodb::Client,
    target: BackupTarget,
    table: String,
    /// The source table: empty until set, which `build` refuses.
    source: String,
    backup: Option<String>,
    key: Option<BackupKey>,
    allow_unsigned: bool,
    until: PointInTime,
    concurrency: usize,
    replay: bool,
    margin: Duration,
}

/// Configures a [`Restore`].
#[derive(Debug, Clone)]
pub struct RestoreBuilder {
    inner: Restore,
}

impl Restore {
    /// A builder for restoring from `target` into the new table `table`.
    pub fn builder(
        client: aws_sdk_dynamodb::Client,
        target: BackupTarget,
        table: impl Into<String>,
    ) -> RestoreBuilder {
        RestoreBuilder {
            inner: Restore {
                client,
                target,
                table: table.into(),
                source: String::new(),
                backup: None,
                key: None,
                allow_unsigned: false,
                until: PointInTime::Latest,
                concurrency: 16,
                replay: true,
                margin: REPLAY_MARGIN,
            },
        }
    }

    /// Runs the restore.
    ///
    /// # Errors
    /// [`BackupError::TableExists`] when the table exists; [`BackupError::Unauthenticated`]
    /// when a manifest, or a chunk index that may be the source table's, is not signed by the
    /// key; [`BackupError::WrongTable`]
    /// when the backup asked for, or every backup in the target, is of another table than
    /// the source table; [`BackupError::NoBackup`],
    /// [`BackupError::Manifest`], [`BackupError::SegmentMissing`],
    /// [`BackupError::SegmentCorrupt`], [`BackupError::SegmentUnreadable`],
    /// [`BackupError::CountMismatch`] or [`BackupError::ArchiveCorrupt`] when the backup, or
    /// a chunk of the archive that is or may be the source table's, cannot be trusted, [`BackupError::ArchiveIncomplete`] when the stream archive does not
    /// hold every change from the backup's start to the moment (nothing is written then);
    /// [`BackupError::Request`] when the table cannot be created.
    pub async fn run(&self) -> Result<RestoreReport, BackupError> {
        let started = Instant::now();
        self.refuse_existing().await?;
        let until_ms = match self.until {
            PointInTime::Latest => None,
            PointInTime::Moment(t) => Some(epoch_ms(t)),
        };
        let (manifest, signed) = self.choose(until_ms).await?;
        let items = self.verified_items(&manifest).await?;
        let window_start = manifest.started_at_ms.saturating_sub(self.margin.as_millis() as u64);
        let (records, chunks_read, chunks_signed) = if self.replay {
            // A source named without account and region replays the chunks of the table the
            // chosen backup names, not of a table of that name elsewhere.
            let table = self.source_ref()?.narrowed(&manifest.table);
            self.archived(&table, window_start, manifest.started_at_ms, until_ms).await?
        } else {
            (Vec::new(), 0, true)
        };

        self.create_table(&manifest).await?;
        let mut not_restored = self.write_items(items, &manifest.definition.key_names()).await;
        let items_from_backup = manifest.item_count - not_restored.len() as u64;
        let replay = self.replay(records, window_start, until_ms).await;
        not_restored.extend(replay.failed);
        self.enable_stream(&manifest).await?;
        Ok(RestoreReport {
            table: self.table.clone(),
            backup_id: manifest.backup_id,
            backup_ended_at_ms: manifest.ended_at_ms,
            until_ms,
            items_from_backup,
            changes_replayed: replay.replayed,
            changes_after_moment: replay.later,
            changes_near_moment: replay.near,
            chunks_read,
            authenticated: signed && chunks_signed,
            not_restored,
            duration: started.elapsed(),
        })
    }

    async fn refuse_existing(&self) -> Result<(), BackupError> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => Err(BackupError::TableExists { table: self.table.clone() }),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(()),
            Err(e) => Err(BackupError::request("DescribeTable", &self.table, &e)),
        }
    }

    /// The manifest to restore (and whether it is signed): the one asked for, else the
    /// latest of the source table that ended by the moment. Every manifest read on the way
    /// is verified before its table is looked at: only a signed table name is believed.
    async fn choose(&self, until_ms: Option<u64>) -> Result<(Manifest, bool), BackupError> {
        let table = self.source_ref()?;
        let source = self.source.as_str();
        let wrong = |manifest: Manifest| BackupError::WrongTable {
            expected: source.to_owned(),
            found: manifest.table,
            backup: manifest.backup_id,
        };
        if let Some(id) = &self.backup {
            let (manifest, signed) = self.manifest(id).await?;
            if !table.names(&manifest.table) {
                return Err(wrong(manifest));
            }
            if until_ms.is_some_and(|until| manifest.ended_at_ms > until) {
                return Err(BackupError::NoBackup {
                    location: self.target.to_string(),
                    reason: Some(format!("backup {id} ended after the moment asked for")),
                });
            }
            return Ok((manifest, signed));
        }
        let keys = self.target.list("backups/").await?;
        let mut ids: Vec<&str> =
            keys.iter().filter_map(|k| k.strip_prefix("backups/")?.strip_suffix("/manifest.json")).collect();
        ids.sort_unstable();
        let mut of_source = false;
        let mut newest_other: Option<Manifest> = None;
        for id in ids.into_iter().rev() {
            let (manifest, signed) = self.manifest(id).await?;
            if !table.names(&manifest.table) {
                // Another table's backup sharing the target: passed over, whatever its age.
                newest_other.get_or_insert(manifest);
                continue;
            }
            of_source = true;
            if until_ms.is_none_or(|until| manifest.ended_at_ms <= until) {
                return Ok((manifest, signed));
            }
        }
        if let (false, Some(other)) = (of_source, newest_other) {
            return Err(wrong(other));
        }
        Err(BackupError::NoBackup {
            location: self.target.to_string(),
            reason: of_source
                .then(|| format!("every backup of table {source} ended after the moment asked for")),
        })
    }

    /// The manifest stored as backup `id`, verified: it must name that backup and be signed
    /// by the key (or be unsigned, when that is allowed: then `false`).
    async fn manifest(&self, id: &str) -> Result<(Manifest, bool), BackupError> {
        let bytes = self.target.get(&format!("backups/{id}/manifest.json")).await?.ok_or_else(|| {
            BackupError::Manifest { backup: id.to_owned(), reason: "manifest.json is missing".to_owned() }
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::Manifest { backup: id.to_owned(), reason: e.to_string() })?;
        let refuse =
            |problem| BackupError::Unauthenticated { what: format!("manifest of backup {id}"), problem };
        // Its segments are read from the folder of the backup it names: a manifest (or a
        // whole backup) copied over another backup's would restore the other one's data.
        if manifest.backup_id != id {
            return Err(refuse(SignatureProblem::OtherBackup { names: manifest.backup_id }));
        }
        let signed =
            key::check(self.key.as_ref(), self.allow_unsigned, manifest.signature.as_ref(), |key, _| {
                manifest.verify(key)
            })
            .map_err(refuse)?;
        Ok((manifest, signed))
    }

    /// Every segment, checked against the manifest, decoded.
    async fn verified_items(&self, manifest: &Manifest) -> Result<Vec<Item>, BackupError> {
        let backup = &manifest.backup_id;
        let mut items = Vec::with_capacity(manifest.item_count as usize);
        for segment in &manifest.segments {
            let file = &segment.file;
            let bytes = self.target.get(&format!("backups/{backup}/{file}")).await?.ok_or_else(|| {
                BackupError::SegmentMissing { backup: backup.clone(), segment: file.clone() }
            })?;
            let found = sha256_hex(&bytes);
            if found != segment.sha256 {
                return Err(BackupError::SegmentCorrupt {
                    backup: backup.clone(),
                    segment: file.clone(),
                    expected: segment.sha256.clone(),
                    found,
                });
            }
            let decoded = decode_items(&bytes).map_err(|reason| BackupError::SegmentUnreadable {
                backup: backup.clone(),
                segment: file.clone(),
                reason,
            })?;
            if decoded.len() as u64 != segment.items {
                return Err(BackupError::CountMismatch {
                    backup: backup.clone(),
                    what: format!("segment {file}"),
                    expected: segment.items,
                    found: decoded.len() as u64,
                });
            }
            items.extend(decoded);
        }
        if items.len() as u64 != manifest.item_count {
            return Err(BackupError::CountMismatch {
                backup: backup.clone(),
                what: "the backup".to_owned(),
                expected: manifest.item_count,
                found: items.len() as u64,
            });
        }
        Ok(items)
    }

    /// The source table as a table (a name or an ARN), checked by `build`.
    fn source_ref(&self) -> Result<TableRef, BackupError> {
        TableRef::parse(&self.source).map_err(|reason| ConfigError::invalid("source_table", reason).into())
    }

    /// The archived changes observed from `window_start` on, from verified chunks of
    /// `table`, once the archive is shown to hold every change from `from_ms` (the backup's
    /// start) to the moment; the chunks read, and whether every index used was signed.
    ///
    /// Every index is read and verified before any chunk's data is looked at, because only
    /// a trusted index (signed by the key, or unsigned with `allow_unsigned`) tells whose
    /// chunk it is:
    ///
    /// - one that names `table` (or, with `allow_unsigned`, names no table) is the source
    ///   table's: its chunk must be there, and one the replay needs must match its index;
    ///   any damage refuses the restore;
    /// - one that names another table is left out whole, whatever state its chunk is in;
    /// - one without a signature (without `allow_unsigned`), or signed but naming no table,
    ///   is left out as untrusted (nothing of it is replayed, and a gap it leaves is
    ///   refused by the coverage check); its chunk missing refuses the restore as below;
    /// - a chunk whose table cannot be read from a trusted index (its index missing or
    ///   unreadable, its signature not the key's, or, for an untrusted one, its chunk
    ///   missing) refuses the restore, unless its name puts it in an archive run that only
    ///   trusted indexes of other tables are known in. A run is one archive of one table,
    ///   and a trusted index vouches for its chunk's name; moving a chunk into another
    ///   table's run takes it out of its own run, which the coverage check finds as it
    ///   finds a deleted chunk.
    async fn archived(
        &self,
        table: &TableRef,
        window_start: u64,
        from_ms: u64,
        until_ms: Option<u64>,
    ) -> Result<(Vec<ArchivedRecord>, u64, bool), BackupError> {
        let keys = self.target.list("stream/").await?;
        let names: HashSet<&str> = keys.iter().map(String::as_str).collect();
        let unusable = |stem: &str, reason: String| BackupError::ArchiveCorrupt {
            chunk: format!("{stem}.jsonl.gz"),
            reason,
        };
        let mut ours: Vec<(String, ChunkIndex)> = Vec::new();
        // Chunks whose table no trusted index tells, with why they are unusable.
        let mut unknown: Vec<(&str, BackupError)> = Vec::new();
        // Archive runs (their chunks' names without the number), and whether trusted indexes
        // in them name the source table (`true`) or only other tables (`false`).
        let mut runs: HashMap<&str, bool> = HashMap::new();
        let mut signed = true;
        let mut unsigned_left_out = 0u64;
        let mut unnamed_left_out = 0u64;
        let mut other_tables = 0u64;
        for key in &keys {
            let Some(stem) = key.strip_suffix(".json") else {
                if let Some(stem) = key.strip_suffix(".jsonl.gz") {
                    if !names.contains(format!("{stem}.json").as_str()) {
                        unknown.push((stem, unusable(stem, "its index is missing".to_owned())));
                    }
                }
                continue;
            };
            let chunk = format!("{stem}.jsonl.gz");
            let index = match self.target.get(key).await?.map(|b| serde_json::from_slice::<ChunkIndex>(&b)) {
                Some(Ok(index)) => index,
                Some(Err(e)) => {
                    unknown.push((stem, unusable(stem, format!("unreadable index: {e}"))));
                    continue;
                }
                None => {
                    unknown.push((stem, unusable(stem, "its index vanished while it was read".to_owned())));
                    continue;
                }
            };
            let verified =
                key::check(self.key.as_ref(), self.allow_unsigned, index.signature.as_ref(), |k, _| {
                    index.verify(k, &chunk)
                });
            let trusted_signed = match verified {
                Ok(signed) => signed,
                Err(SignatureProblem::Missing) => {
                    unsigned_left_out += 1;
                    if !names.contains(chunk.as_str()) {
                        unknown.push((stem, unusable(stem, "the chunk is missing".to_owned())));
                    }
                    continue;
                }
                Err(problem) => {
                    let what = format!("stream archive index {key}");
                    unknown.push((stem, BackupError::Unauthenticated { what, problem }));
                    continue;
                }
            };
            // The table an index names is believed once its signature is: a chunk of another
            // table's archive is not this table's history, whatever its time or its state.
            let is_source = match index.table.as_deref() {
                Some(named) => table.names(named),
                None if self.allow_unsigned => true,
                None => {
                    unnamed_left_out += 1;
                    if !names.contains(chunk.as_str()) {
                        unknown.push((stem, unusable(stem, "the chunk is missing".to_owned())));
                    }
                    continue;
                }
            };
            if let Some(run) = run_of(stem, &index) {
                *runs.entry(run).or_insert(is_source) |= is_source;
            }
            if !is_source {
                other_tables += 1;
                continue;
            }
            if !trusted_signed || index.table.is_none() {
                signed = false;
            }
            ours.push((stem.to_owned(), index));
        }
        for (stem, err) in unknown {
            let of_other_run = run_in_name(stem).is_some_and(|run| runs.get(run) == Some(&false));
            if !of_other_run {
                return Err(err);
            }
            tracing::warn!(
                chunk = %stem,
                error = %err,
                "an unusable stream archive chunk in another table's archive run is left out"
            );
            other_tables += 1;
        }

        let mut records = Vec::new();
        let mut chunks = 0;
        for (stem, index) in &ours {
            let corrupt = |reason: String| unusable(stem, reason);
            let name = format!("{stem}.jsonl.gz");
            if !names.contains(name.as_str()) {
                return Err(corrupt("the chunk is missing".to_owned()));
            }
            if index.records == 0 || index.last_ms < window_start {
                continue;
            }
            let bytes =
                self.target.get(&name).await?.ok_or_else(|| corrupt("the chunk is missing".into()))?;
            let found = sha256_hex(&bytes);
            if found != index.sha256 {
                return Err(corrupt(format!("sha-256 {found}, index says {}", index.sha256)));
            }
            let lines = decode_lines(&bytes).map_err(corrupt)?;
            if lines.len() as u64 != index.records {
                return Err(corrupt(format!("holds {} records, index says {}", lines.len(), index.records)));
            }
            let mut last: BTreeMap<String, String> = BTreeMap::new();
            for (n, line) in lines.into_iter().enumerate() {
                let record: ArchivedRecord =
                    serde_json::from_value(line).map_err(|e| corrupt(format!("record {}: {e}", n + 1)))?;
                last.insert(record.shard.clone(), record.seq.clone());
                records.push(record);
            }
            let spans: BTreeMap<String, String> =
                index.shards.iter().map(|(shard, span)| (shard.clone(), span.last.clone())).collect();
            if index.run.is_some() && spans != last {
                return Err(corrupt("its records do not end each shard where its index says".to_owned()));
            }
            chunks += 1;
        }
        let indexes: Vec<(String, ChunkIndex)> =
            ours.into_iter().map(|(stem, index)| (format!("{stem}.jsonl.gz"), index)).collect();
        coverage::check(&indexes, from_ms, until_ms).map_err(|mut reason| {
            if unsigned_left_out > 0 {
                reason.push_str(&format!(
                    " ({unsigned_left_out} chunk indexes without a signature were left out: they are \
                     trusted only with allow_unsigned)"
                ));
            }
            if unnamed_left_out > 0 {
                reason.push_str(&format!(
                    " ({unnamed_left_out} chunk indexes that do not name their table were left out: they \
                     were written before indexes named it, and are trusted only with allow_unsigned)"
                ));
            }
            if other_tables > 0 {
                reason.push_str(&format!(
                    " ({other_tables} chunks of other tables' archives in the target were left out)"
                ));
            }
            BackupError::ArchiveIncomplete { from_ms, to_ms: until_ms, reason }
        })?;
        Ok((records, chunks, signed))
    }

    async fn create_table(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let request = manifest.definition.create_table(&self.client, &self.table).map_err(|reason| {
            BackupError::Manifest {
                backup: manifest.backup_id.clone(),
                reason: format!("table definition: {reason}"),
            }
        })?;
        match request.send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
                return Err(BackupError::TableExists { table: self.table.clone() });
            }
            Err(e) => return Err(BackupError::request("CreateTable", &self.table, &e)),
        }
        self.wait_active().await?;
        // Retention by TTL holds on the restored table as it did on the backed-up one.
        if let Some(attribute) = &manifest.definition.ttl_attribute {
            let spec =
                TimeToLiveSpecification::builder().enabled(true).attribute_name(attribute).build().map_err(
                    |e| BackupError::Manifest {
                        backup: manifest.backup_id.clone(),
                        reason: format!("ttl attribute: {e}"),
                    },
                )?;
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| BackupError::request("UpdateTimeToLive", &self.table, &e))?;
        }
        Ok(())
    }

    async fn wait_active(&self) -> Result<(), BackupError> {
        let deadline = Instant::now() + ACTIVE_TIMEOUT;
        loop {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| BackupError::request("DescribeTable", &self.table, &e))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BackupError::Request {
                    operation: "CreateTable",
                    table: self.table.clone(),
                    message: format!("not active after {ACTIVE_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Turns on the table's stream, as the backed-up table had one, once the items are back.
    async fn enable_stream(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let Some(spec) = manifest.definition.stream_specification() else { return Ok(()) };
        self.client
            .update_table()
            .table_name(&self.table)
            .stream_specification(spec)
            .send()
            .await
            .map_err(|e| BackupError::request("UpdateTable", &self.table, &e))?;
        self.wait_active().await
    }

    /// Writes the items in batches of 25; what stays unwritten is returned.
    async fn write_items(&self, items: Vec<Item>, keys: &[&str]) -> Vec<NotRestored> {
        let batches: Vec<Vec<Item>> = items.chunks(25).map(<[Item]>::to_vec).collect();
        stream::iter(batches)
            .map(|batch| self.write_batch(batch, keys))
            .buffer_unordered(self.concurrency)
            .flat_map(stream::iter)
            .collect()
            .await
    }

    async fn write_batch(&self, batch: Vec<Item>, keys: &[&str]) -> Vec<NotRestored> {
        let mut requests: Vec<WriteRequest> = batch
            .into_iter()
            .filter_map(|item| {
                Some(
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().ok()?)
                        .build(),
                )
            })
            .collect();
        let mut reason = String::new();
        for attempt in 0..ATTEMPTS {
            if requests.is_empty() {
                return Vec::new();
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
            }
            match self.client.batch_write_item().request_items(&self.table, requests.clone()).send().await {
                Ok(out) => {
                    requests =
                        out.unprocessed_items().and_then(|u| u.get(&self.table)).cloned().unwrap_or_default();
                    reason = "left unprocessed by dynamodb".to_owned();
                }
                Err(e) => reason = crate::error::error_chain(&e),
            }
        }
        requests
            .iter()
            .map(|r| NotRestored {
                key: r.put_request().map(|p| key_text(p.item(), keys)).unwrap_or_default(),
                reason: format!("BatchWriteItem after {ATTEMPTS} attempts: {reason}"),
            })
            .collect()
    }

    /// Applies the archived changes from `window_start` to the moment, in stream order per
    /// item.
    async fn replay(&self, records: Vec<ArchivedRecord>, window_start: u64, until_ms: Option<u64>) -> Replay {
        let mut seen = HashSet::new();
        let mut by_key: BTreeMap<String, Vec<ArchivedRecord>> = BTreeMap::new();
        for record in records {
            if record.window_ms().1 < window_start || !seen.insert((record.shard.clone(), record.seq.clone()))
            {
                continue;
            }
            by_key.entry(record.keys.to_string()).or_default().push(record);
        }
        let (mut later, mut near) = (0u64, 0u64);
        let mut work = Vec::new();
        for (key, mut changes) in by_key {
            changes.sort_by(|a, b| (a.seq.len(), &a.seq).cmp(&(b.seq.len(), &b.seq)));
            // Changes of one item are in order: once one is surely past the moment, so are
            // the rest.
            let keep = match until_ms {
                Some(until) => changes.iter().position(|c| c.window_ms().0 > until).unwrap_or(changes.len()),
                None => changes.len(),
            };
            later += (changes.len() - keep) as u64;
            changes.truncate(keep);
            if let Some(until) = until_ms {
                near += changes.iter().filter(|c| c.window_ms().1 > until).count() as u64;
            }
            if !changes.is_empty() {
                work.push((key, changes));
            }
        }
        let results: Vec<(u64, Option<NotRestored>)> = stream::iter(work)
            .map(|(key, changes)| async move {
                let mut applied = 0;
                for change in &changes {
                    match self.apply(change).await {
                        Ok(()) => applied += 1,
                        Err(reason) => return (applied, Some(NotRestored { key, reason })),
                    }
                }
                (applied, None)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        Replay {
            replayed: results.iter().map(|(n, _)| n).sum(),
            later,
            near,
            failed: results.into_iter().filter_map(|(_, f)| f).collect(),
        }
    }

    async fn apply(&self, change: &ArchivedRecord) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
            }
            let result = if change.kind == "delete" {
                let key = json_to_item(&change.keys).ok_or("the archived key is not a dynamodb item")?;
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("DeleteItem: {}", crate::error::error_chain(&e)))
            } else {
                let image = change.image.as_ref().ok_or("the archived put carries no new image")?;
                let item = json_to_item(image).ok_or("the archived image is not a dynamodb item")?;
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("PutItem: {}", crate::error::error_chain(&e)))
            };
            match result {
                Ok(()) => return Ok(()),
                Err(message) => last = message,
            }
        }
        Err(format!("after {ATTEMPTS} attempts: {last}"))
    }
}

impl RestoreBuilder {
    /// The table the backup must have been taken of (required): its name (`orders`) or its
    /// ARN (`arn:aws:dynamodb:us-east-1:123456789012:table/orders`), compared with the table
    /// its manifest records under the signature as a table, not as a string: a name and its
    /// ARN are the same table; two ARNs of another partition, region or account are not. A
    /// backup of another table is never restored: one asked for by id is refused with
    /// [`BackupError::WrongTable`], and the latest backup is chosen among the source
    /// table's backups only. Chunks of the stream archive are replayed only when their
    /// signed index names this table.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::disaster::backup::BackupError> {
    /// use lift::disaster::backup::{BackupKey, BackupTarget, Restore};
    ///
    /// let target = BackupTarget::dir("/var/backups/orders");
    /// let key = BackupKey::new([7u8; 32])?;
    /// let unnamed = Restore::builder(client.clone(), target.clone(), "orders-restored").key(key.clone());
    /// assert!(unnamed.build().unwrap_err().to_string().contains("no source table"));
    /// let malformed = Restore::builder(client.clone(), target.clone(), "orders-restored")
    ///     .source_table("arn:aws:dynamodb:us-east-1:1234:table/orders")
    ///     .key(key.clone());
    /// assert!(malformed.build().unwrap_err().to_string().contains("account is not 12 digits"));
    /// let by_arn = Restore::builder(client.clone(), target.clone(), "orders-restored")
    ///     .source_table("arn:aws:dynamodb:us-east-1:123456789012:table/orders")
    ///     .key(key.clone())
    ///     .build()?;
    /// let restore = Restore::builder(client, target, "orders-restored").source_table("orders").key(key).build()?;
    /// # let _ = (restore, by_arn);
    /// # Ok(()) }
    /// ```
    pub fn source_table(mut self, table: impl Into<String>) -> Self {
        self.inner.source = table.into();
        self
    }

    /// Restores this backup (by id) instead of the latest one that fits the moment.
    pub fn backup(mut self, id: impl Into<String>) -> Self {
        self.inner.backup = Some(id.into());
        self
    }

    /// The key the backups and the stream archive were signed with (required, unless only
    /// unsigned backups are restored with [`allow_unsigned`](Self::allow_unsigned)).
    pub fn key(mut self, key: BackupKey) -> Self {
        self.inner.key = Some(key);
        self
    }

    /// Whether a manifest or a chunk index without a signature is restored (default false:
    /// refused). For backups written before lift signed them; anyone who can write the
    /// target can then change what is restored, so allow it only for a target you trust,
    /// and only until its backups are signed again. Signed ones are still verified with
    /// the key; with no key, a signed one is refused. [`RestoreReport::authenticated`]
    /// says whether an unsigned one was used.
    pub fn allow_unsigned(mut self, allow: bool) -> Self {
        self.inner.allow_unsigned = allow;
        self
    }

    /// The moment to restore to (default [`PointInTime::Latest`]).
    pub fn until(mut self, until: PointInTime) -> Self {
        self.inner.until = until;
        self
    }

    /// Whether the stream archive is replayed (default true); without it the table comes
    /// back as the backup's scan read it, and the moment only chooses the backup.
    pub fn replay_archive(mut self, replay: bool) -> Self {
        self.inner.replay = replay;
        self
    }

    /// How long before the backup's start archived changes are replayed too (default 10 s).
    /// Replaying a change the scan already saw is harmless (every later change of the item
    /// follows it, in order); the margin covers writers whose clocks (the archive's time
    /// attribute) run behind the backup's. A larger margin only costs replay time.
    pub fn replay_margin(mut self, margin: Duration) -> Self {
        self.inner.margin = margin;
        self
    }

    /// Requests in flight at once (default 16).
    pub fn concurrency(mut self, requests: usize) -> Self {
        self.inner.concurrency = requests;
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for an empty table name, no (or an empty)
    /// [`source_table`](Self::source_table), one that is neither a table name nor a table
    /// ARN (a malformed ARN, or the ARN of a stream or an index), a concurrency of 0, or no key without
    /// [`allow_unsigned`](Self::allow_unsigned).
    pub fn build(self) -> Result<Restore, BackupError> {
        if self.inner.table.is_empty() {
            return Err(ConfigError::invalid("table", "empty table name").into());
        }
        if self.inner.source.is_empty() {
            return Err(ConfigError::invalid(
                "source_table",
                "no source table: a restore names the table its backup was taken of \
                 (RestoreBuilder::source_table), so that a backup of another table signed with the \
                 same key is never restored in its place",
            )
            .into());
        }
        if let Err(reason) = TableRef::parse(&self.inner.source) {
            return Err(ConfigError::invalid("source_table", reason).into());
        }
        if self.inner.key.is_none() && !self.inner.allow_unsigned {
            return Err(ConfigError::invalid(
                "key",
                "no backup key: a restore verifies every manifest and chunk index with the key that \
                 signed them (BackupKey::from_env reads LIFT_BACKUP_KEY)",
            )
            .into());
        }
        if self.inner.concurrency == 0 {
            return Err(ConfigError::invalid("concurrency", "must be at least 1").into());
        }
        Ok(self.inner)
    }
}

/// The archive run a chunk's name puts it in: the name without its number
/// (`stream/chunk-<run start>-<run>`), or `None` for a name that ends in no number.
fn run_in_name(stem: &str) -> Option<&str> {
    let (run, number) = stem.rsplit_once('-')?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some(run)
}

/// The archive run a trusted index vouches `stem` is in: its run, when `stem` is the name
/// that run gives the chunk; `None` for a chunk written before runs were recorded, or one
/// stored under another name than its run's.
fn run_of<'a>(stem: &'a str, index: &ChunkIndex) -> Option<&'a str> {
    let run = index.run.as_deref()?;
    if stem != chunk_stem(index.run_started_ms, run, index.number) {
        return None;
    }
    run_in_name(stem)
}

/// The key attributes of `item` in DynamoDB JSON: never its other values, which may be
/// sensitive, as reports are shared.
fn key_text(item: &Item, keys: &[&str]) -> String {
    let key: Item = item
        .iter()
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    super::json::item_to_json(&key).to_string()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::archive::ShardSpan;
    use super::super::manifest::{TableDefinition, MANIFEST_FORMAT};
    use super::super::segment::LineWriter;
    use super::*;

    /// A directory target, removed when the test ends.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            Self(std::env::temp_dir().join(format!("lift-restore-test-{}", uuid::Uuid::new_v4().simple())))
        }

        fn target(&self) -> BackupTarget {
            BackupTarget::dir(&self.0)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn key() -> BackupKey {
        BackupKey::new([9u8; 32]).unwrap()
    }

    /// A restore of `source` from `target`, with a client that is never called: what these
    /// tests run (choosing a backup, reading the archive) reads the target only.
    fn restore(target: &BackupTarget, source: &str) -> RestoreBuilder {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        Restore::builder(aws_sdk_dynamodb::Client::from_conf(config), target.clone(), "restored")
            .source_table(source)
            .key(key())
    }

    /// Stores a signed manifest of an empty backup `id` of `table`, ended at `ended_at_ms`.
    async fn put_backup(target: &BackupTarget, id: &str, table: &str, ended_at_ms: u64) {
        let mut manifest = Manifest {
            format: MANIFEST_FORMAT,
            backup_id: id.to_owned(),
            table: table.to_owned(),
            definition: TableDefinition::default(),
            item_count: 0,
            segments: Vec::new(),
            started_at_ms: ended_at_ms - 10,
            ended_at_ms,
            signature: None,
        };
        manifest.sign(&key());
        let bytes = serde_json::to_vec(&manifest).unwrap();
        target.put(&format!("backups/{id}/manifest.json"), bytes).await.unwrap();
    }

    /// Stores chunk 0 of archive run `run` (started at 100 ms, covering to 1,000 ms) holding a
    /// put of `pk`, its index naming `table` (none: an index written before they did).
    async fn put_chunk(target: &BackupTarget, run: &str, table: Option<&str>, pk: &str) {
        put_run_chunk(target, run, 0, table, pk).await;
    }

    /// Stores chunk `number` of archive run `run` (started at 100 ms; chunk n observed at
    /// 500 + 1,000 n ms and covering to 1,000 + 1,000 n ms) holding a put of `pk` on the run's
    /// shard, its index naming `table` and signed with [`key`]; returns its name without
    /// extension.
    async fn put_run_chunk(
        target: &BackupTarget,
        run: &str,
        number: u64,
        table: Option<&str>,
        pk: &str,
    ) -> String {
        let record = ArchivedRecord {
            shard: format!("shard-{run}"),
            seq: (number + 1).to_string(),
            kind: "put".into(),
            keys: serde_json::json!({"pk": {"S": pk}}),
            image: Some(serde_json::json!({"pk": {"S": pk}})),
            observed_ms: 500 + 1_000 * number,
            after_ms: 400 + 1_000 * number,
            written_ms: None,
            created_ms: None,
        };
        let mut writer = LineWriter::new();
        writer.push(&serde_json::to_value(&record).unwrap());
        let bytes = writer.finish();
        let name = chunk_stem(100, run, number);
        let span = ShardSpan { after: (number > 0).then(|| number.to_string()), last: record.seq.clone() };
        let mut index = ChunkIndex {
            records: 1,
            sha256: sha256_hex(&bytes),
            first_ms: record.observed_ms,
            last_ms: record.observed_ms,
            run: Some(run.to_owned()),
            number,
            run_started_ms: 100,
            covered_to_ms: 1_000 + 1_000 * number,
            shards: [(record.shard.clone(), span)].into(),
            table: table.map(str::to_owned),
            signature: None,
        };
        index.sign(&key(), &format!("{name}.jsonl.gz"));
        target.put(&format!("{name}.jsonl.gz"), bytes).await.unwrap();
        target.put(&format!("{name}.json"), serde_json::to_vec(&index).unwrap()).await.unwrap();
        name
    }

    /// What `restore` would replay of the archive, for a backup that started at 150 ms,
    /// to the latest moment.
    async fn replay_of(restore: &Restore) -> Result<(Vec<ArchivedRecord>, u64, bool), BackupError> {
        restore.archived(&restore.source_ref()?, 0, 150, None).await
    }

    /// The keys (`pk`) of the archived changes a restore of `restore` would replay.
    fn keys(records: &[ArchivedRecord]) -> Vec<String> {
        records.iter().map(|r| r.keys["pk"]["S"].as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn a_restore_without_a_source_table_is_refused() {
        let target = BackupTarget::dir("/nonexistent");
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let unnamed = Restore::builder(client, target.clone(), "restored").key(key()).build().unwrap_err();
        assert!(
            matches!(&unnamed, BackupError::Config(ConfigError::Invalid { setting: "source_table", .. })),
            "{unnamed:?}"
        );
        assert!(unnamed.to_string().contains("no source table"), "{unnamed}");
        let empty = restore(&target, "").build().unwrap_err();
        assert!(empty.to_string().contains("no source table"), "{empty}");
        assert!(restore(&target, "orders").build().is_ok());
    }

    /// One key, one target, backups of two tables: each restore chooses among its own
    /// table's backups only, newer backups of the other table are passed over, a backup of
    /// the other table asked for by id is refused, and so is a target that holds no backup
    /// of the source table.
    #[tokio::test]
    async fn only_a_backup_of_the_source_table_is_chosen() {
        let scratch = Scratch::new();
        let target = scratch.target();
        put_backup(&target, "0000000001000-aaaa", "orders", 1_100).await;
        put_backup(&target, "0000000002000-bbbb", "patients", 2_100).await;
        put_backup(&target, "0000000003000-cccc", "patients", 3_100).await;

        let chosen = |source: &'static str, until: Option<u64>| {
            let target = target.clone();
            async move { restore(&target, source).build().unwrap().choose(until).await }
        };
        let (orders, signed) = chosen("orders", None).await.unwrap();
        assert_eq!(
            (orders.backup_id.as_str(), orders.table.as_str(), signed),
            ("0000000001000-aaaa", "orders", true)
        );
        assert_eq!(chosen("patients", None).await.unwrap().0.backup_id, "0000000003000-cccc");
        assert_eq!(chosen("patients", Some(3_000)).await.unwrap().0.backup_id, "0000000002000-bbbb");
        assert_eq!(chosen("orders", Some(3_000)).await.unwrap().0.backup_id, "0000000001000-aaaa");
        let err = chosen("patients", Some(1_500)).await.unwrap_err();
        assert!(
            matches!(&err, BackupError::NoBackup { reason: Some(r), .. } if r.contains("every backup of table patients")),
            "{err:?}"
        );

        let by_id = restore(&target, "orders").backup("0000000003000-cccc").build().unwrap();
        let err = by_id.choose(None).await.unwrap_err();
        match &err {
            BackupError::WrongTable { expected, found, backup } => {
                assert_eq!((expected.as_str(), found.as_str()), ("orders", "patients"));
                assert_eq!(backup, "0000000003000-cccc");
            }
            other => panic!("a backup of another table was accepted: {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("table patients") && text.contains("not of orders"), "{text}");

        let err = chosen("inventory", None).await.unwrap_err();
        assert!(
            matches!(&err, BackupError::WrongTable { expected, found, .. } if expected == "inventory" && found == "patients"),
            "{err:?}"
        );
    }

    /// Archives of two tables in one target, signed with one key: a restore replays the
    /// chunks of its source table only; a chunk index that names no table (written before
    /// they did) is left out as an unsigned one is, and used only with `allow_unsigned`.
    #[tokio::test]
    async fn only_chunks_of_the_source_table_are_replayed() {
        let scratch = Scratch::new();
        let target = scratch.target();
        put_chunk(&target, "a", Some("orders"), "order-1").await;
        put_chunk(&target, "b", Some("patients"), "patient-1").await;
        let replayed = |source: &'static str, allow_unsigned: bool| {
            let target = target.clone();
            async move {
                let restore = restore(&target, source).allow_unsigned(allow_unsigned).build().unwrap();
                replay_of(&restore).await
            }
        };
        let (records, chunks, signed) = replayed("orders", false).await.unwrap();
        assert_eq!((keys(&records), chunks, signed), (vec!["order-1".to_owned()], 1, true));
        assert_eq!(keys(&replayed("patients", false).await.unwrap().0), ["patient-1"]);
        let err = replayed("inventory", false).await.unwrap_err();
        assert!(
            matches!(&err, BackupError::ArchiveIncomplete { reason, .. }
                if reason.contains("no stream archive") && reason.contains("2 chunks of other tables")),
            "{err:?}"
        );

        let scratch = Scratch::new();
        let target = scratch.target();
        put_chunk(&target, "c", None, "unnamed-1").await;
        let err = replay_of(&restore(&target, "orders").build().unwrap()).await.unwrap_err();
        assert!(
            matches!(&err, BackupError::ArchiveIncomplete { reason, .. } if reason.contains("do not name their table")),
            "{err:?}"
        );
        let allowed = restore(&target, "orders").allow_unsigned(true).build().unwrap();
        let (records, _, signed) = replay_of(&allowed).await.unwrap();
        assert_eq!(keys(&records), ["unnamed-1"]);
        assert!(!signed, "a chunk that names no table is not authenticated as the source table's");
    }

    /// Edits the chunk index stored at `path` as someone who can write the target but does
    /// not hold the key would: its signature is left as it was.
    fn tamper_index(path: &std::path::Path, edit: impl FnOnce(&mut ChunkIndex)) {
        let mut index: ChunkIndex = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        edit(&mut index);
        std::fs::write(path, serde_json::to_vec(&index).unwrap()).unwrap();
    }

    impl Scratch {
        /// The file of `stem` (a chunk's name without extension) with extension `ext`.
        fn file(&self, stem: &str, ext: &str) -> PathBuf {
            self.0.join(format!("{stem}.{ext}"))
        }
    }

    /// Archives of two tables share a target and a key, and the other table's archive is
    /// damaged every way a chunk can be: a chunk deleted, a chunk changed, an index deleted,
    /// an index changed. The source table's replay is untouched by it, as its chunks are;
    /// the damaged table's own restore is refused.
    #[tokio::test]
    async fn a_damaged_chunk_of_another_table_does_not_stop_the_restore() {
        let scratch = Scratch::new();
        let target = scratch.target();
        for n in 0..2 {
            put_run_chunk(&target, "a", n, Some("orders"), &format!("order-{n}")).await;
        }
        let mut other = Vec::new();
        for n in 0..5 {
            other.push(put_run_chunk(&target, "b", n, Some("patients"), &format!("patient-{n}")).await);
        }
        std::fs::remove_file(scratch.file(&other[0], "jsonl.gz")).unwrap();
        std::fs::write(scratch.file(&other[1], "jsonl.gz"), b"not gzip").unwrap();
        std::fs::remove_file(scratch.file(&other[2], "json")).unwrap();
        tamper_index(&scratch.file(&other[3], "json"), |i| i.records += 1);

        let orders = restore(&target, "orders").build().unwrap();
        let (records, chunks, signed) = replay_of(&orders).await.unwrap();
        assert_eq!(keys(&records), ["order-0", "order-1"]);
        assert_eq!((chunks, signed), (2, true));

        let err = replay_of(&restore(&target, "patients").build().unwrap()).await.unwrap_err();
        let named = match &err {
            BackupError::ArchiveCorrupt { chunk, .. } => chunk.clone(),
            BackupError::Unauthenticated { what, .. } => what.clone(),
            other => panic!("a damaged archive was replayed: {other:?}"),
        };
        assert!(other.iter().any(|stem| named.contains(stem.as_str())), "{err}");
    }

    /// Someone who can write the target damages a chunk of the source table, and tries to
    /// pass it off as another table's, in a target where another table's damaged chunks
    /// are rightly passed over: the chunk deleted or changed under its signed index, its
    /// index rewritten to name the other table (with its signature kept, re-signed with
    /// another key, or removed), deleted, or the chunk moved into the other table's run.
    /// Each is refused, or leaves a gap the coverage check refuses; a damaged chunk in a run
    /// that no trusted index attributes is refused too.
    #[tokio::test]
    async fn a_damaged_chunk_of_the_source_table_refuses_the_restore_however_it_is_passed_off() {
        let scratch = Scratch::new();
        let target = scratch.target();
        let mut ours = Vec::new();
        for n in 0..3 {
            ours.push(put_run_chunk(&target, "a", n, Some("orders"), &format!("order-{n}")).await);
        }
        let mut other = Vec::new();
        for n in 0..2 {
            other.push(put_run_chunk(&target, "b", n, Some("patients"), &format!("patient-{n}")).await);
        }
        std::fs::remove_file(scratch.file(&other[0], "jsonl.gz")).unwrap();
        let orders = restore(&target, "orders").build().unwrap();
        let (records, _, _) =
            replay_of(&orders).await.expect("another table's damaged chunk stopped the restore");
        assert_eq!(keys(&records), ["order-0", "order-1", "order-2"]);

        let victim = ours[1].clone();
        let (index_path, chunk_path) = (scratch.file(&victim, "json"), scratch.file(&victim, "jsonl.gz"));
        let (index, chunk) = (std::fs::read(&index_path).unwrap(), std::fs::read(&chunk_path).unwrap());
        let moved = chunk_stem(100, "b", 7);
        let heal = || {
            std::fs::write(&index_path, &index).unwrap();
            std::fs::write(&chunk_path, &chunk).unwrap();
            let _ = std::fs::remove_file(scratch.file(&moved, "json"));
            let _ = std::fs::remove_file(scratch.file(&moved, "jsonl.gz"));
        };
        let claim_patients = |i: &mut ChunkIndex| i.table = Some("patients".into());
        let refusal = || async { replay_of(&orders).await.map(|(records, ..)| keys(&records)).unwrap_err() };
        let corrupt = |err: BackupError, why: &str| match err {
            BackupError::ArchiveCorrupt { chunk, reason } => {
                assert_eq!(chunk, format!("{victim}.jsonl.gz"));
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("expected the chunk {victim} refused for {why:?}: {other:?}"),
        };
        let unauthenticated = |err: BackupError| match err {
            BackupError::Unauthenticated { what, problem } => {
                assert!(what.contains(&victim), "{what}");
                problem
            }
            other => panic!("expected the index of {victim} refused: {other:?}"),
        };

        // The chunk gone, or changed, under its signed index.
        std::fs::remove_file(&chunk_path).unwrap();
        corrupt(refusal().await, "the chunk is missing");
        heal();
        std::fs::write(&chunk_path, b"not gzip").unwrap();
        corrupt(refusal().await, "sha-256");
        heal();
        // Its index rewritten to name the other table: the signature no longer matches, and
        // its run is the source table's.
        tamper_index(&index_path, claim_patients);
        std::fs::remove_file(&chunk_path).unwrap();
        assert_eq!(unauthenticated(refusal().await), SignatureProblem::Mismatch);
        heal();
        // Re-signed, with a key that is not the restore's.
        let mut forged: ChunkIndex = serde_json::from_slice(&index).unwrap();
        claim_patients(&mut forged);
        forged.sign(&BackupKey::new([1u8; 32]).unwrap(), &format!("{victim}.jsonl.gz"));
        std::fs::write(&index_path, serde_json::to_vec(&forged).unwrap()).unwrap();
        assert!(matches!(unauthenticated(refusal().await), SignatureProblem::OtherKey { .. }));
        heal();
        // Its index deleted, the chunk left.
        std::fs::remove_file(&index_path).unwrap();
        corrupt(refusal().await, "its index is missing");
        heal();
        // Its signature removed: not trusted, so left out, and the gap is refused; with the
        // chunk gone too, the chunk is named.
        tamper_index(&index_path, |i| {
            claim_patients(i);
            i.signature = None;
        });
        let err = refusal().await;
        assert!(
            matches!(&err, BackupError::ArchiveIncomplete { reason, .. }
                if reason.contains("chunk 1 of archive run a is missing") && reason.contains("without a signature")),
            "{err:?}"
        );
        std::fs::remove_file(&chunk_path).unwrap();
        corrupt(refusal().await, "the chunk is missing");
        heal();
        // Moved, index and all, into the other table's run: its signature is bound to its
        // name, so it is left out as that run's damaged chunk, and the source table's run
        // now lacks it.
        std::fs::rename(&index_path, scratch.file(&moved, "json")).unwrap();
        std::fs::rename(&chunk_path, scratch.file(&moved, "jsonl.gz")).unwrap();
        let err = refusal().await;
        assert!(
            matches!(&err, BackupError::ArchiveIncomplete { reason, .. } if reason.contains("chunk 1 of archive run a is missing")),
            "{err:?}"
        );
        heal();
        assert_eq!(replay_of(&orders).await.unwrap().0.len(), 3, "healed");

        // A run no trusted index attributes: its damaged chunk may be the source table's.
        let lone = put_run_chunk(&target, "c", 0, Some("orders"), "order-lone").await;
        tamper_index(&scratch.file(&lone, "json"), claim_patients);
        let err = refusal().await;
        assert!(
            matches!(&err, BackupError::Unauthenticated { what, problem: SignatureProblem::Mismatch } if what.contains(&lone)),
            "{err:?}"
        );
    }

    const ORDERS_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";
    const ORDERS_EU_ARN: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders";

    /// A table named by its name or its ARN is one table, whichever way the restore and the
    /// backup name it; an ARN of another region is another table, for the backup chosen and
    /// for the chunks replayed; a source named by name replays the chunks of the table its
    /// backup names; a malformed ARN is refused before anything is read.
    #[tokio::test]
    async fn a_table_is_one_table_by_name_or_by_arn_and_another_region_is_another_table() {
        let scratch = Scratch::new();
        let target = scratch.target();
        put_backup(&target, "0000000001000-aaaa", "orders", 1_100).await;
        put_backup(&target, "0000000002000-bbbb", ORDERS_ARN, 2_100).await;
        put_backup(&target, "0000000003000-cccc", ORDERS_EU_ARN, 3_100).await;
        put_backup(&target, "0000000004000-dddd", "patients", 4_100).await;
        let chosen = |source: &'static str, backup: Option<&'static str>, until: Option<u64>| {
            let target = target.clone();
            async move {
                let mut restore = restore(&target, source);
                if let Some(id) = backup {
                    restore = restore.backup(id);
                }
                restore.build().unwrap().choose(until).await.map(|(m, _)| m.backup_id)
            }
        };
        assert_eq!(chosen(ORDERS_ARN, None, None).await.unwrap(), "0000000002000-bbbb");
        assert_eq!(chosen(ORDERS_ARN, None, Some(1_500)).await.unwrap(), "0000000001000-aaaa");
        assert_eq!(chosen(ORDERS_ARN, Some("0000000001000-aaaa"), None).await.unwrap(), "0000000001000-aaaa");
        assert_eq!(chosen("orders", Some("0000000002000-bbbb"), None).await.unwrap(), "0000000002000-bbbb");
        assert_eq!(chosen(ORDERS_EU_ARN, None, None).await.unwrap(), "0000000003000-cccc");
        let err = chosen(ORDERS_EU_ARN, Some("0000000002000-bbbb"), None).await.unwrap_err();
        assert!(
            matches!(&err, BackupError::WrongTable { expected, found, .. } if expected == ORDERS_EU_ARN && found == ORDERS_ARN),
            "{err:?}"
        );
        let patients_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/patients";
        let err = chosen(patients_arn, Some("0000000001000-aaaa"), None).await.unwrap_err();
        assert!(matches!(&err, BackupError::WrongTable { .. }), "{err:?}");
        assert_eq!(chosen(patients_arn, None, None).await.unwrap(), "0000000004000-dddd");

        let err = restore(&target, "arn:aws:dynamodb:us-east-1:123456789012:orders").build().unwrap_err();
        assert!(
            matches!(&err, BackupError::Config(ConfigError::Invalid { setting: "source_table", .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("is not a table ARN"), "{err}");

        put_chunk(&target, "u", Some(ORDERS_ARN), "us").await;
        put_chunk(&target, "e", Some(ORDERS_EU_ARN), "eu").await;
        put_chunk(&target, "n", Some("orders"), "named").await;
        let mut replayed = keys(&replay_of(&restore(&target, ORDERS_ARN).build().unwrap()).await.unwrap().0);
        replayed.sort();
        assert_eq!(replayed, ["named", "us"]);
        let by_name = restore(&target, "orders").build().unwrap();
        let narrowed = by_name.source_ref().unwrap().narrowed(ORDERS_ARN);
        let mut replayed = keys(&by_name.archived(&narrowed, 0, 150, None).await.unwrap().0);
        replayed.sort();
        assert_eq!(replayed, ["named", "us"]);
    }
}
