//! JWT authentication, roles and scopes, end to end: a Lift `App` behind `JwtLayer`, with
//! the issuer's JWK set served over real HTTP by a small local server that counts calls.
//!
//! (The harness's `JwksIssuer` drives the same layer in `examples/payments/tests/auth.rs`;
//! lift cannot depend on the harness without building two copies of itself.)

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{Method, StatusCode};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
use lift::app::{AppService, Route};
use lift::error::Problem;
use lift::middleware::auth::{
    require_all_scopes, require_any_role, require_role, require_scope, Algorithm, AuthError, Claims,
    ConfigError, Issuer, JwtLayer, Verifier,
};
use lift::{json_response, App, Body, Context, Request, Response, RouteGroup};
use serde_json::{json, Value};
use tower::ServiceExt;

const RSA_PEM: &str = include_str!("fixtures/keys/test-only-rs256.pem");
const RSA_PUBLIC_PEM: &str = include_str!("fixtures/keys/test-only-rs256.pub.pem");
const EC_PEM: &str = include_str!("fixtures/keys/test-only-es256.pem");
const ED_PEM: &str = include_str!("fixtures/keys/test-only-ed25519.pem");
const ED_PUBLIC_PEM: &str = include_str!("fixtures/keys/test-only-ed25519.pub.pem");
const AUDIENCE: &str = "payments";
const HS_SECRET: &[u8] = b"an-hs256-secret-of-at-least-32-bytes!!";

// ---------------------------------------------------------------------------------------
// A local issuer: JWKS over HTTP, with a call counter and a switchable status.

struct JwksServer {
    issuer: String,
    jwks_url: String,
    calls: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    keys: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    /// Serves the RSA, EC and Ed25519 keys as `rsa-1`, `ec-1` and `ed-1`.
    async fn start() -> Self {
        let keys = vec![jwk(Kind::Rsa, "rsa-1"), jwk(Kind::Ec, "ec-1"), jwk(Kind::Ed, "ed-1")];
        Self::serving(keys).await
    }

