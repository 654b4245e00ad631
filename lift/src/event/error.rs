//! Errors of event detection and dispatch.
//!
//! Messages are lowercase and never carry message bodies or field values: an SQS body or an
//! API Gateway payload may hold a card number, and these messages end up in logs and in the
//! Lambda function error.

use crate::BoxError;

/// Why an event could not be dispatched.
///
/// # Examples
///
/// ```
/// use lift::event::{EventError, EventKind};
///
/// let err = EventKind::detect(&serde_json::json!({"hello": "world"})).unwrap_err();
/// assert!(matches!(err, EventError::UnknownEvent(_)));
/// assert!(err.to_string().starts_with("unknown event"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The payload matches none of the event shapes Lift knows.
    #[error("unknown event: {0}")]
    UnknownEvent(String),
    /// The event was recognised but nothing is registered to handle it.
    #[error("no route for {0}")]
    NoRoute(String),
    /// The event was recognised but does not have the shape AWS documents.
    #[error("malformed {kind} event: {detail}")]
    Malformed {
        /// The kind of event, e.g. `eventbridge`.
        kind: &'static str,
        /// What is wrong, naming the field (never its value).
        detail: String,
    },
    /// An EventBridge event pattern is not valid.
    #[error("invalid event pattern: {0}")]
    InvalidPattern(String),
    /// A handler returned an error or panicked.
    #[error("{kind} handler failed")]
    Handler {
        /// The kind of event the handler was given.
        kind: &'static str,
        /// The handler's error ([`HandlerPanic`] when it panicked).
        #[source]
        source: BoxError,
    },
    /// The response could not be serialized.
    #[error("could not serialize the response")]
    Serialize(#[source] serde_json::Error),
}

/// The error a handler is reported with when it panicked.
///
/// The panic payload is dropped: it may quote the data being processed.
///
/// # Examples
///
/// ```
/// let err: lift::BoxError = Box::new(lift::event::HandlerPanic);
/// assert!(err.is::<lift::event::HandlerPanic>());
/// assert_eq!(err.to_string(), "handler panicked");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("handler panicked")]
pub struct HandlerPanic;

#[cfg(feature = "lambda")]
impl From<EventError> for lambda_runtime::Diagnostic {
    fn from(err: EventError) -> Self {
        let error_type = match &err {
            EventError::UnknownEvent(_) => "lift.event.UnknownEvent",
            EventError::NoRoute(_) => "lift.event.NoRoute",
            EventError::Malformed { .. } => "lift.event.Malformed",
            EventError::InvalidPattern(_) => "lift.event.InvalidPattern",
            EventError::Handler { .. } => "lift.event.Handler",
            EventError::Serialize(_) => "lift.event.Serialize",
        };
        lambda_runtime::Diagnostic { error_type: error_type.to_owned(), error_message: err.to_string() }
    }
}

/// Describes a deserialization failure by path and kind, without the offending value.
///
/// serde's messages quote values (`invalid type: string "4111…"`); those quotes are cut.
pub(crate) fn describe<E: std::fmt::Display>(err: &serde_path_to_error::Error<E>) -> String {
    let path = err.path().to_string();
    let message = redact(&err.inner().to_string());
    if path == "." || path.is_empty() {
        message
    } else {
        format!("`{}`: {message}", truncate(&path, 120))
    }
}

/// Removes quoted (`"…"`) and backticked (`` `…` ``) values from a serde message.
///
/// What follows `, expected` (outside quotes) and the field of a `missing field` message
/// come from the schema, not the data, and are kept.
pub(crate) fn redact(message: &str) -> String {
    let message = strip_position(message);
    if message.starts_with("missing field `") {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' => {
                let mut escaped = false;
                for next in chars.by_ref() {
                    if c == '"' && next == '\\' && !escaped {
                        escaped = true;
                        continue;
                    }
                    if next == c && !escaped {
                        break;
                    }
                    escaped = false;
                }
                while out.ends_with(' ') {
                    out.pop();
                }
            }
            _ => {
                out.push(c);
                if out.ends_with(", expected") {
                    out.push_str(chars.as_str());
                    break;
                }
            }
        }
    }
    out
}

/// serde_json appends " at line L column C", meaningless for a `Value`.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// Cuts a string to at most `max` bytes on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_quoted_values() {
        let m = r#"invalid type: string "4111 1111 \"1111\" 1111", expected u64"#;
        assert_eq!(redact(m), "invalid type: string, expected u64");
        let m = "invalid type: integer `4111111111111111`, expected a string at line 1 column 9";
        assert_eq!(redact(m), "invalid type: integer, expected a string");
        assert_eq!(redact("missing field `httpMethod`"), "missing field `httpMethod`");
        let m = "unknown variant `4111`, expected one of `A`, `B`";
        assert_eq!(redact(m), "unknown variant, expected one of `A`, `B`");
        let m = r#"invalid value: string "x, expected 4111", expected a method"#;
        assert_eq!(redact(m), "invalid value: string, expected a method");
    }

    #[test]
    fn describe_names_the_path() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            amount: u64,
        }
        let value = serde_json::json!({"inner": {"amount": "4111111111111111"}});
        let err = serde_path_to_error::deserialize::<_, Outer>(value).unwrap_err();
        let detail = describe(&err);
        assert!(detail.starts_with("`inner.amount`"), "{detail}");
        assert!(!detail.contains("4111"), "{detail}");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
