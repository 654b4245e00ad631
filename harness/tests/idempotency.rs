//! `lift::middleware::idempotency` against a real DynamoDB Local, over a controllable
//! handler: replay, in-progress 409, payload mismatch 422, removal on failure and on any
//! refusal, scoping to the principal, the refusal of unauthenticated requests, sealed
//! responses, and lock expiry tied to the invocation deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use http::{Method, StatusCode};
use lift::middleware::idempotency::{IdempotencyLayer, KeySource, ResponseCipher};
use lift::{Body, BoxError, Context, Principal, Request, Response};
use lift_harness::dynamodb::DynamoDbLocal;
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceExt};

/// A boxed, sendable future.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

struct Env {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

async fn env() -> Env {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let table = local.create_table(&lift::store::tables::idempotency()).await.expect("create the table");
    Env { client: local.client().await, table }
}

impl Env {
    fn layer(&self) -> IdempotencyLayer {
        IdempotencyLayer::builder().client(self.client.clone()).table(&self.table).build().unwrap()
    }

    async fn items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        let out = self.client.scan().table_name(&self.table).consistent_read(true).send().await.unwrap();
        out.items().to_vec()
    }
}

/// What the handler does on one call, by call number (0-based).
type Behaviour = Arc<dyn Fn(usize) -> BoxFuture<'static, Result<Response, BoxError>> + Send + Sync>;

#[derive(Clone)]
struct Handler {
    calls: Arc<AtomicUsize>,
    behaviour: Behaviour,
}

impl Handler {
    fn new(
        behaviour: impl Fn(usize) -> BoxFuture<'static, Result<Response, BoxError>> + Send + Sync + 'static,
    ) -> Self {
        Self { calls: Arc::default(), behaviour: Arc::new(behaviour) }
    }

