//! What the service is, as data: its routes, event sources and tables.
//!
//! A [`Manifest`] is read from a [`lift::App`] ([`Manifest::from_app`]) and the table
//! definitions of [`lift::store`] and the service. It serializes to JSON, so a service's own
//! small binary can print it and `lift-deploy synth --manifest` can read it without
//! depending on the service.

use serde::{Deserialize, Serialize};

use lift::app::{EventSource, RequirementKind};
use lift::store::{AttributeType, StreamView, TableDef};

/// The service as synthesis sees it.
///
/// # Examples
///
/// ```
/// use lift_deploy::{Manifest, TableAccess};
/// async fn h(_: lift::Request) -> lift::Response { lift::Response::default() }
/// let app = lift::App::new().get("/payments/:id", h);
/// let manifest = Manifest::from_app(&app)
///     .table(lift::store::tables::idempotency(), TableAccess::idempotency());
/// assert_eq!(manifest.routes[0].path, "/payments/:id");
/// assert_eq!(manifest.tables[0].name, "lift-idempotency");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The HTTP routes.
    pub routes: Vec<RouteSpec>,
    /// The non-HTTP event sources.
    #[serde(default)]
    pub event_sources: Vec<EventSourceSpec>,
    /// The tables the function uses, with what it does to each.
    #[serde(default)]
    pub tables: Vec<TableSpec>,
}

/// One HTTP route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The method, upper case.
    pub method: String,
    /// The path pattern, lift's syntax (`/payments/:id`, `/files/*rest`).
    pub path: String,
    /// The role and scope requirements, outermost first; all must hold.
    #[serde(default)]
    pub requirements: Vec<RequirementSpec>,
}

/// A role or scope requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementSpec {
    /// `role` or `scope`.
    pub kind: String,
    /// Every name is required (`true`) or any one (`false`).
    pub all: bool,
    /// The names.
    pub names: Vec<String>,
}

/// A non-HTTP event source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventSourceSpec {
    /// SQS messages of one queue (name or ARN) or of any queue.
    Sqs {
        /// The queue, if one.
        queue: Option<String>,
    },
    /// EventBridge events matching a pattern.
    EventBridge {
        /// The event pattern.
        pattern: serde_json::Value,
    },
    /// A scheduled rule's firings.
    Schedule {
        /// The rule name.
        rule: String,
    },
    /// DynamoDB Streams records of one table (logical name) or of any.
    DynamodbStream {
        /// The table, if one.
        table: Option<String>,
    },
}

/// One table and what the function does with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The logical name (`payments`, `lift-idempotency`).
    pub name: String,
    /// The partition key: name and type (`S`, `N`, `B`).
    pub partition_key: (String, String),
    /// The sort key, if any.
    pub sort_key: Option<(String, String)>,
    /// The TTL attribute, if items expire.
    pub ttl_attribute: Option<String>,
    /// Global secondary indexes: name, partition key, sort key.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
    /// The stream view (`NEW_AND_OLD_IMAGES`...), if the table has a stream.
    pub stream: Option<String>,
    /// The DynamoDB actions the function needs on the table (`GetItem`, `Query`...).
    pub actions: Vec<String>,
    /// Whether the table is backed up (point-in-time recovery). Off only for tables whose
    /// copies would defeat erasure, such as lift's subject keys.
    pub backups: bool,
}

impl TableSpec {
    /// Whether the table is shaped as lift's subject keys and used as they are: its key and
    /// TTL, no sort key, index or stream, and exactly [`TableAccess::subject_keys`]' actions.
    fn is_subject_keys(&self) -> bool {
        let def = lift::store::tables::subject_keys();
        let key = |k: &lift::store::KeyAttribute| (k.name.clone(), attribute_type(k.kind));
        self.partition_key == key(&def.partition_key)
            && self.sort_key.is_none()
            && def.sort_key.is_none()
            && self.indexes.is_empty()
            && self.stream.is_none()
            && self.ttl_attribute == def.ttl_attribute
            && {
                // In any order: a hand-written manifest need not sort them.
                let mut actions = self.actions.clone();
                actions.sort();
                actions.dedup();
                actions == TableAccess::subject_keys().actions
            }
    }
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// The index name.
    pub name: String,
    /// The partition key.
    pub partition_key: (String, String),
    /// The sort key, if any.
    pub sort_key: Option<(String, String)>,
}

/// The DynamoDB actions a table's access may name: what a function's code calls on items
/// and a table's description. Wildcards, table management (`DeleteTable`...) and the stream
/// actions (synthesis grants those itself) are refused.
pub const TABLE_ACTIONS: &[&str] = &[
    "BatchGetItem",
    "BatchWriteItem",
    "ConditionCheckItem",
    "DeleteItem",
    "DescribeTable",
    "GetItem",
    "PartiQLDelete",
    "PartiQLInsert",
    "PartiQLSelect",
    "PartiQLUpdate",
    "PutItem",
    "Query",
    "Scan",
    "UpdateItem",
];

