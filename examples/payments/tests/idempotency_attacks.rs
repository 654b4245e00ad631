//! The two attacks on idempotency that independent testers found, through the real
//! payments stack (RS256 JWTs from the mocked issuer, scope checks, idempotency records on
//! DynamoDB Local). Both must fail:
//!
//! - **scope bypass:** a token of the same tenant without `payments:write` sends a used key
//!   and the same body, hoping for the stored 201 with the full payment;
//! - **key poisoning:** a read-only caller sends a writer's key first, hoping the writer is
//!   then answered with the stored 403.

mod support;

use http::{Method, StatusCode};
use lift::app::AppService;
use lift::middleware::auth::Issuer;
use lift::middleware::idempotency::IdempotencyLayer;
use lift::{Request, Response};
use lift_harness::aws::{Alg, JwksIssuer};
use lift_harness::dynamodb::DynamoDbLocal;
use payments::{PaymentStore, Payments, READ_SCOPE, WRITE_SCOPE};
use support::{authorized, new_payment, AUDIENCE, FINGERPRINT_KEY};
use tower::ServiceExt;

struct Env {
    service: AppService,
    client: aws_sdk_dynamodb::Client,
    payments_table: String,
    idempotency_table: String,
    jwks: JwksIssuer,
}

/// Payments as `main.rs` serves it: JWT outermost, idempotency on creates and refunds.
async fn env() -> Env {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let payments_table = ddb.create_table(&payments::table_def()).await.expect("the payments table");
    let idempotency_table =
        ddb.create_table(&lift::store::tables::idempotency()).await.expect("the idempotency table");
    let client = ddb.client().await;
    let jwks = JwksIssuer::start().await.expect("the mocked JWKS issuer");
    let issuer = Issuer::jwks(jwks.issuer(), jwks.jwks_url()).audience(AUDIENCE);
    let jwt = payments::jwt_layer(issuer, false).expect("a valid JWT configuration");
    let idempotency = IdempotencyLayer::builder()
        .client(client.clone())
        .table(&idempotency_table)
        .methods([Method::POST])
        .require_key(true)
        .build()
        .expect("a valid idempotency configuration");
    let store = PaymentStore::new(client.clone(), payments_table.clone(), FINGERPRINT_KEY);
    let payments = Payments { store, dev_tenant_header_insecure: false };
    let service = payments::service(payments, Some(jwt), Some(idempotency)).into_service();
    Env { service, client, payments_table, idempotency_table, jwks }
}

impl Env {
    /// A token for `subject` of `tenant` with `scopes`.
    fn token(&self, subject: &str, tenant: &str, scopes: &[&str]) -> String {
        let mut claims = self.jwks.claims(subject, AUDIENCE);
        claims["tenant_id"] = tenant.into();
        claims["scope"] = scopes.join(" ").into();
        self.jwks.sign(&claims, Alg::Rs256, None).expect("sign")
    }

    async fn call(&self, req: Request) -> Response {
        self.service.clone().oneshot(req).await.unwrap()
    }

    async fn create(&self, token: &str, key: &str, body: &serde_json::Value) -> Response {
        let mut req = authorized(Method::POST, "/payments", token, Some(body.clone()));
        req.headers_mut().insert("idempotency-key", key.parse().unwrap());
        self.call(req).await
    }

    async fn scan(
        &self,
        table: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.client.scan().table_name(table).consistent_read(true).send().await.unwrap().items().to_vec()
    }

    async fn payments_in_table(&self) -> usize {
        let items = self.scan(&self.payments_table).await;
        items.iter().filter(|i| i["sk"].as_s().is_ok_and(|sk| sk.starts_with("PAYMENT#"))).count()
    }
}

fn text(res: &Response) -> String {
    String::from_utf8_lossy(res.body().as_bytes()).into_owned()
}

