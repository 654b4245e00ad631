//! Backups and restores from the command line (`lift-harness backup`, `lift-harness
//! restore`), the backup drill (`scenarios/backup_restore.toml`), and moto's S3 server
//! for S3 targets. The library is `lift::disaster::backup`.

mod cli;
mod drill;
#[cfg(feature = "s3")]
mod moto;

pub use cli::{
    parse_point_in_time, parse_target, run_backup, run_drill_file, run_restore, BackupArgs, RestoreArgs,
};
pub use drill::{
    run as run_drill, BackupAssertions, BackupDrillReport, BackupLoad, BackupPlan, BackupScenario,
    TargetKind, WRITTEN_AT,
};
#[cfg(feature = "s3")]
pub use moto::{s3_client, MotoError, MotoS3};
