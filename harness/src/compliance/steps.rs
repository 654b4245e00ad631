//! The world of the compliance suites and its steps.

use aws_sdk_dynamodb::types::AttributeValue;
use cucumber::{given, then, when};
use http::{Method, StatusCode};
use lift::app::AppService;
use lift::middleware::auth::require_scope;
use lift::security::audit::{AuditHandle, AuditLayer, AuditQuery, AuditTrail, ChainBreak};
use lift::security::compliance::ComplianceLayer;
use lift::security::protection::detect::scan_text;
use lift::security::protection::DataClass;
use lift::security::threat::{ThreatLayer, ThreatStore};
use lift::{Body, Context, Principal, Request, Response};
use tower::ServiceExt;

use super::target::TargetEnv;
use crate::dynamodb::DynamoDbLocal;

/// The header the suites name their tenant in (the suites' stand-in for a JWT).
const TENANT_HEADER: &str = "x-suite-tenant";
/// The scope needed to read health records.
const RECORDS_SCOPE: &str = "records:read";

/// One scenario's state: the service under test, its tables, the last answer.
#[derive(Debug, Default, cucumber::World)]
pub struct ComplianceWorld {
    env: Option<Env>,
    region: Option<String>,
    status: Option<StatusCode>,
    body: String,
    log_mark: usize,
}

#[derive(Clone)]
struct Env {
    service: AppService,
    client: aws_sdk_dynamodb::Client,
    payments_table: String,
    audit_table: String,
    trail: AuditTrail,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("payments_table", &self.payments_table).finish_non_exhaustive()
    }
}

/// `GET /patients/:id/records`: a small health-records service (ePHI).
async fn patient_records(req: Request) -> Response {
    let id = lift::path_param(&req, "id").unwrap_or_default().to_owned();
    if let Some(audit) = AuditHandle::of(&req) {
        audit.action("records.read").resource(format!("patient/{id}")).data_class("phi");
    }
    lift::json_response(
        StatusCode::OK,
        &serde_json::json!({ "patient_id": id, "diagnosis": "J45.909", "medications": ["salbutamol"] }),
    )
}

/// Authenticates from the suite header (the target's scopes), as a JWT layer would.
fn authenticate(scopes: Vec<String>) -> impl Fn(Request) -> Request + Clone + Send + Sync + 'static {
    move |mut req: Request| {
        let tenant = req.headers().get(TENANT_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        req.headers_mut().remove(TENANT_HEADER);
        if let (Some(tenant), Some(ctx)) = (tenant, Context::of_mut(&mut req)) {
            let scopes = scopes.iter().map(String::as_str).chain([RECORDS_SCOPE]);
            ctx.set_principal(Principal::new(format!("user@{tenant}"), tenant).with_scopes(scopes));
        }
        req
    }
}

/// The service's audit policy: a request carrying a card number touches class `pci`, one
/// on `/customers/*` class `pii`.
fn classify_for_audit(req: Request) -> Request {
    let has_pan =
        scan_text(&String::from_utf8_lossy(req.body().as_bytes())).iter().any(|m| m.class == DataClass::Pan);
    if let (true, Some(audit)) = (has_pan, AuditHandle::of(&req)) {
        audit.data_class("pci");
    }
    if let (true, Some(audit)) = (req.uri().path().starts_with("/customers/"), AuditHandle::of(&req)) {
        audit.data_class("pii");
    }
    req
}

impl ComplianceWorld {
    async fn env(&mut self) -> Env {
        if let Some(env) = &self.env {
            return env.clone();
        }
        let region = self.region.clone().unwrap_or_else(|| "eu-west-1".to_owned());
        let target = super::target::get();
        let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
        let client = ddb.client().await;
        let mut tables = Vec::new();
        for def in target.tables() {
            tables.push(ddb.create_table(&def).await.expect("the service's table"));
        }
        let payments_table = tables.first().cloned().expect("the service has a table");
        let audit_table = ddb.create_table(&lift::store::tables::audit()).await.expect("audit table");
        let blocklist = ddb.create_table(&lift::store::tables::blocklist()).await.expect("blocklist table");
        let trail = AuditTrail::builder().client(client.clone()).table(&audit_table).build().expect("trail");
        let threat = ThreatLayer::builder()
            .store(ThreatStore::new(client.clone()).with_table(blocklist))
            .audit(trail.clone())
            .build()
            .expect("threat layer");
        let target_env = TargetEnv { client: client.clone(), tables, logs: super::logs().clone() };
        let app = target
            .app(&target_env)
            .route(
                Method::GET,
                "/patients/:id/records",
                lift::app::Route::from_handler(patient_records).layer(require_scope(RECORDS_SCOPE)),
            )
            .region(region);
        let service = app
            .layer(tower::util::MapRequestLayer::new(classify_for_audit))
            .layer(AuditLayer::new(trail.clone()))
            .layer(
                ComplianceLayer::new(super::recorder().clone())
                    .logs(super::logs().clone())
                    .audit(trail.clone()),
            )
            .layer(threat)
            .layer(tower::util::MapRequestLayer::new(authenticate(target.scopes())))
            .into_service();
        let env = Env { service, client, payments_table, audit_table, trail };
        self.env = Some(env.clone());
        self.log_mark = super::logs().lines().len();
        env
    }

