//! The three observability layers (request log, metrics, X-Ray) mounted together in axum
//! and in Lift's App.

mod support;

use support::*;

// ---------------------------------------------------------------------------------------
// All three layers in axum and in Lift's App
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_three_layers_mount_in_an_axum_router() {
    use axum::routing::get;

    let (logs, _guard) = capture_logs(LogConfig::new().function_name("axum-fn"));
    let sink = MemorySink::new();
    let daemon = Daemon::bind();
    async fn payment(req: axum::extract::Request) -> &'static str {
        tracing::info!(card = "4111 1111 1111 1111", "fetching payment");
        let _call = XrayHandle::of(&req).unwrap().subsegment("DynamoDB", Namespace::Aws);
        MetricsHandle::of(&req).unwrap().count("PaymentsRead").unwrap();
        "ok"
    }
    let router = axum::Router::new()
        .route("/payments/{id}", get(payment))
        .layer(RequestLogLayer::new())
        .layer(metrics_layer(&sink))
        .layer(daemon.layer(SamplingRule::default(), false));
    let req = Request::builder()
        .uri("/payments/p1")
        .header("x-request-id", "axum-1")
        .header("x-amzn-trace-id", trace_header("1"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = router.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT};Sampled=1"));

    let line = &json_lines(&logs)[0];
    assert_eq!((&line["request_id"], &line["xray_trace_id"]), (&"axum-1".into(), &ROOT.into()));
    assert_eq!(line["card"], "[REDACTED:pan]");
    assert_eq!(request_doc(&sink.json())["PaymentsRead"], 1.0);
    assert_eq!(daemon.receive()["subsegments"][0]["name"], "DynamoDB");
}

#[tokio::test]
async fn the_three_layers_mount_in_a_lift_app() {
    let (logs, _guard) = capture_logs(LogConfig::new());
    let sink = MemorySink::new();
    let daemon = Daemon::bind();
    async fn payment(req: lift::Request) -> Result<lift::Response, lift::Error> {
        tracing::info!("fetching payment");
        let _call = XrayHandle::of(&req).unwrap().subsegment("DynamoDB", Namespace::Aws);
        MetricsHandle::of(&req).unwrap().count("PaymentsRead").map_err(lift::Error::internal)?;
        Ok(lift::Response::default())
    }
    let app = lift::App::new()
        .get("/payments/:id", payment)
        .layer(RequestLogLayer::new())
        .layer(metrics_layer(&sink))
        .layer(daemon.layer(SamplingRule::default(), false));
    let req = Request::builder()
        .uri("/payments/p1")
        .header("x-request-id", "app-1")
        .header("x-amzn-trace-id", trace_header("1"))
        .body(Body::empty())
        .unwrap();
    let res: Response<Body> = app.into_service().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT};Sampled=1"));
    assert_eq!(res.headers()["x-request-id"], "app-1");

    let line = &json_lines(&logs)[0];
    assert_eq!((&line["request_id"], &line["xray_trace_id"]), (&"app-1".into(), &ROOT.into()));
    assert_eq!(request_doc(&sink.json())["PaymentsRead"], 1.0);
    let doc = daemon.receive();
    assert_eq!((&doc["trace_id"], &doc["parent_id"]), (&ROOT.into(), &PARENT.into()));
    assert_eq!(doc["subsegments"][0]["name"], "DynamoDB");
}
