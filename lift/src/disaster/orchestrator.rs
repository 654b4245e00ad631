//! The failover orchestrator: health in, policy decisions, traffic and DNS moved, records out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::health::{HealthSnapshot, HealthState, RegionStatus};
use super::monitor::{HealthMonitor, MonitorConfig};
use super::policy::{Decision, FailoverPolicy};
use super::probe::{default_probes, Probe};
use super::route53::{ChangeInfo, Route53Client, Route53Failover};
use super::{ConfigError, RegionRouter, RegionSet, Route53Error};

/// How often the orchestrator re-evaluates without a health change (failback and dwell
/// deadlines pass without one).
const TICK: Duration = Duration::from_millis(250);

/// Why traffic moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchKind {
    /// Away from an unhealthy active region.
    FailOver,
    /// Back to the primary.
    FailBack,
}

/// The outcome of the DNS update that followed a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsUpdate {
    /// The accepted change, or why it failed.
    pub result: Result<ChangeInfo, Route53Error>,
    /// When the answer (or the failure) came.
    pub at: Instant,
}

/// One switch of traffic, with the times that make up its RTO.
///
/// For a [`SwitchKind::FailOver`] the event is the active region's fault:
/// `fault_detected_at` is when the first failing probe round of the streak started and
/// `declared_down_at` when the region was declared unhealthy. For a failback after
/// recovery the event is the primary's recovery: the first passing round and the moment it
/// was declared healthy. `traffic_moved_at` is when the [`RegionRouter`] switched, before any
/// DNS update; the record is published just before the router moves, so a router
/// subscriber always finds it. A fault can begin up to one probe interval before the first
/// failing round, and a round already in flight when it begins fails too (so the streak
/// can start up to one probe timeout before the fault); a drill that injects the fault
/// measures from its own clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverRecord {
    /// Failover or failback.
    pub kind: SwitchKind,
    /// The region traffic left.
    pub from: String,
    /// The region traffic went to.
    pub to: String,
    /// When the first failing (or, for a failback, passing) probe round started.
    pub fault_detected_at: Instant,
    /// When the region was declared unhealthy (or, for a failback, healthy).
    pub declared_down_at: Instant,
    /// When the router switched.
    pub traffic_moved_at: Instant,
    /// `declared_down_at - fault_detected_at`.
    pub time_to_detect: Duration,
    /// `traffic_moved_at - fault_detected_at`.
    pub time_to_failover: Duration,
    /// The Route 53 update, once it answered (`None` without DNS failover, or still pending).
    pub dns: Option<DnsUpdate>,
}

/// Watches region health and moves traffic as the [`FailoverPolicy`] decides: it switches
/// the [`RegionRouter`] first (client-side routing, effective on the next call), then, where
/// configured, points a Route 53 record at the new region.
///
/// Build one with [`FailoverOrchestrator::builder`]; it runs until dropped. Switches made by
/// hand with [`RegionRouter::switch_to`] are respected (decisions start from the router's
/// active region) but do not count towards the dwell time.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), lift::disaster::ConfigError> {
/// use lift::disaster::{FailoverOrchestrator, FailoverPolicy, RegionSet};
/// use std::time::Duration;
///
/// let orchestrator = FailoverOrchestrator::builder(RegionSet::from_env()?)
///     .policy(FailoverPolicy::default().failback_after(Duration::from_secs(120)))
///     .start()?;
/// let router = orchestrator.router().clone();
/// // Every data access reads the active region:
/// let _ = router.dynamodb().get_item().table_name("payments").send().await;
/// for record in orchestrator.records() {
///     println!("{} -> {} in {:?}", record.from, record.to, record.time_to_failover);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FailoverOrchestrator {
    router: RegionRouter,
    health: watch::Receiver<HealthSnapshot>,
    records: watch::Receiver<Vec<FailoverRecord>>,
    _monitor: Option<HealthMonitor>,
    task: JoinHandle<()>,
}

