//! The cost of data protection on a payment body.
//!
//! - Group `classify_mask_1kb`: `bare` clones a parsed ~1 KB JSON payment body (the
//!   masker works in place, so every iteration needs a fresh copy); `layer` clones it,
//!   classifies it and masks it with the default policy.
//! - Group `aes_gcm_1kb`: `bare` copies a 1 KB buffer; `layer` seals it in the `v1`
//!   envelope format with a data key already in hand (what a data-key cache hit costs,
//!   without the KMS round trip).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lift::security::protection::{classify_json, mask_json, seal, DataKey, HashKey, Policy};
use serde_json::{json, Value};

/// A realistic ~1 KB payment body with a PAN, personal data and free text.
fn payment_body() -> Value {
    json!({
        "id": "pay_8f14e45fceea167a5a36dedd4bea2543",
        "amount": 12999, "currency": "EUR", "capture": true,
        "description": "Order #48213 - 2x running shoes, 1x socks; deliver to the back door",
        "card": { "number": "4111 1111 1111 1111", "expiry": "12/29", "cvc": "123", "holder": "Ada Lovelace" },
        "customer": {
            "id": "cus_42", "email": "ada.lovelace@example.com", "phone": "+44 20 7946 0958",
            "dob": "1985-12-10", "name": "Ada Lovelace",
            "address": { "street": "12 Analytical Engine Way", "city": "London", "postal_code": "N1 9GU", "country": "GB" }
        },
        "metadata": {
            "order_id": "48213", "channel": "web", "campaign": "spring-sale-2026",
            "note": "customer called from 415-555-2671 to confirm, card ending 1111",
            "ip": "203.0.113.42", "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15"
        },
        "items": [
            { "sku": "SHOE-RUN-42", "qty": 2, "unit_amount": 5999, "title": "Trail running shoe, size 42" },
            { "sku": "SOCK-3PK", "qty": 1, "unit_amount": 1001, "title": "Merino socks, 3 pack" }
        ],
        "shipping": { "method": "express", "amount": 0, "eta_days": 2 }
    })
}

fn classify_mask(c: &mut Criterion) {
    let body = payment_body();
    let size = serde_json::to_vec(&body).expect("serialize").len();
    assert!((800..=1400).contains(&size), "body is {size} bytes");
    let policy = Policy::new(HashKey::new(*b"bench key: thirty-two bytes long"));
    let mut group = c.benchmark_group("classify_mask_1kb");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| b.iter(|| black_box(body.clone())));
    group.bench_function("layer", |b| {
        b.iter(|| {
            let mut doc = body.clone();
            let class = classify_json(&doc);
            mask_json(&mut doc, &policy);
            black_box((class, doc))
        })
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

fn aes_gcm(c: &mut Criterion) {
    let key = DataKey { plaintext: [7u8; 32], blob: vec![9u8; 150] };
    let data = vec![0x5au8; 1024];
    let mut group = c.benchmark_group("aes_gcm_1kb");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| b.iter(|| black_box(black_box(&data).to_vec())));
    group.bench_function("layer", |b| {
        b.iter(|| black_box(seal(&key, "tenant-a", black_box(&data)).expect("seal")))
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, classify_mask, aes_gcm);
criterion_main!(benches);