/// What the function does with a table: the DynamoDB actions its code calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAccess {
    actions: Vec<String>,
    backups: bool,
}

impl TableAccess {
    /// Exactly these DynamoDB actions (without the `dynamodb:` prefix), e.g. `["GetItem"]`,
    /// each one of [`TABLE_ACTIONS`] (synthesis refuses others).
    pub fn actions<I: IntoIterator<Item = S>, S: Into<String>>(actions: I) -> Self {
        let mut actions: Vec<String> = actions.into_iter().map(Into::into).collect();
        actions.sort();
        actions.dedup();
        Self { actions, backups: true }
    }

    /// Reads only: `GetItem`, `Query`.
    pub fn read() -> Self {
        Self::actions(["GetItem", "Query"])
    }

    /// Reads and writes: `GetItem`, `Query`, `PutItem`, `UpdateItem`, `DeleteItem`,
    /// `ConditionCheckItem` (transactions need the item actions and this one).
    pub fn read_write() -> Self {
        Self::actions(["GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"])
    }

    /// What lift's idempotency layer calls.
    pub fn idempotency() -> Self {
        Self::actions(["GetItem", "PutItem", "UpdateItem", "DeleteItem"])
    }

    /// What lift's DynamoDB-backed rate limiter calls.
    pub fn rate_limits() -> Self {
        Self::actions(["GetItem", "UpdateItem"])
    }

    /// What lift's audit trail calls: append and verify, never change or delete.
    pub fn audit() -> Self {
        Self::actions(["GetItem", "PutItem", "Query"])
    }

    /// What lift's threat layer calls on its blocklist
    /// ([`lift::store::tables::blocklist`]): `BatchGetItem` for the block check on every
    /// request, `GetItem`, `PutItem` and `DeleteItem` for blocks and revocations,
    /// `UpdateItem` for the behaviour counters. Without `BatchGetItem` every check is
    /// refused, and the layer fails open.
    pub fn blocklist() -> Self {
        Self::actions(["BatchGetItem", "GetItem", "PutItem", "UpdateItem", "DeleteItem"])
    }

    /// What lift's subject keys (crypto-shredding) call; the table is kept out of backups,
    /// as [`lift::store::tables::subject_keys`] asks.
    pub fn subject_keys() -> Self {
        Self { backups: false, ..Self::actions(["GetItem", "PutItem", "DeleteItem"]) }
    }
}

fn attribute_type(kind: AttributeType) -> String {
    match kind {
        AttributeType::String => "S",
        AttributeType::Number => "N",
        AttributeType::Binary => "B",
    }
    .to_owned()
}

fn stream_view(view: StreamView) -> String {
    match view {
        StreamView::KeysOnly => "KEYS_ONLY",
        StreamView::NewImage => "NEW_IMAGE",
        StreamView::OldImage => "OLD_IMAGE",
        StreamView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
    }
    .to_owned()
}

impl Manifest {
    /// The routes and event sources of `app`; add tables with [`Manifest::table`].
    pub fn from_app(app: &lift::App) -> Self {
        let routes = app
            .routes()
            .into_iter()
            .map(|r| RouteSpec {
                method: r.method.as_str().to_owned(),
                path: r.path,
                requirements: r
                    .requirements
                    .into_iter()
                    .map(|q| RequirementSpec {
                        kind: match q.kind {
                            RequirementKind::Role => "role",
                            RequirementKind::Scope => "scope",
                        }
                        .to_owned(),
                        all: q.all,
                        names: q.names,
                    })
                    .collect(),
            })
            .collect();
        let event_sources = app
            .event_sources()
            .into_iter()
            .map(|s| match s {
                EventSource::Sqs { queue } => EventSourceSpec::Sqs { queue },
                EventSource::EventBridge { pattern } => EventSourceSpec::EventBridge { pattern },
                EventSource::Schedule { rule } => EventSourceSpec::Schedule { rule },
                EventSource::DynamoDbStream { table } => EventSourceSpec::DynamodbStream { table },
            })
            .collect();
        Self { routes, event_sources, tables: Vec::new() }
    }

