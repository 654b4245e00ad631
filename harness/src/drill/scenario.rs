//! The scenario file: regions, load, a fault timeline, failover settings and assertions.
//!
//! # Assertions over several faults
//!
//! Each fault of the timeline gets its own figures, from the events of the region it hit
//! (never from its position in the file, so reordering `[[fault]]` tables changes nothing):
//! detection (its region declared down), failover (traffic moved away from its region by a
//! failover, never by a failback), errors of the operations that called its region, and
//! recovery (its region declared up after the heal).
//!
//! The bounds of `[assertions]` hold for the worst case over the faults they bind:
//!
//! - `max_detect_secs` binds every hard fault (`region_outage`, `process_kill`) wherever it
//!   hits (the monitor probes every region), and any soft fault (`latency`, `throttling`)
//!   its region was declared down for;
//! - `max_failover_secs` binds every hard fault that hit the region serving traffic, and any
//!   soft fault that moved traffic;
//! - a `partition` binds neither (`max_failovers = 0` is how a scenario says it must not
//!   move traffic);
//! - either bound fails when it binds no fault at all (nothing was detected, or nothing
//!   moved), and when a bound hard fault has no figure.
//!
//! A soft fault that was absorbed (traffic stayed, nothing was declared down) is not held
//! to a detection it was never meant to cause. To hold one fault to its own bounds, name it
//! and give it a table under `[assertions.fault.<name>]`; a named fault's bounds are strict
//! (an undetected fault fails `max_detect_secs`):
//!
//! ```toml
//! [[fault]]
//! name = "second-outage"
//! at = "25s"
//! heal_at = "35s"
//! kind = "region_outage"
//! region = "us-east-1"
//!
//! [assertions]
//! max_detect_secs = 4        # worst case over every fault it binds
//! min_failovers = 1          # the number of failovers and failbacks, too
//! max_failbacks = 1
//!
//! [assertions.fault.second-outage]
//! max_detect_secs = 3
//! max_failover_secs = 6
//! max_errors_in_window = 100
//! fails_over = true          # false: traffic must not move away because of it
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::{serde_duration, serde_opt_duration};
use super::DrillError;
use crate::faults::DynamoDbFault;

/// A drill, as written in `scenarios/*.toml`.
///
/// # Examples
///
/// ```
/// use lift_harness::drill::Scenario;
///
/// let scenario = Scenario::parse(r#"
///     name = "outage"
///     [[region]]
///     name = "us-east-1"
///     [[region]]
///     name = "eu-west-1"
///     [load]
///     rate = 20
///     duration = "20s"
///     [[fault]]
///     at = "5s"
///     kind = "region_outage"
///     region = "us-east-1"
///     heal_at = "15s"
///     [assertions]
///     max_failover_secs = 10
/// "#)?;
/// assert_eq!(scenario.primary(), "us-east-1");
/// # Ok::<(), lift_harness::drill::DrillError>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name, used in report file names.
    pub name: String,
    /// What the drill shows.
    #[serde(default)]
    pub description: String,
    /// The regions; the first is the primary. At least two.
    #[serde(rename = "region")]
    pub regions: Vec<RegionSpec>,
    /// The load driven through the failover client.
    pub load: Load,
    /// How failover is configured.
    #[serde(default)]
    pub failover: FailoverSettings,
    /// The fault timeline.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
    /// What must hold for the drill to pass.
    #[serde(default)]
    pub assertions: Assertions,
}

/// One region of the topology.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// The region name, e.g. `us-east-1`.
    pub name: String,
    /// What serves its DynamoDB.
    #[serde(default)]
    pub dynamodb: DynamoDbSpec,
    /// `remote`: the DynamoDB endpoint; AWS's own for the region when absent. Credentials
    /// come from the usual AWS chain (environment, `AWS_PROFILE`, instance role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `remote`: the physical name of the workload's table there (a global table the
    /// drill does not create); the workload's resolved table name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// Which DynamoDB Local serves a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DynamoDbSpec {
    /// One in-memory instance started for the drill
    /// ([`DynamoDbLocal::private`](crate::dynamodb::DynamoDbLocal::private)), which every
    /// `shared` region of the drill uses, each with a table of its own; network and API
    /// faults only.
    #[default]
    Shared,
    /// A JVM of its own ([`DedicatedDynamoDb`](crate::dynamodb::DedicatedDynamoDb)), data on
    /// disk: needed for process faults.
    Dedicated,
    /// A real DynamoDB (AWS, or any endpoint): no fault proxies, no in-process faults (the
    /// AWS FIS experiment `--export-fis` writes injects them), replication by the global
    /// table itself.
    Remote,
}

