//! The provision stage, over the regions the [`Topology`] started (local DynamoDB Local
//! behind fault proxies, or remote endpoints): lift's failover orchestrator over them, the
//! stream replicator between local regions, and the failover client the load goes through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lift::disaster::{
    AdaptiveTimeoutConfig, FailoverOrchestrator, FailoverPolicy, HealthSnapshot, HealthState, MonitorConfig,
    PassiveConfig, Replicator, StartPosition,
};
use tokio::sync::watch;

use super::client::FailoverClient;
use super::lag::LAG_ATTRIBUTE;
use super::scenario::{Detection, Scenario};
use super::topology::Topology;
use super::DrillError;

/// How long the regions may take to be declared healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(20);

/// What one drill runs over its regions; dropping it stops the orchestrator and the
/// replicator. The regions themselves (the [`Topology`]) are the caller's, which deletes
/// their tables on every path once this is dropped.
pub(crate) struct Provisioned {
    pub(crate) orchestrator: FailoverOrchestrator,
    /// `None` for remote regions: their global table replicates itself.
    pub(crate) replicator: Option<Replicator>,
    pub(crate) client: Arc<FailoverClient>,
}

fn target(e: &dyn std::fmt::Display) -> DrillError {
    DrillError::Target(e.to_string())
}

/// Starts failover over `topology`'s regions, as `s` configures it, and waits until they
/// are healthy.
pub(crate) async fn provision(
    s: &Scenario,
    topology: &Topology,
    break_updates: bool,
) -> Result<Provisioned, DrillError> {
    let client_regions = topology.client_regions(s.load.timeout)?;
    let monitor = MonitorConfig::default()
        .interval(s.failover.probe_interval)
        .timeout(s.failover.probe_timeout)
        .failure_threshold(s.failover.failure_threshold)
        .recovery_threshold(s.failover.recovery_threshold);
    let f = &s.failover;
    let monitor = match f.detection {
        Detection::Probe => monitor.probe_only(),
        Detection::Passive => monitor.passive(
            PassiveConfig::default()
                .consecutive_failures(f.consecutive_failures)
                .request_timeout(AdaptiveTimeoutConfig::new(
                    f.timeout_multiplier,
                    f.timeout_floor,
                    s.load.timeout,
                ))
                .confirm_timeout(AdaptiveTimeoutConfig {
                    multiplier: f.timeout_multiplier,
                    floor: f.confirm_timeout_floor,
                    ceiling: f.probe_timeout,
                    ..PassiveConfig::default().confirm_timeout
                }),
        ),
    };
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
    let replicator = if topology.is_remote() {
        None
    } else {
        let replicator = Replicator::builder(topology.replication_regions()?)
            .table(topology.table().clone())
            .poll_interval(Duration::from_millis(100))
            .start_position(StartPosition::TrimHorizon)
            .lag_attribute(LAG_ATTRIBUTE);
        let replicator = if break_updates { replicator.break_update_replication() } else { replicator };
        let replicator = replicator.start().await.map_err(|e| target(&e))?;
        Some(replicator)
    };
    let client = Arc::new(FailoverClient {
        router: orchestrator.router().clone(),
        regions: client_regions,
        table: topology.table().clone(),
        health: orchestrator.health(),
        observer: orchestrator.observer(),
        mode: s.failover.replication,
        sync_timeout: s.load.timeout,
        degraded: Default::default(),
        break_updates,
    });
    wait_healthy(orchestrator.health(), s.regions.len()).await?;
    Ok(Provisioned { orchestrator, replicator, client })
}

/// Waits until the monitor holds every region healthy.
pub(crate) async fn wait_healthy(
    mut health: watch::Receiver<HealthSnapshot>,
    regions: usize,
) -> Result<(), DrillError> {
    let deadline = tokio::time::Instant::from_std(Instant::now() + HEALTHY_WITHIN);
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
                HEALTHY_WITHIN.as_secs(),
                states.join(", ")
            )));
        }
    }
}
