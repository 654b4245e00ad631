//! Fault injection (`lift::middleware::chaos`): off by default, each fault at its rate and
//! only then, the handler never run under an injected failure, its place inside the
//! timeout, configuration errors that name the variable, and the denylist on a real AWS SDK
//! client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use lift::app::AppService;
use lift::middleware::chaos::{ChaosBuilder, ChaosLayer, InjectedFault};
use lift::{App, Body, Request, Response};
use serde_json::Value;
use tower::{Layer, ServiceExt};

fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
}

fn layer_from(lookup: impl Fn(&str) -> Option<String>) -> ChaosLayer {
    ChaosBuilder::from_env_vars(lookup).and_then(ChaosBuilder::build).unwrap()
}

/// An app whose one handler counts its calls.
fn counting_app(chaos: ChaosLayer) -> (AppService, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let handler = move |_req: Request| {
        let calls = counted.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Response::default()
        }
    };
    (App::new().route(Method::GET, "/work", handler).layer(chaos).into_service(), calls)
}

async fn get(app: &AppService) -> Response {
    app.clone().oneshot(http::Request::get("/work").body(Body::empty()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn off_by_default_and_prepared_faults_wait_for_the_switch() {
    // Nothing set: nothing injected.
    let chaos = layer_from(env(&[]));
    let switch = chaos.switch();
    let (app, calls) = counting_app(chaos);
    for _ in 0..200 {
        assert_eq!(get(&app).await.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 200);
    assert_eq!(switch.stats().requests, 0, "an off layer draws nothing");

    // Configured but not enabled: prepared, still off, until switched on.
    let chaos = layer_from(env(&[("LIFT_CHAOS_ERROR_RATE", "1"), ("LIFT_CHAOS_ERROR_STATUS", "503")]));
    let switch = chaos.switch();
    let (app, calls) = counting_app(chaos);
    assert_eq!(get(&app).await.status(), StatusCode::OK);
    switch.enable();
    assert_eq!(get(&app).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    switch.disable();
    assert_eq!(get(&app).await.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the injected 503 did not run the handler");
    assert_eq!(switch.stats().errors, 1);
}

#[tokio::test]
async fn the_error_rate_is_kept_and_a_failed_request_never_reaches_the_handler() {
    const N: u64 = 4_000;
    let chaos = layer_from(env(&[
        ("LIFT_CHAOS_ENABLED", "true"),
        ("LIFT_CHAOS_ERROR_RATE", "0.2"),
        ("LIFT_CHAOS_SEED", "7"),
    ]));
    let switch = chaos.switch();
    let (app, calls) = counting_app(chaos);
    let mut failed = 0;
    for _ in 0..N {
        let res = get(&app).await;
        match res.status() {
            StatusCode::OK => {}
            StatusCode::INTERNAL_SERVER_ERROR => {
                failed += 1;
                let body: Value = serde_json::from_slice(res.body().as_bytes()).unwrap();
                assert_eq!(body["detail"], "fault injected by chaos");
            }
            other => panic!("unexpected {other}"),
        }
    }
    // 800 expected; the binomial standard deviation is about 25, so ±100 is four of them.
    assert!((700..=900).contains(&failed), "{failed} of {N} failed");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        N - failed,
        "the handler ran exactly for the requests that passed"
    );
    let stats = switch.stats();
    assert_eq!((stats.requests, stats.errors, stats.exceptions, stats.delayed), (N, failed, 0, 0));
}

#[tokio::test]
async fn an_injected_exception_is_the_handlers_failure() {
    let chaos = ChaosLayer::builder().exception(1.0).build().unwrap();
    let inner = tower::service_fn(|_req: http::Request<Body>| async {
        Ok::<_, std::convert::Infallible>(Response::default())
    });
    let err = chaos.layer(inner).oneshot(http::Request::new(Body::empty())).await.unwrap_err();
    assert!(err.is::<InjectedFault>(), "{err}");

    let (app, calls) = counting_app(ChaosLayer::builder().exception(1.0).build().unwrap());
    let res = get(&app).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8_lossy(res.body().as_bytes()).into_owned();
    assert!(!body.contains("chaos"), "an exception's message is not shown to callers: {body}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn latency_is_drawn_within_its_range() {
    let chaos = ChaosLayer::builder()
        .latency(Duration::from_millis(100), Duration::from_millis(400), 1.0)
        .seed(3)
        .build()
        .unwrap();
    let (app, calls) = counting_app(chaos);
    let mut seen = Vec::new();
    for _ in 0..50 {
        let start = tokio::time::Instant::now();
        assert_eq!(get(&app).await.status(), StatusCode::OK);
        seen.push(start.elapsed());
    }
    assert!(
        seen.iter().all(|d| (Duration::from_millis(100)..=Duration::from_millis(400)).contains(d)),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|d| *d < Duration::from_millis(200))
            && seen.iter().any(|d| *d > Duration::from_millis(300))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 50);

    // At rate 0 nothing is delayed, with the same range configured.
    let (app, _) = counting_app(
        ChaosLayer::builder().latency(Duration::from_secs(5), Duration::from_secs(5), 0.0).build().unwrap(),
    );
    let start = tokio::time::Instant::now();
    get(&app).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[cfg(feature = "resilience")]
#[tokio::test(start_paused = true)]
async fn the_timeout_sees_injected_latency_through_the_stack() {
    use lift::middleware::timeout::TimeoutLayer;
    let chaos = ChaosLayer::builder()
        .latency(Duration::from_millis(300), Duration::from_millis(300), 1.0)
        .build()
        .unwrap();
    // Named before the timeout: the preset still puts chaos inside it.
    let stack =
        lift::stack().chaos(chaos).timeout(TimeoutLayer::new(Duration::from_millis(100))).build().unwrap();
    let app =
        stack.apply(App::new().get("/work", |_req: Request| async { Response::default() })).into_service();
    let start = tokio::time::Instant::now();
    let res = get(&app).await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(start.elapsed(), Duration::from_millis(100));
}

#[test]
fn bad_configuration_names_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("LIFT_CHAOS_ENABLED", "yes")], "LIFT_CHAOS_ENABLED must be true or false"),
        (&[("LIFT_CHAOS_ENABLED", "true"), ("LIFT_CHAOS_EROR_RATE", "0.2")], "no fault is set"),
        (&[("LIFT_CHAOS_ERROR_RATE", "1.5")], "LIFT_CHAOS_ERROR_RATE must be a number between 0 and 1"),
        (&[("LIFT_CHAOS_ERROR_RATE", "-0.1")], "LIFT_CHAOS_ERROR_RATE must be a number between 0 and 1"),
        (&[("LIFT_CHAOS_ERROR_RATE", "NaN")], "LIFT_CHAOS_ERROR_RATE must be a number between 0 and 1"),
        (&[("LIFT_CHAOS_ERROR_RATE", "0.2"), ("LIFT_CHAOS_ERROR_STATUS", "200")], "LIFT_CHAOS_ERROR_STATUS"),
        (&[("LIFT_CHAOS_ERROR_STATUS", "503")], "LIFT_CHAOS_ERROR_STATUS needs LIFT_CHAOS_ERROR_RATE"),
        (&[("LIFT_CHAOS_LATENCY_MS", "400-100")], "LIFT_CHAOS_LATENCY_MS"),
        (&[("LIFT_CHAOS_LATENCY_MS", "300ms")], "LIFT_CHAOS_LATENCY_MS must be milliseconds"),
        (&[("LIFT_CHAOS_LATENCY_RATE", "0.5")], "LIFT_CHAOS_LATENCY_RATE needs LIFT_CHAOS_LATENCY_MS"),
        (&[("LIFT_CHAOS_EXCEPTION_RATE", "2")], "LIFT_CHAOS_EXCEPTION_RATE"),
        (&[("LIFT_CHAOS_DENYLIST", "https://api.example.com/v1")], "LIFT_CHAOS_DENYLIST"),
        (&[("LIFT_CHAOS_SEED", "seven")], "LIFT_CHAOS_SEED must be a whole number"),
    ];
    for (pairs, expected) in cases {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let lookup = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let err = ChaosBuilder::from_env_vars(lookup).and_then(ChaosBuilder::build).unwrap_err();
        assert_eq!(err.component(), "chaos");
        assert!(err.reason().contains(expected), "{pairs:?}: {err}");
    }
}

#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn the_denylist_stops_sdk_calls_before_they_are_sent() {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use lift::middleware::chaos::DeniedHost;

    // A listener that counts the connections it is offered, and answers none.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicU64::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let chaos = ChaosLayer::builder().deny_host("127.0.0.*").build().unwrap();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .interceptor(chaos.interceptor())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);

    let err = client.list_tables().send().await.unwrap_err();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut denied = None;
    while let Some(e) = source {
        denied = denied.or_else(|| e.downcast_ref::<DeniedHost>().map(|d| d.host().to_owned()));
        source = e.source();
    }
    assert_eq!(denied.as_deref(), Some("127.0.0.1"), "{err:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing was sent");
    assert_eq!(chaos.switch().stats().denied, 1);

    // Switched off, the same call goes out (and fails on the silent listener).
    chaos.switch().disable();
    let _ = client.list_tables().send().await.unwrap_err();
    assert!(connections.load(Ordering::SeqCst) >= 1, "the call reached the host once chaos was off");
    assert_eq!(chaos.switch().stats().denied, 1);
    assert!(chaos.switch().check_host("https://127.0.0.1:8000/").is_ok());
}

mod properties {
    use lift::middleware::chaos::Denylist;
    use proptest::prelude::*;

    proptest! {
        /// A pattern without `*` denies its own host, in any case and with any port, and
        /// nothing longer or shorter.
        #[test]
        fn a_plain_pattern_denies_exactly_its_host(host in "[a-z0-9][a-z0-9.-]{0,40}", port in 1u16..) {
            let deny = Denylist::parse(&host).unwrap();
            prop_assert!(deny.denies(&host.to_ascii_uppercase()));
            let url = format!("https://{host}:{port}/path");
            prop_assert!(deny.denies(&url));
            let longer = format!("{host}x");
            prop_assert!(!deny.denies(&longer));
            let shorter = &host[..host.len() - 1];
            prop_assert!(shorter.is_empty() || !deny.denies(shorter));
        }

        /// Matching never panics, whatever the pattern and the target.
        #[test]
        fn matching_never_panics(pattern in "[a-z0-9.*-]{1,20}", target in ".{0,60}") {
            if let Ok(deny) = Denylist::parse(&pattern) {
                let _ = deny.denies(&target);
            }
        }
    }
}
