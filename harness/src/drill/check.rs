//! The check stage: at each failover, every effect acknowledged so far is read back from
//! the new primary while replication from the region traffic left is held cut; after the
//! faults are healed, every acknowledged effect is read back from the final primary and
//! each other region until they agree or the settle time runs out. It heals nothing: the
//! inject stage's guards have done that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lift::disaster::{FailoverRecord, Region, RegionSet, ReplicatedTable, SwitchKind};
use tokio::sync::watch;

use super::metrics::Recorder;
use super::report::{KindCheck, WriteCheck};
use super::topology::{RegionNode, Topology};
use super::DrillError;
use crate::faults::{Direction, FaultProxy, Toxic};
use crate::workload::{key_id, Acked, EffectCheck, OpCheck, Workload};

/// Reads the acknowledged effects back from `final_primary` and every other region, again
/// every 500 ms until they agree both ways (each holds what the other holds) or `settle`
/// runs out. The final primary is read again each time too: what it lacks of another
/// region's writes arrives as that region's stream is read.
pub(crate) async fn check_writes<W: Workload>(
    workload: &W,
    direct: &RegionSet,
    table: &ReplicatedTable,
    final_primary: &str,
    acked: &[Acked],
    settle: Duration,
) -> Result<WriteCheck, DrillError> {
    let target = |e: lift::disaster::RpoError| DrillError::Target(e.to_string());
    let primary = direct.by_name(final_primary).expect("the final primary is a drill region");
    let others: Vec<&Region> = direct.iter().filter(|r| r.name() != final_primary).collect();
    let deadline = Instant::now() + settle;
    let (held, regions) = loop {
        let held = workload.check(primary, table, acked).await.map_err(target)?;
        let mut regions = Vec::with_capacity(others.len());
        for region in &others {
            let d = match workload.check(region, table, acked).await {
                Ok(c) => disagreement(&held, &c),
                // Unread, it agrees with nothing.
                Err(_) => Disagreement::unread(acked.len() as u64),
            };
            regions.push((region.name().to_owned(), d));
        }
        if regions.iter().all(|(_, d)| d.agrees()) || Instant::now() >= deadline {
            break (held, regions);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut by_kind: BTreeMap<String, KindCheck> = held
        .by_op
        .iter()
        .map(|(kind, c)| (kind.clone(), KindCheck { checked: c.checked, lost: c.lost(), divergent: 0 }))
        .collect();
    let mut missing_by_region = BTreeMap::new();
    let mut missing_in_primary_by_region = BTreeMap::new();
    for (region, d) in regions {
        for (kind, n) in d.by_kind {
            by_kind.entry(kind).or_default().divergent += n;
        }
        missing_by_region.insert(region.clone(), d.not_reached);
        missing_in_primary_by_region.insert(region, d.not_in_primary);
    }
    Ok(WriteCheck {
        acknowledged: acked.len() as u64,
        checked_in: final_primary.to_owned(),
        lost: held.lost(),
        lost_examples: held.examples(20),
        missing_by_region,
        missing_in_primary_by_region,
        by_kind,
        ..WriteCheck::default()
    })
}

/// Where another region disagrees with the final primary.
#[derive(Debug, Default, PartialEq)]
struct Disagreement {
    /// Effects the primary holds and the other region lacks (what never reached it).
    not_reached: u64,
    /// Effects the other region holds and the primary lacks (what never reached the primary).
    not_in_primary: u64,
    /// Per kind, every effect held by one of the two only. An effect lost in both regions
    /// is not a disagreement: it is lost, and counted so.
    by_kind: BTreeMap<String, u64>,
}

impl Disagreement {
    /// A region that could not be read: nothing it holds is known.
    fn unread(acknowledged: u64) -> Self {
        Self { not_reached: acknowledged, not_in_primary: acknowledged, by_kind: BTreeMap::new() }
    }

    fn agrees(&self) -> bool {
        self.not_reached == 0 && self.not_in_primary == 0
    }
}

fn disagreement(primary: &EffectCheck, other: &EffectCheck) -> Disagreement {
    let lost = |c: &OpCheck| -> BTreeSet<String> { c.missing.iter().chain(&c.stale).map(key_id).collect() };
    let none = OpCheck::default();
    let kinds: BTreeSet<&String> = primary.by_op.keys().chain(other.by_op.keys()).collect();
    let mut d = Disagreement::default();
    for kind in kinds {
        let mine = lost(primary.by_op.get(kind).unwrap_or(&none));
        let theirs = lost(other.by_op.get(kind).unwrap_or(&none));
        let (not_reached, not_in_primary) =
            (theirs.difference(&mine).count() as u64, mine.difference(&theirs).count() as u64);
        d.not_reached += not_reached;
        d.not_in_primary += not_in_primary;
        d.by_kind.insert(kind.clone(), not_reached + not_in_primary);
    }
    d
}

/// What the failovers left: per failover measured, the acknowledged effects the new primary
/// lacked; and how many could not be measured.
#[derive(Debug, Default)]
pub(crate) struct AtFailover {
    pub(crate) missing: Vec<u64>,
    pub(crate) unmeasured: u64,
}

/// Reads of the new primary tried at a failover before it counts as not measured.
const FAILOVER_READS: u32 = 3;

/// At each failover, reads the effects acknowledged so far back from the new primary
/// (straight at its DynamoDB): what a failover at that moment loses if the region traffic
/// left never comes back. From the moment the failover is seen until the read is done,
/// replication from that region is held cut ([`ReplicationCut`]), so nothing it alone held
/// can reach the new primary first (a heal meanwhile changes nothing), and the read waits
/// (at most `calls_end_within`) for the calls to that region begun before traffic moved,
/// which that region alone may still acknowledge.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn watch_failovers<W: Workload>(
    workload: &W,
    mut records: watch::Receiver<Vec<FailoverRecord>>,
    topology: &Topology,
    direct: &RegionSet,
    acked: &Mutex<Vec<Acked>>,
    recorder: &Recorder,
    calls_end_within: Duration,
    mut stop: watch::Receiver<bool>,
) -> AtFailover {
    let mut seen = records.borrow_and_update().len();
    let mut out = AtFailover::default();
    loop {
        // A record published with the stop is still measured: the assertion counts a
        // failover the watcher never saw as not measured.
        let last = tokio::select! {
            _ = stop.changed() => true,
            changed = records.changed() => changed.is_err(),
        };
        let new: Vec<_> = records.borrow_and_update()[seen..].to_vec();
        seen += new.len();
        for record in new.iter().filter(|r| r.kind == SwitchKind::FailOver) {
            let cut = ReplicationCut::hold(topology, &record.from, &record.to);
            let Some(region) = direct.by_name(&record.to) else { continue };
            // Every call begun from now on goes to the new primary; one begun before may
            // still be under way in the old.
            let (now, deadline) = (Instant::now(), Instant::now() + calls_end_within);
            if !recorder.calls_ended(&record.from, now, deadline).await {
                tracing::warn!(
                    "calls to {} still in flight {calls_end_within:?} after the failover",
                    record.from
                );
            }
            let acked: Vec<Acked> = acked.lock().expect("acked lock").clone();
            let mut measured = None;
            for attempt in 1..=FAILOVER_READS {
                match workload.check(region, topology.table(), &acked).await {
                    Ok(check) => {
                        measured = Some(check.lost());
                        break;
                    }
                    Err(err) => tracing::warn!(attempt, "cannot check the new primary at failover: {err}"),
                }
            }
            drop(cut);
            match measured {
                Some(missing) => out.missing.push(missing),
                None => out.unmeasured += 1,
            }
        }
        if last {
            return out;
        }
    }
}

/// Replication held cut around the check at a failover: nothing the region traffic left
/// answers reaches the replicator (its stream is not read), and no replicated change lands
/// in the new primary, for as long as the guard lives. Its toxics are the measurement's own
/// (a blackhole of one direction; faults blackhole both), so healing a fault meanwhile
/// leaves them, and they leave the fault's. Remote regions have no proxies: nothing is cut.
struct ReplicationCut<'t> {
    held: Vec<(&'t FaultProxy, Toxic)>,
}

impl<'t> ReplicationCut<'t> {
    fn hold(topology: &'t Topology, from: &str, to: &str) -> Self {
        let mut held = Vec::new();
        for (region, toxic) in [
            (from, Toxic::blackhole().direction(Direction::Downstream)),
            (to, Toxic::blackhole().direction(Direction::Upstream)),
        ] {
            let Some(path) = topology.region(region).and_then(RegionNode::replication_path) else { continue };
            if path.toxics().iter().any(|t| t.name() == toxic.name()) {
                continue;
            }
            path.set(toxic);
            held.push((path, toxic));
        }
        Self { held }
    }
}

impl Drop for ReplicationCut<'_> {
    fn drop(&mut self) {
        for (path, toxic) in self.held.drain(..) {
            path.remove(&toxic.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    fn key(id: &str) -> lift::disaster::Item {
        [("pk".to_owned(), AttributeValue::S(id.to_owned()))].into()
    }

    fn check(refunds_lost: &[&str], creates_lost: &[&str]) -> EffectCheck {
        let op = |lost: &[&str]| OpCheck {
            checked: 5,
            missing: lost.iter().map(|k| key(k)).collect(),
            stale: vec![],
        };
        EffectCheck {
            region: String::new(),
            by_op: [("refund".to_owned(), op(refunds_lost)), ("create".to_owned(), op(creates_lost))].into(),
        }
    }

    /// At a failover the check holds replication cut: nothing the old region answers
    /// reaches the replicator, nothing replicated lands in the new primary; clients still
    /// reach both. Its toxics are its own: a fault's stay when it ends, and it leaves them.
    #[tokio::test]
    async fn a_cut_holds_replication_from_the_old_region_and_into_the_new_and_no_more() {
        use crate::faults::ToxicKind;
        let topology = crate::drill::topology::proxies_only(&["a", "b"], "http://127.0.0.1:9").await;
        let (a, b) = (topology.region("a").unwrap(), topology.region("b").unwrap());
        a.replication_path().unwrap().set(Toxic::blackhole()); // the outage's own
        let names = |path: &FaultProxy| path.toxics().iter().map(Toxic::name).collect::<Vec<_>>();
        let cut = ReplicationCut::hold(&topology, "a", "b");
        assert_eq!(names(a.replication_path().unwrap()), ["blackhole-both", "blackhole-downstream"]);
        assert_eq!(names(b.replication_path().unwrap()), ["blackhole-upstream"]);
        assert!(a.client_path().unwrap().toxics().is_empty() && b.client_path().unwrap().toxics().is_empty());
        // The outage heals while the check reads: replication out of a stays cut.
        a.replication_path().unwrap().remove("blackhole-both");
        assert_eq!(names(a.replication_path().unwrap()), ["blackhole-downstream"]);
        drop(cut);
        assert!(a.replication_path().unwrap().toxics().is_empty());
        assert!(b.replication_path().unwrap().toxics().is_empty());
        // A toxic of the same name set by someone else is left as it is.
        b.replication_path().unwrap().set(Toxic::blackhole().direction(Direction::Upstream));
        drop(ReplicationCut::hold(&topology, "a", "b"));
        let left = b.replication_path().unwrap().toxics();
        assert!(matches!(left[..], [t] if t.kind == ToxicKind::Blackhole), "{left:?}");
    }

    #[test]
    fn regions_disagree_where_one_holds_an_effect_the_other_lacks_not_where_both_lost_it() {
        let primary = check(&["r1"], &[]);
        // Lost in both: agreement (the loss is counted in the primary).
        let both = disagreement(&primary, &check(&["r1"], &[]));
        assert!(both.agrees());
        assert_eq!(both.by_kind, [("create".into(), 0), ("refund".into(), 0)].into());
        // The other lacks what the primary holds: not reached, and divergent.
        let behind = disagreement(&primary, &check(&["r1", "r2"], &["c1"]));
        assert_eq!((behind.not_reached, behind.not_in_primary), (2, 0));
        assert_eq!(behind.by_kind, [("create".into(), 1), ("refund".into(), 1)].into());
        // The other holds what the primary lost: that direction never reached the primary.
        let ahead = disagreement(&primary, &check(&[], &[]));
        assert_eq!((ahead.not_reached, ahead.not_in_primary, ahead.by_kind["refund"]), (0, 1, 1));
        assert!(!ahead.agrees(), "a region whose writes never reached the primary does not agree");
        assert!(!Disagreement::unread(3).agrees());
    }
}
