//! Channels: what each receiver kind is sent, and how (retries with exponential backoff).
//!
//! | kind | request |
//! |---|---|
//! | `webhook` | `POST <url>`, [`webhook_body`]: JSON with the step, the group and its alerts |
//! | `slack` | `POST <url>`, [`slack_body`]: `text` and `blocks` (section + runbook context) |
//! | `pagerduty` | `POST <url>/v2/enqueue`, [`pagerduty_body`]: Events API v2, `trigger` / `acknowledge` / `resolve` with the group's `dedup_key` |
//! | `sns` | `Publish` to the topic through the AWS SDK: `Subject`, `Message` (the webhook JSON), attributes `severity` and `status` |
//!
//! Every request carries the step's id (`Idempotency-Key` header on HTTP, `step_id` in
//! bodies) so a receiver can drop the rare second copy (see [`crate::engine`]).
//!
//! A try fails on a connection error, a timeout or an answer other than 2xx; 5xx, 429 and
//! transport failures are retried up to `delivery.attempts` times with
//! [`Delivery::backoff_after`]; other answers are not retried within the invocation. A
//! [`ChannelError`] names the receiver and the HTTP status or error class, never the URL
//! or a key.

use std::fmt;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{ChannelConfig, Delivery, Secret};
use crate::labels::Labels;

/// What a step tells its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The group fires (level 1, or an escalation level).
    Trigger,
    /// Someone acknowledged the group.
    Acknowledge,
    /// Every alert of the group cleared.
    Resolve,
}

impl Action {
    fn status(self) -> &'static str {
        match self {
            Self::Trigger => "firing",
            Self::Acknowledge => "acknowledged",
            Self::Resolve => "resolved",
        }
    }
}

/// One alert of a group, as notified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    /// Its labels.
    pub labels: Labels,
}

/// A notification: one step of one group for one receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// The step's id (`<group>/<episode>/<step>`), the idempotency key.
    pub step_id: String,
    /// What happened.
    pub action: Action,
    /// The escalation level (1 and up; 0 for acknowledge and resolve).
    pub level: u32,
    /// The receiver's name.
    pub receiver: String,
    /// The group (the alert id the acknowledge route takes).
    pub group_id: String,
    /// The group's episode: it counts firings of the group.
    pub episode: u64,
    /// The route that formed the group.
    pub route: String,
    /// The group's labels (the route's `group_by`).
    pub group_labels: Labels,
    /// The group's firing alerts (for a resolution: the alerts it had).
    pub alerts: Vec<AlertView>,
    /// The highest severity among the alerts.
    pub severity: String,
    /// One line.
    pub summary: String,
    /// The runbook link: every notification carries one.
    pub runbook: String,
    /// Who acknowledged, for an acknowledgement.
    pub acknowledged_by: Option<String>,
}

/// Why a delivery failed: the receiver and what answered, never a URL or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("receiver `{receiver}` ({kind}): {problem}")]
pub struct ChannelError {
    /// The receiver.
    pub receiver: String,
    /// Its kind.
    pub kind: &'static str,
    /// What went wrong: `HTTP 500`, `timeout`, `connection failed`, an SNS error code.
    pub problem: String,
    /// Whether another try may succeed.
    pub retryable: bool,
}

/// The webhook JSON.
pub fn webhook_body(n: &Notification) -> Value {
    json!({
        "version": "1",
        "status": n.action.status(),
        "step_id": n.step_id,
        "receiver": n.receiver,
        "level": n.level,
        "group_id": n.group_id,
        "episode": n.episode,
        "route": n.route,
        "group_labels": n.group_labels,
        "severity": n.severity,
        "summary": n.summary,
        "runbook_url": n.runbook,
        "acknowledged_by": n.acknowledged_by,
        "alerts": n.alerts,
    })
}

