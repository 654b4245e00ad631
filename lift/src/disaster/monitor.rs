//! The health monitor: probe rounds per region on an interval, published on a `watch`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::env::{self, ProcessEnv, Vars};
use super::health::{HealthSnapshot, HealthState, RegionHealth};
use super::probe::{default_probes, Probe};
use super::{ConfigError, ProbeError, RegionSet};

/// How regions are probed. The defaults detect an outage in about 3 s: a round every
/// second, each probe bounded by 500 ms, 3 failing rounds to declare a region down and 2
/// passing ones to declare it back.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Time between the starts of two probe rounds (default 1 s).
    pub interval: Duration,
    /// The longest a probe may take before it counts as failed (default 500 ms).
    pub timeout: Duration,
    /// Failing rounds in a row that declare a region unhealthy (default 3).
    pub failure_threshold: u32,
    /// Passing rounds in a row that declare an unhealthy region healthy again (default 2).
    pub recovery_threshold: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            failure_threshold: 3,
            recovery_threshold: 2,
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

    /// The defaults, overridden by `LIFT_PROBE_INTERVAL_MS`, `LIFT_PROBE_TIMEOUT_MS`,
    /// `LIFT_PROBE_FAILURE_THRESHOLD` and `LIFT_PROBE_RECOVERY_THRESHOLD`.
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
        Ok(())
    }
}

/// Probes every region on an interval and publishes a [`HealthSnapshot`] after each round.
///
/// Each region runs its probes concurrently, each bounded by the timeout; a round passes
/// when every probe does. States change with hysteresis ([`RegionHealth`]). The probe tasks
/// stop when the monitor is dropped.
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
        builder.start()
    }

    /// A receiver of every snapshot; `changed()` fires after each probe round.
    pub fn subscribe(&self) -> watch::Receiver<HealthSnapshot> {
        self.health.clone()
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
        let tx = Arc::new(tx);
        let tasks = self
            .regions
            .into_iter()
            .enumerate()
            .map(|(index, (name, probes))| {
                let health =
                    RegionHealth::new(name, self.config.failure_threshold, self.config.recovery_threshold);
                tokio::spawn(probe_loop(index, health, probes, self.config.clone(), tx.clone()))
            })
            .collect();
        Ok(HealthMonitor { health: rx, tasks })
    }
}

async fn probe_loop(
    index: usize,
    mut health: RegionHealth,
    probes: Vec<Arc<dyn Probe>>,
    config: MonitorConfig,
    tx: Arc<watch::Sender<HealthSnapshot>>,
) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = tokio::time::Instant::now().into_std();
        let outcome = round(&probes, config.timeout).await;
        let finished = tokio::time::Instant::now().into_std();
        if let Some(state) = health.record(outcome, started, finished) {
            let status = health.status();
            match state {
                HealthState::Unhealthy => tracing::warn!(
                    region = %status.region,
                    error = status.last_error.as_deref().unwrap_or_default(),
                    failures = status.consecutive_failures,
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
