//! The retry layer against tower-test's mock, under tokio's paused clock.

mod support;

use support::*;

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
