//! [`EventRouter`]: which handler runs for which non-HTTP event.

use std::fmt;
use std::future::Future;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsMessage;

use super::dynamodb::StreamRoute;
use super::eventbridge::{RuleRoute, ScheduleRoute};
use super::handler::{boxed, HandlerResult};
use super::rule::EventRule;
use super::sqs::SqsRoute;

/// Handlers for SQS, EventBridge, schedules and DynamoDB Streams, by registration order.
///
/// Within each source the first registration that matches an event handles it, so
/// dispatch is deterministic. Handlers are async functions or closures returning
/// [`HandlerResult`]; a handler that panics counts as failed.
///
/// # Examples
///
/// ```
/// use lift::event::{EventRouter, EventRule};
/// use serde_json::json;
///
/// let router = EventRouter::new()
///     .on_sqs(|message| async move {
///         let _body = message.body.unwrap_or_default();
///         Ok(())
///     })
///     .on_event(EventRule::new(json!({"source": ["payments"]}))?, |event| async move {
///         let _amount = event.detail["amount"].as_u64();
///         Ok(())
///     })
///     .on_schedule("nightly-settlement", |_event| async { Ok(()) })
///     .on_dynamodb_stream(|record| async move {
///         let _sequence = record.change.sequence_number;
///         Ok(())
///     });
/// # let _ = router;
/// # Ok::<(), lift::event::EventError>(())
/// ```
#[derive(Clone)]
pub struct EventRouter {
    pub(crate) sqs: Vec<SqsRoute>,
    pub(crate) sqs_concurrency: usize,
    pub(crate) rules: Vec<RuleRoute>,
    pub(crate) schedules: Vec<ScheduleRoute>,
    pub(crate) streams: Vec<StreamRoute>,
}

impl EventRouter {
    /// A router with no handlers: every non-HTTP event is [`NoRoute`](super::EventError::NoRoute).
    pub fn new() -> Self {
        Self {
            sqs: Vec::new(),
            sqs_concurrency: 1,
            rules: Vec::new(),
            schedules: Vec::new(),
            streams: Vec::new(),
        }
    }

    /// Handles the messages of every SQS queue not claimed by an earlier
    /// [`on_sqs_queue`](Self::on_sqs_queue).
    pub fn on_sqs<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(SqsMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.sqs.push(SqsRoute { queue: None, handler: boxed(handler) });
        self
    }

    /// Handles the messages of one queue, named by its name or its ARN.
    pub fn on_sqs_queue<F, Fut>(mut self, queue: impl Into<String>, handler: F) -> Self
    where
        F: Fn(SqsMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.sqs.push(SqsRoute { queue: Some(queue.into()), handler: boxed(handler) });
        self
    }

    /// How many messages of a standard queue's batch may run at once (default 1: one
    /// at a time). Failures are reported the same way; FIFO batches always run one at a
    /// time. Zero is taken as one.
    pub fn sqs_concurrency(mut self, limit: usize) -> Self {
        self.sqs_concurrency = limit.max(1);
        self
    }

    /// Handles the EventBridge events the rule matches (unless an earlier rule does).
    pub fn on_event<F, Fut>(mut self, rule: EventRule, handler: F) -> Self
    where
        F: Fn(EventBridgeEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.rules.push(RuleRoute { rule, handler: boxed(handler) });
        self
    }

    /// Handles the firings of a scheduled rule, named by its rule name or its ARN, as
    /// found in the scheduled event's `resources`.
    pub fn on_schedule<F, Fut>(mut self, rule_name_or_arn: impl Into<String>, handler: F) -> Self
    where
        F: Fn(EventBridgeEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let rule = rule_name_or_arn.into();
        self.schedules.push(ScheduleRoute { rule, handler: boxed(handler) });
        self
    }

    /// Handles the records of every DynamoDB stream not claimed by an earlier
    /// [`on_dynamodb_table`](Self::on_dynamodb_table).
    pub fn on_dynamodb_stream<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(EventRecord) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.streams.push(StreamRoute { table: None, handler: boxed(handler) });
        self
    }

    /// Handles the stream records of one table, named by its table name.
    pub fn on_dynamodb_table<F, Fut>(mut self, table: impl Into<String>, handler: F) -> Self
    where
        F: Fn(EventRecord) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.streams.push(StreamRoute { table: Some(table.into()), handler: boxed(handler) });
        self
    }
}

impl Default for EventRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRouter")
            .field("sqs_routes", &self.sqs.len())
            .field("sqs_concurrency", &self.sqs_concurrency)
            .field("rules", &self.rules.iter().map(|r| r.rule.pattern()).collect::<Vec<_>>())
            .field("schedules", &self.schedules.iter().map(|s| &s.rule).collect::<Vec<_>>())
            .field("stream_routes", &self.streams.len())
            .finish()
    }
}
