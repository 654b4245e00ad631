//! The audit trail while DynamoDB is unreachable, down, throttling or refusing items: the
//! buffer never holds more than its ceiling, requests past it are refused before their
//! handler runs, and once the store is back every request that was acted on has its entry,
//! in one chain that verifies. The store is a port nothing listens on, or an in-process
//! DynamoDB (PutItem, GetItem, Query over one table) whose failures a test switches on and
//! off; DynamoDB Local runs the trail's own suite in the harness.
#![cfg(feature = "audit")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use http::StatusCode;
use lift::security::audit::{
    AuditEntry, AuditError, AuditHandle, AuditLayer, AuditQuery, AuditStorage, AuditTrail, Audited, Outcome,
    AUDIT_UNAVAILABLE, MAX_DETAIL_BYTES, MAX_RESOURCE_BYTES, UNSTORED_ACTION,
};
use lift::{Body, Request, Response};
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};

/// What the in-process DynamoDB answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    /// `500 InternalServerError` to every call.
    Down,
    /// `400 ProvisionedThroughputExceededException` to every call.
    Throttled,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    /// Items by (pk, seq).
    items: BTreeMap<(String, u64), Value>,
    /// Puts whose item holds this text in a string attribute are refused
    /// (`ValidationException`); `Some("")` refuses every put.
    refuse: Option<String>,
    puts: usize,
    /// How long every answer is held back.
    delay: Duration,
}

/// An in-process DynamoDB for one table with a `pk` (S) and `seq` (N) key.
#[derive(Debug, Clone)]
struct Dynamo {
    state: Arc<Mutex<State>>,
    url: String,
}

impl Dynamo {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Up,
            items: BTreeMap::new(),
            refuse: None,
            puts: 0,
            delay: Duration::ZERO,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
                let state = shared.clone();
                async move {
                    let target =
                        headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let op = target.rsplit('.').next().unwrap_or_default().to_owned();
                    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let delay = state.lock().unwrap().delay;
                    tokio::time::sleep(delay).await;
                    let (status, body) = answer(&mut state.lock().unwrap(), &op, &input);
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/x-amz-json-1.0")
                        .body(axum::body::Body::from(body.to_string()))
                        .unwrap()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, url }
    }

    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn slow(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    fn refuse(&self, text: Option<&str>) {
        self.state.lock().unwrap().refuse = text.map(str::to_owned);
    }

    fn puts(&self) -> usize {
        self.state.lock().unwrap().puts
    }

    /// The stored string attribute `name` of every item, in key order.
    fn stored(&self, name: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.items.values().map(|item| item[name]["S"].as_str().unwrap_or_default().to_owned()).collect()
    }

    fn client(&self) -> aws_sdk_dynamodb::Client {
        client(&self.url)
    }
}

fn error(kind: &str) -> Value {
    json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": kind })
}

fn key_of(item: &Value) -> Option<(String, u64)> {
    Some((item["pk"]["S"].as_str()?.to_owned(), item["seq"]["N"].as_str()?.parse().ok()?))
}

fn answer(state: &mut State, op: &str, input: &Value) -> (u16, Value) {
    match state.mode {
        Mode::Down => return (500, error("InternalServerError")),
        Mode::Throttled => return (400, error("ProvisionedThroughputExceededException")),
        Mode::Up => {}
    }
    match op {
        "PutItem" => {
            state.puts += 1;
            let item = &input["Item"];
            let Some(key) = key_of(item) else { return (400, error("ValidationException")) };
            if let Some(poison) = &state.refuse {
                let mut strings =
                    item.as_object().into_iter().flat_map(|o| o.values()).filter_map(|v| v["S"].as_str());
                if strings.any(|s| s.contains(poison.as_str())) {
                    return (400, error("ValidationException"));
                }
            }
            if input["ConditionExpression"] == "attribute_not_exists(pk)" && state.items.contains_key(&key) {
                return (400, error("ConditionalCheckFailedException"));
            }
            state.items.insert(key, item.clone());
            (200, json!({}))
        }
        "GetItem" => match key_of(&input["Key"]).and_then(|key| state.items.get(&key)) {
            Some(item) => (200, json!({ "Item": item })),
            None => (200, json!({})),
        },
        "Query" => {
            if input.get("FilterExpression").is_some() {
                return (400, error("ValidationException"));
            }
            let pk = input["ExpressionAttributeValues"][":pk"]["S"].as_str().unwrap_or_default();
            let mut items: Vec<Value> =
                state.items.iter().filter(|((p, _), _)| p == pk).map(|(_, item)| item.clone()).collect();
            if input["ScanIndexForward"] == false {
                items.reverse();
            }
            if let Some(limit) = input["Limit"].as_u64() {
                items.truncate(limit as usize);
            }
            (200, json!({ "Items": items, "Count": items.len(), "ScannedCount": items.len() }))
        }
        _ => (400, error("UnknownOperationException")),
    }
}

