//! `lift-deploy`'s rollout engine against the local runtime's Lambda API (the real
//! `aws-sdk-lambda` client) and the deployment record in DynamoDB Local: strategies move
//! the alias's real routing config, failed or silent gates roll back, two rollouts of one
//! function cannot both run, an interrupted rollout is rolled back or resumed by the next
//! run, a run whose lease was taken stops without touching traffic, and a split alias with
//! no rollout in progress is refused, as is a rollout that would prove nothing (no gate, or
//! blue/green with only gates that need traffic).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lift_deploy::rollout::{
    BoxFuture, CommandGate, Gate, GateContext, Reading, Record, Recovery, Rollout, RolloutError, Status,
    Strategy, Target, Verdict,
};
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::lambda::invoke_api::InvokeApi;
use lift_harness::lambda::{Function, LocalLambda};

const FIXTURE: &str = env!("CARGO_BIN_EXE_lambda-fixture");

struct Env {
    lambda: LocalLambda,
    _api: InvokeApi,
    client: aws_sdk_lambda::Client,
    record: Record,
    name: String,
}

/// A function with versions 1 (behind `live`) and 2, and a fresh record table.
async fn env(name: &str) -> Env {
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
    set_release(&client, name, "2").await;
    client.publish_version().function_name(name).send().await.unwrap();
    let ddb = DynamoDbLocal::shared().await.unwrap();
    let table = ddb.create_table(&lift_deploy::rollout::table_def()).await.unwrap();
    let record = Record::new(ddb.client().await, table);
    Env { lambda, _api: api, client, record, name: name.to_owned() }
}

async fn set_release(client: &aws_sdk_lambda::Client, name: &str, release: &str) {
    let vars = [("RELEASE".to_owned(), release.to_owned())].into_iter().collect();
    client
        .update_function_configuration()
        .function_name(name)
        .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(vars)).build())
        .send()
        .await
        .unwrap();
}

impl Env {
    /// A rollout with no gate unless a test adds one: these tests are about traffic and the
    /// record, so the refusal of a gateless rollout is allowed away here (and tested alone).
    fn rollout(&self) -> Rollout {
        Rollout::new(self.client.clone(), self.record.clone(), &self.name, "live")
            .target(Target::Version("2".into()))
            .allow_no_gates(true)
            .poll(Duration::from_millis(50))
            .lease(Duration::from_secs(2))
            .step_timeout(Duration::from_secs(1))
    }

    /// The alias as the Lambda API reports it: primary version and additional weights.
    async fn alias(&self) -> (String, Vec<(String, f64)>) {
        let out = self.client.get_alias().function_name(&self.name).name("live").send().await.unwrap();
        let mut weights: Vec<(String, f64)> = out
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        weights.retain(|(_, w)| *w > 0.0);
        (out.function_version().unwrap().to_owned(), weights)
    }
}

/// What a gate saw of the alias: its primary version and additional weights, per reading.
type Seen = Vec<(String, Vec<(String, f64)>)>;

/// A gate that reads the alias's real routing config each time it is read, and answers
/// from a script (then its last verdict for ever).
struct Scripted {
    name: &'static str,
    script: Mutex<VecDeque<Verdict>>,
    last: Verdict,
    seen: Mutex<Seen>,
    traffic: bool,
}

impl Scripted {
    fn new(name: &'static str, script: &[Verdict]) -> Arc<Self> {
        Arc::new(Self {
            name,
            script: Mutex::new(script.iter().copied().collect()),
            last: *script.last().unwrap(),
            seen: Mutex::default(),
            traffic: false,
        })
    }
}

impl Gate for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    fn needs_traffic(&self) -> bool {
        self.traffic
    }

    fn check<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, Reading> {
        Box::pin(async move {
            let out =
                ctx.lambda.get_alias().function_name(&ctx.function).name(&ctx.alias).send().await.unwrap();
            let weights = out
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).filter(|(_, v)| *v > 0.0).collect())
                .unwrap_or_default();
            self.seen.lock().unwrap().push((out.function_version().unwrap().to_owned(), weights));
            let verdict = self.script.lock().unwrap().pop_front().unwrap_or(self.last);
            Reading { verdict, detail: format!("scripted {verdict:?}") }
        })
    }
}

/// A gate that never answers.
struct Silent;

