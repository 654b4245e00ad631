//! The command line of a service's own harness binary: `drill` and `compliance` over the
//! service's [`Workload`] and [`ComplianceTarget`]. `lift-harness` links no service, so
//! these commands run from the service (e.g. `payments-harness`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::compliance::ComplianceTarget;
use crate::Workload;

/// What `lift-harness drill` and `lift-harness compliance` answer: they need a service.
pub const NEEDS_A_SERVICE: &str = "lift-harness links no service, so it cannot drill one or run its compliance suites; \
run them from the service's harness binary, e.g. for the payments example:\n  \
cargo run --release -p payments --features harness --bin payments-harness -- drill scenarios/region_outage.toml\n  \
cargo run --release -p payments --features harness --bin payments-harness -- compliance";

/// A service's harness commands.
#[derive(Debug, Parser)]
#[command(about = "Chaos drills and compliance suites of this service, on DynamoDB Local")]
pub struct ServiceCli {
    #[command(subcommand)]
    command: ServiceCommand,
}

/// One command.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Run a chaos drill (load through Lift's failover client while the scenario's faults
    /// hit the regions) or a backup drill (a scenario with a `[backup]` table: the
    /// service's table backed up under its load, dropped, restored and checked); print a
    /// summary, write JSON, HTML and JUnit reports, and exit non-zero when an assertion
    /// fails.
    Drill {
        /// The scenario file, e.g. scenarios/region_outage.toml.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where to write the reports [default: target/drill-reports].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write the equivalent AWS FIS experiment template to FILE and exit without running.
        #[arg(long, value_name = "FILE")]
        export_fis: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Override the scenario's `failover.detection`: `passive` (requests, confirmed by an
        /// immediate probe; adaptive timeouts) or `probe` (probe rounds only).
        #[arg(long, value_name = "MODE")]
        detection: Option<crate::drill::Detection>,
    },
    /// Run the compliance suites (Gherkin features) against the service on DynamoDB Local;
    /// write JUnit XML, cucumber JSON and the per-framework report; exit non-zero when a
    /// step fails.
    Compliance {
        /// A features directory or one .feature file.
        #[arg(long, value_name = "PATH", default_value = "features")]
        features: PathBuf,
        /// Where to write the reports.
        #[arg(long, value_name = "DIR", default_value = "target/compliance")]
        out: PathBuf,
    },
}

impl ServiceCli {
    /// Parses the process's arguments and runs the command with the service's workload or
    /// compliance target.
    pub async fn run<W: Workload, T: ComplianceTarget>(workload: W, target: T) -> ExitCode {
        let cli = Self::parse();
        let result = match cli.command {
            ServiceCommand::Drill { file, out, export_fis, quiet, detection } => {
                tracing_subscriber::fmt()
                    .with_writer(std::io::stderr)
                    .with_env_filter(
                        tracing_subscriber::EnvFilter::try_from_env("LIFT_LOG")
                            .unwrap_or_else(|_| "warn".into()),
                    )
                    .init();
                crate::drill::run_cli_with(workload, &file, out, export_fis, quiet, detection).await
            }
            // The suites read the log lines of the service: they install their own subscriber.
            ServiceCommand::Compliance { features, out } => compliance(target, &features, &out).await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{err:#}");
                ExitCode::FAILURE
            }
        }
    }
}

async fn compliance(target: impl ComplianceTarget, features: &Path, out: &Path) -> anyhow::Result<()> {
    let run = crate::compliance::run(target, features, out).await?;
    println!(
        "reports: {}, {}, {}, {}",
        run.junit.display(),
        run.json.display(),
        run.report.display(),
        run.report_markdown.display()
    );
    anyhow::ensure!(
        run.failed == 0,
        "{} compliance step(s) failed{}",
        run.failed,
        run.problems.iter().map(|p| format!("\n{p}")).collect::<String>()
    );
    Ok(())
}