/// The load: an open-loop rate of the workload's operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Operations started per second.
    pub rate: f64,
    /// How long the load runs.
    #[serde(with = "serde_duration")]
    pub duration: Duration,
    /// The deadline of one operation; a later answer is an error (a stalled region).
    #[serde(default = "default_op_timeout", with = "serde_duration")]
    pub timeout: Duration,
    /// The most operations in flight; starts beyond it are counted as shed, not run.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Tenants the operations spread over.
    #[serde(default = "default_tenants")]
    pub tenants: usize,
    /// The operation mix, as weights by the workload's operation names; the workload's
    /// default mix when absent.
    #[serde(default, skip_serializing_if = "Mix::is_empty")]
    pub mix: Mix,
    /// Load run before the drill's clock starts, not measured: fresh JVMs compile their hot
    /// paths and connection pools fill, so a slow first second is not taken for a fault.
    /// The warm-up goes on (up to 30 s more) until a second of load runs clean.
    #[serde(default = "default_warmup", with = "serde_duration")]
    pub warmup: Duration,
}

fn default_warmup() -> Duration {
    Duration::from_secs(3)
}

fn default_op_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_concurrency() -> usize {
    256
}
fn default_tenants() -> usize {
    8
}

/// Weights of the workload's operations, by name (`create = 6`, `get = 3`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mix(pub BTreeMap<String, u32>);

impl Mix {
    /// Whether no weight is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The weight of `operation` (0 when absent).
    pub fn weight(&self, operation: &str) -> u32 {
        self.0.get(operation).copied().unwrap_or(0)
    }

    /// The weights by the workload's own operation names, in its order; an unknown name
    /// or a mix of zeros is refused.
    pub fn resolve(
        &self,
        workload: &str,
        operations: &[&'static str],
    ) -> Result<Vec<(&'static str, u32)>, DrillError> {
        if let Some(unknown) = self.0.keys().find(|k| !operations.contains(&k.as_str())) {
            return Err(DrillError::Scenario(format!(
                "load.mix: unknown operation {unknown:?}; {workload} has {}",
                operations.join(", ")
            )));
        }
        let weights: Vec<_> = operations.iter().map(|op| (*op, self.weight(op))).collect();
        if weights.iter().all(|(_, w)| *w == 0) {
            return Err(DrillError::Scenario("load.mix: every weight is zero".into()));
        }
        Ok(weights)
    }
}

/// How replication between regions works in the drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationMode {
    /// Every write goes to all healthy regions before it is acknowledged: no acknowledged
    /// write can be lost by a failover.
    #[default]
    Sync,
    /// Writes go to the primary; a replicator copies them from its stream to the others
    /// (last writer wins). A failover may lose what was not replicated yet.
    Async,
}

/// Failover settings of the drill's failover client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSettings {
    /// Whether the client fails over at all (a drill with `false` shows what an outage costs
    /// without it, and that the assertions catch it).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often each region is probed.
    #[serde(default = "default_probe_interval", with = "serde_duration")]
    pub probe_interval: Duration,
    /// A probe slower than this fails.
    #[serde(default = "default_probe_timeout", with = "serde_duration")]
    pub probe_timeout: Duration,
    /// Consecutive failed probes before a region is declared down.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Consecutive good probes before a down region is declared up again.
    #[serde(default = "default_recovery_threshold")]
    pub recovery_threshold: u32,
    /// Whether traffic goes back to the original primary once it is healthy again.
    #[serde(default)]
    pub failback: bool,
    /// How long the primary must be healthy before traffic goes back.
    #[serde(default = "default_failback_after", with = "serde_duration")]
    pub failback_after: Duration,
    /// The least time between two switches of traffic.
    #[serde(default = "default_min_dwell", with = "serde_duration")]
    pub min_dwell: Duration,
    /// Sync or async replication.
    #[serde(default)]
    pub replication: ReplicationMode,
    /// How a region is found down: `passive` (the default: the load's own requests make it
    /// suspect, an immediate probe confirms, timeouts adapt) or `probe` (probe rounds only,
    /// each request under `load.timeout`).
    #[serde(default)]
    pub detection: Detection,
    /// Passive detection: failed requests in a row that make a region suspect.
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// Passive detection: each request's timeout is this multiple of its operation's p99 in
    /// the region called...
    #[serde(default = "default_timeout_multiplier")]
    pub timeout_multiplier: f64,
    /// ...never below this...
    #[serde(default = "default_timeout_floor", with = "serde_duration")]
    pub timeout_floor: Duration,
    /// ...and never above `load.timeout`. The confirming probe's timeout is the same multiple
    /// of the probes' p99, at least this and at most `probe_timeout`.
    #[serde(default = "default_confirm_timeout_floor", with = "serde_duration")]
    pub confirm_timeout_floor: Duration,
}

