//! What is notified when: escalation, acknowledgement, resolution, inhibition, silences,
//! the two input forms, and malformed events.

mod support;

use std::time::Duration;

use alert_router::alarm::{self, AlarmChange};
use alert_router::labels::labels;
use alert_router::store::Recorded;
use alert_router::AlertRouter;
use serde_json::Value;
use support::*;

#[tokio::test]
async fn escalation_waits_for_its_deadline_and_notifies_level_two_once() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    assert_eq!(env.pagerduty("trigger").await.len(), 1, "level 1 at once");
    env.tick_at(T0 + Duration::from_secs(14 * 60 + 59)).await;
    assert!(env.sns.published().is_empty(), "no escalation before the deadline");
    env.tick_at(T0 + Duration::from_secs(15 * 60)).await;
    assert_eq!(env.sns.published().len(), 1, "level 2 at the deadline");
    env.tick_at(T0 + Duration::from_secs(16 * 60)).await;
    env.tick_at(T0 + Duration::from_secs(30 * 60)).await;
    assert_eq!(env.sns.published().len(), 1, "and once");
    assert_eq!(env.pagerduty("trigger").await.len(), 1, "level 1 is not repeated");
}

#[tokio::test]
async fn an_acknowledgement_stops_the_escalation() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let trigger = env.pagerduty("trigger").await.remove(0);
    let group = trigger["payload"]["custom_details"]["step_id"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    // No token, or a read-only one: refused.
    assert_eq!(env.api("POST", &format!("/alerts/{group}/ack"), None, None).await.0, 401);
    let reader = env.token("viewer", alert_router::routes::READ_SCOPE);
    assert_eq!(env.api("POST", &format!("/alerts/{group}/ack"), Some(&reader), None).await.0, 403);
    env.clock.set(T0 + Duration::from_secs(5 * 60));
    let token = env.token("alice", alert_router::routes::WRITE_SCOPE);
    let (status, body) = env.api("POST", &format!("/alerts/{group}/ack"), Some(&token), None).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("episode")), "the episode is named: {body}");
    let (status, body) = env.api("POST", &format!("/alerts/{group}/ack?episode=1"), Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acknowledged_by"], "alice");
    let acks = env.pagerduty("acknowledge").await;
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["dedup_key"], trigger["dedup_key"], "the same incident");
    env.tick_at(T0 + Duration::from_secs(20 * 60)).await;
    assert!(env.sns.published().is_empty(), "acknowledged: no escalation");
    // Unknown and malformed ids.
    let (status, _) = env.api("POST", "/alerts/00000000000000000000/ack?episode=1", Some(&token), None).await;
    assert_eq!(status, 404);
    assert_eq!(env.api("POST", "/alerts/..%2F/ack", Some(&token), None).await.0, 404);
}

#[tokio::test]
async fn after_a_long_silence_the_escalation_levels_keep_their_distance() {
    let env = env().await;
    let token = env.token("ops", alert_router::routes::WRITE_SCOPE);
    let silence =
        serde_json::json!({"matchers": ["alertname=\"payments-availability-page-fast\""], "duration": "1h"});
    assert_eq!(env.api("POST", "/silences", Some(&token), Some(silence)).await.0, 201);
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    env.tick_at(T0 + Duration::from_secs(30 * 60)).await;
    assert!(env.pagerduty("trigger").await.is_empty(), "silenced");
    // The silence outlasted the 15 minutes of level 2: level 1 alone goes out when it ends.
    env.tick_at(T0 + Duration::from_secs(60 * 60)).await;
    assert_eq!(env.pagerduty("trigger").await.len(), 1, "level 1 once the silence ends");
    assert!(env.sns.published().is_empty(), "level 2 not in the same tick as level 1");
    env.tick_at(T0 + Duration::from_secs(74 * 60 + 59)).await;
    assert!(env.sns.published().is_empty(), "the primary gets their 15 minutes");
    env.tick_at(T0 + Duration::from_secs(75 * 60)).await;
    assert_eq!(env.sns.published().len(), 1, "level 2 15 minutes after level 1");
}