    async fn serving(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(AtomicU16::new(200));
        let keys = Arc::new(Mutex::new(keys));
        let (c, s, k) = (calls.clone(), status.clone(), keys.clone());
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (c, s, k) = (c.clone(), s.clone(), k.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    let status = StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                    let body = json!({ "keys": *k.lock().unwrap() }).to_string();
                    (status, [(http::header::CONTENT_TYPE, "application/json")], body)
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { jwks_url: format!("{base}/.well-known/jwks.json"), issuer: base, calls, status, keys, task }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn publish(&self, key: Value) {
        self.keys.lock().unwrap().push(key);
    }

    fn issuer(&self) -> Issuer {
        Issuer::jwks(&self.issuer, &self.jwks_url).audience(AUDIENCE)
    }

    fn claims(&self) -> Value {
        claims(&self.issuer)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Rsa,
    Ec,
    Ed,
}

impl Kind {
    fn key(self) -> EncodingKey {
        match self {
            Kind::Rsa => EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap(),
            Kind::Ec => EncodingKey::from_ec_pem(EC_PEM.as_bytes()).unwrap(),
            Kind::Ed => EncodingKey::from_ed_pem(ED_PEM.as_bytes()).unwrap(),
        }
    }

    fn alg(self) -> jsonwebtoken::Algorithm {
        match self {
            Kind::Rsa => jsonwebtoken::Algorithm::RS256,
            Kind::Ec => jsonwebtoken::Algorithm::ES256,
            Kind::Ed => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

/// The DER body of a PEM file.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

/// The public JWK of a test key, as an issuer publishes it.
fn jwk(kind: Kind, kid: &str) -> Value {
    let mut jwk = match kind {
        // jsonwebtoken cannot derive an Ed25519 JWK: the public key is the last 32 bytes of
        // its SubjectPublicKeyInfo.
        Kind::Ed => {
            let der = pem_der(ED_PUBLIC_PEM);
            json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&der[der.len() - 32..])})
        }
        _ => serde_json::to_value(Jwk::from_encoding_key(&kind.key(), kind.alg()).unwrap()).unwrap(),
    };
    jwk["kid"] = kid.into();
    jwk["use"] = "sig".into();
    jwk
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims(iss: &str) -> Value {
    json!({
        "iss": iss,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
        "tenant_id": "acme",
        "roles": ["support"],
        "scope": "payments:read",
        "email": "user-1@example.com",
    })
}

fn sign(kind: Kind, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(kind.alg());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &kind.key()).unwrap()
}

fn sign_hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

// ---------------------------------------------------------------------------------------
// The app under test.

async fn me(req: Request) -> Response {
    let ctx = Context::of(&req).expect("the app inserts a context");
    let principal = ctx.principal().expect("the jwt layer sets a principal");
    let email = req.extensions().get::<Claims>().and_then(|c| c.get("email")).cloned();
    json_response(
        StatusCode::OK,
        &json!({
            "sub": principal.subject,
            "iss": principal.issuer,
            "tenant": ctx.tenant(),
            "roles": principal.roles,
            "scopes": principal.scopes,
            "email": email,
            "tenant_header": req.headers().get("x-tenant-id").map(|v| v.to_str().unwrap().to_owned()),
        }),
    )
}

async fn ok(_req: Request) -> Response {
    Response::new(Body::from("ok"))
}

fn routes() -> App {
    App::new()
        .get("/me", me)
        .get("/health", ok)
        .get("/health/ready", ok)
        // Routes that merely start with `/health`: never exempt under `/health*`.
        .get("/healthcare/patients", ok)
        .get("/health-records/:id", ok)
        .get("/healthz", ok)
        .post("/payments", Route::from_handler(ok).layer(require_scope("payments:write")))
        .get("/reports", Route::from_handler(ok).layer(require_all_scopes(["payments:read", "reports:read"])))
        .group(
            RouteGroup::new("/admin").get("/users", ok).delete("/users/:id", ok).layer(require_role("admin")),
        )
        .group(RouteGroup::new("/support").get("/tickets", ok).layer(require_any_role(["support", "admin"])))
}

fn app(layer: JwtLayer) -> AppService {
    routes().layer(layer).into_service()
}

fn layer(issuer: Issuer) -> JwtLayer {
    JwtLayer::builder().issuer(issuer).realm("test").exempt_path("/health*").build().unwrap()
}

async fn call(service: &AppService, method: Method, uri: &str, token: Option<&str>) -> Response {
    let mut req = http::Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    service.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

async fn get(service: &AppService, uri: &str, token: &str) -> Response {
    call(service, Method::GET, uri, Some(token)).await
}

fn body(res: &Response) -> Value {
    serde_json::from_slice(res.body().as_bytes()).unwrap()
}

fn challenge(res: &Response) -> String {
    res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// A refusal: 401, an RFC 6750 challenge naming the reason, a problem body, and nowhere
/// a trace of the token.
#[track_caller]
fn assert_refused(res: &Response, token: &str, reason: &AuthError) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{:?}", res.body());
    assert_eq!(
        challenge(res),
        format!("Bearer realm=\"test\", error=\"invalid_token\", error_description=\"{reason}\"")
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Problem = serde_json::from_slice(res.body().as_bytes()).unwrap();
    assert_eq!(problem.status, 401);
    assert_eq!(problem.detail.as_deref(), Some(reason.to_string().as_str()));
    let raw = format!("{:?} {:?}", res.headers(), String::from_utf8_lossy(res.body().as_bytes()));
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!raw.contains(part), "the response carries part of the token: {raw}");
    }
}

// ---------------------------------------------------------------------------------------
// Accepted tokens.

#[tokio::test]
async fn valid_rs256_es256_and_eddsa_tokens_map_to_a_principal() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let mut claims = jwks.claims();
    claims["cognito:groups"] = json!(["admin"]);
    claims["scp"] = json!(["reports:read"]);
    for (kind, kid) in [(Kind::Rsa, "rsa-1"), (Kind::Ec, "ec-1"), (Kind::Ed, "ed-1")] {
        let res = get(&service, "/me", &sign(kind, kid, &claims)).await;
        assert_eq!(res.status(), StatusCode::OK, "{kid}: {:?}", res.body());
        let me = body(&res);
        assert_eq!(me["sub"], "user-1");
        assert_eq!(me["tenant"], "acme");
        assert_eq!(me["roles"], json!(["admin", "support"]));
        assert_eq!(me["scopes"], json!(["payments:read", "reports:read"]));
        assert_eq!(me["email"], "user-1@example.com", "the claims are in the extensions");
    }
    assert_eq!(jwks.calls(), 1, "the key set is fetched once and cached");
}

#[tokio::test]
async fn tenant_comes_from_custom_claim_and_tenant_headers_are_stripped() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let mut claims = jwks.claims();
    claims.as_object_mut().unwrap().remove("tenant_id");
    claims["custom:tenant_id"] = "initech".into();
    let req = http::Request::get("/me")
        .header("authorization", format!("Bearer {}", sign(Kind::Rsa, "rsa-1", &claims)))
        .header("x-tenant-id", "globex")
        .body(Body::empty())
        .unwrap();
    let res = service.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(&res)["tenant"], "initech");
    assert_eq!(body(&res)["tenant_header"], Value::Null, "the tenant header never reaches the handler");
}

#[tokio::test]
async fn hs256_with_a_configured_secret() {
    let service = app(layer(Issuer::hs256("internal", HS_SECRET.to_vec()).audience(AUDIENCE)));
    let token = sign_hs256(HS_SECRET, None, &claims("internal"));
    assert_eq!(get(&service, "/me", &token).await.status(), StatusCode::OK);
    let forged = sign_hs256(b"another-secret-of-at-least-32-bytes!!!", None, &claims("internal"));
    assert_refused(&get(&service, "/me", &forged).await, &forged, &AuthError::BadSignature);
}

