//! Compliance rules and middleware: every built-in rule fires on the breach it cites and
//! stays quiet on a clean invocation; the layer blocks critical request-phase breaches
//! before the handler, withholds an answer that carries a critical breach, records the rest
//! from the real response and log lines, and the
//! report follows the evidence. Each rule applies only where its precondition holds: a
//! service that only answered `GET /health` has no evidence for any framework; an unknown
//! transport or region is never a pass; an audit entry that was not stored is no evidence.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, Method, StatusCode};
use lift::middleware::logging::{tracing, MemoryWriter};
use lift::security::audit::{AuditEntry, AuditStorage, Outcome};
use lift::security::compliance::{
    builtin, check, judge, rule, ComplianceLayer, ComplianceRecorder, Facts, Framework, InvocationRecord,
    Phase, RequestView, RequirementStatus, ResponseView, Severity, Status, Transport, Verdict,
};
use lift::{App, Body, Context, Principal, Request, Response};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

const PAN: &str = "4111 1111 1111 1111";

fn record(method: Method, path: &str, body: serde_json::Value) -> InvocationRecord {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-proto", "https".parse().unwrap());
    InvocationRecord {
        request: RequestView {
            method,
            path: path.into(),
            headers,
            body: body.to_string().into(),
            request_id: "req-1".into(),
            tenant: Some("acme".into()),
            subject: Some("user-1".into()),
            region: Some("eu-west-1".into()),
            ..RequestView::default()
        },
        response: None,
        logs: Vec::new(),
        audit: Vec::new(),
        audit_storage: None,
    }
}

/// The verdict of one built-in rule over a record.
fn verdict(id: &str, r: &InvocationRecord) -> Verdict {
    let rules = builtin();
    [Phase::Request, Phase::Invocation]
        .into_iter()
        .flat_map(|p| judge(&rules, p, r))
        .find(|(rule, _)| rule.id() == id)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no rule {id}"))
}

fn respond(mut r: InvocationRecord, status: u16, body: serde_json::Value) -> InvocationRecord {
    r.response = Some(ResponseView {
        status: StatusCode::from_u16(status).unwrap(),
        headers: HeaderMap::new(),
        body: body.to_string().into(),
    });
    r
}

fn fired(r: &InvocationRecord) -> Vec<String> {
    let rules = builtin();
    let mut ids: Vec<String> = [Phase::Request, Phase::Invocation]
        .into_iter()
        .flat_map(|p| check(&rules, p, r))
        .map(|v| v.rule)
        .collect();
    ids.sort();
    ids
}

fn audit_entry(classes: &[&str]) -> AuditEntry {
    AuditEntry::new("acme", "user-1", "read", "x", Outcome::Success).data_classes(classes.iter().copied())
}

