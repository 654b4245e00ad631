//! The breakers of one layer, by key.

use std::hash::Hash;
use std::sync::{Arc, OnceLock};

use super::state::{Breaker, BreakerMetrics, Policy, State};
use crate::sharded::Shards;
use crate::unscoped::Unscoped;

pub(crate) struct Registry<K> {
    pub(crate) policy: Arc<Policy<K>>,
    breakers: Shards<K, Arc<Breaker<K>>>,
    /// The one breaker of a constant key, found without hashing.
    single: OnceLock<Arc<Breaker<K>>>,
    /// Requests a per-tenant key saw without a tenant.
    pub(crate) unscoped: Unscoped,
}

impl<K: Clone + Eq + Hash> Registry<K> {
    pub(crate) fn new(policy: Policy<K>) -> Self {
        Self {
            policy: Arc::new(policy),
            breakers: Shards::new(),
            single: OnceLock::new(),
            unscoped: Unscoped::new("circuit breaker"),
        }
    }

    /// The breaker of a key, created closed on first use; `constant` when every request has
    /// this key.
    pub(crate) fn breaker(&self, key: &K, constant: bool) -> Arc<Breaker<K>> {
        if constant {
            return Arc::clone(self.single.get_or_init(|| self.lookup(key)));
        }
        self.lookup(key)
    }

    fn lookup(&self, key: &K) -> Arc<Breaker<K>> {
        self.breakers.get_or_insert_with(
            key,
            || key.clone(),
            || Arc::new(Breaker::new(key.clone(), Arc::clone(&self.policy))),
        )
    }
}

/// A read handle on the breakers of a layer, for metrics and health reports.
///
/// # Examples
///
/// ```
/// use lift::middleware::circuit_breaker::CircuitBreakerLayer;
///
/// let layer = CircuitBreakerLayer::builder().build().unwrap();
/// let breakers = layer.breakers();
/// assert!(breakers.metrics(&()).is_none()); // no call yet
/// ```
pub struct Breakers<K> {
    registry: Arc<Registry<K>>,
}

impl<K> Clone for Breakers<K> {
    fn clone(&self) -> Self {
        Self { registry: Arc::clone(&self.registry) }
    }
}

impl<K> std::fmt::Debug for Breakers<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breakers").finish_non_exhaustive()
    }
}

impl<K> Breakers<K> {
    pub(crate) fn new(registry: Arc<Registry<K>>) -> Self {
        Self { registry }
    }
}

impl<K: Clone + Eq + Hash> Breakers<K> {
    /// The counters of a key's breaker, if it has seen a call.
    pub fn metrics(&self, key: &K) -> Option<BreakerMetrics> {
        self.registry.breakers.get(key).map(|b| b.metrics())
    }

    /// The state of a key's breaker, if it has seen a call.
    pub fn state(&self, key: &K) -> Option<State> {
        self.metrics(key).map(|m| m.state)
    }

    /// The counters of every breaker.
    pub fn all(&self) -> Vec<(K, BreakerMetrics)> {
        self.registry.breakers.snapshot().into_iter().map(|(k, b)| (k, b.metrics())).collect()
    }
}
