//! Disaster recovery: regions, health monitoring, failover, replication and RTO/RPO
//! accounting (feature `disaster`).
//!
//! # The parts
//!
//! - **Regions.** A [`RegionSet`] is a primary and its secondaries in failover order, each
//!   a [`Region`] with its own DynamoDB and DynamoDB Streams clients. Build it from
//!   [`RegionConfig`]s or from the environment ([`RegionSet::from_env`]: `LIFT_REGIONS`,
//!   `LIFT_DYNAMODB_ENDPOINT_<REGION>`, `LIFT_HEALTH_URL_<REGION>`).
//! - **Health.** A [`HealthMonitor`] runs [`Probe`]s per region on an interval
//!   ([`MonitorConfig`]: 1 s interval, 500 ms timeout by default): DynamoDB reachability
//!   ([`DynamoDbProbe`]) and the service's `/health/ready` ([`HttpProbe`]). A region turns
//!   unhealthy after `failure_threshold` failing rounds in a row (3) and healthy after
//!   `recovery_threshold` passing ones (2) ([`RegionHealth`]). Every round publishes a
//!   [`HealthSnapshot`] on a `tokio::sync::watch` channel, with the start of the failure
//!   streak and the time the region was declared down.
//! - **Passive detection** (on by default, [`PassiveConfig`]): the failover client reports
//!   each request's outcome to the monitor's [`RequestObserver`] and takes each request's
//!   timeout from it. Timeouts follow each operation's observed latency in each region
//!   ([`AdaptiveTimeout`]: 3 × p99 within 200 ms..=2 s), so a blackholed request fails in
//!   hundreds of milliseconds. Three failures in a row (timeouts, connection failures, 5xx,
//!   throttling: [`FailureKind`]) make a region suspect and run its probes at once, under
//!   3 × the probes' own p99 (at least 100 ms); a failing confirmation declares it down on
//!   the spot ([`DetectedBy::Requests`]), a passing one clears the suspicion, so noise the
//!   probes do not see never moves traffic. [`MonitorConfig::probe_only`] (or
//!   `LIFT_FAILOVER_DETECTION=probe`) keeps detection to the probe rounds.
//! - **Failover.** A [`FailoverPolicy`] decides ([`Decision`]); the
//!   [`FailoverOrchestrator`] acts: it switches the [`RegionRouter`] that the service's own
//!   data access reads on every call, then points a Route 53 record at the new region
//!   ([`Route53Failover`]), fails back once the primary has been healthy for
//!   `failback_after` (60 s), never switches twice within `min_dwell` (10 s), and keeps a
//!   [`FailoverRecord`] per switch. With probe-only detection and the defaults an outage
//!   moves traffic in 2 to 4 s after the first failing probe: three rounds one second apart,
//!   plus up to one interval before the first round sees the fault. With passive detection
//!   under load, in about 0.4 s (the `region_outage` drill).
//! - **Replication.** A [`Replicator`] applies each region's DynamoDB Stream to the other
//!   regions with conditional writes, so an older change never overwrites a newer one
//!   ([`ConflictResolver`], by default [`LastWriterWins`] on `_version`, ties to the region
//!   whose name sorts first). Replicated writes carry `_origin_region`; one whose origin
//!   is another region is forwarded only where it is strictly newer (never sent back as
//!   the exact version a region holds). [`ReplicationStats`] count applied and superseded changes and the lag. A
//!   [`SyncWriter`] writes to two regions before acknowledging (RPO 0), and says which
//!   regions acknowledged when one fails. A [`ReplicatedWriter`] writes every kind (puts,
//!   updates, deletes, transactions), synchronously or for stream replication, stamping each
//!   with a new `_version` and the writing region as `_origin_region`.
//! - **RTO/RPO.** Each [`FailoverRecord`] carries `fault_detected_at`, `declared_down_at`,
//!   `traffic_moved_at`, `time_to_detect` and `time_to_failover`; an [`RpoCheck`] reads the
//!   acknowledged writes back from the new primary and lists the missing ones.
//! - **Backup and restore** (feature `backup`, S3 targets with `backup-s3`): logical
//!   backups from a parallel Scan with a SHA-256 manifest signed with HMAC-SHA256, a
//!   signed stream archive for point-in-time restores between backups, and restores into a
//!   new table that refuse damaged, tampered or unsigned backups and existing tables
//!   (module `lift::disaster::backup`).
//!
//! Instants in health snapshots and records come from `tokio::time::Instant` (converted to
//! `std::time::Instant`), so tests can run the whole machinery on a paused clock.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use lift::disaster::{
//!     FailoverOrchestrator, FailoverPolicy, MonitorConfig, RegionConfig, RegionSet, ReplicatedTable,
//!     Replicator, Route53Failover,
//! };
//! use lift::store::{KeyAttribute, StreamView, TableDef};
//! use std::time::Duration;
//!
//! let regions = RegionSet::builder()
//!     .region(RegionConfig::new("us-east-1").dynamodb_endpoint("http://127.0.0.1:8000"))
//!     .region(RegionConfig::new("eu-west-1").dynamodb_endpoint("http://127.0.0.1:8001"))
//!     .build()?;
//!
//! // Move traffic when the primary goes dark; fail back after two healthy minutes.
//! let orchestrator = FailoverOrchestrator::builder(regions.clone())
//!     .monitor(MonitorConfig::default())
//!     .policy(FailoverPolicy::default().failback_after(Duration::from_secs(120)))
//!     .route53(
//!         Route53Failover::new("Z0LIFT", "api.example.com.")
//!             .endpoint("http://127.0.0.1:4566")
//!             .target("us-east-1", "api.us-east-1.example.com")
//!             .target("eu-west-1", "api.eu-west-1.example.com"),
//!     )
//!     .start()?;
//! let router = orchestrator.router().clone();
//!
//! // Keep the regions' tables in step.
//! let orders = TableDef::new("orders", KeyAttribute::string("pk")).with_stream(StreamView::NewAndOldImages);
//! let _replicator = Replicator::builder(regions).table(ReplicatedTable::new(orders)).start().await?;
//!
//! // The service reads the active region on every call.
//! router.dynamodb().get_item().table_name("orders").send().await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "backup")]
#[cfg_attr(docsrs, doc(cfg(feature = "backup")))]
pub mod backup;
mod conflict;
mod env;
mod error;
mod health;
mod monitor;
mod orchestrator;
mod passive;
mod policy;
mod probe;
mod region;
mod replication;
mod route53;
mod router;
mod rpo;
mod sync;
mod table;
mod writer;

