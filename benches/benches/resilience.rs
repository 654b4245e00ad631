//! The cost of Lift's resilience layers on the happy path, over the no-op service, beside
//! tower's own layer for the same job (its twin).
//!
//! Groups (the keys in `budgets.toml`), each with `bare` (`noop()` called through tower),
//! `layer` (the layer over the same `noop()`) and, where tower has one, `tower` (tower's
//! twin over the same `noop()`), measured in the same run:
//! - `circuit_breaker`: a closed breaker (default configuration: one global key, a window of
//!   the last 100 calls, failure rate only): admit, call, classify, record in the window.
//!   Tower has no breaker.
//! - `bulkhead`: a global limit of 64 permits: take a permit, call, free it. Twin: tower's
//!   `ConcurrencyLimit` of 64.
//! - `load_shed`: the adaptive (AIMD) limit: classify the priority, admit, call, sample.
//!   Twin: tower's `LoadShed`. Also measured, not gated: `tower_limited`, tower's `LoadShed`
//!   over a `ConcurrencyLimit` of 64, tower's way of shedding above a limit (it counts each
//!   request in and out as ours does; `LoadShed` alone only forwards readiness).
//! - `timeout`: the deadline-aware timeout (no Lambda deadline on the request): compute the
//!   budget, call; the timer is only created if the inner future is pending, which it never is.
//!   Twin: tower's `Timeout` of the same 3 s.
//! - `retry_first_attempt`: the retry layer on a GET that succeeds at once: budget deposit,
//!   deadline lookup, the request copy kept for a retry, the call, the classification. Twin:
//!   tower's `Retry` with a policy that copies the request and deposits in a `TpsBudget`.
//! - `resilience_stack`: bulkhead, timeout and load shed in one `ServiceBuilder`; twin:
//!   tower's `ConcurrencyLimit`, `Timeout` and `LoadShed` in one `ServiceBuilder`.
//!
//! Every function makes its call the same way ([`lift_benches::call_ready`]): `poll_ready`,
//! `call`, the response future polled once with a no-op waker inside a current-thread
//! runtime's context (what `block_on` of a ready future does, without the scheduler's own
//! cost drowning the layers'). The request is built, and the response dropped, outside the
//! timed part, so the difference of the medians is the layer's overhead. Each service's
//! first call is checked to leave nothing to that untimed drop beyond what the bare
//! service's does ([`lift_benches::check_nothing_deferred`]).

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use lift::middleware::bulkhead::BulkheadLayer;
use lift::middleware::circuit_breaker::{CircuitBreakerLayer, State};
use lift::middleware::load_shed::LoadShedLayer;
use lift::middleware::retry::RetryLayer;
use lift::middleware::timeout::TimeoutLayer;
use lift::{Request, Response};
use lift_benches::{bench_call, call_ready, get_request, noop, twins, NoopAgain};
use tokio::runtime::Runtime;
use tower::{Layer, Service};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// Measures `bare` (the no-op service), `layer` (`layered`) and, when given, `tower` (its
/// tower twin) in one group.
fn compare<S, T>(c: &mut Criterion, rt: &Runtime, group: &str, layered: S, twin: Option<T>)
where
    S: Service<Request, Response = Response>,
    S::Error: std::fmt::Debug,
    T: Service<Request, Response = Response>,
    T::Error: std::fmt::Debug,
{
    compare_twins(c, rt, group, layered, |group| {
        if let Some(twin) = twin {
            measure_twin(group, "tower", twin);
        }
    });
}

