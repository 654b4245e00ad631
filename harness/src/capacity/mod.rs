//! `lift-harness capacity`: measure a function's durations and DynamoDB key accesses in the
//! local Lambda runtime, then plan its capacity with
//! [`lift_monitoring::capacity::plan`]: Lambda concurrency by Little's law against the
//! account and reserved limits, hot partition keys against DynamoDB's per-partition limits,
//! and the month each limit is reached under the profile's growth.
//!
//! ```sh
//! cargo build -p payments --bin payments
//! cargo run -p lift-harness -- capacity monitoring/profiles/capacity_payments.toml
//! cargo run -p lift-harness -- capacity monitoring/profiles/capacity_payments.toml --hot-tenant-share 0.3
//! # plan again from the measurements of a previous run, with another traffic profile:
//! cargo run -p lift-harness -- capacity monitoring/profiles/capacity_payments.toml \
//!     --durations target/capacity/capacity.json --peak-rps 2000
//! ```
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use lift_harness::capacity::{self, CapacityArgs};
//!
//! let args = CapacityArgs::parse_from(["capacity", "monitoring/profiles/capacity_payments.toml", "--invocations", "10"])?;
//! let report = capacity::run(args).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

pub(crate) mod deployed;
mod driver;
mod profile;
mod recorder;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser};
use lift_monitoring::capacity::{plan, CapacityReport, Measurements};

pub use driver::{measure, RunOptions};
pub use profile::{AuthSpec, CapacityProfile, FunctionSpec, RouteSpec, TenantSpec};
pub use recorder::DynamoDbRecorder;
pub(crate) use recorder::{item_size, touched};

/// Where the JSON report goes by default.
pub const DEFAULT_OUT: &str = "target/capacity/capacity.json";

/// The arguments of `lift-harness capacity`; flags override the profile file.
#[derive(Debug, Clone, Args)]
pub struct CapacityArgs {
    /// The capacity profile (TOML), e.g. monitoring/profiles/capacity_payments.toml.
    #[arg(value_name = "PROFILE")]
    pub profile: PathBuf,
    /// Invocations per route.
    #[arg(long, default_value_t = 50)]
    pub invocations: usize,
    /// Rounds over every route before measuring, neither timed nor recorded (the cold start
    /// and first connections).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Plan from the measurements (durations and recorded keys) of a previous run's JSON
    /// report instead of running the function.
    #[arg(long, value_name = "JSON")]
    pub durations: Option<PathBuf>,
    /// Where to write the JSON report.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Requests per second at today's peak [default: the profile's].
    #[arg(long, allow_hyphen_values = true)]
    pub peak_rps: Option<f64>,
    /// Growth per month in percent [default: the profile's].
    #[arg(long, allow_hyphen_values = true)]
    pub growth: Option<f64>,
    /// Months to project [default: the profile's].
    #[arg(long)]
    pub months: Option<u32>,
    /// The share of requests (0..=1) from the hot tenant (the first) [default: the profile's].
    #[arg(long)]
    pub hot_tenant_share: Option<f64>,
    /// Tenants sending traffic [default: the profile's].
    #[arg(long)]
    pub tenants: Option<u32>,
    /// The account concurrency limit [default: the profile's, else 1000].
    #[arg(long)]
    pub account_concurrency: Option<u32>,
    /// The function's reserved concurrency [default: the profile's, else none].
    #[arg(long)]
    pub reserved_concurrency: Option<u32>,
    /// The function's bootstrap binary [default: the profile's `function.bin`].
    #[arg(long, value_name = "BIN")]
    pub bin: Option<String>,
    /// The seed of tenant choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Do not print the table.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Parser)]
#[command(name = "capacity")]
struct Standalone {
    #[command(flatten)]
    args: CapacityArgs,
}

impl CapacityArgs {
    /// Parses arguments as the command line gives them (the first is the command's name).
    pub fn parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Standalone::try_parse_from(args).map(|s| s.args)
    }

    /// The profile file with the flags applied, checked.
    pub fn profile(&self) -> anyhow::Result<CapacityProfile> {
        let mut p = CapacityProfile::load(&self.profile)?;
        if let Some(v) = &self.bin {
            p.function.bin = v.clone();
        }
        if let Some(v) = self.peak_rps {
            p.traffic.peak_rps = v;
        }
        if let Some(v) = self.growth {
            p.traffic.growth_percent_per_month = v;
        }
        if let Some(v) = self.months {
            p.traffic.months = v;
        }
        if let Some(v) = self.hot_tenant_share {
            p.tenants.hot_share = Some(v);
        }
        if let Some(v) = self.tenants {
            p.tenants.count = v;
        }
        if let Some(v) = self.account_concurrency {
            p.limits.account_concurrency = v;
        }
        if let Some(v) = self.reserved_concurrency {
            p.limits.reserved_concurrency = Some(v);
        }
        p.check().with_context(|| format!("{} with the command line's flags", self.profile.display()))?;
        Ok(p)
    }
}

/// Reads the measurements of a previous run: its JSON report, or bare measurements.
pub fn read_measurements(path: &Path) -> anyhow::Result<Measurements> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let inner = value.get("measurements").cloned().unwrap_or(value);
    let mut m: Measurements = serde_path_to_error::deserialize(inner)
        .with_context(|| format!("{}: not a capacity report's measurements", path.display()))?;
    m.source = format!("{} (from {})", m.source, path.display());
    Ok(m)
}

/// Runs `lift-harness capacity`: measures (or reads the measurements), plans, prints the
/// table unless quiet, writes the JSON report, and returns the report.
pub async fn run(args: CapacityArgs) -> anyhow::Result<CapacityReport> {
    let profile = args.profile()?;
    let measurements = match &args.durations {
        Some(path) => read_measurements(path)?,
        None => {
            measure(
                &profile,
                &RunOptions { invocations: args.invocations, warmup: args.warmup, seed: args.seed },
            )
            .await?
        }
    };
    let report = plan(&profile.traffic, &profile.limits, &measurements)?;
    if !args.quiet {
        println!("{report}");
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.out, json).with_context(|| format!("cannot write {}", args.out.display()))?;
    if !args.quiet {
        println!("report: {}", args.out.display());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use lift_monitoring::capacity::{Limits, TrafficProfile};

    use super::*;

    #[test]
    fn a_previous_report_gives_back_its_measurements() {
        let mut m = Measurements { source: "run 1".into(), ..Measurements::default() };
        m.route("get", vec![12.5, 20.0]);
        let report = plan(&TrafficProfile::new(10.0).route("get", 1.0), &Limits::default(), &m).unwrap();
        let dir = std::env::temp_dir().join(format!("lift-capacity-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("report.json");
        std::fs::write(&file, serde_json::to_string(&report).unwrap()).unwrap();
        let back = read_measurements(&file).unwrap();
        assert_eq!(back.routes, m.routes);
        assert!(back.source.starts_with("run 1 (from "), "{}", back.source);
        // A file that is not a report says which file and where.
        std::fs::write(&file, r#"{"measurements": {"routes": {"get": {"invocations": "two"}}}}"#).unwrap();
        let err = format!("{:#}", read_measurements(&file).unwrap_err());
        assert!(err.contains("report.json") && err.contains("routes.get.invocations"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
