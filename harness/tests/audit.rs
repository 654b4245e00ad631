//! The audit trail on real DynamoDB Local: entries flushed into per-tenant hash chains,
//! queried, verified; concurrent writers keep one chain; tampering in the table is named;
//! a dead store loses nothing; the layer records each request.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use lift::security::audit::{
    AuditEntry, AuditError, AuditHandle, AuditLayer, AuditQuery, AuditTrail, ChainBreak, CheckpointKey,
    Outcome,
};
use lift::{App, Body, Context, Principal, Request, Response};
use lift_harness::dynamodb::DynamoDbLocal;
use tower::ServiceExt;

async fn table() -> (aws_sdk_dynamodb::Client, String) {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let table = local.create_table(&lift::store::tables::audit()).await.expect("create the table");
    (local.client().await, table)
}

fn trail(client: &aws_sdk_dynamodb::Client, table: &str) -> AuditTrail {
    AuditTrail::builder().client(client.clone()).table(table).build().expect("a valid trail")
}

fn entry(tenant: &str, actor: &str, action: &str, at_ms: u64) -> AuditEntry {
    AuditEntry::new(tenant, actor, action, format!("payment/{at_ms}"), Outcome::Success)
        .at(at_ms)
        .from_where("203.0.113.7")
        .request_id(format!("req-{at_ms}"))
        .data_classes(["pci.pan_last4"])
}

