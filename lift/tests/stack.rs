//! The recommended stack, mounted through the `lift::stack()` preset: the per-tenant layers
//! see the tenant the JWT layer sets, a caller without the route's scope is refused before
//! idempotency or audit run, and idempotency runs innermost, after threat detection and
//! compliance and inside the audit trail. (A replay refused for a revoked token is in
//! `harness/tests/idempotency.rs`, on DynamoDB Local.)

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use http::Method;
use jsonwebtoken::{EncodingKey, Header};
use lift::app::AppService;
use lift::middleware::auth::{require_scope, Issuer, JwtLayer};
use lift::middleware::bulkhead::BulkheadLayer;
use lift::middleware::circuit_breaker::{CircuitBreakerLayer, State};
use lift::middleware::idempotency::IdempotencyLayer;
use lift::security::audit::{AuditLayer, AuditTrail};
use lift::{App, Body, Request, Response, RouteGroup};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tower::ServiceExt;

const ISSUER: &str = "https://id.test.example";
const SECRET: &[u8] = b"a-test-secret-of-thirty-two-bytes!";

fn jwt() -> JwtLayer {
    JwtLayer::builder().issuer(Issuer::hs256(ISSUER, SECRET.to_vec()).any_audience()).build().unwrap()
}

fn token(tenant: &str, scope: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({ "iss": ISSUER, "sub": "user-1", "iat": now, "exp": now + 600, "tenant_id": tenant, "scope": scope });
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn call(app: &AppService, method: Method, path: &str, token: &str, hold: bool) -> Response {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", "key-0001");
    if hold {
        req = req.header("x-hold", "1");
    }
    app.clone().oneshot(req.body(Body::from("{}")).unwrap()).await.unwrap()
}

fn problem_type(res: &Response) -> String {
    let body: Value = serde_json::from_slice(res.body().as_bytes()).unwrap();
    body["type"].as_str().unwrap_or_default().to_owned()
}

/// A handler that, for requests with `x-hold`, waits until released.
#[derive(Clone, Default)]
struct Held {
    entered: Arc<Notify>,
    release: Arc<Notify>,
    calls: Arc<AtomicU32>,
}

impl Held {
    fn route(
        &self,
    ) -> impl Fn(Request) -> futures_util::future::BoxFuture<'static, Response> + Clone + Send + Sync {
        let held = self.clone();
        move |req: Request| {
            let held = held.clone();
            Box::pin(async move {
                held.calls.fetch_add(1, Ordering::SeqCst);
                if req.headers().contains_key("x-hold") {
                    held.entered.notify_one();
                    held.release.notified().await;
                }
                Response::default()
            })
        }
    }
}

#[tokio::test]
async fn per_tenant_layers_in_the_preset_see_the_jwt_tenant() {
    let held = Held::default();
    let bulkhead = BulkheadLayer::builder().per_tenant(1).build().unwrap();
    let breaker = CircuitBreakerLayer::per_tenant().build().unwrap();
    // Named innermost-first on purpose: the preset puts them inside the JWT layer anyway.
    let stack = lift::stack()
        .tenant_bulkhead(bulkhead.clone())
        .tenant_breaker(breaker.clone())
        .jwt(jwt())
        .build()
        .unwrap();
    let app = stack.apply(App::new().post("/work", held.route())).into_service();

    let busy = tokio::spawn({
        let app = app.clone();
        async move { call(&app, Method::POST, "/work", &token("acme", ""), true).await }
    });
    held.entered.notified().await;

    let res = call(&app, Method::POST, "/work", &token("acme", ""), false).await;
    assert_eq!(res.status(), 503, "acme's one slot is taken");
    assert_eq!(problem_type(&res), "https://lift.dev/problems/bulkhead-full");
    let res = call(&app, Method::POST, "/work", &token("globex", ""), false).await;
    assert_eq!(res.status(), 200, "globex has its own compartment");

    held.release.notify_one();
    assert_eq!(busy.await.unwrap().status(), 200);
    assert_eq!(bulkhead.unscoped_requests(), 0, "every request reached the bulkhead with its tenant");
    assert_eq!(breaker.unscoped_requests(), 0);
    let breakers = breaker.breakers();
    assert_eq!(breakers.state(&Some("acme".into())), Some(State::Closed));
    assert_eq!(breakers.state(&Some("globex".into())), Some(State::Closed));
    assert_eq!(breakers.state(&None), None, "no request went through the tenantless breaker");
}

/// The mistake the preset prevents: with the bulkhead outside the JWT layer no request has a
/// tenant, so the per-tenant limit never applies; the layer counts what it missed.
#[tokio::test]
async fn the_bulkhead_mounted_outside_the_jwt_layer_sees_no_tenant() {
    let held = Held::default();
    let bulkhead = BulkheadLayer::builder().per_tenant(1).build().unwrap();
    let app = App::new().post("/work", held.route()).layer(jwt()).layer(bulkhead.clone()).into_service();

    let busy = tokio::spawn({
        let app = app.clone();
        async move { call(&app, Method::POST, "/work", &token("acme", ""), true).await }
    });
    held.entered.notified().await;
    let res = call(&app, Method::POST, "/work", &token("globex", ""), false).await;
    assert_eq!(res.status(), 200);
    let res = call(&app, Method::POST, "/work", &token("acme", ""), false).await;
    assert_eq!(res.status(), 200, "acme's second request passes: the limit of 1 is not applied");
    assert_eq!(bulkhead.unscoped_requests(), 3);
    held.release.notify_one();
    busy.await.unwrap();
}

