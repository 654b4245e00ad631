//! Every step notifies once: duplicate deliveries, racing instances, failing channels,
//! crashed senders; and SNS through the real SDK.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn the_same_event_five_times_notifies_each_channel_once() {
    let env = env().await;
    for _ in 0..5 {
        env.function.invoke(fixture(EB_ALARM)).await.expect("handled");
    }
    // And once more in its SNS form: the same alarm change.
    env.function.invoke(fixture(SNS_ALARM)).await.expect("handled");
    assert_eq!(env.pagerduty("trigger").await.len(), 1, "one PagerDuty trigger");
    assert_eq!(env.posted(SLACK_PATH).await.len(), 1, "one Slack message");
    assert!(env.posted(HOOK_PATH).await.is_empty(), "pages do not reach the root receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_on_one_event_notify_once() {
    let env = env().await;
    for round in 0..3 {
        // A new alarm each round, so every round races on fresh steps.
        let name = format!("payments-latency-page-fast{round}");
        let event = alarm(&name, "eu-west-1", "page SLO latency", "ALARM", "2026-12-03T10:00:00.000+0000");
        let (a, b) = (env.another_instance().await, env.another_instance().await);
        let (ea, eb) = (event.clone(), event.clone());
        let first = tokio::spawn(async move { a.handle_event(&ea).await });
        let second = tokio::spawn(async move { b.handle_event(&eb).await });
        let (first, second) = (first.await.unwrap().unwrap(), second.await.unwrap().unwrap());
        assert_eq!(
            first.delivered.len() + second.delivered.len(),
            2,
            "round {round}: PagerDuty and Slack, once each"
        );
    }
    assert_eq!(env.pagerduty("trigger").await.len(), 3);
    assert_eq!(env.posted(SLACK_PATH).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_on_an_ok_resolve_once_and_leave_no_membership() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let trigger = env.pagerduty("trigger").await.remove(0);
    env.clock.set(T0 + Duration::from_secs(20 * 60));
    let (a, b) = (env.another_instance().await, env.another_instance().await);
    let first = tokio::spawn(async move { a.handle_event(&fixture(EB_OK)).await });
    let second = tokio::spawn(async move { b.handle_event(&fixture(EB_OK)).await });
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    // And a redelivery after both.
    env.router.handle_event(&fixture(EB_OK)).await.unwrap();
    let resolves = env.pagerduty("resolve").await;
    assert_eq!(resolves.len(), 1, "{resolves:?}");
    assert_eq!(resolves[0]["dedup_key"], trigger["dedup_key"]);
    assert_eq!(env.posted(SLACK_PATH).await.len(), 2, "firing, then resolved, once");
    let (_, stored) = env.table_text().await;
    assert!(!stored.contains("\"groups\""), "every membership dropped: {stored}");
    env.tick_at(T0 + Duration::from_secs(40 * 60)).await;
    assert!(env.sns.published().is_empty());
}

#[tokio::test]
async fn a_channel_answering_500_twice_is_retried_and_delivers_once() {
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PD_PATH))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&hooks)
        .await;
    answer(&hooks, 200).await;
    let env = env_with(hooks).await;
    let report = env.router.handle_event(&fixture(EB_ALARM)).await.expect("handled");
    assert_eq!(report.pending, Vec::<String>::new());
    let tries = env.posted(PD_PATH).await;
    assert_eq!(tries.len(), 3, "two 500s, then the 200");
    assert!(tries.iter().all(|t| t["dedup_key"] == tries[0]["dedup_key"]), "the same event each try");
    // Delivered once: nothing is sent again later.
    env.tick_at(T0 + Duration::from_secs(60)).await;
    assert_eq!(env.posted(PD_PATH).await.len(), 3);
}