#[tokio::test]
async fn flushed_entries_chain_per_tenant_and_answer_queries() {
    let (client, table) = table().await;
    let trail = trail(&client, &table);
    for i in 0..6u64 {
        let actor = if i % 2 == 0 { "alice" } else { "bob" };
        let action = if i < 3 { "payments.read" } else { "payments.refund" };
        trail.try_append(entry("acme", actor, action, 1_000 + i)).unwrap();
        trail.try_append(entry("globex", actor, action, 2_000 + i)).unwrap();
    }
    assert_eq!(trail.pending(), 12);
    assert_eq!(trail.flush().await.unwrap(), 12);
    assert_eq!(trail.pending(), 0);

    let all = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert!(all.iter().all(|e| e.entry.tenant == "acme"), "a tenant's chain holds only its entries");
    let alice = trail.query(AuditQuery::tenant("acme").actor("alice")).await.unwrap();
    assert_eq!(alice.len(), 3);
    let refunds = trail.query(AuditQuery::tenant("acme").action("payments.refund")).await.unwrap();
    assert_eq!(refunds.iter().map(|e| e.entry.at_ms).collect::<Vec<_>>(), [1_003, 1_004, 1_005]);
    let window = trail.query(AuditQuery::tenant("acme").between(1_001, 1_002)).await.unwrap();
    assert_eq!(window.len(), 2);

    for tenant in ["acme", "globex"] {
        let verified = trail.verify(tenant).await.unwrap();
        assert_eq!((verified.entries, verified.first_seq, verified.head.0), (6, 1, 6));
    }
    // The stored item carries a TTL.
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("AUDIT#acme".into()))
        .key("seq", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert!(item.item().unwrap().contains_key("expires_at"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_writing_one_tenant_keep_one_chain() {
    let (client, table) = table().await;
    // Two Lambda instances: separate trails, separate views of the chain's head.
    let a = trail(&client, &table);
    let b = trail(&client, &table);
    let writer = |trail: AuditTrail, name: &'static str| {
        tokio::spawn(async move {
            for i in 0..15u64 {
                trail.try_append(entry("acme", name, "payments.create", i)).unwrap();
                trail.flush().await.unwrap();
            }
        })
    };
    let (ra, rb) = tokio::join!(writer(a.clone(), "a"), writer(b.clone(), "b"));
    ra.unwrap();
    rb.unwrap();
    let verified = a.verify("acme").await.unwrap();
    assert_eq!(verified.entries, 30, "every entry of both writers is in the chain");
    assert_eq!(verified.head.0, 30);
}

/// A trail that signs checkpoints into `checkpoints` (a fresh process each call).
fn anchored(client: &aws_sdk_dynamodb::Client, table: &str, checkpoints: &str) -> AuditTrail {
    AuditTrail::builder()
        .client(client.clone())
        .table(table)
        .checkpoint_key(CheckpointKey::new(*b"audit-test-checkpoint-key-012345").unwrap())
        .checkpoint_table(checkpoints)
        .build()
        .expect("a valid trail")
}

#[tokio::test]
async fn tampering_in_the_table_is_named() {
    let (client, table) = table().await;
    let local = DynamoDbLocal::shared().await.unwrap();
    let checkpoints = local.create_table(&lift::store::tables::audit_checkpoints()).await.unwrap();
    let trail = anchored(&client, &table, &checkpoints);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for i in 0..5u64 {
        trail
            .try_append(entry("acme", "alice", "records.read", now + i).issuer("https://id.example.com"))
            .unwrap();
    }
    trail.flush().await.unwrap();
    let key = |seq: u64| {
        [
            ("pk".to_owned(), AttributeValue::S("AUDIT#acme".into())),
            ("seq".to_owned(), AttributeValue::N(seq.to_string())),
        ]
    };

    // Someone with table access rewrites entry 3: `SET <attribute> = <value>`, or, without a
    // value, `REMOVE <attribute>`.
    let rewrite = |attribute: &'static str, value: Option<&'static str>| {
        let update = client.update_item().table_name(&table).set_key(Some(key(3).into()));
        match value {
            Some(value) => update
                .update_expression(format!("SET {attribute} = :v"))
                .expression_attribute_values(":v", AttributeValue::S(value.into())),
            None => update.update_expression(format!("REMOVE {attribute}")),
        }
        .send()
    };

    // Who did it.
    rewrite("actor", Some("mallory")).await.unwrap();
    match trail.verify("acme").await {
        Err(AuditError::Broken { tenant, broken }) => {
            assert_eq!(tenant, "acme");
            assert_eq!(broken, ChainBreak::Changed { seq: 3 });
        }
        other => panic!("the change went unnoticed: {other:?}"),
    }
    rewrite("actor", Some("alice")).await.unwrap();
    trail.verify("acme").await.unwrap();
    // Which issuer vouched for who did it: another issuer's `alice`, or none at all.
    for value in [Some("https://partner.example.net"), None] {
        rewrite("issuer", value).await.unwrap();
        assert!(
            matches!(
                trail.verify("acme").await,
                Err(AuditError::Broken { broken: ChainBreak::Changed { seq: 3 }, .. })
            ),
            "issuer {value:?} went unnoticed"
        );
    }
    rewrite("issuer", Some("https://id.example.com")).await.unwrap();
    trail.verify("acme").await.unwrap();
    // Deleting the newest entry leaves a valid shorter chain: the trail that wrote the head
    // notices, and so does a fresh reader, from the signed checkpoint of that head.
    client.delete_item().table_name(&table).set_key(Some(key(5).into())).send().await.unwrap();
    assert!(matches!(
        trail.verify("acme").await,
        Err(AuditError::Broken { broken: ChainBreak::Removed { seq: 5 }, .. })
    ));
    assert!(matches!(
        anchored(&client, &table, &checkpoints).verify("acme").await,
        Err(AuditError::Broken { broken: ChainBreak::MissingTail { seq: 5 }, .. })
    ));
    // Without a checkpoint key the shorter chain still passes: that trail proves less.
    assert_eq!(self::trail(&client, &table).verify("acme").await.unwrap().head.0, 4);
    // Deleting one in the middle is named by anyone.
    client.delete_item().table_name(&table).set_key(Some(key(2).into())).send().await.unwrap();
    assert!(matches!(
        self::trail(&client, &table).verify("acme").await,
        Err(AuditError::Broken { broken: ChainBreak::Removed { seq: 2 }, .. })
    ));
}

#[tokio::test]
async fn a_dead_store_loses_nothing_and_a_full_buffer_pushes_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = lift_harness::dynamodb::client_for(&format!("http://127.0.0.1:{port}"), "us-east-1");
    let trail = AuditTrail::builder().client(dead).table("nowhere").capacity(3).build().unwrap();
    for i in 0..3 {
        trail.try_append(entry("acme", "alice", "payments.read", i)).unwrap();
    }
    assert!(matches!(
        trail.try_append(entry("acme", "alice", "payments.read", 9)),
        Err(AuditError::Full { capacity: 3 })
    ));
    // A waiting append does not get in while the buffer is full.
    let waiting =
        tokio::time::timeout(Duration::from_millis(200), trail.append(entry("acme", "x", "y", 1))).await;
    assert!(waiting.is_err(), "append must wait for room");
    assert!(matches!(trail.flush().await, Err(AuditError::Unavailable(_))));
    assert_eq!(trail.pending(), 3, "nothing buffered was dropped");
}

async fn read_record(req: Request) -> Response {
    if let Some(audit) = AuditHandle::of(&req) {
        audit.resource("record/r-1").data_class("phi");
    }
    Response::new(Body::from("{}"))
}

async fn forbidden(_req: Request) -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::FORBIDDEN;
    res
}

