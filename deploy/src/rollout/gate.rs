//! Gates between a rollout's steps: `/health/ready` through the new version, SLO burn
//! rates over the new version's own EMF metrics, CloudWatch alarm states (the hook) and
//! custom checks (a command, or any [`Gate`]).

use std::collections::HashMap;
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

    /// The shortest bake over which its readings say anything of the new version (none by
    /// default): a rollout refuses any step the gate reads that bakes for less.
    fn min_bake(&self) -> Duration {
        Duration::ZERO
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

/// Where a gate reads the EMF documents one version of a function printed since a moment,
/// and, when it can, how many times that version was invoked.
///
/// The harness reads them from its local Lambda runtime's log streams (`[N]` in the stream
/// name); on AWS they are in the function's log group, by stream, and the invocations are
/// `AWS/Lambda` `Invocations` by alias and executed version.
pub trait MetricSource: Send + Sync {
    /// The documents `function`'s version `version` printed at or after `since_ms`.
    fn documents<'a>(
        &'a self,
        function: &'a str,
        version: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<EmfDocument>, String>>;

    /// How many invocations of `function`'s version `version` ended at or after `since_ms`,
    /// however they ended: answered, failed, crashed, exited, killed for memory, timed out
    /// or failed in init (Lambda writes a `REPORT` line for each). `Ok(None)`, the default,
    /// when the source cannot tell: the [`SloGate`] then judges the documents alone.
    ///
    /// Count the traffic the version served, not the invocations a rollout made of it
    /// directly by version (a [`HealthGate`]'s, which a service usually leaves uncounted):
    /// the gate takes every invocation that left no request in the documents for a bad
    /// request. A count that errs should err low: one too high fails a healthy version.
    fn invocations<'a>(
        &'a self,
        function: &'a str,
        version: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Option<u64>, String>> {
        let _ = (function, version, since_ms);
        Box::pin(async { Ok(None) })
    }
}

/// The burn rate of each SLO of a file, over the new version's own requests since it first
/// got traffic.
///
/// A canary sees few requests, so the gate decides on evidence, not on a point estimate,
/// and the same way in both directions. For each SLO it draws the Wilson score interval of
/// the bad fraction, each bound one-sided at 99.5% (z = 2.576), so the two together are a
/// two-sided 99% interval, and compares it with the limit, `max_burn` times the error budget:
/// - the lower bound above the limit fails the gate: the new version burns budget faster
///   than `max_burn`, with that confidence;
/// - the upper bound at or below the limit passes the SLO: it burns no faster, with the same
///   confidence;
/// - in between there is no verdict yet (keep collecting), which at the end of a step
///   counts as a failure.
///
/// A version whose true rate is at the limit passes a reading at most about 0.5% of the
/// time, and one at twice the limit almost never. The price is evidence: with no bad request
/// the upper bound is z² / (n + z²), so a pass takes at least z² (1 − L) / L requests for a
/// limit L ([`SloGate::requests_to_pass`]). At the default 14.4 that is 40 requests for a 99%
/// objective, 455 for 99.9% and 915 for 99.95%, and more with any bad request among them.
/// By the end of each step the new version must have served that many since its first
/// traffic, or the step ends without a verdict and rolls back. Nothing is decided on fewer
/// than `min_requests` requests.
///
/// Missing documents are not taken for health: an SLO the old version's documents feed over
/// the same time, or a service-wide one while another SLO counted requests, has no verdict
/// when none of the new version's requests count for it.
///
/// Nor are missing requests: an invocation that ends before its document is written (a
/// crash or panic in the handler, an exit, a failed init, running out of memory, a timeout)
/// is a bad request. When the source counts the new version's invocations
/// ([`MetricSource::invocations`]), those that left no request in its documents (the
/// invocations less the most requests any SLO counted) are added, bad, to every SLO the new
/// version is judged on: each SLO its requests fed, and each service-wide one. So a version
/// that crashes on every request fails on its invocations alone, with no document at all.
/// That takes a service-wide SLO in the file, which counts every documented request, as the
/// outage alarm does: without one, requests outside every SLO's route or tenant cannot be
/// told from lost ones, and the invocations count only when the new version wrote no
/// document at all. Fewer invocations than documented requests (a document carrying several
/// requests, late invocation counts) take nothing away and fail nothing. When the source
/// cannot count invocations, only the documents are judged, and an invocation that wrote
/// none is not counted at all, bad or good.
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

/// The Wilson score interval of `bad` in `n` at `z` standard deviations: its lower and
/// upper bounds, each one-sided at the normal quantile `z`.
pub(crate) fn wilson(bad: f64, n: f64, z: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let p = bad / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let scale = 1.0 + z2 / n;
    // At either end the bound on that side is exact; the formula leaves rounding crumbs.
    let lower = if bad <= 0.0 { 0.0 } else { ((centre - margin) / scale).max(0.0) };
    let upper = if bad >= n { 1.0 } else { ((centre + margin) / scale).min(1.0) };
    (lower, upper)
}

/// The Wilson score interval's lower bound of `bad` in `n` at `z` standard deviations.
#[cfg(test)]
fn wilson_lower(bad: f64, n: f64, z: f64) -> f64 {
    wilson(bad, n, z).0
}

/// The Wilson score interval's upper bound of `bad` in `n` at `z` standard deviations.
pub(crate) fn wilson_upper(bad: f64, n: f64, z: f64) -> f64 {
    wilson(bad, n, z).1
}

/// The fewest requests, none bad, whose Wilson upper bound at `z` is at or below `limit`.
fn clean_requests_to_pass(limit: f64, z: f64) -> u64 {
    if limit <= 0.0 {
        // Only z = 0 reaches an upper bound of 0, on any clean request.
        return if z == 0.0 { 1 } else { u64::MAX };
    }
    // With no bad request the upper bound is z² / (n + z²); the float answer is nudged onto
    // the integer the comparison in `judge` agrees with (a limit so small that no count of
    // requests fits in memory needs no nudging).
    let estimate = (z * z * (1.0 - limit) / limit).ceil().max(1.0);
    if estimate.is_nan() || estimate >= 1e12 {
        return estimate as u64;
    }
    let mut n = estimate as u64;
    while wilson_upper(0.0, n as f64, z) > limit {
        n += 1;
    }
    while n > 1 && wilson_upper(0.0, (n - 1) as f64, z) <= limit {
        n -= 1;
    }
    n
}

impl SloGate {
    /// The SLOs of `file`, read from `source`, judged against a burn rate of 14.4 (the
    /// workbook's page threshold) with a two-sided 99% Wilson interval (z = 2.576), on at
    /// least 20 requests. See the type's docs for how many requests a pass takes.
    pub fn new(file: SloFile, source: Arc<dyn MetricSource>) -> Self {
        Self { file, source, max_burn: 14.4, min_requests: 20, z: 2.576 }
    }

    /// The burn rate that fails the gate. One that an SLO cannot reach (above 1 / its error
    /// budget: more than every request bad) fails every reading, rather than pass them all.
    pub fn max_burn(mut self, burn: f64) -> Self {
        self.max_burn = burn;
        self
    }

    /// The fewest requests a verdict is drawn from (20 by default). Failing can be proven on
    /// few requests (two bad among 20 prove a burn rate above 14.4 on a 99.9% SLO); passing
    /// takes more, however low this is set ([`SloGate::requests_to_pass`]).
    pub fn min_requests(mut self, requests: u64) -> Self {
        self.min_requests = requests;
        self
    }

    /// The normal quantile each bound of the interval is drawn at, one-sided: 2.576 (the
    /// default) is the one-sided 99.5% quantile, so both bounds together are a two-sided 99%
    /// interval; 1.960 is one-sided 97.5% (two-sided 95%); 0 decides on the observed
    /// fraction alone. A negative or NaN value is taken as 0.
    pub fn confidence_z(mut self, z: f64) -> Self {
        self.z = z.max(0.0);
        self
    }

    /// The fewest requests, none of them bad, on which every SLO of the file can pass: the
    /// larger of `min_requests` and, for the SLO with the smallest limit L, z² (1 − L) / L.
    /// An SLO whose limit no version can reach (see [`SloGate::max_burn`]) never passes and
    /// is left out. A step that gives the new version fewer requests (its share of the
    /// traffic times its length) ends without a verdict, and rolls back.
    pub fn requests_to_pass(&self) -> u64 {
        self.file
            .slos()
            .iter()
            .map(|slo| self.max_burn * slo.error_budget())
            .filter(|limit| *limit < 1.0 - 1e-9)
            .map(|limit| clean_requests_to_pass(limit, self.z))
            .fold(self.min_requests, u64::max)
    }

    /// The reading of `docs`: any SLO burning too fast fails it; any SLO without a verdict
    /// leaves it without one; it passes when every SLO the requests touched passes. A
    /// service-wide SLO (no route, no tenant) counts every request, so one the documents do
    /// not feed while another SLO counted requests has no verdict: the new version's
    /// documents lack the dimension set it is read under, and that is no evidence of health.
    pub fn judge(&self, docs: &[EmfDocument]) -> Reading {
        self.judge_against(docs, &[])
    }

    /// As [`SloGate::judge`], with `baseline`, the old version's documents over the same
    /// time: an SLO they feed that the new version's `docs` do not has no verdict either, so
    /// a new version that stops writing what an SLO reads is not promoted for it.
    pub fn judge_against(&self, docs: &[EmfDocument], baseline: &[EmfDocument]) -> Reading {
        self.judge_invocations(docs, baseline, None)
    }

    /// As [`SloGate::judge_against`], with `invocations`, how many times the new version was
    /// invoked over the same time (`None`: unknown). Those that left no request in `docs`
    /// count as bad requests for every SLO the new version is judged on (see the type's docs),
    /// so more invocations than documented requests can fail the reading, never pass it.
    pub fn judge_invocations(
        &self,
        docs: &[EmfDocument],
        baseline: &[EmfDocument],
        invocations: Option<u64>,
    ) -> Reading {
        let service = self.file.service();
        let counted = |slo: &lift_monitoring::slo::Slo, docs: &[EmfDocument]| -> (f64, f64) {
            docs.iter()
                .filter_map(|doc| lift_monitoring::evaluator::slo_counts(slo, service, doc))
                .fold((0.0, 0.0), |(r, b), (dr, db)| (r + dr, b + db))
        };
        let service_wide =
            |slo: &lift_monitoring::slo::Slo| slo.scope().route.is_none() && slo.scope().tenant.is_none();
        let documented = self.file.slos().iter().map(|slo| counted(slo, docs).0).fold(0.0, f64::max);
        let touched = documented > 0.0;
        // Invocations that left no request: every documented request is among the most any
        // SLO counted only when a service-wide SLO counts them all (or nothing was written).
        let has_service_wide = self.file.slos().iter().any(&service_wide);
        let unrecorded = match invocations {
            Some(invoked) if has_service_wide || docs.is_empty() => (invoked as f64 - documented).max(0.0),
            _ => 0.0,
        };
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
            let (mut requests, mut bad) = counted(slo, docs);
            // Lost invocations count for an SLO the new version's requests fed or that covers
            // every request, or for every SLO when the file has no service-wide one (nothing
            // was written then, see above): they could have been any request.
            let charged = unrecorded > 0.0 && (requests > 0.0 || service_wide(slo) || !has_service_wide);
            let lost = if charged { unrecorded } else { 0.0 };
            requests += lost;
            bad += lost;
            if requests == 0.0 {
                let fed = counted(slo, baseline).0;
                let service_wide = service_wide(slo);
                if fed > 0.0 {
                    undecided.push(format!(
                        "{}: no request of the new version counted, though {fed} of the old version's did \
                         (does the new version still write what it reads?)",
                        slo.name()
                    ));
                } else if service_wide && touched {
                    undecided.push(format!(
                        "{}: covers every request, yet none of the new version's counted (its documents \
                         lack the dimension set it is read under)",
                        slo.name()
                    ));
                }
                // Otherwise an SLO scoped to a route or tenant no traffic touched has no say.
                continue;
            }
            let budget = slo.error_budget();
            let burn = (bad / requests) / budget;
            let (lower, upper) = wilson(bad, requests, self.z);
            let lost = if lost > 0.0 {
                format!(" ({lost} of them invocations that ended without writing a request)")
            } else {
                String::new()
            };
            let line = format!(
                "{}: {bad}/{requests} bad{lost}, burn rate {burn:.1} (between {:.1} and {:.1})",
                slo.name(),
                lower / budget,
                upper / budget
            );
            if (requests as u64) < self.min_requests {
                undecided.push(format!("{line}, fewer than {} requests", self.min_requests));
            } else if lower > limit {
                failed.push(format!("{line} > {}", self.max_burn));
            } else if upper <= limit {
                lines.push(format!("{line} <= {}", self.max_burn));
            } else {
                // Symmetric with failing: an observed rate under the limit is not yet proof
                // that the true one is, and a pass on it would promote bad versions by luck.
                undecided.push(format!(
                    "{line}, not yet conclusive against {} (with none bad, a pass takes {} requests)",
                    self.max_burn,
                    clean_requests_to_pass(limit, self.z).max(self.min_requests)
                ));
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
            // Invocations before documents: an invocation counted has had its document
            // written by the time the documents are read, so a reading does not take an
            // invocation still in flight for one that wrote nothing.
            let invocations = match self.source.invocations(&ctx.function, &ctx.to_version, since).await {
                Ok(invocations) => invocations,
                Err(err) => {
                    return Reading::fail(format!("cannot count the new version's invocations: {err}"))
                }
            };
            let docs = match self.source.documents(&ctx.function, &ctx.to_version, since).await {
                Ok(docs) => docs,
                Err(err) => return Reading::fail(format!("cannot read the new version's metrics: {err}")),
            };
            match self.source.documents(&ctx.function, &ctx.from_version, since).await {
                Ok(baseline) => self.judge_invocations(&docs, &baseline, invocations),
                Err(err) => Reading::fail(format!("cannot read the old version's metrics: {err}")),
            }
        })
    }
}

