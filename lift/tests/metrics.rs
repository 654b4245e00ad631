//! CloudWatch EMF metrics: the layer, its documents and their limits.

mod support;

use support::*;

#[tokio::test]
async fn the_layer_writes_request_metrics_by_tenant_and_route() {
    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(|req: lift::Request| async move {
        MetricsHandle::of(&req).unwrap().record("ChargeAmount", 12.5, Unit::None).unwrap();
        Ok::<_, Infallible>(lift::Response::default())
    }));
    let mut req = lift_request("r", "tenant-7");
    req.extensions_mut().insert(lift::MatchedRoute("/payments/:id".into()));
    svc.ready().await.unwrap().call(req).await.unwrap();

    let docs = sink.json();
    let doc = request_doc(&docs);
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Lift/Test");
    assert_eq!(directive["Dimensions"], serde_json::json!([["Tenant", "Route"]]));
    let declared: Vec<(&str, &str)> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
        .collect();
    assert_eq!(
        declared,
        [
            ("ChargeAmount", "None"),
            ("Requests", "Count"),
            ("Latency", "Milliseconds"),
            ("4xx", "Count"),
            ("5xx", "Count")
        ]
    );
    assert!(doc["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!((&doc["Tenant"], &doc["Route"]), (&"tenant-7".into(), &"/payments/:id".into()));
    assert_eq!(
        (doc["Requests"].as_f64(), doc["4xx"].as_f64(), doc["5xx"].as_f64()),
        (Some(1.0), Some(0.0), Some(0.0))
    );
    assert!(doc["Latency"].as_f64().unwrap() >= 0.0);
    assert_eq!(doc["ChargeAmount"], 12.5);
}

#[tokio::test]
async fn errors_are_counted_by_status_class() {
    for (status, client, server) in [(404u16, 1.0, 0.0), (429, 1.0, 0.0), (503, 0.0, 1.0), (201, 0.0, 0.0)] {
        let sink = MemorySink::new();
        let mut svc = metrics_layer(&sink).layer(tower::service_fn(status_handler(status)));
        svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
        let docs = sink.json();
        let doc = request_doc(&docs);
        assert_eq!(
            (doc["4xx"].as_f64(), doc["5xx"].as_f64()),
            (Some(client), Some(server)),
            "status {status}"
        );
    }
}

#[tokio::test]
async fn the_cold_start_has_its_own_document_once() {
    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(status_handler(200)));
    for _ in 0..3 {
        svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    }
    let docs = sink.json();
    let cold: Vec<&Value> = docs.iter().filter(|d| d.get("ColdStart").is_some()).collect();
    assert_eq!(cold.len(), 1);
    assert_eq!(cold[0]["ColdStart"], 1.0);
    assert_eq!(cold[0]["FunctionName"], "payments-fn");
    assert_eq!(cold[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["FunctionName"]]));
    assert!(cold[0].get("Requests").is_none(), "the cold start is not mixed into a request document");
    assert_eq!(docs.iter().filter(|d| d.get("Requests").is_some()).count(), 3);
}

#[tokio::test(start_paused = true)]
async fn metrics_are_flushed_when_the_response_completes_not_on_a_timer() {
    let sink = MemorySink::new();
    let (mock, mut handle) = tower_test::mock::pair::<lift::Request, lift::Response>();
    let mut svc = metrics_layer(&sink).layer(mock);
    let response = svc.ready().await.unwrap().call(lift_request("r", "t"));
    let task = tokio::spawn(response);

    let (req, send) = handle.next_request().await.expect("the request reaches the inner service");
    let metrics = MetricsHandle::of(&req).expect("the handle is in the request").clone();
    metrics.count("Started").unwrap();
    // Time passes (as it would between Lambda invocations): nothing is written.
    tokio::time::advance(Duration::from_secs(3600)).await;
    tokio::task::yield_now().await;
    assert!(sink.documents().is_empty(), "nothing before the response: {:?}", sink.documents());

    send.send_response(lift::Response::default());
    task.await.unwrap().unwrap();
    let docs = sink.json();
    assert_eq!(docs.len(), 2, "cold start + request");
    assert_eq!(request_doc(&docs)["Started"], 1.0);
    // The request's recorder is closed: a late value is an error, not a silent loss.
    assert!(matches!(metrics.count("Late"), Err(MetricsError::AlreadyFlushed { .. })));
}

#[tokio::test]
async fn handler_metrics_past_the_emf_limits_are_split() {
    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(|req: lift::Request| async move {
        let m = MetricsHandle::of(&req).unwrap();
        for i in 0..101 {
            m.count(format!("Metric{i}")).unwrap();
            m.record("Values", f64::from(i), Unit::Milliseconds).unwrap();
        }
        Ok::<_, Infallible>(lift::Response::default())
    }));
    svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    let docs: Vec<Value> = sink.json().into_iter().filter(|d| d.get("ColdStart").is_none()).collect();
    assert_eq!(docs.len(), 2);
    for doc in &docs {
        let metrics = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        assert!(metrics.len() <= 100);
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            let count = doc[name].as_array().map_or(1, Vec::len);
            assert!(count <= 100, "{name} has {count} values");
        }
    }
    let values: usize = docs.iter().map(|d| d["Values"].as_array().map_or(1, Vec::len)).sum();
    assert_eq!(values, 101);
}

