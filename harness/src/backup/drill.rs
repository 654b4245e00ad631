//! The backup drill (`scenarios/backup_restore.toml`): under load a backup is taken while a
//! stream archive runs, the table is dropped mid-load, and a restore brings it back to the
//! moment before the drop. Measures RTO, RPO (split by the last backup) and restore rate.
//! The backup and the archive are signed with a key of the drill's own, and the restore
//! verifies them with it, as in service.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use lift::disaster::backup::{
    BackupKey, BackupTarget, PointInTime, Restore, RestoreReport, StreamArchive, TableBackup,
};
use lift::disaster::{RegionConfig, RegionRouter, RegionSet, ReplicatedTable};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::items::{Items, UNCLEAR};
use crate::cost::CapacityProxy;
use crate::drill::duration::serde_duration;
use crate::drill::load::Driver;
use crate::drill::metrics::Recorder;
use crate::drill::{drill_table_def, DrillCost, FailoverClient, Load, Mix, ReplicationMode, ReportFiles};
use crate::dynamodb::DynamoDbLocal;
use crate::workload::{key_label, Acked, Workload};

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

/// The load: the workload's operations, started at a rate, before and through the drop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupLoad {
    /// Operations started per second.
    pub rate: f64,
    /// Operations of [`seed_op`](Self::seed_op) run before the load starts (the table's
    /// starting size), as fast as `concurrency` allows.
    #[serde(default)]
    pub seed_items: u64,
    /// The operation that seeds the table: the workload's first operation when absent
    /// (`put`, `create`, `register`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_op: Option<String>,
    /// Most operations in flight.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The deadline of one operation; a later answer is an error.
    #[serde(default = "default_timeout", with = "serde_duration")]
    pub timeout: Duration,
    /// Weights by the workload's operation names (for the harness's own workload: `put`,
    /// `overwrite`, `delete`); the workload's default mix when absent.
    #[serde(default)]
    pub mix: BTreeMap<String, u32>,
}

fn default_concurrency() -> usize {
    64
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
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
        s.validate()?;
        Ok(s)
    }

    /// The checks of [`parse`](Self::parse), for a scenario built or changed in code too
    /// ([`run_drill`](super::run_drill) makes them before anything runs).
    ///
    /// # Errors
    /// When the timeline cannot work, or the drill asserts nothing and so could not fail.
    pub fn validate(&self) -> anyhow::Result<()> {
        let s = self;
        anyhow::ensure!(s.load.rate > 0.0, "load.rate must be greater than zero");
        anyhow::ensure!(s.backup.at < s.backup.drop_at, "backup.at must come before backup.drop_at");
        anyhow::ensure!(s.load.concurrency > 0, "load.concurrency must be at least 1");
        anyhow::ensure!(!s.load.timeout.is_zero(), "load.timeout must be greater than zero");
        anyhow::ensure!(s.backup.segments > 0, "backup.segments must be at least 1");
        let a = &s.assertions;
        anyhow::ensure!(
            a.max_missing_acknowledged.is_some()
                || a.max_rto_secs.is_some()
                || a.min_restore_items_per_sec.is_some()
                || a.max_not_restored.is_some(),
            "no [assertions]: a drill that asserts nothing cannot fail; bound at least one figure \
             (max_missing_acknowledged bounds the writes lost)"
        );
        Ok(())
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
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// The workload driven (`items`, `payments`, `health-records`).
    pub workload: String,
    /// Whether every assertion held.
    pub passed: bool,
    /// Each assertion: (name, bound, measured, held).
    pub assertions: Vec<(String, f64, f64, bool)>,
    /// Items in the backup.
    pub items_in_backup: u64,
    /// How long the backup took.
    pub backup_secs: f64,
    /// Items whose last write was acknowledged (seed and load), each checked at it. An item
    /// whose last write had no clear answer is not among them, whatever came before.
    pub acknowledged: u64,
    /// Of them, whose last acknowledged effect came before the last backup started.
    pub acknowledged_before_backup: u64,
    /// Of them, whose last acknowledged effect came after (recoverable only from the
    /// stream archive).
    pub acknowledged_after_backup: u64,
    /// Acknowledged effects missing or stale after the restore, made before the last backup.
    pub missing_before_backup: u64,
    /// Acknowledged effects missing or stale after the restore, made after the last backup.
    pub missing_after_backup: u64,
    /// Per operation kind: items checked and lost (the unclear ones under `unclear`).
    pub by_op: BTreeMap<String, (u64, u64)>,
    /// Items whose last write had no clear answer (a timeout, a lost connection): it may
    /// have landed or not. Known for workloads that say which (the harness's own `items`).
    #[serde(default)]
    pub unclear: u64,
    /// Of them, held after the restore neither as before that write nor as after it (an
    /// older version, or one never written whole).
    #[serde(default)]
    pub unclear_in_neither_state: u64,
    /// Operations that failed before the drop, by error class (not acknowledged: their
    /// effect, if any, is not checked).
    pub failed_before_drop: BTreeMap<String, u64>,
    /// Operations refused or failed after the drop.
    pub failed_after_drop: u64,
    /// Operations the load could not start (`concurrency` in flight).
    pub shed: u64,
    /// Stream records archived.
    pub archived_records: u64,
    /// Failed archive requests (each retried).
    pub archive_errors: u64,
    /// Up to ten keys missing or stale after the restore, with their operation and whether
    /// their last effect came before the last backup.
    pub missing_examples: Vec<String>,
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
    /// What the drill's DynamoDB requests (seed, load, backup scan, restore writes, checks)
    /// consumed, priced on demand in the drill's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<DrillCost>,
}