/// The state of one CloudWatch alarm, as `DescribeAlarms` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// `OK`: the metric is within its threshold.
    Ok,
    /// `ALARM`: the metric crossed its threshold.
    Alarm,
    /// `INSUFFICIENT_DATA`: too few data points to say either.
    InsufficientData,
}

impl AlarmState {
    /// Reads `OK`, `ALARM` or `INSUFFICIENT_DATA` (CloudWatch's `StateValue`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OK" => Some(Self::Ok),
            "ALARM" => Some(Self::Alarm),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }
}

/// Where an [`AlarmGate`] reads alarm states: the hook for CloudWatch's `DescribeAlarms`.
pub trait AlarmSource: Send + Sync {
    /// The state of each alarm among `names` that exists. A name that names no alarm is left
    /// out of the answer, so the gate can tell it from an alarm that is quiet.
    fn states<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, AlarmState>, String>>;
}

/// Passes while every one of its alarms is `OK`; fails while any is in `ALARM` or does not
/// exist; has no verdict while any has `INSUFFICIENT_DATA` (no evidence is no pass).
///
/// An alarm watches the function as a whole, so while the new version has no traffic its
/// state speaks for the old one: the gate needs traffic ([`Gate::needs_traffic`]), is not
/// read in a blue/green test stage, and a blue/green rollout whose only gates need traffic is
/// refused. An alarm also takes its evaluation window to see new traffic at all: with
/// [`AlarmGate::period`] a rollout refuses any step this gate reads that bakes for less.
#[derive(Clone)]
pub struct AlarmGate {
    names: Vec<String>,
    source: Arc<dyn AlarmSource>,
    period: Duration,
}

