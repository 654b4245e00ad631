//! `lift-harness lambda serve|invoke|coldstart`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::http_api::HttpApi;
use super::invoke_api::InvokeApi;
use super::logs::ms;
use super::{coldstart, Function, LocalLambda};

/// The `lambda` subcommands.
#[derive(Debug, Subcommand)]
pub enum LambdaCommand {
    /// Run a function in local sandboxes behind the Invoke API and an API Gateway HTTP API
    /// front; print their endpoints as `export` lines and stay up until Ctrl-C.
    Serve {
        /// The function.
        #[command(flatten)]
        function: FunctionArgs,
        /// Reserved concurrency (excess invocations are throttled).
        #[arg(long)]
        reserved: Option<u32>,
        /// Seconds a sandbox may stay idle before it is reaped.
        #[arg(long, default_value_t = 300)]
        idle_timeout: u64,
        /// The Invoke API's address.
        #[arg(long, default_value = "127.0.0.1:0")]
        invoke_addr: SocketAddr,
        /// The HTTP API front's address.
        #[arg(long, default_value = "127.0.0.1:0")]
        http_addr: SocketAddr,
    },
    /// Invoke a function once in a new sandbox and print its answer and REPORT.
    Invoke {
        /// The function.
        #[command(flatten)]
        function: FunctionArgs,
        /// The event (JSON).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Invoke this many times (the first is cold, the rest warm).
        #[arg(long, default_value_t = 1)]
        times: usize,
    },
    /// Measure cold starts (Init Duration plus the first invocation's Duration, and each
    /// part): median, p90, max.
    Coldstart {
        /// The function.
        #[command(flatten)]
        function: FunctionArgs,
        /// A second binary, measured alternately with the first; prints the ratio.
        #[arg(long, value_name = "BIN")]
        vs: Option<String>,
        /// Cold starts per binary.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// The event (JSON): one the function answers as a user's first request, or the
        /// run measures something else (e.g. an app's refusal of a request without credentials).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// With --vs: fail when the first binary's median cold start (init plus the first
        /// invocation) exceeds the second's by more than this many milliseconds.
        #[arg(long, value_name = "MS")]
        budget_ms: Option<f64>,
        /// Fail unless every cold start of the first binary succeeded and every answer is an
        /// HTTP response (API Gateway's `statusCode`) with this status.
        #[arg(long, value_name = "STATUS")]
        expect_status: Option<u16>,
    },
}

/// The function to run.
#[derive(Debug, Args)]
pub struct FunctionArgs {
    /// The bootstrap binary: a path, or a binary name looked up in the cargo target dir.
    #[arg(long)]
    bin: String,
    /// The function's name [default: the binary's file name].
    #[arg(long)]
    name: Option<String>,
    /// Memory size in MB (also the memory limit and CPU share).
    #[arg(long, default_value_t = 128)]
    memory: u32,
    /// Timeout in seconds.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
    /// An environment variable for the function, `K=V` (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
}

impl FunctionArgs {
    fn function(&self, bin: &str, reserved: Option<u32>) -> anyhow::Result<Function> {
        let path = resolve_bin(bin)?;
        let default_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("function").replace('.', "-");
        let name = if bin == self.bin { self.name.clone().unwrap_or(default_name) } else { default_name };
        let mut builder = Function::builder(name, path).memory_mb(self.memory).timeout_secs(self.timeout);
        for kv in &self.env {
            let Some((k, v)) = kv.split_once('=') else { bail!("--env takes K=V, not {kv:?}") };
            builder = builder.env(k, v);
        }
        if let Some(n) = reserved {
            builder = builder.reserved_concurrency(n);
        }
        Ok(builder.build()?)
    }
}

/// A path as given, else `name` in the cargo target dir (`$CARGO_TARGET_DIR`, else
/// `target`), the newer of its release and debug builds. Made absolute: the sandbox runs
/// in its task root, where a relative path means nothing.
pub fn resolve_bin(bin: &str) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(find_bin(bin)?)?)
}

fn find_bin(bin: &str) -> anyhow::Result<PathBuf> {
    let given = Path::new(bin);
    if bin.contains('/') || given.is_file() {
        return Ok(given.to_path_buf());
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    let newest = ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join(bin))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max();
    match newest {
        Some((_, path)) => Ok(path),
        None => bail!(
            "no binary {bin:?} in {}/{{release,debug}}: build it first (cargo build --bin {bin}) or give a path",
            target.display()
        ),
    }
}

