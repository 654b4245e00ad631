//! Sensitive data on the way in: what is refused, masked or encrypted, field by field.
//!
//! Every request is classified with Lift's data protection
//! ([`lift::security::protection`]) after authentication and before routing, by
//! [`ClassificationLayer`]: refused requests reach neither a handler nor the idempotency
//! records, and an anonymous caller learns nothing (it is refused with 401 first).
//!
//! | Where | What | Policy |
//! |---|---|---|
//! | `card_number` | the card number | validated (Luhn), never stored: brand, last four and a keyed fingerprint only |
//! | any other body field | a card number (PAN) | **refused**, 422 naming the field as a JSON pointer, never the value |
//! | `id`, `customer.id` | an SSN or IBAN | **refused**, 422: ids are stored and logged in clear (they key records and erasure) |
//! | query parameters, `Idempotency-Key` | a PAN, SSN or IBAN | **refused**, 422 naming the parameter or header |
//! | `description`, `customer.name`, refund `reason` | SSNs, IBANs, emails, phone numbers and other detected values in free text | **masked** (`[REDACTED:ssn]` …) before storage, then encrypted |
//! | `customer.name`, `customer.email`, `customer.country`, `description`, `reason` | personal data | **encrypted** under the customer's own key ([`SubjectKeys`]), erased by `DELETE /customers/:id` |
//! | stored idempotency responses | the answers above | **encrypted** under the same customer key (see [`ResponseSealer`]) |
//!
//! Error bodies never echo a value: validation details name the field and the rule, and
//! JSON type errors come from [`lift::body::parse_json`], which drops the received value.
//!
//! [`SubjectKeys`]: lift::security::protection::SubjectKeys

use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};

use lift::app::Route;
use lift::security::protection::detect::{detect_value, scan_text};
use lift::security::protection::{classify_json, DataClass, HashKey, MaskStrategy, Policy};
use lift::{Context, Request, Response};

/// The problem type of a refused sensitive value.
pub const SENSITIVE_DATA_PROBLEM: &str = "https://lift.dev/problems/sensitive-data";

/// The only field a card number is accepted in.
pub const CARD_FIELD: &str = "/card_number";

/// Body fields stored in clear as identifiers: no restricted value may be one.
const ID_FIELDS: &[&str] = &["/id", "/customer/id"];

/// Classes refused in identifiers, query parameters and the idempotency key.
fn restricted_id_class(class: DataClass) -> bool {
    matches!(class, DataClass::Pan | DataClass::Ssn | DataClass::Iban)
}

/// Why a request was refused: the field (JSON pointer, `query.<name>` or
/// `header.<name>`) and the class found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Where the value was.
    pub field: String,
    /// What it is.
    pub class: DataClass,
}

impl Refusal {
    fn detail(&self) -> String {
        match self.class {
            DataClass::Pan => "a card number is accepted only in card_number".to_owned(),
            class => format!("this field must not hold sensitive data ({})", class.as_str()),
        }
    }

    /// The 422 problem response (no value in it), through Lift's one problem path.
    pub fn render(&self, request_id: Option<&str>) -> Response {
        lift::Error::unprocessable(self.detail())
            .with_type(SENSITIVE_DATA_PROBLEM, "Sensitive data in the wrong place")
            .with_field(self.field.clone())
            .render(request_id)
    }
}

/// The restricted classes of a value, by its whole content and by spans of it.
fn restricted_classes(text: &str) -> Vec<DataClass> {
    let mut classes: Vec<DataClass> = detect_value(text).into_iter().collect();
    classes.extend(scan_text(text).into_iter().map(|m| m.class));
    classes.retain(|c| restricted_id_class(*c));
    // A card number is the weightier finding: it decides the answer.
    classes.sort_by_key(|c| *c != DataClass::Pan);
    classes.dedup();
    classes
}

/// The restricted class of a value (a card number first), if any.
fn restricted_in(text: &str) -> Option<DataClass> {
    restricted_classes(text).into_iter().next()
}

/// `%XX` and `+` decoded (invalid escapes kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A name from the request shown in a refusal only when it is a plain identifier.
fn shown_name(name: &str) -> &str {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name.bytes().filter(u8::is_ascii_digit).count() < 4;
    if plain {
        name
    } else {
        "?"
    }
}

