//! The layer and its builder.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::compartments::Compartments;
use super::{Bulkhead, InvalidConfig};

/// Applies [`Bulkhead`] to services; every service it makes shares its permits.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::bulkhead::BulkheadLayer;
///
/// let layer = BulkheadLayer::builder()
///     .max_concurrent(64)
///     .per_tenant(8)
///     .max_wait(Duration::from_millis(50))
///     .build()
///     .unwrap();
/// let app = lift::App::new().layer(layer);
/// ```
#[derive(Clone)]
pub struct BulkheadLayer {
    compartments: Arc<Compartments>,
}

impl std::fmt::Debug for BulkheadLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.compartments;
        f.debug_struct("BulkheadLayer")
            .field("max_concurrent", &c.global.as_ref().map(|_| c.global_limit))
            .field("per_tenant", &c.per_tenant)
            .field("max_wait", &c.max_wait)
            .finish()
    }
}

impl BulkheadLayer {
    /// At most `max_concurrent` requests at once, rejecting the rest without waiting.
    ///
    /// # Panics
    /// When `max_concurrent` is 0.
    pub fn new(max_concurrent: usize) -> Self {
        Self::builder().max_concurrent(max_concurrent).build().expect("max_concurrent must be at least 1")
    }

    /// A builder.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::default()
    }

    /// Requests rejected so far.
    pub fn rejections(&self) -> u64 {
        self.compartments.rejections()
    }

    /// Requests that reached a per-tenant limit without a tenant (the layer is mounted
    /// outside the JWT layer, or the route is exempt from it): no per-tenant limit applies to
    /// them. The first one logs a warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::middleware::bulkhead::BulkheadLayer;
    /// let layer = BulkheadLayer::builder().per_tenant(4).build().unwrap();
    /// assert_eq!(layer.unscoped_requests(), 0);
    /// ```
    pub fn unscoped_requests(&self) -> u64 {
        self.compartments.unscoped.count()
    }

    /// Global permits free now (`None` without a global limit).
    pub fn available(&self) -> Option<usize> {
        self.compartments.global.as_ref().map(|s| s.available_permits())
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::from_parts(inner, Arc::clone(&self.compartments))
    }
}

/// Configures a [`BulkheadLayer`]: a global limit, a per-tenant limit, or both.
///
/// Defaults: no limits (set at least one), no wait, `Retry-After: 1`.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct BulkheadBuilder {
    global: Option<usize>,
    per_tenant: Option<usize>,
    max_wait: Duration,
    retry_after: Option<Duration>,
}

impl BulkheadBuilder {
    /// At most `n` requests at once in all.
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.global = Some(n);
        self
    }

    /// At most `n` requests at once per tenant ([`lift::Context::tenant`](crate::Context::tenant));
    /// requests without a tenant only count against the global limit.
    pub fn per_tenant(mut self, n: usize) -> Self {
        self.per_tenant = Some(n);
        self
    }

    /// How long a request may wait for a permit before it is rejected.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// The `Retry-After` suggested to rejected callers (default 1 s).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<BulkheadLayer, InvalidConfig> {
        if self.global.is_none() && self.per_tenant.is_none() {
            return Err(InvalidConfig::new("bulkhead", "set a global or a per-tenant limit"));
        }
        if self.global == Some(0) || self.per_tenant == Some(0) {
            return Err(InvalidConfig::new("bulkhead", "limits must be at least 1"));
        }
        let retry_after = self.retry_after.unwrap_or(Duration::from_secs(1));
        let compartments = Compartments::new(self.global, self.per_tenant, self.max_wait, retry_after);
        Ok(BulkheadLayer { compartments: Arc::new(compartments) })
    }
}