pub use conflict::{
    compare_versions, Change, ChangeKind, ConflictResolver, LastWriterWins, WriteCondition, ORIGIN_ATTRIBUTE,
    VERSION_ATTRIBUTE,
};
pub use error::{
    ConfigError, ProbeError, RegionFailure, ReplicationError, Route53Error, RpoError, SyncWriteError,
};
pub use health::{DetectedBy, HealthSnapshot, HealthState, RegionHealth, RegionStatus};
pub use monitor::{HealthMonitor, HealthMonitorBuilder, MonitorConfig};
pub use orchestrator::{
    DnsUpdate, FailoverOrchestrator, FailoverOrchestratorBuilder, FailoverRecord, SwitchKind,
};
pub use passive::{AdaptiveTimeout, AdaptiveTimeoutConfig, FailureKind, PassiveConfig, RequestObserver};
pub use policy::{Decision, FailoverPolicy};
pub use probe::{default_probes, DynamoDbProbe, HttpProbe, Probe, ProbeFuture};
pub use region::{Region, RegionConfig, RegionSet, RegionSetBuilder};
pub use replication::{LinkStats, ReplicationStats, Replicator, ReplicatorBuilder, StartPosition};
pub use route53::{ChangeAction, ChangeInfo, ResourceRecordSet, Route53Client, Route53Failover};
pub use router::RegionRouter;
pub use rpo::{key_text, AckedWrite, RpoCheck, RpoReport};
pub use sync::{SyncAck, SyncWriter, SyncWriterBuilder};
pub use table::{Item, ReplicatedTable};
pub use writer::{ReplicatedWriter, ReplicatedWriterBuilder, Write, WriteAck, WriteError, WriteMode};
