//! The backup drill's own workload, for `lift-harness drill` (which links no service):
//! puts of new items, overwrites and deletes of existing ones, each write carrying a new
//! version, so a restore that brings back an older image of an item is caught as stale.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{Item, Region, ReplicatedTable, RpoError, VERSION_ATTRIBUTE};
use lift::store::{KeyAttribute, TableDef};
use rand::Rng as _;

use crate::drill::Load;
use crate::workload::{check_effects, key_label, Acked, Call, Effect, EffectCheck, OpError, Workload};

/// A synthetic write load over a table keyed by `pk`: `put` (a new item), `overwrite` (a
/// newer version of an existing one) and `delete` (of an existing one).
///
/// No two writes of one item are in flight at once, so the last acknowledged write of an
/// item is its state. A write that fails without a clear answer (a timeout, a dropped
/// connection) leaves its item unclear: the item is never written again, and is checked
/// apart from the acknowledged ones, under the operation [`UNCLEAR`]: it must be in its
/// state before that write (its last acknowledged one, or absent) or after it, never in
/// another (an older version, a version never written, an item without its body). A write
/// refused because the table is gone (`ResourceNotFoundException`) surely did not happen.
///
/// # Examples
///
/// ```
/// use lift_harness::backup::Items;
/// use lift_harness::Workload;
///
/// let items = Items::default();
/// assert_eq!(items.operations(), ["put", "overwrite", "delete"]);
/// assert_eq!(items.table().partition_key.name, "pk");
/// ```
#[derive(Debug, Default)]
pub struct Items {
    state: Arc<Mutex<ItemsState>>,
}

#[derive(Debug, Default)]
struct ItemsState {
    /// Items whose last acknowledged write is a put.
    live: Vec<String>,
    /// Items with a write in flight.
    busy: HashSet<String>,
    /// Items whose last write had no clear answer, with that write.
    uncertain: HashMap<String, Unclear>,
    version: u64,
}

/// A write with no clear answer: what it would have left.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Unclear {
    delete: bool,
    version: u64,
}

/// The operation under which [`Items`] checks the items whose last write had no clear
/// answer.
pub const UNCLEAR: &str = "unclear";

/// One write of [`Items`].
#[derive(Debug)]
pub struct ItemWrite {
    /// `put` also when no item was free for an overwrite or a delete.
    kind: &'static str,
    key: String,
    version: u64,
    guard: BusyGuard,
}

/// Frees its item when the write ends, also when the drill drops it at its deadline; the
/// write then had no clear answer, and the item is uncertain.
#[derive(Debug)]
struct BusyGuard {
    state: Arc<Mutex<ItemsState>>,
    key: String,
    write: Unclear,
    answered: Mutex<Option<Answer>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Done,
    Refused,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let answer = *self.answered.lock().expect("answer lock");
        let mut s = self.state.lock().expect("items state");
        s.busy.remove(&self.key);
        if answer.is_none() {
            s.uncertain.insert(self.key.clone(), self.write);
            s.live.retain(|k| k != &self.key);
        }
    }
}

impl Items {
    /// Items whose last write had no clear answer (checked under [`UNCLEAR`]).
    pub fn uncertain(&self) -> usize {
        self.state.lock().expect("items state").uncertain.len()
    }

    /// The keys (as `key_label` text) of the items whose last write had no clear answer.
    pub(crate) fn unclear_labels(&self) -> HashSet<String> {
        self.state.lock().expect("items state").uncertain.keys().cloned().collect()
    }

    fn item(key: &str, version: u64) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(key.to_owned())),
            (VERSION_ATTRIBUTE.to_owned(), AttributeValue::N(version.to_string())),
            ("body".to_owned(), AttributeValue::S("x".repeat(64))),
        ])
    }
}

impl Workload for Items {
    type Op = ItemWrite;

    fn name(&self) -> &str {
        "items"
    }

    fn table(&self) -> TableDef {
        TableDef::new("backup-drill", KeyAttribute::string("pk"))
    }

    fn operations(&self) -> &[&'static str] {
        &["put", "overwrite", "delete"]
    }

    fn default_mix(&self) -> std::collections::BTreeMap<String, u32> {
        [("put", 5), ("overwrite", 3), ("delete", 2)].into_iter().map(|(k, w)| (k.to_owned(), w)).collect()
    }