#[tokio::test]
async fn the_layer_records_and_flushes_every_request() {
    let (client, table) = table().await;
    let trail = trail(&client, &table);
    let authenticate = tower::util::MapRequestLayer::new(|mut req: Request| {
        if let Some(ctx) = Context::of_mut(&mut req) {
            ctx.set_principal(Principal::new("dr-who", "clinic-1").with_issuer("https://id.example.com"));
        }
        req
    });
    let app = App::new()
        .get("/records/:id", read_record)
        .get("/admin", forbidden)
        .layer(AuditLayer::new(trail.clone()))
        .layer(authenticate)
        .into_service();
    let get = |uri: &str| http::Request::builder().uri(uri).body(Body::empty()).unwrap();
    assert_eq!(app.clone().oneshot(get("/records/r-1")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.oneshot(get("/admin")).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(trail.pending(), 0, "flushed at the end of each request");

    let entries = trail.query(AuditQuery::tenant("clinic-1")).await.unwrap();
    assert_eq!(entries.len(), 2);
    let read = &entries[0].entry;
    assert_eq!(
        (read.actor.as_str(), read.action.as_str(), read.resource.as_str(), read.outcome),
        ("dr-who", "GET /records/:id", "record/r-1", Outcome::Success)
    );
    assert_eq!(read.data_classes, ["phi"]);
    assert_eq!(read.issuer.as_deref(), Some("https://id.example.com"), "who vouched for the actor");
    assert!(!read.request_id.is_empty());
    assert_eq!(entries[1].entry.outcome, Outcome::Denied);
    trail.verify("clinic-1").await.unwrap();
}

async fn not_found(_req: Request) -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NOT_FOUND;
    res
}

/// A card number sent as a path segment, plain, grouped or percent-encoded, never reaches
/// the trail, whose entries cannot be cleaned afterwards without breaking the chain: the
/// default resource is the path with it redacted, and the action names the route, with the
/// layer outside the router (it reads the route from the response) and inside it, per
/// route (from the request).
#[tokio::test]
async fn a_card_number_in_the_path_never_reaches_the_trail() {
    let (client, table) = table().await;
    let trail = trail(&client, &table);
    let authenticate = tower::util::MapRequestLayer::new(|mut req: Request| {
        if let Some(ctx) = Context::of_mut(&mut req) {
            ctx.set_principal(Principal::new("mallory", "acme"));
        }
        req
    });
    let outside = App::new()
        .get("/payments/:id", not_found)
        .layer(AuditLayer::new(trail.clone()))
        .layer(authenticate.clone());
    let per_route = App::new()
        .get("/payments/:id", lift::app::Route::from_handler(not_found).layer(AuditLayer::new(trail.clone())))
        .layer(authenticate);
    let paths = [
        "/payments/4111111111111111",
        "/payments/4111-1111-1111-1111",
        "/payments/4111%201111%201111%201111",
        "/payments/card%3D4111111111111111",
    ];
    for app in [outside.into_service(), per_route.into_service()] {
        for path in paths {
            let req = http::Request::builder().uri(path).body(Body::empty()).unwrap();
            assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::NOT_FOUND);
        }
    }
    let entries = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    assert_eq!(entries.len(), 2 * paths.len());
    for stored in &entries {
        let e = &stored.entry;
        assert_eq!(e.action, "GET /payments/:id");
        assert_eq!(e.resource.matches("[REDACTED:pan]").count(), 1, "{}", e.resource);
        let digits: String = format!("{} {} {}", e.action, e.resource, e.detail)
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        assert!(!digits.contains("4111111111111111"), "a card number in {e:?}");
    }
    trail.verify("acme").await.unwrap();
}

