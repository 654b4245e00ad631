//! The [`Workload`] trait: what a service implements to be drilled.
//!
//! A workload names its table, its operations (the keys a scenario's `[load.mix]` may
//! weigh), runs one operation through a region-aware [`Call`], and says which [`Effect`]
//! each acknowledged operation must leave. After the drill settles, the harness reads
//! every effect back from each region ([`Workload::check`], by default [`check_effects`]).
//!
//! # Examples
//!
//! ```
//! use aws_sdk_dynamodb::types::AttributeValue;
//! use lift::store::{KeyAttribute, TableDef};
//! use lift_harness::drill::Load;
//! use lift_harness::{Call, Effect, OpError, Workload};
//!
//! /// Writes one item per operation.
//! struct Notes;
//!
//! impl Workload for Notes {
//!     type Op = String;
//!     fn name(&self) -> &str { "notes" }
//!     fn table(&self) -> TableDef { TableDef::new("notes", KeyAttribute::string("id")) }
//!     fn operations(&self) -> &[&'static str] { &["put"] }
//!     fn next(&self, _kind: &'static str, _load: &Load) -> String { uuid::Uuid::new_v4().to_string() }
//!     fn kind(&self, _op: &String) -> &'static str { "put" }
//!     async fn execute<'a>(&'a self, id: &'a String, call: &'a Call<'a>) -> Result<Option<Effect>, OpError> {
//!         let key: lift::disaster::Item = [("id".to_owned(), AttributeValue::S(id.clone()))].into();
//!         call.dynamodb()
//!             .put_item()
//!             .table_name(call.table())
//!             .set_item(Some(key.clone()))
//!             .send()
//!             .await
//!             .map_err(|e| OpError::new("unavailable", e.to_string()))?;
//!         Ok(Some(Effect::written(key)))
//!     }
//! }
//! ```

mod call;
mod check;
mod effect;

use std::collections::BTreeMap;
use std::future::Future;

use lift::disaster::{Item, Region, ReplicatedTable};
use lift::store::{AttributeType, TableDef};

pub use call::Call;
pub(crate) use check::key_label;
pub use check::{check_effects, key_id, EffectCheck, OpCheck};
pub use effect::{Acked, Effect, OpError};

use crate::drill::Load;

/// A service the drill can drive: its table, its operations and their effects.
///
/// Implementations hold their own state (e.g. the ids created so far, to read and refund
/// them); the harness calls them from many tasks at once.
pub trait Workload: Send + Sync + 'static {
    /// One operation, as chosen by [`Workload::next`].
    type Op: Send + Sync + 'static;

    /// A short name for reports (`payments`).
    fn name(&self) -> &str;

    /// The table the operations use, as the service defines it; the harness adds a stream
    /// of new and old images for replication.
    fn table(&self) -> TableDef;

    /// The operation names a scenario's `[load.mix]` may weigh (`create`, `get`, ...).
    fn operations(&self) -> &[&'static str];

    /// The weights used when a scenario has no `[load.mix]`: equal by default.
    fn default_mix(&self) -> BTreeMap<String, u32> {
        self.operations().iter().map(|name| ((*name).to_owned(), 1)).collect()
    }

    /// Checks a mix beyond its names (e.g. reads need creates); an error says why.
    fn check_mix(&self, _mix: &BTreeMap<String, u32>) -> Result<(), String> {
        Ok(())
    }

    /// The next operation of `kind` (one of [`Workload::operations`]). A workload may
    /// return another kind when this one cannot run yet (a read before any create).
    fn next(&self, kind: &'static str, load: &Load) -> Self::Op;

    /// The kind of `op`, one of [`Workload::operations`].
    fn kind(&self, op: &Self::Op) -> &'static str;

    /// Runs `op` in the region `call` names; on success, the effect it must leave
    /// (`None` for reads).
    fn execute<'a>(
        &'a self,
        op: &'a Self::Op,
        call: &'a Call<'a>,
    ) -> impl Future<Output = Result<Option<Effect>, OpError>> + Send + 'a;

    /// Reads the acknowledged effects back from `region` and reports, per operation
    /// kind, what is missing or stale there.
    fn check<'a>(
        &'a self,
        region: &'a Region,
        table: &'a ReplicatedTable,
        acked: &'a [Acked],
    ) -> impl Future<Output = Result<EffectCheck, lift::disaster::RpoError>> + Send + 'a {
        check_effects(region, table, acked)
    }

    /// The key of the `seq`th replication-lag heartbeat: by default built from the
    /// table's key schema, under a partition no service item uses (`DRILL#heartbeat`).
    fn heartbeat_key(&self, seq: u64) -> Item {
        heartbeat_key(&self.table(), seq)
    }
}

/// A heartbeat key for `def`: the partition `DRILL#heartbeat` and `seq` as the sort key,
/// or both in the partition key when the table has no sort key.
pub fn heartbeat_key(def: &TableDef, seq: u64) -> Item {
    use aws_sdk_dynamodb::types::AttributeValue;
    let value = |kind: &AttributeType, text: String, number: u64| match kind {
        AttributeType::String => AttributeValue::S(text),
        AttributeType::Number => AttributeValue::N(number.to_string()),
        AttributeType::Binary => AttributeValue::B(text.into_bytes().into()),
    };
    // Numbers far above any id a service hands out, so heartbeats never meet its items.
    const FAR: u64 = 9_000_000_000_000_000_000;
    let mut key = Item::new();
    let pk = &def.partition_key;
    match &def.sort_key {
        Some(sk) => {
            key.insert(pk.name.clone(), value(&pk.kind, "DRILL#heartbeat".into(), FAR));
            key.insert(sk.name.clone(), value(&sk.kind, format!("{seq:010}"), seq));
        }
        None => {
            key.insert(pk.name.clone(), value(&pk.kind, format!("DRILL#heartbeat#{seq:010}"), FAR + seq));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use lift::store::KeyAttribute;

    use super::*;

    #[test]
    fn heartbeats_follow_the_key_schema() {
        let both = TableDef::new("t", KeyAttribute::string("pk")).with_sort_key(KeyAttribute::number("n"));
        let key = heartbeat_key(&both, 7);
        assert_eq!(key["pk"], AttributeValue::S("DRILL#heartbeat".into()));
        assert_eq!(key["n"], AttributeValue::N("7".into()));
        let single = TableDef::new("t", KeyAttribute::string("id"));
        assert_eq!(heartbeat_key(&single, 7)["id"], AttributeValue::S("DRILL#heartbeat#0000000007".into()));
        assert_ne!(heartbeat_key(&single, 7), heartbeat_key(&single, 8), "one item per beat");
    }
}
