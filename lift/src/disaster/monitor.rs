//! The health monitor: probe rounds per region on an interval, published on a `watch`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::env::{self, ProcessEnv, Vars};
use super::health::{HealthSnapshot, HealthState, RegionHealth};
use super::passive::{detach_observer, ObserverSlot, PassiveConfig, PassiveRegion, RequestObserver};
use super::probe::{default_probes, Probe};
use super::{ConfigError, ProbeError, RegionSet};

/// How regions are probed, and whether their requests take part. The probe defaults detect
/// an outage in about 3 s on their own: a round every second, each probe bounded by 500 ms,
/// 3 failing rounds to declare a region down and 2 passing ones to declare it back. With
/// passive detection on (the default, [`PassiveConfig`]), requests that fail in a row
/// through the [`RequestObserver`] trigger an immediate confirming probe, which declares the
/// region down in hundreds of milliseconds; [`probe_only`](Self::probe_only) turns that off.
///
/// # Examples
///
/// ```
/// use lift::disaster::MonitorConfig;
/// use std::time::Duration;
///
/// let config = MonitorConfig::default().interval(Duration::from_millis(500)).failure_threshold(4);
/// assert_eq!(config.failure_threshold, 4);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Time between the starts of two probe rounds (default 1 s).
    pub interval: Duration,
    /// The longest a probe may take before it counts as failed (default 500 ms).
    pub timeout: Duration,
    /// Failing rounds in a row that declare a region unhealthy (default 3).
    pub failure_threshold: u32,
    /// Passing rounds in a row that declare an unhealthy region healthy again (default 2).
    pub recovery_threshold: u32,
    /// Passive detection from requests (default on); `None` is probe-only detection.
    pub passive: Option<PassiveConfig>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            failure_threshold: 3,
            recovery_threshold: 2,
            passive: Some(PassiveConfig::default()),
        }
    }
}

impl MonitorConfig {
    /// Sets the probe interval.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the probe timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the failing rounds in a row that declare a region unhealthy.
    pub fn failure_threshold(mut self, rounds: u32) -> Self {
        self.failure_threshold = rounds;
        self
    }

    /// Sets the passing rounds in a row that declare a region healthy again.
    pub fn recovery_threshold(mut self, rounds: u32) -> Self {
        self.recovery_threshold = rounds;
        self
    }

    /// Sets passive detection's settings (and turns it on).
    pub fn passive(mut self, config: PassiveConfig) -> Self {
        self.passive = Some(config);
        self
    }

    /// Probe-only detection: requests take no part, and timeouts do not adapt.
    pub fn probe_only(mut self) -> Self {
        self.passive = None;
        self
    }

    /// The defaults, overridden by `LIFT_PROBE_INTERVAL_MS`, `LIFT_PROBE_TIMEOUT_MS`,
    /// `LIFT_PROBE_FAILURE_THRESHOLD`, `LIFT_PROBE_RECOVERY_THRESHOLD` and passive
    /// detection's variables (`LIFT_FAILOVER_DETECTION=probe` for probe-only; see
    /// [`PassiveConfig`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&ProcessEnv)
    }

    fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(v) = env::millis(vars, "LIFT_PROBE_INTERVAL_MS")? {
            config.interval = v;
        }
        if let Some(v) = env::millis(vars, "LIFT_PROBE_TIMEOUT_MS")? {
            config.timeout = v;
        }
        if let Some(v) = env::count(vars, "LIFT_PROBE_FAILURE_THRESHOLD")? {
            config.failure_threshold = v;
        }
        if let Some(v) = env::count(vars, "LIFT_PROBE_RECOVERY_THRESHOLD")? {
            config.recovery_threshold = v;
        }
        config.passive = PassiveConfig::from_vars(vars)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that the settings can work: positive durations, a timeout no longer than the
    /// interval, thresholds of at least 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::invalid("interval", "must be greater than zero"));
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err(ConfigError::invalid(
                "timeout",
                "must be greater than zero and at most the interval",
            ));
        }
        if self.failure_threshold == 0 {
            return Err(ConfigError::invalid("failure_threshold", "must be at least 1"));
        }
        if self.recovery_threshold == 0 {
            return Err(ConfigError::invalid("recovery_threshold", "must be at least 1"));
        }
        if let Some(passive) = &self.passive {
            passive.validate()?;
        }
        Ok(())
    }
}