fn client(url: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
        .endpoint_url(url)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A DynamoDB endpoint nothing listens on.
fn unreachable() -> aws_sdk_dynamodb::Client {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    client(&format!("http://127.0.0.1:{port}"))
}

/// A trail of capacity 2 and ceiling 5 that never waits for room.
fn trail(client: aws_sdk_dynamodb::Client) -> AuditTrail {
    AuditTrail::builder()
        .client(client)
        .table("audit")
        .capacity(2)
        .max_buffered(5)
        .append_wait(Duration::ZERO)
        .build()
        .unwrap()
}

/// A handler that counts its runs and names the entry's detail.
fn counted(
    runs: Arc<AtomicUsize>,
) -> impl tower::Service<Request, Response = Response, Error = std::convert::Infallible, Future: Send> + Clone + Send
{
    tower::service_fn(move |req: Request| {
        runs.fetch_add(1, Ordering::SeqCst);
        if let Some(audit) = AuditHandle::of(&req) {
            audit.detail("handler ran");
        }
        async { Ok(Response::new(Body::from("{}"))) }
    })
}

fn get(path: &str) -> Request {
    http::Request::get(path).body(Body::empty()).unwrap()
}

/// While the store is unreachable the buffer fills up to its ceiling and no further: a
/// request past it is refused with `503 audit unavailable` before its handler runs, in
/// either mode, and its answer holds nothing of the request.
#[tokio::test]
async fn past_the_ceiling_requests_are_refused_before_their_handler_while_the_store_is_unreachable() {
    for degrade in [false, true] {
        let trail = trail(unreachable());
        let runs = Arc::new(AtomicUsize::new(0));
        let layer = AuditLayer::new(trail.clone());
        let layer = if degrade { layer.degrade() } else { layer };
        let svc = layer.layer(counted(runs.clone()));
        for i in 0..12 {
            let res = svc.clone().oneshot(get(&format!("/payments/4111111111111111/{i}"))).await.unwrap();
            assert!(trail.pending() <= 5, "the buffer holds {} entries", trail.pending());
            let storage = res.extensions().get::<AuditStorage>().copied();
            if i < 5 {
                assert_eq!(runs.load(Ordering::SeqCst), i + 1, "request {i} is handled");
                assert!(res.extensions().get::<Audited>().is_some());
                let expected = if degrade { AuditStorage::Degraded } else { AuditStorage::Refused };
                assert_eq!(storage, Some(expected), "request {i}");
                continue;
            }
            assert_eq!(runs.load(Ordering::SeqCst), 5, "request {i} must not reach its handler");
            assert_eq!(
                (res.status(), storage),
                (StatusCode::SERVICE_UNAVAILABLE, Some(AuditStorage::Refused))
            );
            assert!(res.extensions().get::<Audited>().is_none(), "no entry was made");
            let body = String::from_utf8(res.into_body().into_bytes().to_vec()).unwrap();
            assert!(body.contains(AUDIT_UNAVAILABLE), "{body}");
            assert!(!body.contains("4111") && !body.contains("payments"), "{body}");
        }
        assert_eq!(trail.pending(), 5, "nothing held is dropped");
        assert!(matches!(trail.flush().await, Err(AuditError::Unavailable(_))));
        assert_eq!(trail.pending(), 5);
    }
}

/// The trail itself: `try_append`, `reserve` and `append` respect the ceiling; a place
/// dropped unfilled is given back.
#[tokio::test]
async fn the_trail_never_holds_more_than_its_ceiling() {
    let trail = trail(unreachable());
    let entry =
        |i: u64| AuditEntry::new("acme", "alice", "payments.read", format!("payment/{i}"), Outcome::Success);
    trail.try_append(entry(1)).unwrap();
    trail.try_append(entry(2)).unwrap();
    assert!(matches!(trail.try_append(entry(3)), Err(AuditError::Full { capacity: 2 })));
    for i in 3..10 {
        trail.append(entry(i)).await;
        assert!(trail.pending() <= 5);
    }
    assert_eq!(trail.pending(), 5, "entries past the ceiling are refused, not buffered");
    assert!(matches!(trail.reserve().await, Err(AuditError::Saturated { max_buffered: 5 })));
    assert!(AuditTrail::builder().client(unreachable()).capacity(4).max_buffered(3).build().is_err());

    let other = self::trail(unreachable());
    let places: Vec<_> = (0..5).map(|_| other.try_reserve()).collect();
    assert_eq!(places.iter().filter(|p| p.is_ok()).count(), 2, "two slots, taken at once");
    drop(places);
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(other.reserve().await.unwrap());
    }
    assert!(matches!(other.reserve().await, Err(AuditError::Saturated { .. })));
    drop(held);
    assert_eq!(other.pending(), 0);
    let _place = other.reserve().await.expect("dropped places are given back");
}