/// Runs one `lambda` subcommand.
pub async fn run(command: LambdaCommand) -> anyhow::Result<()> {
    match command {
        LambdaCommand::Serve { function, reserved, idle_timeout, invoke_addr, http_addr } => {
            let f = function.function(&function.bin, reserved)?;
            let name = f.name().to_owned();
            let lambda = LocalLambda::builder()
                .function(f)
                .idle_timeout(Duration::from_secs(idle_timeout))
                .echo_logs(true)
                .build()?;
            let invoke =
                InvokeApi::start(lambda.clone(), invoke_addr).await.context("starting the Invoke API")?;
            let http =
                HttpApi::start(lambda.clone(), &name, http_addr).await.context("starting the HTTP API")?;
            println!("export AWS_ENDPOINT_URL_LAMBDA={}", invoke.endpoint());
            println!("export LIFT_LAMBDA_FUNCTION={name}");
            println!("export LIFT_LAMBDA_HTTP_API={}", http.url());
            eprintln!("# e.g. curl $LIFT_LAMBDA_HTTP_API/ or aws lambda invoke --endpoint-url $AWS_ENDPOINT_URL_LAMBDA --function-name {name} out.json");
            // Ctrl-C or SIGTERM: returning drops the sandboxes, which kills them (frozen ones too).
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
                _ = term.recv() => {}
            }
            drop((invoke, http));
            lambda.reset().await;
            Ok(())
        }
        LambdaCommand::Invoke { function, payload, times } => {
            let f = function.function(&function.bin, None)?;
            let name = f.name().to_owned();
            let lambda = LocalLambda::builder().function(f).echo_logs(true).build()?;
            for _ in 0..times.max(1) {
                let out = lambda.invoke(&name, payload.clone().into_bytes()).await?;
                println!("{}", String::from_utf8_lossy(&out.payload));
                if let Some(kind) = &out.function_error {
                    eprintln!("X-Amz-Function-Error: {kind}");
                }
                lambda.settle(&name, Duration::from_secs(2)).await;
            }
            Ok(())
        }
        LambdaCommand::Coldstart { function, vs, runs, payload, budget_ms, expect_status } => {
            if budget_ms.is_some() && vs.is_none() {
                // The budget is a difference from the --vs function: without one, nothing
                // would be checked, and the command would pass as if it had been.
                bail!("--budget-ms is a budget over the --vs function's cold start: give --vs");
            }
            let mut functions = vec![function.function(&function.bin, None)?];
            if let Some(vs) = &vs {
                let other = function.function(vs, None)?;
                if other.name() == functions[0].name() {
                    bail!("--bin and --vs name the same function");
                }
                functions.push(other);
            }
            let stats = coldstart::measure(functions, runs.max(1), payload.as_bytes()).await?;
            for s in &stats {
                println!("{}", s.summary());
                if s.refused() > 0 {
                    eprintln!(
                        "warning: {} refused {} of {} cold starts' events (HTTP status 400 or more): what was measured is the refusal, not the handler; send an event it accepts (--payload) and check with --expect-status",
                        s.name,
                        s.refused(),
                        s.cold_start.len()
                    );
                }
            }
            if let (Some(expected), Some(first)) = (expect_status, stats.first()) {
                // A failed run has no status to check: without this, runs that all failed
                // passed the check with nothing checked.
                if first.failures > 0 || first.cold_start.is_empty() {
                    bail!(
                        "{} of {}'s {} cold starts failed ({} measured): none of them answered HTTP {expected}",
                        first.failures,
                        first.name,
                        first.failures + first.cold_start.len(),
                        first.cold_start.len()
                    );
                }
                let other = first.answers_other_than(expected);
                if other > 0 {
                    bail!(
                        "{} of {}'s answers were not HTTP {expected} ({:?})",
                        other,
                        first.name,
                        first.statuses
                    );
                }
            }
            if let [a, b] = stats.as_slice() {
                // A side with no cold start measured has no median: a ratio against it is
                // a division by nothing (it printed 10^15).
                if let Some(none) = [a, b].into_iter().find(|s| s.cold_start.is_empty()) {
                    bail!(
                        "no cold start of {} succeeded ({} failed): there is nothing to compare",
                        none.name,
                        none.failures
                    );
                }
                let (ma, mb) = (a.cold_start_median(), b.cold_start_median());
                let ratio = ms(ma) / ms(mb).max(f64::EPSILON);
                println!(
                    "cold start median {}: {:.2} ms (init {:.2} + first invocation {:.2}) vs {}: {:.2} ms (init {:.2} + first invocation {:.2}): ratio {ratio:.2}, difference {:+.2} ms",
                    a.name,
                    ms(ma),
                    ms(a.init_median()),
                    ms(a.first_duration_median()),
                    b.name,
                    ms(mb),
                    ms(b.init_median()),
                    ms(b.first_duration_median()),
                    ms(ma) - ms(mb)
                );
                if a.failures > 0 || b.failures > 0 {
                    bail!("{} of the cold starts failed", a.failures + b.failures);
                }
                if let Some(budget) = budget_ms {
                    if !coldstart::within_budget(a, b, Duration::from_secs_f64(budget.max(0.0) / 1000.0)) {
                        bail!(
                            "cold-start budget exceeded: {} cold start median {:.2} ms (init {:.2} + first invocation {:.2}) > {} {:.2} ms + {budget} ms",
                            a.name,
                            ms(ma),
                            ms(a.init_median()),
                            ms(a.first_duration_median()),
                            b.name,
                            ms(mb)
                        );
                    }
                    println!("cold-start budget held: within {budget} ms of {}", b.name);
                }
            }
            Ok(())
        }
    }
}