impl FailoverOrchestrator {
    /// A builder over `regions` with the default policy and probe settings.
    pub fn builder(regions: RegionSet) -> FailoverOrchestratorBuilder {
        FailoverOrchestratorBuilder {
            regions,
            policy: FailoverPolicy::default(),
            monitor: MonitorConfig::default(),
            probes: BTreeMap::new(),
            route53: None,
            router: None,
        }
    }

    /// The router the orchestrator switches; clone it into the service's data access.
    pub fn router(&self) -> &RegionRouter {
        &self.router
    }

    /// Where the failover client reports each request's outcome and reads its timeout
    /// (passive detection, [`PassiveConfig`](super::PassiveConfig)). It records nothing in
    /// probe-only mode or when health comes from [`FailoverOrchestratorBuilder::start_with_health`].
    pub fn observer(&self) -> super::RequestObserver {
        self._monitor.as_ref().map_or_else(super::RequestObserver::disabled, HealthMonitor::observer)
    }

    /// A receiver of the region health the orchestrator decides on.
    pub fn health(&self) -> watch::Receiver<HealthSnapshot> {
        self.health.clone()
    }

    /// Every switch so far, oldest first.
    pub fn records(&self) -> Vec<FailoverRecord> {
        self.records.borrow().clone()
    }

    /// A receiver of the records; `changed()` fires on each switch and each DNS answer.
    pub fn subscribe(&self) -> watch::Receiver<Vec<FailoverRecord>> {
        self.records.clone()
    }

    /// Stops orchestrating (as dropping does); the router keeps its active region.
    pub fn stop(self) {}
}

impl Drop for FailoverOrchestrator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Configures and starts a [`FailoverOrchestrator`].
#[derive(Debug)]
pub struct FailoverOrchestratorBuilder {
    regions: RegionSet,
    policy: FailoverPolicy,
    monitor: MonitorConfig,
    probes: BTreeMap<String, Vec<Arc<dyn Probe>>>,
    route53: Option<Route53Failover>,
    router: Option<RegionRouter>,
}

