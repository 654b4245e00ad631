//! The resilience layers against tower-test's mock, under tokio's paused clock.
#![cfg(feature = "resilience")]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};
use lift::middleware::bulkhead::{BulkheadFull, BulkheadLayer, Compartment};
use lift::middleware::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
use lift::middleware::load_shed::{LoadShedLayer, Overloaded, Priority};
use lift::middleware::retry::{Backoff, RetryLayer};
use lift::middleware::timeout::{Elapsed, TimeoutLayer};
use lift::{Body, BoxError, Context};
use tokio::time::{advance, Instant};
use tower::retry::budget::TpsBudget;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock::{self, Handle, Spawn};

type Req = http::Request<Body>;
type Res = http::Response<Body>;

fn get(path: &str) -> Req {
    http::Request::get(path).body(Body::empty()).unwrap()
}

fn with_tenant(mut req: Req, tenant: &str) -> Req {
    let mut ctx = Context::new("req-1");
    ctx.set_tenant(tenant);
    req.extensions_mut().insert(ctx);
    req
}

fn with_deadline(mut req: Req, left: Duration) -> Req {
    let mut ctx = Context::new("req-1");
    ctx.set_deadline(SystemTime::now() + left);
    req.extensions_mut().insert(ctx);
    req
}

fn status(code: u16) -> Res {
    let mut res = Res::new(Body::empty());
    *res.status_mut() = StatusCode::from_u16(code).unwrap();
    res
}

/// Readies the spawned service and calls it.
fn call<S: Service<Req>>(svc: &mut Spawn<S>, req: Req) -> S::Future {
    assert!(matches!(svc.poll_ready::<Req>(), Poll::Ready(Ok(()))), "service not ready");
    svc.call(req)
}

/// Calls the service and answers the inner request with `outcome` (`Err` = an inner error).
async fn exchange<S>(
    svc: &mut Spawn<S>,
    handle: &mut Handle<Req, Res>,
    req: Req,
    outcome: Result<u16, &'static str>,
) -> Result<Res, BoxError>
where
    S: Service<Req, Response = Res, Error = BoxError>,
{
    let fut = call(svc, req);
    // Under the paused clock a missing call would hang; time out instead.
    let next = tokio::time::timeout(Duration::from_secs(3600), handle.next_request()).await;
    let (_, send) = next.ok().flatten().expect("the inner service was called");
    match outcome {
        Ok(code) => send.send_response(status(code)),
        Err(msg) => send.send_error(msg),
    }
    fut.await
}

fn inner_not_called(handle: &mut Handle<Req, Res>) -> bool {
    handle.poll_request().is_pending()
}

// ---------------------------------------------------------------- circuit breaker

