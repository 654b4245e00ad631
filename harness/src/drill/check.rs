//! The check stage: after the faults are healed, every acknowledged effect is read back
//! from the final primary, then from each other region until it converges or the settle
//! time runs out. It heals nothing: the inject stage's guards have done that.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lift::disaster::{FailoverRecord, RegionSet, ReplicatedTable, SwitchKind};
use tokio::sync::watch;

use super::report::{KindCheck, WriteCheck};
use super::DrillError;
use crate::workload::{Acked, Workload};

/// Reads the acknowledged effects back from `final_primary`, then waits up to `settle`
/// for the other regions to hold them too.
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
                Ok(c) => (c.lost(), Some(c)),
                Err(_) => (acked.len() as u64, None),
            };
            if missing == 0 || Instant::now() >= deadline {
                break (missing, last);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        if let Some(last) = last {
            for (kind, c) in &last.by_op {
                by_kind.entry(kind.clone()).or_default().divergent += c.lost();
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
