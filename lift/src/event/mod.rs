//! Lambda event sources and deterministic dispatch.
//!
//! One function can be triggered by API Gateway (REST and HTTP APIs), function URLs, ALB,
//! SQS, EventBridge (events and schedules) and DynamoDB Streams. A [`Dispatcher`] tells
//! each payload's kind by the shape AWS documents ([`EventKind::detect`]), then:
//!
//! - runs HTTP events through a tower service (the [`App`](crate::App)) and answers in
//!   the origin's response shape; a malformed HTTP event gets a 400 problem response;
//! - runs SQS messages one by one (or with bounded concurrency on standard queues) and
//!   reports failed ones in `batchItemFailures`; FIFO batches stop at the first failure;
//! - runs DynamoDB Streams records in order, stopping at and reporting the first failure;
//! - routes EventBridge events to the first [`EventRule`] that matches, and scheduled
//!   events to the [`on_schedule`](EventRouter::on_schedule) of their rule.
//!
//! Event types are `aws_lambda_events`'s. A handler panic counts as a failure of that
//! message or event, never a crash.
//!
//! # Examples
//!
//! ```no_run
//! use lift::event::{Dispatcher, EventRouter, EventRule};
//! use serde_json::json;
//!
//! # async fn run(app_service: lift::event::BoxHttpService) -> Result<(), lift::BoxError> {
//! let events = EventRouter::new()
//!     .on_sqs(|message| async move { Ok(()) })
//!     .on_event(EventRule::new(json!({"source": ["payments"]}))?, |event| async move { Ok(()) })
//!     .on_schedule("nightly-settlement", |_event| async { Ok(()) });
//! let dispatcher = Dispatcher::new(Some(app_service), events);
//! #[cfg(feature = "lambda")]
//! dispatcher.run().await?;
//! # Ok(())
//! # }
//! ```

mod detect;
mod dispatch;
mod dynamodb;
mod error;
mod eventbridge;
mod handler;
#[cfg(feature = "lambda")]
mod http;
mod matcher;
mod router;
mod rule;
mod sqs;

pub use detect::EventKind;
pub use dispatch::{BoxHttpService, Dispatcher};
pub use error::{EventError, HandlerPanic};
pub use handler::HandlerResult;
pub use router::EventRouter;
pub use rule::EventRule;
