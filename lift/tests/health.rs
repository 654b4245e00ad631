//! Health checks and the /health endpoints, under tokio's paused clock.
#![cfg(feature = "health")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lift::middleware::health::{
    check_fn, Check, CheckStatus, HealthCheck, HealthChecks, HealthLayer, HealthReport, Status,
};
use lift::{Body, Request, Response};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// A check that sleeps, then answers; counts its runs.
#[derive(Clone)]
struct Sleepy {
    takes: Duration,
    answer: Result<(), &'static str>,
    runs: Arc<AtomicU32>,
}

impl Sleepy {
    fn new(takes: Duration, answer: Result<(), &'static str>) -> Self {
        Self { takes, answer, runs: Arc::new(AtomicU32::new(0)) }
    }
}

impl HealthCheck for Sleepy {
    async fn check(&self) -> Result<(), String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.takes).await;
        self.answer.map_err(str::to_owned)
    }
}

fn ok() -> Sleepy {
    Sleepy::new(Duration::from_millis(10), Ok(()))
}

fn failing(msg: &'static str) -> Sleepy {
    Sleepy::new(Duration::from_millis(10), Err(msg))
}

/// The app behind the health layer: answers 418 so pass-through is visible.
fn app() -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone {
    tower::service_fn(|_req: Request| async {
        let mut res = Response::new(Body::from("app"));
        *res.status_mut() = http::StatusCode::IM_A_TEAPOT;
        Ok(res)
    })
}

async fn fetch(
    svc: &(impl Service<Request, Response = Response, Error = Infallible> + Clone),
    method: &str,
    path: &str,
) -> (u16, Vec<u8>) {
    let req = http::Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    (res.status().as_u16(), res.body().as_bytes().to_vec())
}

async fn report(
    svc: &(impl Service<Request, Response = Response, Error = Infallible> + Clone),
    path: &str,
) -> (u16, HealthReport) {
    let (code, body) = fetch(svc, "GET", path).await;
    (code, serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body:?}")))
}

#[tokio::test(start_paused = true)]
async fn checks_run_in_parallel() {
    let checks = HealthChecks::builder()
        .check(Check::critical("a", Sleepy::new(Duration::from_secs(1), Ok(()))))
        .check(Check::critical("b", Sleepy::new(Duration::from_secs(1), Ok(()))))
        .build();
    let start = Instant::now();
    let report = checks.report().await;
    assert_eq!(start.elapsed(), Duration::from_secs(1), "two 1 s checks take 1 s, not 2");
    assert_eq!(report.status, Status::Ok);
    assert!(report.checks.iter().all(|c| c.duration_ms == 1000 && c.status == CheckStatus::Ok));
}