fn breaker() -> lift::middleware::circuit_breaker::CircuitBreakerBuilder {
    CircuitBreakerLayer::builder()
        .failure_rate(0.5)
        .minimum_calls(4)
        .window(SlidingWindow::Calls(10))
        .open_for(Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_after_failures_once_minimum_calls_are_seen() {
    let layer = breaker().build().unwrap();
    let breakers = layer.breakers();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);

    for _ in 0..3 {
        assert!(exchange(&mut svc, &mut handle, get("/"), Err("down")).await.is_err());
    }
    // Three failures are below the minimum of four calls: still closed.
    assert_eq!(breakers.state(&()), Some(State::Closed));
    let res = exchange(&mut svc, &mut handle, get("/"), Ok(500)).await.unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(breakers.state(&()), Some(State::Open));

    let err = call(&mut svc, get("/")).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("rejected by the breaker");
    assert_eq!(open.retry_after(), Duration::from_secs(30));
    assert!(inner_not_called(&mut handle));

    advance(Duration::from_secs(10)).await;
    let err = call(&mut svc, get("/")).await.unwrap_err();
    assert_eq!(err.downcast_ref::<CircuitOpen>().unwrap().retry_after(), Duration::from_secs(20));

    let m = breakers.metrics(&()).unwrap();
    assert_eq!((m.calls, m.failures, m.rejections), (4, 4, 2));
}

#[tokio::test(start_paused = true)]
async fn breaker_below_the_failure_rate_stays_closed() {
    let layer = breaker().build().unwrap();
    let breakers = layer.breakers();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    // 3 failures in 7 calls: 43 % < 50 %.
    for outcome in [Ok(200), Err("x"), Ok(404), Ok(200), Err("x"), Ok(201), Ok(500)] {
        let _ = exchange(&mut svc, &mut handle, get("/"), outcome).await;
    }
    assert_eq!(breakers.state(&()), Some(State::Closed));
    assert_eq!(breakers.metrics(&()).unwrap().failures, 3);
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_after_slow_calls() {
    let layer = breaker().slow_calls(Duration::from_secs(1), 0.5).minimum_calls(2).build().unwrap();
    let breakers = layer.breakers();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);

    for _ in 0..2 {
        let fut = call(&mut svc, get("/"));
        let (_, send) = handle.next_request().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        send.send_response(status(200));
        assert_eq!(fut.await.unwrap().status(), 200, "slow calls still succeed");
    }
    assert_eq!(breakers.state(&()), Some(State::Open));
    assert_eq!(breakers.metrics(&()).unwrap().slow_calls, 2);
    assert!(call(&mut svc, get("/")).await.unwrap_err().is::<CircuitOpen>());
}

async fn open_breaker<S>(svc: &mut Spawn<S>, handle: &mut Handle<Req, Res>, req: impl Fn() -> Req)
where
    S: Service<Req, Response = Res, Error = BoxError>,
{
    for _ in 0..4 {
        let _ = exchange(svc, handle, req(), Err("down")).await;
    }
}

#[tokio::test(start_paused = true)]
async fn half_open_sends_exactly_one_probe_and_closes_on_success() {
    let layer = breaker().build().unwrap();
    let breakers = layer.breakers();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    open_breaker(&mut svc, &mut handle, || get("/")).await;

    advance(Duration::from_secs(30)).await;
    let probe = call(&mut svc, get("/"));
    assert_eq!(breakers.state(&()), Some(State::HalfOpen));
    let (_, send) = handle.next_request().await.expect("the probe reached the inner service");

    // A concurrent call while the probe is out is rejected without reaching the inner service.
    let err = call(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert!(inner_not_called(&mut handle));

    send.send_response(status(200));
    assert_eq!(probe.await.unwrap().status(), 200);
    assert_eq!(breakers.state(&()), Some(State::Closed));
    // Closed again with an empty window: calls flow.
    let res = exchange(&mut svc, &mut handle, get("/"), Ok(200)).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn half_open_probe_failure_reopens() {
    let layer = breaker().build().unwrap();
    let breakers = layer.breakers();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    open_breaker(&mut svc, &mut handle, || get("/")).await;

    advance(Duration::from_secs(30)).await;
    assert!(exchange(&mut svc, &mut handle, get("/"), Ok(503)).await.is_ok());
    assert_eq!(breakers.state(&()), Some(State::Open));
    let err = call(&mut svc, get("/")).await.unwrap_err();
    assert_eq!(err.downcast_ref::<CircuitOpen>().unwrap().retry_after(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_lets_the_next_call_probe() {
    let layer = breaker().build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    open_breaker(&mut svc, &mut handle, || get("/")).await;
    advance(Duration::from_secs(30)).await;

    let probe = call(&mut svc, get("/"));
    let _ = handle.next_request().await.unwrap();
    drop(probe);
    let res = exchange(&mut svc, &mut handle, get("/"), Ok(200)).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn breakers_per_tenant_are_independent() {
    let layer =
        CircuitBreakerLayer::per_tenant().minimum_calls(4).window(SlidingWindow::Calls(10)).build().unwrap();
    let breakers = layer.breakers();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    open_breaker(&mut svc, &mut handle, || with_tenant(get("/"), "tenant-a")).await;

    let err = call(&mut svc, with_tenant(get("/"), "tenant-a")).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    let res = exchange(&mut svc, &mut handle, with_tenant(get("/"), "tenant-b"), Ok(200)).await.unwrap();
    assert_eq!(res.status(), 200);

    assert_eq!(breakers.state(&Some("tenant-a".into())), Some(State::Open));
    assert_eq!(breakers.state(&Some("tenant-b".into())), Some(State::Closed));
    assert_eq!(breakers.all().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn state_change_callbacks_fire_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let layer = CircuitBreakerLayer::keyed_by(|req: &Req| req.uri().path().to_owned())
        .minimum_calls(4)
        .window(SlidingWindow::Calls(10))
        .open_for(Duration::from_secs(5))
        .on_state_change(move |key: &String, from, to| log.lock().unwrap().push((key.clone(), from, to)))
        .build()
        .unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);

    open_breaker(&mut svc, &mut handle, || get("/psp")).await;
    advance(Duration::from_secs(5)).await;
    let _ = exchange(&mut svc, &mut handle, get("/psp"), Err("still down")).await;
    advance(Duration::from_secs(5)).await;
    let _ = exchange(&mut svc, &mut handle, get("/psp"), Ok(200)).await;

    use State::*;
    let expected: Vec<_> =
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Open), (Open, HalfOpen), (HalfOpen, Closed)]
            .into_iter()
            .map(|(from, to)| ("/psp".to_owned(), from, to))
            .collect();
    assert_eq!(*seen.lock().unwrap(), expected);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let layer = breaker().window(SlidingWindow::Seconds(10)).minimum_calls(2).build().unwrap();
    let breakers = layer.breakers();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    let _ = exchange(&mut svc, &mut handle, get("/"), Err("down")).await;
    advance(Duration::from_secs(11)).await;
    // The first failure left the 10 s window: one call is below the minimum.
    let _ = exchange(&mut svc, &mut handle, get("/"), Err("down")).await;
    assert_eq!(breakers.state(&()), Some(State::Closed));
    let _ = exchange(&mut svc, &mut handle, get("/"), Err("down")).await;
    assert_eq!(breakers.state(&()), Some(State::Open));
}

#[tokio::test(start_paused = true)]
async fn custom_classifier_decides_what_fails() {
    let layer = breaker()
        .classify(|res: &Result<Res, BoxError>| matches!(res, Ok(r) if r.status() == 429))
        .build()
        .unwrap();
    let breakers = layer.breakers();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    for _ in 0..4 {
        let _ = exchange(&mut svc, &mut handle, get("/"), Ok(429)).await;
    }
    assert_eq!(breakers.state(&()), Some(State::Open));
}

#[test]
fn breaker_rejects_bad_configuration() {
    assert!(CircuitBreakerLayer::builder().failure_rate(0.0).build().is_err());
    assert!(CircuitBreakerLayer::builder()
        .minimum_calls(20)
        .window(SlidingWindow::Calls(10))
        .build()
        .is_err());
    assert!(CircuitBreakerLayer::builder().window(SlidingWindow::Seconds(0)).build().is_err());
}

#[test]
fn circuit_open_renders_503_with_retry_after() {
    let res = lift::Error::from(CircuitOpen::new(Duration::from_millis(12_300))).into_response();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "13");
}

// ---------------------------------------------------------------- bulkhead

#[tokio::test(start_paused = true)]
async fn bulkhead_rejects_over_limit_after_the_bounded_wait() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_millis(100))
        .retry_after(Duration::from_secs(2))
        .build()
        .unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer.clone());

    let first = call(&mut svc, get("/"));
    let (_, _send_first) = handle.next_request().await.unwrap();

    let start = Instant::now();
    let err = call(&mut svc, get("/")).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(100), "waited exactly the bound");
    let full = err.downcast_ref::<BulkheadFull>().expect("rejected by the bulkhead");
    assert_eq!(full.compartment(), Compartment::Global);
    let res = lift::Error::from(*full).into_response();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "2");
    assert!(inner_not_called(&mut handle));
    assert_eq!(layer.rejections(), 1);
    drop(first);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_waiter_runs_when_a_permit_frees_within_the_wait() {
    let layer = BulkheadLayer::builder().max_concurrent(1).max_wait(Duration::from_secs(1)).build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);

    let first = call(&mut svc, get("/"));
    let (_, send_first) = handle.next_request().await.unwrap();
    let second = tokio::spawn(call(&mut svc, get("/")));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(inner_not_called(&mut handle), "the second request waits for a permit");
    send_first.send_response(status(200));
    first.await.unwrap();

    let (_, send_second) = handle.next_request().await.expect("the waiter got the permit");
    send_second.send_response(status(201));
    assert_eq!(second.await.unwrap().unwrap().status(), 201);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_per_tenant_limits_are_independent() {
    let layer = BulkheadLayer::builder().max_concurrent(10).per_tenant(1).build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);

    let a1 = call(&mut svc, with_tenant(get("/"), "tenant-a"));
    let _a1_inner = handle.next_request().await.unwrap();
    let err = call(&mut svc, with_tenant(get("/"), "tenant-a")).await.unwrap_err();
    assert_eq!(err.downcast_ref::<BulkheadFull>().unwrap().compartment(), Compartment::Tenant);

    let b1 = call(&mut svc, with_tenant(get("/"), "tenant-b"));
    let (_, send_b) = handle.next_request().await.expect("tenant B is not blocked by tenant A");
    send_b.send_response(status(200));
    assert_eq!(b1.await.unwrap().status(), 200);
    drop(a1);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_frees_permits_when_the_future_is_dropped_or_completes() {
    let layer = BulkheadLayer::new(2);
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer.clone());

    let a = call(&mut svc, get("/"));
    let b = call(&mut svc, get("/"));
    assert_eq!(layer.available(), Some(0));
    assert!(call(&mut svc, get("/")).await.unwrap_err().is::<BulkheadFull>());

    drop(a);
    assert_eq!(layer.available(), Some(1), "a dropped request frees its permit");
    let (_, _) = handle.next_request().await.unwrap();
    let (_, send_b) = handle.next_request().await.unwrap();
    send_b.send_response(status(200));
    b.await.unwrap();
    assert_eq!(layer.available(), Some(2), "a completed request frees its permit");
}

