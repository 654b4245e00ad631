//! One operation's view of the failover client: the region it goes to, and the
//! synchronous writer for replicated writes.

use lift::disaster::{AckedWrite, Item, Region, ReplicatedWriter};

use super::effect::OpError;
use crate::drill::{FailoverClient, ReplicationMode};

/// One call of a workload operation: the region the failover client chose (read once,
/// so the region named is the region called, and the one the call is attributed to).
#[derive(Debug)]
pub struct Call<'a> {
    region: Region,
    client: &'a FailoverClient,
}

impl<'a> Call<'a> {
    pub(crate) fn new(region: Region, client: &'a FailoverClient) -> Self {
        Self { region, client }
    }

    /// The region called.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The DynamoDB client of the region called.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.region.dynamodb()
    }

    /// The physical name of the workload's table in the region called.
    pub fn table(&self) -> &str {
        self.client.table.name_in(self.region.name())
    }

    /// Whether writes replicate synchronously (before the acknowledgement) or from the
    /// primary's stream.
    pub fn replication(&self) -> ReplicationMode {
        self.client.mode
    }

    /// The writer every replicated write of this call should go through: in sync mode to
    /// the region called and every other region the monitor does not hold unhealthy
    /// (acknowledged once all hold it; the region alone when no other is healthy, counted
    /// as a degraded write, unless the monitor holds the region called unhealthy too: then
    /// the write is refused unsent, `region_held_down`), in async mode to the region called
    /// (the stream carries it on).
    /// Every write kind it makes carries a new version and the region called as origin;
    /// it records its acknowledgements ([`ReplicatedWriter::acks`]) for the effects.
    pub fn writer(&self) -> Result<ReplicatedWriter, OpError> {
        self.client.writer(&self.region)
    }

    /// Sync replication: writes `item` to the region called and every other region the
    /// monitor does not hold unhealthy, and acknowledges once all hold it. `None` when no
    /// other region is healthy: the workload then writes to this region alone (counted as
    /// a degraded write); a refusal (`region_held_down`) when the region called is held
    /// unhealthy and no other is healthy.
    pub async fn put_in_healthy_regions(&self, item: Item) -> Option<Result<AckedWrite, OpError>> {
        self.client.put_in_healthy_regions(&self.region, item).await
    }
}
