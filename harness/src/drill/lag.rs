//! Replication lag, measured end to end: heartbeat items written where the service writes
//! (the active region, through its client path) and looked for in every other region
//! (straight at DynamoDB Local, so that only the data counts, not reachability).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{Item, RegionRouter, RegionSet, ReplicatedTable};

/// The attribute of heartbeat items that carries their write time (epoch ms), for the
/// replicator's lag. Service items do not carry it: an update would later count its lag
/// from the create.
pub(crate) const LAG_ATTRIBUTE: &str = "drill_ts_ms";

/// How often a heartbeat is written.
const BEAT: Duration = Duration::from_millis(250);
/// How often the other regions are looked at.
const LOOK: Duration = Duration::from_millis(50);
/// The key of the `n`th heartbeat (the workload's [`heartbeat_key`](crate::Workload::heartbeat_key)).
pub(crate) type HeartbeatKey = Arc<dyn Fn(u64) -> Item + Send + Sync>;

fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

#[derive(Debug)]
struct Heartbeat {
    key: Item,
    source: String,
    written: Instant,
    /// When each other region was first seen holding it.
    seen: BTreeMap<String, Option<Instant>>,
}

/// Heartbeats in flight and the lags measured.
#[derive(Debug, Default)]
pub(crate) struct LagState {
    beats: Vec<Heartbeat>,
    /// Per region, the index of the first heartbeat not yet seen there.
    next: BTreeMap<String, usize>,
    measured: Vec<f64>,
}

impl LagState {
    /// The current lag: the age of the oldest heartbeat some region has not seen, or the
    /// last measured lag when every region is up to date.
    pub(crate) fn current(&self, now: Instant) -> Option<Duration> {
        let oldest = self
            .next
            .iter()
            .filter_map(|(region, &i)| {
                self.beats[i..].iter().find(|b| b.seen.get(region).is_some_and(Option::is_none))
            })
            .map(|b| now.saturating_duration_since(b.written))
            .max();
        oldest.or_else(|| self.measured.last().map(|ms| Duration::from_secs_f64(ms / 1000.0)))
    }

    /// Every lag measured, in ms, and heartbeats never seen as their age at `end`.
    pub(crate) fn lags_ms(&self, end: Instant) -> (Vec<f64>, u64) {
        let mut lags = self.measured.clone();
        let mut unseen = 0;
        for beat in &self.beats {
            for seen in beat.seen.values() {
                if seen.is_none() {
                    unseen += 1;
                    lags.push(end.saturating_duration_since(beat.written).as_secs_f64() * 1000.0);
                }
            }
        }
        (lags, unseen)
    }
}

/// Writes heartbeats and looks for them until `stop` fires.
pub(crate) async fn run(
    router: RegionRouter,
    direct: RegionSet,
    table: ReplicatedTable,
    key_of: HeartbeatKey,
    state: Arc<Mutex<LagState>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seq = 0u64;
    let mut beat = tokio::time::interval(BEAT);
    let mut look = tokio::time::interval(LOOK);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = beat.tick() => {
                seq += 1;
                let active = router.active().clone();
                let key = key_of(seq);
                let written = Instant::now();
                let mut item = key.clone();
                item.insert(LAG_ATTRIBUTE.to_owned(), AttributeValue::N(epoch_ms().to_string()));
                let put = active
                    .dynamodb()
                    .put_item()
                    .table_name(table.name_in(active.name()))
                    .set_item(Some(item))
                    .send();
                // A heartbeat the active region does not take was never written: no lag.
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), put).await {
                    let mut s = state.lock().expect("lag lock");
                    let seen = direct.names().into_iter().filter(|r| *r != active.name()).map(|r| (r.to_owned(), None)).collect();
                    for r in direct.names() {
                        let len = s.beats.len();
                        s.next.entry(r.to_owned()).or_insert(len);
                    }
                    s.beats.push(Heartbeat { key, source: active.name().to_owned(), written, seen });
                }
            }
            _ = look.tick() => look_once(&direct, &table, &state).await,
        }
    }
}

/// Looks for the oldest unseen heartbeat in each region, and the following ones while found.
async fn look_once(direct: &RegionSet, table: &ReplicatedTable, state: &Mutex<LagState>) {
    for region in direct {
        let name = region.name();
        loop {
            let wanted = {
                let s = state.lock().expect("lag lock");
                let start = s.next.get(name).copied().unwrap_or(s.beats.len());
                s.beats[start..]
                    .iter()
                    .enumerate()
                    .find(|(_, b)| b.source != name)
                    .map(|(offset, b)| (start + offset, b.key.clone()))
            };
            let Some((index, key)) = wanted else { break };
            let got = region
                .dynamodb()
                .get_item()
                .table_name(table.name_in(name))
                .set_key(Some(key))
                .consistent_read(true)
                .send();
            let found = matches!(tokio::time::timeout(Duration::from_millis(500), got).await, Ok(Ok(out)) if out.item().is_some());
            if !found {
                break;
            }
            let now = Instant::now();
            let mut s = state.lock().expect("lag lock");
            let beat = &mut s.beats[index];
            let lag = now.saturating_duration_since(beat.written).as_secs_f64() * 1000.0;
            beat.seen.insert(name.to_owned(), Some(now));
            s.measured.push(lag);
            // Skip this one and the heartbeats this region wrote itself.
            let mut next = index + 1;
            while s.beats.get(next).is_some_and(|b| b.source == name) {
                next += 1;
            }
            s.next.insert(name.to_owned(), next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_lag_is_the_oldest_unseen_heartbeat() {
        let t0 = Instant::now();
        let mut s = LagState::default();
        assert_eq!(s.current(t0), None);
        s.beats.push(Heartbeat {
            key: Item::new(),
            source: "a".into(),
            written: t0,
            seen: [("b".to_owned(), None)].into_iter().collect(),
        });
        s.next.insert("a".into(), 0);
        s.next.insert("b".into(), 0);
        assert_eq!(s.current(t0 + Duration::from_secs(2)), Some(Duration::from_secs(2)));
        s.beats[0].seen.insert("b".into(), Some(t0 + Duration::from_millis(300)));
        s.measured.push(300.0);
        s.next.insert("b".into(), 1);
        assert_eq!(s.current(t0 + Duration::from_secs(2)), Some(Duration::from_millis(300)));
        assert_eq!(s.lags_ms(t0 + Duration::from_secs(5)), (vec![300.0], 0));
    }
}
