//! The full recommended stack as payments mounts it (`Config::stack` + `payments::mount`),
//! configured from variables as `main` reads them, on real DynamoDB Local, the mocked JWKS
//! issuer and a local X-Ray daemon socket: each layer is shown in the path of a payments
//! request by what it does to that request, not by the stack compiling.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use http::{header, Method, StatusCode};
use lift::app::AppService;
use lift::middleware::metrics::MemorySink;
use lift::security::audit::{AuditQuery, AuditTrail};
use lift::security::compliance::ComplianceRecorder;
use lift::{Request, Response};
use lift_harness::aws::{Alg, JwksIssuer};
use lift_harness::dynamodb::DynamoDbLocal;
use payments::{Config, PaymentStore, Payments, StackParts};
use support::{json, new_payment, request, FINGERPRINT_KEY};
use tower::ServiceExt;

/// A sampled trace header, so every request sends a segment to the daemon.
const TRACE: &str = "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c;Parent=53995c3f42cd8ad8;Sampled=1";

struct Stacked {
    service: AppService,
    client: aws_sdk_dynamodb::Client,
    payments_table: String,
    audit_table: String,
    metrics: MemorySink,
    compliance: ComplianceRecorder,
    daemon: tokio::net::UdpSocket,
    jwks: Option<JwksIssuer>,
}

/// Payments behind `Config::stack`, its tables new; `extra` adds or overrides variables.
async fn stacked(jwt: bool, extra: &[(&str, &str)]) -> Stacked {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let client = ddb.client().await;
    let payments_table = ddb.create_table(&payments::table_def()).await.expect("payments table");
    let idempotency_table =
        ddb.create_table(&lift::store::tables::idempotency()).await.expect("idempotency table");
    let rate_limit_table =
        ddb.create_table(&lift::store::tables::rate_limits()).await.expect("rate limit table");
    let audit_table = ddb.create_table(&lift::store::tables::audit()).await.expect("audit table");
    let daemon = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a local daemon socket");
    let daemon_address = daemon.local_addr().expect("its address").to_string();
    let jwks = if jwt { Some(JwksIssuer::start().await.expect("the mocked JWKS issuer")) } else { None };

    let mut vars: HashMap<String, String> = [
        ("PAYMENTS_FINGERPRINT_KEY", std::str::from_utf8(FINGERPRINT_KEY).unwrap()),
        ("PAYMENTS_TABLE", &payments_table),
        ("PAYMENTS_IDEMPOTENCY_TABLE", &idempotency_table),
        ("PAYMENTS_RATE_LIMIT_TABLE", &rate_limit_table),
        ("PAYMENTS_AUDIT_TABLE", &audit_table),
        ("PAYMENTS_METRICS_NAMESPACE", "PaymentsTest"),
        ("AWS_XRAY_DAEMON_ADDRESS", &daemon_address),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(jwks) = &jwks {
        vars.insert("PAYMENTS_JWT_ISSUER".into(), jwks.issuer());
        vars.insert("PAYMENTS_JWKS_URL".into(), jwks.jwks_url());
    }
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::from_env_vars(|name| vars.get(name).cloned()).expect("a valid configuration");

    let fingerprint_key = config.fingerprint_key.load().await.expect("the key is in the environment");
    let store = PaymentStore::new(client.clone(), config.table.clone(), fingerprint_key.clone());
    let metrics = MemorySink::new();
    let compliance = ComplianceRecorder::new();
    let parts = StackParts {
        dynamodb: Some(client.clone()),
        idempotency: Some(
            config.idempotency_layer(client.clone(), &fingerprint_key).expect("idempotency layer"),
        ),
        compliance: compliance.clone(),
    };
    let stack = config.stack(parts, metrics.clone()).expect("the stack builds");
    let payments = Payments { store, dev_tenant_header_insecure: config.dev_tenant_header_insecure };
    let service = payments::mount(payments, stack).into_service();
    Stacked { service, client, payments_table, audit_table, metrics, compliance, daemon, jwks }
}

impl Stacked {
    async fn call(&self, mut req: Request) -> Response {
        req.headers_mut().insert("x-amzn-trace-id", TRACE.parse().unwrap());
        self.service.clone().oneshot(req).await.unwrap()
    }

    fn token(&self, tenant: &str) -> String {
        let jwks = self.jwks.as_ref().expect("a stack with JWT");
        let mut claims = jwks.claims(&format!("user-of-{tenant}"), payments::DEFAULT_AUDIENCE);
        claims["tenant_id"] = tenant.into();
        claims["scope"] = format!("{} {}", payments::READ_SCOPE, payments::WRITE_SCOPE).into();
        jwks.sign(&claims, Alg::Rs256, None).expect("sign")
    }

    fn as_tenant(&self, token: &str, method: Method, uri: &str, body: Option<serde_json::Value>) -> Request {
        support::authorized(method, uri, token, body)
    }

    fn trail(&self) -> AuditTrail {
        AuditTrail::builder().client(self.client.clone()).table(&self.audit_table).build().unwrap()
    }

    async fn stored_payments(&self) -> i32 {
        let out = self.client.scan().table_name(&self.payments_table).send().await.expect("scan");
        out.count()
    }

    /// The EMF documents emitted so far, as JSON.
    fn emf(&self) -> Vec<serde_json::Value> {
        self.metrics.json()
    }

    /// The next segment the daemon received (a bound, not a timing assertion).
    async fn segment(&self) -> serde_json::Value {
        let mut buf = vec![0u8; 65_536];
        let n = tokio::time::timeout(Duration::from_secs(10), self.daemon.recv(&mut buf))
            .await
            .expect("a segment reaches the daemon")
            .expect("recv");
        let datagram = std::str::from_utf8(&buf[..n]).expect("utf-8");
        // `{"format":"json","version":1}\n{segment}`
        let (_, document) = datagram.split_once('\n').expect("header and document");
        serde_json::from_str(document).expect("a JSON segment")
    }
}

fn is_problem(res: &Response) -> bool {
    res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == "application/problem+json")
}

