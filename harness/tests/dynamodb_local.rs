//! `lift_harness::dynamodb` against a real DynamoDB Local (on a machine with Java and no
//! Docker, the shared jar instance).

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeValue, KeyType, ScalarAttributeType, Select, TableStatus, TimeToLiveStatus,
};
use lift::store::tables;
use lift_harness::dynamodb::{item_to_json, DynamoDbError, DynamoDbLocal, Source};
use serde_json::Value;

const AUDIT_EVENTS: &str = include_str!("fixtures/dynamodb/audit_events.json");

async fn local() -> Arc<DynamoDbLocal> {
    DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}\n{err:?}"))
}

/// Runs one test of this binary in a child process and returns its stdout.
fn run_child(test: &str, set: &[(&str, &str)], remove: &[&str]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for (k, v) in set {
        command.env(k, v);
    }
    for k in remove {
        command.env_remove(k);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child {test} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The value after `key=` in a child's output (libtest may print the test name before it).
fn reported<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.split_once(&format!("{key}=")).map(|(_, value)| value))
        .unwrap_or_else(|| panic!("no {key}= in child output: {stdout}"))
}

#[tokio::test]
async fn shared_is_one_instance_per_process() {
    let a = local().await;
    let b = DynamoDbLocal::shared().await.unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.endpoint(), b.endpoint());
    assert!(a.endpoint().starts_with("http"), "{}", a.endpoint());
    // It answers real requests.
    a.client().await.list_tables().send().await.unwrap();
}

#[tokio::test]
async fn another_process_uses_the_same_instance() {
    let local = local().await;
    let stdout = run_child("child_reports_its_endpoint", &[("LIFT_TEST_CHILD", "endpoint")], &[]);
    let child = reported(&stdout, "endpoint");
    if local.source() == Source::Docker {
        // A container per process: nothing to share.
        assert_ne!(child, local.endpoint());
    } else {
        assert_eq!(child, local.endpoint(), "the child started its own instance");
    }
}

/// Only does something as the child of `another_process_uses_the_same_instance`.
#[tokio::test]
async fn child_reports_its_endpoint() {
    if std::env::var("LIFT_TEST_CHILD").as_deref() != Ok("endpoint") {
        return;
    }
    let local = local().await;
    println!("endpoint={}", local.endpoint());
}

#[tokio::test]
async fn with_no_way_to_run_it_the_error_names_all_three() {
    let cache = std::env::temp_dir().join(format!("lift-ddb-test-{}", uuid::Uuid::new_v4()));
    let stdout = run_child(
        "child_reports_unavailable",
        &[
            ("LIFT_TEST_CHILD", "unavailable"),
            ("DOCKER_HOST", "unix:///nonexistent/lift/docker.sock"),
            ("PATH", "/nonexistent/lift/bin"),
            ("LIFT_CACHE_DIR", cache.to_str().unwrap()),
        ],
        &["LIFT_DYNAMODB_ENDPOINT", "JAVA_HOME"],
    );
    let error = reported(&stdout, "error");
    assert!(error.starts_with("no dynamodb local available: "), "{error}");
    assert!(error.contains("no LIFT_DYNAMODB_ENDPOINT"), "{error}");
    assert!(error.contains("no Docker engine at unix:///nonexistent/lift/docker.sock"), "{error}");
    assert!(error.contains("java not found on PATH"), "{error}");
    let _ = std::fs::remove_dir_all(cache);
}

/// Only does something as the child of `with_no_way_to_run_it_the_error_names_all_three`.
#[tokio::test]
async fn child_reports_unavailable() {
    if std::env::var("LIFT_TEST_CHILD").as_deref() != Ok("unavailable") {
        return;
    }
    let err = DynamoDbLocal::start().await.unwrap_err();
    assert!(matches!(err, DynamoDbError::Unavailable { .. }), "{err:?}");
    println!("error={err}");
}

#[tokio::test]
async fn create_table_gives_an_active_table_with_keys_and_ttl() {
    let local = local().await;
    let client = local.client().await;
    let def = tables::audit();
    let name = local.create_table(&def).await.unwrap();
    assert!(name.starts_with("lift-audit-") && name != "lift-audit", "{name}");

    let table = client.describe_table().table_name(&name).send().await.unwrap().table.unwrap();
    assert_eq!(table.table_status(), Some(&TableStatus::Active));
    let keys: Vec<(&str, &KeyType)> =
        table.key_schema().iter().map(|k| (k.attribute_name(), k.key_type())).collect();
    assert_eq!(keys, [("pk", &KeyType::Hash), ("seq", &KeyType::Range)]);
    let mut types: Vec<(&str, &ScalarAttributeType)> =
        table.attribute_definitions().iter().map(|a| (a.attribute_name(), a.attribute_type())).collect();
    types.sort_by_key(|(name, _)| *name);
    assert_eq!(types, [("pk", &ScalarAttributeType::S), ("seq", &ScalarAttributeType::N)]);

    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
}

