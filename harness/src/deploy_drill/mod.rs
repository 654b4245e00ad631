//! Deployment drills: a service's real binary in the local Lambda runtime, behind the HTTP
//! API front on its `live` alias, under load, while `lift-deploy`'s rollout engine shifts
//! the alias to a new version through the Lambda API and its gates decide.
//!
//! A scenario (`scenarios/deploy_*.toml`, see [`DeployScenario`]) names the bootstrap, the
//! variables that make the new version (a build with the `chaos` feature reads
//! `LIFT_CHAOS_*`), the load, the rollout and the assertions. The drill publishes version 1,
//! points `live` at it, puts load on the front, sets the new variables on `$LATEST`, and
//! runs the rollout, which publishes version 2 and shifts traffic. It measures the time to
//! detect and to roll back, the requests the new version served, the errors clients saw and
//! the whole deployment's time, and reads the alias back at the end.
//!
//! `lift-harness drill scenarios/deploy_canary_errors.toml` needs the service: run it with
//! the service's harness binary (`payments-harness drill …`), as the other drills.

mod report;
mod scenario;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lift_deploy::rollout::{
    BoxFuture, Gate, GateContext, HealthGate, MetricSource, Reading, Record, Rollout, RolloutOutcome,
    SloGate, Status, Strategy, Target,
};
use lift_monitoring::emf::EmfDocument;

pub use report::DeployDrillReport;
pub use scenario::{
    AuthSpec, DeployAssertions, DeployLoad, DeployScenario, DeploySpec, FunctionSpec, RequestSpec,
};

use crate::lambda::http_api::HttpApi;
use crate::lambda::invoke_api::InvokeApi;
use crate::lambda::{Function, LocalLambda};

/// The stretch of version 1's traffic that must meet the SLOs before the rollout starts.
const BASELINE_WINDOW: Duration = Duration::from_secs(3);
/// How long the drill waits for version 1 to meet them.
const BASELINE_LIMIT: Duration = Duration::from_secs(45);

fn lift_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Whether `path` holds a deployment drill (a `[deploy]` table).
pub fn is_deploy_drill_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| DeployScenario::is_deploy_drill(&text))
}

/// The EMF documents one version printed, read from the local runtime's log streams
/// (`YYYY/MM/DD/[N]…`), as the rollout's SLO gate reads them, and its invocations, from the
/// runtime's `REPORT` lines (one per invocation, however it ended).
///
/// The log's lines carry no time, so a `REPORT` is placed by when this source read the log:
/// one first read after an earlier reading at or after `since_ms` was written at or after
/// it. Those already in the log at the first reading, and those written between `since_ms`
/// and the first reading after it, are left out: the count errs low, never high. A `REPORT`
/// counts once it has been in the log for [`LocalMetrics::settle`], so the document its
/// invocation printed, which reaches the log through a pipe, is read by then too.
#[derive(Debug, Clone)]
pub struct LocalMetrics {
    lambda: LocalLambda,
    settle: Duration,
    seen: Arc<Mutex<HashMap<String, Placed>>>,
    direct: Arc<Mutex<Vec<Direct>>>,
}

/// What a [`LocalMetrics`] has read of one function's log.
#[derive(Debug, Default)]
struct Placed {
    /// Lines read so far.
    lines: usize,
    /// When they were read (epoch ms).
    read_ms: Option<i64>,
    /// Each `REPORT` read: its version, the reading before the one that first saw it (it was
    /// written after that; `None` when seen at the first reading) and when it was first seen.
    reports: Vec<(Option<String>, Option<i64>, i64)>,
}

/// An invocation of a version by version, not through the alias (epoch ms when it started).
#[derive(Debug, Clone)]
struct Direct {
    function: String,
    version: String,
    at_ms: i64,
}

impl LocalMetrics {
    /// Reads `lambda`'s logs, counting a `REPORT` once it has been in the log 200 ms.
    pub fn new(lambda: LocalLambda) -> Self {
        Self { lambda, settle: Duration::from_millis(200), seen: Arc::default(), direct: Arc::default() }
    }

