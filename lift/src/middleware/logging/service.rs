//! The service that runs each request inside its logging span.

use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower_service::Service;

use super::format::REQUEST_SPAN_TARGET;
use super::future::ResponseFuture;
use super::layer::ColdStart;
use crate::context::{Context, REQUEST_ID_HEADER};
use crate::trace::{TraceHeader, TraceId, TRACE_HEADER_NAME};

/// Runs each request inside a `lift::request` span; made by
/// [`RequestLogLayer`](super::RequestLogLayer).
///
/// The request id comes from [`lift::Context`](crate::Context), else a well-formed
/// `X-Request-Id` header, else a new UUID. The trace id is the `Root` of the context's trace
/// header or the `X-Amzn-Trace-Id` header. When the response is ready a `debug` event
/// "request completed" records method, path, status and latency.
#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
    cold: Arc<ColdStart>,
}

impl<S> RequestLog<S> {
    pub(crate) fn new(inner: S, cold: Arc<ColdStart>) -> Self {
        Self { inner, cold }
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

impl<S, B, ResBody> Service<Request<B>> for RequestLog<S>
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
        let cold_start = self.cold.take();
        let ctx = Context::of(&req);
        let tenant = ctx.and_then(Context::tenant);
        let tenant_known = tenant.is_some();
        let request_id: Cow<'_, str> = match ctx {
            Some(ctx) => Cow::Borrowed(ctx.request_id()),
            None => req
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|id| plain_id(id))
                .map_or_else(|| Cow::Owned(uuid::Uuid::new_v4().to_string()), Cow::Borrowed),
        };
        // The trace X-Ray is recording, when its layer ran first (it may have started a new
        // one); else the incoming header's root.
        let trace_id = req.extensions().get::<TraceId>().map(|id| id.to_ascii()).or_else(|| {
            ctx.and_then(Context::trace_header)
                .or_else(|| req.headers().get(&TRACE_HEADER_NAME).and_then(|v| v.to_str().ok()))
                .and_then(|h| h.parse::<TraceHeader>().ok())
                .map(|h| h.root.to_ascii())
        });
        let span = tracing::info_span!(
            target: REQUEST_SPAN_TARGET,
            "request",
            request_id = &*request_id,
            tenant,
            xray_trace_id = trace_id.as_ref().and_then(|id| std::str::from_utf8(id).ok()),
            cold_start,
        );
        // Mounted outside authentication (the recommended order), the tenant is recorded
        // into the span when authentication sets it: lines from then on carry it.
        if !tenant_known {
            if let Some(ctx) = Context::of_mut(&mut req) {
                ctx.resolved_tenant().record_into(span.clone());
            }
        }
        // Method and path are kept only when the completion event would be written.
        let (completion, inner) = span.in_scope(|| {
            let completion = tracing::enabled!(target: REQUEST_SPAN_TARGET, tracing::Level::DEBUG)
                .then(|| (req.method().clone(), req.uri().clone()));
            (completion, self.inner.call(req))
        });
        ResponseFuture::new(inner, span, completion, Instant::now())
    }
}

/// Request ids we log from a header must be short and plain.
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}