// ---------------------------------------------------------------- retry

/// Runs the response future on its own task, so the test can answer attempts as they come.
fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    tokio::spawn(fut)
}

fn retry_layer(attempts: u32) -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(attempts)
        .backoff(Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)).without_jitter())
        .budget(TpsBudget::new(Duration::from_secs(10), 100, 1.0))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_retries_idempotent_gets_with_exponential_backoff() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(retry_layer(3));
    let start = Instant::now();
    let res = spawn(call(&mut svc, get("/payments/p1")));

    let mut at = Vec::new();
    for outcome in [Err("reset"), Ok(503), Ok(200)] {
        let (req, send) = handle.next_request().await.expect("an attempt");
        assert_eq!(req.uri(), "/payments/p1", "every attempt sends the same request");
        at.push(start.elapsed());
        match outcome {
            Ok(code) => send.send_response(status(code)),
            Err(msg) => send.send_error(msg),
        }
    }
    assert_eq!(res.await.unwrap().unwrap().status(), 200);
    assert_eq!(at, [Duration::ZERO, Duration::from_millis(100), Duration::from_millis(300)]);
}

#[tokio::test(start_paused = true)]
async fn retry_jitter_stays_under_the_exponential_cap() {
    let layer = RetryLayer::builder()
        .max_attempts(4)
        .backoff(Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)))
        .budget(TpsBudget::new(Duration::from_secs(10), 100, 1.0))
        .build()
        .unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    let res = spawn(call(&mut svc, get("/")));
    let mut last = Instant::now();
    for (n, cap) in [(0, 0), (1, 100), (2, 200), (3, 400)] {
        let (_, send) = handle.next_request().await.unwrap();
        let waited = last.elapsed();
        assert!(waited <= Duration::from_millis(cap), "wait {n} was {waited:?}, cap {cap} ms");
        last = Instant::now();
        send.send_error("boom");
    }
    assert!(res.await.unwrap().is_err());
}

