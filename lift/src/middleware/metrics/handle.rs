//! The per-request recorder handle handlers find in request extensions.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use super::error::MetricsError;
use super::recorder::Metrics;
use super::sink::MetricsSink;
use super::unit::Unit;
use crate::context::MatchedRoute;

/// The metrics of one request, shared between the [`MetricsLayer`](super::MetricsLayer)
/// and the handler through request extensions. Clones share one recorder.
///
/// After the layer flushed (when the response is ready), recording returns
/// [`MetricsError::AlreadyFlushed`] instead of losing the value silently.
///
/// # Examples
///
/// ```
/// use lift::middleware::metrics::{MetricsHandle, Unit};
///
/// async fn charge(req: lift::Request) -> Result<lift::Response, lift::Error> {
///     if let Some(metrics) = MetricsHandle::of(&req) {
///         metrics.record("ChargeAmount", 42.0, Unit::None).map_err(lift::Error::internal)?;
///     }
///     Ok(lift::Response::default())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct MetricsHandle {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    metrics: Metrics,
    flushed: bool,
    /// The route the router matched, for a request that ends without a response to carry it.
    route: Option<MatchedRoute>,
}

impl MetricsHandle {
    /// A handle over a recorder (the layer makes one per request).
    pub fn new(metrics: Metrics) -> Self {
        Self { inner: Arc::new(Mutex::new(State { metrics, flushed: false, route: None })) }
    }

    /// The handle of a request, if a [`MetricsLayer`](super::MetricsLayer) is mounted.
    pub fn of<B>(req: &http::Request<B>) -> Option<&MetricsHandle> {
        req.extensions().get::<MetricsHandle>()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes the route the router matched: the layer reads it from the response, but a
    /// request that panics or is dropped has no response.
    pub(crate) fn note_route(&self, route: &MatchedRoute) {
        self.state().route = Some(route.clone());
    }

    /// The route noted by [`note_route`](Self::note_route).
    pub(crate) fn noted_route(&self) -> Option<MatchedRoute> {
        self.state().route.clone()
    }

    /// Records one value; see [`Metrics::record`].
    ///
    /// # Errors
    /// As [`Metrics::record`], and [`MetricsError::AlreadyFlushed`].
    pub fn record(
        &self,
        name: impl Into<Cow<'static, str>>,
        value: f64,
        unit: Unit,
    ) -> Result<(), MetricsError> {
        let mut state = self.state();
        if state.flushed {
            return Err(MetricsError::AlreadyFlushed { name: name.into().into_owned() });
        }
        state.metrics.record(name, value, unit)
    }

    /// Records a count of one.
    ///
    /// # Errors
    /// As [`record`](Self::record).
    pub fn count(&self, name: impl Into<Cow<'static, str>>) -> Result<(), MetricsError> {
        self.record(name, 1.0, Unit::Count)
    }

    /// Sets a dimension (such as `Tenant`, once authentication knows it).
    ///
    /// # Errors
    /// As [`Metrics::set_dimension`].
    pub fn set_dimension(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Result<(), MetricsError> {
        self.state().metrics.set_dimension(key, value)
    }

    /// Adds a property that is not a metric.
    pub fn set_property(&self, key: impl Into<Cow<'static, str>>, value: impl Into<serde_json::Value>) {
        self.state().metrics.set_property(key, value);
    }

    /// Runs `f` on the recorder.
    pub fn with<R>(&self, f: impl FnOnce(&mut Metrics) -> R) -> R {
        f(&mut self.state().metrics)
    }

    /// Writes the documents to a sink and closes the handle: later records are refused.
    /// The layer calls this when the response is ready; call it yourself when recording
    /// without the layer (an SQS batch, say).
    pub fn flush(&self, sink: &dyn MetricsSink) {
        self.finish(sink, |_| {});
    }

    /// Like [`flush`](Self::flush), after `f` has added last values.
    pub(crate) fn finish(&self, sink: &dyn MetricsSink, f: impl FnOnce(&mut Metrics)) {
        let mut state = self.state();
        f(&mut state.metrics);
        state.flushed = true;
        // Written under the lock, without copying the documents: the handle is the
        // request's own, and once flushed nobody records into it.
        state.metrics.write_documents(SystemTime::now(), |doc| sink.emit(doc));
    }
}
