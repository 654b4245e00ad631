//! The drill: its stages in one direction. Provision → inject (fault guards, on the
//! timeline) alongside the load, the sampler and the check at each failover (the new
//! primary read while replication from the old is held cut) → check (after every fault is
//! healed, until the regions agree) → analyse (typed events to the report) → assert.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use super::analyse::{analyse, Observed};
use super::check::{check_writes, watch_failovers};
use super::events::{switch_event, watch_health, DrillEvent};
use super::inject::run_timeline;
use super::lag::{self, LagState};
use super::load::Driver;
use super::metrics::Recorder;
use super::provision::{provision, wait_healthy, Provisioned};
use super::report::{DrillCost, DrillReport};
use super::sample::{progress, sample};
use super::scenario::{ReplicationMode, Scenario};
use super::topology::Topology;
use super::DrillError;
use crate::workload::{Acked, Workload};

/// The longest the warm-up goes on past `load.warmup` waiting for clean load.
const MAX_WARM_UP: Duration = Duration::from_secs(30);

/// How long past its deadline the check at a failover waits for a call to the region
/// traffic left: each ends on its own deadline (at most the load's timeout), and this is
/// room for the task to be scheduled and its effect recorded.
const CALLS_END_MARGIN: Duration = Duration::from_secs(1);

/// The stream read that [`Drill::stop_replication_from_healed_regions`] answers with errors.
const STREAM_READ: &str = "DynamoDBStreams_20120810.GetRecords";

/// Stops every read of `region`'s stream from now on (the drill's broken-replication
/// switch): its API proxy answers them with server errors, whatever path they take.
fn stop_stream_reads(topology: &Topology, region: &str) {
    if let Some(api) = topology.region(region).and_then(|node| node.api()) {
        api.inject(STREAM_READ, crate::faults::DynamoDbFault::InternalServerError, 1.0);
        tracing::warn!(region, "replication out of {region} stopped for the rest of the drill");
    }
}

/// A drill: a scenario, the workload it drives, and how to run it.
///
/// # Examples
///
/// ```no_run
/// # async fn demo<W: lift_harness::Workload>(workload: W) -> Result<(), lift_harness::drill::DrillError> {
/// use lift_harness::drill::{Drill, Scenario, Summary};
///
/// let scenario = Scenario::load("scenarios/ci_region_outage.toml")?;
/// let report = Drill::new(scenario, workload)?.quiet(true).run().await?;
/// println!("{}", Summary(&report));
/// report.write_to("target/drill-reports".as_ref())?;
/// assert!(report.passed, "{:?}", report.failed_assertions());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Drill<W> {
    scenario: Scenario,
    workload: Arc<W>,
    weights: Vec<(&'static str, u32)>,
    quiet: bool,
    settle: Duration,
    break_updates: bool,
    first_region_acks: bool,
    stop_healed_streams: bool,
}

impl<W: Workload> Drill<W> {
    /// A drill of `scenario` over `workload`, with a progress bar, waiting up to 15 s after
    /// the load for replication to catch up.
    ///
    /// # Errors
    /// [`DrillError::Scenario`] when the scenario is not valid (as [`Scenario::parse`]
    /// checks it), its mix names an operation the workload does not have, or the workload
    /// refuses the mix.
    pub fn new(scenario: Scenario, workload: W) -> Result<Self, DrillError> {
        // Checked again: a scenario built or changed in code has not been through `parse`.
        scenario.validate()?;
        let mix = if scenario.load.mix.is_empty() {
            super::Mix(workload.default_mix())
        } else {
            scenario.load.mix.clone()
        };
        let weights = mix.resolve(workload.name(), workload.operations())?;
        workload.check_mix(&mix.0).map_err(|e| DrillError::Scenario(format!("load.mix: {e}")))?;
        Ok(Self {
            scenario,
            workload: Arc::new(workload),
            weights,
            quiet: false,
            settle: Duration::from_secs(15),
            break_updates: false,
            first_region_acks: false,
            stop_healed_streams: false,
        })
    }

    /// Hides the progress bar.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// How long to wait after the load for the regions to agree (each holding what the
    /// final primary holds, and it what they hold) before counting what they miss.
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Breaks the replication of updates, for the test that proves the check catches it:
    /// the replicated writer keeps updates in the region called and the stream replicator
    /// drops `MODIFY` records. A drill run so must fail.
    #[doc(hidden)]
    pub fn break_update_replication(mut self) -> Self {
        self.break_updates = true;
        self
    }

