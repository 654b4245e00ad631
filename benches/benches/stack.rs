//! The whole observability + resilience stack on a realistic API Gateway v2 request.
//!
//! Group `stack` (the key in `budgets.toml`), measured in one run, both on the request an
//! API Gateway v2 event becomes: `GET /payments/pay_123` with the headers of the fixture in
//! `lift/tests/fixtures/apigw-v2-request.json` (host, user agent, `X-Forwarded-For`, a
//! sampled `X-Amzn-Trace-Id`...) and the Lambda invocation (request id, deadline, trace
//! header) from which the `App` builds the `Context`:
//! - `bare`: an `App` with the route and no layers;
//! - `layer`: the same `App` behind, from the outside in, X-Ray (sampled: the document is
//!   built and sent over UDP to a local socket drained by a thread), the request log span
//!   (its request id, tenant, trace id and cold start go on the handler's line), EMF metrics (count,
//!   latency and status class, flushed at the end of the invocation to a sink that keeps
//!   the last document), adaptive load shedding, a bulkhead, the deadline-aware timeout
//!   and a circuit breaker.
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
use lift::middleware::bulkhead::BulkheadLayer;
use lift::middleware::circuit_breaker::CircuitBreakerLayer;
use lift::middleware::load_shed::LoadShedLayer;
use lift::middleware::logging::tracing_subscriber::layer::SubscriberExt;
use lift::middleware::logging::{tracing, LogConfig, RequestLogLayer};
use lift::middleware::metrics::{MetricsBuilder, MetricsSink};
use lift::middleware::timeout::TimeoutLayer;
use lift::middleware::xray::XrayBuilder;
use lift::{App, Body, Invocation, Request, Response};
use lift_benches::Daemon;
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
    let stacked = App::new()
        .get("/payments/:id", ok)
        .layer(CircuitBreakerLayer::builder().build().expect("breaker"))
        .layer(TimeoutLayer::new(Duration::from_secs(10)))
        .layer(BulkheadLayer::new(64))
        .layer(LoadShedLayer::builder().initial_limit(64).build().expect("load shed"))
        .layer(
            MetricsBuilder::new()
                .namespace("Lift/Bench")
                .function_name("payments-api")
                .sink(metrics.clone())
                .build()
                .expect("metrics"),
        )
        .layer(RequestLogLayer::new())
        .layer(XrayBuilder::new().daemon_address(address).service_name("payments-api").build().expect("xray"))
        .into_service();

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
        assert_eq!(traced.status(), 200);
        assert_eq!(plain.body().as_bytes(), traced.body().as_bytes());
        assert!(traced.headers().contains_key("x-amzn-trace-id"), "{traced:?}");
        let document = metrics.0.lock().unwrap().clone();
        assert!(document.contains("CloudWatchMetrics") && document.contains("/payments/:id"), "{document}");
        let line = String::from_utf8(logs.0.lock().unwrap().clone()).expect("utf-8");
        assert!(
            line.contains("c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
            "the request span is on the line: {line}"
        );

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