/// Probes every region on an interval and publishes a [`HealthSnapshot`] after each round.
///
/// Each region runs its probes concurrently, each bounded by the timeout; a round passes
/// when every probe does. States change with hysteresis ([`RegionHealth`]). The probe tasks
/// stop when the monitor is dropped, and the set's clients stop reporting to it.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), lift::disaster::ConfigError> {
/// use lift::disaster::{HealthMonitor, MonitorConfig, RegionSet};
///
/// let regions = RegionSet::from_env()?;
/// let monitor = HealthMonitor::start(&regions, MonitorConfig::default())?;
/// let mut health = monitor.subscribe();
/// while health.changed().await.is_ok() {
///     for region in &health.borrow().regions {
///         println!("{}: {}", region.region, region.state);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HealthMonitor {
    health: watch::Receiver<HealthSnapshot>,
    observer: RequestObserver,
    /// The slot of the [`RegionSet`] whose clients report to `observer`, emptied on drop.
    attached: Option<ObserverSlot>,
    tasks: Vec<JoinHandle<()>>,
}

impl HealthMonitor {
    /// A builder to which regions and their probes are added one by one.
    pub fn builder(config: MonitorConfig) -> HealthMonitorBuilder {
        HealthMonitorBuilder { config, regions: Vec::new() }
    }

    /// Starts probing every region of `regions` with its [`default_probes`]. Must be called
    /// inside a Tokio runtime.
    pub fn start(regions: &RegionSet, config: MonitorConfig) -> Result<Self, ConfigError> {
        let mut builder = Self::builder(config);
        for region in regions {
            builder = builder.region(region.name(), default_probes(region));
        }
        let mut monitor = builder.start()?;
        monitor.attach(regions);
        Ok(monitor)
    }

    /// Has `regions`' DynamoDB clients report their attempts to this monitor until it stops
    /// or another monitor attaches to them. Called once, on a monitor just started.
    pub(crate) fn attach(&mut self, regions: &RegionSet) {
        debug_assert!(self.attached.is_none(), "a monitor attaches to one region set, once");
        self.attached = Some(regions.attach_observer(self.observer.clone()));
    }

    /// A receiver of every snapshot; `changed()` fires after each probe round.
    pub fn subscribe(&self) -> watch::Receiver<HealthSnapshot> {
        self.health.clone()
    }

    /// Where the failover client reports its requests and reads their timeouts (it records
    /// nothing in probe-only mode).
    pub fn observer(&self) -> RequestObserver {
        self.observer.clone()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> HealthSnapshot {
        self.health.borrow().clone()
    }

    /// Stops probing (as dropping does).
    pub fn stop(self) {}
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // Its probe tasks are gone: nothing would act on what the clients report.
        if let Some(slot) = &self.attached {
            detach_observer(slot, &self.observer);
        }
    }
}

/// Builds a [`HealthMonitor`] with explicit probes per region.
#[derive(Debug)]
pub struct HealthMonitorBuilder {
    config: MonitorConfig,
    regions: Vec<(String, Vec<Arc<dyn Probe>>)>,
}

impl HealthMonitorBuilder {
    /// Adds a region and the probes that decide its health, in failover order.
    pub fn region(mut self, name: impl Into<String>, probes: Vec<Arc<dyn Probe>>) -> Self {
        self.regions.push((name.into(), probes));
        self
    }

