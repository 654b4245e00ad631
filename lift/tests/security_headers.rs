//! Security headers and CORS on a Lift app: defaults, the sensitive-route predicate,
//! preflights, and origins that must not get access.
#![cfg(feature = "security-headers")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, StatusCode};
use lift::app::AppService;
use lift::middleware::security_headers::{CorsPolicy, SecurityHeadersLayer, DEFAULT_HSTS};
use lift::{App, Body, Request, Response};
use tower::ServiceExt;

async fn payments(_req: Request) -> Response {
    http::Response::builder().status(StatusCode::CREATED).body(Body::from(r#"{"id":"p_1"}"#)).unwrap()
}

async fn public_page(_req: Request) -> Response {
    http::Response::builder()
        .header(header::CACHE_CONTROL, "public, max-age=60")
        .header(header::CONTENT_SECURITY_POLICY, "default-src 'self'; frame-ancestors 'self'")
        .header(header::X_FRAME_OPTIONS, "SAMEORIGIN")
        .body(Body::from("hello"))
        .unwrap()
}

fn app() -> App {
    App::new().post("/payments", payments).get("/payments", payments).get("/public", public_page)
}

async fn call(svc: &AppService, req: Request) -> Response {
    svc.clone().oneshot(req).await.unwrap()
}

fn get(uri: &str) -> Request {
    http::Request::builder().uri(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn every_response_gets_the_defaults() {
    let svc = app().layer(SecurityHeadersLayer::new()).into_service();
    for req in [get("/payments"), get("/no-such-route")] {
        let res = call(&svc, req).await;
        let h = res.headers();
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], DEFAULT_HSTS);
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], "max-age=63072000; includeSubDomains; preload");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "frame-ancestors 'none'");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store", "API responses are not cached by default");
    }
}

#[tokio::test]
async fn the_sensitive_predicate_limits_no_store() {
    let layer = SecurityHeadersLayer::builder()
        .no_store_when(|head| head.uri.path().starts_with("/payments"))
        .referrer_policy("strict-origin")
        .hsts(Duration::from_secs(31_536_000), true, false)
        .build()
        .unwrap();
    let svc = app().layer(layer).into_service();

    let payments = call(&svc, get("/payments")).await;
    assert_eq!(payments.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(payments.headers()[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000; includeSubDomains");
    assert_eq!(payments.headers()[header::REFERRER_POLICY], "strict-origin");

    let public = call(&svc, get("/public")).await;
    assert_eq!(public.headers()[header::CACHE_CONTROL], "public, max-age=60", "not sensitive: the handler's");
    assert_eq!(
        public.headers()[header::CONTENT_SECURITY_POLICY],
        "default-src 'self'; frame-ancestors 'self'",
        "a handler's own CSP is kept"
    );
    assert_eq!(public.headers()[header::X_FRAME_OPTIONS], "DENY", "framing is always denied");
}

#[tokio::test]
async fn unsafe_or_malformed_settings_are_refused_at_build() {
    assert!(SecurityHeadersLayer::builder().hsts(Duration::from_secs(3600), true, true).build().is_err());
    assert!(SecurityHeadersLayer::builder()
        .hsts(Duration::from_secs(63_072_000), false, true)
        .build()
        .is_err());
    assert!(SecurityHeadersLayer::builder().referrer_policy("bad\nvalue").build().is_err());
    let res = call(
        &app()
            .layer(SecurityHeadersLayer::builder().without_hsts().without_no_store().build().unwrap())
            .into_service(),
        get("/payments"),
    )
    .await;
    assert!(!res.headers().contains_key(header::STRICT_TRANSPORT_SECURITY));
    assert!(!res.headers().contains_key(header::CACHE_CONTROL));
}

fn cors_app(calls: Arc<AtomicUsize>) -> AppService {
    let cors = CorsPolicy::new()
        .allow_origins(["https://app.example.com"])
        .allow_methods([Method::GET, Method::POST])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
        .build()
        .unwrap();
    let counted = move |req: Request| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            payments(req).await
        }
    };
    App::new().post("/payments", counted).layer(SecurityHeadersLayer::new()).layer(cors).into_service()
}

fn from_origin(method: Method, origin: &str) -> http::request::Builder {
    http::Request::builder().method(method).uri("/payments").header(header::ORIGIN, origin)
}

#[tokio::test]
async fn listed_origins_get_access_with_credentials() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = cors_app(calls.clone());
    let res =
        call(&svc, from_origin(Method::POST, "https://app.example.com").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    let vary: Vec<_> =
        res.headers().get_all(header::VARY).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");
    let exposed = res.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap();
    assert!(exposed.contains("idempotent-replayed") && exposed.contains("ratelimit-remaining"), "{exposed}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn other_origins_get_no_allow_origin() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = cors_app(calls);
    for origin in
        ["https://evil.example", "https://app.example.com.evil.example", "null", "http://app.example.com"]
    {
        let res = call(&svc, from_origin(Method::POST, origin).body(Body::empty()).unwrap()).await;
        assert!(!res.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN), "{origin} got access");
        let preflight = call(
            &svc,
            from_origin(Method::OPTIONS, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert!(!preflight.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN), "{origin} preflight");
    }
}

#[tokio::test]
async fn preflights_are_answered_without_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = cors_app(calls.clone());
    let res = call(
        &svc,
        from_origin(Method::OPTIONS, "https://app.example.com")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type, idempotency-key")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET,POST");
    let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
    assert!(allowed.contains("idempotency-key") && allowed.contains("content-type"), "{allowed}");
    assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a preflight never reaches the handler");
}

#[test]
fn wildcards_with_credentials_are_refused() {
    let err = CorsPolicy::new().allow_any_origin().allow_credentials(true).build().unwrap_err();
    assert!(err.to_string().contains("credentials"), "{err}");
    assert!(CorsPolicy::new().mirror_origin().allow_credentials(true).build().is_err());
    assert!(CorsPolicy::new().allow_origins(["*"]).build().is_err());
    assert!(CorsPolicy::new().allow_origins(["https://app.example.com/"]).build().is_err());
    assert!(CorsPolicy::new().allow_origins(Vec::<String>::new()).build().is_err());
    assert!(CorsPolicy::new().allow_any_origin().build().is_ok(), "a public API without credentials may");
}