impl std::fmt::Debug for AlarmGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlarmGate")
            .field("names", &self.names)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl AlarmGate {
    /// Watches `names` through `source`.
    ///
    /// # Errors
    /// [`RolloutError::Invalid`](super::RolloutError::Invalid) when `names` is empty or
    /// holds an empty name: such a gate would watch nothing and pass every reading.
    pub fn new(names: Vec<String>, source: Arc<dyn AlarmSource>) -> Result<Self, super::RolloutError> {
        if names.is_empty() {
            return Err(super::RolloutError::Invalid(
                "an alarm gate with no alarm would pass every reading; name at least one alarm".into(),
            ));
        }
        if names.iter().any(|name| name.trim().is_empty()) {
            return Err(super::RolloutError::Invalid("an alarm gate was given an empty alarm name".into()));
        }
        Ok(Self { names, source, period: Duration::ZERO })
    }

    /// How long the alarms take to judge new traffic: the longest period times evaluation
    /// periods among them. A rollout refuses any step this gate reads that bakes for less,
    /// since its last reading would still speak for the old version.
    pub fn period(mut self, window: Duration) -> Self {
        self.period = window;
        self
    }
}

impl Gate for AlarmGate {
    fn name(&self) -> &str {
        "alarms"
    }

    fn needs_traffic(&self) -> bool {
        true
    }

