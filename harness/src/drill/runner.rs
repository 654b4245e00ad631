//! The drill runner: topology up, load through the failover client, faults on the timeline,
//! a sample every 100 ms, then the write check and the verdicts.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lift::disaster::{
    AckedWrite, FailoverOrchestrator, FailoverPolicy, HealthSnapshot, HealthState, MonitorConfig, Replicator,
    RpoCheck, StartPosition, SwitchKind,
};
use tokio::sync::watch;

use super::lag::{self, LagState};
use super::metrics::{percentile, OpRecord, Recorder, Sample};
use super::report::{AssertionResult, DrillReport, EventRecord, FaultReport, LagSummary, Totals, WriteCheck};
use super::scenario::{FaultKind, FaultSpec, ReplicationMode, Scenario};
use super::topology::Topology;
use super::workload::{payment_key, FailoverClient, Op, OpError, Workload, LAG_ATTRIBUTE};
use super::DrillError;
use crate::faults::{DynamoDbFault, ProcessFault, Toxic, ANY_OPERATION};

/// How often the runner samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// How long the regions may take to be declared healthy before the load starts.
const WARM_UP: Duration = Duration::from_secs(20);
/// The longest the warm-up goes on past `load.warmup` waiting for clean load.
const MAX_WARM_UP: Duration = Duration::from_secs(30);
/// The key of the fingerprint HMAC in drills (test data only).
const FINGERPRINT_KEY: &[u8] = b"lift-drill-fingerprint-key";

/// A drill: a scenario and how to run it.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lift_harness::drill::DrillError> {
/// use lift_harness::drill::{Drill, Scenario, Summary};
///
/// let report = Drill::new(Scenario::load("scenarios/ci_region_outage.toml")?).quiet(true).run().await?;
/// println!("{}", Summary(&report));
/// report.write_to("target/drill-reports".as_ref())?;
/// assert!(report.passed, "{:?}", report.failed_assertions());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Drill {
    scenario: Scenario,
    quiet: bool,
    settle: Duration,
}

/// A fault as it happened.
#[derive(Debug, Clone)]
struct Applied {
    spec: FaultSpec,
    action: String,
    injected: Option<Instant>,
    healed: Option<Instant>,
    active_at_injection: Option<String>,
}

impl Drill {
    /// A drill of `scenario`, with a progress bar, waiting up to 15 s after the load for
    /// replication to catch up.
    pub fn new(scenario: Scenario) -> Self {
        Self { scenario, quiet: false, settle: Duration::from_secs(15) }
    }

