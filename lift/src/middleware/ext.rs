//! [`LiftServiceBuilderExt`]: Lift's layers as `tower::ServiceBuilder` methods.

use tower::ServiceBuilder;

/// Lift's layers as methods of `tower::ServiceBuilder`, as tower-http's `ServiceBuilderExt`
/// does: each is `self.layer(..)`, so a stack for axum or lambda_http reads in the
/// documented order (the first call is the outermost layer; see [the order](super#the-order)).
///
/// # Examples
///
/// ```
/// # #[cfg(all(feature = "observability", feature = "auth", feature = "resilience"))]
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use lift::middleware::auth::{require_scope, Issuer, JwtLayer};
/// use lift::middleware::bulkhead::BulkheadLayer;
/// use lift::middleware::circuit_breaker::CircuitBreakerLayer;
/// use lift::middleware::logging::RequestLogLayer;
/// use lift::middleware::LiftServiceBuilderExt;
/// use tower::ServiceBuilder;
///
/// let jwt = JwtLayer::builder().issuer(Issuer::hs256("https://id.example.com", b"0123456789abcdef0123456789abcdef".to_vec()).any_audience()).build()?;
/// let stack = ServiceBuilder::new()
///     .request_log(RequestLogLayer::new())
///     .jwt(jwt)
///     .tenant_bulkhead(BulkheadLayer::builder().per_tenant(8).build()?)
///     .tenant_breaker(CircuitBreakerLayer::per_tenant().build()?)
///     .require(require_scope("payments:write"));
/// # let _ = stack; Ok(()) }
/// ```
pub trait LiftServiceBuilderExt<L>: sealed::Sealed {
    /// Adds [`RequestLogLayer`](super::logging::RequestLogLayer): one JSON line per request.
    #[cfg(feature = "observability")]
    fn request_log(
        self,
        layer: super::logging::RequestLogLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::logging::RequestLogLayer, L>>;

    /// Adds [`MetricsLayer`](super::metrics::MetricsLayer): CloudWatch EMF per request.
    #[cfg(feature = "observability")]
    fn metrics(
        self,
        layer: super::metrics::MetricsLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::metrics::MetricsLayer, L>>;

    /// Adds [`XrayLayer`](super::xray::XrayLayer): the trace header in and out, a segment.
    #[cfg(feature = "observability")]
    fn xray(
        self,
        layer: super::xray::XrayLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::xray::XrayLayer, L>>;

    /// Adds [`SecurityHeadersLayer`](super::security_headers::SecurityHeadersLayer).
    #[cfg(feature = "security-headers")]
    fn security_headers(
        self,
        layer: super::security_headers::SecurityHeadersLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::security_headers::SecurityHeadersLayer, L>>;

    /// Adds [`JwtLayer`](super::auth::JwtLayer), which sets the principal and the tenant
    /// every layer added after it reads.
    #[cfg(feature = "auth")]
    fn jwt(
        self,
        layer: super::auth::JwtLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::auth::JwtLayer, L>>;

    /// Adds a per-tenant [`BulkheadLayer`](super::bulkhead::BulkheadLayer); call it after
    /// [`jwt`](Self::jwt).
    #[cfg(feature = "resilience")]
    fn tenant_bulkhead(
        self,
        layer: super::bulkhead::BulkheadLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::bulkhead::BulkheadLayer, L>>;

    /// Adds a per-tenant [`CircuitBreakerLayer`](super::circuit_breaker::CircuitBreakerLayer);
    /// call it after [`jwt`](Self::jwt).
    #[cfg(feature = "resilience")]
    fn tenant_breaker<F, K, C>(
        self,
        layer: super::circuit_breaker::CircuitBreakerLayer<F, K, C>,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::circuit_breaker::CircuitBreakerLayer<F, K, C>, L>>;

    /// Adds a [`RateLimitLayer`](super::rate_limit::RateLimitLayer); call it after
    /// [`jwt`](Self::jwt) when it is keyed by tenant or user.
    #[cfg(feature = "rate-limit")]
    fn rate_limit(
        self,
        layer: super::rate_limit::RateLimitLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::rate_limit::RateLimitLayer, L>>;

    /// Adds a role or scope check ([`require_scope`](super::auth::require_scope) and
    /// friends): per route, before idempotency.
    #[cfg(feature = "auth")]
    fn require(
        self,
        layer: super::auth::RequireLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::auth::RequireLayer, L>>;

    /// Adds [`IdempotencyLayer`](super::idempotency::IdempotencyLayer): innermost, after the
    /// scope check and after compliance, audit, threat detection and residency, so a replay
    /// passes every check and is audited.
    #[cfg(feature = "idempotency")]
    fn idempotency(
        self,
        layer: super::idempotency::IdempotencyLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::idempotency::IdempotencyLayer, L>>;

    /// Adds [`AuditLayer`](crate::security::audit::AuditLayer).
    #[cfg(feature = "audit")]
    fn audit(
        self,
        layer: crate::security::audit::AuditLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<crate::security::audit::AuditLayer, L>>;

    /// Adds [`ComplianceLayer`](crate::security::compliance::ComplianceLayer).
    #[cfg(feature = "compliance")]
    fn compliance(
        self,
        layer: crate::security::compliance::ComplianceLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<crate::security::compliance::ComplianceLayer, L>>;

    /// Adds [`ThreatLayer`](crate::security::threat::ThreatLayer).
    #[cfg(feature = "threat")]
    fn threat(
        self,
        layer: crate::security::threat::ThreatLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<crate::security::threat::ThreatLayer, L>>;

    /// Adds [`ResidencyLayer`](crate::security::protection::ResidencyLayer).
    #[cfg(feature = "protection")]
    fn residency(
        self,
        layer: crate::security::protection::ResidencyLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<crate::security::protection::ResidencyLayer, L>>;
}

impl<L> sealed::Sealed for ServiceBuilder<L> {}

impl<L> LiftServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "observability")]
    fn request_log(
        self,
        layer: super::logging::RequestLogLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::logging::RequestLogLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "observability")]
    fn metrics(
        self,
        layer: super::metrics::MetricsLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::metrics::MetricsLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "observability")]
    fn xray(
        self,
        layer: super::xray::XrayLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::xray::XrayLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "security-headers")]
    fn security_headers(
        self,
        layer: super::security_headers::SecurityHeadersLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::security_headers::SecurityHeadersLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "auth")]
    fn jwt(
        self,
        layer: super::auth::JwtLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::auth::JwtLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "resilience")]
    fn tenant_bulkhead(
        self,
        layer: super::bulkhead::BulkheadLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::bulkhead::BulkheadLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "resilience")]
    fn tenant_breaker<F, K, C>(
        self,
        layer: super::circuit_breaker::CircuitBreakerLayer<F, K, C>,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::circuit_breaker::CircuitBreakerLayer<F, K, C>, L>>
    {
        self.layer(layer)
    }

    #[cfg(feature = "rate-limit")]
    fn rate_limit(
        self,
        layer: super::rate_limit::RateLimitLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::rate_limit::RateLimitLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "auth")]
    fn require(
        self,
        layer: super::auth::RequireLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::auth::RequireLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "idempotency")]
    fn idempotency(
        self,
        layer: super::idempotency::IdempotencyLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<super::idempotency::IdempotencyLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "audit")]
    fn audit(
        self,
        layer: crate::security::audit::AuditLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<crate::security::audit::AuditLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "compliance")]
    fn compliance(
        self,
        layer: crate::security::compliance::ComplianceLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<crate::security::compliance::ComplianceLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "threat")]
    fn threat(
        self,
        layer: crate::security::threat::ThreatLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<crate::security::threat::ThreatLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "protection")]
    fn residency(
        self,
        layer: crate::security::protection::ResidencyLayer,
    ) -> ServiceBuilder<tower::layer::util::Stack<crate::security::protection::ResidencyLayer, L>> {
        self.layer(layer)
    }
}

mod sealed {
    pub trait Sealed {}
}