#[tokio::test]
async fn a_payment_goes_through_metrics_xray_jwt_idempotency_compliance_and_audit() {
    let env = stacked(true, &[]).await;
    let token = env.token("acme");
    let body = new_payment(1250, "EUR");
    let create = || {
        let mut req = env.as_tenant(&token, Method::POST, "/payments", Some(body.clone()));
        req.headers_mut().insert("idempotency-key", "stack-key-1".parse().unwrap());
        req
    };
    let first = env.call(create()).await;
    assert_eq!(first.status(), StatusCode::CREATED, "{:?}", json(&first));
    let id = json(&first)["id"].as_str().unwrap().to_owned();

    // X-Ray: the trace header goes back out, and the segment reached the daemon.
    assert!(first.headers().get("x-amzn-trace-id").is_some(), "{:?}", first.headers());
    let segment = env.segment().await;
    assert_eq!(segment["trace_id"], "1-5e9f0c65-1de4d666d4dd26aced652b6c", "{segment}");
    assert_eq!(segment["http"]["response"]["status"], 201, "{segment}");

    // Metrics: one EMF document for the create, under the configured namespace, with the
    // route the router matched inside every other layer.
    let docs = env.emf();
    let doc = docs.iter().find(|d| d["Route"] == "/payments").expect("an EMF document of the route");
    assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "PaymentsTest", "{doc}");
    assert_eq!(doc["Requests"], 1.0, "{doc}");
    assert_eq!(doc["4xx"], 0.0, "{doc}");
    // Metrics sit outside JWT; the tenant it resolved still reaches the document.
    assert_eq!(doc["Tenant"], "acme", "{doc}");

    // Idempotency: the retry replays the first answer and charges nothing more.
    let retry = env.call(create()).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(json(&retry)["id"], id.as_str());
    assert_eq!(env.stored_payments().await, 1, "one payment for two requests with one key");

    // Compliance: every rule checked the create; none was broken (the audit entry was there
    // for PCI-DSS 10.2.1 to see, so compliance sits outside the audit layer).
    let records = env.compliance.records();
    let pci_audit = records.iter().find(|r| r.id == "PCI-DSS 10.2.1").expect("the PCI audit rule ran");
    assert!(pci_audit.applied >= 1 && pci_audit.held == pci_audit.applied, "{pci_audit:?}");
    assert_eq!(pci_audit.violated, 0, "the create was audited: {pci_audit:?}");

    // Audit: the create is in the tenant's chain, by the token's subject, and the chain holds.
    let entries = env.trail().query(AuditQuery::tenant("acme")).await.expect("query");
    let created = entries.iter().find(|e| e.entry.action == "POST /payments").expect("an audit entry");
    assert_eq!(created.entry.actor, "user-of-acme");
    assert!(!format!("{:?}", created.entry).contains(body["card_number"].as_str().unwrap()));
    env.trail().verify("acme").await.expect("an intact chain");
}