/// DynamoDB down or throttling: acknowledged requests stop at the ceiling; once it is back
/// the held entries are stored in chain order before the new one, the chain verifies, and
/// every request whose handler ran has its entry.
#[tokio::test]
async fn after_an_outage_every_handled_request_has_its_entry_in_one_verified_chain() {
    for (outage, degrade) in [(Mode::Down, true), (Mode::Throttled, true), (Mode::Down, false)] {
        let dynamo = Dynamo::start().await;
        let trail = trail(dynamo.client());
        let runs = Arc::new(AtomicUsize::new(0));
        let layer = AuditLayer::new(trail.clone());
        let layer = if degrade { layer.degrade() } else { layer };
        let svc = layer.layer(counted(runs.clone()));
        let mut handled = Vec::new();
        let res = svc.clone().oneshot(get("/payments/before")).await.unwrap();
        assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Stored));
        handled.push("/payments/before".to_owned());

        dynamo.set(outage);
        for i in 0..10 {
            let path = format!("/payments/{i}");
            let before = runs.load(Ordering::SeqCst);
            let res = svc.clone().oneshot(get(&path)).await.unwrap();
            assert!(trail.pending() <= 5, "{outage:?}: {} held", trail.pending());
            let ran = runs.load(Ordering::SeqCst) > before;
            if ran {
                handled.push(path);
            }
            if res.status().is_success() {
                assert!(ran && degrade, "{outage:?}: an answer without its entry held");
                assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Degraded));
            } else {
                assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            }
        }
        assert_eq!(handled.len(), 6, "{outage:?}: five held during the outage");
        assert_eq!(trail.pending(), 5);

        dynamo.set(Mode::Up);
        let res = svc.clone().oneshot(get("/payments/after")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{outage:?}: requests pass again");
        assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Stored));
        handled.push("/payments/after".to_owned());
        assert_eq!(trail.pending(), 0);

        let stored = trail.query(AuditQuery::tenant("-")).await.unwrap();
        assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=7).collect::<Vec<u64>>());
        let resources: Vec<&str> = stored.iter().map(|e| e.entry.resource.as_str()).collect();
        assert_eq!(resources, handled, "{outage:?}: every handled request, in order");
        assert_eq!(trail.verify("-").await.unwrap().entries, 7);
        // A fresh process verifies the stored chain too.
        assert_eq!(self::trail(dynamo.client()).verify("-").await.unwrap().head.0, 7);
    }
}

