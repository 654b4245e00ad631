//! CloudWatch Embedded Metric Format (EMF) metrics, recorded per request.
//!
//! - [`Metrics`] is the recorder: namespace, dimension sets, dimensions, properties, and
//!   metrics with a [`Unit`] and values. It writes EMF documents
//!   (`_aws.Timestamp`, `_aws.CloudWatchMetrics[{Namespace, Dimensions, Metrics:[{Name, Unit}]}]`,
//!   then the values at the top level) and keeps EMF's limits: at most 100 metrics and 100
//!   values per metric in a document (more are split into several documents), at most 30
//!   dimensions in a set and metric names of 1–255 characters (refused with a
//!   [`MetricsError`]).
//! - [`MetricsLayer`] (built by [`MetricsBuilder`]) is a tower layer. Each request gets its
//!   own recorder, reachable by handlers as a [`MetricsHandle`] in the request extensions;
//!   nothing is kept in process globals. When the inner future completes, the layer records
//!   request count, latency and 4xx/5xx by tenant and route, and writes the documents to a
//!   [`MetricsSink`] (stdout by default, one document per line, where Lambda hands them to
//!   CloudWatch Logs). The first request also writes a `ColdStart` document of its own.
//!
//! There is no background flush: Lambda freezes the process between invocations, so a
//! timer could fire late or never.
//!
//! # Examples
//!
//! ```
//! use lift::middleware::metrics::{MemorySink, MetricsBuilder, MetricsHandle, Unit};
//! use tower::{Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sink = MemorySink::new();
//! let layer = MetricsBuilder::new().namespace("Payments").sink(sink.clone()).build()?;
//! let mut svc = tower::ServiceBuilder::new().layer(layer).service_fn(|req: lift::Request| async move {
//!     MetricsHandle::of(&req).unwrap().record("ChargeAmount", 42.0, Unit::None).unwrap();
//!     Ok::<_, std::convert::Infallible>(lift::Response::default())
//! });
//! svc.ready().await?.call(lift::Request::new(lift::Body::empty())).await?;
//! let docs = sink.json();
//! assert_eq!(docs[0]["ColdStart"], 1.0);
//! assert_eq!((docs[1]["ChargeAmount"].as_f64(), docs[1]["Requests"].as_f64()), (Some(42.0), Some(1.0)));
//! # Ok(()) }
//! ```

mod error;
mod future;
mod handle;
mod layer;
mod recorder;
mod service;
mod sink;
mod unit;

pub use error::MetricsError;
pub use future::ResponseFuture;
pub use handle::MetricsHandle;
#[allow(deprecated)]
pub use layer::{
    MetricsBuilder, MetricsConfig, MetricsLayer, CLIENT_ERRORS, COLD_START, FUNCTION_NAME, LATENCY, REQUESTS,
    ROUTE, SERVER_ERRORS, TENANT,
};
pub use recorder::{Metrics, MAX_DIMENSIONS, MAX_METRICS_PER_DOCUMENT, MAX_VALUES_PER_METRIC};
pub use service::MetricsService;
pub use sink::{MemorySink, MetricsSink, StdoutSink};
pub use unit::Unit;
