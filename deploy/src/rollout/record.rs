//! The deployment record: one `HEAD` item per function (who deploys what, at which step,
//! under which lease) and one item per event, all written with conditions so two rollouts
//! of one function cannot both hold it, and a rollout that lost its lease cannot write on.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::RolloutError;

/// The record table's logical name (`LIFT_TABLE_LIFT_DEPLOYMENTS` or `LIFT_TABLE_PREFIX`
/// rename it, as every Lift table).
pub const TABLE: &str = "lift-deployments";

/// The record table: partition key `function`, sort key `sk` (`HEAD`, then
/// `<deployment>#<seq>` per event).
pub fn table_def() -> lift::store::TableDef {
    use lift::store::{KeyAttribute, TableDef};
    TableDef::new(TABLE, KeyAttribute::string("function")).with_sort_key(KeyAttribute::string("sk"))
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Shifting traffic; the owner holds the lease.
    InProgress,
    /// The new version takes all traffic.
    Succeeded,
    /// Traffic is back on the previous version.
    RolledBack,
    /// Stopped where it was, rollback being off.
    Halted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Succeeded => "succeeded",
            Self::RolledBack => "rolled_back",
            Self::Halted => "halted",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::InProgress, Self::Succeeded, Self::RolledBack, Self::Halted]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The `HEAD` item of a function: its latest deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The function.
    pub function: String,
    /// The deployment's id.
    pub deployment: String,
    /// Where it stands.
    pub status: Status,
    /// The alias it shifts.
    pub alias: String,
    /// The version the alias pointed at before.
    pub from_version: String,
    /// The version being deployed.
    pub to_version: String,
    /// The strategy, in its text form ([`Strategy`](super::Strategy)'s `Display`): what the
    /// step index counts in. `None` in records written before it was kept.
    pub strategy: Option<String>,
    /// The index of the step in progress (0 before the first shift).
    pub step: u32,
    /// The weight the new version has now, 0 to 1.
    pub weight: f64,
    /// The number of events written; every write expects the last one.
    pub seq: u64,
    /// Who holds the lease (one run of `lift-deploy rollout`).
    pub owner: String,
    /// Until when the lease holds, epoch milliseconds.
    pub lease_until_ms: i64,
    /// Why it ended, when it ended other than by succeeding.
    pub reason: Option<String>,
    /// Whether the deployment has sent an alias update that gives the new version traffic.
    /// Set, and written, before the update goes out: such an update may land unanswered, so
    /// a run that takes over an interrupted deployment puts the alias back only when this
    /// is set, and leaves alone an alias the deployment never touched. Records written
    /// before it was kept read as set.
    pub traffic_sent: bool,
}

/// One event of a deployment, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its number in the deployment.
    pub seq: u64,
    /// What happened: `started`, `shift`, `gate`, `rolled_back`…
    pub kind: String,
    /// Epoch milliseconds.
    pub at_ms: i64,
    /// The details, as JSON.
    pub detail: serde_json::Value,
}

/// The deployment record in DynamoDB.
#[derive(Debug, Clone)]
pub struct Record {
    client: Client,
    table: String,
}

/// Epoch milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Whether a claim failed on its condition: another run holds the function.
fn claim_refused<R>(
    err: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, R>,
) -> bool {
    matches!(
        err.as_service_error(),
        Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
    )
}

/// Whether a cancelled transaction failed on a condition (the head moved on: another run
/// holds it), rather than on a conflict or a throttle.
fn lost_lease<R>(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            let reasons = cancelled.cancellation_reasons();
            if reasons.is_empty() {
                // Without reasons, the message lists them.
                cancelled.message().is_some_and(|m| m.contains("ConditionalCheckFailed"))
            } else {
                reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
            }
        }
        _ => false,
    }
}

impl Record {
    /// The record in `table` (see [`table_def`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The function's `HEAD`, read consistently; `None` before its first deployment.
    ///
    /// # Errors
    /// [`RolloutError::Record`] when DynamoDB cannot be read or the item is malformed.
    pub async fn head(&self, function: &str) -> Result<Option<Head>, RolloutError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("function", s(function))
            .key("sk", s("HEAD"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RolloutError::record("reading the deployment record", &e))?;
        out.item.map(|item| parse_head(function, &item)).transpose()
    }