    /// Validates the configuration and spawns a probe task per region. Must be called inside
    /// a Tokio runtime.
    pub fn start(self) -> Result<HealthMonitor, ConfigError> {
        self.config.validate()?;
        if self.regions.is_empty() {
            return Err(ConfigError::NoRegions);
        }
        for (i, (name, probes)) in self.regions.iter().enumerate() {
            if self.regions[..i].iter().any(|(n, _)| n == name) {
                return Err(ConfigError::DuplicateRegion(name.clone()));
            }
            if probes.is_empty() {
                return Err(ConfigError::invalid("probes", format!("region {name} has no probes")));
            }
        }
        let (tx, rx) = watch::channel(HealthSnapshot::unknown(self.regions.iter().map(|(n, _)| n.as_str())));
        let observer =
            RequestObserver::new(self.config.passive.clone(), self.regions.iter().map(|(n, _)| n.as_str()));
        let tx = Arc::new(tx);
        let tasks = self
            .regions
            .into_iter()
            .enumerate()
            .map(|(index, (name, probes))| {
                let health =
                    RegionHealth::new(name, self.config.failure_threshold, self.config.recovery_threshold);
                let passive = observer.region_state(index);
                tokio::spawn(probe_loop(index, health, probes, self.config.clone(), passive, tx.clone()))
            })
            .collect();
        Ok(HealthMonitor { health: rx, observer, attached: None, tasks })
    }
}

async fn probe_loop(
    index: usize,
    mut health: RegionHealth,
    probes: Vec<Arc<dyn Probe>>,
    config: MonitorConfig,
    passive: Option<Arc<PassiveRegion>>,
    tx: Arc<watch::Sender<HealthSnapshot>>,
) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let suspected = || async {
        match &passive {
            Some(p) => p.suspect.notified().await,
            None => std::future::pending().await,
        }
    };
    loop {
        // A suspicion from the region's requests runs a confirming round at once, and
        // replaces a regular round in flight.
        let mut confirm = tokio::select! {
            _ = ticks.tick() => false,
            () = suspected() => true,
        };
        let mut started = tokio::time::Instant::now().into_std();
        let mut outcome = None;
        if !confirm {
            tokio::select! {
                result = round(&probes, config.timeout) => outcome = Some(result),
                () = suspected() => confirm = true,
            }
        }
        let mut suspicion = None;
        if confirm {
            let passive = passive.as_ref().expect("only a passive region is suspected");
            suspicion = Some(passive.take_suspicion());
            if health.status().state == HealthState::Unhealthy {
                continue;
            }
            let timeout = passive.probe_latency.get().min(config.timeout);
            let rounds = config.passive.as_ref().map_or(1, |p| p.confirm_rounds).max(1);
            started = tokio::time::Instant::now().into_std();
            outcome = Some(confirm_round(&probes, timeout, rounds).await);
        }
        let Some(outcome) = outcome else { continue };
        let finished = tokio::time::Instant::now().into_std();
        if let (Ok(()), Some(p)) = (&outcome, &passive) {
            p.probe_latency.observe(finished.saturating_duration_since(started));
        }
        let changed = match suspicion {
            Some(s) => {
                tracing::info!(
                    region = %health.status().region,
                    failures = s.failures,
                    last = s.last.map(|k| k.name()).unwrap_or_default(),
                    confirmed = outcome.is_err(),
                    "confirming probe"
                );
                health.confirm(outcome, s.since, started, finished)
            }
            None => health.record(outcome, started, finished),
        };
        if let Some(state) = changed {
            let status = health.status();
            match state {
                HealthState::Unhealthy => tracing::warn!(
                    region = %status.region,
                    error = status.last_error.as_deref().unwrap_or_default(),
                    failures = status.consecutive_failures,
                    by = %status.declared_by.map(|b| b.to_string()).unwrap_or_default(),
                    "region declared unhealthy"
                ),
                _ => tracing::info!(region = %status.region, %state, "region health changed"),
            }
        }
        let status = health.status().clone();
        tx.send_modify(|snapshot| {
            if let Some(slot) = snapshot.regions.get_mut(index) {
                *slot = status;
            }
        });
    }
}

