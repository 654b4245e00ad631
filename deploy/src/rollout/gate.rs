//! Gates between a rollout's steps: `/health/ready` through the new version, SLO burn
//! rates over the new version's own EMF metrics, CloudWatch alarm states (the hook) and
//! custom checks (a command, or any [`Gate`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lift_monitoring::emf::EmfDocument;
use lift_monitoring::slo::SloFile;
use serde::Serialize;

/// A boxed future, as gates return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a gate reads at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Healthy.
    Pass,
    /// Unhealthy: the rollout rolls back.
    Fail,
    /// Not enough evidence yet. At the end of a step it counts as a failure: a version
    /// nobody exercised is not proven healthy.
    NoData,
}

/// One reading of one gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// The verdict.
    pub verdict: Verdict,
    /// What was measured, in words.
    pub detail: String,
}

impl Reading {
    /// A passing reading.
    pub fn pass(detail: impl Into<String>) -> Self {
        Self { verdict: Verdict::Pass, detail: detail.into() }
    }

    /// A failing reading.
    pub fn fail(detail: impl Into<String>) -> Self {
        Self { verdict: Verdict::Fail, detail: detail.into() }
    }

    /// A reading without enough evidence.
    pub fn no_data(detail: impl Into<String>) -> Self {
        Self { verdict: Verdict::NoData, detail: detail.into() }
    }
}

/// What a gate knows of the rollout it guards.
#[derive(Debug, Clone)]
pub struct GateContext {
    /// The function.
    pub function: String,
    /// The alias being shifted.
    pub alias: String,
    /// The version the alias pointed at before.
    pub from_version: String,
    /// The version being deployed.
    pub to_version: String,
    /// The new version's weight now, 0 to 1.
    pub weight: f64,
    /// When the new version first got traffic (epoch ms), once it has.
    pub traffic_since_ms: Option<i64>,
    /// The Lambda client, to invoke the new version directly.
    pub lambda: aws_sdk_lambda::Client,
}

/// A check between steps.
pub trait Gate: Send + Sync {
    /// The gate's name in the record and the report.
    fn name(&self) -> &str;

    /// Whether it reads the new version's traffic (so it has nothing to read while the
    /// new version has none, as in a blue/green test stage).
    fn needs_traffic(&self) -> bool {
        false
    }

    /// Reads the gate once.
    fn check<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, Reading>;
}

/// `GET /health/ready` (or another path) through the new version itself, invoked by
/// version with an API Gateway HTTP API event: passes on a 200.
#[derive(Debug, Clone)]
pub struct HealthGate {
    path: String,
}

impl HealthGate {
    /// Reads `path` (e.g. `/health/ready`).
    pub fn new(path: impl Into<String>) -> Self {
        Self { path: path.into() }
    }

    fn event(&self) -> serde_json::Value {
        let now = super::record::now_ms();
        serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": "",
            "headers": {"user-agent": "lift-deploy-health-gate"},
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "lift-deploy",
                "domainName": "lift-deploy.local",
                "domainPrefix": "lift-deploy",
                "http": {"method": "GET", "path": self.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "lift-deploy-health-gate"},
                "requestId": format!("health-{now}"),
                "routeKey": "$default",
                "stage": "$default",
                "time": "03/Dec/2026:00:00:00 +0000",
                "timeEpoch": now,
            },
            "isBase64Encoded": false,
        })
    }
}

impl Gate for HealthGate {
    fn name(&self) -> &str {
        "health"
    }

    fn check<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, Reading> {
        Box::pin(async move {
            let payload = aws_sdk_lambda::primitives::Blob::new(self.event().to_string());
            let out = ctx
                .lambda
                .invoke()
                .function_name(&ctx.function)
                .qualifier(&ctx.to_version)
                .payload(payload)
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(err) => {
                    return Reading::fail(format!("invoking version {}: {}", ctx.to_version, sdk_error(&err)))
                }
            };
            let body: serde_json::Value = out
                .payload()
                .map(|p| serde_json::from_slice(p.as_ref()).unwrap_or_default())
                .unwrap_or_default();
            if let Some(kind) = out.function_error() {
                let error_type = body["errorType"].as_str().unwrap_or("unknown");
                return Reading::fail(format!("version {} failed ({kind}): {error_type}", ctx.to_version));
            }
            match body["statusCode"].as_u64() {
                Some(200) => {
                    Reading::pass(format!("{} answered 200 on version {}", self.path, ctx.to_version))
                }
                Some(status) => {
                    Reading::fail(format!("{} answered {status} on version {}", self.path, ctx.to_version))
                }
                None => Reading::fail(format!(
                    "{} on version {} answered no HTTP response",
                    self.path, ctx.to_version
                )),
            }
        })
    }
}

