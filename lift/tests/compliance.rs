//! Compliance rules and middleware: every built-in rule fires on the breach it cites and
//! stays quiet on a clean invocation; the layer blocks critical request-phase breaches
//! before the handler, records the rest from the real response and log lines, and the
//! report follows the evidence.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, Method, StatusCode};
use lift::middleware::logging::{tracing, MemoryWriter};
use lift::security::audit::{AuditEntry, Outcome};
use lift::security::compliance::{
    builtin, check, rule, ComplianceLayer, ComplianceRecorder, Facts, Framework, InvocationRecord, Phase,
    RequestView, ResponseView, Severity, Status,
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
    }
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
    r.logs.push(r#"{"level":"INFO","message":"payment created","card":"************1111"}"#.into());
    assert_eq!(fired(&r), Vec::<String>::new());
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

static HANDLED: AtomicUsize = AtomicUsize::new(0);

async fn create(req: Request) -> Response {
    HANDLED.fetch_add(1, Ordering::SeqCst);
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
        .post("/payments", create)
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
    assert!(rule_3_4.checked >= 1);

    // The deliberately broken handler logs a raw PAN: PCI-DSS 3.4 fails, with evidence.
    let res = app
        .clone()
        .oneshot(post("/payments", "https", serde_json::json!({"card_number": PAN, "log_raw_pan": true})))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "invocation-phase breaches are recorded, not blocked");
    assert!(logs.contents().contains("4111"), "the broken handler really logged it");
    let report = recorder.report();
    let pci = report.frameworks.iter().find(|f| f.framework == Framework::PciDss).unwrap();
    assert_eq!(pci.status, Status::Fail);
    let rule_3_4 = pci.requirements.iter().find(|r| r.id == "PCI-DSS 3.4").unwrap();
    assert_eq!(rule_3_4.violated, 1);
    assert!(rule_3_4.evidence[0].detail.contains("log line"), "{:?}", rule_3_4.evidence);
    assert!(!rule_3_4.evidence[0].detail.contains("4111"), "evidence never repeats the value");
    let gdpr = report.frameworks.iter().find(|f| f.framework == Framework::Gdpr).unwrap();
    assert_eq!(gdpr.status, Status::Pass, "the 451 was a breach prevented, not a breach");
    let art_44 = gdpr.requirements.iter().find(|r| r.id == "GDPR Art. 44").unwrap();
    assert_eq!((art_44.violated, art_44.blocked), (0, 1));
    let json = report.to_json();
    assert_eq!(json["frameworks"][0]["framework"], "PciDss");
    assert!(report.to_markdown().contains("PCI-DSS 3.4"));
}