/// How a drill's failover client finds a region down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detection {
    /// Requests that fail in a row, confirmed by an immediate probe; adaptive timeouts.
    #[default]
    Passive,
    /// Probe rounds only; fixed request timeouts.
    Probe,
}

impl std::str::FromStr for Detection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "passive" => Ok(Detection::Passive),
            "probe" => Ok(Detection::Probe),
            other => Err(format!("unknown detection {other:?}: expected passive or probe")),
        }
    }
}

impl Detection {
    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Detection::Passive => "passive",
            Detection::Probe => "probe",
        }
    }
}

fn yes() -> bool {
    true
}
fn default_probe_interval() -> Duration {
    Duration::from_millis(500)
}
fn default_probe_timeout() -> Duration {
    Duration::from_millis(400)
}
fn default_consecutive_failures() -> u32 {
    3
}
fn default_timeout_multiplier() -> f64 {
    3.0
}
fn default_timeout_floor() -> Duration {
    Duration::from_millis(200)
}
fn default_confirm_timeout_floor() -> Duration {
    Duration::from_millis(100)
}
fn default_failback_after() -> Duration {
    Duration::from_secs(60)
}
fn default_min_dwell() -> Duration {
    Duration::from_secs(10)
}
fn default_failure_threshold() -> u32 {
    3
}
fn default_recovery_threshold() -> u32 {
    5
}

impl Default for FailoverSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            probe_interval: default_probe_interval(),
            probe_timeout: default_probe_timeout(),
            failure_threshold: default_failure_threshold(),
            recovery_threshold: default_recovery_threshold(),
            failback: false,
            failback_after: default_failback_after(),
            min_dwell: default_min_dwell(),
            replication: ReplicationMode::Sync,
            detection: Detection::Passive,
            consecutive_failures: default_consecutive_failures(),
            timeout_multiplier: default_timeout_multiplier(),
            timeout_floor: default_timeout_floor(),
            confirm_timeout_floor: default_confirm_timeout_floor(),
        }
    }
}

/// One fault of the timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// A name, for its own bounds under `[assertions.fault.<name>]` and for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it starts, from the start of the load.
    #[serde(with = "serde_duration")]
    pub at: Duration,
    /// When it ends; never (within the drill) when absent.
    #[serde(default, with = "serde_opt_duration", skip_serializing_if = "Option::is_none")]
    pub heal_at: Option<Duration>,
    /// What happens.
    pub kind: FaultKind,
    /// The region it hits (for `partition`: one side of it).
    pub region: String,
    /// `partition`: the other side; default every other region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// `latency`: the added delay per response.
    #[serde(default, with = "serde_opt_duration", skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
    /// `latency`: random extra delay up to this.
    #[serde(default, with = "serde_opt_duration", skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    /// `throttling`: the error answered (default `provisioned_throughput_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<DynamoDbFault>,
    /// `throttling`: the share of requests answered with the error (default 1.0);
    /// network faults: the probability per connection (default 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `throttling`: the operations hit (`PutItem`, `GetItem`, ...; default every one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// `process_kill`: `kill` (SIGKILL, healed by a restart) or `pause` (SIGSTOP, healed by
    /// SIGCONT); default `kill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<crate::faults::ProcessFault>,
}

/// The kinds of fault a timeline holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The region is unreachable: its DynamoDB endpoint blackholes every connection, pooled
    /// ones too, for clients and for replication.
    RegionOutage,
    /// Every response from the region's DynamoDB is delayed.
    Latency,
    /// The region's DynamoDB answers with throttling (or 5xx) errors.
    Throttling,
    /// Replication between two regions is cut; clients still reach both.
    Partition,
    /// The region's DynamoDB Local process is killed (or paused).
    ProcessKill,
}

impl FaultKind {
    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::RegionOutage => "region_outage",
            FaultKind::Latency => "latency",
            FaultKind::Throttling => "throttling",
            FaultKind::Partition => "partition",
            FaultKind::ProcessKill => "process_kill",
        }
    }
}

