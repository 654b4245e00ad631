//! The backup drill (`scenarios/backup_restore.toml`): under load a backup is taken while a
//! stream archive runs, the table is dropped mid-load, and a restore brings it back to the
//! moment before the drop. Measures RTO, RPO (split by the last backup) and restore rate.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::backup::{BackupTarget, PointInTime, Restore, RestoreReport, StreamArchive, TableBackup};
use lift::disaster::{RegionConfig, RegionSet};
use lift::store::{KeyAttribute, StreamView, TableDef};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};

use crate::drill::duration::serde_duration;
use crate::dynamodb::DynamoDbLocal;

/// The item attribute the load writes its time into (epoch ms), which the archive reads.
pub const WRITTEN_AT: &str = "written_at_ms";

/// A backup drill, as written in `scenarios/backup_restore*.toml`.
///
/// # Examples
///
/// ```
/// use lift_harness::backup::BackupScenario;
///
/// let s = BackupScenario::parse(r#"
///     name = "backup"
///     [load]
///     rate = 50
///     seed_items = 200
///     [backup]
///     at = "2s"
///     drop_at = "5s"
///     [assertions]
///     max_missing_acknowledged = 0
/// "#)?;
/// assert_eq!(s.backup.segments, 4);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupScenario {
    /// A short name, used in report file names.
    pub name: String,
    /// What the drill shows.
    #[serde(default)]
    pub description: String,
    /// The write load.
    pub load: BackupLoad,
    /// When the backup is taken and the table dropped.
    pub backup: BackupPlan,
    /// What must hold.
    #[serde(default)]
    pub assertions: BackupAssertions,
}

/// The write load: puts of new items, overwrites and deletes of existing ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupLoad {
    /// Writes started per second.
    pub rate: f64,
    /// Items written before the load starts (the table's starting size).
    #[serde(default)]
    pub seed_items: u64,
    /// Most writes in flight.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Weights of `put`, `overwrite` and `delete` (default 5, 3, 2).
    #[serde(default = "default_mix")]
    pub mix: HashMap<String, u32>,
}

fn default_concurrency() -> usize {
    64
}
fn default_mix() -> HashMap<String, u32> {
    HashMap::from([("put".to_owned(), 5), ("overwrite".to_owned(), 3), ("delete".to_owned(), 2)])
}

/// Where the backup goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A temporary directory.
    #[default]
    Dir,
    /// A bucket on moto's S3 server, started for the drill.
    S3,
}

/// The backup timeline, from the start of the load.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPlan {
    /// When the backup starts.
    #[serde(with = "serde_duration")]
    pub at: Duration,
    /// When the table is dropped (the load stops then: its writes fail).
    #[serde(with = "serde_duration")]
    pub drop_at: Duration,
    /// Parallel scan segments.
    #[serde(default = "default_segments")]
    pub segments: u32,
    /// Where the backup and the archive go.
    #[serde(default)]
    pub target: TargetKind,
    /// The stream archive's poll interval.
    #[serde(default = "default_poll", with = "serde_duration")]
    pub archive_poll: Duration,
    /// Restore requests in flight.
    #[serde(default = "default_restore_concurrency")]
    pub restore_concurrency: usize,
    /// Replay the stream archive (default true; false shows what a backup alone loses).
    #[serde(default = "yes")]
    pub replay_archive: bool,
}

fn default_segments() -> u32 {
    4
}
fn default_poll() -> Duration {
    Duration::from_millis(100)
}
fn default_restore_concurrency() -> usize {
    16
}
fn yes() -> bool {
    true
}

/// The drill's bounds; an absent one is not checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupAssertions {
    /// Most acknowledged writes missing (or wrong) in the restored table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_missing_acknowledged: Option<u64>,
    /// Longest time from the drop until the restored table serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rto_secs: Option<f64>,
    /// Slowest restore, in items and changes written per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_restore_items_per_sec: Option<f64>,
    /// Most items or changes the restore reports it could not restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_not_restored: Option<u64>,
}

