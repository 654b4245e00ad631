//! The response future of [`Xray`](super::Xray): sends the segment when the response is ready.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use super::handle::{epoch_seconds, XrayHandle};
use super::layer::Shared;
use super::segment::{finish, Outcome, SegmentEnd};
use crate::trace::TRACE_HEADER_NAME;

/// What the future needs once the response is ready.
pub(crate) struct Pending {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handle: XrayHandle,
    /// The document begun when the request arrived; none when it is not sampled.
    pub(crate) document: Option<String>,
}

pin_project! {
    /// Answers with the `X-Amzn-Trace-Id` header and sends the segment of a sampled request
    /// to the daemon when the inner future completes.
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
        let mut result = std::task::ready!(this.inner.poll(cx));
        let Some(pending) = this.pending.take() else { return Poll::Ready(result) };
        let status = match &mut result {
            Ok(res) => {
                res.headers_mut().insert(TRACE_HEADER_NAME, response_header(&pending.handle));
                Some(res.status().as_u16())
            }
            Err(_) => None,
        };
        send(pending, status);
        Poll::Ready(result)
    }
}

/// `Root=<trace id>;Sampled=<0|1>`, without `fmt`.
fn response_header(handle: &XrayHandle) -> HeaderValue {
    let mut value = [0u8; 50];
    value[..5].copy_from_slice(b"Root=");
    value[5..40].copy_from_slice(&handle.trace_id().to_ascii());
    value[40..49].copy_from_slice(b";Sampled=");
    value[49] = if handle.is_sampled() { b'1' } else { b'0' };
    HeaderValue::from_bytes(&value).expect("ascii header value")
}

/// Completes and sends the document of a sampled request; an error is a fault.
fn send(pending: Pending, status: Option<u16>) {
    let Some(document) = pending.document else { return };
    let recorded = pending.handle.close();
    let outcome = match status {
        Some(status) => Outcome::from_status(status),
        None => Outcome { fault: true, ..Outcome::default() },
    };
    let end = SegmentEnd {
        end_time: epoch_seconds(),
        status,
        outcome,
        annotations: &recorded.annotations,
        subsegments: &recorded.subsegments,
    };
    let emitter = &pending.shared.emitter;
    finish(document, pending.handle.trace_id(), pending.handle.segment_id(), &end, |d| emitter.send(d));
}
