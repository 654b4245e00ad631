//! Cost from measured usage (`lift-harness cost`) and local power tuning
//! (`lift-harness rightsize`), through the local Lambda runtime.
//!
//! `cost` runs a service's real bootstrap binary in [`crate::lambda`], behind the HTTP API
//! front, on DynamoDB Local, and drives the requests of a [`Plan`] one at a time, so what
//! is used while a request is in flight belongs to its route:
//!
//! - billed duration and memory size from the runtime's `REPORT` lines;
//! - DynamoDB read and write request units, from a recording proxy ([`CapacityProxy`]) that
//!   asks DynamoDB Local for `ReturnConsumedCapacity` and reads the answer;
//! - log bytes (every line in the function's log, `START`/`END`/`REPORT` included, counted
//!   as CloudWatch Logs does: UTF-8 bytes plus 26 per event), and the EMF metric values and
//!   distinct metrics (namespace, name, dimension values) in them;
//! - X-Ray: with active tracing every request is sampled, and the trace ids of the segment
//!   documents the function sends to a local UDP daemon are counted;
//! - KMS requests, made to the harness's KMS mock (`AWS_ENDPOINT_URL_KMS`): counted, not
//!   priced (the price table has no KMS prices).
//!
//! With the plan's `deploy` ([`Plan`]), the function runs as `lift-deploy` deploys it: the
//! deployed memory and timeout, `LIFT_KMS_KEY_ID` (a key of the mock) when the deployment
//! has a KMS envelope key, and the deployed architecture priced. This machine's CPU is the
//! one measured: an arm64 price of durations measured on x86_64 is an approximation, and
//! the report says so.
//!
//! Prices come from [`lift_monitoring::cost::PriceTable`]: cost per million requests per
//! route, and a month's projection for a traffic profile with volume tiers applied.
//!
//! A warm-up pass runs first and is not measured: the cold start (which may create tables)
//! is reported on its own, and the per-request figures are of warm invocations.

mod capacity;
mod plan;
pub mod rightsize;
mod xray;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use lift_monitoring::cost::{Arch, CostBreakdown, PriceTable, Projection, RouteUsage, TrafficProfile};
use serde::Serialize;

pub use capacity::{CapacityProxy, CapacityRecord};
pub use plan::{Plan, PlanAuth, PlanFunction, Step};
pub use xray::XrayDaemon;

use crate::aws::KmsMock;
use crate::capacity::deployed::Deployed;
use crate::dynamodb::DynamoDbLocal;
use crate::lambda::http_api::HttpApi;
use crate::lambda::{Function, LocalLambda};

/// Bytes CloudWatch Logs adds to each event's message when it counts a batch.
pub const LOG_EVENT_OVERHEAD_BYTES: u64 = 26;

/// What a plan's function runs against: DynamoDB Local behind the recording proxy, a
/// counting X-Ray daemon, the mocked JWKS issuer, and the plan's placeholders.
#[derive(Debug)]
pub struct Rig {
    /// DynamoDB Local.
    pub ddb: Arc<DynamoDbLocal>,
    /// The recording proxy in front of it.
    pub proxy: CapacityProxy,
    /// The X-Ray daemon.
    pub daemon: XrayDaemon,
    /// The KMS mock the function's KMS requests go to.
    pub kms: KmsMock,
    _jwks: Option<crate::aws::JwksIssuer>,
    vars: BTreeMap<String, String>,
}

impl Rig {
    /// Starts DynamoDB Local (as [`DynamoDbLocal::shared`] finds it), the proxy, the daemon,
    /// the KMS mock and, when the plan has `[auth]`, the JWKS issuer with a signed token.
    pub async fn start(plan: &Plan) -> anyhow::Result<Self> {
        let ddb = DynamoDbLocal::shared().await.context("DynamoDB Local")?;
        let proxy = CapacityProxy::start(ddb.endpoint()).await.context("the capacity proxy")?;
        let daemon = XrayDaemon::start().await.context("the X-Ray daemon")?;
        let kms = KmsMock::start(crate::aws::DEFAULT_REGION).await;
        let mut vars = BTreeMap::new();
        let run = uuid::Uuid::new_v4().simple().to_string();
        vars.insert("run".to_owned(), format!("cost-{}", &run[..10]));
        let jwks = match &plan.auth {
            Some(auth) => {
                let jwks = crate::aws::JwksIssuer::start().await.context("the JWKS issuer")?;
                let mut claims = jwks.claims(&auth.subject, &auth.audience);
                for (k, v) in &auth.claims {
                    claims[k] = v.clone();
                }
                let token = jwks.sign(&claims, crate::aws::Alg::Rs256, None).context("signing the token")?;
                vars.insert("token".to_owned(), token);
                vars.insert("jwt_issuer".to_owned(), jwks.issuer());
                vars.insert("jwks_url".to_owned(), jwks.jwks_url());
                Some(jwks)
            }
            None => None,
        };
        Ok(Self { ddb, proxy, daemon, kms, _jwks: jwks, vars })
    }

