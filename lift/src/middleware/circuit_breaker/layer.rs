//! The layer and its builder.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;

use super::key::{Global, PerTenant};
use super::registry::{Breakers, Registry};
use super::state::{Listener, Policy, State};
use super::{CircuitBreaker, InvalidConfig, ServerErrors, SlidingWindow};

/// Applies [`CircuitBreaker`] to services; every service it makes shares its breakers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
///
/// let layer = CircuitBreakerLayer::per_tenant()
///     .failure_rate(0.5)
///     .minimum_calls(10)
///     .window(SlidingWindow::Seconds(30))
///     .open_for(Duration::from_secs(15))
///     .on_state_change(|tenant: &Option<String>, from, to| {
///         tracing::warn!(?tenant, %from, %to, "circuit breaker changed state");
///     })
///     .build()
///     .unwrap();
/// let app = lift::App::new().layer(layer);
/// ```
pub struct CircuitBreakerLayer<F = Global, K = (), C = ServerErrors> {
    key: F,
    classify: C,
    registry: Arc<Registry<K>>,
}

impl<F: Clone, K, C: Clone> Clone for CircuitBreakerLayer<F, K, C> {
    fn clone(&self) -> Self {
        Self { key: self.key.clone(), classify: self.classify.clone(), registry: Arc::clone(&self.registry) }
    }
}

impl<F, K, C> std::fmt::Debug for CircuitBreakerLayer<F, K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.registry.policy;
        f.debug_struct("CircuitBreakerLayer")
            .field("failure_rate", &p.failure_rate)
            .field("slow", &p.slow)
            .field("minimum_calls", &p.minimum_calls)
            .field("window", &p.window)
            .field("open_for", &p.open_for)
            .finish_non_exhaustive()
    }
}

impl CircuitBreakerLayer {
    /// A builder for one breaker shared by every request.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(Global)
    }

    /// A builder for one breaker per tenant ([`PerTenant`]).
    pub fn per_tenant() -> CircuitBreakerBuilder<PerTenant, Option<String>> {
        CircuitBreakerBuilder::new(PerTenant)
    }

    /// A builder for one breaker per key of `key_fn` (annotate the closure's argument type).
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::middleware::circuit_breaker::CircuitBreakerLayer;
    /// let per_host = CircuitBreakerLayer::keyed_by(|req: &lift::Request| {
    ///     req.uri().host().map(str::to_owned)
    /// })
    /// .build()
    /// .unwrap();
    /// ```
    pub fn keyed_by<B, K, F>(key_fn: F) -> CircuitBreakerBuilder<F, K>
    where
        F: Fn(&http::Request<B>) -> K + Clone + Send + Sync + 'static,
    {
        CircuitBreakerBuilder::new(key_fn)
    }
}

impl<F, K, C> CircuitBreakerLayer<F, K, C> {
    /// A read handle on the breakers, for metrics.
    pub fn breakers(&self) -> Breakers<K> {
        Breakers::new(Arc::clone(&self.registry))
    }

    /// Requests a per-tenant breaker saw without a tenant (the layer is mounted outside the
    /// JWT layer, or the route is exempt from it); they share the `None` breaker. The first
    /// one logs a warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::middleware::circuit_breaker::CircuitBreakerLayer;
    /// let layer = CircuitBreakerLayer::per_tenant().build().unwrap();
    /// assert_eq!(layer.unscoped_requests(), 0);
    /// ```
    pub fn unscoped_requests(&self) -> u64 {
        self.registry.unscoped.count()
    }
}

impl<S, F: Clone, K, C: Clone> Layer<S> for CircuitBreakerLayer<F, K, C> {
    type Service = CircuitBreaker<S, F, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::from_parts(inner, self.key.clone(), self.classify.clone(), Arc::clone(&self.registry))
    }
}