    async fn call(
        &mut self,
        method: Method,
        uri: &str,
        tenant: Option<&str>,
        body: Option<serde_json::Value>,
    ) {
        let env = self.env().await;
        let mut builder = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-forwarded-proto", "https")
            .header("idempotency-key", uuid::Uuid::new_v4().to_string());
        if let Some(tenant) = tenant {
            builder = builder.header(TENANT_HEADER, tenant);
        }
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let res =
            env.service.oneshot(builder.body(body).expect("a valid request")).await.expect("infallible");
        self.status = Some(res.status());
        self.body = String::from_utf8_lossy(res.body().as_bytes()).into_owned();
    }

    fn scenario_logs(&self) -> Vec<String> {
        super::logs().lines().into_iter().skip(self.log_mark).collect()
    }
}

fn payment(amount: u64, currency: &str, card: &str, country: &str) -> serde_json::Value {
    serde_json::json!({
        "card_number": card,
        "amount": amount,
        "currency": currency,
        "customer": { "id": "cus_1", "name": "Ada Lovelace", "email": "ada@example.com", "country": country },
    })
}

#[given(expr = "the service runs in region {word}")]
async fn service_in_region(w: &mut ComplianceWorld, region: String) {
    w.region = Some(region);
    w.env = None;
    w.env().await;
}

#[when(expr = "tenant {word} pays {int} {word} with card {string}")]
async fn pays(w: &mut ComplianceWorld, tenant: String, amount: u64, currency: String, card: String) {
    w.call(Method::POST, "/payments", Some(&tenant), Some(payment(amount, &currency, &card, "GB"))).await;
}

#[when(expr = "tenant {word} pays for a customer in {word}")]
async fn pays_from(w: &mut ComplianceWorld, tenant: String, country: String) {
    let body = payment(1_000, "EUR", "4111 1111 1111 1111", &country);
    w.call(Method::POST, "/payments", Some(&tenant), Some(body)).await;
}

#[when(expr = "tenant {word} erases customer {word}")]
async fn erases(w: &mut ComplianceWorld, tenant: String, customer: String) {
    w.call(Method::DELETE, &format!("/customers/{customer}"), Some(&tenant), None).await;
}

#[when(expr = "tenant {word} reads the records of patient {word}")]
async fn reads_records(w: &mut ComplianceWorld, tenant: String, patient: String) {
    w.call(Method::GET, &format!("/patients/{patient}/records"), Some(&tenant), None).await;
}

#[when(expr = "an anonymous caller reads the records of patient {word}")]
async fn anonymous_reads(w: &mut ComplianceWorld, patient: String) {
    w.call(Method::GET, &format!("/patients/{patient}/records"), None, None).await;
}

#[when(expr = "tenant {word} looks up payment {string}")]
async fn looks_up(w: &mut ComplianceWorld, tenant: String, text: String) {
    let encoded: String = text
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    w.call(Method::GET, &format!("/payments/{encoded}"), Some(&tenant), None).await;
}

#[when(expr = "the stored audit entry {int} of tenant {word} is altered")]
async fn alter_entry(w: &mut ComplianceWorld, seq: u64, tenant: String) {
    let env = w.env().await;
    env.client
        .update_item()
        .table_name(&env.audit_table)
        .key("pk", AttributeValue::S(format!("AUDIT#{tenant}")))
        .key("seq", AttributeValue::N(seq.to_string()))
        .update_expression("SET actor = :m")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":m", AttributeValue::S("mallory".into()))
        .send()
        .await
        .expect("the entry exists and was altered");
}

#[then(expr = "the answer is {int}")]
async fn answer_is(w: &mut ComplianceWorld, status: u16) {
    assert_eq!(w.status.map(|s| s.as_u16()), Some(status), "answer body: {}", w.body);
}

