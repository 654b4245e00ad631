//! The response future of [`RequestLog`](super::RequestLog).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Response, Uri};
use pin_project_lite::pin_project;
use tracing::Span;

use super::format::REQUEST_SPAN_TARGET;

pin_project! {
    /// Polls the inner future inside the request span; logs completion at `debug`.
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
            Ok(res) => tracing::debug!(
                target: REQUEST_SPAN_TARGET,
                method = %method,
                path = uri.path(),
                status = res.status().as_u16(),
                latency_ms,
                "request completed"
            ),
            Err(_) => tracing::debug!(
                target: REQUEST_SPAN_TARGET,
                method = %method,
                path = uri.path(),
                latency_ms,
                "request failed"
            ),
        }
        Poll::Ready(result)
    }
}
