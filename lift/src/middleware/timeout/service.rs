//! The service.

use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_service::Service;

use super::deadline::remaining;
use super::layer::DEFAULT_MARGIN;
use super::ResponseFuture;
use crate::BoxError;

/// Ends a request after the smaller of a timeout and the Lambda time left minus a margin,
/// dropping the inner future when it does.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use lift::middleware::timeout::{Elapsed, Timeout};
/// use tower::{service_fn, ServiceExt};
///
/// let slow = service_fn(|_req: http::Request<()>| async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok::<_, std::convert::Infallible>(())
/// });
/// let err = Timeout::new(slow, Duration::from_millis(10))
///     .oneshot(http::Request::new(()))
///     .await
///     .unwrap_err();
/// assert!(err.is::<Elapsed>());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
    margin: Duration,
}

impl<S> Timeout<S> {
    /// Wraps `inner`, with the default 200 ms margin before the Lambda deadline.
    pub const fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout, margin: DEFAULT_MARGIN }
    }

    /// Sets the margin kept before the Lambda deadline.
    pub const fn safety_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// The time budget of a request: the timeout, or less when the deadline is nearer.
    pub fn budget<B>(&self, req: &http::Request<B>) -> Duration {
        match remaining(req) {
            Some(left) => self.timeout.min(left.saturating_sub(self.margin)),
            None => self.timeout,
        }
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

impl<S, B> Service<http::Request<B>> for Timeout<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Inlined into its caller: out of line under a bulkhead, returning the future (296 bytes
    // over a load shed) through memory cost 90 instructions a call (benches/instructions.toml).
    #[inline(always)]
    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let budget = self.budget(&req);
        if budget.is_zero() {
            // No time left: do not start work that could not answer in time.
            return ResponseFuture::elapsed();
        }
        ResponseFuture::new(self.inner.call(req), Instant::now() + budget)
    }
}
