//! A canary that crashes on every request writes no EMF document at all: the rollout's SLO
//! gate, counting the new version's invocations from the local runtime's `REPORT` lines
//! (`LocalMetrics`), takes each one for a bad request and fails the step, rather than
//! waiting out the step for evidence that never comes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lift_deploy::rollout::{MetricSource, Record, Rollout, SloGate, Status, Strategy, Target};
use lift_harness::deploy_drill::LocalMetrics;
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::lambda::invoke_api::InvokeApi;
use lift_harness::lambda::{Function, LocalLambda};
use lift_monitoring::slo::SloFile;

const FIXTURE: &str = env!("CARGO_BIN_EXE_lambda-fixture");

const SLOS: &str = r#"
[service]
name = "fixture"
namespace = "Fixture"

[[slo]]
name = "availability"
kind = "availability"
objective = 99.9
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Version 1 answers (`echo`), version 2 exits on every request (`exit`); `live` on 1.
async fn crashing_canary(name: &str) -> (LocalLambda, InvokeApi, aws_sdk_lambda::Client) {
    let lambda =
        LocalLambda::builder().function(Function::builder(name, FIXTURE).build().unwrap()).build().unwrap();
    let api = InvokeApi::start(lambda.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .endpoint_url(api.endpoint())
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .build();
    let client = aws_sdk_lambda::Client::from_conf(config);
    client.publish_version().function_name(name).send().await.unwrap();
    client.create_alias().function_name(name).name("live").function_version("1").send().await.unwrap();
    let vars = [("FIXTURE_DEFAULT_ACTION".to_owned(), "exit".to_owned())].into_iter().collect();
    client
        .update_function_configuration()
        .function_name(name)
        .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(vars)).build())
        .send()
        .await
        .unwrap();
    client.publish_version().function_name(name).send().await.unwrap();
    (lambda, api, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_crashes_on_every_request_fails_the_slo_gate_and_rolls_back() {
    let name = "rollout-crash";
    let (lambda, _api, client) = crashing_canary(name).await;
    let ddb = DynamoDbLocal::shared().await.unwrap();
    let table = ddb.create_table(&lift_deploy::rollout::table_def()).await.unwrap();
    let record = Record::new(ddb.client().await, table);

    // Traffic through the alias for as long as the rollout runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (lambda, stop) = (lambda.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let _ = lambda.invoke(&format!("{name}:live"), "{}").await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let metrics = LocalMetrics::new(lambda.clone()).settle(Duration::from_millis(50));
    let gate = SloGate::new(SloFile::parse(SLOS).unwrap(), Arc::new(metrics)).min_requests(5);
    let outcome = Rollout::new(client.clone(), record, name, "live")
        .target(Target::Version("2".into()))
        .strategy(Strategy::Canary { percent: 50.0, interval: Duration::from_secs(20) })
        .poll(Duration::from_millis(100))
        .lease(Duration::from_secs(5))
        .step_timeout(Duration::from_secs(5))
        .gate(Arc::new(gate))
        .run()
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();

    assert_eq!(outcome.status, Status::RolledBack, "{:?}", outcome.reason);
    let reason = outcome.reason.unwrap_or_default();
    // Failed by the gate, on the crashes it counted, not for want of evidence at the step's end.
    assert!(reason.starts_with("gate slo: availability: "), "{reason}");
    assert!(reason.contains("invocations that ended without writing a request"), "{reason}");
    assert!(!reason.contains("no evidence"), "{reason}");
    assert!(outcome.detected_after.unwrap() < Duration::from_secs(15), "before the 20 s step ended");
    let alias = client.get_alias().function_name(name).name("live").send().await.unwrap();
    assert_eq!(alias.function_version(), Some("1"));
    assert!(alias.routing_config().and_then(|r| r.additional_version_weights()).is_none_or(|w| w.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_metrics_count_each_report_once_after_since_and_leave_direct_invocations_out() {
    let name = "rollout-crash-count";
    let (lambda, _api, _client) = crashing_canary(name).await;
    let metrics = LocalMetrics::new(lambda.clone()).settle(Duration::ZERO);
    // Before the first reading: not placed in time, so not counted.
    lambda.invoke(&format!("{name}:2"), "{}").await.unwrap();
    let since = now_ms();
    assert_eq!(metrics.invocations(name, "2", since).await.unwrap(), Some(0));
    for _ in 0..3 {
        let out = lambda.invoke(&format!("{name}:2"), "{}").await.unwrap();
        assert_eq!(out.error_type().as_deref(), Some("Runtime.ExitError"), "version 2 crashes");
    }
    lambda.invoke(&format!("{name}:1"), "{}").await.unwrap();
    assert!(lambda.settle(name, Duration::from_secs(5)).await);
    assert_eq!(metrics.invocations(name, "2", since).await.unwrap(), Some(3), "one per REPORT");
    assert_eq!(metrics.invocations(name, "2", since).await.unwrap(), Some(3), "read again, counted once");
    assert_eq!(metrics.invocations(name, "1", since).await.unwrap(), Some(1));
    assert_eq!(metrics.invocations(name, "2", now_ms() + 60_000).await.unwrap(), Some(0), "none after");
    // An invocation by version the rollout made itself (a health gate) is not traffic.
    metrics.direct_invocation(name, "2");
    lambda.invoke(&format!("{name}:2"), "{}").await.unwrap();
    assert_eq!(metrics.invocations(name, "2", since).await.unwrap(), Some(3));
    assert!(metrics.documents(name, "2", since).await.unwrap().is_empty(), "the crashes wrote nothing");
}