    /// The plan's function at `memory_mb`, its environment filled in, DynamoDB through the
    /// proxy, X-Ray to the daemon, KMS to the mock, active tracing on; with a deployed KMS
    /// envelope key, `LIFT_KMS_KEY_ID` names the mock's key, as lift-deploy names the real one.
    pub fn function(&self, plan: &Plan, bin: &Path, memory_mb: u32) -> anyhow::Result<Function> {
        let f = &plan.function;
        let mut builder = Function::builder(&f.name, bin)
            .memory_mb(memory_mb)
            .timeout_secs(f.timeout_secs)
            .active_tracing(true)
            .env("AWS_ENDPOINT_URL_DYNAMODB", self.proxy.endpoint())
            .env("AWS_XRAY_DAEMON_ADDRESS", self.daemon.address())
            .env("AWS_ENDPOINT_URL_KMS", self.kms.uri());
        if plan.deployment().is_some_and(|d| d.kms.envelope_key.is_some()) {
            builder = builder.env("LIFT_KMS_KEY_ID", crate::aws::DEFAULT_KEY_ALIAS);
        }
        for (k, v) in &f.env {
            builder = builder.env(k, plan::fill(v, &self.vars).with_context(|| format!("function.env.{k}"))?);
        }
        Ok(builder.build()?)
    }

    /// The placeholders: `run`, and with `[auth]` `token`, `jwt_issuer`, `jwks_url`.
    fn vars(&self) -> BTreeMap<String, String> {
        self.vars.clone()
    }
}

/// Sends one step through the front; returns the status, and captures into `vars`.
pub(crate) async fn send_step(
    front: &HttpApi,
    step: &Step,
    vars: &mut BTreeMap<String, String>,
) -> anyhow::Result<u16> {
    let path = plan::fill(&step.path, vars)?;
    let mut headers = Vec::new();
    for (k, v) in &step.headers {
        headers.push((k.clone(), plan::fill(v, vars)?));
    }
    let body = match &step.body {
        Some(b) => plan::fill(b, vars)?,
        None => String::new(),
    };
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let method: http::Method = step.method.parse().context("method")?;
    let resp =
        front.send(method, &path, &h, body).await.map_err(|e| anyhow::anyhow!("{}: {e}", step.route))?;
    let json = resp.json();
    for (name, pointer) in &step.capture {
        if let Some(v) = json.pointer(pointer) {
            let v = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
            vars.insert(name.clone(), v);
        }
    }
    Ok(resp.status)
}

/// What `cost` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// The function.
    pub function: String,
    /// Its memory size.
    pub memory_mb: u32,
    /// Passes over the plan's steps measured.
    pub iterations: usize,
    /// Usage per route (totals over its invocations).
    pub routes: Vec<RouteUsage>,
    /// Distinct custom metrics seen (`namespace/name{dimension=value,…}`).
    pub metric_series: BTreeSet<String>,
    /// DynamoDB requests by operation.
    pub dynamodb_operations: BTreeMap<String, u64>,
    /// KMS requests of the measured passes by operation.
    pub kms_operations: BTreeMap<String, u64>,
    /// KMS requests of the warm-up (not in the figures).
    pub kms_warmup_requests: u64,
    /// The warm-up's cold start: its Init Duration in ms.
    pub cold_start_init_ms: Option<f64>,
    /// Steps answered with another status than expected.
    pub failures: Vec<String>,
}

