//! Where the idempotency key comes from, and what a record is keyed by.

use http::HeaderName;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::body::Request;
use crate::context::Context;

/// The header the key is read from by default.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The longest key accepted from a header.
const MAX_KEY_LEN: usize = 255;

/// Where a request's idempotency key comes from.
///
/// # Examples
///
/// ```
/// use lift::middleware::idempotency::KeySource;
///
/// let header = KeySource::default();
/// let fields = KeySource::json_fields(["/customer/id", "/reference"]);
/// # let _ = (header, fields);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// A header (default `Idempotency-Key`): 1 to 255 printable ASCII characters,
    /// optionally quoted as the IETF draft's structured-field string.
    Header(HeaderName),
    /// Fields of the JSON body, as JSON pointers (`/customer/id`): the key is the SHA-256
    /// of their values. Every field must be present and not null.
    JsonFields(Vec<String>),
}

impl Default for KeySource {
    fn default() -> Self {
        Self::Header(IDEMPOTENCY_KEY)
    }
}

impl KeySource {
    /// A key from these JSON pointers into the body.
    pub fn json_fields<I: IntoIterator<Item = S>, S: Into<String>>(pointers: I) -> Self {
        Self::JsonFields(pointers.into_iter().map(Into::into).collect())
    }

    /// The key of a request: `Ok(None)` when it has none, `Err` with a detail when the
    /// header is malformed.
    pub(crate) fn extract(&self, req: &Request) -> Result<Option<String>, &'static str> {
        match self {
            Self::Header(name) => {
                let Some(value) = req.headers().get(name) else {
                    return Ok(None);
                };
                let text = value.to_str().map_err(|_| "the idempotency key must be printable ASCII")?;
                let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
                let valid = !text.is_empty()
                    && text.len() <= MAX_KEY_LEN
                    && text.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
                if valid {
                    Ok(Some(format!("h:{text}")))
                } else {
                    Err("the idempotency key must be 1 to 255 printable ASCII characters")
                }
            }
            Self::JsonFields(pointers) => {
                let Ok(body) = serde_json::from_slice::<Value>(req.body().as_bytes()) else {
                    return Ok(None);
                };
                let mut values = Vec::with_capacity(pointers.len());
                for pointer in pointers {
                    match body.pointer(pointer) {
                        Some(Value::Null) | None => return Ok(None),
                        Some(value) => values.push(value),
                    }
                }
                let canonical = serde_json::to_vec(&values).unwrap_or_default();
                Ok(Some(format!("j:{}", hex(&Sha256::digest(canonical)))))
            }
        }
    }
}

/// Who a record belongs to: the authenticated principal's tenant, and its subject qualified
/// by the issuer that vouched for it, since two issuers may both have a user `alice`.
///
/// Keys are scoped to the principal, as Stripe scopes them to the account and API key: a
/// key one caller used is invisible to every other caller, even of the same tenant, so
/// nobody can replay another's answer or poison another's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) tenant: String,
    pub(crate) subject: String,
}

impl Scope {
    /// The scope of a request: its principal's; without one, `None`, or the trusted
    /// tenant (or `-`) with no subject when anonymous requests are allowed.
    pub(crate) fn of(req: &Request, allow_anonymous: bool) -> Option<Self> {
        let ctx = Context::of(req);
        if let Some(p) = ctx.and_then(Context::principal) {
            // A subject is unique within its issuer only: with one, the scope names both.
            // Without one, the form records have always had (`s:` and the subject).
            let subject = match p.issuer {
                Some(_) => format!("i:{}", p.qualified_subject()),
                None => format!("s:{}", p.subject),
            };
            return Some(Self { tenant: p.tenant.clone(), subject });
        }
        allow_anonymous.then(|| Self {
            tenant: ctx.and_then(Context::tenant).unwrap_or("-").to_owned(),
            subject: "-".to_owned(),
        })
    }
}