#[tokio::test(start_paused = true)]
async fn each_check_has_its_own_timeout() {
    let checks = HealthChecks::builder()
        .default_timeout(Duration::from_secs(2))
        .check(
            Check::critical("quick-timeout", Sleepy::new(Duration::from_secs(10), Ok(())))
                .timeout(Duration::from_millis(500)),
        )
        .check(Check::non_critical("default-timeout", Sleepy::new(Duration::from_secs(10), Ok(()))))
        .check(Check::non_critical("fast", ok()))
        .build();
    let start = Instant::now();
    let report = checks.report().await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let by_name = |n: &str| report.checks.iter().find(|c| c.name == n).unwrap().clone();
    assert_eq!(by_name("quick-timeout").status, CheckStatus::Timeout);
    assert_eq!(by_name("quick-timeout").duration_ms, 500);
    assert_eq!(by_name("quick-timeout").error.as_deref(), Some("no answer within 500 ms"));
    assert_eq!(by_name("default-timeout").duration_ms, 2000);
    assert_eq!(by_name("fast").status, CheckStatus::Ok);
    assert_eq!(report.status, Status::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_health_calls_runs_the_checks_once_per_ttl() {
    let check = Sleepy::new(Duration::from_millis(200), Ok(()));
    let runs = check.runs.clone();
    let checks =
        HealthChecks::builder().check(Check::critical("db", check)).cache_ttl(Duration::from_secs(5)).build();
    let svc = HealthLayer::new(checks).layer(app());

    let burst: Vec<_> = (0..20).map(|_| tokio::spawn(svc.clone().oneshot(get("/health")))).collect();
    for call in burst {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one run served the burst");
    // /health/ready answers from the same fresh results.
    assert_eq!(report(&svc, "/health/ready").await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    tokio::time::sleep(Duration::from_secs(5)).await;
    report(&svc, "/health").await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the cache expired after its TTL");
}

fn get(path: &str) -> Request {
    http::Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_failing_non_critical_check_degrades_but_stays_ready() {
    let checks = HealthChecks::builder()
        .check(Check::critical("dynamodb", ok()))
        .check(Check::non_critical("fx-rates", failing("rates feed unreachable")))
        .build();
    let svc = HealthLayer::new(checks).layer(app());

    let (code, full) = report(&svc, "/health").await;
    assert_eq!((code, full.status), (200, Status::Degraded));
    let fx = full.checks.iter().find(|c| c.name == "fx-rates").unwrap();
    assert_eq!((fx.status, fx.critical), (CheckStatus::Failed, false));
    assert_eq!(fx.error.as_deref(), Some("rates feed unreachable"));

    let (code, ready) = report(&svc, "/health/ready").await;
    assert_eq!((code, ready.status), (200, Status::Ok));
    assert!(ready.checks.iter().all(|c| c.critical), "readiness looks at critical checks only");
    assert_eq!(fetch(&svc, "GET", "/health/live").await, (200, br#"{"status":"ok"}"#.to_vec()));
}

#[tokio::test(start_paused = true)]
async fn a_failing_critical_check_makes_the_service_unhealthy_but_alive() {
    let db = failing("DescribeTable payments failed: ResourceNotFoundException");
    let db_runs = db.runs.clone();
    let checks = HealthChecks::builder()
        .check(Check::critical("dynamodb", db))
        .check(Check::non_critical("cache", ok()))
        .cache_ttl(Duration::ZERO)
        .build();
    let svc = HealthLayer::new(checks).layer(app());

    let (code, full) = report(&svc, "/health").await;
    assert_eq!((code, full.status), (503, Status::Unhealthy));
    let (code, ready) = report(&svc, "/health/ready").await;
    assert_eq!((code, ready.status), (503, Status::Unhealthy));
    let runs_before_live = db_runs.load(Ordering::SeqCst);
    assert_eq!(fetch(&svc, "GET", "/health/live").await.0, 200);
    assert_eq!(db_runs.load(Ordering::SeqCst), runs_before_live, "liveness runs no checks");
}

#[tokio::test(start_paused = true)]
async fn all_checks_passing_is_ok_and_the_json_names_every_field() {
    let checks = HealthChecks::builder().check(Check::critical("db", ok())).build();
    let svc = HealthLayer::new(checks).layer(app());
    let (code, body) = fetch(&svc, "GET", "/health").await;
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"status": "ok", "checks": [
            {"name": "db", "status": "ok", "critical": true, "duration_ms": 10}
        ]})
    );
}

#[tokio::test(start_paused = true)]
async fn other_requests_pass_through() {
    let svc = HealthLayer::new(HealthChecks::builder().build()).layer(app());
    assert_eq!(fetch(&svc, "GET", "/payments").await, (418, b"app".to_vec()));
    assert_eq!(fetch(&svc, "GET", "/healthz").await.0, 418);
    assert_eq!(fetch(&svc, "GET", "/health/other").await.0, 418);
    assert_eq!(fetch(&svc, "POST", "/health").await.0, 418, "only GET and HEAD are answered");
    let (code, body) = fetch(&svc, "HEAD", "/health").await;
    assert_eq!((code, body.len()), (200, 0), "HEAD has no body");
}

#[tokio::test(start_paused = true)]
async fn endpoints_move_with_the_base_path_and_panics_are_failures() {
    let checks = HealthChecks::builder()
        .check(Check::non_critical("boom", check_fn(|| async { panic!("check bug") })))
        .build();
    let svc = HealthLayer::new(checks).base_path("/internal/health/").layer(app());
    assert_eq!(fetch(&svc, "GET", "/health").await.0, 418);
    let (code, report) = report(&svc, "/internal/health").await;
    assert_eq!((code, report.status), (200, Status::Degraded));
    assert_eq!(report.checks[0].error.as_deref(), Some("the check panicked"));
}

#[tokio::test(start_paused = true)]
async fn health_routes_in_a_lift_app() {
    let checks = HealthChecks::builder()
        .check(Check::critical("db", ok()))
        .check(Check::non_critical("cache", failing("cold")))
        .build();
    let app = lift::App::new().group(checks.routes("/health")).into_service();
    let (code, full) = report(&app, "/health").await;
    assert_eq!((code, full.status), (200, Status::Degraded));
    assert_eq!(report(&app, "/health/ready").await.0, 200);
    assert_eq!(fetch(&app, "GET", "/health/live").await.0, 200);
}
