//! The load stage: the workload's operations at the scenario's rate, each through the
//! failover client, recorded against the region it called.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio::sync::watch;

use super::client::{one_operation, FailoverClient, REGION_HELD_DOWN};
use super::metrics::{OpRecord, Recorder};
use super::scenario::Load;
use crate::workload::{Acked, OpError, Workload};
use lift::disaster::FailureKind;

/// What the load stage shares with its tasks.
pub(crate) struct Driver<W> {
    pub(crate) load: Load,
    pub(crate) weights: Vec<(&'static str, u32)>,
    pub(crate) workload: Arc<W>,
    pub(crate) client: Arc<FailoverClient>,
}

impl<W> Clone for Driver<W> {
    fn clone(&self) -> Self {
        Self {
            load: self.load.clone(),
            weights: self.weights.clone(),
            workload: self.workload.clone(),
            client: self.client.clone(),
        }
    }
}

impl<W: Workload> Driver<W> {
    /// An operation kind, by weight.
    fn pick(&self) -> &'static str {
        let total: u32 = self.weights.iter().map(|(_, w)| w).sum();
        let mut roll = rand::thread_rng().gen_range(0..total.max(1));
        for (kind, weight) in &self.weights {
            if roll < *weight {
                return kind;
            }
            roll -= weight;
        }
        self.weights[0].0
    }