#[test]
fn a_clean_invocation_breaks_nothing() {
    let mut r = respond(
        record(Method::POST, "/payments", serde_json::json!({"card_number": PAN, "amount": 100})),
        201,
        serde_json::json!({"id": "pay_1", "card": {"brand": "visa", "last4": "1111"}}),
    );
    r.audit.push(audit_entry(&["pci"]));
    r.audit_storage = Some(AuditStorage::Stored);
    r.logs.push(r#"{"level":"INFO","message":"payment created","card":"************1111"}"#.into());
    assert_eq!(fired(&r), Vec::<String>::new());
    for id in ["PCI-DSS 3.4", "PCI-DSS 3.2.2", "PCI-DSS 4.2.1", "PCI-DSS 10.2.1", "SOC2 CC6.1", "SOC2 CC6.7"]
    {
        assert_eq!(verdict(id, &r), Verdict::Held, "{id} applies to a payment and held");
    }
    for id in ["HIPAA 164.312(a)(1)", "HIPAA 164.312(b)", "GDPR Art. 17", "SOC2 CC7.2", "GDPR Art. 44"] {
        assert_eq!(verdict(id, &r), Verdict::NotApplicable, "{id} has nothing to judge in a card payment");
    }
}

#[test]
fn rules_apply_only_where_their_precondition_holds() {
    // A read of a profile: no card data, no ePHI, no erasure, no 5xx.
    let r = respond(
        record(Method::GET, "/profile", serde_json::json!({})),
        200,
        serde_json::json!({"name": "x"}),
    );
    for id in [
        "PCI-DSS 3.4",
        "PCI-DSS 3.2.2",
        "PCI-DSS 4.2.1",
        "PCI-DSS 10.2.1",
        "HIPAA 164.312(b)",
        "GDPR Art. 17",
        "GDPR Art. 32",
        "SOC2 CC7.2",
    ] {
        assert_eq!(verdict(id, &r), Verdict::NotApplicable, "{id}");
    }
    // The health check is public: no access-control or disclosure evidence either.
    let health = respond(
        record(Method::GET, "/health", serde_json::json!({})),
        200,
        serde_json::json!({"status": "ok"}),
    );
    for id in ["SOC2 CC6.1", "SOC2 CC6.7"] {
        assert_eq!(verdict(id, &health), Verdict::NotApplicable, "{id}");
    }
    // A 401 before the handler touched nothing PHI: HIPAA's 2xx-only audit rule is silent.
    let mut refused = respond(
        record(Method::GET, "/patients/p-1/records", serde_json::json!({})),
        401,
        serde_json::json!({}),
    );
    refused.request.subject = None;
    assert_eq!(verdict("HIPAA 164.312(b)", &refused), Verdict::NotApplicable);
    assert_eq!(verdict("HIPAA 164.312(a)(1)", &refused), Verdict::NotApplicable);
}

#[test]
fn an_unknown_transport_or_region_is_unknown_never_held() {
    let mut r =
        record(Method::POST, "/payments", serde_json::json!({"card_number": PAN, "diagnosis": "J45"}));
    r.request.headers.remove("x-forwarded-proto");
    assert_eq!(r.transport(), Transport::Unknown);
    assert!(matches!(verdict("PCI-DSS 4.2.1", &r), Verdict::Unknown(_)));
    assert!(matches!(verdict("HIPAA 164.312(e)(1)", &r), Verdict::Unknown(_)));
    // What the event source proves wins over a header.
    r.request.transport = Transport::Tls;
    assert_eq!(verdict("PCI-DSS 4.2.1", &r), Verdict::Held);
    r.request.transport = Transport::Unknown;
    r.request.headers.insert("x-forwarded-proto", "HTTP".parse().unwrap());
    assert!(matches!(verdict("PCI-DSS 4.2.1", &r), Verdict::Violated(_)));

    let mut eu = record(Method::POST, "/payments", serde_json::json!({"customer": {"country": "DE"}}));
    eu.request.region = None;
    assert!(matches!(verdict("GDPR Art. 44", &eu), Verdict::Unknown(_)), "no region proves nothing");
    eu.request.region = Some("eu-central-1".into());
    assert_eq!(verdict("GDPR Art. 44", &eu), Verdict::Held);
    eu.request.region = Some("us-east-1".into());
    assert!(matches!(verdict("GDPR Art. 44", &eu), Verdict::Violated(_)));
}

#[test]
fn an_audit_entry_that_was_not_stored_is_no_evidence() {
    let mut r = respond(
        record(Method::POST, "/payments", serde_json::json!({"card_number": PAN})),
        201,
        serde_json::json!({"card": {"last4": "1111"}}),
    );
    r.audit.push(audit_entry(&["pci"]));
    for (storage, held) in
        [(Some(AuditStorage::Stored), true), (Some(AuditStorage::Degraded), false), (None, false)]
    {
        r.audit_storage = storage;
        let v = verdict("PCI-DSS 10.2.1", &r);
        assert_eq!(v == Verdict::Held, held, "{storage:?}: {v:?}");
        if storage == Some(AuditStorage::Degraded) {
            assert!(matches!(&v, Verdict::Violated(d) if d.contains("audit degraded")), "{v:?}");
        }
    }
    let mut erase =
        respond(record(Method::DELETE, "/customers/c-1", serde_json::json!({})), 200, serde_json::json!({}));
    erase.audit.push(audit_entry(&["pii"]));
    assert!(matches!(verdict("GDPR Art. 17", &erase), Verdict::Violated(_)), "attached but never stored");
    erase.audit_storage = Some(AuditStorage::Stored);
    assert_eq!(verdict("GDPR Art. 17", &erase), Verdict::Held);
    let mut phi = respond(
        record(Method::GET, "/records/1", serde_json::json!({})),
        200,
        serde_json::json!({"diagnosis": "J45"}),
    );
    phi.audit.push(audit_entry(&["phi"]));
    phi.audit_storage = Some(AuditStorage::Refused);
    assert!(matches!(verdict("HIPAA 164.312(b)", &phi), Verdict::Violated(_)));
}

async fn health(_req: Request) -> Response {
    lift::json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

#[tokio::test]
async fn a_service_that_only_answered_health_has_no_evidence_for_any_framework() {
    let recorder = ComplianceRecorder::new();
    let app = App::new()
        .region("eu-west-1")
        .get("/health", health)
        .layer(ComplianceLayer::new(recorder.clone()))
        .into_service();
    for _ in 0..5 {
        let req = http::Request::builder()
            .uri("/health")
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
    }
    let report = recorder.report();
    assert_eq!(report.frameworks.len(), 4);
    for f in &report.frameworks {
        assert_eq!(f.status, Status::NotExercised, "{:?}", f.framework);
        assert_ne!(f.status, Status::Pass);
        assert!(!f.requirements.is_empty(), "{:?} lists its requirements", f.framework);
        assert_eq!(f.not_exercised.len(), f.requirements.len(), "{:?}", f.framework);
        for r in &f.requirements {
            assert_eq!((r.applied, r.held, r.violated, r.blocked, r.unknown), (0, 0, 0, 0, 0), "{}", r.id);
            assert_eq!(r.status, RequirementStatus::NotExercised);
        }
    }
    let markdown = report.to_markdown();
    assert!(!markdown.contains("Pass"), "{markdown}");
    assert_eq!(markdown.matches("— Not exercised").count(), 4, "{markdown}");
    assert_eq!(report.to_json()["frameworks"][0]["status"], "NotExercised");
}

#[tokio::test]
async fn a_framework_passes_only_when_every_requirement_applied_and_held() {
    let recorder = ComplianceRecorder::new();
    let only = |id: &str| builtin().into_iter().filter(|r| r.id() == id).collect::<Vec<_>>();
    let mut rules = only("PCI-DSS 3.4");
    rules.extend(only("PCI-DSS 4.2.1"));
    let app = App::new()
        .post("/payments", create)
        .layer(ComplianceLayer::with_rules(recorder.clone(), rules))
        .layer(tower::util::MapRequestLayer::new(authenticated))
        .into_service();
    // PCI 3.4 applies and holds; 4.2.1 never sees a transport it can prove.
    let mut req = post("/payments", "https", serde_json::json!({"card_number": PAN}));
    req.headers_mut().remove("x-forwarded-proto");
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::CREATED,
        "unknown does not block"
    );
    let pci = recorder.report().frameworks.into_iter().find(|f| f.framework == Framework::PciDss).unwrap();
    assert_eq!(pci.status, Status::Incomplete);
    assert_eq!(pci.unknown, ["PCI-DSS 4.2.1"]);
    // Over TLS it is proven; the unknown invocation is still on record: not Pass.
    app.clone().oneshot(post("/payments", "https", serde_json::json!({"card_number": PAN}))).await.unwrap();
    let pci = recorder.report().frameworks.into_iter().find(|f| f.framework == Framework::PciDss).unwrap();
    assert_eq!(pci.status, Status::Incomplete);
    let r = pci.requirements.iter().find(|r| r.id == "PCI-DSS 4.2.1").unwrap();
    assert_eq!((r.applied, r.held, r.unknown), (2, 1, 1));

    // A fresh recorder with only proven invocations: Pass.
    let recorder = ComplianceRecorder::new();
    let mut rules = only("PCI-DSS 3.4");
    rules.extend(only("PCI-DSS 4.2.1"));
    let app = App::new()
        .post("/payments", create)
        .layer(ComplianceLayer::with_rules(recorder.clone(), rules))
        .layer(tower::util::MapRequestLayer::new(authenticated))
        .into_service();
    app.oneshot(post("/payments", "https", serde_json::json!({"card_number": PAN}))).await.unwrap();
    let pci = recorder.report().frameworks.into_iter().find(|f| f.framework == Framework::PciDss).unwrap();
    assert_eq!(pci.status, Status::Pass);
    assert!(pci.not_exercised.is_empty());
}

#[tokio::test]
async fn an_api_gateway_event_proves_tls_without_any_header() {
    use lift::event::{BoxHttpService, Dispatcher, EventRouter};
    let recorder = ComplianceRecorder::new();
    let only: Vec<_> = builtin().into_iter().filter(|r| r.id() == "PCI-DSS 4.2.1").collect();
    let app = App::new()
        .post("/payments", create)
        .layer(ComplianceLayer::with_rules(recorder.clone(), only))
        .into_service();
    let dispatcher = Dispatcher::new(Some(BoxHttpService::new(app)), EventRouter::new());
    for fixture in [
        include_str!("fixtures/apigw-v2-request.json"),
        include_str!("fixtures/function-url-request.json"),
        include_str!("fixtures/apigw-v1-request.json"),
    ] {
        let mut event: serde_json::Value = serde_json::from_str(fixture).unwrap();
        // Nothing in the headers says https: only the event source does.
        for headers in ["headers", "multiValueHeaders"] {
            if let Some(h) = event[headers].as_object_mut() {
                h.retain(|k, _| !k.eq_ignore_ascii_case("x-forwarded-proto"));
            }
        }
        event["body"] = serde_json::json!({"card_number": PAN}).to_string().into();
        event["isBase64Encoded"] = false.into();
        if event["requestContext"]["http"].is_object() {
            event["rawPath"] = "/payments".into();
            event["requestContext"]["http"]["method"] = "POST".into();
            event["requestContext"]["http"]["path"] = "/payments".into();
        } else {
            event["path"] = "/payments".into();
            event["httpMethod"] = "POST".into();
        }
        let invocation = lift::Invocation {
            request_id: "req-1".into(),
            deadline: None,
            invoked_function_arn: None,
            xray_trace_id: None,
        };
        let res = dispatcher.dispatch(event, invocation).await.unwrap();
        assert_eq!(res["statusCode"], 201, "{res}");
    }
    let r = recorder.records().into_iter().find(|r| r.id == "PCI-DSS 4.2.1").unwrap();
    assert_eq!((r.applied, r.held, r.unknown, r.violated, r.blocked), (3, 3, 0, 0, 0), "{:?}", r.evidence);
}

#[test]
fn each_builtin_rule_fires_on_its_breach() {
    let card = serde_json::json!({"card": {"last4": "1111"}});
    let cases: Vec<(&str, InvocationRecord)> = vec![
        ("PCI-DSS 3.4", {
            let mut r = respond(record(Method::GET, "/payments/1", serde_json::json!({})), 200, card.clone());
            r.audit.push(audit_entry(&[]));
            r.logs.push(format!("charging card {PAN}"));
            r
        }),
        ("PCI-DSS 3.2.2", {
            let mut r = respond(
                record(Method::GET, "/payments/1", serde_json::json!({})),
                200,
                serde_json::json!({"card": {"cvv": "123"}}),
            );
            r.audit.push(audit_entry(&[]));
            r
        }),
        ("PCI-DSS 4.2.1", {
            let mut r = record(Method::POST, "/payments", serde_json::json!({"card_number": PAN}));
            r.request.headers.insert("x-forwarded-proto", "http".parse().unwrap());
            r
        }),
        (
            "PCI-DSS 10.2.1",
            respond(record(Method::GET, "/payments/1", serde_json::json!({})), 200, card.clone()),
        ),
        ("HIPAA 164.312(a)(1)", {
            let mut r = respond(
                record(Method::GET, "/records/1", serde_json::json!({})),
                200,
                serde_json::json!({"diagnosis": "J45"}),
            );
            r.request.subject = None;
            r.audit.push(audit_entry(&["phi"]));
            r
        }),
        (
            "HIPAA 164.312(b)",
            respond(
                record(Method::GET, "/records/1", serde_json::json!({})),
                200,
                serde_json::json!({"diagnosis": "J45"}),
            ),
        ),
        ("HIPAA 164.312(e)(1)", {
            let mut r = record(Method::POST, "/records", serde_json::json!({"medications": ["x"]}));
            r.request.headers.insert("x-forwarded-proto", "http".parse().unwrap());
            r
        }),
        ("GDPR Art. 44", {
            let mut r =
                record(Method::POST, "/customers", serde_json::json!({"customer": {"country": "DE"}}));
            r.request.region = Some("us-east-1".into());
            r
        }),
        ("GDPR Art. 32", {
            let mut r = respond(record(Method::GET, "/x", serde_json::json!({})), 200, serde_json::json!({}));
            r.logs.push("customer ada.lovelace@example.com signed in".into());
            r
        }),
        (
            "GDPR Art. 17",
            respond(
                record(Method::DELETE, "/customers/c-1", serde_json::json!({})),
                204,
                serde_json::json!({}),
            ),
        ),
        ("SOC2 CC6.1", {
            let mut r = respond(record(Method::GET, "/x", serde_json::json!({})), 200, serde_json::json!({}));
            r.request.subject = None;
            r
        }),
        (
            "SOC2 CC6.7",
            respond(
                record(Method::GET, "/x", serde_json::json!({})),
                200,
                serde_json::json!({"key": "AKIAIOSFODNN7EXAMPLE"}),
            ),
        ),
        ("SOC2 CC7.2", respond(record(Method::GET, "/x", serde_json::json!({})), 500, serde_json::json!({}))),
    ];
    assert_eq!(cases.len(), builtin().len(), "a case per built-in rule");
    for (id, r) in cases {
        assert!(fired(&r).contains(&id.to_owned()), "{id} did not fire: {:?}", fired(&r));
    }
}

/// Calls of `counted_create`. Only `the_layer_blocks_records_and_reports_from_evidence`
/// mounts it: the other tests, running beside it, mount `create`, so they cannot move it.
static HANDLED: AtomicUsize = AtomicUsize::new(0);

async fn counted_create(req: Request) -> Response {
    HANDLED.fetch_add(1, Ordering::SeqCst);
    create(req).await
}

async fn create(req: Request) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let body: serde_json::Value = serde_json::from_slice(req.body().as_bytes()).unwrap_or_default();
    if body["log_raw_pan"] == true {
        // The deliberately broken handler: logs the card number it was given.
        tracing::info!(card = %body["card_number"].as_str().unwrap_or_default(), "charging");
    }
    lift::json_response(StatusCode::CREATED, &serde_json::json!({"id": "pay_1", "query": query}))
}