impl Gate for Silent {
    fn name(&self) -> &str {
        "silent"
    }
    fn check<'a>(&'a self, _ctx: &'a GateContext) -> BoxFuture<'a, Reading> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linear_moves_the_real_routing_config_step_by_step_and_records_every_step() {
    let env = env("rollout-linear").await;
    let gate = Scripted::new("watch", &[Verdict::Pass]);
    let outcome = env
        .rollout()
        .strategy(Strategy::Linear { percent: 25.0, interval: Duration::from_millis(150) })
        .gate(gate.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
    assert_eq!(env.alias().await, ("2".to_owned(), vec![]), "everything on version 2, no split");
    // What the gate saw through GetAlias while each step baked: the real routing config.
    let seen = gate.seen.lock().unwrap().clone();
    let weights: Vec<f64> = seen.iter().map(|(_, w)| w.first().map_or(1.0, |(_, w)| *w)).collect();
    for expected in [0.25, 0.5, 0.75] {
        assert!(weights.iter().any(|w| (w - expected).abs() < 1e-9), "{expected} in {weights:?}");
    }
    assert!(seen
        .iter()
        .all(|(primary, w)| primary == "1" && w[0].0 == "2" || primary == "2" && w.is_empty()));
    let stored = env.record.events(&env.name, &outcome.deployment).await.unwrap();
    let kinds: Vec<&str> = stored.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "shift").count(), 4, "{kinds:?}");
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"succeeded"));
    assert!(stored.windows(2).all(|w| w[1].seq == w[0].seq + 1), "gap-free sequence");
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!((head.status, head.to_version.as_str(), head.weight), (Status::Succeeded, "2", 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gate_rolls_back_to_the_previous_version_with_no_split() {
    let env = env("rollout-fail").await;
    let gate = Scripted::new("errors", &[Verdict::Pass, Verdict::Pass, Verdict::Fail]);
    let outcome = env
        .rollout()
        .strategy(Strategy::Canary { percent: 30.0, interval: Duration::from_secs(5) })
        .gate(gate.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::RolledBack);
    assert!(outcome.reason.as_deref().unwrap().contains("gate errors"), "{:?}", outcome.reason);
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
    assert!(
        gate.seen.lock().unwrap().iter().any(|(_, w)| w == &vec![("2".to_owned(), 0.3)]),
        "it was split first"
    );
    let (first, detected, back) = (
        outcome.first_traffic_after.unwrap(),
        outcome.detected_after.unwrap(),
        outcome.rolled_back_after.unwrap(),
    );
    assert!(first < detected && detected <= back, "{first:?} {detected:?} {back:?}");
    assert!(detected < Duration::from_secs(3), "the third reading failed, long before the 5 s bake ended");
    assert_eq!(env.record.head(&env.name).await.unwrap().unwrap().status, Status::RolledBack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_evidence_by_the_end_of_a_step_is_a_failure_not_a_pass() {
    let env = env("rollout-nodata").await;
    let outcome = env
        .rollout()
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_millis(200) })
        .gate(Scripted::new("quiet", &[Verdict::NoData]))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::RolledBack);
    assert!(outcome.reason.unwrap().contains("no evidence"));
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_never_answers_fails_the_step_at_its_timeout() {
    let env = env("rollout-silent").await;
    let outcome = env
        .rollout()
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(10) })
        .step_timeout(Duration::from_millis(300))
        .gate(Arc::new(Silent))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::RolledBack);
    assert!(outcome.reason.unwrap().contains("step timeout"));
    assert!(outcome.total < Duration::from_secs(5), "it did not wait out the 10 s bake");
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_commands_gate_and_hook_with_the_rollout_in_their_environment() {
    let env = env("rollout-command").await;
    let dir = std::env::temp_dir().join(format!("lift-rollout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seen = dir.join("seen");
    let pre = format!(
        "echo \"$LIFT_ROLLOUT_FROM_VERSION->$LIFT_ROLLOUT_TO_VERSION@$LIFT_ROLLOUT_WEIGHT\" >> {}",
        seen.display()
    );
    let outcome = env
        .rollout()
        .strategy(Strategy::AllAtOnce)
        .pre_traffic(Arc::new(CommandGate::new("pre", pre)))
        .post_traffic(Arc::new(CommandGate::new("post", "echo refusing >&2; exit 3")))
        .run()
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "1->2@0");
    assert_eq!(outcome.status, Status::RolledBack, "a failed post-traffic hook rolls back too");
    let reason = outcome.reason.unwrap();
    assert!(reason.contains("post-traffic hook post") && reason.contains("refusing"), "{reason}");
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_cannot_start_is_stopped_before_any_traffic() {
    let env = env("rollout-initcrash").await;
    // Version 3: crashes in init.
    let vars = [("FIXTURE_INIT".to_owned(), "crash".to_owned())].into_iter().collect();
    env.client
        .update_function_configuration()
        .function_name(&env.name)
        .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(vars)).build())
        .send()
        .await
        .unwrap();
    let probe = Arc::new(lift_deploy::rollout::HealthGate::new("/health/ready"));
    let outcome = env
        .rollout()
        .target(Target::Publish)
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(5) })
        .pre_traffic(probe)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.to_version, "3");
    assert_eq!(outcome.status, Status::RolledBack);
    assert!(outcome.reason.as_deref().unwrap().contains("pre-traffic hook health"), "{:?}", outcome.reason);
    assert!(outcome.first_traffic_after.is_none() && outcome.events.iter().all(|e| e.kind != "shift"));
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
    assert_eq!(env.lambda.cold_starts(&env.name), 1, "only the probe's sandbox started, and it crashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rollouts_of_one_function_cannot_both_run() {
    let env = env("rollout-twice").await;
    let slow = env.rollout().strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(2) });
    let first = tokio::spawn(async move { slow.run().await });
    // Until the first holds the record.
    let head = loop {
        if let Some(head) = env.record.head(&env.name).await.unwrap() {
            break head;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let second = env.rollout().owner("second").run().await;
    match second {
        Err(RolloutError::InProgress { deployment, .. }) => assert_eq!(deployment, head.deployment),
        other => panic!("the second rollout ran: {other:?}"),
    }
    assert_eq!(first.await.unwrap().unwrap().status, Status::Succeeded, "the first was not disturbed");
}

/// Starts a canary with a long bake, waits until the alias is split, and kills the run.
async fn interrupted(env: &Env) {
    let run = env.rollout().strategy(Strategy::Canary { percent: 40.0, interval: Duration::from_secs(60) });
    let task = tokio::spawn(async move { run.run().await });
    loop {
        if !env.alias().await.1.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    assert_eq!(env.alias().await, ("1".to_owned(), vec![("2".to_owned(), 0.4)]), "left split by the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rollout_is_refused_while_its_lease_holds_then_rolled_back() {
    let env = env("rollout-interrupted").await;
    interrupted(&env).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!(head.status, Status::InProgress);
    // The lease still holds: it might be alive.
    assert!(matches!(env.rollout().owner("next").run().await, Err(RolloutError::InProgress { .. })));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let outcome = env.rollout().owner("next").strategy(Strategy::AllAtOnce).run().await.unwrap();
    let recovered = outcome.recovered.clone().unwrap();
    assert!(
        recovered.contains(&head.deployment) && recovered.contains("rolled back to version 1"),
        "{recovered}"
    );
    let old = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert_eq!(
        old.last().unwrap().kind,
        "rolled_back",
        "the interrupted deployment's record ends rolled back"
    );
    assert_ne!(outcome.deployment, head.deployment, "then a deployment of its own");
    assert_eq!(outcome.status, Status::Succeeded);
    assert_eq!(env.alias().await, ("2".to_owned(), vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rollout_resumes_from_its_recorded_step_when_asked() {
    let env = env("rollout-resume").await;
    interrupted(&env).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let outcome = env
        .rollout()
        .owner("resumer")
        .recovery(Recovery::Resume)
        .strategy(Strategy::Canary { percent: 40.0, interval: Duration::from_millis(100) })
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.deployment, head.deployment, "the same deployment, carried on");
    assert!(outcome.recovered.unwrap().contains("resumed"));
    assert_eq!(outcome.status, Status::Succeeded);
    assert_eq!(env.alias().await, ("2".to_owned(), vec![]));
    let events = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1), "one gap-free record across both runs");
}

/// Another run takes the record over, as after a lease it believed expired: the head now
/// belongs to `thief`, at `weight`, with a lease that never ends.
async fn steal_the_lease(env: &Env, weight: &str) {
    let mut head = env.record.head(&env.name).await.unwrap().unwrap();
    head.owner = "thief".into();
    head.seq += 100;
    let ddb = DynamoDbLocal::shared().await.unwrap();
    ddb.client()
        .await
        .put_item()
        .table_name(env.record.table())
        .item("function", aws_sdk_dynamodb::types::AttributeValue::S(env.name.clone()))
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S("HEAD".into()))
        .item("deployment", aws_sdk_dynamodb::types::AttributeValue::S(head.deployment.clone()))
        .item("status", aws_sdk_dynamodb::types::AttributeValue::S("in_progress".into()))
        .item("alias", aws_sdk_dynamodb::types::AttributeValue::S("live".into()))
        .item("from_version", aws_sdk_dynamodb::types::AttributeValue::S("1".into()))
        .item("to_version", aws_sdk_dynamodb::types::AttributeValue::S("2".into()))
        .item("step", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
        .item("weight", aws_sdk_dynamodb::types::AttributeValue::N(weight.into()))
        .item("seq", aws_sdk_dynamodb::types::AttributeValue::N(head.seq.to_string()))
        .item("owner", aws_sdk_dynamodb::types::AttributeValue::S("thief".into()))
        .item("lease_until_ms", aws_sdk_dynamodb::types::AttributeValue::N(i64::MAX.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_was_taken_stops_without_touching_traffic() {
    let env = env("rollout-stolen").await;
    let run = env.rollout().strategy(Strategy::Canary { percent: 20.0, interval: Duration::from_secs(3) });
    let task = tokio::spawn(async move { run.run().await });
    while env.alias().await.1.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    steal_the_lease(&env, "0.2").await;
    match task.await.unwrap() {
        Err(RolloutError::LeaseLost { .. }) => {}
        other => panic!("it wrote on without the lease: {other:?}"),
    }
    assert_eq!(
        env.alias().await,
        ("1".to_owned(), vec![("2".to_owned(), 0.2)]),
        "traffic is the new owner's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_alias_with_no_rollout_in_progress_is_refused() {
    let env = env("rollout-split").await;
    let routing = aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
        .additional_version_weights("2", 0.5)
        .build();
    env.client
        .update_alias()
        .function_name(&env.name)
        .name("live")
        .routing_config(routing)
        .send()
        .await
        .unwrap();
    match env.rollout().run().await {
        Err(RolloutError::Split { version, weight, .. }) => {
            assert_eq!((version.as_str(), weight), ("2", 0.5))
        }
        other => panic!("a rollout started on a split alias: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_tests_with_no_traffic_then_switches() {
    let env = env("rollout-bluegreen").await;
    let always = Scripted::new("probe", &[Verdict::Pass]);
    let traffic = Arc::new(Scripted {
        name: "slo",
        script: Mutex::new(VecDeque::new()),
        last: Verdict::Pass,
        seen: Mutex::default(),
        traffic: true,
    });
    let outcome = env
        .rollout()
        .strategy(Strategy::BlueGreen { test: Duration::from_millis(200) })
        .gate(always.clone())
        .gate(traffic.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::Succeeded);
    // The test stage: the alias untouched, and the traffic gate not read.
    let probe_seen = always.seen.lock().unwrap().clone();
    assert!(probe_seen.iter().any(|(p, w)| p == "1" && w.is_empty()), "{probe_seen:?}");
    assert!(traffic.seen.lock().unwrap().iter().all(|(p, _)| p == "2"), "read only after the switch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_would_prove_nothing_is_refused_and_touches_nothing() {
    let env = env("rollout-unproven").await;
    let bare = Rollout::new(env.client.clone(), env.record.clone(), &env.name, "live")
        .target(Target::Version("2".into()))
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(2))
        .step_timeout(Duration::from_secs(1));
    match bare.clone().run().await {
        Err(RolloutError::Invalid(reason)) => assert!(reason.contains("no gate"), "{reason}"),
        other => panic!("a rollout with no gate ran: {other:?}"),
    }
    // Blue/green whose only gate reads traffic: its test stage would pass unread.
    let traffic = Arc::new(Scripted {
        name: "slo",
        script: Mutex::new(VecDeque::new()),
        last: Verdict::Pass,
        seen: Mutex::default(),
        traffic: true,
    });
    let blue_green =
        bare.strategy(Strategy::BlueGreen { test: Duration::from_millis(200) }).gate(traffic.clone());
    match blue_green.run().await {
        Err(RolloutError::Invalid(reason)) => assert!(reason.contains("blue/green"), "{reason}"),
        other => panic!("blue/green with only a traffic gate ran: {other:?}"),
    }
    assert!(traffic.seen.lock().unwrap().is_empty());
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
    assert!(env.record.head(&env.name).await.unwrap().is_none(), "nothing was claimed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_promotes_rolls_back_and_exits_accordingly() {
    use lift_deploy::rollout::cli;
    let env = env("rollout-cli").await;
    let ddb = DynamoDbLocal::shared().await.unwrap();
    let dir = std::env::temp_dir().join(format!("lift-rollout-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("outcome.json");
    let args = |extra: &str| -> Vec<String> {
        format!(
            "--function {} --alias live --table {} --poll 50ms --lease 2s --step-timeout 1s --json {} {extra}",
            env.name,
            env.record.table(),
            json.display()
        )
        .split_whitespace()
        .map(str::to_owned)
        .collect()
    };
    let code = cli::run_with(
        &args("--version 2 --strategy canary:50%:200ms --check ok=true"),
        env.client.clone(),
        ddb.client().await,
    )
    .await;
    assert_eq!(code, 0, "promoted");
    let outcome: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(outcome["status"], "succeeded");
    assert_eq!(env.alias().await, ("2".to_owned(), vec![]));

    // Back to 1 (a rollout too), then a version 2 whose check fails: rolled back, exit 1.
    let code =
        cli::run_with(&args("--version 1 --check ok=true"), env.client.clone(), ddb.client().await).await;
    assert_eq!(code, 0);
    let code = cli::run_with(
        &args("--version 2 --strategy canary:50%:1s --check errors=false"),
        env.client.clone(),
        ddb.client().await,
    )
    .await;
    assert_eq!(code, 1, "rolled back");
    let outcome: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(outcome["status"], "rolled_back");
    assert!(outcome["reason"].as_str().unwrap().contains("gate errors"));
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));

    assert_eq!(
        cli::run_with(&args("--strategy canary"), env.client.clone(), ddb.client().await).await,
        2,
        "usage"
    );
    // No gate: refused before anything is touched.
    let code = cli::run_with(&args("--version 2"), env.client.clone(), ddb.client().await).await;
    assert_eq!(code, 2, "a rollout with no gate runs only with --no-gates");
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
    let code = cli::run_with(&args("--version 2 --no-gates"), env.client.clone(), ddb.client().await).await;
    assert_eq!(code, 0, "promoted on the clock alone, as asked");
    assert_eq!(env.alias().await, ("2".to_owned(), vec![]));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rollouts_started_at_the_same_moment_one_runs_one_is_refused() {
    let env = env("rollout-race").await;
    let a = env
        .rollout()
        .owner("a")
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_millis(300) });
    let b = env
        .rollout()
        .owner("b")
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_millis(300) });
    let (a, b) =
        tokio::join!(tokio::spawn(async move { a.run().await }), tokio::spawn(async move { b.run().await }));
    let results = [a.unwrap(), b.unwrap()];
    let ran = results.iter().filter(|r| r.as_ref().is_ok_and(|o| o.status == Status::Succeeded)).count();
    let refused = results.iter().filter(|r| matches!(r, Err(RolloutError::InProgress { .. }))).count();
    assert_eq!((ran, refused), (1, 1), "{results:?}");
    assert_eq!(env.alias().await, ("2".to_owned(), vec![]));
}

/// Starts a canary whose record is reached through a fault proxy, blackholes the record's
/// traffic in `direction` once the alias is split, and checks the run stops within a step
/// timeout or two with traffic back on version 1.
async fn record_goes_dark(name: &str, direction: lift_harness::faults::Direction) -> Env {
    use lift_harness::faults::{FaultProxy, Toxic};
    let env = env(name).await;
    let ddb = DynamoDbLocal::shared().await.unwrap();
    let proxy = FaultProxy::start(ddb.endpoint()).await.unwrap();
    let client =
        lift_harness::dynamodb::client_for(&proxy.endpoint(), &lift_harness::dynamodb::default_region());
    let record = Record::new(client, env.record.table());
    let run = Rollout::new(env.client.clone(), record, &env.name, "live")
        .target(Target::Version("2".into()))
        .allow_no_gates(true)
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(2))
        .step_timeout(Duration::from_millis(500))
        .strategy(Strategy::Canary { percent: 30.0, interval: Duration::from_secs(30) });
    let task = tokio::spawn(async move { run.run().await });
    // Mid-canary: the alias is split and the record says so (the shift's event landed).
    while env.alias().await.1.is_empty()
        || env.record.head(&env.name).await.unwrap().is_none_or(|head| head.weight == 0.0)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.set(Toxic::blackhole().direction(direction));
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), task).await.expect("it did not hang").unwrap();
    match result {
        Err(RolloutError::Record { detail, .. }) => assert!(detail.contains("step timeout"), "{detail}"),
        other => panic!("a dark record went unnoticed: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "stopped within a step timeout or two");
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]), "traffic is back on version 1");
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_stops_answering_mid_canary_puts_traffic_back_and_is_recovered_later() {
    // Requests vanish: nothing the run writes after the blackhole lands.
    let env = record_goes_dark("rollout-dark-record", lift_harness::faults::Direction::Upstream).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!((head.status, head.weight), (Status::InProgress, 0.3), "the record still shows the canary");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let outcome = env.rollout().owner("after").strategy(Strategy::AllAtOnce).run().await.unwrap();
    assert!(outcome.recovered.as_deref().unwrap_or_default().contains(&head.deployment), "{outcome:?}");
    assert_eq!(outcome.status, Status::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_answers_are_lost_mid_canary_still_puts_traffic_back() {
    // Answers vanish: the writes may land, the run cannot know, and stops.
    let env = record_goes_dark("rollout-lost-answers", lift_harness::faults::Direction::Downstream).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert!(matches!(head.status, Status::InProgress | Status::RolledBack), "{head:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_to_fail_forgives_one_transient_reading_but_not_two_in_a_row() {
    let env = env("rollout-streak").await;
    let canary = Strategy::Canary { percent: 20.0, interval: Duration::from_millis(600) };
    let blip = Scripted::new("blip", &[Verdict::Pass, Verdict::Fail, Verdict::Pass]);
    let outcome = env.rollout().strategy(canary.clone()).failures_to_fail(2).gate(blip).run().await.unwrap();
    assert_eq!(outcome.status, Status::Succeeded, "{:?}", outcome.reason);
    // Back to 1, then two failures in a row.
    let back = env.rollout().owner("back").target(Target::Version("1".into())).run().await.unwrap();
    assert_eq!(back.status, Status::Succeeded);
    let twice = Scripted::new("twice", &[Verdict::Pass, Verdict::Fail, Verdict::Fail, Verdict::Pass]);
    let outcome = env.rollout().strategy(canary).failures_to_fail(2).gate(twice).run().await.unwrap();
    assert_eq!(outcome.status, Status::RolledBack);
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
}

/// Whether `request` is an `UpdateAlias` that gives an additional version traffic.
fn moves_traffic(request: &aws_sdk_lambda::config::http::HttpRequest) -> bool {
    let body = request.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    request.method() == "PUT"
        && request.uri().contains("/aliases/")
        && body.contains("\"AdditionalVersionWeights\":{\"")
}

/// Loses the answer of the first `UpdateAlias` that gives a version traffic (of every one,
/// with `every`): the request reaches the Lambda API and is applied, then the client sees
/// the connection drop, as after a reset or a timeout. With `no_way_back`, every other
/// `UpdateAlias` (the rollback) fails before it is sent. Everything else goes through.
#[derive(Debug, Default)]
struct LoseShiftAnswers {
    every: bool,
    no_way_back: bool,
    spent: AtomicBool,
    losing: AtomicBool,
}

impl aws_sdk_lambda::config::Intercept for LoseShiftAnswers {
    fn name(&self) -> &'static str {
        "LoseShiftAnswers"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_lambda::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_lambda::config::RuntimeComponents,
        _cfg: &mut aws_sdk_lambda::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        if moves_traffic(request) {
            if self.every || !self.spent.swap(true, Ordering::SeqCst) {
                self.losing.store(true, Ordering::SeqCst);
            }
        } else if self.no_way_back && request.method() == "PUT" && request.uri().contains("/aliases/") {
            return Err("connection refused (the rollback was never sent)".into());
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &aws_sdk_lambda::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_lambda::config::RuntimeComponents,
        _cfg: &mut aws_sdk_lambda::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.losing.swap(false, Ordering::SeqCst) {
            return Err("connection reset by peer (the answer was lost)".into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_shift_applied_but_unanswered_is_rolled_back_not_left_split() {
    let env = env("rollout-lost-shift").await;
    let lossy = aws_sdk_lambda::Client::from_conf(
        env.client.config().to_builder().interceptor(LoseShiftAnswers::default()).build(),
    );
    let result = Rollout::new(lossy, env.record.clone(), &env.name, "live")
        .target(Target::Version("2".into()))
        .allow_no_gates(true)
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(2))
        .step_timeout(Duration::from_secs(1))
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(5) })
        .run()
        .await;
    match result {
        Err(RolloutError::Lambda { operation: "UpdateAlias", .. }) => {}
        other => panic!("the lost answer went unnoticed: {other:?}"),
    }
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]), "the split that landed was undone");
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!(head.status, Status::RolledBack, "{head:?}");
    assert!(head.reason.as_deref().unwrap_or_default().contains("stopped by an error"), "{head:?}");
    let events = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert_eq!(events.last().unwrap().kind, "rolled_back");
    // Nothing holds the function: the next run deploys at once.
    let next = env.rollout().owner("next").run().await.unwrap();
    assert_eq!(next.status, Status::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_with_nothing_moved_leaves_the_alias_alone() {
    let env = env("rollout-rollback-idle").await;
    let before = env.client.get_alias().function_name(&env.name).name("live").send().await.unwrap();
    // Fails before any traffic: the rollback finds the alias where it was and writes nothing.
    let outcome = env
        .rollout()
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(5) })
        .pre_traffic(Arc::new(CommandGate::new("pre", "exit 1")))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::RolledBack);
    let after = env.client.get_alias().function_name(&env.name).name("live").send().await.unwrap();
    assert_eq!(after.revision_id(), before.revision_id(), "no UpdateAlias");
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_with_another_strategy_is_refused_and_touches_nothing() {
    let env = env("rollout-resume-strategy").await;
    interrupted(&env).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!(head.strategy.as_deref(), Some("canary:40%:60s"), "the record keeps the strategy");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Read again once the lease has run out: a write the killed run had sent (its next
    // heartbeat) may have landed after the first read.
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    let result =
        env.rollout().owner("resumer").recovery(Recovery::Resume).strategy(Strategy::AllAtOnce).run().await;
    match result {
        Err(RolloutError::CannotResume { deployment, reason, .. }) => {
            assert_eq!(deployment, head.deployment);
            assert!(reason.contains("canary:40%:60s") && reason.contains("all-at-once"), "{reason}");
        }
        other => panic!("resumed under another strategy: {other:?}"),
    }
    assert_eq!(env.alias().await, ("1".to_owned(), vec![("2".to_owned(), 0.4)]), "traffic untouched");
    assert_eq!(env.record.head(&env.name).await.unwrap().unwrap(), head, "record untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_resume_after_latest_changed_is_refused_and_resumes_once_it_matches_again() {
    let env = env("rollout-resume-publish").await;
    interrupted(&env).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resume = || {
        env.rollout()
            .owner("resumer")
            .target(Target::Publish)
            .recovery(Recovery::Resume)
            .strategy(Strategy::Canary { percent: 40.0, interval: Duration::from_millis(100) })
    };
    // $LATEST is no longer what version 2 was published from.
    set_release(&env.client, &env.name, "3").await;
    match resume().run().await {
        Err(RolloutError::CannotResume { deployment, reason, .. }) => {
            assert_eq!(deployment, head.deployment);
            assert!(reason.contains("$LATEST") && reason.contains("version 2"), "{reason}");
        }
        other => panic!("resumed the old version for a changed $LATEST: {other:?}"),
    }
    assert_eq!(env.alias().await, ("1".to_owned(), vec![("2".to_owned(), 0.4)]), "traffic untouched");
    let versions = env.client.list_versions_by_function().function_name(&env.name).send().await.unwrap();
    assert_eq!(versions.versions().len(), 3, "nothing published: $LATEST, 1 and 2");
    // Back to what version 2 holds: that is the interrupted deployment, carried on.
    set_release(&env.client, &env.name, "2").await;
    let outcome = resume().run().await.unwrap();
    assert_eq!((outcome.deployment.as_str(), outcome.status), (head.deployment.as_str(), Status::Succeeded));
    assert_eq!(env.alias().await, ("2".to_owned(), vec![]));
}

/// Holds the first `GetAlias` that follows a traffic-moving `UpdateAlias` (the read before the
/// next shift) until the test lets it go: the run is stalled there, as by a slow network,
/// while another run takes its lease over.
#[derive(Debug, Default)]
struct StallBeforeNextShift {
    shifted: AtomicBool,
    stalled: AtomicBool,
    go: AtomicBool,
}

/// [`StallBeforeNextShift`], shared with the test that drives it.
#[derive(Debug, Clone, Default)]
struct Stall(Arc<StallBeforeNextShift>);

impl aws_sdk_lambda::config::Intercept for Stall {
    fn name(&self) -> &'static str {
        "StallBeforeNextShift"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_lambda::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_lambda::config::RuntimeComponents,
        _cfg: &mut aws_sdk_lambda::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        let stall = &self.0;
        if moves_traffic(request) {
            stall.shifted.store(true, Ordering::SeqCst);
        } else if request.method() == "GET"
            && request.uri().contains("/aliases/")
            && stall.shifted.load(Ordering::SeqCst)
            && !stall.stalled.swap(true, Ordering::SeqCst)
        {
            let give_up = std::time::Instant::now() + Duration::from_secs(20);
            while !stall.go.load(Ordering::SeqCst) && std::time::Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }
}

/// A run stalled just before a shift while another run took its lease over does not make
/// that shift: it learns it lost the lease before it moves traffic, not after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lease_before_a_shift_does_not_make_it() {
    let env = env("rollout-stolen-before-shift").await;
    let stall = Stall::default();
    let stalling = aws_sdk_lambda::Client::from_conf(own_lambda(&env).interceptor(stall.clone()).build());
    // Clients of its own too: connections made on the stalled runtime are driven there.
    let run = Rollout::new(stalling, own_record(&env).await, &env.name, "live")
        .target(Target::Version("2".into()))
        .allow_no_gates(true)
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(3))
        .step_timeout(Duration::from_secs(6))
        .strategy(Strategy::Canary { percent: 20.0, interval: Duration::from_millis(300) });
    // On a thread and runtime of its own: the stall blocks that thread only.
    let task = run_apart(run);
    let started = std::time::Instant::now();
    while !stall.0.stalled.load(Ordering::SeqCst) {
        assert!(!task.is_finished(), "the run ended before its second shift: {:?}", task.join());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    steal_the_lease(&env, "0.2").await;
    stall.0.go.store(true, Ordering::SeqCst);
    let stalled_for = started.elapsed();
    match tokio::task::spawn_blocking(move || task.join().unwrap()).await.unwrap() {
        Err(RolloutError::LeaseLost { .. }) => {}
        other => panic!("it went on without the lease (stalled {stalled_for:?}): {other:?}"),
    }
    assert_eq!(
        env.alias().await,
        ("1".to_owned(), vec![("2".to_owned(), 0.2)]),
        "the run that lost its lease moved traffic"
    );
}

/// A Lambda client config of its own (its connections are driven by the runtime that
/// uses it), to add interceptors to.
fn own_lambda(env: &Env) -> aws_sdk_lambda::config::Builder {
    aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .endpoint_url(env._api.endpoint())
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
}

/// A record client of its own, for a run on a runtime of its own.
async fn own_record(env: &Env) -> Record {
    Record::new(DynamoDbLocal::shared().await.unwrap().client().await, env.record.table())
}

type Ended = Result<lift_deploy::rollout::RolloutOutcome, RolloutError>;

/// Runs `rollout` on a thread and runtime of its own: an interceptor that blocks holds that
/// thread only.
fn run_apart(rollout: Rollout) -> std::thread::JoinHandle<Ended> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(rollout.run())
    })
}

/// Runs another rollout to its end once the first `GetAlias` has been answered: the read a
/// run makes before it claims the function.
#[derive(Clone, Default)]
struct FinishAnotherAfterFirstRead(Arc<FinishAnother>);

#[derive(Default)]
struct FinishAnother {
    first: AtomicBool,
    answered: AtomicBool,
    other: Mutex<Option<Rollout>>,
    ended: Mutex<Option<Ended>>,
}

impl std::fmt::Debug for FinishAnotherAfterFirstRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FinishAnotherAfterFirstRead")
    }
}

impl aws_sdk_lambda::config::Intercept for FinishAnotherAfterFirstRead {
    fn name(&self) -> &'static str {
        "FinishAnotherAfterFirstRead"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_lambda::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_lambda::config::RuntimeComponents,
        _cfg: &mut aws_sdk_lambda::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        if request.method() == "GET"
            && request.uri().contains("/aliases/")
            && !self.0.first.swap(true, Ordering::SeqCst)
        {
            self.0.answered.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &aws_sdk_lambda::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_lambda::config::RuntimeComponents,
        _cfg: &mut aws_sdk_lambda::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.0.answered.swap(false, Ordering::SeqCst) {
            let other = self.0.other.lock().unwrap().take().expect("another rollout to run");
            let ended = run_apart(other).join().unwrap();
            *self.0.ended.lock().unwrap() = Some(ended);
        }
        Ok(())
    }
}

/// A rollout that ends between another run's first read of the alias and that run's claim
/// is not undone: the run reads the alias again once it holds the function, and rolls
/// back to what it found then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_ends_between_the_alias_read_and_the_claim_is_not_undone() {
    let env = env("rollout-read-before-claim").await;
    set_release(&env.client, &env.name, "3").await;
    env.client.publish_version().function_name(&env.name).send().await.unwrap();
    let other = Rollout::new(
        aws_sdk_lambda::Client::from_conf(own_lambda(&env).build()),
        own_record(&env).await,
        &env.name,
        "live",
    )
    .target(Target::Version("3".into()))
    .allow_no_gates(true)
    .strategy(Strategy::AllAtOnce)
    .final_bake(Duration::ZERO)
    .poll(Duration::from_millis(50))
    .lease(Duration::from_secs(2))
    .step_timeout(Duration::from_secs(1))
    .owner("other");
    let racer = FinishAnotherAfterFirstRead::default();
    *racer.0.other.lock().unwrap() = Some(other);
    let failing = Scripted::new("failing", &[Verdict::Fail]);
    let lambda = aws_sdk_lambda::Client::from_conf(own_lambda(&env).interceptor(racer.clone()).build());
    let run = Rollout::new(lambda, own_record(&env).await, &env.name, "live")
        .target(Target::Version("2".into()))
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(2))
        .step_timeout(Duration::from_secs(1))
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(5) })
        .gate(failing.clone())
        .owner("racer");
    let ended = tokio::task::spawn_blocking(move || run_apart(run).join().unwrap()).await.unwrap();
    let other = racer.0.ended.lock().unwrap().take().expect("the other rollout ran");
    assert_eq!(other.unwrap().status, Status::Succeeded, "the other rollout promoted version 3");
    let outcome = ended.unwrap();
    assert_eq!(outcome.status, Status::RolledBack, "{outcome:?}");
    assert_eq!(outcome.from_version, "3", "the run's baseline is what the alias held once it was claimed");
    assert_eq!(failing.seen.lock().unwrap()[0], ("3".to_owned(), vec![("2".to_owned(), 0.1)]));
    assert_eq!(env.alias().await, ("3".to_owned(), vec![]), "the other rollout's promotion was undone");
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!(head.from_version, "3", "the record names the version traffic goes back to");
}

