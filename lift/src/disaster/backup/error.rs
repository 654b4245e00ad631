//! Why a backup, an archive or a restore failed: one named type, lowercase messages that
//! name the table, the segment or the file at fault.

use super::SignatureProblem;
use crate::disaster::ConfigError;

/// A backup, stream archive or restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A DynamoDB or DynamoDB Streams request failed.
    #[error("{operation} on {table} failed: {message}")]
    Request {
        /// The operation, e.g. `Scan`.
        operation: &'static str,
        /// The table.
        table: String,
        /// What the service answered.
        message: String,
    },
    /// The table has no stream with new images, so changes cannot be archived.
    #[error("table {table} has no stream with new images ({found})")]
    NoStream {
        /// The table.
        table: String,
        /// What it has.
        found: String,
    },
    /// The backup target could not be read or written.
    #[error("backup target {location}: {message}")]
    Target {
        /// The file or object.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// No backup to restore from.
    #[error("no backup found in {location}{}", .reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    NoBackup {
        /// Where it looked.
        location: String,
        /// Why none fits, when one exists.
        reason: Option<String>,
    },
    /// A restore was asked to write into a table that exists: restores never merge.
    #[error("table {table} already exists; a restore only creates a new table and never writes over one")]
    TableExists {
        /// The table.
        table: String,
    },
    /// The manifest of a backup is missing or cannot be read.
    #[error("manifest of backup {backup} is unreadable: {reason}")]
    Manifest {
        /// The backup.
        backup: String,
        /// Why.
        reason: String,
    },
    /// A segment the manifest lists is not in the target.
    #[error("backup {backup}: segment {segment} is missing")]
    SegmentMissing {
        /// The backup.
        backup: String,
        /// The segment file.
        segment: String,
    },
    /// A segment's SHA-256 differs from the manifest's: it was changed or damaged.
    #[error("backup {backup}: segment {segment} is corrupt (sha-256 {found}, manifest says {expected})")]
    SegmentCorrupt {
        /// The backup.
        backup: String,
        /// The segment file.
        segment: String,
        /// The manifest's hash.
        expected: String,
        /// The file's hash.
        found: String,
    },
    /// A segment cannot be decoded (truncated, or not gzip JSON lines of items).
    #[error("backup {backup}: segment {segment} is unreadable: {reason}")]
    SegmentUnreadable {
        /// The backup.
        backup: String,
        /// The segment file.
        segment: String,
        /// Why.
        reason: String,
    },
    /// A segment, or the whole backup, holds another number of items than the manifest says.
    #[error("backup {backup}: {what} holds {found} items, the manifest says {expected}")]
    CountMismatch {
        /// The backup.
        backup: String,
        /// The segment file, or `the backup`.
        what: String,
        /// The manifest's count.
        expected: u64,
        /// The count found.
        found: u64,
    },
    /// The stream archive does not hold every change from the backup's start to the
    /// moment (a chunk lost, or time no archive run covered): replaying it would give a
    /// table that lacks writes.
    #[error("stream archive does not cover the backup's start ({from_ms} ms) to {}: {reason}", .to_ms.map_or("its end".to_owned(), |t| format!("the moment ({t} ms)")))]
    ArchiveIncomplete {
        /// When the backup started (epoch ms).
        from_ms: u64,
        /// The moment restored to (epoch ms), `None` for the latest.
        to_ms: Option<u64>,
        /// What is missing.
        reason: String,
    },
    /// A manifest or a stream archive chunk index is not signed by the restore's backup key:
    /// it was changed after it was signed, signed with another key, copied from another
    /// backup, or carries no signature. Nothing is created or written then. The message
    /// names the file and the problem, never the key or the signature expected.
    #[error("{what} is not signed by the backup key: {problem}")]
    Unauthenticated {
        /// The manifest or the chunk index, e.g. `manifest of backup <id>`.
        what: String,
        /// What is wrong with its signature.
        problem: SignatureProblem,
    },
    /// The backup is a backup of another table than the restore's source table
    /// ([`source_table`](super::RestoreBuilder::source_table)): asked for by id, or the
    /// newest in a target that holds no backup of the source table. It may be validly
    /// signed (one key shared by several tables); nothing is created or written then.
    #[error(
        "backup {backup} is a backup of table {found}, not of {expected} (the restore's source table); \
         nothing was restored"
    )]
    WrongTable {
        /// The restore's source table.
        expected: String,
        /// The table the backup's signed manifest names.
        found: String,
        /// The backup.
        backup: String,
    },
    /// A chunk of the stream archive is missing, changed or unreadable, and it is the source
    /// table's, or its table cannot be told (its index missing, unreadable or unsigned) and
    /// its archive run is not shown to be another table's. A chunk whose signed index names
    /// another table never causes it.
    #[error("stream archive chunk {chunk} is unusable: {reason}")]
    ArchiveCorrupt {
        /// The chunk file.
        chunk: String,
        /// Why.
        reason: String,
    },
}

impl BackupError {
    pub(crate) fn request<E: std::error::Error + 'static>(
        operation: &'static str,
        table: &str,
        err: &E,
    ) -> Self {
        Self::Request { operation, table: table.to_owned(), message: crate::error::error_chain(err) }
    }

    pub(crate) fn target(location: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Target { location: location.into(), message: message.to_string() }
    }
}
