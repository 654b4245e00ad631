//! DynamoDB capacity units of recorded item accesses.

use serde::{Deserialize, Serialize};

/// Bytes one write capacity unit covers.
pub const WCU_BYTES: u64 = 1024;
/// Bytes one read capacity unit covers (a strongly consistent read).
pub const RCU_BYTES: u64 = 4096;

/// What an access did to the item(s) it touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// A write (`PutItem`, `UpdateItem`, `DeleteItem`, a `BatchWriteItem` or transaction
    /// entry): `ceil(bytes / 1 KB)` WCU, at least 1.
    Write,
    /// A strongly consistent read: `ceil(bytes / 4 KB)` RCU, at least 1.
    ConsistentRead,
    /// An eventually consistent read: half a strongly consistent one.
    EventualRead,
}

/// One recorded access of one partition key by one request of a route.
///
/// # Examples
///
/// ```
/// use lift_monitoring::capacity::{Access, AccessKind};
///
/// let put = Access::new("create", "payments", "TENANT#acme", AccessKind::Write, 1500);
/// assert_eq!(put.units(), 2.0); // 1,500 bytes: two 1 KB units
/// let tx = put.clone().transactional();
/// assert_eq!(tx.units(), 4.0); // a transaction costs double
/// let get = Access::new("get", "payments", "TENANT#acme", AccessKind::EventualRead, 1500);
/// assert_eq!(get.units(), 0.5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Access {
    /// The route whose request made it.
    pub route: String,
    /// The table (its logical role or physical name).
    pub table: String,
    /// The partition key's value.
    pub key: String,
    /// Read or write.
    pub kind: AccessKind,
    /// Part of a transaction (`TransactWriteItems`, `TransactGetItems`): double the units.
    #[serde(default)]
    pub transactional: bool,
    /// The bytes the units are charged on (item size, or the sum of a query's items).
    pub bytes: u64,
}

impl Access {
    /// A non-transactional access.
    pub fn new(
        route: impl Into<String>,
        table: impl Into<String>,
        key: impl Into<String>,
        kind: AccessKind,
        bytes: u64,
    ) -> Self {
        Self { route: route.into(), table: table.into(), key: key.into(), kind, transactional: false, bytes }
    }

    /// The same access inside a transaction.
    pub fn transactional(mut self) -> Self {
        self.transactional = true;
        self
    }

    /// Whether it is a write (WCU) rather than a read (RCU).
    pub fn is_write(&self) -> bool {
        self.kind == AccessKind::Write
    }

    /// The capacity units it consumes: WCU for a write, RCU for a read.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift_monitoring::capacity::{Access, AccessKind};
    /// let read = Access::new("get", "t", "k", AccessKind::ConsistentRead, 4097);
    /// assert_eq!(read.units(), 2.0);
    /// ```
    pub fn units(&self) -> f64 {
        let blocks = |size: u64| size.div_ceil(size_unit(self.kind)).max(1) as f64;
        let base = match self.kind {
            AccessKind::Write | AccessKind::ConsistentRead => blocks(self.bytes),
            AccessKind::EventualRead => blocks(self.bytes) / 2.0,
        };
        if self.transactional {
            base * 2.0
        } else {
            base
        }
    }
}

fn size_unit(kind: AccessKind) -> u64 {
    match kind {
        AccessKind::Write => WCU_BYTES,
        AccessKind::ConsistentRead | AccessKind::EventualRead => RCU_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(kind: AccessKind, bytes: u64) -> f64 {
        Access::new("r", "t", "k", kind, bytes).units()
    }

    #[test]
    fn units_follow_dynamodb_sizing() {
        // Writes: 1 KB blocks, rounded up, at least one.
        assert_eq!(units(AccessKind::Write, 0), 1.0);
        assert_eq!(units(AccessKind::Write, 1024), 1.0);
        assert_eq!(units(AccessKind::Write, 1025), 2.0);
        assert_eq!(units(AccessKind::Write, 3 * 1024 + 1), 4.0);
        // Reads: 4 KB blocks; eventual half.
        assert_eq!(units(AccessKind::ConsistentRead, 4096), 1.0);
        assert_eq!(units(AccessKind::ConsistentRead, 8193), 3.0);
        assert_eq!(units(AccessKind::EventualRead, 8193), 1.5);
        assert_eq!(units(AccessKind::EventualRead, 10), 0.5);
        // Transactions double.
        assert_eq!(Access::new("r", "t", "k", AccessKind::Write, 2000).transactional().units(), 4.0);
        assert_eq!(Access::new("r", "t", "k", AccessKind::ConsistentRead, 10).transactional().units(), 2.0);
    }
}