#[tokio::test]
async fn several_issuers_are_picked_by_iss() {
    let (a, b) = (JwksServer::start().await, JwksServer::serving(vec![jwk(Kind::Ec, "b-ec")]).await);
    let service = app(JwtLayer::builder()
        .issuer(a.issuer().any_tenant())
        .issuer(b.issuer().any_tenant())
        .issuer(Issuer::hs256("internal", HS_SECRET.to_vec()).audience(AUDIENCE).any_tenant())
        .realm("test")
        .build()
        .unwrap());
    let from_a = get(&service, "/me", &sign(Kind::Rsa, "rsa-1", &a.claims())).await;
    let from_b = get(&service, "/me", &sign(Kind::Ec, "b-ec", &b.claims())).await;
    assert_eq!((from_a.status(), from_b.status()), (StatusCode::OK, StatusCode::OK));
    // One subject, two issuers: the principal says which issuer vouched for it.
    assert_eq!((&body(&from_a)["sub"], &body(&from_b)["sub"]), (&json!("user-1"), &json!("user-1")));
    assert_eq!(body(&from_a)["iss"], json!(a.issuer));
    assert_eq!(body(&from_b)["iss"], json!(b.issuer));
    let internal = sign_hs256(HS_SECRET, None, &claims("internal"));
    assert_eq!(get(&service, "/me", &internal).await.status(), StatusCode::OK);
    // Issuer b's kid under issuer a's name: a's key set does not have it.
    let crossed = sign(Kind::Ec, "b-ec", &a.claims());
    assert_refused(&get(&service, "/me", &crossed).await, &crossed, &AuthError::UnknownKey);
    // The HS256 secret of one issuer is no good for another issuer's tokens.
    let hs_for_a = sign_hs256(HS_SECRET, Some("rsa-1"), &a.claims());
    assert_refused(&get(&service, "/me", &hs_for_a).await, &hs_for_a, &AuthError::AlgorithmNotAllowed);
}

// ---------------------------------------------------------------------------------------
// Attacks and invalid tokens: each refused with 401.

#[tokio::test]
async fn alg_none_is_refused() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!("{}.{}.", b64(&json!({"alg": alg, "kid": "rsa-1"})), b64(&jwks.claims()));
        assert_refused(&get(&service, "/me", &unsigned).await, &unsigned, &AuthError::AlgorithmNotAllowed);
        let with_sig = format!("{unsigned}c2lnbmF0dXJl");
        assert_refused(&get(&service, "/me", &with_sig).await, &with_sig, &AuthError::AlgorithmNotAllowed);
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let der = pem_der(RSA_PUBLIC_PEM);
    let n = URL_SAFE_NO_PAD.decode(jwk(Kind::Rsa, "x")["n"].as_str().unwrap()).unwrap();
    // The classic confusion: the public key (as PEM, DER or modulus) used as an HMAC secret.
    let single = JwksServer::serving(vec![jwk(Kind::Rsa, "rsa-1")]).await;
    let single_service = app(layer(single.issuer()));
    for secret in [RSA_PUBLIC_PEM.as_bytes(), &der, &n] {
        let forged = sign_hs256(secret, Some("rsa-1"), &jwks.claims());
        assert_refused(&get(&service, "/me", &forged).await, &forged, &AuthError::AlgorithmNotAllowed);
        // Without a kid: in a set of one key, that key (RSA) decides and refuses HS256.
        let forged = sign_hs256(secret, None, &single.claims());
        assert_refused(&get(&single_service, "/me", &forged).await, &forged, &AuthError::AlgorithmNotAllowed);
        // In a set of several keys, a token without a kid matches none.
        let forged = sign_hs256(secret, None, &jwks.claims());
        assert_refused(&get(&service, "/me", &forged).await, &forged, &AuthError::UnknownKey);
    }
    // An RS256 header on the EC key is refused the same way: the key decides.
    let mismatched = {
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&header, &jwks.claims(), &Kind::Ec.key()).unwrap()
    };
    assert_refused(&get(&service, "/me", &mismatched).await, &mismatched, &AuthError::AlgorithmNotAllowed);
    // And the configuration cannot be talked into taking HS256 from a JWKS.
    let err = JwtLayer::builder()
        .issuer(jwks.issuer().algorithms([Algorithm::Rs256, Algorithm::Hs256]))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidAlgorithms(_)), "{err}");
}