    /// Hides the progress bar.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// How long to wait after the load for the other regions to catch up before counting
    /// what they miss.
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Runs the drill and returns its report (whether or not the assertions passed).
    pub async fn run(&self) -> Result<DrillReport, DrillError> {
        let s = &self.scenario;
        let topology = Topology::start(&s.regions).await?;
        let client_regions = topology.client_regions(s.load.timeout)?;
        let target = |e: &dyn std::fmt::Display| DrillError::Target(e.to_string());
        let monitor = MonitorConfig::default()
            .interval(s.failover.probe_interval)
            .timeout(s.failover.probe_timeout)
            .failure_threshold(s.failover.failure_threshold)
            .recovery_threshold(s.failover.recovery_threshold);
        let policy = FailoverPolicy::default()
            .failover_enabled(s.failover.enabled)
            .failback_enabled(s.failover.failback)
            .failback_after(s.failover.failback_after)
            .min_dwell(s.failover.min_dwell);
        let orchestrator = FailoverOrchestrator::builder(client_regions.clone())
            .monitor(monitor)
            .policy(policy)
            .start()
            .map_err(|e| target(&e))?;
        let router = orchestrator.router().clone();
        let replicator = Replicator::builder(topology.replication_regions()?)
            .table(topology.table().clone())
            .poll_interval(Duration::from_millis(100))
            .start_position(StartPosition::TrimHorizon)
            .lag_attribute(LAG_ATTRIBUTE)
            .start()
            .await
            .map_err(|e| target(&e))?;
        let client = Arc::new(FailoverClient {
            router: router.clone(),
            regions: client_regions.clone(),
            table: topology.table().clone(),
            health: orchestrator.health(),
            mode: s.failover.replication,
            fingerprint_key: FINGERPRINT_KEY.to_vec(),
            sync_timeout: s.load.timeout,
            degraded: Default::default(),
        });
        wait_healthy(orchestrator.health(), s.regions.len()).await?;
        let workload = Arc::new(Workload::new(s.load.mix, s.load.tenants));
        if !s.load.warmup.is_zero() {
            let (stop, stopped) = watch::channel(false);
            let warm_recorder = Arc::new(Recorder::new(Instant::now()));
            let warm = tokio::spawn(load_loop(
                s.clone(),
                client.clone(),
                workload.clone(),
                warm_recorder.clone(),
                Arc::default(),
                stopped,
            ));
            // At least the warm-up, then until a second of load runs clean (a fresh JVM
            // takes a while to compile its hot paths), for at most MAX_WARM_UP more.
            tokio::time::sleep(s.load.warmup).await;
            let give_up = Instant::now() + MAX_WARM_UP;
            loop {
                let _ = warm_recorder.sample(Instant::now(), String::new(), None);
                tokio::time::sleep(Duration::from_secs(1)).await;
                let second = warm_recorder.sample(Instant::now(), String::new(), None);
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
            if !router.is_on_primary() {
                tracing::warn!("traffic moved during the warm-up; moving it back to {}", s.primary());
                router.switch_to(s.primary()).map_err(|e| target(&e))?;
            }
            wait_healthy(orchestrator.health(), s.regions.len()).await?;
        }

        // The load begins: from here on the clock is the drill's.
        let start = Instant::now();
        let started_at_unix =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let recorder = Arc::new(Recorder::new(start));
        let acked: Arc<Mutex<Vec<(AckedWrite, String)>>> = Arc::default();
        let events: Arc<Mutex<Vec<EventRecord>>> = Arc::default();
        let lag_state: Arc<Mutex<LagState>> = Arc::default();
        let (stop_tx, stop_rx) = watch::channel(false);

        let health_task =
            tokio::spawn(watch_health(orchestrator.health(), start, events.clone(), stop_rx.clone()));
        let lag_task = tokio::spawn(lag::run(
            router.clone(),
            topology.direct_regions()?,
            topology.table().clone(),
            lag_state.clone(),
            stop_rx.clone(),
        ));
        let rpo_task = tokio::spawn(watch_failovers(
            orchestrator.subscribe(),
            topology.direct_regions()?,
            topology.table().clone(),
            acked.clone(),
            stop_rx.clone(),
        ));
        let progress = self.progress_bar();
        let sampler = tokio::spawn(sample_loop(
            recorder.clone(),
            router.clone(),
            lag_state.clone(),
            progress.clone(),
            stop_rx.clone(),
        ));
        let load = tokio::spawn(load_loop(
            s.clone(),
            client.clone(),
            workload.clone(),
            recorder.clone(),
            acked.clone(),
            stop_rx.clone(),
        ));

        // The fault timeline, on the real clock.
        let mut applied: Vec<Applied> = s
            .faults
            .iter()
            .map(|f| Applied {
                spec: f.clone(),
                action: String::new(),
                injected: None,
                healed: None,
                active_at_injection: None,
            })
            .collect();
        let mut timeline: Vec<(Duration, usize, bool)> = Vec::new();
        for (i, f) in s.faults.iter().enumerate() {
            timeline.push((f.at, i, true));
            if let Some(heal) = f.heal_at.filter(|h| *h < s.load.duration) {
                timeline.push((heal, i, false));
            }
        }
        timeline.sort_by_key(|(at, i, inject)| (*at, !*inject, *i));
        let mut failure = None;
        for (at, i, inject) in timeline {
            tokio::time::sleep_until((start + at).into()).await;
            let result = if inject {
                applied[i].active_at_injection = Some(router.active().name().to_owned());
                let r = inject_fault(&topology, &applied[i].spec);
                applied[i].injected = Some(Instant::now());
                r.map(|action| applied[i].action = action)
            } else {
                let r = heal_fault(&topology, &applied[i].spec).await;
                applied[i].healed = Some(Instant::now());
                r
            };
            let (kind, region) = (applied[i].spec.kind.name(), applied[i].spec.region.clone());
            events.lock().expect("events lock").push(EventRecord {
                t_ms: recorder.ms(Instant::now()),
                region,
                kind: if inject { "fault_injected" } else { "fault_healed" }.into(),
                detail: kind.into(),
            });
            if let Err(err) = result {
                failure = Some(err);
                break;
            }
        }
        if failure.is_none() {
            tokio::time::sleep_until((start + s.load.duration).into()).await;
        }
        let load_end = Instant::now();
        let _ = stop_tx.send(true);
        let _ = load.await;
        let samples = sampler.await.unwrap_or_default();
        let _ = health_task.await;
        let _ = lag_task.await;
        let missing_at_failover = rpo_task.await.unwrap_or_default();
        progress.finish_and_clear();
        let final_primary = router.active().name().to_owned();
        if let Some(err) = failure {
            heal_all(&topology, &mut applied).await;
            return Err(err);
        }

        // What the final primary holds, before any heal lets replication catch up.
        let acked = acked.lock().expect("acked lock").clone();
        let mut writes = self.check_writes(&topology, &final_primary, &acked, &mut applied).await?;
        writes.missing_at_failover = missing_at_failover;
        let lag_end = Instant::now();
        let (lags, unseen) = lag_state.lock().expect("lag lock").lags_ms(lag_end);
        let records = recorder.records();
        let mut events = events.lock().expect("events lock").clone();
        // Switches during the warm-up were undone before the clock started: not the drill's.
        let records_in_drill: Vec<_> =
            orchestrator.records().into_iter().filter(|r| r.traffic_moved_at >= start).collect();
        for record in &records_in_drill {
            events.push(EventRecord {
                t_ms: recorder.ms(record.traffic_moved_at),
                region: record.to.clone(),
                kind: match record.kind {
                    SwitchKind::FailOver => "failover".into(),
                    SwitchKind::FailBack => "failback".into(),
                },
                detail: format!(
                    "{} -> {}; lift measured {} ms to detect and {} ms to move from the first failing probe",
                    record.from,
                    record.to,
                    record.time_to_detect.as_millis(),
                    record.time_to_failover.as_millis()
                ),
            });
        }
        events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let failovers = records_in_drill.iter().filter(|r| r.kind == SwitchKind::FailOver).count() as u32;
        let replication = replicator.stats();
        drop(replicator);
        drop(orchestrator);

        let mut report = DrillReport {
            scenario: s.name.clone(),
            description: s.description.clone(),
            started_at_unix,
            duration_secs: load_end.duration_since(start).as_secs_f64(),
            regions: s.regions.iter().map(|r| r.name.clone()).collect(),
            initial_primary: s.primary().to_owned(),
            final_primary,
            failover_enabled: s.failover.enabled,
            replication: match s.failover.replication {
                ReplicationMode::Sync => "sync".into(),
                ReplicationMode::Async => "async".into(),
            },
            target: format!(
                "lift::disaster (FailoverOrchestrator + RegionRouter{}; Replicator applied {} changes, max lag {} ms; {} degraded creates)",
                if s.failover.replication == ReplicationMode::Sync { " + SyncWriter" } else { "" },
                replication.applied,
                replication.max_lag.map_or("-".into(), |l| l.as_millis().to_string()),
                client.degraded.load(Ordering::Relaxed)
            ),
            totals: totals(&records, recorder.started_count(), recorder.shed_count()),
            faults: Vec::new(),
            events,
            failovers,
            time_to_detect_ms: None,
            time_to_failover_ms: None,
            errors_in_window: 0,
            writes,
            replication_lag: lag_summary(&lags, unseen),
            assertions: Vec::new(),
            passed: false,
            samples,
        };
        fill_fault_reports(&mut report, &applied, &records, &recorder, load_end);
        report.assertions = evaluate(s, &report);
        report.passed = report.assertions.iter().all(|a| a.passed);
        Ok(report)
    }

    fn progress_bar(&self) -> ProgressBar {
        let total = self.scenario.load.duration.as_millis() as u64;
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10))
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed:>4} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("drill {}", self.scenario.name));
        bar
    }

    /// Reads the acknowledged creates back from the final primary (before healing), then
    /// heals every fault and waits for the other regions to catch up.
    async fn check_writes(
        &self,
        topology: &Topology,
        final_primary: &str,
        acked: &[(AckedWrite, String)],
        applied: &mut [Applied],
    ) -> Result<WriteCheck, DrillError> {
        let direct = topology.direct_regions()?;
        let writes: Vec<AckedWrite> = acked.iter().map(|(w, _)| w.clone()).collect();
        let primary = direct.by_name(final_primary).expect("the final primary is a drill region").clone();
        let check = RpoCheck::new(&primary, topology.table());
        let before_heal = check.check(&writes).await;
        heal_all(topology, applied).await;
        let report = match before_heal {
            Ok(report) => report,
            // A killed primary cannot be read until it is back.
            Err(_) => check.check(&writes).await.map_err(|e| DrillError::Target(e.to_string()))?,
        };
        let lost_examples = report
            .missing
            .iter()
            .chain(report.stale.iter())
            .take(20)
            .map(|key| {
                let text = lift::disaster::key_text(key);
                format!(
                    "{}/{}",
                    text.get("pk").cloned().unwrap_or_default(),
                    text.get("sk").cloned().unwrap_or_default()
                )
            })
            .collect();
        let mut missing_by_region = BTreeMap::new();
        let deadline = Instant::now() + self.settle;
        for region in direct.iter().filter(|r| r.name() != final_primary) {
            let check = RpoCheck::new(region, topology.table());
            let missing = loop {
                let missing =
                    check.check(&writes).await.map(|r| r.lost() as u64).unwrap_or(writes.len() as u64);
                if missing == 0 || Instant::now() >= deadline {
                    break missing;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            missing_by_region.insert(region.name().to_owned(), missing);
        }
        Ok(WriteCheck {
            acknowledged: writes.len() as u64,
            checked_in: final_primary.to_owned(),
            lost: report.lost() as u64,
            lost_examples,
            missing_by_region,
            missing_at_failover: Vec::new(),
        })
    }
}

/// At each failover, reads the creates acknowledged so far back from the new primary
/// (straight at its DynamoDB Local): what a failover at that moment would lose.
async fn watch_failovers(
    mut records: watch::Receiver<Vec<lift::disaster::FailoverRecord>>,
    direct: lift::disaster::RegionSet,
    table: lift::disaster::ReplicatedTable,
    acked: Arc<Mutex<Vec<(AckedWrite, String)>>>,
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
            let writes: Vec<AckedWrite> =
                acked.lock().expect("acked lock").iter().map(|(w, _)| w.clone()).collect();
            let Some(region) = direct.by_name(&record.to) else { continue };
            match RpoCheck::new(region, &table).check(&writes).await {
                Ok(report) => missing.push(report.lost() as u64),
                Err(err) => tracing::warn!("cannot check the new primary at failover: {err}"),
            }
        }
    }
}

