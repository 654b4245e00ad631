//! Shared set-up for the health-records tests: fresh tables on real DynamoDB Local per
//! test, the service behind its full recommended stack (JWT from the harness's JWKS issuer,
//! idempotency, audit, compliance, threat), PHI keys wrapped by the harness's KMS mock, and
//! a webhook (wiremock) that receives break-glass alerts.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use health_records::{Config, HealthRecords, PhiCipher, RecordStore, Retention, StackParts};
use http::{header, Method};
use lift::app::AppService;
use lift::security::audit::{AuditEntry, AuditQuery, AuditTrail};
use lift::security::protection::{AwsKmsClient, SubjectKeys};
use lift::security::threat::{Playbook, WebhookAlert};
use lift::{Body, Response};
use lift_harness::aws::{Alg, JwksIssuer, KmsMock, DEFAULT_KEY_ALIAS};
use lift_harness::dynamodb::DynamoDbLocal;
use tower::ServiceExt;

/// The region of the KMS mock and of the client that calls it.
pub(crate) const KMS_REGION: &str = "eu-west-1";
/// Where break-glass alerts are posted on the webhook mock.
pub(crate) const ALERT_PATH: &str = "/hooks/break-glass";

/// The service over new tables.
pub(crate) struct Env {
    pub(crate) service: AppService,
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    pub(crate) keys_table: String,
    pub(crate) audit_table: String,
    pub(crate) trail: AuditTrail,
    pub(crate) jwks: JwksIssuer,
    pub(crate) kms: KmsMock,
    pub(crate) webhook: wiremock::MockServer,
    tokens: Mutex<HashMap<String, String>>,
}

/// The service with the default retention (ten years: nothing clinical may be erased).
pub(crate) async fn env() -> Env {
    env_with(Retention::default()).await
}

/// The service with `retention`.
pub(crate) async fn env_with(retention: Retention) -> Env {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let table = ddb.create_table(&health_records::table_def()).await.expect("the records table");
    let keys_table = ddb.create_table(&lift::store::tables::subject_keys()).await.expect("the key table");
    let audit_table = ddb.create_table(&lift::store::tables::audit()).await.expect("the audit table");
    let idempotency_table =
        ddb.create_table(&lift::store::tables::idempotency()).await.expect("the idempotency table");
    let client = ddb.client().await;
    let kms = KmsMock::start(KMS_REGION).await;
    let jwks = JwksIssuer::start().await.expect("the mocked JWKS issuer");
    let webhook = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&webhook)
        .await;
    let alert_url = format!("{}{ALERT_PATH}", webhook.uri());
    let vars = [
        ("HEALTH_JWT_ISSUER", jwks.issuer()),
        ("HEALTH_JWKS_URL", jwks.jwks_url()),
        ("HEALTH_KMS_KEY_ID", DEFAULT_KEY_ALIAS.to_owned()),
        ("HEALTH_TABLE", table.clone()),
        ("HEALTH_SUBJECT_KEYS_TABLE", keys_table.clone()),
        ("HEALTH_AUDIT_TABLE", audit_table.clone()),
        ("HEALTH_IDEMPOTENCY_TABLE", idempotency_table),
        ("HEALTH_RATE_LIMIT", "0".to_owned()),
        ("HEALTH_BREAK_GLASS_WEBHOOK", alert_url.clone()),
    ];
    let config = Config::from_env_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
        .expect("a valid configuration");
    let trail = config.audit_trail(client.clone()).expect("the trail");
    let keys = keys(&client, &keys_table, &kms, true);
    let store = RecordStore::new(client.clone(), &table, PhiCipher::Subject(keys)).with_retention(retention);
    let break_glass =
        Playbook::new().audit(trail.clone()).alert(WebhookAlert::new(&alert_url).expect("the webhook"));
    let records = HealthRecords { store, audit: Some(trail.clone()), break_glass };
    let parts = StackParts {
        dynamodb: Some(client.clone()),
        audit: Some(trail.clone()),
        compliance: lift::security::compliance::ComplianceRecorder::new(),
    };
    let stack =
        config.stack(parts, lift::middleware::metrics::MemorySink::new()).expect("the recommended stack");
    let service = health_records::mount(records, stack).into_service();
    Env {
        service,
        client,
        table,
        keys_table,
        audit_table,
        trail,
        jwks,
        kms,
        webhook,
        tokens: Mutex::default(),
    }
}

/// Subject keys over `table` under the KMS mock (`cached`: this process's key cache on).
pub(crate) fn keys(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    kms: &KmsMock,
    cached: bool,
) -> SubjectKeys {
    let mut builder = SubjectKeys::builder()
        .client(client.clone())
        .table(table)
        .kms(AwsKmsClient::endpoint(&kms.uri(), KMS_REGION).expect("kms client"), DEFAULT_KEY_ALIAS);
    if !cached {
        builder = builder.cache_ttl(std::time::Duration::ZERO);
    }
    builder.build().expect("valid subject keys")
}

