//! The service.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};
use tower_service::Service;

use super::copy::RequestCopy;
use super::layer::Policy;
use super::{is_idempotent, ClassifyRetry, ResponseFuture, TransientErrors};
use crate::middleware::timeout::remaining;

/// Retries failed calls with backoff, under a budget, for idempotent requests only, and
/// never past the Lambda deadline; built by [`RetryLayer`](super::RetryLayer).
///
/// The request is copied before the first attempt (`http::Request<B>` with `B: Clone`, as
/// [`lift::Body`](crate::Body) is) so later attempts send it unchanged.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use lift::middleware::retry::RetryLayer;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let calls = Arc::new(AtomicU32::new(0));
/// let seen = calls.clone();
/// let flaky = service_fn(move |_req: http::Request<lift::Body>| {
///     let n = seen.fetch_add(1, Ordering::SeqCst);
///     async move { if n == 0 { Err("reset by peer") } else { Ok(http::Response::new(())) } }
/// });
/// let svc = RetryLayer::new().layer(flaky);
/// svc.oneshot(http::Request::new(lift::Body::empty())).await.unwrap();
/// assert_eq!(calls.load(Ordering::SeqCst), 2);
/// # }
/// ```
pub struct Retry<S, C = TransientErrors, Bg = TpsBudget> {
    inner: S,
    policy: Arc<Policy<C, Bg>>,
}

impl<S: Clone, C, Bg> Clone for Retry<S, C, Bg> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), policy: Arc::clone(&self.policy) }
    }
}

impl<S: std::fmt::Debug, C, Bg> std::fmt::Debug for Retry<S, C, Bg> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> Retry<S> {
    /// Wraps `inner` with the defaults of [`RetryBuilder`](super::RetryBuilder).
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&super::RetryLayer::new(), inner)
    }
}

impl<S, C, Bg> Retry<S, C, Bg> {
    pub(crate) fn from_parts(inner: S, policy: Arc<Policy<C, Bg>>) -> Self {
        Self { inner, policy }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, C, Bg> Service<http::Request<B>> for Retry<S, C, Bg>
where
    S: Service<http::Request<B>> + Clone,
    B: Clone,
    C: ClassifyRetry<S::Response, S::Error>,
    Bg: Budget,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, C, Bg>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let policy = &self.policy;
        policy.budget.deposit();
        let deadline = remaining(&req).map(|left| Instant::now() + left.saturating_sub(policy.margin));
        let idempotent = is_idempotent(&req);
        let copy = (policy.max_attempts > 1).then(|| RequestCopy::new(&req));
        let future = self.inner.call(req);
        ResponseFuture::new(future, self.inner.clone(), copy, Arc::clone(policy), idempotent, deadline)
    }
}