/// Waits until the monitor holds every region healthy.
async fn wait_healthy(mut health: watch::Receiver<HealthSnapshot>, regions: usize) -> Result<(), DrillError> {
    let deadline = tokio::time::Instant::now() + WARM_UP;
    loop {
        {
            let snapshot = health.borrow_and_update();
            let healthy = snapshot.regions.iter().filter(|r| r.state == HealthState::Healthy).count();
            if healthy == regions {
                return Ok(());
            }
        }
        if tokio::time::timeout_at(deadline, health.changed()).await.is_err() {
            let snapshot = health.borrow().clone();
            let states: Vec<String> = snapshot
                .regions
                .iter()
                .map(|r| {
                    format!("{} {} ({})", r.region, r.state, r.last_error.as_deref().unwrap_or("no error"))
                })
                .collect();
            return Err(DrillError::Target(format!(
                "regions not healthy {}s after start-up: {}",
                WARM_UP.as_secs(),
                states.join(", ")
            )));
        }
    }
}

/// Records each region's state changes, at the instants the monitor gives.
async fn watch_health(
    mut health: watch::Receiver<HealthSnapshot>,
    start: Instant,
    events: Arc<Mutex<Vec<EventRecord>>>,
    mut stop: watch::Receiver<bool>,
) {
    let ms = |at: Instant| at.saturating_duration_since(start).as_secs_f64() * 1000.0;
    let mut previous: BTreeMap<String, HealthState> =
        health.borrow_and_update().regions.iter().map(|r| (r.region.clone(), r.state)).collect();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            changed = health.changed() => if changed.is_err() { return },
        }
        let snapshot = health.borrow_and_update().clone();
        for status in &snapshot.regions {
            if previous.get(&status.region) == Some(&status.state) {
                continue;
            }
            previous.insert(status.region.clone(), status.state);
            let (kind, at) = match status.state {
                HealthState::Unhealthy => ("region_down", status.down_since),
                HealthState::Healthy => ("region_up", status.up_since),
                HealthState::Unknown => ("region_unknown", None),
            };
            let detail = match status.state {
                HealthState::Unhealthy => format!(
                    "{} failing probe rounds in a row; {}",
                    status.consecutive_failures,
                    status.last_error.as_deref().unwrap_or("no error recorded")
                ),
                _ => format!("{} passing probe rounds in a row", status.consecutive_successes),
            };
            events.lock().expect("events lock").push(EventRecord {
                t_ms: ms(at.unwrap_or_else(Instant::now)),
                region: status.region.clone(),
                kind: kind.into(),
                detail,
            });
        }
    }
}

