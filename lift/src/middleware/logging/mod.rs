//! Structured JSON logs through `tracing`, with CloudWatch field names and scrubbing.
//!
//! Two pieces, each reusing what `tracing` already offers:
//!
//! - [`JsonLogLayer`], a `tracing_subscriber` [`Layer`](tracing_subscriber::Layer) built by
//!   [`LogConfig`]: one JSON line per event with `timestamp` (RFC 3339 UTC), `level`,
//!   `message`, `request_id`, `tenant`, `xray_trace_id`, `cold_start`, `function_name`,
//!   `function_version` and the event's own fields, written to any
//!   [`MakeWriter`](tracing_subscriber::fmt::MakeWriter) (stdout, or a [`MemoryWriter`] in
//!   tests). The level comes from `LIFT_LOG_LEVEL` (or `AWS_LAMBDA_LOG_LEVEL`); with
//!   `LIFT_LOG_SAMPLE_RATE`, that share of requests also logs at `debug`, as Powertools does.
//! - [`RequestLogLayer`], a tower layer that opens the per-request span (target
//!   `lift::request`) whose fields every line inside the request carries. Request data
//!   lives in that span, never in a process global, so concurrent invocations in one
//!   process keep their own ids.
//!
//! Before a line is written, card numbers (Luhn-valid, 13–19 digits, grouped or not), US
//! SSNs, bearer tokens, AWS access key ids, JWTs, email addresses and the values of
//! secret-named fields and keys (passwords, tokens, PINs, one-time and verification codes)
//! are replaced by markers such as `[REDACTED:pan]` or `[REDACTED:email]`, in the message
//! and in fields alike ([`scrub`]).
//!
//! # Examples
//!
//! ```
//! use lift::middleware::logging::{LogConfig, MemoryWriter, RequestLogLayer};
//! use tower::{Service, ServiceExt};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let logs = MemoryWriter::new();
//! let subscriber = tracing_subscriber::registry()
//!     .with(LogConfig::from_env().function_name("payments").writer(logs.clone()).build()?);
//! let _guard = tracing::subscriber::set_default(subscriber);
//!
//! let mut svc = tower::ServiceBuilder::new().layer(RequestLogLayer::new()).service_fn(
//!     |_req: lift::Request| async {
//!         tracing::info!(card = "4111-1111-1111-1111", "charging");
//!         Ok::<_, std::convert::Infallible>(lift::Response::default())
//!     },
//! );
//! let mut req = lift::Request::new(lift::Body::empty());
//! req.extensions_mut().insert(lift::Context::new("req-1"));
//! svc.ready().await?.call(req).await?;
//!
//! let line: serde_json::Value = serde_json::from_str(&logs.lines()[0])?;
//! assert_eq!(line["request_id"], "req-1");
//! assert_eq!(line["cold_start"], true);
//! assert_eq!(line["card"], "[REDACTED:pan]");
//! # Ok(()) }
//! ```

mod config;
mod error;
mod format;
mod future;
mod layer;
mod service;
mod writer;

pub use crate::scrub::{is_secret_name, scrub, scrub_path, Redaction};
pub use config::LogConfig;
pub use error::LogConfigError;
pub use format::{JsonLogLayer, REQUEST_SPAN_TARGET};
pub use future::ResponseFuture;
pub use layer::RequestLogLayer;
pub use service::RequestLog;
pub use writer::{MemoryWriter, MemoryWriterGuard};

/// The `tracing` crate Lift logs through, re-exported so that applications (and Lift's
/// benches) emit events with the very version the layers are built on.
pub use tracing;
/// The `tracing-subscriber` crate [`JsonLogLayer`] plugs into, re-exported for the same reason.
pub use tracing_subscriber;