/// `Audited` is the entry as sealed: a huge detail and resource are clipped in it exactly
/// as in the stored item.
#[tokio::test]
async fn audited_is_the_clipped_entry_that_was_stored() {
    let dynamo = Dynamo::start().await;
    let trail = trail(dynamo.client());
    let svc = AuditLayer::new(trail.clone()).layer(tower::service_fn(|req: Request| async move {
        if let Some(audit) = AuditHandle::of(&req) {
            audit.detail("d".repeat(200 * 1024)).resource("r".repeat(20 * 1024)).action("a".repeat(5000));
        }
        Ok::<_, std::convert::Infallible>(Response::new(Body::from("{}")))
    }));
    let res = svc.oneshot(get("/records/1")).await.unwrap();
    assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Stored));
    let Audited(audited) = res.extensions().get::<Audited>().cloned().unwrap();
    assert!(audited.detail.len() <= MAX_DETAIL_BYTES, "{}", audited.detail.len());
    assert!(audited.resource.len() <= MAX_RESOURCE_BYTES);
    let stored = trail.query(AuditQuery::tenant("-")).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].entry, audited, "Audited is what was sealed and stored");
}

/// An entry refused (`ValidationException`) and its stub refused too: the bare stub takes
/// the seq, once. When even the bare stub is refused, a flush makes three puts and fails
/// (no loop), the entry itself stays buffered, its request is refused, and it is stored
/// once the table takes items again: the chain stays continuous.
#[tokio::test]
async fn a_stub_refused_again_gives_way_to_the_bare_stub_or_fails_loudly() {
    let dynamo = Dynamo::start().await;
    let trail = AuditTrail::builder().client(dynamo.client()).table("audit").build().unwrap();
    let entry = |i: u64, resource: &str| {
        AuditEntry::new("acme", "mallory", "payments.refund", resource, Outcome::Success).at(i)
    };
    dynamo.refuse(Some("poison"));
    trail.try_append(entry(1, "payment/1")).unwrap();
    trail.try_append(entry(2, "payment/poison").detail("poison")).unwrap();
    trail.try_append(entry(3, "payment/3")).unwrap();
    assert_eq!(trail.flush().await.unwrap(), 3);
    assert_eq!(dynamo.puts(), 5, "entry, stub and bare stub for the refused one");
    let acme = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    assert_eq!(acme.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let bare = &acme[1].entry;
    assert_eq!(
        (bare.action.as_str(), bare.actor.as_str(), bare.resource.as_str()),
        (UNSTORED_ACTION, "", "")
    );
    assert!(bare.detail.contains(" at seq 2, ") && !bare.detail.contains("poison"), "{}", bare.detail);
    assert_eq!(trail.verify("acme").await.unwrap().entries, 3);

    // Every put refused, whatever it holds.
    dynamo.refuse(Some(""));
    let before = dynamo.puts();
    trail.try_append(entry(4, "payment/4")).unwrap();
    for round in 1..=2 {
        let flushed = tokio::time::timeout(Duration::from_secs(30), trail.flush()).await.expect("no loop");
        assert!(matches!(flushed, Err(AuditError::Unavailable(_))), "{flushed:?}");
        assert_eq!(dynamo.puts() - before, 3 * round, "entry, stub, bare stub: then the flush fails");
        assert_eq!(trail.pending(), 1);
    }
    let svc = AuditLayer::new(trail.clone()).layer(counted(Arc::new(AtomicUsize::new(0))));
    let res = svc.oneshot(get("/payments/5")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "the failure is loud");

    dynamo.refuse(None);
    assert_eq!(trail.flush().await.unwrap(), 2);
    let acme = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    assert_eq!(acme.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(
        (acme[3].entry.action.as_str(), acme[3].entry.resource.as_str()),
        ("payments.refund", "payment/4"),
        "the entry itself, not a stub, once the table takes items"
    );
    assert_eq!(trail.verify("acme").await.unwrap().entries, 4);
    assert_eq!(trail.verify("-").await.unwrap().entries, 1);
}

/// A path encoded twice or more (`%2540` for `@`, `%2520` for a space, `%252F` for `/`)
/// keeps no email address or card number in the stored entry's resource or action.
#[tokio::test]
async fn a_double_encoded_path_stores_no_email_or_card_number() {
    let dynamo = Dynamo::start().await;
    let trail = trail(dynamo.client());
    let svc = AuditLayer::new(trail.clone()).layer(counted(Arc::new(AtomicUsize::new(0))));
    let paths = [
        "/users/ada%2540example.com",
        "/users/ada%252540example.com",
        "/users/ada%25252525252525252540example.com",
        "/payments/4111%25201111%25201111%25201111",
        "/payments/4111%252F1111%252F1111%252F1111",
        "/payments/4111%2F1111%2F1111%2F1111",
        "/payments/4111111111111111%252Frefunds",
        "/users/ada%2540example.com%252F4111%25201111%25201111%25201111",
    ];
    for path in paths {
        let res = svc.clone().oneshot(get(path)).await.unwrap();
        assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Stored), "{path}");
    }
    for stored in [dynamo.stored("resource"), dynamo.stored("action")] {
        assert_eq!(stored.len(), paths.len());
        for (text, path) in stored.iter().zip(paths) {
            assert!(!text.contains("example.com") && !text.contains("ada"), "{path}: {text}");
            assert!(!text.contains("1111"), "{path}: {text}");
        }
    }
}

