//! Counting requests that reach a per-tenant layer without a tenant.
//!
//! A per-tenant bulkhead, breaker or rate limit reads the tenant the JWT layer puts in the
//! request's [`Context`](crate::Context). Mounted outside that layer it sees no tenant, and
//! quietly stops limiting by tenant: a bulkhead applies no per-tenant limit, a breaker and a
//! rate limit put every such request under one shared key. Each such layer keeps one of
//! these: it warns once, at the first request without a tenant, and counts every one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The requests one per-tenant layer saw without a tenant.
#[derive(Debug)]
pub(crate) struct Unscoped {
    layer: &'static str,
    count: AtomicU64,
    warned: AtomicBool,
}

impl Unscoped {
    /// A counter for the layer named `layer` (in the warning).
    pub(crate) const fn new(layer: &'static str) -> Self {
        Self { layer, count: AtomicU64::new(0), warned: AtomicBool::new(false) }
    }

    /// Records a request without a tenant; the first one logs a warning.
    pub(crate) fn note(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                layer = self.layer,
                "a per-tenant {} saw a request without a tenant: mount it inside the jwt layer \
                 (see lift::middleware for the order); no per-tenant limit applies to such requests",
                self.layer
            );
        }
    }

    /// How many requests came without a tenant.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_request_and_warns_once() {
        let unscoped = Unscoped::new("bulkhead");
        assert_eq!(unscoped.count(), 0);
        assert!(!unscoped.warned.load(Ordering::Relaxed));
        for _ in 0..3 {
            unscoped.note();
        }
        assert_eq!(unscoped.count(), 3);
        assert!(unscoped.warned.load(Ordering::Relaxed));
    }
}
