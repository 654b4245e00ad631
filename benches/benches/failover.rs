//! The cost of passive health to each request of the failover client.
//!
//! Group `passive_observer` (the key in `budgets.toml`): around each DynamoDB call the
//! failover client asks the monitor's [`RequestObserver`] for the call's timeout and then
//! records how the call went (the harness's drill load does exactly this). `layer` does both
//! with passive detection on, in its steady state: two regions, four operations, each with a
//! full window of answers, so every eighth record works the p99 out again. `bare` does the
//! same calls on the observer of a probe-only monitor, which keeps the caller's timeout and
//! records nothing. Both read the clock for the call's start, as the client does.
//!
//! The SDK interceptor's share (one `record` without a latency sample per attempt) is less
//! than this, and the DynamoDB call it sits beside takes milliseconds on AWS.

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lift::disaster::{HealthMonitor, MonitorConfig, Probe, ProbeFuture, RequestObserver};

/// A probe that always passes; the monitor's probe tasks never run here (the runtime is
/// not driven while the bench measures).
#[derive(Debug)]
struct Up;

impl Probe for Up {
    fn name(&self) -> &str {
        "up"
    }

    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const OPERATIONS: [&str; 4] = ["GetItem", "PutItem", "UpdateItem", "TransactWriteItems"];
const DEADLINE: Duration = Duration::from_secs(1);

fn monitor(rt: &tokio::runtime::Runtime, config: MonitorConfig) -> HealthMonitor {
    rt.block_on(async {
        let mut builder = HealthMonitor::builder(config);
        for region in REGIONS {
            builder = builder.region(region, vec![Arc::new(Up) as Arc<dyn Probe>]);
        }
        builder.start().expect("monitor")
    })
}

/// One request as the failover client makes it: its timeout, then its outcome.
#[inline(always)]
fn request(observer: &RequestObserver, turn: usize) -> Duration {
    let operation = OPERATIONS[turn % OPERATIONS.len()];
    let started = std::time::Instant::now();
    let timeout = observer.timeout(REGIONS[0], operation, DEADLINE);
    observer.record(REGIONS[0], operation, started, Ok(()));
    timeout
}

fn passive_observer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let passive = monitor(&rt, MonitorConfig::default());
    let probe_only = monitor(&rt, MonitorConfig::default().probe_only());
    let (observer, disabled) = (passive.observer(), probe_only.observer());
    assert!(observer.is_passive() && !disabled.is_passive());
    // The steady state: every operation's window full, its timeout adapted below the deadline.
    for turn in 0..OPERATIONS.len() * 512 {
        request(&observer, turn);
    }
    for operation in OPERATIONS {
        let timeout = observer.timeout(REGIONS[0], operation, DEADLINE);
        assert!(timeout < DEADLINE, "{operation}: the timeout must have adapted, not be the deadline");
    }
    assert_eq!(disabled.timeout(REGIONS[0], "GetItem", DEADLINE), DEADLINE);

    let mut group = c.benchmark_group("passive_observer");
    lift_benches::calibrate_before(&mut group);
    let mut turn = 0usize;
    group.bench_function("bare", |b| {
        b.iter(|| {
            turn = turn.wrapping_add(1);
            black_box(request(black_box(&disabled), turn))
        })
    });
    group.bench_function("layer", |b| {
        b.iter(|| {
            turn = turn.wrapping_add(1);
            black_box(request(black_box(&observer), turn))
        })
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
    drop((passive, probe_only));
}

criterion_group!(benches, passive_observer);
criterion_main!(benches);
