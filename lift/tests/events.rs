//! Event detection and dispatch over real AWS event shapes (fixtures under `fixtures/`).

use std::sync::{Arc, Mutex};

use lift::event::{Dispatcher, EventError, EventKind, EventRouter, EventRule, HandlerPanic, HandlerResult};
use lift::Invocation;
use serde_json::{json, Value};

const APIGW_V1: &str = include_str!("fixtures/apigw-v1-request.json");
const APIGW_V2: &str = include_str!("fixtures/apigw-v2-request.json");
const FUNCTION_URL: &str = include_str!("fixtures/function-url-request.json");
const ALB: &str = include_str!("fixtures/alb-request.json");
const SQS: &str = include_str!("fixtures/sqs-event.json");
const SQS_FIFO: &str = include_str!("fixtures/sqs-fifo-event.json");
const EVENTBRIDGE: &str = include_str!("fixtures/eventbridge-event.json");
const SCHEDULE: &str = include_str!("fixtures/eventbridge-schedule.json");
const DYNAMODB: &str = include_str!("fixtures/dynamodb-event.json");

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn invocation() -> Invocation {
    Invocation {
        request_id: "req-1".into(),
        deadline: None,
        invoked_function_arn: Some("arn:aws:lambda:us-east-1:123456789012:function:payments".into()),
        xray_trace_id: Some("Root=1-5e9f0c65-1de4d666d4dd26aced652b6c".into()),
    }
}

async fn dispatch(d: &Dispatcher, payload: Value) -> Value {
    d.dispatch(payload, invocation()).await.unwrap()
}

#[test]
fn detects_every_kind_from_real_shapes() {
    let cases = [
        (APIGW_V1, EventKind::ApiGatewayV1),
        (APIGW_V2, EventKind::ApiGatewayV2),
        (FUNCTION_URL, EventKind::FunctionUrl),
        (ALB, EventKind::Alb),
        (SQS, EventKind::Sqs { fifo: false }),
        (SQS_FIFO, EventKind::Sqs { fifo: true }),
        (EVENTBRIDGE, EventKind::EventBridge),
        (SCHEDULE, EventKind::Scheduled),
        (DYNAMODB, EventKind::DynamoDbStream),
    ];
    for (text, kind) in cases {
        assert_eq!(EventKind::detect(&fixture(text)).unwrap(), kind, "{kind}");
    }
}

#[tokio::test]
async fn unknown_events_are_errors() {
    let d = Dispatcher::events_only(EventRouter::new());
    for payload in [json!({"foo": 1}), json!([1, 2]), json!({"Records": [{"eventSource": "aws:s3"}]})] {
        let err = d.dispatch(payload, invocation()).await.unwrap_err();
        assert!(matches!(err, EventError::UnknownEvent(_)), "{err}");
    }
}

/// HTTP events go through lambda_http, behind the `lambda` feature.
#[cfg(feature = "lambda")]
mod http_events {
    use std::convert::Infallible;

    use aws_lambda_events::encodings::Base64Data;
    use http::StatusCode;
    use lift::error::Problem;
    use lift::event::BoxHttpService;
    use lift::{Request, Response};

    use super::*;

