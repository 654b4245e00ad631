//! Rollouts that would prove nothing are refused before they touch anything: no gate at all
//! (unless allowed by name), or blue/green whose every gate reads traffic the test stage
//! never sends. The clients point at a port nothing listens on, so a rollout that got past
//! its settings would fail on the network instead, not with `RolloutError::Invalid`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use lift_deploy::rollout::{HealthGate, Record, Rollout, RolloutError, SloGate, Strategy, Target};

/// Nothing listens here: the discard port, refused at once.
const NOWHERE: &str = "http://127.0.0.1:9";

fn rollout() -> Rollout {
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .endpoint_url(NOWHERE)
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .build(),
    );
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
