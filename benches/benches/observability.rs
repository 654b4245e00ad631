//! The cost of Lift's observability: one EMF metric value, one JSON log line, one X-Ray
//! segment sent over UDP.
//!
//! Groups (the keys in `budgets.toml`), each with `bare` (the baseline) and `layer`:
//! - `emf_metric_record`: recording one value into a fresh per-request recorder, through
//!   the `MetricsHandle` handlers use; `bare` only hands the same recorder to `black_box`.
//! - `log_line`: one `tracing` event with six fields inside a request span, formatted by
//!   the JSON layer, scrubbed and copied into an in-memory sink; `bare` is `black_box` of
//!   the same field values.
//! - `xray_segment`: a `Sampled=1` request through the `XrayLayer` over `noop()`, with the
//!   document built and sent over UDP to a local socket drained by a thread; `bare` is
//!   `noop()` called the same way (`poll_ready`, then `call`). One request is built per iteration, outside the timed
//!   part (`BatchSize::PerIteration`), as in `stack.rs`: a Lambda function handles one
//!   request at a time, and a batch of thousands built in advance makes glibc consolidate
//!   its free lists inside the timed part. `udp_send` is the kernel's part alone: one `send`
//!   of a datagram of the segment's size, which the budget counts at its reference median
//!   (see `budgets.toml`).

use std::cell::RefCell;
use std::io;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use lift::middleware::logging::tracing_subscriber::layer::SubscriberExt;
use lift::middleware::logging::{tracing, LogConfig};
use lift::middleware::metrics::{Metrics, MetricsHandle, Unit};
use lift::middleware::xray::XrayBuilder;
use lift_benches::{get_request, noop, Daemon};
use tower::{Layer, Service, ServiceExt};

fn emf_metric_record(c: &mut Criterion) {
    let template = Metrics::new("Lift/Bench")
        .and_then(|m| m.with_dimension_set(["Tenant", "Route"]))
        .expect("valid recorder");
    let fresh = || MetricsHandle::new(template.clone());
    let mut group = c.benchmark_group("emf_metric_record");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| {
        b.iter_batched_ref(
            fresh,
            |handle| {
                black_box(handle);
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("layer", |b| {
        b.iter_batched_ref(
            fresh,
            |handle| handle.record("Latency", black_box(12.5), Unit::Milliseconds),
            BatchSize::SmallInput,
        );
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

thread_local! {
    /// The in-memory sink: holds the last line, like a buffer a shipper would drain.
    static SINK: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

struct MemorySink;

impl io::Write for MemorySink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        SINK.with(|sink| {
            let mut sink = sink.borrow_mut();
            sink.clear();
            sink.extend_from_slice(bytes);
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn log_line(c: &mut Criterion) {
    let layer = LogConfig::new()
        .function_name("payments-api")
        .function_version("42")
        .writer(|| MemorySink)
        .build()
        .expect("valid config");
    let subscriber = lift::middleware::logging::tracing_subscriber::registry().with(layer);
    let mut group = c.benchmark_group("log_line");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| {
        b.iter(|| black_box(("pay_123", 1250u64, "EUR", "4111 1111 1111 1111", true, 12.5f64)));
    });
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            target: "lift::request",
            "request",
            request_id = "bench-request-1",
            tenant = "tenant-7",
            xray_trace_id = "1-5759e988-bd862e3fe1be46a994272793",
            cold_start = false,
        );
        let _entered = span.enter();
        let event = || {
            tracing::info!(
                payment_id = black_box("pay_123"),
                amount_cents = black_box(1250u64),
                currency = black_box("EUR"),
                card = black_box("4111 1111 1111 1111"),
                captured = black_box(true),
                latency_ms = black_box(12.5f64),
                "payment captured for customer"
            );
        };
        // The measured event must really be written, scrubbed, with the request's fields.
        event();
        let line = SINK.with(|s| String::from_utf8(s.borrow().clone()).expect("utf-8"));
        assert!(line.contains("[REDACTED:pan]") && line.contains("\"tenant\":\"tenant-7\""), "{line}");
        group.bench_function("layer", |b| b.iter(event));
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

/// One call as tower's callers make it, on both sides: `poll_ready` (through `ready`), then
/// `call`, then the response future.
async fn ready_call<S: Service<lift::Request>>(
    service: &mut S,
    req: lift::Request,
) -> Result<S::Response, S::Error> {
    service.ready().await?.call(req).await
}

fn xray_segment(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let daemon = Daemon::start();
    let address = daemon.address();
    let layer = XrayBuilder::new()
        .daemon_address(address.clone())
        .service_name("payments-api")
        .build()
        .expect("layer");

    let mut bare = noop();
    let mut traced = layer.layer(noop());
    let res = rt.block_on(traced.call(get_request())).expect("infallible");
    assert!(res.headers().contains_key("x-amzn-trace-id"), "the layer must run");

    let mut group = c.benchmark_group("xray_segment");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| {
        b.iter_batched(get_request, |req| rt.block_on(ready_call(&mut bare, req)), BatchSize::PerIteration);
    });
    group.bench_function("layer", |b| {
        b.iter_batched(get_request, |req| rt.block_on(ready_call(&mut traced, req)), BatchSize::PerIteration);
    });
    // The kernel's part alone, right after, for the budget's kernel adjustment: one `send`
    // of a datagram of the layer's size.
    let mut send = daemon.sender(daemon.largest_datagram());
    group.bench_function("udp_send", |b| b.iter(|| black_box(send())));
    lift_benches::calibrate_after(&mut group);
    group.finish();

    let received = daemon.stop();
    assert!(received > 0, "the daemon received segments");
    eprintln!("xray_segment: {received} datagrams received, {} dropped", layer.dropped_datagrams());
}

criterion_group!(benches, emf_metric_record, log_line, xray_segment);
criterion_main!(benches);