impl BackupScenario {
    /// Parses a scenario.
    ///
    /// # Errors
    /// When the TOML is invalid or the timeline cannot work.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let s: Self = toml::from_str(text).context("invalid backup scenario")?;
        anyhow::ensure!(s.load.rate > 0.0, "load.rate must be greater than zero");
        anyhow::ensure!(s.backup.at < s.backup.drop_at, "backup.at must come before backup.drop_at");
        anyhow::ensure!(s.load.concurrency > 0, "load.concurrency must be at least 1");
        for kind in s.load.mix.keys() {
            anyhow::ensure!(
                ["put", "overwrite", "delete"].contains(&kind.as_str()),
                "load.mix: unknown write {kind:?}"
            );
        }
        anyhow::ensure!(s.load.mix.get("put").copied().unwrap_or(0) > 0, "load.mix: put needs a weight");
        Ok(s)
    }

    /// Reads and parses a scenario file.
    ///
    /// # Errors
    /// When the file is unreadable or invalid.
    pub fn load(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| path.display().to_string())
    }

    /// Whether a scenario file's text is a backup drill (it has a `[backup]` table).
    pub fn is_backup_drill(text: &str) -> bool {
        toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("backup"))
    }
}

/// What a backup drill measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupDrillReport {
    /// The scenario.
    pub scenario: String,
    /// Whether every assertion held.
    pub passed: bool,
    /// Each assertion: (name, bound, measured, held).
    pub assertions: Vec<(String, f64, f64, bool)>,
    /// Items in the backup.
    pub items_in_backup: u64,
    /// How long the backup took.
    pub backup_secs: f64,
    /// Acknowledged writes (seed and load), each the last acknowledged write of its item.
    pub acknowledged: u64,
    /// Of them, made before the last backup started.
    pub acknowledged_before_backup: u64,
    /// Of them, made after (recoverable only from the stream archive).
    pub acknowledged_after_backup: u64,
    /// Acknowledged writes missing or wrong after the restore, made before the last backup.
    pub missing_before_backup: u64,
    /// Acknowledged writes missing or wrong after the restore, made after the last backup.
    pub missing_after_backup: u64,
    /// Items whose last write failed without a clear answer (not checked).
    pub uncertain: u64,
    /// Writes refused after the drop.
    pub refused_after_drop: u64,
    /// Stream records archived.
    pub archived_records: u64,
    /// Failed archive requests (each retried).
    pub archive_errors: u64,
    /// Up to ten missing or wrong items: key, acknowledged version (none: deleted), held.
    pub missing_examples: Vec<(String, Option<u64>, Option<u64>)>,
    /// Archived changes replayed by the restore.
    pub changes_replayed: u64,
    /// Replayed changes placed within one poll of the drop.
    pub changes_near_moment: u64,
    /// What the restore could not restore.
    pub not_restored: u64,
    /// From the drop until the restored table answered a read.
    pub rto_secs: f64,
    /// The restore alone (verify, create, write, replay).
    pub restore_secs: f64,
    /// Items and changes the restore wrote per second.
    pub restore_items_per_sec: f64,
    /// The target (directory or S3).
    pub target: String,
}

impl BackupDrillReport {
    /// Names of the failed assertions.
    pub fn failed_assertions(&self) -> Vec<&str> {
        self.assertions.iter().filter(|a| !a.3).map(|a| a.0.as_str()).collect()
    }

    /// Writes `<dir>/<scenario>.json`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.scenario));
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl std::fmt::Display for BackupDrillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "backup drill {}: {}", self.scenario, if self.passed { "PASSED" } else { "FAILED" })?;
        writeln!(
            f,
            "  backup: {} items in {:.2} s ({})",
            self.items_in_backup, self.backup_secs, self.target
        )?;
        writeln!(
            f,
            "  acknowledged writes: {} ({} before the last backup, {} after it, from the stream archive); {} uncertain, {} refused after the drop",
            self.acknowledged, self.acknowledged_before_backup, self.acknowledged_after_backup, self.uncertain, self.refused_after_drop
        )?;
        writeln!(
            f,
            "  RPO: {} missing from before the last backup, {} from the stream archive",
            self.missing_before_backup, self.missing_after_backup
        )?;
        writeln!(
            f,
            "  RTO: {:.2} s from the drop to a serving table; restore {:.2} s at {:.0} items/s; {} changes replayed ({} within a poll of the drop), {} not restored",
            self.rto_secs, self.restore_secs, self.restore_items_per_sec, self.changes_replayed, self.changes_near_moment, self.not_restored
        )?;
        for (key, acked, held) in &self.missing_examples {
            writeln!(f, "  missing: {key}: acknowledged {acked:?}, restored {held:?}")?;
        }
        for (name, bound, measured, held) in &self.assertions {
            writeln!(f, "  {} {name}: {measured:.2} (bound {bound})", if *held { "ok  " } else { "FAIL" })?;
        }
        Ok(())
    }
}

