//! The payments service's recommended stack on a realistic API Gateway v2 request.
//!
//! Group `stack` (the key in `budgets.toml`), measured in one run, both on the request an
//! API Gateway v2 event becomes: `GET /payments/pay_123` with the headers of the fixture in
//! `lift/tests/fixtures/apigw-v2-request.json` (host, user agent, `X-Forwarded-For`, a
//! sampled `X-Amzn-Trace-Id`...), a bearer RS256 token of tenant `acme`, and the Lambda
//! invocation (request id, deadline, trace header) from which the `App` builds the `Context`:
//! - `bare`: an `App` with the route and no layers;
//! - `layer`: the same route inside the stack payments mounts, built by the same function
//!   (`payments::Config::stack`, from variables as `main` reads them): the request log span,
//!   EMF metrics (flushed at the end of the invocation to a sink that keeps the last
//!   document), X-Ray (sampled: the document is built and sent over UDP to a local socket
//!   drained by a thread), JWT (RS256, keys fetched once from a local JWKS before measuring),
//!   the per-tenant bulkhead and circuit breaker, the deadline-aware timeout, then on the
//!   route the `payments:read` scope check, the compliance rules of every framework and
//!   threat detection.
//!
//! The stack's DynamoDB-backed layers are left out (`StackParts::dynamodb` is `None`): the
//! shared rate limit and the audit trail each make a DynamoDB call per request, whose
//! latency is the network's and DynamoDB's, not the middleware's (their in-process parts
//! are the `rate_limit_prefilter` and `audit_append` groups). Idempotency is on POST only,
//! and this is a GET.
//!
//! In both, the handler writes one info line through the JSON log layer (scrubbed, to an
//! in-memory sink). The request is built outside the timed part, one per iteration
//! (`BatchSize::PerIteration`): a Lambda function handles one request at a time, and a
//! batch of thousands of requests built in advance (criterion's `SmallInput`) leaves the
//! allocator in a state production never sees (glibc then consolidates its free lists in
//! the timed part, which the bench charged to the layers). The event-to-request conversion
//! is the dispatcher's and is not middleware. The trace is
//! sampled, so every request pays for a segment and its UDP send: the worst case (with
//! X-Ray's default rule, one request a second and 5% of the rest are sampled). `udp_send` is
//! that send alone (a datagram of the segment's size), which the budget counts at its
//! reference median (see `budgets.toml`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lift::middleware::auth::require_scope;
use lift::middleware::logging::tracing_subscriber::layer::SubscriberExt;
use lift::middleware::logging::{tracing, LogConfig};
use lift::middleware::metrics::MetricsSink;
use lift::{App, Body, Invocation, Request, Response, RouteGroup};
use lift_benches::{Daemon, ISSUER, RS256_TOKEN};
use payments::{Config, StackParts};
use serde_json::Value;
use tower::ServiceExt;

const EVENT: &str = include_str!("../../lift/tests/fixtures/apigw-v2-request.json");

/// The handler, the same in both: one info line (as handlers do) and a small JSON body.
async fn ok(_req: Request) -> Response {
    tracing::info!(payment_id = "pay_123", "payment fetched");
    Response::new(Body::from("{\"ok\":true}"))
}

/// Keeps the last EMF document, like a buffer a log shipper drains.
#[derive(Default, Clone)]
struct LastDocument(Arc<Mutex<String>>);

impl MetricsSink for LastDocument {
    fn emit(&self, document: &str) {
        let mut last = self.0.lock().expect("sink lock");
        last.clear();
        last.push_str(document);
    }
}

