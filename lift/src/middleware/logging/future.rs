//! The response future of [`RequestLog`](super::RequestLog).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Response, Uri};
use pin_project_lite::pin_project;
use tracing::Span;

use super::format::REQUEST_SPAN_TARGET;
use crate::context::MatchedRoute;
use crate::scrub::scrub_path;

pin_project! {
    /// Polls the inner future inside the request span; logs completion at `debug`.
    ///
    /// The completion event's `path` is the route pattern the router matched
    /// (`/payments/:id`), read from the response's [`MatchedRoute`]; without one (no route
    /// matched, the request failed, or the layer runs inside the router), it is the request
    /// path with card numbers, SSNs, IBANs, tokens, secrets and email addresses in its
    /// segments replaced by markers. Paths carry identifiers, and whatever subscriber the
    /// application installs, the event must not put them in its logs.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        // The request's method and URI, when the completion event is on.
        completion: Option<(Method, Uri)>,
        start: Instant,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, span: Span, completion: Option<(Method, Uri)>, start: Instant) -> Self {
        Self { inner, span, completion, start }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = std::task::ready!(this.inner.poll(cx));
        let Some((method, uri)) = this.completion.take() else { return Poll::Ready(result) };
        let latency_ms = this.start.elapsed().as_secs_f64() * 1000.0;
        match &result {
            // The path is worked out inside the macro, so only when the event is enabled.
            Ok(res) => tracing::debug!(
                target: REQUEST_SPAN_TARGET,
                method = %method,
                path = &*match res.extensions().get::<MatchedRoute>() {
                    Some(route) => Cow::Borrowed(route.as_str()),
                    None => scrub_path(uri.path()),
                },
                status = res.status().as_u16(),
                latency_ms,
                "request completed"
            ),
            Err(_) => tracing::debug!(
                target: REQUEST_SPAN_TARGET,
                method = %method,
                path = &*scrub_path(uri.path()),
                latency_ms,
                "request failed"
            ),
        }
        Poll::Ready(result)
    }
}
