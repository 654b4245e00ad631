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

/// Notes whose read-back fails, as a workload's own check can: the drill ends with an
/// error after its tables were made and its load ran.
#[derive(Debug, Default)]
#[allow(dead_code)] // not every test binary runs drills
pub(crate) struct CheckFails(Notes);

impl Workload for CheckFails {
    type Op = <Notes as Workload>::Op;

    fn name(&self) -> &str {
        self.0.name()
    }

    fn table(&self) -> lift::store::TableDef {
        self.0.table()
    }

    fn operations(&self) -> &[&'static str] {
        self.0.operations()
    }

    fn next(&self, kind: &'static str, load: &lift_harness::drill::Load) -> Self::Op {
        self.0.next(kind, load)
    }

    fn kind(&self, op: &Self::Op) -> &'static str {
        self.0.kind(op)
    }

    async fn execute<'a>(
        &'a self,
        op: &'a Self::Op,
        call: &'a lift_harness::Call<'a>,
    ) -> Result<Option<lift_harness::Effect>, lift_harness::OpError> {
        self.0.execute(op, call).await
    }

    async fn check<'a>(
        &'a self,
        region: &'a lift::disaster::Region,
        _table: &'a lift::disaster::ReplicatedTable,
        _acked: &'a [lift_harness::Acked],
    ) -> Result<lift_harness::EffectCheck, lift::disaster::RpoError> {
        Err(lift::disaster::RpoError::Request {
            operation: "BatchGetItem",
            region: region.name().to_owned(),
            message: "the read-back broke".into(),
        })
    }
}

/// The shipped scenarios.
#[allow(dead_code)] // not every test binary runs drills
pub(crate) fn scenarios_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// The CI scenario with the notes workload's mix.
#[allow(dead_code)] // not every test binary runs drills
pub(crate) fn ci_scenario(failover: bool) -> lift_harness::drill::Scenario {
    let text = std::fs::read_to_string(scenarios_dir().join("ci_region_outage.toml")).unwrap();
    assert!(text.contains("enabled = true") && text.contains("[load.mix]"));
    let text = text
        .replace("create = 6\nget = 3\nrefund = 2\nerase = 1", "put = 3\nget = 1")
        .replace("enabled = true", &format!("enabled = {failover}"));
    lift_harness::drill::Scenario::parse(&text).unwrap()
}

/// The CI scenario cut to 3 s of load with no warm-up, its outage from 1 s to 2 s: for
/// drills run to see how they end ([`CheckFails`] ends them in an error).
#[allow(dead_code)] // not every test binary runs drills
pub(crate) fn short_failing_scenario() -> lift_harness::drill::Scenario {
    use std::time::Duration;
    let mut scenario = ci_scenario(true);
    scenario.load.duration = Duration::from_secs(3);
    scenario.load.warmup = Duration::ZERO;
    scenario.faults[0].at = Duration::from_secs(1);
    scenario.faults[0].heal_at = Some(Duration::from_secs(2));
    scenario
}