/// Classifies a request: the first value that must be refused, if any.
pub fn inspect(req: &Request) -> Option<Refusal> {
    for (name, value) in req.uri().query().unwrap_or("").split('&').filter_map(|kv| kv.split_once('=')) {
        let name = percent_decode(name);
        let value = percent_decode(value);
        if let Some(class) = restricted_in(&value).or_else(|| restricted_in(&name)) {
            return Some(Refusal { field: format!("query.{}", shown_name(&name)), class });
        }
    }
    let key = req.headers().get(lift::middleware::idempotency::IDEMPOTENCY_KEY);
    if let Some(class) =
        key.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).and_then(|v| restricted_in(&v))
    {
        return Some(Refusal { field: "header.idempotency-key".to_owned(), class });
    }
    if req.body().is_empty() {
        return None;
    }
    // A body that is not JSON is refused by the handler (without echoing it).
    let body: serde_json::Value = serde_json::from_slice(req.body().as_bytes()).ok()?;
    // Field names first (a value under a card field elsewhere), then every value's text:
    // the classifier stops at a field's name (`name` is a person's name), but a card
    // number typed into a name is still a card number.
    let mut findings: Vec<(String, DataClass)> =
        classify_json(&body).findings.into_iter().map(|f| (f.path, f.class)).collect();
    walk(&body, &mut String::new(), &mut findings);
    findings
        .into_iter()
        .find(|(path, class)| match class {
            DataClass::Pan => path != CARD_FIELD,
            class => restricted_id_class(*class) && ID_FIELDS.contains(&path.as_str()),
        })
        .map(|(field, class)| Refusal { field, class })
}

/// Every restricted value of a document by its text, with its JSON pointer.
fn walk(value: &serde_json::Value, path: &mut String, out: &mut Vec<(String, DataClass)>) {
    let len = path.len();
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk(value, path, out);
                path.truncate(len);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                path.push_str(&format!("/{i}"));
                walk(value, path, out);
                path.truncate(len);
            }
        }
        serde_json::Value::String(text) => {
            out.extend(restricted_classes(text).into_iter().map(|class| (path.clone(), class)));
        }
        serde_json::Value::Number(n) => {
            out.extend(restricted_classes(&n.to_string()).into_iter().map(|class| (path.clone(), class)));
        }
        serde_json::Value::Bool(_) | serde_json::Value::Null => {}
    }
}

/// The masking policy of free text: every detected value redacted (`[REDACTED:ssn]`).
/// `key` keys the hashes of any class set to [`MaskStrategy::KeyedHash`] (none by default).
pub fn free_text_policy(key: &[u8]) -> Policy {
    Policy::new(HashKey::new(key.to_vec())).strategy(DataClass::Email, MaskStrategy::Redact)
}

/// Free text with its sensitive values masked.
pub fn mask_free_text(text: &str, policy: &Policy) -> String {
    lift::security::protection::mask_spans(text, policy).unwrap_or_else(|| text.to_owned())
}

/// Refuses requests that carry sensitive values where they must not be (see the
/// [module docs](self)); add it inside authentication.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassificationLayer;

impl tower::Layer<Route> for ClassificationLayer {
    type Service = Classification;

    fn layer(&self, inner: Route) -> Classification {
        Classification(inner)
    }
}

/// The service of [`ClassificationLayer`].
#[derive(Debug, Clone)]
pub struct Classification(Route);

impl tower::Service<Request> for Classification {
    type Response = Response;
    type Error = Infallible;
    type Future = <Route as tower::Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // Unauthenticated requests go on to be refused by the scope checks, learning
        // nothing about what classification would have said.
        let authenticated = Context::of(&req).and_then(Context::principal).is_some();
        match inspect(&req).filter(|_| authenticated) {
            None => self.0.call(req),
            Some(refusal) => {
                tracing::info!(field = %refusal.field, class = refusal.class.as_str(), "sensitive value refused");
                let request_id = Context::of(&req).map(|c| c.request_id().to_owned());
                Box::pin(std::future::ready(Ok(refusal.render(request_id.as_deref()))))
            }
        }
    }
}

/// The subject of stored answers that name no customer (refusals and other problems,
/// which carry no personal data): a tenant-wide key, never a customer id (ids cannot hold
/// `:`).
pub const TENANT_SUBJECT: &str = "tenant:responses";

/// Seals the answers the idempotency layer stores for replay under the key of the
/// customer they are about, so erasing the customer erases them too (before their TTL,
/// and in every backup of the idempotency table).
///
/// The subject is the customer the answer names: `customer.id` of a created payment,
/// `payment.customer.id` of a refund (the refunded payment's customer). An answer that
/// names none is sealed under [`TENANT_SUBJECT`].
#[derive(Debug, Clone)]
pub struct ResponseSealer {
    keys: lift::security::protection::SubjectKeys,
}

impl ResponseSealer {
    /// A sealer over the subject keys the payments store uses.
    pub fn new(keys: lift::security::protection::SubjectKeys) -> Self {
        Self { keys }
    }

    /// The subject an answer is about.
    pub fn subject_of(body: &[u8]) -> String {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        json.as_ref()
            .and_then(|v| v.pointer("/customer/id").or_else(|| v.pointer("/payment/customer/id")))
            .and_then(serde_json::Value::as_str)
            .filter(|id| crate::model::valid_id(id))
            .unwrap_or(TENANT_SUBJECT)
            .to_owned()
    }

    async fn seal_answer(&self, req: &Request, body: &[u8]) -> Result<Vec<u8>, lift::BoxError> {
        let tenant = Context::of(req).and_then(Context::tenant).unwrap_or("-");
        Ok(self.keys.encrypt(tenant, &Self::subject_of(body), body).await?)
    }

