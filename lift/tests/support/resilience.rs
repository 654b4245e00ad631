//! Resilience: requests, the tower-test mock, log capture.

pub(crate) use std::future::Future;
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
pub(crate) use std::sync::{Arc, Mutex};
pub(crate) use std::task::Poll;
pub(crate) use std::time::{Duration, SystemTime};

pub(crate) use http::{Method, StatusCode};
pub(crate) use lift::middleware::bulkhead::{BulkheadFull, BulkheadLayer, Compartment};
pub(crate) use lift::middleware::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
pub(crate) use lift::middleware::load_shed::{LoadShedLayer, Overloaded, Priority};
pub(crate) use lift::middleware::retry::{Backoff, RetryLayer};
pub(crate) use lift::middleware::timeout::{Elapsed, TimeoutLayer};
pub(crate) use lift::{Body, BoxError, Context};
pub(crate) use tokio::time::{advance, Instant};
pub(crate) use tower::retry::budget::TpsBudget;
pub(crate) use tower::{Layer, Service, ServiceExt};
pub(crate) use tower_test::mock::{self, Handle, Spawn};

pub(crate) type Req = http::Request<Body>;
pub(crate) type Res = http::Response<Body>;

pub(crate) fn get(path: &str) -> Req {
    http::Request::get(path).body(Body::empty()).unwrap()
}

pub(crate) fn with_tenant(mut req: Req, tenant: &str) -> Req {
    let mut ctx = Context::new("req-1");
    ctx.set_tenant(tenant);
    req.extensions_mut().insert(ctx);
    req
}

pub(crate) fn with_deadline(mut req: Req, left: Duration) -> Req {
    let mut ctx = Context::new("req-1");
    ctx.set_deadline(SystemTime::now() + left);
    req.extensions_mut().insert(ctx);
    req
}

pub(crate) fn status(code: u16) -> Res {
    let mut res = Res::new(Body::empty());
    *res.status_mut() = StatusCode::from_u16(code).unwrap();
    res
}

/// Readies the spawned service and calls it.
pub(crate) fn call<S: Service<Req>>(svc: &mut Spawn<S>, req: Req) -> S::Future {
    assert!(matches!(svc.poll_ready::<Req>(), Poll::Ready(Ok(()))), "service not ready");
    svc.call(req)
}

/// Calls the service and answers the inner request with `outcome` (`Err` = an inner error).
pub(crate) async fn exchange<S>(
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

pub(crate) fn inner_not_called(handle: &mut Handle<Req, Res>) -> bool {
    handle.poll_request().is_pending()
}

// ---------------------------------------------------------------- per-tenant layers without a tenant

/// Log lines written while `f`'s future runs on this thread.
#[derive(Clone, Default)]
pub(crate) struct Lines(pub(crate) Arc<Mutex<Vec<u8>>>);

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
    pub(crate) fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let lines = Self::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        (lines, tracing::subscriber::set_default(subscriber))
    }

    pub(crate) fn count(&self, needle: &str) -> usize {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().matches(needle).count()
    }
}
