//! The permits of a bulkhead: one global semaphore and one per tenant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{BulkheadFull, Compartment};
use crate::sharded::Shards;
use crate::unscoped::Unscoped;

/// What every service of one layer shares.
pub(crate) struct Compartments {
    pub(crate) global: Option<Arc<Semaphore>>,
    pub(crate) global_limit: usize,
    pub(crate) per_tenant: Option<usize>,
    tenants: Shards<String, Arc<Semaphore>>,
    pub(crate) max_wait: Duration,
    pub(crate) retry_after: Duration,
    rejections: AtomicU64,
    pub(crate) unscoped: Unscoped,
}

/// The permits a request holds; dropping them frees the slots.
#[derive(Debug)]
pub(crate) struct Permits {
    _tenant: Option<OwnedSemaphorePermit>,
    _global: Option<OwnedSemaphorePermit>,
}

impl Compartments {
    pub(crate) fn new(
        global: Option<usize>,
        per_tenant: Option<usize>,
        max_wait: Duration,
        retry_after: Duration,
    ) -> Self {
        Self {
            global: global.map(|n| Arc::new(Semaphore::new(n))),
            global_limit: global.unwrap_or(0),
            per_tenant,
            tenants: Shards::new(),
            max_wait,
            retry_after,
            rejections: AtomicU64::new(0),
            unscoped: Unscoped::new("bulkhead"),
        }
    }

    /// The semaphore of a tenant, when the bulkhead limits tenants.
    pub(crate) fn tenant(&self, tenant: &str) -> Option<Arc<Semaphore>> {
        let limit = self.per_tenant?;
        Some(self.tenants.get_or_insert_with(
            tenant,
            || tenant.to_owned(),
            || Arc::new(Semaphore::new(limit)),
        ))
    }

    /// Takes the permits without waiting; `Err` names the full compartment.
    #[inline]
    pub(crate) fn try_acquire(&self, tenant: Option<&Arc<Semaphore>>) -> Result<Permits, Compartment> {
        let tenant = match tenant {
            Some(sem) => Some(Arc::clone(sem).try_acquire_owned().map_err(|_| Compartment::Tenant)?),
            None => None,
        };
        let global = match &self.global {
            Some(sem) => Some(Arc::clone(sem).try_acquire_owned().map_err(|_| Compartment::Global)?),
            None => None,
        };
        Ok(Permits { _tenant: tenant, _global: global })
    }

    /// Waits up to `max_wait` for the permits (tenant first, so a busy tenant does not hold
    /// global slots while it queues).
    pub(crate) fn acquire(
        self: &Arc<Self>,
        tenant: Option<Arc<Semaphore>>,
    ) -> BoxFuture<'static, Result<Permits, BulkheadFull>> {
        let this = Arc::clone(self);
        Box::pin(async move {
            let mut waiting_for = Compartment::Tenant;
            let acquired = tokio::time::timeout(this.max_wait, async {
                let tenant = match tenant {
                    Some(sem) => sem.acquire_owned().await.ok(),
                    None => None,
                };
                waiting_for = Compartment::Global;
                let global = match &this.global {
                    Some(sem) => Arc::clone(sem).acquire_owned().await.ok(),
                    None => None,
                };
                Permits { _tenant: tenant, _global: global }
            })
            .await;
            acquired.map_err(|_| this.reject(waiting_for))
        })
    }

    pub(crate) fn reject(&self, compartment: Compartment) -> BulkheadFull {
        self.rejections.fetch_add(1, Ordering::Relaxed);
        BulkheadFull::new(compartment, self.retry_after)
    }

    pub(crate) fn rejections(&self) -> u64 {
        self.rejections.load(Ordering::Relaxed)
    }
}
