//! Conflict resolution for replicated writes: which of two versions of an item wins.

use std::cmp::Ordering;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::table::{Item, ReplicatedTable};

/// The default version attribute: a number the writer increases on every change.
pub const VERSION_ATTRIBUTE: &str = "_version";
/// The attribute that marks a replicated write with the region it came from.
///
/// A local write must not carry another region's name here: a full `PutItem` drops it, an
/// `UpdateItem` should `SET _origin_region = :this_region` (or `REMOVE` it);
/// [`ReplicatedWriter`](super::ReplicatedWriter) does both, and stamps a new version, on
/// every write kind. A change that carries another region's name is forwarded only where
/// it is strictly newer than the target's item: the exact version a region already holds
/// is not sent back (no loops), a newer one is applied whatever its origin.
pub const ORIGIN_ATTRIBUTE: &str = "_origin_region";

/// What a stream record did to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created or replaced the item (`INSERT`, `MODIFY`).
    Put,
    /// Deleted the item (`REMOVE`).
    Delete,
}

/// One change read from a source region's stream, about to be applied in a target region.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// Put or delete.
    pub kind: ChangeKind,
    /// The table.
    pub table: &'a ReplicatedTable,
    /// The region whose stream carried the change.
    pub source_region: &'a str,
    /// The region the change is applied to.
    pub target_region: &'a str,
    /// The item key.
    pub key: &'a Item,
    /// The item after the change (puts).
    pub new_image: Option<&'a Item>,
    /// The item before the change, if it existed.
    pub old_image: Option<&'a Item>,
}

/// A DynamoDB condition expression with its names and values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteCondition {
    /// The `ConditionExpression`.
    pub expression: String,
    /// `ExpressionAttributeNames`.
    pub names: HashMap<String, String>,
    /// `ExpressionAttributeValues`.
    pub values: HashMap<String, AttributeValue>,
}

/// Decides whether a replicated change may replace what the target region holds.
///
/// The decision is a condition on the target's item, evaluated by DynamoDB in the same
/// conditional `PutItem`/`DeleteItem` that applies the change, so a change can never
/// overwrite a newer item that arrived in between. A change whose condition fails is
/// counted as superseded and dropped.
pub trait ConflictResolver: Send + Sync + std::fmt::Debug + 'static {
    /// The condition under which `change` applies; `None` applies it unconditionally.
    fn condition(&self, change: &Change<'_>) -> Option<WriteCondition>;

    /// The version attribute that orders writes (default [`VERSION_ATTRIBUTE`]). A change
    /// another region wrote is forwarded only where it is strictly newer on it.
    fn version_attribute(&self) -> &str {
        VERSION_ATTRIBUTE
    }
}

/// Last writer wins on a version attribute (default [`VERSION_ATTRIBUTE`], a number; a
/// string such as an RFC 3339 timestamp works too, compared as text).
///
/// The greater version wins. On equal versions the write from the region whose name sorts
/// first wins, so every region settles on the same item. An item without the attribute
/// loses to one with it. A delete applies unless the target holds a newer version than
/// the deleted one (deletes leave no tombstone).
///
/// # Examples
///
/// ```
/// use aws_sdk_dynamodb::types::AttributeValue;
/// use lift::disaster::LastWriterWins;
///
/// let v = |n: u64| AttributeValue::N(n.to_string());
/// assert!(LastWriterWins::wins(Some(&v(5)), "us-east-1", Some(&v(3)), "eu-west-1"));
/// assert!(!LastWriterWins::wins(Some(&v(3)), "us-east-1", Some(&v(5)), "eu-west-1"));
/// // A tie goes to the region whose name sorts first.
/// assert!(LastWriterWins::wins(Some(&v(7)), "eu-west-1", Some(&v(7)), "us-east-1"));
/// assert!(!LastWriterWins::wins(Some(&v(7)), "us-east-1", Some(&v(7)), "eu-west-1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWriterWins {
    attribute: String,
}

impl Default for LastWriterWins {
    fn default() -> Self {
        Self::on(VERSION_ATTRIBUTE)
    }
}

impl LastWriterWins {
    /// Last writer wins on [`VERSION_ATTRIBUTE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Last writer wins on `attribute`.
    pub fn on(attribute: impl Into<String>) -> Self {
        Self { attribute: attribute.into() }
    }

    /// The version attribute.
    pub fn attribute(&self) -> &str {
        &self.attribute
    }