    fn check_mix(&self, mix: &std::collections::BTreeMap<String, u32>) -> Result<(), String> {
        if mix.get("put").copied().unwrap_or(0) == 0 {
            return Err("put needs a weight: overwrites and deletes need items".into());
        }
        Ok(())
    }

    fn next(&self, kind: &'static str, _load: &Load) -> ItemWrite {
        let mut s = self.state.lock().expect("items state");
        s.version += 1;
        let version = s.version;
        let existing = match kind {
            "overwrite" | "delete" => {
                let free: Vec<&String> = s.live.iter().filter(|k| !s.busy.contains(*k)).collect();
                (!free.is_empty()).then(|| free[rand::thread_rng().gen_range(0..free.len())].clone())
            }
            _ => None,
        };
        let (kind, key) = match existing {
            Some(key) => (kind, key),
            None => ("put", format!("k-{}", uuid::Uuid::new_v4().simple())),
        };
        s.busy.insert(key.clone());
        let write = Unclear { delete: kind == "delete", version };
        let guard =
            BusyGuard { state: self.state.clone(), key: key.clone(), write, answered: Mutex::new(None) };
        ItemWrite { kind, key, version, guard }
    }

    fn kind(&self, op: &ItemWrite) -> &'static str {
        op.kind
    }

    async fn execute<'a>(&'a self, op: &'a ItemWrite, call: &'a Call<'a>) -> Result<Option<Effect>, OpError> {
        use aws_sdk_dynamodb::error::DisplayErrorContext;
        let key: Item = [("pk".to_owned(), AttributeValue::S(op.key.clone()))].into();
        // Err((table gone, message)).
        let result: Result<(), (bool, String)> = if op.kind == "delete" {
            let sent =
                call.dynamodb().delete_item().table_name(call.table()).set_key(Some(key.clone())).send();
            sent.await.map(|_| ()).map_err(|e| {
                let gone = e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception());
                (gone, DisplayErrorContext(&e).to_string())
            })
        } else {
            let item = Self::item(&op.key, op.version);
            let sent = call.dynamodb().put_item().table_name(call.table()).set_item(Some(item)).send();
            sent.await.map(|_| ()).map_err(|e| {
                let gone = e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception());
                (gone, DisplayErrorContext(&e).to_string())
            })
        };
        let answer = match &result {
            Ok(()) => Some(Answer::Done),
            Err((true, _)) => Some(Answer::Refused),
            Err((false, _)) => None,
        };
        *op.guard.answered.lock().expect("answer lock") = answer;
        match result {
            Ok(()) => {
                let mut s = self.state.lock().expect("items state");
                if op.kind == "delete" {
                    s.live.retain(|k| k != &op.key);
                    Ok(Some(Effect::Deleted(key)))
                } else {
                    if op.kind == "put" {
                        s.live.push(op.key.clone());
                    }
                    let write = lift::disaster::AckedWrite::new(key)
                        .with_version(AttributeValue::N(op.version.to_string()));
                    Ok(Some(Effect::Written(write)))
                }
            }
            Err((true, message)) => Err(OpError::new("table_gone", message)),
            Err((false, message)) => Err(OpError::new("unanswered", message)),
        }
    }

    async fn check<'a>(
        &'a self,
        region: &'a Region,
        table: &'a ReplicatedTable,
        acked: &'a [Acked],
    ) -> Result<EffectCheck, RpoError> {
        let uncertain = self.state.lock().expect("items state").uncertain.clone();
        let certain: Vec<Acked> =
            acked.iter().filter(|a| !uncertain.contains_key(&key_label(a.effect.key()))).cloned().collect();
        let mut out = check_effects(region, table, &certain).await?;
        if uncertain.is_empty() {
            return Ok(out);
        }
        // Before its unclear write, each item was as its last acknowledged write left it.
        let mut before: HashMap<String, Option<u64>> = HashMap::new();
        for a in acked {
            let label = key_label(a.effect.key());
            if uncertain.contains_key(&label) {
                let version = match &a.effect {
                    Effect::Deleted(_) => None,
                    Effect::Written(w) | Effect::Updated(w) => {
                        w.version.as_ref().and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
                    }
                };
                before.insert(label, version);
            }
        }
        let name = table.name_in(region.name()).to_owned();
        let check = out.by_op.entry(UNCLEAR.to_owned()).or_default();
        for (label, write) in &uncertain {
            let key: Item = [("pk".to_owned(), AttributeValue::S(label.clone()))].into();
            let held = region
                .dynamodb()
                .get_item()
                .table_name(&name)
                .set_key(Some(key.clone()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| RpoError::Request {
                    operation: "GetItem",
                    region: region.name().to_owned(),
                    message: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
                })?;
            let held = state(held.item());
            let after = (!write.delete).then_some(write.version);
            let prior = before.get(label).copied().flatten();
            check.checked += 1;
            if held != after && held != prior {
                if held.is_none() {
                    check.missing.push(key);
                } else {
                    check.stale.push(key);
                }
            }
        }
        Ok(out)
    }
}

