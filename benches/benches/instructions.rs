//! Instruction counts of Lift's resilience layers and of their tower twins, each over the
//! same no-op service, under valgrind's callgrind (gungraun): a count does not move with a
//! busy host, so the gate on it (`lift-harness budget --instructions`, baseline in
//! `benches/instructions.toml`) needs no calibration and no retries.
//!
//! Every benchmark makes [`CALLS`] calls the way tower's callers do
//! ([`lift_benches::call_ready`]: `poll_ready`, `call`, the response future polled once)
//! inside a current-thread runtime's context. The service is built, warmed up (first-call
//! allocations out of the count) and given its requests in the setup, which is not counted;
//! the responses are returned, so they are dropped outside the count too; the warm-up checks
//! that a service leaves nothing to those drops beyond what `bare` does
//! ([`lift_benches::check_nothing_deferred`]). A layer's cost is its count minus `bare`'s.
//!
//! Run: `cargo bench -p lift-benches --bench instructions` (needs valgrind and
//! `gungraun-runner` of the same version as the `gungraun` crate; `.ci/run` installs both).
//! `LIFT_BENCH_EXTRA_WORK=<percent>` makes every Lift layer spin that share of its baseline
//! count over bare more, to show the gate catching a slower layer (`.ci/bench-gate` runs it
//! at 5% and requires the gate to fail on every layer).

use std::hint::black_box;
use std::time::Duration;

use gungraun::{library_benchmark, library_benchmark_group, main, LibraryBenchmarkConfig};
use lift::middleware::bulkhead::{Bulkhead, BulkheadLayer};
use lift::middleware::load_shed::{LoadShed, LoadShedLayer};
use lift::middleware::retry::{Retry, RetryLayer};
use lift::middleware::timeout::{Timeout, TimeoutLayer};
use lift::{Request, Response};
use lift_benches::{
    call_ready, check_nothing_deferred, get_request, keep_room, noop, twins, Noop, NoopAgain,
};
use tokio::runtime::Runtime;
use tower::{Layer, Service};

/// Calls per benchmark: enough that one call's share of fixed costs is small, few enough that
/// valgrind runs each benchmark in well under a second.
const CALLS: usize = 32;
/// Calls made before counting, so first-call allocations (thread locals, vectors) are not
/// counted.
const WARM_UP: usize = 8;

/// A service ready to be counted: its runtime, the service, its requests and room for the
/// responses.
struct Prepared<S: Service<Request>> {
    rt: Runtime,
    service: S,
    requests: Vec<Request>,
    responses: Vec<Result<S::Response, S::Error>>,
    spins: u64,
}

fn prepare<S: Service<Request, Response = Response>>(mut service: S, spins: u64) -> Prepared<S>
where
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    {
        let _context = rt.enter();
        for _ in 0..WARM_UP {
            let res = call_ready(&mut service, get_request()).expect("the service answers");
            check_nothing_deferred(&res).expect("the service leaves no work to the uncounted drop");
        }
    }
    // Drops what the warm-up kept; the requests made below are kept by `noop()` when called,
    // in room made here, so that the count holds no growing of the harness's vector.
    drop(get_request());
    keep_room(CALLS);
    let requests = (0..CALLS).map(|_| get_request()).collect();
    Prepared { rt, service, requests, responses: Vec::with_capacity(CALLS), spins }
}

/// The counted part: `CALLS` calls.
fn calls<S: Service<Request>>(mut p: Prepared<S>) -> Prepared<S> {
    {
        let _context = p.rt.enter();
        for req in std::mem::take(&mut p.requests) {
            if p.spins > 0 {
                spin(p.spins);
            }
            let res = call_ready(&mut p.service, black_box(req));
            p.responses.push(res);
        }
    }
    p
}

/// The baseline the gate checks these counts against, for `LIFT_BENCH_EXTRA_WORK`.
const BASELINE: &str = include_str!("../instructions.toml");

/// Instructions a call to [`spin`] costs besides its iterations (the call, its set-up, its
/// return), and those of one iteration.
const SPIN_CALL: u64 = 8;
const SPIN_ITERATION: u64 = 4;

/// The extra work `LIFT_BENCH_EXTRA_WORK` asks `layer` to do (see the module docs): `percent`
/// of the instructions its baseline says it adds over bare (`over_bare`, all `CALLS` calls),
/// as a call to [`spin`] before each call in the counted part (not a wrapping service, which
/// would move the request once more). At least one iteration: for a layer whose share per
/// call is below the call to the spin itself (load shed's 5% is under 5 instructions a call),
/// the rise is that call's, more than `percent`.
fn extra(layer: &str) -> u64 {
    let percent: u64 = std::env::var("LIFT_BENCH_EXTRA_WORK").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if percent == 0 {
        return 0;
    }
    let per_call = (baseline_over_bare(layer) * percent / 100).div_ceil(CALLS as u64);
    per_call.saturating_sub(SPIN_CALL).div_ceil(SPIN_ITERATION).max(1)
}

/// `over_bare` of `[layers.<layer>]` in the baseline.
fn baseline_over_bare(layer: &str) -> u64 {
    let table = format!("[layers.{layer}]");
    BASELINE
        .lines()
        .skip_while(|line| line.trim() != table)
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .find_map(|line| line.trim().strip_prefix("over_bare")?.trim().strip_prefix('=')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("benches/instructions.toml gives no over_bare for {table}"))
}

/// `spins` iterations of work the optimizer cannot remove.
#[inline(never)]
fn spin(spins: u64) {
    let mut x = 0u64;
    for i in 0..spins {
        x = black_box(x.wrapping_add(i));
    }
    black_box(x);
}