/// Holds the first traffic-moving `UpdateAlias` until the test lets it go, then fails it
/// before it is sent, as a connection that hung and dropped: the run's shift fails after
/// it renewed its lease, and its rollback comes after whatever happened meanwhile.
#[derive(Debug, Clone, Default)]
struct HangThenDropFirstShift(Arc<Hang>);

#[derive(Debug, Default)]
struct Hang {
    hanging: AtomicBool,
    go: AtomicBool,
}

impl aws_sdk_lambda::config::Intercept for HangThenDropFirstShift {
    fn name(&self) -> &'static str {
        "HangThenDropFirstShift"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_lambda::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_lambda::config::RuntimeComponents,
        _cfg: &mut aws_sdk_lambda::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if moves_traffic(context.request()) && !self.0.hanging.swap(true, Ordering::SeqCst) {
            let give_up = std::time::Instant::now() + Duration::from_secs(20);
            while !self.0.go.load(Ordering::SeqCst) && std::time::Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Err("connection reset by peer (the request was never answered)".into());
        }
        Ok(())
    }
}

/// A run whose shift failed after another run took its lease over, and moved traffic on,
/// does not roll that traffic back: its rollback checks the lease first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lease_does_not_roll_back_the_new_owners_traffic() {
    let env = env("rollout-stolen-before-rollback").await;
    let hang = HangThenDropFirstShift::default();
    let lambda = aws_sdk_lambda::Client::from_conf(own_lambda(&env).interceptor(hang.clone()).build());
    let run = Rollout::new(lambda, own_record(&env).await, &env.name, "live")
        .target(Target::Version("2".into()))
        .allow_no_gates(true)
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(2))
        .step_timeout(Duration::from_secs(6))
        .strategy(Strategy::Canary { percent: 20.0, interval: Duration::from_secs(5) });
    let task = run_apart(run);
    while !hang.0.hanging.load(Ordering::SeqCst) {
        assert!(!task.is_finished(), "the run ended before its first shift: {:?}", task.join());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another run takes the deployment over and moves it on to half the traffic.
    steal_the_lease(&env, "0.5").await;
    let weights = [("2".to_owned(), 0.5)].into_iter().collect();
    env.client
        .update_alias()
        .function_name(&env.name)
        .name("live")
        .function_version("1")
        .routing_config(
            aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                .set_additional_version_weights(Some(weights))
                .build(),
        )
        .send()
        .await
        .unwrap();
    hang.0.go.store(true, Ordering::SeqCst);
    match tokio::task::spawn_blocking(move || task.join().unwrap()).await.unwrap() {
        Err(RolloutError::LeaseLost { .. }) => {}
        other => panic!("a run without the lease rolled back: {other:?}"),
    }
    assert_eq!(
        env.alias().await,
        ("1".to_owned(), vec![("2".to_owned(), 0.5)]),
        "the new owner's traffic was rolled back by a run that no longer held the deployment"
    );
}

