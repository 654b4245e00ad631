//! A circuit breaker per key: stop calling a failing dependency, probe it, resume.
//!
//! Each key (one for all requests, one per tenant with [`PerTenant`], or one per
//! downstream with [`CircuitBreakerLayer::keyed_by`]) has its own breaker, kept in a
//! sharded map, with three states:
//!
//! - **closed**: calls flow and their outcomes go into a sliding window, either the last N
//!   calls or the last N seconds in one-second buckets ([`SlidingWindow`]). Once the window
//!   holds `minimum_calls`, the breaker opens when the failure rate or (when slow-call
//!   detection is on) the slow-call rate — calls at least a threshold long — reaches its
//!   threshold.
//! - **open**: calls are rejected at once with [`CircuitOpen`] (503, `Retry-After` = the time
//!   left open) until `open_for` has passed.
//! - **half-open**: exactly one probe call goes through; calls that arrive while it is out
//!   are rejected. Success closes the breaker (with an empty window); failure (or a slow
//!   probe) opens it again. A cancelled probe lets the next call probe.
//!
//! What counts as a failure is a [`ClassifyFailure`] (default [`ServerErrors`]: an inner
//! error or a 5xx response). State changes call [`on_state_change`] callbacks in order, and
//! [`Breakers`] reads the counters (calls, failures, slow calls, rejections, state).
//!
//! The hot path of a closed breaker finds its breaker in a sharded map (one shared read
//! lock; no lookup at all for the [`Global`] key), checks the state with atomics, and takes
//! one uncontended mutex to record the outcome. A count window without slow-call detection
//! reads no clock. tower has no circuit
//! breaker, so this one is written here; it reuses tower's `Service`/`Layer` contracts only.
//!
//! [`on_state_change`]: CircuitBreakerBuilder::on_state_change
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use lift::middleware::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
//!
//! let layer = CircuitBreakerLayer::builder()
//!     .failure_rate(0.5)
//!     .slow_calls(Duration::from_secs(2), 0.8)
//!     .minimum_calls(10)
//!     .window(SlidingWindow::Calls(50))
//!     .open_for(Duration::from_secs(20))
//!     .build()
//!     .unwrap();
//! let app = lift::App::new().layer(layer);
//! ```

mod classify;
mod error;
mod future;
mod key;
mod layer;
mod registry;
mod service;
mod state;
mod window;

pub use classify::{ClassifyFailure, ServerErrors};
pub use error::{CircuitOpen, InvalidConfig};
pub use future::ResponseFuture;
pub use key::{Global, KeyFn, PerTenant};
pub use layer::{CircuitBreakerBuilder, CircuitBreakerLayer};
pub use registry::Breakers;
pub use service::CircuitBreaker;
pub use state::{BreakerMetrics, State};
pub use window::SlidingWindow;

pub(crate) use error::retry_after_secs;