fn authenticated(mut req: Request) -> Request {
    if let Some(ctx) = Context::of_mut(&mut req) {
        ctx.set_principal(Principal::new("user-1", "acme"));
    }
    req
}

fn post(uri: &str, proto: &str, body: serde_json::Value) -> Request {
    http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("x-forwarded-proto", proto)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn the_layer_blocks_records_and_reports_from_evidence() {
    // The service logs through a plain formatter, not Lift's JSON layer (which would
    // scrub the card number): the broken handler's PAN really reaches the log.
    let logs = MemoryWriter::new();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(logs.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let recorder = ComplianceRecorder::new();
    let custom = rule(
        "SOC2 CC8.1",
        Framework::Soc2,
        Severity::Critical,
        Phase::Request,
        "no debug header",
        |r: &Facts<'_>| {
            r.request.headers.contains_key("x-debug").then(|| "x-debug header present".to_owned())
        },
    );
    let app = App::new()
        .region("us-east-1")
        .post("/payments", counted_create)
        .layer(ComplianceLayer::new(recorder.clone()).rule(custom).logs(logs.clone()))
        .layer(tower::util::MapRequestLayer::new(authenticated))
        .into_service();
    let handled = || HANDLED.load(Ordering::SeqCst);
    let before = handled();

    // Critical request-phase breaches never reach the handler.
    let res = app
        .clone()
        .oneshot(post("/payments", "http", serde_json::json!({"card_number": PAN})))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = app
        .clone()
        .oneshot(post("/payments", "https", serde_json::json!({"customer": {"country": "FR"}})))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "EU data refused in us-east-1");
    let mut debug = post("/payments", "https", serde_json::json!({}));
    debug.headers_mut().insert("x-debug", "1".parse().unwrap());
    assert_eq!(app.clone().oneshot(debug).await.unwrap().status(), StatusCode::FORBIDDEN, "custom rule");
    assert_eq!(handled(), before, "the handler never ran");

    // Sanitizing: a card number in the query string never reaches the handler.
    let res = app
        .clone()
        .oneshot(post(
            &format!("/payments?card={}&x=1", PAN.replace(' ', "")),
            "https",
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(res.body().as_bytes()).unwrap();
    assert_eq!(body["query"], "card=%5BREDACTED%5D&x=1");

    let report = recorder.report();
    let pci = report.frameworks.iter().find(|f| f.framework == Framework::PciDss).unwrap();
    let rule_3_4 = pci.requirements.iter().find(|r| r.id == "PCI-DSS 3.4").unwrap();
    assert_eq!(rule_3_4.violated, 0, "nothing leaked yet");
    assert_eq!(rule_3_4.applied, 0, "no card data reached the handler yet");

    // The deliberately broken handler logs a raw PAN: PCI-DSS 3.4 fails, with evidence.
    let res = app
        .clone()
        .oneshot(post("/payments", "https", serde_json::json!({"card_number": PAN, "log_raw_pan": true})))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "a breach in a log line is recorded; the answer goes");
    assert!(logs.contents().contains("4111"), "the broken handler really logged it");
    let report = recorder.report();
    let pci = report.frameworks.iter().find(|f| f.framework == Framework::PciDss).unwrap();
    assert_eq!(pci.status, Status::Fail);
    let rule_3_4 = pci.requirements.iter().find(|r| r.id == "PCI-DSS 3.4").unwrap();
    assert_eq!(rule_3_4.violated, 1);
    assert!(rule_3_4.evidence[0].detail.contains("log line"), "{:?}", rule_3_4.evidence);
    assert!(!rule_3_4.evidence[0].detail.contains("4111"), "evidence never repeats the value");
    let gdpr = report.frameworks.iter().find(|f| f.framework == Framework::Gdpr).unwrap();
    // The 451 was a breach prevented, not a breach; but GDPR Art. 17 and Art. 32 never
    // applied, so GDPR has no pass to claim.
    assert_eq!(gdpr.status, Status::Incomplete);
    assert_eq!(gdpr.not_exercised, ["GDPR Art. 17", "GDPR Art. 32"]);
    let art_44 = gdpr.requirements.iter().find(|r| r.id == "GDPR Art. 44").unwrap();
    assert_eq!((art_44.applied, art_44.violated, art_44.blocked), (1, 0, 1));
    let json = report.to_json();
    assert_eq!(json["frameworks"][0]["framework"], "PciDss");
    assert!(report.to_markdown().contains("PCI-DSS 3.4"));
}

/// A handler that answers (and logs) what its request asks: the breaches of the next test.
async fn leaky(req: Request) -> Response {
    let body: serde_json::Value = serde_json::from_slice(req.body().as_bytes()).unwrap_or_default();
    if body["log_raw_pan"] == true {
        tracing::info!(card = %PAN, "charging");
    }
    match body["answer"].as_str() {
        Some("cvv") => lift::json_response(StatusCode::OK, &serde_json::json!({"id": "pay_1", "cvv": "987"})),
        Some("pan") => {
            lift::json_response(StatusCode::OK, &serde_json::json!({"id": "pay_1", "card_number": PAN}))
        }
        Some("fail") => {
            lift::json_response(StatusCode::INTERNAL_SERVER_ERROR, &serde_json::json!({"error": "x"}))
        }
        _ => lift::json_response(StatusCode::CREATED, &serde_json::json!({"id": "pay_1"})),
    }
}

/// An answer that carries a critical breach (a verification code, a card number) is
/// withheld: the client gets the rule's status as a problem, which repeats nothing of it.
/// The breach counts as blocked when the answer was its only evidence, and as violated when
/// a log line leaked it too. A breach the answer does not carry (a 5xx nobody logged) lets
/// the answer through.
#[tokio::test]
async fn an_answer_that_carries_the_breach_is_withheld() {
    let logs = MemoryWriter::new();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(logs.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let recorder = ComplianceRecorder::new();
    let app = App::new()
        .region("us-east-1")
        .post("/payments", leaky)
        .layer(ComplianceLayer::new(recorder.clone()).logs(logs.clone()))
        .layer(tower::util::MapRequestLayer::new(authenticated))
        .into_service();
    let send = |body: serde_json::Value| app.clone().oneshot(post("/payments", "https", body));
    let requirement = |id: &str| {
        let report = recorder.report();
        report.frameworks.iter().flat_map(|f| f.requirements.clone()).find(|r| r.id == id).unwrap()
    };

    let res = send(serde_json::json!({"answer": "cvv"})).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let text = String::from_utf8_lossy(res.body().as_bytes()).into_owned();
    assert!(text.contains("PCI-DSS 3.2.2") && !text.contains("987"), "{text}");
    let r = requirement("PCI-DSS 3.2.2");
    assert_eq!((r.violated, r.blocked), (0, 1), "the answer was the only evidence, and it never left");

    let res = send(serde_json::json!({"answer": "pan", "log_raw_pan": true})).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let text = String::from_utf8_lossy(res.body().as_bytes()).into_owned();
    assert!(!text.contains("4111") && !text.contains("1111"), "{text}");
    let r = requirement("PCI-DSS 3.4");
    assert_eq!((r.violated, r.blocked), (1, 0), "the log line leaked it all the same");
    let detail = &r.evidence[0].detail;
    assert!(detail.contains("the response body") && detail.contains("log line"), "{detail}");

    let res = send(serde_json::json!({"answer": "fail"})).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "a breach not in the answer withholds nothing"
    );
    assert_eq!(requirement("SOC2 CC7.2").violated, 1);
    assert_eq!(send(serde_json::json!({})).await.unwrap().status(), StatusCode::CREATED);
}

/// A report with every kind of count: held, violated (with evidence), blocked, unknown and
/// not exercised, plus a degraded audit answer.
fn golden_report() -> lift::security::compliance::ComplianceReport {
    let recorder = ComplianceRecorder::new();
    let rules = builtin();
    recorder.register(&rules);
    let of = |id: &str| rules.iter().find(|r| r.id() == id).unwrap().clone();
    recorder.record(&[(of("PCI-DSS 3.4"), Verdict::Held)], "req-1", false);
    recorder.record(
        &[(of("PCI-DSS 3.4"), Verdict::Violated("a card number in clear in log line 2".into()))],
        "req-2",
        false,
    );
    recorder.record(
        &[(of("PCI-DSS 4.2.1"), Verdict::Violated("a card number arrived over plain HTTP".into()))],
        "req-3",
        true,
    );
    recorder.record(
        &[(of("PCI-DSS 4.2.1"), Verdict::Unknown("nothing proves the transport".into()))],
        "req-4",
        false,
    );
    recorder.record(
        &[(of("GDPR Art. 44"), Verdict::Held), (of("GDPR Art. 32"), Verdict::NotApplicable)],
        "req-5",
        false,
    );
    recorder.record_audit(AuditStorage::Stored);
    recorder.record_audit(AuditStorage::Degraded);
    let mut report = recorder.report();
    for f in &mut report.frameworks {
        for r in &mut f.requirements {
            for e in &mut r.evidence {
                e.at_ms = 0;
            }
        }
    }
    report
}

/// Compares with a fixture; `LIFT_UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, expected: &str, actual: &str) {
    if std::env::var_os("LIFT_UPDATE_GOLDEN").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        std::fs::write(path, actual).unwrap();
        return;
    }
    assert_eq!(actual, expected, "{name} changed; rerun with LIFT_UPDATE_GOLDEN=1 if on purpose");
}