#[tokio::test]
async fn an_acknowledgement_of_an_earlier_episode_does_not_stop_the_current_one() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let group = group_of(&env.pagerduty("trigger").await[0]);
    let slack = env.posted(SLACK_PATH).await;
    assert!(slack[0].to_string().contains("/ack?episode=1`"), "the ack hint names the episode: {}", slack[0]);
    // Resolved, then firing again: episode 2.
    env.clock.set(T0 + Duration::from_secs(5 * 60));
    env.function.invoke(fixture_at("OK", "2026-12-03T10:05:00.000+0000")).await.unwrap();
    env.clock.set(T0 + Duration::from_secs(10 * 60));
    env.function.invoke(fixture_at("ALARM", "2026-12-03T10:10:00.000+0000")).await.unwrap();
    assert_eq!(env.pagerduty("trigger").await[1]["dedup_key"], format!("{group}-2"));
    // Someone acts on episode 1's message: refused, and changes nothing.
    env.clock.set(T0 + Duration::from_secs(12 * 60));
    let token = env.token("carol", alert_router::routes::WRITE_SCOPE);
    let (status, body) = env.api("POST", &format!("/alerts/{group}/ack?episode=1"), Some(&token), None).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = env
        .api("POST", &format!("/alerts/{group}/ack"), Some(&token), Some(serde_json::json!({"episode": 1})))
        .await;
    assert_eq!(status, 409, "the body form too: {body}");
    assert!(env.pagerduty("acknowledge").await.is_empty());
    env.tick_at(T0 + Duration::from_secs(25 * 60)).await;
    assert_eq!(env.sns.published().len(), 1, "episode 2 escalates 15 minutes after it fired");
    // Episode 2's own acknowledgement does count.
    let (status, body) = env.api("POST", &format!("/alerts/{group}/ack?episode=2"), Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    let acks = env.pagerduty("acknowledge").await;
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["dedup_key"], format!("{group}-2"));
}

#[tokio::test]
async fn a_resolution_is_sent_when_the_alarm_clears() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    env.clock.set(T0 + Duration::from_secs(20 * 60));
    env.function.invoke(fixture(EB_OK)).await.unwrap();
    let trigger = env.pagerduty("trigger").await.remove(0);
    let resolves = env.pagerduty("resolve").await;
    assert_eq!(resolves.len(), 1);
    assert_eq!(resolves[0]["dedup_key"], trigger["dedup_key"]);
    let slack = env.posted(SLACK_PATH).await;
    assert_eq!(slack.len(), 2);
    assert!(slack[1]["text"].as_str().unwrap().starts_with("RESOLVED"), "{}", slack[1]);
    assert!(slack[1]["text"]
        .as_str()
        .unwrap()
        .contains("https://runbooks.example.com/payments/availability"));
    // Resolved before its deadline: no escalation either; and the OK again changes nothing.
    env.function.invoke(fixture(EB_OK)).await.unwrap();
    env.tick_at(T0 + Duration::from_secs(40 * 60)).await;
    assert!(env.sns.published().is_empty());
    assert_eq!(env.pagerduty("resolve").await.len(), 1);
    // An ALARM older than the OK (a late redelivery) is dropped.
    let report = env.router.handle_event(&fixture(EB_ALARM)).await.unwrap();
    assert_eq!(report.stale, 1);
    assert_eq!(env.pagerduty("trigger").await.len(), 1);
}

