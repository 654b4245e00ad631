//! The service.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::compartments::Compartments;
use super::ResponseFuture;
use crate::context::Context;
use crate::BoxError;

/// Limits concurrent requests, globally and per tenant, with a bounded wait for a permit;
/// built by [`BulkheadLayer`](super::BulkheadLayer).
///
/// Permits are held by the response future and freed when it completes or is dropped.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use lift::middleware::bulkhead::{BulkheadFull, BulkheadLayer};
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// let mut svc = BulkheadLayer::new(1).layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(())
/// }));
/// let first = svc.ready().await.unwrap().call(http::Request::new(())); // holds the permit
/// let err = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap_err();
/// assert!(lift::Error::find::<BulkheadFull>(&*err).is_some());
/// first.await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct Bulkhead<S> {
    inner: S,
    compartments: Arc<Compartments>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> Bulkhead<S> {
    /// Wraps `inner` with at most `max_concurrent` requests at once and no wait.
    ///
    /// # Panics
    /// When `max_concurrent` is 0.
    pub fn new(inner: S, max_concurrent: usize) -> Self {
        tower_layer::Layer::layer(&super::BulkheadLayer::new(max_concurrent), inner)
    }

    pub(crate) fn from_parts(inner: S, compartments: Arc<Compartments>) -> Self {
        Self { inner, compartments }
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

impl<S, B> Service<http::Request<B>> for Bulkhead<S>
where
    S: Service<http::Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, http::Request<B>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let c = &self.compartments;
        let tenant = match c.per_tenant {
            Some(_) => match Context::of(&req).and_then(Context::tenant) {
                Some(t) => c.tenant(t),
                None => {
                    c.unscoped.note();
                    None
                }
            },
            None => None,
        };
        match c.try_acquire(tenant.as_ref()) {
            Ok(permits) => ResponseFuture::running(self.inner.call(req), permits),
            Err(full) if c.max_wait.is_zero() => ResponseFuture::rejected(c.reject(full)),
            Err(_) => {
                // Keep the service that `poll_ready` readied for the call after the wait.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(c.acquire(tenant), ready, req)
            }
        }
    }
}