#[tokio::test]
async fn algorithms_outside_the_allow_list_are_refused() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer().algorithms([Algorithm::Rs256])));
    assert_eq!(
        get(&service, "/me", &sign(Kind::Rsa, "rsa-1", &jwks.claims())).await.status(),
        StatusCode::OK
    );
    // ES256 is not allowed for this issuer, so its key is not even loaded.
    let es = sign(Kind::Ec, "ec-1", &jwks.claims());
    assert_refused(&get(&service, "/me", &es).await, &es, &AuthError::UnknownKey);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let mut c = jwks.claims();
    c["exp"] = (now() - 120).into();
    let expired = sign(Kind::Rsa, "rsa-1", &c);
    assert_refused(&get(&service, "/me", &expired).await, &expired, &AuthError::Expired);

    c["exp"] = (now() - 30).into();
    let within_skew = sign(Kind::Rsa, "rsa-1", &c);
    assert_eq!(get(&service, "/me", &within_skew).await.status(), StatusCode::OK, "60 s of skew by default");

    let mut c = jwks.claims();
    c["nbf"] = (now() + 300).into();
    let early = sign(Kind::Rsa, "rsa-1", &c);
    assert_refused(&get(&service, "/me", &early).await, &early, &AuthError::NotYetValid);

    let mut c = jwks.claims();
    c.as_object_mut().unwrap().remove("exp");
    let endless = sign(Kind::Rsa, "rsa-1", &c);
    assert_refused(&get(&service, "/me", &endless).await, &endless, &AuthError::MissingExpiry);

    // With no skew, a token expired 30 s ago is refused too.
    let strict = app(JwtLayer::builder()
        .issuer(jwks.issuer())
        .clock_skew(Duration::ZERO)
        .realm("test")
        .build()
        .unwrap());
    assert_refused(&get(&strict, "/me", &within_skew).await, &within_skew, &AuthError::Expired);
}

#[tokio::test]
async fn wrong_audience_and_issuer_are_refused() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let mut c = jwks.claims();
    c["aud"] = "billing".into();
    let other_aud = sign(Kind::Rsa, "rsa-1", &c);
    assert_refused(&get(&service, "/me", &other_aud).await, &other_aud, &AuthError::WrongAudience);
    c["aud"] = json!(["billing", AUDIENCE]);
    assert_eq!(get(&service, "/me", &sign(Kind::Rsa, "rsa-1", &c)).await.status(), StatusCode::OK);

    let mut c = jwks.claims();
    c["iss"] = "https://evil.example.com".into();
    let other_iss = sign(Kind::Rsa, "rsa-1", &c);
    assert_refused(&get(&service, "/me", &other_iss).await, &other_iss, &AuthError::UntrustedIssuer);
}

/// Cognito access tokens have no `aud`, so a pool is trusted with `any_audience()`; then
/// `token_use("access")` is what keeps the pool's ID tokens out, whose `custom:` attributes
/// a user may be able to write (here: another tenant).
#[tokio::test]
async fn token_use_is_checked_when_required() {
    let jwks = JwksServer::start().await;
    let pool = || Issuer::jwks(&jwks.issuer, &jwks.jwks_url).any_audience();
    let service = app(layer(pool().token_use("access")));
    let mut access = jwks.claims();
    access.as_object_mut().unwrap().remove("aud");
    access["token_use"] = "access".into();
    access["client_id"] = "app-client".into();
    let token = sign(Kind::Rsa, "rsa-1", &access);
    assert_eq!(get(&service, "/me", &token).await.status(), StatusCode::OK);

    let mut id = jwks.claims();
    id.as_object_mut().unwrap().remove("tenant_id");
    id["aud"] = "app-client".into();
    id["token_use"] = "id".into();
    id["custom:tenant_id"] = "globex".into();
    let id_token = sign(Kind::Rsa, "rsa-1", &id);
    assert_refused(&get(&service, "/me", &id_token).await, &id_token, &AuthError::WrongTokenUse);

    access.as_object_mut().unwrap().remove("token_use");
    let untyped = sign(Kind::Rsa, "rsa-1", &access);
    assert_refused(&get(&service, "/me", &untyped).await, &untyped, &AuthError::WrongTokenUse);

    // Unchanged by default: an issuer that does not ask takes both.
    let lenient = app(layer(pool()));
    assert_eq!(get(&lenient, "/me", &id_token).await.status(), StatusCode::OK);
    assert_eq!(get(&lenient, "/me", &untyped).await.status(), StatusCode::OK);
}

