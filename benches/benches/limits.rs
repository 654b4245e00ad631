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
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lift::middleware::rate_limit::{compound_key, Algorithm, LocalPrefilter, RateLimitKey};
use lift::{Context, Request, Response};
use lift_benches::{bench_call, call_ready, get_request, noop};
use tower::Service;

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
    let res = call_ready(&mut layered, tenant_request()).expect("admitted");
    assert_eq!(res.status(), 200);

    let bare = noop();
    let mut group = c.benchmark_group("rate_limit_prefilter");
    lift_benches::calibrate_before(&mut group);
    bench_call(&mut group, "bare", tenant_request, bare);
    bench_call(&mut group, "layer", tenant_request, layered);
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, rate_limit_prefilter);
criterion_main!(benches);
