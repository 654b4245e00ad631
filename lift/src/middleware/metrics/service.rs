//! The service that gives each request its recorder.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower_service::Service;

use super::future::{Pending, ResponseFuture};
use super::handle::MetricsHandle;
use super::layer::{Shared, ROUTE, TENANT};
use crate::context::{Context, MatchedRoute};

/// Records per-request metrics; made by [`MetricsLayer`](super::MetricsLayer).
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for MetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> MetricsService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
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

impl<S, B, ResBody> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let cold_start = self.shared.take_cold_start();
        let mut metrics = self.shared.template.clone();
        // A value CloudWatch would refuse is left out rather than failing the request.
        let known = Context::of(&req).and_then(Context::tenant);
        if let Some(tenant) = known {
            let _ = metrics.set_dimension(TENANT, tenant);
        }
        // Mounted outside authentication, the tenant is known only when the answer comes;
        // inside it, no shared handle is made.
        let tenant = match known {
            Some(_) => None,
            None => Context::of_mut(&mut req).map(Context::resolved_tenant),
        };
        if let Some(route) = req.extensions().get::<MatchedRoute>() {
            let _ = metrics.set_dimension(ROUTE, route.as_str().to_owned());
        }
        let handle = MetricsHandle::new(metrics);
        req.extensions_mut().insert(handle.clone());
        let pending = Pending { shared: Arc::clone(&self.shared), handle, start, cold_start, tenant };
        ResponseFuture::new(self.inner.call(req), pending)
    }
}