    /// Echoes what the service saw, sets a cookie and a repeated header.
    async fn echo(req: Request) -> Result<Response, Infallible> {
        let seen = json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query(),
            "body": String::from_utf8_lossy(req.body().as_bytes()),
            "request_id": req.extensions().get::<Invocation>().map(|i| i.request_id.clone()),
            "trace": req.headers().get("x-amzn-trace-id").and_then(|v| v.to_str().ok()),
        });
        let mut res = lift::json_response(StatusCode::OK, &seen);
        let headers = res.headers_mut();
        headers.append("set-cookie", "session=abc; Secure".parse().unwrap());
        headers.append("x-multi", "a".parse().unwrap());
        headers.append("x-multi", "b".parse().unwrap());
        Ok(res)
    }

    /// Answers the request body back as bytes.
    async fn binary(req: Request) -> Result<Response, Infallible> {
        let body = req.into_body();
        let res =
            http::Response::builder().header("content-type", "application/octet-stream").body(body).unwrap();
        Ok(res)
    }

    async fn panics(_req: Request) -> Result<Response, Infallible> {
        panic!("the service blew up");
    }

    fn http_dispatcher<F, Fut>(f: F) -> Dispatcher
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Response, Infallible>> + Send + 'static,
    {
        let service = BoxHttpService::new(tower::service_fn(f));
        Dispatcher::new(Some(service), EventRouter::new())
    }

    fn body_json(response: &Value) -> Value {
        serde_json::from_str(response["body"].as_str().expect("a text body")).unwrap()
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    #[tokio::test]
    async fn http_api_v2_round_trip() {
        let mut event = fixture(APIGW_V2);
        event["requestContext"]["http"]["method"] = json!("POST");
        event["rawPath"] = json!("/payments/p_1");
        event["rawQueryString"] = json!("expand=card");
        event["body"] = json!("{\"amount\":120}");
        let res = dispatch(&http_dispatcher(echo), event).await;

        assert_eq!(res["statusCode"], 200);
        assert_eq!(res["isBase64Encoded"], false);
        assert_eq!(res["cookies"], json!(["session=abc; Secure"]));
        assert_eq!(res["headers"]["content-type"], "application/json");
        assert_eq!(res["headers"]["x-multi"], "a, b", "v2 joins repeated headers");
        assert!(res["headers"].get("set-cookie").is_none());
        let seen = body_json(&res);
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["path"], "/payments/p_1");
        assert_eq!(seen["query"], "expand=card");
        assert_eq!(seen["body"], "{\"amount\":120}");
        assert_eq!(seen["request_id"], "req-1");
        assert_eq!(seen["trace"], "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c");
    }

    #[tokio::test]
    async fn rest_api_v1_round_trip() {
        let res = dispatch(&http_dispatcher(echo), fixture(APIGW_V1)).await;

        assert_eq!(keys(&res), ["body", "headers", "isBase64Encoded", "multiValueHeaders", "statusCode"]);
        assert_eq!(res["statusCode"], 200);
        assert_eq!(res["headers"], json!({}), "v1 puts every header in multiValueHeaders");
        assert_eq!(res["multiValueHeaders"]["set-cookie"], json!(["session=abc; Secure"]));
        assert_eq!(res["multiValueHeaders"]["x-multi"], json!(["a", "b"]));
        assert_eq!(res["multiValueHeaders"]["content-type"], json!(["application/json"]));
        let seen = body_json(&res);
        assert_eq!(seen["method"], "POST");
        // Routes see the resource path: the REST API stage lambda_http puts in front is taken off.
        assert_eq!(seen["path"], "/hello/world");
        assert_eq!(seen["query"], "name=me");
        assert_eq!(seen["body"], "{\r\n\t\"a\": 1\r\n}");
    }

    #[tokio::test]
    async fn function_url_and_alb_round_trip() {
        let d = http_dispatcher(echo);
        let url = dispatch(&d, fixture(FUNCTION_URL)).await;
        assert_eq!(url["cookies"], json!(["session=abc; Secure"]));
        let seen = body_json(&url);
        assert_eq!((seen["method"].as_str(), seen["path"].as_str()), (Some("POST"), Some("/my/path")));
        assert_eq!(seen["body"], "Hello from client!");

        let alb = dispatch(&d, fixture(ALB)).await;
        assert_eq!(alb["statusDescription"], "200 OK");
        assert_eq!(alb["headers"]["content-type"], "application/json");
        assert_eq!(alb["multiValueHeaders"]["x-multi"], json!(["a", "b"]));
        assert_eq!(alb["headers"]["x-multi"], "a, b");
        assert_eq!(body_json(&alb)["query"], "key=hello");
    }

    #[tokio::test]
    async fn base64_bodies_in_and_out() {
        let mut event = fixture(APIGW_V2);
        event["requestContext"]["http"]["method"] = json!("POST");
        event["isBase64Encoded"] = json!(true);
        event["body"] = json!("AAEC/w==");
        let res = dispatch(&http_dispatcher(binary), event).await;
        assert_eq!(res["isBase64Encoded"], true);
        let bytes: Base64Data = serde_json::from_value(res["body"].clone()).unwrap();
        assert_eq!(bytes.0, vec![0u8, 1, 2, 255]);
    }

    #[tokio::test]
    async fn a_panicking_service_is_a_500_not_a_crash() {
        let res = dispatch(&http_dispatcher(panics), fixture(APIGW_V2)).await;
        assert_eq!(res["statusCode"], 500);
        let problem: Problem = serde_json::from_value(body_json(&res)).unwrap();
        assert_eq!(problem.request_id.as_deref(), Some("req-1"));
    }

    /// Asserts a 400 problem+json in the v1 (REST) shape and returns its detail.
    fn assert_v1_problem(res: &Value) -> String {
        assert_eq!(keys(res), ["body", "headers", "isBase64Encoded", "multiValueHeaders", "statusCode"]);
        assert_eq!(res["statusCode"], 400, "{res}");
        assert_eq!(res["multiValueHeaders"]["content-type"], json!(["application/problem+json"]));
        problem_detail(res)
    }

    /// Asserts a 400 problem+json in the payload format 2.0 shape and returns its detail.
    fn assert_v2_problem(res: &Value) -> String {
        assert!(res.get("cookies").is_some(), "v2 shape: {res}");
        assert_eq!(res["statusCode"], 400, "{res}");
        assert_eq!(res["headers"]["content-type"], "application/problem+json");
        problem_detail(res)
    }

    fn problem_detail(res: &Value) -> String {
        let problem: Problem = serde_json::from_value(body_json(res)).unwrap();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.request_id.as_deref(), Some("req-1"));
        problem.detail.expect("a detail")
    }

    #[tokio::test]
    async fn malformed_rest_events_get_a_v1_400() {
        let d = http_dispatcher(echo);
        let card = "4111111111111111";

        let mut bad_method = fixture(APIGW_V1);
        bad_method["httpMethod"] = json!(format!("{card} GET"));
        let detail = assert_v1_problem(&dispatch(&d, bad_method).await);
        assert!(detail.contains("httpMethod") && !detail.contains(card), "{detail}");

        let mut bad_context = fixture(APIGW_V1);
        bad_context["requestContext"] = json!("oops");
        let detail = assert_v1_problem(&dispatch(&d, bad_context).await);
        assert!(detail.contains("requestContext"), "{detail}");

        let mut bad_port = fixture(APIGW_V1);
        bad_port["headers"]["Host"] = json!("example.com:99999");
        let detail = assert_v1_problem(&dispatch(&d, bad_port).await);
        assert!(detail.contains("host"), "{detail}");

        let mut bad_path = fixture(APIGW_V1);
        bad_path["path"] = json!("@evil.example/x");
        assert_v1_problem(&dispatch(&d, bad_path).await);
    }

    #[tokio::test]
    async fn malformed_http_api_events_get_a_v2_400() {
        let d = http_dispatcher(echo);

        let mut bad_base64 = fixture(APIGW_V2);
        bad_base64["isBase64Encoded"] = json!(true);
        bad_base64["body"] = json!("not base64 at all!");
        let detail = assert_v2_problem(&dispatch(&d, bad_base64).await);
        assert!(detail.contains("base64"), "{detail}");

        let mut bad_method = fixture(APIGW_V2);
        bad_method["requestContext"]["http"]["method"] = json!(42);
        let detail = assert_v2_problem(&dispatch(&d, bad_method).await);
        assert!(detail.contains("requestContext.http.method"), "{detail}");

        let mut bad_context = fixture(FUNCTION_URL);
        bad_context["requestContext"] = json!(["not", "an", "object"]);
        assert_v2_problem(&dispatch(&d, bad_context).await);

        let mut bad_host = fixture(APIGW_V2);
        bad_host["headers"]["host"] = json!("bad host");
        assert_v2_problem(&dispatch(&d, bad_host).await);

        let mut bad_query = fixture(APIGW_V2);
        bad_query["rawQueryString"] = json!("a=1 2");
        let detail = assert_v2_problem(&dispatch(&d, bad_query).await);
        assert!(detail.contains("rawQueryString"), "{detail}");
    }

    #[tokio::test]
    async fn malformed_alb_events_get_an_alb_400() {
        let mut event = fixture(ALB);
        event["httpMethod"] = json!({"GET": true});
        let res = dispatch(&http_dispatcher(echo), event).await;
        assert_eq!(res["statusCode"], 400);
        assert_eq!(res["statusDescription"], "400 Bad Request");
        assert!(problem_detail(&res).contains("httpMethod"));
    }
}

