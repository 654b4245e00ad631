//! The failover client a drill drives: `lift::disaster`'s router (moved by the
//! orchestrator) for every call, and its synchronous writer in sync mode.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lift::disaster::{
    AckedWrite, HealthSnapshot, HealthState, Item, Region, RegionRouter, RegionSet, ReplicatedTable,
    ReplicatedWriter, RequestObserver, SyncWriter,
};

use super::scenario::ReplicationMode;
use crate::workload::{Call, OpError};

/// The failover client: which region takes a call, and how writes replicate.
#[derive(Debug)]
pub(crate) struct FailoverClient {
    pub(crate) router: RegionRouter,
    pub(crate) regions: RegionSet,
    pub(crate) table: ReplicatedTable,
    pub(crate) health: tokio::sync::watch::Receiver<HealthSnapshot>,
    /// Passive detection: each operation's outcome goes here, and its timeout comes from here.
    pub(crate) observer: RequestObserver,
    pub(crate) mode: ReplicationMode,
    pub(crate) sync_timeout: Duration,
    /// Writes acknowledged by one region only, because no other region was healthy.
    pub(crate) degraded: AtomicU64,
    /// Updates stay in the region called ([`Drill::break_update_replication`](super::Drill::break_update_replication)).
    pub(crate) break_updates: bool,
}

impl FailoverClient {
    /// A call to the active region: read once, so the region named is the region called.
    pub(crate) fn call(&self) -> Call<'_> {
        Call::new(self.router.active().clone(), self)
    }

    pub(crate) fn degraded(&self) -> u64 {
        self.degraded.load(Ordering::Relaxed)
    }

    /// The replicated writer for a call to `region`: sync mode, that region and every other
    /// the monitor does not hold unhealthy (the region alone, counted as degraded, when no
    /// other is healthy); async mode, that region alone.
    pub(crate) fn writer(&self, region: &Region) -> Result<ReplicatedWriter, OpError> {
        let active = region.name();
        let mut targets = vec![active.to_owned()];
        if self.mode == ReplicationMode::Sync {
            let health = self.health.borrow().clone();
            targets.extend(
                self.regions
                    .names()
                    .into_iter()
                    .filter(|name| *name != active && health.state(name) != HealthState::Unhealthy)
                    .map(str::to_owned),
            );
        }
        let builder = if targets.len() < 2 {
            if self.mode == ReplicationMode::Sync {
                self.degraded.fetch_add(1, Ordering::Relaxed);
            }
            ReplicatedWriter::async_(self.regions.clone(), self.table.clone())
        } else {
            ReplicatedWriter::sync(self.regions.clone(), self.table.clone())
        };
        let builder = builder.targets(targets).timeout(self.sync_timeout).record_acks();
        let builder = if self.break_updates { builder.break_update_replication() } else { builder };
        builder.build().map_err(|e| OpError::new("config", e.to_string()))
    }

    pub(crate) async fn put_in_healthy_regions(
        &self,
        region: &Region,
        item: Item,
    ) -> Option<Result<AckedWrite, OpError>> {
        let active = region.name();
        let health = self.health.borrow().clone();
        let mut targets = vec![active.to_owned()];
        targets.extend(
            self.regions
                .names()
                .into_iter()
                .filter(|name| *name != active && health.state(name) != HealthState::Unhealthy)
                .map(str::to_owned),
        );
        if targets.len() < 2 {
            self.degraded.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let writer = match SyncWriter::builder(self.regions.clone(), self.table.clone())
            .targets(targets)
            .timeout(self.sync_timeout)
            .build()
        {
            Ok(writer) => writer,
            Err(e) => return Some(Err(OpError::new("config", e.to_string()))),
        };
        Some(match writer.put(item).await {
            Ok(ack) => {
                let mut acked = AckedWrite::new(ack.key);
                if let Some(version) = ack.version {
                    acked = acked.with_version(version);
                }
                Ok(acked)
            }
            Err(err) => Err(OpError::new("sync_incomplete", err.to_string())),
        })
    }
}
