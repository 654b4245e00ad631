//! The cost of the rate limiter's local decision, over the no-op service.
//!
//! Group `rate_limit_prefilter` (the key in `budgets.toml`), measured in one run:
//! - `bare`: `noop()` called through tower;
//! - `layer`: what the rate limiter does in-process before it would call DynamoDB, then
//!   the same `noop()`: split the request head off, compute the key (the tenant from the
//!   request's `Context`), ask the `LocalPrefilter` (governor's keyed GCRA plus the map of
//!   refusals DynamoDB already gave), and put the request back together. The DynamoDB
//!   round trip itself is not part of it: it is network time, not CPU overhead.
//!
//! The quota is large enough that every check admits (the common path). Requests are built
//! outside the timed part (`iter_batched`); calls over `noop()` are ready at their first
//! poll, so each is polled once with a no-op waker.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use lift::middleware::rate_limit::{compound_key, Algorithm, LocalPrefilter, RateLimitKey};
use lift::{Context, Request, Response};
use lift_benches::{get_request, noop};
use tower::Service;

/// Runs a future that is ready at its first poll (every call over `noop()` is).
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut TaskContext::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a call over noop() must be ready at once"),
    }
}

/// The bench request with the `Context` the App would have inserted.
fn tenant_request() -> Request {
    let mut req = get_request();
    let mut ctx = Context::new("bench-request-1");
    ctx.set_tenant("tenant-acme");
    req.extensions_mut().insert(ctx);
    req
}

/// The rate limiter's in-process gate in front of `inner`.
fn prefiltered<S>(
    inner: S,
    prefilter: LocalPrefilter,
    keys: Vec<RateLimitKey>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future = S::Future>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    let mut inner = inner;
    tower::service_fn(move |req: Request| {
        let (head, body) = req.into_parts();
        let key = compound_key(&keys, &head);
        prefilter.check(&key).expect("the bench quota admits every request");
        inner.call(http::Request::from_parts(head, body))
    })
}

fn rate_limit_prefilter(c: &mut Criterion) {
    let prefilter =
        LocalPrefilter::for_algorithm(Algorithm::FixedWindow, 1_000_000_000, Duration::from_secs(1))
            .expect("a valid quota");
    let mut layered = prefiltered(noop(), prefilter, vec![RateLimitKey::Tenant]);
    let res = ready(layered.call(tenant_request())).expect("admitted");
    assert_eq!(res.status(), 200);

    let mut bare = noop();
    let mut group = c.benchmark_group("rate_limit_prefilter");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| {
        b.iter_batched(tenant_request, |req| black_box(ready(bare.call(req)).is_ok()), BatchSize::SmallInput)
    });
    group.bench_function("layer", |b| {
        b.iter_batched(
            tenant_request,
            |req| black_box(ready(layered.call(req)).is_ok()),
            BatchSize::SmallInput,
        )
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, rate_limit_prefilter);
criterion_main!(benches);
