//! The `lift-harness` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Lift harness: real DynamoDB Local and mocked AWS endpoints on one machine.
#[derive(Debug, Parser)]
#[command(name = "lift-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start DynamoDB Local and the mocked AWS endpoints, print their endpoints as shell
    /// `export` lines, and stay up until Ctrl-C.
    Up {
        /// Also create Lift's own tables (rate limits, idempotency, audit, tokens,
        /// blocklist) and export their names as LIFT_TABLE_* variables.
        #[arg(long)]
        tables: bool,
        /// Print the environment and exit right away, leaving nothing running
        /// (useful only with LIFT_DYNAMODB_ENDPOINT pointing at a long-lived instance).
        #[arg(long, hide = true)]
        once: bool,
    },
    /// Run a chaos drill: load through Lift's failover client while the scenario's faults
    /// hit the local regions; print a summary, write JSON, HTML and JUnit reports, and exit
    /// non-zero when an assertion fails.
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
    },
    /// Check criterion's latest results against the overhead budgets: print a table and
    /// exit non-zero when a bench is over budget or has no results. Run `cargo bench` first.
    Budget {
        /// The budgets file.
        #[arg(long, value_name = "FILE", default_value = lift_harness::budget::DEFAULT_BUDGETS_FILE)]
        budgets: PathBuf,
        /// Criterion's output directory [default: $CRITERION_HOME, else
        /// $CARGO_TARGET_DIR/criterion, else the cargo target dir's criterion/, else
        /// target/criterion].
        #[arg(long, value_name = "DIR")]
        criterion_dir: Option<PathBuf>,
        /// Skip budgets without results instead of failing (for benches not written yet).
        #[arg(long)]
        allow_missing: bool,
        /// Also write the report as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Run the compliance suites (Gherkin features) against the payments example and a
    /// health-records service on DynamoDB Local; write JUnit XML, cucumber JSON and the
    /// per-framework compliance report; exit non-zero when a step fails.
    Compliance {
        /// A features directory or one .feature file.
        #[arg(long, value_name = "PATH", default_value = "features")]
        features: PathBuf,
        /// Where to write the reports.
        #[arg(long, value_name = "DIR", default_value = "target/compliance")]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The compliance suites read the log lines of the services they drive: they install
    // their own subscriber.
    if !matches!(cli.command, Command::Compliance { .. }) {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("LIFT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .init();
    }
    let result = match cli.command {
        Command::Up { tables, once } => lift_harness::up::run(tables, once).await,
        Command::Drill { file, out, export_fis, quiet } => {
            lift_harness::drill::run_cli(&file, out, export_fis, quiet).await
        }
        Command::Budget { budgets, criterion_dir, allow_missing, json } => {
            lift_harness::budget::run(&budgets, criterion_dir, allow_missing, json.as_deref())
        }
        Command::Compliance { features, out } => compliance(&features, &out).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("lift-harness: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn compliance(features: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let run = lift_harness::compliance::run(features, out, false).await?;
    println!(
        "reports: {}, {}, {}, {}",
        run.junit.display(),
        run.json.display(),
        run.report.display(),
        run.report_markdown.display()
    );
    anyhow::ensure!(run.failed == 0, "{} compliance step(s) failed", run.failed);
    Ok(())
}