impl BackupDrillReport {
    /// Names of the failed assertions.
    pub fn failed_assertions(&self) -> Vec<&str> {
        self.assertions.iter().filter(|a| !a.3).map(|a| a.0.as_str()).collect()
    }

    /// Writes `<dir>/<scenario>.json`, `.html` and `.junit.xml`.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<ReportFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = ReportFiles {
            json: dir.join(format!("{}.json", self.scenario)),
            html: dir.join(format!("{}.html", self.scenario)),
            junit: dir.join(format!("{}.junit.xml", self.scenario)),
        };
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        for (path, text) in [
            (&files.json, json),
            (&files.html, super::report::html(self)),
            (&files.junit, super::report::junit(self)),
        ] {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(files)
    }
}

impl std::fmt::Display for BackupDrillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "backup drill {} ({}): {}",
            self.scenario,
            self.workload,
            if self.passed { "PASSED" } else { "FAILED" }
        )?;
        writeln!(
            f,
            "  backup: {} items in {:.2} s ({})",
            self.items_in_backup, self.backup_secs, self.target
        )?;
        let failed: u64 = self.failed_before_drop.values().sum();
        writeln!(
            f,
            "  acknowledged: {} items ({} last written before the last backup, {} after it, from the stream archive); {failed} operations failed before the drop {:?}, {} after it, {} shed",
            self.acknowledged,
            self.acknowledged_before_backup,
            self.acknowledged_after_backup,
            self.failed_before_drop,
            self.failed_after_drop,
            self.shed
        )?;
        writeln!(
            f,
            "  unclear: {} items whose last write had no clear answer, {} of them in neither state",
            self.unclear, self.unclear_in_neither_state
        )?;
        writeln!(
            f,
            "  RPO: {} missing from before the last backup, {} from the stream archive",
            self.missing_before_backup, self.missing_after_backup
        )?;
        let kinds: Vec<String> =
            self.by_op.iter().map(|(op, (checked, lost))| format!("{op} {lost}/{checked} lost")).collect();
        writeln!(f, "  by operation: {}", kinds.join(", "))?;
        writeln!(
            f,
            "  RTO: {:.2} s from the drop to a serving table; restore {:.2} s at {:.0} items/s; {} changes replayed ({} within a poll of the drop), {} not restored",
            self.rto_secs,
            self.restore_secs,
            self.restore_items_per_sec,
            self.changes_replayed,
            self.changes_near_moment,
            self.not_restored
        )?;
        if let Some(cost) = &self.cost {
            writeln!(f, "  cost: {}", cost.line())?;
        }
        for example in &self.missing_examples {
            writeln!(f, "  missing: {example}")?;
        }
        for (name, bound, measured, held) in &self.assertions {
            writeln!(f, "  {} {name}: {measured:.2} (bound {bound})", if *held { "ok  " } else { "FAIL" })?;
        }
        Ok(())
    }
}

/// A backup drill of `scenario` over the harness's own [`Items`] workload (what
/// `lift-harness drill` runs); a service drills its own workload with [`run_with`].
///
/// # Errors
/// When DynamoDB Local, moto or a step of the drill cannot run.
pub async fn run(scenario: &BackupScenario, quiet: bool) -> anyhow::Result<BackupDrillReport> {
    run_with(scenario, Items::default(), quiet).await
}

