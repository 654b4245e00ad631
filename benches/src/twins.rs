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
