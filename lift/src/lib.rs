//! Lift: a middleware framework for AWS Lambda services that handle money, health data
//! and many tenants at once.
//!
//! # Quick start
//!
//! ```no_run
//! use lift::{App, Request, Response, Error};
//!
//! async fn hello(req: Request) -> Result<Response, Error> {
//!     let name = lift::path_param(&req, "name").unwrap_or("world").to_owned();
//!     Ok(lift::json_response(http::StatusCode::OK, &serde_json::json!({ "hello": name })))
//! }
//!
//! # async fn run() -> Result<(), lift::Error> {
//! let app = App::new().get("/hello/:name", hello);
//! app.run_lambda().await.map_err(lift::Error::internal)?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod app;
#[cfg(any(feature = "disaster", feature = "protection"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "disaster", feature = "protection"))))]
pub mod aws;
pub mod body;
#[cfg(any(feature = "threat", feature = "compliance", feature = "protection", feature = "idempotency"))]
pub(crate) mod buffered;
pub mod config;
pub mod context;
#[cfg(feature = "disaster")]
#[cfg_attr(docsrs, doc(cfg(feature = "disaster")))]
pub mod disaster;
pub mod error;
pub mod event;
pub(crate) mod hex;
#[cfg(feature = "observability")]
pub(crate) mod json;
pub mod middleware;
#[cfg(any(feature = "observability", feature = "audit"))]
// With `audit` alone, only `scrub` itself is used (for the audit entry's path).
#[cfg_attr(not(feature = "observability"), allow(dead_code, unreachable_pub))]
pub(crate) mod scrub;
#[cfg(any(
    feature = "secrets",
    feature = "protection",
    feature = "audit",
    feature = "threat",
    feature = "compliance"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "secrets",
        feature = "protection",
        feature = "audit",
        feature = "threat",
        feature = "compliance"
    )))
)]
pub mod security;
#[cfg(any(feature = "observability", feature = "protection", feature = "audit"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "observability", feature = "protection", feature = "audit"))))]
pub mod sensitive;
#[cfg(feature = "resilience")]
pub(crate) mod sharded;
pub mod stack;
pub mod store;
#[cfg(feature = "dynamodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
pub mod tenant;
#[cfg(all(test, any(feature = "idempotency", feature = "audit")))]
pub(crate) mod test_support;
#[cfg(any(feature = "auth", feature = "threat"))]
mod tls;
#[cfg(feature = "observability")]
pub(crate) mod trace;
#[cfg(any(feature = "resilience", feature = "rate-limit"))]
pub(crate) mod unscoped;

pub use app::{App, RouteGroup};
pub use body::{json_response, read_json, Body, Request, Response};
/// How much of a request body a layer that reads it whole (idempotency, compliance, threat
/// detection, residency) buffers before answering 413.
#[cfg(any(feature = "threat", feature = "compliance", feature = "protection", feature = "idempotency"))]
pub use buffered::BodyLimit;
pub use context::{
    client_ip, path_param, ClientIp, Context, Invocation, MatchedRoute, PathParams, Principal,
};
pub use error::Error;
pub use stack::{stack, Stack, StackBuilder};

/// A boxed error, as tower and hyper use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Compiles the README's quick start as a doctest.
#[cfg(all(doctest, feature = "auth", feature = "resilience", feature = "observability", feature = "lambda"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