/// A rollback that fails after an error is reported with it, not dropped: the caller learns
/// that traffic may still be split, and the record stays in progress for the next run to
/// roll back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_that_fails_is_reported_and_the_next_run_finishes_it() {
    let env = env("rollout-no-way-back").await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        env.client
            .config()
            .to_builder()
            .interceptor(LoseShiftAnswers { every: true, no_way_back: true, ..LoseShiftAnswers::default() })
            .build(),
    );
    let result = Rollout::new(lambda, env.record.clone(), &env.name, "live")
        .target(Target::Version("2".into()))
        .allow_no_gates(true)
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(2))
        .step_timeout(Duration::from_secs(1))
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(5) })
        .run()
        .await;
    match result {
        Err(err @ RolloutError::RollbackFailed { .. }) => {
            let RolloutError::RollbackFailed { error, rollback, .. } = &err else { unreachable!() };
            assert!(matches!(**error, RolloutError::Lambda { operation: "UpdateAlias", .. }), "{error:?}");
            assert!(
                matches!(**rollback, RolloutError::Lambda { operation: "UpdateAlias", .. }),
                "{rollback:?}"
            );
            assert!(err.to_string().contains("traffic may still be split"), "{err}");
        }
        other => panic!("the failed rollback went unreported: {other:?}"),
    }
    assert_eq!(env.alias().await, ("1".to_owned(), vec![("2".to_owned(), 0.1)]), "still split");
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!(head.status, Status::InProgress, "{head:?}");
    assert!(head.traffic_sent, "the record says traffic moved");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let next = env.rollout().owner("next").strategy(Strategy::AllAtOnce).run().await.unwrap();
    assert!(next.recovered.unwrap().contains("rolled back to version 1"));
    assert_eq!(next.from_version, "1");
}