/// Runs `plan` once to warm up, then `iterations` times measured, one request at a time.
pub async fn measure(
    plan: &Plan,
    bin: &Path,
    memory_mb: u32,
    iterations: usize,
) -> anyhow::Result<Measurement> {
    if !bin.exists() {
        anyhow::bail!(
            "no bootstrap binary at {} (build it, e.g. `cargo build -p payments --bin payments`, or pass --bin)",
            bin.display()
        );
    }
    let rig = Rig::start(plan).await?;
    let function = rig.function(plan, bin, memory_mb)?;
    let name = function.name().to_owned();
    let lambda = LocalLambda::builder().function(function).build()?;
    let front = HttpApi::start(lambda.clone(), &name, "127.0.0.1:0".parse().expect("an address")).await?;
    let mut vars = rig.vars();
    let mut failures = Vec::new();
    for step in &plan.steps {
        let status = send_step(&front, step, &mut vars).await?;
        check(step, status, "warm-up", &mut failures);
        lambda.settle(&name, Duration::from_secs(10)).await;
    }
    let cold_start_init_ms =
        lambda.reports(&name).first().and_then(|r| r.init_duration).map(|d| d.as_secs_f64() * 1000.0);
    rig.proxy.drain();
    rig.daemon.drain();
    let kms_warmup_requests = drain_kms(&rig.kms).len() as u64;
    let mut routes: Vec<RouteUsage> = plan
        .routes()
        .into_iter()
        .map(|r| RouteUsage { route: r.to_owned(), memory_mb, ..RouteUsage::default() })
        .collect();
    let mut metric_series = BTreeSet::new();
    let mut operations: BTreeMap<String, u64> = BTreeMap::new();
    let mut kms_operations: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..iterations {
        for step in &plan.steps {
            let (logs_before, reports_before) = (lambda.logs(&name).len(), lambda.reports(&name).len());
            let status = send_step(&front, step, &mut vars).await?;
            check(step, status, &format!("iteration {i}"), &mut failures);
            lambda.settle(&name, Duration::from_secs(10)).await;
            let u = routes.iter_mut().find(|u| u.route == step.route).expect("every route is listed");
            for r in &lambda.reports(&name)[reports_before..] {
                u.invocations += 1;
                u.billed_ms += r.billed_ms;
                u.duration_ms += r.duration.as_secs_f64() * 1000.0;
            }
            for line in &lambda.logs(&name)[logs_before..] {
                u.log_events += 1;
                u.log_bytes += line.message.len() as u64 + LOG_EVENT_OVERHEAD_BYTES;
                u.emf_values += crate::lambda::logs::emf_metrics(&name, &line.message).len() as u64;
                metric_series.extend(emf_series(&line.message));
            }
            for c in rig.proxy.drain() {
                u.dynamodb_requests += 1;
                u.read_units += c.read_units;
                u.write_units += c.write_units;
                u.dynamodb_unreported += u64::from(!c.reported);
                *operations.entry(c.operation).or_default() += 1;
            }
            for operation in drain_kms(&rig.kms) {
                u.kms_requests += 1;
                *kms_operations.entry(operation).or_default() += 1;
            }
            let traces = rig.daemon.drain();
            u.segments += traces.len() as u64;
            u.traces += traces.iter().collect::<BTreeSet<_>>().len() as u64;
        }
    }
    Ok(Measurement {
        function: name,
        memory_mb,
        iterations,
        routes,
        metric_series,
        dynamodb_operations: operations,
        kms_operations,
        kms_warmup_requests,
        cold_start_init_ms,
        failures,
    })
}

/// What a price of `arch` for durations measured on this machine's CPU is, when that CPU
/// is another architecture.
pub(crate) fn arch_note(arch: Arch) -> Option<String> {
    let host = std::env::consts::ARCH;
    (host.parse::<Arch>().ok() != Some(arch)).then(|| {
        format!(
            "priced as {arch}, measured on this machine's {host} CPU: the billed durations are {host}'s, and {arch} Lambda's differ, so the {arch} figures are an approximation"
        )
    })
}

/// The operations of the KMS requests since the last call.
fn drain_kms(kms: &KmsMock) -> Vec<String> {
    let calls = kms.calls();
    kms.clear_calls();
    calls.into_iter().map(|c| c.operation).collect()
}

