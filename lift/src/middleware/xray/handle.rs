//! The per-request tracing handle handlers use to record downstream calls.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::sampling::IdGenerator;
use super::segment::{annotation_key, AnnotationValue, Namespace, Outcome, Subsegment};
use crate::trace::{SamplingDecision, SegmentId, TraceHeader, TraceId};

/// The X-Ray trace of one request, in its extensions: open subsegments for downstream
/// calls with [`subsegment`](Self::subsegment), and pass [`trace_header`](Self::trace_header)
/// on to services you call.
///
/// State lives in the handle (an `Arc`), so concurrent requests never share it. On an
/// unsampled request every call is a cheap no-op.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::{Namespace, XrayHandle};
///
/// async fn get_payment(req: lift::Request) -> lift::Response {
///     if let Some(xray) = XrayHandle::of(&req) {
///         let mut call = xray.subsegment("DynamoDB", Namespace::Aws);
///         call.annotate("table", "payments");
///         // ... the GetItem call, sending call.trace_header() along ...
///         call.http_status(200);
///     } // the subsegment ends when `call` is dropped
///     lift::Response::default()
/// }
/// ```
#[derive(Clone)]
pub struct XrayHandle {
    inner: Arc<TraceState>,
}

pub(crate) struct TraceState {
    trace_id: TraceId,
    segment_id: SegmentId,
    sampled: bool,
    ids: Arc<IdGenerator>,
    recorded: Mutex<Recorded>,
}

/// What handlers recorded; taken once when the segment is sent.
#[derive(Default)]
pub(crate) struct Recorded {
    pub(crate) subsegments: Vec<Subsegment>,
    pub(crate) annotations: Vec<(String, AnnotationValue)>,
    pub(crate) closed: bool,
}

impl fmt::Debug for XrayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayHandle")
            .field("trace_id", &self.inner.trace_id)
            .field("segment_id", &self.inner.segment_id)
            .field("sampled", &self.inner.sampled)
            .finish()
    }
}

pub(crate) fn epoch_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

impl XrayHandle {
    pub(crate) fn new(
        trace_id: TraceId,
        segment_id: SegmentId,
        sampled: bool,
        ids: Arc<IdGenerator>,
    ) -> Self {
        let recorded = Mutex::new(Recorded::default());
        Self { inner: Arc::new(TraceState { trace_id, segment_id, sampled, ids, recorded }) }
    }

    /// The handle of a request, if an [`XrayLayer`](super::XrayLayer) is mounted.
    pub fn of<B>(req: &http::Request<B>) -> Option<&XrayHandle> {
        req.extensions().get::<XrayHandle>()
    }

    /// The trace of the request.
    pub fn trace_id(&self) -> TraceId {
        self.inner.trace_id
    }

    /// The id of the handler's (sub)segment.
    pub fn segment_id(&self) -> SegmentId {
        self.inner.segment_id
    }

    /// Whether this request is recorded.
    pub fn is_sampled(&self) -> bool {
        self.inner.sampled
    }

    /// The header to send to a downstream service, with the handler's segment as parent.
    pub fn trace_header(&self) -> TraceHeader {
        self.header_with_parent(self.inner.segment_id)
    }

    fn header_with_parent(&self, parent: SegmentId) -> TraceHeader {
        let sampled =
            if self.inner.sampled { SamplingDecision::Sampled } else { SamplingDecision::NotSampled };
        TraceHeader { root: self.inner.trace_id, parent: Some(parent), sampled, extra: Vec::new() }
    }

    /// Adds an indexed annotation to the handler's segment.
    pub fn annotate(&self, key: &str, value: impl Into<AnnotationValue>) {
        if self.inner.sampled {
            self.recorded().annotations.push((annotation_key(key), value.into()));
        }
    }

    /// Starts a subsegment for a downstream call; it ends when the guard is dropped.
    pub fn subsegment(&self, name: impl Into<String>, namespace: Namespace) -> SubsegmentGuard {
        if !self.inner.sampled {
            return SubsegmentGuard { handle: self.clone(), sub: None };
        }
        let sub = Subsegment {
            name: name.into(),
            id: self.inner.ids.segment_id(),
            namespace,
            start_time: epoch_seconds(),
            end_time: 0.0,
            outcome: Outcome::default(),
            http_status: None,
            annotations: Vec::new(),
        };
        SubsegmentGuard { handle: self.clone(), sub: Some(sub) }
    }

    pub(crate) fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.inner.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what was recorded; later subsegments are dropped.
    pub(crate) fn close(&self) -> Recorded {
        let mut recorded = self.recorded();
        let taken = std::mem::take(&mut *recorded);
        recorded.closed = true;
        taken
    }
}

/// A running subsegment; records its end time when dropped or [`end`](Self::end)ed.
///
/// # Examples
///
/// ```
/// # fn run(xray: &lift::middleware::xray::XrayHandle) {
/// use lift::middleware::xray::Namespace;
/// let mut call = xray.subsegment("payments-ledger", Namespace::Remote);
/// let header = call.trace_header().to_string(); // send as X-Amzn-Trace-Id
/// call.http_status(503); // marks the subsegment as a fault
/// call.end();
/// # let _ = header; }
/// ```
#[must_use = "the subsegment ends when the guard is dropped"]
pub struct SubsegmentGuard {
    handle: XrayHandle,
    sub: Option<Subsegment>,
}

impl fmt::Debug for SubsegmentGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubsegmentGuard").field("id", &self.id()).finish()
    }
}

impl SubsegmentGuard {
    /// The subsegment's id; none when the request is not sampled.
    pub fn id(&self) -> Option<SegmentId> {
        self.sub.as_ref().map(|s| s.id)
    }

    /// The header for the downstream call, with this subsegment as parent.
    pub fn trace_header(&self) -> TraceHeader {
        self.handle.header_with_parent(self.id().unwrap_or(self.handle.inner.segment_id))
    }

    /// Records the downstream HTTP status: 429 also marks throttle and error, other 4xx
    /// error, 5xx fault.
    pub fn http_status(&mut self, status: u16) -> &mut Self {
        if let Some(sub) = &mut self.sub {
            sub.set_status(status);
        }
        self
    }

    /// Marks a client error (the call was wrong).
    pub fn error(&mut self) -> &mut Self {
        self.flag(|o| o.error = true)
    }

    /// Marks a fault (the downstream service failed).
    pub fn fault(&mut self) -> &mut Self {
        self.flag(|o| o.fault = true)
    }

    /// Marks throttling (also an error, as X-Ray counts it).
    pub fn throttle(&mut self) -> &mut Self {
        self.flag(|o| {
            o.throttle = true;
            o.error = true;
        })
    }

    fn flag(&mut self, set: impl FnOnce(&mut Outcome)) -> &mut Self {
        if let Some(sub) = &mut self.sub {
            set(&mut sub.outcome);
        }
        self
    }

    /// Adds an indexed annotation.
    pub fn annotate(&mut self, key: &str, value: impl Into<AnnotationValue>) -> &mut Self {
        if let Some(sub) = &mut self.sub {
            sub.annotations.push((annotation_key(key), value.into()));
        }
        self
    }

    /// Ends the subsegment now.
    pub fn end(self) {}
}

impl Drop for SubsegmentGuard {
    fn drop(&mut self) {
        if let Some(mut sub) = self.sub.take() {
            sub.end_time = epoch_seconds();
            let mut recorded = self.handle.recorded();
            if !recorded.closed {
                recorded.subsegments.push(sub);
            }
        }
    }
}