/// A pool mints tokens for each of its app clients alike: `client_ids` names the ones that
/// may call this service, read from `client_id` (access tokens) or else `aud` (ID tokens).
#[tokio::test]
async fn client_ids_limit_the_clients_a_token_may_be_issued_to() {
    let jwks = JwksServer::start().await;
    let pool = || Issuer::jwks(&jwks.issuer, &jwks.jwks_url).any_audience();
    let service = app(layer(pool().client_ids(["a"])));
    let mut access = jwks.claims();
    access.as_object_mut().unwrap().remove("aud");
    access["token_use"] = "access".into();
    access["client_id"] = "a".into();
    assert_eq!(get(&service, "/me", &sign(Kind::Rsa, "rsa-1", &access)).await.status(), StatusCode::OK);
    access["client_id"] = "b".into();
    let other_client = sign(Kind::Rsa, "rsa-1", &access);
    assert_refused(&get(&service, "/me", &other_client).await, &other_client, &AuthError::WrongClient);

    // A token that names its client is judged by it, whatever its `aud` says.
    access["aud"] = "a".into();
    let mixed = sign(Kind::Rsa, "rsa-1", &access);
    assert_refused(&get(&service, "/me", &mixed).await, &mixed, &AuthError::WrongClient);

    // ID tokens name their client in `aud`.
    let mut id = jwks.claims();
    id["aud"] = "a".into();
    assert_eq!(get(&service, "/me", &sign(Kind::Rsa, "rsa-1", &id)).await.status(), StatusCode::OK);
    id["aud"] = "b".into();
    let other_aud = sign(Kind::Rsa, "rsa-1", &id);
    assert_refused(&get(&service, "/me", &other_aud).await, &other_aud, &AuthError::WrongClient);
    id.as_object_mut().unwrap().remove("aud");
    let no_client = sign(Kind::Rsa, "rsa-1", &id);
    assert_refused(&get(&service, "/me", &no_client).await, &no_client, &AuthError::WrongClient);

    // Unchanged by default: any client.
    let lenient = app(layer(pool()));
    assert_eq!(get(&lenient, "/me", &other_client).await.status(), StatusCode::OK);
}

/// RFC 9068 access tokens are typed `at+jwt`: requiring it keeps the issuer's other JWTs
/// (typed `JWT`, or untyped) out. RFC 7515: case does not matter, `application/` may be left
/// out.
#[tokio::test]
async fn typ_is_checked_when_required() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer().typ("at+jwt")));
    let typed = |typ: Option<&str>| {
        let mut header = Header::new(Kind::Rsa.alg());
        header.kid = Some("rsa-1".into());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, &jwks.claims(), &Kind::Rsa.key()).unwrap()
    };
    for ok in ["at+jwt", "application/at+jwt", "AT+JWT", "Application/AT+jwt"] {
        assert_eq!(get(&service, "/me", &typed(Some(ok))).await.status(), StatusCode::OK, "{ok}");
    }
    for bad in [Some("JWT"), Some("application/jwt"), Some("at+jwt-not"), None] {
        let token = typed(bad);
        assert_refused(&get(&service, "/me", &token).await, &token, &AuthError::WrongType);
    }
    // `application/` on the configured side is the same type.
    let prefixed = app(layer(jwks.issuer().typ("application/at+jwt")));
    assert_eq!(get(&prefixed, "/me", &typed(Some("at+jwt"))).await.status(), StatusCode::OK);

    // Unchanged by default: any typ, or none.
    let lenient = app(layer(jwks.issuer()));
    for typ in [Some("JWT"), Some("at+jwt"), None] {
        assert_eq!(get(&lenient, "/me", &typed(typ)).await.status(), StatusCode::OK, "{typ:?}");
    }
}

#[tokio::test]
async fn bad_signatures_are_refused() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let token = sign(Kind::Rsa, "rsa-1", &jwks.claims());
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    // Another tenant in the claims, the original signature.
    let mut c = jwks.claims();
    c["tenant_id"] = "globex".into();
    let tampered = format!("{header}.{}.{signature}", b64(&c));
    assert_refused(&get(&service, "/me", &tampered).await, &tampered, &AuthError::BadSignature);
    // A flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{header}.{}.{}", rest.split_once('.').unwrap().0, URL_SAFE_NO_PAD.encode(sig));
    assert_refused(&get(&service, "/me", &flipped).await, &flipped, &AuthError::BadSignature);
}

#[tokio::test]
async fn malformed_and_missing_tokens_are_refused() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let res = call(&service, Method::GET, "/me", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&res), "Bearer realm=\"test\"", "no error code without credentials (RFC 6750 3.1)");
    for junk in ["x", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "....", "a b c"] {
        let res = get(&service, "/me", junk).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{junk}");
    }
    let mut c = jwks.claims();
    c["tenant_id"] = "a#b".into();
    let bad_tenant = sign(Kind::Rsa, "rsa-1", &c);
    assert_refused(&get(&service, "/me", &bad_tenant).await, &bad_tenant, &AuthError::InvalidTenant);
    c.as_object_mut().unwrap().remove("sub");
    let no_sub = sign(Kind::Rsa, "rsa-1", &c);
    assert_refused(&get(&service, "/me", &no_sub).await, &no_sub, &AuthError::MissingSubject);
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_parsing() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let mut c = jwks.claims();
    c["padding"] = "x".repeat(9 * 1024).into();
    let big = sign(Kind::Rsa, "rsa-1", &c);
    assert_refused(&get(&service, "/me", &big).await, &big, &AuthError::TooLarge { limit: 8192 });
    let garbage = "g".repeat(64 * 1024);
    assert_refused(&get(&service, "/me", &garbage).await, &garbage, &AuthError::TooLarge { limit: 8192 });
    assert_eq!(jwks.calls(), 0, "an oversized token costs no key fetch");
}

// ---------------------------------------------------------------------------------------
// The key cache.

