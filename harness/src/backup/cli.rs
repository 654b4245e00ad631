//! `lift-harness backup`, `lift-harness restore`, and `lift-harness drill` of a backup
//! scenario.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;
use lift::disaster::backup::{BackupTarget, PointInTime, Restore, StreamArchive, TableBackup};
use lift::disaster::{RegionConfig, RegionSet};

use super::drill::BackupScenario;

/// `lift-harness backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The table to back up.
    #[arg(long)]
    pub table: String,
    /// Where to write: a directory, or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|S3_URL")]
    pub to: String,
    /// Parallel scan segments.
    #[arg(long, default_value_t = 4)]
    pub segments: u32,
    /// The DynamoDB endpoint [default: LIFT_DYNAMODB_ENDPOINT, else AWS].
    #[arg(long, env = "LIFT_DYNAMODB_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Archive the table's stream into the same target from before the backup until
    /// Ctrl-C (point-in-time restores between backups; a restore that replays the archive
    /// needs it to cover the time from the backup's start to the moment).
    #[arg(long)]
    pub archive: bool,
}

/// `lift-harness restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Where the backups are: a directory, or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|S3_URL")]
    pub from: String,
    /// The new table to restore into (it must not exist).
    #[arg(long)]
    pub into: String,
    /// The moment to restore to: `latest`, RFC 3339 (2026-12-03T12:00:00Z) or epoch ms.
    #[arg(long, default_value = "latest")]
    pub until: String,
    /// A backup id instead of the latest that fits the moment.
    #[arg(long)]
    pub backup: Option<String>,
    /// Restore the backup only, without replaying the stream archive.
    #[arg(long)]
    pub no_replay: bool,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The DynamoDB endpoint [default: LIFT_DYNAMODB_ENDPOINT, else AWS].
    #[arg(long, env = "LIFT_DYNAMODB_ENDPOINT")]
    pub endpoint: Option<String>,
}

/// A target from the command line: `s3://bucket/prefix` (S3 at `AWS_ENDPOINT_URL_S3`, else
/// AWS), else a directory.
///
/// # Errors
/// An `s3://` URL without a bucket, or without S3 support built in.
pub async fn parse_target(text: &str) -> anyhow::Result<BackupTarget> {
    let Some(rest) = text.strip_prefix("s3://") else {
        return Ok(BackupTarget::dir(text));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    anyhow::ensure!(!bucket.is_empty(), "{text}: no bucket");
    #[cfg(feature = "s3")]
    {
        let endpoint = lift::config::Env::process().get("AWS_ENDPOINT_URL_S3");
        let client = super::s3_client(endpoint.as_deref()).await;
        Ok(BackupTarget::s3(client, bucket, prefix))
    }
    #[cfg(not(feature = "s3"))]
    {
        let _ = prefix;
        anyhow::bail!("{text}: this harness is built without S3 (feature `s3`)")
    }
}

/// `latest`, RFC 3339, or epoch milliseconds.
///
/// # Errors
/// Anything else.
pub fn parse_point_in_time(text: &str) -> anyhow::Result<PointInTime> {
    if text == "latest" {
        return Ok(PointInTime::Latest);
    }
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(PointInTime::Moment(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)));
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not `latest`, RFC 3339 or epoch milliseconds"))?;
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).context("a moment before 1970")?;
    Ok(PointInTime::Moment(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)))
}

fn region(endpoint: Option<&str>) -> anyhow::Result<lift::disaster::Region> {
    let mut config = RegionConfig::new(crate::dynamodb::default_region());
    if let Some(endpoint) = endpoint {
        config = config.dynamodb_endpoint(endpoint);
    }
    Ok(RegionSet::builder().region(config).build()?.primary().clone())
}

