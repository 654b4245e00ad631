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
    /// Run a backup drill (a scenario with a `[backup]` table, e.g.
    /// scenarios/backup_restore.toml): back up under load, drop the table, restore, measure
    /// RTO, RPO and restore rate. Chaos drills of a service run from the service's own
    /// harness binary (this one links no service); for those it says which command to run.
    Drill {
        /// The scenario file, then for a backup drill: --out DIR, --quiet.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Back up a DynamoDB table (parallel scan, gzip JSON lines, manifest) into a directory
    /// or s3://bucket/prefix.
    Backup(lift_harness::backup::BackupArgs),
    /// Restore a backup into a new table, replaying the stream archive up to a moment.
    Restore(lift_harness::backup::RestoreArgs),
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
        /// Read every attempt's results from the subdirectories of DIR (each a copy of what
        /// one run of the benches wrote); each group is judged within each attempt (its
        /// overhead over that attempt's own budget, its twin ratio) and decided on the
        /// medians of those over the attempts.
        #[arg(long, value_name = "DIR")]
        attempts: Option<PathBuf>,
        /// Refuse results (with --instructions, callgrind outputs) written before this time
        /// (seconds since the Unix epoch: the run's start), so a bench that did not run
        /// cannot pass on an old measurement.
        #[arg(long, value_name = "UNIX_SECONDS")]
        since: Option<u64>,
        /// Check instruction counts (the `instructions` bench, run by gungraun) against
        /// their baseline instead of criterion's times.
        #[arg(long)]
        instructions: bool,
        /// The instruction baseline (with --instructions).
        #[arg(long, value_name = "FILE", default_value = lift_harness::budget::DEFAULT_BASELINE_FILE)]
        baseline: PathBuf,
        /// gungraun's output directory of the instructions bench's group (with
        /// --instructions) [default: <cargo target dir>/gungraun/lift-benches/instructions/resilience].
        #[arg(long, value_name = "DIR")]
        callgrind_dir: Option<PathBuf>,
        /// Rewrite the baseline's counts from the latest run instead of checking them (with
        /// --instructions).
        #[arg(long, requires = "instructions")]
        update: bool,
        /// The bench history: each run's medians and speed factors are appended to it (JSON
        /// lines), and --trend reads it [default: $LIFT_BENCH_HISTORY, else
        /// <cargo target dir>/bench-history.jsonl].
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
        /// Do not append this run to the history.
        #[arg(long, conflicts_with = "trend")]
        no_history: bool,
        /// Show each bench's trend over the history's runs and flag sustained regressions
        /// smaller than the budget, instead of checking the budgets.
        #[arg(long, conflicts_with = "instructions")]
        trend: bool,
        /// With --trend: how many latest runs must all be over the baseline.
        #[arg(long, value_name = "N", default_value_t = 3, requires = "trend")]
        trend_runs: usize,
        /// With --trend: how far over the baseline (the median of the runs before), in percent.
        #[arg(long, value_name = "PERCENT", default_value_t = 20.0, requires = "trend")]
        trend_threshold: f64,
        /// With --trend: exit non-zero when a regression is flagged (else it is a warning).
        #[arg(long, requires = "trend")]
        fail_on_regression: bool,
    },
    /// The compliance suites run from the service's own harness binary (this one links
    /// no service); says which command to run.
    Compliance {
        /// Ignored: see the message.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// A local Lambda runtime: sandboxes of a function's real bootstrap binary behind the
    /// Invoke API and an API Gateway HTTP API front, and cold-start measurement.
    Lambda {
        #[command(subcommand)]
        command: lift_harness::lambda::cli::LambdaCommand,
    },
    /// Capacity planning: measure a function's durations and DynamoDB keys in the local
    /// Lambda runtime, project Lambda concurrency and per-partition load under the profile's
    /// growth, and say when each limit is reached.
    Capacity(lift_harness::capacity::CapacityArgs),
    /// Measure a service's usage per route in the local Lambda runtime (billed duration,
    /// DynamoDB request units, logs, EMF metrics, X-Ray traces) and price it: cost per
    /// million requests per route, and a monthly projection for a traffic profile.
    Cost(lift_harness::cost::CostArgs),
    /// Local power tuning: run a function at several memory sizes (CPU share by CFS quota),
    /// recommend the cheapest, fastest and balanced size, and draw the chart (HTML).
    Rightsize(lift_harness::cost::rightsize::RightsizeArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIFT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let result = match cli.command {
        Command::Up { tables, once } => lift_harness::up::run(tables, once).await,
        Command::Drill { args } => backup_drill(args).await,
        Command::Compliance { .. } => Err(anyhow::anyhow!(lift_harness::service_cli::NEEDS_A_SERVICE)),
        Command::Backup(args) => lift_harness::backup::run_backup(args).await,
        Command::Restore(args) => lift_harness::backup::run_restore(args).await,
        Command::Budget { instructions: true, baseline, callgrind_dir, update, since, .. } => {
            let since = since.map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
            lift_harness::budget::run_instructions(&baseline, callgrind_dir, update, since)
        }
        Command::Budget { trend: true, history, trend_runs, trend_threshold, fail_on_regression, .. } => {
            let policy = lift_harness::budget::TrendPolicy {
                recent_runs: trend_runs,
                threshold: trend_threshold / 100.0,
                ..Default::default()
            };
            let path = lift_harness::budget::history::history_path(history);
            lift_harness::budget::run_trend(&path, policy, fail_on_regression)
        }
        Command::Budget {
            budgets,
            criterion_dir,
            allow_missing,
            json,
            attempts,
            since,
            history,
            no_history,
            ..
        } => {
            let since = since.map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
            let history = (!no_history).then(|| lift_harness::budget::history::history_path(history));
            lift_harness::budget::run(
                &budgets,
                criterion_dir,
                allow_missing,
                json.as_deref(),
                attempts,
                since,
                history.as_deref(),
            )
        }
        Command::Lambda { command } => lift_harness::lambda::cli::run(command).await,
        Command::Capacity(args) => lift_harness::capacity::run(args).await.map(drop),
        Command::Cost(args) => lift_harness::cost::run_cost(args).await,
        Command::Rightsize(args) => lift_harness::cost::rightsize::run_rightsize(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("lift-harness: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `lift-harness drill FILE [--out DIR] [--quiet]`: a backup scenario runs here; any other
/// scenario needs the service's harness binary.
async fn backup_drill(args: Vec<String>) -> anyhow::Result<()> {
    let mut file = None;
    let mut out = None;
    let mut quiet = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quiet" => quiet = true,
            "--out" => out = args.next().map(PathBuf::from),
            _ if file.is_none() && !arg.starts_with('-') => file = Some(PathBuf::from(arg)),
            _ => {}
        }
    }
    let Some(file) = file else { anyhow::bail!(lift_harness::service_cli::NEEDS_A_SERVICE) };
    match lift_harness::backup::run_drill_file(&file, out, quiet).await? {
        true => Ok(()),
        false => Err(anyhow::anyhow!(lift_harness::service_cli::NEEDS_A_SERVICE)),
    }
}
