//! The resilience and health layers mounted in an axum 0.8 Router, in a lambda_http-style
//! `tower::ServiceBuilder` stack, and in Lift's App.
#![cfg(all(feature = "resilience", feature = "health", feature = "lambda"))]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lift::middleware::bulkhead::BulkheadLayer;
use lift::middleware::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use lift::middleware::health::{check_fn, Check, HealthChecks, HealthLayer};
use lift::middleware::load_shed::LoadShedLayer;
use lift::middleware::retry::{Backoff, RetryLayer};
use lift::middleware::timeout::TimeoutLayer;
use lift::BoxError;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

fn checks() -> HealthChecks {
    HealthChecks::builder()
        .check(Check::critical("db", check_fn(|| async { Ok(()) })))
        .check(Check::non_critical("cache", check_fn(|| async { Err("cold".to_owned()) })))
        .build()
}

// ---------------------------------------------------------------- axum 0.8

mod axum_router {
    use super::*;
    use axum::body::Body;
    use axum::error_handling::HandleErrorLayer;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Router;

    /// axum needs infallible services: render layer errors with Lift's one mapping
    /// (503 + Retry-After for rejections, 504 for timeouts).
    async fn handle(err: BoxError) -> axum::response::Response {
        lift::Error::from_boxed(err).into_response().into_response()
    }

    fn request(path: &str) -> http::Request<Body> {
        http::Request::get(path).body(Body::empty()).unwrap()
    }

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }

    #[tokio::test(start_paused = true)]
    async fn layers_in_an_axum_router() {
        let router = Router::new()
            .route("/slow", get(slow))
            .route("/fast", get(|| async { "fast" }))
            .route("/boom", get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(handle))
                    .layer(LoadShedLayer::new())
                    .layer(
                        CircuitBreakerLayer::builder()
                            .failure_rate(1.0)
                            .minimum_calls(2)
                            .window(SlidingWindow::Calls(2))
                            .build()
                            .unwrap(),
                    )
                    .layer(BulkheadLayer::new(8))
                    .layer(TimeoutLayer::new(Duration::from_secs(1))),
            )
            .layer(HealthLayer::new(checks()));

        let res = router.clone().oneshot(request("/fast")).await.unwrap();
        assert_eq!(res.status(), 200);

        let start = Instant::now();
        let res = router.clone().oneshot(request("/slow")).await.unwrap();
        assert_eq!(res.status(), 504);
        assert_eq!(start.elapsed(), Duration::from_secs(1));

        let res = router.clone().oneshot(request("/health")).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap();
        assert!(std::str::from_utf8(&body).unwrap().contains(r#""status":"degraded""#));

        // The timeout and a 5xx fill the 2-call window with failures: the breaker opens and
        // the next call is a 503 with Retry-After.
        assert_eq!(router.clone().oneshot(request("/boom")).await.unwrap().status(), 500);
        let res = router.clone().oneshot(request("/fast")).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "30");
    }

    #[tokio::test(start_paused = true)]
    async fn bulkhead_in_an_axum_router_answers_503_with_retry_after() {
        let router = Router::new().route("/slow", get(slow)).layer(
            ServiceBuilder::new().layer(HandleErrorLayer::new(handle)).layer(
                BulkheadLayer::builder()
                    .max_concurrent(1)
                    .retry_after(Duration::from_secs(3))
                    .build()
                    .unwrap(),
            ),
        );
        let busy = tokio::spawn(router.clone().oneshot(request("/slow")));
        tokio::task::yield_now().await;
        let res = router.clone().oneshot(request("/slow")).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "3");
        assert_eq!(busy.await.unwrap().unwrap().status(), 200);
    }
}

// ---------------------------------------------------------------- lambda_http

mod lambda {
    use super::*;
    use lambda_http::{Body, Request, RequestExt, Response};

    /// A `lambda_http::Request` carrying the Lambda context with `left` until the deadline.
    fn request(path: &str, left: Duration) -> Request {
        let mut ctx = lambda_http::Context::default();
        let deadline = SystemTime::now() + left;
        ctx.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let req: Request = http::Request::get(path).body(Body::Empty).unwrap();
        req.with_lambda_context(ctx)
    }