async fn sample_loop(
    recorder: Arc<Recorder>,
    router: lift::disaster::RegionRouter,
    lag: Arc<Mutex<LagState>>,
    progress: ProgressBar,
    mut stop: watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval_at((recorder.start() + SAMPLE_INTERVAL).into(), SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticks.tick() => {}
        }
        let now = Instant::now();
        let current_lag = lag.lock().expect("lag lock").current(now);
        let sample = recorder.sample(now, router.active().name().to_owned(), current_lag);
        progress.set_position(sample.t_ms as u64);
        progress.set_message(format!(
            "{:>5.1}% ok  p50 {:>5} ms  p99 {:>5} ms  {:>4} in flight  active {}",
            sample.success_rate * 100.0,
            sample.p50_ms.map_or("-".into(), |v| format!("{v:.0}")),
            sample.p99_ms.map_or("-".into(), |v| format!("{v:.0}")),
            sample.in_flight,
            sample.active_region
        ));
        samples.push(sample);
    }
    // The last, partial window.
    let now = Instant::now();
    let current_lag = lag.lock().expect("lag lock").current(now);
    samples.push(recorder.sample(now, router.active().name().to_owned(), current_lag));
    samples
}

/// Starts operations at the scenario's rate until stopped, then waits for those in flight.
async fn load_loop(
    scenario: Scenario,
    client: Arc<FailoverClient>,
    workload: Arc<Workload>,
    recorder: Arc<Recorder>,
    acked: Arc<Mutex<Vec<(AckedWrite, String)>>>,
    mut stop: watch::Receiver<bool>,
) {
    let period = Duration::from_secs_f64(1.0 / scenario.load.rate);
    let timeout = scenario.load.timeout;
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
        if recorder.in_flight() >= scenario.load.concurrency as u64 {
            recorder.shed();
            continue;
        }
        let op = workload.next();
        let (client, workload, recorder, acked) =
            (client.clone(), workload.clone(), recorder.clone(), acked.clone());
        recorder.begin();
        tasks.spawn(async move {
            let began = Instant::now();
            let (region, outcome) = match tokio::time::timeout(timeout, client.execute(&op)).await {
                Ok((region, outcome)) => (Some(region), outcome),
                Err(_) => (Some(client.router.active().name().to_owned()), Err(OpError::timeout(timeout))),
            };
            let ended = Instant::now();
            if let (Ok(done), Op::Create { tenant, payment }) = (&outcome, &op) {
                workload.created(tenant, &payment.id);
                let write =
                    done.acked.clone().unwrap_or_else(|| AckedWrite::new(payment_key(tenant, &payment.id)));
                acked.lock().expect("acked lock").push((write, region.clone().unwrap_or_default()));
            }
            recorder.finish(OpRecord {
                start_ms: recorder.ms(began),
                end_ms: recorder.ms(ended),
                kind: op.kind(),
                region,
                ok: outcome.is_ok(),
                error: outcome.err().map(|e| {
                    tracing::debug!(class = %e.class, "drill operation failed: {}", e.message);
                    e.class
                }),
            });
        });
    }
    // Operations in flight finish (or time out) on their own deadline.
    while tasks.join_next().await.is_some() {}
}

