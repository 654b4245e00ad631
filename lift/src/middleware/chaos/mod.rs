//! Fault injection inside the function, as failure-lambda does for Node: added latency, an
//! error status, an exception (the handler fails), and a denylist of downstream hosts, each
//! at a rate. Deployment drills use it to make a bad version of a service on purpose.
//!
//! It is **off by default** and exists only in builds with the `chaos` feature: without the
//! feature this module is not compiled, so no variable can turn it on in a production build.
//! With the feature, [`ChaosBuilder::from_env`] reads:
//!
//! | Variable | |
//! |---|---|
//! | `LIFT_CHAOS_ENABLED` | `true` turns the configured faults on; unset or `false` keeps them off |
//! | `LIFT_CHAOS_LATENCY_MS` | added latency: `300`, or a range `100-400` drawn uniformly |
//! | `LIFT_CHAOS_LATENCY_RATE` | share of requests delayed (default 1 when a latency is set) |
//! | `LIFT_CHAOS_ERROR_RATE` | share of requests answered with the error status, the handler not run |
//! | `LIFT_CHAOS_ERROR_STATUS` | that status, 400–599 (default 500) |
//! | `LIFT_CHAOS_EXCEPTION_RATE` | share of requests whose handler fails with [`InjectedFault`] (a 500) |
//! | `LIFT_CHAOS_DENYLIST` | comma-separated host patterns (`*` matches any run) that downstream calls may not reach |
//! | `LIFT_CHAOS_SEED` | a seed, for a repeatable sequence of draws |
//!
//! `LIFT_CHAOS_ENABLED=true` with no fault set is refused, so a misspelt variable is not
//! a drill that silently injects nothing. The faults can be changed while the function
//! runs through the layer's [`ChaosSwitch`] (a drill, or a parameter the service polls).
//!
//! Each request draws independently: the error status or the exception first (the handler
//! is then not called, so an injected failure stores nothing), and the latency, added to
//! the answer before it leaves the layer. Mount it innermost of the app-wide layers
//! ([`lift::stack()`](crate::stack())'s `chaos` slot), so the request log, metrics and
//! X-Ray see the injected latency and errors as callers do. The denylist acts on AWS SDK
//! clients through [`ChaosLayer::interceptor`] (with the `dynamodb` feature) and on any
//! other client through [`ChaosSwitch::check_host`].
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use http::StatusCode;
//! use lift::middleware::chaos::ChaosLayer;
//!
//! let chaos = ChaosLayer::builder()
//!     .error(StatusCode::INTERNAL_SERVER_ERROR, 0.2)
//!     .latency(Duration::from_millis(100), Duration::from_millis(400), 0.5)
//!     .deny_host("*.s3.amazonaws.com")
//!     .build()
//!     .unwrap();
//! let switch = chaos.switch();
//! let app = lift::App::new().layer(chaos);
//! switch.disable(); // the faults stop for the next request
//! # let _ = app;
//! ```

mod denylist;
mod dice;
mod error;
mod faults;
mod future;
#[cfg(feature = "dynamodb")]
mod interceptor;
mod layer;
mod service;
mod switch;

pub use crate::config::InvalidConfig;
pub use denylist::Denylist;
pub use error::{DeniedHost, InjectedFault};
pub use faults::Faults;
pub use future::ResponseFuture;
#[cfg(feature = "dynamodb")]
pub use interceptor::ChaosInterceptor;
pub use layer::{ChaosBuilder, ChaosLayer};
pub use service::Chaos;
pub use switch::{ChaosStats, ChaosSwitch};
