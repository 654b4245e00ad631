//! The cost of recording an audit entry on the request path.
//!
//! Group `audit_append` (the key in `budgets.toml`): `layer` is
//! [`AuditTrail::try_append`] of a typical entry into the in-memory buffer (sealing and the
//! DynamoDB write happen at the flush, at the end of the invocation); `bare` pushes the
//! same entry into a plain pre-allocated `Vec` (so both keep the entry and neither pays for
//! dropping it in the timed part). Entries are built outside the timed part; every 10 000 appends the
//! buffer is dropped (outside the timed part) and a new trail started, so the buffer never
//! grows past what an invocation holds.

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lift::security::audit::{AuditEntry, AuditTrail, Outcome};

const CHUNK: u64 = 10_000;

fn entry(i: u64) -> AuditEntry {
    AuditEntry::new("acme", "user-1", "GET /payments/:id", format!("payment/pay_{i}"), Outcome::Success)
        .from_where("203.0.113.7")
        .request_id("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
        .data_classes(["pci.pan_last4", "pii.email"])
}

fn trail() -> AuditTrail {
    // Never flushed here: the client's endpoint is never called.
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    AuditTrail::builder()
        .client(aws_sdk_dynamodb::Client::from_conf(config))
        .table("bench-audit")
        .capacity(CHUNK as usize)
        .build()
        .expect("a valid trail")
}

/// Times `f` over `iters` entries, in chunks with a fresh trail each.
fn timed(iters: u64, mut f: impl FnMut(&AuditTrail, &mut Vec<AuditEntry>, AuditEntry)) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        let trail = trail();
        let entries: Vec<AuditEntry> = (0..n).map(entry).collect();
        let mut plain = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for e in entries {
            f(&trail, &mut plain, e);
        }
        total += start.elapsed();
        assert!(trail.pending() + plain.len() == n as usize);
        drop((trail, black_box(plain)));
        done += n;
    }
    total
}

fn audit_append(c: &mut Criterion) {
    let probe = trail();
    probe.try_append(entry(0)).expect("room");
    assert_eq!(probe.pending(), 1);
    let mut group = c.benchmark_group("audit_append");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| timed(iters, |_, plain, e| plain.push(black_box(e))))
    });
    group.bench_function("layer", |b| {
        b.iter_custom(|iters| timed(iters, |trail, _, e| trail.try_append(black_box(e)).expect("room")))
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, audit_append);
criterion_main!(benches);
