//! Load shed and bulkhead after their cuts toward tower's cost: the load-shed limit reads the
//! clock only for calls that wait, and still sees every slow call; the bulkhead's boxed wait
//! still hands the permit over.
#![cfg(feature = "resilience")]

use std::future::Future;
use std::task::{Context as TaskContext, Waker};
use std::time::Duration;

use lift::middleware::bulkhead::BulkheadLayer;
use lift::middleware::load_shed::LoadShedLayer;
use lift::{Body, BoxError};
use tower::{Layer, Service, ServiceExt};

type Req = http::Request<Body>;
type Res = http::Response<Body>;

fn get() -> Req {
    http::Request::get("/payments").body(Body::empty()).unwrap()
}

fn ok() -> Res {
    http::Response::new(Body::empty())
}

/// A handler that takes `wait` (tokio's clock) before answering.
fn slow(wait: Duration) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone {
    tower::service_fn(move |_req: Req| async move {
        tokio::time::sleep(wait).await;
        Ok::<_, BoxError>(ok())
    })
}

#[tokio::test(start_paused = true)]
async fn a_call_that_waits_is_timed_from_its_first_poll_and_lowers_the_limit_when_slow() {
    let layer = LoadShedLayer::builder()
        .initial_limit(10)
        .latency_target(Duration::from_millis(100))
        .build()
        .unwrap();
    let limit = layer.limit();
    let mut svc = layer.layer(slow(Duration::from_millis(300)));
    svc.ready().await.unwrap().call(get()).await.unwrap();
    // 300 ms over a 100 ms target: the limit backed off (10 x 0.9).
    assert_eq!((limit.limit(), limit.in_flight()), (9, 0));
    // Under the target it does not back off again.
    let mut fast = layer.layer(slow(Duration::from_millis(50)));
    fast.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!((limit.limit(), limit.in_flight()), (9, 0));
}

#[tokio::test(start_paused = true)]
async fn a_call_pending_at_its_first_poll_is_timed_from_there() {
    // Polled once (pending, the clock starts), then 2 s pass before it answers: slow.
    let layer = LoadShedLayer::builder()
        .initial_limit(10)
        .latency_target(Duration::from_millis(100))
        .build()
        .unwrap();
    let limit = layer.limit();
    let mut svc = layer.layer(slow(Duration::from_secs(2)));
    svc.ready().await.unwrap();
    // Boxed, so awaiting it drops it: the request is counted out at the drop.
    let mut future = Box::pin(svc.call(get()));
    assert!(future.as_mut().poll(&mut TaskContext::from_waker(Waker::noop())).is_pending());
    assert_eq!(limit.in_flight(), 1);
    future.await.unwrap();
    assert_eq!((limit.limit(), limit.in_flight()), (9, 0));
}

#[tokio::test(start_paused = true)]
async fn a_call_ready_at_once_is_counted_out_and_sampled_as_fast() {
    // One call in flight is half a limit of 2: a fast sample adds one (a call left unsampled
    // would leave it at 2). At a limit of 3 one call is below half: no change.
    let layer = LoadShedLayer::builder().initial_limit(2).max_limit(10).build().unwrap();
    let limit = layer.limit();
    let mut svc = layer.layer(tower::service_fn(|_req: Req| std::future::ready(Ok::<_, BoxError>(ok()))));
    svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!((limit.limit(), limit.in_flight()), (3, 0));
    svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!((limit.limit(), limit.in_flight()), (3, 0));
    // A dropped call (never polled) is counted out too, without a sample.
    drop(svc.ready().await.unwrap().call(get()));
    assert_eq!((limit.limit(), limit.in_flight()), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_call_that_waited_for_its_permit_runs_and_frees_it() {
    let layer = BulkheadLayer::builder().max_concurrent(1).max_wait(Duration::from_secs(1)).build().unwrap();
    let mut svc = layer.layer(slow(Duration::from_millis(200)));
    let first = svc.ready().await.unwrap().call(get());
    let second = svc.ready().await.unwrap().call(get()); // waits (boxed state) for the permit
    let (a, b) = tokio::join!(first, second);
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(layer.available(), Some(1));
    assert_eq!(layer.rejections(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_call_that_waits_too_long_is_rejected_and_frees_nothing_it_did_not_take() {
    let layer =
        BulkheadLayer::builder().max_concurrent(1).max_wait(Duration::from_millis(50)).build().unwrap();
    let mut svc = layer.layer(slow(Duration::from_millis(200)));
    let first = svc.ready().await.unwrap().call(get());
    let second = svc.ready().await.unwrap().call(get());
    let (a, b) = tokio::join!(first, second);
    assert!(a.is_ok());
    assert!(lift::Error::find::<lift::middleware::bulkhead::BulkheadFull>(&*b.unwrap_err()).is_some());
    assert_eq!((layer.available(), layer.rejections()), (Some(1), 1));
}
