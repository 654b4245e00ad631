//! Drives a function's routes in the local Lambda runtime and measures them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{bail, Context};
use lift_monitoring::capacity::{Measurements, RouteMeasurement};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::profile::{CapacityProfile, RouteSpec};
use super::recorder::DynamoDbRecorder;
use crate::aws::{Alg, JwksIssuer};
use crate::dynamodb::DynamoDbLocal;
use crate::lambda::http_api::HttpApi;
use crate::lambda::{Function, LocalLambda};

/// How a measurement run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Invocations per route.
    pub invocations: usize,
    /// Rounds over every route before measuring, neither timed nor recorded: the cold start
    /// and the first use of each connection and cache, which a small run would otherwise
    /// take as its p99.
    pub warmup: usize,
    /// The seed of tenant choices (repeatable runs).
    pub seed: u64,
}

/// Runs the profile's function in the local Lambda runtime on DynamoDB Local, sends
/// `invocations` requests per route (round-robin over the routes, in the file's order), and
/// returns each route's REPORT durations and the DynamoDB accesses recorded per route.
///
/// Fails when a request answers other than its route's expected status: a failed request's
/// duration and keys are not the route's.
pub async fn measure(profile: &CapacityProfile, options: &RunOptions) -> anyhow::Result<Measurements> {
    anyhow::ensure!(options.invocations > 0, "--invocations: must be at least 1");
    let ddb = DynamoDbLocal::shared().await.context("DynamoDB Local")?;
    let recorder = DynamoDbRecorder::start(ddb.endpoint(), &crate::dynamodb::default_region()).await?;
    let jwks = JwksIssuer::start().await.context("the mocked JWKS issuer")?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let placeholders = [
        ("{dynamodb}", recorder.endpoint()),
        ("{jwt_issuer}", jwks.issuer()),
        ("{jwks_url}", jwks.jwks_url()),
        ("{run}", run.clone()),
    ];
    let fill = |v: &str| placeholders.iter().fold(v.to_owned(), |v, (k, with)| v.replace(k, with));
    // Physical table names back to the profile's (without the run's suffix), for the report.
    let tables: HashMap<String, String> = profile
        .function
        .env
        .values()
        .filter(|v| v.contains("{run}"))
        .map(|v| (fill(v), v.replace("{run}", "").trim_matches(|c| c == '-' || c == '_').to_owned()))
        .collect();
    let bin = crate::lambda::cli::resolve_bin(&profile.function.bin)?;
    let name = "capacity";
    let mut function = Function::builder(name, &bin)
        .memory_mb(profile.function.memory_mb)
        .timeout_secs(profile.function.timeout_secs);
    for (k, v) in &profile.function.env {
        function = function.env(k, fill(v));
    }
    let lambda = LocalLambda::builder().function(function.build()?).build()?;
    let front =
        HttpApi::start(lambda.clone(), name, "127.0.0.1:0".parse()?).await.context("the HTTP API front")?;

    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut tokens: HashMap<String, String> = HashMap::new();
    let mut captured: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut routes: BTreeMap<String, RouteMeasurement> = BTreeMap::new();
    let measured: Vec<&RouteSpec> =
        profile.routes.iter().filter(|r| profile.traffic.mix.contains_key(&r.name)).collect();
    let settle_limit = Duration::from_secs(profile.function.timeout_secs + 1);
    for round in 0..options.warmup + options.invocations {
        let timed = round >= options.warmup;
        for route in &measured {
            let (tenant, id) = match &route.from {
                Some(from) => {
                    let pool = captured.get(from).filter(|p| !p.is_empty()).with_context(|| {
                        format!(
                            "route {}: no captured value of {from} yet (is it measured first?)",
                            route.name
                        )
                    })?;
                    pool[rng.gen_range(0..pool.len())].clone()
                }
                None => (pick_tenant(profile, &mut rng), String::new()),
            };
            let token = match &profile.auth {
                Some(auth) => Some(match tokens.get(&tenant) {
                    Some(t) => t.clone(),
                    None => {
                        let mut claims = jwks.claims(&format!("capacity-{tenant}"), &auth.audience);
                        claims[&auth.tenant_claim] = Value::from(tenant.clone());
                        for (k, v) in &auth.claims {
                            claims[k] = Value::from(v.clone());
                        }
                        let t = jwks.sign(&claims, Alg::Rs256, None)?;
                        tokens.insert(tenant.clone(), t.clone());
                        t
                    }
                }),
                None => None,
            };
            let subst = |s: &str| {
                s.replace("{id}", &id).replace("{uuid}", &uuid::Uuid::new_v4().simple().to_string())
            };
            let mut headers: Vec<(String, String)> =
                route.headers.iter().map(|(k, v)| (k.clone(), subst(v))).collect();
            if let Some(t) = token {
                headers.push(("authorization".into(), format!("Bearer {t}")));
            }
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = route.body.as_deref().map(subst).unwrap_or_default();
            let before = lambda.reports(name).len();
            recorder.set_route(timed.then_some(route.name.as_str()));
            let answer = front
                .send(route.method.parse()?, &subst(&route.path), &headers, body)
                .await
                .map_err(|e| anyhow::anyhow!("route {}: the front did not answer: {e}", route.name))?;
            // The invocation runs until its runtime polls again (what it does after answering
            // is the route's too), which idles the sandbox and writes the REPORT; without the
            // wait the next request would find it busy and cold-start another sandbox, whose
            // init would count in the route's figures.
            lambda.settle(name, settle_limit).await;
            recorder.set_route(None);
            let ok = match route.expect_status {
                Some(s) => answer.status == s,
                None => (200..300).contains(&answer.status),
            };
            if !ok {
                bail!(
                    "route {}: answered {} (expected {}): {}",
                    route.name,
                    answer.status,
                    route.expect_status.map_or("2xx".into(), |s| s.to_string()),
                    String::from_utf8_lossy(&answer.body).chars().take(300).collect::<String>()
                );
            }
            if let Some(field) = &route.capture {
                if let Some(v) = answer.json().get(field).and_then(Value::as_str) {
                    captured.entry(route.name.clone()).or_default().push((tenant.clone(), v.to_owned()));
                }
            }
            if !timed {
                continue;
            }
            let reports = lambda.reports(name);
            let Some(report) = reports.get(before..).and_then(|r| r.last()) else {
                bail!("route {}: no REPORT line for the invocation", route.name);
            };
            let entry = routes.entry(route.name.clone()).or_default();
            entry.invocations += 1;
            entry.durations_ms.push(report.duration.as_secs_f64() * 1000.0);
        }
    }
    let mut accesses = recorder.accesses();
    for a in &mut accesses {
        if let Some(logical) = tables.get(&a.table) {
            a.table = logical.clone();
        }
    }
    let unattributed = recorder.unattributed();
    lambda.reset().await;
    let tenants = match profile.tenants.hot_share {
        Some(s) => format!(
            "{} tenants, {}0 sending {:.0}% of requests",
            profile.tenants.count,
            profile.tenants.prefix,
            s * 100.0
        ),
        None => format!("{} tenants, evenly", profile.tenants.count),
    };
    Ok(Measurements {
        source: format!(
            "{} in the local Lambda runtime ({} MB) on DynamoDB Local: {} invocations per route after {} warm-up round(s), \
             durations from REPORT lines; {} DynamoDB item accesses recorded per route by a proxy \
             ({unattributed} outside measured requests); {tenants}; seed {}",
            bin.display(),
            profile.function.memory_mb,
            options.invocations,
            options.warmup,
            accesses.len(),
            options.seed
        ),
        routes,
        accesses,
    })
}

fn pick_tenant(profile: &CapacityProfile, rng: &mut StdRng) -> String {
    let t = &profile.tenants;
    let n = match t.hot_share {
        Some(s) if rng.gen_bool(s) => 0,
        Some(_) => rng.gen_range(1..t.count.max(2)),
        None => rng.gen_range(0..t.count),
    };
    format!("{}{n}", t.prefix)
}