/// Put in the request's extensions by the idempotency layer once it holds the request's
/// key: a name for the operation the key stands for, the same for every retry under that
/// key (same tenant, subject, method and path) and for no other operation.
///
/// A handler that creates something under a name it makes up (a payment id, a refund id)
/// should derive the name from [`id`](Self::id): a retry that runs again after the first
/// attempt's answer was lost (a timeout, a 503 after the write committed, which releases
/// the key) then meets its own conditional write instead of writing a second time.
///
/// # Examples
///
/// ```
/// use lift::middleware::idempotency::IdempotentRequest;
///
/// fn refund_id(req: &lift::Request) -> String {
///     match IdempotentRequest::of(req) {
///         Some(idem) => format!("re_{}", &idem.id()[..32]),
///         None => format!("re_{}", uuid::Uuid::new_v4().simple()),
///     }
/// }
/// # let _ = refund_id;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    id: String,
}

impl IdempotentRequest {
    pub(crate) fn new(record_key: &str) -> Self {
        Self { id: record_key.trim_start_matches("idem#").to_owned() }
    }

    /// 64 lowercase hex digits: a SHA-256 over tenant, subject, method, path and key (the
    /// record's key, so a path spelled with other percent-escapes of the same characters
    /// gives the same id).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The request's, when the idempotency layer holds its key.
    pub fn of<B>(req: &http::Request<B>) -> Option<&Self> {
        req.extensions().get()
    }
}

/// The record key: a digest of tenant, subject, method, path ([normalized](normalized_path))
/// and key, each length-prefixed so no two different tuples can collide, and never longer
/// than a partition key allows.
pub(crate) fn record_key(scope: &Scope, method: &http::Method, path: &str, key: &str) -> String {
    let path = normalized_path(path);
    let mut digest = Sha256::new();
    for part in [scope.tenant.as_str(), scope.subject.as_str(), method.as_str(), &path, key] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    format!("idem#{}", hex(&digest.finalize()))
}