/// Runs every probe concurrently under `timeout`; the first failure (in probe order) fails
/// the round.
async fn round(probes: &[Arc<dyn Probe>], timeout: Duration) -> Result<(), ProbeError> {
    let checks = probes.iter().map(|probe| async move {
        let outcome = match tokio::time::timeout(timeout, probe.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ProbeError::TimedOut(timeout)),
        };
        outcome.map_err(|err| (probe.name().to_owned(), err))
    });
    match futures_util::future::join_all(checks).await.into_iter().find_map(Result::err) {
        None => Ok(()),
        Some((name, err)) => Err(relabel(&name, err)),
    }
}

/// `rounds` probe rounds side by side: a failure only when every one fails (the first
/// round's error).
async fn confirm_round(probes: &[Arc<dyn Probe>], timeout: Duration, rounds: u32) -> Result<(), ProbeError> {
    let outcomes = futures_util::future::join_all((0..rounds).map(|_| round(probes, timeout))).await;
    if outcomes.iter().any(Result::is_ok) {
        return Ok(());
    }
    outcomes.into_iter().next().unwrap_or(Ok(()))
}

/// Prefixes the probe name onto the error text, keeping its kind.
fn relabel(name: &str, err: ProbeError) -> ProbeError {
    match err {
        ProbeError::TimedOut(after) => ProbeError::TimedOut(after),
        ProbeError::Unreachable(m) => ProbeError::Unreachable(format!("{name}: {m}")),
        ProbeError::Unhealthy(m) => ProbeError::Unhealthy(format!("{name}: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disaster::probe::ProbeFuture;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU8, Ordering};

    const UP: u8 = 0;
    const DOWN: u8 = 1;
    const SLOW: u8 = 2;

    /// A probe whose answer the test sets: up, down, or slower than any timeout.
    #[derive(Debug, Default)]
    struct Switch(AtomicU8);

    impl Switch {
        fn set(&self, mode: u8) {
            self.0.store(mode, Ordering::SeqCst);
        }
    }

    impl Probe for Switch {
        fn name(&self) -> &str {
            "switch"
        }
        fn check(&self) -> ProbeFuture<'_> {
            let mode = self.0.load(Ordering::SeqCst);
            Box::pin(async move {
                match mode {
                    UP => Ok(()),
                    DOWN => Err(ProbeError::Unreachable("connection refused".into())),
                    _ => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    }
                }
            })
        }
    }

    /// A monitor of one region whose probe the test switches, its observer and its health.
    fn switched(
        config: MonitorConfig,
    ) -> (Arc<Switch>, HealthMonitor, RequestObserver, watch::Receiver<HealthSnapshot>) {
        let probe = Arc::new(Switch::default());
        let monitor = HealthMonitor::builder(config)
            .region("us-east-1", vec![probe.clone() as Arc<dyn Probe>])
            .start()
            .unwrap();
        let (observer, rx) = (monitor.observer(), monitor.subscribe());
        (probe, monitor, observer, rx)
    }

    /// Waits until the region is declared unhealthy.
    async fn until_unhealthy(rx: &mut watch::Receiver<HealthSnapshot>) {
        loop {
            rx.changed().await.unwrap();
            if rx.borrow_and_update().state("us-east-1") == HealthState::Unhealthy {
                return;
            }
        }
    }

    /// Lets the monitor run `rounds` more probe rounds on the paused clock.
    async fn rounds(rx: &mut watch::Receiver<HealthSnapshot>, rounds: u64) -> HealthSnapshot {
        let target = rx.borrow().regions[0].rounds + rounds;
        loop {
            rx.changed().await.unwrap();
            let snapshot = rx.borrow_and_update().clone();
            if snapshot.regions[0].rounds >= target {
                return snapshot;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_monitor_applies_thresholds_and_bounds_slow_probes() {
        let probe = Arc::new(Switch::default());
        let monitor = HealthMonitor::builder(MonitorConfig::default())
            .region("us-east-1", vec![probe.clone() as Arc<dyn Probe>])
            .start()
            .unwrap();
        let mut rx = monitor.subscribe();
        assert_eq!(rounds(&mut rx, 1).await.state("us-east-1"), HealthState::Healthy);

        // One probe slower than the timeout is one failure, not a verdict.
        probe.set(SLOW);
        let t0 = tokio::time::Instant::now();
        let snap = rounds(&mut rx, 1).await;
        assert_eq!(snap.state("us-east-1"), HealthState::Healthy);
        assert_eq!(snap.regions[0].consecutive_failures, 1);
        assert_eq!(snap.regions[0].last_error.as_deref(), Some("probe timed out after 500ms"));
        assert!(
            t0.elapsed() <= Duration::from_millis(1500),
            "next tick plus the timeout, not the probe's hour"
        );
        probe.set(UP);
        assert_eq!(rounds(&mut rx, 1).await.regions[0].consecutive_failures, 0);

        // Three failing rounds in a row: down, with the streak's start and the verdict's time.
        probe.set(DOWN);
        let outage = tokio::time::Instant::now().into_std();
        let snap = rounds(&mut rx, 2).await;
        assert_eq!(snap.state("us-east-1"), HealthState::Healthy);
        let snap = rounds(&mut rx, 1).await;
        let status = &snap.regions[0];
        assert_eq!(status.state, HealthState::Unhealthy);
        let detected = status.failing_since.unwrap();
        let declared = status.down_since.unwrap();
        assert!(detected >= outage && detected - outage <= Duration::from_secs(1));
        assert_eq!(declared - detected, Duration::from_secs(2), "three rounds one second apart");
        assert_eq!(status.last_error.as_deref(), Some("unreachable: switch: connection refused"));

        // Recovery needs two passing rounds.
        probe.set(UP);
        assert_eq!(rounds(&mut rx, 1).await.state("us-east-1"), HealthState::Unhealthy);
        assert_eq!(rounds(&mut rx, 1).await.state("us-east-1"), HealthState::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_requests_are_confirmed_by_an_immediate_probe_not_the_next_round() {
        use crate::disaster::{DetectedBy, FailureKind};
        let (probe, monitor, observer, mut rx) =
            switched(MonitorConfig::default().interval(Duration::from_secs(1)));
        rounds(&mut rx, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Noise the probes do not see: three failed requests, a passing confirmation, no verdict.
        let now = || tokio::time::Instant::now().into_std();
        for _ in 0..3 {
            observer.record("us-east-1", "put", now(), Err(FailureKind::Throttled));
        }
        let snap = rounds(&mut rx, 1).await;
        assert_eq!(snap.state("us-east-1"), HealthState::Healthy);
        assert_eq!(snap.regions[0].confirmations, 1);
        assert_eq!(observer.consecutive_failures("us-east-1"), 0);

        // The region goes dark: the requests' streak plus one failing probe declare it, long
        // before three rounds a second apart would.
        tokio::time::sleep(Duration::from_millis(300)).await;
        probe.set(DOWN);
        let first_failure = now();
        for _ in 0..2 {
            observer.record("us-east-1", "put", first_failure, Err(FailureKind::Timeout));
        }
        tokio::task::yield_now().await;
        assert_eq!(monitor.snapshot().regions[0].confirmations, 1, "two failures are not a suspicion");
        observer.record("us-east-1", "get", now(), Err(FailureKind::Timeout));
        until_unhealthy(&mut rx).await;
        let status = monitor.snapshot().regions[0].clone();
        assert_eq!(status.declared_by, Some(DetectedBy::Requests));
        assert_eq!(
            status.failing_since,
            Some(first_failure),
            "the streak starts at the first failed request"
        );
        assert!(status.down_since.unwrap() - first_failure < Duration::from_millis(50), "{status:?}");
        assert_eq!(status.confirmations, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_confirming_probe_is_bounded_by_the_probes_own_latency() {
        use crate::disaster::FailureKind;
        let (probe, _monitor, observer, mut rx) = switched(MonitorConfig::default());
        // Instant probes on the paused clock: the confirming timeout sits at its 100 ms floor
        // once 10 rounds are in.
        rounds(&mut rx, 11).await;
        probe.set(SLOW);
        let suspect = tokio::time::Instant::now();
        for _ in 0..3 {
            observer.record("us-east-1", "put", suspect.into_std(), Err(FailureKind::Timeout));
        }
        until_unhealthy(&mut rx).await;
        assert_eq!(suspect.elapsed(), Duration::from_millis(100), "the floor, not the 500 ms probe timeout");
    }

    /// A probe that fails every other call: a region dropping half its probes.
    #[derive(Debug, Default)]
    struct Alternating(std::sync::atomic::AtomicU64);

    impl Probe for Alternating {
        fn name(&self) -> &str {
            "alternating"
        }
        fn check(&self) -> ProbeFuture<'_> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n % 2 == 1 {
                    Err(ProbeError::Unhealthy("500".into()))
                } else {
                    Ok(())
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_failed_probe_among_the_confirming_rounds_does_not_declare_a_region_down() {
        use crate::disaster::FailureKind;
        let probe = Arc::new(Alternating::default());
        let config = MonitorConfig::default().failure_threshold(1000);
        let monitor = HealthMonitor::builder(config)
            .region("us-east-1", vec![probe.clone() as Arc<dyn Probe>])
            .start()
            .unwrap();
        let observer = monitor.observer();
        let mut rx = monitor.subscribe();
        rounds(&mut rx, 1).await;
        // Forty suspicions: every confirmation sees one failing round and one passing.
        for _ in 0..40 {
            for _ in 0..3 {
                observer.record(
                    "us-east-1",
                    "put",
                    tokio::time::Instant::now().into_std(),
                    Err(FailureKind::Timeout),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = monitor.snapshot().regions[0].clone();
        assert_eq!(status.confirmations, 40);
        assert_eq!(status.state, HealthState::Healthy, "{status:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn probe_only_mode_ignores_requests() {
        use crate::disaster::FailureKind;
        let (probe, _monitor, observer, mut rx) = switched(MonitorConfig::default().probe_only());
        rounds(&mut rx, 1).await;
        probe.set(DOWN);
        for _ in 0..10 {
            observer.record(
                "us-east-1",
                "put",
                tokio::time::Instant::now().into_std(),
                Err(FailureKind::Timeout),
            );
        }
        let snap = rounds(&mut rx, 2).await;
        assert_eq!(
            snap.state("us-east-1"),
            HealthState::Healthy,
            "two failing rounds, and requests do not count"
        );
        assert_eq!(snap.regions[0].confirmations, 0);
        assert_eq!(rounds(&mut rx, 1).await.state("us-east-1"), HealthState::Unhealthy);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(MonitorConfig::default().validate().is_ok());
        let err = MonitorConfig::default().timeout(Duration::from_secs(2)).validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { setting: "timeout", .. }));
        assert!(MonitorConfig::default().failure_threshold(0).validate().is_err());
        assert!(MonitorConfig::default().interval(Duration::ZERO).validate().is_err());
    }

    #[test]
    fn settings_come_from_the_environment() {
        let vars: HashMap<&str, &str> = [
            ("LIFT_PROBE_INTERVAL_MS", "200"),
            ("LIFT_PROBE_TIMEOUT_MS", "100"),
            ("LIFT_PROBE_FAILURE_THRESHOLD", "5"),
        ]
        .into_iter()
        .collect();
        let config = MonitorConfig::from_vars(&vars).unwrap();
        assert_eq!(config.interval, Duration::from_millis(200));
        assert_eq!(config.timeout, Duration::from_millis(100));
        assert_eq!(config.failure_threshold, 5);
        assert_eq!(config.recovery_threshold, 2);
    }

    #[tokio::test]
    async fn a_region_without_probes_is_refused() {
        let err =
            HealthMonitor::builder(MonitorConfig::default()).region("a", Vec::new()).start().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { setting: "probes", .. }));
    }
}
