//! The check after settle: every acknowledged effect read back from one region.

use std::collections::{BTreeMap, HashMap};

use lift::disaster::{key_text, AckedWrite, Item, Region, ReplicatedTable, RpoCheck, RpoError};

use super::effect::{Acked, Effect};

/// What one region holds of the acknowledged effects of one operation kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpCheck {
    /// Distinct items checked.
    pub checked: u64,
    /// Written or updated items the region does not hold.
    pub missing: Vec<Item>,
    /// Items held at an older version than acknowledged, or still held after a delete.
    pub stale: Vec<Item>,
}

impl OpCheck {
    /// Missing plus stale.
    pub fn lost(&self) -> u64 {
        (self.missing.len() + self.stale.len()) as u64
    }
}

/// What one region holds of every acknowledged effect, per operation kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectCheck {
    /// The region read.
    pub region: String,
    /// Per operation kind.
    pub by_op: BTreeMap<String, OpCheck>,
}

impl EffectCheck {
    /// Effects the region does not hold, over every kind.
    pub fn lost(&self) -> u64 {
        self.by_op.values().map(OpCheck::lost).sum()
    }

    /// Up to `n` of the keys lost, as `attr=value` text, for reports.
    pub fn examples(&self, n: usize) -> Vec<String> {
        let keys = self.by_op.values().flat_map(|c| c.missing.iter().chain(c.stale.iter()));
        keys.take(n).map(key_label).collect()
    }
}

/// A key as `pk/sk` text (attribute values in name order).
pub(crate) fn key_label(key: &Item) -> String {
    let text: BTreeMap<String, String> = key_text(key).into_iter().collect();
    text.into_values().collect::<Vec<_>>().join("/")
}

/// A key as text that names it alone: every attribute's name, type and value, in name order.
/// [`key_label`] joins values with `/`, so `{pk: "a/b", sk: "c"}` and `{pk: "a", sk: "b/c"}`
/// read alike there; here they do not.
pub fn key_id(key: &Item) -> String {
    let sorted: BTreeMap<&String, &aws_sdk_dynamodb::types::AttributeValue> = key.iter().collect();
    format!("{sorted:?}")
}

/// The default [`Workload::check`](super::Workload::check): per key, the last effect
/// acknowledged wins (a delete after a create expects the item gone; a write after a
/// delete expects it back). Writes and updates are read with `RpoCheck` (missing, or
/// older than the highest acknowledged version: a region holds an update "at least" when
/// it holds its version or a newer one); deletes must find nothing. A workload whose
/// updates must also keep amounts (a newer version that lost a refund) adds its own reads
/// in [`Workload::check`](super::Workload::check), as payments does.
pub async fn check_effects(
    region: &Region,
    table: &ReplicatedTable,
    acked: &[Acked],
) -> Result<EffectCheck, RpoError> {
    // Per key: the kind of the last effect, and what it expects.
    let mut last: HashMap<String, (&'static str, Expect)> = HashMap::new();
    let mut order = Vec::new();
    for a in acked {
        let label = key_id(a.effect.key());
        let entry = last.entry(label.clone()).or_insert_with(|| {
            order.push(label);
            (a.op, Expect::Present(Vec::new()))
        });
        entry.0 = a.op;
        match &a.effect {
            Effect::Written(w) | Effect::Updated(w) => match &mut entry.1 {
                Expect::Present(writes) => writes.push(w.clone()),
                Expect::Absent(_) => entry.1 = Expect::Present(vec![w.clone()]),
            },
            Effect::Deleted(key) => entry.1 = Expect::Absent(key.clone()),
        }
    }
    let check = RpoCheck::new(region, table);
    let mut out = EffectCheck { region: region.name().to_owned(), by_op: BTreeMap::new() };
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for label in &order {
        let (op, expect) = &last[label];
        out.by_op.entry((*op).to_owned()).or_default().checked += 1;
        match expect {
            Expect::Present(writes) => present.extend(writes.iter().cloned()),
            Expect::Absent(key) => absent.push(AckedWrite::new(key.clone())),
        }
    }
    let op_of = |key: &Item| last[&key_id(key)].0;
    let held = check.check(&present).await?;
    for key in held.missing {
        out.by_op.entry(op_of(&key).to_owned()).or_default().missing.push(key);
    }
    for key in held.stale {
        out.by_op.entry(op_of(&key).to_owned()).or_default().stale.push(key);
    }
    if !absent.is_empty() {
        let gone = check.check(&absent).await?;
        for write in absent.into_iter().filter(|w| !gone.missing.contains(&w.key)) {
            out.by_op.entry(op_of(&write.key).to_owned()).or_default().stale.push(write.key);
        }
    }
    Ok(out)
}

#[derive(Debug)]
enum Expect {
    Present(Vec<AckedWrite>),
    Absent(Item),
}