#[tokio::test]
async fn a_token_without_the_write_scope_gets_no_stored_payment() {
    let env = env().await;
    let writer = env.token("alice", "acme", &[READ_SCOPE, WRITE_SCOPE]);
    let body = new_payment(4_200, "EUR");
    let created = env.create(&writer, "order-77", &body).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{}", text(&created));
    let payment = support::json(&created);
    let id = payment["id"].as_str().unwrap().to_owned();

    let attackers = [
        ("another user, no payments scope", env.token("mallory", "acme", &[])),
        ("another user, read only", env.token("mallory", "acme", &[READ_SCOPE])),
        ("the writer's own subject, read-only token", env.token("alice", "acme", &[READ_SCOPE])),
        ("the writer's own subject, no scope", env.token("alice", "acme", &["profile"])),
    ];
    for (who, token) in &attackers {
        let res = env.create(token, "order-77", &body).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who}: {}", text(&res));
        assert!(!res.headers().contains_key("idempotent-replayed"), "{who} got a replay");
        let answer = text(&res);
        assert!(!answer.contains(&id), "{who} learned the payment id: {answer}");
        assert!(!answer.contains("last4") && !answer.contains("4200"), "{who} saw the payment: {answer}");
    }
    // Another writer of the same tenant with the same key and body makes their own
    // payment: keys are the principal's, not the tenant's.
    let colleague = env.token("bob", "acme", &[WRITE_SCOPE]);
    let theirs = env.create(&colleague, "order-77", &body).await;
    assert_eq!(theirs.status(), StatusCode::CREATED);
    assert!(!theirs.headers().contains_key("idempotent-replayed"), "bob was answered with alice's payment");
    assert_ne!(support::json(&theirs)["id"], payment["id"]);
    assert_eq!(env.payments_in_table().await, 2);
}

#[tokio::test]
async fn a_read_only_caller_cannot_poison_a_writers_key() {
    let env = env().await;
    let body = new_payment(990, "GBP");
    for (who, token) in [
        ("another user, read only", env.token("mallory", "acme", &[READ_SCOPE])),
        ("the writer's own subject, read-only token", env.token("alice", "acme", &[READ_SCOPE])),
    ] {
        let refused = env.create(&token, "checkout-9", &body).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{who}");
        assert!(env.scan(&env.idempotency_table).await.is_empty(), "{who}'s refusal left a record");
    }
    let writer = env.token("alice", "acme", &[READ_SCOPE, WRITE_SCOPE]);
    let created = env.create(&writer, "checkout-9", &body).await;
    assert_eq!(created.status(), StatusCode::CREATED, "the writer was answered with a stored refusal");
    assert!(!created.headers().contains_key("idempotent-replayed"));
    assert_eq!(env.payments_in_table().await, 1);
    let records = env.scan(&env.idempotency_table).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["response_status"].as_n().unwrap(), "201");
}

#[tokio::test]
async fn a_rejected_create_is_not_stored_so_the_corrected_one_runs_under_the_same_key() {
    let env = env().await;
    let writer = env.token("alice", "acme", &[READ_SCOPE, WRITE_SCOPE]);
    let mut bad = new_payment(100, "EUR");
    bad["currency"] = "XXX-not-a-currency".into();
    let refused = env.create(&writer, "retry-me", &bad).await;
    assert!(refused.status().is_client_error(), "{}", text(&refused));
    assert!(env.scan(&env.idempotency_table).await.is_empty(), "a validation error was stored");
    // Another body under the same key is not a payload mismatch: nothing was stored.
    let created = env.create(&writer, "retry-me", &new_payment(100, "EUR")).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{}", text(&created));
    assert_eq!(env.payments_in_table().await, 1);
}

#[tokio::test]
async fn an_expired_or_forged_token_never_reaches_a_record() {
    let env = env().await;
    let body = new_payment(100, "USD");
    let mut claims = env.jwks.claims("alice", AUDIENCE);
    claims["tenant_id"] = "acme".into();
    claims["scope"] = WRITE_SCOPE.into();
    claims["exp"] = 1_000.into();
    let expired = env.jwks.sign(&claims, Alg::Rs256, None).unwrap();
    assert_eq!(env.create(&expired, "k-1", &body).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(env.create("not.a.token", "k-1", &body).await.status(), StatusCode::UNAUTHORIZED);
    assert!(env.scan(&env.idempotency_table).await.is_empty());
}