/// A deployment interrupted before it moved any traffic is closed without touching the
/// alias: it may have been moved since by someone the deployment never heard of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rollout_that_moved_no_traffic_leaves_the_alias_alone() {
    let env = env("rollout-interrupted-idle").await;
    set_release(&env.client, &env.name, "3").await;
    env.client.publish_version().function_name(&env.name).send().await.unwrap();
    // Stuck in a pre-traffic hook that never answers, then killed.
    let run = env
        .rollout()
        .step_timeout(Duration::from_secs(5))
        .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(5) })
        .pre_traffic(Arc::new(Silent));
    let task = tokio::spawn(async move { run.run().await });
    loop {
        if env.record.head(&env.name).await.unwrap().is_some_and(|head| head.seq >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!((head.status, head.traffic_sent), (Status::InProgress, false), "{head:?}");
    // Someone moves the alias on meanwhile.
    env.client
        .update_alias()
        .function_name(&env.name)
        .name("live")
        .function_version("3")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let next = env.rollout().owner("next").strategy(Strategy::AllAtOnce).run().await.unwrap();
    let recovered = next.recovered.clone().unwrap();
    assert!(recovered.contains("before it moved any traffic"), "{recovered}");
    assert_eq!(next.from_version, "3", "the interrupted deployment put the alias back on version 1");
    assert_eq!(next.status, Status::Succeeded);
    let old = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert_eq!(old.last().unwrap().kind, "rolled_back", "the interrupted deployment's record is closed");
}

/// Fails the first `TransactWriteItems` that writes an event of `kind`, once: before it is
/// sent when `landed` is false (a throttle, a request that never reached the table), or
/// after it was applied, losing only its answer, when `landed` is true. Everything else
/// goes through.
#[derive(Debug, Clone)]
struct FailOneEventWrite(Arc<OneEventWrite>);

#[derive(Debug)]
struct OneEventWrite {
    kind: &'static str,
    landed: bool,
    spent: AtomicBool,
    losing: AtomicBool,
}

impl FailOneEventWrite {
    fn new(kind: &'static str, landed: bool) -> Self {
        Self(Arc::new(OneEventWrite {
            kind,
            landed,
            spent: AtomicBool::default(),
            losing: AtomicBool::default(),
        }))
    }
}

impl aws_sdk_dynamodb::config::Intercept for FailOneEventWrite {
    fn name(&self) -> &'static str {
        "FailOneEventWrite"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        let transaction =
            request.headers().get("x-amz-target").is_some_and(|t| t.ends_with(".TransactWriteItems"));
        let body = request.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
        let of_kind = body.contains(&format!("\"kind\":{{\"S\":\"{}\"}}", self.0.kind));
        if transaction && of_kind && !self.0.spent.swap(true, Ordering::SeqCst) {
            if !self.0.landed {
                return Err("throttled (the write never reached the table)".into());
            }
            self.0.losing.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.0.losing.swap(false, Ordering::SeqCst) {
            return Err("connection reset by peer (the answer was lost)".into());
        }
        Ok(())
    }
}

/// A 10% canary to version 2 baking `interval`, read by a passing gate, whose record writes
/// go through `fault`.
async fn canary_over_faulty_record(
    name: &str,
    fault: &FailOneEventWrite,
    interval: Duration,
) -> (Env, Ended) {
    let env = env(name).await;
    let ddb = DynamoDbLocal::shared().await.unwrap();
    let client = ddb.client().await;
    let faulty =
        aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(fault.clone()).build());
    let result = Rollout::new(env.client.clone(), Record::new(faulty, env.record.table()), &env.name, "live")
        .target(Target::Version("2".into()))
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(2))
        .step_timeout(Duration::from_secs(1))
        .strategy(Strategy::Canary { percent: 10.0, interval })
        .gate(Scripted::new("watch", &[Verdict::Pass]))
        .run()
        .await;
    (env, result)
}

