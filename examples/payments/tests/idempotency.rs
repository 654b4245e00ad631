//! The payments API behind `lift::middleware::idempotency`, on real DynamoDB Local: many
//! concurrent retries of one payment create exactly one payment and all get the same
//! answer; a reused key with another body is refused; a failed attempt can be retried.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::TableStatus;
use http::{Method, StatusCode};
use lift::app::AppService;
use lift::middleware::idempotency::IdempotencyLayer;
use lift::{Request, Response};
use lift_harness::dynamodb::DynamoDbLocal;
use payments::{PaymentStore, Payments};
use support::{new_payment, FINGERPRINT_KEY};
use tower::ServiceExt;

/// The payments app with the idempotency layer, over its own tables.
struct Env {
    service: AppService,
    client: aws_sdk_dynamodb::Client,
    payments_table: String,
}

async fn env() -> Env {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let payments_table = ddb.create_table(&payments::table_def()).await.expect("the payments table");
    env_on(payments_table).await
}

async fn env_on(payments_table: String) -> Env {
    env_with(payments_table, None).await
}

/// [`env_on`], the store reaching DynamoDB through `store_client` when given (a fault
/// proxy, say); the idempotency records always directly.
async fn env_with(payments_table: String, store_client: Option<aws_sdk_dynamodb::Client>) -> Env {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let idempotency_table =
        ddb.create_table(&lift::store::tables::idempotency()).await.expect("the idempotency table");
    let client = ddb.client().await;
    let store_client = store_client.unwrap_or_else(|| client.clone());
    let store = PaymentStore::new(store_client, payments_table.clone(), FINGERPRINT_KEY);
    let idempotency = IdempotencyLayer::builder()
        .client(client.clone())
        .table(idempotency_table)
        .methods([Method::POST])
        .require_key(true)
        .build()
        .expect("a valid idempotency configuration");
    // The layers as the service wires them: idempotency inside authentication (here the
    // development tenant header, in production the JWT layer), so records are scoped by
    // the authenticated tenant.
    let payments = Payments { store, dev_tenant_header_insecure: true };
    let service = payments::service(payments, None, Some(idempotency)).into_service();
    Env { service, client, payments_table }
}

fn create(tenant: &str, key: &str, body: &serde_json::Value) -> Request {
    let mut req = support::request(Method::POST, "/payments", Some(tenant), Some(body.clone()));
    req.headers_mut().insert("idempotency-key", key.parse().unwrap());
    req
}

impl Env {
    async fn call(&self, req: Request) -> Response {
        self.service.clone().oneshot(req).await.unwrap()
    }

    /// Payment items in the table (refunds excluded), by scanning it.
    async fn payments_in_table(&self) -> usize {
        let out =
            self.client.scan().table_name(&self.payments_table).consistent_read(true).send().await.unwrap();
        out.items()
            .iter()
            .filter(|item| {
                item.get("sk").and_then(|sk| sk.as_s().ok()).is_some_and(|sk| sk.starts_with("PAYMENT#"))
            })
            .count()
    }
}

fn payment_id(res: &Response) -> String {
    support::json(res)["id"].as_str().expect("a payment id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_create_exactly_one_payment() {
    let env = std::sync::Arc::new(env().await);
    let body = new_payment(12_500, "EUR");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let env = env.clone();
            let body = body.clone();
            tokio::spawn(async move {
                // A client retrying until it gets an answer: 409 means "still in progress".
                for _ in 0..500 {
                    let res = env.call(create("acme", "pay-order-42", &body)).await;
                    match res.status() {
                        StatusCode::CONFLICT => tokio::time::sleep(Duration::from_millis(10)).await,
                        _ => return res,
                    }
                }
                panic!("still in progress after 500 retries");
            })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }

    assert!(responses.iter().all(|r| r.status() == StatusCode::CREATED), "{responses:?}");
    let ids: HashSet<String> = responses.iter().map(payment_id).collect();
    assert_eq!(ids.len(), 1, "every answer names the same payment: {ids:?}");
    let bodies: HashSet<&[u8]> = responses.iter().map(|r| r.body().as_bytes()).collect();
    assert_eq!(bodies.len(), 1, "every answer is the same response");
    let originals = responses.iter().filter(|r| !r.headers().contains_key("idempotent-replayed")).count();
    assert_eq!(originals, 1, "one request ran, the others are replays");
    for replay in responses.iter().filter(|r| r.headers().contains_key("idempotent-replayed")) {
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        assert_eq!(
            replay.headers()["location"],
            format!("/payments/{}", ids.iter().next().unwrap()).as_str()
        );
    }
    assert_eq!(env.payments_in_table().await, 1, "exactly one payment in DynamoDB");

    // A later retry is still a replay, and another tenant's identical key is its own.
    let later = env.call(create("acme", "pay-order-42", &body)).await;
    assert_eq!(later.headers()["idempotent-replayed"], "true");
    assert_eq!(payment_id(&later), *ids.iter().next().unwrap());
    let other_tenant = env.call(create("globex", "pay-order-42", &body)).await;
    assert_eq!(other_tenant.status(), StatusCode::CREATED);
    assert!(!other_tenant.headers().contains_key("idempotent-replayed"));
    assert_eq!(env.payments_in_table().await, 2);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let env = env().await;
    let body = new_payment(1_000, "USD");
    assert_eq!(env.call(create("acme", "k-1", &body)).await.status(), StatusCode::CREATED);
    let mut other = body.clone();
    other["amount"] = 2_000.into();
    let res = env.call(create("acme", "k-1", &other)).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(env.payments_in_table().await, 1);
}