    #[tokio::test(start_paused = true)]
    async fn layers_in_a_lambda_http_stack() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let handler = lambda_http::service_fn(move |req: Request| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                let res = match req.uri().path() {
                    // Fails once, then works: the retry layer hides the blip.
                    "/flaky" if n == 0 => Response::builder().status(503).body(Body::Empty)?,
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Response::builder().status(200).body(Body::from("late"))?
                    }
                    _ => Response::builder().status(200).body(Body::from("ok"))?,
                };
                Ok::<_, lambda_http::Error>(res)
            }
        });
        let stack = ServiceBuilder::new()
            .layer(HealthLayer::new(checks()))
            .layer(LoadShedLayer::new())
            .layer(CircuitBreakerLayer::builder().window(SlidingWindow::Calls(20)).build().unwrap())
            .layer(BulkheadLayer::builder().max_concurrent(16).per_tenant(4).build().unwrap())
            .layer(
                RetryLayer::builder()
                    .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_millis(100)))
                    .build()
                    .unwrap(),
            )
            .layer(TimeoutLayer::new(Duration::from_secs(20)))
            .service(handler);

        let res = stack.clone().oneshot(request("/flaky", Duration::from_secs(60))).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "retried once");

        let res = stack.clone().oneshot(request("/health/ready", Duration::from_secs(60))).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(matches!(res.body(), Body::Text(t) if t.contains(r#""status":"ok""#)));

        // The Lambda deadline (3 s left, 200 ms margin) comes before the 20 s timeout.
        let start = Instant::now();
        let err = stack.clone().oneshot(request("/slow", Duration::from_secs(3))).await.unwrap_err();
        assert!(err.is::<lift::middleware::timeout::Elapsed>());
        let took = start.elapsed();
        assert!(took <= Duration::from_millis(2800) && took > Duration::from_millis(2700), "{took:?}");
    }
}

// ---------------------------------------------------------------- Lift's App

mod app {
    use super::*;
    use lift::{App, Request, Response};

    fn request(path: &str) -> Request {
        http::Request::get(path).body(lift::Body::empty()).unwrap()
    }

    async fn slow(_req: Request) -> Response {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Response::default()
    }

    async fn status(app: &lift::app::AppService, path: &str) -> Response {
        let res: Result<Response, Infallible> = app.clone().oneshot(request(path)).await;
        res.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_and_health_in_the_app() {
        let app = App::new()
            .get("/slow", slow)
            .get("/fast", |_req: Request| async { Response::default() })
            .layer(TimeoutLayer::new(Duration::from_secs(1)))
            .layer(LoadShedLayer::new())
            .layer(HealthLayer::new(checks()))
            .into_service();
        assert_eq!(status(&app, "/fast").await.status(), 200);
        let res = status(&app, "/slow").await;
        assert_eq!(res.status(), 504);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(status(&app, "/health").await.status(), 200);
        assert_eq!(status(&app, "/health/live").await.status(), 200);
        assert_eq!(status(&app, "/nope").await.status(), 404, "other requests reach the router");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_in_the_app_retries_idempotent_requests() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let app = App::new()
            .get("/flaky", move |_req: Request| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        lift::Error::service_unavailable(1).into_response()
                    } else {
                        Response::default()
                    }
                }
            })
            .layer(RetryLayer::new())
            .into_service();
        assert_eq!(status(&app, "/flaky").await.status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn bulkhead_rejection_in_the_app_is_503_with_retry_after() {
        let app = App::new()
            .get("/slow", slow)
            .layer(
                BulkheadLayer::builder()
                    .max_concurrent(1)
                    .retry_after(Duration::from_secs(2))
                    .build()
                    .unwrap(),
            )
            .into_service();
        let busy = tokio::spawn({
            let app = app.clone();
            async move { status(&app, "/slow").await }
        });
        tokio::task::yield_now().await;
        let res = status(&app, "/slow").await;
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "2");
        assert_eq!(busy.await.unwrap().status(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn open_breaker_in_the_app_is_503_with_retry_after() {
        let app = App::new()
            .get("/boom", |_req: Request| async { lift::Error::internal("boom") })
            .layer(
                CircuitBreakerLayer::builder()
                    .minimum_calls(2)
                    .window(SlidingWindow::Calls(2))
                    .open_for(Duration::from_secs(7))
                    .build()
                    .unwrap(),
            )
            .into_service();
        for _ in 0..2 {
            assert_eq!(status(&app, "/boom").await.status(), 500);
        }
        let res = status(&app, "/boom").await;
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "7");
    }
}

// ---------------------------------------------------------------- layers that read the body

/// Threat detection, compliance and residency read the whole request body: they collect any
/// `http_body::Body` and hand the inner service its own body type back.
#[cfg(all(feature = "threat", feature = "compliance", feature = "protection"))]
mod body_reading {
    use super::*;
    use lift::security::compliance::{
        rule, ComplianceLayer, ComplianceRecorder, Facts, Framework, Phase, Severity,
    };
    use lift::security::protection::{ResidencyLayer, ResidencyRules};
    use lift::security::threat::ThreatLayer;

    const ATTACK: &str = r#"{"note": "<script>alert(1)</script>"}"#;
    const PLAIN: &str = r#"{"note": "lunch", "residency": "us"}"#;
    const EU: &str = r#"{"note": "lunch", "residency": "eu"}"#;

    fn residency() -> ResidencyLayer {
        ResidencyLayer::new(ResidencyRules::new().allow("eu", ["eu-west-1"])).body_field(Some("residency"))
    }

    /// Blocks any request whose body mentions `forbidden`: only a layer that read the body
    /// can fire it.
    fn compliance() -> ComplianceLayer {
        ComplianceLayer::with_rules(ComplianceRecorder::new(), Vec::new()).rule(rule(
            "TEST 1",
            Framework::Soc2,
            Severity::Critical,
            Phase::Request,
            "no forbidden word",
            |f: &Facts<'_>| {
                std::str::from_utf8(&f.request.body)
                    .is_ok_and(|b| b.contains("forbidden"))
                    .then(|| "forbidden word".to_owned())
            },
        ))
    }

    use axum::error_handling::HandleErrorLayer;
    use axum_router::handle as axum_router_handle;

    mod axum_router {
        use super::*;
        use axum::body::Body;
        use axum::response::IntoResponse;
        use axum::routing::post;
        use axum::Router;

        pub(super) async fn handle(err: BoxError) -> axum::response::Response {
            lift::Error::from_boxed(err).into_response().into_response()
        }

        async fn send(router: &Router, body: &'static str) -> (u16, String) {
            let req = http::Request::post("/echo").body(Body::from(body)).unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }

        #[tokio::test]
        async fn threat_compliance_and_residency_in_an_axum_router() {
            let router = Router::new()
                .route("/echo", post(|body: String| async move { body }))
                .layer(residency())
                .layer(ThreatLayer::new())
                .layer(ServiceBuilder::new().layer(HandleErrorLayer::new(handle)).layer(compliance()));

            assert_eq!(
                send(&router, PLAIN).await,
                (200, PLAIN.to_owned()),
                "the handler gets the body whole"
            );
            assert_eq!(send(&router, ATTACK).await.0, 403, "threat detection read the body");
            assert_eq!(send(&router, EU).await.0, 451, "residency read the body; no region here");
            assert_eq!(send(&router, r#"{"forbidden": 1}"#).await.0, 403, "compliance read the body");
        }
    }

    mod lambda {
        use super::*;
        use lambda_http::{Body, Request, Response};

        async fn send<S>(stack: &S, body: &'static str) -> (u16, String)
        where
            S: tower::Service<Request, Response = Response<Body>> + Clone,
            S::Error: std::fmt::Debug,
        {
            let req: Request = http::Request::post("/echo").body(Body::from(body)).unwrap();
            let res = stack.clone().oneshot(req).await.unwrap();
            let text = match res.body() {
                Body::Text(t) => t.clone(),
                Body::Binary(b) => String::from_utf8(b.clone()).unwrap(),
                Body::Empty => String::new(),
                _ => unreachable!(),
            };
            (res.status().as_u16(), text)
        }

        #[tokio::test]
        async fn threat_compliance_and_residency_in_a_lambda_http_stack() {
            let echo = lambda_http::service_fn(|req: Request| async move {
                let body = match req.into_body() {
                    Body::Text(t) => t.into_bytes(),
                    Body::Binary(b) => b,
                    _ => Vec::new(),
                };
                Ok::<_, lambda_http::Error>(Response::new(Body::Binary(body)))
            });
            let stack = ServiceBuilder::new()
                .layer(compliance())
                .layer(ThreatLayer::new())
                .layer(residency())
                .service(echo);

            assert_eq!(send(&stack, PLAIN).await, (200, PLAIN.to_owned()));
            assert_eq!(send(&stack, ATTACK).await.0, 403);
            assert_eq!(send(&stack, EU).await.0, 451);
            assert_eq!(send(&stack, r#"{"forbidden": 1}"#).await.0, 403);
        }
    }

    /// These layers buffer the whole body, so they bound it: 6 MiB by default (Lambda's
    /// payload limit), or the [`BodyLimit`] an outer layer put in the request. A larger body
    /// is a 413 problem: the handler never runs and compliance records nothing.
    mod body_limit {
        use super::*;
        use axum::body::Body;
        use axum::routing::post;
        use axum::{Extension, Router};
        use lift::security::threat::BodyLimit;

        const DEFAULT: usize = 6 * 1024 * 1024;

        /// A JSON body of exactly `len` bytes.
        fn json_of_len(len: usize) -> String {
            let body = format!(r#"{{"note":"{}"}}"#, "x".repeat(len - 11));
            assert_eq!(body.len(), len);
            body
        }

        /// A handler that counts its calls and answers the length of the body it got
        /// (read whole: axum's own extractors would apply their 2 MB default first).
        fn counting(calls: &Arc<AtomicU32>) -> Router {
            let seen = calls.clone();
            Router::new().route(
                "/echo",
                post(move |req: axum::extract::Request| {
                    seen.fetch_add(1, Ordering::SeqCst);
                    async move {
                        axum::body::to_bytes(req.into_body(), usize::MAX).await.unwrap().len().to_string()
                    }
                }),
            )
        }

        async fn send(router: &Router, body: Body) -> (u16, String, String) {
            let req =
                http::Request::post("/echo").header("content-type", "application/json").body(body).unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let kind =
                res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap();
            (status, kind, String::from_utf8(bytes.to_vec()).unwrap())
        }

        /// `len` bytes in 8 KiB chunks with no length given in advance.
        fn streamed(len: usize) -> Body {
            let body = json_of_len(len).into_bytes();
            let chunks: Vec<Result<Vec<u8>, Infallible>> =
                body.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
            Body::from_stream(futures_util::stream::iter(chunks))
        }

        /// In Lift's App the app's own limit is the one in force: a body the app admits
        /// (here 7 MiB under an 8 MiB `body_limit`) is not refused by a layer's 6 MiB
        /// default, and one over it is the app's 413.
        #[tokio::test]
        async fn in_the_app_the_apps_body_limit_is_the_layers_limit() {
            let app = lift::App::new()
                .group(
                    lift::RouteGroup::new("/notes")
                        .post("/", |req: lift::Request| async move {
                            lift::Response::new(lift::Body::from(req.body().len().to_string()))
                        })
                        // No rules: what is tested is only that it reads the body whole.
                        .layer(ComplianceLayer::with_rules(ComplianceRecorder::new(), Vec::new())),
                )
                .body_limit(8 * 1024 * 1024)
                .into_service();
            let send = |len: usize| {
                let app = app.clone();
                async move {
                    let req = http::Request::post("/notes")
                        .header("content-type", "application/json")
                        .body(lift::Body::from(json_of_len(len)))
                        .unwrap();
                    let res: Result<lift::Response, Infallible> = app.oneshot(req).await;
                    let res = res.unwrap();
                    (res.status().as_u16(), String::from_utf8_lossy(res.body().as_bytes()).into_owned())
                }
            };
            assert_eq!(send(7 * 1024 * 1024).await, (200, (7 * 1024 * 1024).to_string()));
            assert_eq!(send(8 * 1024 * 1024 + 1).await.0, 413);
        }

        #[tokio::test]
        async fn a_limit_set_outside_the_threat_layer_bounds_it() {
            let calls = Arc::new(AtomicU32::new(0));
            let router =
                counting(&calls).layer(ThreatLayer::new()).layer(Extension(BodyLimit::new(64 * 1024)));

            let (status, _, body) = send(&router, Body::from(json_of_len(64 * 1024))).await;
            assert_eq!((status, body.as_str()), (200, "65536"), "a body at the limit passes whole");
            assert_eq!(calls.load(Ordering::SeqCst), 1);

            for over in
                [Body::from(json_of_len(64 * 1024 + 1)), streamed(64 * 1024 + 1), streamed(1024 * 1024)]
            {
                let (status, kind, problem) = send(&router, over).await;
                assert_eq!(status, 413);
                assert_eq!(kind, "application/problem+json");
                assert!(problem.contains("the request body is larger than 65536 bytes"), "{problem}");
            }
            assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler never ran for them");
        }

        #[tokio::test]
        async fn compliance_refuses_a_body_over_the_default_and_records_nothing() {
            let recorder = ComplianceRecorder::new();
            let layer = ComplianceLayer::with_rules(recorder.clone(), Vec::new()).rule(rule(
                "TEST 1",
                Framework::Soc2,
                Severity::Critical,
                Phase::Request,
                "no forbidden word",
                |f: &Facts<'_>| {
                    std::str::from_utf8(&f.request.body)
                        .is_ok_and(|b| b.contains("forbidden"))
                        .then(|| "forbidden word".to_owned())
                },
            ));
            let calls = Arc::new(AtomicU32::new(0));
            let router = counting(&calls).layer(
                ServiceBuilder::new().layer(HandleErrorLayer::new(super::axum_router_handle)).layer(layer),
            );

            let (status, _, body) = send(&router, Body::from(json_of_len(DEFAULT))).await;
            assert_eq!((status, body), (200, DEFAULT.to_string()), "a body of exactly 6 MiB passes");
            let recorded = recorder.records();
            assert_eq!(recorded[0].applied, 1);

            let (status, kind, problem) = send(&router, Body::from(json_of_len(DEFAULT + 1))).await;
            assert_eq!((status, kind.as_str()), (413, "application/problem+json"));
            assert!(
                problem.contains(&format!("the request body is larger than {DEFAULT} bytes")),
                "{problem}"
            );
            let (status, ..) = send(&router, streamed(DEFAULT + 1)).await;
            assert_eq!(status, 413);
            assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler never ran for them");
            assert_eq!(recorder.records(), recorded, "nothing recorded for them");
        }

        #[tokio::test]
        async fn residency_and_threat_in_a_lambda_http_stack_refuse_a_body_over_the_default() {
            use lambda_http::{Body, Request, Response};
            let calls = Arc::new(AtomicU32::new(0));
            let seen = calls.clone();
            let handler = lambda_http::service_fn(move |req: Request| {
                seen.fetch_add(1, Ordering::SeqCst);
                let len = match req.body() {
                    Body::Text(t) => t.len(),
                    Body::Binary(b) => b.len(),
                    _ => 0,
                };
                async move { Ok::<_, lambda_http::Error>(Response::new(Body::from(len.to_string()))) }
            });
            let residency_only = ServiceBuilder::new().layer(residency()).service(handler.clone());
            let threat_only = ServiceBuilder::new().layer(ThreatLayer::new()).service(handler);
            let post = |len: usize| -> Request {
                http::Request::post("/echo").body(Body::from(json_of_len(len))).unwrap()
            };

            let res = residency_only.clone().oneshot(post(DEFAULT)).await.unwrap();
            assert_eq!(res.status(), 200, "a body of exactly 6 MiB passes");
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            for res in [
                residency_only.clone().oneshot(post(DEFAULT + 1)).await.unwrap(),
                threat_only.clone().oneshot(post(DEFAULT + 1)).await.unwrap(),
            ] {
                assert_eq!(res.status(), 413);
                assert_eq!(res.headers()["content-type"], "application/problem+json");
            }
            assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler never ran for them");
        }
    }
}

// ---------------------------------------------------------------- idempotency

/// Idempotency reads the whole body (its hash is part of the record) and answers its own
/// refusals. These checks need no store: a request without a principal is refused before
/// the store is asked, other methods pass through, and an unreachable store fails closed.
/// (The records themselves are tested against DynamoDB Local in the harness.)
#[cfg(feature = "idempotency")]
mod idempotency {
    use super::*;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use lift::middleware::idempotency::IdempotencyLayer;
    use lift::{Context, Principal};

    fn layer() -> IdempotencyLayer {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        IdempotencyLayer::builder()
            .client(aws_sdk_dynamodb::Client::from_conf(config))
            .table("idempotency")
            .build()
            .unwrap()
    }

    fn with_principal<B>(mut req: http::Request<B>) -> http::Request<B> {
        let mut ctx = Context::new("req-1");
        ctx.set_principal(Principal::new("user-1", "acme"));
        req.extensions_mut().insert(ctx);
        req
    }

    #[tokio::test]
    async fn idempotency_in_an_axum_router() {
        use axum::body::Body;
        use axum::routing::{get, post};
        let router = axum::Router::new()
            .route("/pay", post(|body: String| async move { body }))
            .route("/pay/1", get(|| async { "read" }))
            .layer(layer());
        let send = |req: http::Request<Body>| {
            let router = router.clone();
            async move { router.oneshot(req).await.unwrap() }
        };
        let post_req =
            || http::Request::post("/pay").header("idempotency-key", "key-0001").body(Body::from("{}"));

        assert_eq!(send(post_req().unwrap()).await.status(), 401, "no principal: refused, nothing stored");
        assert_eq!(
            send(with_principal(post_req().unwrap())).await.status(),
            503,
            "the store is down: fail closed"
        );
        let res = send(http::Request::get("/pay/1").body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), 200, "GET is not made idempotent");
        assert_eq!(&axum::body::to_bytes(res.into_body(), 1024).await.unwrap()[..], b"read");
    }

    #[tokio::test]
    async fn idempotency_in_a_lambda_http_stack() {
        use lambda_http::{Body, Request, Response};
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let stack =
            ServiceBuilder::new().layer(layer()).service(lambda_http::service_fn(move |_req: Request| {
                seen.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, lambda_http::Error>(Response::new(Body::from("ok"))) }
            }));
        let post_req =
            || http::Request::post("/pay").header("idempotency-key", "key-0001").body(Body::from("{}"));

        let res = stack.clone().oneshot(post_req().unwrap()).await.unwrap();
        assert_eq!(res.status(), 401);
        let res = stack.clone().oneshot(with_principal(post_req().unwrap())).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "neither reached the handler");
        let res = stack.clone().oneshot(http::Request::get("/pay").body(Body::Empty).unwrap()).await.unwrap();
        assert_eq!((res.status().as_u16(), calls.load(Ordering::SeqCst)), (200, 1));
    }

    /// A keyed request with a body over the 6 MiB default is a 413 before the store is asked
    /// (it is down here: asking would be a 503), so no record is written and the handler
    /// never runs.
    #[tokio::test]
    async fn idempotency_refuses_a_body_over_the_default_before_the_store() {
        use lambda_http::{Body, Request, Response};
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let stack =
            ServiceBuilder::new().layer(layer()).service(lambda_http::service_fn(move |_req: Request| {
                seen.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, lambda_http::Error>(Response::new(Body::from("ok"))) }
            }));
        let huge = vec![b'x'; 6 * 1024 * 1024 + 1];
        let req = http::Request::post("/pay").header("idempotency-key", "key-0001").body(Body::Binary(huge));
        let res = stack.clone().oneshot(with_principal(req.unwrap())).await.unwrap();
        assert_eq!(res.status(), 413);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