/// Keeps the last log line.
#[derive(Default, Clone)]
struct LastLine(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LastLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut last = self.0.lock().expect("log lock");
        last.clear();
        last.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const TRACE: &str = "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c;Parent=53995c3f42cd8ad8;Sampled=1";

/// The request the dispatcher makes of the fixture event, with its invocation.
fn request(event: &Value) -> Request {
    let mut builder = http::Request::builder().method("GET").uri("/payments/pay_123");
    for (name, value) in event["headers"].as_object().expect("the fixture has headers") {
        let value = if name == "x-amzn-trace-id" { TRACE } else { value.as_str().expect("a string") };
        builder = builder.header(name.as_str(), value);
    }
    builder = builder.header("authorization", format!("Bearer {RS256_TOKEN}"));
    let mut req = builder.body(Body::empty()).expect("a valid request");
    let invocation = Invocation {
        request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef".into(),
        deadline: Some(SystemTime::now() + Duration::from_secs(30)),
        invoked_function_arn: Some("arn:aws:lambda:eu-west-1:123456789012:function:payments-api".into()),
        xray_trace_id: Some(TRACE.into()),
    };
    // The dispatcher hands the invocation over; the App builds the Context from it.
    req.extensions_mut().insert(invocation);
    req
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let event: Value = serde_json::from_str(EVENT).expect("the fixture is JSON");

    let daemon = Daemon::start();
    let address = daemon.address();

    let metrics = LastDocument::default();
    let logs = LastLine::default();
    let bare = App::new().get("/payments/:id", ok).into_service();
    // The payments stack, built by the function payments' main uses, from its variables.
    let jwks_url = rt.block_on(lift_benches::serve_jwks());
    let vars = [
        ("PAYMENTS_FINGERPRINT_KEY", "bench-fingerprint-key-0123456789".to_owned()),
        ("PAYMENTS_JWT_ISSUER", ISSUER.to_owned()),
        ("PAYMENTS_JWKS_URL", jwks_url),
        ("PAYMENTS_METRICS_NAMESPACE", "Lift/Bench".to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", "payments-api".to_owned()),
        ("AWS_XRAY_DAEMON_ADDRESS", address),
    ];
    let config = Config::from_env_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
        .expect("the payments configuration");
    let compliance = lift::security::compliance::ComplianceRecorder::new();
    let parts = StackParts { compliance: compliance.clone(), ..StackParts::default() };
    let stack = config.stack(parts, metrics.clone()).expect("the payments stack");
    let reads =
        stack.guard(RouteGroup::new("/payments").get("/:id", ok), require_scope(payments::READ_SCOPE));
    let stacked = stack.apply(App::new().group(reads)).into_service();

    let log_layer = LogConfig::new()
        .function_name("payments-api")
        .function_version("42")
        .writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .build()
        .expect("log config");
    let subscriber = lift::middleware::logging::tracing_subscriber::registry().with(log_layer);

    tracing::subscriber::with_default(subscriber, || {
        // Both answer the same way, and the stack really ran.
        let plain = rt.block_on(bare.clone().oneshot(request(&event))).expect("bare answers");
        let traced = rt.block_on(stacked.clone().oneshot(request(&event))).expect("stack answers");
        assert_eq!(plain.status(), 200);
        assert_eq!(traced.status(), 200, "the token verifies and the stack lets the read through");
        assert_eq!(plain.body().as_bytes(), traced.body().as_bytes());
        assert!(traced.headers().contains_key("x-amzn-trace-id"), "{traced:?}");
        let document = metrics.0.lock().unwrap().clone();
        assert!(document.contains("CloudWatchMetrics") && document.contains("/payments/:id"), "{document}");
        let line = String::from_utf8(logs.0.lock().unwrap().clone()).expect("utf-8");
        assert!(
            line.contains("c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
            "the request span is on the line: {line}"
        );

        let mut anonymous = request(&event);
        anonymous.headers_mut().remove("authorization");
        let refused = rt.block_on(stacked.clone().oneshot(anonymous)).expect("stack answers");
        assert_eq!(refused.status(), 401, "the JWT layer is in the measured path");
        assert!(compliance.records().iter().any(|r| r.applied > 0), "the compliance rules ran");

        let mut group = c.benchmark_group("stack");
        lift_benches::calibrate_before(&mut group);
        group.bench_function("bare", |b| {
            b.iter_batched(
                || request(&event),
                |req| rt.block_on(bare.clone().oneshot(req)),
                BatchSize::PerIteration,
            );
        });
        group.bench_function("layer", |b| {
            b.iter_batched(
                || request(&event),
                |req| rt.block_on(stacked.clone().oneshot(req)),
                BatchSize::PerIteration,
            );
        });
        // The kernel's part of the X-Ray segment, for the budget's kernel adjustment.
        let mut send = daemon.sender(daemon.largest_datagram());
        group.bench_function("udp_send", |b| b.iter(|| std::hint::black_box(send())));
        lift_benches::calibrate_after(&mut group);
        group.finish();
    });

    let received = daemon.stop();
    assert!(received > 0, "the daemon received segments");
}

criterion_group!(benches, stack);
criterion_main!(benches);
