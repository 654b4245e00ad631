//! The cost of authentication and authorization: JWT verification with warm keys, and the
//! role and scope checks on a route.
//!
//! - `jwt_verify_hs256`, `jwt_verify_rs256`: `bare` is a no-op closure over the same token
//!   bytes, `layer` is [`Verifier::verify_cached`] (what the JWT layer runs per request once
//!   the keys are cached: parse, issuer, key, signature, claims, principal). The RS256 key
//!   is fetched once, before measuring, from a JWKS served on a local port.
//! - `role_scope_check`: `bare` is the no-op service, `layer` is `require_role` and
//!   `require_scope` over it, with a principal in the request's `Context`.
//!
//! The tokens were signed once with bench-only keys and expire in 2100.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lift::middleware::auth::{require_role, require_scope, Issuer, Verifier};
use lift::{Context, Principal};
use lift_benches::{
    bench_call, call_ready, get_request, noop, serve_jwks, AUDIENCE, HS256_SECRET, HS256_TOKEN, ISSUER,
    RS256_TOKEN,
};
use tower::ServiceBuilder;

/// `bare`: a no-op over the token bytes; `layer`: verification with the keys cached.
fn verify_group(c: &mut Criterion, name: &str, verifier: &Verifier, token: &'static str) {
    let verified = verifier.verify_cached(token).expect("the bench token verifies").expect("keys are warm");
    assert_eq!(verified.principal.tenant, "acme");
    let mut group = c.benchmark_group(name);
    lift_benches::calibrate_before(&mut group);
    let noop = |token: &[u8]| token.len();
    group.bench_function("bare", |b| b.iter(|| black_box(noop(black_box(token.as_bytes())))));
    group.bench_function("layer", |b| b.iter(|| black_box(verifier.verify_cached(black_box(token)))));
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");

    let hs256 = Verifier::builder()
        .issuer(Issuer::hs256(ISSUER, HS256_SECRET.to_vec()).audience(AUDIENCE))
        .build()
        .expect("hs256 verifier");
    verify_group(c, "jwt_verify_hs256", &hs256, HS256_TOKEN);

    let url = rt.block_on(serve_jwks());
    let rs256 = Verifier::builder()
        .issuer(Issuer::jwks(ISSUER, url).audience(AUDIENCE))
        .build()
        .expect("rs256 verifier");
    rt.block_on(rs256.verify(RS256_TOKEN)).expect("the key is fetched and the token verifies");
    verify_group(c, "jwt_verify_rs256", &rs256, RS256_TOKEN);
}

fn authorized_request() -> lift::Request {
    let mut req = get_request();
    let mut ctx = Context::new("bench-request-1");
    ctx.set_principal(
        Principal::new("user-1", "acme")
            .with_roles(["support"])
            .with_scopes(["payments:read", "payments:write"]),
    );
    req.extensions_mut().insert(ctx);
    req
}

fn role_scope_check(c: &mut Criterion) {
    let mut checked = ServiceBuilder::new()
        .layer(require_role("support"))
        .layer(require_scope("payments:write"))
        .service(noop());
    let status = call_ready(&mut checked, authorized_request()).expect("allowed").status();
    assert_eq!(status, http::StatusCode::OK, "the bench principal passes both checks");

    // The request (with its context) is built outside the timed part, and both sides are
    // called the way the resilience benches call theirs (`poll_ready`, `call`, the future
    // polled once), through `&mut`: no per-call clone of the stack's `Arc`s, which `bare`
    // does not have.
    let mut group = c.benchmark_group("role_scope_check");
    lift_benches::calibrate_before(&mut group);
    bench_call(&mut group, "bare", authorized_request, noop());
    bench_call(&mut group, "layer", authorized_request, checked);
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, jwt, role_scope_check);
criterion_main!(benches);
