//! The cost of the threat detectors on a realistic 1 KB request.
//!
//! Group `threat_detect_1kb` (the key in `budgets.toml`), measured in one run:
//! - `bare`: `noop()` called through tower with the request;
//! - `layer`: `ThreatLayer::new()` (every request detector: SQL injection, XSS, path
//!   traversal, command injection and SSRF over the path, query, inspected headers and
//!   every JSON string of the body, plus the size and depth limits; the score; the
//!   assessment put in the extensions) over the same `noop()`. No store is configured:
//!   blocklist lookups and counters are DynamoDB round trips, network time rather than CPU
//!   overhead, and the bench measures the detectors.
//!
//! Requests are built outside the timed part (`iter_batched`); a call with nothing found
//! is ready at its first poll, so each is polled once with a no-op waker.

use criterion::{criterion_group, criterion_main, Criterion};
use lift::security::threat::ThreatLayer;
use lift::{Body, Context, Principal, Request};
use lift_benches::{bench_call, call_ready, noop};
use tower::Layer;

/// A ~1 KB payment body with names, an email, an address, prices and free text.
const BODY: &str = r#"{"id":"pay_8f14e45fceea167a5a36dedd4bea2543","amount":12999,"currency":"EUR","capture":true,
"description":"Order #48213 - 2x running shoes, 1x socks; deliver to the back door",
"card":{"token":"tok_1NqK2x2eZvKYlo2C","expiry":"12/29","holder":"Siobhan O'Brien"},
"customer":{"id":"cus_42","email":"siobhan.obrien@example.com","phone":"+353 1 234 5678","name":"Siobhan O'Brien",
"address":{"street":"12 O'Connell Street Upper","city":"Dublin","postal_code":"D01 F5P2","country":"IE"}},
"metadata":{"order_id":"48213","channel":"web","campaign":"spring-sale-2026","note":"price was 15.00 (now 12.99), 13% off",
"return_url":"https://shop.example.com/orders/48213?status=paid","ip":"203.0.113.42"},
"items":[{"sku":"SHOE-RUN-42","qty":2,"unit_amount":5999,"title":"Trail running shoe, size 42"},
{"sku":"SOCK-3PK","qty":1,"unit_amount":1001,"title":"Merino socks, 3 pack"}],
"shipping":{"method":"express","amount":0,"eta_days":2}}"#;

fn request() -> Request {
    let mut req = http::Request::builder()
        .method("POST")
        .uri("/payments?expand=customer&idempotent=true")
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .header("user-agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15")
        .header("referer", "https://shop.example.com/checkout")
        .header("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.sig")
        .header("x-request-id", "bench-request-1")
        .body(Body::from(BODY))
        .expect("valid request");
    let mut ctx = Context::new("bench-request-1");
    ctx.set_principal(Principal::new("user-1", "tenant-acme"));
    req.extensions_mut().insert(ctx);
    req
}

fn threat_detect(c: &mut Criterion) {
    assert!((900..=1300).contains(&BODY.len()), "body is {} bytes", BODY.len());
    let mut layered = ThreatLayer::new().layer(noop());
    let res = call_ready(&mut layered, request()).expect("infallible");
    assert_eq!(res.status(), 200, "the benign bench request must pass");

    let bare = noop();
    let mut group = c.benchmark_group("threat_detect_1kb");
    lift_benches::calibrate_before(&mut group);
    bench_call(&mut group, "bare", request, bare);
    bench_call(&mut group, "layer", request, layered);
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, threat_detect);
criterion_main!(benches);
