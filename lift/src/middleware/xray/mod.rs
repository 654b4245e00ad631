//! AWS X-Ray tracing: the trace header in and out, segments to the daemon over UDP.
//!
//! [`XrayLayer`] (built by [`XrayBuilder`]) is a tower layer, so it mounts in Lift's
//! [`App`](crate::App), axum and lambda_http alike. For each request it:
//!
//! 1. reads the trace from [`lift::Context::trace_header`](crate::Context::trace_header)
//!    (the Lambda invocation's `_X_AMZN_TRACE_ID`) or the `X-Amzn-Trace-Id` header with a
//!    strict parser ([`TraceHeader`]), starting a new trace when there is none;
//! 2. obeys `Sampled=1`/`0`, else applies the local [`SamplingRule`] (1/s + 5 % by default);
//! 3. puts an [`XrayHandle`] in the request extensions, with which handlers open
//!    subsegments for downstream calls (`handle.subsegment("DynamoDB", Namespace::Aws)`);
//! 4. when the response is ready, answers with `X-Amzn-Trace-Id: Root=...;Sampled=...` and
//!    sends the segment of a sampled request to the daemon (`AWS_XRAY_DAEMON_ADDRESS`,
//!    default `127.0.0.1:2000`): the line `{"format": "json", "version": 1}` then the
//!    document, one datagram per document, over one UDP socket per layer. Unsampled
//!    requests send nothing.
//!
//! On Lambda the service creates the request's segment itself; as the X-Ray SDKs do, the
//! layer then sends the handler as a subsegment (`"type": "subsegment"`) whose `parent_id`
//! is the header's `Parent`. Elsewhere it sends a segment. Status 5xx (or an error from the
//! inner service) marks a fault, 429 a throttle, other 4xx an error.
//!
//! Nothing runs in the background: documents are sent when the response future completes,
//! because Lambda freezes the process between invocations.
//!
//! # Examples
//!
//! ```
//! use lift::middleware::xray::{Namespace, XrayBuilder, XrayHandle};
//!
//! async fn charge(req: lift::Request) -> lift::Response {
//!     if let Some(xray) = XrayHandle::of(&req) {
//!         let mut call = xray.subsegment("DynamoDB", Namespace::Aws);
//!         call.http_status(200);
//!     }
//!     lift::Response::default()
//! }
//!
//! let xray = XrayBuilder::from_env().service_name("payments").build()?;
//! let app = lift::App::new().post("/charges", charge).layer(xray);
//! # Ok::<(), lift::middleware::xray::XrayError>(())
//! ```

mod emitter;
mod error;
mod future;
mod handle;
mod layer;
mod sampling;
mod segment;
mod service;

pub use crate::trace::{SamplingDecision, SegmentId, TraceHeader, TraceHeaderError, TraceId};
pub use emitter::DEFAULT_DAEMON_ADDRESS;
pub use error::XrayError;
pub use future::ResponseFuture;
pub use handle::{SubsegmentGuard, XrayHandle};
#[allow(deprecated)]
pub use layer::{XrayBuilder, XrayConfig, XrayLayer};
pub use sampling::SamplingRule;
pub use segment::{AnnotationValue, Namespace};
pub use service::{Xray, TRACE_HEADER};
