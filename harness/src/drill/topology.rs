//! The provisioned regions. A local region is a DynamoDB Local, an [`AwsFaultProxy`] in
//! front of it, and two [`FaultProxy`]s: one for clients, one for replication. A remote
//! region is a real DynamoDB endpoint, reached directly (its faults come from AWS FIS).
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
use crate::cost::CapacityProxy;
#[cfg(unix)]
use crate::dynamodb::DedicatedDynamoDb;
use crate::dynamodb::DynamoDbLocal;
use crate::faults::{AwsFaultProxy, FaultProxy};

/// A workload's table as drills use it: with a stream of new and old images, which
/// replication reads.
pub fn drill_table_def(def: TableDef) -> TableDef {
    def.with_stream(StreamView::NewAndOldImages)
}

/// What serves a region's DynamoDB.
#[derive(Debug)]
enum Backend {
    Shared(Arc<DynamoDbLocal>),
    #[cfg(unix)]
    Dedicated(DedicatedDynamoDb),
    /// A real DynamoDB: `None` for AWS's own endpoint of the region.
    Remote(Option<String>),
}

/// The proxies in front of a local region.
#[derive(Debug)]
struct Proxies {
    /// Asks DynamoDB Local for the capacity each request consumes and records it: what
    /// the drill's traffic (service calls, probes, replication) would cost on demand.
    meter: CapacityProxy,
    api: AwsFaultProxy,
    client_path: FaultProxy,
    replication_path: FaultProxy,
}

/// One region of a [`Topology`].
#[derive(Debug)]
pub struct RegionNode {
    name: String,
    backend: Backend,
    proxies: Option<Proxies>,
    table: String,
}

impl RegionNode {
    /// The region name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The physical name of the workload's table here.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB itself, bypassing every proxy (for the drill's own checks); `None` for
    /// AWS's own endpoint.
    pub fn direct_endpoint(&self) -> Option<String> {
        match &self.backend {
            Backend::Shared(local) => Some(local.endpoint().to_owned()),
            #[cfg(unix)]
            Backend::Dedicated(local) => Some(local.endpoint()),
            Backend::Remote(endpoint) => endpoint.clone(),
        }
    }

    /// Whether the region is a real DynamoDB, without fault proxies.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Remote(_))
    }

    /// The API fault proxy in front of DynamoDB Local (`None` for a remote region).
    pub fn api(&self) -> Option<&AwsFaultProxy> {
        self.proxies.as_ref().map(|p| &p.api)
    }

    /// The capacity meter in front of DynamoDB Local (`None` for a remote region): every
    /// request that passed the fault proxies, with the units DynamoDB reported.
    pub fn meter(&self) -> Option<&CapacityProxy> {
        self.proxies.as_ref().map(|p| &p.meter)
    }

    /// The network path of clients (service calls, health probes, synchronous writes).
    pub fn client_path(&self) -> Option<&FaultProxy> {
        self.proxies.as_ref().map(|p| &p.client_path)
    }

    /// The network path of stream replication, to and from this region.
    pub fn replication_path(&self) -> Option<&FaultProxy> {
        self.proxies.as_ref().map(|p| &p.replication_path)
    }

    fn endpoint(&self, path: impl Fn(&Proxies) -> String) -> Option<String> {
        self.proxies.as_ref().map(path).or_else(|| self.direct_endpoint())
    }

    /// Deletes the drill's table when it is on a DynamoDB Local that outlives the drill;
    /// see [`Topology::drop_shared_tables`].
    async fn drop_shared_table(&self) {
        if let Backend::Shared(local) = &self.backend {
            if local.is_private() {
                return; // it stops with the drill, tables and all
            }
            let deleted = local.client().await.delete_table().table_name(&self.table).send().await;
            if let Err(err) = deleted {
                tracing::warn!(
                    region = %self.name,
                    table = %self.table,
                    error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err),
                    "cannot delete the drill's table from DynamoDB Local"
                );
            }
        }
    }

    /// The dedicated DynamoDB Local, when the region has one (process faults).
    #[cfg(unix)]
    pub fn dedicated(&self) -> Option<&DedicatedDynamoDb> {
        match &self.backend {
            Backend::Dedicated(local) => Some(local),
            Backend::Shared(_) | Backend::Remote(_) => None,
        }
    }
}