/// Applies a fault; returns what was done, for the report.
fn inject_fault(topology: &Topology, fault: &FaultSpec) -> Result<String, DrillError> {
    let node = topology.region(&fault.region).expect("validated region");
    let fail = |reason: String| DrillError::Inject {
        action: "inject",
        kind: fault.kind.name(),
        region: fault.region.clone(),
        reason,
    };
    let p = fault.rate.unwrap_or(1.0);
    Ok(match fault.kind {
        FaultKind::RegionOutage => {
            node.client_path().set(Toxic::blackhole().probability(p));
            node.replication_path().set(Toxic::blackhole().probability(p));
            "blackhole on the client and replication paths (pooled connections included)".into()
        }
        FaultKind::Latency => {
            let delay = fault.latency.unwrap_or_default();
            let jitter = fault.jitter.unwrap_or_default();
            let toxic = Toxic::latency(delay).jitter(jitter).probability(p);
            node.client_path().set(toxic);
            node.replication_path().set(toxic);
            format!("+{} ms (jitter {} ms) on every response", delay.as_millis(), jitter.as_millis())
        }
        FaultKind::Throttling => {
            let error = fault.error.unwrap_or(DynamoDbFault::ProvisionedThroughputExceeded);
            let operations = operations(fault);
            for op in &operations {
                node.api().inject(op, error, p);
            }
            format!(
                "{:.0}% of {} answered {} {}",
                p * 100.0,
                operations.join(", "),
                error.status(),
                error.code()
            )
        }
        FaultKind::Partition => {
            let peers = partition_peers(topology, fault);
            node.replication_path().set(Toxic::blackhole());
            for peer in &peers {
                topology.region(peer).expect("validated peer").replication_path().set(Toxic::blackhole());
            }
            format!(
                "replication between {} and {} blackholed; clients reach both",
                fault.region,
                peers.join(", ")
            )
        }
        FaultKind::ProcessKill => {
            let action = fault.action.unwrap_or(ProcessFault::Kill);
            #[cfg(unix)]
            {
                let dedicated =
                    node.dedicated().ok_or_else(|| fail("the region has no dedicated dynamodb".into()))?;
                action.inject(dedicated).map_err(|e| fail(e.to_string()))?;
                match action {
                    ProcessFault::Kill => "dynamodb local killed (SIGKILL)".into(),
                    ProcessFault::Pause => "dynamodb local paused (SIGSTOP)".into(),
                }
            }
            #[cfg(not(unix))]
            {
                let _ = action;
                return Err(fail("process faults need a unix system".into()));
            }
        }
    })
}