/// A flush dropped halfway (a timeout layer outside the audit layer cancels the request's
/// future at its deadline, here while DynamoDB is slow) loses nothing: it runs to its end on
/// its own, every entry it took from the buffer is stored once, and every place is given
/// back. Cancelled with the request, it dropped the entries it held and kept their places
/// taken, and a trail at its ceiling refused every request from then on.
#[tokio::test]
async fn a_flush_cancelled_halfway_loses_nothing_and_gives_every_place_back() {
    let dynamo = Dynamo::start().await;
    let trail = trail(dynamo.client());
    let entry =
        |i: u64| AuditEntry::new("acme", "alice", "payments.read", format!("payment/{i}"), Outcome::Success);
    for i in 0..5 {
        trail.append(entry(i)).await;
    }
    assert!(matches!(trail.reserve().await, Err(AuditError::Saturated { max_buffered: 5 })));
    dynamo.slow(Duration::from_millis(300));
    let cancelled = tokio::time::timeout(Duration::from_millis(100), trail.flush()).await;
    assert!(cancelled.is_err(), "the flush should still be waiting on the slow store");
    dynamo.slow(Duration::ZERO);
    // Waits for the flush under way (its lock), then finds nothing left to store.
    trail.flush().await.expect("the store is back");
    assert_eq!(trail.pending(), 0);
    let resources = dynamo.stored("resource");
    let expected: Vec<String> = (0..5).map(|i| format!("payment/{i}")).collect();
    assert_eq!(resources, expected, "each entry stored once, in order");
    let _place = trail.reserve().await.expect("every place was given back");
}

/// Security events keep a headroom above the ceiling: at the ceiling, where ordinary places
/// are refused, a threat incident or a compliance violation still takes one, up to the
/// headroom and no further; places given back are taken again.
#[tokio::test]
async fn security_events_are_kept_past_the_ceiling_within_their_headroom() {
    let trail = AuditTrail::builder()
        .client(unreachable())
        .table("audit")
        .capacity(2)
        .max_buffered(5)
        .security_headroom(2)
        .append_wait(Duration::ZERO)
        .build()
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(trail.reserve().await.unwrap());
    }
    assert!(matches!(trail.reserve().await, Err(AuditError::Saturated { max_buffered: 5 })));
    let first = trail.reserve_security_event().await.expect("the headroom's first place");
    let second = trail.reserve_security_event().await.expect("the headroom's second place");
    assert!(
        matches!(trail.reserve_security_event().await, Err(AuditError::Saturated { max_buffered: 7 })),
        "the headroom is bounded too"
    );
    assert!(
        matches!(trail.reserve().await, Err(AuditError::Saturated { max_buffered: 5 })),
        "ordinary requests never take the headroom"
    );
    first.fill(AuditEntry::new("acme", "mallory", "threat.incident", "/payments", Outcome::Denied));
    assert_eq!(trail.pending(), 1, "the event is held for the store's return");
    drop(second);
    assert!(trail.reserve_security_event().await.is_ok(), "a place given back is taken again");
    drop(held);
    assert!(trail.reserve().await.is_ok());

    // By default the headroom is a quarter of the ceiling, at least one place.
    let small = self::trail(unreachable());
    let mut held: Vec<_> = Vec::new();
    for _ in 0..5 {
        held.push(small.reserve().await.unwrap());
    }
    let kept = small.reserve_security_event().await.expect("one place above a ceiling of 5");
    assert!(small.reserve_security_event().await.is_err());
    drop((kept, held));
}

