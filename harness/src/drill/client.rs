//! The failover client a drill drives: `lift::disaster`'s router (moved by the
//! orchestrator) for every call, and its synchronous writer in sync mode.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lift::disaster::{
    AckedWrite, HealthSnapshot, HealthState, Item, Region, RegionRouter, RegionSet, ReplicatedTable,
    ReplicatedWriter, RequestObserver, SyncWriter,
};

use super::scenario::ReplicationMode;
use crate::workload::{Call, OpError};

/// The error class of a sync write refused unsent: the region called is held unhealthy and
/// no other region is healthy, so no region the monitor trusts would hold it.
pub(crate) const REGION_HELD_DOWN: &str = "region_held_down";

tokio::task_local! {
    /// Set when the operation running in this task was handed a one-region writer because
    /// the monitor held every other region unhealthy.
    static ONE_REGION: Arc<AtomicBool>;
}

/// Runs one operation of the load; also says whether it was handed a one-region (degraded)
/// writer, so that only acknowledged operations are counted as degraded writes.
pub(crate) async fn one_operation<F: Future>(operation: F) -> (F::Output, bool) {
    let flag = Arc::new(AtomicBool::new(false));
    let out = ONE_REGION.scope(flag.clone(), operation).await;
    (out, flag.load(Ordering::Relaxed))
}

/// Writes acknowledged by one region alone.
#[derive(Debug, Default)]
pub(crate) struct OneRegionWrites {
    /// Sync mode: acknowledged operations whose writes one region alone held, because the
    /// monitor held every other region unhealthy.
    acknowledged: AtomicU64,
    /// [`Drill::acknowledge_after_first_region`](super::Drill::acknowledge_after_first_region):
    /// every write acknowledged by the region called alone, and not counted, as a client
    /// that believes itself synchronous would.
    forced: AtomicBool,
}

impl OneRegionWrites {
    pub(crate) fn force(&self, forced: bool) {
        self.forced.store(forced, Ordering::Relaxed);
    }

    fn forced(&self) -> bool {
        self.forced.load(Ordering::Relaxed)
    }
}

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
    /// Writes acknowledged by one region alone: those counted as degraded (no other region
    /// was healthy), and the drill switch that makes every write one.
    pub(crate) degraded: OneRegionWrites,
    /// Updates stay in the region called ([`Drill::break_update_replication`](super::Drill::break_update_replication)).
    pub(crate) break_updates: bool,
}