/// Undoes a fault.
async fn heal_fault(topology: &Topology, fault: &FaultSpec) -> Result<(), DrillError> {
    let node = topology.region(&fault.region).expect("validated region");
    match fault.kind {
        FaultKind::RegionOutage => {
            node.client_path().remove("blackhole-both");
            node.replication_path().remove("blackhole-both");
        }
        FaultKind::Latency => {
            node.client_path().remove("latency-downstream");
            node.replication_path().remove("latency-downstream");
        }
        FaultKind::Throttling => {
            for op in operations(fault) {
                node.api().remove(&op);
            }
        }
        FaultKind::Partition => {
            node.replication_path().remove("blackhole-both");
            for peer in partition_peers(topology, fault) {
                topology.region(&peer).expect("validated peer").replication_path().remove("blackhole-both");
            }
        }
        FaultKind::ProcessKill =>
        {
            #[cfg(unix)]
            if let Some(dedicated) = node.dedicated() {
                fault.action.unwrap_or(ProcessFault::Kill).heal(dedicated).await.map_err(|e| {
                    DrillError::Inject {
                        action: "heal",
                        kind: fault.kind.name(),
                        region: fault.region.clone(),
                        reason: e.to_string(),
                    }
                })?;
            }
        }
    }
    Ok(())
}

/// Heals every fault still in effect (at the end of the drill).
async fn heal_all(topology: &Topology, applied: &mut [Applied]) {
    for fault in applied.iter_mut().filter(|f| f.injected.is_some() && f.healed.is_none()) {
        if let Err(err) = heal_fault(topology, &fault.spec).await {
            tracing::warn!("{err}");
        }
    }
}

fn operations(fault: &FaultSpec) -> Vec<String> {
    if fault.operations.is_empty() {
        vec![ANY_OPERATION.to_owned()]
    } else {
        fault.operations.clone()
    }
}

fn partition_peers(topology: &Topology, fault: &FaultSpec) -> Vec<String> {
    match &fault.peer {
        Some(peer) => vec![peer.clone()],
        None => {
            topology.regions().iter().map(|r| r.name().to_owned()).filter(|r| *r != fault.region).collect()
        }
    }
}