/// Configures a [`CircuitBreakerLayer`]; [`build`](Self::build) checks the configuration.
///
/// Defaults: opens at a 50 % failure rate once 20 calls are in a window of the last 100
/// calls; stays open 30 s; slow calls are not timed until [`slow_calls`](Self::slow_calls)
/// is set (timing costs two clock reads per call).
#[must_use]
pub struct CircuitBreakerBuilder<F = Global, K = (), C = ServerErrors> {
    key: F,
    classify: C,
    failure_rate: f64,
    slow: Option<(Duration, f64)>,
    minimum_calls: u32,
    window: SlidingWindow,
    open_for: Duration,
    listeners: Vec<Listener<K>>,
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        Self::new(Global)
    }
}

impl<F, K, C> std::fmt::Debug for CircuitBreakerBuilder<F, K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("failure_rate", &self.failure_rate)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl<F, K> CircuitBreakerBuilder<F, K> {
    fn new(key: F) -> Self {
        Self {
            key,
            classify: ServerErrors,
            failure_rate: 0.5,
            slow: None,
            minimum_calls: 20,
            window: SlidingWindow::Calls(100),
            open_for: Duration::from_secs(30),
            listeners: Vec::new(),
        }
    }
}

impl<F, K, C> CircuitBreakerBuilder<F, K, C> {
    /// Opens when at least this share of the window's calls failed (0 < rate ≤ 1).
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = rate;
        self
    }

    /// Calls at least `threshold` long are slow; opens when at least `rate` of the window's
    /// calls were slow (0 < rate ≤ 1). A slow half-open probe reopens the breaker.
    pub fn slow_calls(mut self, threshold: Duration, rate: f64) -> Self {
        self.slow = Some((threshold, rate));
        self
    }

    /// The fewest calls in the window before the rates are judged.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// The sliding window the rates are computed over.
    pub fn window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// How long the breaker stays open before letting one probe through.
    pub fn open_for(mut self, wait: Duration) -> Self {
        self.open_for = wait;
        self
    }

    /// Sets what counts as a failure (default [`ServerErrors`]).
    pub fn classify<C2>(self, classify: C2) -> CircuitBreakerBuilder<F, K, C2> {
        CircuitBreakerBuilder {
            key: self.key,
            classify,
            failure_rate: self.failure_rate,
            slow: self.slow,
            minimum_calls: self.minimum_calls,
            window: self.window,
            open_for: self.open_for,
            listeners: self.listeners,
        }
    }

    /// Calls `f(key, from, to)` on every state change, in order. Keep it short: it runs
    /// while the breaker's transition lock is held.
    pub fn on_state_change(mut self, f: impl Fn(&K, State, State) + Send + Sync + 'static) -> Self {
        self.listeners.push(Box::new(f));
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<CircuitBreakerLayer<F, K, C>, InvalidConfig>
    where
        K: Clone + Eq + std::hash::Hash,
    {
        let rate_ok = |r: f64| r > 0.0 && r <= 1.0;
        if !rate_ok(self.failure_rate) {
            return Err(InvalidConfig::new("circuit breaker", "failure rate must be in (0, 1]"));
        }
        if self.slow.is_some_and(|(_, rate)| !rate_ok(rate)) {
            return Err(InvalidConfig::new("circuit breaker", "slow-call rate must be in (0, 1]"));
        }
        if self.minimum_calls == 0 {
            return Err(InvalidConfig::new("circuit breaker", "minimum calls must be at least 1"));
        }
        match self.window {
            SlidingWindow::Calls(0) | SlidingWindow::Seconds(0) => {
                return Err(InvalidConfig::new("circuit breaker", "the window must not be empty"))
            }
            SlidingWindow::Calls(n) if n < self.minimum_calls => {
                return Err(InvalidConfig::new(
                    "circuit breaker",
                    "minimum calls must fit in the count window",
                ))
            }
            _ => {}
        }
        if self.open_for.is_zero() {
            return Err(InvalidConfig::new("circuit breaker", "the open wait must be longer than zero"));
        }
        let policy = Policy {
            failure_rate: self.failure_rate,
            slow: self.slow,
            minimum_calls: self.minimum_calls,
            window: self.window,
            open_for: self.open_for,
            listeners: self.listeners,
            epoch: Instant::now(),
        };
        Ok(CircuitBreakerLayer {
            key: self.key,
            classify: self.classify,
            registry: Arc::new(Registry::new(policy)),
        })
    }
}