impl FailoverOrchestratorBuilder {
    /// Regions, policy, probe settings and DNS record from the environment:
    /// [`RegionSet::from_env`], [`FailoverPolicy::from_env`], [`MonitorConfig::from_env`],
    /// [`Route53Failover::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let regions = RegionSet::from_env()?;
        let dns = Route53Failover::from_env(&regions)?;
        let mut builder = FailoverOrchestrator::builder(regions)
            .policy(FailoverPolicy::from_env()?)
            .monitor(MonitorConfig::from_env()?);
        builder.route53 = dns;
        Ok(builder)
    }

    /// Sets the failover policy.
    pub fn policy(mut self, policy: FailoverPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the probe settings.
    pub fn monitor(mut self, config: MonitorConfig) -> Self {
        self.monitor = config;
        self
    }

    /// Replaces the [`default_probes`] of `region`.
    pub fn probes(mut self, region: impl Into<String>, probes: Vec<Arc<dyn Probe>>) -> Self {
        self.probes.insert(region.into(), probes);
        self
    }

    /// Points a Route 53 record at the active region on every switch.
    pub fn route53(mut self, dns: Route53Failover) -> Self {
        self.route53 = Some(dns);
        self
    }

    /// Switches this router (over the same regions) instead of a new one.
    pub fn router(mut self, router: RegionRouter) -> Self {
        self.router = Some(router);
        self
    }

    /// Validates the configuration, starts the health monitor and the orchestration task.
    /// Must be called inside a Tokio runtime.
    pub fn start(mut self) -> Result<FailoverOrchestrator, ConfigError> {
        self.validate()?;
        let mut monitor = HealthMonitor::builder(self.monitor.clone());
        for region in &self.regions {
            let probes = self.probes.remove(region.name()).unwrap_or_else(|| default_probes(region));
            monitor = monitor.region(region.name(), probes);
        }
        let mut monitor = monitor.start()?;
        monitor.attach(&self.regions);
        let health = monitor.subscribe();
        self.launch(health, Some(monitor))
    }

    /// Like [`start`](Self::start), but decides on health published by someone else (a
    /// monitor of its own, a test), in [`RegionSet`] order.
    pub fn start_with_health(
        self,
        health: watch::Receiver<HealthSnapshot>,
    ) -> Result<FailoverOrchestrator, ConfigError> {
        self.validate()?;
        self.launch(health, None)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.regions.len() < 2 {
            return Err(ConfigError::TooFewRegions(self.regions.len()));
        }
        self.monitor.validate()?;
        if let Some(unknown) = self.probes.keys().find(|name| self.regions.index_of(name).is_none()) {
            return Err(ConfigError::UnknownRegion(unknown.clone()));
        }
        if let Some(router) = &self.router {
            if router.regions().names() != self.regions.names() {
                return Err(ConfigError::invalid("router", "it routes between other regions"));
            }
        }
        if let Some(dns) = &self.route53 {
            dns.client(&self.regions)?;
        }
        Ok(())
    }

    fn launch(
        self,
        health: watch::Receiver<HealthSnapshot>,
        monitor: Option<HealthMonitor>,
    ) -> Result<FailoverOrchestrator, ConfigError> {
        let router = self.router.unwrap_or_else(|| RegionRouter::new(self.regions.clone()));
        let dns = match self.route53 {
            Some(dns) => Some((dns.client(&self.regions)?, dns)),
            None => None,
        };
        let (records_tx, records) = watch::channel(Vec::new());
        let engine = Engine {
            router: router.clone(),
            policy: self.policy,
            dns,
            records: records_tx,
            last_switch: Mutex::new(None),
        };
        let task = tokio::spawn(engine.run(health.clone()));
        Ok(FailoverOrchestrator { router, health, records, _monitor: monitor, task })
    }
}

struct Engine {
    router: RegionRouter,
    policy: FailoverPolicy,
    dns: Option<(Route53Client, Route53Failover)>,
    records: watch::Sender<Vec<FailoverRecord>>,
    last_switch: Mutex<Option<Instant>>,
}

impl Engine {
    async fn run(self, mut health: watch::Receiver<HealthSnapshot>) {
        loop {
            tokio::select! {
                changed = health.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(TICK) => {}
            }
            let snapshot = health.borrow_and_update().clone();
            self.evaluate(&snapshot).await;
        }
    }

