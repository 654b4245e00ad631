//! Shared by the harness's integration tests: a tiny [`Workload`] that is not payments,
//! so the tests prove the harness drills any service.

use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::Item;
use lift::store::{KeyAttribute, TableDef};
use lift_harness::drill::{Load, ReplicationMode};
use lift_harness::{Call, Effect, OpError, Workload};

/// Notes: `put` writes one small item, `get` reads one back.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    written: Mutex<Vec<String>>,
}

/// What a note operation does.
#[derive(Debug)]
pub(crate) enum NoteOp {
    Put(String),
    Get(String),
}

/// The key of note `id`.
#[allow(dead_code)] // not every test binary reads keys itself
pub(crate) fn key(id: &str) -> Item {
    [("id".to_owned(), AttributeValue::S(id.to_owned()))].into_iter().collect()
}

fn failed(e: impl std::fmt::Display) -> OpError {
    OpError::new("unavailable", e.to_string())
}

impl Workload for Notes {
    type Op = NoteOp;

    fn name(&self) -> &str {
        "notes"
    }

    fn table(&self) -> TableDef {
        TableDef::new("drill-notes", KeyAttribute::string("id"))
    }

    fn operations(&self) -> &[&'static str] {
        &["put", "get"]
    }

    fn next(&self, kind: &'static str, _load: &Load) -> NoteOp {
        let written = self.written.lock().unwrap();
        match (kind, written.last()) {
            ("get", Some(id)) => NoteOp::Get(id.clone()),
            _ => NoteOp::Put(uuid::Uuid::new_v4().simple().to_string()),
        }
    }

    fn kind(&self, op: &NoteOp) -> &'static str {
        match op {
            NoteOp::Put(_) => "put",
            NoteOp::Get(_) => "get",
        }
    }

    async fn execute<'a>(&'a self, op: &'a NoteOp, call: &'a Call<'a>) -> Result<Option<Effect>, OpError> {
        match op {
            NoteOp::Get(id) => {
                let got = call
                    .dynamodb()
                    .get_item()
                    .table_name(call.table())
                    .set_key(Some(key(id)))
                    .send()
                    .await
                    .map_err(failed)?;
                got.item().ok_or_else(|| OpError::new("not_found", "no such note"))?;
                Ok(None)
            }
            NoteOp::Put(id) => {
                let mut item = key(id);
                item.insert("text".into(), AttributeValue::S("a note".into()));
                let synced = if call.replication() == ReplicationMode::Sync {
                    call.put_in_healthy_regions(item.clone()).await
                } else {
                    None
                };
                let effect = match synced {
                    Some(acked) => Effect::Written(acked?),
                    None => {
                        call.dynamodb()
                            .put_item()
                            .table_name(call.table())
                            .set_item(Some(item))
                            .send()
                            .await
                            .map_err(failed)?;
                        Effect::written(key(id))
                    }
                };
                self.written.lock().unwrap().push(id.clone());
                Ok(Some(effect))
            }
        }
    }
}