/// The Slack message: `text` (the fallback) and `blocks`.
pub fn slack_body(n: &Notification) -> Value {
    let icon = match n.action {
        Action::Trigger if n.severity == "page" => ":rotating_light:",
        Action::Trigger => ":warning:",
        Action::Acknowledge => ":eyes:",
        Action::Resolve => ":white_check_mark:",
    };
    let mut headline = format!("{icon} *{}* {}", n.action.status().to_uppercase(), n.summary);
    if n.level > 1 {
        headline.push_str(&format!(" (escalation level {})", n.level));
    }
    if let Some(by) = &n.acknowledged_by {
        headline.push_str(&format!(" by {by}"));
    }
    let text = format!(
        "{} {}: {} — runbook: {}",
        n.action.status().to_uppercase(),
        n.severity,
        n.summary,
        n.runbook
    );
    let alerts: Vec<String> = n
        .alerts
        .iter()
        .map(|a| format!("• `{}`", a.labels.get("alertname").map_or("", String::as_str)))
        .collect();
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alerts.join("\n")}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("<{}|Runbook> · group `{}` · ack: `POST /alerts/{}/ack?episode={}`", n.runbook, n.group_id, n.group_id, n.episode)}
            ]}
        ]
    })
}

/// PagerDuty's severity for ours: `page` is `critical`, `ticket` `warning`, others `error`.
pub fn pagerduty_severity(severity: &str) -> &'static str {
    match severity {
        "page" | "critical" => "critical",
        "ticket" | "warning" => "warning",
        "info" => "info",
        _ => "error",
    }
}

/// The PagerDuty Events API v2 event: `dedup_key` is the group's episode, so the trigger,
/// the acknowledgement and the resolution meet in one incident.
pub fn pagerduty_body(n: &Notification, routing_key: &Secret) -> Value {
    let dedup_key = format!("{}-{}", n.group_id, n.episode);
    let action = match n.action {
        Action::Trigger => "trigger",
        Action::Acknowledge => "acknowledge",
        Action::Resolve => "resolve",
    };
    if n.action != Action::Trigger {
        return json!({"routing_key": routing_key.expose(), "event_action": action, "dedup_key": dedup_key});
    }
    let first = n.alerts.first().map(|a| a.labels.clone()).unwrap_or_default();
    let source = first.get("region").cloned().unwrap_or_else(|| "unknown".into());
    json!({
        "routing_key": routing_key.expose(),
        "event_action": action,
        "dedup_key": dedup_key,
        "payload": {
            "summary": n.summary,
            "severity": pagerduty_severity(&n.severity),
            "source": source,
            "component": first.get("service"),
            "group": n.route,
            "class": first.get("slo").or_else(|| first.get("alertname")),
            "custom_details": {"step_id": n.step_id, "level": n.level, "group_labels": n.group_labels, "alerts": n.alerts},
        },
        "links": [{"href": n.runbook, "text": "Runbook"}],
    })
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Sends notifications over the channels.
#[derive(Clone)]
pub struct Sender {
    http: HttpClient,
    sns: Option<aws_sdk_sns::Client>,
    delivery: Delivery,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("sns", &self.sns.is_some()).field("delivery", &self.delivery).finish()
    }
}