    fn min_bake(&self) -> Duration {
        self.period
    }

    fn check<'a>(&'a self, _ctx: &'a GateContext) -> BoxFuture<'a, Reading> {
        Box::pin(async move {
            let states = match self.source.states(&self.names).await {
                Ok(states) => states,
                Err(err) => return Reading::fail(format!("cannot read alarm states: {err}")),
            };
            let named = |wanted: Option<AlarmState>| -> Vec<&str> {
                self.names
                    .iter()
                    .filter(|name| states.get(name.as_str()).copied() == wanted)
                    .map(String::as_str)
                    .collect()
            };
            let (missing, firing, quiet) =
                (named(None), named(Some(AlarmState::Alarm)), named(Some(AlarmState::InsufficientData)));
            let mut failures = Vec::new();
            if !firing.is_empty() {
                failures.push(format!("in ALARM: {}", firing.join(", ")));
            }
            if !missing.is_empty() {
                failures.push(format!("no such alarm: {}", missing.join(", ")));
            }
            if !failures.is_empty() {
                Reading::fail(failures.join("; "))
            } else if !quiet.is_empty() {
                Reading::no_data(format!("INSUFFICIENT_DATA: {}", quiet.join(", ")))
            } else {
                Reading::pass(format!("{} alarms OK", self.names.len()))
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

    #[test]
    fn the_upper_bound_is_above_the_observed_fraction_and_a_clean_sample_needs_z2_over_l() {
        let z = 2.576;
        for (bad, n) in [(0.0, 20.0), (1.0, 11.0), (3.0, 15.0), (10.0, 1000.0)] {
            let (lower, upper) = wilson(bad, n, z);
            assert!(lower <= bad / n && bad / n < upper, "{bad}/{n}: {lower} {upper}");
        }
        // No bad request: z² / (n + z²), so none bad in 20 still leaves a 24.9% rate possible.
        assert!((wilson_upper(0.0, 20.0, z) - z * z / (20.0 + z * z)).abs() < 1e-12);
        assert!(wilson_upper(0.0, 20.0, z) > 0.24);
        assert_eq!(wilson_upper(1.0, 11.0, 0.0), 1.0 / 11.0, "z = 0 is the observed fraction");
        assert_eq!(wilson_upper(0.0, 0.0, z), 1.0, "no evidence bounds nothing");
        // 14.4 times the budget of a 99%, 99.9% and 99.95% objective.
        for (limit, needed) in [(0.144, 40), (0.0144, 455), (0.0072, 915)] {
            let n = clean_requests_to_pass(limit, z);
            assert_eq!(n, needed, "limit {limit}");
            assert!(wilson_upper(0.0, n as f64, z) <= limit);
            assert!(wilson_upper(0.0, (n - 1) as f64, z) > limit);
        }
        assert_eq!(clean_requests_to_pass(0.0144, 0.0), 1, "the observed fraction alone");
        assert_eq!(clean_requests_to_pass(1e-300, z), u64::MAX, "beyond any count, without a loop");
    }

    /// The new version's documents and invocation count, as a source reports them.
    struct Fake {
        docs: Vec<EmfDocument>,
        invocations: Result<Option<u64>, String>,
    }

    impl MetricSource for Fake {
        fn documents<'a>(
            &'a self,
            _: &'a str,
            version: &'a str,
            _: i64,
        ) -> BoxFuture<'a, Result<Vec<EmfDocument>, String>> {
            let docs = if version == "2" { self.docs.clone() } else { Vec::new() };
            Box::pin(async move { Ok(docs) })
        }

        fn invocations<'a>(
            &'a self,
            _: &'a str,
            version: &'a str,
            _: i64,
        ) -> BoxFuture<'a, Result<Option<u64>, String>> {
            assert_eq!(version, "2", "only the new version's invocations are read");
            let invocations = self.invocations.clone();
            Box::pin(async move { invocations })
        }
    }

