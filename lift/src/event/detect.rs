//! Telling which AWS service sent a Lambda payload, by the shape AWS documents.

use std::fmt;

use serde_json::{Map, Value};

use super::error::EventError;

/// The kind of a Lambda event, as told by [`EventKind::detect`].
///
/// # Examples
///
/// ```
/// use lift::event::EventKind;
///
/// let event = serde_json::json!({
///     "version": "0", "id": "1", "source": "aws.events", "detail-type": "Scheduled Event",
///     "resources": ["arn:aws:events:us-east-1:123456789012:rule/nightly"], "detail": {}
/// });
/// assert_eq!(EventKind::detect(&event).unwrap(), EventKind::Scheduled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// API Gateway REST API proxy event (payload format 1.0).
    ApiGatewayV1,
    /// API Gateway HTTP API event (payload format 2.0).
    ApiGatewayV2,
    /// Lambda function URL event (payload format 2.0 on a `.lambda-url.` domain).
    FunctionUrl,
    /// Application Load Balancer target group event.
    Alb,
    /// A batch of SQS messages; `fifo` when the queue's ARN ends in `.fifo`.
    Sqs {
        /// Whether the messages come from a FIFO queue.
        fifo: bool,
    },
    /// A batch of DynamoDB Streams records.
    DynamoDbStream,
    /// An EventBridge event.
    EventBridge,
    /// An EventBridge scheduled rule firing (`aws.events`, `Scheduled Event`).
    Scheduled,
}

impl EventKind {
    /// Tells the kind of a payload. The checks run in this order, first match wins:
    ///
    /// 1. the payload is not an object → [`EventError::UnknownEvent`];
    /// 2. `Records` is present: every record's `eventSource` must be `aws:sqs` (SQS, FIFO
    ///    when an `eventSourceARN` ends in `.fifo`) or every one `aws:dynamodb` (DynamoDB
    ///    Streams); an empty, mixed or other batch is unknown;
    /// 3. `detail-type`, `source` and `detail` are present: EventBridge, or a scheduled
    ///    event when `source` is `aws.events` and `detail-type` is `Scheduled Event`;
    /// 4. `requestContext` is present:
    ///    - `requestContext.elb` present → ALB;
    ///    - `version` is `"2.0"`, or `requestContext.http` is present (without
    ///      `httpMethod`) → payload format 2.0: a function URL when
    ///      `requestContext.domainName` contains `.lambda-url.`, else an HTTP API;
    ///    - `httpMethod` present → API Gateway REST (v1);
    /// 5. anything else is unknown.
    ///
    /// Detection only looks at these markers; the rest of the shape is checked when the
    /// event is deserialized, so that a malformed API Gateway event is still answered in
    /// its own response shape.
    pub fn detect(payload: &Value) -> Result<Self, EventError> {
        let Some(obj) = payload.as_object() else {
            return Err(unknown("the payload is not a JSON object"));
        };
        if let Some(records) = obj.get("Records") {
            return detect_records(records);
        }
        if ["detail-type", "source", "detail"].iter().all(|k| obj.contains_key(*k)) {
            let scheduled = obj.get("source").and_then(Value::as_str) == Some("aws.events")
                && obj.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
            return Ok(if scheduled { Self::Scheduled } else { Self::EventBridge });
        }
        if let Some(ctx) = obj.get("requestContext") {
            return detect_http(obj, ctx);
        }
        Err(unknown(
            "the payload has none of the shapes of api gateway, function url, alb, sqs, \
             dynamodb streams or eventbridge events",
        ))
    }

    /// Whether the event is an HTTP request (API Gateway, function URL or ALB).
    pub fn is_http(self) -> bool {
        matches!(self, Self::ApiGatewayV1 | Self::ApiGatewayV2 | Self::FunctionUrl | Self::Alb)
    }