/// Runs a 10% canary, read by a passing gate, whose first `gate` event write fails as
/// `fault` says and the record then answers again: the run stops with that record error,
/// and rolls back rather than taking its own sequence for another run's lease.
async fn one_gate_write_fails(name: &str, fault: FailOneEventWrite) -> Env {
    let (env, result) = canary_over_faulty_record(name, &fault, Duration::from_secs(5)).await;
    assert!(fault.0.spent.load(Ordering::SeqCst), "no gate event was written");
    match result {
        Err(RolloutError::Record { context, .. }) => assert!(context.contains("event"), "{context}"),
        other => panic!("one failed write ended otherwise: {other:?}"),
    }
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]), "traffic is back on version 1, not left split");
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!((head.status, head.owner.contains("thief")), (Status::RolledBack, false), "{head:?}");
    assert!(head.reason.as_deref().unwrap_or_default().contains("stopped by an error"), "{head:?}");
    let events = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1), "gap-free sequence: {events:?}");
    assert_eq!(events.last().unwrap().kind, "rolled_back");
    assert_eq!(events.last().unwrap().seq, head.seq, "the head is at the last event");
    env
}

/// A write that failed without landing leaves the sequence where it was: the rollback's
/// writes meet their condition, and the alias is put back. (The sequence moved on before
/// each write, so after one lost write every later one failed its condition, the run took
/// that for another run's takeover and left the canary split.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_write_that_never_landed_still_rolls_back() {
    let env = one_gate_write_fails("rollout-write-dropped", FailOneEventWrite::new("gate", false)).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    let events = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert!(
        events.iter().all(|e| e.kind != "gate"),
        "the dropped gate event is not in the record: {events:?}"
    );
}