    /// Adds a table the function uses.
    pub fn table(mut self, def: TableDef, access: TableAccess) -> Self {
        let key = |k: &lift::store::KeyAttribute| (k.name.clone(), attribute_type(k.kind));
        self.tables.push(TableSpec {
            name: def.name.clone(),
            partition_key: key(&def.partition_key),
            sort_key: def.sort_key.as_ref().map(key),
            ttl_attribute: def.ttl_attribute.clone(),
            indexes: def
                .indexes
                .iter()
                .map(|i| IndexSpec {
                    name: i.name.clone(),
                    partition_key: key(&i.partition_key),
                    sort_key: i.sort_key.as_ref().map(key),
                })
                .collect(),
            stream: def.stream.map(stream_view),
            actions: access.actions,
            backups: access.backups,
        });
        self
    }

    /// The manifest as pretty JSON (what `lift-deploy synth --manifest` reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes")
    }

    /// Reads a manifest written by [`Manifest::to_json`].
    ///
    /// # Errors
    /// [`crate::Error::Manifest`] naming the path of the bad field, or of a table action
    /// outside [`TABLE_ACTIONS`].
    pub fn from_json(text: &str) -> Result<Self, crate::Error> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let manifest: Self = serde_path_to_error::deserialize(de).map_err(|e| crate::Error::Manifest {
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        })?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Refuses table actions outside [`TABLE_ACTIONS`] (`*` would become `dynamodb:*`), and
    /// backups turned off for any table but lift's subject keys: `backups` is a field of the
    /// JSON `lift-deploy synth --manifest` reads, and `false` on the payments table would
    /// synthesize it without point-in-time recovery, with checkov's findings silenced by the
    /// subject keys' reason.
    pub(crate) fn check(&self) -> Result<(), crate::Error> {
        for (i, table) in self.tables.iter().enumerate() {
            if !table.backups && !table.is_subject_keys() {
                return Err(crate::Error::Manifest {
                    path: format!("tables[{i}].backups"),
                    reason: format!(
                        "backups are off only for lift's subject keys table (crypto-shredding: \
                         TableAccess::subject_keys over lift::store::tables::subject_keys), whose \
                         copies would bring erased keys back; table {} is not one, and keeps \
                         point-in-time recovery",
                        table.name
                    ),
                });
            }
            for (j, action) in table.actions.iter().enumerate() {
                if !TABLE_ACTIONS.contains(&action.as_str()) {
                    return Err(crate::Error::Manifest {
                        path: format!("tables[{i}].actions[{j}]"),
                        reason: format!(
                            "{action:?} is not an item action of table {}; use some of {} (without the dynamodb: prefix)",
                            table.name,
                            TABLE_ACTIONS.join(", ")
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_presets_are_sorted_and_deduplicated() {
        assert_eq!(TableAccess::actions(["Query", "GetItem", "Query"]).actions, ["GetItem", "Query"]);
        assert!(!TableAccess::subject_keys().backups);
        assert!(TableAccess::blocklist().actions.iter().all(|a| TABLE_ACTIONS.contains(&a.as_str())));
        assert!(TableAccess::blocklist().actions.iter().any(|a| a == "BatchGetItem"));
        assert!(TableAccess::audit().backups);
        // The audit trail is append-only: no update or delete.
        assert!(!TableAccess::audit().actions.iter().any(|a| a == "DeleteItem" || a == "UpdateItem"));
    }

    /// `backups: false` is honoured for lift's subject keys only: on any other table it is
    /// refused, naming the field, rather than synthesized without point-in-time recovery.
    #[test]
    fn backups_are_off_for_the_subject_keys_only() {
        let keys = Manifest::default()
            .table(lift::store::tables::audit(), TableAccess::audit())
            .table(lift::store::tables::subject_keys(), TableAccess::subject_keys());
        assert_eq!(Manifest::from_json(&keys.to_json()).unwrap(), keys);
        let mut audit_off = keys.clone();
        audit_off.tables[0].backups = false;
        let err = Manifest::from_json(&audit_off.to_json()).unwrap_err().to_string();
        assert!(err.contains("tables[0].backups") && err.contains("lift-audit"), "{err}");
        // The subject keys' shape used for something else (more actions) keeps its backups.
        let mut wider = keys.clone();
        wider.tables[1].actions.push("Query".into());
        let err = Manifest::from_json(&wider.to_json()).unwrap_err().to_string();
        assert!(err.contains("tables[1].backups"), "{err}");
        // The same actions in another order are the subject keys' still.
        let mut reordered = keys.clone();
        reordered.tables[1].actions.reverse();
        assert!(Manifest::from_json(&reordered.to_json()).is_ok());
    }

    #[test]
    fn json_round_trips_and_errors_name_the_field() {
        let m = Manifest::default().table(lift::store::tables::audit(), TableAccess::audit());
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        let err =
            Manifest::from_json(r#"{"routes":[{"method":"GET","path":"/","requirements":[],"extra":1}]}"#)
                .unwrap_err();
        assert!(err.to_string().contains("routes[0]"), "{err}");
    }
}