#[test]
fn the_markdown_report_matches_its_golden_file_and_every_row_fills_the_header() {
    let markdown = golden_report().to_markdown();
    golden("compliance-report.md", include_str!("fixtures/compliance-report.md"), &markdown);
    for table in markdown.split("\n\n").filter(|b| b.starts_with("| Requirement")) {
        let cells = |line: &str| line.matches('|').count() - line.matches("\\|").count();
        let mut lines = table.lines();
        let header = cells(lines.next().unwrap());
        for line in lines {
            assert_eq!(cells(line), header, "a row with another number of cells: {line}");
        }
    }
    let pci = markdown.split("\n## ").find(|s| s.starts_with("PCI-DSS")).unwrap();
    assert!(pci.starts_with("PCI-DSS — Fail"), "{pci}");
    let row = pci.lines().find(|l| l.starts_with("| PCI-DSS 4.2.1")).unwrap();
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    // | id | severity | applied | held | violated | blocked | unknown | status | evidence |
    assert_eq!(&cols[3..9], ["2", "0", "0", "1", "1", "unknown"], "{row}");
}

#[test]
fn the_json_report_matches_its_golden_file() {
    let json = serde_json::to_string_pretty(&golden_report().to_json()).unwrap() + "\n";
    golden("compliance-report.json", include_str!("fixtures/compliance-report.json"), &json);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["frameworks"][0]["status"], "Fail");
    assert_eq!(value["frameworks"][3]["status"], "Incomplete", "GDPR: Art. 44 held, the rest never applied");
    assert_eq!(value["frameworks"][3]["not_exercised"], serde_json::json!(["GDPR Art. 17", "GDPR Art. 32"]));
    assert_eq!(value["audit_storage"]["degraded"], 1);
}

