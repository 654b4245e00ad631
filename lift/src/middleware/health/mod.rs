//! Health checks and the `/health` endpoints.
//!
//! [`HealthChecks`] runs named [`Check`]s in parallel, each with its own timeout, and
//! caches the results for a TTL (one run serves a burst of callers). A failing **critical**
//! check makes the service unhealthy; a failing non-critical one only degrades it.
//!
//! | endpoint         | runs                 | 200 when                 | 503 when                 |
//! |------------------|----------------------|--------------------------|--------------------------|
//! | `/health`        | every check          | ok or degraded           | a critical check failed  |
//! | `/health/live`   | nothing              | the process answers      | never                    |
//! | `/health/ready`  | critical checks      | every critical check ok  | a critical check failed  |
//!
//! `/health` and `/health/ready` answer a [`HealthReport`]:
//!
//! ```json
//! {"status":"degraded","checks":[
//!   {"name":"dynamodb","status":"ok","critical":true,"duration_ms":12},
//!   {"name":"cache","status":"timeout","critical":false,"duration_ms":500,"error":"no answer within 500 ms"}]}
//! ```
//!
//! Serve them with [`HealthLayer`] (a tower layer that answers those paths and passes
//! everything else on, so it works in Lift's App, axum and lambda_http alike) or as Lift
//! routes with [`HealthChecks::routes`]. With feature `dynamodb`, [`DynamoDbCheck`] checks
//! that a table is reachable.
//!
//! Reused from tower and tokio: `tokio::time::timeout` per check; the endpoints are a plain
//! tower `Service`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use lift::middleware::health::{check_fn, Check, HealthChecks, HealthLayer};
//!
//! let checks = HealthChecks::builder()
//!     .check(Check::critical("ledger", check_fn(|| async { Ok(()) })))
//!     .check(Check::non_critical("fx-rates", check_fn(|| async { Ok(()) })).timeout(Duration::from_millis(300)))
//!     .cache_ttl(Duration::from_secs(10))
//!     .build();
//! let app = lift::App::new().layer(HealthLayer::new(checks));
//! ```

mod check;
mod checks;
#[cfg(feature = "dynamodb")]
mod dynamodb;
mod endpoint;
mod future;
mod layer;
mod report;
mod routes;
mod service;

pub use check::{check_fn, Check, CheckFn, HealthCheck};
pub use checks::{HealthChecks, HealthChecksBuilder};
#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoDbCheck;
pub use future::ResponseFuture;
pub use layer::HealthLayer;
pub use report::{CheckReport, CheckStatus, HealthReport, Status};
pub use service::Health;