#[then("no card number appears in the answer, the logs or the stored payments")]
async fn no_pan_anywhere(w: &mut ComplianceWorld) {
    let pan = |text: &str| scan_text(text).iter().any(|m| m.class == DataClass::Pan);
    assert!(!pan(&w.body), "a card number in the answer: {}", w.body);
    let leaking: Vec<String> = w.scenario_logs().into_iter().filter(|l| pan(l)).collect();
    assert!(leaking.is_empty(), "{} log line(s) carry a card number in clear", leaking.len());
    let env = w.env().await;
    let items =
        env.client.scan().table_name(&env.payments_table).send().await.expect("scan the payments table");
    for item in items.items() {
        for value in item.values() {
            if let Ok(s) = value.as_s() {
                assert!(!pan(s), "a stored payment item carries a card number in clear");
            }
        }
    }
}

#[then(expr = "no stored payment of tenant {word} names customer {word}")]
async fn customer_erased(w: &mut ComplianceWorld, tenant: String, customer: String) {
    let env = w.env().await;
    let items =
        env.client.scan().table_name(&env.payments_table).send().await.expect("scan the payments table");
    let theirs: Vec<_> = items
        .items()
        .iter()
        .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()) == Some(&format!("TENANT#{tenant}")))
        .filter(|i| i.get("customer_id").and_then(|v| v.as_s().ok()) == Some(&customer))
        .collect();
    assert!(!theirs.is_empty(), "the scenario made no payment for {customer}");
    for item in theirs {
        for field in ["customer_name", "customer_email", "customer_country"] {
            assert!(!item.contains_key(field), "{field} of {customer} is still stored");
        }
    }
}

#[then(expr = "the audit trail of tenant {word} records {string} with data class {word}")]
async fn audit_records(w: &mut ComplianceWorld, tenant: String, action: String, class: String) {
    let env = w.env().await;
    let entries =
        env.trail.query(AuditQuery::tenant(&tenant).action(&action)).await.expect("query the trail");
    assert!(
        entries.iter().any(|e| e.entry.data_classes.contains(&class)),
        "no {action} entry of class {class} among {} entries",
        entries.len()
    );
}

#[then(expr = "the audit chain of tenant {word} verifies")]
async fn chain_verifies(w: &mut ComplianceWorld, tenant: String) {
    let env = w.env().await;
    env.trail.verify(&tenant).await.expect("the chain verifies");
}

#[then(expr = "the audit chain of tenant {word} is broken at entry {int}")]
async fn chain_broken(w: &mut ComplianceWorld, tenant: String, seq: u64) {
    let env = w.env().await;
    match env.trail.verify(&tenant).await {
        Err(lift::security::audit::AuditError::Broken { broken, .. }) => {
            assert_eq!(broken, ChainBreak::Changed { seq }, "the break names another entry");
        }
        other => panic!("the altered chain verified: {other:?}"),
    }
}

#[then(expr = "the rule {string} was never violated")]
async fn never_violated(_w: &mut ComplianceWorld, rule: String) {
    let records = super::recorder().records();
    let record = records.iter().find(|r| r.id == rule).unwrap_or_else(|| panic!("rule {rule} never ran"));
    assert!(record.applied > 0, "rule {rule} never applied");
    assert_eq!(record.violated, 0, "rule {rule} was violated: {:?}", record.evidence);
}

#[then(expr = "the rule {string} was violated")]
async fn violated(_w: &mut ComplianceWorld, rule: String) {
    let records = super::recorder().records();
    let record = records.iter().find(|r| r.id == rule).unwrap_or_else(|| panic!("rule {rule} never ran"));
    assert!(record.violated > 0, "rule {rule} was not violated");
}

#[then(expr = "the rule {string} refused the request")]
async fn blocked(_w: &mut ComplianceWorld, rule: String) {
    let records = super::recorder().records();
    let record = records.iter().find(|r| r.id == rule).unwrap_or_else(|| panic!("rule {rule} never ran"));
    assert!(record.blocked > 0, "rule {rule} refused nothing");
}

#[then(expr = "a threat incident was recorded for tenant {word}")]
async fn incident(w: &mut ComplianceWorld, tenant: String) {
    let env = w.env().await;
    let entries =
        env.trail.query(AuditQuery::tenant(&tenant).action("threat.incident")).await.expect("query");
    assert!(!entries.is_empty(), "no threat.incident entry for {tenant}");
}