/// Measures `bare`, `layer` (`layered`) and then whatever twins `twins` measures, in one group.
fn compare_twins<S>(
    c: &mut Criterion,
    rt: &Runtime,
    group: &str,
    mut layered: S,
    twins: impl FnOnce(&mut BenchmarkGroup<'_, WallTime>),
) where
    S: Service<Request, Response = Response>,
    S::Error: std::fmt::Debug,
{
    // Clocks, timers and semaphores find the runtime through this context.
    let _context = rt.enter();
    // Each service must answer the bench request, or the bench measures a rejection.
    let res = call_ready(&mut layered, get_request()).expect("the layer lets the request through");
    lift_benches::check_nothing_deferred(&res).expect("the layer leaves no work to the untimed drop");
    let mut group = c.benchmark_group(group);
    lift_benches::calibrate_before(&mut group);
    bench_call(&mut group, "bare", get_request, noop());
    bench_call(&mut group, "layer", get_request, layered);
    twins(&mut group);
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

/// Measures a twin as function `name` of `group`, once it answers the bench request.
fn measure_twin<T>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, mut twin: T)
where
    T: Service<Request, Response = Response>,
    T::Error: std::fmt::Debug,
{
    let res = call_ready(&mut twin, get_request()).expect("the twin lets the request through");
    lift_benches::check_nothing_deferred(&res).expect("the twin leaves no work to the untimed drop");
    bench_call(group, name, get_request, twin);
}

/// No twin: tower has no layer for the job.
type NoTwin = tower::util::BoxService<Request, Response, std::convert::Infallible>;

fn circuit_breaker(c: &mut Criterion) {
    let rt = runtime();
    let layer = CircuitBreakerLayer::builder().build().expect("valid configuration");
    let breakers = layer.breakers();
    compare(c, &rt, "circuit_breaker", layer.layer(noop()), None::<NoTwin>);
    let metrics = breakers.metrics(&()).expect("the breaker saw calls");
    assert_eq!((metrics.state, metrics.failures), (State::Closed, 0));
}

fn bulkhead(c: &mut Criterion) {
    let rt = runtime();
    let layer = BulkheadLayer::new(64);
    compare(c, &rt, "bulkhead", layer.layer(noop()), Some(twins::concurrency_limit(64).layer(noop())));
    assert_eq!(layer.available(), Some(64), "every permit was freed");
    assert_eq!(layer.rejections(), 0);
}

fn load_shed(c: &mut Criterion) {
    let rt = runtime();
    let layer = LoadShedLayer::builder().initial_limit(64).build().expect("valid configuration");
    let limit = layer.limit();
    compare_twins(c, &rt, "load_shed", layer.layer(noop()), |group| {
        measure_twin(group, "tower", twins::load_shed().layer(noop()));
        // Not gated: tower's way of shedding above a limit, for a like-for-like figure.
        measure_twin(group, "tower_limited", twins::limited_load_shed(64).service(NoopAgain));
    });
    assert_eq!((limit.in_flight(), limit.shed()), (0, 0));
}

fn timeout(c: &mut Criterion) {
    let rt = runtime();
    let ours = TimeoutLayer::new(Duration::from_secs(3)).layer(noop());
    compare(c, &rt, "timeout", ours, Some(twins::timeout(Duration::from_secs(3)).layer(noop())));
}

fn retry_first_attempt(c: &mut Criterion) {
    let rt = runtime();
    let layer = RetryLayer::new();
    compare(c, &rt, "retry_first_attempt", layer.layer(noop()), Some(twins::retry().layer(noop())));
    assert_eq!(layer.retries(), 0, "only first attempts were measured");
}

fn resilience_stack(c: &mut Criterion) {
    let rt = runtime();
    let load_shed = LoadShedLayer::builder().initial_limit(64).build().expect("valid configuration");
    let limit = load_shed.limit();
    let ours = tower::ServiceBuilder::new()
        .layer(BulkheadLayer::new(64))
        .layer(TimeoutLayer::new(Duration::from_secs(3)))
        .layer(load_shed)
        .service(noop());
    compare(c, &rt, "resilience_stack", ours, Some(twins::stack(64, Duration::from_secs(3)).service(noop())));
    assert_eq!((limit.in_flight(), limit.shed()), (0, 0));
}

criterion_group!(
    benches,
    circuit_breaker,
    bulkhead,
    load_shed,
    timeout,
    retry_first_attempt,
    resilience_stack
);
criterion_main!(benches);