/// A trail over a DynamoDB that is down, holding five entries of tenant acme: its ceiling.
#[cfg(any(feature = "threat", feature = "compliance"))]
async fn at_the_ceiling_with_the_store_down() -> (Dynamo, AuditTrail) {
    let dynamo = Dynamo::start().await;
    let trail = trail(dynamo.client());
    dynamo.set(Mode::Down);
    for i in 0..5 {
        trail
            .append(AuditEntry::new(
                "acme",
                "alice",
                "payments.read",
                format!("payment/{i}"),
                Outcome::Success,
            ))
            .await;
    }
    assert_eq!(trail.pending(), 5, "at the ceiling");
    (dynamo, trail)
}

/// With DynamoDB down and the trail at its ceiling, an attack is still refused and its
/// incident kept, not dropped: once DynamoDB is back it is stored after the requests held
/// before it.
#[cfg(feature = "threat")]
#[tokio::test]
async fn an_incident_at_the_ceiling_is_kept_and_stored_when_the_store_is_back() {
    use lift::security::threat::{ThreatLayer, INCIDENT_ACTION};

    let (dynamo, trail) = at_the_ceiling_with_the_store_down().await;
    let svc = ThreatLayer::builder().audit(trail.clone()).build().unwrap().layer(tower::service_fn(
        |_req: Request| async { Ok::<_, std::convert::Infallible>(Response::new(Body::from("{}"))) },
    ));
    let attack = http::Request::get("/payments?id=1%27%20OR%20%271%27%3D%271").body(Body::empty()).unwrap();
    let res = svc.oneshot(attack).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(trail.pending(), 6, "the incident is held above the ceiling, not dropped");

    dynamo.set(Mode::Up);
    trail.flush().await.expect("the store is back");
    assert_eq!(trail.pending(), 0);
    // The request carried no principal: its incident is in tenant `-`.
    let incidents = trail.query(AuditQuery::tenant("-")).await.unwrap();
    assert_eq!(incidents.len(), 1, "the incident is stored");
    assert_eq!(incidents[0].entry.action, INCIDENT_ACTION);
    assert_eq!(
        trail.query(AuditQuery::tenant("acme")).await.unwrap().len(),
        5,
        "and the entries held before it"
    );
    let detail: Value = serde_json::from_str(&incidents[0].entry.detail).unwrap();
    assert!(detail["actions"].as_array().unwrap().contains(&json!("audited")), "{detail}");
}

/// With DynamoDB down and the trail at its ceiling, a compliance violation (a card's
/// verification code in a response) is kept in the security headroom, not dropped, and
/// stored after the requests held before it once DynamoDB is back.
#[cfg(feature = "compliance")]
#[tokio::test]
async fn a_compliance_violation_at_the_ceiling_is_kept_and_stored_when_the_store_is_back() {
    use lift::security::compliance::{ComplianceLayer, ComplianceRecorder};

    let (dynamo, trail) = at_the_ceiling_with_the_store_down().await;
    assert!(matches!(trail.reserve().await, Err(AuditError::Saturated { .. })), "ordinary places are gone");
    let svc = ComplianceLayer::new(ComplianceRecorder::new()).audit(trail.clone()).layer(tower::service_fn(
        |_req: Request| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(r#"{"cvv":"123"}"#)))
        },
    ));
    // An invocation-phase rule judges the answer after the handler ran: it records, it does
    // not replace the answer.
    svc.oneshot(http::Request::get("/payments/1").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(trail.pending(), 6, "the violation is held above the ceiling, not dropped");

    dynamo.set(Mode::Up);
    trail.flush().await.expect("the store is back");
    assert_eq!(trail.pending(), 0);
    let violations = trail.query(AuditQuery::tenant("-")).await.unwrap();
    assert_eq!(violations.len(), 1, "the violation is stored");
    assert_eq!(violations[0].entry.action, "compliance.violation");
    assert_eq!(violations[0].entry.resource, "PCI-DSS 3.2.2");
    assert!(!violations[0].entry.detail.contains("123"), "the code itself is not in the entry");
    assert_eq!(
        trail.query(AuditQuery::tenant("acme")).await.unwrap().len(),
        5,
        "and the entries held before it"
    );
}