/// A card number in an audit entry breaks PCI-DSS 3.4 wherever in the entry it is: its
/// details, and its resource or action (which default to what the caller sent in the path).
#[test]
fn a_card_number_anywhere_in_an_audit_entry_breaks_pci_dss_3_4() {
    let base = || {
        let mut r = respond(
            record(Method::POST, "/payments", serde_json::json!({"card_number": PAN, "amount": 100})),
            201,
            serde_json::json!({"id": "pay_1"}),
        );
        r.audit_storage = Some(AuditStorage::Stored);
        r
    };
    let clean = AuditEntry::new("acme", "user-1", "POST /payments", "/payments", Outcome::Success);
    let mut r = base();
    r.audit.push(clean.clone());
    assert_eq!(verdict("PCI-DSS 3.4", &r), Verdict::Held);
    for entry in [
        AuditEntry::new("acme", "user-1", "POST /payments", format!("/payments/{PAN}"), Outcome::Success),
        AuditEntry::new("acme", "user-1", format!("GET /payments/{PAN}"), "/payments", Outcome::Success),
        clean.clone().detail(format!("card {PAN}")),
    ] {
        let mut r = base();
        r.audit.push(entry.clone());
        assert!(matches!(verdict("PCI-DSS 3.4", &r), Verdict::Violated(_)), "{entry:?}");
    }
}
