//! Backup and restore of DynamoDB tables, with point-in-time recovery from a stream
//! archive (feature `backup`; S3 targets with `backup-s3`).
//!
//! # The parts
//!
//! - **Backup.** A [`TableBackup`] takes a logical backup of a table: a parallel segmented
//!   Scan (strongly consistent), each segment written as gzip JSON lines (one item a line,
//!   in DynamoDB JSON), then a [`Manifest`] with the table's definition (from
//!   DescribeTable), the item count and SHA-256 of every segment, and when the backup
//!   started and ended.
//! - **Targets.** A [`BackupTarget`]: a local directory, or an S3 bucket and prefix
//!   (feature `backup-s3`; any S3 endpoint, moto's server in tests).
//! - **Point-in-time recovery.** A [`StreamArchive`] keeps every change of the table's
//!   DynamoDB Stream in the same target while backups run, so a restore can replay the
//!   changes up to a chosen moment between two backups. DynamoDB Local has no PITR API;
//!   **with real AWS, prefer native point-in-time recovery** (35 days, to the second,
//!   `RestoreTableToPointInTime`) and keep this archive for copies outside the account.
//! - **Restore.** A [`Restore`] brings a backup back into a *new* table (it refuses a
//!   table that exists, never merging into one): it checks every segment against the
//!   manifest first (a missing, changed, truncated or miscounted segment is refused with
//!   an error that names it), checks that the archive holds every change from the backup's
//!   start to the moment (a lost chunk, or time no archive run covered, is refused), creates
//!   the table, writes the items, replays the archived changes up to the [`PointInTime`],
//!   and reports in a [`RestoreReport`] what it could not restore.
//!
//! # Consistency
//!
//! A Scan is not a snapshot: an item changed during it may be read before or after the
//! change. A restore replays every archived change from the backup's start (less a margin,
//! 10 s by default),
//! per item in stream order, so each restored item ends as its last change at or before
//! the moment, or as the scan read it when it did not change. A restore that replays the
//! archive refuses one that does not cover the backup's start to the moment; with
//! `replay_archive(false)` it gives the table as the scan saw it.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn run(region: lift::disaster::Region) -> Result<(), lift::disaster::backup::BackupError> {
//! use lift::disaster::backup::{BackupTarget, PointInTime, Restore, StreamArchive, TableBackup};
//!
//! let target = BackupTarget::dir("/var/backups/orders");
//! let archive = StreamArchive::builder(region.clone(), "orders").target(target.clone()).start().await?;
//! let manifest = TableBackup::builder(region.dynamodb().clone(), "orders")
//!     .target(target.clone())
//!     .segments(8)
//!     .build()?
//!     .run()
//!     .await?;
//! // ... later, the table is lost ...
//! archive.stop().await?;
//! let report = Restore::builder(region.dynamodb().clone(), target, "orders-restored")
//!     .until(PointInTime::Latest)
//!     .build()?
//!     .run()
//!     .await?;
//! println!("restored {} items and {} changes", report.items_from_backup, report.changes_replayed);
//! # let _ = manifest;
//! # Ok(()) }
//! ```

mod archive;
mod coverage;
mod error;
mod json;
mod manifest;
mod restore;
mod scan;
mod segment;
mod target;

pub use archive::{ArchiveStats, StreamArchive, StreamArchiveBuilder};
pub use error::BackupError;
pub use manifest::{IndexDefinition, Manifest, SegmentEntry, TableDefinition, MANIFEST_FORMAT};
pub use restore::{NotRestored, PointInTime, Restore, RestoreBuilder, RestoreReport};
pub use scan::{TableBackup, TableBackupBuilder};
pub use target::BackupTarget;