/// What the load knows of one item.
#[derive(Debug, Clone, Copy)]
struct Expected {
    /// The version of its last acknowledged put; `None` after an acknowledged delete.
    version: Option<u64>,
    /// When that write was acknowledged.
    acked_at: Instant,
}

#[derive(Debug, Default)]
struct LoadState {
    expected: HashMap<String, Expected>,
    live: Vec<String>,
    busy: HashSet<String>,
    uncertain: HashSet<String>,
    refused: u64,
    version: u64,
}

#[derive(Debug, Clone, Copy)]
enum Write {
    Put,
    Overwrite,
    Delete,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn item(pk: &str, version: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("v".to_owned(), AttributeValue::N(version.to_string())),
        (WRITTEN_AT.to_owned(), AttributeValue::N(now_ms().to_string())),
        ("body".to_owned(), AttributeValue::S("x".repeat(64))),
    ])
}

/// One write of the load: picks its item, writes, records the answer.
async fn write(client: &aws_sdk_dynamodb::Client, table: &str, state: &Mutex<LoadState>, kind: Write) {
    let (key, version) = {
        let mut s = state.lock().expect("load state");
        s.version += 1;
        let version = s.version;
        let key = match kind {
            Write::Put => format!("k-{}", uuid::Uuid::new_v4().simple()),
            Write::Overwrite | Write::Delete => {
                let free: Vec<&String> = s.live.iter().filter(|k| !s.busy.contains(*k)).collect();
                if free.is_empty() {
                    return;
                }
                free[rand::thread_rng().gen_range(0..free.len())].clone()
            }
        };
        s.busy.insert(key.clone());
        (key, version)
    };
    let result = match kind {
        Write::Delete => client
            .delete_item()
            .table_name(table)
            .key("pk", AttributeValue::S(key.clone()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception())),
        _ => client
            .put_item()
            .table_name(table)
            .set_item(Some(item(&key, version)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception())),
    };
    let mut s = state.lock().expect("load state");
    s.busy.remove(&key);
    match result {
        Ok(()) => {
            let deleted = matches!(kind, Write::Delete);
            s.expected.insert(
                key.clone(),
                Expected { version: (!deleted).then_some(version), acked_at: Instant::now() },
            );
            if deleted {
                s.live.retain(|k| k != &key);
            } else if matches!(kind, Write::Put) {
                s.live.push(key);
            }
        }
        // The table is gone: the write surely did not happen.
        Err(true) => s.refused += 1,
        // No clear answer: the item may hold either state.
        Err(false) => {
            s.uncertain.insert(key);
        }
    }
}

