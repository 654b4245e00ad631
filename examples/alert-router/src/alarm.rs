//! CloudWatch alarm state changes, as EventBridge delivers them and as SNS does.
//!
//! Both forms of one state change parse into the same [`AlarmChange`]:
//!
//! | | EventBridge (`CloudWatch Alarm State Change`) | SNS (`Records[].Sns.Message`, a JSON string) |
//! |---|---|---|
//! | name | `detail.alarmName` | `AlarmName` |
//! | state | `detail.state.value` | `NewStateValue` |
//! | previous state | `detail.previousState.value` | `OldStateValue` |
//! | reason | `detail.state.reason` | `NewStateReason` |
//! | when | `detail.state.timestamp` | `StateChangeTime` |
//! | description | `detail.configuration.description` | `AlarmDescription` |
//! | account | `account` | `AWSAccountId` |
//! | region (code) | `region` | the region field of `AlarmArn` (`Region` is a display name) |
//!
//! A malformed event is an [`AlarmError`] naming the field at fault; parsing writes nothing.

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The `detail-type` of CloudWatch's alarm events on EventBridge.
pub const DETAIL_TYPE: &str = "CloudWatch Alarm State Change";
/// The `source` of CloudWatch's alarm events on EventBridge.
pub const SOURCE: &str = "aws.cloudwatch";

/// The state of an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmState {
    /// `ALARM`: the alarm fires.
    Alarm,
    /// `OK`: the alarm cleared.
    Ok,
    /// `INSUFFICIENT_DATA`: no verdict. Treated as no change for routing.
    InsufficientData,
}

impl AlarmState {
    /// Parses CloudWatch's spelling.
    ///
    /// # Examples
    ///
    /// ```
    /// use alert_router::alarm::AlarmState;
    /// assert_eq!(AlarmState::parse("ALARM"), Some(AlarmState::Alarm));
    /// assert_eq!(AlarmState::parse("alarm"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ALARM" => Some(Self::Alarm),
            "OK" => Some(Self::Ok),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }

    /// CloudWatch's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alarm => "ALARM",
            Self::Ok => "OK",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// Why an event is not a usable alarm state change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid alarm event: `{field}` {problem}")]
pub struct AlarmError {
    /// The field at fault, as a path in the event (`detail.state.value`).
    pub field: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl AlarmError {
    fn new(field: impl Into<String>, problem: &'static str) -> Self {
        Self { field: field.into(), problem }
    }
}

/// One state change of one CloudWatch alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    /// The alarm's name.
    pub name: String,
    /// The AWS account of the alarm.
    pub account: String,
    /// The region code of the alarm (`eu-west-1`).
    pub region: String,
    /// The new state.
    pub state: AlarmState,
    /// The state before, when the event says.
    pub previous: Option<AlarmState>,
    /// CloudWatch's reason for the change.
    pub reason: String,
    /// When the state changed (CloudWatch's timestamp, millisecond precision).
    pub changed_at: OffsetDateTime,
    /// The alarm's description, where labels may be declared ([`crate::labels`]).
    pub description: Option<String>,
}

impl AlarmChange {
    /// Parses an EventBridge `CloudWatch Alarm State Change` event.
    ///
    /// # Examples
    ///
    /// ```
    /// use alert_router::alarm::{AlarmChange, AlarmState};
    /// let event = serde_json::json!({
    ///     "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
    ///     "account": "123456789012", "region": "eu-west-1", "time": "2026-12-03T10:00:00Z",
    ///     "detail": {"alarmName": "payments-availability-page-fast",
    ///                "state": {"value": "ALARM", "reason": "Threshold Crossed",
    ///                          "timestamp": "2026-12-03T10:00:00.123+0000"}}
    /// });
    /// let change = AlarmChange::from_eventbridge(&event)?;
    /// assert_eq!(change.state, AlarmState::Alarm);
    /// assert_eq!(change.region, "eu-west-1");
    /// # Ok::<(), alert_router::alarm::AlarmError>(())
    /// ```
    pub fn from_eventbridge(event: &Value) -> Result<Self, AlarmError> {
        let detail_type = text(event, &["detail-type"], "detail-type")?;
        if detail_type != DETAIL_TYPE {
            return Err(AlarmError::new("detail-type", "is not `CloudWatch Alarm State Change`"));
        }
        if text(event, &["source"], "source")? != SOURCE {
            return Err(AlarmError::new("source", "is not `aws.cloudwatch`"));
        }
        let state = state(event, &["detail", "state", "value"], "detail.state.value")?;
        let previous = match event.pointer("/detail/previousState/value") {
            None | Some(Value::Null) => None,
            Some(_) => {
                Some(self::state(event, &["detail", "previousState", "value"], "detail.previousState.value")?)
            }
        };
        let stamp = text(event, &["detail", "state", "timestamp"], "detail.state.timestamp")?;
        Ok(Self {
            name: name(text(event, &["detail", "alarmName"], "detail.alarmName")?, "detail.alarmName")?,
            account: text(event, &["account"], "account")?.to_owned(),
            region: region(text(event, &["region"], "region")?, "region")?,
            state,
            previous,
            reason: optional(event, &["detail", "state", "reason"]).unwrap_or_default(),
            changed_at: timestamp(stamp, "detail.state.timestamp")?,
            description: optional(event, &["detail", "configuration", "description"]),
        })
    }