#[tokio::test]
async fn a_request_without_a_token_gets_401_problem_json_and_is_still_measured() {
    let env = stacked(true, &[]).await;
    let res = env.call(request(Method::GET, "/payments", None, None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(is_problem(&res), "{:?}", res.headers());
    assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    // Observability is outside JWT: the refusal is counted as a 4xx.
    let docs = env.emf();
    assert!(docs.iter().any(|d| d["4xx"] == 1.0), "{docs:?}");
    assert!(docs.iter().all(|d| d.get("Tenant").is_none()), "no token, no tenant: {docs:?}");
    // Nothing inside JWT saw it: no audit entry, no compliance check (SOC2 CC6.1 and CC6.7
    // apply to every answer of a protected route the layer sees).
    assert!(env.compliance.records().iter().all(|r| r.applied == 0), "{:?}", env.compliance.records());
}

#[tokio::test]
async fn a_tenant_over_its_rate_limit_gets_429_and_other_tenants_do_not() {
    let env =
        stacked(true, &[("PAYMENTS_RATE_LIMIT", "2"), ("PAYMENTS_RATE_LIMIT_WINDOW_SECS", "3600")]).await;
    let (acme, globex) = (env.token("acme"), env.token("globex"));
    for _ in 0..2 {
        let res = env.call(env.as_tenant(&acme, Method::GET, "/payments", None)).await;
        assert_eq!(res.status(), StatusCode::OK, "{:?}", json(&res));
    }
    let over = env.call(env.as_tenant(&acme, Method::GET, "/payments", None)).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(is_problem(&over), "{:?}", over.headers());
    let retry_after: u64 = over.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    // Keyed by the JWT's tenant: another tenant has its own budget.
    let other = env.call(env.as_tenant(&globex, Method::GET, "/payments", None)).await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_card_over_plain_http_is_blocked_recorded_and_audited() {
    let env = stacked(true, &[]).await;
    let mut req = env.as_tenant(&env.token("acme"), Method::POST, "/payments", Some(new_payment(900, "USD")));
    req.headers_mut().insert("idempotency-key", "plain-http-1".parse().unwrap());
    req.headers_mut().insert("x-forwarded-proto", "http".parse().unwrap());
    let res = env.call(req).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(is_problem(&res), "{:?}", res.headers());
    assert_eq!(env.stored_payments().await, 0, "the handler never ran");
    let records = env.compliance.records();
    let tls = records.iter().find(|r| r.id == "PCI-DSS 4.2.1").expect("the TLS rule ran");
    assert_eq!(tls.blocked, 1, "{tls:?}");
    let entries = env.trail().query(AuditQuery::tenant("acme")).await.expect("query");
    assert!(
        entries.iter().any(|e| e.entry.action == "compliance.violation"),
        "the violation is in the audit trail: {:?}",
        entries.iter().map(|e| &e.entry.action).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_sql_injection_is_refused_by_threat_detection_after_authentication() {
    let env = stacked(true, &[]).await;
    let token = env.token("acme");
    let attack =
        env.as_tenant(&token, Method::GET, "/payments?cursor=1%27%20OR%20%271%27%3D%271%27%20--", None);
    let res = env.call(attack).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "{:?}", String::from_utf8_lossy(res.body().as_bytes()));
    assert!(is_problem(&res), "{:?}", res.headers());
    // The same route without the payload passes: the refusal is threat detection's.
    let clean = env.call(env.as_tenant(&token, Method::GET, "/payments", None)).await;
    assert_eq!(clean.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_the_development_header_the_per_tenant_layers_see_the_development_tenant() {
    // No JWT: only the development header authenticates, through the stack's authenticate
    // slot, inside which the rate limit is keyed by that tenant.
    let env = stacked(
        false,
        &[
            ("LIFT_DEV_TENANT_HEADER_INSECURE", "1"),
            ("PAYMENTS_RATE_LIMIT", "1"),
            ("PAYMENTS_RATE_LIMIT_WINDOW_SECS", "3600"),
        ],
    )
    .await;
    let get = |tenant: &str| request(Method::GET, "/payments", Some(tenant), None);
    assert_eq!(env.call(get("dev-a")).await.status(), StatusCode::OK);
    assert_eq!(env.call(get("dev-a")).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(env.call(get("dev-b")).await.status(), StatusCode::OK, "each tenant has its own limit");
}

#[tokio::test]
async fn the_stack_holds_every_layer_in_the_documented_order() {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let client = ddb.client().await;
    let vars = [
        ("PAYMENTS_FINGERPRINT_KEY", "0123456789abcdef0123"),
        ("PAYMENTS_JWT_ISSUER", "https://id.example.com"),
        ("PAYMENTS_JWKS_URL", "https://id.example.com/jwks"),
    ];
    let config = Config::from_env_vars(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned()))
        .expect("config");
    let parts = StackParts {
        dynamodb: Some(client.clone()),
        idempotency: Some(config.idempotency_layer(client, b"0123456789abcdef0123").unwrap()),
        compliance: ComplianceRecorder::new(),
    };
    let stack = config.stack(parts, MemorySink::new()).unwrap();
    // A build with the `chaos` feature mounts fault injection innermost.
    let chaos = if cfg!(feature = "chaos") { ", Chaos" } else { "" };
    assert_eq!(
        format!("{stack:?}"),
        format!(
            "Stack {{ app: [RequestLog, Metrics, Xray, Jwt, TenantBulkhead, TenantBreaker, RateLimit, Timeout{chaos}], \
             routes: [Compliance, Audit, Threat, Idempotency] }}"
        )
    );
    // Without DynamoDB (the benches) only the in-process layers are mounted.
    let parts = StackParts { dynamodb: None, idempotency: None, compliance: ComplianceRecorder::new() };
    let stack = config.stack(parts, MemorySink::new()).unwrap();
    assert_eq!(
        format!("{stack:?}"),
        format!(
            "Stack {{ app: [RequestLog, Metrics, Xray, Jwt, TenantBulkhead, TenantBreaker, Timeout{chaos}], \
             routes: [Compliance, Threat] }}"
        )
    );
}

/// The variables that make a bad version in a deployment drill: every request fails.
const CHAOS_ON: [(&str, &str); 3] = [
    ("LIFT_DEV_TENANT_HEADER_INSECURE", "1"),
    ("LIFT_CHAOS_ENABLED", "true"),
    ("LIFT_CHAOS_ERROR_RATE", "1"),
];

#[cfg(not(feature = "chaos"))]
#[tokio::test]
async fn a_build_without_the_chaos_feature_ignores_the_chaos_variables() {
    let env = stacked(false, &CHAOS_ON).await;
    let res = env.call(request(Method::GET, "/payments", Some("dev-a"), None)).await;
    assert_eq!(res.status(), StatusCode::OK, "no variable turns fault injection on in this build");
}

#[cfg(feature = "chaos")]
#[tokio::test]
async fn with_the_chaos_feature_the_variables_fail_requests_and_metrics_count_them() {
    let env = stacked(false, &CHAOS_ON).await;
    let res = env.call(request(Method::GET, "/payments", Some("dev-a"), None)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(is_problem(&res));
    let faults: f64 =
        env.emf().iter().filter_map(|doc| doc[lift::middleware::metrics::SERVER_ERRORS].as_f64()).sum();
    assert_eq!(faults, 1.0, "the metrics layer outside chaos counts the injected fault: {:?}", env.emf());
}
