//! The recommended stack as one preset: [`Stack`], built by [`stack()`].
//!
//! The order is written once, in [`lift::middleware`](crate::middleware#the-order); this
//! preset applies it, so a service names the layers it has and gets them in that order
//! whatever order it names them in.

use std::sync::Arc;

use crate::app::App;
use crate::config::InvalidConfig;
use crate::RouteGroup;

type AppLayer = Box<dyn FnOnce(App) -> App + Send>;
type GroupLayer = Arc<dyn Fn(RouteGroup) -> RouteGroup + Send + Sync>;

/// Where an app-wide layer sits, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
// Which slots a build uses depends on its features.
#[allow(dead_code)]
enum Slot {
    RequestLog,
    Metrics,
    Xray,
    SecurityHeaders,
    Jwt,
    Authenticate,
    TenantBulkhead,
    TenantBreaker,
    RateLimit,
    Timeout,
    Chaos,
}

/// Where a per-route layer sits, outermost first (the scope check comes before all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
// Which slots a build uses depends on its features.
#[allow(dead_code)]
enum RouteSlot {
    // Outside the audit trail: the invocation-phase rules read the entry the audit layer
    // puts in the response (PCI-DSS 10.2.1, GDPR Art. 17), and the trail records the
    // request as compliance sanitized it.
    Compliance,
    Audit,
    Threat,
    Residency,
    // Innermost, just outside the handler: a completed record is answered without calling
    // what is inside, so every check outside it (revoked tokens and blocklists, compliance
    // blocks, residency) runs on a replay as on a first attempt, and the trail records
    // every attempt. A refusal from those layers never reaches it, so it is never stored.
    Idempotency,
}

/// A builder for the recommended stack; the same as [`Stack::builder`].
///
/// # Examples
///
/// ```
/// let stack = lift::stack().build().unwrap();
/// let app = stack.apply(lift::App::new());
/// # let _ = app;
/// ```
pub fn stack() -> StackBuilder {
    Stack::builder()
}

/// The recommended stack: each layer a service has, in the documented order.
///
/// App-wide layers ([`apply`](Self::apply)): request log, metrics, X-Ray, security headers,
/// JWT, a service's own authentication for requests the JWT layer exempts, then the
/// per-tenant bulkhead, breaker and rate limits, then the timeout, then (with the `chaos` feature) fault injection. Per-route layers
/// ([`guard`](Self::guard), [`routes`](Self::routes)): the route group's role or scope check,
/// then compliance, audit, threat detection, residency and idempotency, then the handler.
/// Idempotency comes last so that a replayed answer passes every check and is audited like
/// a first attempt: it only keeps the handler from running twice.
///
/// # Examples
///
/// ```
/// # #[cfg(all(feature = "auth", feature = "resilience"))]
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use lift::middleware::auth::{require_scope, Issuer, JwtLayer};
/// use lift::middleware::bulkhead::BulkheadLayer;
/// use lift::{App, Request, Response, RouteGroup};
///
/// async fn create(_req: Request) -> Response { Response::default() }
///
/// let jwt = JwtLayer::builder()
///     .issuer(Issuer::jwks("https://id.example.com", "https://id.example.com/.well-known/jwks.json"))
///     .build()?;
/// let stack = lift::stack()
///     // Named in any order: the preset puts the bulkhead inside the JWT layer.
///     .tenant_bulkhead(BulkheadLayer::builder().per_tenant(8).build()?)
///     .jwt(jwt)
///     .build()?;
/// let payments = stack.guard(RouteGroup::new("/payments").post("/", create), require_scope("payments:write"));
/// let app = stack.apply(App::new().group(payments));
/// # let _ = app; Ok(()) }
/// ```
#[must_use]
pub struct Stack {
    app: Vec<(Slot, AppLayer)>,
    routes: Vec<(RouteSlot, GroupLayer)>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("app", &self.app.iter().map(|(slot, _)| slot).collect::<Vec<_>>())
            .field("routes", &self.routes.iter().map(|(slot, _)| slot).collect::<Vec<_>>())
            .finish()
    }
}

impl Stack {
    /// A builder with no layers.
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    /// Wraps the app in the app-wide layers: the outermost first, so the JWT layer's
    /// tenant is set before any per-tenant layer reads it.
    pub fn apply(self, app: App) -> App {
        // `App::layer` makes the last layer added the outermost: add the innermost first.
        self.app.into_iter().rev().fold(app, |app, (_, layer)| layer(app))
    }

