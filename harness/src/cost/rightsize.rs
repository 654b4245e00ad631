//! Local power tuning (`lift-harness rightsize`): the function at several memory sizes, N
//! warm invocations each, the duration distribution and cost of each size, and the
//! cheapest, fastest and balanced size (rules in [`lift_monitoring::cost::rightsize`]).
//!
//! What is emulated: the CPU share. Lambda gives a function CPU in proportion to its memory
//! (one vCPU at 1,769 MB); the local runtime sets the sandbox's CFS quota to
//! `memory / 1769` of a CPU per 100 ms period (cgroups v1). This machine's cores bound what
//! any size can get: above `cores × 1769` MB nothing is faster here, and above 1,769 MB only
//! work on several threads gains at all. Where cgroups cannot be written no limit applies
//! and every size runs at full speed, which the output says.
//!
//! The quota is spent per period: work that fits in one period's quota (under about
//! `memory / 1769 × 100` ms of CPU) runs at full speed whatever the size, so short
//! handlers show smaller differences than their CPU share suggests.
//!
//! What is measured: each invocation's real and billed duration from its `REPORT` line.
//! Cost per invocation is arithmetic on those and the price table.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use lift_harness::cost::rightsize::{power_tune, Target};
//!
//! let target = Target::Payload {
//!     name: "fixture".into(),
//!     bin: "target/debug/lambda-fixture".into(),
//!     payload: br#"{"action":"burn","iterations":3000000}"#.to_vec(),
//!     env: vec![],
//! };
//! let samples = power_tune(&target, &[256, 1769], 1, 5).await?;
//! assert_eq!(samples.len(), 2);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use lift_monitoring::cost::rightsize::{recommend, Recommendation, SizeSamples, DEFAULT_BALANCE_WEIGHT};
use lift_monitoring::cost::{rightsize_html, Arch};
use serde::Serialize;

use super::{arch_note, load_prices, send_step, Plan, Rig};
use crate::lambda::http_api::HttpApi;
use crate::lambda::{Function, LocalLambda};

/// The memory sizes tried by default, as aws-lambda-power-tuning's usual set.
pub const DEFAULT_SIZES: &[u32] = &[128, 256, 512, 1024, 1769, 3008];

/// What to invoke.
#[derive(Debug, Clone)]
pub enum Target {
    /// A plan's function, its steps in turn through the HTTP API front (on DynamoDB Local).
    Plan {
        /// The plan.
        plan: Box<Plan>,
        /// The bootstrap binary.
        bin: PathBuf,
    },
    /// A bootstrap binary invoked with one payload through the Invoke API path.
    Payload {
        /// The function's name.
        name: String,
        /// The bootstrap binary.
        bin: PathBuf,
        /// The event.
        payload: Vec<u8>,
        /// Environment variables.
        env: Vec<(String, String)>,
    },
}

/// Runs the target at each size: `warmup` invocations, then `invocations` measured.
pub async fn power_tune(
    target: &Target,
    sizes: &[u32],
    warmup: usize,
    invocations: usize,
) -> anyhow::Result<Vec<SizeSamples>> {
    let mut out = Vec::new();
    match target {
        Target::Plan { plan, bin } => {
            check_bin(bin)?;
            let rig = Rig::start(plan).await?;
            let mut vars = rig.vars();
            for &mb in sizes {
                let f = rig.function(plan, bin, mb)?;
                let name = f.name().to_owned();
                let lambda = LocalLambda::builder().function(f).build()?;
                let front =
                    HttpApi::start(lambda.clone(), &name, "127.0.0.1:0".parse().expect("an address")).await?;
                // Every step runs at least once in the warm-up, so captures are set.
                let warm = warmup.max(plan.steps.len());
                for i in 0..warm + invocations {
                    let step = &plan.steps[i % plan.steps.len()];
                    let status = send_step(&front, step, &mut vars).await?;
                    // An error answer has another cost than the route's: not a sample of it.
                    // A step that names no status must succeed.
                    match step.expect_status {
                        Some(expected) if expected != status => anyhow::bail!(
                            "{} at {mb} MB answered {status}, the plan expects {expected}",
                            step.route
                        ),
                        None if status >= 400 => anyhow::bail!(
                            "{} at {mb} MB answered {status}: an error answer is not a sample of the route's work (give the step an expect_status if this answer is the one to measure)",
                            step.route
                        ),
                        _ => {}
                    }
                    lambda.settle(&name, Duration::from_secs(10)).await;
                }
                out.push(samples(mb, &lambda.reports(&name)[warm..]));
                drop(front);
                lambda.reset().await;
            }
        }
        Target::Payload { name, bin, payload, env } => {
            check_bin(bin)?;
            for &mb in sizes {
                let mut b = Function::builder(name, bin).memory_mb(mb).timeout_secs(60);
                for (k, v) in env {
                    b = b.env(k, v);
                }
                let lambda = LocalLambda::builder().function(b.build()?).build()?;
                for _ in 0..warmup + invocations {
                    let resp = lambda.invoke(name, payload.clone()).await?;
                    if let Some(err) = &resp.function_error {
                        anyhow::bail!(
                            "{name} at {mb} MB failed: {err} {}",
                            String::from_utf8_lossy(&resp.payload)
                        );
                    }
                    // An API Gateway answer refusing the event (no credentials, a bad request)
                    // measures the refusal, not the work.
                    if let Some(status) = resp.json()["statusCode"].as_u64().filter(|s| *s >= 400) {
                        anyhow::bail!(
                            "{name} at {mb} MB answered {status}: an error answer is not a sample of the function's work (give it an event it serves)"
                        );
                    }
                    // Settled: the REPORT is written when the runtime asks for its next
                    // event, so work done after the answer is counted, as Lambda bills it.
                    lambda.settle(name, Duration::from_secs(10)).await;
                }
                out.push(samples(mb, &lambda.reports(name)[warmup..]));
                lambda.reset().await;
            }
        }
    }
    Ok(out)
}

