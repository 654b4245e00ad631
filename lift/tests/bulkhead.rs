//! The bulkhead against tower-test's mock, under tokio's paused clock.

mod support;

use support::*;

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
    let full = lift::Error::find::<BulkheadFull>(&*err).expect("rejected by the bulkhead");
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
    assert_eq!(lift::Error::find::<BulkheadFull>(&*err).unwrap().compartment(), Compartment::Tenant);

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
    assert!(lift::Error::find::<BulkheadFull>(&*call(&mut svc, get("/")).await.unwrap_err()).is_some());

    drop(a);
    assert_eq!(layer.available(), Some(1), "a dropped request frees its permit");
    let (_, _) = handle.next_request().await.unwrap();
    let (_, send_b) = handle.next_request().await.unwrap();
    send_b.send_response(status(200));
    b.await.unwrap();
    assert_eq!(layer.available(), Some(2), "a completed request frees its permit");
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
