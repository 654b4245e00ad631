//! The payments service behind the Lambda event dispatcher, as API Gateway calls it.

mod support;

use lift::event::{Dispatcher, EventRouter};
use lift::Invocation;

fn invocation(id: &str) -> Invocation {
    Invocation {
        request_id: id.into(),
        deadline: Some(std::time::SystemTime::now() + std::time::Duration::from_secs(10)),
        invoked_function_arn: Some("arn:aws:lambda:eu-west-1:123456789012:function:payments".into()),
        xray_trace_id: None,
    }
}

#[tokio::test]
async fn api_gateway_v2_create_then_get() {
    let env = support::env().await;
    let dispatcher = Dispatcher::new(Some(env.service.clone()), EventRouter::new());
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/apigw_v2_create_payment.json")).unwrap();
    // As API Gateway forwards it: a bearer token, no development header.
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove(payments::DEV_TENANT_HEADER);
    headers
        .insert("authorization".into(), format!("Bearer {}", env.token("acme", support::ALL_SCOPES)).into());
    let out = dispatcher.dispatch(event.clone(), invocation("lambda-req-1")).await.unwrap();
    assert_eq!(out["statusCode"], 201, "{out}");
    assert_eq!(out["headers"]["x-request-id"], "lambda-req-1");
    let body: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["amount"], 1999);
    assert_eq!(body["card"]["last4"], "1111");
    assert!(!out.to_string().contains("4111 1111"), "the card number is echoed");

    let id = body["id"].as_str().unwrap();
    let mut get = event;
    get["routeKey"] = "GET /payments/{id}".into();
    get["rawPath"] = format!("/payments/{id}").into();
    get["requestContext"]["http"]["method"] = "GET".into();
    get["requestContext"]["http"]["path"] = format!("/payments/{id}").into();
    get["body"] = serde_json::Value::Null;
    get["isBase64Encoded"] = false.into();
    let out = dispatcher.dispatch(get.clone(), invocation("lambda-req-2")).await.unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(env.store.get("acme", id).await.unwrap().amount, 1999);

    // Another tenant's token sees nothing.
    get["headers"]["authorization"] = format!("Bearer {}", env.token("globex", support::ALL_SCOPES)).into();
    let out = dispatcher.dispatch(get, invocation("lambda-req-3")).await.unwrap();
    assert_eq!(out["statusCode"], 404, "{out}");
}

#[tokio::test]
async fn malformed_api_gateway_event_is_a_400_problem() {
    let env = support::env().await;
    let dispatcher = Dispatcher::new(Some(env.service.clone()), EventRouter::new());
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/apigw_v2_create_payment.json")).unwrap();
    event["body"] = "%%% not base64 %%%".into();
    let out = dispatcher.dispatch(event, invocation("lambda-req-3")).await.unwrap();
    assert_eq!(out["statusCode"], 400, "{out}");
    assert_eq!(out["headers"]["content-type"], "application/problem+json");
}
