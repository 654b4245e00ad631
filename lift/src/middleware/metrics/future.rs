//! The response future of [`MetricsService`](super::MetricsService): flushes on completion.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use http::Response;
use pin_project_lite::pin_project;

use super::handle::MetricsHandle;
use super::layer::{Shared, CLIENT_ERRORS, LATENCY, REQUESTS, ROUTE, SERVER_ERRORS, TENANT};
use super::unit::Unit;
use crate::context::{MatchedRoute, ResolvedTenant};

pub(crate) struct Pending {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handle: MetricsHandle,
    pub(crate) start: Instant,
    pub(crate) cold_start: bool,
    pub(crate) tenant: Option<ResolvedTenant>,
}

pin_project! {
    /// Records the standard metrics and flushes the request's documents when the inner
    /// future completes.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, pending: Pending) -> Self {
        Self { inner, pending: Some(pending) }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let Some(p) = this.pending.take() else { return Poll::Ready(result) };
        let latency_ms = p.start.elapsed().as_secs_f64() * 1000.0;
        let (status, route) = match &result {
            Ok(res) => (Some(res.status().as_u16()), res.extensions().get::<MatchedRoute>()),
            Err(_) => (None, None),
        };
        let client = status.is_some_and(|s| (400..500).contains(&s));
        let server = status.is_none_or(|s| s >= 500);
        if p.cold_start {
            p.shared.cold_start.write_documents(SystemTime::now(), |doc| p.shared.sink.emit(doc));
        }
        p.handle.finish(&*p.shared.sink, |m| {
            if m.dimension(TENANT).is_none() {
                if let Some(tenant) = p.tenant.as_ref().and_then(ResolvedTenant::get) {
                    let _ = m.set_dimension(TENANT, tenant);
                }
            }
            if let (Some(route), None) = (route, m.dimension(ROUTE)) {
                let _ = m.set_dimension(ROUTE, route.as_str().to_owned());
            }
            // Static names and finite values: these records cannot fail.
            let _ = m.count(REQUESTS);
            let _ = m.record(LATENCY, latency_ms, Unit::Milliseconds);
            let _ = m.record(CLIENT_ERRORS, f64::from(u8::from(client)), Unit::Count);
            let _ = m.record(SERVER_ERRORS, f64::from(u8::from(server)), Unit::Count);
        });
        Poll::Ready(result)
    }
}