/// What must hold for the drill to pass; an absent bound is not checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertions {
    /// Longest time from a fault to the first successful operation in the region traffic
    /// moved to, worst case over the faults it binds (see the [module docs](self)). Fails
    /// when no fault moved traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failover_secs: Option<f64>,
    /// Longest time from a fault to its region being declared down, worst case over the
    /// faults it binds (see the [module docs](self)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_detect_secs: Option<f64>,
    /// Most failed operations within the fault windows (injection to heal, or to the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors_in_window: Option<u64>,
    /// Most acknowledged effects (every write kind) missing or stale in the final primary
    /// after the drill, once every fault is healed and replication settled: a write the
    /// failed region alone held and replicated after the heal is not lost here
    /// (`max_writes_missing_at_failover` bounds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_acknowledged_writes_lost: Option<u64>,
    /// Highest replication lag observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replication_lag_ms: Option<u64>,
    /// Lowest share of successful operations over the whole drill (0.0 to 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_success_rate: Option<f64>,
    /// Most failovers (e.g. 0: a partition or a brownout must not trigger one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failovers: Option<u32>,
    /// Most acknowledged effects (every write kind) the final primary holds and the other
    /// regions still lack once the faults are healed and replication had time to settle
    /// (convergence). An effect lost everywhere is counted as lost, not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_writes_missing_after_settle: Option<u64>,
    /// Most acknowledged effects another region holds and the final primary still lacks
    /// after settle: the other direction of convergence (a region whose writes never
    /// replicated to the final primary, such as a restarted node whose stream is not read).
    /// Both regions are read again until they agree or the settle time runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_writes_missing_in_primary_after_settle: Option<u64>,
    /// Most acknowledged effects missing from the new primary at a failover (the worst
    /// failover), read from it straight away while replication from the region traffic
    /// left is held cut, so nothing that region alone held can reach it first: what a
    /// failover at that moment loses if the region never comes back. 0 is the promise of
    /// synchronous replication; asynchronous replication loses its in-flight tail. Holds
    /// when nothing failed over; fails when a failover could not be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_writes_missing_at_failover: Option<u64>,
    /// Sync replication: most acknowledged operations whose writes one region alone held
    /// (the monitor held every other region unhealthy: degraded writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_degraded_writes: Option<u64>,
    /// Fewest failovers (traffic moved away from an unhealthy region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_failovers: Option<u32>,
    /// Most failbacks (traffic moved back to a healed primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failbacks: Option<u32>,
    /// Fewest failbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_failbacks: Option<u32>,
    /// Bounds of single faults, by the fault's `name` (`[assertions.fault.<name>]`).
    #[serde(default, rename = "fault", skip_serializing_if = "BTreeMap::is_empty")]
    pub faults: BTreeMap<String, FaultAssertions>,
}

/// The bounds of one named fault (`[assertions.fault.<name>]`): strict, so a bound on a
/// figure the fault did not produce fails.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAssertions {
    /// Longest time from this fault to its region being declared down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_detect_secs: Option<f64>,
    /// Longest time from this fault to the first success in the region traffic moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failover_secs: Option<f64>,
    /// Most failed operations that called this fault's region in its window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors_in_window: Option<u64>,
    /// Whether this fault must move traffic away from its region (`true`) or must not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fails_over: Option<bool>,
}

