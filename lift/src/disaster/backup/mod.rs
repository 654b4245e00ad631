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
//! - **Signatures.** A [`BackupKey`] (HMAC-SHA256, at least 32 bytes, from the caller:
//!   [`BackupKey::from_env`] reads `LIFT_BACKUP_KEY`) signs every manifest and every index
//!   of the stream archive. Manifests and indexes hold the SHA-256 of the data they list,
//!   so whoever can write the target but does not hold the key cannot change a backup and
//!   have it restored. Keep the key outside the target. Manifests and indexes name their
//!   table under the signature, and a restore names the table it expects
//!   ([`RestoreBuilder::source_table`], required): a validly signed backup of another table
//!   (one key shared by several tables, a mistyped target) is never restored in its place
//!   ([`BackupError::WrongTable`]). A table may be named by its name or its ARN; the two
//!   match, two ARNs that differ in partition, region or account do not. A missing or damaged chunk of
//!   another table's archive does not stop a restore; one of the source table's does.
//! - **Point-in-time recovery.** A [`StreamArchive`] keeps every change of the table's
//!   DynamoDB Stream in the same target while backups run, so a restore can replay the
//!   changes up to a chosen moment between two backups. DynamoDB Local has no PITR API;
//!   **with real AWS, prefer native point-in-time recovery** (35 days, to the second,
//!   `RestoreTableToPointInTime`) and keep this archive for copies outside the account.
//! - **Restore.** A [`Restore`] brings a backup back into a *new* table (it refuses a
//!   table that exists, never merging into one): it verifies the manifest's signature
//!   first (a manifest changed, signed with another key, copied from another backup or
//!   unsigned is refused; [`RestoreBuilder::allow_unsigned`] is the explicit opt-in for
//!   backups written before signing), then checks every segment against the
//!   manifest (a missing, changed, truncated or miscounted segment is refused with
//!   an error that names it), verifies every index of the archive (a changed one, or one
//!   signed with another key, is refused unless its archive run is shown to be another
//!   table's; an unsigned one is not trusted), checks that the
//!   archive holds every change from the backup's
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
//! # What the signatures do not show
//!
//! A signature proves a manifest or an index was written by a holder of the key, as it is.
//! It cannot show that nothing newer existed: deleting the newest backup, or the newest
//! chunks of an archive run together with their indexes, leaves an older state that is
//! still validly signed, and a restore to the latest moment then brings back that older
//! state. Detecting such a rollback needs an anchor outside the target (e.g. the newest
//! backup id and archive time recorded elsewhere), which this module does not keep.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn run(region: lift::disaster::Region) -> Result<(), lift::disaster::backup::BackupError> {
//! use lift::disaster::backup::{BackupKey, BackupTarget, PointInTime, Restore, StreamArchive, TableBackup};
//!
//! let target = BackupTarget::dir("/var/backups/orders");
//! let key = BackupKey::from_env()?; // LIFT_BACKUP_KEY, at least 32 bytes
//! let archive = StreamArchive::builder(region.clone(), "orders")
//!     .target(target.clone())
//!     .key(key.clone())
//!     .start()
//!     .await?;
//! let manifest = TableBackup::builder(region.dynamodb().clone(), "orders")
//!     .target(target.clone())
//!     .key(key.clone())
//!     .segments(8)
//!     .build()?
//!     .run()
//!     .await?;
//! // ... later, the table is lost ...
//! archive.stop().await?;
//! let report = Restore::builder(region.dynamodb().clone(), target, "orders-restored")
//!     .source_table("orders")
//!     .key(key)
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
mod key;
mod manifest;
mod restore;
mod scan;
mod segment;
mod table;
mod target;

pub use archive::{ArchiveStats, StreamArchive, StreamArchiveBuilder};
pub use error::BackupError;
pub use key::{BackupKey, Signature, SignatureProblem, BACKUP_KEY_ENV};
pub use manifest::{IndexDefinition, Manifest, SegmentEntry, TableDefinition, MANIFEST_FORMAT};
pub use restore::{NotRestored, PointInTime, Restore, RestoreBuilder, RestoreReport};
pub use scan::{TableBackup, TableBackupBuilder};
pub use target::BackupTarget;