/// Who calls.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Caller<'a> {
    /// A user with these roles (both scopes).
    Staff(&'a str, &'a [&'a str]),
    /// A patient (subject: the patient id).
    Patient(&'a str),
}

impl Env {
    /// A real RS256 token for `caller` of `tenant`.
    pub(crate) fn token(&self, tenant: &str, caller: Caller<'_>) -> String {
        let (subject, roles): (String, Vec<&str>) = match caller {
            Caller::Staff(subject, roles) => (subject.to_owned(), roles.to_vec()),
            Caller::Patient(id) => (id.to_owned(), vec![health_records::access::PATIENT]),
        };
        let cache_key = format!("{tenant} {subject} {}", roles.join(","));
        let mut tokens = self.tokens.lock().unwrap();
        tokens
            .entry(cache_key)
            .or_insert_with(|| {
                let mut claims = self.jwks.claims(&subject, health_records::DEFAULT_AUDIENCE);
                claims["tenant_id"] = tenant.into();
                claims["scope"] =
                    format!("{} {}", health_records::READ_SCOPE, health_records::WRITE_SCOPE).into();
                claims["roles"] = roles.into();
                self.jwks.sign(&claims, Alg::Rs256, None).expect("sign")
            })
            .clone()
    }

    /// Sends a request as `caller` of `tenant` (or anonymously), over https, with an
    /// `Idempotency-Key` on POST and any `headers`.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &str,
        who: Option<(&str, Caller<'_>)>,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut builder =
            http::Request::builder().method(method.clone()).uri(uri).header("x-forwarded-proto", "https");
        if method == Method::POST {
            builder = builder.header("idempotency-key", uuid::Uuid::new_v4().to_string());
        }
        if let Some((tenant, caller)) = who {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {}", self.token(tenant, caller)));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(&json).unwrap())
            }
            None => Body::empty(),
        };
        self.service.clone().oneshot(builder.body(body).unwrap()).await.unwrap()
    }

    /// `POST /patients` as a clinician of `tenant`.
    pub(crate) async fn register(&self, tenant: &str, patient: serde_json::Value) -> Response {
        self.send(Method::POST, "/patients", Some((tenant, CLINICIAN)), Some(patient), &[]).await
    }

    /// `POST /patients/:id/records` (an encounter) as a clinician of `tenant`.
    pub(crate) async fn encounter(
        &self,
        tenant: &str,
        patient: &str,
        encounter: serde_json::Value,
    ) -> Response {
        let uri = format!("/patients/{patient}/records");
        self.send(Method::POST, &uri, Some((tenant, CLINICIAN)), Some(encounter), &[]).await
    }

    /// `GET /patients/:id/records` as `caller` of `tenant`.
    pub(crate) async fn read(
        &self,
        tenant: &str,
        caller: Caller<'_>,
        patient: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        self.send(Method::GET, &format!("/patients/{patient}/records"), Some((tenant, caller)), None, headers)
            .await
    }

    /// Every item of a table, raw.
    pub(crate) async fn scan(&self, table: &str) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return items,
            }
        }
    }

    /// The tenant's audit entries, stored.
    pub(crate) async fn audit(&self, tenant: &str) -> Vec<AuditEntry> {
        self.trail
            .query(AuditQuery::tenant(tenant))
            .await
            .expect("query the trail")
            .into_iter()
            .map(|e| e.entry)
            .collect()
    }

    /// The break-glass alerts the webhook received.
    pub(crate) async fn alerts(&self) -> Vec<serde_json::Value> {
        self.webhook
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == ALERT_PATH)
            .map(|r| serde_json::from_slice(&r.body).expect("an alert is JSON"))
            .collect()
    }
}

/// A clinician.
pub(crate) const CLINICIAN: Caller<'static> = Caller::Staff("dr-house", &["clinician"]);
/// A billing clerk.
pub(crate) const BILLING: Caller<'static> = Caller::Staff("clerk-1", &["billing"]);
/// A privacy officer.
pub(crate) const OFFICER: Caller<'static> = Caller::Staff("privacy-1", &["privacy_officer"]);

pub(crate) fn json(res: &Response) -> serde_json::Value {
    serde_json::from_slice(res.body().as_bytes())
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(res.body().as_bytes())))
}

pub(crate) fn text(res: &Response) -> String {
    String::from_utf8_lossy(res.body().as_bytes()).into_owned()
}

/// A unique patient id.
pub(crate) fn patient_id() -> String {
    format!("p_{}", uuid::Uuid::new_v4().simple())
}

/// Every string in an item (S, N, B as text, lists and maps), joined.
pub(crate) fn item_text(item: &HashMap<String, AttributeValue>) -> String {
    fn push(value: &AttributeValue, out: &mut String) {
        match value {
            AttributeValue::S(s) | AttributeValue::N(s) => out.push_str(s),
            AttributeValue::B(b) => out.push_str(&String::from_utf8_lossy(b.as_ref())),
            AttributeValue::L(items) => items.iter().for_each(|v| push(v, out)),
            AttributeValue::M(map) => map.iter().for_each(|(k, v)| {
                out.push_str(k);
                push(v, out);
            }),
            AttributeValue::Ss(items) | AttributeValue::Ns(items) => {
                items.iter().for_each(|s| out.push_str(s))
            }
            other => out.push_str(&format!("{other:?}")),
        }
        out.push('\n');
    }
    let mut out = String::new();
    for (name, value) in item {
        out.push_str(name);
        out.push('\n');
        push(value, &mut out);
    }
    out
}
