//! EventBridge events and schedules, routed to the first registration that matches.
//!
//! A scheduled event (`aws.events`, `Scheduled Event`) goes to the first
//! [`on_schedule`](super::EventRouter::on_schedule) whose rule name or ARN is among the
//! event's `resources`; when none is, it is an EventBridge event like any other and goes
//! to the first [`on_event`](super::EventRouter::on_event) rule that matches it.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;

use super::detect::EventKind;
use super::error::{describe, truncate, EventError};
use super::handler::{self, Handler};
use super::rule::EventRule;

/// A handler for the events a rule matches.
#[derive(Clone)]
pub(crate) struct RuleRoute {
    pub(crate) rule: EventRule,
    pub(crate) handler: Handler<EventBridgeEvent>,
}

/// A handler for the firings of one scheduled rule.
#[derive(Clone)]
pub(crate) struct ScheduleRoute {
    /// A rule name (`nightly-settlement`) or a rule ARN.
    pub(crate) rule: String,
    pub(crate) handler: Handler<EventBridgeEvent>,
}

impl ScheduleRoute {
    fn fires_for(&self, resources: &[String]) -> bool {
        resources.iter().any(|arn| {
            if self.rule.starts_with("arn:") {
                *arn == self.rule
            } else {
                rule_name(arn) == Some(self.rule.as_str())
            }
        })
    }
}

/// `arn:aws:events:region:account:rule/[bus/]NAME` → `NAME`.
fn rule_name(arn: &str) -> Option<&str> {
    let (_, path) = arn.split_once(":rule/")?;
    path.rsplit('/').next()
}

/// Parses the event, finds its handler and runs it.
pub(crate) async fn process(
    rules: &[RuleRoute],
    schedules: &[ScheduleRoute],
    kind: EventKind,
    payload: Value,
) -> Result<(), EventError> {
    let event: EventBridgeEvent = serde_path_to_error::deserialize(&payload)
        .map_err(|e| EventError::Malformed { kind: "eventbridge", detail: describe(&e) })?;
    let resources = event.resources.as_deref().unwrap_or_default();
    let scheduled = (kind == EventKind::Scheduled)
        .then(|| schedules.iter().find(|s| s.fires_for(resources)))
        .flatten()
        .map(|s| &s.handler);
    let Some(handler) =
        scheduled.or_else(|| rules.iter().find(|r| r.rule.matches(&payload)).map(|r| &r.handler))
    else {
        return Err(no_route(kind, &event));
    };
    let kind_name = if kind == EventKind::Scheduled { "scheduled" } else { "eventbridge" };
    handler::run(handler, event).await.map_err(|source| {
        tracing::warn!(error = %source, "{kind_name} handler failed");
        EventError::Handler { kind: kind_name, source }
    })
}

fn no_route(kind: EventKind, event: &EventBridgeEvent) -> EventError {
    if kind == EventKind::Scheduled {
        let rule = event.resources.as_deref().and_then(|r| r.first()).map_or("", |r| r.as_str());
        return EventError::NoRoute(format!("scheduled event of rule `{}`", truncate(rule, 160)));
    }
    EventError::NoRoute(format!(
        "eventbridge event from source `{}` with detail-type `{}`",
        truncate(&event.source, 80),
        truncate(&event.detail_type, 80)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_come_from_arns() {
        assert_eq!(rule_name("arn:aws:events:us-east-1:1:rule/nightly"), Some("nightly"));
        assert_eq!(rule_name("arn:aws:events:us-east-1:1:rule/my-bus/nightly"), Some("nightly"));
        assert_eq!(rule_name("arn:aws:sqs:us-east-1:1:q"), None);
    }
}
