//! The cost of Lift's `App` over the bare handler: context, route matching among a
//! realistic route table, path parameters, the boxed route and the `X-Request-Id` echo.
//!
//! Group `router` (the key in `budgets.toml`): `bare` calls the no-op service directly,
//! `layer` calls an `App` of ten payments routes whose matched handler is that same no-op.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use lift::app::Route;
use lift::App;
use lift_benches::{get_request, noop};
use tower::ServiceExt;

/// Ten routes of a payments API; `get_request()` (`GET /payments/pay_123`) matches
/// `/payments/:id`, so the router has to look past static and longer routes.
fn app() -> App {
    let handler = || Route::new(noop());
    App::new()
        .get("/payments", handler())
        .post("/payments", handler())
        .get("/payments/:id", handler())
        .patch("/payments/:id", handler())
        .get("/payments/:id/refunds", handler())
        .post("/payments/:id/refunds", handler())
        .get("/payments/:id/refunds/:refund_id", handler())
        .get("/customers/:id", handler())
        .get("/customers/:id/payments", handler())
        .get("/health", handler())
        .region("eu-west-1")
}

fn router(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");

    // The app must route the bench request to a handler, or the bench measures a 404.
    let status = rt.block_on(app().into_service().oneshot(get_request())).expect("infallible").status();
    assert_eq!(status, http::StatusCode::OK, "GET /payments/pay_123 must match /payments/:id");

    // The request is built outside the timed part (`iter_batched`), so the medians are the
    // service calls alone and the ratio layer/bare means something.
    let mut group = c.benchmark_group("router");
    lift_benches::calibrate_before(&mut group);

    let bare = noop();
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter_batched(
            get_request,
            |req| {
                let svc = bare.clone();
                async move { black_box(svc.oneshot(req).await) }
            },
            BatchSize::SmallInput,
        )
    });

    let layer = app().into_service();
    group.bench_function("layer", |b| {
        b.to_async(&rt).iter_batched(
            get_request,
            |req| {
                let svc = layer.clone();
                async move { black_box(svc.oneshot(req).await) }
            },
            BatchSize::SmallInput,
        )
    });

    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, router);
criterion_main!(benches);
