//! The cost of the compliance rules over one invocation.
//!
//! Group `compliance_rules` (the key in `budgets.toml`): `layer` runs every built-in rule
//! of the four frameworks (request and invocation phases) over a clean payment invocation:
//! a ~1 KB JSON request with a card number, the JSON response, three log lines and its
//! audit entry; `bare` hands the same record to `black_box`. Nothing is violated (the
//! common path); the record is built once, outside the timed part.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method, StatusCode};
use lift::security::audit::{AuditEntry, AuditStorage, Outcome};
use lift::security::compliance::{builtin, check, InvocationRecord, Phase, RequestView, ResponseView};

fn invocation() -> InvocationRecord {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-proto", "https".parse().expect("header"));
    headers.insert("content-type", "application/json".parse().expect("header"));
    headers.insert("user-agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)".parse().expect("header"));
    let request = serde_json::json!({
        "card_number": "4111 1111 1111 1111", "amount": 12999, "currency": "EUR",
        "description": "Order #48213 - 2x running shoes, 1x socks; deliver to the back door",
        "customer": {
            "id": "cus_42", "name": "Ada Lovelace",
            "address": { "street": "12 Analytical Engine Way", "city": "London", "postal_code": "N1 9GU", "country": "GB" }
        },
        "metadata": { "order_id": "48213", "channel": "web", "campaign": "spring-sale-2026", "ip": "203.0.113.42" }
    });
    let response = serde_json::json!({
        "id": "pay_8f14e45fceea167a5a36dedd4bea2543", "amount": 12999, "currency": "EUR", "status": "succeeded",
        "refunded_amount": 0, "card": { "brand": "visa", "last4": "1111", "fingerprint": "9f86d081884c7d659a2feaa0c55ad015" },
        "customer": { "id": "cus_42" }, "created_at": "2026-11-23T02:00:00Z"
    });
    InvocationRecord {
        request: RequestView {
            method: Method::POST,
            path: "/payments".into(),
            headers,
            body: request.to_string().into(),
            request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef".into(),
            tenant: Some("acme".into()),
            subject: Some("user-1".into()),
            region: Some("eu-west-1".into()),
            ..RequestView::default()
        },
        response: Some(ResponseView { status: StatusCode::CREATED, headers: HeaderMap::new(), body: response.to_string().into() }),
        logs: vec![
            r#"{"timestamp":"2026-11-23T02:00:00.123Z","level":"INFO","message":"request","request_id":"c6af9ac6","tenant":"acme"}"#.into(),
            r#"{"timestamp":"2026-11-23T02:00:00.130Z","level":"INFO","message":"payment created","payment_id":"pay_8f14e45f","card":"************1111"}"#.into(),
            r#"{"timestamp":"2026-11-23T02:00:00.131Z","level":"INFO","message":"response","status":201,"latency_ms":8.1}"#.into(),
        ],
        audit: vec![AuditEntry::new("acme", "user-1", "POST /payments", "payment/pay_8f14e45f", Outcome::Success)
            .data_classes(["pci"])],
        audit_storage: Some(AuditStorage::Stored),
    }
}

fn compliance_rules(c: &mut Criterion) {
    let rules = builtin();
    let record = invocation();
    let run = |r: &InvocationRecord| {
        let mut v = check(&rules, Phase::Request, r);
        v.extend(check(&rules, Phase::Invocation, r));
        v
    };
    assert!(run(&record).is_empty(), "the bench invocation is clean: {:?}", run(&record));
    let mut group = c.benchmark_group("compliance_rules");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| b.iter(|| black_box(black_box(&record).request.body.len())));
    group.bench_function("layer", |b| b.iter(|| black_box(run(black_box(&record)))));
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, compliance_rules);
criterion_main!(benches);