    /// Every stored event of `deployment`, in order.
    ///
    /// # Errors
    /// [`RolloutError::Record`] when DynamoDB cannot be read.
    pub async fn events(&self, function: &str, deployment: &str) -> Result<Vec<StoredEvent>, RolloutError> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#f = :f AND begins_with(sk, :d)")
                .expression_attribute_names("#f", "function")
                .expression_attribute_values(":f", s(function))
                .expression_attribute_values(":d", s(format!("{deployment}#")))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| RolloutError::record("reading the deployment events", &e))?;
            for item in out.items() {
                let get_n =
                    |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
                let detail = item
                    .get("detail")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or(serde_json::Value::Null);
                events.push(StoredEvent {
                    seq: get_n("seq").unwrap_or_default() as u64,
                    kind: item.get("kind").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
                    at_ms: get_n("at_ms").unwrap_or_default(),
                    detail,
                });
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(events)
    }

    /// Claims the function for a new deployment: succeeds only when no deployment is in
    /// progress, or the one in progress lost its lease (`expected` is then the `HEAD` that
    /// was read, so two runs cannot both take over from it).
    ///
    /// # Errors
    /// [`RolloutError::InProgress`] when another run holds the function;
    /// [`RolloutError::Record`] when DynamoDB fails.
    pub async fn claim(&self, head: &Head, expected: Option<&Head>) -> Result<(), RolloutError> {
        let mut put = self.client.put_item().table_name(&self.table).set_item(Some(head_item(head)));
        put = match expected {
            // Taking over: the exact head that was read, still in progress, lease run out.
            Some(old) => put
                .condition_expression("deployment = :d AND seq = :seq AND #o = :o AND lease_until_ms < :now")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_values(":d", s(&old.deployment))
                .expression_attribute_values(":seq", n(old.seq))
                .expression_attribute_values(":o", s(&old.owner))
                .expression_attribute_values(":now", n(now_ms())),
            None => put
                .condition_expression("attribute_not_exists(sk) OR #st <> :ip")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":ip", s(Status::InProgress.as_str())),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(err) if claim_refused(&err) => {
                let current = self.head(&head.function).await?;
                Err(RolloutError::InProgress {
                    function: head.function.clone(),
                    deployment: current.as_ref().map(|h| h.deployment.clone()).unwrap_or_default(),
                    owner: current.map(|h| h.owner).unwrap_or_default(),
                })
            }
            Err(err) => Err(RolloutError::record("claiming the function", &err)),
        }
    }

    /// Writes one event and the new `HEAD` in one transaction, on the condition that
    /// `head` still holds the lease at `head.seq - 1` (the caller bumped `seq`).
    ///
    /// # Errors
    /// [`RolloutError::LeaseLost`] when another run took the function over;
    /// [`RolloutError::Record`] when DynamoDB fails.
    pub async fn append(
        &self,
        head: &Head,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<(), RolloutError> {
        let mut item = HashMap::new();
        item.insert("function".to_owned(), s(&head.function));
        item.insert("sk".to_owned(), s(format!("{}#{:08}", head.deployment, head.seq)));
        item.insert("seq".to_owned(), n(head.seq));
        item.insert("kind".to_owned(), s(kind));
        item.insert("at_ms".to_owned(), n(now_ms()));
        item.insert("detail".to_owned(), s(detail.to_string()));
        let event = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(|e| RolloutError::record("building the event write", &e))?;
        // The head as this run holds it. `from_version` too: a run reads the alias again
        // once it has claimed the function, and records what it found.
        let set = "SET #st = :st, step = :step, weight = :w, seq = :seq, lease_until_ms = :lease, \
                   updated_ms = :now, from_version = :from, traffic_sent = :sent";
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("function", s(&head.function))
            .key("sk", s("HEAD"))
            .update_expression(format!("{set} REMOVE reason"))
            .condition_expression("deployment = :d AND #o = :o AND seq = :prev")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":st", s(head.status.as_str()))
            .expression_attribute_values(":step", n(head.step))
            .expression_attribute_values(":w", n(head.weight))
            .expression_attribute_values(":seq", n(head.seq))
            .expression_attribute_values(":lease", n(head.lease_until_ms))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":from", s(&head.from_version))
            .expression_attribute_values(":sent", AttributeValue::Bool(head.traffic_sent))
            .expression_attribute_values(":d", s(&head.deployment))
            .expression_attribute_values(":o", s(&head.owner))
            .expression_attribute_values(":prev", n(head.seq.saturating_sub(1)));
        if let Some(reason) = &head.reason {
            update = update
                .update_expression(format!("{set}, reason = :r"))
                .expression_attribute_values(":r", s(reason));
        }
        let update = update.build().map_err(|e| RolloutError::record("building the head update", &e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(event).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Only a failed condition means another run holds the record; a transaction
            // cancelled for a conflict is an error like any other, and the run puts traffic
            // back rather than leaving it to a lease that nobody holds.
            Err(err) if lost_lease(&err) => Err(RolloutError::LeaseLost {
                function: head.function.clone(),
                deployment: head.deployment.clone(),
            }),
            Err(err) => Err(RolloutError::record("writing a deployment event", &err)),
        }
    }
}

