//! The evaluator reads what lift's metrics layer really writes: names, namespace,
//! dimension sets and values.

use std::sync::Arc;

use lift::middleware::metrics::{self as lift_metrics, MemorySink, MetricsBuilder};
use lift::{Body, Context, MatchedRoute, Request, Response};
use lift_monitoring::evaluator::{Evaluator, SloStatus};
use lift_monitoring::slo::{self, SloFile};
use tower::{Service, ServiceExt};

#[test]
fn metric_and_dimension_names_are_lifts() {
    assert_eq!(
        [slo::REQUESTS, slo::SERVER_ERRORS, slo::LATENCY, slo::ROUTE, slo::TENANT],
        [
            lift_metrics::REQUESTS,
            lift_metrics::SERVER_ERRORS,
            lift_metrics::LATENCY,
            lift_metrics::ROUTE,
            lift_metrics::TENANT
        ]
    );
}

fn request(tenant: &str, route: &str, status: u16) -> Request {
    let mut ctx = Context::from_parts(&http::HeaderMap::new(), None, None);
    ctx.set_tenant(tenant);
    let mut req = http::Request::builder().uri(route).header("x-status", status).body(Body::empty()).unwrap();
    req.extensions_mut().insert(ctx);
    req.extensions_mut().insert(MatchedRoute(Arc::from(route)));
    req
}

#[tokio::test]
async fn the_evaluator_counts_the_documents_lifts_metrics_layer_writes() {
    let sink = MemorySink::new();
    // The dimension sets `slo check` asks payments to publish.
    let layer = MetricsBuilder::new()
        .namespace("Payments")
        .dimension_set([lift_metrics::ROUTE, lift_metrics::TENANT])
        .dimension_set([lift_metrics::ROUTE])
        .dimension_set(Vec::<String>::new())
        .sink(sink.clone())
        .build()
        .unwrap();
    let mut svc = tower::ServiceBuilder::new().layer(layer).service_fn(|req: Request| async move {
        let status: u16 = req.headers()["x-status"].to_str().unwrap().parse().unwrap();
        let mut res = Response::new(Body::empty());
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok::<_, std::convert::Infallible>(res)
    });
    for (tenant, route, status) in [
        ("acme", "/payments", 201),
        ("acme", "/payments", 201),
        ("acme", "/payments", 400),
        ("globex", "/payments", 500),
        ("globex", "/payments", 503),
        ("globex", "/payments/:id", 500),
    ] {
        svc.ready().await.unwrap().call(request(tenant, route, status)).await.unwrap();
    }

    let file = SloFile::parse(
        r#"
[service]
name = "payments"
namespace = "Payments"
[[slo]]
name = "availability"
kind = "availability"
objective = 99.9
[[slo]]
name = "create"
kind = "availability"
route = "/payments"
objective = 99.9
[[slo]]
name = "acme-create"
kind = "availability"
route = "/payments"
tenant = "acme"
objective = 99.9
[[slo]]
name = "create-latency"
kind = "latency"
route = "/payments"
objective = 99.0
threshold_ms = 60000
[[slo]]
name = "refunds"
kind = "availability"
route = "/payments/:id/refunds"
objective = 99.9
"#,
    )
    .unwrap();
    // Six requests are too few to page under the default minimum; this test is about what
    // lift's documents count, so any count may page.
    let mut evaluator = Evaluator::new(file).with_min_requests(1);
    let docs = sink.documents();
    // The cold start document, then one per request.
    assert_eq!(docs.len(), 7);
    for doc in &docs {
        assert!(evaluator.observe_line(doc).unwrap(), "{doc}");
    }
    let report = evaluator.finish();
    let counts: Vec<(&str, f64, f64, SloStatus)> =
        report.slos.iter().map(|s| (s.name.as_str(), s.requests, s.bad, s.status)).collect();
    // A 4xx is not an availability error; the cold start document declares no request
    // metric. The status is Firing or Healthy depending on the ratio: 3 of 6 bad fires every
    // rule at once.
    assert_eq!(
        counts,
        [
            ("availability", 6.0, 3.0, SloStatus::Firing),
            ("create", 5.0, 2.0, SloStatus::Firing),
            ("acme-create", 3.0, 0.0, SloStatus::Healthy),
            ("create-latency", 5.0, 0.0, SloStatus::Healthy),
            ("refunds", 0.0, 0.0, SloStatus::NoData),
        ]
    );
}