/// An email address as a path segment, plain or percent-encoded, is personal data the
/// trail could never erase (removing it would break the chain): it is masked before the
/// entry is written.
#[tokio::test]
async fn an_email_in_the_path_never_reaches_the_trail() {
    let (client, table) = table().await;
    let trail = trail(&client, &table);
    let authenticate = tower::util::MapRequestLayer::new(|mut req: Request| {
        if let Some(ctx) = Context::of_mut(&mut req) {
            ctx.set_principal(Principal::new("mallory", "acme"));
        }
        req
    });
    let app = App::new()
        .get("/customers/:id", not_found)
        .layer(AuditLayer::new(trail.clone()))
        .layer(authenticate)
        .into_service();
    let paths = [
        "/customers/ada@example.com",
        "/customers/ada%40example.com",
        "/customers/Ada.Lovelace%40Example.org",
    ];
    for path in paths {
        let req = http::Request::builder().uri(path).body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::NOT_FOUND);
    }
    let entries = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    assert_eq!(entries.len(), paths.len());
    for stored in &entries {
        let e = &stored.entry;
        assert_eq!(e.resource.matches("[REDACTED:email]").count(), 1, "{}", e.resource);
        let text = format!("{} {} {}", e.action, e.resource, e.detail).to_lowercase();
        assert!(!text.contains("ada") && !text.contains("example"), "an address in {e:?}");
    }
    trail.verify("acme").await.unwrap();
}

/// A payment handler that names its cardholder data for the audit entry.
async fn pay(req: Request) -> Response {
    if let Some(audit) = AuditHandle::of(&req) {
        audit.action("payments.create").data_class("pci");
    }
    lift::json_response(StatusCode::CREATED, &serde_json::json!({"id": "pay_1", "card": {"last4": "1111"}}))
}

#[tokio::test]
async fn an_entry_that_cannot_be_stored_fails_the_request_unless_the_layer_degrades_and_says_so() {
    use lift::security::audit::{AuditStorage, Audited, AUDIT_UNAVAILABLE};
    use lift::security::compliance::{ComplianceLayer, ComplianceRecorder, Framework, Status};
    use lift_harness::faults::{AwsFaultProxy, DynamoDbFault, ANY_OPERATION};

    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let table = local.create_table(&lift::store::tables::audit()).await.expect("create the table");
    let proxy = AwsFaultProxy::start(local.endpoint()).await.expect("the fault proxy");
    let client = lift_harness::dynamodb::client_for(&proxy.endpoint(), "us-east-1");
    let trail = self::trail(&client, &table);
    let recorder = ComplianceRecorder::new();
    let authenticate = tower::util::MapRequestLayer::new(|mut req: Request| {
        if let Some(ctx) = Context::of_mut(&mut req) {
            ctx.set_principal(Principal::new("alice", "acme"));
        }
        req
    });
    let app = |audit: AuditLayer| {
        App::new()
            .post("/payments", pay)
            .layer(audit)
            .layer(ComplianceLayer::new(recorder.clone()))
            .layer(authenticate.clone())
            .into_service()
    };
    let strict = app(AuditLayer::new(trail.clone()));
    let lenient = app(AuditLayer::new(trail.clone()).degrade());
    let pay = || {
        http::Request::post("/payments")
            .header("x-forwarded-proto", "https")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"card_number":"4111 1111 1111 1111","amount":100}"#))
            .unwrap()
    };
    let pci_10_2_1 =
        || recorder.records().into_iter().find(|r| r.id == "PCI-DSS 10.2.1").expect("the rule is registered");

    // The store works: the entry is stored before the answer, and that is evidence.
    let res = strict.clone().oneshot(pay()).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Stored));
    let r = pci_10_2_1();
    assert_eq!((r.applied, r.held, r.violated), (1, 1, 0));

    // DynamoDB answers every call with a 500: the audit-critical route refuses.
    proxy.inject(ANY_OPERATION, DynamoDbFault::InternalServerError, 1.0);
    let res = strict.clone().oneshot(pay()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Refused));
    let body: serde_json::Value = serde_json::from_slice(res.body().as_bytes()).unwrap();
    assert_eq!(body["type"], AUDIT_UNAVAILABLE);
    assert_eq!(body["status"], 503);
    let text = body.to_string();
    assert!(
        !text.contains("pay_1") && !text.contains("InternalServerError"),
        "no answer, no internals: {text}"
    );
    assert!(res.extensions().get::<Audited>().is_some(), "the entry is still attached, and buffered");
    assert_eq!(trail.pending(), 1, "nothing was dropped");
    assert_eq!(pci_10_2_1().violated, 0, "a refused request answered no cardholder data");

    // A degrading layer answers; the breach of the audit requirement is on record.
    let res = lenient.clone().oneshot(pay()).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Degraded));
    let r = pci_10_2_1();
    assert_eq!((r.applied, r.held, r.violated), (2, 1, 1));
    assert!(r.evidence.back().unwrap().detail.contains("audit degraded"), "{:?}", r.evidence);
    let report = recorder.report();
    assert_eq!(
        (report.audit_storage.stored, report.audit_storage.refused, report.audit_storage.degraded),
        (1, 1, 1)
    );
    let pci = report.frameworks.iter().find(|f| f.framework == Framework::PciDss).unwrap();
    assert_eq!(pci.status, Status::Fail);
    let markdown = report.to_markdown();
    assert!(markdown.contains("**Audit degraded:** 1 answer(s)"), "{markdown}");

    // The store is back: the buffered entries are stored in order and the chain holds.
    proxy.clear();
    assert_eq!(trail.flush().await.unwrap(), 2);
    assert_eq!(trail.pending(), 0);
    assert_eq!(trail.verify("acme").await.unwrap().entries, 3);
}

