//! The service.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::{AdaptiveLimit, ClassifyPriority, HealthIsCritical, Priority, ResponseFuture};
use crate::BoxError;

/// Sheds requests with tower's [`Overloaded`](super::Overloaded) when more are in flight
/// than the adaptive limit allows; critical requests always pass. Built by
/// [`LoadShedLayer`](super::LoadShedLayer).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use lift::middleware::load_shed::{LoadShedLayer, Overloaded};
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// let layer = LoadShedLayer::builder().initial_limit(1).max_limit(1).build().unwrap();
/// let mut svc = layer.layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(())
/// }));
/// let busy = svc.ready().await.unwrap().call(http::Request::new(())); // in flight
/// let shed = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap_err();
/// assert!(shed.is::<Overloaded>());
/// let health = http::Request::get("/health").body(()).unwrap();
/// assert!(svc.ready().await.unwrap().call(health).await.is_ok()); // never shed
/// busy.await.unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct LoadShed<S, P = HealthIsCritical> {
    inner: S,
    limit: Arc<AdaptiveLimit>,
    classify: P,
}

impl<S: Clone, P: Clone> Clone for LoadShed<S, P> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), limit: Arc::clone(&self.limit), classify: self.classify.clone() }
    }
}

impl<S> LoadShed<S> {
    /// Wraps `inner` with the defaults of [`LoadShedBuilder`](super::LoadShedBuilder).
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&super::LoadShedLayer::new(), inner)
    }
}

impl<S, P> LoadShed<S, P> {
    pub(crate) fn from_parts(inner: S, limit: Arc<AdaptiveLimit>, classify: P) -> Self {
        Self { inner, limit, classify }
    }

    /// The shared limit, for metrics.
    pub fn limit(&self) -> Arc<AdaptiveLimit> {
        Arc::clone(&self.limit)
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

impl<S, B, P> Service<http::Request<B>> for LoadShed<S, P>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    P: ClassifyPriority<B>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline(always)]
    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let priority = self.classify.priority(&req);
        let Some(ticket) = self.limit.try_admit(priority) else {
            return ResponseFuture::shed();
        };
        ResponseFuture::admitted(self.inner.call(req), ticket, priority != Priority::Critical)
    }
}