#[tokio::test(start_paused = true)]
async fn retry_never_retries_a_post_without_idempotency_key() {
    let layer = retry_layer(3);
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer.clone());
    let post = || http::Request::post("/payments").body(Body::from("{}")).unwrap();

    let res = exchange(&mut svc, &mut handle, post(), Ok(503)).await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(exchange(&mut svc, &mut handle, post(), Err("reset")).await.is_err());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(inner_not_called(&mut handle), "no second attempt");
    assert_eq!(layer.retries(), 0);

    // The same POST with an Idempotency-Key is retried.
    let mut keyed = post();
    keyed.headers_mut().insert("idempotency-key", "k-1".parse().unwrap());
    let res = spawn(call(&mut svc, keyed));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("reset");
    let (req, send) = handle.next_request().await.expect("retried");
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.body().as_bytes(), b"{}");
    send.send_response(status(201));
    assert_eq!(res.await.unwrap().unwrap().status(), 201);
}

#[tokio::test(start_paused = true)]
async fn retry_stops_when_the_budget_is_exhausted() {
    // No deposits count, and the reserve allows one retry per second over a 1 s window.
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .backoff(Backoff::exponential(Duration::from_millis(1), Duration::from_millis(1)))
        .budget(TpsBudget::new(Duration::from_secs(1), 1, 0.0))
        .build()
        .unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer.clone());

    let res = spawn(call(&mut svc, get("/")));
    for _ in 0..2 {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error("down");
    }
    assert!(res.await.unwrap().is_err());
    assert!(inner_not_called(&mut handle), "the budget allowed only one retry");

    assert!(exchange(&mut svc, &mut handle, get("/"), Err("down")).await.is_err());
    assert!(inner_not_called(&mut handle), "an empty budget allows no retry");
    assert_eq!(layer.retries(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_never_waits_past_the_deadline() {
    let layer = RetryLayer::builder()
        .max_attempts(10)
        .backoff(Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)).without_jitter())
        .deadline_margin(Duration::from_millis(100))
        .budget(TpsBudget::new(Duration::from_secs(10), 100, 1.0))
        .build()
        .unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    let start = Instant::now();
    // 1 s left, 100 ms margin: everything must end by 900 ms.
    let res = spawn(call(&mut svc, with_deadline(get("/"), Duration::from_secs(1))));

    let mut at = Vec::new();
    loop {
        let next = tokio::select! {
            next = handle.next_request() => next,
            _ = tokio::time::sleep(Duration::from_secs(5)) => None,
        };
        let Some((_, send)) = next else { break };
        at.push(start.elapsed());
        // Each attempt takes 150 ms, then fails.
        tokio::time::sleep(Duration::from_millis(150)).await;
        send.send_error("slow and failing");
    }
    assert!(res.await.unwrap().is_err());
    // t=0 (ends 150) → wait 100 → t=250 (ends 400) → wait 200 → t=600 (ends 750);
    // the next wait of 400 ms plus a 150 ms attempt would end at 1300 > 900: stop.
    assert_eq!(at, [Duration::ZERO, Duration::from_millis(250), Duration::from_millis(600)]);
}