type Twin<L> = <L as Layer<Noop>>::Service;
/// Tower's load shed over its concurrency limit ([`twins::limited_load_shed`]).
type LimitedLoadShed = tower::load_shed::LoadShed<tower::limit::ConcurrencyLimit<NoopAgain>>;

fn bare_setup() -> Prepared<Noop> {
    prepare(noop(), 0)
}
fn bulkhead_setup() -> Prepared<Bulkhead<Noop>> {
    prepare(BulkheadLayer::new(64).layer(noop()), extra("bulkhead"))
}
fn tower_concurrency_limit_setup() -> Prepared<Twin<tower::limit::ConcurrencyLimitLayer>> {
    prepare(twins::concurrency_limit(64).layer(noop()), 0)
}
fn load_shed_setup() -> Prepared<LoadShed<Noop>> {
    prepare(
        LoadShedLayer::builder().initial_limit(64).build().expect("valid").layer(noop()),
        extra("load_shed"),
    )
}
fn tower_load_shed_setup() -> Prepared<Twin<tower::load_shed::LoadShedLayer>> {
    prepare(twins::load_shed().layer(noop()), 0)
}
fn tower_limited_load_shed_setup() -> Prepared<LimitedLoadShed> {
    prepare(twins::limited_load_shed(64).service(NoopAgain), 0)
}
fn timeout_setup() -> Prepared<Timeout<Noop>> {
    prepare(TimeoutLayer::new(Duration::from_secs(3)).layer(noop()), extra("timeout"))
}
fn tower_timeout_setup() -> Prepared<Twin<tower::timeout::TimeoutLayer>> {
    prepare(twins::timeout(Duration::from_secs(3)).layer(noop()), 0)
}
fn retry_setup() -> Prepared<Retry<Noop>> {
    prepare(RetryLayer::new().layer(noop()), extra("retry"))
}
fn tower_retry_setup() -> Prepared<Twin<tower::retry::RetryLayer<twins::CopyAndBudget>>> {
    prepare(twins::retry().layer(noop()), 0)
}
fn stack_setup() -> Prepared<Bulkhead<Timeout<LoadShed<Noop>>>> {
    let service = tower::ServiceBuilder::new()
        .layer(BulkheadLayer::new(64))
        .layer(TimeoutLayer::new(Duration::from_secs(3)))
        .layer(LoadShedLayer::builder().initial_limit(64).build().expect("valid"))
        .service(noop());
    prepare(service, extra("stack"))
}
#[allow(clippy::type_complexity)]
fn tower_stack_setup(
) -> Prepared<tower::limit::ConcurrencyLimit<tower::timeout::Timeout<tower::load_shed::LoadShed<Noop>>>> {
    prepare(twins::stack(64, Duration::from_secs(3)).service(noop()), 0)
}

#[library_benchmark]
#[bench::calls(bare_setup())]
fn bare(p: Prepared<Noop>) -> Prepared<Noop> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(bulkhead_setup())]
fn bulkhead(p: Prepared<Bulkhead<Noop>>) -> Prepared<Bulkhead<Noop>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(tower_concurrency_limit_setup())]
fn tower_concurrency_limit(
    p: Prepared<Twin<tower::limit::ConcurrencyLimitLayer>>,
) -> Prepared<Twin<tower::limit::ConcurrencyLimitLayer>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(load_shed_setup())]
fn load_shed(p: Prepared<LoadShed<Noop>>) -> Prepared<LoadShed<Noop>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(tower_load_shed_setup())]
fn tower_load_shed(
    p: Prepared<Twin<tower::load_shed::LoadShedLayer>>,
) -> Prepared<Twin<tower::load_shed::LoadShedLayer>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(tower_limited_load_shed_setup())]
fn tower_limited_load_shed(p: Prepared<LimitedLoadShed>) -> Prepared<LimitedLoadShed> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(timeout_setup())]
fn timeout(p: Prepared<Timeout<Noop>>) -> Prepared<Timeout<Noop>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(tower_timeout_setup())]
fn tower_timeout(
    p: Prepared<Twin<tower::timeout::TimeoutLayer>>,
) -> Prepared<Twin<tower::timeout::TimeoutLayer>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(retry_setup())]
fn retry(p: Prepared<Retry<Noop>>) -> Prepared<Retry<Noop>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(tower_retry_setup())]
fn tower_retry(
    p: Prepared<Twin<tower::retry::RetryLayer<twins::CopyAndBudget>>>,
) -> Prepared<Twin<tower::retry::RetryLayer<twins::CopyAndBudget>>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(stack_setup())]
fn stack(p: Prepared<Bulkhead<Timeout<LoadShed<Noop>>>>) -> Prepared<Bulkhead<Timeout<LoadShed<Noop>>>> {
    calls(p)
}

#[library_benchmark]
#[bench::calls(tower_stack_setup())]
fn tower_stack(
    p: Prepared<tower::limit::ConcurrencyLimit<tower::timeout::Timeout<tower::load_shed::LoadShed<Noop>>>>,
) -> Prepared<tower::limit::ConcurrencyLimit<tower::timeout::Timeout<tower::load_shed::LoadShed<Noop>>>> {
    calls(p)
}

library_benchmark_group!(
    name = resilience,
    benchmarks = [
        bare,
        bulkhead,
        tower_concurrency_limit,
        load_shed,
        tower_load_shed,
        tower_limited_load_shed,
        timeout,
        tower_timeout,
        retry,
        tower_retry,
        stack,
        tower_stack
    ]
);

main!(
    // gungraun clears the environment of the benchmarks; the extra-work switch goes through.
    config = LibraryBenchmarkConfig::default().pass_through_env("LIFT_BENCH_EXTRA_WORK");
    library_benchmark_groups = resilience
);
