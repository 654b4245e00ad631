//! The DynamoDB tables Lift and its services own, defined in one place.
//!
//! A [`TableDef`] is plain data: the code that reads and writes a table, the harness that
//! creates it on DynamoDB Local and the IaC templates that create it in AWS all start from
//! the same definition. Physical table names come from configuration ([`TableDef::resolve_name`]),
//! never from constants, so the same code runs against DynamoDB Local and real AWS.
//!
//! # Examples
//!
//! ```
//! use lift::store::{AttributeType, KeyAttribute, TableDef};
//!
//! let def = TableDef::new("payments", KeyAttribute::string("pk"))
//!     .with_sort_key(KeyAttribute::string("sk"))
//!     .with_ttl("expires_at");
//! assert_eq!(def.sort_key.as_ref().unwrap().name, "sk");
//! ```

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    /// A string (`S`).
    String,
    /// A number (`N`).
    Number,
    /// Binary data (`B`).
    Binary,
}

/// A key attribute: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    /// The attribute name.
    pub name: String,
    /// The attribute type.
    pub kind: AttributeType,
}

impl KeyAttribute {
    /// A string key attribute.
    pub fn string(name: impl Into<String>) -> Self {
        Self { name: name.into(), kind: AttributeType::String }
    }

    /// A number key attribute.
    pub fn number(name: impl Into<String>) -> Self {
        Self { name: name.into(), kind: AttributeType::Number }
    }
}

/// A global secondary index (projection: all attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    /// The index name.
    pub name: String,
    /// The index partition key.
    pub partition_key: KeyAttribute,
    /// The index sort key, if any.
    pub sort_key: Option<KeyAttribute>,
}

/// Which item images a table's stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamView {
    /// Only the key attributes.
    KeysOnly,
    /// The item after the change.
    NewImage,
    /// The item before the change.
    OldImage,
    /// Both images.
    NewAndOldImages,
}

/// The definition of one DynamoDB table (on-demand billing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// The logical name, e.g. `payments`; see [`TableDef::resolve_name`].
    pub name: String,
    /// The partition key.
    pub partition_key: KeyAttribute,
    /// The sort key, if any.
    pub sort_key: Option<KeyAttribute>,
    /// The TTL attribute (epoch seconds), if items expire.
    pub ttl_attribute: Option<String>,
    /// Global secondary indexes.
    pub indexes: Vec<IndexDef>,
    /// The stream view, if the table has a stream.
    pub stream: Option<StreamView>,
}

impl TableDef {
    /// A table with a partition key only.
    pub fn new(name: impl Into<String>, partition_key: KeyAttribute) -> Self {
        Self {
            name: name.into(),
            partition_key,
            sort_key: None,
            ttl_attribute: None,
            indexes: Vec::new(),
            stream: None,
        }
    }

    /// Adds a sort key.
    pub fn with_sort_key(mut self, key: KeyAttribute) -> Self {
        self.sort_key = Some(key);
        self
    }

    /// Makes items expire through the given TTL attribute.
    pub fn with_ttl(mut self, attribute: impl Into<String>) -> Self {
        self.ttl_attribute = Some(attribute.into());
        self
    }

    /// Adds a global secondary index.
    pub fn with_index(mut self, index: IndexDef) -> Self {
        self.indexes.push(index);
        self
    }

    /// Enables a stream with the given view.
    pub fn with_stream(mut self, view: StreamView) -> Self {
        self.stream = Some(view);
        self
    }