/// Runs a backup drill of `scenario` over `workload` on the shared DynamoDB Local, and
/// returns its report (whether or not the assertions held).
///
/// The stages run in one direction: provision (the workload's table with a stream, the
/// backup target, a one-region client) → seed → archive the stream → drive the load →
/// back up at `backup.at` → drop the table at `backup.drop_at` (the fault) → restore to
/// the moment before the drop → check every acknowledged effect in the restored table with
/// the workload's own [`Workload::check`] → analyse (split by the last backup) → assert.
///
/// # Errors
/// When the mix does not fit the workload, or DynamoDB Local, moto or a step of the drill
/// cannot run.
pub async fn run_with<W: Workload>(
    scenario: &BackupScenario,
    workload: W,
    quiet: bool,
) -> anyhow::Result<BackupDrillReport> {
    let say = |text: String| {
        if !quiet {
            eprintln!("[{}] {text}", scenario.name);
        }
    };
    scenario.validate()?;
    let workload = Arc::new(workload);
    let (load, weights) = drill_load(scenario, &*workload)?;
    let seed_op = seed_op(scenario, &*workload)?;

    // Provision: the workload's table (with a stream, as drills use it) in one region.
    let local = DynamoDbLocal::shared().await?;
    let def = drill_table_def(workload.table());
    let physical = local.create_table(&def).await?;
    let region_name = crate::dynamodb::default_region();
    // Every request of the drill (load, backup, restore, checks) passes a meter that asks
    // DynamoDB for the units it consumed: the drill's cost.
    let meter = CapacityProxy::start(local.endpoint()).await.context("starting the capacity meter")?;
    let regions = RegionSet::builder()
        .operation_timeout(scenario.load.timeout)
        .region(RegionConfig::new(region_name.clone()).dynamodb_endpoint(meter.endpoint()))
        .build()?;
    // The drill's own steps (backup, drop, archive, restore, check) go through a client of
    // their own, whose deadline fits a scan page or a batch of a large table.
    let admin = RegionSet::builder()
        .operation_timeout(Duration::from_secs(60))
        .region(RegionConfig::new(region_name.clone()).dynamodb_endpoint(meter.endpoint()))
        .build()?;
    let region = admin.primary().clone();
    let client = region.dynamodb().clone();
    let table = ReplicatedTable::new(def.clone()).with_name_in(region_name.clone(), physical.clone());
    let failover = Arc::new(FailoverClient {
        router: RegionRouter::new(regions.clone()),
        regions: regions.clone(),
        table: table.clone(),
        health: watch::channel(Default::default()).1,
        observer: lift::disaster::RequestObserver::disabled(),
        mode: ReplicationMode::Async,
        sync_timeout: scenario.load.timeout,
        degraded: Default::default(),
        break_updates: false,
    });
    let driver = Driver { load: load.clone(), weights, workload: workload.clone(), client: failover };

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

    // The drill's target is its own and deleted at the end, and so is its signing key: fresh
    // random bytes, never written anywhere.
    let key = BackupKey::new(rand::random::<[u8; 32]>())?;

    // The stream archive runs from the start, as it would in service: it keeps up with the
    // seed, so each change is placed in time within a poll of its write.
    let archive = StreamArchive::builder(region.clone(), &physical)
        .target(target.clone())
        .key(key.clone())
        .poll_interval(scenario.backup.archive_poll)
        .start()
        .await?;

    // Seed: acknowledged effects from before any backup.
    say(format!(
        "seeding {physical} with {} {seed_op} operations of {}",
        scenario.load.seed_items,
        workload.name()
    ));
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let seeding = Arc::new(Recorder::new(Instant::now()));
    let mut seeds = tokio::task::JoinSet::new();
    for _ in 0..scenario.load.seed_items {
        while seeds.len() >= scenario.load.concurrency {
            seeds.join_next().await;
        }
        let op = workload.next(seed_op, &load);
        seeding.begin();
        seeds.spawn(driver.clone().one(op, seeding.clone(), acked.clone()));
    }
    while seeds.join_next().await.is_some() {}
    let seed_failures = seeding.records().iter().filter(|r| !r.ok).count();
    anyhow::ensure!(
        seed_failures == 0,
        "{seed_failures} of {} seed operations failed: the table was not seeded",
        scenario.load.seed_items
    );

    // The load, open loop, until the drop.
    let start = Instant::now();
    let recorder = Arc::new(Recorder::new(start));
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = tokio::spawn(driver.clone().run(recorder.clone(), acked.clone(), stop_rx));
    tokio::time::sleep_until((start + scenario.backup.at).into()).await;
    say("taking the backup under load".into());
    // Every effect acknowledged from here on came after the backup started.
    let cut = acked.lock().expect("acked lock").len();
    let backup_started = Instant::now();
    let manifest = TableBackup::builder(client.clone(), &physical)
        .target(target.clone())
        .key(key.clone())
        .segments(scenario.backup.segments)
        .build()?
        .run()
        .await?;
    let backup_secs = backup_started.elapsed().as_secs_f64();
    tokio::time::sleep_until((start + scenario.backup.drop_at).into()).await;

    // The fault: the table dropped mid-load.
    say("dropping the table mid-load".into());
    let drop_instant = Instant::now();
    client.delete_table().table_name(&physical).send().await.context("dropping the table")?;
    // The moment before the drop is when DeleteTable returned: every write acknowledged
    // until then was made before it (writes sent while it ran still landed).
    let dropped_at = SystemTime::now();
    let drop_ms = recorder.ms(drop_instant);
    let _ = stop_tx.send(true);
    running.await?;

    // Recovery: the archive reads the dropped table's stream to its end, then the restore.
    let archive_stats = archive.stop().await?;
    let restored = format!("{physical}-restored");
    say(format!("restoring backup {} into {restored}", manifest.backup_id));
    let restore: RestoreReport = Restore::builder(client.clone(), target.clone(), &restored)
        .source_table(&physical)
        .key(key)
        .until(PointInTime::Moment(dropped_at))
        .concurrency(scenario.backup.restore_concurrency)
        .replay_archive(scenario.backup.replay_archive)
        .build()?
        .run()
        .await?;
    let probe = workload.heartbeat_key(0);
    client
        .get_item()
        .table_name(&restored)
        .set_key(Some(probe))
        .send()
        .await
        .context("reading the restored table")?;
    let rto_secs = drop_instant.elapsed().as_secs_f64();

    // Check: every acknowledged effect, read back from the restored table by the workload.
    let acked = std::mem::take(&mut *acked.lock().expect("acked lock"));
    let restored_table = ReplicatedTable::new(def).with_name_in(region_name.clone(), restored.clone());
    let check =
        workload.check(&region, &restored_table, &acked).await.context("checking the restored table")?;
    let cost = DrillCost::price(
        &lift_monitoring::cost::PriceTable::embedded(),
        &[(region_name.clone(), meter.drain())],
        recorder.records().len() as u64 + scenario.load.seed_items,
    );
    let _ = client.delete_table().table_name(&restored).send().await;
    let _ = std::fs::remove_dir_all(&scratch);

    // Analyse: each item at its last acknowledged effect, before or after the cut. An item
    // whose last write had no clear answer is counted apart, not as acknowledged.
    let unclear: HashSet<String> = (&*workload as &dyn std::any::Any)
        .downcast_ref::<Items>()
        .map(Items::unclear_labels)
        .unwrap_or_default();
    let last = last_acknowledged(&acked, &unclear);
    let lost: Vec<(String, String)> = check
        .by_op
        .iter()
        .filter(|(op, _)| op.as_str() != UNCLEAR)
        .flat_map(|(op, c)| c.missing.iter().chain(c.stale.iter()).map(move |k| (key_label(k), op.clone())))
        .collect();
    let unclear_in_neither_state = check.by_op.get(UNCLEAR).map_or(0, |c| c.lost());
    let before = |label: &str| last.get(label).is_some_and(|(i, _)| *i < cut);
    let acknowledged_before_backup = last.values().filter(|(i, _)| *i < cut).count() as u64;
    let missing_before_backup = lost.iter().filter(|(l, _)| before(l)).count() as u64;
    let missing_examples = lost
        .iter()
        .take(10)
        .map(|(label, op)| {
            let when = if before(label) { "before the last backup" } else { "after the last backup" };
            format!("{label} ({op}, last acknowledged {when})")
        })
        .collect();
    let records = recorder.records();
    let mut failed_before_drop = BTreeMap::new();
    let mut failed_after_drop = 0;
    for r in records.iter().filter(|r| !r.ok) {
        if r.end_ms < drop_ms {
            *failed_before_drop.entry(r.error.clone().unwrap_or_default()).or_insert(0) += 1;
        } else {
            failed_after_drop += 1;
        }
    }
    let mut out = BackupDrillReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        workload: workload.name().to_owned(),
        passed: true,
        assertions: Vec::new(),
        items_in_backup: manifest.item_count,
        backup_secs,
        acknowledged: last.len() as u64,
        acknowledged_before_backup,
        acknowledged_after_backup: last.len() as u64 - acknowledged_before_backup,
        missing_before_backup,
        missing_after_backup: lost.len() as u64 - missing_before_backup,
        by_op: check.by_op.iter().map(|(op, c)| (op.clone(), (c.checked, c.lost()))).collect(),
        unclear: unclear.len() as u64,
        unclear_in_neither_state,
        failed_before_drop,
        failed_after_drop,
        shed: recorder.shed_count(),
        archived_records: archive_stats.records,
        archive_errors: archive_stats.errors,
        missing_examples,
        changes_replayed: restore.changes_replayed,
        changes_near_moment: restore.changes_near_moment,
        not_restored: restore.not_restored.len() as u64,
        rto_secs,
        restore_secs: restore.duration.as_secs_f64(),
        restore_items_per_sec: restore.items_per_sec(),
        target: target.to_string(),
        cost: Some(cost),
    };
    assert_report(&scenario.assertions, &mut out);
    Ok(out)
}