/// A detail of 500 KB (an attacker-chosen JSON key in a threat incident, say) would make an
/// item DynamoDB refuses: the entry is clipped when appended, stored with the mark of the
/// cut, and its chain verifies; the entries after it, of any tenant, are stored.
#[tokio::test]
async fn an_oversized_entry_is_stored_clipped_and_its_chain_verifies() {
    use lift::security::audit::{MAX_DETAIL_BYTES, MAX_RESOURCE_BYTES};

    let (client, table) = table().await;
    let trail = trail(&client, &table);
    let key = "k".repeat(500 * 1024);
    let detail = serde_json::json!({ key.clone(): 1 }).to_string();
    trail.try_append(entry("acme", "alice", "payments.read", 1).detail(detail.clone())).unwrap();
    let long = AuditEntry::new("acme", "alice", "payments.read", "r".repeat(100 * 1024), Outcome::Success);
    trail.try_append(long.at(2)).unwrap();
    trail.try_append(entry("globex", "bob", "payments.read", 3)).unwrap();
    assert_eq!(trail.flush().await.unwrap(), 3);
    assert_eq!(trail.pending(), 0);

    let acme = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    assert_eq!(acme.len(), 2);
    let stored = &acme[0].entry.detail;
    assert!(stored.len() <= MAX_DETAIL_BYTES, "{}", stored.len());
    assert!(detail.starts_with(stored.split('…').next().unwrap()), "the kept part is the start");
    assert!(stored.ends_with(" bytes]") && stored.contains("…[clipped "), "the cut is marked");
    assert!(acme[1].entry.resource.len() <= MAX_RESOURCE_BYTES);
    assert!(acme[1].entry.resource.contains("…[clipped "));
    assert_eq!(trail.verify("acme").await.unwrap().entries, 2);
    assert_eq!(trail.verify("globex").await.unwrap().entries, 1);
    // A fresh process verifies the stored chain too: what is stored is what was hashed.
    assert_eq!(self::trail(&client, &table).verify("acme").await.unwrap().head.0, 2);
}

/// Makes DynamoDB refuse (`ValidationException`) every put whose detail or resource holds
/// `poison`: it adds an empty string set, which DynamoDB never takes.
#[derive(Debug)]
struct RefusePoison;

impl aws_sdk_dynamodb::config::Intercept for RefusePoison {
    fn name(&self) -> &'static str {
        "RefusePoison"
    }

    fn modify_before_serialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let put = context.input_mut().downcast_mut::<aws_sdk_dynamodb::operation::put_item::PutItemInput>();
        if let Some(item) = put.and_then(|put| put.item.as_mut()) {
            let poisoned = ["detail", "resource"].iter().any(|name| {
                item.get(*name).and_then(|v| v.as_s().ok()).is_some_and(|v| v.contains("poison"))
            });
            if poisoned {
                item.insert("poison".to_owned(), AttributeValue::Ss(Vec::new()));
            }
        }
        Ok(())
    }
}

