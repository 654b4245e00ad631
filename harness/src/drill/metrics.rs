//! What the runner records: every operation, and a sample of them every 100 ms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// One finished operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpRecord {
    /// Started, in ms since the load began.
    pub start_ms: f64,
    /// Finished (answered, failed or timed out), in ms since the load began.
    pub end_ms: f64,
    /// What it was: one of the workload's operation names.
    pub kind: String,
    /// The region called: the failover client's choice when the call began, also when it
    /// timed out.
    pub region: Option<String>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error class, when it failed: `timeout`, `unavailable`, `ProvisionedThroughputExceededException`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl OpRecord {
    /// Its latency in ms.
    pub fn latency_ms(&self) -> f64 {
        self.end_ms - self.start_ms
    }
}

/// What the runner saw in one 100 ms window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// End of the window, in ms since the load began.
    pub t_ms: f64,
    /// Operations finished in the window.
    pub completed: u64,
    /// Of those, successful.
    pub ok: u64,
    /// Of those, failed (errors and timeouts).
    pub errors: u64,
    /// `ok / completed`; 0 when nothing finished while operations were stuck in flight, 1 when
    /// nothing was asked.
    pub success_rate: f64,
    /// Median latency of the window's operations, in ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, in ms.
    pub p99_ms: Option<f64>,
    /// Operations in flight at the end of the window.
    pub in_flight: u64,
    /// The region the failover client routes to.
    pub active_region: String,
    /// Successful operations per serving region in the window.
    pub ok_by_region: BTreeMap<String, u64>,
    /// Replication lag the failover client reports, in ms, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_lag_ms: Option<f64>,
}

/// Shared by the load tasks, the sampler and the runner.
#[derive(Debug)]
pub(crate) struct Recorder {
    start: Instant,
    all: Mutex<Vec<OpRecord>>,
    window: Mutex<Vec<OpRecord>>,
    in_flight: AtomicU64,
    shed: AtomicU64,
    started: AtomicU64,
    /// The calls in flight: the region each called and when it began, by call number.
    calls: Mutex<BTreeMap<u64, (String, Instant)>>,
    next_call: AtomicU64,
    call_ended: Notify,
}

/// A call in flight ([`Recorder::calling`]); it ends when dropped.
#[derive(Debug)]
pub(crate) struct InFlight<'r> {
    recorder: &'r Recorder,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.recorder.calls.lock().expect("calls lock").remove(&self.id);
        self.recorder.call_ended.notify_waiters();
    }
}