/// Runs a backup drill on the shared DynamoDB Local and returns its report (whether or not
/// the assertions held).
///
/// # Errors
/// When DynamoDB Local, moto or a step of the drill cannot run.
pub async fn run(scenario: &BackupScenario, quiet: bool) -> anyhow::Result<BackupDrillReport> {
    let say = |text: String| {
        if !quiet {
            eprintln!("[{}] {text}", scenario.name);
        }
    };
    let local = DynamoDbLocal::shared().await?;
    let client = local.client().await;
    let def =
        TableDef::new("backup-drill", KeyAttribute::string("pk")).with_stream(StreamView::NewAndOldImages);
    let table = local.create_table(&def).await?;
    let region = RegionSet::builder()
        .region(RegionConfig::new(crate::dynamodb::default_region()).dynamodb_endpoint(local.endpoint()))
        .build()?
        .primary()
        .clone();

    // The target: a fresh directory, or a bucket on a moto server of the drill's own.
    let scratch = std::env::temp_dir().join(format!("lift-backup-drill-{}", uuid::Uuid::new_v4().simple()));
    #[cfg(feature = "s3")]
    let mut _moto = None;
    let target = match scenario.backup.target {
        TargetKind::Dir => BackupTarget::dir(&scratch),
        #[cfg(feature = "s3")]
        TargetKind::S3 => {
            let moto = super::MotoS3::start().await?;
            let s3 = moto.client().await;
            s3.create_bucket().bucket("lift-backups").send().await.context("creating the bucket on moto")?;
            _moto = Some(moto);
            BackupTarget::s3(s3, "lift-backups", &scenario.name)
        }
        #[cfg(not(feature = "s3"))]
        TargetKind::S3 => anyhow::bail!("this harness is built without S3 (feature `s3`)"),
    };

    // Seed the table: acknowledged writes from before any backup.
    let state = Arc::new(Mutex::new(LoadState::default()));
    say(format!("seeding {} items into {table}", scenario.load.seed_items));
    let seeds = Arc::new(Semaphore::new(32));
    let mut seeding = Vec::new();
    for _ in 0..scenario.load.seed_items {
        let permit = seeds.clone().acquire_owned().await?;
        let (client, table, state) = (client.clone(), table.clone(), state.clone());
        seeding.push(tokio::spawn(async move {
            write(&client, &table, &state, Write::Put).await;
            drop(permit);
        }));
    }
    for task in seeding {
        task.await?;
    }

    let archive = StreamArchive::builder(region.clone(), &table)
        .target(target.clone())
        .poll_interval(scenario.backup.archive_poll)
        .time_attribute(WRITTEN_AT)
        .start()
        .await?;

    // The load, open loop, until the drop.
    let (stop_tx, stop_rx) = watch::channel(false);
    let load =
        tokio::spawn(drive(scenario.load.clone(), client.clone(), table.clone(), state.clone(), stop_rx));
    let start = Instant::now();
    tokio::time::sleep_until((start + scenario.backup.at).into()).await;
    say("taking the backup under load".into());
    let backup_started = Instant::now();
    let manifest = TableBackup::builder(client.clone(), &table)
        .target(target.clone())
        .segments(scenario.backup.segments)
        .build()?
        .run()
        .await?;
    let backup_secs = backup_started.elapsed().as_secs_f64();
    tokio::time::sleep_until((start + scenario.backup.drop_at).into()).await;

    say("dropping the table mid-load".into());
    let drop_instant = Instant::now();
    client.delete_table().table_name(&table).send().await.context("dropping the table")?;
    // The moment before the drop is when DeleteTable returned: every write acknowledged
    // until then was made before it (writes sent while it ran still landed).
    let dropped_at = SystemTime::now();
    let _ = stop_tx.send(true);
    load.await?;

    // Recovery: the archive reads the dropped table's stream to its end, then the restore.
    let archive_stats = archive.stop().await?;
    let restored = format!("{table}-restored");
    say(format!("restoring backup {} into {restored}", manifest.backup_id));
    let report: RestoreReport = Restore::builder(client.clone(), target.clone(), &restored)
        .until(PointInTime::Moment(dropped_at))
        .concurrency(scenario.backup.restore_concurrency)
        .replay_archive(scenario.backup.replay_archive)
        .build()?
        .run()
        .await?;
    client
        .get_item()
        .table_name(&restored)
        .key("pk", AttributeValue::S("probe".into()))
        .send()
        .await
        .context("reading the restored table")?;
    let rto_secs = drop_instant.elapsed().as_secs_f64();

    // RPO: every item's last acknowledged write, read back from the restored table.
    let held = scan_versions(&client, &restored).await?;
    let state = std::mem::take(&mut *state.lock().expect("load state"));
    let cut = backup_started;
    let mut figures = (0u64, 0u64, 0u64, 0u64);
    let mut examples = Vec::new();
    for (key, expected) in &state.expected {
        if state.uncertain.contains(key) {
            continue;
        }
        let before = expected.acked_at < cut;
        let ok = held.get(key).copied() == expected.version;
        if !ok && examples.len() < 10 {
            examples.push((key.clone(), expected.version, held.get(key).copied()));
        }
        match (before, ok) {
            (true, true) => figures.0 += 1,
            (false, true) => figures.1 += 1,
            (true, false) => {
                figures.0 += 1;
                figures.2 += 1;
            }
            (false, false) => {
                figures.1 += 1;
                figures.3 += 1;
            }
        }
    }
    let _ = client.delete_table().table_name(&restored).send().await;
    let _ = std::fs::remove_dir_all(&scratch);

    let mut out = BackupDrillReport {
        scenario: scenario.name.clone(),
        passed: true,
        assertions: Vec::new(),
        items_in_backup: manifest.item_count,
        backup_secs,
        acknowledged: figures.0 + figures.1,
        acknowledged_before_backup: figures.0,
        acknowledged_after_backup: figures.1,
        missing_before_backup: figures.2,
        missing_after_backup: figures.3,
        uncertain: state.uncertain.len() as u64,
        refused_after_drop: state.refused,
        archived_records: archive_stats.records,
        archive_errors: archive_stats.errors,
        missing_examples: examples,
        changes_replayed: report.changes_replayed,
        changes_near_moment: report.changes_near_moment,
        not_restored: report.not_restored.len() as u64,
        rto_secs,
        restore_secs: report.duration.as_secs_f64(),
        restore_items_per_sec: report.items_per_sec(),
        target: target.to_string(),
    };
    let a = &scenario.assertions;
    let mut checks = Vec::new();
    if let Some(max) = a.max_missing_acknowledged {
        let missing = out.missing_before_backup + out.missing_after_backup;
        checks.push(("max_missing_acknowledged", max as f64, missing as f64, missing <= max));
    }
    if let Some(max) = a.max_rto_secs {
        checks.push(("max_rto_secs", max, out.rto_secs, out.rto_secs <= max));
    }
    if let Some(min) = a.min_restore_items_per_sec {
        checks.push((
            "min_restore_items_per_sec",
            min,
            out.restore_items_per_sec,
            out.restore_items_per_sec >= min,
        ));
    }
    if let Some(max) = a.max_not_restored {
        checks.push(("max_not_restored", max as f64, out.not_restored as f64, out.not_restored <= max));
    }
    out.assertions = checks.into_iter().map(|(n, b, m, h)| (n.to_owned(), b, m, h)).collect();
    out.passed = out.assertions.iter().all(|a| a.3);
    Ok(out)
}

