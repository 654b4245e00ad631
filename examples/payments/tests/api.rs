//! The payments API against real DynamoDB Local, called with real JWTs from the harness's
//! mocked issuer.

mod support;

use http::{Method, StatusCode};
use support::{env, env_with, json, new_payment, request};

#[tokio::test]
async fn create_get_list_and_refund() {
    let env = env().await;
    let body = new_payment(2500, "USD");
    let pan = body["card_number"].as_str().unwrap().to_owned();
    let res = env.send(Method::POST, "/payments", "acme", Some(body.clone())).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", json(&res));
    let created = json(&res);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(res.headers()["location"], format!("/payments/{id}"));
    assert_eq!(created["amount"], 2500);
    assert_eq!(created["status"], "succeeded");
    assert_eq!(created["card"]["last4"], &pan[pan.len() - 4..]);
    assert_eq!(created["customer"], body["customer"]);

    let res = env.send(Method::GET, &format!("/payments/{id}"), "acme", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json(&res), created);

    let res = env.send(Method::GET, "/payments", "acme", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let list = json(&res);
    assert_eq!(list["payments"].as_array().unwrap().len(), 1);
    assert_eq!(list["payments"][0]["id"], id.as_str());

    let res = env
        .send(
            Method::POST,
            &format!("/payments/{id}/refunds"),
            "acme",
            Some(serde_json::json!({"amount": 1000})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", json(&res));
    let refund = json(&res);
    assert_eq!(refund["amount"], 1000);
    assert_eq!(refund["payment"]["refunded_amount"], 1000);
    assert_eq!(refund["payment"]["status"], "partially_refunded");

    let res = env
        .send(
            Method::POST,
            &format!("/payments/{id}/refunds"),
            "acme",
            Some(serde_json::json!({"amount": 1500})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(json(&res)["payment"]["status"], "refunded");
}

#[tokio::test]
async fn over_refund_is_refused_and_changes_nothing() {
    let env = env().await;
    let res = env.send(Method::POST, "/payments", "acme", Some(new_payment(1000, "EUR"))).await;
    let id = json(&res)["id"].as_str().unwrap().to_owned();
    let uri = format!("/payments/{id}/refunds");
    let refund =
        |amount: u64| env.send(Method::POST, &uri, "acme", Some(serde_json::json!({ "amount": amount })));
    assert_eq!(refund(600).await.status(), StatusCode::CREATED);
    let res = refund(401).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(json(&res)["detail"].as_str().unwrap().contains("400"));
    let payment = env.store.get("acme", &id).await.unwrap();
    assert_eq!(payment.refunded_amount, 600);
    assert_eq!(refund(400).await.status(), StatusCode::CREATED);
    assert_eq!(refund(1).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn concurrent_refunds_never_exceed_the_payment() {
    let env = env().await;
    let res = env.send(Method::POST, "/payments", "acme", Some(new_payment(100, "USD"))).await;
    let id = json(&res)["id"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let service = env.service.clone();
            let uri = format!("/payments/{id}/refunds");
            let req = env.request_as(Method::POST, &uri, "acme", Some(serde_json::json!({"amount": 30})));
            tokio::spawn(async move { tower::ServiceExt::oneshot(service, req).await.unwrap().status() })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 3, "100 covers exactly three refunds of 30");
    assert_eq!(env.store.get("acme", &id).await.unwrap().refunded_amount, 90);
}

#[tokio::test]
async fn refund_of_unknown_payment_is_404() {
    let env = env().await;
    let res = env
        .send(Method::POST, "/payments/pay_nope/refunds", "acme", Some(serde_json::json!({"amount": 1})))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_tenants_payment_is_invisible() {
    let env = env().await;
    let res = env.send(Method::POST, "/payments", "acme", Some(new_payment(700, "GBP"))).await;
    let id = json(&res)["id"].as_str().unwrap().to_owned();
    let res = env.send(Method::GET, &format!("/payments/{id}"), "globex", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = env.send(Method::GET, "/payments", "globex", None).await;
    assert_eq!(json(&res)["payments"].as_array().unwrap().len(), 0);
    let res = env
        .send(
            Method::POST,
            &format!("/payments/{id}/refunds"),
            "globex",
            Some(serde_json::json!({"amount": 1})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // And the owner still sees it untouched.
    assert_eq!(env.store.get("acme", &id).await.unwrap().refunded_amount, 0);
}

#[tokio::test]
async fn duplicate_id_is_refused() {
    let env = env().await;
    let mut body = new_payment(100, "JPY");
    body["id"] = "pay_fixed_1".into();
    assert_eq!(
        env.send(Method::POST, "/payments", "acme", Some(body.clone())).await.status(),
        StatusCode::CREATED
    );
    let mut again = new_payment(999, "JPY");
    again["id"] = "pay_fixed_1".into();
    let res = env.send(Method::POST, "/payments", "acme", Some(again)).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(env.store.get("acme", "pay_fixed_1").await.unwrap().amount, 100, "the first payment is kept");
    // The same id under another tenant is a different payment.
    assert_eq!(env.send(Method::POST, "/payments", "globex", Some(body)).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn list_pages_through_all_payments() {
    let env = env().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = new_payment(100 + i, "USD");
        body["id"] = format!("pay_{i:02}").into();
        let res = env.send(Method::POST, "/payments", "acme", Some(body)).await;
        ids.push(json(&res)["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut uri = "/payments?limit=2".to_owned();
    loop {
        let page = json(&env.send(Method::GET, &uri, "acme", None).await);
        seen.extend(
            page["payments"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/payments?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let res = env.send(Method::GET, "/payments?limit=0", "acme", None).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(&res)["field"], "limit");
}

#[tokio::test]
async fn invalid_payments_name_the_field() {
    let env = env().await;
    let cases = [
        ("card_number", serde_json::json!("4111111111111112")),
        ("amount", serde_json::json!(0)),
        ("currency", serde_json::json!("ABC")),
    ];
    for (field, value) in cases {
        let mut body = new_payment(100, "USD");
        body[field] = value;
        let res = env.send(Method::POST, "/payments", "acme", Some(body)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(json(&res)["field"], field);
    }
    // A wrong JSON type is named too.
    let mut body = new_payment(100, "USD");
    body["amount"] = "lots".into();
    let res = env.send(Method::POST, "/payments", "acme", Some(body)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(&res)["field"], "amount");
    // A negative amount does not parse into minor units.
    let mut body = new_payment(100, "USD");
    body["amount"] = (-5).into();
    assert_eq!(
        env.send(Method::POST, "/payments", "acme", Some(body)).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_dev_header_is_refused_when_the_option_is_off() {
    let env = env_with(false).await;
    let res = env.call(request(Method::POST, "/payments", Some("acme"), Some(new_payment(100, "USD")))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"payments\"");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let scan = env.client.scan().table_name(&env.table).send().await.unwrap();
    assert_eq!(scan.items().len(), 0, "nothing was written");
}

#[tokio::test]
async fn the_dev_header_still_works_when_the_option_is_on() {
    let env = env().await;
    let res = env.call(request(Method::POST, "/payments", Some("acme"), Some(new_payment(100, "USD")))).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", json(&res));
    let id = json(&res)["id"].as_str().unwrap().to_owned();
    assert!(env.store.get("acme", &id).await.is_ok());
    let res = env.call(request(Method::GET, "/payments", Some("not a tenant!"), None)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_card_number_is_never_stored_or_returned() {
    let env = env().await;
    let body = new_payment(4200, "USD");
    let pan = body["card_number"].as_str().unwrap().to_owned();
    let res = env.send(Method::POST, "/payments", "acme", Some(body)).await;
    let raw = String::from_utf8(res.body().as_bytes().to_vec()).unwrap();
    assert!(!raw.contains(&pan), "the response holds the card number");
    let scan = env.client.scan().table_name(&env.table).send().await.unwrap();
    assert_eq!(scan.items().len(), 1);
    for item in scan.items() {
        let dump = format!("{item:?}");
        assert!(!dump.contains(&pan), "a stored item holds the card number: {dump}");
        assert!(!dump.contains(&pan[..12]), "a stored item holds most of the card number");
    }
}

#[tokio::test]
async fn unreachable_dynamodb_is_a_503_problem() {
    // A port nothing listens on: connection refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = lift_harness::dynamodb::client_for(&endpoint, "us-east-1");
    let store = payments::PaymentStore::new(client, "payments", support::FINGERPRINT_KEY);
    let service =
        payments::app(payments::Payments { store, dev_tenant_header_insecure: true }).into_service();
    let res = tower::ServiceExt::oneshot(
        service,
        request(Method::POST, "/payments", Some("acme"), Some(new_payment(100, "USD"))),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let body = json(&res);
    assert!(!body.to_string().contains("127.0.0.1"), "internals leak: {body}");
}