    /// How long a `REPORT` must have been in the log before it counts as an invocation (200 ms
    /// by default): the time the invocation's own output takes to reach the log after it.
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Records an invocation of `function`'s `version` made now directly by version, not
    /// through the alias, as a rollout's health gate makes: [`MetricSource::invocations`]
    /// leaves it out, as CloudWatch's `Invocations` by alias would. Such an invocation writes
    /// no request when the service leaves its health endpoint uncounted, and would
    /// otherwise be taken for one that crashed.
    pub fn direct_invocation(&self, function: &str, version: &str) {
        let direct =
            Direct { function: function.to_owned(), version: version.to_owned(), at_ms: lift_now_ms() };
        self.direct.lock().expect("not poisoned").push(direct);
    }
}

impl MetricSource for LocalMetrics {
    fn documents<'a>(
        &'a self,
        function: &'a str,
        version: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<EmfDocument>, String>> {
        Box::pin(async move {
            let mut docs = Vec::new();
            for line in self.lambda.logs(function) {
                if line.version() != Some(version) {
                    continue;
                }
                match EmfDocument::parse(&line.message) {
                    Ok(Some(doc)) if doc.timestamp_ms() >= since_ms => docs.push(doc),
                    Ok(_) => {}
                    Err(err) => return Err(format!("a broken EMF document in {}: {err}", line.stream)),
                }
            }
            Ok(docs)
        })
    }

    fn invocations<'a>(
        &'a self,
        function: &'a str,
        version: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, String>> {
        Box::pin(async move {
            let now = lift_now_ms();
            let lines = self.lambda.logs(function);
            let mut seen = self.seen.lock().expect("not poisoned");
            let placed = seen.entry(function.to_owned()).or_default();
            if lines.len() < placed.lines {
                // Not the log it read before: start over, placing nothing.
                *placed = Placed::default();
            }
            for line in &lines[placed.lines..] {
                if line.message.starts_with("REPORT RequestId: ") {
                    placed.reports.push((line.version().map(str::to_owned), placed.read_ms, now));
                }
            }
            placed.lines = lines.len();
            placed.read_ms = Some(now);
            let settled = now - self.settle.as_millis() as i64;
            let reports = placed
                .reports
                .iter()
                .filter(|(v, after, first_seen)| {
                    v.as_deref() == Some(version)
                        && after.is_some_and(|t| t >= since_ms)
                        && *first_seen <= settled
                })
                .count() as u64;
            drop(seen);
            let direct = self
                .direct
                .lock()
                .expect("not poisoned")
                .iter()
                .filter(|d| d.function == function && d.version == version && d.at_ms >= since_ms)
                .count() as u64;
            Ok(Some(reports.saturating_sub(direct)))
        })
    }
}

/// A gate that invokes the new version directly (the health gate), each reading recorded
/// with the [`LocalMetrics`] so its invocations are not taken for the new version's traffic.
struct Counted {
    gate: Arc<HealthGate>,
    metrics: LocalMetrics,
}

impl Gate for Counted {
    fn name(&self) -> &str {
        self.gate.name()
    }

    fn needs_traffic(&self) -> bool {
        self.gate.needs_traffic()
    }

    fn min_bake(&self) -> Duration {
        self.gate.min_bake()
    }

    fn check<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, Reading> {
        self.metrics.direct_invocation(&ctx.function, &ctx.to_version);
        self.gate.check(ctx)
    }
}

/// One client request's fate./// One client request's fate.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    status: Option<u16>,
}

/// Runs the deployment drill in `file` over `workload`'s service (its table and name):
/// prints the summary, writes the JSON, HTML and JUnit reports into `out` (default
/// `target/drill-reports`), and fails when an assertion fails.
///
/// # Errors
/// When the scenario is invalid, the drill cannot run, or an assertion failed.
pub async fn run_drill_file_with<W: crate::Workload>(
    workload: W,
    file: &Path,
    out: Option<PathBuf>,
    quiet: bool,
) -> anyhow::Result<DeployDrillReport> {
    let scenario = DeployScenario::load(file).map_err(anyhow::Error::msg)?;
    let report = run(&scenario, workload.name(), workload.table(), quiet).await?;
    println!("{report}");
    let dir = out.unwrap_or_else(|| PathBuf::from(crate::drill::DEFAULT_REPORT_DIR));
    let files = report.write_to(&dir)?;
    println!("reports: {}, {}, {}", files.json.display(), files.html.display(), files.junit.display());
    anyhow::ensure!(
        report.passed,
        "drill {} failed: {}",
        report.scenario,
        report.failed_assertions().join(", ")
    );
    Ok(report)
}

