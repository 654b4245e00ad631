//! Rollouts that would prove nothing are refused before they touch anything: no gate at all
//! (unless allowed by name), blue/green whose every gate reads traffic the test stage never
//! sends, or a step that bakes for less than a gate's window (an alarm gate's alarms); and an
//! alarm gate passes only on evidence. The clients point at a port nothing listens on, so a
//! rollout that got past its settings would fail on the network instead, not with
//! `RolloutError::Invalid`.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lift_deploy::rollout::{
    AlarmGate, AlarmSource, AlarmState, BoxFuture, Gate, GateContext, HealthGate, Record, Rollout,
    RolloutError, SloGate, Strategy, Target, Verdict,
};

/// Nothing listens here: the discard port, refused at once.
const NOWHERE: &str = "http://127.0.0.1:9";

fn lambda() -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .endpoint_url(NOWHERE)
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .build(),
    )
}

fn rollout() -> Rollout {
    let lambda = lambda();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url(NOWHERE)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .build(),
    );
    Rollout::new(lambda, Record::new(dynamodb, "lift-deployments"), "payments", "live")
        .target(Target::Version("2".into()))
        .step_timeout(Duration::from_secs(2))
}

fn slo_gate() -> Arc<SloGate> {
    Arc::new(support::availability_gate())
}

#[tokio::test]
async fn a_rollout_with_no_gate_is_refused() {
    for strategy in [
        Strategy::AllAtOnce,
        Strategy::Canary { percent: 10.0, interval: Duration::from_secs(30) },
        Strategy::BlueGreen { test: Duration::from_secs(30) },
    ] {
        match rollout().strategy(strategy.clone()).run().await {
            Err(RolloutError::Invalid(reason)) => {
                assert!(reason.contains("no gate") && reason.contains("allow_no_gates"), "{reason}")
            }
            other => panic!("{strategy} with no gate was not refused: {other:?}"),
        }
    }
    // Hooks run once, at the edges: they do not watch the steps.
    let hooks_only = rollout()
        .pre_traffic(Arc::new(HealthGate::new("/health/ready")))
        .post_traffic(Arc::new(HealthGate::new("/health/ready")));
    assert!(matches!(hooks_only.run().await, Err(RolloutError::Invalid(_))));
}

#[tokio::test]
async fn allowed_by_name_a_rollout_with_no_gate_gets_past_its_settings() {
    match rollout().allow_no_gates(true).run().await {
        Err(RolloutError::Invalid(reason)) => panic!("refused although allowed: {reason}"),
        // It goes on to the record, which nothing answers here.
        Err(_) => {}
        Ok(outcome) => panic!("it ran against nothing: {outcome:?}"),
    }
}

#[tokio::test]
async fn blue_green_with_only_an_slo_gate_is_refused() {
    let only_slo = rollout().strategy(Strategy::BlueGreen { test: Duration::from_secs(30) }).gate(slo_gate());
    match only_slo.run().await {
        Err(RolloutError::Invalid(reason)) => {
            assert!(reason.contains("blue/green") && reason.contains("(slo)"), "{reason}")
        }
        other => panic!("blue/green with only traffic gates was not refused: {other:?}"),
    }
    // The same gates are fine where the new version gets traffic in every step.
    let canary = rollout()
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(30) })
        .gate(slo_gate());
    assert!(!matches!(canary.run().await, Err(RolloutError::Invalid(_))));
    // And blue/green is fine with a gate that reads the new version directly.
    let with_health = rollout()
        .strategy(Strategy::BlueGreen { test: Duration::from_secs(30) })
        .gate(slo_gate())
        .gate(Arc::new(HealthGate::new("/health/ready")));
    assert!(!matches!(with_health.run().await, Err(RolloutError::Invalid(_))));
}

#[test]
fn the_command_line_with_no_gate_exits_2_and_says_why() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lift-deploy"))
        .args(["rollout", "--function", "payments", "--alias", "live", "--version", "2"])
        .env("AWS_ENDPOINT_URL_LAMBDA", NOWHERE)
        .env("AWS_ENDPOINT_URL_DYNAMODB", NOWHERE)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no gate") && stderr.contains("--no-gates"), "{stderr}");
}

/// Alarm states as `DescribeAlarms` would give them: a name not listed names no alarm.
struct Alarms(Vec<(&'static str, AlarmState)>);

impl AlarmSource for Alarms {
    fn states<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, AlarmState>, String>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .filter(|(name, _)| names.iter().any(|wanted| wanted == name))
                .map(|(name, state)| (name.to_string(), *state))
                .collect())
        })
    }
}