impl Recorder {
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            start,
            all: Mutex::new(Vec::new()),
            window: Mutex::new(Vec::new()),
            in_flight: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            started: AtomicU64::new(0),
            calls: Mutex::new(BTreeMap::new()),
            next_call: AtomicU64::new(0),
            call_ended: Notify::new(),
        }
    }

    /// A call to `region`, begun at `began`, in flight until the guard is dropped.
    pub(crate) fn calling(&self, region: &str, began: Instant) -> InFlight<'_> {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.calls.lock().expect("calls lock").insert(id, (region.to_owned(), began));
        InFlight { recorder: self, id }
    }

    /// Waits until no call to `region` begun at or before `began_by` is in flight, or
    /// `deadline`; whether none is.
    pub(crate) async fn calls_ended(&self, region: &str, began_by: Instant, deadline: Instant) -> bool {
        loop {
            let ended = self.call_ended.notified();
            tokio::pin!(ended);
            // Registered before looking, so an end between the look and the wait wakes it.
            ended.as_mut().enable();
            let pending = {
                let calls = self.calls.lock().expect("calls lock");
                calls.values().any(|(r, began)| r == region && *began <= began_by)
            };
            if !pending {
                return true;
            }
            tokio::select! {
                () = ended => {}
                () = tokio::time::sleep_until(deadline.into()) => return false,
            }
        }
    }

    /// Milliseconds since the load began.
    pub(crate) fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// An instant `ms` milliseconds after the load began.
    #[cfg(test)]
    pub(crate) fn at(&self, ms: f64) -> Instant {
        self.start + Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }

    pub(crate) fn begin(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self, record: OpRecord) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.window.lock().expect("window lock").push(record.clone());
        self.all.lock().expect("ops lock").push(record);
    }

    pub(crate) fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn shed_count(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    pub(crate) fn started_count(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Takes the operations finished since the last sample and summarises them.
    pub(crate) fn sample(
        &self,
        now: Instant,
        active_region: String,
        replication_lag: Option<Duration>,
    ) -> Sample {
        let window = std::mem::take(&mut *self.window.lock().expect("window lock"));
        let in_flight = self.in_flight();
        let ok = window.iter().filter(|r| r.ok).count() as u64;
        let completed = window.len() as u64;
        let mut latencies: Vec<f64> = window.iter().map(OpRecord::latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let mut ok_by_region = BTreeMap::new();
        for r in window.iter().filter(|r| r.ok) {
            if let Some(region) = &r.region {
                *ok_by_region.entry(region.clone()).or_insert(0) += 1;
            }
        }
        Sample {
            t_ms: self.ms(now),
            completed,
            ok,
            errors: completed - ok,
            success_rate: match completed {
                0 if in_flight > 0 => 0.0,
                0 => 1.0,
                n => ok as f64 / n as f64,
            },
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
            in_flight,
            active_region,
            ok_by_region,
            replication_lag_ms: replication_lag.map(|d| d.as_secs_f64() * 1000.0),
        }
    }

    /// Every operation finished so far, in finishing order.
    pub(crate) fn records(&self) -> Vec<OpRecord> {
        self.all.lock().expect("ops lock").clone()
    }
}

/// The `q` quantile (0.0 to 1.0) of sorted values, nearest rank.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(start: f64, end: f64, ok: bool, region: &str) -> OpRecord {
        OpRecord {
            start_ms: start,
            end_ms: end,
            kind: "get".into(),
            region: Some(region.into()),
            ok,
            error: (!ok).then(|| "timeout".into()),
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[tokio::test]
    async fn calls_to_a_region_begun_before_a_moment_are_waited_for() {
        let start = Instant::now();
        let recorder = Recorder::new(start);
        let moved = start + Duration::from_millis(10);
        let before = recorder.calling("a", start);
        let _elsewhere = recorder.calling("b", start);
        let _after = recorder.calling("a", moved + Duration::from_millis(1));
        let waited = async {
            let ended = recorder.calls_ended("a", moved, Instant::now() + Duration::from_secs(5)).await;
            (ended, Instant::now())
        };
        let end = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let at = Instant::now();
            drop(before);
            at
        };
        let ((ended, returned), dropped) = tokio::join!(waited, end);
        assert!(ended, "only the call to a begun before the move is waited for");
        assert!(returned >= dropped, "it returned once that call ended");
        let stuck = recorder.calling("a", start);
        assert!(!recorder.calls_ended("a", moved, Instant::now() + Duration::from_millis(50)).await);
        drop(stuck);
        assert!(recorder.calls_ended("a", moved, Instant::now()).await);
    }

    #[test]
    fn samples_summarise_their_window_only() {
        let start = Instant::now();
        let recorder = Recorder::new(start);
        recorder.begin();
        recorder.begin();
        recorder.begin();
        recorder.finish(record(0.0, 10.0, true, "a"));
        recorder.finish(record(0.0, 30.0, false, "a"));
        let s = recorder.sample(start + Duration::from_millis(100), "a".into(), None);
        assert_eq!((s.completed, s.ok, s.errors, s.in_flight), (2, 1, 1, 1));
        assert_eq!(s.success_rate, 0.5);
        assert_eq!(s.p50_ms, Some(10.0));
        assert_eq!(s.ok_by_region.get("a"), Some(&1));
        // Nothing finished, one stuck: a stall reads as 0% success.
        let s = recorder.sample(start + Duration::from_millis(200), "b".into(), None);
        assert_eq!((s.completed, s.success_rate), (0, 0.0));
        assert_eq!(recorder.records().len(), 2);
    }
}