/// `lift-harness backup`.
///
/// # Errors
/// When the backup fails.
pub async fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let region = region(args.endpoint.as_deref())?;
    let target = parse_target(&args.to).await?;
    let archive = if args.archive {
        Some(StreamArchive::builder(region.clone(), &args.table).target(target.clone()).start().await?)
    } else {
        None
    };
    let manifest = TableBackup::builder(region.dynamodb().clone(), &args.table)
        .target(target.clone())
        .segments(args.segments)
        .build()?
        .run()
        .await?;
    println!(
        "backup {} of {}: {} items in {} segments, {:.2} s, in {target}",
        manifest.backup_id,
        manifest.table,
        manifest.item_count,
        manifest.segments.len(),
        (manifest.ended_at_ms - manifest.started_at_ms) as f64 / 1000.0
    );
    if let Some(archive) = archive {
        println!("archiving the stream of {} into {target}; Ctrl-C to stop", args.table);
        tokio::signal::ctrl_c().await?;
        let stats = archive.stop().await?;
        println!("archived {} changes in {} chunks", stats.records, stats.chunks);
    }
    Ok(())
}

/// `lift-harness restore`.
///
/// # Errors
/// When the restore is refused or fails, or some items could not be restored.
pub async fn run_restore(args: RestoreArgs) -> anyhow::Result<()> {
    let region = region(args.endpoint.as_deref())?;
    let target = parse_target(&args.from).await?;
    let mut restore = Restore::builder(region.dynamodb().clone(), target, &args.into)
        .until(parse_point_in_time(&args.until)?)
        .replay_archive(!args.no_replay)
        .concurrency(args.concurrency);
    if let Some(id) = args.backup {
        restore = restore.backup(id);
    }
    let report = restore.build()?.run().await?;
    println!(
        "restored backup {} into {}: {} items, {} changes replayed ({} later than the moment left out, {} within a poll of it), {:.2} s, {:.0} items/s",
        report.backup_id,
        report.table,
        report.items_from_backup,
        report.changes_replayed,
        report.changes_after_moment,
        report.changes_near_moment,
        report.duration.as_secs_f64(),
        report.items_per_sec()
    );
    for failure in &report.not_restored {
        println!("not restored: {} ({})", failure.key, failure.reason);
    }
    anyhow::ensure!(
        report.not_restored.is_empty(),
        "{} items or changes could not be restored",
        report.not_restored.len()
    );
    Ok(())
}

/// `lift-harness drill FILE` for a backup scenario: runs it, prints the summary, writes
/// `<out>/<name>.json`, fails when an assertion fails. `Ok(false)` when the file is not a
/// backup scenario (or cannot be read).
///
/// # Errors
/// When the drill cannot run or an assertion fails.
pub async fn run_drill_file(file: &Path, out: Option<PathBuf>, quiet: bool) -> anyhow::Result<bool> {
    run_drill_file_with(super::Items::default(), file, out, quiet).await
}

/// Runs the backup drill in `file` over `workload` when the file is one (it has a
/// `[backup]` table): prints the summary, writes the JSON, HTML and JUnit reports into `out`
/// (default `target/drill-reports`), and fails when an assertion fails. `Ok(false)` when
/// the file is not a backup drill.
///
/// # Errors
/// When the scenario is invalid, the drill cannot run, or an assertion failed.
pub async fn run_drill_file_with<W: crate::Workload>(
    workload: W,
    file: &Path,
    out: Option<PathBuf>,
    quiet: bool,
) -> anyhow::Result<bool> {
    // A file this binary cannot read is left to the caller, which says why.
    let Ok(text) = std::fs::read_to_string(file) else { return Ok(false) };
    if !BackupScenario::is_backup_drill(&text) {
        return Ok(false);
    }
    let scenario = BackupScenario::parse(&text).with_context(|| file.display().to_string())?;
    let report = super::run_drill_with(&scenario, workload, quiet).await?;
    println!("{report}");
    let dir = out.unwrap_or_else(|| PathBuf::from(crate::drill::DEFAULT_REPORT_DIR));
    let files = report.write_to(&dir)?;
    println!("reports: {}, {}, {}", files.json.display(), files.html.display(), files.junit.display());
    anyhow::ensure!(
        report.passed,
        "drill {} failed: {}",
        report.scenario,
        report.failed_assertions().join(", ")
    );
    Ok(true)
}