#[tokio::test]
async fn a_channel_always_500_leaves_the_step_pending_until_a_tick_after_it_recovers() {
    let hooks = MockServer::start().await;
    answer(&hooks, 500).await;
    let env = env_with(hooks).await;
    let report = env.router.handle_event(&fixture(EB_ALARM)).await.expect("handled: failures stay pending");
    assert_eq!(report.pending.len(), 2, "PagerDuty and Slack pending: {report:?}");
    assert_eq!(env.posted(PD_PATH).await.len(), 3, "bounded: three tries");
    let (_, stored) = env.table_text().await;
    assert!(stored.contains("HTTP 500"), "the error class is kept");
    // Still down at the next tick: tried again, still pending.
    let still = env.router.tick().await.unwrap();
    assert_eq!(still.pending.len(), 2);
    // Recovered.
    env.hooks.reset().await;
    answer(&env.hooks, 200).await;
    env.tick_at(T0 + Duration::from_secs(120)).await;
    assert_eq!(env.pagerduty("trigger").await.len(), 1, "delivered after recovery");
    assert_eq!(env.posted(SLACK_PATH).await.len(), 1);
    env.tick_at(T0 + Duration::from_secs(180)).await;
    assert_eq!(env.pagerduty("trigger").await.len(), 1, "and only once");
}

#[tokio::test]
async fn a_step_claimed_by_a_sender_that_died_is_sent_after_its_lease() {
    let hooks = MockServer::start().await;
    answer(&hooks, 200).await;
    let env = env_with(hooks).await;
    // Silence everything so the alarm only opens its group; then a "crashed" sender
    // claims the PagerDuty step and never sends.
    let token = env.token("ops-1", alert_router::routes::WRITE_SCOPE);
    let matchers =
        serde_json::json!({"matchers": ["alertname=\"payments-availability-page-fast\""], "duration": "1m"});
    assert_eq!(env.api("POST", "/silences", Some(&token), Some(matchers)).await.0, 201);
    env.router.handle_event(&fixture(EB_ALARM)).await.unwrap();
    let group = env.router.store().unsettled_groups().await.unwrap();
    let oncall = group
        .iter()
        .find(|g| env.config.route(&g.route).is_some_and(|r| r.receiver == "oncall"))
        .expect("the oncall group");
    let t0_ms = i64::try_from(T0.unix_timestamp_nanos() / 1_000_000).unwrap();
    let claimed =
        env.router.store().claim(&oncall.id, oncall.episode, "notify-01#oncall", t0_ms, 120_000).await;
    assert!(claimed.unwrap().is_some());
    // Silence over, lease not: the claimed step is not sent twice; Slack's goes out.
    env.tick_at(T0 + Duration::from_secs(61)).await;
    assert!(env.pagerduty("trigger").await.is_empty(), "the claim is respected within its lease");
    assert_eq!(env.posted(SLACK_PATH).await.len(), 1);
    // Lease over: taken over and sent, once.
    env.tick_at(T0 + Duration::from_secs(119)).await;
    assert!(env.pagerduty("trigger").await.is_empty());
    env.tick_at(T0 + Duration::from_secs(120)).await;
    assert_eq!(env.pagerduty("trigger").await.len(), 1);
    env.tick_at(T0 + Duration::from_secs(121)).await;
    assert_eq!(env.pagerduty("trigger").await.len(), 1);
}

#[tokio::test]
async fn escalation_publishes_to_sns_signed_by_the_real_sdk() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    env.tick_at(T0 + Duration::from_secs(15 * 60)).await;
    let published = env.sns.published_to(&env.topic);
    assert_eq!(published.len(), 1);
    let message: serde_json::Value = serde_json::from_str(&published[0].message).unwrap();
    assert_eq!(message["level"], 2);
    assert_eq!(message["status"], "firing");
    assert_eq!(message["runbook_url"], "https://runbooks.example.com/payments/availability");
    assert!(published[0].attributes.contains(&("severity".to_owned(), "page".to_owned())));
    let call = &env.sns.calls_to(lift_harness::aws::PUBLISH)[0];
    let scope = call.sigv4().expect("a SigV4-signed Publish");
    assert_eq!((scope.service.as_str(), scope.region.as_str()), ("sns", SNS_REGION));
    assert_eq!(call.body["Action"], "Publish");
    assert_eq!(call.body["Version"], "2010-03-31");
}