/// The custom metrics an EMF line publishes: one per metric name and dimension set (each
/// set is a metric of its own in CloudWatch), as `namespace/name{dimension=value,…}`.
pub fn emf_series(line: &str) -> Vec<String> {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') || !trimmed.contains("CloudWatchMetrics") {
        return Vec::new();
    }
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(trimmed) else { return Vec::new() };
    let mut out = Vec::new();
    for directive in doc["_aws"]["CloudWatchMetrics"].as_array().into_iter().flatten() {
        let namespace = directive["Namespace"].as_str().unwrap_or_default();
        let mut sets: Vec<Vec<String>> = directive["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|set| set.as_array())
            .map(|set| {
                set.iter()
                    .filter_map(|d| d.as_str())
                    .map(|d| {
                        format!(
                            "{d}={}",
                            doc[d].as_str().map(str::to_owned).unwrap_or_else(|| doc[d].to_string())
                        )
                    })
                    .collect()
            })
            .collect();
        if sets.is_empty() {
            sets.push(Vec::new());
        }
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            let Some(name) = metric["Name"].as_str() else { continue };
            for set in &sets {
                out.push(format!("{namespace}/{name}{{{}}}", set.join(",")));
            }
        }
    }
    out
}

fn check(step: &Step, status: u16, when: &str, failures: &mut Vec<String>) {
    if let Some(expected) = step.expect_status {
        if status != expected {
            failures.push(format!("{when}: {} answered {status}, expected {expected}", step.route));
        }
    }
}

/// `lift-harness cost`: measure a plan's usage and price it.
#[derive(Debug, Clone, clap::Args)]
pub struct CostArgs {
    /// The cost plan (function, environment, requests per route), e.g.
    /// examples/payments/cost.toml.
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// The bootstrap binary [default: the plan's `function.bin`].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Measured passes over the plan's steps [default: the plan's `iterations`].
    #[arg(long, value_name = "N")]
    pub iterations: Option<usize>,
    /// Memory size in MB [default: the plan's, which with `deploy` is the deployed one].
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,
    /// The region priced [default: the profile's, else us-east-1].
    #[arg(long)]
    pub region: Option<String>,
    /// The architecture priced, x86_64 or arm64 [default: the profile's, else the one the
    /// plan's `deploy` deploys, else x86_64].
    #[arg(long)]
    pub arch: Option<Arch>,
    /// A price table file [default: the one built in, aws-2026-12].
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// A traffic profile (TOML, see lift_monitoring::cost::TrafficProfile) for a monthly
    /// projection.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The report `cost` prints and writes.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    /// The price table's version and the date its prices were read.
    pub price_table: String,
    /// When its prices were read.
    pub prices_read_on: String,
    /// The region priced.
    pub region: String,
    /// The architecture priced.
    pub arch: Arch,
    /// What was measured.
    pub measurement: Measurement,
    /// Cost per million requests per route.
    pub per_million: Vec<(String, CostBreakdown)>,
    /// The month's projection, with a profile.
    pub projection: Option<Projection>,
    /// What is measured and what is not.
    pub notes: Vec<String>,
}

/// Prices a measurement: cost per million per route, and the projection for `profile`.
pub fn price(
    measurement: Measurement,
    table: &PriceTable,
    region: &str,
    arch: Arch,
    profile: Option<&TrafficProfile>,
) -> anyhow::Result<CostReport> {
    let prices = table.region(region)?;
    let per_million =
        measurement.routes.iter().map(|u| (u.route.clone(), u.cost_per_million(prices, arch))).collect();
    let projection = match profile {
        Some(p) => Some(p.project(&measurement.routes, measurement.metric_series.len() as u64, table)?),
        None => None,
    };
    let mut notes = vec![
        "measured: billed duration (REPORT lines, warm invocations), DynamoDB request units (ConsumedCapacity reported by DynamoDB Local; a write refused on its condition charged by its size, at least 1 unit), log bytes (+26 per event), EMF metrics, X-Ray trace ids sent to a local daemon with every request sampled, KMS requests to a local mock".to_owned(),
        "not in the per-request figures: cold starts (the warm-up's Init Duration is reported apart), free tiers, data transfer, DynamoDB storage (set storage_gb in the profile), point-in-time recovery, global-table replicated writes, KMS and Secrets Manager".to_owned(),
        "custom metrics are billed per metric-month, not per request: the projection prices the distinct metrics seen in this run; dimensions with one value per tenant multiply them".to_owned(),
        format!("prices: {} (read {}), a snapshot of AWS public list prices; check them before deciding", table.version, table.read_on),
    ];
    notes.extend(arch_note(arch));
    let measured_kms: u64 = measurement.kms_operations.values().sum();
    if measured_kms + measurement.kms_warmup_requests > 0 {
        notes.push(format!(
            "KMS requests: {} in the warm-up (not in the figures), {measured_kms} in the measured passes; counted, not priced (price table {} has no KMS prices). Every request of the run is one customer's, whose subject key stays cached in the process (60 s by default): traffic from many customers makes more (a GenerateDataKey per new customer, a Decrypt per customer per process and cache period)",
            measurement.kms_warmup_requests, table.version
        ));
    }
    Ok(CostReport {
        price_table: table.version.clone(),
        prices_read_on: table.read_on.clone(),
        region: region.to_owned(),
        arch,
        measurement,
        per_million,
        projection,
        notes,
    })
}