#[tokio::test]
async fn a_region_down_alert_inhibits_route_alerts_of_its_region_only() {
    let env = env().await;
    let at = "2026-12-03T10:00:00.000+0000";
    let down = alarm("edge-region-health", "eu-west-1", "page region health [kind=region-down]", "ALARM", at);
    env.function.invoke(down).await.unwrap();
    let eu = alarm("payments-checkout-page-fast", "eu-west-1", "page [route=POST:/checkout]", "ALARM", at);
    let us = alarm("payments-checkout-page-fast", "us-east-1", "page [route=POST:/checkout]", "ALARM", at);
    let muted = env.router.handle_event(&eu).await.unwrap();
    assert!(muted.delivered.is_empty(), "the eu-west-1 route alert is inhibited: {muted:?}");
    let sent = env.router.handle_event(&us).await.unwrap();
    assert_eq!(sent.delivered.len(), 2, "the us-east-1 one is not");
    let sources: Vec<String> = env
        .pagerduty("trigger")
        .await
        .iter()
        .map(|t| t["payload"]["summary"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sources, ["edge-region-health in eu-west-1", "payments-checkout-page-fast in us-east-1"]);
    // The region comes back: the muted alert, still firing, is notified at the next tick.
    env.function
        .invoke(alarm(
            "edge-region-health",
            "eu-west-1",
            "page region health [kind=region-down]",
            "OK",
            "2026-12-03T10:05:00.000+0000",
        ))
        .await
        .unwrap();
    env.tick_at(T0 + Duration::from_secs(6 * 60)).await;
    let triggers = env.pagerduty("trigger").await;
    assert_eq!(triggers.len(), 3);
    assert_eq!(triggers[2]["payload"]["summary"], "payments-checkout-page-fast in eu-west-1");
}

#[tokio::test]
async fn a_silence_mutes_until_it_expires() {
    let env = env().await;
    let token = env.token("bob", alert_router::routes::WRITE_SCOPE);
    let name = "payments-latency-ticket-slow";
    // A regex matcher must match the whole value, and does.
    let matchers = [format!("alertname=\"{name}\""), "alertname=~\"payments-.+-ticket-.*\"".to_owned()];
    let silence = serde_json::json!({"matchers": matchers, "duration": "1h", "comment": "deploy"});
    let (status, body) = env.api("POST", "/silences", Some(&token), Some(silence)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created_by"], "bob");
    let ticket = alarm(name, "eu-west-1", "ticket SLO latency", "ALARM", "2026-12-03T10:00:00.000+0000");
    env.function.invoke(ticket).await.unwrap();
    env.tick_at(T0 + Duration::from_secs(59 * 60)).await;
    let early = env.posted(HOOK_PATH).await;
    assert!(early.is_empty(), "silenced before it expires: {early:?}");
    env.tick_at(T0 + Duration::from_secs(60 * 60)).await;
    let hooks = env.posted(HOOK_PATH).await;
    assert_eq!(hooks.len(), 1, "notified once it expired");
    assert_eq!(hooks[0]["status"], "firing");
    assert_eq!(
        hooks[0]["runbook_url"],
        format!("https://runbooks.example.com/payments/{name}"),
        "the route's runbook"
    );
    // Bad silences are refused, naming the field.
    let (status, body) = env
        .api(
            "POST",
            "/silences",
            Some(&token),
            Some(serde_json::json!({"matchers": ["x y"], "duration": "1h"})),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("matchers")), "{body}");
    // A regex that does not compile would silence nothing: refused too.
    let (status, body) = env
        .api(
            "POST",
            "/silences",
            Some(&token),
            Some(serde_json::json!({"matchers": ["service=~\"pay(\""], "duration": "1h"})),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("matchers")), "{body}");
    let (status, _) = env
        .api(
            "POST",
            "/silences",
            Some(&token),
            Some(serde_json::json!({"matchers": ["a=\"b\""], "duration": "90d"})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn eventbridge_and_sns_forms_of_one_alarm_are_the_same_alert() {
    let from_eventbridge = AlarmChange::from_eventbridge(&fixture(EB_ALARM)).unwrap();
    let from_sns = alarm::from_sns_event(&fixture(SNS_ALARM)).unwrap().remove(0);
    assert_eq!(from_eventbridge, from_sns);
    assert_eq!(from_eventbridge.fingerprint(), from_sns.fingerprint());
    let services = ["payments".to_owned()];
    let l = labels(&from_sns, &services);
    assert_eq!(l, labels(&from_eventbridge, &services));
    assert_eq!(
        [&l["service"], &l["severity"], &l["tenant"], &l["region"], &l["route"]],
        ["payments", "page", "acme", "eu-west-1", "POST:/payments"]
    );
    // Delivered through SNS first, the EventBridge copy is a duplicate.
    let env = env().await;
    env.function.invoke(fixture(SNS_ALARM)).await.unwrap();
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    assert_eq!(env.pagerduty("trigger").await.len(), 1);
}

#[tokio::test]
async fn malformed_events_are_refused_by_field_and_write_nothing() {
    let env = env().await;
    let mut no_state = fixture(EB_ALARM);
    no_state["detail"]["state"].as_object_mut().unwrap().remove("value");
    let err = env.function.invoke(no_state).await.unwrap_err().to_string();
    assert!(err.contains("detail.state.value"), "{err}");
    let mut bad_time = fixture(EB_ALARM);
    bad_time["detail"]["state"]["timestamp"] = "yesterday".into();
    assert!(env.function.invoke(bad_time).await.unwrap_err().to_string().contains("detail.state.timestamp"));
    // An SNS batch with one bad record is refused whole.
    let mut batch = fixture(SNS_ALARM);
    let mut second = batch["Records"][0].clone();
    second["Sns"]["Message"] = "{\"AlarmName\": 42}".into();
    batch["Records"].as_array_mut().unwrap().push(second);
    let err = env.function.invoke(batch).await.unwrap_err().to_string();
    assert!(err.contains("Records[1].Sns.Message.AlarmArn"), "{err}");
    let err = env.function.invoke(serde_json::json!({"hello": "world"})).await.unwrap_err().to_string();
    assert!(err.contains("unsupported event"), "{err}");
    assert_eq!(env.table_text().await.0, 0, "nothing written");
    assert!(env.hooks.received_requests().await.unwrap().is_empty(), "nothing sent");
}

/// The on-call group, read through `router`, is closed, and PagerDuty got one resolve: for
/// the trigger's incident.
async fn assert_resolved_once(env: &Env, router: &AlertRouter, group: &str, trigger: &Value) {
    let stored = router.store().group(group).await.unwrap().expect("the on-call group");
    assert!(!stored.open, "the group closed: {stored:?}");
    let resolves = env.pagerduty("resolve").await;
    assert_eq!(resolves.len(), 1, "{resolves:?}");
    assert_eq!(resolves[0]["dedup_key"], trigger["dedup_key"], "the trigger's incident");
}

/// The page route of [`ROUTING`] that pages the on-call and escalates to the secondary.
const ONCALL_ROUTE: &str = r#"[[route.routes]]
matchers = ['severity="page"']
receiver = "oncall"
continue = true
escalation = [{ after = "15m", receiver = "secondary" }]

"#;

/// The description of the fixture alarm after an edit that made it a ticket.
const TICKET_DESCRIPTION: &str = "ticket SLO availability (99.9% of requests not 5xx). \
    Runbook: https://runbooks.example.com/payments/availability [route=POST:/payments tenant=acme]";

#[tokio::test]
async fn an_alarm_that_clears_after_a_route_was_inserted_before_its_own_resolves_its_group() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let trigger = env.pagerduty("trigger").await.remove(0);
    let group = group_of(&trigger);
    // A deploy puts a route for another tenant in front of the others.
    let front = "[[route.routes]]\nmatchers = ['tenant=\"globex\"']\nreceiver = \"team-webhook\"\n\n";
    let routing = ROUTING.replacen("[[route.routes]]", &format!("{front}[[route.routes]]"), 1);
    let deployed = env.redeployed(&routing).await;
    env.clock.set(T0 + Duration::from_secs(20 * 60));
    deployed.handle_event(&fixture(EB_OK)).await.unwrap();
    assert_resolved_once(&env, &deployed, &group, &trigger).await;
    env.tick_with(&deployed, T0 + Duration::from_secs(40 * 60)).await;
    assert!(env.sns.published().is_empty(), "a cleared alarm does not escalate");
    assert!(env.posted(HOOK_PATH).await.is_empty(), "the new route took nothing");
}

#[tokio::test]
async fn an_alarm_whose_labels_changed_before_it_cleared_resolves_the_groups_it_joined() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let trigger = env.pagerduty("trigger").await.remove(0);
    let group = group_of(&trigger);
    // The alarm's description was edited while it fired: its OK carries other labels, which
    // route it elsewhere (the root, as a ticket), yet it is the same alarm.
    let mut ok = fixture(EB_OK);
    ok["detail"]["configuration"]["description"] = TICKET_DESCRIPTION.into();
    let change = AlarmChange::from_eventbridge(&ok).unwrap();
    assert_eq!(
        change.fingerprint(),
        AlarmChange::from_eventbridge(&fixture(EB_ALARM)).unwrap().fingerprint()
    );
    assert_eq!(labels(&change, &["payments".to_owned()])["severity"], "ticket");
    env.clock.set(T0 + Duration::from_secs(20 * 60));
    env.function.invoke(ok).await.unwrap();
    assert_resolved_once(&env, &env.router, &group, &trigger).await;
    let slack = env.posted(SLACK_PATH).await;
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert!(slack[1]["text"].as_str().unwrap().starts_with("RESOLVED"), "{}", slack[1]);
    env.tick_at(T0 + Duration::from_secs(40 * 60)).await;
    assert!(env.sns.published().is_empty(), "a cleared alarm does not escalate");
    assert!(env.posted(HOOK_PATH).await.is_empty(), "nothing fired under the new labels");
}

#[tokio::test]
async fn a_group_whose_route_was_removed_falls_to_the_root_and_still_resolves() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let trigger = env.pagerduty("trigger").await.remove(0);
    let group = group_of(&trigger);
    let route = env.router.store().group(&group).await.unwrap().expect("the on-call group").route;
    // A deploy removes the on-call route while the alarm fires.
    assert!(ROUTING.contains(ONCALL_ROUTE));
    let deployed = env.redeployed(&ROUTING.replace(ONCALL_ROUTE, "")).await;
    assert!(deployed.config().route(&route).is_none(), "{route} is gone");
    // The root takes the firing group: its receiver is told, and the removed route's
    // escalation is gone with it.
    env.tick_with(&deployed, T0 + Duration::from_secs(5 * 60)).await;
    let hooks = env.posted(HOOK_PATH).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!((&hooks[0]["status"], &hooks[0]["group_id"]), (&"firing".into(), &group.clone().into()));
    assert_eq!(hooks[0]["route"], route, "notifications name the route that formed the group");
    env.tick_with(&deployed, T0 + Duration::from_secs(16 * 60)).await;
    assert!(env.sns.published().is_empty(), "no escalation of the removed route");
    // The alarm clears: the group resolves, and every receiver it reached hears so.
    env.clock.set(T0 + Duration::from_secs(20 * 60));
    deployed.handle_event(&fixture(EB_OK)).await.unwrap();
    assert_resolved_once(&env, &deployed, &group, &trigger).await;
    let hooks = env.posted(HOOK_PATH).await;
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!((&hooks[1]["status"], &hooks[1]["group_id"]), (&"resolved".into(), &group.clone().into()));
    let slack = env.posted(SLACK_PATH).await;
    assert_eq!(slack.len(), 2, "the Slack route's group resolves too: {slack:?}");
    env.tick_with(&deployed, T0 + Duration::from_secs(40 * 60)).await;
    assert_eq!(env.posted(HOOK_PATH).await.len(), 2, "nothing more");
    assert!(env.sns.published().is_empty());
}