fn check_bin(bin: &Path) -> anyhow::Result<()> {
    if bin.exists() {
        Ok(())
    } else {
        anyhow::bail!("no bootstrap binary at {} (build it first, or pass --bin)", bin.display())
    }
}

fn samples(mb: u32, reports: &[crate::lambda::Report]) -> SizeSamples {
    SizeSamples::new(
        mb,
        reports.iter().map(|r| r.duration.as_secs_f64() * 1000.0).collect(),
        reports.iter().map(|r| r.billed_ms).collect(),
    )
}

/// What is emulated and what measured on this machine, for the output and the chart.
pub fn notes(sizes: &[u32]) -> Vec<String> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut notes = vec![if crate::lambda::sandbox::cgroups_available() {
        format!(
            "emulated: the CPU share, as a CFS quota of memory/1769 of a CPU per 100 ms period; this machine has {cores} cores, so sizes above {} MB cannot be faster here, and above 1769 MB only multi-threaded work gains",
            cores as u32 * crate::lambda::MB_PER_VCPU
        )
    } else {
        "NOT emulated: cgroups are not writable here, so no CPU limit applied and every size ran at full speed; these durations say nothing about memory size".to_owned()
    }];
    if sizes.iter().any(|&s| s > cores as u32 * crate::lambda::MB_PER_VCPU) {
        notes.push(format!(
            "sizes above {} MB got no more CPU than {cores} cores",
            cores as u32 * crate::lambda::MB_PER_VCPU
        ));
    }
    notes.push("measured: real and billed duration of each warm invocation, from its REPORT line; cost = mean billed duration × memory × the price table's first-tier GB-second price + one request".to_owned());
    notes
}

/// `lift-harness rightsize`: local power tuning.
#[derive(Debug, Clone, clap::Args)]
pub struct RightsizeArgs {
    /// A cost plan whose steps are invoked in turn (e.g. examples/payments/cost.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "payload")]
    pub plan: Option<PathBuf>,
    /// The bootstrap binary [default with --plan: the plan's].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Without a plan: the event each invocation gets (JSON).
    #[arg(long, value_name = "JSON")]
    pub payload: Option<String>,
    /// Without a plan: an environment variable of the function (KEY=VALUE, repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Memory sizes in MB, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SIZES.to_vec())]
    pub memory: Vec<u32>,
    /// Measured invocations per size.
    #[arg(long, default_value_t = 20)]
    pub invocations: usize,
    /// Warm-up invocations per size (not measured; with a plan at least one per step).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// The region priced.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The architecture priced [default: the one the plan's `deploy` deploys, else x86_64].
    #[arg(long)]
    pub arch: Option<Arch>,
    /// A price table file [default: the built-in one].
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// The weight of cost against speed (0 to 1) in the balanced recommendation.
    #[arg(long, default_value_t = DEFAULT_BALANCE_WEIGHT)]
    pub balance_weight: f64,
    /// The chart (standalone HTML) [default: target/rightsize/<function>.html].
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the result as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// What `rightsize` writes as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct RightsizeReport {
    /// The function.
    pub function: String,
    /// The price table.
    pub price_table: String,
    /// The region priced.
    pub region: String,
    /// The architecture priced.
    pub arch: Arch,
    /// Sizes, distributions, recommendations.
    pub recommendation: Recommendation,
    /// What was emulated and measured.
    pub notes: Vec<String>,
}