impl FaultAssertions {
    /// Whether no bound is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Scenario {
    /// Parses and validates a scenario.
    pub fn parse(text: &str) -> Result<Self, DrillError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| DrillError::Scenario(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads, parses and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DrillError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| DrillError::Scenario(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| match e {
            DrillError::Scenario(msg) => DrillError::Scenario(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// The primary region (the first).
    pub fn primary(&self) -> &str {
        &self.regions[0].name
    }

    /// The region spec by name.
    pub fn region(&self, name: &str) -> Option<&RegionSpec> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// How long the drill's load runs.
    pub fn duration(&self) -> Duration {
        self.load.duration
    }

    pub(super) fn validate(&self) -> Result<(), DrillError> {
        let bad = |msg: String| Err(DrillError::Scenario(msg));
        if self.name.is_empty()
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return bad(format!("name {:?} must be letters, digits, '_' or '-'", self.name));
        }
        if self.regions.len() < 2 {
            return bad("a drill needs at least two [[region]]s".into());
        }
        for (i, r) in self.regions.iter().enumerate() {
            if self.regions[..i].iter().any(|o| o.name == r.name) {
                return bad(format!("region {} is declared twice", r.name));
            }
        }
        if !(self.load.rate > 0.0 && self.load.rate <= 5000.0) {
            return bad(format!("load.rate {} must be in (0, 5000]", self.load.rate));
        }
        if self.load.duration.is_zero() {
            return bad("load.duration must be positive".into());
        }
        if self.load.concurrency == 0 || self.load.tenants == 0 {
            return bad("load.concurrency and load.tenants must be positive".into());
        }
        if self.assertions.is_empty() {
            return bad(
                "no [assertions]: a drill that asserts nothing cannot fail; bound at least one figure".into(),
            );
        }
        let remote = self.regions.iter().filter(|r| r.dynamodb == DynamoDbSpec::Remote).count();
        if remote > 0 && remote < self.regions.len() {
            return bad("regions are all remote or all local: a drill cannot replicate between both".into());
        }
        for r in &self.regions {
            if r.dynamodb != DynamoDbSpec::Remote && (r.endpoint.is_some() || r.table.is_some()) {
                return bad(format!("region {}: endpoint and table are for dynamodb = \"remote\"", r.name));
            }
        }
        if self.failover.failure_threshold == 0
            || self.failover.recovery_threshold == 0
            || self.failover.consecutive_failures == 0
        {
            return bad("failover thresholds must be positive".into());
        }
        if !(self.failover.timeout_multiplier.is_finite() && self.failover.timeout_multiplier >= 1.0) {
            return bad("failover.timeout_multiplier must be at least 1".into());
        }
        if self.failover.timeout_floor.is_zero() || self.failover.timeout_floor > self.load.timeout {
            return bad("failover.timeout_floor must be positive and at most load.timeout".into());
        }
        if self.failover.confirm_timeout_floor.is_zero()
            || self.failover.confirm_timeout_floor > self.failover.probe_timeout
        {
            return bad(
                "failover.confirm_timeout_floor must be positive and at most failover.probe_timeout".into()
            );
        }
        if self.failover.probe_timeout.is_zero() || self.failover.probe_timeout > self.failover.probe_interval
        {
            return bad("failover.probe_timeout must be positive and at most failover.probe_interval".into());
        }
        for (i, fault) in self.faults.iter().enumerate() {
            if let Some(name) = &fault.name {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return bad(format!("fault name {name:?} must be letters, digits, '_' or '-'"));
                }
                if self.faults[..i].iter().any(|o| o.name.as_ref() == Some(name)) {
                    return bad(format!("fault name {name} is used twice"));
                }
            }
        }
        for (name, bounds) in &self.assertions.faults {
            if !self.faults.iter().any(|f| f.name.as_ref() == Some(name)) {
                return bad(format!("assertions.fault.{name}: no [[fault]] is named {name}"));
            }
            if bounds.is_empty() {
                return bad(format!("assertions.fault.{name}: bounds nothing"));
            }
        }
        // A time bound longer than the load bounds nothing (one meant in milliseconds, say).
        let load_secs = self.load.duration.as_secs_f64();
        let times = [
            ("assertions.max_detect_secs".to_owned(), self.assertions.max_detect_secs),
            ("assertions.max_failover_secs".to_owned(), self.assertions.max_failover_secs),
        ]
        .into_iter()
        .chain(self.assertions.faults.iter().flat_map(|(name, b)| {
            [
                (format!("assertions.fault.{name}.max_detect_secs"), b.max_detect_secs),
                (format!("assertions.fault.{name}.max_failover_secs"), b.max_failover_secs),
            ]
        }));
        for (field, secs) in times {
            if let Some(secs) = secs.filter(|s| !(*s > 0.0 && *s <= load_secs)) {
                return bad(format!(
                    "{field} = {secs}: a bound in seconds, above 0 and within the load's {load_secs} s"
                ));
            }
        }
        for fault in &self.faults {
            let what = format!("fault {} at {:?}", fault.kind.name(), fault.at);
            let Some(region) = self.region(&fault.region) else {
                return bad(format!("{what}: unknown region {}", fault.region));
            };
            let peer_remote = fault.peer.as_deref().and_then(|p| self.region(p)).is_some_and(is_remote);
            if is_remote(region) || peer_remote {
                return bad(format!(
                    "{what}: region {} is remote; faults for remote regions are left to the AWS FIS experiment `--export-fis` writes",
                    region.name
                ));
            }
            if fault.at >= self.load.duration {
                return bad(format!("{what}: starts after the load ends"));
            }
            if fault.heal_at.is_some_and(|h| h <= fault.at) {
                return bad(format!("{what}: heal_at must come after at"));
            }
            if fault.rate.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
                return bad(format!(
                    "{what}: rate must be above 0.0 and at most 1.0 (a fault that never fires tests nothing)"
                ));
            }
            // A field another kind of fault reads would be ignored here, silently: refused.
            let ignored = [
                (
                    "rate",
                    fault.rate.is_some()
                        && matches!(fault.kind, FaultKind::Partition | FaultKind::ProcessKill),
                ),
                ("latency", fault.latency.is_some() && fault.kind != FaultKind::Latency),
                ("jitter", fault.jitter.is_some() && fault.kind != FaultKind::Latency),
                ("error", fault.error.is_some() && fault.kind != FaultKind::Throttling),
                ("operations", !fault.operations.is_empty() && fault.kind != FaultKind::Throttling),
                ("peer", fault.peer.is_some() && fault.kind != FaultKind::Partition),
                ("action", fault.action.is_some() && fault.kind != FaultKind::ProcessKill),
            ];
            if let Some((field, _)) = ignored.iter().find(|(_, set)| *set) {
                return bad(format!("{what}: {field} does nothing for a {} fault", fault.kind.name()));
            }
            if let Some(op) = fault.operations.iter().find(|op| {
                op.as_str() != crate::faults::ANY_OPERATION
                    && !crate::faults::DYNAMODB_OPERATIONS.contains(&op.as_str())
            }) {
                return bad(format!(
                    "{what}: {op:?} is no DynamoDB operation (PutItem, TransactWriteItems...)"
                ));
            }
            match fault.kind {
                FaultKind::Latency if fault.latency.is_none() => {
                    return bad(format!("{what}: needs latency = \"...\""));
                }
                FaultKind::ProcessKill if region.dynamodb != DynamoDbSpec::Dedicated => {
                    return bad(format!(
                        "{what}: region {} needs dynamodb = \"dedicated\" for process faults",
                        region.name
                    ));
                }
                FaultKind::Partition => {
                    if let Some(peer) = &fault.peer {
                        if self.region(peer).is_none() || *peer == fault.region {
                            return bad(format!("{what}: peer must be another declared region"));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn is_remote(region: &RegionSpec) -> bool {
    region.dynamodb == DynamoDbSpec::Remote
}

impl Assertions {
    /// Whether no bound is set.
    pub fn is_empty(&self) -> bool {
        let Assertions {
            max_failover_secs,
            max_detect_secs,
            max_errors_in_window,
            max_acknowledged_writes_lost,
            max_replication_lag_ms,
            min_success_rate,
            max_failovers,
            max_writes_missing_after_settle,
            max_writes_missing_in_primary_after_settle,
            max_writes_missing_at_failover,
            max_degraded_writes,
            min_failovers,
            max_failbacks,
            min_failbacks,
            faults,
        } = self;
        max_failover_secs.is_none()
            && max_detect_secs.is_none()
            && max_errors_in_window.is_none()
            && max_acknowledged_writes_lost.is_none()
            && max_replication_lag_ms.is_none()
            && min_success_rate.is_none()
            && max_failovers.is_none()
            && max_writes_missing_after_settle.is_none()
            && max_writes_missing_in_primary_after_settle.is_none()
            && max_writes_missing_at_failover.is_none()
            && max_degraded_writes.is_none()
            && min_failovers.is_none()
            && max_failbacks.is_none()
            && min_failbacks.is_none()
            && faults.values().all(FaultAssertions::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        [[region]]
        name = "a"
        [[region]]
        name = "b"
        dynamodb = "dedicated"
        [load]
        rate = 10
        duration = "10s"
        [assertions]
        max_failover_secs = 10
    "#;

    #[test]
    fn defaults_fill_in() {
        let s = Scenario::parse(MINIMAL).unwrap();
        assert_eq!(s.primary(), "a");
        assert_eq!(s.regions[1].dynamodb, DynamoDbSpec::Dedicated);
        assert_eq!(s.load.timeout, Duration::from_secs(2));
        assert!(s.failover.enabled);
        assert_eq!(s.failover.replication, ReplicationMode::Sync);
        assert!(s.load.mix.is_empty(), "the workload's default mix applies");
    }

    #[test]
    fn a_scenario_without_assertions_is_refused() {
        let bare = MINIMAL.replace("[assertions]\n        max_failover_secs = 10", "");
        let err = Scenario::parse(&bare).unwrap_err();
        assert!(err.to_string().contains("no [assertions]"), "{err}");
        let empty = MINIMAL.replace("max_failover_secs = 10", "");
        assert!(Scenario::parse(&empty).unwrap_err().to_string().contains("no [assertions]"));
    }

    #[test]
    fn an_unknown_mix_operation_is_refused() {
        let ops = ["create", "get", "refund"];
        let mix = |text: &str| {
            let s = Scenario::parse(
                &MINIMAL.replace("[assertions]", &format!("[load.mix]\n{text}\n[assertions]")),
            )
            .unwrap();
            s.load.mix.resolve("payments", &ops)
        };
        assert_eq!(mix("create = 2\nrefund = 1").unwrap(), [("create", 2), ("get", 0), ("refund", 1)]);
        let err = mix("create = 1\nrefnd = 1").unwrap_err().to_string();
        assert!(err.contains("unknown operation \"refnd\"") && err.contains("create, get, refund"), "{err}");
        assert!(mix("create = 0").unwrap_err().to_string().contains("zero"));
    }

    #[test]
    fn remote_regions_parse_and_refuse_in_process_faults() {
        let remote = r#"
            name = "aws"
            [[region]]
            name = "us-east-1"
            dynamodb = "remote"
            table = "payments-prod"
            [[region]]
            name = "eu-west-1"
            dynamodb = "remote"
            endpoint = "https://dynamodb.eu-west-1.amazonaws.com"
            [load]
            rate = 5
            duration = "30s"
            [assertions]
            max_acknowledged_writes_lost = 0
        "#;
        let s = Scenario::parse(remote).unwrap();
        assert_eq!(s.regions[0].dynamodb, DynamoDbSpec::Remote);
        assert_eq!(s.regions[0].table.as_deref(), Some("payments-prod"));
        assert_eq!(s.regions[1].endpoint.as_deref(), Some("https://dynamodb.eu-west-1.amazonaws.com"));
        let faulted =
            format!("{remote}\n[[fault]]\nat = \"5s\"\nkind = \"region_outage\"\nregion = \"us-east-1\"");
        let err = Scenario::parse(&faulted).unwrap_err().to_string();
        assert!(err.contains("left to the AWS FIS experiment `--export-fis` writes"), "{err}");
        let mixed = remote.replacen("dynamodb = \"remote\"\n            table = \"payments-prod\"", "", 1);
        assert!(Scenario::parse(&mixed).unwrap_err().to_string().contains("all remote or all local"));
        let stray = MINIMAL.replacen("name = \"a\"", "name = \"a\"\nendpoint = \"http://x\"", 1);
        assert!(Scenario::parse(&stray).unwrap_err().to_string().contains("remote"));
    }

    #[test]
    fn faults_are_checked() {
        let with = |fault: &str| Scenario::parse(&format!("{MINIMAL}\n[[fault]]\n{fault}"));
        with("at = \"2s\"\nkind = \"region_outage\"\nregion = \"a\"\nheal_at = \"5s\"").unwrap();
        let err = with("at = \"2s\"\nkind = \"region_outage\"\nregion = \"zz\"").unwrap_err();
        assert!(err.to_string().contains("unknown region zz"), "{err}");
        let err = with("at = \"2s\"\nkind = \"process_kill\"\nregion = \"a\"").unwrap_err();
        assert!(err.to_string().contains("dedicated"), "{err}");
        with("at = \"2s\"\nkind = \"process_kill\"\nregion = \"b\"\naction = \"pause\"").unwrap();
        let err = with("at = \"2s\"\nkind = \"latency\"\nregion = \"a\"").unwrap_err();
        assert!(err.to_string().contains("latency"), "{err}");
        let err = with("at = \"20s\"\nkind = \"region_outage\"\nregion = \"a\"").unwrap_err();
        assert!(err.to_string().contains("after the load ends"), "{err}");
        let err = with("at = \"2s\"\nkind = \"throttling\"\nregion = \"a\"\nerror = \"nope\"").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = with("at = \"2s\"\nkind = \"meteor\"\nregion = \"a\"").unwrap_err();
        assert!(err.to_string().contains("meteor"), "{err}");
    }

    /// What would make a fault do nothing, or a bound bind nothing, fails to load, naming
    /// the field: a rate of zero, a field another kind of fault reads, an operation DynamoDB
    /// does not have, a time bound beyond the load (seconds written as milliseconds).
    #[test]
    fn fault_fields_that_do_nothing_are_refused() {
        let with = |fault: &str| {
            Scenario::parse(&format!("{MINIMAL}\n[[fault]]\nat = \"2s\"\nregion = \"a\"\n{fault}"))
        };
        let refused = |fault: &str, needle: &str| {
            let err = with(fault).unwrap_err().to_string();
            assert!(err.contains(needle), "{fault:?}: {err}");
        };
        refused("kind = \"throttling\"\nrate = 0.0", "rate must be above 0.0");
        refused("kind = \"throttling\"\noperations = [\"PutItm\"]", "\"PutItm\" is no DynamoDB operation");
        refused("kind = \"throttling\"\noperations = [\"TransactWriteItem\"]", "no DynamoDB operation");
        refused(
            "kind = \"latency\"\nlatency = \"50ms\"\noperations = [\"PutItem\"]",
            "operations does nothing for a latency fault",
        );
        refused("kind = \"latency\"\nlatency = \"50ms\"\nerror = \"throttling\"", "error does nothing");
        refused("kind = \"region_outage\"\npeer = \"b\"", "peer does nothing for a region_outage fault");
        refused("kind = \"region_outage\"\naction = \"pause\"", "action does nothing");
        refused("kind = \"partition\"\nrate = 0.5", "rate does nothing for a partition fault");
        refused("kind = \"throttling\"\njitter = \"5ms\"", "jitter does nothing");
        with("kind = \"throttling\"\nrate = 0.5\noperations = [\"PutItem\", \"TransactWriteItems\"]")
            .unwrap();
        with("kind = \"latency\"\nlatency = \"50ms\"\njitter = \"10ms\"\nrate = 0.5").unwrap();
        let bound = |b: &str| Scenario::parse(&MINIMAL.replace("max_failover_secs = 10", b));
        let err = bound("max_detect_secs = 500").unwrap_err().to_string();
        assert!(err.contains("assertions.max_detect_secs = 500: a bound in seconds"), "{err}");
        assert!(bound("max_failover_secs = 0").is_err());
        bound("max_detect_secs = 0.5").unwrap();
    }

    #[test]
    fn faults_are_named_and_bound_by_name() {
        let fault = |name: &str, at: &str| {
            format!("[[fault]]\nname = \"{name}\"\nat = \"{at}\"\nkind = \"region_outage\"\nregion = \"a\"\n")
        };
        let with = |faults: String, bounds: &str| {
            Scenario::parse(&format!(
                "{}\n{faults}\n{bounds}",
                MINIMAL.replace("[assertions]\n        max_failover_secs = 10", "")
            ))
        };
        let both = fault("first", "1s") + &fault("second", "5s");
        let s = with(
            both.clone(),
            "[assertions]\nmin_failovers = 1\nmax_failbacks = 0\n[assertions.fault.second]\nmax_detect_secs = 3\nfails_over = false",
        )
        .unwrap();
        assert_eq!(s.faults[1].name.as_deref(), Some("second"));
        assert_eq!(s.assertions.faults["second"].max_detect_secs, Some(3.0));
        assert_eq!(s.assertions.faults["second"].fails_over, Some(false));
        assert_eq!((s.assertions.min_failovers, s.assertions.max_failbacks), (Some(1), Some(0)));
        // Per-fault bounds alone are assertions.
        with(both.clone(), "[assertions.fault.first]\nmax_failover_secs = 5").unwrap();
        let err = with(both.clone(), "[assertions.fault.third]\nmax_detect_secs = 3").unwrap_err();
        assert!(err.to_string().contains("no [[fault]] is named third"), "{err}");
        let err =
            with(both.clone(), "[assertions]\nmax_failovers = 1\n[assertions.fault.first]").unwrap_err();
        assert!(err.to_string().contains("bounds nothing"), "{err}");
        let err = with(fault("x", "1s") + &fault("x", "5s"), "[assertions]\nmax_failovers = 1").unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
        let err = with(fault("a b", "1s"), "[assertions]\nmax_failovers = 1").unwrap_err();
        assert!(err.to_string().contains("letters, digits"), "{err}");
        let err = with(both, "[assertions.fault.first]\nmax_detect = 3").unwrap_err();
        assert!(err.to_string().contains("max_detect"), "{err}");
    }

    #[test]
    fn detection_settings_default_to_passive_and_bad_ones_are_refused() {
        let s = Scenario::parse(MINIMAL).unwrap();
        assert_eq!(s.failover.detection, Detection::Passive);
        assert_eq!(s.failover.timeout_floor, Duration::from_millis(200));
        let with = |failover: &str| {
            Scenario::parse(
                &MINIMAL.replace("[assertions]", &format!("[failover]\n{failover}\n[assertions]")),
            )
        };
        assert_eq!(with("detection = \"probe\"").unwrap().failover.detection, Detection::Probe);
        for (text, says) in [
            ("detection = \"psychic\"", "psychic"),
            ("detecton = \"probe\"", "detecton"),
            ("timeout_floor = \"5s\"", "timeout_floor"),
            ("timeout_multiplier = 0.5", "timeout_multiplier"),
            ("consecutive_failures = 0", "thresholds"),
            ("confirm_timeout_floor = \"1s\"", "confirm_timeout_floor"),
        ] {
            let err = with(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
        assert_eq!("probe".parse::<Detection>(), Ok(Detection::Probe));
        assert!("passve".parse::<Detection>().is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            Scenario::parse(&MINIMAL.replace("max_failover_secs = 10", "max_failover = 3")).unwrap_err();
        assert!(err.to_string().contains("max_failover"), "{err}");
    }
}