/// A write that landed but whose answer was lost is not written again: the next write
/// fails its condition, the head read again is still this run's one step on, and the run
/// follows it and rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_write_whose_answer_was_lost_is_not_written_twice_and_rolls_back() {
    let env = one_gate_write_fails("rollout-write-unanswered", FailOneEventWrite::new("gate", true)).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    let events = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == "gate").count(),
        1,
        "the landed gate event, once: {events:?}"
    );
}

/// An interrupted rollout whose alias someone moved on meanwhile (a hotfix to another
/// version) is closed without putting the alias back: the traffic is no longer its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rollout_whose_alias_was_moved_on_leaves_the_hotfix_alone() {
    let env = env("rollout-interrupted-hotfix").await;
    set_release(&env.client, &env.name, "3").await;
    env.client.publish_version().function_name(&env.name).send().await.unwrap();
    interrupted(&env).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert!(head.traffic_sent, "{head:?}");
    hotfix(&env, "3").await;
    assert_eq!(env.alias().await, ("3".to_owned(), vec![]));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let next = env.rollout().owner("next").strategy(Strategy::AllAtOnce).run().await.unwrap();
    let recovered = next.recovered.clone().unwrap();
    assert!(recovered.contains(&head.deployment) && recovered.contains("left as it is"), "{recovered}");
    assert_eq!(next.from_version, "3", "the hotfix was reverted to version 1 before the next run");
    assert_eq!(next.status, Status::Succeeded);
    let old = env.record.events(&env.name, &head.deployment).await.unwrap();
    let closed = old.last().unwrap();
    assert_eq!((closed.kind.as_str(), &closed.detail["version"]), ("rolled_back", &serde_json::json!("3")));
}