#[tokio::test]
async fn an_alarm_stored_before_its_groups_were_recorded_leaves_the_groups_it_is_in() {
    let env = env().await;
    // What the router left before alarms recorded their groups: an alarm firing in a group
    // formed under a positional route id (`root.0`), and no record of it on the alarm.
    let change = AlarmChange::from_eventbridge(&fixture(EB_ALARM)).unwrap();
    let (fingerprint, alarm_labels) = (change.fingerprint(), labels(&change, &env.config.services));
    let at = i64::try_from(change.changed_at.unix_timestamp_nanos() / 1_000_000).unwrap();
    let store = env.router.store();
    store.record_alarm(&fingerprint, "ALARM", at, &alarm_labels).await.unwrap();
    let legacy = "0123456789abcdef0123";
    assert!(store
        .join_group(legacy, "root.0", &Default::default(), &fingerprint, &alarm_labels, at, at)
        .await
        .unwrap()
        .is_some());
    // `root.0` is read by position: the first child, the on-call page route. The group keeps
    // its route across the upgrade rather than falling to the root.
    env.tick_at(T0 + Duration::from_secs(60)).await;
    let triggers = env.pagerduty("trigger").await;
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert!(triggers[0]["dedup_key"].as_str().unwrap().starts_with(legacy), "{triggers:?}");
    assert!(env.posted(HOOK_PATH).await.is_empty(), "the root did not take it");
    // Neither the alarm's item nor the routing names the group; the OK finds it all the same.
    env.clock.set(T0 + Duration::from_secs(20 * 60));
    env.function.invoke(fixture(EB_OK)).await.unwrap();
    assert!(!store.group(legacy).await.unwrap().expect("the group").open, "closed");
    let resolves = env.pagerduty("resolve").await;
    assert_eq!(resolves.len(), 1, "{resolves:?}");
    assert_eq!(resolves[0]["dedup_key"], triggers[0]["dedup_key"]);
    let (_, stored) = env.table_text().await;
    assert!(stored.contains("groups_complete"), "searched once, not at every change: {stored}");
}

