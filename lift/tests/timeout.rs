//! The deadline-aware timeout under tokio's paused clock.

mod support;

use support::*;

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
