//! [`Dispatcher`]: one Lambda function, every event source.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tower::util::BoxCloneSyncService;
use tower::Service;
use tracing::Instrument;

use super::detect::EventKind;
use super::error::EventError;
use super::router::EventRouter;
use super::{dynamodb, eventbridge, sqs};
use crate::context::Invocation;
use crate::{Request, Response};

/// The HTTP service type of a [`Dispatcher`] built with [`Dispatcher::events_only`].
pub type BoxHttpService = BoxCloneSyncService<Request, Response, Infallible>;

/// Detects each Lambda payload's kind and hands it to the HTTP service or the
/// [`EventRouter`], returning the JSON the event source expects.
///
/// - HTTP events (API Gateway v1/v2, function URLs, ALB) go to the HTTP service and come
///   back in their origin's response shape (needs the `lambda` feature);
/// - SQS and DynamoDB Streams batches return `batchItemFailures`;
/// - EventBridge and scheduled events return `null`; a handler error is a function error,
///   so Lambda retries the asynchronous invocation.
///
/// # Examples
///
/// ```
/// use lift::event::{Dispatcher, EventRouter};
/// use lift::Invocation;
/// use serde_json::json;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let router = EventRouter::new().on_sqs(|m| async move {
///     if m.body.as_deref() == Some("bad") { Err("rejected".into()) } else { Ok(()) }
/// });
/// let dispatcher = Dispatcher::events_only(router);
/// let batch = json!({"Records": [
///     {"messageId": "m-1", "body": "ok", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:1:q"},
///     {"messageId": "m-2", "body": "bad", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:1:q"}
/// ]});
/// let invocation = Invocation { request_id: "r-1".into(), deadline: None, invoked_function_arn: None, xray_trace_id: None };
/// let out = dispatcher.dispatch(batch, invocation).await.unwrap();
/// assert_eq!(out, json!({"batchItemFailures": [{"itemIdentifier": "m-2"}]}));
/// # });
/// ```
pub struct Dispatcher<S = BoxHttpService> {
    http: Option<S>,
    events: Arc<EventRouter>,
}

impl Dispatcher<BoxHttpService> {
    /// A dispatcher with no HTTP service: HTTP events are [`EventError::NoRoute`].
    pub fn events_only(events: EventRouter) -> Self {
        Self { http: None, events: Arc::new(events) }
    }
}

impl<S> Dispatcher<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    /// A dispatcher for an HTTP service (e.g. an [`App`](crate::App)'s) and event handlers.
    pub fn new(http_service: Option<S>, events: EventRouter) -> Self {
        Self { http: http_service, events: Arc::new(events) }
    }

    /// Handles one Lambda payload and returns the response JSON.
    ///
    /// Detection follows [`EventKind::detect`]. Errors are for the cases where Lambda
    /// should see a function error: an unknown or malformed non-HTTP event, no route, a
    /// failed EventBridge handler. A malformed HTTP event is a 400 response instead.
    pub async fn dispatch(&self, payload: Value, invocation: Invocation) -> Result<Value, EventError> {
        let kind = EventKind::detect(&payload)?;
        let span = tracing::info_span!("event", kind = %kind, request_id = %invocation.request_id);
        self.route(kind, payload, invocation).instrument(span).await
    }

    async fn route(
        &self,
        kind: EventKind,
        payload: Value,
        invocation: Invocation,
    ) -> Result<Value, EventError> {
        let events = &self.events;
        match kind {
            EventKind::Sqs { fifo } => {
                to_json(sqs::process(&events.sqs, events.sqs_concurrency, fifo, payload).await?)
            }
            EventKind::DynamoDbStream => to_json(dynamodb::process(&events.streams, payload).await?),
            EventKind::EventBridge | EventKind::Scheduled => {
                eventbridge::process(&events.rules, &events.schedules, kind, payload).await?;
                Ok(Value::Null)
            }
            _ => self.http(kind, payload, &invocation).await,
        }
    }

    #[cfg(feature = "lambda")]
    async fn http(
        &self,
        kind: EventKind,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Value, EventError> {
        match &self.http {
            Some(service) => super::http::handle(service.clone(), kind, payload, invocation).await,
            None => Err(EventError::NoRoute(format!("{kind} events: no http service is registered"))),
        }
    }

    #[cfg(not(feature = "lambda"))]
    async fn http(
        &self,
        kind: EventKind,
        _payload: Value,
        _invocation: &Invocation,
    ) -> Result<Value, EventError> {
        let why = if self.http.is_some() {
            "the `lambda` feature of lift is off"
        } else {
            "no http service is registered and the `lambda` feature of lift is off"
        };
        Err(EventError::NoRoute(format!("{kind} events: {why}")))
    }

    /// Runs the dispatcher on the Lambda runtime until the runtime stops.
    #[cfg(feature = "lambda")]
    pub async fn run(self) -> Result<(), crate::BoxError> {
        let this = Arc::new(self);
        let handler = lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| {
            let this = Arc::clone(&this);
            async move {
                let invocation = Invocation::from(&event.context);
                this.dispatch(event.payload, invocation).await
            }
        });
        lambda_runtime::run(handler).await
    }
}

impl<S> Clone for Dispatcher<S>
where
    S: Clone,
{
    fn clone(&self) -> Self {
        Self { http: self.http.clone(), events: Arc::clone(&self.events) }
    }
}

impl<S> fmt::Debug for Dispatcher<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("http", &self.http.is_some())
            .field("events", &self.events)
            .finish()
    }
}

fn to_json<T: Serialize>(value: T) -> Result<Value, EventError> {
    serde_json::to_value(value).map_err(EventError::Serialize)
}

/// What the Lambda runtime says about an invocation, as Lift's [`Invocation`].
#[cfg(feature = "lambda")]
impl From<&lambda_runtime::Context> for Invocation {
    fn from(ctx: &lambda_runtime::Context) -> Self {
        Self {
            request_id: ctx.request_id.clone(),
            deadline: (ctx.deadline > 0).then(|| ctx.deadline()),
            invoked_function_arn: Some(ctx.invoked_function_arn.clone()).filter(|a| !a.is_empty()),
            xray_trace_id: ctx.xray_trace_id.clone(),
        }
    }
}

#[cfg(all(test, feature = "lambda"))]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn invocation_from_the_lambda_context() {
        let mut ctx = lambda_runtime::Context::default();
        ctx.request_id = "req-1".into();
        ctx.deadline = 1_700_000_000_000;
        ctx.xray_trace_id = Some("Root=1-abc".into());
        let inv = Invocation::from(&ctx);
        assert_eq!(inv.request_id, "req-1");
        assert_eq!(inv.deadline, Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)));
        assert_eq!(inv.invoked_function_arn, None);
        assert_eq!(inv.xray_trace_id.as_deref(), Some("Root=1-abc"));
        assert_eq!(Invocation::from(&lambda_runtime::Context::default()).deadline, None);
    }
}