fn alarm_gate(names: &[&str], states: &[(&'static str, AlarmState)]) -> AlarmGate {
    let names = names.iter().map(|name| name.to_string()).collect();
    AlarmGate::new(names, Arc::new(Alarms(states.to_vec()))).unwrap()
}

/// One reading of `gate` mid-canary.
async fn read(gate: &AlarmGate) -> lift_deploy::rollout::Reading {
    let ctx = GateContext {
        function: "payments".into(),
        alias: "live".into(),
        from_version: "1".into(),
        to_version: "2".into(),
        weight: 0.1,
        traffic_since_ms: Some(1_764_720_000_000),
        lambda: lambda(),
    };
    gate.check(&ctx).await
}

#[test]
fn an_alarm_gate_with_no_alarm_to_watch_is_refused() {
    let source = Arc::new(Alarms(vec![]));
    for names in [vec![], vec![String::new()], vec!["payments-availability".to_owned(), " ".to_owned()]] {
        match AlarmGate::new(names.clone(), source.clone()) {
            Err(RolloutError::Invalid(reason)) => assert!(reason.contains("alarm"), "{reason}"),
            other => panic!("an alarm gate over {names:?} was built: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_alarm_gate_passes_only_when_every_alarm_it_names_is_ok() {
    use AlarmState::{Alarm, InsufficientData, Ok};
    let states = [("payments-availability", Ok), ("payments-latency", Ok)];
    let both = read(&alarm_gate(&["payments-availability", "payments-latency"], &states)).await;
    assert_eq!(both.verdict, Verdict::Pass, "{both:?}");
    // A misspelled name watches nothing: it fails, naming it.
    let typo = read(&alarm_gate(&["payments-availability", "payments-latncy"], &states)).await;
    assert_eq!(typo.verdict, Verdict::Fail, "{typo:?}");
    assert!(typo.detail.contains("no such alarm: payments-latncy"), "{}", typo.detail);
    // Too few data points to evaluate is no evidence either way: no pass.
    let quiet = [("payments-availability", Ok), ("payments-latency", InsufficientData)];
    let unknown = read(&alarm_gate(&["payments-availability", "payments-latency"], &quiet)).await;
    assert_eq!(unknown.verdict, Verdict::NoData, "{unknown:?}");
    assert!(unknown.detail.contains("INSUFFICIENT_DATA: payments-latency"), "{}", unknown.detail);
    let firing = [("payments-availability", Alarm), ("payments-latency", InsufficientData)];
    let alarm = read(&alarm_gate(&["payments-availability", "payments-latency"], &firing)).await;
    assert_eq!(alarm.verdict, Verdict::Fail, "{alarm:?}");
    assert!(alarm.detail.contains("in ALARM: payments-availability"), "{}", alarm.detail);
}

#[tokio::test]
async fn blue_green_with_only_an_alarm_gate_is_refused() {
    let alarms = alarm_gate(&["payments-availability"], &[("payments-availability", AlarmState::Ok)]);
    assert!(
        alarms.needs_traffic(),
        "an alarm watches the whole function: while the new version has no traffic it speaks for the old one"
    );
    let only_alarms =
        rollout().strategy(Strategy::BlueGreen { test: Duration::from_secs(30) }).gate(Arc::new(alarms));
    match only_alarms.run().await {
        Err(RolloutError::Invalid(reason)) => {
            assert!(reason.contains("blue/green") && reason.contains("(alarms)"), "{reason}")
        }
        other => panic!("blue/green with only an alarm gate was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_step_that_bakes_for_less_than_the_alarm_window_is_refused() {
    let window = || {
        Arc::new(
            alarm_gate(&["payments-availability"], &[("payments-availability", AlarmState::Ok)])
                .period(Duration::from_secs(60)),
        )
    };
    let short_canary = rollout()
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(30) })
        .final_bake(Duration::from_secs(60))
        .gate(window());
    // The final bake of 0 s promotes on one reading taken as the last shift lands.
    let no_final_bake = rollout()
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(60) })
        .final_bake(Duration::ZERO)
        .gate(window());
    for (what, refused) in [("a 30 s canary", short_canary), ("a final bake of 0 s", no_final_bake)] {
        match refused.run().await {
            Err(RolloutError::Invalid(reason)) => {
                assert!(reason.contains("gate alarms needs a bake of at least 60s"), "{what}: {reason}")
            }
            other => panic!("{what} under a 60 s alarm window was not refused: {other:?}"),
        }
    }
    let long_enough = rollout()
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(60) })
        .final_bake(Duration::from_secs(60))
        .gate(window());
    assert!(!matches!(long_enough.run().await, Err(RolloutError::Invalid(_))));
    // Blue/green's test stage does not read it, so its length does not matter.
    let blue_green = rollout()
        .strategy(Strategy::BlueGreen { test: Duration::from_secs(5) })
        .final_bake(Duration::from_secs(60))
        .gate(window())
        .gate(Arc::new(HealthGate::new("/health/ready")));
    assert!(!matches!(blue_green.run().await, Err(RolloutError::Invalid(_))));
}
