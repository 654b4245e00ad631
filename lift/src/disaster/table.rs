//! A table that exists in every region, possibly under a different physical name in each.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::store::TableDef;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A table replicated across regions: its definition and its physical name per region.
///
/// By default the physical name is [`TableDef::resolve_name`] in every region.
///
/// # Examples
///
/// ```
/// use lift::disaster::ReplicatedTable;
/// use lift::store::{KeyAttribute, StreamView, TableDef};
///
/// let def = TableDef::new("orders", KeyAttribute::string("pk")).with_stream(StreamView::NewAndOldImages);
/// let table = ReplicatedTable::new(def).with_name("orders-prod").with_name_in("eu-west-1", "orders-eu");
/// assert_eq!(table.name_in("us-east-1"), "orders-prod");
/// assert_eq!(table.name_in("eu-west-1"), "orders-eu");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatedTable {
    def: TableDef,
    name: String,
    names: BTreeMap<String, String>,
}

impl ReplicatedTable {
    /// The table `def`, named [`TableDef::resolve_name`] in every region.
    pub fn new(def: TableDef) -> Self {
        let name = def.resolve_name();
        Self { def, name, names: BTreeMap::new() }
    }

    /// Sets the physical name used in every region without its own.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the physical name in `region`.
    pub fn with_name_in(mut self, region: impl Into<String>, name: impl Into<String>) -> Self {
        self.names.insert(region.into(), name.into());
        self
    }

    /// The physical name in `region`.
    pub fn name_in(&self, region: &str) -> &str {
        self.names.get(region).unwrap_or(&self.name)
    }

    /// The table definition.
    pub fn def(&self) -> &TableDef {
        &self.def
    }

    /// The key attributes of `item` (partition key, and sort key if the table has one), or
    /// `None` if one is missing.
    pub fn key_of(&self, item: &Item) -> Option<Item> {
        let mut key = Item::new();
        for attr in std::iter::once(&self.def.partition_key).chain(self.def.sort_key.iter()) {
            key.insert(attr.name.clone(), item.get(&attr.name)?.clone());
        }
        Some(key)
    }
}
