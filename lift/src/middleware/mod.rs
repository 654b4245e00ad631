//! Lift's middleware: each one a `tower::Layer` plus its `Service`, so it works in Lift's
//! [`App`](crate::App), lambda_http, axum and hyper alike. Each sits behind a cargo feature.
//!
//! # The order
//!
//! Layers read what outer layers put in the request, so their order matters. From the
//! outermost to the handler:
//!
//! 1. **Request id and observability**: the request log, metrics and X-Ray see every
//!    request, refusals included ([`App`](crate::App) sets the request id before any layer).
//!    Security headers go here too, so a 401 carries them.
//! 2. **JWT** ([`auth::JwtLayer`]): verifies the token and puts the principal, and with it
//!    the tenant, in the request's [`Context`](crate::Context). A service's own
//!    authentication for requests the JWT layer exempts (a development tenant header) goes
//!    just inside it.
//! 3. **Per-tenant resilience and rate limits**: the per-tenant bulkhead, circuit breaker and
//!    rate limits read that tenant. Mounted outside the JWT layer they see none: the bulkhead
//!    then applies no per-tenant limit, the breaker and the rate limit put every tenant under
//!    one key. Each counts such requests (`unscoped_requests()`) and warns once. The
//!    deadline-aware timeout comes last, so it bounds the work and not the wait for a permit.
//!    Fault injection ([`chaos`], drills only) sits inside the timeout, so every layer
//!    above sees its latency and errors as a caller would.
//! 4. **Per route, the role or scope check** ([`auth::require_scope`] and friends, on the
//!    route group): a caller without the right is refused here, before anything is stored.
//! 5. **Compliance, audit and protection** (compliance rules, then the audit trail, threat
//!    detection, data residency): compliance sits outside the audit trail, so its rules see
//!    each invocation's audit entry and the trail records the request compliance sanitized.
//! 6. **Idempotency**, innermost, just outside the handler: every attempt, a replay or not,
//!    passes every check above (revoked tokens and blocklists, compliance blocks, residency)
//!    and is audited, the replay marked as one; idempotency only keeps the handler from
//!    running twice. Outside those layers, a replay would be answered before any of them
//!    ran: a revoked token would still get its stored answer, with no audit entry. Records
//!    are scoped to the principal, so it runs after authorization, and a refusal from an
//!    outer layer never reaches it, so refusals are never stored. Retries count as requests
//!    everywhere outside it: in the rate limits, and in threat detection's behaviour
//!    counters (a retried 401 is another failed login).
//! 7. The handler.
//!
//! [`App::layer`](crate::App::layer) and [`RouteGroup::layer`](crate::RouteGroup::layer)
//! make the *last* layer added the outermost; `tower::ServiceBuilder` makes the *first* one
//! outermost. The preset [`lift::stack()`](crate::stack()) applies the order whatever order
//! the layers are named in, and [`LiftServiceBuilderExt`] names Lift's layers as
//! `ServiceBuilder` methods for axum and lambda_http.
//!
//! # Examples
//!
//! The whole stack on Lift's App:
//!
//! ```no_run
//! # #[cfg(all(feature = "full"))]
//! # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::BoxError> {
//! use std::time::Duration;
//! use lift::middleware::auth::{require_scope, Issuer, JwtLayer};
//! use lift::middleware::bulkhead::BulkheadLayer;
//! use lift::middleware::circuit_breaker::CircuitBreakerLayer;
//! use lift::middleware::idempotency::IdempotencyLayer;
//! use lift::middleware::logging::RequestLogLayer;
//! use lift::middleware::metrics::MetricsLayer;
//! use lift::middleware::rate_limit::{RateLimitKey, RateLimitLayer};
//! use lift::middleware::xray::XrayLayer;
//! use lift::security::audit::{AuditLayer, AuditTrail};
//! use lift::security::compliance::{ComplianceLayer, ComplianceRecorder};
//! use lift::security::threat::ThreatLayer;
//! use lift::{App, Request, Response, RouteGroup};
//!
//! async fn create(_req: Request) -> Response { Response::default() }
//! async fn get(_req: Request) -> Response { Response::default() }
//!
//! let stack = lift::stack()
//!     .request_log(RequestLogLayer::new())
//!     .metrics(MetricsLayer::builder().namespace("Payments").build()?)
//!     .xray(XrayLayer::from_env()?)
//!     .jwt(JwtLayer::from_env()?)
//!     .tenant_bulkhead(BulkheadLayer::builder().per_tenant(16).build()?)
//!     .tenant_breaker(CircuitBreakerLayer::per_tenant().build()?)
//!     .rate_limit(
//!         RateLimitLayer::builder()
//!             .client(client.clone())
//!             .key(RateLimitKey::Tenant)
//!             .limit(100)
//!             .window(Duration::from_secs(60))
//!             .build()?,
//!     )
//!     .compliance(ComplianceLayer::new(ComplianceRecorder::new()))
//!     .audit(AuditLayer::new(AuditTrail::builder().client(client.clone()).build()?))
//!     .threat(ThreatLayer::new())
//!     .idempotency(IdempotencyLayer::builder().client(client.clone()).build()?)
//!     .build()?;
//! let writes = stack.guard(RouteGroup::new("/payments").post("/", create), require_scope("payments:write"));
//! let reads = stack.guard(RouteGroup::new("/payments").get("/:id", get), require_scope("payments:read"));
//! let app = stack.apply(App::new().group(writes).group(reads));
//! app.run_lambda().await?;
//! # Ok(()) }
//! ```
//!
//! The same order in a `tower::ServiceBuilder`, for axum or lambda_http (the first layer is
//! the outermost; the scope check and what follows it belong on the routes that need them):
//!
//! ```
//! # #[cfg(all(feature = "observability", feature = "auth", feature = "resilience"))]
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lift::middleware::auth::{require_scope, JwtLayer};
//! use lift::middleware::bulkhead::BulkheadLayer;
//! use lift::middleware::logging::RequestLogLayer;
//! use lift::middleware::LiftServiceBuilderExt;
//!
//! let layers = tower::ServiceBuilder::new()
//!     .request_log(RequestLogLayer::new())
//!     .jwt(JwtLayer::from_env()?)
//!     .tenant_bulkhead(BulkheadLayer::builder().per_tenant(16).build()?)
//!     .require(require_scope("payments:write"));
//! # let _ = layers; Ok(()) }
//! ```