/// The drill's regions, each with its own DynamoDB endpoint (and fault proxies when
/// local), and the workload's table in each (created when local).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lift_harness::drill::DrillError> {
/// use lift::store::{KeyAttribute, TableDef};
/// use lift_harness::drill::{RegionSpec, Topology};
/// use lift_harness::faults::Toxic;
///
/// let region = |name: &str| RegionSpec { name: name.into(), ..Default::default() };
/// let table = TableDef::new("notes", KeyAttribute::string("id"));
/// let topology = Topology::start(&[region("us-east-1"), region("eu-west-1")], table).await?;
/// let regions = topology.client_regions(std::time::Duration::from_secs(2))?; // for lift::disaster
/// topology.region("us-east-1").unwrap().client_path().unwrap().set(Toxic::blackhole());
/// # drop(regions); Ok(()) }
/// ```
#[derive(Debug)]
pub struct Topology {
    regions: Vec<RegionNode>,
    table: ReplicatedTable,
}

impl Topology {
    /// Starts every local region (dedicated JVMs in parallel), its proxies and the table
    /// `def` (with a stream added); names the existing table of each remote region.
    pub async fn start(specs: &[RegionSpec], def: TableDef) -> Result<Self, DrillError> {
        let def = drill_table_def(def);
        // One DynamoDB Local of the drill's own for its `shared` regions, so that what ran
        // before on the machine cannot slow it (see `DynamoDbLocal::private`).
        let local = if specs.iter().any(|s| s.dynamodb == DynamoDbSpec::Shared) {
            Some(Arc::new(DynamoDbLocal::private().await?))
        } else {
            None
        };
        let mut starting = Vec::new();
        for spec in specs {
            let (spec, def, local) = (spec.clone(), def.clone(), local.clone());
            starting.push(tokio::spawn(async move { start_region(spec, def, local).await }));
        }
        // Every start-up is awaited, failed or not: one that failed must not leave the
        // others creating tables nobody deletes.
        let (mut regions, mut failed) = (Vec::new(), None);
        for task in starting {
            match task.await {
                Ok(Ok(node)) => regions.push(node),
                Ok(Err(err)) => {
                    failed.get_or_insert(err);
                }
                Err(err) => {
                    failed.get_or_insert(DrillError::Target(format!("region start-up panicked: {err}")));
                }
            }
        }
        let topology = Self::from_nodes(regions, def);
        match failed {
            Some(err) => {
                topology.drop_shared_tables().await;
                Err(err)
            }
            None => Ok(topology),
        }
    }

    fn from_nodes(regions: Vec<RegionNode>, def: TableDef) -> Self {
        let mut table = ReplicatedTable::new(def);
        for node in &regions {
            table = table.with_name_in(node.name.clone(), node.table.clone());
        }
        Self { regions, table }
    }

    /// Deletes the drill's tables from a DynamoDB Local that outlives the drill (the one
    /// `LIFT_DYNAMODB_ENDPOINT` names, which may serve other work): each drill leaves
    /// thousands of items behind otherwise. The drill's own instance and a dedicated JVM stop
    /// with the drill, tables and all; a remote region's table is the user's and is never
    /// touched. A failed delete is logged, not an error: it must not hide the drill's report,
    /// or the error it ended with.
    pub async fn drop_shared_tables(&self) {
        for node in &self.regions {
            node.drop_shared_table().await;
        }
    }

    /// Whether the regions are real DynamoDB endpoints (no proxies, no local replicator).
    pub fn is_remote(&self) -> bool {
        self.regions.iter().any(RegionNode::is_remote)
    }