/// A DynamoDB client for a port nothing listens on: any call fails at once.
fn unreachable_dynamodb() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

#[tokio::test]
async fn a_caller_without_the_scope_is_refused_before_idempotency_and_audit() {
    let client = unreachable_dynamodb();
    let trail = AuditTrail::builder().client(client.clone()).table("audit").build().unwrap();
    let idempotency = IdempotencyLayer::builder().client(client).table("idempotency").build().unwrap();
    let held = Held::default();
    let stack = lift::stack()
        .audit(AuditLayer::new(trail.clone()))
        .idempotency(idempotency)
        .jwt(jwt())
        .build()
        .unwrap();
    let payments =
        stack.guard(RouteGroup::new("/payments").post("/", held.route()), require_scope("payments:write"));
    let app = stack.apply(App::new().group(payments)).into_service();

    // Read scope only: 403 from the scope check. Had idempotency run first, it would have
    // called the unreachable store and answered 503; had audit run, an entry would wait.
    let res = call(&app, Method::POST, "/payments", &token("acme", "payments:read"), false).await;
    assert_eq!(res.status(), 403);
    assert_eq!(trail.pending(), 0, "audit never saw the refused request");
    assert_eq!(held.calls.load(Ordering::SeqCst), 0);

    // With the scope the request reaches idempotency, whose store is down: 503 before the
    // handler. The audit trail, outside idempotency, records the attempt (and, its own store
    // down too, answers its own 503).
    let res = call(&app, Method::POST, "/payments", &token("acme", "payments:write"), false).await;
    assert_eq!(res.status(), 503);
    assert_eq!(trail.pending(), 1, "the attempt idempotency refused is audited");
    assert_eq!(held.calls.load(Ordering::SeqCst), 0);

    // No token at all: the JWT layer refuses before the route group.
    let res =
        app.clone().oneshot(http::Request::post("/payments").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), 401);
}

/// Threat detection and compliance run before idempotency, whatever order the layers are
/// named in: a request they refuse never reaches an idempotency record, so a replay could
/// not skip them. Here the idempotency store is down: had idempotency run first, both
/// requests would have been answered its 503.
#[cfg(all(feature = "threat", feature = "compliance"))]
#[tokio::test]
async fn threat_detection_and_compliance_refuse_before_idempotency_is_asked() {
    use lift::security::compliance::{ComplianceLayer, ComplianceRecorder};
    use lift::security::threat::ThreatLayer;

    let client = unreachable_dynamodb();
    let trail = AuditTrail::builder().client(client.clone()).table("audit").build().unwrap();
    let idempotency = IdempotencyLayer::builder().client(client).table("idempotency").build().unwrap();
    let held = Held::default();
    // Named in the order the preset used to apply, idempotency outermost.
    let stack = lift::stack()
        .idempotency(idempotency)
        .compliance(ComplianceLayer::new(ComplianceRecorder::new()))
        .audit(AuditLayer::new(trail.clone()).degrade())
        .threat(ThreatLayer::new())
        .jwt(jwt())
        .build()
        .unwrap();
    let payments =
        stack.guard(RouteGroup::new("/payments").post("/", held.route()), require_scope("payments:write"));
    let app = stack.apply(App::new().group(payments)).into_service();
    let post = |body: &'static str, proto: &'static str| {
        http::Request::post("/payments")
            .header("authorization", format!("Bearer {}", token("acme", "payments:write")))
            .header("idempotency-key", "key-0002")
            .header("x-forwarded-proto", proto)
            .body(Body::from(body))
            .unwrap()
    };

    let res = app.clone().oneshot(post(r#"{"note":"1' OR '1'='1"}"#, "https")).await.unwrap();
    assert_eq!(res.status(), 403, "threat detection refuses the injection");
    assert_eq!(problem_type(&res), "https://lift.dev/problems/threat");
    assert_eq!(trail.pending(), 1, "and the audit trail, outside it, records the refusal");

    let res = app.clone().oneshot(post(r#"{"card_number":"4111 1111 1111 1111"}"#, "http")).await.unwrap();
    assert_eq!(res.status(), 403, "compliance refuses a card number over plain HTTP");
    let body: Value = serde_json::from_slice(res.body().as_bytes()).unwrap();
    assert!(body["detail"].as_str().unwrap_or_default().contains("PCI-DSS 4.2.1"), "{body}");

    let res = app.clone().oneshot(post(r#"{"amount":100}"#, "https")).await.unwrap();
    assert_eq!(res.status(), 503, "a clean request reaches idempotency, whose store is down");
    assert_eq!(problem_type(&res), "https://lift.dev/problems/idempotency-unavailable");
    assert_eq!(held.calls.load(Ordering::SeqCst), 0);
}
