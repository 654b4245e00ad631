//! Adaptive load shedding against tower-test's mock, under tokio's paused clock.

mod support;

use support::*;

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

/// Requests are counted by the tickets their futures hold (see `AdaptiveLimit`): a service
/// clone, a layer clone or a metrics handle is no request, and a cancelled call is counted
/// out. A count that took every holder of the shared limit for a request would shed here.
#[tokio::test(start_paused = true)]
async fn clones_and_handles_are_not_requests_and_cancelled_calls_count_out() {
    let layer = LoadShedLayer::builder().initial_limit(1).min_limit(1).max_limit(1).build().unwrap();
    let handles: Vec<_> = (0..32).map(|_| (layer.limit(), layer.clone())).collect();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer.clone());
    let clones: Vec<_> = (0..32).map(|_| svc.get_ref().clone()).collect();
    let limit = layer.limit();
    assert_eq!(limit.in_flight(), 0, "{} handles and {} clones", handles.len(), clones.len());

    let first = call(&mut svc, get("/payments"));
    let (_, send) = handle.next_request().await.expect("the one place is free");
    assert_eq!(limit.in_flight(), 1);
    assert!(call(&mut svc, get("/payments")).await.unwrap_err().is::<Overloaded>());

    // Cancelled before its answer: counted out, the place is free again.
    drop(first);
    drop(send);
    assert_eq!(limit.in_flight(), 0);
    let second = call(&mut svc, get("/payments"));
    let (_, send) = handle.next_request().await.expect("admitted after the cancellation");
    send.send_response(status(200));
    assert_eq!(second.await.unwrap().status(), 200);
    assert_eq!((limit.in_flight(), limit.shed()), (0, 1));

    // A shed call's future holds nothing: dropping it unpolled changes no count.
    let busy = call(&mut svc, get("/payments"));
    let (_, send) = handle.next_request().await.unwrap();
    drop(call(&mut svc, get("/payments")));
    assert_eq!((limit.in_flight(), limit.shed()), (1, 2));
    send.send_response(status(200));
    busy.await.unwrap();
    assert_eq!(limit.in_flight(), 0);
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

/// A critical request is never sampled: a health check that times out, or waits past the
/// latency target, leaves the limit where it was (only the normal request beside it moves
/// it).
#[tokio::test(start_paused = true)]
async fn a_critical_request_that_times_out_leaves_the_limit_alone() {
    let layer =
        LoadShedLayer::builder().initial_limit(10).latency_target(Duration::from_millis(50)).build().unwrap();
    let limit = layer.limit();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);

    let fut = call(&mut svc, get("/health"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Elapsed::new());
    assert!(fut.await.unwrap_err().is::<Elapsed>());
    assert_eq!((limit.limit(), limit.in_flight()), (10, 0));

    // Polled once (pending, so timed), answered 200 ms later: four times the target.
    let slow = tokio::spawn(call(&mut svc, get("/health/ready")));
    let (_, send) = handle.next_request().await.unwrap();
    tokio::task::yield_now().await;
    advance(Duration::from_millis(200)).await;
    send.send_response(status(200));
    assert!(slow.await.unwrap().is_ok());
    assert_eq!((limit.limit(), limit.in_flight()), (10, 0));

    let fut = call(&mut svc, get("/payments"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Elapsed::new());
    assert!(fut.await.is_err());
    assert_eq!(limit.limit(), 9, "the same timeout on a normal request lowers it");
}

/// A future that has ended still holds its request's place until it is dropped (as tower's
/// `ConcurrencyLimit` holds its permit), and is sampled once however often it is polled. A
/// future that sampled at every ready poll would raise the limit twice here (1 → 3).
#[tokio::test]
async fn an_ended_call_is_sampled_once_and_counted_out_when_dropped() {
    let layer = LoadShedLayer::builder().initial_limit(1).min_limit(1).max_limit(10).build().unwrap();
    let limit = layer.limit();
    // Ready at every poll, so the response future can be polled after its end.
    let mut svc = layer.layer(tower::service_fn(|_req: Req| {
        std::future::poll_fn(|_| Poll::Ready(Ok::<_, std::convert::Infallible>(status(200))))
    }));
    let mut fut = Box::pin(svc.ready().await.unwrap().call(get("/payments")));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());

    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    assert_eq!((limit.limit(), limit.in_flight()), (2, 1), "one in flight of 1: the limit grows");
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    assert_eq!((limit.limit(), limit.in_flight()), (2, 1), "polled again: no second sample");
    drop(fut);
    assert_eq!((limit.limit(), limit.in_flight()), (2, 0), "counted out when dropped");
}
