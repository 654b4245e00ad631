//! A deadline-aware timeout: the smaller of a configured timeout and the time the Lambda
//! invocation has left, minus a safety margin.
//!
//! Lambda kills an invocation at its deadline without a response. [`Timeout`] ends the
//! request first, early enough to answer 504 instead of being cut off: the budget of each
//! request is `min(timeout, remaining - margin)`, where `remaining` comes from
//! [`lift::Context::remaining`](crate::Context::remaining) (or the `lift::Invocation` /
//! `lambda_runtime::Context` extension when no `lift::Context` is there, see [`remaining`]).
//!
//! When the budget runs out the inner future is **dropped at once**, before the error is
//! returned, so no work of the request continues after its response.
//!
//! Reused from tower: the error is tower's own
//! [`Elapsed`](tower::timeout::error::Elapsed), so every stack that already maps tower's
//! timeout (Lift's [`Error::from_boxed`](crate::Error::from_boxed) renders it as 504) maps
//! this one too. The service is written here because tower's `Timeout` has one fixed
//! duration and cannot see the request's deadline.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use lift::middleware::timeout::TimeoutLayer;
//!
//! let layer = TimeoutLayer::new(Duration::from_secs(3)).safety_margin(Duration::from_millis(200));
//! let app = lift::App::new().layer(layer);
//! ```

mod deadline;
mod future;
mod layer;
mod service;

pub(crate) use layer::DEFAULT_MARGIN;

pub use deadline::remaining;
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;
pub use service::Timeout;
pub use tower::timeout::error::Elapsed;