    /// A short lowercase name, for messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::ApiGatewayV1 => "api gateway rest (v1)",
            Self::ApiGatewayV2 => "api gateway http (v2)",
            Self::FunctionUrl => "function url",
            Self::Alb => "alb",
            Self::Sqs { fifo: false } => "sqs",
            Self::Sqs { fifo: true } => "sqs fifo",
            Self::DynamoDbStream => "dynamodb streams",
            Self::EventBridge => "eventbridge",
            Self::Scheduled => "scheduled",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn unknown(reason: &str) -> EventError {
    EventError::UnknownEvent(reason.to_owned())
}

fn detect_records(records: &Value) -> Result<EventKind, EventError> {
    let Some(records) = records.as_array().filter(|r| !r.is_empty()) else {
        return Err(unknown("`Records` is not a non-empty array"));
    };
    let source = |r: &Value| r.get("eventSource").and_then(Value::as_str).map(str::to_owned);
    let first = source(&records[0]);
    if records.iter().any(|r| source(r) != first) {
        return Err(unknown("the records come from different event sources"));
    }
    match first.as_deref() {
        Some("aws:sqs") => {
            let fifo = records.iter().any(|r| {
                r.get("eventSourceARN").and_then(Value::as_str).is_some_and(|a| a.ends_with(".fifo"))
            });
            Ok(EventKind::Sqs { fifo })
        }
        Some("aws:dynamodb") => Ok(EventKind::DynamoDbStream),
        Some(other) if is_plain_token(other) => {
            Err(EventError::UnknownEvent(format!("records from event source `{other}` are not handled")))
        }
        Some(_) => Err(unknown("the records' `eventSource` is not one lift handles")),
        None => Err(unknown("the records have no `eventSource`")),
    }
}

fn detect_http(obj: &Map<String, Value>, ctx: &Value) -> Result<EventKind, EventError> {
    if ctx.get("elb").is_some() {
        return Ok(EventKind::Alb);
    }
    let v2 = obj.get("version").and_then(Value::as_str) == Some("2.0")
        || (ctx.get("http").is_some() && !obj.contains_key("httpMethod"));
    if v2 {
        let domain = ctx.get("domainName").and_then(Value::as_str).unwrap_or("");
        return Ok(if domain.contains(".lambda-url.") {
            EventKind::FunctionUrl
        } else {
            EventKind::ApiGatewayV2
        });
    }
    if obj.contains_key("httpMethod") {
        return Ok(EventKind::ApiGatewayV1);
    }
    Err(unknown(
        "the payload has a `requestContext` but is neither an alb, an api gateway rest (v1) \
         nor a payload format 2.0 event",
    ))
}

/// Event sources are short AWS tokens (`aws:s3`); anything else is not echoed.
fn is_plain_token(s: &str) -> bool {
    s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(v: Value) -> Result<EventKind, EventError> {
        EventKind::detect(&v)
    }

    #[test]
    fn http_shapes() {
        let v1 = json!({"httpMethod": "GET", "requestContext": {"resourcePath": "/", "stage": "p"}});
        assert_eq!(kind(v1).unwrap(), EventKind::ApiGatewayV1);
        let v1_payload_format = json!({"version": "1.0", "httpMethod": "GET", "requestContext": {}});
        assert_eq!(kind(v1_payload_format).unwrap(), EventKind::ApiGatewayV1);
        let v2 = json!({"version": "2.0", "requestContext": {"http": {"method": "GET"}}});
        assert_eq!(kind(v2).unwrap(), EventKind::ApiGatewayV2);
        let url =
            json!({"version": "2.0", "requestContext": {"domainName": "abc.lambda-url.us-east-1.on.aws"}});
        assert_eq!(kind(url).unwrap(), EventKind::FunctionUrl);
        let alb = json!({"httpMethod": "GET", "requestContext": {"elb": {}}});
        assert_eq!(kind(alb).unwrap(), EventKind::Alb);
        // Malformed but recognisable: answered with a 400 in its own shape later.
        let bad_ctx = json!({"httpMethod": "GET", "requestContext": "oops"});
        assert_eq!(kind(bad_ctx).unwrap(), EventKind::ApiGatewayV1);
        let websocket = json!({"requestContext": {"connectionId": "x", "eventType": "CONNECT"}});
        assert!(matches!(kind(websocket), Err(EventError::UnknownEvent(_))));
    }

    #[test]
    fn record_batches() {
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:r:1:q"}]});
        assert_eq!(kind(sqs).unwrap(), EventKind::Sqs { fifo: false });
        let fifo =
            json!({"Records": [{"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:r:1:q.fifo"}]});
        assert_eq!(kind(fifo).unwrap(), EventKind::Sqs { fifo: true });
        let ddb = json!({"Records": [{"eventSource": "aws:dynamodb"}]});
        assert_eq!(kind(ddb).unwrap(), EventKind::DynamoDbStream);
        let s3 = kind(json!({"Records": [{"eventSource": "aws:s3"}]})).unwrap_err();
        assert_eq!(s3.to_string(), "unknown event: records from event source `aws:s3` are not handled");
        let mixed = json!({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:dynamodb"}]});
        assert!(kind(mixed).is_err());
        assert!(kind(json!({"Records": []})).is_err());
        let hostile = kind(json!({"Records": [{"eventSource": "4111 1111 1111 1111"}]})).unwrap_err();
        assert!(!hostile.to_string().contains("4111"));
    }

    #[test]
    fn eventbridge_and_schedules() {
        let eb = json!({"source": "payments", "detail-type": "PaymentSettled", "detail": {}});
        assert_eq!(kind(eb).unwrap(), EventKind::EventBridge);
        let sched = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(kind(sched).unwrap(), EventKind::Scheduled);
    }

    #[test]
    fn non_objects_are_unknown() {
        for v in [json!(null), json!([1, 2]), json!("x"), json!({"a": 1})] {
            assert!(matches!(kind(v), Err(EventError::UnknownEvent(_))));
        }
    }
}
