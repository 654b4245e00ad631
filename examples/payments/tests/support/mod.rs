//! Shared set-up for the payments tests: a fresh table on real DynamoDB Local per test, and
//! the payments app behind a JWT layer that trusts the harness's mocked issuer.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use http::{header, Method};
use lift::app::AppService;
use lift::middleware::auth::Issuer;
use lift::{Body, Request, Response};
use lift_harness::aws::{Alg, JwksIssuer};
use lift_harness::dynamodb::DynamoDbLocal;
use payments::{PaymentStore, Payments};
use rand::Rng;
use tower::ServiceExt;

pub(crate) const FINGERPRINT_KEY: &[u8] = b"test-fingerprint-key-0123456789ab";
/// The audience the app's JWT layer expects.
pub(crate) const AUDIENCE: &str = payments::DEFAULT_AUDIENCE;
/// Both payments scopes.
pub(crate) const ALL_SCOPES: &[&str] = &[payments::READ_SCOPE, payments::WRITE_SCOPE];

/// The payments app over a new, uniquely named table, behind JWT authentication.
pub(crate) struct Env {
    pub(crate) service: AppService,
    pub(crate) store: PaymentStore,
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    /// The mocked issuer whose tokens the app trusts.
    pub(crate) jwks: JwksIssuer,
    /// Tokens already signed, by tenant and scopes (RSA signing is slow in debug builds).
    tokens: Mutex<HashMap<String, String>>,
}

/// JWT authentication, with the development tenant header on too (for tests that build raw
/// requests with [`request`]).
pub(crate) async fn env() -> Env {
    env_with(true).await
}

/// JWT authentication, with the development tenant header on or off.
pub(crate) async fn env_with(dev_tenant_header: bool) -> Env {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let table = ddb.create_table(&payments::table_def()).await.expect("create the payments table");
    let client = ddb.client().await;
    let store = PaymentStore::new(client.clone(), table.clone(), FINGERPRINT_KEY);
    let jwks = JwksIssuer::start().await.expect("the mocked JWKS issuer");
    let issuer = Issuer::jwks(jwks.issuer(), jwks.jwks_url()).audience(AUDIENCE);
    let jwt = payments::jwt_layer(issuer, dev_tenant_header).expect("a valid JWT configuration");
    let payments = Payments { store: store.clone(), dev_tenant_header_insecure: dev_tenant_header };
    let service = payments::app_with_jwt(payments, jwt).into_service();
    Env { service, store, client, table, jwks, tokens: Mutex::default() }
}

impl Env {
    pub(crate) async fn call(&self, req: Request) -> Response {
        self.service.clone().oneshot(req).await.unwrap()
    }

    /// Sends a request as a user of `tenant` holding both payments scopes (a real RS256 JWT).
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &str,
        tenant: &str,
        body: Option<serde_json::Value>,
    ) -> Response {
        self.call(self.request_as(method, uri, tenant, body)).await
    }

    /// The claims of a token for `tenant` with `scopes`.
    pub(crate) fn claims(&self, tenant: &str, scopes: &[&str]) -> serde_json::Value {
        let mut claims = self.jwks.claims(&format!("user-of-{tenant}"), AUDIENCE);
        claims["tenant_id"] = tenant.into();
        claims["scope"] = scopes.join(" ").into();
        claims
    }

    /// An RS256 token for `tenant` with `scopes`.
    pub(crate) fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        let key = format!("{tenant} {}", scopes.join(" "));
        let mut tokens = self.tokens.lock().unwrap();
        tokens
            .entry(key)
            .or_insert_with(|| self.jwks.sign(&self.claims(tenant, scopes), Alg::Rs256, None).expect("sign"))
            .clone()
    }

    /// A request as a user of `tenant` holding both payments scopes.
    pub(crate) fn request_as(
        &self,
        method: Method,
        uri: &str,
        tenant: &str,
        body: Option<serde_json::Value>,
    ) -> Request {
        authorized(method, uri, &self.token(tenant, ALL_SCOPES), body)
    }
}

/// A request with a bearer token.
pub(crate) fn authorized(method: Method, uri: &str, token: &str, body: Option<serde_json::Value>) -> Request {
    let mut req = request(method, uri, None, body);
    req.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    req
}

/// A request that names its tenant in the development header (no token).
pub(crate) fn request(
    method: Method,
    uri: &str,
    tenant: Option<&str>,
    body: Option<serde_json::Value>,
) -> Request {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(tenant) = tenant {
        builder = builder.header(payments::DEV_TENANT_HEADER, tenant);
    }
    let body = match body {
        Some(json) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(&json).unwrap())
        }
        None => Body::empty(),
    };
    builder.body(body).unwrap()
}

pub(crate) fn json(res: &Response) -> serde_json::Value {
    serde_json::from_slice(res.body().as_bytes())
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(res.body().as_bytes())))
}

/// A random Luhn-valid card number of a common brand.
pub(crate) fn card_number() -> String {
    let mut rng = rand::thread_rng();
    let (prefix, len) = match rng.gen_range(0..3) {
        0 => ("4", 16),
        1 => ("51", 16),
        _ => ("37", 15),
    };
    let mut digits: String = prefix.to_owned();
    while digits.len() < len - 1 {
        digits.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    let check = (0..10).find(|d| payments::card::luhn_valid(&format!("{digits}{d}"))).unwrap();
    format!("{digits}{check}")
}

/// A payment request with a generated customer.
pub(crate) fn new_payment(amount: u64, currency: &str) -> serde_json::Value {
    use fake::faker::internet::en::SafeEmail;
    use fake::faker::name::en::Name;
    use fake::Fake;
    let name: String = Name().fake();
    let email: String = SafeEmail().fake();
    serde_json::json!({
        "card_number": card_number(),
        "amount": amount,
        "currency": currency,
        "customer": { "id": format!("cus_{}", rand::thread_rng().gen::<u32>()), "name": name, "email": email }
    })
}