    async fn open_answer(&self, tenant: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>, lift::BoxError> {
        Ok(self.keys.decrypt(tenant, sealed).await?)
    }
}

/// `BoxFuture` of `futures_util`, spelled out.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl lift::middleware::idempotency::ResponseCipher for ResponseSealer {
    /// Seals an answer to `req` (the tenant is the request's) under its customer's key.
    fn seal<'a>(
        &'a self,
        req: &'a Request,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, lift::BoxError>> {
        Box::pin(self.seal_answer(req, body))
    }

    /// Opens a stored answer: `Ok(None)` when its customer was erased.
    fn open<'a>(
        &'a self,
        tenant: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, lift::BoxError>> {
        Box::pin(self.open_answer(tenant, sealed))
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use lift::Body;

    use super::*;

    fn post(uri: &str, body: serde_json::Value) -> Request {
        http::Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    #[test]
    fn a_card_number_is_refused_everywhere_but_card_number() {
        let ok = serde_json::json!({ "card_number": "4111 1111 1111 1111", "customer": { "id": "c_1" } });
        assert_eq!(inspect(&post("/payments", ok)), None);
        let cases = [
            (serde_json::json!({ "description": "card 4111 1111 1111 1111 thanks" }), "/description"),
            (serde_json::json!({ "customer": { "name": "5555-5555-5555-4444" } }), "/customer/name"),
            (serde_json::json!({ "id": "378282246310005" }), "/id"),
            (serde_json::json!({ "reason": "refund to 4111111111111111" }), "/reason"),
        ];
        for (body, field) in cases {
            let refusal = inspect(&post("/payments", body)).expect("refused");
            assert_eq!(refusal, Refusal { field: field.into(), class: DataClass::Pan });
            let res = refusal.render(Some("r-1"));
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let text = String::from_utf8(res.body().as_bytes().to_vec()).unwrap();
            assert!(!text.contains("4111") && !text.contains("5555") && !text.contains("3782"), "{text}");
        }
    }

    #[test]
    fn a_card_number_is_found_under_any_field_name_and_beside_an_ssn() {
        let named = serde_json::json!({ "customer": { "name": "see 4111 1111 1111 1111" } });
        assert_eq!(inspect(&post("/payments", named)).unwrap().field, "/customer/name");
        let both = serde_json::json!({ "description": "ssn 078-05-1120 card 5555555555554444" });
        assert_eq!(inspect(&post("/payments", both)).unwrap().class, DataClass::Pan);
        let number = serde_json::json!({ "amount": 4_111_111_111_111_111_u64 });
        assert_eq!(inspect(&post("/payments", number)).unwrap().field, "/amount");
    }

    #[test]
    fn ids_query_and_key_refuse_ssns_free_text_does_not() {
        let ssn_id = serde_json::json!({ "customer": { "id": "078-05-1120" } });
        assert_eq!(inspect(&post("/payments", ssn_id)).unwrap().class, DataClass::Ssn);
        assert_eq!(
            inspect(&post("/payments", serde_json::json!({ "description": "ssn 078-05-1120" }))),
            None
        );
        let query = http::Request::get("/payments?cursor=078-05-1120").body(Body::empty()).unwrap();
        assert_eq!(inspect(&query).unwrap().field, "query.cursor");
        let encoded = http::Request::get("/payments?limit=2&cursor=4111%201111%201111%201111")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            inspect(&encoded).unwrap(),
            Refusal { field: "query.cursor".into(), class: DataClass::Pan }
        );
        let keyed = http::Request::post("/payments")
            .header("idempotency-key", "078-05-1120")
            .body(Body::empty())
            .unwrap();
        assert_eq!(inspect(&keyed).unwrap().field, "header.idempotency-key");
        let plain = http::Request::get("/payments?limit=20&cursor=pay_3f2a9c1e").body(Body::empty()).unwrap();
        assert_eq!(inspect(&plain), None);
    }

    #[test]
    fn free_text_is_masked() {
        let policy = free_text_policy(b"0123456789abcdef0123456789abcdef");
        let masked = mask_free_text("ssn 078-05-1120, mail ada@example.com", &policy);
        assert!(!masked.contains("078-05-1120") && !masked.contains("ada@example.com"), "{masked}");
        assert_eq!(mask_free_text("Coffee beans", &policy), "Coffee beans");
    }

    #[test]
    fn answers_are_about_the_customer_they_name() {
        let created = br#"{"id":"pay_1","customer":{"id":"cus_1"}}"#;
        assert_eq!(ResponseSealer::subject_of(created), "cus_1");
        let refund = br#"{"id":"re_1","payment":{"customer":{"id":"cus_2"}}}"#;
        assert_eq!(ResponseSealer::subject_of(refund), "cus_2");
        assert_eq!(ResponseSealer::subject_of(br#"{"status":422}"#), TENANT_SUBJECT);
        assert_eq!(ResponseSealer::subject_of(br#"{"customer":{"id":"a:b"}}"#), TENANT_SUBJECT);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%zz%4"), "a b c%zz%4");
    }
}
