//! A local multi-region topology: per region a DynamoDB Local, an [`AwsFaultProxy`] in front
//! of it, and two [`FaultProxy`]s: one for clients, one for replication.
//!
//! ```text
//! clients, health probes, sync writes ─▶ client FaultProxy ──────┐
//!                                                                ├─▶ AwsFaultProxy ─▶ DynamoDB Local
//! stream replication ──────────────────▶ replication FaultProxy ─┘
//! drill checks (RPO, lag) ────────────────────────────────────────────────────────▶ (direct)
//! ```

use std::sync::Arc;
use std::time::Duration;

use lift::disaster::{RegionConfig, RegionSet, ReplicatedTable};
use lift::store::{StreamView, TableDef};

use super::scenario::{DynamoDbSpec, RegionSpec};
use super::DrillError;
#[cfg(unix)]
use crate::dynamodb::DedicatedDynamoDb;
use crate::dynamodb::DynamoDbLocal;
use crate::faults::{AwsFaultProxy, FaultProxy};

/// The payments table as drills use it: `payments::table_def()` with a stream of new and
/// old images, which replication reads.
pub fn drill_table_def() -> TableDef {
    payments::table_def().with_stream(StreamView::NewAndOldImages)
}

/// What serves a region's DynamoDB.
#[derive(Debug)]
enum Backend {
    Shared(Arc<DynamoDbLocal>),
    #[cfg(unix)]
    Dedicated(DedicatedDynamoDb),
}

/// One region of a [`Topology`].
#[derive(Debug)]
pub struct RegionNode {
    name: String,
    backend: Backend,
    api: AwsFaultProxy,
    client_path: FaultProxy,
    replication_path: FaultProxy,
    table: String,
}

impl RegionNode {
    /// The region name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The physical name of the drill's payments table here.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// DynamoDB Local itself, bypassing every proxy (for the drill's own checks).
    pub fn direct_endpoint(&self) -> String {
        match &self.backend {
            Backend::Shared(local) => local.endpoint().to_owned(),
            #[cfg(unix)]
            Backend::Dedicated(local) => local.endpoint(),
        }
    }

    /// The API fault proxy in front of DynamoDB Local.
    pub fn api(&self) -> &AwsFaultProxy {
        &self.api
    }

    /// The network path of clients (service calls, health probes, synchronous writes).
    pub fn client_path(&self) -> &FaultProxy {
        &self.client_path
    }

    /// The network path of stream replication, to and from this region.
    pub fn replication_path(&self) -> &FaultProxy {
        &self.replication_path
    }

    /// The dedicated DynamoDB Local, when the region has one (process faults).
    #[cfg(unix)]
    pub fn dedicated(&self) -> Option<&DedicatedDynamoDb> {
        match &self.backend {
            Backend::Dedicated(local) => Some(local),
            Backend::Shared(_) => None,
        }
    }
}

/// Regions on one machine, each with its own DynamoDB endpoint and fault proxies, and the
/// payments table created in each.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lift_harness::drill::DrillError> {
/// use lift_harness::drill::{RegionSpec, Topology, DynamoDbSpec};
/// use lift_harness::faults::Toxic;
///
/// let topology = Topology::start(&[
///     RegionSpec { name: "us-east-1".into(), dynamodb: DynamoDbSpec::Shared },
///     RegionSpec { name: "eu-west-1".into(), dynamodb: DynamoDbSpec::Shared },
/// ])
/// .await?;
/// let regions = topology.client_regions(std::time::Duration::from_secs(2))?; // for lift::disaster
/// topology.region("us-east-1").unwrap().client_path().set(Toxic::blackhole());
/// # drop(regions); Ok(()) }
/// ```
#[derive(Debug)]
pub struct Topology {
    regions: Vec<RegionNode>,
    table: ReplicatedTable,
}

impl Topology {
    /// Starts every region (dedicated JVMs in parallel), its proxies and its table.
    pub async fn start(specs: &[RegionSpec]) -> Result<Self, DrillError> {
        let def = drill_table_def();
        let mut starting = Vec::new();
        for spec in specs {
            let (spec, def) = (spec.clone(), def.clone());
            starting.push(tokio::spawn(async move { start_region(spec, def).await }));
        }
        let mut regions = Vec::new();
        for task in starting {
            regions.push(
                task.await.map_err(|e| DrillError::Target(format!("region start-up panicked: {e}")))??,
            );
        }
        let mut table = ReplicatedTable::new(def);
        for node in &regions {
            table = table.with_name_in(node.name.clone(), node.table.clone());
        }
        Ok(Self { regions, table })
    }

    /// The regions, in declaration order (primary first).
    pub fn regions(&self) -> &[RegionNode] {
        &self.regions
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> Option<&RegionNode> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The payments table with its physical name in each region.
    pub fn table(&self) -> &ReplicatedTable {
        &self.table
    }

    /// A `lift::disaster` region set over the client paths, with this operation timeout.
    pub fn client_regions(&self, operation_timeout: Duration) -> Result<RegionSet, DrillError> {
        self.region_set(operation_timeout, |r| r.client_path.endpoint())
    }

    /// A region set over the replication paths.
    pub fn replication_regions(&self) -> Result<RegionSet, DrillError> {
        self.region_set(Duration::from_secs(3), |r| r.replication_path.endpoint())
    }

    /// A region set straight to each DynamoDB Local (for checks that must see the data).
    pub fn direct_regions(&self) -> Result<RegionSet, DrillError> {
        self.region_set(Duration::from_secs(10), RegionNode::direct_endpoint)
    }

    fn region_set(
        &self,
        operation_timeout: Duration,
        endpoint: impl Fn(&RegionNode) -> String,
    ) -> Result<RegionSet, DrillError> {
        let mut builder = RegionSet::builder()
            .connect_timeout(operation_timeout.min(Duration::from_secs(1)))
            .operation_timeout(operation_timeout);
        for node in &self.regions {
            builder = builder.region(RegionConfig::new(node.name.clone()).dynamodb_endpoint(endpoint(node)));
        }
        builder.build().map_err(|e| DrillError::Target(e.to_string()))
    }
}

async fn start_region(spec: RegionSpec, def: TableDef) -> Result<RegionNode, DrillError> {
    let (backend, table) = match spec.dynamodb {
        DynamoDbSpec::Shared => {
            let local = DynamoDbLocal::shared().await?;
            let table = local.create_table(&def).await?;
            (Backend::Shared(local), table)
        }
        #[cfg(unix)]
        DynamoDbSpec::Dedicated => {
            let local = DynamoDbLocal::dedicated().await?;
            let table = local.create_table(&def).await?;
            (Backend::Dedicated(local), table)
        }
        #[cfg(not(unix))]
        DynamoDbSpec::Dedicated => {
            return Err(DrillError::Target("dedicated dynamodb local needs a unix system".into()))
        }
    };
    let direct = match &backend {
        Backend::Shared(local) => local.endpoint().to_owned(),
        #[cfg(unix)]
        Backend::Dedicated(local) => local.endpoint(),
    };
    let api = AwsFaultProxy::start(&direct).await?;
    let client_path = FaultProxy::start(&api.endpoint()).await?;
    let replication_path = FaultProxy::start(&api.endpoint()).await?;
    tracing::info!(region = %spec.name, %direct, client = %client_path.endpoint(), %table, "drill region up");
    Ok(RegionNode { name: spec.name, backend, api, client_path, replication_path, table })
}