#[tokio::test]
async fn a_failed_attempt_removes_the_record_so_a_retry_succeeds() {
    // The payments table does not exist yet: the handler fails with a 500.
    let missing = format!("payments-later-{}", uuid_like());
    let env = env_on(missing.clone()).await;
    let body = new_payment(700, "GBP");
    let failed = env.call(create("acme", "k-retry", &body)).await;
    assert!(failed.status().is_server_error(), "{failed:?}");

    payments::table_def().create_table(&env.client, &missing).send().await.unwrap();
    for _ in 0..100 {
        let table = env.client.describe_table().table_name(&missing).send().await.unwrap();
        if table.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let retried = env.call(create("acme", "k-retry", &body)).await;
    assert_eq!(retried.status(), StatusCode::CREATED, "the failed attempt left no record behind");
    assert!(!retried.headers().contains_key("idempotent-replayed"));
    let replay = env.call(create("acme", "k-retry", &body)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(payment_id(&replay), payment_id(&retried));
    assert_eq!(env.payments_in_table().await, 1);
}

#[tokio::test]
async fn a_payment_without_a_key_is_refused() {
    let env = env().await;
    let req = support::request(Method::POST, "/payments", Some("acme"), Some(new_payment(100, "EUR")));
    assert_eq!(env.call(req).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(env.payments_in_table().await, 0);
}

#[tokio::test]
async fn a_retried_refund_refunds_once() {
    let env = env().await;
    let created = env.call(create("acme", "k-pay", &new_payment(1_000, "EUR"))).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = payment_id(&created);
    let refund = || {
        let body = serde_json::json!({ "amount": 600 });
        let mut req =
            support::request(Method::POST, &format!("/payments/{id}/refunds"), Some("acme"), Some(body));
        req.headers_mut().insert("idempotency-key", "refund-1".parse().unwrap());
        req
    };
    let first = env.call(refund()).await;
    assert_eq!(first.status(), StatusCode::CREATED, "{first:?}");
    // Without idempotency this retry would fail with 422 (600 + 600 > 1000) or, for a
    // smaller amount, refund twice; with it, the first answer comes back.
    let retry = env.call(refund()).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.body().as_bytes(), first.body().as_bytes());
    let get = support::request(Method::GET, &format!("/payments/{id}"), Some("acme"), None);
    let payment: serde_json::Value = serde_json::from_slice(env.call(get).await.body().as_bytes()).unwrap();
    assert_eq!(payment["refunded_amount"], 600, "{payment}");
}

fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// A create and a refund whose writes committed while every answer DynamoDB sent was lost
/// (the SDK's retries included) are answered 503, which frees the idempotency key. The
/// client's retry under the same key then finds its own payment and its own refund: one
/// payment, refunded once. Without ids derived from the key, the retry wrote a second
/// payment and refunded twice (600 of 1 000).
#[tokio::test]
async fn a_write_whose_answer_was_lost_is_not_made_twice_on_retry() {
    use lift_harness::faults::{AwsFaultProxy, DynamoDbFault};
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let payments_table = ddb.create_table(&payments::table_def()).await.expect("the payments table");
    let proxy = AwsFaultProxy::start(ddb.endpoint()).await.expect("the fault proxy");
    let store_client = lift_harness::dynamodb::client_for(&proxy.endpoint(), "us-east-1");
    let env = env_with(payments_table, Some(store_client)).await;

    let body = new_payment(1_000, "EUR");
    proxy.lose_answers("PutItem", DynamoDbFault::InternalServerError, 10);
    let lost = env.call(create("acme", "k-lost", &body)).await;
    assert_eq!(lost.status(), StatusCode::SERVICE_UNAVAILABLE, "{lost:?}");
    assert_eq!(env.payments_in_table().await, 1, "the first attempt committed");
    proxy.clear();
    let retried = env.call(create("acme", "k-lost", &body)).await;
    assert_eq!(retried.status(), StatusCode::CREATED, "{retried:?}");
    assert_eq!(env.payments_in_table().await, 1, "the retry found its own payment");
    let id = payment_id(&retried);
    // The same key with another body is not taken for the lost request.
    proxy.lose_answers("PutItem", DynamoDbFault::InternalServerError, 10);
    assert_eq!(env.call(create("acme", "k-other", &body)).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    proxy.clear();
    let other = env.call(create("acme", "k-other", &new_payment(2_000, "EUR"))).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY, "{other:?}");

    let refund = || {
        let body = serde_json::json!({ "amount": 300 });
        let mut req =
            support::request(Method::POST, &format!("/payments/{id}/refunds"), Some("acme"), Some(body));
        req.headers_mut().insert("idempotency-key", "r-lost".parse().unwrap());
        req
    };
    proxy.lose_answers("TransactWriteItems", DynamoDbFault::InternalServerError, 10);
    let lost = env.call(refund()).await;
    assert_eq!(lost.status(), StatusCode::SERVICE_UNAVAILABLE, "{lost:?}");
    proxy.clear();
    let retried = env.call(refund()).await;
    assert_eq!(retried.status(), StatusCode::CREATED, "{retried:?}");
    let get = support::request(Method::GET, &format!("/payments/{id}"), Some("acme"), None);
    let payment: serde_json::Value = serde_json::from_slice(env.call(get).await.body().as_bytes()).unwrap();
    assert_eq!(payment["refunded_amount"], 300, "refunded once: {payment}");
    let refunds = env
        .client
        .scan()
        .table_name(&env.payments_table)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|i| i["sk"].as_s().is_ok_and(|sk| sk.starts_with("REFUND#")))
        .count();
    assert_eq!(refunds, 1);
}
