//! The alarms lift-monitoring synthesizes, end to end: an alert's description carries its
//! SLO's route and tenant to the router, and the window alarms beside it page no one.

mod support;

use alert_router::alarm::AlarmChange;
use alert_router::labels::labels;
use lift_monitoring::{alarms, slo::SloFile};
use serde_json::Value;
use support::*;
use wiremock::MockServer;

/// The alarms of the payments example's SLO file (monitoring/slo/payments.toml).
fn payments_alarms() -> Value {
    let file =
        SloFile::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../monitoring/slo/payments.toml")).unwrap();
    alarms::fragment(&file)
}

/// The state change of the synthesized alarm `id`, as EventBridge delivers it.
fn change_of(fragment: &Value, id: &str, state: &str, at: &str) -> Value {
    let p = &fragment["Resources"][id]["Properties"];
    let name = p["AlarmName"].as_str().unwrap_or_else(|| panic!("no alarm {id}"));
    alarm(name, "eu-west-1", p["AlarmDescription"].as_str().unwrap(), state, at)
}

#[tokio::test]
async fn a_window_alarm_alone_pages_no_one_while_the_alert_and_a_users_own_long_alarm_do() {
    let env = env().await;
    let fragment = payments_alarms();
    for (id, at) in [
        ("PaymentsAvailabilityPageFastLong", "2026-12-03T09:59:00.000+0000"),
        ("PaymentsAvailabilityPageFastShort", "2026-12-03T09:59:30.000+0000"),
    ] {
        let report = env.router.handle_event(&change_of(&fragment, id, "ALARM", at)).await.unwrap();
        assert_eq!(report, alert_router::Report::default(), "{id}: nothing done");
    }
    assert!(env.hooks.received_requests().await.unwrap().is_empty(), "no window alarm notifies");
    assert_eq!(env.table_text().await.0, 0, "nor is recorded");
    // The alert, both windows in ALARM: one page.
    let alert = change_of(&fragment, "PaymentsAvailabilityPageFast", "ALARM", "2026-12-03T10:00:00.000+0000");
    env.function.invoke(alert).await.unwrap();
    let triggers = env.pagerduty("trigger").await;
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0]["payload"]["summary"], "payments-availability-page-fast in eu-west-1");
    // A window clearing does not resolve it; the alert clearing does.
    let short_ok =
        change_of(&fragment, "PaymentsAvailabilityPageFastShort", "OK", "2026-12-03T10:05:00.000+0000");
    env.function.invoke(short_ok).await.unwrap();
    assert!(env.pagerduty("resolve").await.is_empty());
    let ok = change_of(&fragment, "PaymentsAvailabilityPageFast", "OK", "2026-12-03T10:05:00.000+0000");
    env.function.invoke(ok).await.unwrap();
    assert_eq!(env.pagerduty("resolve").await.len(), 1);
    // An alarm of the user's own whose name ends in `-long` is an alert like any other.
    let own = alarm(
        "payments-queue-long",
        "eu-west-1",
        "page queue depth",
        "ALARM",
        "2026-12-03T10:06:00.000+0000",
    );
    env.function.invoke(own).await.unwrap();
    let triggers = env.pagerduty("trigger").await;
    assert_eq!(triggers.len(), 2, "{triggers:?}");
    assert_eq!(triggers[1]["payload"]["summary"], "payments-queue-long in eu-west-1");
}

#[tokio::test]
async fn an_slo_alerts_route_and_tenant_reach_the_router_and_pick_its_receiver() {
    let fragment = payments_alarms();
    let acme = change_of(
        &fragment,
        "PaymentsAcmeCreateAvailabilityPageFast",
        "ALARM",
        "2026-12-03T10:00:00.000+0000",
    );
    let l = labels(&AlarmChange::from_eventbridge(&acme).unwrap(), &["payments".to_owned()]);
    let label = |key: &str| l.get(key).map(String::as_str);
    assert_eq!(
        ["service", "slo", "rule", "severity", "route", "tenant"].map(label),
        ["payments", "acme-create-availability", "page-fast", "page", "/payments", "acme"].map(Some)
    );
    assert_eq!(label("runbook"), Some("https://runbooks.example.com/payments/tenant"));
    // The tenant's pages go to the team's webhook, not to the on-call.
    let acme_route =
        "[[route.routes]]\nmatchers = ['tenant=\"acme\"', 'route=\"/payments\"']\nreceiver = \"team-webhook\"\n\n";
    let routing = ROUTING.replacen("[[route.routes]]", &format!("{acme_route}[[route.routes]]"), 1);
    let hooks = MockServer::start().await;
    answer(&hooks, 200).await;
    let env = env_routed(hooks, &routing).await;
    env.function.invoke(acme).await.unwrap();
    let hooks = env.posted(HOOK_PATH).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let alert = &hooks[0]["alerts"][0]["labels"];
    assert_eq!(
        (&alert["alertname"], &alert["route"], &alert["tenant"]),
        (&"payments-acme-create-availability-page-fast".into(), &"/payments".into(), &"acme".into())
    );
    assert!(env.pagerduty("trigger").await.is_empty(), "not the on-call's");
    // The service-wide SLO's alert has neither label: the on-call's, as before.
    let service_wide =
        change_of(&fragment, "PaymentsAvailabilityPageFast", "ALARM", "2026-12-03T10:00:00.000+0000");
    env.function.invoke(service_wide).await.unwrap();
    assert_eq!(env.pagerduty("trigger").await.len(), 1);
    assert_eq!(env.posted(HOOK_PATH).await.len(), 1);
}