    /// Answers 201 with the call number as the payment id.
    fn created() -> Self {
        Self::new(|n| Box::pin(async move { Ok(created(n)) }))
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn created(n: usize) -> Response {
    http::Response::builder()
        .status(StatusCode::CREATED)
        .header("content-type", "application/json")
        .header("location", format!("/payments/p_{n}"))
        .header("set-cookie", "session=secret")
        .header("x-handler", "yes")
        .body(Body::from(format!(r#"{{"id":"p_{n}"}}"#)))
        .unwrap()
}

impl Service<Request> for Handler {
    type Response = Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        (self.behaviour)(n)
    }
}

fn request(method: Method, path: &str, tenant: &str, key: Option<&str>, body: &str) -> Request {
    request_by(method, path, Some(Principal::new("user-1", tenant)), key, body)
}

/// A request authenticated as `principal` (none: unauthenticated).
fn request_by(
    method: Method,
    path: &str,
    principal: Option<Principal>,
    key: Option<&str>,
    body: &str,
) -> Request {
    let mut builder =
        http::Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    let mut req = builder.body(Body::from(body.to_owned())).unwrap();
    let mut ctx = Context::new("req-1");
    if let Some(principal) = principal {
        ctx.set_principal(principal);
    }
    req.extensions_mut().insert(ctx);
    req
}

fn post(key: &str, body: &str) -> Request {
    request(Method::POST, "/payments", "acme", Some(key), body)
}

async fn send<S>(svc: &S, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = BoxError> + Clone,
{
    svc.clone().oneshot(req).await.unwrap()
}

fn body(res: &Response) -> String {
    String::from_utf8(res.body().as_bytes().to_vec()).unwrap()
}

fn problem_type(res: &Response) -> String {
    let problem: serde_json::Value = serde_json::from_slice(res.body().as_bytes()).unwrap();
    problem["type"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_repeat_gets_the_stored_response() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());

    let first = send(&svc, post("k-1", r#"{"amount":100}"#)).await;
    assert_eq!(first.status(), 201);
    assert!(!first.headers().contains_key("idempotent-replayed"));

    let replay = send(&svc, post("k-1", r#"{"amount":100}"#)).await;
    assert_eq!(handler.calls(), 1, "the handler ran once");
    assert_eq!(replay.status(), 201);
    assert_eq!(body(&replay), body(&first));
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.headers()["content-type"], "application/json");
    assert_eq!(replay.headers()["location"], first.headers()["location"]);
    assert!(!replay.headers().contains_key("set-cookie"), "cookies are never replayed");
    assert!(!replay.headers().contains_key("x-handler"), "only the listed headers are replayed");

    let items = env.items().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"].as_s().unwrap(), "COMPLETED");
    let expires: u64 = items[0]["expires_at"].as_n().unwrap().parse().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 86_390..=now + 86_410).contains(&expires), "completed records live 24 h by default");
}

#[tokio::test]
async fn a_request_in_progress_answers_409() {
    let env = env().await;
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let handler = Handler::new(move |n| {
        let (e, r) = (e.clone(), r.clone());
        Box::pin(async move {
            e.notify_one();
            r.notified().await;
            Ok(created(n))
        })
    });
    let svc = env.layer().layer(handler.clone());

    let first = tokio::spawn({
        let svc = svc.clone();
        async move { send(&svc, post("k-2", r#"{"amount":5}"#)).await }
    });
    entered.notified().await;

    let busy = send(&svc, post("k-2", r#"{"amount":5}"#)).await;
    assert_eq!(busy.status(), StatusCode::CONFLICT);
    assert_eq!(busy.headers()["content-type"], "application/problem+json");
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_eq!(problem_type(&busy), "https://lift.dev/problems/idempotency-key-in-use");

    // A different payload under the same key is a client error even while in progress.
    let other = send(&svc, post("k-2", r#"{"amount":6}"#)).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);

    release.notify_one();
    let first = first.await.unwrap();
    assert_eq!(first.status(), 201);
    let replay = send(&svc, post("k-2", r#"{"amount":5}"#)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(body(&replay), body(&first));
    assert_eq!(handler.calls(), 1);
}

#[tokio::test]
async fn another_payload_under_a_used_key_answers_422() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());
    assert_eq!(send(&svc, post("k-3", r#"{"amount":100}"#)).await.status(), 201);
    let reused = send(&svc, post("k-3", r#"{"amount":999}"#)).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(problem_type(&reused), "https://lift.dev/problems/idempotency-key-reused");
    assert_eq!(handler.calls(), 1);
}

#[tokio::test]
async fn a_failed_handler_removes_the_record_so_a_retry_runs() {
    let env = env().await;
    // Call 0 answers 500, call 1 fails with an error, call 2 succeeds.
    let handler = Handler::new(|n| {
        Box::pin(async move {
            match n {
                0 => Ok(lift::Error::internal("processor down").into_response()),
                1 => Err::<Response, BoxError>("connection reset".into()),
                _ => Ok(created(n)),
            }
        })
    });
    let svc = env.layer().layer(handler.clone());

    let failed = send(&svc, post("k-4", "{}")).await;
    assert_eq!(failed.status(), 500);
    assert!(env.items().await.is_empty(), "a 5xx removes the record");

    let err = svc.clone().oneshot(post("k-4", "{}")).await.unwrap_err();
    assert_eq!(err.to_string(), "connection reset", "the handler's error passes through");
    assert!(env.items().await.is_empty(), "an error removes the record");

    let ok = send(&svc, post("k-4", "{}")).await;
    assert_eq!(ok.status(), 201);
    assert!(!ok.headers().contains_key("idempotent-replayed"));
    assert_eq!(handler.calls(), 3);
    let replay = send(&svc, post("k-4", "{}")).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(handler.calls(), 3);
}

#[tokio::test]
async fn keys_are_scoped_by_tenant_and_route_and_only_post_patch_are_subject() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());
    let body = r#"{"amount":1}"#;
    for (tenant, path) in [("acme", "/payments"), ("globex", "/payments"), ("acme", "/payments/p_1/refunds")]
    {
        let res = send(&svc, request(Method::POST, path, tenant, Some("same-key"), body)).await;
        assert!(!res.headers().contains_key("idempotent-replayed"), "{tenant} {path}");
    }
    assert_eq!(handler.calls(), 3);
    let res = send(&svc, request(Method::PATCH, "/payments", "acme", Some("same-key"), body)).await;
    assert!(!res.headers().contains_key("idempotent-replayed"), "another method is another route");
    assert_eq!(handler.calls(), 4);

    for _ in 0..2 {
        let res = send(&svc, request(Method::GET, "/payments", "acme", Some("same-key"), "")).await;
        assert!(!res.headers().contains_key("idempotent-replayed"));
    }
    assert_eq!(handler.calls(), 6, "GET is not subject to idempotency");

    let res = send(&svc, request(Method::POST, "/payments", "acme", None, body)).await;
    assert_eq!(res.status(), 201, "without a key the request passes through");
    assert_eq!(handler.calls(), 7);
}

#[tokio::test]
async fn keys_are_checked_and_can_be_required() {
    let env = env().await;
    let handler = Handler::created();
    let layer = IdempotencyLayer::builder()
        .client(env.client.clone())
        .table(&env.table)
        .require_key(true)
        .build()
        .unwrap();
    let svc = layer.layer(handler.clone());
    let missing = send(&svc, request(Method::POST, "/payments", "acme", None, "{}")).await;
    assert_eq!(missing.status(), 400);
    let malformed = send(&svc, post("has spaces", "{}")).await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(problem_type(&malformed), "https://lift.dev/problems/invalid-idempotency-key");
    assert_eq!(handler.calls(), 0);
}

#[tokio::test]
async fn keys_can_come_from_json_fields() {
    let env = env().await;
    let handler = Handler::created();
    let layer = IdempotencyLayer::builder()
        .client(env.client.clone())
        .table(&env.table)
        .key_source(KeySource::json_fields(["/customer/id", "/reference"]))
        .build()
        .unwrap();
    let svc = layer.layer(handler.clone());
    let req = |body: &str| request(Method::POST, "/payments", "acme", None, body);
    let one = r#"{"customer":{"id":"c_1"},"reference":"order-9","amount":100}"#;
    assert_eq!(send(&svc, req(one)).await.status(), 201);
    let replay = send(&svc, req(one)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let changed = r#"{"customer":{"id":"c_1"},"reference":"order-9","amount":200}"#;
    assert_eq!(send(&svc, req(changed)).await.status(), 422);
    let other = r#"{"customer":{"id":"c_1"},"reference":"order-10","amount":100}"#;
    assert_eq!(send(&svc, req(other)).await.status(), 201);
    assert_eq!(handler.calls(), 2);
}

#[tokio::test]
async fn a_crashed_invocation_frees_its_lock_at_the_deadline() {
    let env = env().await;
    let handler = Handler::new(|n| {
        Box::pin(async move {
            if n == 0 {
                std::future::pending::<()>().await; // the invocation that never finishes
            }
            Ok(created(n))
        })
    });
    let svc = env.layer().layer(handler.clone());
    let with_deadline = |deadline: SystemTime| {
        let mut req = post("k-5", "{}");
        Context::of_mut(&mut req).unwrap().set_deadline(deadline);
        req
    };

    let deadline = SystemTime::now() + Duration::from_millis(1500);
    let crashed = tokio::spawn({
        let svc = svc.clone();
        let req = with_deadline(deadline);
        async move { send(&svc, req).await }
    });
    while handler.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    crashed.abort();

    let items = env.items().await;
    let expires: u64 = items[0]["expires_at"].as_n().unwrap().parse().unwrap();
    let deadline_secs = deadline.duration_since(UNIX_EPOCH).unwrap().as_secs_f64().ceil() as u64;
    assert_eq!(expires, deadline_secs, "the lock expires at the invocation's deadline");

    let retry = send(&svc, with_deadline(SystemTime::now() + Duration::from_secs(30))).await;
    assert_eq!(retry.status(), 409, "the lock holds until the deadline");

    // Real DynamoDB compares epoch seconds: wait past the deadline's second.
    let wait = UNIX_EPOCH + Duration::from_secs(expires + 1) + Duration::from_millis(50);
    tokio::time::sleep(wait.duration_since(SystemTime::now()).unwrap_or_default()).await;
    let retry = send(&svc, with_deadline(SystemTime::now() + Duration::from_secs(30))).await;
    assert_eq!(retry.status(), 201, "the expired lock is taken over");
    assert_eq!(handler.calls(), 2);
}

#[tokio::test]
async fn an_expired_completed_record_is_not_replayed() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());
    assert_eq!(send(&svc, post("k-6", "{}")).await.status(), 201);
    // DynamoDB deletes expired items lazily (within days): the layer must not replay them.
    let pk = env.items().await[0]["pk"].clone();
    env.client
        .update_item()
        .table_name(&env.table)
        .key("pk", pk)
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N("1000".into()))
        .send()
        .await
        .unwrap();
    let again = send(&svc, post("k-6", "{}")).await;
    assert_eq!(again.status(), 201);
    assert!(!again.headers().contains_key("idempotent-replayed"));
    assert_eq!(handler.calls(), 2);
}

#[tokio::test]
async fn dynamodb_down_fails_closed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = lift_harness::dynamodb::client_for(&format!("http://127.0.0.1:{port}"), "us-east-1");
    let handler = Handler::created();
    let svc = IdempotencyLayer::builder().client(client).table("t").build().unwrap().layer(handler.clone());
    let res = send(&svc, post("k-7", "{}")).await;
    assert_eq!(res.status(), 503);
    assert_eq!(handler.calls(), 0, "never run a payment that cannot be made idempotent");
}

/// Answers `status` on the first call and 201 on every later one.
fn refusing_once(status: StatusCode) -> Handler {
    Handler::new(move |n| {
        Box::pin(async move {
            if n == 0 {
                Ok(lift::Error::new(status).with_detail("refused").into_response())
            } else {
                Ok(created(n))
            }
        })
    })
}

#[tokio::test]
async fn no_refusal_or_validation_error_is_stored_or_replayed() {
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
        StatusCode::CONFLICT,
        StatusCode::UNPROCESSABLE_ENTITY,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let env = env().await;
        let handler = refusing_once(status);
        let svc = env.layer().layer(handler.clone());
        let refused = send(&svc, post("k-refused", r#"{"amount":1}"#)).await;
        assert_eq!(refused.status(), status);
        assert!(env.items().await.is_empty(), "a {status} leaves no record");
        let retry = send(&svc, post("k-refused", r#"{"amount":1}"#)).await;
        assert_eq!(retry.status(), 201, "the retry after a {status} runs for real");
        assert!(!retry.headers().contains_key("idempotent-replayed"));
        assert_eq!(handler.calls(), 2);
    }
}

#[tokio::test]
async fn keys_are_scoped_to_the_principal_not_only_the_tenant() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());
    let body = r#"{"amount":100}"#;
    let alice = || Some(Principal::new("alice", "acme"));
    let bob = || Some(Principal::new("bob", "acme"));
    let first = send(&svc, request_by(Method::POST, "/payments", alice(), Some("k-shared"), body)).await;
    assert_eq!(first.status(), 201);
    // Bob of the same tenant sends Alice's key and body: he must not get her answer.
    let other = send(&svc, request_by(Method::POST, "/payments", bob(), Some("k-shared"), body)).await;
    assert!(!other.headers().contains_key("idempotent-replayed"), "another principal's answer replayed");
    assert_ne!(self::body(&other), self::body(&first));
    assert_eq!(handler.calls(), 2);
    // Alice still gets her own.
    let again = send(&svc, request_by(Method::POST, "/payments", alice(), Some("k-shared"), body)).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(self::body(&again), self::body(&first));
    assert_eq!(handler.calls(), 2);
}

/// Two trusted issuers may both have a user `alice` of tenant `acme` (a subject is unique
/// within its issuer only): the partner's `alice`, sending our `alice`'s key and body, runs
/// the handler and gets an answer of her own, not ours. Scoped by tenant and subject alone,
/// she was served the stored answer.
#[tokio::test]
async fn keys_are_scoped_to_the_issuer_of_the_subject() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());
    let body = r#"{"amount":100}"#;
    let ours = || Some(Principal::new("alice", "acme").with_issuer("https://id.example.com"));
    let partner = || Some(Principal::new("alice", "acme").with_issuer("https://partner.example.net"));
    let first = send(&svc, request_by(Method::POST, "/payments", ours(), Some("k-alice"), body)).await;
    assert_eq!(first.status(), 201);
    let other = send(&svc, request_by(Method::POST, "/payments", partner(), Some("k-alice"), body)).await;
    assert_eq!(other.status(), 201);
    assert!(!other.headers().contains_key("idempotent-replayed"), "another issuer's alice got ours");
    assert_ne!(self::body(&other), self::body(&first));
    assert_eq!(handler.calls(), 2);
    let again = send(&svc, request_by(Method::POST, "/payments", ours(), Some("k-alice"), body)).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(self::body(&again), self::body(&first));
    assert_eq!(handler.calls(), 2);
}

#[tokio::test]
async fn an_unauthenticated_request_is_refused_unless_anonymous_is_allowed() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());
    let res = send(&svc, request_by(Method::POST, "/payments", None, Some("k-anon"), "{}")).await;
    assert_eq!(res.status(), 401, "a layer mounted outside authentication refuses");
    assert_eq!(handler.calls(), 0);
    assert!(env.items().await.is_empty());

    let anonymous = IdempotencyLayer::builder()
        .client(env.client.clone())
        .table(&env.table)
        .allow_anonymous(true)
        .build()
        .unwrap()
        .layer(handler.clone());
    let first = send(&anonymous, request_by(Method::POST, "/payments", None, Some("k-anon"), "{}")).await;
    assert_eq!(first.status(), 201);
    let replay = send(&anonymous, request_by(Method::POST, "/payments", None, Some("k-anon"), "{}")).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    // An authenticated caller never shares the anonymous scope.
    let alice = Some(Principal::new("alice", "-"));
    let authed = send(&anonymous, request_by(Method::POST, "/payments", alice, Some("k-anon"), "{}")).await;
    assert!(!authed.headers().contains_key("idempotent-replayed"));
    assert_eq!(handler.calls(), 2);
}

/// XORs with a per-tenant byte; "erases" a tenant by forgetting it.
#[derive(Clone, Default)]
struct TestCipher {
    erased: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ResponseCipher for TestCipher {
    fn seal<'a>(&'a self, req: &'a Request, body: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, BoxError>> {
        let tenant = Context::of(req).and_then(Context::tenant).unwrap_or_default().to_owned();
        Box::pin(async move {
            assert!(!req.body().as_bytes().is_empty(), "the cipher sees the request body");
            Ok(body.iter().map(|b| b ^ 0x5a).chain(tenant.into_bytes()).collect())
        })
    }

    fn open<'a>(
        &'a self,
        tenant: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, BoxError>> {
        Box::pin(async move {
            if self.erased.lock().unwrap().iter().any(|t| t == tenant) {
                return Ok(None);
            }
            let body = sealed.strip_suffix(tenant.as_bytes()).ok_or("sealed for another tenant")?;
            Ok(Some(body.iter().map(|b| b ^ 0x5a).collect()))
        })
    }
}

#[tokio::test]
async fn sealed_responses_are_stored_sealed_and_an_erased_one_answers_410_without_rerunning() {
    let env = env().await;
    let handler = Handler::created();
    let cipher = TestCipher::default();
    let svc = IdempotencyLayer::builder()
        .client(env.client.clone())
        .table(&env.table)
        .response_cipher(cipher.clone())
        .build()
        .unwrap()
        .layer(handler.clone());
    let first = send(&svc, post("k-sealed", r#"{"amount":5}"#)).await;
    assert_eq!(first.status(), 201);
    let items = env.items().await;
    let stored = items[0]["response_body"].as_b().unwrap().as_ref().to_vec();
    assert!(
        !stored.windows(first.body().len()).any(|w| w == first.body().as_bytes()),
        "the body is stored sealed"
    );
    assert_eq!(items[0]["response_sealed"].as_bool().unwrap(), &true);

    let replay = send(&svc, post("k-sealed", r#"{"amount":5}"#)).await;
    assert_eq!(body(&replay), body(&first), "the replay is opened");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    cipher.erased.lock().unwrap().push("acme".into());
    let erased = send(&svc, post("k-sealed", r#"{"amount":5}"#)).await;
    assert_eq!(erased.status(), 410);
    assert_eq!(handler.calls(), 1, "an erased answer is never re-run");

    // A layer without the cipher fails closed on a sealed record rather than replay ciphertext.
    let plain = env.layer().layer(handler.clone());
    assert_eq!(send(&plain, post("k-sealed", r#"{"amount":5}"#)).await.status(), 503);
    assert_eq!(handler.calls(), 1);
}

/// A cipher whose sealing always fails (KMS unreachable, say).
struct BrokenCipher;

impl ResponseCipher for BrokenCipher {
    fn seal<'a>(&'a self, _req: &'a Request, _body: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, BoxError>> {
        Box::pin(async { Err("kms unreachable".into()) })
    }

    fn open<'a>(
        &'a self,
        _tenant: &'a str,
        _sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, BoxError>> {
        Box::pin(async { Err("kms unreachable".into()) })
    }
}

#[tokio::test]
async fn a_response_that_cannot_be_sealed_keeps_the_lock_so_a_retry_does_not_run_again() {
    let env = env().await;
    let handler = Handler::created();
    let svc = IdempotencyLayer::builder()
        .client(env.client.clone())
        .table(&env.table)
        .response_cipher(BrokenCipher)
        .build()
        .unwrap()
        .layer(handler.clone());
    let first = send(&svc, post("k-unsealed", r#"{"amount":9}"#)).await;
    assert_eq!(first.status(), 201, "the caller still gets the answer");
    let items = env.items().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"].as_s().unwrap(), "IN_PROGRESS", "nothing stored in clear");
    assert!(!items[0].contains_key("response_body"));
    let retry = send(&svc, post("k-unsealed", r#"{"amount":9}"#)).await;
    assert_eq!(retry.status(), 409, "the retry waits for the lock instead of charging again");
    assert_eq!(handler.calls(), 1);
}

/// The audit layer answers 503 when it cannot store the entry of a request whose handler
/// already ran. Behind idempotency, that 503 must not free the key: the retry replays the
/// handler's own answer instead of running the operation (a refund) a second time. A
/// handler that refused (4xx) changed nothing, so its retry still runs.
#[tokio::test]
async fn an_operation_that_ran_before_its_audit_entry_failed_is_replayed_not_run_again() {
    use lift::security::audit::{AuditLayer, AuditTrail, AUDIT_UNAVAILABLE};
    use lift_harness::faults::{AwsFaultProxy, DynamoDbFault, ANY_OPERATION};

    let env = env().await;
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let audit_table = local.create_table(&lift::store::tables::audit()).await.expect("the audit table");
    let proxy = AwsFaultProxy::start(local.endpoint()).await.expect("the fault proxy");
    let audit_client = lift_harness::dynamodb::client_for(&proxy.endpoint(), "us-east-1");
    let trail = AuditTrail::builder().client(audit_client).table(&audit_table).build().expect("a trail");
    // Call 0 refunds, call 1 refuses with 422, later calls refund.
    let handler = Handler::new(|n| {
        Box::pin(async move {
            match n {
                1 => Ok(lift::Error::unprocessable("amount over the refundable total").into_response()),
                _ => Ok(created(n)),
            }
        })
    });
    let svc = env.layer().layer(AuditLayer::new(trail.clone()).layer(handler.clone()));

    proxy.inject(ANY_OPERATION, DynamoDbFault::InternalServerError, 1.0);
    let refused = send(&svc, post("k-audit", r#"{"amount":100}"#)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem_type(&refused), AUDIT_UNAVAILABLE);
    assert!(!body(&refused).contains("p_0"), "the withheld answer is not in the 503");
    assert_eq!(handler.calls(), 1);
    let items = env.items().await;
    assert_eq!(items.len(), 1, "the record is kept");
    assert_eq!(items[0]["status"].as_s().unwrap(), "COMPLETED");

    // The client retries while the audit store is still down, and again after it heals.
    for _ in 0..2 {
        let replay = send(&svc, post("k-audit", r#"{"amount":100}"#)).await;
        assert_eq!(replay.status(), StatusCode::CREATED);
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        assert_eq!(body(&replay), r#"{"id":"p_0"}"#, "the outcome of the one run");
        assert_eq!(handler.calls(), 1, "the operation ran once");
        proxy.clear();
    }

    // A refusal changed nothing: with the audit store down again, its 503 frees the key.
    proxy.inject(ANY_OPERATION, DynamoDbFault::InternalServerError, 1.0);
    let refused = send(&svc, post("k-422", r#"{"amount":100000}"#)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(handler.calls(), 2);
    proxy.clear();
    let retried = send(&svc, post("k-422", r#"{"amount":100000}"#)).await;
    assert_eq!(retried.status(), StatusCode::CREATED, "the corrected retry runs");
    assert!(!retried.headers().contains_key("idempotent-replayed"));
    assert_eq!(handler.calls(), 3);
}

/// A success whose body is over `max_response_bytes` ran all the same: its record must
/// complete (not be removed), so the client's retry is told the request was done instead
/// of running the operation, a charge, a second time.
#[tokio::test]
async fn a_response_too_large_to_store_is_not_run_again_on_retry() {
    let env = env().await;
    let big = "x".repeat(32);
    let handler = Handler::new(move |_| {
        let big = big.clone();
        Box::pin(async move {
            Ok(http::Response::builder()
                .status(StatusCode::CREATED)
                .header("content-type", "application/json")
                .header("location", "/payments/p_big")
                .body(Body::from(big))
                .unwrap())
        })
    });
    let svc = IdempotencyLayer::builder()
        .client(env.client.clone())
        .table(&env.table)
        .max_response_bytes(16)
        .build()
        .unwrap()
        .layer(handler.clone());

    let first = send(&svc, post("k-big", r#"{"amount":100}"#)).await;
    assert_eq!(first.status(), 201);
    assert_eq!(first.body().len(), 32, "the caller gets the whole answer the first time");

    let retry = send(&svc, post("k-big", r#"{"amount":100}"#)).await;
    assert_eq!(handler.calls(), 1, "the retry did not run the operation again");
    assert_eq!(retry.status(), 201, "the original status: the request was done");
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.headers()["idempotent-response-omitted"], "true");
    assert_eq!(retry.headers()["location"], "/payments/p_big");
    assert!(!retry.headers().contains_key("content-type"), "no body, so no type for one");
    assert!(retry.body().is_empty(), "the body was never stored");

    let items = env.items().await;
    assert_eq!(items.len(), 1, "the record is kept");
    assert_eq!(items[0]["status"].as_s().unwrap(), "COMPLETED");
    assert_eq!(items[0]["body_omitted"], AttributeValue::Bool(true));
    assert!(items[0]["response_body"].as_b().unwrap().as_ref().is_empty());
}

/// The query string is part of the request a key stands for: the same key and body with
/// another `?amount=` is another payment, refused with 422, not a replay of the first.
#[tokio::test]
async fn the_same_key_and_body_with_another_query_answers_422() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());
    let with_query =
        |query: &str| request(Method::POST, &format!("/payments?{query}"), "acme", Some("k-q"), "{}");

    assert_eq!(send(&svc, with_query("amount=1")).await.status(), 201);
    let other = send(&svc, with_query("amount=900")).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_type(&other), "https://lift.dev/problems/idempotency-key-reused");
    assert_eq!(handler.calls(), 1, "the handler ran once");

    let same = send(&svc, with_query("amount=1")).await;
    assert_eq!(same.headers()["idempotent-replayed"], "true", "the same query still replays");
    assert_eq!(handler.calls(), 1);
}

/// A record names its route by pattern, never by path: the ids in a path (a customer's, a
/// patient's) are not kept in the clear for the record's life.
#[tokio::test]
async fn a_record_keeps_the_route_pattern_not_the_path() {
    let env = env().await;
    let svc = env.layer().layer(Handler::created());
    let mut routed = request(Method::POST, "/patients/p-4711/records", "acme", Some("k-route"), "{}");
    routed.extensions_mut().insert(lift::MatchedRoute("/patients/:id/records".into()));
    assert_eq!(send(&svc, routed).await.status(), 201);
    let unrouted = request(Method::POST, "/patients/p-0815/records", "acme", Some("k-unrouted"), "{}");
    assert_eq!(send(&svc, unrouted).await.status(), 201);
    let mut routes: Vec<String> =
        env.items().await.iter().map(|i| i["route"].as_s().unwrap().clone()).collect();
    routes.sort();
    assert_eq!(routes, ["POST", "POST /patients/:id/records"]);
    for item in env.items().await {
        let text = format!("{item:?}");
        assert!(!text.contains("p-4711") && !text.contains("p-0815"), "an id in the record: {text}");
    }
}

/// With a payload key, the record holds an HMAC of the body, not the SHA-256 that anyone
/// with the table could test card numbers against; a repeat still replays and another body
/// still answers 422. A record written before the key was set (a plain digest) is still
/// matched, so turning the key on refuses no retry in flight.
#[tokio::test]
async fn a_payload_key_keeps_the_body_digest_out_of_reach() {
    use sha2::Digest as _;
    let env = env().await;
    let keyed = || {
        IdempotencyLayer::builder()
            .client(env.client.clone())
            .table(&env.table)
            .payload_key(b"payload-key-for-tests-0123456789")
            .build()
            .unwrap()
    };
    let handler = Handler::created();
    let svc = keyed().layer(handler.clone());
    let card = r#"{"amount":100,"card_number":"4111111111111111"}"#;
    assert_eq!(send(&svc, post("k-card", card)).await.status(), 201);
    let plain: String = sha2::Sha256::digest(card.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let stored = env.items().await[0]["payload_hash"].as_s().unwrap().clone();
    assert!(stored.starts_with("k:") && !stored.contains(&plain), "{stored}");
    let replay = send(&svc, post("k-card", card)).await;
    assert_eq!((replay.status().as_u16(), handler.calls()), (201, 1));
    assert_eq!(send(&svc, post("k-card", r#"{"amount":900}"#)).await.status(), 422);

    // Written before the key: replayed by the keyed layer, and still told apart from another body.
    let before = Handler::created();
    assert_eq!(send(&env.layer().layer(before.clone()), post("k-old", card)).await.status(), 201);
    let after = Handler::created();
    let svc = keyed().layer(after.clone());
    assert_eq!(send(&svc, post("k-old", card)).await.status(), 201);
    assert_eq!(after.calls(), 0, "the old record was replayed, not run again");
    assert_eq!(send(&svc, post("k-old", r#"{"amount":1}"#)).await.status(), 422);
    assert!(
        IdempotencyLayer::builder().client(env.client.clone()).payload_key(b"short").build().is_err(),
        "a key under 16 bytes is refused"
    );
}

/// The router decodes path parameters, so `/payments/p%5F1/refunds` and
/// `/payments/p_1/refunds` are one refund of one payment: they share a record, and a retry
/// whose path a proxy re-encoded replays instead of refunding twice; so do `%3A%40` and
/// `:@`. An escaped slash (`%2F`) is not its decoded form: `a%2Fb` is one id, `a/b` two
/// segments.
#[tokio::test]
async fn percent_escapes_the_router_decodes_share_a_record_and_an_escaped_slash_does_not() {
    let env = env().await;
    let handler = Handler::created();
    let svc = env.layer().layer(handler.clone());
    let refund = |path: &str, key: &str| request(Method::POST, path, "acme", Some(key), r#"{"amount":100}"#);

    let first = send(&svc, refund("/payments/p%5F1/refunds", "k-escaped")).await;
    assert_eq!(first.status(), 201);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    for retry in ["/payments/p_1/refunds", "/payments/p%5f1/refunds"] {
        let replay = send(&svc, refund(retry, "k-escaped")).await;
        assert_eq!(replay.headers()["idempotent-replayed"], "true", "{retry}");
        assert_eq!(body(&replay), body(&first));
    }
    // A reserved character the router decodes all the same: `alice%40x` is `alice@x`.
    let first = send(&svc, refund("/payments/p%3A%40x/refunds", "k-reserved")).await;
    assert_eq!(first.status(), 201);
    for retry in ["/payments/p:@x/refunds", "/payments/p%3a@x/refunds"] {
        let replay = send(&svc, refund(retry, "k-reserved")).await;
        assert_eq!(replay.headers()["idempotent-replayed"], "true", "{retry}");
        assert_eq!(body(&replay), body(&first));
    }
    assert_eq!(handler.calls(), 2, "each refund ran once");

    assert_eq!(send(&svc, refund("/payments/a%2Fb/refunds", "k-slash")).await.status(), 201);
    let other = send(&svc, refund("/payments/a/b/refunds", "k-slash")).await;
    assert_eq!(other.status(), 201);
    assert!(!other.headers().contains_key("idempotent-replayed"), "a%2Fb and a/b are two paths");
    let same = send(&svc, refund("/payments/a%2fb/refunds", "k-slash")).await;
    assert_eq!(same.headers()["idempotent-replayed"], "true", "the case of an escape's hex is not a path");
    assert_eq!(handler.calls(), 4);
    assert_eq!(env.items().await.len(), 4);
}

const ISSUER: &str = "https://id.test.example";
const SECRET: &[u8] = b"a-test-secret-of-thirty-two-bytes!";

fn jwt() -> lift::middleware::auth::JwtLayer {
    use lift::middleware::auth::{Issuer, JwtLayer};
    JwtLayer::builder().issuer(Issuer::hs256(ISSUER, SECRET.to_vec()).any_audience()).build().unwrap()
}

/// A token of tenant `acme` with the scope `payments:write`.
fn token(sub: &str, jti: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": sub, "iat": now, "exp": now + 600, "jti": jti,
        "tenant_id": "acme", "scope": "payments:write",
    });
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).unwrap()
}

/// The recommended stack puts idempotency innermost: a replay passes threat detection and
/// the audit trail like a first attempt. Once the token's `jti` is revoked (or the caller
/// blocked), the same key and body are refused 403, not answered the stored 201; every
/// attempt has its audit entry, the replay marked as one. With idempotency outermost, as
/// the stack had it, the revoked token kept getting the stored answer, unaudited.
#[tokio::test]
async fn a_replay_passes_threat_detection_and_the_audit_trail() {
    use lift::middleware::auth::require_scope;
    use lift::security::audit::{AuditLayer, AuditQuery, AuditTrail, Outcome};
    use lift::security::threat::{BlockTarget, ThreatLayer, ThreatStore, TokenRef};

    let env = env().await;
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let blocklist = local.create_table(&lift::store::tables::blocklist()).await.expect("the blocklist");
    let audit = local.create_table(&lift::store::tables::audit()).await.expect("the audit table");
    let threats = ThreatStore::new(env.client.clone()).with_table(blocklist);
    let trail = AuditTrail::builder().client(env.client.clone()).table(audit).build().expect("a trail");
    // Named in the order the stack used to apply, idempotency outermost.
    let stack = lift::stack()
        .idempotency(env.layer())
        .audit(AuditLayer::new(trail.clone()))
        .threat(ThreatLayer::builder().store(threats.clone()).build().unwrap())
        .jwt(jwt())
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let create = {
        let calls = Arc::clone(&calls);
        move |_req: Request| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { created(n) }) as BoxFuture<'static, Response>
        }
    };
    let payments =
        stack.guard(lift::RouteGroup::new("/payments").post("/", create), require_scope("payments:write"));
    let app = stack.apply(lift::App::new().group(payments)).into_service();
    let pay = |token: &str, key: &str| {
        http::Request::post("/payments")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(r#"{"amount":100}"#))
            .unwrap()
    };
    let stolen = token("user-1", "jti-stolen");

    let first = app.clone().oneshot(pay(&stolen, "k-stolen")).await.unwrap();
    assert_eq!(first.status(), 201);
    let replay = app.clone().oneshot(pay(&stolen, "k-stolen")).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    threats.revoke(&TokenRef::jti("jti-stolen"), in_an_hour).await.unwrap();
    let refused = app.clone().oneshot(pay(&stolen, "k-stolen")).await.unwrap();
    assert_eq!(refused.status(), 403, "a revoked token gets no stored answer");
    assert_eq!(problem_type(&refused), "https://lift.dev/problems/blocked");
    assert!(!refused.headers().contains_key("idempotent-replayed"));

    let blocked = token("user-2", "jti-2");
    assert_eq!(app.clone().oneshot(pay(&blocked, "k-blocked")).await.unwrap().status(), 201);
    threats.block(&BlockTarget::Principal("user-2".into()), Duration::from_secs(3600), "test").await.unwrap();
    let refused = app.clone().oneshot(pay(&blocked, "k-blocked")).await.unwrap();
    assert_eq!(refused.status(), 403, "a blocked caller gets no stored answer");
    assert!(!refused.headers().contains_key("idempotent-replayed"));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the handler ran once per key");

    let entries = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    let seen: Vec<_> =
        entries.iter().map(|e| (e.entry.actor.as_str(), e.entry.outcome, e.entry.replayed)).collect();
    assert_eq!(
        seen,
        [
            ("user-1", Outcome::Success, false),
            ("user-1", Outcome::Success, true),
            ("user-1", Outcome::Denied, false),
            ("user-2", Outcome::Success, false),
            ("user-2", Outcome::Denied, false),
        ],
        "every attempt is audited, the replay marked"
    );
    trail.verify("acme").await.expect("the stored chain, replay mark included, verifies");
    let items = env.items().await;
    assert!(items.iter().all(|i| i["status"].as_s().unwrap() == "COMPLETED"), "no refusal was stored");
}

/// In the stack's order the audit layer sits outside idempotency: when it cannot store the
/// entry of a refund that ran, its 503 comes after idempotency stored the handler's answer,
/// so the client's retry replays the refund (and is audited) instead of refunding twice.
#[tokio::test]
async fn inside_the_audit_layer_a_ran_operation_whose_entry_failed_is_replayed_not_run_again() {
    use lift::security::audit::{AuditLayer, AuditTrail, AUDIT_UNAVAILABLE};
    use lift_harness::faults::{AwsFaultProxy, DynamoDbFault, ANY_OPERATION};

    let env = env().await;
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let audit_table = local.create_table(&lift::store::tables::audit()).await.expect("the audit table");
    let proxy = AwsFaultProxy::start(local.endpoint()).await.expect("the fault proxy");
    let audit_client = lift_harness::dynamodb::client_for(&proxy.endpoint(), "us-east-1");
    let trail = AuditTrail::builder().client(audit_client).table(&audit_table).build().expect("a trail");
    let handler = Handler::created();
    let svc = AuditLayer::new(trail.clone()).layer(env.layer().layer(handler.clone()));

    proxy.inject(ANY_OPERATION, DynamoDbFault::InternalServerError, 1.0);
    let refused = send(&svc, post("k-audit-in", r#"{"amount":100}"#)).await;
    assert_eq!(problem_type(&refused), AUDIT_UNAVAILABLE);
    assert_eq!(env.items().await[0]["status"].as_s().unwrap(), "COMPLETED");
    proxy.clear();

    let replay = send(&svc, post("k-audit-in", r#"{"amount":100}"#)).await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(body(&replay), r#"{"id":"p_0"}"#);
    assert_eq!(handler.calls(), 1, "the refund ran once");
    assert_eq!(trail.pending(), 0, "both attempts' entries are stored");
}

/// The handler of a replay does not run, so it names no data classes; the record keeps the
/// ones its first attempt named, and the replay's audit entry names them again. The
/// compliance rules, which see every replay now, then find the entry HIPAA asks for
/// instead of reporting ePHI handled without one.
#[tokio::test]
async fn a_replay_is_audited_with_the_data_classes_of_its_first_attempt() {
    use lift::security::audit::{AuditHandle, AuditLayer, AuditQuery, AuditTrail};
    use lift::security::compliance::{ComplianceLayer, ComplianceRecorder};

    let env = env().await;
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let audit = local.create_table(&lift::store::tables::audit()).await.expect("the audit table");
    let trail = AuditTrail::builder().client(env.client.clone()).table(audit).build().expect("a trail");
    let recorder = ComplianceRecorder::new();
    let stack = lift::stack()
        .jwt(jwt())
        .idempotency(env.layer())
        .audit(AuditLayer::new(trail.clone()))
        .compliance(ComplianceLayer::new(recorder.clone()))
        .build()
        .unwrap();
    let handler = Handler::created();
    let record = {
        let handler = handler.clone();
        move |req: Request| {
            if let Some(audit) = AuditHandle::of(&req) {
                audit.action("records.write").data_class("phi");
            }
            let mut handler = handler.clone();
            Box::pin(async move { handler.call(req).await.unwrap() }) as BoxFuture<'static, Response>
        }
    };
    let records = stack.routes(lift::RouteGroup::new("/records").post("/", record));
    let app = stack.apply(lift::App::new().group(records)).into_service();
    let write = || {
        http::Request::post("/records")
            .header("authorization", format!("Bearer {}", token("dr-1", "jti-dr-1")))
            .header("content-type", "application/json")
            .header("x-forwarded-proto", "https")
            .header("idempotency-key", "k-phi")
            .body(Body::from(r#"{"diagnosis":"influenza"}"#))
            .unwrap()
    };
    assert_eq!(app.clone().oneshot(write()).await.unwrap().status(), 201);
    let replay = app.clone().oneshot(write()).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(handler.calls(), 1);

    let entries = trail.query(AuditQuery::tenant("acme")).await.unwrap();
    let seen: Vec<_> = entries
        .iter()
        .map(|e| (e.entry.action.as_str(), e.entry.data_classes.clone(), e.entry.replayed))
        .collect();
    assert_eq!(
        seen,
        [("records.write", vec!["phi".to_owned()], false), ("POST /records", vec!["phi".to_owned()], true)]
    );
    let hipaa = recorder.records().into_iter().find(|r| r.id == "HIPAA 164.312(b)").expect("the rule");
    assert_eq!((hipaa.applied, hipaa.held, hipaa.violated), (2, 2, 0), "{hipaa:?}");
}
