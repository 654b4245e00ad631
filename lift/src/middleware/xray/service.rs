//! The service that traces each request.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::header::{self, HeaderName};
use http::{Request, Response};
use tower_service::Service;

use super::future::{Pending, ResponseFuture};
use super::handle::{epoch_seconds, XrayHandle};
use super::layer::Shared;
use super::sampling::now_secs;
use super::segment::{begin, HttpRequest, SegmentStart};
use crate::context::Context;
use crate::scrub::scrub_path;
use crate::trace::{SamplingDecision, TraceHeader, TRACE_HEADER_NAME};

/// The header X-Ray reads and writes.
pub const TRACE_HEADER: &str = "x-amzn-trace-id";

/// [`TRACE_HEADER`] as a header name, so lookups need not parse it.
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Traces each request; made by [`XrayLayer`](super::XrayLayer).
///
/// The incoming trace comes from [`lift::Context::trace_header`](crate::Context::trace_header)
/// (the Lambda invocation's), else the `X-Amzn-Trace-Id` header; a missing or malformed one
/// starts a new trace. `Sampled=1`/`0` is obeyed; otherwise the local rule decides.
#[derive(Debug, Clone)]
pub struct Xray<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Xray<S> {
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

impl<S, B, ResBody> Service<Request<B>> for Xray<S>
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
        let start_time = epoch_seconds();
        let incoming = Context::of(&req)
            .and_then(Context::trace_header)
            .or_else(|| req.headers().get(&TRACE_HEADER_NAME).and_then(|v| v.to_str().ok()))
            .and_then(|h| h.parse::<TraceHeader>().ok());
        let shared = &self.shared;
        let (trace_id, parent, decision) = match incoming {
            Some(h) => (h.root, h.parent, h.sampled),
            None => (shared.ids.trace_id(), None, SamplingDecision::Unknown),
        };
        let sampled = match decision {
            SamplingDecision::Sampled => true,
            SamplingDecision::NotSampled => false,
            SamplingDecision::Requested | SamplingDecision::Unknown => {
                shared.sampler.decide(now_secs(), &shared.ids)
            }
        };
        let segment_id = shared.ids.segment_id();
        let document = sampled.then(|| {
            let path = scrub_path(req.uri().path());
            let start = SegmentStart {
                name: &shared.name,
                id: segment_id,
                trace_id,
                parent_id: parent,
                is_subsegment: shared.lambda && parent.is_some(),
                start_time,
                request: http_request(&req, &path),
            };
            // Under 1008 bytes: glibc serves it from a small bin, without consolidating.
            let mut document = String::with_capacity(768);
            begin(&mut document, &start);
            document
        });
        let handle = XrayHandle::new(trace_id, segment_id, sampled, Arc::clone(&shared.ids));
        req.extensions_mut().insert(handle.clone());
        // The trace the layers inside log under (the request log reads it), without their
        // knowing X-Ray's handle.
        req.extensions_mut().insert(trace_id);
        let pending = Pending { shared: Arc::clone(shared), handle, document };
        ResponseFuture::new(self.inner.call(req), pending)
    }
}

/// The request as recorded: method, URL without the query (it may hold secrets), user agent
/// and client address.
fn http_request<'a, B>(req: &'a Request<B>, path: &'a str) -> HttpRequest<'a> {
    let text = |name: &HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    HttpRequest {
        method: req.method().as_str(),
        host: req.uri().host().or_else(|| text(&header::HOST)),
        path,
        user_agent: text(&header::USER_AGENT),
        client_ip: text(&FORWARDED_FOR).and_then(|v| v.split(',').next()).map(str::trim),
    }
}
