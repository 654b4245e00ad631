//! Threat detection on real DynamoDB Local: attacks are refused and audited, failed-login
//! bursts trip exactly at the threshold under concurrency, blocks hold until they expire,
//! revoked tokens are reported, the webhook gets the alert, benign payments pass untouched.

use std::convert::Infallible;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use lift::security::audit::{AuditQuery, AuditTrail, Outcome};
use lift::security::threat::{
    BehaviourMonitor, BlockTarget, FailedLogin, ThreatAssessment, ThreatLayer, ThreatStore, TokenRef,
    WebhookAlert, INCIDENT_ACTION, MAX_INCIDENT_JSON,
};
use lift::{Body, ClientIp, Context, Principal, Request, Response};
use lift_harness::dynamodb::DynamoDbLocal;
use tower::{Layer, Service, ServiceExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn store() -> (aws_sdk_dynamodb::Client, ThreatStore, AuditTrail) {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let blocklist = local.create_table(&lift::store::tables::blocklist()).await.expect("blocklist table");
    let audit = local.create_table(&lift::store::tables::audit()).await.expect("audit table");
    let client = local.client().await;
    let trail = AuditTrail::builder().client(client.clone()).table(audit).build().expect("a trail");
    (client.clone(), ThreatStore::new(client).with_table(blocklist), trail)
}

fn request(method: &str, uri: &str, ip: &str, body: &str) -> Request {
    request_as(Principal::new("alice", "acme").with_issuer(OURS), method, uri, ip, body)
}

/// Our identity provider, and a partner's that also has a user called `alice`.
const OURS: &str = "https://id.example.com";
const PARTNER: &str = "https://id.partner.example";

fn request_as(principal: Principal, method: &str, uri: &str, ip: &str, body: &str) -> Request {
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("authorization", "Bearer secret-token-value")
        .header("cookie", "session=cookie-value")
        .header("user-agent", "harness/1.0")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let mut ctx = Context::new(format!("req-{}", uuid::Uuid::new_v4()));
    ctx.set_principal(principal);
    req.extensions_mut().insert(ctx);
    req.extensions_mut().insert(ClientIp(ip.parse().unwrap()));
    req
}

/// The handler: answers with the score it was given.
fn echo_score(req: Request) -> std::future::Ready<Result<Response, Infallible>> {
    let score = ThreatAssessment::of(&req).map(|a| a.score().to_string()).unwrap_or_else(|| "none".into());
    std::future::ready(Ok(Response::new(Body::from(score))))
}

/// A login endpoint that always refuses, naming the user it refused.
fn refuse_login(_req: Request) -> std::future::Ready<Result<Response, Infallible>> {
    let mut res = lift::Error::unauthorized("Bearer").into_response();
    res.extensions_mut().insert(FailedLogin("alice".into()));
    std::future::ready(Ok(res))
}

/// A login endpoint that always refuses, naming the user the request's `x-login` header names.
fn refuse_named_login(req: Request) -> std::future::Ready<Result<Response, Infallible>> {
    let user = req.headers().get("x-login").and_then(|v| v.to_str().ok()).unwrap_or("alice").to_owned();
    let mut res = lift::Error::unauthorized("Bearer").into_response();
    res.extensions_mut().insert(FailedLogin(user));
    std::future::ready(Ok(res))
}

fn login_as(user: &str, ip: &str) -> Request {
    let mut req = request("POST", "/login", ip, "{}");
    req.headers_mut().insert("x-login", user.parse().unwrap());
    req
}

/// JSON keys are chosen by the client: a key that matched a rule is the payload itself, and
/// may be half a megabyte. Neither reaches the audit trail, every entry stays small enough
/// to be stored, and an ordinary incident after them is stored too.
#[tokio::test]
async fn attacker_chosen_keys_never_reach_the_trail_and_every_incident_is_stored() {
    let (_, store, trail) = store().await;
    let svc = ThreatLayer::builder()
        .store(store)
        .audit(trail.clone())
        .build()
        .unwrap()
        .layer(tower::service_fn(echo_score));
    let tenant = format!("acme-{}", uuid::Uuid::new_v4());
    let huge_key = format!(r#"{{"{}": "<script>alert(1)</script>"}}"#, "k".repeat(500 * 1024));
    let attacks = [
        ("POST", "/comments", huge_key.as_str()),
        ("POST", "/comments", r#"{"<img src=x onerror=alert(1)>": 1}"#),
        ("GET", "/payments?id=1%27%20OR%20%271%27%3D%271", ""),
    ];
    for (method, uri, body) in attacks {
        let req = request_as(Principal::new("alice", tenant.as_str()), method, uri, "198.51.100.90", body);
        assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN, "{uri}");
    }
    let entries = trail.query(AuditQuery::tenant(&tenant).action(INCIDENT_ACTION)).await.unwrap();
    assert_eq!(entries.len(), 3, "every incident stored");
    for entry in &entries {
        let detail = &entry.entry.detail;
        assert!(detail.len() <= MAX_INCIDENT_JSON, "{} bytes", detail.len());
        assert!(!detail.contains("onerror") && !detail.contains("kkkkkkkk"), "{detail}");
        let snapshot: serde_json::Value = serde_json::from_str(detail).unwrap();
        assert!(!snapshot["findings"].as_array().unwrap().is_empty());
    }
}

/// An attacker fails N-1 times, then once as a user name too long to be a DynamoDB key,
/// then on: the IP is blocked all the same.
#[tokio::test]
async fn a_failure_whose_user_cannot_be_counted_still_counts_for_the_ip() {
    let (_, store, _) = store().await;
    let monitor = BehaviourMonitor::new(store.clone())
        .auth_failures_per_ip(4)
        .auth_failures_per_user(100)
        .auth_window(Duration::from_secs(3600));
    let layer = ThreatLayer::builder()
        .store(store.clone())
        .behaviour(monitor)
        .block_ip_for(Duration::from_secs(60))
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(refuse_named_login));
    let ip = "198.51.100.91";
    let long_user = "u".repeat(3 * 1024);
    let users = ["alice", "alice", "alice", long_user.as_str(), "alice", "alice", "alice", "alice", "alice"];
    for user in users {
        let _ = svc.clone().oneshot(login_as(user, ip)).await.unwrap();
    }
    assert!(
        store.blocked_until(&BlockTarget::Ip(ip.parse().unwrap())).await.unwrap().is_some(),
        "the ip is blocked"
    );
}

/// An IPv6 client with a /64 takes a new address for every failed login: the attempts are
/// counted over the /64, as its block would cover it, so the burst still trips and the /64
/// is blocked. Counted per address, no one address reached the threshold.
#[tokio::test]
async fn failed_logins_from_new_addresses_of_one_ipv6_64_count_together() {
    let (_, store, _) = store().await;
    let monitor = BehaviourMonitor::new(store.clone())
        .auth_failures_per_ip(4)
        .auth_failures_per_user(100)
        .auth_window(Duration::from_secs(3600));
    let layer = ThreatLayer::builder()
        .store(store.clone())
        .behaviour(monitor)
        .block_ip_for(Duration::from_secs(60))
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(refuse_named_login));
    for n in 1..=6 {
        let ip = format!("2001:db8:94:7::{n:x}");
        let _ = svc.clone().oneshot(login_as("alice", &ip)).await.unwrap();
    }
    assert!(
        store
            .blocked_until(&BlockTarget::Ip("2001:db8:94:7::ffff".parse().unwrap()))
            .await
            .unwrap()
            .is_some(),
        "the /64 is blocked"
    );
}