    const SLOS: &str = r#"
[service]
name = "payments"
namespace = "Payments"

[[slo]]
name = "availability"
kind = "availability"
objective = 99.9

[[slo]]
name = "latency"
kind = "latency"
objective = 99.0
threshold_ms = 300
"#;

    /// One SLO scoped to a route, none service-wide.
    const ROUTE_SLO: &str = r#"
[service]
name = "payments"
namespace = "Payments"

[[slo]]
name = "create-availability"
kind = "availability"
route = "/payments"
objective = 99.9
"#;

    /// `total` requests of Lift's shape, the first `errors` of them 5xx.
    fn docs(total: usize, errors: usize) -> Vec<EmfDocument> {
        (0..total)
            .map(|i| {
                let line = serde_json::json!({
                    "_aws": {"Timestamp": 1_764_720_000_000_i64, "CloudWatchMetrics": [{
                        "Namespace": "Payments", "Dimensions": [[]],
                        "Metrics": [{"Name": "Requests"}, {"Name": "Latency"}, {"Name": "5xx"}]
                    }]},
                    "Requests": 1.0, "Latency": 20.0, "5xx": if i < errors { 1.0 } else { 0.0 },
                });
                EmfDocument::parse(&line.to_string()).unwrap().unwrap()
            })
            .collect()
    }

