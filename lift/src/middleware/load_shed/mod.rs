//! Adaptive load shedding: reject work beyond a concurrency limit that adapts to latency,
//! by priority class, so health checks always pass.
//!
//! Every request counts as in flight until its response future is dropped (as tower's
//! `ConcurrencyLimit` holds its permit); its latency is sampled when the future ends. A
//! request over the limit is shed at once with tower's [`Overloaded`] (Lift renders it as 503 with
//! `Retry-After: 1`). Priorities come from a [`ClassifyPriority`] (default
//! [`HealthIsCritical`]: `/health*` paths are critical):
//!
//! - [`Priority::Critical`] is always admitted and not sampled;
//! - [`Priority::Normal`] is admitted while in flight ≤ limit;
//! - [`Priority::Low`] is admitted only while in flight ≤ limit × low-priority share, so it
//!   is shed first as the service nears its limit.
//!
//! The limit is **AIMD** (Netflix concurrency-limits' `AIMDLimit`), chosen over Gradient2
//! for being predictable with the few concurrent requests a Lambda execution environment
//! sees: a response that timed out (tower's or Lift's [`Elapsed`](crate::middleware::timeout::Elapsed))
//! or took longer than the latency target multiplies the limit by the backoff ratio (0.9);
//! any other response, while at least half the limit is in use, adds one. Admission and
//! adaptation take no lock: counting a request in and out is the clone and the drop of its
//! ticket, a reference to the limit's core (two atomic operations per request), and the
//! limit moves by compare-and-swap only when a sample changes it. The clock is read only for a call that
//! waits (pending at its first poll, timed from there); one ready at once is sampled as fast.
//!
//! Reused from tower: the rejection error [`Overloaded`] (so stacks that map tower's
//! `LoadShed` map this one too). tower's `LoadShed` sheds only when the inner service is not
//! ready and has no priorities, so the admission is written here.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use lift::middleware::load_shed::{LoadShedLayer, Priority};
//!
//! let layer = LoadShedLayer::builder()
//!     .initial_limit(32)
//!     .latency_target(Duration::from_millis(300))
//!     .classify(|req: &lift::Request| match req.uri().path() {
//!         p if p.starts_with("/health") => Priority::Critical,
//!         p if p.starts_with("/reports") => Priority::Low,
//!         _ => Priority::Normal,
//!     })
//!     .build()
//!     .unwrap();
//! let app = lift::App::new().layer(layer);
//! ```

mod error;
mod future;
mod layer;
mod limit;
mod priority;
mod service;

pub use error::InvalidConfig;
pub use future::ResponseFuture;
pub use layer::{LoadShedBuilder, LoadShedLayer};
pub use limit::AdaptiveLimit;
pub use priority::{ClassifyPriority, HealthIsCritical, Priority};
pub use service::LoadShed;
pub use tower::load_shed::error::Overloaded;