impl FailoverClient {
    /// A call to the active region: read once, so the region named is the region called.
    pub(crate) fn call(&self) -> Call<'_> {
        Call::new(self.router.active().clone(), self)
    }

    /// Acknowledged operations whose writes one region alone held (sync mode).
    pub(crate) fn degraded(&self) -> u64 {
        self.degraded.acknowledged.load(Ordering::Relaxed)
    }

    /// Counts an operation of the load that was acknowledged after it was handed a
    /// one-region writer ([`one_operation`]).
    pub(crate) fn acknowledged_degraded(&self) {
        self.degraded.acknowledged.fetch_add(1, Ordering::Relaxed);
    }

    /// Sync mode: the region called and every other region the monitor does not hold
    /// unhealthy. A region the monitor holds unhealthy never holds a write alone: with no
    /// other region healthy, the region called takes it alone only when it is not held
    /// unhealthy itself (a degraded write), and otherwise the write is refused unsent.
    fn sync_targets(&self, region: &str) -> Result<Vec<String>, OpError> {
        let health = self.health.borrow().clone();
        let mut targets = vec![region.to_owned()];
        targets.extend(
            self.regions
                .names()
                .into_iter()
                .filter(|name| *name != region && health.state(name) != HealthState::Unhealthy)
                .map(str::to_owned),
        );
        if targets.len() < 2 {
            if health.state(region) == HealthState::Unhealthy {
                return Err(OpError::new(
                    REGION_HELD_DOWN,
                    format!("the monitor holds {region} and every other region unhealthy: not written"),
                ));
            }
            // Counted once the operation is acknowledged; a task the workload spawned runs
            // outside the operation's scope, and its write is counted when handed out.
            if ONE_REGION.try_with(|flag| flag.store(true, Ordering::Relaxed)).is_err() {
                self.acknowledged_degraded();
            }
        }
        Ok(targets)
    }

    /// The replicated writer for a call to `region`: sync mode, that region and every other
    /// the monitor does not hold unhealthy ([`FailoverClient::sync_targets`]); async mode,
    /// that region alone.
    pub(crate) fn writer(&self, region: &Region) -> Result<ReplicatedWriter, OpError> {
        let targets = if self.mode == ReplicationMode::Sync && !self.degraded.forced() {
            self.sync_targets(region.name())?
        } else {
            vec![region.name().to_owned()]
        };
        let builder = if targets.len() < 2 {
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
        if self.degraded.forced() {
            return None;
        }
        let targets = match self.sync_targets(region.name()) {
            Ok(targets) if targets.len() < 2 => return None,
            Ok(targets) => targets,
            Err(refused) => return Some(Err(refused)),
        };
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

#[cfg(test)]
mod tests {
    use lift::disaster::{RegionConfig, RegionStatus};
    use tokio::sync::watch;

    use super::*;

    fn client(states: [HealthState; 2]) -> FailoverClient {
        let regions = RegionSet::builder()
            .region(RegionConfig::new("a").dynamodb_endpoint("http://127.0.0.1:9"))
            .region(RegionConfig::new("b").dynamodb_endpoint("http://127.0.0.1:9"))
            .build()
            .unwrap();
        let snapshot = HealthSnapshot {
            regions: ["a", "b"]
                .into_iter()
                .zip(states)
                .map(|(name, state)| RegionStatus { state, ..RegionStatus::new(name) })
                .collect(),
        };
        let table = lift::disaster::ReplicatedTable::new(lift::store::TableDef::new(
            "t",
            lift::store::KeyAttribute::string("pk"),
        ));
        FailoverClient {
            router: RegionRouter::new(regions.clone()),
            regions,
            table,
            health: watch::channel(snapshot).1,
            observer: RequestObserver::disabled(),
            mode: ReplicationMode::Sync,
            sync_timeout: Duration::from_secs(1),
            degraded: OneRegionWrites::default(),
            break_updates: false,
        }
    }

    /// A write acknowledged by a region the monitor holds down, alone, is one a failover
    /// loses: it is refused unsent. The region called may be in the writer while another,
    /// healthy, region must hold the write too.
    #[tokio::test]
    async fn a_region_held_unhealthy_never_takes_a_write_alone() {
        use HealthState::{Healthy, Unhealthy};
        let region = |c: &FailoverClient, name: &str| c.regions.by_name(name).unwrap().clone();
        let both_down = client([Unhealthy, Unhealthy]);
        let (refused, degraded) = one_operation(async { both_down.writer(&region(&both_down, "a")) }).await;
        match refused {
            Err(refused) => assert_eq!(refused.class, REGION_HELD_DOWN),
            Ok(writer) => panic!("a region held down alone took the write: {:?}", writer.targets()),
        }
        assert!(!degraded, "a refused write is no degraded write");
        let put = both_down.put_in_healthy_regions(&region(&both_down, "a"), Item::new()).await;
        assert_eq!(put.unwrap().unwrap_err().class, REGION_HELD_DOWN);

        let caller_down = client([Unhealthy, Healthy]);
        let writer = caller_down.writer(&region(&caller_down, "a")).unwrap();
        assert_eq!(writer.targets(), ["a", "b"], "the healthy region must hold it too");

        // The surviving region alone, itself healthy: a degraded write, counted once acknowledged.
        let survivor = client([Unhealthy, Healthy]);
        let (writer, degraded) = one_operation(async { survivor.writer(&region(&survivor, "b")) }).await;
        assert_eq!(writer.unwrap().targets(), ["b"]);
        assert!(degraded);
        assert_eq!(survivor.degraded(), 0, "counted by the load once the operation is acknowledged");

        // The drill switch: every write acknowledged by the region called alone, uncounted.
        let forced = client([Healthy, Healthy]);
        forced.degraded.force(true);
        let (writer, degraded) = one_operation(async { forced.writer(&region(&forced, "a")) }).await;
        assert_eq!(writer.unwrap().targets(), ["a"]);
        assert!(!degraded);
        assert!(forced.put_in_healthy_regions(&region(&forced, "a"), Item::new()).await.is_none());
    }
}