/// The path with its percent-encoding normalized as the router reads it: escapes of
/// printable ASCII characters but `/` and `%` [decoded](decodes), the hex of every other
/// escape in upper case (RFC 3986 §6.2.2.1).
///
/// The router decodes path parameters, so `/payments/p%5F1/refunds` and
/// `/payments/p_1/refunds` reach one handler with one id: keyed on the raw path, a retry
/// whose path a proxy re-encoded would get a record of its own and run again. `%2F` stays
/// an escape: `a%2Fb` is one segment, `a/b` two. A path without escapes, or already
/// normalized, is returned as it is, so its records keep their keys; a record keyed before
/// this normalization under a path with escapes gets a new key once, so a retry that spans
/// the upgrade runs again.
fn normalized_path(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains('%') {
        return std::borrow::Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = match bytes.get(i + 1..i + 3) {
            Some(&[hi, lo]) if bytes[i] == b'%' => hex_value(hi).zip(hex_value(lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escape {
            Some(byte) if decodes(byte) => {
                out.push(char::from(byte));
                i += 3;
            }
            Some(byte) => {
                const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(DIGITS[usize::from(byte >> 4)]));
                out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
                i += 3;
            }
            // A `%` that starts no escape is left as it is, as the router leaves it.
            None => {
                let end = bytes[i + 1..].iter().position(|&b| b == b'%').map_or(bytes.len(), |p| i + 1 + p);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether the escape of `byte` is keyed as the character itself: every printable ASCII
/// character but `/` and `%`. The router decodes every escape in a path parameter, so
/// `alice%40example.com` and `alice@example.com` reach the handler as one id; a character
/// that cannot stand raw in a path (`?`, `#`, space) decodes without meeting a raw
/// spelling. `%2F` stays an escape (`a%2Fb` is one segment, `a/b` two), `%25` too (decoded,
/// `%2541` would meet `%41`), and so do control characters and bytes beyond ASCII, in
/// upper-case hex.
fn decodes(byte: u8) -> bool {
    (0x20..=0x7e).contains(&byte) && byte != b'/' && byte != b'%'
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// What a repeat must match: the query string and the body.
///
/// Without a query, the SHA-256 of the body in hex, as records have always held it. With
/// one, `q:` and the SHA-256 of query and body, each length-prefixed: `?amount=1` and
/// `?amount=900` under one key differ, no split of bytes between query and body can
/// collide, and the prefix keeps the two forms apart.
pub(crate) fn payload_hash(query: Option<&str>, body: &[u8]) -> String {
    match query.filter(|q| !q.is_empty()) {
        None => hex(&Sha256::digest(body)),
        Some(query) => {
            let mut digest = Sha256::new();
            for part in [query.as_bytes(), body] {
                digest.update((part.len() as u64).to_be_bytes());
                digest.update(part);
            }
            format!("q:{}", hex(&digest.finalize()))
        }
    }
}

/// What a repeat must match, keyed: `k:` and the HMAC-SHA256 under `key` of the query and
/// the body, each length-prefixed. A plain SHA-256 of a body holding a card number can be
/// reversed by trying the numbers the rest of the record leaves possible (PCI DSS 3.5.1.1
/// asks for keyed hashes); without the key, this one cannot.
pub(crate) fn keyed_payload_hash(key: &[u8], query: Option<&str>, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in [query.unwrap_or_default().as_bytes(), body] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    format!("k:{}", hex(&mac.finalize().into_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Body;

    fn req(key: Option<&str>, body: &'static str) -> Request {
        let mut b = http::Request::builder().method("POST").uri("/payments");
        if let Some(key) = key {
            b = b.header("idempotency-key", key);
        }
        b.body(Body::from(body)).unwrap()
    }

    #[test]
    fn header_keys_are_checked_and_unquoted() {
        let source = KeySource::default();
        assert_eq!(source.extract(&req(Some("abc-1"), "")), Ok(Some("h:abc-1".into())));
        assert_eq!(source.extract(&req(Some("\"abc-1\""), "")), Ok(Some("h:abc-1".into())));
        assert_eq!(source.extract(&req(None, "")), Ok(None));
        assert!(source.extract(&req(Some("has space"), "")).is_err());
        assert!(source.extract(&req(Some(&"x".repeat(256)), "")).is_err());
    }

    #[test]
    fn json_field_keys_need_every_field() {
        let source = KeySource::json_fields(["/customer/id", "/ref"]);
        let a = source.extract(&req(None, r#"{"customer":{"id":"c1"},"ref":7,"amount":1}"#)).unwrap();
        let b = source.extract(&req(None, r#"{"amount":2,"ref":7,"customer":{"id":"c1"}}"#)).unwrap();
        assert!(a.is_some() && a == b);
        assert_eq!(source.extract(&req(None, r#"{"customer":{"id":"c1"}}"#)), Ok(None));
        assert_eq!(source.extract(&req(None, "not json")), Ok(None));
    }

    fn scope(tenant: &str, subject: &str) -> Scope {
        Scope { tenant: tenant.into(), subject: subject.into() }
    }

    #[test]
    fn record_keys_do_not_collide_across_parts() {
        let m = http::Method::POST;
        let k = |t: &str, s: &str, p: &str| record_key(&scope(t, s), &m, p, "k");
        assert_ne!(k("ab", "s", "/c"), k("a", "bs", "/c"));
        assert_ne!(k("a", "s", "/c"), k("a", "s/c", ""));
        assert_ne!(k("t1", "s", "/p"), k("t2", "s", "/p"));
        assert_ne!(k("t", "s:alice", "/p"), k("t", "s:bob", "/p"), "two principals of one tenant");
    }

    /// A path without escapes keys its record as it always has (the digest below was
    /// computed outside this code, from the raw path), and escapes of the same characters
    /// give the same key.
    #[test]
    fn record_keys_of_unescaped_paths_are_unchanged_and_escapes_are_normalized() {
        let m = http::Method::POST;
        let alice = scope("acme", "s:alice");
        let key = |path: &str| record_key(&alice, &m, path, "h:k-1");
        assert_eq!(
            key("/payments/p_1/refunds"),
            "idem#3b1737453d476bea40d1c63aeba9483695b140b70ef2f86629bf4123ff015e83"
        );
        for spelled in ["/payments/p%5F1/refunds", "/payments/p%5f1/refunds", "/pay%6Dents/%70_%31/refunds"] {
            assert_eq!(key(spelled), key("/payments/p_1/refunds"), "{spelled}");
        }
        assert_ne!(
            key("/payments/a%2Fb/refunds"),
            key("/payments/a/b/refunds"),
            "a reserved escape stays one"
        );
        assert_eq!(key("/payments/a%2fb/refunds"), key("/payments/a%2Fb/refunds"));
        assert_eq!(
            IdempotentRequest::new(&key("/payments/p%5F1/refunds")),
            IdempotentRequest::new(&key("/payments/p_1/refunds")),
            "one operation, one id"
        );
    }

    #[test]
    fn paths_are_normalized_per_rfc_3986() {
        let norm = |p: &str| normalized_path(p).into_owned();
        assert!(matches!(normalized_path("/payments/p_1"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(normalized_path("/a%2Fb"), std::borrow::Cow::Owned(ref p) if p == "/a%2Fb"));
        assert_eq!(norm("/%41%7a%30%2D%2e%5F%7E"), "/Az0-._~");
        // What the router decodes in a parameter decodes here too, but `/` and `%`.
        assert_eq!(norm("/a%2fb%3a%20c%c3%a9"), "/a%2Fb: c%C3%A9");
        assert_eq!(norm("/users/alice%40example.com/orders"), "/users/alice@example.com/orders");
        assert_eq!(norm("/x%2B%2C%3B%3D%21%24%26%27%28%29%2A"), "/x+,;=!$&'()*");
        assert_eq!(norm("/x%2541%0a%7f"), "/x%2541%0A%7F");
        assert_eq!(norm("/100%"), "/100%");
        assert_eq!(norm("/%zz%4"), "/%zz%4");
        assert_eq!(norm("/%%41"), "/%A");
        assert_eq!(norm("%"), "%");
    }

    #[test]
    fn payload_hashes_cover_the_query() {
        let plain = payload_hash(None, b"{}");
        assert_eq!(plain, hex(&Sha256::digest(b"{}")), "without a query, the hash records always held");
        assert_eq!(payload_hash(Some(""), b"{}"), plain);
        assert_ne!(payload_hash(Some("amount=1"), b"{}"), payload_hash(Some("amount=900"), b"{}"));
        assert_ne!(payload_hash(Some("amount=1"), b"{}"), plain);
        assert_ne!(
            payload_hash(Some("a"), b"b{}"),
            payload_hash(Some("ab"), b"{}"),
            "query and body stay apart"
        );
    }

    #[test]
    fn the_scope_is_the_principals_and_anonymous_only_when_allowed() {
        let mut req = req(Some("k"), "");
        assert_eq!(Scope::of(&req, false), None, "no context: no scope");
        assert_eq!(Scope::of(&req, true), Some(scope("-", "-")));
        let mut ctx = Context::new("r");
        ctx.set_tenant("acme");
        req.extensions_mut().insert(ctx);
        assert_eq!(Scope::of(&req, false), None, "a tenant without a principal is not a principal");
        assert_eq!(Scope::of(&req, true), Some(scope("acme", "-")));
        let ctx = Context::of_mut(&mut req).unwrap();
        ctx.set_principal(crate::Principal::new("alice", "acme"));
        assert_eq!(Scope::of(&req, false), Some(scope("acme", "s:alice")));
        assert_eq!(Scope::of(&req, true), Some(scope("acme", "s:alice")));
    }

    /// The same subject of the same tenant from two issuers is two callers: the records of
    /// one are invisible to the other. A scope of tenant and subject alone gave both one.
    #[test]
    fn the_scope_names_the_issuer_of_the_subject() {
        let scope_by = |principal: crate::Principal| {
            let mut req = req(Some("k"), "");
            let mut ctx = Context::new("r");
            ctx.set_principal(principal);
            req.extensions_mut().insert(ctx);
            Scope::of(&req, false).expect("a principal has a scope")
        };
        let ours = scope_by(crate::Principal::new("alice", "acme").with_issuer("https://id.example.com"));
        let partner =
            scope_by(crate::Principal::new("alice", "acme").with_issuer("https://partner.example.net"));
        let bare = scope_by(crate::Principal::new("alice", "acme"));
        assert_eq!(ours, scope("acme", "i:22:https://id.example.com|alice"));
        assert_ne!(ours, partner);
        assert_ne!(ours, bare);
        let m = http::Method::POST;
        assert_ne!(record_key(&ours, &m, "/p", "k"), record_key(&partner, &m, "/p", "k"));
    }
}
