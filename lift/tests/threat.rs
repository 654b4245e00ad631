//! Threat detection's behaviour counters against a DynamoDB that answers as the real one
//! does, and fails or races as a test asks: the distinct-tenant counter trips on crossing
//! its threshold, once, even when the count skips it. (The counters on DynamoDB Local, under
//! real concurrency, are in `harness/tests/threat.rs`.)
#![cfg(feature = "threat")]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use lift::security::threat::{BehaviourMonitor, ThreatStore};
use serde_json::{json, Value};

/// An item of the fake table: its tenant set and whether its trip was claimed.
#[derive(Debug, Default)]
struct Item {
    members: BTreeSet<String>,
    tripped: bool,
}

/// The fake table, and what it is asked to do to the next set update.
#[derive(Debug, Default)]
struct Table {
    items: HashMap<String, Item>,
    /// Adding this member succeeds, but its answer is lost (a 500 after the write).
    lose_answer_for: Option<String>,
    /// Adding the first member also adds the second, as another instance's update
    /// landing at the same moment would.
    concurrent: Option<(String, String)>,
    /// Successful trip claims.
    claims: usize,
}

type Shared = Arc<Mutex<Table>>;

fn error(status: StatusCode, kind: &str) -> (StatusCode, String) {
    (
        status,
        json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": kind }).to_string(),
    )
}

/// `UpdateItem` as the threat store sends it: `ADD members` (the tenant set) and the
/// conditional `SET tripped` (the trip's claim).
async fn dynamodb(State(table): State<Shared>, headers: HeaderMap, body: String) -> (StatusCode, String) {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if target != "DynamoDB_20120810.UpdateItem" {
        return error(StatusCode::BAD_REQUEST, "UnknownOperationException");
    }
    let req: Value = serde_json::from_str(&body).expect("a JSON request");
    let pk = req["Key"]["pk"]["S"].as_str().expect("a string pk").to_owned();
    let update = req["UpdateExpression"].as_str().unwrap_or_default();
    let mut table = table.lock().unwrap();
    if update.starts_with("ADD members") {
        let member =
            req["ExpressionAttributeValues"][":member"]["SS"][0].as_str().expect("one member").to_owned();
        let lost = table.lose_answer_for.as_deref() == Some(member.as_str());
        let also = table.concurrent.clone().filter(|(first, _)| *first == member).map(|(_, other)| other);
        let item = table.items.entry(pk).or_default();
        item.members.insert(member);
        item.members.extend(also);
        if lost {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError");
        }
        let mut attributes = json!({ "members": { "SS": item.members.iter().collect::<Vec<_>>() } });
        if item.tripped {
            attributes["tripped"] = json!({ "BOOL": true });
        }
        return (StatusCode::OK, json!({ "Attributes": attributes }).to_string());
    }
    if update.starts_with("SET tripped") {
        match table.items.get_mut(&pk) {
            Some(item) if !item.tripped => {
                item.tripped = true;
                table.claims += 1;
                return (StatusCode::OK, "{}".to_owned());
            }
            _ => return error(StatusCode::BAD_REQUEST, "ConditionalCheckFailedException"),
        }
    }
    error(StatusCode::BAD_REQUEST, "ValidationException")
}

/// A monitor allowing two tenants per principal (the third trips), over the fake table.
async fn monitor(table: Shared) -> BehaviourMonitor {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/", axum::routing::post(dynamodb)).with_state(table);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let store = ThreatStore::new(aws_sdk_dynamodb::Client::from_conf(config)).with_table("blocklist");
    // One window for the whole test, whenever it runs.
    BehaviourMonitor::new(store)
        .tenants_per_principal(2)
        .tenant_window(Duration::from_secs(400 * 24 * 3600))
        .validate()
        .unwrap()
}

/// The update that brought the set to the threshold was stored but its answer lost: the
/// next tenant finds the count past the threshold, never at it, and still trips, once.
#[tokio::test]
async fn distinct_tenants_trip_when_a_lost_answer_skips_the_threshold() {
    let table = Shared::default();
    table.lock().unwrap().lose_answer_for = Some("t-3".into());
    let monitor = monitor(table.clone()).await;
    for tenant in ["t-1", "t-2"] {
        let signal = monitor.tenant_touched("mallory", tenant).await.unwrap();
        assert!(!signal.tripped() && !signal.just_tripped(), "{tenant}: {signal:?}");
    }
    assert!(monitor.tenant_touched("mallory", "t-3").await.is_err(), "the answer was lost");
    let past = monitor.tenant_touched("mallory", "t-4").await.unwrap();
    assert_eq!((past.count, past.threshold), (4, 3));
    assert!(past.tripped() && past.just_tripped(), "tripped past the threshold it skipped: {past:?}");
    let again = monitor.tenant_touched("mallory", "t-5").await.unwrap();
    assert!(again.tripped() && !again.just_tripped(), "and only once: {again:?}");
    assert!(!monitor.tenant_touched("mallory", "t-1").await.unwrap().just_tripped());
    assert_eq!(table.lock().unwrap().claims, 1);
}

/// Two tenants added at the same moment (another instance's update lands with this one):
/// the count goes from two to four, and this event trips.
#[tokio::test]
async fn distinct_tenants_trip_when_concurrent_updates_skip_the_threshold() {
    let table = Shared::default();
    table.lock().unwrap().concurrent = Some(("t-3".into(), "t-other".into()));
    let monitor = monitor(table.clone()).await;
    for tenant in ["t-1", "t-2"] {
        assert!(!monitor.tenant_touched("mallory", tenant).await.unwrap().tripped());
    }
    let jumped = monitor.tenant_touched("mallory", "t-3").await.unwrap();
    assert_eq!(jumped.count, 4);
    assert!(jumped.just_tripped(), "{jumped:?}");
    assert!(!monitor.tenant_touched("mallory", "t-4").await.unwrap().just_tripped());
    assert_eq!(table.lock().unwrap().claims, 1);
}

/// A count that reaches the threshold exactly trips on that event, as before, and another
/// principal's tenants count apart.
#[tokio::test]
async fn distinct_tenants_trip_at_the_threshold_and_per_principal() {
    let table = Shared::default();
    let monitor = monitor(table.clone()).await;
    for tenant in ["t-1", "t-2"] {
        assert!(!monitor.tenant_touched("alice", tenant).await.unwrap().tripped());
        assert!(!monitor.tenant_touched("bob", tenant).await.unwrap().tripped());
    }
    let third = monitor.tenant_touched("alice", "t-3").await.unwrap();
    assert!(third.just_tripped() && third.count == 3, "{third:?}");
    // The same tenant again is no new tenant.
    assert!(!monitor.tenant_touched("bob", "t-2").await.unwrap().tripped());
    assert_eq!(table.lock().unwrap().claims, 1);
}