/// An entry DynamoDB refuses as such does not wedge the trail: its stub takes its place in
/// the chain and says what was lost (its hash, size and the error), the chain verifies, and
/// the entries after it, of every tenant, are stored. A stub refused too gives way to a
/// bare one.
#[tokio::test]
async fn an_entry_dynamodb_refuses_is_replaced_by_its_stub_and_later_entries_are_stored() {
    use lift::security::audit::{SealedEntry, UNSTORED_ACTION};

    let (client, table) = table().await;
    let client =
        aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(RefusePoison).build());
    let trail = trail(&client, &table);
    let poisoned = entry("acme", "mallory", "payments.refund", 2).detail("poison");
    let run = async {
        trail.try_append(entry("acme", "alice", "payments.read", 1)).unwrap();
        trail.try_append(poisoned.clone()).unwrap();
        trail.try_append(entry("globex", "bob", "payments.read", 3)).unwrap();
        // Its stub keeps the resource, so DynamoDB refuses the stub too.
        trail
            .try_append(
                AuditEntry::new("acme", "carol", "records.read", "record/poison", Outcome::Success).at(4),
            )
            .unwrap();
        trail.try_append(entry("acme", "alice", "payments.read", 5)).unwrap();
        let first = trail.flush().await;
        trail.try_append(entry("globex", "bob", "payments.read", 6)).unwrap();
        (first, trail.flush().await)
    };
    let (first, second) = tokio::time::timeout(Duration::from_secs(60), run).await.expect("no flush hangs");
    assert_eq!(first.unwrap(), 5, "the refused entries' stubs are stored in their place");
    assert_eq!(second.unwrap(), 1, "later flushes are not held by a refused entry");
    assert_eq!(trail.pending(), 0);

    let acme = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    assert_eq!(acme.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let stub = &acme[1].entry;
    let original = SealedEntry::seal(2, poisoned.clone(), acme[0].hash);
    let hash: String = original.hash.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!((stub.action.as_str(), stub.actor.as_str(), stub.at_ms), (UNSTORED_ACTION, "mallory", 2));
    assert_eq!((stub.request_id.as_str(), stub.resource.as_str()), ("req-2", "payment/2"));
    assert!(stub.detail.starts_with("entry not stored (ValidationException): hash "), "{}", stub.detail);
    assert!(stub.detail.contains(&format!("hash {hash} at seq 2, ")), "{}", stub.detail);
    assert!(stub.detail.ends_with(", action payments.refund"), "{}", stub.detail);
    let bare = &acme[2].entry;
    assert_eq!(
        (bare.action.as_str(), bare.actor.as_str(), bare.resource.as_str()),
        (UNSTORED_ACTION, "", "")
    );
    assert!(bare.detail.starts_with("entry not stored (ValidationException): hash "), "{}", bare.detail);
    assert!(bare.detail.contains(" at seq 3, "), "{}", bare.detail);
    assert_eq!(acme[3].entry.at_ms, 5);
    let refused = trail.query(AuditQuery::tenant("acme").action(UNSTORED_ACTION)).await.unwrap();
    assert_eq!(refused.len(), 2, "the losses can be queried");
    assert_eq!(trail.verify("acme").await.unwrap().entries, 4);
    assert_eq!(trail.verify("globex").await.unwrap().entries, 2);
}

/// While the buffer stays full, `append` waits for room no longer than its bound, then
/// buffers the entry over the capacity (it records an action already taken): it never holds
/// its request forever. The capacity still holds once the buffer is flushed.
#[tokio::test]
async fn append_waits_for_room_no_longer_than_its_bound() {
    let (client, table) = table().await;
    let trail = AuditTrail::builder()
        .client(client.clone())
        .table(&table)
        .capacity(1)
        .append_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    trail.try_append(entry("acme", "alice", "payments.read", 1)).unwrap();
    tokio::time::timeout(Duration::from_secs(10), trail.append(entry("acme", "alice", "payments.read", 2)))
        .await
        .expect("append must not wait forever");
    assert_eq!(trail.pending(), 2, "the entry is kept, over the capacity");
    assert_eq!(trail.flush().await.unwrap(), 2);
    trail.try_append(entry("acme", "alice", "payments.read", 3)).unwrap();
    assert!(
        matches!(
            trail.try_append(entry("acme", "alice", "payments.read", 4)),
            Err(AuditError::Full { capacity: 1 })
        ),
        "an entry over the capacity frees no room when stored"
    );
    assert_eq!(trail.flush().await.unwrap(), 1);
    assert_eq!(trail.verify("acme").await.unwrap().entries, 3);
}