/// The terminal table of a recommendation.
pub fn summary_table(r: &Recommendation) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:>7} {:>4} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>12}\n",
        "memory", "n", "p50 ms", "p90 ms", "p99 ms", "bill50", "bill90", "bill99", "$/million"
    );
    for s in &r.sizes {
        let mark = [(r.cheapest, "cheapest"), (r.fastest, "fastest"), (r.balanced, "balanced")]
            .iter()
            .filter(|(mb, _)| *mb == s.memory_mb)
            .map(|(_, m)| *m)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "{:>4} MB {:>4} {:>9.2} {:>9.2} {:>9.2} {:>7.0} {:>7.0} {:>7.0} {:>12.4}  {mark}",
            s.memory_mb,
            s.invocations,
            s.duration_p50_ms,
            s.duration_p90_ms,
            s.duration_p99_ms,
            s.billed_p50_ms,
            s.billed_p90_ms,
            s.billed_p99_ms,
            s.cost_per_invocation * 1e6
        );
    }
    out
}

/// Runs `lift-harness rightsize`.
pub async fn run_rightsize(args: RightsizeArgs) -> anyhow::Result<()> {
    let table = load_prices(args.prices.as_deref())?;
    table.region(&args.region)?;
    if let Some(bad) = args.memory.iter().find(|m| !(128..=10_240).contains(*m)) {
        anyhow::bail!("--memory {bad}: sizes are 128 to 10240 MB");
    }
    let target = match (&args.plan, &args.bin) {
        (Some(path), bin) => {
            let plan = Plan::from_path(path)?;
            let bin = bin.clone().unwrap_or_else(|| plan.bin());
            Target::Plan { plan: Box::new(plan), bin }
        }
        (None, Some(bin)) => {
            let payload = args.payload.clone().unwrap_or_else(|| "{}".to_owned());
            serde_json::from_str::<serde_json::Value>(&payload).context("--payload is not JSON")?;
            let env = args
                .env
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("--env {kv:?}: expected KEY=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let name = bin.file_stem().and_then(|s| s.to_str()).unwrap_or("function").replace('.', "_");
            Target::Payload { name, bin: bin.clone(), payload: payload.into_bytes(), env }
        }
        (None, None) => anyhow::bail!("give --plan FILE, or --bin PATH [--payload JSON]"),
    };
    let name = match &target {
        Target::Plan { plan, .. } => plan.function.name.clone(),
        Target::Payload { name, .. } => name.clone(),
    };
    let deployed_arch = match &target {
        Target::Plan { plan, .. } => plan.deployed_arch()?,
        Target::Payload { .. } => None,
    };
    let arch = args.arch.or(deployed_arch).unwrap_or_default();
    let prices = table.region(&args.region)?.lambda.arch(arch).clone();
    if !crate::lambda::sandbox::cgroups_available() {
        // Every size would run at full speed: the durations would say nothing about memory
        // size, and a size picked from them could be too small to run in Lambda.
        anyhow::bail!(
            "cgroups are not writable here (or LIFT_LAMBDA_NO_CGROUPS is set): no CPU share or memory limit would apply, so no size can be recommended; run where cgroups v1 cpu and memory are writable (as root)"
        );
    }
    let mut notes = notes(&args.memory);
    notes.extend(arch_note(arch));
    for n in &notes {
        eprintln!("note: {n}");
    }
    let samples = power_tune(&target, &args.memory, args.warmup, args.invocations).await?;
    let r = recommend(&samples, &prices, args.balance_weight).context("no size was measured")?;
    println!(
        "{name}: {} warm invocations per size; prices {} {} {}",
        args.invocations, table.version, args.region, arch
    );
    print!("{}", summary_table(&r));
    println!(
        "cheapest {} MB, fastest {} MB, balanced {} MB (weight {} on cost)",
        r.cheapest, r.fastest, r.balanced, r.balance_weight
    );
    let html = args.html.clone().unwrap_or_else(|| PathBuf::from(format!("target/rightsize/{name}.html")));
    if let Some(dir) = html.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let note_refs: Vec<&str> = notes.iter().map(String::as_str).collect();
    std::fs::write(&html, rightsize_html(&name, &r, &note_refs))
        .with_context(|| format!("writing {}", html.display()))?;
    println!("wrote {}", html.display());
    if let Some(path) = &args.json {
        let report = RightsizeReport {
            function: name,
            price_table: table.version.clone(),
            region: args.region.clone(),
            arch,
            recommendation: r,
            notes,
        };
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