#[tokio::test]
async fn unknown_kid_refetches_once_then_the_cooldown_holds() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    assert_eq!(
        get(&service, "/me", &sign(Kind::Rsa, "rsa-1", &jwks.claims())).await.status(),
        StatusCode::OK
    );
    assert_eq!(jwks.calls(), 1);
    let unknown = sign(Kind::Rsa, "random-kid-1", &jwks.claims());
    assert_refused(&get(&service, "/me", &unknown).await, &unknown, &AuthError::UnknownKey);
    assert_eq!(jwks.calls(), 2, "an unknown kid refetches the key set once");
    for i in 2..20 {
        let flood = sign(Kind::Rsa, &format!("random-kid-{i}"), &jwks.claims());
        assert_refused(&get(&service, "/me", &flood).await, &flood, &AuthError::UnknownKey);
    }
    assert_eq!(jwks.calls(), 2, "the cooldown blocks a second refetch");
    assert_eq!(get(&service, "/me", &sign(Kind::Ec, "ec-1", &jwks.claims())).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_refetch() {
    let jwks = JwksServer::serving(vec![jwk(Kind::Rsa, "rsa-1")]).await;
    let service = app(layer(jwks.issuer()));
    assert_eq!(
        get(&service, "/me", &sign(Kind::Rsa, "rsa-1", &jwks.claims())).await.status(),
        StatusCode::OK
    );
    jwks.publish(jwk(Kind::Ec, "ec-2"));
    let rotated = sign(Kind::Ec, "ec-2", &jwks.claims());
    assert_eq!(get(&service, "/me", &rotated).await.status(), StatusCode::OK);
    assert_eq!(jwks.calls(), 2);
    assert_eq!(get(&service, "/me", &rotated).await.status(), StatusCode::OK);
    assert_eq!(jwks.calls(), 2, "the new key is cached");
}

#[tokio::test]
async fn jwks_endpoint_down_is_a_clear_503_not_a_panic() {
    // Nothing listens on this port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let issuer = Issuer::jwks(&base, format!("{base}/jwks.json")).audience(AUDIENCE);
    let service = app(layer(issuer));
    let token = sign(Kind::Rsa, "rsa-1", &claims(&base));
    let res = get(&service, "/me", &token).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let problem: Problem = serde_json::from_slice(res.body().as_bytes()).unwrap();
    assert_eq!(problem.detail.as_deref(), Some("the token cannot be verified now; retry later"));
    assert!(!String::from_utf8_lossy(res.body().as_bytes()).contains("127.0.0.1"), "no internals leak");

    // An issuer that answers 500, then garbage, then recovers.
    let jwks = JwksServer::start().await;
    let recovering = jwks.issuer().refetch_cooldown(Duration::ZERO);
    let service = app(layer(recovering));
    let token = sign(Kind::Rsa, "rsa-1", &jwks.claims());
    jwks.status.store(500, Ordering::SeqCst);
    assert_eq!(get(&service, "/me", &token).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    jwks.status.store(200, Ordering::SeqCst);
    assert_eq!(get(&service, "/me", &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn stale_keys_stop_verifying_past_the_max_staleness() {
    // Keys are fetched on the real clock; then tokio's clock is paused to move past the TTL
    // and the bound. Every fetch made while it is paused is meant to fail, so a fetch timeout
    // fired early by the paused clock would not change what the test sees.
    let jwks = JwksServer::start().await;
    let issuer = jwks.issuer().jwks_ttl(Duration::from_secs(60)).jwks_max_staleness(Duration::from_secs(300));
    let service = app(layer(issuer));
    let token = sign(Kind::Rsa, "rsa-1", &jwks.claims());
    assert_eq!(get(&service, "/me", &token).await.status(), StatusCode::OK);
    assert_eq!(jwks.calls(), 1);

    tokio::time::pause();
    jwks.status.store(500, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(60 + 250)).await;
    assert_eq!(get(&service, "/me", &token).await.status(), StatusCode::OK, "stale inside the bound");
    assert_eq!(jwks.calls(), 2, "the refetch was tried");

    tokio::time::advance(Duration::from_secs(60)).await;
    let res = get(&service, "/me", &token).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "past TTL + max staleness, no key verifies");
    assert!(res.headers().contains_key("retry-after"));
    let problem: Problem = serde_json::from_slice(res.body().as_bytes()).unwrap();
    assert_eq!(problem.detail.as_deref(), Some("the token cannot be verified now; retry later"));
    assert_eq!(jwks.calls(), 3);

    // The issuer answers again: once the failure backoff is over, its keys verify.
    jwks.status.store(200, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume();
    assert_eq!(get(&service, "/me", &token).await.status(), StatusCode::OK, "fresh keys again");
    assert_eq!(jwks.calls(), 4);
}

#[tokio::test]
async fn the_verifier_reports_reasons_and_hides_the_token() {
    let jwks = JwksServer::start().await;
    let layer = layer(jwks.issuer());
    let verifier = layer.verifier();
    let token = sign(Kind::Rsa, "rsa-1", &jwks.claims());
    assert_eq!(verifier.verify_cached(&token).unwrap(), None, "nothing cached yet");
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.principal.tenant, "acme");
    assert!(verifier.verify_cached(&token).unwrap().is_some(), "cached now");
    let mut c = jwks.claims();
    c["exp"] = 1.into();
    let expired = sign(Kind::Rsa, "rsa-1", &c);
    let err = verifier.verify(&expired).await.unwrap_err();
    assert_eq!(err, AuthError::Expired);
    let shown = format!("{err} {err:?} {verifier:?} {layer:?}");
    assert!(!shown.contains(expired.split('.').nth(1).unwrap()), "{shown}");
}

// ---------------------------------------------------------------------------------------
// Exemptions, roles and scopes.

#[tokio::test]
async fn exempt_paths_pass_without_a_token() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    assert_eq!(call(&service, Method::GET, "/health", None).await.status(), StatusCode::OK);
    assert_eq!(call(&service, Method::GET, "/health/ready", None).await.status(), StatusCode::OK);
    assert_eq!(call(&service, Method::GET, "/me", None).await.status(), StatusCode::UNAUTHORIZED);
    let custom = app(JwtLayer::builder()
        .issuer(jwks.issuer())
        .exempt(|head| head.method == Method::GET && head.uri.path() == "/health")
        .build()
        .unwrap());
    assert_eq!(call(&custom, Method::GET, "/health", None).await.status(), StatusCode::OK);
    assert_eq!(call(&custom, Method::GET, "/health/ready", None).await.status(), StatusCode::UNAUTHORIZED);
}

/// `*` in an exemption covers whole path segments: `/health*` lets `/health` and
/// `/health/ready` through, and a patient route that starts with the same letters still
/// needs a token.
#[tokio::test]
async fn an_exempt_prefix_does_not_cover_paths_that_only_share_its_letters() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    for path in ["/healthcare/patients", "/health-records/1", "/healthz"] {
        let res = call(&service, Method::GET, path, None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} needs a token");
    }
    assert_eq!(call(&service, Method::GET, "/health", None).await.status(), StatusCode::OK);
    assert_eq!(call(&service, Method::GET, "/health/ready", None).await.status(), StatusCode::OK);
    let token = sign(Kind::Rsa, "rsa-1", &jwks.claims());
    assert_eq!(get(&service, "/healthcare/patients", &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn scopes_on_routes_answer_401_403_200() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let read_only = sign(Kind::Rsa, "rsa-1", &jwks.claims());
    let res = call(&service, Method::POST, "/payments", Some(&read_only)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let problem: Problem = serde_json::from_slice(res.body().as_bytes()).unwrap();
    assert_eq!(problem.detail.as_deref(), Some("the scope payments:write is required"));
    assert!(
        !problem.detail.unwrap().contains("payments:read"),
        "it names what is required, not what is held"
    );
    assert_eq!(challenge(&res), "Bearer error=\"insufficient_scope\", scope=\"payments:write\"");

    let mut c = jwks.claims();
    c["scope"] = "payments:read payments:write".into();
    let writer = sign(Kind::Rsa, "rsa-1", &c);
    assert_eq!(call(&service, Method::POST, "/payments", Some(&writer)).await.status(), StatusCode::OK);
    assert_eq!(get(&service, "/reports", &writer).await.status(), StatusCode::FORBIDDEN, "all scopes needed");
    c["scp"] = json!(["reports:read"]);
    assert_eq!(get(&service, "/reports", &sign(Kind::Rsa, "rsa-1", &c)).await.status(), StatusCode::OK);

    // Without the JWT layer nobody is authenticated: the scope check answers 401.
    let bare = routes().into_service();
    let res = call(&bare, Method::POST, "/payments", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&res).starts_with("Bearer"));
}

#[tokio::test]
async fn roles_on_groups_answer_401_403_200() {
    let jwks = JwksServer::start().await;
    let service = app(layer(jwks.issuer()));
    let support = sign(Kind::Rsa, "rsa-1", &jwks.claims());
    let res = get(&service, "/admin/users", &support).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(&res)["detail"], "the role admin is required");
    assert_eq!(
        call(&service, Method::DELETE, "/admin/users/u-2", Some(&support)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(get(&service, "/support/tickets", &support).await.status(), StatusCode::OK);

    let mut c = jwks.claims();
    c["roles"] = json!([]);
    c["cognito:groups"] = json!(["admin"]);
    let admin = sign(Kind::Rsa, "rsa-1", &c);
    assert_eq!(get(&service, "/admin/users", &admin).await.status(), StatusCode::OK);
    assert_eq!(
        call(&service, Method::DELETE, "/admin/users/u-2", Some(&admin)).await.status(),
        StatusCode::OK
    );
    assert_eq!(get(&service, "/support/tickets", &admin).await.status(), StatusCode::OK);

    c["cognito:groups"] = json!(["guest"]);
    let guest = sign(Kind::Rsa, "rsa-1", &c);
    let res = get(&service, "/support/tickets", &guest).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(&res)["detail"], "one of the roles support, admin is required");

    let bare = routes().into_service();
    assert_eq!(call(&bare, Method::GET, "/admin/users", None).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn configuration_is_checked_at_build() {
    assert!(matches!(JwtLayer::builder().build(), Err(ConfigError::NoIssuer)));
    let no_aud = Issuer::jwks("https://id.example.com", "https://id.example.com/jwks");
    assert!(matches!(JwtLayer::builder().issuer(no_aud).build(), Err(ConfigError::MissingAudience(_))));
    let plain = Issuer::jwks("https://id.example.com", "http://id.example.com/jwks").audience("a");
    assert!(matches!(
        JwtLayer::builder().issuer(plain.clone()).build(),
        Err(ConfigError::InsecureJwksUrl(_))
    ));
    assert!(JwtLayer::builder().issuer(plain.allow_insecure_http(true)).build().is_ok());
    let weak = Issuer::hs256("i", b"short".to_vec()).audience("a");
    assert!(matches!(JwtLayer::builder().issuer(weak).build(), Err(ConfigError::WeakSecret(_))));
    let twice = Issuer::hs256("i", HS_SECRET.to_vec()).audience("a");
    assert!(matches!(
        JwtLayer::builder().issuer(twice.clone()).issuer(twice).build(),
        Err(ConfigError::InvalidIssuer(_))
    ));
    let hs = Issuer::hs256("i", HS_SECRET.to_vec()).audience("a");
    assert!(JwtLayer::builder().issuer(hs.clone()).realm("bad\"realm").build().is_err());
    assert!(JwtLayer::builder().issuer(hs).max_token_bytes(10).build().is_err());
}

/// With several issuers, one bound to some tenants cannot mint tokens for the others: a
/// partner issuer bound to `globex` naming `acme` is refused, while the customers' issuer
/// may still name `acme`.
#[tokio::test]
async fn an_issuer_bound_to_tenants_cannot_speak_for_another() {
    const PARTNER_SECRET: &[u8] = b"the-partner-hs256-secret-of-32-bytes!!!";
    let service = app(JwtLayer::builder()
        .issuer(Issuer::hs256("customers", HS_SECRET.to_vec()).audience(AUDIENCE).any_tenant())
        .issuer(Issuer::hs256("partner", PARTNER_SECRET.to_vec()).audience(AUDIENCE).tenants(["globex"]))
        .realm("test")
        .build()
        .unwrap());
    let customer = sign_hs256(HS_SECRET, None, &claims("customers"));
    assert_eq!(get(&service, "/me", &customer).await.status(), StatusCode::OK);
    let mut partner_claims = claims("partner");
    partner_claims["tenant_id"] = "globex".into();
    let partner = sign_hs256(PARTNER_SECRET, None, &partner_claims);
    let res = get(&service, "/me", &partner).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(&res)["tenant"], "globex");
    // The partner's valid token, naming a tenant it does not serve.
    partner_claims["tenant_id"] = "acme".into();
    let overreach = sign_hs256(PARTNER_SECRET, None, &partner_claims);
    assert_refused(&get(&service, "/me", &overreach).await, &overreach, &AuthError::InvalidTenant);
}

/// Beside another issuer, an issuer that says nothing of its tenants is refused at build
/// time: left to speak for every tenant, a partner's pool could mint tokens for all of them.
/// A lone issuer needs no binding; saying both is refused too.
#[test]
fn several_issuers_must_each_say_which_tenants_they_speak_for() {
    const PARTNER_SECRET: &[u8] = b"the-partner-hs256-secret-of-32-bytes!!!";
    let customers = || Issuer::hs256("customers", HS_SECRET.to_vec()).audience(AUDIENCE);
    let partner = || Issuer::hs256("partner", PARTNER_SECRET.to_vec()).audience(AUDIENCE);
    let unbound = JwtLayer::builder().issuer(customers().any_tenant()).issuer(partner()).build();
    assert_eq!(unbound.err(), Some(ConfigError::UnboundIssuer("partner".into())));
    let message = ConfigError::UnboundIssuer("partner".into()).to_string();
    assert!(message.contains("partner") && message.contains("any_tenant"), "{message}");
    assert!(JwtLayer::builder()
        .issuer(customers().any_tenant())
        .issuer(partner().tenants(["globex"]))
        .build()
        .is_ok());
    assert!(JwtLayer::builder().issuer(customers()).build().is_ok(), "a lone issuer speaks for any tenant");
    assert!(Verifier::builder().issuer(customers()).issuer(partner().tenants(["globex"])).build().is_err());
    let both = customers().tenants(["acme"]).any_tenant();
    assert!(matches!(JwtLayer::builder().issuer(both).build(), Err(ConfigError::InvalidSetting(_))));
}