mod ext;
pub use ext::LiftServiceBuilderExt;

#[cfg(feature = "observability")]
#[cfg_attr(docsrs, doc(cfg(feature = "observability")))]
pub mod logging;
#[cfg(feature = "observability")]
#[cfg_attr(docsrs, doc(cfg(feature = "observability")))]
pub mod metrics;
#[cfg(feature = "observability")]
#[cfg_attr(docsrs, doc(cfg(feature = "observability")))]
pub mod xray;

#[cfg(feature = "resilience")]
#[cfg_attr(docsrs, doc(cfg(feature = "resilience")))]
pub mod bulkhead;
#[cfg(feature = "resilience")]
#[cfg_attr(docsrs, doc(cfg(feature = "resilience")))]
pub mod circuit_breaker;
#[cfg(feature = "resilience")]
#[cfg_attr(docsrs, doc(cfg(feature = "resilience")))]
pub mod load_shed;
#[cfg(feature = "resilience")]
#[cfg_attr(docsrs, doc(cfg(feature = "resilience")))]
pub mod retry;
#[cfg(feature = "resilience")]
#[cfg_attr(docsrs, doc(cfg(feature = "resilience")))]
pub mod timeout;

#[cfg(feature = "health")]
#[cfg_attr(docsrs, doc(cfg(feature = "health")))]
pub mod health;

#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
pub mod auth;
#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub mod idempotency;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod rate_limit;
#[cfg(feature = "security-headers")]
#[cfg_attr(docsrs, doc(cfg(feature = "security-headers")))]
pub mod security_headers;

#[cfg(feature = "chaos")]
#[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
pub mod chaos;