    /// Whether a change at `incoming` version from `incoming_origin` beats an item at
    /// `current` version written by `current_origin` — the rule the write condition encodes.
    pub fn wins(
        incoming: Option<&AttributeValue>,
        incoming_origin: &str,
        current: Option<&AttributeValue>,
        current_origin: &str,
    ) -> bool {
        match (incoming, current) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => match compare_versions(a, b) {
                Some(Ordering::Greater) => true,
                Some(Ordering::Equal) => incoming_origin < current_origin,
                _ => false,
            },
        }
    }
}

impl ConflictResolver for LastWriterWins {
    fn version_attribute(&self) -> &str {
        &self.attribute
    }

    fn condition(&self, change: &Change<'_>) -> Option<WriteCondition> {
        let mut names = HashMap::from([("#v".to_owned(), self.attribute.clone())]);
        let mut values = HashMap::new();
        let expression = match change.kind {
            ChangeKind::Put => {
                names.insert("#k".into(), change.table.def().partition_key.name.clone());
                match change.new_image.and_then(|image| image.get(&self.attribute)) {
                    None => "attribute_not_exists(#k) OR attribute_not_exists(#v)".to_owned(),
                    Some(version) => {
                        names.insert("#o".into(), ORIGIN_ATTRIBUTE.into());
                        values.insert(":v".into(), version.clone());
                        values.insert(":src".into(), AttributeValue::S(change.source_region.to_owned()));
                        // An item without an origin was written locally in the target.
                        let local_tie = if change.source_region < change.target_region {
                            " OR attribute_not_exists(#o)"
                        } else {
                            ""
                        };
                        format!(
                            "attribute_not_exists(#k) OR attribute_not_exists(#v) OR #v < :v \
                             OR (#v = :v AND (#o > :src{local_tie}))"
                        )
                    }
                }
            }
            ChangeKind::Delete => match change.old_image.and_then(|image| image.get(&self.attribute)) {
                None => "attribute_not_exists(#v)".to_owned(),
                Some(version) => {
                    values.insert(":v".into(), version.clone());
                    "attribute_not_exists(#v) OR #v <= :v".to_owned()
                }
            },
        };
        Some(WriteCondition { expression, names, values })
    }
}

/// Orders two versions: numbers numerically, strings as text; other pairs are unordered.
pub fn compare_versions(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::N(a), AttributeValue::N(b)) => match (a.parse::<i128>(), b.parse::<i128>()) {
            (Ok(a), Ok(b)) => Some(a.cmp(&b)),
            _ => a.parse::<f64>().ok()?.partial_cmp(&b.parse::<f64>().ok()?),
        },
        (AttributeValue::S(a), AttributeValue::S(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{KeyAttribute, TableDef};

    fn n(v: u64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    #[test]
    fn versions_order_numbers_numerically() {
        assert_eq!(compare_versions(&n(10), &n(9)), Some(Ordering::Greater));
        assert_eq!(compare_versions(&AttributeValue::N("1.5".into()), &n(2)), Some(Ordering::Less));
        assert_eq!(compare_versions(&n(1), &AttributeValue::S("1".into())), None);
    }

    #[test]
    fn unversioned_items_lose_to_versioned_ones() {
        assert!(LastWriterWins::wins(Some(&n(1)), "b", None, "a"));
        assert!(!LastWriterWins::wins(None, "a", Some(&n(1)), "b"));
        assert!(LastWriterWins::wins(None, "b", None, "a"));
    }

    #[test]
    fn put_conditions_encode_the_tie_break() {
        let table = ReplicatedTable::new(TableDef::new("t", KeyAttribute::string("id")));
        let key = Item::from([("id".to_owned(), AttributeValue::S("1".into()))]);
        let image =
            Item::from([("id".to_owned(), AttributeValue::S("1".into())), ("_version".to_owned(), n(4))]);
        let change = |source, target| Change {
            kind: ChangeKind::Put,
            table: &table,
            source_region: source,
            target_region: target,
            key: &key,
            new_image: Some(&image),
            old_image: None,
        };
        let lww = LastWriterWins::new();
        let c = lww.condition(&change("eu-west-1", "us-east-1")).unwrap();
        assert!(
            c.expression.ends_with("(#v = :v AND (#o > :src OR attribute_not_exists(#o)))"),
            "{}",
            c.expression
        );
        assert_eq!(c.names["#k"], "id");
        assert_eq!(c.values[":v"], n(4));
        let c = lww.condition(&change("us-east-1", "eu-west-1")).unwrap();
        assert!(c.expression.ends_with("(#v = :v AND (#o > :src))"), "{}", c.expression);

        let delete =
            Change { kind: ChangeKind::Delete, new_image: None, old_image: Some(&image), ..change("a", "b") };
        assert_eq!(lww.condition(&delete).unwrap().expression, "attribute_not_exists(#v) OR #v <= :v");
    }
}