/// `create_if_missing` creates a table with its TTL once, leaves an existing one alone (its
/// items too), and returns a real failure rather than taking it for "exists".
#[tokio::test]
async fn create_if_missing_creates_once_and_never_hides_a_failure() {
    let local = local().await;
    let client = local.client().await;
    let def = tables::idempotency();
    let name = format!("lift-create-if-missing-{}", uuid::Uuid::new_v4().simple());
    assert!(def.create_if_missing(&client, &name).await.unwrap());
    let ttl = client.describe_time_to_live().table_name(&name).send().await.unwrap();
    assert_eq!(ttl.time_to_live_description.unwrap().time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    client
        .put_item()
        .table_name(&name)
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("kept".into()))
        .send()
        .await
        .unwrap();
    assert!(!def.create_if_missing(&client, &name).await.unwrap(), "an existing table is not created again");
    let items = client.scan().table_name(&name).send().await.unwrap();
    assert_eq!(items.count(), 1, "the existing table and its item are left alone");

    // Nothing listens on port 9: the failure comes back, it is not read as "exists".
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("k", "s", None, None, "test"))
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let unreachable = aws_sdk_dynamodb::Client::from_conf(config);
    assert!(def.create_if_missing(&unreachable, &name).await.is_err());
}

#[tokio::test]
async fn two_tables_from_one_definition_get_different_names() {
    let local = local().await;
    let def = tables::rate_limits();
    let a = local.create_table(&def).await.unwrap();
    let b = local.create_table(&def).await.unwrap();
    assert_ne!(a, b);
    let client = local.client().await;
    for name in [&a, &b] {
        let table = client.describe_table().table_name(name).send().await.unwrap();
        assert_eq!(table.table.unwrap().table_status(), Some(&TableStatus::Active));
    }
}

#[tokio::test]
async fn fixture_items_are_read_back() {
    let local = local().await;
    let table = local.create_table(&tables::audit()).await.unwrap();
    assert_eq!(local.load_fixture(&table, AUDIT_EVENTS).await.unwrap(), 4);
    let fixture: Vec<Value> = serde_json::from_str(AUDIT_EVENTS).unwrap();
    let client = local.client().await;

    let acme = client
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("tenant#acme".into()))
        .send()
        .await
        .unwrap();
    let items: Vec<Value> = acme.items().iter().map(item_to_json).collect();
    assert_eq!(items, fixture[..3], "query returns the acme events in order");

    let globex = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("tenant#globex".into()))
        .key("seq", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("globex event");
    assert_eq!(globex["mfa"], AttributeValue::Bool(true));
    assert_eq!(item_to_json(&globex), fixture[3]);
}

#[tokio::test]
async fn large_fixtures_are_written_in_batches() {
    let local = local().await;
    let table = local.create_table(&tables::audit()).await.unwrap();
    let items: Vec<Value> = (0..60)
        .map(|seq| serde_json::json!({"pk": "tenant#bulk", "seq": seq, "payload": {"n": [seq]}}))
        .collect();
    let json = serde_json::to_string(&items).unwrap();
    assert_eq!(local.load_fixture(&table, &json).await.unwrap(), 60);

    let client = local.client().await;
    let mut count = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&table)
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        count += page.count();
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert_eq!(count, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_can_be_created_concurrently() {
    let local = local().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let local = Arc::clone(&local);
        tasks.spawn(async move { local.create_table(&tables::idempotency()).await });
    }
    let mut names = HashSet::new();
    while let Some(result) = tasks.join_next().await {
        names.insert(result.unwrap().unwrap());
    }
    assert_eq!(names.len(), 8);
    let client = local.client().await;
    for name in &names {
        let table = client.describe_table().table_name(name).send().await.unwrap();
        assert_eq!(table.table.unwrap().table_status(), Some(&TableStatus::Active));
    }
}

/// A warm-up makes real operations and stops on what they measured: at once when the target
/// is met (any JVM answers within a minute), after one batch when time is up (no operation
/// answers in no time), and it never reports warm a batch that missed the target.
#[tokio::test]
async fn a_warm_up_stops_on_what_it_measured() {
    use lift_harness::dynamodb::{WarmOutcome, WarmTarget};
    use std::time::Duration;
    let local = local().await;
    let met = local
        .warm_up(WarmTarget { median: Duration::from_secs(60), limit: Duration::from_secs(60) })
        .await
        .unwrap();
    assert_eq!(met.outcome, WarmOutcome::Warm, "{met}");
    assert_eq!((met.batch_medians_ms.len(), met.operations), (1, 8 * 8 * 3), "{met}");
    assert!(met.batch_medians_ms[0] > 0.0, "{met}");
    let never = local.warm_up(WarmTarget { median: Duration::ZERO, limit: Duration::ZERO }).await.unwrap();
    assert_eq!(never.outcome, WarmOutcome::Limit, "{never}");
    assert_eq!(never.batch_medians_ms.len(), 1, "{never}");
    assert!(
        never.to_string().starts_with("still getting faster at the time limit after 192 operations"),
        "{never}"
    );
}