    /// Wraps every route of `group` in the per-route layers (compliance, audit, threat
    /// detection, residency, idempotency), without a role or scope check.
    pub fn routes(&self, group: RouteGroup) -> RouteGroup {
        self.routes.iter().rev().fold(group, |group, (_, layer)| layer(group))
    }

    /// Wraps every route of `group` in `require`, then in the per-route layers: a caller
    /// without the role or scope is refused before idempotency or audit see the request.
    #[cfg(feature = "auth")]
    pub fn guard(&self, group: RouteGroup, require: crate::middleware::auth::RequireLayer) -> RouteGroup {
        self.routes(group).layer(require)
    }
}

/// Configures a [`Stack`]: each layer optional, each method callable in any order.
///
/// [`build`](Self::build) refuses a per-tenant bulkhead or breaker without a JWT layer: it
/// would see no tenant and limit no tenant.
#[derive(Default)]
#[must_use]
pub struct StackBuilder {
    app: Vec<(Slot, AppLayer)>,
    routes: Vec<(RouteSlot, GroupLayer)>,
    tenant_layers: usize,
    jwt: bool,
    authenticates: bool,
}

impl std::fmt::Debug for StackBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackBuilder").field("jwt", &self.jwt).finish_non_exhaustive()
    }
}

#[cfg_attr(
    not(all(feature = "observability", feature = "auth", feature = "resilience", feature = "idempotency")),
    allow(dead_code)
)]
impl StackBuilder {
    fn app_layer(mut self, slot: Slot, layer: impl FnOnce(App) -> App + Send + 'static) -> Self {
        self.app.push((slot, Box::new(layer)));
        self
    }

    fn route_layer(
        mut self,
        slot: RouteSlot,
        layer: impl Fn(RouteGroup) -> RouteGroup + Send + Sync + 'static,
    ) -> Self {
        self.routes.push((slot, Arc::new(layer)));
        self
    }

    /// The request log ([`RequestLogLayer`](crate::middleware::logging::RequestLogLayer)).
    #[cfg(feature = "observability")]
    pub fn request_log(self, layer: crate::middleware::logging::RequestLogLayer) -> Self {
        self.app_layer(Slot::RequestLog, move |app| app.layer(layer))
    }

    /// CloudWatch EMF metrics ([`MetricsLayer`](crate::middleware::metrics::MetricsLayer)).
    #[cfg(feature = "observability")]
    pub fn metrics(self, layer: crate::middleware::metrics::MetricsLayer) -> Self {
        self.app_layer(Slot::Metrics, move |app| app.layer(layer))
    }

    /// X-Ray tracing ([`XrayLayer`](crate::middleware::xray::XrayLayer)).
    #[cfg(feature = "observability")]
    pub fn xray(self, layer: crate::middleware::xray::XrayLayer) -> Self {
        self.app_layer(Slot::Xray, move |app| app.layer(layer))
    }

    /// Security headers and CORS
    /// ([`SecurityHeadersLayer`](crate::middleware::security_headers::SecurityHeadersLayer)),
    /// outside the JWT layer so refusals carry them too.
    #[cfg(feature = "security-headers")]
    pub fn security_headers(self, layer: crate::middleware::security_headers::SecurityHeadersLayer) -> Self {
        self.app_layer(Slot::SecurityHeaders, move |app| app.layer(layer))
    }

    /// Authentication ([`JwtLayer`](crate::middleware::auth::JwtLayer)): sets the principal
    /// and the tenant.
    #[cfg(feature = "auth")]
    pub fn jwt(mut self, layer: crate::middleware::auth::JwtLayer) -> Self {
        self.jwt = true;
        self.app_layer(Slot::Jwt, move |app| app.layer(layer))
    }

    /// A service's own authentication, just inside the JWT layer: it sets the principal of
    /// requests the JWT layer let through without one (exempt ones, such as a development
    /// tenant header), so the per-tenant layers see their tenant too. It counts as setting
    /// the tenant for [`build`](Self::build)'s check.
    pub fn authenticate<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<crate::app::Route> + Send + 'static,
        L::Service: tower::Service<crate::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<crate::Request>>::Response: crate::app::IntoResponse + 'static,
        <L::Service as tower::Service<crate::Request>>::Error: Into<crate::BoxError> + 'static,
        <L::Service as tower::Service<crate::Request>>::Future: Send + 'static,
    {
        self.authenticates = true;
        self.app_layer(Slot::Authenticate, move |app| app.layer(layer))
    }

