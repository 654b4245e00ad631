//! DynamoDB Streams batches with partial batch failure reporting.
//!
//! Records of a shard are ordered, so they run one at a time in order and the first
//! failure stops the batch. The response names that record's `SequenceNumber`
//! (`batchItemFailures[0].itemIdentifier`): Lambda checkpoints before it and retries from
//! there, so later records are not lost. This needs `ReportBatchItemFailures` on the event
//! source mapping.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::Value;

use super::error::{describe, truncate, EventError};
use super::handler::{self, Handler};

/// A handler for the records of one table's stream, or of every stream.
#[derive(Clone)]
pub(crate) struct StreamRoute {
    /// A table name; `None` for every table.
    pub(crate) table: Option<String>,
    pub(crate) handler: Handler<EventRecord>,
}

impl StreamRoute {
    fn serves(&self, arn: Option<&str>) -> bool {
        match &self.table {
            None => true,
            Some(table) => arn.and_then(table_of) == Some(table.as_str()),
        }
    }
}

/// `arn:aws:dynamodb:region:account:table/NAME/stream/LABEL` → `NAME`.
fn table_of(arn: &str) -> Option<&str> {
    arn.split_once(":table/").map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
}

/// Runs the records in order until the first failure, and reports it.
pub(crate) async fn process(
    routes: &[StreamRoute],
    mut payload: Value,
) -> Result<DynamoDbEventResponse, EventError> {
    let Some(Value::Array(records)) = payload.get_mut("Records").map(Value::take) else {
        return Err(EventError::Malformed {
            kind: "dynamodb streams",
            detail: "`Records` is not an array".into(),
        });
    };
    let mut planned = Vec::with_capacity(records.len());
    for value in records {
        let arn = value.get("eventSourceARN").and_then(Value::as_str);
        let Some(route) = routes.iter().find(|r| r.serves(arn)) else {
            let table = arn.and_then(table_of).map_or("an unnamed table", |t| truncate(t, 80));
            return Err(EventError::NoRoute(format!("dynamodb stream records of `{table}`")));
        };
        planned.push((route.handler.clone(), value));
    }
    let mut response = DynamoDbEventResponse::default();
    for (handler, value) in planned {
        // Read before parsing, so a record that does not parse can still be retried.
        let sequence = value.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str).map(str::to_owned);
        let outcome = match serde_path_to_error::deserialize::<_, EventRecord>(value) {
            Ok(record) => handler::run(&handler, record).await,
            Err(e) => Err(describe(&e).into()),
        };
        if let Err(error) = outcome {
            tracing::warn!(sequence_number = ?sequence, error = %error, "stream record failed");
            // Without a sequence number the identifier is null: Lambda retries the batch.
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence;
            response.batch_item_failures.push(failure);
            break;
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_come_from_stream_arns() {
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/Payments/stream/2016-12-01T00:00:00.000";
        assert_eq!(table_of(arn), Some("Payments"));
        assert_eq!(table_of("arn:aws:sqs:us-east-1:1:q"), None);
    }
}
