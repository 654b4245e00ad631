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
/// connection) leaves its item uncertain: the item is never written again and is not
/// checked, since either state is right. A write refused because the table is gone
/// (`ResourceNotFoundException`) surely did not happen.
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
    /// Items whose last write had no clear answer.
    uncertain: HashSet<String>,
    version: u64,
}

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
            s.uncertain.insert(self.key.clone());
            s.live.retain(|k| k != &self.key);
        }
    }
}

impl Items {
    /// Items whose last write had no clear answer (not checked).
    pub fn uncertain(&self) -> usize {
        self.state.lock().expect("items state").uncertain.len()
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
        let guard = BusyGuard { state: self.state.clone(), key: key.clone(), answered: Mutex::new(None) };
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
            acked.iter().filter(|a| !uncertain.contains(&key_label(a.effect.key()))).cloned().collect();
        check_effects(region, table, &certain).await
    }
}
