//! The cost of Lift's resilience layers on the happy path, over the no-op service.
//!
//! Groups (the keys in `budgets.toml`), each with `bare` (`noop()` called through tower)
//! and `layer` (the layer over the same `noop()`), measured in the same run:
//! - `circuit_breaker`: a closed breaker (default configuration: one global key, a window of
//!   the last 100 calls, failure rate only): admit, call, classify, record in the window.
//! - `bulkhead`: a global limit of 64 permits: take a permit, call, free it.
//! - `load_shed`: the adaptive (AIMD) limit: classify the priority, admit, call, sample.
//! - `timeout`: the deadline-aware timeout (no Lambda deadline on the request): compute the
//!   budget, call; the timer is only created if the inner future is pending, which it never is.
//! - `retry_first_attempt`: the retry layer on a GET that succeeds at once: budget deposit,
//!   deadline lookup, the request copy kept for a retry, the call, the classification.
//!
//! The request is built outside the timed part (`iter_batched`). Over `noop()` every call is
//! ready at its first poll, so each is polled once with a no-op waker inside a current-thread
//! runtime's context (what `block_on` of a ready future does, without the scheduler's own
//! cost drowning the layers'), the same way for `bare` and `layer`: the difference of the
//! medians is the layer's overhead.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use lift::middleware::bulkhead::BulkheadLayer;
use lift::middleware::circuit_breaker::{CircuitBreakerLayer, State};
use lift::middleware::load_shed::LoadShedLayer;
use lift::middleware::retry::RetryLayer;
use lift::middleware::timeout::TimeoutLayer;
use lift::{Request, Response};
use lift_benches::{get_request, noop};
use tokio::runtime::Runtime;
use tower::{Layer, Service};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// Runs a future that is ready at its first poll (every call over `noop()` is).
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a call over noop() must be ready at once"),
    }
}

/// Measures `bare` (the no-op service) and `layer` (`layered`) in one group.
fn compare<S>(c: &mut Criterion, rt: &Runtime, group: &str, mut layered: S)
where
    S: Service<Request, Response = Response>,
    S::Error: std::fmt::Debug,
{
    // The layered service must answer the bench request, or the bench measures a rejection.
    let res = rt.block_on(layered.call(get_request())).expect("the layer lets the request through");
    assert_eq!(res.status(), 200);
    // Clocks, timers and semaphores find the runtime through this context.
    let _context = rt.enter();

    let mut bare = noop();
    let mut group = c.benchmark_group(group);
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| {
        b.iter_batched(
            get_request,
            |req| black_box(ready(bare.call(req)).map_err(|e: Infallible| e)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("layer", |b| {
        b.iter_batched(get_request, |req| black_box(ready(layered.call(req)).is_ok()), BatchSize::SmallInput)
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

fn circuit_breaker(c: &mut Criterion) {
    let rt = runtime();
    let layer = CircuitBreakerLayer::builder().build().expect("valid configuration");
    let breakers = layer.breakers();
    compare(c, &rt, "circuit_breaker", layer.layer(noop()));
    let metrics = breakers.metrics(&()).expect("the breaker saw calls");
    assert_eq!((metrics.state, metrics.failures), (State::Closed, 0));
}

fn bulkhead(c: &mut Criterion) {
    let rt = runtime();
    let layer = BulkheadLayer::new(64);
    compare(c, &rt, "bulkhead", layer.layer(noop()));
    assert_eq!(layer.available(), Some(64), "every permit was freed");
    assert_eq!(layer.rejections(), 0);
}

fn load_shed(c: &mut Criterion) {
    let rt = runtime();
    let layer = LoadShedLayer::builder().initial_limit(64).build().expect("valid configuration");
    let limit = layer.limit();
    compare(c, &rt, "load_shed", layer.layer(noop()));
    assert_eq!((limit.in_flight(), limit.shed()), (0, 0));
}

fn timeout(c: &mut Criterion) {
    let rt = runtime();
    compare(c, &rt, "timeout", TimeoutLayer::new(Duration::from_secs(3)).layer(noop()));
}

fn retry_first_attempt(c: &mut Criterion) {
    let rt = runtime();
    let layer = RetryLayer::new();
    compare(c, &rt, "retry_first_attempt", layer.layer(noop()));
    assert_eq!(layer.retries(), 0, "only first attempts were measured");
}

criterion_group!(benches, circuit_breaker, bulkhead, load_shed, timeout, retry_first_attempt);
criterion_main!(benches);