/// Makes DynamoDB refuse (`ValidationException`) every put while set.
#[derive(Debug, Clone, Default)]
struct RefuseAll(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl aws_sdk_dynamodb::config::Intercept for RefuseAll {
    fn name(&self) -> &'static str {
        "RefuseAll"
    }

    fn modify_before_serialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let put = context.input_mut().downcast_mut::<aws_sdk_dynamodb::operation::put_item::PutItemInput>();
        if let Some(item) = put.and_then(|put| put.item.as_mut()) {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                item.insert("poison".to_owned(), AttributeValue::Ss(Vec::new()));
            }
        }
        Ok(())
    }
}

/// When the table refuses even a bare stub, the refusal is not about the entry: the flush
/// fails as for any error of the store, and the entry itself, not its stub, waits in the
/// buffer and is stored once the table takes items again.
#[tokio::test]
async fn a_table_that_refuses_every_item_keeps_the_entry_itself_buffered() {
    use std::sync::atomic::Ordering;

    let (client, table) = table().await;
    let refuse = RefuseAll::default();
    let client =
        aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(refuse.clone()).build());
    let trail = trail(&client, &table);
    refuse.0.store(true, Ordering::SeqCst);
    trail.try_append(entry("acme", "alice", "payments.refund", 1)).unwrap();
    assert!(matches!(trail.flush().await, Err(AuditError::Unavailable(_))));
    assert_eq!(trail.pending(), 1);
    refuse.0.store(false, Ordering::SeqCst);
    assert_eq!(trail.flush().await.unwrap(), 1);
    let acme = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    assert_eq!((acme.len(), acme[0].entry.action.as_str()), (1, "payments.refund"));
    assert_eq!(trail.verify("acme").await.unwrap().entries, 1);
}

/// The capacity and ceiling of the trail in the outage test below.
const OUTAGE_CAPACITY: usize = 2;
const OUTAGE_CEILING: usize = 4;

/// DynamoDB Local unreachable (every connection reset, pooled ones too): the trail holds at
/// most its ceiling of entries, the requests past it are refused with 503 before their
/// handler runs and their answer holds nothing of the request; once DynamoDB is reachable
/// again the next request passes, and every request whose handler ran has exactly one entry,
/// in chain order, in a chain that verifies. In the refusing and in the degrading mode.
#[tokio::test]
async fn while_dynamodb_is_unreachable_the_trail_holds_its_ceiling_and_refuses_before_the_handler() {
    cut_off(lift_harness::faults::Toxic::reset()).await;
}

/// The same with DynamoDB Local cut off by a blackhole, as in the drills' region outage: the
/// puts held in it reach DynamoDB late, once the route is back, while the trail stores what
/// it holds. Each handled request must still have exactly one entry: a put whose client gave
/// up, looked up and not found, may land afterwards, and the trail must not seal its entry
/// again after it (it did, in 7 runs of 10, before the trail kept every unanswered seq).
#[tokio::test]
async fn while_dynamodb_is_blackholed_the_trail_holds_its_ceiling_and_stores_each_entry_once() {
    cut_off(lift_harness::faults::Toxic::blackhole()).await;
}