    /// The physical table name from the environment.
    ///
    /// `LIFT_TABLE_<NAME>` (upper case, `-` as `_`) wins; otherwise `LIFT_TABLE_PREFIX`
    /// followed by the logical name; otherwise the logical name itself.
    pub fn resolve_name(&self) -> String {
        let var = format!("LIFT_TABLE_{}", self.name.to_uppercase().replace('-', "_"));
        let env = crate::config::Env::process();
        if let Some(name) = env.get(&var) {
            return name;
        }
        match env.get("LIFT_TABLE_PREFIX") {
            Some(prefix) => format!("{prefix}{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Every attribute that appears in a key of the table or of an index, once.
    pub fn key_attributes(&self) -> Vec<&KeyAttribute> {
        let mut out: Vec<&KeyAttribute> = Vec::new();
        let all = std::iter::once(&self.partition_key).chain(self.sort_key.iter()).chain(
            self.indexes.iter().flat_map(|i| std::iter::once(&i.partition_key).chain(i.sort_key.iter())),
        );
        for attr in all {
            if !out.iter().any(|a| a.name == attr.name) {
                out.push(attr);
            }
        }
        out
    }
}

/// The tables Lift's own middleware uses.
pub mod tables {
    use super::{KeyAttribute, TableDef};

    /// Shared rate-limit counters: one item per key and window, expiring by TTL.
    pub fn rate_limits() -> TableDef {
        TableDef::new("lift-rate-limits", KeyAttribute::string("pk")).with_ttl("expires_at")
    }

    /// Idempotency records: in progress or completed, expiring by TTL.
    pub fn idempotency() -> TableDef {
        TableDef::new("lift-idempotency", KeyAttribute::string("pk")).with_ttl("expires_at")
    }

    /// The audit trail: one hash chain per tenant, ordered by sequence number.
    pub fn audit() -> TableDef {
        TableDef::new("lift-audit", KeyAttribute::string("pk"))
            .with_sort_key(KeyAttribute::number("seq"))
            .with_ttl("expires_at")
    }

    /// Signed checkpoints of the audit chains, kept apart from the entries: one item per
    /// checkpoint, by tenant and number, expiring with the entry it certifies.
    pub fn audit_checkpoints() -> TableDef {
        TableDef::new("lift-audit-checkpoints", KeyAttribute::string("pk"))
            .with_sort_key(KeyAttribute::number("number"))
            .with_ttl("expires_at")
    }

    /// The token vault for tokenized card numbers.
    pub fn tokens() -> TableDef {
        TableDef::new("lift-tokens", KeyAttribute::string("pk")).with_ttl("expires_at")
    }

    /// Per-subject data keys for crypto-shredding
    /// (`lift::security::protection::SubjectKeys`, feature `protection`): one item per tenant and
    /// data subject holding the only KMS-wrapped copy of the subject's key. Deleting the
    /// item erases everything encrypted under it, backups of other tables included.
    ///
    /// **Keep this table out of backups** (point-in-time recovery, AWS Backup plans,
    /// exports and streams), or give its backups their own short retention and re-apply
    /// erasures after a restore: a copy of it brings erased subjects' keys back. Items
    /// may carry `expires_at` to end a key by retention.
    pub fn subject_keys() -> TableDef {
        TableDef::new("lift-subject-keys", KeyAttribute::string("pk")).with_ttl("expires_at")
    }

    /// Blocked IPs and principals.
    pub fn blocklist() -> TableDef {
        TableDef::new("lift-blocklist", KeyAttribute::string("pk")).with_ttl("expires_at")
    }

    /// Every table Lift's middleware owns.
    pub fn all() -> Vec<TableDef> {
        vec![
            rate_limits(),
            idempotency(),
            audit(),
            audit_checkpoints(),
            tokens(),
            subject_keys(),
            blocklist(),
        ]
    }
}

#[cfg(any(feature = "disaster", feature = "threat"))]
pub(crate) use sdk::unprocessed_keys;

#[cfg(feature = "dynamodb")]
mod sdk {
    use super::{AttributeType, StreamView, TableDef};
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    };

    /// The keys of `table` a `BatchGetItem` handed back unprocessed (its
    /// `UnprocessedKeys`), to ask for again.
    #[cfg(any(feature = "disaster", feature = "threat"))]
    pub(crate) fn unprocessed_keys(
        unprocessed: Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::KeysAndAttributes>>,
        table: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        unprocessed.and_then(|mut u| u.remove(table)).map(|k| k.keys).unwrap_or_default()
    }

    fn scalar(kind: AttributeType) -> ScalarAttributeType {
        match kind {
            AttributeType::String => ScalarAttributeType::S,
            AttributeType::Number => ScalarAttributeType::N,
            AttributeType::Binary => ScalarAttributeType::B,
        }
    }

    fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("attribute name and key type are set")
    }

    impl TableDef {
        /// A `CreateTable` request for this definition under the given physical name
        /// (on-demand billing). Set the TTL afterwards with [`TableDef::update_ttl`].
        pub fn create_table(
            &self,
            client: &aws_sdk_dynamodb::Client,
            table_name: &str,
        ) -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder {
            let mut req = client
                .create_table()
                .table_name(table_name)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key(&self.partition_key.name, KeyType::Hash));
            if let Some(sk) = &self.sort_key {
                req = req.key_schema(key(&sk.name, KeyType::Range));
            }
            for attr in self.key_attributes() {
                req = req.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(&attr.name)
                        .attribute_type(scalar(attr.kind))
                        .build()
                        .expect("name and type are set"),
                );
            }
            for index in &self.indexes {
                let mut gsi = GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .key_schema(key(&index.partition_key.name, KeyType::Hash))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build());
                if let Some(sk) = &index.sort_key {
                    gsi = gsi.key_schema(key(&sk.name, KeyType::Range));
                }
                req = req.global_secondary_indexes(gsi.build().expect("index name and keys are set"));
            }
            if let Some(view) = self.stream {
                let view = match view {
                    StreamView::KeysOnly => StreamViewType::KeysOnly,
                    StreamView::NewImage => StreamViewType::NewImage,
                    StreamView::OldImage => StreamViewType::OldImage,
                    StreamView::NewAndOldImages => StreamViewType::NewAndOldImages,
                };
                req = req.stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(view)
                        .build()
                        .expect("stream enabled is set"),
                );
            }
            req
        }

        /// Creates the table under `table_name` with its TTL, unless a table of that name
        /// exists; returns whether it created one. Safe when several processes start at
        /// once: a table created by another in between counts as existing. Any other failure
        /// (throttling, an unreachable endpoint) is returned, never taken for "exists".
        ///
        /// # Errors
        /// The `CreateTable` or `UpdateTimeToLive` failure.
        pub async fn create_if_missing(
            &self,
            client: &aws_sdk_dynamodb::Client,
            table_name: &str,
        ) -> Result<bool, aws_sdk_dynamodb::Error> {
            match self.create_table(client, table_name).send().await {
                Ok(_) => {}
                Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
                    return Ok(false)
                }
                Err(err) => return Err(err.into()),
            }
            if let Some(ttl) = self.update_ttl(client, table_name) {
                ttl.send().await?;
            }
            Ok(true)
        }

        /// An `UpdateTimeToLive` request enabling the TTL attribute, if the table has one.
        pub fn update_ttl(
            &self,
            client: &aws_sdk_dynamodb::Client,
            table_name: &str,
        ) -> Option<aws_sdk_dynamodb::operation::update_time_to_live::builders::UpdateTimeToLiveFluentBuilder>
        {
            let attr = self.ttl_attribute.as_ref()?;
            Some(
                client.update_time_to_live().table_name(table_name).time_to_live_specification(
                    aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(attr)
                        .build()
                        .expect("enabled and attribute name are set"),
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_attributes_are_deduplicated_across_indexes() {
        let def = TableDef::new("t", KeyAttribute::string("pk"))
            .with_sort_key(KeyAttribute::string("sk"))
            .with_index(IndexDef {
                name: "by_customer".into(),
                partition_key: KeyAttribute::string("pk"),
                sort_key: Some(KeyAttribute::string("customer")),
            });
        let names: Vec<_> = def.key_attributes().iter().map(|a| a.name.clone()).collect();
        assert_eq!(names, ["pk", "sk", "customer"]);
    }

    #[test]
    fn lift_tables_have_distinct_names_and_ttl() {
        let all = tables::all();
        let mut names: Vec<_> = all.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all.iter().all(|t| t.ttl_attribute.is_some()));
    }
}
