//! Unique tables per test, and JSON fixtures loaded into them.

use std::time::Duration;

use aws_sdk_dynamodb::types::{IndexStatus, PutRequest, TableStatus, WriteRequest};
use aws_sdk_dynamodb::Client;
use lift::store::TableDef;
use serde_json::Value;

use super::item::{json_kind, json_to_item};
use super::DynamoDbError;

/// How long a table may take to become `ACTIVE` (real AWS can take tens of seconds).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
/// `BatchWriteItem` takes at most 25 requests.
const BATCH: usize = 25;
/// Attempts per batch before unprocessed items are an error.
const BATCH_ATTEMPTS: u32 = 10;
/// DynamoDB's limit on table name length.
const MAX_NAME: usize = 255;

/// The logical name plus a short random suffix, e.g. `lift-audit-3f9c2a1b`.
pub(crate) fn unique_name(logical: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let base: String = logical.chars().take(MAX_NAME - 9).collect();
    format!("{base}-{}", &suffix[..8])
}

pub(crate) async fn create_table(client: &Client, def: &TableDef) -> Result<String, DynamoDbError> {
    let name = unique_name(&def.name);
    def.create_table(client, &name).send().await.map_err(DynamoDbError::request("CreateTable"))?;
    wait_active(client, &name).await?;
    if let Some(update) = def.update_ttl(client, &name) {
        update.send().await.map_err(DynamoDbError::request("UpdateTimeToLive"))?;
    }
    tracing::debug!(table = %name, logical = %def.name, "created table");
    Ok(name)
}

/// Polls `DescribeTable` until the table and its indexes are `ACTIVE`.
async fn wait_active(client: &Client, name: &str) -> Result<(), DynamoDbError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    let mut delay = Duration::from_millis(20);
    loop {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(DynamoDbError::request("DescribeTable"))?;
        if let Some(table) = out.table() {
            let indexes_active = table
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status() == Some(&IndexStatus::Active));
            if table.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() + delay > deadline {
            return Err(DynamoDbError::TableNotActive {
                table: name.to_owned(),
                secs: ACTIVE_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

pub(crate) async fn load_fixture(client: &Client, table: &str, json: &str) -> Result<usize, DynamoDbError> {
    let value: Value = serde_json::from_str(json).map_err(DynamoDbError::FixtureJson)?;
    let Value::Array(values) = value else {
        return Err(DynamoDbError::FixtureShape(format!("got {}", json_kind(&value))));
    };
    let mut requests = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let item = json_to_item(value)
            .map_err(|_| DynamoDbError::FixtureShape(format!("item {i} is {}", json_kind(value))))?;
        let put = PutRequest::builder().set_item(Some(item)).build().expect("item is set");
        requests.push(WriteRequest::builder().put_request(put).build());
    }
    let count = requests.len();
    for chunk in requests.chunks(BATCH) {
        write_batch(client, table, chunk.to_vec()).await?;
    }
    Ok(count)
}

/// One `BatchWriteItem`, retrying unprocessed items with exponential backoff.
async fn write_batch(
    client: &Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
) -> Result<(), DynamoDbError> {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=BATCH_ATTEMPTS {
        let out = client
            .batch_write_item()
            .request_items(table, pending)
            .send()
            .await
            .map_err(DynamoDbError::request("BatchWriteItem"))?;
        pending =
            out.unprocessed_items.and_then(|mut unprocessed| unprocessed.remove(table)).unwrap_or_default();
        if pending.is_empty() {
            return Ok(());
        }
        tracing::debug!(table, attempt, remaining = pending.len(), "unprocessed items");
        if attempt < BATCH_ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    Err(DynamoDbError::Unprocessed {
        table: table.to_owned(),
        remaining: pending.len(),
        attempts: BATCH_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_keep_the_logical_name_and_differ() {
        let a = unique_name("lift-audit");
        let b = unique_name("lift-audit");
        assert!(a.starts_with("lift-audit-") && a.len() == "lift-audit-".len() + 8, "{a}");
        assert_ne!(a, b);
        assert!(unique_name(&"x".repeat(400)).len() <= MAX_NAME);
    }

    #[tokio::test]
    async fn fixtures_must_be_arrays_of_objects() {
        let client = super::super::client_for("http://127.0.0.1:9", "us-east-1");
        let err = load_fixture(&client, "t", "{\"pk\": 1}").await.unwrap_err();
        assert!(matches!(err, DynamoDbError::FixtureShape(_)), "{err:?}");
        let err = load_fixture(&client, "t", "[{\"pk\": 1}, 2]").await.unwrap_err();
        assert_eq!(err.to_string(), "fixture must be a json array of objects: item 1 is a number");
        let err = load_fixture(&client, "t", "[").await.unwrap_err();
        assert!(matches!(err, DynamoDbError::FixtureJson(_)), "{err:?}");
    }
}