#[test]
fn emf_limits_are_errors_at_build_time() {
    let keys: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
    let err = MetricsBuilder::new().namespace("N").dimension_set(keys).build().unwrap_err();
    assert_eq!(err, MetricsError::TooManyDimensions { count: 31 });
    assert_eq!(err.to_string(), "too many dimensions: 31, at most 30 are allowed");
    assert_eq!(MetricsBuilder::new().build().unwrap_err(), MetricsError::MissingNamespace);

    let mut m = Metrics::new("N").unwrap();
    assert!(matches!(m.record("", 1.0, Unit::Count), Err(MetricsError::InvalidMetricName { .. })));
    assert!(matches!(
        m.record("n".repeat(256), 1.0, Unit::Count),
        Err(MetricsError::InvalidMetricName { .. })
    ));
    assert!(m.record("n".repeat(255), 1.0, Unit::Count).is_ok());
    for i in 0..101 {
        m.count(format!("M{i}")).unwrap();
    }
    assert_eq!(m.to_documents(std::time::SystemTime::now()).len(), 2);
}

/// Metrics are mounted outside authentication in the recommended order: the tenant the
/// inner layer resolves is on the document, and each request carries only its own.
#[tokio::test]
async fn a_tenant_resolved_inside_the_layer_is_the_documents_tenant() {
    let sink = MemorySink::new();
    let authenticate = tower::util::MapRequestLayer::new(|mut req: lift::Request| {
        let tenant = req.headers().get("x-test-tenant").map(|v| v.to_str().unwrap().to_owned());
        if let (Some(tenant), Some(ctx)) = (tenant, lift::Context::of_mut(&mut req)) {
            ctx.set_principal(lift::Principal::new("user", tenant));
        }
        req
    });
    let svc =
        metrics_layer(&sink).layer(authenticate.layer(tower::service_fn(|_req: lift::Request| async {
            Ok::<_, Infallible>(lift::Response::default())
        })));
    for tenant in [Some("acme"), None, Some("globex")] {
        let mut req = http::Request::new(lift::Body::empty());
        if let Some(tenant) = tenant {
            req.headers_mut().insert("x-test-tenant", tenant.parse().unwrap());
        }
        req.extensions_mut().insert(lift::Context::new("r"));
        svc.clone().oneshot(req).await.unwrap();
    }
    let docs = sink.json();
    let tenants: Vec<_> =
        docs.iter().filter(|d| d.get("Requests").is_some()).map(|d| d.get("Tenant").cloned()).collect();
    assert_eq!(tenants, [Some("acme".into()), None, Some("globex".into())]);
}

/// A handler that panics leaves the layer no response: the request is still recorded, as a
/// server error. Without it a handler panicking on every third request would show the SLO
/// alarms and the rollout gates its successes only.
#[tokio::test]
async fn a_request_whose_handler_panics_is_a_server_error() {
    use futures_util::FutureExt;
    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(|_req: lift::Request| async move {
        if std::hint::black_box(true) {
            panic!("handler bug");
        }
        Ok::<_, Infallible>(lift::Response::default())
    }));
    let call = svc.ready().await.unwrap().call(lift_request("r", "tenant-7"));
    assert!(std::panic::AssertUnwindSafe(call).catch_unwind().await.is_err(), "the handler panicked");

    let docs = sink.json();
    let doc = request_doc(&docs);
    assert_eq!(
        (doc["Requests"].as_f64(), doc["4xx"].as_f64(), doc["5xx"].as_f64()),
        (Some(1.0), Some(0.0), Some(1.0))
    );
    assert_eq!(doc["Tenant"], "tenant-7");
}

/// A request dropped before it answered (an outer timeout drops it) is recorded once, as a
/// server error; a request that answered is not recorded again when it is dropped.
#[tokio::test]
async fn a_request_dropped_unanswered_is_a_server_error_recorded_once() {
    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(|_req: lift::Request| async move {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(lift::Response::default())
    }));
    let call = svc.ready().await.unwrap().call(lift_request("r", "tenant-7"));
    assert!(tokio::time::timeout(Duration::from_millis(5), call).await.is_err(), "still pending");
    let docs = sink.json();
    assert_eq!(docs.iter().filter(|d| d.get("Requests").is_some()).count(), 1);
    assert_eq!(request_doc(&docs)["5xx"].as_f64(), Some(1.0));

    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(status_handler(200)));
    let call = svc.ready().await.unwrap().call(lift_request("r", "tenant-7"));
    drop(call.await.unwrap());
    let docs = sink.json();
    assert_eq!(docs.iter().filter(|d| d.get("Requests").is_some()).count(), 1, "recorded once");
    assert_eq!(request_doc(&docs)["5xx"].as_f64(), Some(0.0));
}

/// In an App, a route whose handler panics is recorded under its route, where its SLO
/// looks: the route comes from the router, not from the response there is none of.
#[tokio::test]
async fn a_panicking_route_is_recorded_under_its_route() {
    use futures_util::FutureExt;
    async fn broken(_req: lift::Request) -> Result<lift::Response, lift::Error> {
        if std::hint::black_box(true) {
            panic!("handler bug");
        }
        Ok(lift::Response::default())
    }
    let sink = MemorySink::new();
    let app = lift::App::new().post("/payments", broken).layer(metrics_layer(&sink));
    let req = Request::builder().method("POST").uri("/payments").body(Body::empty()).unwrap();
    let call = app.into_service().oneshot(req);
    assert!(std::panic::AssertUnwindSafe(call).catch_unwind().await.is_err());
    let docs = sink.json();
    let doc = request_doc(&docs);
    assert_eq!((&doc["Route"], doc["5xx"].as_f64()), (&"/payments".into(), Some(1.0)));
}
