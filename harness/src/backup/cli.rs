//! `lift-harness backup`, `lift-harness restore`, and `lift-harness drill` of a backup
//! scenario.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;
use lift::disaster::backup::{
    BackupKey, BackupTarget, PointInTime, Restore, StreamArchive, TableBackup, BACKUP_KEY_ENV,
};
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
    /// A file holding the key that signs the backup and the archive (its text, at least 32
    /// bytes) [default: the key in LIFT_BACKUP_KEY].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
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
    /// The table the backup was taken of (required): its name or its ARN
    /// (arn:aws:dynamodb:<region>:<account>:table/<name>). Only a backup whose signed
    /// manifest names this table is restored, never one of another table in the same
    /// target, even when it is signed with the same key; a name matches its ARN, an ARN of
    /// another region or account does not. A malformed ARN is refused.
    #[arg(long, value_name = "TABLE")]
    pub source_table: String,
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
    /// A file holding the key the backups were signed with (its text, at least 32 bytes)
    /// [default: the key in LIFT_BACKUP_KEY].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Restore a backup or archive chunks written before lift signed them. Their contents
    /// are not authenticated: anyone who could write the target could have changed them.
    /// Signed ones are still verified when a key is given.
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// The backup key: the text of `file` when given, else `LIFT_BACKUP_KEY`. Errors never hold
/// the key.
///
/// # Errors
/// When neither is set, the file cannot be read or is not text, or the key is shorter
/// than 32 bytes.
pub fn backup_key(file: Option<&Path>) -> anyhow::Result<BackupKey> {
    backup_key_with(file, lift::config::process_env)
}

/// [`backup_key`], reading variables through `lookup`; `Ok(None)` when neither a file nor
/// the variable is given.
fn optional_key(
    file: Option<&Path>,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<BackupKey>> {
    if let Some(file) = file {
        let bytes =
            std::fs::read(file).with_context(|| format!("reading the backup key file {}", file.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("the backup key file {} does not hold text", file.display()))?;
        let key =
            BackupKey::from_secret(&text).with_context(|| format!("the backup key in {}", file.display()))?;
        return Ok(Some(key));
    }
    if lift::config::Env::from_lookup(&lookup).get(BACKUP_KEY_ENV).is_none() {
        return Ok(None);
    }
    Ok(Some(BackupKey::from_env_vars(lookup)?))
}

fn backup_key_with(
    file: Option<&Path>,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<BackupKey> {
    optional_key(file, lookup)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no backup key: backups are signed and restores verify them; set {BACKUP_KEY_ENV} or pass \
             --key-file FILE (at least 32 bytes of secret text, e.g. from `openssl rand -hex 32`)"
        )
    })
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
    let key = backup_key(args.key_file.as_deref())?;
    let region = region(args.endpoint.as_deref())?;
    let target = parse_target(&args.to).await?;
    let archive = if args.archive {
        Some(
            StreamArchive::builder(region.clone(), &args.table)
                .target(target.clone())
                .key(key.clone())
                .start()
                .await?,
        )
    } else {
        None
    };
    let manifest = TableBackup::builder(region.dynamodb().clone(), &args.table)
        .target(target.clone())
        .key(key.clone())
        .segments(args.segments)
        .build()?
        .run()
        .await?;
    println!(
        "backup {} of {}: {} items in {} segments, {:.2} s, in {target}, signed with key {}",
        manifest.backup_id,
        manifest.table,
        manifest.item_count,
        manifest.segments.len(),
        (manifest.ended_at_ms - manifest.started_at_ms) as f64 / 1000.0,
        key.id()
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
    // Without --allow-unsigned the key is required; with it, a key still verifies what is signed.
    let key = if args.allow_unsigned {
        optional_key(args.key_file.as_deref(), lift::config::process_env)?
    } else {
        Some(backup_key(args.key_file.as_deref())?)
    };
    let region = region(args.endpoint.as_deref())?;
    let target = parse_target(&args.from).await?;
    let mut restore = Restore::builder(region.dynamodb().clone(), target, &args.into)
        .source_table(&args.source_table)
        .until(parse_point_in_time(&args.until)?)
        .replay_archive(!args.no_replay)
        .allow_unsigned(args.allow_unsigned)
        .concurrency(args.concurrency);
    if let Some(id) = args.backup {
        restore = restore.backup(id);
    }
    if let Some(key) = key {
        restore = restore.key(key);
    }
    let report = restore.build()?.run().await?;
    if !report.authenticated {
        eprintln!(
            "warning: backup {} or archive chunks it replayed carry no signature (--allow-unsigned): \
             what was restored is not authenticated",
            report.backup_id
        );
    }
    println!(
        "restored backup {} of {} into {}: {} items, {} changes replayed ({} later than the moment left out, {} within a poll of it), {:.2} s, {:.0} items/s",
        report.backup_id,
        args.source_table,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Restore {
        #[command(flatten)]
        args: RestoreArgs,
    }

    /// The source table is stated by the operator, never read from the backup: a restore
    /// without it does not parse, and the message names the flag.
    #[test]
    fn a_restore_needs_the_source_table() {
        let err = Restore::try_parse_from(["restore", "--from", "/backups", "--into", "orders-restored"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let text = err.to_string();
        assert!(text.contains("--source-table <TABLE>"), "{text}");
        let parsed = Restore::try_parse_from([
            "restore",
            "--from",
            "/backups",
            "--into",
            "orders-restored",
            "--source-table",
            "orders",
        ])
        .unwrap();
        assert_eq!(parsed.args.source_table, "orders");
    }

    const SECRET: &str = "an example backup key of 32+ bytes, for tests";

    fn env(value: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
        move |name: &str| (name == BACKUP_KEY_ENV).then(|| value.map(str::to_owned)).flatten()
    }

    #[test]
    fn the_key_comes_from_the_file_else_the_environment_and_never_shows_in_errors() {
        let err = format!("{:#}", backup_key_with(None, env(None)).unwrap_err());
        assert!(
            err.contains("no backup key") && err.contains("LIFT_BACKUP_KEY") && err.contains("--key-file"),
            "{err}"
        );
        let from_env = backup_key_with(None, env(Some(SECRET))).unwrap();
        assert_eq!(from_env.id(), BackupKey::from_secret(SECRET).unwrap().id());

        let dir = std::env::temp_dir().join(format!("lift-backup-key-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, format!("{}\n", "f".repeat(64))).unwrap();
        // The file wins over the environment.
        let from_file = backup_key_with(Some(&file), env(Some(SECRET))).unwrap();
        assert_eq!(from_file.id(), BackupKey::from_secret(&"f".repeat(64)).unwrap().id());

        std::fs::write(&file, "short secret").unwrap();
        let err = format!("{:#}", backup_key_with(Some(&file), env(None)).unwrap_err());
        assert!(err.contains("at least 32 bytes") && !err.contains("short secret"), "{err}");
        std::fs::write(&file, [0xff, 0xfe, 0x00]).unwrap();
        assert!(format!("{:#}", backup_key_with(Some(&file), env(None)).unwrap_err())
            .contains("does not hold text"));
        let missing = dir.join("absent");
        assert!(format!("{:#}", backup_key_with(Some(&missing), env(None)).unwrap_err())
            .contains("reading the backup key file"));
        let err = format!("{:#}", backup_key_with(None, env(Some("short secret"))).unwrap_err());
        assert!(
            err.contains("LIFT_BACKUP_KEY must hold at least 32 bytes") && !err.contains("short secret"),
            "{err}"
        );
        assert!(optional_key(None, env(None)).unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
