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

/// The region of the KMS mock and of the client that calls it.
const KMS_REGION: &str = "eu-west-1";
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

/// The payments service as it runs with personal data protection: JWT, idempotency on
/// creates and refunds, and customer keys (crypto-shredding) wrapped by the KMS mock.
pub(crate) struct Protected {
    pub(crate) env: Env,
    pub(crate) keys: lift::security::protection::SubjectKeys,
    pub(crate) kms: lift_harness::aws::KmsMock,
    pub(crate) idempotency_table: String,
    pub(crate) subject_keys_table: String,
}

impl Protected {
    /// Subject keys of another process (no cache shared with the service's).
    pub(crate) fn fresh_keys(&self) -> lift::security::protection::SubjectKeys {
        lift::security::protection::SubjectKeys::builder()
            .client(self.env.client.clone())
            .table(&self.subject_keys_table)
            .kms(
                lift::security::protection::AwsKmsClient::endpoint(&self.kms.uri(), KMS_REGION)
                    .expect("kms client"),
                lift_harness::aws::DEFAULT_KEY_ALIAS,
            )
            .cache_ttl(std::time::Duration::ZERO)
            .build()
            .expect("valid subject keys")
    }

    /// Every item of a table, raw.
    pub(crate) async fn scan(
        &self,
        table: &str,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .env
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return items,
            }
        }
    }
}

/// The protected service over new tables.
pub(crate) async fn protected() -> Protected {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let table = ddb.create_table(&payments::table_def()).await.expect("create the payments table");
    let idempotency_table =
        ddb.create_table(&lift::store::tables::idempotency()).await.expect("the idempotency table");
    let subject_keys_table =
        ddb.create_table(&lift::store::tables::subject_keys()).await.expect("the subject key table");
    let client = ddb.client().await;
    let kms = lift_harness::aws::KmsMock::start(KMS_REGION).await;
    let keys = lift::security::protection::SubjectKeys::builder()
        .client(client.clone())
        .table(&subject_keys_table)
        .kms(
            lift::security::protection::AwsKmsClient::endpoint(&kms.uri(), KMS_REGION).expect("kms client"),
            lift_harness::aws::DEFAULT_KEY_ALIAS,
        )
        .build()
        .expect("valid subject keys");
    let store =
        PaymentStore::new(client.clone(), table.clone(), FINGERPRINT_KEY).with_subject_keys(keys.clone());
    let jwks = JwksIssuer::start().await.expect("the mocked JWKS issuer");
    let issuer = Issuer::jwks(jwks.issuer(), jwks.jwks_url()).audience(AUDIENCE);
    let jwt = payments::jwt_layer(issuer, false).expect("a valid JWT configuration");
    let idempotency = lift::middleware::idempotency::IdempotencyLayer::builder()
        .client(client.clone())
        .table(&idempotency_table)
        .methods([Method::POST])
        .require_key(true)
        .response_cipher(payments::privacy::ResponseSealer::new(keys.clone()))
        .payload_key(payments::idempotency_payload_key(FINGERPRINT_KEY))
        .build()
        .expect("a valid idempotency configuration");
    let payments = Payments { store: store.clone(), dev_tenant_header_insecure: false };
    let service = payments::service(payments, Some(jwt), Some(idempotency)).into_service();
    let env = Env { service, store, client, table, jwks, tokens: Mutex::default() };
    Protected { env, keys, kms, idempotency_table, subject_keys_table }
}

/// A Luhn-valid card number of a brand: `visa`, `mastercard` (51–55 or 2221–2720),
/// `amex` or `maestro` (16 digits).
pub(crate) fn card_of(brand: &str, rng: &mut impl Rng) -> String {
    let (prefix, len) = match brand {
        "visa" => ("4".to_owned(), 16),
        "mastercard" if rng.gen_bool(0.5) => (rng.gen_range(51..=55).to_string(), 16),
        "mastercard" => (rng.gen_range(2221..=2720).to_string(), 16),
        "amex" => (if rng.gen_bool(0.5) { "34" } else { "37" }.to_owned(), 15),
        "maestro" => {
            let prefixes = ["5018", "5020", "5038", "6304", "6759", "6761", "6763"];
            (prefixes[rng.gen_range(0..prefixes.len())].to_owned(), 16)
        }
        other => panic!("no generator for {other}"),
    };
    let mut digits = prefix;
    while digits.len() < len - 1 {
        digits.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    let check = (0..10).find(|d| payments::card::luhn_valid(&format!("{digits}{d}"))).unwrap();
    format!("{digits}{check}")
}

/// A card number as typed: bare, spaced or dashed in groups of four.
pub(crate) fn typed(pan: &str, separator: Option<char>) -> String {
    let Some(sep) = separator else { return pan.to_owned() };
    let groups: Vec<String> =
        pan.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    groups.join(&sep.to_string())
}

/// A valid-looking US SSN, dashed (area 001–665, group 01–99, serial 0001–9999).
pub(crate) fn ssn(rng: &mut impl Rng) -> String {
    format!("{:03}-{:02}-{:04}", rng.gen_range(1..=665), rng.gen_range(1..=99), rng.gen_range(1..=9999))
}

/// The forms a value could be found in: as sent, and its digits alone.
pub(crate) fn forms(value: &str) -> Vec<String> {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    let mut forms = vec![value.to_owned()];
    if digits != value {
        forms.push(digits);
    }
    forms
}

/// Every string in an item (S, N, B as text, lists and maps), joined.
pub(crate) fn item_text(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> String {
    fn push(value: &aws_sdk_dynamodb::types::AttributeValue, out: &mut String) {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        match value {
            A::S(s) | A::N(s) => out.push_str(s),
            A::B(b) => out.push_str(&String::from_utf8_lossy(b.as_ref())),
            A::L(items) => items.iter().for_each(|v| push(v, out)),
            A::M(map) => map.iter().for_each(|(k, v)| {
                out.push_str(k);
                out.push('\n');
                push(v, out);
            }),
            A::Ss(items) | A::Ns(items) => items.iter().for_each(|s| out.push_str(s)),
            other => out.push_str(&format!("{other:?}")),
        }
        out.push('\n');
    }
    let mut out = String::new();
    for (name, value) in item {
        out.push_str(name);
        out.push('\n');
        push(value, &mut out);
    }
    out
}

/// Log lines of every test of the binary, captured by a global subscriber (DEBUG and up).
pub(crate) fn captured_logs() -> std::sync::Arc<Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<std::sync::Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = std::sync::Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        buffer
    })
    .clone()
}

struct LogWriter(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
