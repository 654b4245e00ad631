//! SQS batches with partial batch failure reporting.
//!
//! Each record is parsed and handled on its own, so one bad message fails alone: the
//! response lists the `messageId`s that failed (`batchItemFailures`) and SQS redelivers
//! only those. This needs `ReportBatchItemFailures` on the event source mapping.
//!
//! - Standard queues: records run in batch order, one at a time by default, or up to
//!   [`EventRouter::sqs_concurrency`](super::EventRouter::sqs_concurrency) at once; every
//!   record runs and every failure is reported.
//! - FIFO queues (`.fifo` ARN): records run one at a time in order, and the first failure
//!   stops the batch; that message and all later ones are reported as failed, as AWS
//!   requires to keep the order within message groups.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::error::{describe, EventError};
use super::handler::{self, Handler};

/// A handler for the messages of one queue, or of every queue.
#[derive(Clone)]
pub(crate) struct SqsRoute {
    /// A queue name or ARN; `None` for every queue.
    pub(crate) queue: Option<String>,
    pub(crate) handler: Handler<SqsMessage>,
}

impl SqsRoute {
    fn serves(&self, arn: Option<&str>) -> bool {
        match (&self.queue, arn) {
            (None, _) => true,
            (Some(queue), Some(arn)) if queue.starts_with("arn:") => queue == arn,
            (Some(queue), Some(arn)) => arn.rsplit(':').next() == Some(queue.as_str()),
            (Some(_), None) => false,
        }
    }
}

/// One record of the batch: parsed, or the reason it could not be.
struct Record {
    id: String,
    message: Result<SqsMessage, String>,
    route: usize,
}

/// Runs a batch and reports the failed message ids.
pub(crate) async fn process(
    routes: &[SqsRoute],
    concurrency: usize,
    fifo: bool,
    payload: Value,
) -> Result<SqsBatchResponse, EventError> {
    let records = parse(routes, payload)?;
    let mut failed = Vec::new();
    if fifo || concurrency <= 1 {
        let mut stopped = false;
        for record in records {
            if stopped {
                failed.push(record.id);
                continue;
            }
            let id = record.id.clone();
            if run(routes, record).await.is_err() {
                failed.push(id);
                stopped = fifo;
            }
        }
    } else {
        let outcomes = stream::iter(records)
            .map(|record| {
                let id = record.id.clone();
                async move { (id, run(routes, record).await) }
            })
            .buffered(concurrency)
            .collect::<Vec<_>>()
            .await;
        failed.extend(outcomes.into_iter().filter(|(_, r)| r.is_err()).map(|(id, _)| id));
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    Ok(response)
}

/// Splits the batch into records and picks each one's route before any runs, so a
/// misconfigured queue fails the whole invocation without handling anything twice.
fn parse(routes: &[SqsRoute], mut payload: Value) -> Result<Vec<Record>, EventError> {
    let Some(Value::Array(raw)) = payload.get_mut("Records").map(Value::take) else {
        return Err(EventError::Malformed { kind: "sqs", detail: "`Records` is not an array".into() });
    };
    raw.into_iter()
        .map(|value| {
            // A record without an id is reported with an empty one: Lambda then retries
            // the whole batch, which loses nothing.
            let id = value.get("messageId").and_then(Value::as_str).unwrap_or_default().to_owned();
            let arn = value.get("eventSourceARN").and_then(Value::as_str);
            let route = routes.iter().position(|r| r.serves(arn)).ok_or_else(|| {
                let queue = arn.and_then(|a| a.rsplit(':').next()).unwrap_or("an unnamed queue");
                EventError::NoRoute(format!("sqs messages from `{}`", super::error::truncate(queue, 80)))
            })?;
            let message = serde_path_to_error::deserialize::<_, SqsMessage>(value).map_err(|e| describe(&e));
            Ok(Record { id, message, route })
        })
        .collect()
}

async fn run(routes: &[SqsRoute], record: Record) -> Result<(), ()> {
    let outcome = match record.message {
        Ok(message) => handler::run(&routes[record.route].handler, message).await,
        Err(detail) => Err(detail.into()),
    };
    outcome.map_err(|error| {
        tracing::warn!(message_id = %record.id, error = %error, "sqs message failed");
    })
}