// ---------------------------------------------------------------- load shedding

#[tokio::test(start_paused = true)]
async fn load_is_shed_under_overload_while_health_checks_pass() {
    let layer = LoadShedLayer::builder().initial_limit(4).max_limit(4).build().unwrap();
    let limit = layer.limit();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);

    let mut admitted = Vec::new();
    let mut shed = 0;
    for _ in 0..20 {
        let fut = call(&mut svc, get("/payments"));
        match handle.poll_request() {
            Poll::Ready(Some((_, send))) => admitted.push((fut, send)),
            _ => {
                assert!(fut.await.unwrap_err().is::<Overloaded>());
                shed += 1;
            }
        }
    }
    assert_eq!((admitted.len(), shed), (4, 16));
    assert_eq!(limit.in_flight(), 4);
    assert_eq!(limit.shed(), 16);

    // Health checks are never shed, even at the limit.
    let health = exchange(&mut svc, &mut handle, get("/health/ready"), Ok(200)).await.unwrap();
    assert_eq!(health.status(), 200);

    for (fut, send) in admitted {
        send.send_response(status(200));
        fut.await.unwrap();
    }
    assert_eq!(limit.in_flight(), 0);
    assert!(exchange(&mut svc, &mut handle, get("/payments"), Ok(200)).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn low_priority_is_shed_before_normal() {
    let layer = LoadShedLayer::builder()
        .initial_limit(10)
        .max_limit(10)
        .low_priority_share(0.5)
        .classify(|req: &Req| if req.uri().path() == "/reports" { Priority::Low } else { Priority::Normal })
        .build()
        .unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    let (mut in_flight, mut in_flight_requests) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        in_flight.push(call(&mut svc, get("/payments")));
        in_flight_requests.push(handle.next_request().await.expect("admitted"));
    }
    // 5 in flight: at the low-priority share (50 % of 10), below the limit.
    assert!(call(&mut svc, get("/reports")).await.unwrap_err().is::<Overloaded>());
    in_flight.push(call(&mut svc, get("/payments")));
    assert!(handle.next_request().await.is_some(), "normal priority is still admitted");
}

