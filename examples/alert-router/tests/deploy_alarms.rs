//! The basic alarms lift-deploy synthesizes beside a service (function errors, throttles,
//! API 5xx), as the payments example's committed templates hold them, routed by the example
//! routing file (`alert-router.toml`): failing requests page the on-call, throttles go to
//! the team's channel. An alarm without a severity is a ticket, so without the label block
//! lift-deploy writes, users' requests failing would page no one.

mod support;

use alert_router::alarm::AlarmChange;
use alert_router::config::{ChannelConfig, RouterConfig};
use alert_router::labels::labels;
use serde_json::Value;
use support::*;
use wiremock::MockServer;

/// The example routing file.
const EXAMPLE_ROUTING: &str = include_str!("../alert-router.toml");

/// The templates lift-deploy wrote for the payments example (its golden files), by name.
const TEMPLATES: [(&str, &str); 4] = [
    (
        "single/payments-us-east-1.cfn.json",
        include_str!("../../payments/tests/fixtures/deploy/single/payments-us-east-1.cfn.json"),
    ),
    (
        "single/payments-us-east-1.tf.json",
        include_str!("../../payments/tests/fixtures/deploy/single/payments-us-east-1.tf.json"),
    ),
    (
        "multi/payments-eu-west-1.cfn.json",
        include_str!("../../payments/tests/fixtures/deploy/multi/payments-eu-west-1.cfn.json"),
    ),
    (
        "multi/payments-eu-west-1.tf.json",
        include_str!("../../payments/tests/fixtures/deploy/multi/payments-eu-west-1.tf.json"),
    ),
];

/// Every alarm of a template as (name, description), CloudFormation or Terraform.
fn alarms_of(template: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = Vec::new();
    if let Some(resources) = template["Resources"].as_object() {
        for r in resources.values().filter(|r| r["Type"] == "AWS::CloudWatch::Alarm") {
            out.push((text(&r["Properties"]["AlarmName"]), text(&r["Properties"]["AlarmDescription"])));
        }
    }
    if let Some(alarms) = template["resource"]["aws_cloudwatch_metric_alarm"].as_object() {
        for a in alarms.values() {
            out.push((text(&a["alarm_name"]), text(&a["alarm_description"])));
        }
    }
    out
}

/// The example routing file with every receiver's variable set.
fn example_config() -> RouterConfig {
    RouterConfig::parse(EXAMPLE_ROUTING, |name| {
        Some(match name {
            "ALERT_SECONDARY_TOPIC_ARN" => "arn:aws:sns:eu-west-1:111122223333:pages".to_owned(),
            "PAGERDUTY_ROUTING_KEY_PRIMARY" => "key".to_owned(),
            _ => "https://hooks.example.com/x".to_owned(),
        })
    })
    .expect("the example routing file is valid")
}

/// The kinds of the receivers an alarm in ALARM with this name and description reaches
/// first (level 1 of every route it takes), and its severity.
fn routed(config: &RouterConfig, name: &str, description: &str) -> (Vec<&'static str>, String) {
    let event = alarm(name, "us-east-1", description, "ALARM", "2026-12-03T10:00:00.000+0000");
    let l = labels(&AlarmChange::from_eventbridge(&event).unwrap(), &config.services);
    let kinds = config.routes_for(&l).iter().map(|r| config.receivers[&r.receiver].kind()).collect();
    (kinds, l["severity"].clone())
}

#[test]
fn lift_deploys_errors_and_5xx_alarms_page_the_on_call_and_throttles_do_not() {
    let config = example_config();
    assert!(
        config.receivers.values().any(|c| matches!(c, ChannelConfig::PagerDuty { .. })),
        "the example has an on-call receiver"
    );
    for (file, text) in TEMPLATES {
        let template: Value = serde_json::from_str(text).unwrap();
        let alarms = alarms_of(&template);
        assert_eq!(alarms.len(), 3, "{file}: errors, throttles, API 5xx");
        for (name, description) in alarms {
            let (kinds, severity) = routed(&config, &name, &description);
            let pages = kinds.contains(&"pagerduty");
            if name.ends_with("-errors") || name.ends_with("-api_5xx") {
                assert_eq!(severity, "page", "{file}: {name}: {description:?}");
                assert!(pages, "{file}: {name} reaches {kinds:?}, no on-call");
            } else {
                assert!(name.ends_with("-throttles"), "{file}: {name}");
                assert_eq!((severity.as_str(), pages), ("ticket", false), "{file}: {name}");
                assert_eq!(kinds, ["slack"], "{file}: {name}: the team's channel");
            }
        }
    }
    // What the label block changes: the same alarm without it is a ticket, in Slack only.
    let (kinds, severity) = routed(&config, "payments-us-east-1-errors", "payments: function errors");
    assert_eq!((kinds, severity.as_str()), (vec!["slack"], "ticket"));
}

#[tokio::test]
async fn a_function_errors_alarm_from_the_template_triggers_pagerduty_through_the_example_routing() {
    // The example file's receivers, on the test's endpoints.
    let routing = EXAMPLE_ROUTING
        .replace("ALERT_SLACK_WEBHOOK_URL", "SLACK_URL")
        .replace("ALERT_WEBHOOK_URL", "HOOK_URL")
        .replace("PAGERDUTY_EVENTS_URL", "PD_URL")
        .replace("PAGERDUTY_ROUTING_KEY_PRIMARY", "PD_KEY")
        .replace("ALERT_SECONDARY_TOPIC_ARN", "PAGES_TOPIC");
    let hooks = MockServer::start().await;
    answer(&hooks, 200).await;
    let env = env_routed(hooks, &routing).await;
    let template: Value = serde_json::from_str(TEMPLATES[0].1).unwrap();
    let (name, description) =
        alarms_of(&template).into_iter().find(|(n, _)| n.ends_with("-errors")).expect("an errors alarm");
    let event = alarm(&name, "us-east-1", &description, "ALARM", "2026-12-03T10:00:00.000+0000");
    env.function.invoke(event).await.unwrap();
    let triggers = env.pagerduty("trigger").await;
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0]["payload"]["summary"], format!("{name} in us-east-1"));
}