    /// The SLO gate's reading over `docs` and `invocations` of version 2, through its check.
    fn read(slos: &str, docs: Vec<EmfDocument>, invocations: Result<Option<u64>, String>) -> Reading {
        let source = Arc::new(Fake { docs, invocations });
        let gate = SloGate::new(SloFile::parse(slos).unwrap(), source);
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .build();
        let ctx = GateContext {
            function: "payments".into(),
            alias: "live".into(),
            from_version: "1".into(),
            to_version: "2".into(),
            weight: 0.1,
            traffic_since_ms: Some(1_764_720_000_000),
            lambda: aws_sdk_lambda::Client::from_conf(config),
        };
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(gate.check(&ctx))
    }

    #[test]
    fn invocations_that_wrote_no_request_are_bad_requests_and_fail_the_gate() {
        // Ten clean requests are too few for a verdict; the 90 invocations that crashed
        // before writing theirs are not "no data", they are 90 bad requests.
        let unknown = read(SLOS, docs(10, 0), Ok(None));
        assert_eq!(unknown.verdict, Verdict::NoData, "{}", unknown.detail);
        let known = read(SLOS, docs(10, 0), Ok(Some(100)));
        assert_eq!(known.verdict, Verdict::Fail, "{}", known.detail);
        assert!(
            known.detail.contains("availability: 90/100 bad (90 of them invocations"),
            "{}",
            known.detail
        );
        assert!(known.detail.contains("latency: 90/100 bad"), "{}", known.detail);
        // Even when the documents alone would pass.
        let clean = read(SLOS, docs(500, 0), Ok(None));
        assert_eq!(clean.verdict, Verdict::Pass, "{}", clean.detail);
        let lost = read(SLOS, docs(500, 0), Ok(Some(600)));
        assert_eq!(lost.verdict, Verdict::Fail, "{}", lost.detail);
    }

