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

/// The record key: a digest of tenant, method, path and key, each length-prefixed so no
/// two different tuples can collide, and never longer than a partition key allows.
pub(crate) fn record_key(tenant: &str, method: &http::Method, path: &str, key: &str) -> String {
    let mut digest = Sha256::new();
    for part in [tenant, method.as_str(), path, key] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    format!("idem#{}", hex(&digest.finalize()))
}

/// The tenant a record is scoped by: the [`Context`]'s, or `-` without one.
pub(crate) fn tenant_of(req: &Request) -> String {
    Context::of(req).and_then(Context::tenant).unwrap_or("-").to_owned()
}

/// SHA-256 of the body, hex.
pub(crate) fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
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

    #[test]
    fn record_keys_do_not_collide_across_parts() {
        let m = http::Method::POST;
        assert_ne!(record_key("ab", &m, "/c", "k"), record_key("a", &m, "b/c", "k"));
        assert_ne!(record_key("t1", &m, "/p", "k"), record_key("t2", &m, "/p", "k"));
    }
}