/// What an item read back holds: `None` when it is absent, else its version, or `u64::MAX`
/// (a version never written) when it is not whole as the workload writes it.
fn state(item: Option<&Item>) -> Option<u64> {
    let item = item?;
    let whole = matches!(item.get("body"), Some(AttributeValue::S(b)) if b.len() == 64);
    let version = item.get(VERSION_ATTRIBUTE).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
    Some(version.filter(|_| whole).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lift::disaster::{AckedWrite, RegionConfig, RegionSet};

    use super::*;
    use crate::drill::Mix;
    use crate::dynamodb::DynamoDbLocal;

    fn load() -> Load {
        Load {
            rate: 1.0,
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            concurrency: 1,
            tenants: 1,
            mix: Mix::default(),
            warmup: Duration::ZERO,
        }
    }

    /// A write dropped before its answer (as the drill drops one at its deadline) leaves its
    /// item unclear: checked under `unclear`, right when it is absent, as its last
    /// acknowledged write left it, or as the unclear write would; wrong otherwise.
    #[tokio::test]
    async fn an_unclear_write_is_checked_present_or_absent_never_otherwise() {
        let local = DynamoDbLocal::shared().await.unwrap();
        let items = Items::default();
        let name = local.create_table(&items.table()).await.unwrap();
        let region = RegionSet::builder()
            .region(RegionConfig::new("us-east-1").dynamodb_endpoint(local.endpoint()))
            .build()
            .unwrap()
            .primary()
            .clone();
        let table = ReplicatedTable::new(items.table()).with_name_in("us-east-1", name.clone());
        let put = |key: &str, item: Item| {
            let client = region.dynamodb().clone();
            let (name, key) = (name.clone(), key.to_owned());
            async move {
                let mut item = item;
                item.insert("pk".to_owned(), AttributeValue::S(key));
                client.put_item().table_name(name).set_item(Some(item)).send().await.unwrap();
            }
        };
        let acked_write = |key: &str, version: u64| Acked {
            op: "put",
            region: "us-east-1".into(),
            effect: Effect::Written(
                AckedWrite::new([("pk".to_owned(), AttributeValue::S(key.to_owned()))].into())
                    .with_version(AttributeValue::N(version.to_string())),
            ),
        };
        // Five writes, each dropped without an answer.
        let ops: Vec<(String, u64)> = (0..5)
            .map(|_| {
                let op = items.next("put", &load());
                (op.key.clone(), op.version)
            })
            .collect();
        assert_eq!(items.uncertain(), 5);
        let acked = vec![acked_write(&ops[2].0, 1_000), acked_write(&ops[4].0, 1_000)];
        // Landed whole; did not land; as the last acknowledged write left it.
        put(&ops[0].0, Items::item(&ops[0].0, ops[0].1)).await;
        put(&ops[2].0, Items::item(&ops[2].0, 1_000)).await;
        // Its version without its body: half a write.
        let mut half = Items::item(&ops[3].0, ops[3].1);
        half.remove("body");
        put(&ops[3].0, half).await;
        // Older than its last acknowledged write.
        put(&ops[4].0, Items::item(&ops[4].0, 999)).await;

        let check = items.check(&region, &table, &acked).await.unwrap();
        let unclear = &check.by_op[UNCLEAR];
        assert_eq!(unclear.checked, 5, "{check:?}");
        let mut wrong: Vec<String> = unclear.stale.iter().map(key_label).collect();
        wrong.sort();
        let mut expected = vec![ops[3].0.clone(), ops[4].0.clone()];
        expected.sort();
        assert_eq!(wrong, expected, "{check:?}");
        assert!(unclear.missing.is_empty(), "{check:?}");
        // Their acknowledged writes are not checked as acknowledged.
        assert_eq!(check.by_op.get("put").map_or(0, |c| c.checked), 0, "{check:?}");
    }
}