/// Per item, its last acknowledged effect (its place in `acked`, its operation), leaving out
/// the items in `unclear`: their last write had no clear answer, whatever was acknowledged
/// before it.
fn last_acknowledged(acked: &[Acked], unclear: &HashSet<String>) -> HashMap<String, (usize, &'static str)> {
    let mut last = HashMap::new();
    for (i, a) in acked.iter().enumerate() {
        let label = key_label(a.effect.key());
        if !unclear.contains(&label) {
            last.insert(label, (i, a.op));
        }
    }
    last
}

/// Assert: each bound the scenario sets, against the measured figures.
fn assert_report(a: &BackupAssertions, out: &mut BackupDrillReport) {
    let mut checks = Vec::new();
    if let Some(max) = a.max_missing_acknowledged {
        let missing = out.missing_before_backup + out.missing_after_backup;
        checks.push(("max_missing_acknowledged", max as f64, missing as f64, missing <= max));
        // A write with no clear answer may be there or not, but never otherwise.
        let neither = out.unclear_in_neither_state;
        checks.push(("max_unclear_in_neither_state", 0.0, neither as f64, neither == 0));
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
}

/// The drill engine's load settings for the backup scenario's load, and the mix's weights
/// by the workload's operations.
type Weights = Vec<(&'static str, u32)>;
fn drill_load<W: Workload>(scenario: &BackupScenario, workload: &W) -> anyhow::Result<(Load, Weights)> {
    let mix =
        Mix(if scenario.load.mix.is_empty() { workload.default_mix() } else { scenario.load.mix.clone() });
    let weights = mix.resolve(workload.name(), workload.operations())?;
    workload.check_mix(&mix.0).map_err(|e| anyhow::anyhow!("load.mix: {e}"))?;
    let load = Load {
        rate: scenario.load.rate,
        duration: scenario.backup.drop_at,
        timeout: scenario.load.timeout,
        concurrency: scenario.load.concurrency,
        tenants: 8,
        mix,
        warmup: Duration::ZERO,
    };
    Ok((load, weights))
}

/// The workload's operation that seeds the table.
fn seed_op<W: Workload>(scenario: &BackupScenario, workload: &W) -> anyhow::Result<&'static str> {
    let ops = workload.operations();
    match &scenario.load.seed_op {
        None => ops.first().copied().ok_or_else(|| anyhow::anyhow!("{} has no operations", workload.name())),
        Some(name) => ops.iter().find(|op| *op == name).copied().ok_or_else(|| {
            anyhow::anyhow!(
                "load.seed_op: unknown operation {name:?}; {} has {}",
                workload.name(),
                ops.join(", ")
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use lift::disaster::AckedWrite;

    use super::*;
    use crate::workload::Effect;

    fn acked(op: &'static str, key: &str) -> Acked {
        let key = [("pk".to_owned(), AttributeValue::S(key.to_owned()))].into();
        let effect =
            if op == "delete" { Effect::Deleted(key) } else { Effect::Written(AckedWrite::new(key)) };
        Acked { op, region: "us-east-1".into(), effect }
    }

    /// An item whose last write had no clear answer is not counted as acknowledged, though
    /// an earlier write of it was.
    #[test]
    fn an_item_whose_last_write_was_unclear_is_not_counted_as_acknowledged() {
        let acked = [acked("put", "a"), acked("put", "b"), acked("overwrite", "a"), acked("delete", "c")];
        let unclear: HashSet<String> = ["a".to_owned(), "d".to_owned()].into();
        let last = last_acknowledged(&acked, &unclear);
        let mut keys: Vec<&str> = last.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["b", "c"]);
        assert_eq!(last["c"], (3, "delete"));
        assert_eq!(last_acknowledged(&acked, &HashSet::new()).len(), 3);
    }
}