    /// A per-tenant bulkhead ([`BulkheadLayer`](crate::middleware::bulkhead::BulkheadLayer)).
    #[cfg(feature = "resilience")]
    pub fn tenant_bulkhead(mut self, layer: crate::middleware::bulkhead::BulkheadLayer) -> Self {
        self.tenant_layers += 1;
        self.app_layer(Slot::TenantBulkhead, move |app| app.layer(layer))
    }

    /// A per-tenant circuit breaker
    /// ([`CircuitBreakerLayer::per_tenant`](crate::middleware::circuit_breaker::CircuitBreakerLayer::per_tenant)).
    #[cfg(feature = "resilience")]
    pub fn tenant_breaker(
        mut self,
        layer: crate::middleware::circuit_breaker::CircuitBreakerLayer<
            crate::middleware::circuit_breaker::PerTenant,
            Option<String>,
        >,
    ) -> Self {
        self.tenant_layers += 1;
        self.app_layer(Slot::TenantBreaker, move |app| app.layer(layer))
    }

    /// A rate limit ([`RateLimitLayer`](crate::middleware::rate_limit::RateLimitLayer)); call
    /// it once per limit (per tenant, per user, per IP).
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit(self, layer: crate::middleware::rate_limit::RateLimitLayer) -> Self {
        self.app_layer(Slot::RateLimit, move |app| app.layer(layer))
    }

    /// The deadline-aware timeout ([`TimeoutLayer`](crate::middleware::timeout::TimeoutLayer)),
    /// innermost of the app-wide layers: it bounds the handler and the per-route layers,
    /// not the time a request waits for a bulkhead permit.
    #[cfg(feature = "resilience")]
    pub fn timeout(self, layer: crate::middleware::timeout::TimeoutLayer) -> Self {
        self.app_layer(Slot::Timeout, move |app| app.layer(layer))
    }

    /// Fault injection ([`ChaosLayer`](crate::middleware::chaos::ChaosLayer)), innermost of
    /// the app-wide layers and inside the timeout: the request log, metrics, X-Ray and the
    /// timeout see its latency and errors as callers do, and authentication still refuses
    /// a caller without a token.
    #[cfg(feature = "chaos")]
    pub fn chaos(self, layer: crate::middleware::chaos::ChaosLayer) -> Self {
        self.app_layer(Slot::Chaos, move |app| app.layer(layer))
    }

    /// Idempotency records ([`IdempotencyLayer`](crate::middleware::idempotency::IdempotencyLayer)),
    /// per route, innermost: after the route's scope check and every other per-route layer,
    /// so a replay is checked and audited as its first attempt was.
    #[cfg(feature = "idempotency")]
    pub fn idempotency(self, layer: crate::middleware::idempotency::IdempotencyLayer) -> Self {
        self.route_layer(RouteSlot::Idempotency, move |group| group.layer(layer.clone()))
    }

    /// The audit trail ([`AuditLayer`](crate::security::audit::AuditLayer)), per route.
    #[cfg(feature = "audit")]
    pub fn audit(self, layer: crate::security::audit::AuditLayer) -> Self {
        self.route_layer(RouteSlot::Audit, move |group| group.layer(layer.clone()))
    }

    /// Compliance rules ([`ComplianceLayer`](crate::security::compliance::ComplianceLayer)),
    /// per route.
    #[cfg(feature = "compliance")]
    pub fn compliance(self, layer: crate::security::compliance::ComplianceLayer) -> Self {
        self.route_layer(RouteSlot::Compliance, move |group| group.layer(layer.clone()))
    }

    /// Threat detection ([`ThreatLayer`](crate::security::threat::ThreatLayer)), per route.
    #[cfg(feature = "threat")]
    pub fn threat(self, layer: crate::security::threat::ThreatLayer) -> Self {
        self.route_layer(RouteSlot::Threat, move |group| group.layer(layer.clone()))
    }

    /// Data residency ([`ResidencyLayer`](crate::security::protection::ResidencyLayer)), per
    /// route.
    #[cfg(feature = "protection")]
    pub fn residency(self, layer: crate::security::protection::ResidencyLayer) -> Self {
        self.route_layer(RouteSlot::Residency, move |group| group.layer(layer.clone()))
    }