#[tokio::test(start_paused = true)]
async fn the_limit_adapts_down_under_latency_and_up_after() {
    let layer = LoadShedLayer::builder()
        .initial_limit(10)
        .min_limit(2)
        .max_limit(50)
        .latency_target(Duration::from_millis(100))
        .build()
        .unwrap();
    let limit = layer.limit();
    let latency = Arc::new(Mutex::new(Duration::from_millis(300)));
    let delay = latency.clone();
    let svc = layer.layer(tower::service_fn(move |_req: Req| {
        let wait = *delay.lock().unwrap();
        async move {
            tokio::time::sleep(wait).await;
            Ok::<_, BoxError>(status(200))
        }
    }));

    async fn wave(
        svc: &(impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + 'static),
        n: usize,
    ) {
        let calls: Vec<_> = (0..n).map(|_| tokio::spawn(svc.clone().oneshot(get("/payments")))).collect();
        for c in calls {
            let _ = c.await.unwrap();
        }
    }

    // Slow responses (300 ms > 100 ms target): the limit falls.
    wave(&svc, 6).await;
    let low = limit.limit();
    assert!(low < 10, "limit fell under latency: {low}");

    // Fast responses with the limit in use: it climbs again.
    *latency.lock().unwrap() = Duration::from_millis(10);
    for _ in 0..10 {
        let n = limit.limit();
        wave(&svc, n).await;
    }
    let high = limit.limit();
    assert!(high > 10, "limit rose after latency recovered: {low} -> {high}");
}

#[tokio::test(start_paused = true)]
async fn timeouts_decrease_the_limit() {
    let layer = LoadShedLayer::builder().initial_limit(10).build().unwrap();
    let limit = layer.limit();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    let fut = call(&mut svc, get("/"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Elapsed::new());
    assert!(fut.await.unwrap_err().is::<Elapsed>());
    assert_eq!(limit.limit(), 9);
}

// ---------------------------------------------------------------- timeout

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A handler that works for `work`, then sets `done`; `dropped` is set when its future drops.
fn slow_handler(
    work: Duration,
    done: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone {
    tower::service_fn(move |_req: Req| {
        let (done, guard) = (done.clone(), DropFlag(dropped.clone()));
        async move {
            let _guard = guard;
            tokio::time::sleep(work).await;
            done.store(true, Ordering::SeqCst);
            Ok(status(200))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn timeout_fires_and_drops_the_work() {
    let (done, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(slow_handler(
        Duration::from_secs(5),
        done.clone(),
        dropped.clone(),
    ));
    let start = Instant::now();
    let mut fut = std::pin::pin!(svc.ready().await.unwrap().call(get("/")));
    let err = fut.as_mut().await.unwrap_err();
    assert!(err.is::<Elapsed>());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    // Dropped when the timeout fired, before the response future itself is dropped.
    assert!(dropped.load(Ordering::SeqCst), "the inner future was dropped at the timeout");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!done.load(Ordering::SeqCst), "no work continued after the timeout");
}

#[tokio::test(start_paused = true)]
async fn timeout_uses_the_lambda_deadline_when_it_is_earlier() {
    let (done, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let svc = TimeoutLayer::new(Duration::from_secs(10))
        .safety_margin(Duration::from_millis(500))
        .layer(slow_handler(Duration::from_secs(5), done.clone(), dropped));
    let start = Instant::now();
    let err = svc.oneshot(with_deadline(get("/"), Duration::from_secs(2))).await.unwrap_err();
    assert!(err.is::<Elapsed>());
    let took = start.elapsed();
    // 2 s left minus the 500 ms margin (less the real time spent building the request).
    assert!(took <= Duration::from_millis(1500) && took > Duration::from_millis(1450), "{took:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!done.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn timeout_uses_its_own_duration_when_the_deadline_is_far() {
    let (done, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let svc =
        TimeoutLayer::new(Duration::from_secs(1)).layer(slow_handler(Duration::from_secs(5), done, dropped));
    let start = Instant::now();
    let err = svc.oneshot(with_deadline(get("/"), Duration::from_secs(60))).await.unwrap_err();
    assert!(err.is::<Elapsed>());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn timeout_with_no_time_left_does_not_start_the_work() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(tower::service_fn(move |_req: Req| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(status(200)) }
    }));
    let err = svc.oneshot(with_deadline(get("/"), Duration::from_millis(100))).await.unwrap_err();
    assert!(err.is::<Elapsed>());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn timeout_passes_fast_responses_and_inner_errors() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(TimeoutLayer::new(Duration::from_secs(1)));
    assert_eq!(exchange(&mut svc, &mut handle, get("/"), Ok(201)).await.unwrap().status(), 201);
    let err = exchange(&mut svc, &mut handle, get("/"), Err("inner failure")).await.unwrap_err();
    assert_eq!(err.to_string(), "inner failure");
}

// ---------------------------------------------------------------- per-tenant layers without a tenant

/// Log lines written while `f`'s future runs on this thread.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let lines = Self::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        (lines, tracing::subscriber::set_default(subscriber))
    }

    fn count(&self, needle: &str) -> usize {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().matches(needle).count()
    }
}

#[tokio::test(start_paused = true)]
async fn per_tenant_bulkhead_without_a_tenant_warns_once_and_counts_each_request() {
    let (lines, _guard) = Lines::capture();
    let layer = BulkheadLayer::builder().per_tenant(4).build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer.clone());
    for _ in 0..3 {
        exchange(&mut svc, &mut handle, get("/"), Ok(200)).await.unwrap();
    }
    exchange(&mut svc, &mut handle, with_tenant(get("/"), "tenant-a"), Ok(200)).await.unwrap();
    assert_eq!(layer.unscoped_requests(), 3, "only the requests without a tenant count");
    assert_eq!(lines.count("bulkhead saw a request without a tenant"), 1, "one warning, not one per request");

    // A global-only bulkhead does not need a tenant: nothing to count.
    let global = BulkheadLayer::new(4);
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(global.clone());
    exchange(&mut svc, &mut handle, get("/"), Ok(200)).await.unwrap();
    assert_eq!(global.unscoped_requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn per_tenant_breaker_without_a_tenant_warns_once_and_counts_each_request() {
    let (lines, _guard) = Lines::capture();
    let layer = CircuitBreakerLayer::per_tenant().build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer.clone());
    exchange(&mut svc, &mut handle, with_tenant(get("/"), "tenant-a"), Ok(200)).await.unwrap();
    assert_eq!(layer.unscoped_requests(), 0);
    for _ in 0..2 {
        exchange(&mut svc, &mut handle, get("/"), Ok(200)).await.unwrap();
    }
    assert_eq!(layer.unscoped_requests(), 2);
    assert_eq!(lines.count("circuit breaker saw a request without a tenant"), 1);

    // A second layer instance has its own count and its own warning.
    let other = CircuitBreakerLayer::per_tenant().build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(other.clone());
    exchange(&mut svc, &mut handle, get("/"), Ok(200)).await.unwrap();
    assert_eq!((other.unscoped_requests(), layer.unscoped_requests()), (1, 2));
    assert_eq!(lines.count("circuit breaker saw a request without a tenant"), 2);

    // A global breaker never counts.
    let global = CircuitBreakerLayer::builder().build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(global.clone());
    exchange(&mut svc, &mut handle, get("/"), Ok(200)).await.unwrap();
    assert_eq!(global.unscoped_requests(), 0);
}
