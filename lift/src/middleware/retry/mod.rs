//! Retries with exponential backoff and full jitter, under a retry budget, for idempotent
//! requests only, and never past the Lambda deadline.
//!
//! A failed call is retried when all of these hold:
//!
//! - attempts are left (`max_attempts`, the first included);
//! - the [`ClassifyRetry`] says so: [`Retryable::IfIdempotent`] (the default
//!   [`TransientErrors`] says this for errors and 502/503/504) only for idempotent
//!   requests — GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or any request with an
//!   `Idempotency-Key` ([`is_idempotent`]) — and [`Retryable::Yes`] for any request; a POST
//!   without a key is never retried by default;
//! - the wait ([`Backoff`]) plus an attempt as long as the last one ends before the Lambda
//!   deadline minus a margin (the deadline is read once, from
//!   [`lift::Context::remaining`](crate::Context::remaining), see
//!   [`timeout::remaining`](crate::middleware::timeout::remaining));
//! - the retry budget allows it.
//!
//! Otherwise the last outcome is returned as it is: this layer adds no error of its own.
//!
//! To send a request again it must be copied before the first attempt: `http::Request<B>`
//! with `B: Clone` ([`lift::Body`](crate::Body) is). The copy packs the URI and headers into
//! one buffer instead of cloning each header, so the first attempt stays cheap; the request
//! is rebuilt from it only when a retry is due.
//!
//! Reused from tower: the retry budget is tower's [`Budget`](tower::retry::budget::Budget)
//! trait, [`TpsBudget`](tower::retry::budget::TpsBudget) by default (every request deposits,
//! every retry withdraws). tower's `Retry` service is not used because its `Policy` cannot
//! see the request's deadline when it is cloned and clones the whole service per call.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use lift::middleware::retry::{Backoff, RetryLayer};
//! use lift::middleware::timeout::TimeoutLayer;
//!
//! // Each attempt gets its own timeout; the retry sits outside it.
//! let app = lift::App::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!     .layer(RetryLayer::builder().max_attempts(3).build().unwrap());
//! ```

mod backoff;
mod classify;
mod copy;
mod error;
mod future;
mod layer;
mod service;

pub use backoff::Backoff;
pub use classify::{is_idempotent, ClassifyRetry, Retryable, TransientErrors, IDEMPOTENCY_KEY};
pub use error::InvalidConfig;
pub use future::ResponseFuture;
pub use layer::{RetryBuilder, RetryLayer};
pub use service::Retry;