/// The short error text of an SDK error: its code and message, never a request body.
pub(crate) fn sdk_error<E: aws_sdk_lambda::error::ProvideErrorMetadata + std::fmt::Debug, R>(
    err: &aws_sdk_lambda::error::SdkError<E, R>,
) -> String {
    match err.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or_default()
        ),
        None => match err {
            aws_sdk_lambda::error::SdkError::TimeoutError(_) => "timed out".to_owned(),
            aws_sdk_lambda::error::SdkError::DispatchFailure(_) => "cannot reach the Lambda API".to_owned(),
            _ => "the Lambda API answered something unreadable".to_owned(),
        },
    }
}

/// Where a gate reads the EMF documents one version of a function printed since a moment.
///
/// The harness reads them from its local Lambda runtime's log streams (`[N]` in the stream
/// name); on AWS they are in the function's log group, by stream.
pub trait MetricSource: Send + Sync {
    /// The documents `function`'s version `version` printed at or after `since_ms`.
    fn documents<'a>(
        &'a self,
        function: &'a str,
        version: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<EmfDocument>, String>>;
}

/// The burn rate of each SLO of a file, over the new version's own requests since it first
/// got traffic.
///
/// A canary sees few requests, so the gate decides on evidence, not on a point estimate:
/// it fails when the Wilson lower bound (99% by default) of the bad fraction is above
/// `max_burn` times the error budget, that is, when the new version burns budget faster
/// than `max_burn` with that confidence; it passes when the observed fraction is at or below
/// that rate; in between (a single error among a handful of requests) it has no verdict
/// yet, which at the end of a step counts as a failure. Nothing is decided on fewer than
/// `min_requests` requests.
#[derive(Clone)]
pub struct SloGate {
    file: SloFile,
    source: Arc<dyn MetricSource>,
    max_burn: f64,
    min_requests: u64,
    z: f64,
}

impl std::fmt::Debug for SloGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SloGate")
            .field("service", &self.file.service().name())
            .field("max_burn", &self.max_burn)
            .field("min_requests", &self.min_requests)
            .field("z", &self.z)
            .finish_non_exhaustive()
    }
}

/// The Wilson score interval's lower bound of `bad` in `n` at `z` standard deviations.
pub(crate) fn wilson_lower(bad: f64, n: f64, z: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let p = bad / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}

impl SloGate {
    /// The SLOs of `file`, read from `source`: fails above a burn rate of 14.4 (the
    /// workbook's page threshold) with 99% confidence, on at least 20 requests.
    pub fn new(file: SloFile, source: Arc<dyn MetricSource>) -> Self {
        Self { file, source, max_burn: 14.4, min_requests: 20, z: 2.576 }
    }

    /// The burn rate that fails the gate. One that an SLO cannot reach (above 1 / its error
    /// budget: more than every request bad) fails every reading, rather than pass them all.
    pub fn max_burn(mut self, burn: f64) -> Self {
        self.max_burn = burn;
        self
    }

    /// The fewest requests a verdict is drawn from.
    pub fn min_requests(mut self, requests: u64) -> Self {
        self.min_requests = requests;
        self
    }

    /// The confidence of a failure, as a one-sided normal quantile (2.576 for 99%, 1.645
    /// for 95%; 0 decides on the observed fraction alone).
    pub fn confidence_z(mut self, z: f64) -> Self {
        self.z = z;
        self
    }

    /// The reading of `docs`: any SLO burning too fast fails it; any SLO without a verdict
    /// leaves it without one.
    pub fn judge(&self, docs: &[EmfDocument]) -> Reading {
        let service = self.file.service();
        let mut lines = Vec::new();
        let mut failed = Vec::new();
        let mut undecided = Vec::new();
        for slo in self.file.slos() {
            let limit = self.max_burn * slo.error_budget();
            // A burn rate that needs every request bad, or more, can never be exceeded: such a
            // gate would pass a version that fails everything. It fails, naming the fix. (The
            // margin absorbs rounding: 1000 x (100 - 99.9)% comes to just under 1.)
            if limit >= 1.0 - 1e-9 {
                failed.push(format!(
                    "{}: a burn rate of {} needs {:.1}% of requests bad, which cannot happen, so this \
                     gate could never fail; set max_burn below {:.1}",
                    slo.name(),
                    self.max_burn,
                    limit * 100.0,
                    1.0 / slo.error_budget()
                ));
                continue;
            }
            let (mut requests, mut bad) = (0.0, 0.0);
            for doc in docs {
                if let Some((r, b)) = lift_monitoring::evaluator::slo_counts(slo, service, doc) {
                    requests += r;
                    bad += b;
                }
            }
            // An SLO scoped to a route or tenant the canary's traffic never touched has no say.
            if requests == 0.0 {
                continue;
            }
            let burn = (bad / requests) / slo.error_budget();
            let lower = wilson_lower(bad, requests, self.z) / slo.error_budget();
            let line =
                format!("{}: {bad}/{requests} bad, burn rate {burn:.1} (at least {lower:.1})", slo.name());
            if (requests as u64) < self.min_requests {
                undecided.push(format!("{line}, fewer than {} requests", self.min_requests));
            } else if wilson_lower(bad, requests, self.z) > limit {
                failed.push(format!("{line} > {}", self.max_burn));
            } else if bad / requests > limit {
                undecided.push(format!("{line}, not yet conclusive against {}", self.max_burn));
            } else {
                lines.push(line);
            }
        }
        if !failed.is_empty() {
            Reading::fail(failed.join("; "))
        } else if !undecided.is_empty() {
            Reading::no_data(undecided.join("; "))
        } else if lines.is_empty() {
            Reading::no_data("no request of the new version counted by any SLO yet")
        } else {
            Reading::pass(lines.join("; "))
        }
    }
}

