//! The circuit breaker against tower-test's mock, under tokio's paused clock.

mod support;

use support::*;

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
    let open = lift::Error::find::<CircuitOpen>(&*err).expect("rejected by the breaker");
    assert_eq!(open.retry_after(), Duration::from_secs(30));
    assert!(inner_not_called(&mut handle));

    advance(Duration::from_secs(10)).await;
    let err = call(&mut svc, get("/")).await.unwrap_err();
    assert_eq!(lift::Error::find::<CircuitOpen>(&*err).unwrap().retry_after(), Duration::from_secs(20));

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
    assert!(lift::Error::find::<CircuitOpen>(&*call(&mut svc, get("/")).await.unwrap_err()).is_some());
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
    assert!(lift::Error::find::<CircuitOpen>(&*err).is_some());
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
    assert_eq!(lift::Error::find::<CircuitOpen>(&*err).unwrap().retry_after(), Duration::from_secs(30));
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
    assert!(lift::Error::find::<CircuitOpen>(&*err).is_some());
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