/// Runs a deployment drill and measures it; the assertions are judged, not enforced.
///
/// # Errors
/// When the drill cannot run (no bootstrap, no DynamoDB Local, the Lambda API refuses).
pub async fn run(
    scenario: &DeployScenario,
    service: &str,
    service_table: lift::store::TableDef,
    quiet: bool,
) -> anyhow::Result<DeployDrillReport> {
    let bootstrap = bootstrap(scenario)?;
    let function_name = scenario.function.name.clone().unwrap_or_else(|| service.to_owned());
    let ddb = crate::dynamodb::DynamoDbLocal::shared().await.context("starting DynamoDB Local")?;
    // A JVM started moments ago answers slowly for its first thousand operations; a load of
    // 40 requests a second from the start would find it so and might never catch up.
    let warm_up =
        ddb.warm_up(crate::dynamodb::WarmTarget::from_env()?).await.context("warming DynamoDB Local")?;
    // Each table under a name of its own; the function finds it through `LIFT_TABLE_<NAME>`,
    // as every Lift table resolves its name.
    let mut tables = vec![service_table];
    tables.extend(lift::store::tables::all());
    let mut table_env = Vec::new();
    for def in &tables {
        let physical = ddb.create_table(def).await.with_context(|| format!("creating table {}", def.name))?;
        table_env.push((format!("LIFT_TABLE_{}", def.name.to_uppercase().replace('-', "_")), physical));
    }
    let record_table = ddb
        .create_table(&lift_deploy::rollout::table_def())
        .await
        .context("creating the deployment record table")?;

    let jwks = crate::aws::JwksIssuer::start().await.context("starting the JWKS issuer")?;
    let token = match &scenario.auth {
        Some(auth) => {
            let mut claims = jwks.claims(&format!("drill-user-of-{}", auth.tenant), &auth.audience);
            claims[&auth.tenant_claim] = auth.tenant.clone().into();
            claims["scope"] = auth.scopes.join(" ").into();
            jwks.sign(&claims, crate::aws::Alg::Rs256, None).context("signing the load's token")?
        }
        None => String::new(),
    };
    let fill = |value: &str| {
        value
            .replace("{dynamodb}", ddb.endpoint())
            .replace("{jwt_issuer}", &jwks.issuer())
            .replace("{jwks_url}", &jwks.jwks_url())
            .replace("{token}", &token)
    };
    let mut base_env: Vec<(String, String)> = table_env;
    base_env.extend(scenario.function.env.iter().map(|(k, v)| (k.clone(), fill(v))));
    let mut function = Function::builder(&function_name, &bootstrap)
        .memory_mb(scenario.function.memory_mb)
        .timeout_secs(scenario.function.timeout.as_secs().max(1));
    for (k, v) in &base_env {
        function = function.env(k, v);
    }
    let lambda = LocalLambda::builder().function(function.build()?).build()?;
    let api = InvokeApi::start(lambda.clone(), "127.0.0.1:0".parse()?).await?;
    let client = lambda_client(&api.endpoint(), lambda.region());
    let dynamodb = ddb.client().await;

    // Version 1 behind the alias, as production before the deployment.
    let v1 = client.publish_version().function_name(&function_name).send().await.context("PublishVersion")?;
    let v1 = v1.version().unwrap_or("1").to_owned();
    client
        .create_alias()
        .function_name(&function_name)
        .name(&scenario.deploy.alias)
        .function_version(&v1)
        .send()
        .await
        .context("CreateAlias")?;
    let target = format!("{function_name}:{}", scenario.deploy.alias);
    let front = Arc::new(HttpApi::start(lambda.clone(), &target, "127.0.0.1:0".parse()?).await?);

    // The load runs from before the rollout until after it.
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let load = tokio::spawn(drive_load(
        scenario.load.clone(),
        front.clone(),
        sent.clone(),
        stop.clone(),
        token.clone(),
    ));
    tokio::time::sleep(scenario.load.warmup).await;
    let metrics = LocalMetrics::new(lambda.clone());
    let slo_gate = match &scenario.deploy.slo {
        Some(slo) => {
            let path = scenario.dir.join(slo);
            let file =
                lift_monitoring::slo::SloFile::load(&path).with_context(|| path.display().to_string())?;
            Some(
                SloGate::new(file, Arc::new(metrics.clone()))
                    .max_burn(scenario.deploy.max_burn)
                    .min_requests(scenario.deploy.min_requests),
            )
        }
        None => None,
    };
    // A canary judged against SLOs the old version does not meet itself proves nothing (a
    // cold DynamoDB Local answers slowly for its first seconds): the rollout starts once
    // version 1's last seconds of traffic meet them. This judges the environment's warm-up,
    // not a version, on observed rates (z = 0): a few seconds of load are far too few
    // requests for the gate to prove an SLO met at 99%.
    let baseline_since = Instant::now();
    if let Some(gate) = &slo_gate {
        let gate = gate.clone().confidence_z(0.0);
        let source = LocalMetrics::new(lambda.clone());
        loop {
            let since = lift_now_ms() - BASELINE_WINDOW.as_millis() as i64;
            let docs = source.documents(&function_name, &v1, since).await.map_err(anyhow::Error::msg)?;
            let reading = gate.judge(&docs);
            if reading.verdict == lift_deploy::rollout::Verdict::Pass {
                break;
            }
            anyhow::ensure!(
                baseline_since.elapsed() < BASELINE_LIMIT,
                "version 1 did not meet its SLOs within {BASELINE_LIMIT:?} of load: {}",
                reading.detail
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let baseline_secs = baseline_since.elapsed().as_secs_f64();

    // The new version: the same code, its new variables on $LATEST.
    let mut new_env: HashMap<String, String> = base_env.into_iter().collect();
    for (k, v) in &scenario.new_version.env {
        new_env.insert(k.clone(), fill(v));
    }
    client
        .update_function_configuration()
        .function_name(&function_name)
        .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(new_env)).build())
        .send()
        .await
        .context("UpdateFunctionConfiguration")?;

    let spec = &scenario.deploy;
    let strategy = Strategy::parse(&spec.strategy).map_err(anyhow::Error::msg)?;
    let mut rollout =
        Rollout::new(client.clone(), Record::new(dynamodb, &record_table), &function_name, &spec.alias)
            .target(Target::Publish)
            .strategy(strategy)
            .final_bake(spec.final_bake)
            .poll(spec.poll)
            .step_timeout(spec.step_timeout)
            .lease(spec.lease)
            .failures_to_fail(spec.failures_to_fail)
            .auto_rollback(spec.auto_rollback)
            .owner(format!("drill-{}", scenario.name));
    if !quiet {
        rollout =
            rollout.on_event(|e| eprintln!("[rollout] {:>7} ms {:<12} {}", e.after_ms, e.kind, e.detail));
    }
    if let Some(path) = &spec.health {
        let gate = Arc::new(Counted { gate: Arc::new(HealthGate::new(path)), metrics: metrics.clone() });
        rollout = rollout.pre_traffic(gate.clone()).gate(gate);
    }
    if let Some(gate) = slo_gate {
        rollout = rollout.gate(Arc::new(gate));
    }
    let started = Instant::now();
    let outcome = rollout.run().await.context("the rollout could not run")?;
    let rollout_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(scenario.load.cooldown).await;
    stop.notify_one();
    load.await.context("the load task")?;

    let alias = client
        .get_alias()
        .function_name(&function_name)
        .name(&spec.alias)
        .send()
        .await
        .context("GetAlias")?;
    let final_version = alias.function_version().unwrap_or_default().to_owned();
    let split = alias
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .is_some_and(|w| w.values().any(|v| *v > 0.0));
    let new_version_requests = served_by(&lambda, &function_name, &outcome.to_version, &outcome);
    let sent = sent.lock().expect("not poisoned").clone();
    // Errors of the deployment: requests sent once the rollout started.
    let client_errors =
        sent.iter().filter(|s| s.at >= started && s.status.is_none_or(|c| c >= 500)).count() as u64;
    drop(front);
    drop(api);
    lambda.reset().await;
    Ok(DeployDrillReport::judge(
        scenario,
        &outcome,
        report::Measured {
            requests: sent.len() as u64,
            client_errors,
            new_version_requests,
            final_version,
            split,
            rollout_secs,
            baseline_secs,
            warm_up,
        },
    ))
}

/// Invocations of `version` that were client traffic: its `REPORT`s, less the invocations
/// the gates made of it directly. The reports are the runtime's own records, one per
/// invocation, one that failed in init included (it was routed to the version): counting
/// `START` lines in the log would also count any the function printed.
fn served_by(lambda: &LocalLambda, function: &str, version: &str, outcome: &RolloutOutcome) -> u64 {
    let starts = lambda.reports_of(function, version).len() as u64;
    let direct = outcome
        .events
        .iter()
        .map(|e| match e.kind.as_str() {
            "pre_traffic" | "post_traffic" => u64::from(e.detail["hook"] == "health"),
            "gate" => e.detail["readings"]
                .as_array()
                .map(|r| r.iter().filter(|r| r["gate"] == "health").count() as u64)
                .unwrap_or_default(),
            _ => 0,
        })
        .sum::<u64>();
    starts.saturating_sub(direct)
}

/// An open-loop load: `rate` requests a second, drawn by weight, until told to stop.
async fn drive_load(
    load: DeployLoad,
    front: Arc<HttpApi>,
    sent: Arc<Mutex<Vec<Sent>>>,
    stop: Arc<tokio::sync::Notify>,
    token: String,
) {
    let total_weight: u32 = load.requests.iter().map(|r| r.weight).sum();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(load.rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inflight = tokio::task::JoinSet::new();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            _ = tick.tick() => {}
        }
        // A fixed rotation by weight: the same drill sends the same mix.
        let mut slot = (n % u64::from(total_weight)) as u32;
        n += 1;
        let Some(spec) = load.requests.iter().find(|r| {
            if slot < r.weight {
                true
            } else {
                slot -= r.weight;
                false
            }
        }) else {
            continue;
        };
        let spec = spec.clone();
        let (front, sent, token, timeout) = (front.clone(), sent.clone(), token.clone(), load.timeout);
        inflight.spawn(async move {
            let headers: Vec<(String, String)> =
                spec.headers.iter().map(|(k, v)| (k.clone(), v.replace("{token}", &token))).collect();
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let method = http::Method::from_bytes(spec.method.as_bytes()).unwrap_or(http::Method::GET);
            let call = front.send(method, &spec.path, &headers, spec.body.clone().unwrap_or_default());
            let at = Instant::now();
            let status = match tokio::time::timeout(timeout, call).await {
                Ok(Ok(res)) => Some(res.status),
                _ => None,
            };
            sent.lock().expect("not poisoned").push(Sent { at, status });
        });
    }
    while inflight.join_next().await.is_some() {}
}

/// The real `aws-sdk-lambda` client, signed with test credentials, at `endpoint`.
fn lambda_client(endpoint: &str, region: &str) -> aws_sdk_lambda::Client {
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDDRILL",
            "drill-secret",
            None,
            None,
            "drill",
        ))
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// The bootstrap: `LIFT_DRILL_BOOTSTRAP`, else the scenario's, which must exist.
fn bootstrap(scenario: &DeployScenario) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("LIFT_DRILL_BOOTSTRAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(&scenario.function.bootstrap));
    anyhow::ensure!(
        path.is_file(),
        "no bootstrap at {}: build the service first (for payments: cargo build -p payments --features chaos), or set LIFT_DRILL_BOOTSTRAP",
        path.display()
    );
    Ok(path)
}

impl DeployDrillReport {
    /// Whether the outcome's status is the one the scenario expects.
    pub fn expected(status: Status, outcome: &str) -> bool {
        matches!((status, outcome), (Status::Succeeded, "promoted") | (Status::RolledBack, "rolled_back"))
    }
}