fn totals(records: &[OpRecord], started: u64, shed: u64) -> Totals {
    let mut latencies: Vec<f64> = records.iter().map(OpRecord::latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let ok = records.iter().filter(|r| r.ok).count() as u64;
    let mut errors_by_class = BTreeMap::new();
    let mut ok_by_region = BTreeMap::new();
    for r in records {
        match (&r.error, r.ok) {
            (Some(class), false) => *errors_by_class.entry(class.clone()).or_insert(0) += 1,
            (_, true) => *ok_by_region.entry(r.region.clone().unwrap_or_default()).or_insert(0) += 1,
            _ => {}
        }
    }
    Totals {
        started,
        completed: records.len() as u64,
        ok,
        errors: records.len() as u64 - ok,
        timeouts: errors_by_class.get("timeout").copied().unwrap_or(0),
        shed,
        success_rate: if records.is_empty() { 0.0 } else { ok as f64 / records.len() as f64 },
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        errors_by_class,
        ok_by_region,
    }
}

fn lag_summary(lags: &[f64], unseen: u64) -> LagSummary {
    let mut sorted = lags.to_vec();
    sorted.sort_by(f64::total_cmp);
    LagSummary {
        source: format!(
            "heartbeats every 250 ms in the active region, looked for in the others every 50 ms{}",
            if unseen > 0 {
                format!("; {unseen} never arrived, counted at their age")
            } else {
                String::new()
            }
        ),
        samples: sorted.len() as u64,
        max_ms: sorted.last().copied(),
        p99_ms: percentile(&sorted, 0.99),
        p50_ms: percentile(&sorted, 0.5),
    }
}

/// Whether a fault kind is expected to move traffic when it hits the active region.
fn moves_traffic(kind: FaultKind) -> bool {
    !matches!(kind, FaultKind::Partition)
}

fn fill_fault_reports(
    report: &mut DrillReport,
    applied: &[Applied],
    records: &[OpRecord],
    recorder: &Recorder,
    end: Instant,
) {
    let end_ms = recorder.ms(end);
    let mut windows = Vec::new();
    let mut headline: Option<(Option<f64>, Option<f64>, bool)> = None;
    for fault in applied {
        let Some(injected) = fault.injected else { continue };
        let injected_ms = recorder.ms(injected);
        let healed_ms = fault.healed.map(|h| recorder.ms(h));
        let window_end = healed_ms.unwrap_or(end_ms);
        windows.push((injected_ms, window_end));
        // A detection or a failover belongs to the latest fault on that region before it:
        // a mild fault that was absorbed does not take the credit for a later storm's.
        let until_ms = applied
            .iter()
            .filter(|other| other.spec.region == fault.spec.region)
            .filter_map(|other| other.injected.map(|i| recorder.ms(i)))
            .filter(|t| *t > injected_ms)
            .fold(f64::INFINITY, f64::min);
        let detected = report
            .events
            .iter()
            .find(|e| {
                e.kind == "region_down"
                    && e.region == fault.spec.region
                    && e.t_ms >= injected_ms
                    && e.t_ms < until_ms
            })
            .map(|e| e.t_ms);
        let was_active = fault.active_at_injection.as_deref() == Some(fault.spec.region.as_str());
        let first_elsewhere = if was_active {
            records
                .iter()
                .filter(|r| {
                    r.ok && r.start_ms >= injected_ms
                        && r.start_ms < until_ms
                        && r.region.as_deref() != Some(fault.spec.region.as_str())
                })
                .min_by(|a, b| a.start_ms.total_cmp(&b.start_ms))
        } else {
            None
        };
        let in_window: Vec<&OpRecord> =
            records.iter().filter(|r| r.end_ms >= injected_ms && r.end_ms <= window_end).collect();
        let item = FaultReport {
            kind: fault.spec.kind.name().into(),
            region: fault.spec.region.clone(),
            action: fault.action.clone(),
            injected_at_ms: injected_ms,
            healed_at_ms: healed_ms,
            detected_at_ms: detected,
            time_to_detect_ms: detected.map(|d| d - injected_ms),
            failed_over_to: first_elsewhere.and_then(|r| r.region.clone()),
            failed_over_at_ms: first_elsewhere.map(|r| r.start_ms),
            time_to_failover_ms: first_elsewhere.map(|r| r.start_ms - injected_ms),
            ops_in_window: in_window.len() as u64,
            errors_in_window: in_window.iter().filter(|r| !r.ok).count() as u64,
        };
        // The headline is the first fault that moved traffic, else the first that should have.
        let moved = item.failed_over_to.is_some();
        if (moved && !headline.is_some_and(|(_, _, m)| m))
            || (headline.is_none() && was_active && moves_traffic(fault.spec.kind))
        {
            headline = Some((item.time_to_detect_ms, item.time_to_failover_ms, moved));
        }
        report.faults.push(item);
    }
    if let Some((detect, failover, _)) = headline {
        report.time_to_detect_ms = detect;
        report.time_to_failover_ms = failover;
    }
    // Errors in the union of the fault windows, each counted once.
    report.errors_in_window = records
        .iter()
        .filter(|r| !r.ok && windows.iter().any(|(from, to)| r.end_ms >= *from && r.end_ms <= *to))
        .count() as u64;
}

fn evaluate(s: &Scenario, r: &DrillReport) -> Vec<AssertionResult> {
    let a = &s.assertions;
    let mut out = Vec::new();
    let mut check = |name: &str, limit: String, actual: String, passed: bool, why: Option<String>| {
        out.push(AssertionResult {
            name: name.into(),
            limit,
            actual,
            passed,
            message: if passed { None } else { why },
        });
    };
    if let Some(max) = a.max_failover_secs {
        match r.time_to_failover_ms {
            Some(ms) => check(
                "max_failover_secs",
                format!("{max}"),
                format!("{:.2}", ms / 1000.0),
                ms / 1000.0 <= max,
                Some(format!("traffic reached the new region {:.2}s after the fault", ms / 1000.0)),
            ),
            None => check(
                "max_failover_secs",
                format!("{max}"),
                "none".into(),
                false,
                Some(format!(
                    "no failover: traffic never succeeded outside the faulted region (final primary {})",
                    r.final_primary
                )),
            ),
        }
    }
    if let Some(max) = a.max_detect_secs {
        let actual = r.time_to_detect_ms.map(|ms| ms / 1000.0);
        check(
            "max_detect_secs",
            format!("{max}"),
            actual.map_or("none".into(), |v| format!("{v:.2}")),
            actual.is_some_and(|v| v <= max),
            Some(actual.map_or("the faulted region was never declared down".into(), |v| {
                format!("declared down after {v:.2}s")
            })),
        );
    }
    if let Some(max) = a.max_errors_in_window {
        check(
            "max_errors_in_window",
            max.to_string(),
            r.errors_in_window.to_string(),
            r.errors_in_window <= max,
            Some(format!("{} operations failed between fault and heal", r.errors_in_window)),
        );
    }
    if let Some(max) = a.max_acknowledged_writes_lost {
        check(
            "max_acknowledged_writes_lost",
            max.to_string(),
            r.writes.lost.to_string(),
            r.writes.lost <= max,
            Some(format!("{} acknowledged creates missing in {}", r.writes.lost, r.writes.checked_in)),
        );
    }
    if let Some(max) = a.max_replication_lag_ms {
        let actual = r.replication_lag.max_ms;
        check(
            "max_replication_lag_ms",
            max.to_string(),
            actual.map_or("none".into(), |v| format!("{v:.0}")),
            actual.is_some_and(|v| v <= max as f64),
            Some(actual.map_or("no heartbeat was measured".into(), |v| format!("lag reached {v:.0} ms"))),
        );
    }
    if let Some(min) = a.min_success_rate {
        check(
            "min_success_rate",
            format!("{min}"),
            format!("{:.4}", r.totals.success_rate),
            r.totals.success_rate >= min,
            Some(format!("{:.2}% of operations succeeded", r.totals.success_rate * 100.0)),
        );
    }
    if let Some(max) = a.max_writes_missing_after_settle {
        let missing: u64 = r.writes.missing_by_region.values().sum();
        check(
            "max_writes_missing_after_settle",
            max.to_string(),
            missing.to_string(),
            missing <= max,
            Some(format!("{missing} acknowledged creates never reached the other regions")),
        );
    }
    if let Some(max) = a.max_failovers {
        check(
            "max_failovers",
            max.to_string(),
            r.failovers.to_string(),
            r.failovers <= max,
            Some(format!("{} failovers happened", r.failovers)),
        );
    }
    out
}