/// An operator's hotfix: everything on `version`, the alias's split cleared.
async fn hotfix(env: &Env, version: &str) {
    env.client
        .update_alias()
        .function_name(&env.name)
        .name("live")
        .function_version(version)
        .routing_config(
            aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                .set_additional_version_weights(Some(Default::default()))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// An interrupted rollout whose alias an operator moved on meanwhile (a hotfix to another
/// version) is not resumed: carrying on would move traffic over the hotfix. The resume is
/// refused, and the alias and the record stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_a_hotfix_on_the_alias_is_refused_and_leaves_the_hotfix() {
    let env = env("rollout-resume-hotfix").await;
    set_release(&env.client, &env.name, "3").await;
    env.client.publish_version().function_name(&env.name).send().await.unwrap();
    interrupted(&env).await;
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    let events = env.record.events(&env.name, &head.deployment).await.unwrap();
    hotfix(&env, "3").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resumed = env
        .rollout()
        .owner("resumer")
        .recovery(Recovery::Resume)
        .strategy(Strategy::Canary { percent: 40.0, interval: Duration::from_millis(100) })
        .run()
        .await;
    match resumed {
        Err(RolloutError::CannotResume { deployment, reason, .. }) => {
            assert_eq!(deployment, head.deployment);
            assert!(reason.contains("alias live was moved") && reason.contains("version 3"), "{reason}");
        }
        other => panic!("resumed over the hotfix: {other:?}"),
    }
    assert_eq!(env.alias().await, ("3".to_owned(), vec![]), "the hotfix is untouched");
    assert_eq!(env.record.head(&env.name).await.unwrap().unwrap(), head, "the record is untouched");
    assert_eq!(env.record.events(&env.name, &head.deployment).await.unwrap(), events);
}

/// Runs a 10% canary, read by a passing gate, whose `succeeded` event write fails once as
/// `fault` says.
async fn success_write_fails(name: &str, fault: &FailOneEventWrite) -> (Env, Result<Status, RolloutError>) {
    let (env, result) = canary_over_faulty_record(name, fault, Duration::from_millis(200)).await;
    let result = result.map(|outcome| outcome.status);
    assert!(fault.0.spent.load(Ordering::SeqCst), "no succeeded event was written");
    (env, result)
}

/// The write that records success lands and only its answer is lost: the head read again
/// is this run's, succeeded, so the run succeeds. (It took the lost answer for a failure
/// and rolled back a deployment its record said succeeded.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_recorded_whose_answer_was_lost_is_not_rolled_back() {
    let fault = FailOneEventWrite::new("succeeded", true);
    let (env, result) = success_write_fails("rollout-success-unanswered", &fault).await;
    assert_eq!(result.unwrap(), Status::Succeeded);
    assert_eq!(env.alias().await, ("2".to_owned(), vec![]), "the new version keeps all traffic");
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!(head.status, Status::Succeeded, "{head:?}");
    let events = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "succeeded").count(), 1, "written once: {events:?}");
    assert_eq!(events.last().unwrap().kind, "succeeded", "{events:?}");
    assert_eq!(events.last().unwrap().seq, head.seq, "the head is at the last event");
}

/// The write that records success never reaches the table: the head read again is not at
/// it, so nothing says the deployment succeeded, and the run rolls back as for any error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_write_that_never_landed_still_rolls_back() {
    let fault = FailOneEventWrite::new("succeeded", false);
    let (env, result) = success_write_fails("rollout-success-dropped", &fault).await;
    match result {
        Err(RolloutError::Record { context, .. }) => assert!(context.contains("event"), "{context}"),
        other => panic!("a success that was never recorded ended otherwise: {other:?}"),
    }
    assert_eq!(env.alias().await, ("1".to_owned(), vec![]), "traffic is back on version 1");
    let head = env.record.head(&env.name).await.unwrap().unwrap();
    assert_eq!(head.status, Status::RolledBack, "{head:?}");
    let events = env.record.events(&env.name, &head.deployment).await.unwrap();
    assert!(events.iter().all(|e| e.kind != "succeeded"), "{events:?}");
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1), "gap-free sequence: {events:?}");
}
