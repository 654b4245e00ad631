//! The metrics payments publishes feed every SLO of `monitoring/slo/payments.toml`: the
//! service's own metrics configuration, through lift's metrics layer, into the local
//! evaluator that has the CloudWatch alarms' semantics. An SLO whose dimension set the
//! service does not publish would show "no data" here, as its alarm would in CloudWatch.

use std::sync::Arc;

use lift::middleware::metrics::MemorySink;
use lift::{Body, Context, MatchedRoute, Request, Response};
use lift_monitoring::evaluator::{Evaluator, SloStatus};
use lift_monitoring::slo::SloFile;
use tower::{Service, ServiceExt};

const SLO_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../monitoring/slo/payments.toml");

fn config() -> payments::Config {
    let vars =
        [("PAYMENTS_FINGERPRINT_KEY", "0123456789abcdef0123"), ("LIFT_DEV_TENANT_HEADER_INSECURE", "1")];
    payments::Config::from_env_vars(|name| {
        vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

fn request(tenant: &str, route: &str, status: u16) -> Request {
    let mut ctx = Context::new(format!("r-{tenant}-{status}"));
    ctx.set_tenant(tenant);
    let mut req = http::Request::builder().uri(route).header("x-status", status).body(Body::empty()).unwrap();
    req.extensions_mut().insert(ctx);
    req.extensions_mut().insert(MatchedRoute(Arc::from(route)));
    req
}

#[tokio::test]
async fn every_payments_slo_reads_metrics_the_service_publishes() {
    let sink = MemorySink::new();
    let layer = config().metrics.sink(sink.clone()).build().unwrap();
    let mut svc = tower::ServiceBuilder::new().layer(layer).service_fn(|req: Request| async move {
        let status: u16 = req.headers()["x-status"].to_str().unwrap().parse().unwrap();
        let mut res = Response::new(Body::empty());
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok::<_, std::convert::Infallible>(res)
    });
    for (tenant, route, status) in [
        ("acme", "/payments", 201),
        ("acme", "/payments", 500),
        ("globex", "/payments", 201),
        ("globex", "/payments/:id", 200),
    ] {
        svc.ready().await.unwrap().call(request(tenant, route, status)).await.unwrap();
    }
    let mut evaluator = Evaluator::new(SloFile::load(SLO_FILE).unwrap());
    for doc in sink.documents() {
        evaluator.observe_line(&doc).unwrap();
    }
    let report = evaluator.finish();
    let seen: Vec<(&str, f64, f64)> =
        report.slos.iter().map(|s| (s.name.as_str(), s.requests, s.bad)).collect();
    assert!(report.slos.iter().all(|s| s.status != SloStatus::NoData), "{seen:?}");
    // Service-wide: all four; per route: the three creates; per tenant and route: acme's two.
    assert_eq!(
        seen,
        [
            ("availability", 4.0, 1.0),
            ("create-availability", 3.0, 1.0),
            ("create-latency", 3.0, 0.0),
            ("acme-create-availability", 2.0, 1.0),
        ]
    );
}