    /// Acknowledges every write once the region called holds it, for the test that proves
    /// the check at failover catches it: sync mode writes through the one-region writer
    /// always (stream replication carries the write on later), as a client that acknowledged
    /// after the first region would, and counts none of them as degraded. A sync drill with
    /// a failover run so must fail.
    #[doc(hidden)]
    pub fn acknowledge_after_first_region(mut self) -> Self {
        self.first_region_acks = true;
        self
    }

    /// Stops replication out of each region once a fault on it is healed, for the test that
    /// proves the settle check reads both directions: from the heal on, the region's stream
    /// is never read again (the stream API answers it with errors), so what it alone held
    /// never reaches the others, while their writes still reach it. A drill whose final
    /// primary is another region run so must fail when the healed region held anything.
    #[doc(hidden)]
    pub fn stop_replication_from_healed_regions(mut self) -> Self {
        self.stop_healed_streams = true;
        self
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Runs the drill and returns its report (whether or not the assertions passed).
    ///
    /// The drill's DynamoDB Local stops with it, and its tables are deleted from one that
    /// outlives it (`LIFT_DYNAMODB_ENDPOINT`'s), whether it ends with a report or an error,
    /// once nothing it started still writes to them or polls them.
    pub async fn run(&self) -> Result<DrillReport, DrillError> {
        let topology = Topology::start(&self.scenario.regions, self.workload.table()).await?;
        let report = self.run_on(&topology).await;
        topology.drop_shared_tables().await;
        report
    }

    /// Provisions failover over `topology`, drives the load and the faults, and checks what
    /// they left. Everything it starts has stopped when it returns, on every path.
    async fn run_on(&self, topology: &Topology) -> Result<DrillReport, DrillError> {
        let s = &self.scenario;
        let p = provision(s, topology, self.break_updates).await?;
        p.client.degraded.force(self.first_region_acks);
        let driver = Driver {
            load: s.load.clone(),
            weights: self.weights.clone(),
            workload: self.workload.clone(),
            client: p.client.clone(),
        };
        self.warm_up(&p, &driver).await?;
        // Degraded writes count from here, as the meters do.
        let degraded_before = p.client.degraded();
        // The meters count from here: the warm-up's traffic is not the drill's.
        for node in topology.regions() {
            if let Some(meter) = node.meter() {
                meter.drain();
            }
        }

        // The load begins: from here on the clock is the drill's.
        let start = Instant::now();
        let started_at_unix =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let recorder = Arc::new(Recorder::new(start));
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let lag_state: Arc<Mutex<LagState>> = Arc::default();
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let router = p.client.router.clone();
        let direct = topology.direct_regions()?;

        let health = tokio::spawn(watch_health(p.orchestrator.health(), events_tx.clone(), stop_rx.clone()));
        let workload = self.workload.clone();
        let key_of: lag::HeartbeatKey = Arc::new(move |seq| workload.heartbeat_key(seq));
        let lag_task = tokio::spawn(lag::run(
            router.clone(),
            direct.clone(),
            topology.table().clone(),
            key_of,
            lag_state.clone(),
            stop_rx.clone(),
        ));
        let (samples_tx, samples_rx) = watch::channel(None);
        let bar = progress(&s.name, s.load.duration.as_millis() as u64, self.quiet, samples_rx);
        let sampler = tokio::spawn(sample(
            recorder.clone(),
            router.clone(),
            lag_state.clone(),
            samples_tx,
            stop_rx.clone(),
        ));
        let load = tokio::spawn(driver.run(recorder.clone(), acked.clone(), stop_rx.clone()));

        // The fault timeline, every fault healed when it returns; beside it, the check at
        // each failover, which holds replication cut while it reads (it borrows the
        // topology's proxies, so it runs in this task).
        let active = || router.active().name().to_owned();
        let healed = |fault: &super::FaultSpec| {
            if self.stop_healed_streams {
                stop_stream_reads(topology, &fault.region);
            }
        };
        let timeline = async {
            let applied =
                run_timeline(topology, &s.faults, start, s.load.duration, active, healed, &events_tx).await;
            let load_end = Instant::now();
            let _ = stop_tx.send(true);
            (applied, load_end)
        };
        let at_failover = watch_failovers(
            &*self.workload,
            p.orchestrator.subscribe(),
            topology,
            &direct,
            &acked,
            &recorder,
            s.load.timeout + CALLS_END_MARGIN,
            stop_rx.clone(),
        );
        let ((timeline, load_end), at_failover) = tokio::join!(timeline, at_failover);
        let _ = load.await;
        let metered: Option<Vec<(String, Vec<crate::cost::CapacityRecord>)>> = topology
            .regions()
            .iter()
            .map(|node| node.meter().map(|m| (node.name().to_owned(), m.drain())))
            .collect();
        let samples = sampler.await.unwrap_or_default();
        let _ = bar.await;
        let _ = health.await;
        let _ = lag_task.await;
        let applied = timeline?;
        let final_primary = router.active().name().to_owned();

        let acked = acked.lock().expect("acked lock").clone();
        let table = topology.table();
        let mut writes =
            check_writes(&*self.workload, &direct, table, &final_primary, &acked, self.settle).await?;
        writes.missing_at_failover = at_failover.missing;
        writes.failovers_unmeasured = at_failover.unmeasured;
        writes.degraded = p.client.degraded() - degraded_before;
        let (lags_ms, unseen_heartbeats) = lag_state.lock().expect("lag lock").lags_ms(Instant::now());
        // Switches during the warm-up were undone before the clock started: not the drill's.
        for record in p.orchestrator.records().iter().filter(|r| r.traffic_moved_at >= start) {
            let _ = events_tx.send(switch_event(record));
        }
        drop(events_tx);
        let mut events: Vec<DrillEvent> = Vec::new();
        while let Some(event) = events_rx.recv().await {
            events.push(event);
        }
        let target = self.target(&p);
        // Nothing reads the tables from here: stop what still writes or polls them.
        drop(p);
        let completed = recorder.records().len() as u64;
        let cost =
            metered.map(|m| DrillCost::price(&lift_monitoring::cost::PriceTable::embedded(), &m, completed));
        Ok(analyse(Observed {
            scenario: s,
            recorder: &recorder,
            started_at_unix,
            load_end,
            final_primary,
            applied,
            events,
            writes,
            lags_ms,
            unseen_heartbeats,
            samples,
            target,
            cost,
        }))
    }

    /// Runs load before the clock starts until a second of it runs clean (a fresh JVM
    /// compiles its hot paths), then puts traffic back on the primary.
    async fn warm_up(&self, p: &Provisioned, driver: &Driver<W>) -> Result<(), DrillError> {
        let s = &self.scenario;
        if s.load.warmup.is_zero() {
            return Ok(());
        }
        let (stop, stopped) = watch::channel(false);
        let recorder = Arc::new(Recorder::new(Instant::now()));
        let warm = tokio::spawn(driver.clone().run(recorder.clone(), Arc::default(), stopped));
        tokio::time::sleep(s.load.warmup).await;
        let give_up = Instant::now() + MAX_WARM_UP;
        loop {
            let _ = recorder.sample(Instant::now(), String::new(), None);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let second = recorder.sample(Instant::now(), String::new(), None);
            let clean = second.completed > 0
                && second.success_rate >= 0.98
                && second.p99_ms.is_some_and(|p99| p99 < s.load.timeout.as_secs_f64() * 500.0);
            if clean || Instant::now() >= give_up {
                if !clean {
                    tracing::warn!("the warm-up load never ran clean; starting the drill anyway");
                }
                break;
            }
        }
        let _ = stop.send(true);
        let _ = warm.await;
        // A switch during the warm-up is not the drill's: traffic starts on the primary.
        let router = &p.client.router;
        if !router.is_on_primary() {
            tracing::warn!("traffic moved during the warm-up; moving it back to {}", s.primary());
            router.switch_to(s.primary()).map_err(|e| DrillError::Target(e.to_string()))?;
        }
        wait_healthy(p.orchestrator.health(), s.regions.len()).await
    }

    fn target(&self, p: &Provisioned) -> String {
        let s = &self.scenario;
        let replication = match &p.replicator {
            Some(r) => {
                let stats = r.stats();
                format!(
                    "Replicator applied {} changes, max lag {} ms",
                    stats.applied,
                    stats.max_lag.map_or("-".into(), |l| l.as_millis().to_string())
                )
            }
            None => "global table replication".into(),
        };
        format!(
            "{} through lift::disaster (FailoverOrchestrator + RegionRouter{}; {} detection; {})",
            self.workload.name(),
            if s.failover.replication == ReplicationMode::Sync { " + SyncWriter" } else { "" },
            s.failover.detection.name(),
            replication,
        )
    }
}