/// One alarm's ALARM, OK and newer ALARM handled by concurrent deliveries: the OK's leave
/// runs after the newer ALARM joined again. The group stays open with the alarm in it, and
/// the alarm keeps the group in its set, so its own next OK leaves it. A leave made without
/// checking that its OK is still the alarm's stored change removes the member and closes the
/// group: a page resolved while the alarm fires.
#[tokio::test]
async fn an_ok_overtaken_by_a_newer_alarm_leaves_the_group_open() {
    let env = env().await;
    let change = AlarmChange::from_eventbridge(&fixture(EB_ALARM)).unwrap();
    let (fp, alarm_labels) = (change.fingerprint(), labels(&change, &env.config.services));
    let t1 = i64::try_from(change.changed_at.unix_timestamp_nanos() / 1_000_000).unwrap();
    let (t2, t3, t4) = (t1 + 1_000, t1 + 2_000, t1 + 3_000);
    let store = env.router.store();
    let group = "race-ok-then-alarm";
    store.record_alarm(&fp, "ALARM", t1, &alarm_labels).await.unwrap();
    store.add_membership(&fp, group, true).await.unwrap();
    assert!(store
        .join_group(group, "root.0", &Default::default(), &fp, &alarm_labels, t1, t1)
        .await
        .unwrap()
        .is_some());
    // The OK is recorded; before it leaves, a newer ALARM is recorded and joins.
    store.record_alarm(&fp, "OK", t2, &alarm_labels).await.unwrap();
    store.record_alarm(&fp, "ALARM", t3, &alarm_labels).await.unwrap();
    store.add_membership(&fp, group, true).await.unwrap();
    assert!(store
        .join_group(group, "root.0", &Default::default(), &fp, &alarm_labels, t3, t3)
        .await
        .unwrap()
        .is_some());
    // Now the OK's leave and its membership removal.
    assert!(!store.leave_group(group, &fp, t2).await.unwrap(), "the OK was overtaken");
    store.remove_membership(&fp, group, t2).await.unwrap();
    let firing = store.group(group).await.unwrap().expect("the group");
    assert!(firing.open, "the group still fires");
    assert!(firing.members.contains_key(&fp), "with the alarm in it");
    // The same ALARM again (a redelivery) answers with the alarm's memberships as stored.
    let Recorded::Applied(memberships) = store.record_alarm(&fp, "ALARM", t3, &alarm_labels).await.unwrap()
    else {
        panic!("a redelivery is applied")
    };
    assert!(memberships.groups.contains(group), "the alarm keeps the group in its set: {memberships:?}");
    // The alarm's own OK leaves and closes it.
    store.record_alarm(&fp, "OK", t4, &alarm_labels).await.unwrap();
    assert!(store.leave_group(group, &fp, t4).await.unwrap());
    assert!(!store.group(group).await.unwrap().expect("the group").open, "closed by the alarm's own OK");
}