#[tokio::test]
async fn secrets_stay_out_of_errors_and_the_table() {
    let hooks = MockServer::start().await;
    answer(&hooks, 500).await;
    let env = env_with(hooks).await;
    let report = env.router.handle_event(&fixture(EB_ALARM)).await.unwrap();
    let text = format!("{report:?} {:?} {:?}", env.router, env.config);
    let (_, stored) = env.table_text().await;
    for secret in [PD_KEY, "XOXB-SECRET-TOKEN"] {
        assert!(!text.contains(secret), "{secret} in a report or debug output");
        assert!(!stored.contains(secret), "{secret} stored");
    }
    // The key does go to PagerDuty, where it belongs.
    assert_eq!(env.posted(PD_PATH).await[0]["routing_key"], PD_KEY);
}

#[tokio::test]
async fn a_failed_resolution_is_retried_after_the_group_fires_again() {
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PD_PATH))
        .and(body_partial_json(serde_json::json!({"event_action": "resolve"})))
        .respond_with(ResponseTemplate::new(500))
        .with_priority(1)
        .mount(&hooks)
        .await;
    answer(&hooks, 200).await;
    let env = env_with(hooks).await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let group = group_of(&env.pagerduty("trigger").await[0]);
    env.clock.set(T0 + Duration::from_secs(5 * 60));
    let report = env.router.handle_event(&fixture_at("OK", "2026-12-03T10:05:00.000+0000")).await.unwrap();
    assert_eq!(report.pending, [format!("{group}/1/resolve#oncall")], "{report:?}");
    // It fires again before PagerDuty takes the resolution: episode 2.
    env.clock.set(T0 + Duration::from_secs(10 * 60));
    env.router.handle_event(&fixture_at("ALARM", "2026-12-03T10:10:00.000+0000")).await.unwrap();
    assert_eq!(env.pagerduty("trigger").await[1]["dedup_key"], format!("{group}-2"));
    // PagerDuty recovers: the next tick closes episode 1's incident, and only it.
    env.hooks.reset().await;
    answer(&env.hooks, 200).await;
    env.tick_at(T0 + Duration::from_secs(11 * 60)).await;
    let resolves = env.pagerduty("resolve").await;
    assert_eq!(resolves.len(), 1, "{resolves:?}");
    assert_eq!(resolves[0]["dedup_key"], format!("{group}-1"));
    env.tick_at(T0 + Duration::from_secs(12 * 60)).await;
    assert_eq!(env.pagerduty("resolve").await.len(), 1, "once");
    assert!(env.pagerduty("trigger").await.is_empty(), "episode 2 is not triggered again");
}

/// Answers PagerDuty after `by` has passed on the router's clock: a slow receiver.
struct Slow {
    clock: alert_router::ManualClock,
    by: Duration,
}

impl wiremock::Respond for Slow {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        self.clock.advance(self.by);
        ResponseTemplate::new(202).set_body_json(serde_json::json!({"status": "success"}))
    }
}

fn ms(at: time::OffsetDateTime) -> String {
    (at.unix_timestamp_nanos() / 1_000_000).to_string()
}