    async fn evaluate(&self, snapshot: &HealthSnapshot) {
        let now = tokio::time::Instant::now().into_std();
        let active = self.router.active_index();
        let last = *self.last_switch.lock().unwrap_or_else(|p| p.into_inner());
        let (to, kind) = match self.policy.decide(now, active, snapshot, last) {
            Decision::FailOver { to } => (to, SwitchKind::FailOver),
            Decision::FailBack
                if snapshot.regions.get(active).is_some_and(|r| r.state == HealthState::Unhealthy) =>
            {
                (0, SwitchKind::FailOver)
            }
            Decision::FailBack => (0, SwitchKind::FailBack),
            Decision::Stay | Decision::Held { .. } => return,
        };
        let from = active;
        if to == from {
            return;
        }
        let moved = tokio::time::Instant::now().into_std();
        *self.last_switch.lock().unwrap_or_else(|p| p.into_inner()) = Some(moved);

        let trigger: Option<&RegionStatus> = match kind {
            SwitchKind::FailOver => snapshot.regions.get(from),
            SwitchKind::FailBack => snapshot.regions.first(),
        };
        let (detected, declared) = match (kind, trigger) {
            (SwitchKind::FailOver, Some(s)) => (s.failing_since, s.down_since),
            (SwitchKind::FailBack, Some(s)) => (s.passing_since, s.up_since),
            (_, None) => (None, None),
        };
        let detected = detected.unwrap_or(moved);
        let declared = declared.unwrap_or(moved).max(detected);
        let regions = self.router.regions();
        let name = |i: usize| regions.get(i).map(|r| r.name().to_owned()).unwrap_or_default();
        let record = FailoverRecord {
            kind,
            from: name(from),
            to: name(to),
            fault_detected_at: detected,
            declared_down_at: declared,
            traffic_moved_at: moved,
            time_to_detect: declared - detected,
            time_to_failover: moved.saturating_duration_since(detected),
            dns: None,
        };
        tracing::warn!(
            from = %record.from,
            to = %record.to,
            kind = ?kind,
            time_to_detect_ms = record.time_to_detect.as_millis() as u64,
            time_to_failover_ms = record.time_to_failover.as_millis() as u64,
            "failover"
        );
        let comment = format!("lift {:?}: {} -> {}", kind, record.from, record.to);
        let target = record.to.clone();
        let index = {
            let mut index = 0;
            self.records.send_modify(|records| {
                records.push(record);
                index = records.len() - 1;
            });
            index
        };
        // The record is published first, so whoever sees the router move finds it.
        self.router.switch_to_index(to);

        if let Some((client, dns)) = &self.dns {
            let result = match dns.record_for(&target) {
                Some(set) => client.upsert(dns.zone_id(), &set, Some(&comment)).await,
                None => Err(Route53Error::InvalidResponse(format!("no record value for {target}"))),
            };
            if let Err(err) = &result {
                tracing::error!(error = %err, region = %target, "route 53 update failed");
            }
            let update = DnsUpdate { result, at: tokio::time::Instant::now().into_std() };
            self.records.send_modify(|records| {
                if let Some(record) = records.get_mut(index) {
                    record.dns = Some(update);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disaster::probe::ProbeFuture;
    use crate::disaster::{ProbeError, RegionConfig};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A probe the test turns up or down.
    #[derive(Debug)]
    struct Lever(AtomicBool);

    impl Lever {
        fn new() -> Arc<Self> {
            Arc::new(Self(AtomicBool::new(true)))
        }
        fn set(&self, up: bool) {
            self.0.store(up, Ordering::SeqCst);
        }
    }

    impl Probe for Lever {
        fn name(&self) -> &str {
            "lever"
        }
        fn check(&self) -> ProbeFuture<'_> {
            let up = self.0.load(Ordering::SeqCst);
            Box::pin(async move {
                if up {
                    Ok(())
                } else {
                    Err(ProbeError::Unreachable("refused".into()))
                }
            })
        }
    }

    fn regions() -> RegionSet {
        RegionSet::builder()
            .region(RegionConfig::new("us-east-1").dynamodb_endpoint("http://127.0.0.1:1"))
            .region(RegionConfig::new("eu-west-1").dynamodb_endpoint("http://127.0.0.1:2"))
            .build()
            .unwrap()
    }

    /// An orchestrator over two regions whose health the returned levers decide.
    fn orchestrator(policy: FailoverPolicy) -> (FailoverOrchestrator, Arc<Lever>, Arc<Lever>) {
        let (primary, secondary) = (Lever::new(), Lever::new());
        let orchestrator = FailoverOrchestrator::builder(regions())
            .policy(policy)
            .probes("us-east-1", vec![primary.clone() as Arc<dyn Probe>])
            .probes("eu-west-1", vec![secondary.clone() as Arc<dyn Probe>])
            .start()
            .unwrap();
        (orchestrator, primary, secondary)
    }

    async fn advance(d: Duration) {
        tokio::time::sleep(d).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_moves_traffic_within_the_default_detection_time_and_back_later() {
        let policy = FailoverPolicy::default().failback_after(Duration::from_secs(30));
        let (orchestrator, primary, _) = orchestrator(policy);
        advance(Duration::from_millis(1500)).await;
        assert!(orchestrator.router().is_on_primary());

        let outage = tokio::time::Instant::now().into_std();
        primary.set(false);
        let mut moves = orchestrator.router().subscribe();
        moves.changed().await.unwrap();
        let moved = tokio::time::Instant::now().into_std();
        assert_eq!(orchestrator.router().active().name(), "eu-west-1");
        assert!(moved - outage <= Duration::from_secs(3) + TICK, "took {:?}", moved - outage);

        let record = &orchestrator.records()[0];
        assert_eq!(
            (record.kind, record.from.as_str(), record.to.as_str()),
            (SwitchKind::FailOver, "us-east-1", "eu-west-1")
        );
        assert_eq!(record.time_to_detect, Duration::from_secs(2), "three rounds, one second apart");
        assert!(record.fault_detected_at >= outage);
        assert!(record.time_to_failover <= Duration::from_secs(2) + TICK);

        // Back up: no failback before the primary has passed for 30 s.
        primary.set(true);
        let recovered = tokio::time::Instant::now();
        moves.changed().await.unwrap();
        assert!(orchestrator.router().is_on_primary());
        let waited = recovered.elapsed();
        assert!(waited >= Duration::from_secs(30) && waited <= Duration::from_secs(32), "{waited:?}");
        assert_eq!(orchestrator.records()[1].kind, SwitchKind::FailBack);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_moves_when_failover_is_disabled() {
        let (orchestrator, primary, _) = orchestrator(FailoverPolicy::default().failover_enabled(false));
        primary.set(false);
        advance(Duration::from_secs(30)).await;
        assert_eq!(orchestrator.health().borrow().state("us-east-1"), HealthState::Unhealthy);
        assert!(orchestrator.router().is_on_primary());
        assert!(orchestrator.records().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn no_target_no_move() {
        let (orchestrator, primary, secondary) = orchestrator(FailoverPolicy::default());
        secondary.set(false);
        primary.set(false);
        advance(Duration::from_secs(10)).await;
        assert!(orchestrator.router().is_on_primary(), "both down: nowhere better to go");
    }

    /// Runs a primary that is up 3 s, down 3 s, for two minutes, and returns the switch times.
    async fn oscillate(min_dwell: Duration) -> Vec<Instant> {
        let policy = FailoverPolicy::default().failback_after(Duration::from_secs(1)).min_dwell(min_dwell);
        let (orchestrator, primary, _) = orchestrator(policy);
        advance(Duration::from_millis(1500)).await;
        for i in 0..40 {
            primary.set(i % 2 == 1);
            advance(Duration::from_secs(3)).await;
        }
        orchestrator.records().iter().map(|r| r.traffic_moved_at).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn an_oscillating_primary_causes_at_most_one_switch_per_dwell_window() {
        let dwell = Duration::from_secs(10);
        let switches = oscillate(dwell).await;
        assert!(switches.len() >= 2, "the outages did cause switches: {}", switches.len());
        for pair in switches.windows(2) {
            assert!(pair[1] - pair[0] >= dwell, "two switches {:?} apart", pair[1] - pair[0]);
        }
        // The same oscillation without a dwell time flaps far more: the bound is the dwell.
        let flapping = oscillate(Duration::ZERO).await;
        assert!(flapping.len() > 2 * switches.len(), "{} vs {}", flapping.len(), switches.len());
    }

    #[tokio::test]
    async fn configurations_that_cannot_fail_over_are_refused() {
        let one = RegionSet::builder().region(RegionConfig::new("us-east-1")).build().unwrap();
        assert_eq!(FailoverOrchestrator::builder(one).start().unwrap_err(), ConfigError::TooFewRegions(1));
        let err =
            FailoverOrchestrator::builder(regions()).probes("ap-south-1", Vec::new()).start().unwrap_err();
        assert_eq!(err, ConfigError::UnknownRegion("ap-south-1".into()));
    }
}