    /// The regions, in declaration order (primary first).
    pub fn regions(&self) -> &[RegionNode] {
        &self.regions
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> Option<&RegionNode> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The workload's table with its physical name in each region.
    pub fn table(&self) -> &ReplicatedTable {
        &self.table
    }

    /// A `lift::disaster` region set over the client paths, with this operation timeout.
    pub fn client_regions(&self, operation_timeout: Duration) -> Result<RegionSet, DrillError> {
        self.region_set(operation_timeout, |r| r.endpoint(|p| p.client_path.endpoint()))
    }

    /// A region set over the replication paths.
    pub fn replication_regions(&self) -> Result<RegionSet, DrillError> {
        self.region_set(Duration::from_secs(3), |r| r.endpoint(|p| p.replication_path.endpoint()))
    }

    /// A region set straight to each DynamoDB Local (for checks that must see the data).
    pub fn direct_regions(&self) -> Result<RegionSet, DrillError> {
        self.region_set(Duration::from_secs(10), RegionNode::direct_endpoint)
    }

    fn region_set(
        &self,
        operation_timeout: Duration,
        endpoint: impl Fn(&RegionNode) -> Option<String>,
    ) -> Result<RegionSet, DrillError> {
        let mut builder = RegionSet::builder()
            .connect_timeout(operation_timeout.min(Duration::from_secs(1)))
            .operation_timeout(operation_timeout);
        for node in &self.regions {
            let mut config = RegionConfig::new(node.name.clone());
            if let Some(url) = endpoint(node) {
                config = config.dynamodb_endpoint(url);
            }
            builder = builder.region(config);
        }
        builder.build().map_err(|e| DrillError::Target(e.to_string()))
    }
}

/// Starts the region `spec` names; a `shared` one on `local`, the drill's own instance.
async fn start_region(
    spec: RegionSpec,
    def: TableDef,
    local: Option<Arc<DynamoDbLocal>>,
) -> Result<RegionNode, DrillError> {
    let (backend, table) = match spec.dynamodb {
        DynamoDbSpec::Remote => {
            let table = spec.table.clone().unwrap_or_else(|| def.resolve_name());
            let backend = Backend::Remote(spec.endpoint.clone());
            tracing::info!(region = %spec.name, endpoint = ?spec.endpoint, %table, "drill region remote");
            return Ok(RegionNode { name: spec.name, backend, proxies: None, table });
        }
        DynamoDbSpec::Shared => {
            let local = local.expect("an instance for the shared regions");
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
        Backend::Remote(_) => unreachable!("remote regions returned above"),
    };
    let mut node = RegionNode { name: spec.name, backend, proxies: None, table };
    match Proxies::start(&direct).await {
        Ok(proxies) => {
            tracing::info!(region = %node.name, %direct, client = %proxies.client_path.endpoint(), table = %node.table, "drill region up");
            node.proxies = Some(proxies);
            Ok(node)
        }
        Err(err) => {
            node.drop_shared_table().await;
            Err(err)
        }
    }
}

impl Proxies {
    async fn start(upstream: &str) -> Result<Self, DrillError> {
        let meter = CapacityProxy::start(upstream)
            .await
            .map_err(|e| DrillError::Target(format!("cannot start the capacity meter: {e}")))?;
        let api = AwsFaultProxy::start(&meter.endpoint()).await?;
        let client_path = FaultProxy::start(&api.endpoint()).await?;
        let replication_path = FaultProxy::start(&api.endpoint()).await?;
        Ok(Self { meter, api, client_path, replication_path })
    }
}

/// Regions of proxies in front of `upstream` (nothing needs to listen there), for tests
/// of the inject stage.
#[cfg(test)]
pub(crate) async fn proxies_only(names: &[&str], upstream: &str) -> Topology {
    use lift::store::KeyAttribute;
    let mut nodes = Vec::new();
    for name in names {
        nodes.push(RegionNode {
            name: (*name).to_owned(),
            backend: Backend::Remote(Some(upstream.to_owned())),
            proxies: Some(Proxies::start(upstream).await.expect("proxies start")),
            table: "t".into(),
        });
    }
    Topology::from_nodes(nodes, TableDef::new("t", KeyAttribute::string("pk")))
}
