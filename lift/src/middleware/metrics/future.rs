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
    ///
    /// A request that ends without a response (the handler panicked, or the future was
    /// dropped unfinished, as an outer timeout drops it) is recorded when the future is
    /// dropped, as a server error: left out, a handler panicking on every third request
    /// would show only its successes to the SLO alarms and the rollout gates. On Lambda
    /// nothing else drops it; under `App::serve_local`, a client that hangs up before the
    /// answer drops it too, and counts as a server error there.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(p) = this.project().pending.take() {
                p.record(None, None);
            }
        }
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
        if let Some(p) = this.pending.take() {
            match &result {
                Ok(res) => p.record(Some(res.status().as_u16()), res.extensions().get::<MatchedRoute>()),
                Err(_) => p.record(None, None),
            }
        }
        Poll::Ready(result)
    }
}

impl Pending {
    /// Writes the request's documents: `status` is `None` for a request that ended in an
    /// error or without a response, a server error.
    fn record(self, status: Option<u16>, route: Option<&MatchedRoute>) {
        let Self { shared, handle, start, cold_start, tenant } = self;
        let route = route.cloned().or_else(|| handle.noted_route());
        let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        let client = status.is_some_and(|s| (400..500).contains(&s));
        let server = status.is_none_or(|s| s >= 500);
        if cold_start {
            shared.cold_start.write_documents(SystemTime::now(), |doc| shared.sink.emit(doc));
        }
        handle.finish(&*shared.sink, |m| {
            if m.dimension(TENANT).is_none() {
                if let Some(tenant) = tenant.as_ref().and_then(ResolvedTenant::get) {
                    let _ = m.set_dimension(TENANT, tenant);
                }
            }
            if let (Some(route), None) = (&route, m.dimension(ROUTE)) {
                let _ = m.set_dimension(ROUTE, route.as_str().to_owned());
            }
            // Static names and finite values: these records cannot fail.
            let _ = m.count(REQUESTS);
            let _ = m.record(LATENCY, latency_ms, Unit::Milliseconds);
            let _ = m.record(CLIENT_ERRORS, f64::from(u8::from(client)), Unit::Count);
            let _ = m.record(SERVER_ERRORS, f64::from(u8::from(server)), Unit::Count);
        });
    }
}
