//! Lift's middleware: each one a `tower::Layer` plus its `Service`, so it works in Lift's
//! [`App`](crate::App), lambda_http, axum and hyper alike. Each sits behind a cargo feature.

#[cfg(feature = "observability")]
pub mod logging;
#[cfg(feature = "observability")]
pub mod metrics;
#[cfg(feature = "observability")]
pub mod xray;

#[cfg(feature = "resilience")]
pub mod bulkhead;
#[cfg(feature = "resilience")]
pub mod circuit_breaker;
#[cfg(feature = "resilience")]
pub mod load_shed;
#[cfg(feature = "resilience")]
pub mod retry;
#[cfg(feature = "resilience")]
pub mod timeout;

#[cfg(feature = "health")]
pub mod health;

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "idempotency")]
pub mod idempotency;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "security-headers")]
pub mod security_headers;