/// Cuts DynamoDB Local off with `toxic` while requests go through the audit layer, then
/// heals it; see the tests above.
async fn cut_off(toxic: lift_harness::faults::Toxic) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use lift::security::audit::{AuditStorage, Audited, AUDIT_UNAVAILABLE};
    use lift_harness::faults::FaultProxy;
    use tower::Layer;

    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    for degrade in [false, true] {
        let table = local.create_table(&lift::store::tables::audit()).await.expect("create the table");
        let proxy = FaultProxy::start(local.endpoint()).await.expect("the fault proxy");
        let client = lift_harness::dynamodb::client_for(&proxy.endpoint(), "us-east-1");
        // A call into a blackhole ends at the operation timeout instead of hanging the request.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(500))
            .operation_timeout(Duration::from_millis(500))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(
            client.config().to_builder().timeout_config(timeouts).build(),
        );
        let trail = AuditTrail::builder()
            .client(client.clone())
            .table(&table)
            .capacity(OUTAGE_CAPACITY)
            .max_buffered(OUTAGE_CEILING)
            .append_wait(Duration::ZERO)
            .build()
            .expect("a valid trail");
        let runs = Arc::new(AtomicUsize::new(0));
        let handler = {
            let runs = runs.clone();
            tower::service_fn(move |req: Request| {
                runs.fetch_add(1, Ordering::SeqCst);
                let order = req.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
                if let Some(audit) = AuditHandle::of(&req) {
                    audit.action("payments.capture").resource(format!("order/{order}")).data_class("pci");
                }
                async {
                    Ok::<_, std::convert::Infallible>(lift::json_response(
                        StatusCode::OK,
                        &serde_json::json!({"card": "4111111111111111", "ssn": "123-45-6789"}),
                    ))
                }
            })
        };
        let layer = AuditLayer::new(trail.clone());
        let svc = if degrade { layer.degrade() } else { layer }.layer(handler);
        let call = |order: &str| {
            let req = http::Request::post(format!("/payments/4111111111111111/{order}"))
                .body(Body::empty())
                .unwrap();
            svc.clone().oneshot(req)
        };
        let mut handled = Vec::new();

        // Reachable: the entry is stored, over a pooled connection the fault then cuts too.
        let res = call("before").await.unwrap();
        assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Stored));
        handled.push("order/before".to_owned());

        proxy.set(toxic);
        let mut refused = 0;
        for i in 0..OUTAGE_CEILING + 3 {
            let order = format!("o-{i}");
            let before = runs.load(Ordering::SeqCst);
            let res = tokio::time::timeout(Duration::from_secs(30), call(&order))
                .await
                .expect("a request while DynamoDB is cut off ends")
                .unwrap();
            assert!(
                trail.pending() <= OUTAGE_CEILING,
                "degrade {degrade}: the trail holds {} entries over its ceiling {OUTAGE_CEILING}",
                trail.pending()
            );
            let ran = runs.load(Ordering::SeqCst) > before;
            let storage = res.extensions().get::<AuditStorage>().copied();
            if ran {
                handled.push(format!("order/{order}"));
                assert!(res.extensions().get::<Audited>().is_some(), "request {i}: its entry is held");
                if degrade {
                    assert_eq!((res.status(), storage), (StatusCode::OK, Some(AuditStorage::Degraded)));
                    continue;
                }
            } else {
                refused += 1;
                assert!(res.extensions().get::<Audited>().is_none(), "request {i}: no entry was made");
            }
            // Refused: before the handler at the ceiling, or after it (strict) for want of
            // a stored entry. Either way the answer holds nothing of the request or DynamoDB.
            assert_eq!(
                (res.status(), storage),
                (StatusCode::SERVICE_UNAVAILABLE, Some(AuditStorage::Refused)),
                "degrade {degrade}: request {i}"
            );
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            let body = String::from_utf8(res.into_body().into_bytes().to_vec()).unwrap();
            assert!(body.contains(AUDIT_UNAVAILABLE), "{body}");
            for secret in ["4111", "123-45", "payments", "order", "o-", "127.0.0.1", "timeout", "dispatch"] {
                assert!(!body.to_lowercase().contains(secret), "{secret:?} in a refusal: {body}");
            }
        }
        assert!(refused >= 3, "degrade {degrade}: refusals must start at the ceiling ({refused} refused)");
        assert_eq!(
            handled.len() - 1,
            OUTAGE_CEILING,
            "degrade {degrade}: handlers ran for exactly the ceiling's worth of requests during the outage"
        );
        assert_eq!(runs.load(Ordering::SeqCst), handled.len(), "the handler ran only for those");
        assert_eq!(trail.pending(), OUTAGE_CEILING, "nothing held was dropped");

        // Reachable again: the held entries go first, then the new request's.
        proxy.clear();
        let res = tokio::time::timeout(Duration::from_secs(30), call("after"))
            .await
            .expect("the request after the outage ends")
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "degrade {degrade}: requests pass again");
        assert_eq!(res.extensions().get::<AuditStorage>(), Some(&AuditStorage::Stored));
        handled.push("order/after".to_owned());
        assert_eq!(trail.pending(), 0);
        assert_eq!(runs.load(Ordering::SeqCst), handled.len());

        let stored = trail.query(AuditQuery::tenant("-")).await.unwrap();
        let resources: Vec<&str> = stored.iter().map(|e| e.entry.resource.as_str()).collect();
        assert_eq!(resources, handled, "degrade {degrade}: one entry per handled request, in order");
        let seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=handled.len() as u64).collect::<Vec<_>>(), "degrade {degrade}");
        assert_eq!(trail.verify("-").await.unwrap().entries, handled.len() as u64);
        // A fresh process, straight to DynamoDB Local, verifies the stored chain too.
        assert_eq!(
            self::trail(&local.client().await, &table).verify("-").await.unwrap().head.0,
            handled.len() as u64
        );
    }
}