impl CostReport {
    /// The report as a terminal table.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.measurement;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} at {} MB, {} measured passes; prices {} (read {}), {} {}",
            m.function,
            m.memory_mb,
            m.iterations,
            self.price_table,
            self.prices_read_on,
            self.region,
            self.arch
        );
        if let Some(init) = m.cold_start_init_ms {
            let _ = writeln!(out, "cold start (warm-up, not in the figures): Init Duration {init:.1} ms");
        }
        let _ = writeln!(
            out,
            "{:<10} {:>4} {:>9} {:>7} {:>7} {:>8} {:>5} {:>6} {:>5} | {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "route",
            "n",
            "billed ms",
            "RRU",
            "WRU",
            "log B",
            "EMF",
            "traces",
            "KMS",
            "lambda",
            "req+api",
            "dynamodb",
            "logs",
            "xray",
            "total $"
        );
        for (u, (_, c)) in m.routes.iter().zip(&self.per_million) {
            let n = u.invocations.max(1) as f64;
            let _ = writeln!(
                out,
                "{:<10} {:>4} {:>9.2} {:>7.2} {:>7.2} {:>8.0} {:>5.1} {:>6.2} {:>5.2} | {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
                u.route,
                u.invocations,
                u.billed_ms_per_request(),
                u.read_units_per_request(),
                u.write_units_per_request(),
                u.log_bytes_per_request(),
                u.emf_values as f64 / n,
                u.traces_per_request(),
                u.kms_requests_per_request(),
                c.lambda_compute,
                c.lambda_requests + c.api_gateway,
                c.dynamodb_reads + c.dynamodb_writes,
                c.logs,
                c.xray,
                c.total
            );
        }
        let _ = writeln!(out, "(cost per million requests of each route; per-request usage is the mean)");
        let _ = writeln!(out, "distinct custom metrics: {}", m.metric_series.len());
        if let Some(p) = &self.projection {
            let _ = writeln!(
                out,
                "monthly projection: {:.0} requests ({} {}): lambda ${:.2} (GB-s {:.0}) + requests ${:.2} + API Gateway ${:.2} + DynamoDB ${:.2} + storage ${:.2} + logs ${:.2} ({:.2} GB) + metrics ${:.2} ({}) + X-Ray ${:.2} ({:.0} traces) = ${:.2}; KMS requests {:.0}, not priced",
                p.requests,
                p.region,
                p.arch,
                p.lambda_compute,
                p.gb_seconds,
                p.lambda_requests,
                p.api_gateway,
                p.dynamodb_reads + p.dynamodb_writes,
                p.dynamodb_storage,
                p.logs,
                p.log_gb,
                p.metrics,
                p.metric_series,
                p.xray,
                p.traces,
                p.total,
                p.kms_requests
            );
        }
        for f in &m.failures {
            let _ = writeln!(out, "FAILED: {f}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

/// Loads the price table of `--prices`, or the built-in one.
pub fn load_prices(path: Option<&Path>) -> anyhow::Result<PriceTable> {
    Ok(match path {
        Some(p) => PriceTable::from_path(p)?,
        None => PriceTable::embedded(),
    })
}

/// Reads a traffic profile. With its `deploy` (relative to the profile), or else the
/// deployment of `plan`, `arch` is the deployed architecture; an `arch` the profile sets
/// that differs is refused naming both. A profile and a plan that each name a deployment
/// must name the same file.
pub fn load_profile(path: &Path, plan: Option<&Plan>) -> anyhow::Result<TrafficProfile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read traffic profile {}", path.display()))?;
    let mut profile = TrafficProfile::parse(&text).with_context(|| path.display().to_string())?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let plans = plan.and_then(|p| p.deploy.as_ref());
    let deploy = match &profile.deploy {
        Some(deploy) => Some(dir.join(deploy)),
        None => plans.cloned(),
    };
    // Both name a deployment: one, or the traffic is priced for one deployment and measured
    // for another.
    if let (Some(own), Some(plans)) = (&deploy, plans) {
        let same = match (std::fs::canonicalize(own), std::fs::canonicalize(plans)) {
            (Ok(own), Ok(plans)) => own == plans,
            _ => own == plans,
        };
        if !same {
            anyhow::bail!(
                "{}: deploy {} is not the cost plan's deploy {}: the traffic would be priced for one \
                 deployment and measured as another",
                path.display(),
                own.display(),
                plans.display()
            );
        }
    }
    if let Some(deploy) = deploy {
        let deployed = Deployed::load(Path::new(""), &deploy, &text)?;
        let arch = plan::arch_of(&deployed.config)?;
        deployed.take("arch", &mut profile.arch, arch).with_context(|| path.display().to_string())?;
    }
    Ok(profile)
}

/// Runs `lift-harness cost`.
pub async fn run_cost(args: CostArgs) -> anyhow::Result<()> {
    let plan = Plan::from_path(&args.plan)?;
    let table = load_prices(args.prices.as_deref())?;
    let profile = args.profile.as_deref().map(|p| load_profile(p, Some(&plan))).transpose()?;
    let region =
        args.region.or_else(|| profile.as_ref().map(|p| p.region.clone())).unwrap_or("us-east-1".into());
    let deployed_arch = plan.deployed_arch()?;
    let arch = args.arch.or(profile.as_ref().map(|p| p.arch)).or(deployed_arch).unwrap_or_default();
    // Refused before anything runs.
    table.region(&region)?;
    let profile = profile.map(|p| TrafficProfile { region: region.clone(), arch, ..p });
    let bin = args.bin.unwrap_or_else(|| plan.bin());
    let memory = args.memory.unwrap_or(plan.function.memory_mb);
    let iterations = args.iterations.unwrap_or(plan.iterations);
    let measurement = measure(&plan, &bin, memory, iterations).await?;
    let mut report = price(measurement, &table, &region, arch, profile.as_ref())?;
    if let (Some(d), Some(file)) = (plan.deployment(), &plan.deploy) {
        if memory != d.function.memory_mb {
            report.notes.push(format!(
                "measured at {memory} MB (--memory), not as deployed: {} deploys {} MB",
                file.display(),
                d.function.memory_mb
            ));
        }
        if Some(arch) != deployed_arch {
            report.notes.push(format!(
                "priced as {arch}, not as deployed: {} deploys {}",
                file.display(),
                d.function.architecture
            ));
        }
    }
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if !report.measurement.failures.is_empty() {
        anyhow::bail!(
            "{} requests answered another status than the plan expects",
            report.measurement.failures.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dimension_set_is_a_metric_of_its_own() {
        let line = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"Payments","Dimensions":[["Route","Tenant"],["Route"]],"Metrics":[{"Name":"Latency"},{"Name":"Requests"}]}]},"Route":"/payments","Tenant":"acme","Latency":3.5,"Requests":1}"#;
        let series = emf_series(line);
        assert_eq!(
            series,
            [
                "Payments/Latency{Route=/payments,Tenant=acme}",
                "Payments/Latency{Route=/payments}",
                "Payments/Requests{Route=/payments,Tenant=acme}",
                "Payments/Requests{Route=/payments}",
            ]
        );
        assert!(emf_series(r#"{"level":"INFO","message":"CloudWatchMetrics"}"#).is_empty());
        assert!(emf_series("START RequestId: x").is_empty());
    }

    fn payments(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments").join(file)
    }

    /// The payments projection prices the architecture `examples/payments/lift.toml` deploys.
    #[test]
    fn the_payments_profile_prices_the_deployed_architecture() {
        let profile = load_profile(&payments("traffic.toml"), None).unwrap();
        let deployed = lift_deploy::DeployConfig::from_path(&payments("lift.toml")).unwrap();
        assert_eq!(profile.arch.to_string(), deployed.function.architecture);
        assert_eq!(profile.arch, Arch::Arm64);
    }

    #[test]
    fn a_profile_arch_that_disagrees_with_the_deployment_is_refused() {
        let dir = crate::capacity::deployed::test_dir("cost-profile-deploy", "");
        let profile = |text: &str| {
            std::fs::write(
                dir.join("traffic.toml"),
                format!("region = \"us-east-1\"\nrequests_per_second = 1\n{text}\n[mix]\nr = 1\n"),
            )
            .unwrap();
            dir.join("traffic.toml")
        };
        let err = format!(
            "{:#}",
            load_profile(&profile("deploy = \"lift.toml\"\narch = \"x86_64\""), None).unwrap_err()
        );
        assert!(err.contains("arch: \"x86_64\" here") && err.contains("deploys \"arm64\""), "{err}");
        let taken = load_profile(&profile("deploy = \"lift.toml\""), None).unwrap();
        assert_eq!(taken.arch, Arch::Arm64);
        // Without a deploy of its own, the profile is held to the plan's.
        std::fs::write(
            dir.join("cost.toml"),
            "deploy = \"lift.toml\"\n[function]\nname = \"f\"\nbin = \"b\"\n[[step]]\nroute = \"r\"\nmethod = \"GET\"\npath = \"/\"\n",
        )
        .unwrap();
        let plan = Plan::from_path(&dir.join("cost.toml")).unwrap();
        assert_eq!(load_profile(&profile(""), Some(&plan)).unwrap().arch, Arch::Arm64);
        assert!(load_profile(&profile("arch = \"x86_64\""), Some(&plan)).is_err());
        assert_eq!(load_profile(&profile("arch = \"x86_64\""), None).unwrap().arch, Arch::X86_64);
        // The profile's own deploy and the plan's must be one file: another deployment, even
        // one of the same architecture, would price the traffic of a function not measured.
        std::fs::copy(dir.join("lift.toml"), dir.join("other.toml")).unwrap();
        let err =
            format!("{:#}", load_profile(&profile("deploy = \"other.toml\""), Some(&plan)).unwrap_err());
        assert!(
            err.contains("other.toml") && err.contains("lift.toml") && err.contains("cost plan"),
            "{err}"
        );
        assert_eq!(
            load_profile(&profile("deploy = \"./lift.toml\""), Some(&plan)).unwrap().arch,
            Arch::Arm64
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_arm64_price_of_durations_measured_on_another_cpu_says_it_is_an_approximation() {
        let measurement = Measurement {
            function: "f".into(),
            memory_mb: 512,
            iterations: 1,
            routes: vec![RouteUsage {
                route: "r".into(),
                invocations: 1,
                memory_mb: 512,
                kms_requests: 2,
                ..RouteUsage::default()
            }],
            metric_series: BTreeSet::new(),
            dynamodb_operations: BTreeMap::new(),
            kms_operations: [("Decrypt".to_owned(), 2)].into(),
            kms_warmup_requests: 1,
            cold_start_init_ms: None,
            failures: Vec::new(),
        };
        let table = PriceTable::embedded();
        let other = if std::env::consts::ARCH == "x86_64" { Arch::Arm64 } else { Arch::X86_64 };
        let report = price(measurement.clone(), &table, "us-east-1", other, None).unwrap();
        assert!(report.notes.iter().any(|n| n.contains("approximation")), "{:?}", report.notes);
        assert!(report
            .notes
            .iter()
            .any(|n| n.contains("KMS requests: 1 in the warm-up") && n.contains("2 in the measured passes")));
        assert!(report.table().contains("KMS"));
        let here = std::env::consts::ARCH.parse::<Arch>().unwrap();
        let report = price(measurement, &table, "us-east-1", here, None).unwrap();
        assert!(!report.notes.iter().any(|n| n.contains("approximation")), "{:?}", report.notes);
    }
}