    #[test]
    fn a_version_invoked_that_wrote_nothing_at_all_fails_rather_than_has_no_data() {
        let unknown = read(SLOS, Vec::new(), Ok(None));
        assert_eq!(unknown.verdict, Verdict::NoData, "{}", unknown.detail);
        let known = read(SLOS, Vec::new(), Ok(Some(50)));
        assert_eq!(known.verdict, Verdict::Fail, "{}", known.detail);
        assert!(known.detail.contains("availability: 50/50 bad"), "{}", known.detail);
        // A file with no service-wide SLO: with nothing written, every SLO takes them.
        let known = read(ROUTE_SLO, Vec::new(), Ok(Some(50)));
        assert_eq!(known.verdict, Verdict::Fail, "{}", known.detail);
    }

    #[test]
    fn invocations_matching_the_documents_change_nothing() {
        for (total, errors) in [(10, 0), (30, 1), (500, 0), (500, 1), (40, 8)] {
            let unknown = read(SLOS, docs(total, errors), Ok(None));
            let known = read(SLOS, docs(total, errors), Ok(Some(total as u64)));
            assert_eq!(known, unknown, "{total} requests, {errors} bad");
        }
    }

    #[test]
    fn fewer_invocations_than_documented_requests_take_nothing_away_and_fail_nothing() {
        for (total, errors, invoked) in [(500, 0, 10), (500, 0, 0), (30, 1, 29), (10, 0, 1), (40, 8, 5)] {
            let unknown = read(SLOS, docs(total, errors), Ok(None));
            let known = read(SLOS, docs(total, errors), Ok(Some(invoked)));
            assert_eq!(known, unknown, "{total} requests, {errors} bad, {invoked} invocations");
        }
        // Without a service-wide SLO, invocations beyond the requests a route SLO counted may
        // be requests to other routes: with documents written, they are not taken for lost.
        let route = |total: usize| -> Vec<EmfDocument> {
            (0..total)
                .map(|_| {
                    let line = serde_json::json!({
                        "_aws": {"Timestamp": 1_764_720_000_000_i64, "CloudWatchMetrics": [{
                            "Namespace": "Payments", "Dimensions": [["Route"]],
                            "Metrics": [{"Name": "Requests"}, {"Name": "5xx"}]
                        }]},
                        "Route": "/payments", "Requests": 1.0, "5xx": 0.0,
                    });
                    EmfDocument::parse(&line.to_string()).unwrap().unwrap()
                })
                .collect()
        };
        assert_eq!(read(ROUTE_SLO, route(500), Ok(Some(2000))), read(ROUTE_SLO, route(500), Ok(None)));
        assert_eq!(read(ROUTE_SLO, route(500), Ok(None)).verdict, Verdict::Pass);
    }

    #[test]
    fn an_invocation_count_that_cannot_be_read_fails_the_gate() {
        let reading = read(SLOS, docs(500, 0), Err("AccessDenied: not allowed".into()));
        assert_eq!(reading.verdict, Verdict::Fail, "{}", reading.detail);
        assert_eq!(reading.detail, "cannot count the new version's invocations: AccessDenied: not allowed");
    }
}