    /// Starts operations at the scenario's rate until stopped, then waits for those in
    /// flight (each ends on its own deadline).
    pub(crate) async fn run(
        self,
        recorder: Arc<Recorder>,
        acked: Arc<Mutex<Vec<Acked>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let period = Duration::from_secs_f64(1.0 / self.load.rate);
        let mut tasks = tokio::task::JoinSet::new();
        let mut n: u32 = 0;
        loop {
            let due = recorder.start() + period.mul_f64(f64::from(n));
            n += 1;
            tokio::select! {
                _ = stop.changed() => break,
                () = tokio::time::sleep_until(due.into()) => {}
            }
            while tasks.try_join_next().is_some() {}
            if recorder.in_flight() >= self.load.concurrency as u64 {
                recorder.shed();
                continue;
            }
            let op = self.workload.next(self.pick(), &self.load);
            recorder.begin();
            tasks.spawn(self.clone().one(op, recorder.clone(), acked.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Runs one operation in the active region and records it against that region, also
    /// when it times out (traffic may have moved meanwhile: the call did not).
    pub(crate) async fn one(self, op: W::Op, recorder: Arc<Recorder>, acked: Arc<Mutex<Vec<Acked>>>) {
        let kind = self.workload.kind(&op);
        let began = Instant::now();
        let call = self.client.call();
        let region = call.region().name().to_owned();
        // In flight until its effect, if any, is among the acknowledged: the check at a
        // failover waits for the calls to the region traffic left.
        let _in_flight = recorder.calling(&region, began);
        // Passive detection: the operation's adaptive timeout in this region (the load's own
        // in probe-only mode), and its outcome reported back.
        let observer = &self.client.observer;
        let timeout = observer.timeout(&region, kind, self.load.timeout);
        let (outcome, one_region) =
            one_operation(tokio::time::timeout(timeout, self.workload.execute(&op, &call))).await;
        let outcome = outcome.unwrap_or_else(|_| Err(OpError::timeout(timeout)));
        let ended = Instant::now();
        if let Some(verdict) = passive_verdict(&outcome) {
            observer.record(&region, kind, began, verdict);
        }
        if let Ok(Some(effect)) = &outcome {
            if one_region {
                self.client.acknowledged_degraded();
            }
            let effect = effect.clone();
            acked.lock().expect("acked lock").push(Acked { op: kind, region: region.clone(), effect });
        }
        recorder.finish(OpRecord {
            start_ms: recorder.ms(began),
            end_ms: recorder.ms(ended),
            kind: kind.to_owned(),
            region: Some(region),
            ok: outcome.is_ok(),
            error: outcome.err().map(|e| {
                tracing::debug!(class = %e.class, "drill operation failed: {}", e.message);
                e.class
            }),
        });
    }
}

/// What an operation's outcome says about the region it called: `None` when it says
/// nothing about that region alone (a synchronous write another region did not take, or a
/// write refused unsent because the monitor already holds the region down).
fn passive_verdict<T>(outcome: &Result<T, OpError>) -> Option<Result<(), FailureKind>> {
    let Err(err) = outcome else { return Some(Ok(())) };
    match err.class.as_str() {
        "timeout" => Some(Err(FailureKind::Timeout)),
        "unavailable" => Some(Err(FailureKind::Connection)),
        "sync_incomplete" | REGION_HELD_DOWN => None,
        code => Some(FailureKind::from_error_code(code).map_or(Ok(()), Err)),
    }
}

#[cfg(test)]
mod tests {

    use lift::disaster::{RegionConfig, RegionRouter, RegionSet, ReplicatedTable};
    use lift::store::{KeyAttribute, TableDef};

    use super::*;
    use crate::drill::ReplicationMode;
    use crate::workload::{Call, Effect};

    /// Moves traffic to `b` while its call is in flight, then answers (or hangs).
    struct Mover {
        router: RegionRouter,
        hang: bool,
    }

    impl Workload for Mover {
        type Op = ();
        fn name(&self) -> &str {
            "mover"
        }
        fn table(&self) -> TableDef {
            TableDef::new("t", KeyAttribute::string("pk"))
        }
        fn operations(&self) -> &[&'static str] {
            &["put"]
        }
        fn next(&self, _kind: &'static str, _load: &Load) {}
        fn kind(&self, _op: &()) -> &'static str {
            "put"
        }
        async fn execute<'a>(&'a self, _op: &'a (), call: &'a Call<'a>) -> Result<Option<Effect>, OpError> {
            self.router.switch_to("b").unwrap();
            if self.hang {
                std::future::pending::<()>().await;
            }
            let key = [("pk".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(call.table().into()))];
            Ok(Some(Effect::written(key.into_iter().collect())))
        }
    }

    fn driver(hang: bool) -> (Driver<Mover>, RegionRouter) {
        let regions = RegionSet::builder()
            .region(RegionConfig::new("a").dynamodb_endpoint("http://127.0.0.1:9"))
            .region(RegionConfig::new("b").dynamodb_endpoint("http://127.0.0.1:9"))
            .build()
            .unwrap();
        let router = RegionRouter::new(regions.clone());
        let table = ReplicatedTable::new(TableDef::new("t", KeyAttribute::string("pk")))
            .with_name_in("a", "t-a")
            .with_name_in("b", "t-b");
        let client = FailoverClient {
            router: router.clone(),
            regions,
            table,
            health: watch::channel(Default::default()).1,
            observer: lift::disaster::RequestObserver::disabled(),
            mode: ReplicationMode::Async,
            sync_timeout: Duration::from_secs(1),
            degraded: Default::default(),
            break_updates: false,
        };
        let load: Load = toml::from_str("rate = 1\nduration = \"1s\"\ntimeout = \"1s\"").unwrap();
        let workload = Arc::new(Mover { router: router.clone(), hang });
        (Driver { load, weights: vec![("put", 1)], workload, client: Arc::new(client) }, router)
    }

    #[test]
    fn only_failures_of_the_region_called_count_against_it() {
        let err = |class: &str| Err::<(), _>(OpError::new(class, "x"));
        assert_eq!(passive_verdict(&Ok::<(), OpError>(())), Some(Ok(())));
        assert_eq!(passive_verdict(&err("timeout")), Some(Err(FailureKind::Timeout)));
        assert_eq!(passive_verdict(&err("unavailable")), Some(Err(FailureKind::Connection)));
        assert_eq!(passive_verdict(&err("ThrottlingException")), Some(Err(FailureKind::Throttled)));
        assert_eq!(passive_verdict(&err("InternalServerError")), Some(Err(FailureKind::ServerError)));
        // The region answered: a business outcome, not a failure.
        for answer in ["not_found", "over_refund", "ConditionalCheckFailedException", "other"] {
            assert_eq!(passive_verdict(&err(answer)), Some(Ok(())), "{answer}");
        }
        assert_eq!(passive_verdict(&err("sync_incomplete")), None, "another region may have failed it");
        assert_eq!(passive_verdict(&err(REGION_HELD_DOWN)), None, "nothing was sent");
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_is_attributed_to_the_region_it_called() {
        for hang in [false, true] {
            let (driver, router) = driver(hang);
            let (recorder, acked) = (Arc::new(Recorder::new(Instant::now())), Arc::default());
            recorder.begin();
            driver.one((), recorder.clone(), Arc::clone(&acked)).await;
            assert_eq!(router.active().name(), "b", "traffic moved during the call");
            let record = &recorder.records()[0];
            assert_eq!(record.region.as_deref(), Some("a"), "hang = {hang}: {record:?}");
            assert_eq!(record.ok, !hang);
            let acked = acked.lock().unwrap();
            if hang {
                assert_eq!(record.error.as_deref(), Some("timeout"));
                assert!(acked.is_empty(), "a timed-out write is not acknowledged");
            } else {
                assert_eq!(acked[0].region, "a");
                let key = acked[0].effect.key()["pk"].as_s().unwrap().clone();
                assert_eq!(key, "t-a", "the call's table is the called region's");
            }
        }
    }
}