fn head_item(head: &Head) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert("function".to_owned(), s(&head.function));
    item.insert("sk".to_owned(), s("HEAD"));
    item.insert("deployment".to_owned(), s(&head.deployment));
    item.insert("status".to_owned(), s(head.status.as_str()));
    item.insert("alias".to_owned(), s(&head.alias));
    item.insert("from_version".to_owned(), s(&head.from_version));
    item.insert("to_version".to_owned(), s(&head.to_version));
    if let Some(strategy) = &head.strategy {
        item.insert("strategy".to_owned(), s(strategy));
    }
    item.insert("step".to_owned(), n(head.step));
    item.insert("weight".to_owned(), n(head.weight));
    item.insert("seq".to_owned(), n(head.seq));
    item.insert("owner".to_owned(), s(&head.owner));
    item.insert("lease_until_ms".to_owned(), n(head.lease_until_ms));
    item.insert("updated_ms".to_owned(), n(now_ms()));
    if let Some(reason) = &head.reason {
        item.insert("reason".to_owned(), s(reason));
    }
    item.insert("traffic_sent".to_owned(), AttributeValue::Bool(head.traffic_sent));
    item
}

fn parse_head(function: &str, item: &HashMap<String, AttributeValue>) -> Result<Head, RolloutError> {
    let text = |k: &str| {
        item.get(k).and_then(|v| v.as_s().ok()).cloned().ok_or_else(|| RolloutError::Record {
            context: format!("the deployment record of {function} has no {k}"),
            detail: String::new(),
        })
    };
    let number = |k: &str| -> Result<f64, RolloutError> {
        item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<f64>().ok()).ok_or_else(|| {
            RolloutError::Record {
                context: format!("the deployment record of {function} has no {k}"),
                detail: String::new(),
            }
        })
    };
    let status = text("status")?;
    Ok(Head {
        function: function.to_owned(),
        deployment: text("deployment")?,
        status: Status::parse(&status).ok_or_else(|| RolloutError::Record {
            context: format!("the deployment record of {function} has an unknown status {status:?}"),
            detail: String::new(),
        })?,
        alias: text("alias")?,
        from_version: text("from_version")?,
        to_version: text("to_version")?,
        strategy: text("strategy").ok(),
        step: number("step")? as u32,
        weight: number("weight")?,
        seq: number("seq")? as u64,
        owner: text("owner")?,
        lease_until_ms: number("lease_until_ms")? as i64,
        reason: text("reason").ok(),
        // Absent in records written before it was kept: traffic may have moved.
        traffic_sent: item.get("traffic_sent").and_then(|v| v.as_bool().ok()).copied().unwrap_or(true),
    })
}

/// A lease's length from now, in epoch milliseconds.
pub(crate) fn lease_until(lease: Duration) -> i64 {
    now_ms() + lease.as_millis() as i64
}
