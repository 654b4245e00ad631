//! Backups and restores from the command line (`lift-harness backup`, `lift-harness
//! restore`), the backup drill (`scenarios/backup_restore.toml`), and moto's S3 server
//! for S3 targets. The library is `lift::disaster::backup`.

mod cli;
mod drill;
mod items;
#[cfg(feature = "s3")]
mod moto;
mod report;

pub use cli::{
    backup_key, parse_point_in_time, parse_target, run_backup, run_drill_file, run_drill_file_with,
    run_restore, BackupArgs, RestoreArgs,
};
pub use drill::{
    run as run_drill, run_with as run_drill_with, BackupAssertions, BackupDrillReport, BackupLoad,
    BackupPlan, BackupScenario, TargetKind,
};
pub use items::{ItemWrite, Items, UNCLEAR};
#[cfg(feature = "s3")]
pub use moto::{s3_client, MotoError, MotoS3};

/// Whether `path` holds a backup drill (a scenario with a `[backup]` table).
pub fn is_backup_drill_file(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| BackupScenario::is_backup_drill(&text))
}