/// The reverse race: the ALARM's join runs after its OK was applied and left. The alarm
/// joins nothing, so no group fires for an alarm that has cleared. A join that does not check
/// that its ALARM is still the alarm's stored change opens an alert nothing will resolve.
#[tokio::test]
async fn an_alarm_overtaken_by_its_ok_joins_no_group() {
    let env = env().await;
    let change = AlarmChange::from_eventbridge(&fixture(EB_ALARM)).unwrap();
    let (fp, alarm_labels) = (change.fingerprint(), labels(&change, &env.config.services));
    let t1 = i64::try_from(change.changed_at.unix_timestamp_nanos() / 1_000_000).unwrap();
    let store = env.router.store();
    let group = "race-alarm-then-ok";
    store.record_alarm(&fp, "ALARM", t1, &alarm_labels).await.unwrap();
    store.record_alarm(&fp, "OK", t1 + 1_000, &alarm_labels).await.unwrap();
    assert!(store.leave_group(group, &fp, t1 + 1_000).await.unwrap(), "nothing to leave yet");
    assert!(
        store
            .join_group(group, "root.0", &Default::default(), &fp, &alarm_labels, t1, t1)
            .await
            .unwrap()
            .is_none(),
        "the ALARM was overtaken"
    );
    let group = store.group(group).await.unwrap();
    assert!(group.as_ref().is_none_or(|g| !g.open && g.members.is_empty()), "{group:?}");
}