    /// Puts the layers in the documented order.
    ///
    /// # Errors
    /// [`InvalidConfig`] when a per-tenant bulkhead or breaker is set without a JWT layer
    /// or an [`authenticate`](Self::authenticate) layer.
    pub fn build(mut self) -> Result<Stack, InvalidConfig> {
        if self.tenant_layers > 0 && !self.jwt && !self.authenticates {
            return Err(InvalidConfig::new(
                "stack",
                "a per-tenant bulkhead or breaker needs a jwt or authenticate layer to set the tenant",
            ));
        }
        // Stable: layers of one slot keep the order they were given in (the first outermost).
        self.app.sort_by_key(|(slot, _)| *slot);
        self.routes.sort_by_key(|(slot, _)| *slot);
        Ok(Stack { app: self.app, routes: self.routes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_stack_builds_and_leaves_the_app_alone() {
        let stack = stack().build().unwrap();
        assert_eq!(format!("{stack:?}"), "Stack { app: [], routes: [] }");
        let _app = stack.apply(App::new());
    }

    #[cfg(feature = "resilience")]
    #[test]
    fn a_per_tenant_layer_without_jwt_is_refused() {
        let bulkhead = crate::middleware::bulkhead::BulkheadLayer::builder().per_tenant(2).build().unwrap();
        let err = stack().tenant_bulkhead(bulkhead).build().unwrap_err();
        assert_eq!(err.component(), "stack");
        assert!(err.reason().contains("jwt"), "{err}");
    }

    #[cfg(feature = "resilience")]
    #[test]
    fn an_authenticate_layer_sets_the_tenant_and_sits_inside_jwt_before_the_per_tenant_layers() {
        use crate::middleware::bulkhead::BulkheadLayer;
        use crate::middleware::timeout::TimeoutLayer;

        let bulkhead = || BulkheadLayer::builder().per_tenant(2).build().unwrap();
        // Named in the wrong order on purpose: the preset sorts them.
        let stack = stack()
            .timeout(TimeoutLayer::new(std::time::Duration::from_secs(1)))
            .tenant_bulkhead(bulkhead())
            .authenticate(tower::layer::util::Identity::new())
            .build()
            .expect("an authenticate layer sets the tenant");
        assert_eq!(
            format!("{stack:?}"),
            "Stack { app: [Authenticate, TenantBulkhead, Timeout], routes: [] }"
        );
        // Without it or a JWT layer, still refused.
        assert!(stack_without_auth(bulkhead()).is_err());
    }

    /// The per-route layers named outermost-first as the order used to be: the preset puts
    /// idempotency innermost, so a replay passes compliance, audit, threat detection and
    /// residency before it is answered.
    #[cfg(all(
        feature = "idempotency",
        feature = "audit",
        feature = "compliance",
        feature = "threat",
        feature = "protection"
    ))]
    #[test]
    fn idempotency_is_the_innermost_per_route_layer() {
        use crate::middleware::idempotency::IdempotencyLayer;
        use crate::security::audit::{AuditLayer, AuditTrail};
        use crate::security::compliance::{ComplianceLayer, ComplianceRecorder};
        use crate::security::protection::{ResidencyLayer, ResidencyRules};
        use crate::security::threat::ThreatLayer;

        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let trail = AuditTrail::builder().client(client.clone()).table("audit").build().unwrap();
        let stack = stack()
            .idempotency(IdempotencyLayer::builder().client(client).table("idem").build().unwrap())
            .compliance(ComplianceLayer::new(ComplianceRecorder::new()))
            .audit(AuditLayer::new(trail))
            .threat(ThreatLayer::new())
            .residency(ResidencyLayer::new(ResidencyRules::new().allow("eu", ["eu-west-1"])))
            .build()
            .unwrap();
        assert_eq!(
            format!("{stack:?}"),
            "Stack { app: [], routes: [Compliance, Audit, Threat, Residency, Idempotency] }"
        );
    }

    #[cfg(feature = "resilience")]
    fn stack_without_auth(
        bulkhead: crate::middleware::bulkhead::BulkheadLayer,
    ) -> Result<Stack, InvalidConfig> {
        stack().tenant_bulkhead(bulkhead).build()
    }
}