impl Sender {
    /// A sender with these delivery settings; `sns` for `sns` receivers.
    pub fn new(delivery: Delivery, sns: Option<aws_sdk_sns::Client>) -> Result<Self, std::io::Error> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(std::sync::Arc::new(rustls::crypto::ring::default_provider()))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { http, sns, delivery })
    }

    /// Delivers `n` over `channel`, with retries; the last failure when every try failed.
    pub async fn deliver(&self, channel: &ChannelConfig, n: &Notification) -> Result<(), ChannelError> {
        let mut failed = 0;
        loop {
            let error = match self.try_once(channel, n).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            failed += 1;
            tracing::warn!(receiver = %n.receiver, kind = channel.kind(), problem = %error.problem, try_number = failed, "a delivery try failed");
            if !error.retryable || failed >= self.delivery.attempts {
                return Err(error);
            }
            tokio::time::sleep(self.delivery.backoff_after(failed)).await;
        }
    }

    async fn try_once(&self, channel: &ChannelConfig, n: &Notification) -> Result<(), ChannelError> {
        let error = |problem: String, retryable: bool| ChannelError {
            receiver: n.receiver.clone(),
            kind: channel.kind(),
            problem,
            retryable,
        };
        let (url, body) = match channel {
            ChannelConfig::Webhook { url } => (url.expose().to_owned(), webhook_body(n)),
            ChannelConfig::Slack { url } => (url.expose().to_owned(), slack_body(n)),
            ChannelConfig::PagerDuty { url, routing_key } => {
                (format!("{}/v2/enqueue", url.trim_end_matches('/')), pagerduty_body(n, routing_key))
            }
            ChannelConfig::Sns { topic_arn } => {
                return self.publish(topic_arn, n).await.map_err(|p| error(p, true))
            }
        };
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", &n.step_id)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| error("invalid request".into(), false))?;
        let sent = tokio::time::timeout(self.delivery.timeout, self.http.request(request)).await;
        let response = match sent {
            Err(_) => return Err(error("timeout".into(), true)),
            Ok(Err(_)) => return Err(error("connection failed".into(), true)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        // Drain the body so the connection can be reused; its content is not logged.
        let _ = tokio::time::timeout(self.delivery.timeout, response.into_body().collect()).await;
        if status.is_success() {
            Ok(())
        } else {
            let retryable = status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS;
            Err(error(format!("HTTP {}", status.as_u16()), retryable))
        }
    }

    async fn publish(&self, topic_arn: &str, n: &Notification) -> Result<(), String> {
        use aws_sdk_sns::types::MessageAttributeValue;
        let client = self.sns.as_ref().ok_or_else(|| "no SNS client is configured".to_owned())?;
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())
        };
        // SNS subjects: at most 100 printable ASCII characters.
        let subject: String = format!("[{}] {}", n.action.status().to_uppercase(), n.summary)
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(100)
            .collect();
        let sent = tokio::time::timeout(
            self.delivery.timeout,
            client
                .publish()
                .topic_arn(topic_arn)
                .subject(subject)
                .message(webhook_body(n).to_string())
                .message_attributes("severity", attribute(&n.severity)?)
                .message_attributes("status", attribute(n.action.status())?)
                .send(),
        )
        .await;
        match sent {
            Err(_) => Err("timeout".into()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => {
                use aws_sdk_sns::error::ProvideErrorMetadata;
                Err(err.code().map_or_else(|| "SNS unreachable".to_owned(), |c| format!("SNS {c}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(action: Action) -> Notification {
        let labels: Labels = [
            ("alertname", "payments-availability-page-fast"),
            ("region", "eu-west-1"),
            ("service", "payments"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Notification {
            step_id: "g/1/notify-01/oncall".into(),
            action,
            level: 1,
            receiver: "oncall".into(),
            group_id: "g".into(),
            episode: 1,
            route: "root.0".into(),
            group_labels: labels.clone(),
            alerts: vec![AlertView { labels }],
            severity: "page".into(),
            summary: "payments-availability-page-fast".into(),
            runbook: "https://runbooks.example.com/payments".into(),
            acknowledged_by: None,
        }
    }

    #[test]
    fn pagerduty_events_share_a_dedup_key() {
        let key = Secret::new("R0UT1NGKEY");
        let trigger = pagerduty_body(&notification(Action::Trigger), &key);
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(trigger["payload"]["source"], "eu-west-1");
        assert_eq!(trigger["links"][0]["href"], "https://runbooks.example.com/payments");
        let resolve = pagerduty_body(&notification(Action::Resolve), &key);
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        assert!(resolve.get("payload").is_none());
    }

    #[test]
    fn slack_carries_text_blocks_and_the_runbook() {
        let body = slack_body(&notification(Action::Trigger));
        assert!(body["text"].as_str().unwrap().contains("https://runbooks.example.com/payments"));
        assert_eq!(body["blocks"][0]["type"], "section");
        assert!(body["blocks"][2]["elements"][0]["text"].as_str().unwrap().contains("|Runbook>"));
    }
}
