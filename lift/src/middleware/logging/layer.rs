//! The tower layer that opens a logging span around each request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tower_layer::Layer;

use super::service::RequestLog;

/// Wraps a service in [`RequestLog`]: each request runs inside a span that carries
/// `request_id`, `tenant`, `xray_trace_id` and `cold_start` onto every log line.
///
/// `cold_start` is true only for the first request this layer (and its clones) sees in the
/// process: a flag in the layer's shared state, not a global.
///
/// Mount it inside authentication when lines should carry the tenant the authentication
/// sets: the tenant is read from [`lift::Context`](crate::Context) when the request arrives.
///
/// # Examples
///
/// ```
/// use lift::middleware::logging::RequestLogLayer;
/// async fn handler(_req: lift::Request) -> lift::Response {
///     tracing::info!("handled"); // carries request_id, tenant, xray_trace_id, cold_start
///     lift::Response::default()
/// }
/// let app = lift::App::new().get("/", handler).layer(RequestLogLayer::new());
/// ```
#[derive(Debug, Clone)]
pub struct RequestLogLayer {
    state: Arc<ColdStart>,
}

/// True until the first request is seen.
#[derive(Debug)]
pub(crate) struct ColdStart(AtomicBool);

impl ColdStart {
    /// True exactly once.
    pub(crate) fn take(&self) -> bool {
        // A load first keeps the warm path free of writes to a shared cache line.
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::AcqRel)
    }
}

impl Default for RequestLogLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestLogLayer {
    /// A layer whose first request is the cold start.
    pub fn new() -> Self {
        Self { state: Arc::new(ColdStart(AtomicBool::new(true))) }
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLog::new(inner, Arc::clone(&self.state))
    }
}