#[tokio::test]
async fn a_steps_lease_runs_from_its_claim_not_from_the_start_of_the_drive() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let group = group_of(&env.pagerduty("trigger").await[0]);
    env.tick_at(T0 + Duration::from_secs(15 * 60)).await;
    assert_eq!(env.sns.published().len(), 1, "level 2 reached the secondary");
    // The resolution goes to the on-call, who takes 50 s to answer, then to the secondary.
    Mock::given(method("POST"))
        .and(path(PD_PATH))
        .and(body_partial_json(serde_json::json!({"event_action": "resolve"})))
        .respond_with(Slow { clock: env.clock.clone(), by: Duration::from_secs(50) })
        .with_priority(1)
        .mount(&env.hooks)
        .await;
    env.clock.set(T0 + Duration::from_secs(20 * 60));
    let report = env.router.handle_event(&fixture(EB_OK)).await.unwrap();
    let secondary = format!("{group}/1/resolve#secondary");
    assert!(report.delivered.contains(&secondary), "{report:?}");
    let item = env
        .ddb
        .client()
        .await
        .get_item()
        .table_name(&env.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("STEP#{group}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("0000000001#resolve#secondary".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the secondary's resolve step");
    let number = |key: &str| item[key].as_n().unwrap().clone();
    let claimed = T0 + Duration::from_secs(20 * 60 + 50);
    assert_eq!(number("claimed_at"), ms(claimed), "claimed when the on-call had answered");
    assert_eq!(number("lease_until"), ms(claimed + Duration::from_secs(60)), "the 60 s lease from the claim");
}

#[tokio::test]
async fn a_retried_resolution_lists_its_own_episodes_alerts_not_the_firing_ones() {
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .and(body_partial_json(serde_json::json!({"status": "resolved"})))
        .respond_with(ResponseTemplate::new(500))
        .with_priority(1)
        .mount(&hooks)
        .await;
    answer(&hooks, 200).await;
    // Tickets go to the webhook, grouped by service and region: one group, two alarms.
    let routing = ROUTING
        .replace(r#"group_by = ["service", "region", "alertname"]"#, r#"group_by = ["service", "region"]"#);
    let env = env_routed(hooks, &routing).await;
    let ticket = |name: &str, state: &str, at: &str| alarm(name, "eu-west-1", "ticket SLO", state, at);
    env.router
        .handle_event(&ticket("payments-checkout-ticket", "ALARM", "2026-12-03T10:00:00.000+0000"))
        .await
        .unwrap();
    env.clock.set(T0 + Duration::from_secs(5 * 60));
    let report = env
        .router
        .handle_event(&ticket("payments-checkout-ticket", "OK", "2026-12-03T10:05:00.000+0000"))
        .await
        .unwrap();
    assert_eq!(report.pending.len(), 1, "the resolution waits: {report:?}");
    // Another alarm of the group fires before the webhook takes the resolution: episode 2.
    env.clock.set(T0 + Duration::from_secs(10 * 60));
    env.router
        .handle_event(&ticket("payments-refunds-ticket", "ALARM", "2026-12-03T10:10:00.000+0000"))
        .await
        .unwrap();
    let fired: Vec<Value> =
        env.posted(HOOK_PATH).await.into_iter().filter(|b| b["status"] == "firing").collect();
    assert_eq!(
        (&fired[1]["episode"], &fired[1]["summary"]),
        (&2.into(), &"payments-refunds-ticket in eu-west-1".into())
    );
    // The webhook recovers: episode 1's resolution names episode 1's alert.
    env.hooks.reset().await;
    answer(&env.hooks, 200).await;
    env.tick_at(T0 + Duration::from_secs(11 * 60)).await;
    let resolved: Vec<_> =
        env.posted(HOOK_PATH).await.into_iter().filter(|b| b["status"] == "resolved").collect();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0]["episode"], 1);
    assert_eq!(resolved[0]["summary"], "payments-checkout-ticket in eu-west-1");
    let names: Vec<&Value> =
        resolved[0]["alerts"].as_array().unwrap().iter().map(|a| &a["labels"]["alertname"]).collect();
    assert_eq!(names, ["payments-checkout-ticket"]);
    // Settled: the alerts kept for it are dropped.
    let group = env.router.store().group(resolved[0]["group_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!((group.settled, group.ended.len()), (1, 0), "{group:?}");
}