/// The failure that reached the threshold was counted but its answer lost (a timeout after
/// the `ADD`): the count passes the threshold unseen, and the next failure trips it, once.
#[tokio::test]
async fn a_count_that_skips_the_threshold_still_trips_once() {
    let (client, store, _) = store().await;
    let monitor = BehaviourMonitor::new(store.clone())
        .auth_failures_per_ip(5)
        .auth_window(Duration::from_secs(3600))
        .validate()
        .unwrap();
    let ip: IpAddr = "198.51.100.94".parse().unwrap();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let window = now - now % 3600;
    client
        .put_item()
        .table_name(store.table())
        .item("pk", AttributeValue::S(format!("AUTHFAIL#ip#{ip}#{window}")))
        .item("count", AttributeValue::N("5".into()))
        .item("expires_at", AttributeValue::N((window + 3660).to_string()))
        .send()
        .await
        .unwrap();
    let (first, _) = monitor.auth_failed(Some(ip), None).await.unwrap();
    let first = first.unwrap();
    assert_eq!(first.count, 6);
    assert!(first.just_tripped(), "tripped past the threshold it skipped");
    let (second, _) = monitor.auth_failed(Some(ip), None).await.unwrap();
    assert!(!second.unwrap().just_tripped(), "and only once");
}

/// Failures for one user name come from anywhere: a burst of them is an incident, but it
/// blocks no IP, or an attacker could have a victim's own login block the victim's IP.
#[tokio::test]
async fn a_burst_for_one_user_blocks_no_ip() {
    let (_, store, trail) = store().await;
    let monitor = BehaviourMonitor::new(store.clone())
        .auth_failures_per_ip(100)
        .auth_failures_per_user(3)
        .auth_window(Duration::from_secs(3600));
    let svc = ThreatLayer::builder()
        .store(store.clone())
        .behaviour(monitor)
        .audit(trail.clone())
        .block_ip_for(Duration::from_secs(60))
        .build()
        .unwrap()
        .layer(tower::service_fn(refuse_named_login));
    let victim = format!("victim-{}", uuid::Uuid::new_v4());
    for _ in 0..2 {
        let _ = svc.clone().oneshot(login_as(&victim, "198.51.100.92")).await.unwrap();
    }
    let victims_ip = "198.51.100.93";
    let res = svc.clone().oneshot(login_as(&victim, victims_ip)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(store.blocked_until(&BlockTarget::Ip(victims_ip.parse().unwrap())).await.unwrap().is_none());
    assert_eq!(
        svc.clone().oneshot(request("GET", "/p", victims_ip, "")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "the victim's IP still reaches the service"
    );
    let incidents = trail.query(AuditQuery::tenant("acme").action(INCIDENT_ACTION)).await.unwrap();
    assert_eq!(incidents.len(), 1, "the burst is an incident still");
    assert!(incidents[0].entry.detail.contains("failed logins per user"));
    assert!(!incidents[0].entry.detail.contains("blocked_ip"));
}

/// An IPv6 client holds a whole /64: a block covers it, not the one address it attacked from.
#[tokio::test]
async fn an_ipv6_block_covers_the_clients_64() {
    let (_, store, _) = store().await;
    let svc = ThreatLayer::builder()
        .store(store.clone())
        .block_ip_for(Duration::from_secs(60))
        .build()
        .unwrap()
        .layer(tower::service_fn(echo_score));
    let attack = request("GET", "/payments?id=1%27%20OR%20%271%27%3D%271", "2001:db8:90:1::10", "");
    assert_eq!(svc.clone().oneshot(attack).await.unwrap().status(), StatusCode::FORBIDDEN);
    let from = |ip: &str| request("GET", "/p", ip, "");
    assert_eq!(
        svc.clone().oneshot(from("2001:db8:90:1:ffff::99")).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "the next address of the same /64"
    );
    assert_eq!(svc.oneshot(from("2001:db8:90:2::10")).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn sql_injection_is_refused_audited_and_the_ip_blocked() {
    let (_, store, trail) = store().await;
    let layer = ThreatLayer::builder()
        .store(store.clone())
        .audit(trail.clone())
        .block_ip_for(Duration::from_secs(60))
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(echo_score));
    let ip = "198.51.100.10";
    let attack = request("GET", "/payments?id=1%27%20OR%20%271%27%3D%271", ip, "");
    let res = svc.clone().oneshot(attack).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let entries = trail.query(AuditQuery::tenant("acme").action(INCIDENT_ACTION)).await.unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0].entry;
    assert_eq!((entry.actor.as_str(), entry.outcome, entry.source.as_str()), ("alice", Outcome::Denied, ip));
    // Which issuer's `alice`: in the entry, under the chain's hash, and in the snapshot.
    assert_eq!(entry.issuer.as_deref(), Some("https://id.example.com"));
    let snapshot: serde_json::Value = serde_json::from_str(&entry.detail).unwrap();
    assert_eq!(snapshot["issuer"], "https://id.example.com");
    assert_eq!(snapshot["findings"][0]["kind"], "sql_injection");
    assert_eq!(snapshot["findings"][0]["location"], serde_json::json!({"in": "query", "name": "id"}));
    assert!(snapshot["score"].as_u64().unwrap() >= 70);
    assert!(!entry.detail.contains("secret-token-value") && !entry.detail.contains("cookie-value"));
    assert!(snapshot["actions"].as_array().unwrap().contains(&"blocked_ip".into()));
    assert!(trail.verify("acme").await.is_ok());

    // The playbook blocked the IP: even a benign request from it is refused now.
    assert!(store.blocked_until(&BlockTarget::Ip(ip.parse().unwrap())).await.unwrap().is_some());
    let benign = request("GET", "/payments/pay_1", ip, "");
    assert_eq!(svc.clone().oneshot(benign).await.unwrap().status(), StatusCode::FORBIDDEN);
    let other = request("GET", "/payments/pay_1", "198.51.100.11", "");
    assert_eq!(svc.oneshot(other).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_login_bursts_trip_exactly_at_the_threshold_under_concurrency() {
    let (_, store, _) = store().await;
    let monitor = BehaviourMonitor::new(store)
        .auth_failures_per_ip(5)
        .auth_failures_per_user(8)
        .auth_window(Duration::from_secs(3600))
        .validate()
        .unwrap();
    let ip: IpAddr = "198.51.100.20".parse().unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let monitor = monitor.clone();
            tokio::spawn(async move { monitor.auth_failed(Some(ip), Some("bob")).await.unwrap() })
        })
        .collect();
    let mut by_ip = Vec::new();
    let mut by_user = Vec::new();
    for task in tasks {
        let (i, u) = task.await.unwrap();
        by_ip.push(i.unwrap());
        by_user.push(u.unwrap());
    }
    let mut counts: Vec<u64> = by_ip.iter().map(|s| s.count).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<_>>(), "every failure counted once");
    assert_eq!(by_ip.iter().filter(|s| s.just_tripped()).count(), 1);
    assert_eq!(by_ip.iter().filter(|s| s.tripped()).count(), 16);
    assert_eq!(by_user.iter().filter(|s| s.just_tripped()).count(), 1);
    assert_eq!(by_user.iter().filter(|s| s.tripped()).count(), 13);
}

#[tokio::test]
async fn a_burst_through_the_layer_blocks_the_ip_at_the_threshold() {
    let (_, store, trail) = store().await;
    let monitor = BehaviourMonitor::new(store.clone())
        .auth_failures_per_ip(3)
        .auth_failures_per_user(100)
        .auth_window(Duration::from_secs(3600));
    let layer = ThreatLayer::builder()
        .store(store.clone())
        .behaviour(monitor)
        .audit(trail.clone())
        .block_ip_for(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut svc = layer.layer(tower::service_fn(refuse_login));
    let ip = "198.51.100.30";
    for _ in 0..3 {
        let res = svc.ready().await.unwrap().call(request("POST", "/login", ip, "{}")).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = svc.ready().await.unwrap().call(request("POST", "/login", ip, "{}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "blocked after the third failure");
    let incidents = trail.query(AuditQuery::tenant("acme").action(INCIDENT_ACTION)).await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert!(incidents[0].entry.detail.contains("auth_failure_burst"));
}

#[tokio::test]
async fn a_blocked_ip_or_principal_is_refused_until_the_block_expires() {
    let (client, store, _) = store().await;
    let svc =
        ThreatLayer::builder().store(store.clone()).build().unwrap().layer(tower::service_fn(echo_score));
    let ip = "198.51.100.40";
    let target = BlockTarget::Ip(ip.parse().unwrap());
    store.block(&target, Duration::from_secs(2), "test").await.unwrap();
    let until = store.blocked_until(&target).await.unwrap().expect("blocked");
    assert!(until > SystemTime::now() && until <= SystemTime::now() + Duration::from_secs(2));
    assert_eq!(
        svc.clone().oneshot(request("GET", "/p", ip, "")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(store.blocked_until(&target).await.unwrap(), None);
    assert_eq!(svc.clone().oneshot(request("GET", "/p", ip, "")).await.unwrap().status(), StatusCode::OK);
    // DynamoDB's TTL deletes lazily: the expired item is still there, the lookup ignores it.
    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("BLOCK#ip#{ip}")))
        .send()
        .await
        .unwrap();
    assert!(item.item().is_some_and(|i| i.contains_key("expires_at")));

    let principal = BlockTarget::Principal("alice".into());
    store.block(&principal, Duration::from_secs(60), "test").await.unwrap();
    assert_eq!(
        svc.clone().oneshot(request("GET", "/p", ip, "")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    store.unblock(&principal).await.unwrap();
    assert_eq!(svc.oneshot(request("GET", "/p", ip, "")).await.unwrap().status(), StatusCode::OK);
}

/// A block of one issuer's `alice` refuses her and leaves another issuer's `alice`, and an
/// `alice` with no issuer, alone; a block of the subject refuses every `alice`.
#[tokio::test]
async fn a_caller_block_refuses_that_issuers_user_alone() {
    let (_, store, _) = store().await;
    let svc =
        ThreatLayer::builder().store(store.clone()).build().unwrap().layer(tower::service_fn(echo_score));
    let status = |principal: Principal| {
        let svc = svc.clone();
        async move { svc.oneshot(request_as(principal, "GET", "/p", "198.51.100.61", "")).await.unwrap().status() }
    };
    let ours = || Principal::new("alice", "acme").with_issuer(OURS);
    let partners = || Principal::new("alice", "acme").with_issuer(PARTNER);
    let unissued = || Principal::new("alice", "acme");

    let partner_alice = BlockTarget::caller(PARTNER, "alice");
    store.block(&partner_alice, Duration::from_secs(60), "test").await.unwrap();
    assert_eq!(status(partners()).await, StatusCode::FORBIDDEN, "the blocked caller");
    assert_eq!(status(ours()).await, StatusCode::OK, "another issuer's alice");
    assert_eq!(status(unissued()).await, StatusCode::OK, "an alice with no issuer");
    store.unblock(&partner_alice).await.unwrap();
    assert_eq!(status(partners()).await, StatusCode::OK, "unblocked");

    // Joined naively, issuer `…|x` with subject `alice` and our issuer with subject
    // `x|alice` would share a key: blocking the first must not refuse the second.
    let look_alike = BlockTarget::caller(format!("{OURS}|x"), "alice");
    store.block(&look_alike, Duration::from_secs(60), "test").await.unwrap();
    let spelled = Principal::new("x|alice", "acme").with_issuer(OURS);
    assert_eq!(status(spelled).await, StatusCode::OK, "a look-alike key blocks no one else");
    store.unblock(&look_alike).await.unwrap();

    let unissued_alice = BlockTarget::caller("", "alice");
    store.block(&unissued_alice, Duration::from_secs(60), "test").await.unwrap();
    assert_eq!(status(unissued()).await, StatusCode::FORBIDDEN, "the alice with no issuer");
    assert_eq!(status(ours()).await, StatusCode::OK);
    store.unblock(&unissued_alice).await.unwrap();

    let every_alice = BlockTarget::Principal("alice".into());
    store.block(&every_alice, Duration::from_secs(60), "test").await.unwrap();
    for principal in [ours(), partners(), unissued()] {
        assert_eq!(status(principal).await, StatusCode::FORBIDDEN, "a subject block holds for every issuer");
    }
    store.unblock(&every_alice).await.unwrap();
    assert_eq!(status(ours()).await, StatusCode::OK);
}

/// An attack made under a partner's `alice` blocks that caller: she is refused afterwards,
/// and our own `alice` is not locked out by a namesake's attack.
#[tokio::test]
async fn an_incident_blocks_its_principal_not_another_issuers_namesake() {
    let (_, store, trail) = store().await;
    let svc = ThreatLayer::builder()
        .store(store.clone())
        .audit(trail.clone())
        .block_principal_for(Duration::from_secs(60))
        .build()
        .unwrap()
        .layer(tower::service_fn(echo_score));
    let tenant = format!("acme-{}", uuid::Uuid::new_v4());
    let ours = || Principal::new("alice", tenant.as_str()).with_issuer(OURS);
    let partners = || Principal::new("alice", tenant.as_str()).with_issuer(PARTNER);
    // Each from its own IP: an IP block would not explain what follows.
    let attack =
        request_as(partners(), "GET", "/payments?id=1%27%20OR%20%271%27%3D%271", "198.51.100.71", "");
    assert_eq!(svc.clone().oneshot(attack).await.unwrap().status(), StatusCode::FORBIDDEN);

    let benign = |principal: Principal, ip: &str| request_as(principal, "GET", "/p", ip, "");
    assert_eq!(
        svc.clone().oneshot(benign(partners(), "198.51.100.72")).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "the attacking caller is blocked from any IP"
    );
    assert_eq!(
        svc.clone().oneshot(benign(ours(), "198.51.100.73")).await.unwrap().status(),
        StatusCode::OK,
        "our alice is not blocked for the partner's"
    );
    assert!(store.blocked_until(&BlockTarget::caller(PARTNER, "alice")).await.unwrap().is_some());
    assert!(store.blocked_until(&BlockTarget::caller(OURS, "alice")).await.unwrap().is_none());
    assert!(store.blocked_until(&BlockTarget::Principal("alice".into())).await.unwrap().is_none());

    let entries = trail.query(AuditQuery::tenant(&tenant).action(INCIDENT_ACTION)).await.unwrap();
    assert_eq!(entries.len(), 1);
    let detail: serde_json::Value = serde_json::from_str(&entries[0].entry.detail).unwrap();
    assert_eq!(detail["actions"], serde_json::json!(["blocked_principal", "audited"]));
    assert_eq!(entries[0].entry.issuer.as_deref(), Some(PARTNER));
    store.unblock(&BlockTarget::caller(PARTNER, "alice")).await.unwrap();
}

/// The blocklist read is one BatchGetItem: with DynamoDB unreachable it fails open, as
/// documented (the request passes, the detectors still run and still refuse an attack),
/// and never answers a 5xx for the lookup.
#[tokio::test]
async fn an_unreachable_blocklist_fails_open_and_the_detectors_still_refuse() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = lift_harness::dynamodb::client_for(&format!("http://127.0.0.1:{port}"), "us-east-1");
    let svc = ThreatLayer::builder()
        .store(ThreatStore::new(dead).with_table("lift-blocklist"))
        .build()
        .unwrap()
        .layer(tower::service_fn(echo_score));
    let benign = svc.clone().oneshot(request("GET", "/p", "198.51.100.81", "")).await.unwrap();
    assert_eq!((benign.status(), benign.into_body().as_bytes().to_vec()), (StatusCode::OK, b"0".to_vec()));
    let attack = request("GET", "/payments?id=1%27%20OR%20%271%27%3D%271", "198.51.100.81", "");
    assert_eq!(svc.oneshot(attack).await.unwrap().status(), StatusCode::FORBIDDEN);
}

/// A threat store on a new blocklist table, reaching DynamoDB Local through a fault proxy.
async fn store_behind_proxy() -> (lift_harness::faults::AwsFaultProxy, ThreatStore) {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let blocklist = local.create_table(&lift::store::tables::blocklist()).await.expect("blocklist table");
    let proxy = lift_harness::faults::AwsFaultProxy::start(local.endpoint()).await.unwrap();
    let client = lift_harness::dynamodb::client_for(&proxy.endpoint(), "us-east-1");
    let store = ThreatStore::new(client).with_table(blocklist);
    (proxy, store)
}

/// DynamoDB may answer a batch with its keys handed back unprocessed (throttling, size
/// limits), with a 200. The blocklist check asks once more: a block behind one such answer
/// is still found, by the store and by the layer; behind two, the check fails (the layer
/// then fails open, logged) and never reads as "not blocked".
#[tokio::test]
async fn keys_left_unprocessed_are_asked_for_again_and_never_read_as_not_blocked() {
    use lift_harness::faults::OperationStats;
    let (proxy, store) = store_behind_proxy().await;
    let ip = "198.51.100.90";
    store.block(&BlockTarget::Ip(ip.parse().unwrap()), Duration::from_secs(60), "test").await.unwrap();
    let targets = [
        BlockTarget::Ip(ip.parse().unwrap()),
        BlockTarget::Principal("mallory".into()),
        BlockTarget::caller("https://issuer.example.com", "mallory"),
    ];

    proxy.leave_unprocessed("BatchGetItem", 1);
    assert!(store.any_blocked(&targets).await.unwrap(), "found at the second ask");
    assert_eq!(proxy.stats("BatchGetItem"), OperationStats { forwarded: 1, injected: 1 });
    proxy.leave_unprocessed("BatchGetItem", 2);
    let err = store.any_blocked(&targets).await.unwrap_err();
    assert!(err.to_string().contains("3 blocklist keys left unread"), "{err}");

    let clean = [BlockTarget::Ip("198.51.100.91".parse().unwrap())];
    assert!(!store.any_blocked(&clean).await.unwrap());
    proxy.leave_unprocessed("BatchGetItem", 2);
    assert!(store.any_blocked(&clean).await.is_err(), "keys never read are not clean");

    let svc = ThreatLayer::builder().store(store).build().unwrap().layer(tower::service_fn(echo_score));
    proxy.leave_unprocessed("BatchGetItem", 1);
    assert_eq!(svc.oneshot(request("GET", "/p", ip, "")).await.unwrap().status(), StatusCode::FORBIDDEN);
}

/// DynamoDB may also answer a batch in part: some keys read, the rest handed back. Whichever
/// of the three keys is blocked, in the half read first or the half asked for again, it is
/// found; keys all read over the two asks, none blocked, are "not blocked", not an error.
#[tokio::test]
async fn a_batch_answered_in_part_finds_a_block_in_either_part() {
    let (proxy, store) = store_behind_proxy().await;
    let targets = |n: u32| {
        [
            BlockTarget::Ip(format!("198.51.100.{n}").parse().unwrap()),
            BlockTarget::Principal(format!("user-{n}")),
            BlockTarget::caller("https://issuer.example.com", format!("user-{n}")),
        ]
    };
    for blocked in 0..3 {
        let targets = targets(100 + blocked as u32);
        store.block(&targets[blocked], Duration::from_secs(60), "test").await.unwrap();
        proxy.hand_back_part("BatchGetItem", 1);
        assert!(store.any_blocked(&targets).await.unwrap(), "{:?} found", targets[blocked]);
    }
    assert_eq!(proxy.stats("BatchGetItem").injected, 3);
    let clean = targets(110);
    let before = proxy.stats("BatchGetItem");
    proxy.hand_back_part("BatchGetItem", 1);
    assert!(!store.any_blocked(&clean).await.unwrap(), "every key read over two asks");
    let after = proxy.stats("BatchGetItem");
    assert_eq!((after.injected - before.injected, after.forwarded - before.forwarded), (1, 1), "asked twice");
}

#[tokio::test]
async fn revoked_tokens_are_reported_revoked_until_their_expiry() {
    let (_, store, _) = store().await;
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let jti = TokenRef::jti("jti-revoked");
    store.revoke(&jti, in_an_hour).await.unwrap();
    assert!(store.is_revoked(&jti).await.unwrap());
    assert!(!store.is_revoked(&TokenRef::jti("jti-live")).await.unwrap());
    let raw = TokenRef::token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2ln");
    store.revoke(&raw, in_an_hour).await.unwrap();
    assert!(store
        .is_revoked(&TokenRef::token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2ln"))
        .await
        .unwrap());
    // A token past its expiry needs no revocation record.
    let expired = TokenRef::jti("jti-expired");
    store.revoke(&expired, SystemTime::now() - Duration::from_secs(1)).await.unwrap();
    assert!(!store.is_revoked(&expired).await.unwrap());
}

/// A revoked token is refused by the layer from its next request on, whether it was revoked
/// by its `jti` or by its hash, through the real JWT layer; another token of the same user
/// passes, and so does the revoked one's namesake `jti` once its revocation expired.
#[tokio::test]
async fn a_revoked_token_is_refused_by_the_layer() {
    use lift::middleware::auth::{Issuer, JwtLayer};
    const SECRET: &[u8] = b"threat-tests-hs256-secret-0123456789";
    let (_, store, _) = store().await;
    let jwt = JwtLayer::builder()
        .issuer(Issuer::hs256("internal", SECRET.to_vec()).audience("payments").any_tenant())
        .realm("test")
        .build()
        .unwrap();
    let threat = ThreatLayer::builder().store(store.clone()).build().unwrap();
    let app = lift::App::new()
        .get("/p", |_req: Request| async { Response::new(Body::from("ok")) })
        .layer(threat)
        .layer(jwt)
        .into_service();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let token = |jti: &str| {
        let claims = serde_json::json!({
            "iss": "internal", "sub": "user-1", "aud": "payments", "iat": now, "exp": now + 600,
            "tenant_id": "acme", "jti": jti,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    let status = |token: String| {
        let app = app.clone();
        async move {
            let req = http::Request::builder()
                .uri("/p")
                .header("authorization", format!("Bearer {token}"))
                .extension(ClientIp("198.51.100.77".parse().unwrap()))
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        }
    };
    let (stolen, other, by_hash) = (token("j-stolen"), token("j-other"), token("j-hashed"));
    for t in [&stolen, &other, &by_hash] {
        assert_eq!(status(t.clone()).await, StatusCode::OK);
    }
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    store.revoke(&TokenRef::jti("j-stolen"), in_an_hour).await.unwrap();
    store.revoke(&TokenRef::token(&by_hash), in_an_hour).await.unwrap();
    assert_eq!(status(stolen).await, StatusCode::FORBIDDEN, "revoked by jti");
    assert_eq!(status(by_hash).await, StatusCode::FORBIDDEN, "revoked by hash");
    assert_eq!(status(other).await, StatusCode::OK, "the same user's other token");
    store.revoke(&TokenRef::jti("j-late"), SystemTime::now() - Duration::from_secs(1)).await.unwrap();
    assert_eq!(status(token("j-late")).await, StatusCode::OK, "a revocation past its expiry");
}

#[tokio::test]
async fn the_webhook_receives_the_alert_and_a_dead_one_fails_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/threat"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let alert = WebhookAlert::new(&format!("{}/hooks/threat", server.uri())).unwrap();
    let svc = ThreatLayer::builder().alert(alert).build().unwrap().layer(tower::service_fn(echo_score));
    let body = r#"{"note": "<img src=x onerror=alert(document.domain)>"}"#;
    let res = svc.oneshot(request("POST", "/payments", "198.51.100.50", body)).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let alert: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(alert["findings"][0]["kind"], "xss");
    assert_eq!(alert["findings"][0]["location"], serde_json::json!({"in": "body", "name": "note"}));
    assert_eq!(alert["principal"], "alice");
    assert_eq!(alert["client_ip"], "198.51.100.50");
    let text = String::from_utf8_lossy(&received[0].body);
    assert!(
        !text.contains("secret-token-value") && !text.contains("cookie-value") && !text.contains("onerror")
    );

    // Nothing listens on the discard port: the alert fails, the request is still answered.
    let dead = WebhookAlert::new("http://127.0.0.1:9/hooks").unwrap().timeout(Duration::from_millis(300));
    let svc = ThreatLayer::builder().alert(dead).build().unwrap().layer(tower::service_fn(echo_score));
    let started = std::time::Instant::now();
    let res = svc.oneshot(request("POST", "/payments", "198.51.100.51", body)).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_principal_touching_too_many_tenants_is_refused() {
    let (_, store, trail) = store().await;
    let monitor = BehaviourMonitor::new(store.clone())
        .tenants_per_principal(2)
        .tenant_window(Duration::from_secs(3600));
    let layer =
        ThreatLayer::builder().behaviour(monitor).track_tenants(true).audit(trail.clone()).build().unwrap();
    let svc = layer.layer(tower::service_fn(echo_score));
    let statuses = {
        let mut out = Vec::new();
        for tenant in ["t-1", "t-2", "t-1", "t-3"] {
            let mut req = request("GET", "/records", "198.51.100.60", "");
            let ctx = Context::of_mut(&mut req).unwrap();
            ctx.set_principal(Principal::new("mallory", "t-1"));
            ctx.set_tenant(tenant);
            out.push(svc.clone().oneshot(req).await.unwrap().status().as_u16());
        }
        out
    };
    assert_eq!(statuses, [200, 200, 200, 403]);
    let incidents = trail.query(AuditQuery::tenant("t-1").action(INCIDENT_ACTION)).await.unwrap();
    assert!(incidents[0].entry.detail.contains("tenant_hopping"));
}

/// Tenants are counted per issuer and subject: another issuer's `mallory`, touching two
/// tenants of her own, does not make this one a tenant hopper. Counted by subject alone,
/// the partner's first request was refused as this one's third tenant.
#[tokio::test]
async fn tenants_are_counted_per_issuer_and_subject() {
    let (_, store, _) = store().await;
    let monitor = BehaviourMonitor::new(store.clone())
        .tenants_per_principal(2)
        .tenant_window(Duration::from_secs(3600));
    let svc = ThreatLayer::builder()
        .behaviour(monitor)
        .track_tenants(true)
        .build()
        .unwrap()
        .layer(tower::service_fn(echo_score));
    let mut statuses = Vec::new();
    for (issuer, tenant) in
        [("ours", "t-1"), ("ours", "t-2"), ("partner", "t-3"), ("partner", "t-4"), ("ours", "t-5")]
    {
        let mut req = request("GET", "/records", "198.51.100.61", "");
        let ctx = Context::of_mut(&mut req).unwrap();
        ctx.set_principal(
            Principal::new("mallory", "t-1").with_issuer(format!("https://{issuer}.example.com")),
        );
        ctx.set_tenant(tenant);
        statuses.push(svc.clone().oneshot(req).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 403], "only our caller's third tenant trips");
}

#[tokio::test]
async fn benign_payment_requests_pass_with_score_zero() {
    let (_, store, _) = store().await;
    let svc = ThreatLayer::builder().store(store).build().unwrap().layer(tower::service_fn(echo_score));
    let bodies = [
        r#"{"amount": 4250, "currency": "EUR", "customer": {"name": "Siobhán O'Brien", "email": "siobhan.obrien@example.ie"},
            "address": {"line1": "12 O'Connell St. Upper", "city": "Dublin", "postal_code": "D01 F5P2"}}"#,
        r#"{"amount": 129900, "currency": "USD", "description": "Invoice #2024-117 (net 30) -- thanks!",
            "customer": {"name": "D'Angelo & Sons; Ltd.", "email": "billing+ap@dangelo-sons.com", "phone": "+1 (415) 555-2671"}}"#,
        r#"{"amount": 999, "currency": "GBP", "note": "Price was £12.99, now £9.99 - 23% off; select size M or L",
            "return_url": "https://shop.example.co.uk/orders/48213?status=paid&ref=email", "ip": "10.0.0.7"}"#,
        r#"{"refund": {"payment": "pay_8f14e45f", "reason": "customer's request: item didn't fit", "amount": 1500}}"#,
        r#"{"patient": {"name": "Zoë Ng-O'Neill", "dob": "1985-12-10"}, "memo": "Co-pay 20.00 < deductible > 0"}"#,
    ];
    for body in bodies {
        let res = svc
            .clone()
            .oneshot(request("POST", "/payments?expand=customer", "203.0.113.70", body))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{body}");
        assert_eq!(res.body().as_bytes(), b"0", "{body}");
    }
}
