//! Chaos drills: take a region down while load runs through Lift's failover client, and
//! measure what it costs.
//!
//! A scenario file (`scenarios/*.toml`, see [`Scenario`]) declares the regions, the load
//! (a rate and a mix of a [`Workload`](crate::Workload)'s operations), a fault timeline
//! (`region_outage`, `latency`, `throttling`, `partition`, `process_kill`), the failover
//! settings and the assertions.
//!
//! A drill runs in stages, in one direction: provision (regions, failover client) →
//! inject ([`FaultGuard`]s on the timeline) while the load runs, the sampler samples and
//! each failover is checked (the acknowledged effects read back from the new primary while
//! replication from the region traffic left is held cut: what that failover would lose) →
//! check (after every fault is healed, the workload's effects read back from every region
//! until they agree both ways) → analyse ([`DrillEvent`]s to one [`DrillReport`]) → assert →
//! report.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> Result<(), lift_harness::drill::DrillError> {
//! use lift_harness::drill::Scenario;
//!
//! let scenario = Scenario::load("scenarios/ci_region_outage.toml")?;
//! println!("{} regions, {:?} of load", scenario.regions.len(), scenario.duration());
//! # Ok(()) }
//! ```

mod analyse;
mod assert;
mod check;
mod client;
pub(crate) mod duration;
mod events;
mod fis;
mod html;
mod inject;
mod lag;
pub(crate) mod load;
pub(crate) mod metrics;
mod provision;
mod report;
mod runner;
mod sample;
mod scenario;
mod topology;

use std::path::PathBuf;

pub(crate) use client::FailoverClient;
pub use duration::parse_duration;
pub use events::{DrillEvent, Switch};
pub use fis::{fis_template, PLACEHOLDER_ACCOUNT};
pub use inject::FaultGuard;
pub use metrics::{OpRecord, Sample};
pub(crate) use report::{escape, junit_suite};
pub use report::{
    AssertionResult, DrillCost, DrillReport, EventRecord, FaultReport, KindCheck, LagSummary, ReportFiles,
    Summary, SwitchReport, Totals, WriteCheck,
};
pub use runner::Drill;
pub use scenario::{
    Assertions, Detection, DynamoDbSpec, FailoverSettings, FaultAssertions, FaultKind, FaultSpec, Load, Mix,
    RegionSpec, ReplicationMode, Scenario,
};
pub use topology::{drill_table_def, RegionNode, Topology};

/// How often the sampler samples.
pub const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a drill could not run, or did not pass.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The scenario file is unreadable or invalid.
    #[error("invalid scenario: {0}")]
    Scenario(String),
    /// DynamoDB Local could not be provisioned, or a table created.
    #[error("cannot set up dynamodb for the drill")]
    DynamoDb(#[from] crate::dynamodb::DynamoDbError),
    /// A fault proxy could not start.
    #[error("cannot start a fault proxy")]
    Fault(#[from] crate::faults::FaultError),
    /// The failover client (lift::disaster) refused its configuration or failed.
    #[error("failover client: {0}")]
    Target(String),
    /// A fault could not be injected or healed.
    #[error("cannot {action} fault {kind} in {region}: {reason}")]
    Inject {
        /// `inject` or `heal`.
        action: &'static str,
        /// The fault kind.
        kind: &'static str,
        /// The region.
        region: String,
        /// What went wrong.
        reason: String,
    },
    /// A report file could not be written.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The drill ran, and assertions failed.
    #[error("drill {scenario} failed: {}", failed.join(", "))]
    Failed {
        /// The scenario.
        scenario: String,
        /// The failed assertions.
        failed: Vec<String>,
    },
}

/// Where a drill writes its reports unless told otherwise.
pub const DEFAULT_REPORT_DIR: &str = "target/drill-reports";

/// `<service> drill`: runs the scenario in `file` over `workload`, prints the summary,
/// writes the JSON, HTML and JUnit reports into `out` (default [`DEFAULT_REPORT_DIR`]),
/// and fails when an assertion fails. With `export_fis`, writes the equivalent AWS FIS
/// experiment template there instead (for the workload's table) and runs nothing.
///
/// A backup drill (a scenario with a `[backup]` table, e.g. scenarios/backup_restore.toml)
/// runs over the same workload: its table backed up under the workload's load, dropped,
/// restored, and every acknowledged effect checked by the workload
/// ([`run_drill_file_with`](crate::backup::run_drill_file_with)).
///
/// A deployment drill (a scenario with a `[deploy]` table, e.g.
/// scenarios/deploy_canary_errors.toml) runs the service's binary in the local Lambda
/// runtime while `lift-deploy`'s rollout engine shifts its alias
/// ([`deploy_drill`](crate::deploy_drill)).
///
/// A service's own binary calls this with its workload; `lift-harness drill` cannot, as
/// the harness links no service (it runs backup drills over its own
/// [`Items`](crate::backup::Items) workload).
///
/// # Errors
/// [`DrillError::Failed`] when an assertion fails; any other [`DrillError`] when the drill
/// cannot run.
pub async fn run_cli_with<W: crate::Workload>(
    workload: W,
    file: &std::path::Path,
    out: Option<PathBuf>,
    export_fis: Option<PathBuf>,
    quiet: bool,
    detection: Option<Detection>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if crate::backup::is_backup_drill_file(file) {
        crate::backup::run_drill_file_with(workload, file, out, quiet).await?;
        return Ok(());
    }
    if crate::deploy_drill::is_deploy_drill_file(file) {
        crate::deploy_drill::run_drill_file_with(workload, file, out, quiet).await?;
        return Ok(());
    }
    let mut scenario = Scenario::load(file)?;
    if let Some(detection) = detection {
        scenario.failover.detection = detection;
    }
    if let Some(path) = export_fis {
        let table = scenario
            .regions
            .iter()
            .find_map(|r| r.table.clone())
            .unwrap_or_else(|| workload.table().resolve_name());
        let template = fis_template(&scenario, workload.name(), &table);
        let text = serde_json::to_string_pretty(&template).expect("the template serializes") + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote the AWS FIS experiment template of {} to {}", scenario.name, path.display());
        return Ok(());
    }
    let report = Drill::new(scenario, workload)?.quiet(quiet).run().await?;
    println!("{}", Summary(&report));
    let dir = out.unwrap_or_else(|| PathBuf::from(DEFAULT_REPORT_DIR));
    let files = report.write_to(&dir)?;
    println!("reports: {}, {}, {}", files.json.display(), files.html.display(), files.junit.display());
    if !report.passed {
        return Err(DrillError::Failed {
            scenario: report.scenario.clone(),
            failed: report.failed_assertions().into_iter().map(str::to_owned).collect(),
        }
        .into());
    }
    Ok(())
}