#[cfg(not(feature = "lambda"))]
#[tokio::test]
async fn http_events_need_the_lambda_feature() {
    let d = Dispatcher::events_only(EventRouter::new());
    let err = d.dispatch(fixture(APIGW_V2), invocation()).await.unwrap_err();
    assert!(matches!(err, EventError::NoRoute(_)) && err.to_string().contains("lambda"), "{err}");
}

#[tokio::test]
async fn http_events_without_a_service_have_no_route() {
    let d = Dispatcher::events_only(EventRouter::new());
    let err = d.dispatch(fixture(APIGW_V2), invocation()).await.unwrap_err();
    assert!(matches!(err, EventError::NoRoute(_)), "{err}");
}

/// A batch of `bodies.len()` messages shaped like the fixture's, ids `m-1`, `m-2`, ...
fn sqs_batch(template: &str, bodies: &[&str]) -> Value {
    let record = fixture(template)["Records"][0].clone();
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut r = record.clone();
            r["messageId"] = json!(format!("m-{}", i + 1));
            r["body"] = json!(body);
            r
        })
        .collect();
    json!({ "Records": records })
}

type Seen = Arc<Mutex<Vec<String>>>;

/// A router whose SQS handler records each body and fails on `fail`, panics on `panic`.
fn sqs_router(seen: &Seen) -> EventRouter {
    let seen = Arc::clone(seen);
    EventRouter::new().on_sqs(move |message| {
        let seen = Arc::clone(&seen);
        async move {
            let body = message.body.unwrap_or_default();
            seen.lock().unwrap().push(body.clone());
            match body.as_str() {
                "fail" => Err("payment declined".into()),
                "panic" => panic!("handler bug"),
                _ => Ok(()),
            }
        }
    })
}