impl Gate for SloGate {
    fn name(&self) -> &str {
        "slo"
    }

    fn needs_traffic(&self) -> bool {
        true
    }

    fn check<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, Reading> {
        Box::pin(async move {
            let Some(since) = ctx.traffic_since_ms else {
                return Reading::no_data("the new version has had no traffic");
            };
            match self.source.documents(&ctx.function, &ctx.to_version, since).await {
                Ok(docs) => self.judge(&docs),
                Err(err) => Reading::fail(format!("cannot read the new version's metrics: {err}")),
            }
        })
    }
}

/// Where an [`AlarmGate`] reads alarm states: the hook for CloudWatch's `DescribeAlarms`.
pub trait AlarmSource: Send + Sync {
    /// The names among `names` that are in `ALARM`.
    fn in_alarm<'a>(&'a self, names: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, String>>;
}

/// Fails while any of its alarms is in `ALARM`.
#[derive(Clone)]
pub struct AlarmGate {
    names: Vec<String>,
    source: Arc<dyn AlarmSource>,
}

impl AlarmGate {
    /// Watches `names` through `source`.
    pub fn new(names: Vec<String>, source: Arc<dyn AlarmSource>) -> Self {
        Self { names, source }
    }
}

impl Gate for AlarmGate {
    fn name(&self) -> &str {
        "alarms"
    }

    fn check<'a>(&'a self, _ctx: &'a GateContext) -> BoxFuture<'a, Reading> {
        Box::pin(async move {
            match self.source.in_alarm(&self.names).await {
                Ok(firing) if firing.is_empty() => Reading::pass(format!("{} alarms OK", self.names.len())),
                Ok(firing) => Reading::fail(format!("in ALARM: {}", firing.join(", "))),
                Err(err) => Reading::fail(format!("cannot read alarm states: {err}")),
            }
        })
    }
}

/// A custom check: a shell command that passes with exit status 0. It sees
/// `LIFT_ROLLOUT_FUNCTION`, `_ALIAS`, `_FROM_VERSION`, `_TO_VERSION` and `_WEIGHT`.
#[derive(Debug, Clone)]
pub struct CommandGate {
    name: String,
    command: String,
    timeout: Duration,
}

impl CommandGate {
    /// Runs `command` with `sh -c`, for at most 60 seconds.
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> Self {
        Self { name: name.into(), command: command.into(), timeout: Duration::from_secs(60) }
    }

    /// How long the command may run before it counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Gate for CommandGate {
    fn name(&self) -> &str {
        &self.name
    }

    fn check<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, Reading> {
        Box::pin(async move {
            let child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&self.command)
                .env("LIFT_ROLLOUT_FUNCTION", &ctx.function)
                .env("LIFT_ROLLOUT_ALIAS", &ctx.alias)
                .env("LIFT_ROLLOUT_FROM_VERSION", &ctx.from_version)
                .env("LIFT_ROLLOUT_TO_VERSION", &ctx.to_version)
                .env("LIFT_ROLLOUT_WEIGHT", ctx.weight.to_string())
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(self.timeout, child).await {
                Err(_) => Reading::fail(format!("{:?} ran over {:?}", self.command, self.timeout)),
                Ok(Err(err)) => Reading::fail(format!("cannot run {:?}: {err}", self.command)),
                Ok(Ok(out)) if out.status.success() => Reading::pass(format!("{:?} exited 0", self.command)),
                Ok(Ok(out)) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let tail: String =
                        stderr.trim().chars().rev().take(200).collect::<Vec<_>>().into_iter().rev().collect();
                    Reading::fail(format!("{:?} exited with {}: {tail}", self.command, out.status))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wilson_bound_is_below_the_observed_fraction_and_tightens_with_evidence() {
        assert_eq!(wilson_lower(0.0, 100.0, 2.576), 0.0);
        let small = wilson_lower(1.0, 11.0, 2.576);
        assert!(small > 0.0 && small < 1.0 / 11.0);
        assert!(small < 0.0144, "one error in 11 is not proof of a 1.44% rate at 99%: {small}");
        assert!(wilson_lower(3.0, 15.0, 2.576) > 0.0144, "three in 15 is");
        assert!(
            wilson_lower(100.0, 1000.0, 2.576) > wilson_lower(10.0, 100.0, 2.576),
            "more evidence, tighter"
        );
        assert_eq!(wilson_lower(1.0, 11.0, 0.0), 1.0 / 11.0, "z = 0 is the observed fraction");
        assert_eq!(wilson_lower(0.0, 0.0, 2.576), 0.0);
    }
}
