//! The check stage: after the faults are healed, every acknowledged effect is read back
//! from the final primary, then from each other region until it converges or the settle
//! time runs out. It heals nothing: the inject stage's guards have done that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lift::disaster::{FailoverRecord, RegionSet, ReplicatedTable, SwitchKind};
use tokio::sync::watch;

use super::report::{KindCheck, WriteCheck};
use super::DrillError;
use crate::workload::{key_id, Acked, EffectCheck, OpCheck, Workload};

/// Reads the acknowledged effects back from `final_primary`, then waits up to `settle`
/// for the other regions to agree with it (to hold what it holds).
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
    let held = workload.check(primary, table, acked).await.map_err(target)?;
    let mut by_kind: BTreeMap<String, KindCheck> = held
        .by_op
        .iter()
        .map(|(kind, c)| (kind.clone(), KindCheck { checked: c.checked, lost: c.lost(), divergent: 0 }))
        .collect();
    let mut missing_by_region = BTreeMap::new();
    let deadline = Instant::now() + settle;
    for region in direct.iter().filter(|r| r.name() != final_primary) {
        let (missing, last) = loop {
            let (missing, last) = match workload.check(region, table, acked).await {
                Ok(c) => (disagreement(&held, &c).0, Some(c)),
                Err(_) => (acked.len() as u64, None),
            };
            if missing == 0 || Instant::now() >= deadline {
                break (missing, last);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        if let Some(last) = last {
            for (kind, n) in disagreement(&held, &last).1 {
                by_kind.entry(kind).or_default().divergent += n;
            }
        }
        missing_by_region.insert(region.name().to_owned(), missing);
    }
    Ok(WriteCheck {
        acknowledged: acked.len() as u64,
        checked_in: final_primary.to_owned(),
        lost: held.lost(),
        lost_examples: held.examples(20),
        missing_by_region,
        missing_at_failover: Vec::new(),
        by_kind,
    })
}

/// Where `other` disagrees with the final primary: effects the primary holds that `other`
/// lacks (what never reached it), and, per kind, every effect held by one of the two only.
/// An effect lost in both regions is not a disagreement: it is lost, and counted so.
fn disagreement(primary: &EffectCheck, other: &EffectCheck) -> (u64, BTreeMap<String, u64>) {
    let lost = |c: &OpCheck| -> BTreeSet<String> { c.missing.iter().chain(&c.stale).map(key_id).collect() };
    let none = OpCheck::default();
    let mut not_reached = 0;
    let mut by_kind = BTreeMap::new();
    for (kind, theirs) in &other.by_op {
        let (mine, theirs) = (lost(primary.by_op.get(kind).unwrap_or(&none)), lost(theirs));
        let only_theirs = theirs.difference(&mine).count() as u64;
        not_reached += only_theirs;
        by_kind.insert(kind.clone(), only_theirs + mine.difference(&theirs).count() as u64);
    }
    (not_reached, by_kind)
}

/// At each failover, reads the effects acknowledged so far back from the new primary
/// (straight at its DynamoDB): what a failover at that moment would lose.
pub(crate) async fn watch_failovers<W: Workload>(
    workload: Arc<W>,
    mut records: watch::Receiver<Vec<FailoverRecord>>,
    direct: RegionSet,
    table: ReplicatedTable,
    acked: Arc<Mutex<Vec<Acked>>>,
    mut stop: watch::Receiver<bool>,
) -> Vec<u64> {
    let mut seen = records.borrow_and_update().len();
    let mut missing = Vec::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return missing,
            changed = records.changed() => if changed.is_err() { return missing },
        }
        let new: Vec<_> = records.borrow_and_update()[seen..].to_vec();
        seen += new.len();
        for record in new.iter().filter(|r| r.kind == SwitchKind::FailOver) {
            let acked: Vec<Acked> = acked.lock().expect("acked lock").clone();
            let Some(region) = direct.by_name(&record.to) else { continue };
            match workload.check(region, &table, &acked).await {
                Ok(check) => missing.push(check.lost()),
                Err(err) => tracing::warn!("cannot check the new primary at failover: {err}"),
            }
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

    #[test]
    fn regions_disagree_where_one_holds_an_effect_the_other_lacks_not_where_both_lost_it() {
        let primary = check(&["r1"], &[]);
        // Lost in both: agreement (the loss is counted in the primary).
        assert_eq!(
            disagreement(&primary, &check(&["r1"], &[])),
            (0, [("create".into(), 0), ("refund".into(), 0)].into())
        );
        // The other lacks what the primary holds: not reached, and divergent.
        let (not_reached, by_kind) = disagreement(&primary, &check(&["r1", "r2"], &["c1"]));
        assert_eq!(not_reached, 2);
        assert_eq!(by_kind, [("create".into(), 1), ("refund".into(), 1)].into());
        // The other holds what the primary lost: divergent, though nothing is missing there.
        let (not_reached, by_kind) = disagreement(&primary, &check(&[], &[]));
        assert_eq!((not_reached, by_kind["refund"]), (0, 1));
    }
}
