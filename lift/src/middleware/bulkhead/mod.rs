//! A bulkhead: concurrency limits, global and per tenant, with a bounded wait.
//!
//! Each request takes a permit from its tenant's compartment (when a per-tenant limit is
//! set and the request's [`lift::Context`](crate::Context) has a tenant) and one from the
//! global compartment. When none is free it waits up to `max_wait`, then is rejected with
//! [`BulkheadFull`] (503 with `Retry-After`). Permits are freed when the response future
//! completes or is dropped, so a cancelled request never leaks a slot. One noisy tenant
//! fills its own compartment and no more.
//!
//! Reused from tower and tokio: the semantics of tower's `ConcurrencyLimit` (permits from a
//! `tokio::sync::Semaphore`, held until the response future ends). tower's layer takes
//! the permit in `poll_ready`, before the request and its tenant are known, and waits
//! without bound, so the per-tenant choice and the bounded wait are written here.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use lift::middleware::bulkhead::BulkheadLayer;
//!
//! let layer = BulkheadLayer::builder()
//!     .max_concurrent(100)
//!     .per_tenant(10)
//!     .max_wait(Duration::from_millis(20))
//!     .retry_after(Duration::from_secs(2))
//!     .build()
//!     .unwrap();
//! let app = lift::App::new().layer(layer);
//! ```

mod compartments;
mod error;
mod future;
mod layer;
mod service;

pub use error::{BulkheadFull, Compartment, InvalidConfig};
pub use future::ResponseFuture;
pub use layer::{BulkheadBuilder, BulkheadLayer};
pub use service::Bulkhead;