fn failures(response: &Value) -> Vec<&str> {
    response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn sqs_reports_exactly_the_failed_messages() {
    for concurrency in [1, 3] {
        let seen = Seen::default();
        let d = Dispatcher::events_only(sqs_router(&seen).sqs_concurrency(concurrency));
        let batch = sqs_batch(SQS, &["ok", "fail", "ok", "fail"]);
        let res = dispatch(&d, batch).await;
        assert_eq!(failures(&res), ["m-2", "m-4"], "concurrency {concurrency}");
        assert_eq!(seen.lock().unwrap().len(), 4);
    }
}

#[tokio::test]
async fn sqs_fifo_stops_at_the_first_failure() {
    let seen = Seen::default();
    let d = Dispatcher::events_only(sqs_router(&seen).sqs_concurrency(8));
    let res = dispatch(&d, sqs_batch(SQS_FIFO, &["ok", "fail", "ok", "ok"])).await;
    assert_eq!(failures(&res), ["m-2", "m-3", "m-4"]);
    assert_eq!(*seen.lock().unwrap(), ["ok", "fail"], "later messages must not run");
}

#[tokio::test]
async fn a_panicking_sqs_handler_fails_only_its_message() {
    let seen = Seen::default();
    let d = Dispatcher::events_only(sqs_router(&seen));
    let res = dispatch(&d, sqs_batch(SQS, &["ok", "panic", "ok"])).await;
    assert_eq!(failures(&res), ["m-2"]);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_malformed_sqs_record_fails_alone() {
    let seen = Seen::default();
    let d = Dispatcher::events_only(sqs_router(&seen));
    let mut batch = sqs_batch(SQS, &["ok", "ok"]);
    batch["Records"][0]["messageAttributes"] = json!("not a map");
    let res = dispatch(&d, batch).await;
    assert_eq!(failures(&res), ["m-1"]);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn sqs_routes_by_queue_and_needs_a_route() {
    let seen = Seen::default();
    let named = Arc::clone(&seen);
    let router = EventRouter::new()
        .on_sqs_queue("refunds", |_m| async { Err("wrong queue".into()) })
        .on_sqs_queue("SQSQueue", move |m| {
            let named = Arc::clone(&named);
            async move {
                named.lock().unwrap().push(m.message_id.unwrap_or_default());
                Ok(())
            }
        });
    let d = Dispatcher::events_only(router);
    let res = dispatch(&d, sqs_batch(SQS, &["a"])).await;
    assert_eq!(failures(&res), Vec::<&str>::new());
    assert_eq!(*seen.lock().unwrap(), ["m-1"]);

    let err = d.dispatch(sqs_batch(SQS_FIFO, &["a"]), invocation()).await.unwrap_err();
    assert!(matches!(err, EventError::NoRoute(_)), "{err}");
    assert!(err.to_string().contains("fifo.fifo"), "{err}");
}

type Hits = Arc<Mutex<Vec<&'static str>>>;

/// A handler that records its name.
fn hit<T>(hits: &Hits, name: &'static str) -> impl Fn(T) -> std::future::Ready<HandlerResult> + Send + Sync {
    let hits = Arc::clone(hits);
    move |_| {
        hits.lock().unwrap().push(name);
        std::future::ready(Ok(()))
    }
}

fn rule(pattern: Value) -> EventRule {
    EventRule::new(pattern).unwrap()
}

#[tokio::test]
async fn eventbridge_goes_to_the_first_matching_rule() {
    let hits = Hits::default();
    let router = EventRouter::new()
        .on_event(rule(json!({"source": ["aws.s3"]})), hit(&hits, "s3"))
        .on_event(
            rule(json!({"source": ["aws.ec2"], "detail": {"state": ["pending"]}})),
            hit(&hits, "pending"),
        )
        .on_event(rule(json!({"source": [{"prefix": "aws."}]})), hit(&hits, "any-aws"));
    let d = Dispatcher::events_only(router);

    assert_eq!(dispatch(&d, fixture(EVENTBRIDGE)).await, Value::Null);
    let mut running = fixture(EVENTBRIDGE);
    running["detail"]["state"] = json!("running");
    dispatch(&d, running).await;
    assert_eq!(*hits.lock().unwrap(), ["pending", "any-aws"]);

    let mut custom = fixture(EVENTBRIDGE);
    custom["source"] = json!("payments");
    let err = d.dispatch(custom, invocation()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no route for eventbridge event from source `payments` with detail-type \
         `EC2 Instance State-change Notification`"
    );
}

#[tokio::test]
async fn eventbridge_handler_failures_are_errors() {
    let router = EventRouter::new()
        .on_event(rule(json!({"detail": {"state": ["pending"]}})), |_e| async {
            Err("downstream unavailable".into())
        })
        .on_event(rule(json!({"source": ["aws.ec2"]})), |_e| async { panic!("bug") });
    let d = Dispatcher::events_only(router);
    let err = d.dispatch(fixture(EVENTBRIDGE), invocation()).await.unwrap_err();
    assert!(matches!(err, EventError::Handler { .. }), "{err}");

    let mut running = fixture(EVENTBRIDGE);
    running["detail"]["state"] = json!("running");
    match d.dispatch(running, invocation()).await.unwrap_err() {
        EventError::Handler { source, .. } => assert!(source.is::<HandlerPanic>()),
        other => panic!("expected a handler error, got {other}"),
    }
}

#[tokio::test]
async fn schedules_route_by_rule_arn_or_name() {
    let hits = Hits::default();
    let arn = "arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule";
    let router = EventRouter::new()
        .on_schedule("other-rule", hit(&hits, "other"))
        .on_schedule(arn, hit(&hits, "by-arn"))
        .on_schedule("my-scheduled-rule", hit(&hits, "by-name"));
    let d = Dispatcher::events_only(router);
    dispatch(&d, fixture(SCHEDULE)).await;
    assert_eq!(*hits.lock().unwrap(), ["by-arn"]);

    let by_name =
        Dispatcher::events_only(EventRouter::new().on_schedule("my-scheduled-rule", hit(&hits, "by-name")));
    dispatch(&by_name, fixture(SCHEDULE)).await;
    assert_eq!(*hits.lock().unwrap(), ["by-arn", "by-name"]);

    let unrouted = Dispatcher::events_only(EventRouter::new().on_schedule("other-rule", hit(&hits, "other")));
    let err = unrouted.dispatch(fixture(SCHEDULE), invocation()).await.unwrap_err();
    assert!(matches!(err, EventError::NoRoute(_)) && err.to_string().contains("my-scheduled-rule"), "{err}");

    // A schedule no on_schedule claims is still an EventBridge event for the rules.
    let fallback = Dispatcher::events_only(
        EventRouter::new().on_event(rule(json!({"source": ["aws.events"]})), hit(&hits, "rule")),
    );
    dispatch(&fallback, fixture(SCHEDULE)).await;
    assert_eq!(hits.lock().unwrap().last(), Some(&"rule"));
}

/// Three stream records shaped like the fixture's, sequence numbers 100, 200, 300.
fn stream_batch() -> Value {
    let record = fixture(DYNAMODB)["Records"][0].clone();
    let records: Vec<Value> = (1..=3)
        .map(|i| {
            let mut r = record.clone();
            r["dynamodb"]["SequenceNumber"] = json!(format!("{i}00"));
            r
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test]
async fn streams_report_the_first_failure_and_stop() {
    let seen = Seen::default();
    let log = Arc::clone(&seen);
    let router = EventRouter::new().on_dynamodb_stream(move |record| {
        let log = Arc::clone(&log);
        async move {
            let sequence = record.change.sequence_number.unwrap_or_default();
            log.lock().unwrap().push(sequence.clone());
            if sequence == "200" {
                return Err("replication conflict".into());
            }
            Ok(())
        }
    });
    let d = Dispatcher::events_only(router);
    let res = dispatch(&d, stream_batch()).await;
    assert_eq!(res, json!({"batchItemFailures": [{"itemIdentifier": "200"}]}));
    assert_eq!(*seen.lock().unwrap(), ["100", "200"]);

    let ok = dispatch(&d, fixture(DYNAMODB)).await;
    assert_eq!(ok, json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn streams_route_by_table() {
    let hits = Hits::default();
    let router = EventRouter::new()
        .on_dynamodb_table("Other-Table", hit(&hits, "other"))
        .on_dynamodb_table("Example-Table", hit(&hits, "example"));
    let d = Dispatcher::events_only(router);
    dispatch(&d, fixture(DYNAMODB)).await;
    assert_eq!(*hits.lock().unwrap(), ["example", "example"]);

    let none = Dispatcher::events_only(EventRouter::new());
    let err = none.dispatch(fixture(DYNAMODB), invocation()).await.unwrap_err();
    assert!(err.to_string().contains("Example-Table"), "{err}");
}