/// The load until `stop`: writes started at `rate`, at most `concurrency` in flight.
async fn drive(
    load: BackupLoad,
    client: aws_sdk_dynamodb::Client,
    table: String,
    state: Arc<Mutex<LoadState>>,
    mut stop: watch::Receiver<bool>,
) {
    let weight = |k: &str| load.mix.get(k).copied().unwrap_or(0);
    let (put, overwrite, delete) = (weight("put"), weight("overwrite"), weight("delete"));
    let slots = Arc::new(Semaphore::new(load.concurrency));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / load.rate));
    let mut tasks = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let roll = rand::thread_rng().gen_range(0..put + overwrite + delete);
        let kind = if roll < put {
            Write::Put
        } else if roll < put + overwrite {
            Write::Overwrite
        } else {
            Write::Delete
        };
        let (client, table, state) = (client.clone(), table.clone(), state.clone());
        tasks.push(tokio::spawn(async move {
            write(&client, &table, &state, kind).await;
            drop(permit);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Every item's `v` in `table`.
async fn scan_versions(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<HashMap<String, u64>> {
    let mut held = HashMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("scanning the restored table")?;
        for item in page.items() {
            if let (Some(AttributeValue::S(pk)), Some(AttributeValue::N(v))) = (item.get("pk"), item.get("v"))
            {
                held.insert(pk.clone(), v.parse().unwrap_or(0));
            }
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    Ok(held)
}