    /// Parses CloudWatch's alarm notification, the `Message` of an SNS notification.
    pub fn from_sns_message(message: &str) -> Result<Self, AlarmError> {
        let body: Value = serde_json::from_str(message)
            .map_err(|_| AlarmError::new("Sns.Message", "is not a JSON alarm notification"))?;
        let field = |key: &'static str| text(&body, &[key], key);
        let arn = field("AlarmArn")?;
        // arn:aws:cloudwatch:<region>:<account>:alarm:<name>
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        if parts.len() != 7 || parts[2] != "cloudwatch" || parts[5] != "alarm" {
            return Err(AlarmError::new("AlarmArn", "is not a CloudWatch alarm ARN"));
        }
        let previous = match body.get("OldStateValue") {
            None | Some(Value::Null) => None,
            Some(_) => Some(state(&body, &["OldStateValue"], "OldStateValue")?),
        };
        Ok(Self {
            name: name(field("AlarmName")?, "AlarmName")?,
            account: field("AWSAccountId")?.to_owned(),
            region: region(parts[3], "AlarmArn")?,
            state: state(&body, &["NewStateValue"], "NewStateValue")?,
            previous,
            reason: optional(&body, &["NewStateReason"]).unwrap_or_default(),
            changed_at: timestamp(field("StateChangeTime")?, "StateChangeTime")?,
            description: optional(&body, &["AlarmDescription"]),
        })
    }

    /// The alarm's identity: a hash of account, region and name (the same for every state
    /// change of the alarm, whichever way it arrived).
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(format!("{}\n{}\n{}", self.account, self.region, self.name));
        hex::encode(&digest[..12])
    }
}

/// The alarm changes of an SNS event (`Records[].Sns.Message`), each CloudWatch's JSON.
///
/// Every record must parse; the first that does not is the error (with its index), so a
/// batch is taken whole or not at all.
pub fn from_sns_event(event: &Value) -> Result<Vec<AlarmChange>, AlarmError> {
    let parsed: aws_lambda_events::event::sns::SnsEvent = serde_json::from_value(event.clone())
        .map_err(|_| AlarmError::new("Records", "is not an SNS event (Records[].Sns)"))?;
    if parsed.records.is_empty() {
        return Err(AlarmError::new("Records", "is empty"));
    }
    parsed
        .records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            AlarmChange::from_sns_message(&record.sns.message)
                .map_err(|e| AlarmError::new(format!("Records[{i}].Sns.Message.{}", e.field), e.problem))
        })
        .collect()
}

/// Whether the payload is an SNS event (`Records[0].EventSource == "aws:sns"`).
pub fn is_sns_event(event: &Value) -> bool {
    event.pointer("/Records/0/EventSource").and_then(Value::as_str) == Some("aws:sns")
}

fn text<'a>(value: &'a Value, path: &[&str], field: &str) -> Result<&'a str, AlarmError> {
    let mut at = value;
    for key in path {
        at = at.get(key).ok_or_else(|| AlarmError::new(field, "is missing"))?;
    }
    at.as_str().ok_or_else(|| AlarmError::new(field, "is not a string"))
}

fn optional(value: &Value, path: &[&str]) -> Option<String> {
    let mut at = value;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str().map(str::to_owned)
}

fn state(value: &Value, path: &[&str], field: &str) -> Result<AlarmState, AlarmError> {
    AlarmState::parse(text(value, path, field)?)
        .ok_or_else(|| AlarmError::new(field, "is not ALARM, OK or INSUFFICIENT_DATA"))
}

fn name(text: &str, field: &str) -> Result<String, AlarmError> {
    // CloudWatch allows 1 to 255 characters.
    if text.is_empty() || text.len() > 255 || text.chars().any(char::is_control) {
        return Err(AlarmError::new(field, "is not an alarm name (1 to 255 printable characters)"));
    }
    Ok(text.to_owned())
}

fn region(text: &str, field: &str) -> Result<String, AlarmError> {
    let valid = !text.is_empty()
        && text.len() <= 32
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(AlarmError::new(field, "is not a region code"));
    }
    Ok(text.to_owned())
}

/// CloudWatch writes `2026-12-03T10:00:00.123+0000` (an offset without a colon); EventBridge's
/// own `time` is RFC 3339. Both are read.
pub(crate) fn timestamp(text: &str, field: &str) -> Result<OffsetDateTime, AlarmError> {
    use time::format_description::well_known::Rfc3339;
    let bad = || AlarmError::new(field, "is not a timestamp");
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let at = text.len().checked_sub(5).filter(|at| text.is_char_boundary(*at)).ok_or_else(bad)?;
    let (head, offset) = text.split_at(at);
    let bytes = offset.as_bytes();
    if !matches!(bytes[0], b'+' | b'-') || !bytes[1..].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let fixed = format!("{head}{}:{}", &offset[..3], &offset[3..]);
    OffsetDateTime::parse(&fixed, &Rfc3339).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cloudwatch_timestamps_without_a_colon_parse() {
        let at = timestamp("2026-12-03T10:00:00.123+0000", "t").unwrap();
        assert_eq!(at.unix_timestamp_nanos() / 1_000_000, 1_796_292_000_123);
        assert_eq!(timestamp("2026-12-03T10:00:00Z", "t").unwrap().unix_timestamp(), 1_796_292_000);
        assert_eq!(timestamp("yesterday", "t").unwrap_err().field, "t");
        assert!(timestamp("", "t").is_err());
    }

    #[test]
    fn a_missing_state_names_its_field() {
        let event = serde_json::json!({
            "detail-type": DETAIL_TYPE, "source": SOURCE, "account": "1", "region": "eu-west-1",
            "detail": {"alarmName": "a", "state": {"timestamp": "2026-12-03T10:00:00Z"}}
        });
        let err = AlarmChange::from_eventbridge(&event).unwrap_err();
        assert_eq!(err.to_string(), "invalid alarm event: `detail.state.value` is missing");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in ".{0,64}") {
            let _ = timestamp(&text, "t");
            let _ = AlarmChange::from_sns_message(&text);
            let _ = AlarmChange::from_eventbridge(&serde_json::json!({"detail-type": text}));
        }
    }
}
