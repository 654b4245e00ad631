//! Tower's own layers for the jobs Lift's resilience layers do: the twins each of ours is
//! held against, in time (`resilience` bench) and in instructions (`instructions` bench).

use std::sync::Arc;
use std::time::Duration;

use tower::layer::util::{Identity, Stack};
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::retry::budget::{Budget as _, TpsBudget};
use tower::retry::{Policy, RetryLayer};
use tower::timeout::TimeoutLayer;
use tower::ServiceBuilder;

use lift::Request;

/// Bulkhead's twin: at most `max` requests at once (the permit is taken in `poll_ready`).
pub fn concurrency_limit(max: usize) -> ConcurrencyLimitLayer {
    ConcurrencyLimitLayer::new(max)
}

/// Load shed's twin: refuses a request when the inner service is not ready.
pub fn load_shed() -> LoadShedLayer {
    LoadShedLayer::new()
}

/// Load shed's twin for the same job: tower's recipe for shedding above a concurrency limit,
/// `LoadShed` over `ConcurrencyLimit`, which counts each request in and out as ours does.
/// [`load_shed`] alone only forwards the inner service's readiness: over a service that is
/// always ready, the compiler removes its shed path and it costs next to nothing.
pub fn limited_load_shed(max: usize) -> ServiceBuilder<LimitedLoadShedLayers> {
    ServiceBuilder::new().layer(load_shed()).layer(concurrency_limit(max))
}

/// Tower's load shed over its concurrency limit, outermost first.
pub type LimitedLoadShedLayers = Stack<ConcurrencyLimitLayer, Stack<LoadShedLayer, Identity>>;

/// Timeout's twin: a timer per call.
pub fn timeout(after: Duration) -> TimeoutLayer {
    TimeoutLayer::new(after)
}

/// Retry's twin: tower's `Retry` with a policy doing what Lift's retry does on a first
/// attempt that succeeds: a budget deposit, and a copy of the request kept for a retry.
pub fn retry() -> RetryLayer<CopyAndBudget> {
    RetryLayer::new(CopyAndBudget { budget: Arc::new(TpsBudget::default()), attempts: 2 })
}

/// Tower's three resilience layers, outermost first: concurrency limit, timeout, load shed.
pub type StackLayers = Stack<LoadShedLayer, Stack<TimeoutLayer, Stack<ConcurrencyLimitLayer, Identity>>>;

/// Our three resilience layers' twins in one `ServiceBuilder`, in the same order.
pub fn stack(max: usize, after: Duration) -> ServiceBuilder<StackLayers> {
    ServiceBuilder::new().layer(concurrency_limit(max)).layer(timeout(after)).layer(load_shed())
}

/// A retry policy: idempotent requests only, at most `attempts` in all, each retry withdrawn
/// from a [`TpsBudget`] every success deposits in.
#[derive(Clone, Debug)]
pub struct CopyAndBudget {
    budget: Arc<TpsBudget>,
    attempts: usize,
}

impl<Res, E> Policy<Request, Res, E> for CopyAndBudget {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut Request, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts > 1 && self.budget.withdraw() => {
                self.attempts -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &Request) -> Option<Request> {
        if !req.method().is_idempotent() {
            return None;
        }
        let mut copy = http::Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use tower::{BoxError, Service};

    use lift::Response;

    use super::*;

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// The like-for-like twin does the job it stands in for: above its limit it sheds with
    /// tower's `Overloaded`, and a freed place admits again. A twin that only forwarded
    /// readiness, as `LoadShed` alone does over an always-ready service, would admit all three.
    #[test]
    fn the_limited_twin_sheds_above_its_limit() {
        let never = tower::service_fn(|_req: Request| std::future::pending::<Result<Response, Infallible>>());
        let mut twin = limited_load_shed(1).service(never);
        let ready = |twin: &mut tower::load_shed::LoadShed<_>| {
            assert!(matches!(twin.poll_ready(&mut Context::from_waker(Waker::noop())), Poll::Ready(Ok(()))));
        };
        ready(&mut twin);
        let mut first = Box::pin(twin.call(Request::default()));
        assert!(poll(first.as_mut()).is_pending(), "the first request holds the only place");
        ready(&mut twin);
        let mut second = Box::pin(twin.call(Request::default()));
        let Poll::Ready(Err(err)) = poll(second.as_mut()) else { panic!("the second request was not shed") };
        let err: BoxError = err;
        assert!(err.is::<tower::load_shed::error::Overloaded>(), "{err}");
        drop(first);
        ready(&mut twin);
        let mut third = Box::pin(twin.call(Request::default()));
        assert!(poll(third.as_mut()).is_pending(), "the freed place admits the third request");
    }
}
