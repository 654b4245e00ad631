//! Request and response bodies, and JSON in and out.
//!
//! Lambda delivers a whole body at once, so Lift's [`Body`] is a buffered `Bytes` that
//! implements [`http_body::Body`]: it works with lambda_http, hyper and axum alike, and a
//! handler can read it without awaiting.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body::{Frame, SizeHint};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;

/// The request type every Lift handler and layer sees.
pub type Request = http::Request<Body>;

/// The response type every Lift handler and layer returns.
pub type Response = http::Response<Body>;

/// A fully buffered body.
///
/// # Examples
///
/// ```
/// let body = lift::Body::from("hello");
/// assert_eq!(body.as_bytes(), b"hello");
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Body(Bytes);

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self(Bytes::new())
    }

    /// The body's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The body as `Bytes`.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut self.0)))))
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.len() as u64)
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Self(Bytes::from(v))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Self(Bytes::from_static(s))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Self {
        Self::empty()
    }
}

/// Whether a content type is JSON (`application/json` or any `+json` type).
pub(crate) fn is_json_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses the request body as JSON.
///
/// Answers 415 when the content type is not JSON, and 400 naming the offending field when
/// the body does not parse into `T`.
///
/// # Examples
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Payment { amount: u64 }
///
/// let req = http::Request::builder()
///     .header("content-type", "application/json")
///     .body(lift::Body::from(r#"{"amount":"ten"}"#))
///     .unwrap();
/// let err = lift::read_json::<Payment>(&req).unwrap_err();
/// assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
/// assert_eq!(err.field(), Some("amount"));
/// ```
pub fn read_json<T: DeserializeOwned>(req: &Request) -> Result<T, Error> {
    if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return Err(Error::unsupported_media_type("application/json"));
    }
    parse_json(req.body().as_bytes())
}

/// Parses bytes as JSON into `T`, naming the offending field in the error.
///
/// The detail names the field and what was expected, never the value received: serde's
/// `invalid type: string "4111…", expected u64` becomes `invalid type: expected u64`, and
/// the same holds for invalid values and unknown variants. A client that sends a card
/// number or a social security number in the wrong field must not get it echoed back
/// (into its logs, an idempotency record, a proxy's cache). Map keys and unknown field
/// names come from the input too: they are named only when they look like identifiers.
///
/// # Examples
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Refund { amount: u64 }
///
/// let err = lift::body::parse_json::<Refund>(br#"{"amount":"4111 1111 1111 1111"}"#).unwrap_err();
/// assert_eq!(err.field(), Some("amount"));
/// assert_eq!(err.detail(), Some("invalid value for `amount`: invalid type: expected u64"));
/// ```
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = safe_path(err.path());
        let inner = err.into_inner();
        let field = if path.is_empty() { None } else { Some(path) };
        let detail = match (&field, inner.classify()) {
            (_, serde_json::error::Category::Eof) => "the JSON body ends unexpectedly".to_owned(),
            (_, serde_json::error::Category::Syntax) => {
                format!("the JSON body is not valid JSON (line {}, column {})", inner.line(), inner.column())
            }
            (Some(field), _) => format!("invalid value for `{field}`: {}", without_input(&inner)),
            (None, _) => format!("invalid JSON body: {}", without_input(&inner)),
        };
        Error::malformed_json(field, detail)
    })
}

/// Whether a name taken from the input (a map key, an unknown field) may be shown: an
/// identifier of letters, digits, `_` and `-`, at most 64 bytes, with fewer than four
/// digits (so no card number, account number or national id fits in it).
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name.bytes().filter(u8::is_ascii_digit).count() < 4
}

/// The path as `customer.email` or `items[2].sku`, with input-made names shown as `?`
/// unless [`safe_name`] allows them.
fn safe_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    use std::fmt::Write as _;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if safe_name(key) { key } else { "?" });
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// serde's message without the input it quotes, and without serde_json's trailing
/// " at line L column C" (field errors read better without it).
///
/// serde words these errors as `invalid type: <what was found>, expected <what>`,
/// `invalid value: …, expected …`, `unknown variant `<input>`, expected …` and
/// `unknown field `<input>`, expected …`; the found part is dropped, the expectation
/// (which comes from the type, not the input) kept. Messages of other shapes (custom
/// errors of `Deserialize` impls, which may quote anything) are kept only when they quote
/// nothing and hold no run of digits.
fn without_input(err: &serde_json::Error) -> String {
    let msg = err.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => &msg,
    };
    let expected = msg.rfind(", expected ").map(|i| &msg[i + 2..]);
    for kind in ["invalid type", "invalid value", "unknown variant"] {
        if msg.starts_with(kind) {
            return match expected {
                Some(expected) => format!("{kind}: {expected}"),
                None => kind.to_owned(),
            };
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split_once('`').map(|(name, _)| name).filter(|name| safe_name(name));
        return match (name, expected) {
            (Some(name), Some(expected)) => format!("unknown field `{name}`, {expected}"),
            (Some(name), None) => format!("unknown field `{name}`"),
            (None, Some(expected)) => format!("unknown field, {expected}"),
            (None, None) => "unknown field".to_owned(),
        };
    }
    // `missing field`, `duplicate field` and `invalid length` name the type's own fields
    // and a count, never input.
    if ["missing field `", "duplicate field `", "invalid length "].iter().any(|p| msg.starts_with(p)) {
        return msg.to_owned();
    }
    let quotes = msg.contains(['"', '`', '\'']);
    let digits = msg.as_bytes().windows(4).any(|w| w.iter().all(u8::is_ascii_digit));
    if quotes || digits {
        "the value is not valid here".to_owned()
    } else {
        msg.to_owned()
    }
}

/// A JSON response with the given status.
///
/// # Examples
///
/// ```
/// let res = lift::json_response(http::StatusCode::CREATED, &serde_json::json!({"id": "p_1"}));
/// assert_eq!(res.status(), 201);
/// assert_eq!(res.headers()["content-type"], "application/json");
/// ```
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => http::Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes))
            .expect("status and header are valid"),
        Err(err) => Error::internal(err).into_response(),
    }
}

/// A response with a JSON body and status 200, returned from handlers.
///
/// # Examples
///
/// ```
/// use lift::app::IntoResponse;
/// let res = lift::body::Json(serde_json::json!({"ok": true})).into_response();
/// assert_eq!(res.status(), 200);
/// ```
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Payment {
        amount: u64,
        customer: Customer,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Customer {
        email: String,
    }

    #[test]
    fn nested_field_is_named() {
        let err = parse_json::<Payment>(br#"{"amount":1,"customer":{"email":5}}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.field(), Some("customer.email"));
    }

    #[test]
    fn missing_field_is_named() {
        let err = parse_json::<Payment>(br#"{"customer":{"email":"a@b.c"}}"#).unwrap_err();
        assert!(err.detail().unwrap().contains("amount"), "{:?}", err.detail());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        amount: u64,
        kind: Kind,
        #[serde(default)]
        tags: Vec<u8>,
        #[serde(default)]
        meta: std::collections::HashMap<String, u32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Kind {
        Card,
        Transfer,
    }

    /// The whole rendered problem body, as the caller would see it.
    fn rendered(err: Error) -> String {
        String::from_utf8(err.into_response().body().as_bytes().to_vec()).unwrap()
    }

    const PAN: &str = "4000056655665556";
    const PAN_DASHED: &str = "4000-0566-5566-5556";
    const SSN: &str = "078-05-1120";

    #[test]
    fn a_card_number_or_ssn_in_a_wrong_typed_field_is_never_echoed() {
        for value in [PAN, PAN_DASHED, SSN, "078 05 1120"] {
            let body = format!(r#"{{"amount":"{value}","kind":"card"}}"#);
            let err = parse_json::<Strict>(body.as_bytes()).unwrap_err();
            assert_eq!(err.field(), Some("amount"));
            assert_eq!(err.detail(), Some("invalid value for `amount`: invalid type: expected u64"));
            let out = rendered(err);
            let digits: String = value.chars().filter(char::is_ascii_digit).collect();
            assert!(!out.contains(value) && !out.contains(&digits), "{out}");
        }
        // A number where a string is expected: serde quotes the integer.
        let err = parse_json::<Customer>(format!(r#"{{"email":{PAN}}}"#).as_bytes()).unwrap_err();
        assert_eq!(err.detail(), Some("invalid value for `email`: invalid type: expected a string"));
        assert!(!rendered(err).contains(PAN));
    }

    #[test]
    fn unknown_variants_invalid_values_and_lengths_name_the_expectation_only() {
        let err = parse_json::<Strict>(format!(r#"{{"amount":1,"kind":"{SSN}"}}"#).as_bytes()).unwrap_err();
        assert_eq!(err.field(), Some("kind"));
        let detail = err.detail().unwrap().to_owned();
        assert!(detail.starts_with("invalid value for `kind`: unknown variant: expected"), "{detail}");
        assert!(detail.contains("`card`") && !rendered(err).contains(SSN), "{detail}");
        // An out-of-range integer: serde quotes it as an invalid value.
        let err = parse_json::<Strict>(br#"{"amount":1,"kind":"card","tags":[4000056655]}"#).unwrap_err();
        assert_eq!(err.field(), Some("tags[0]"));
        assert_eq!(err.detail(), Some("invalid value for `tags[0]`: invalid value: expected u8"));
        assert!(!rendered(err).contains("4000056655"));
        let err = parse_json::<(u8, u8)>(b"[1]").unwrap_err();
        assert!(err.detail().unwrap().contains("invalid length 1"), "{:?}", err.detail());
    }

    #[test]
    fn input_made_names_are_shown_only_when_they_are_plain_identifiers() {
        let err = parse_json::<Strict>(br#"{"amount":1,"kind":"card","colour":1}"#).unwrap_err();
        assert!(err.detail().unwrap().contains("unknown field `colour`, expected"), "{:?}", err.detail());
        let body = format!(r#"{{"amount":1,"kind":"card","{PAN}":1}}"#);
        let err = parse_json::<Strict>(body.as_bytes()).unwrap_err();
        // serde_path_to_error puts the unknown key in the path: it is shown as `?`.
        assert_eq!(err.field(), Some("?"));
        assert!(
            err.detail().unwrap().starts_with("invalid value for `?`: unknown field, expected"),
            "{err:?}"
        );
        assert!(!rendered(err).contains(PAN));
        // A map key from the input in the path of an error below it.
        let body = format!(r#"{{"amount":1,"kind":"card","meta":{{"{SSN}":"x"}}}}"#);
        let err = parse_json::<Strict>(body.as_bytes()).unwrap_err();
        assert_eq!(err.field(), Some("meta.?"));
        assert!(!rendered(err).contains(SSN));
        let err = parse_json::<Strict>(br#"{"amount":1,"kind":"card","meta":{"ok":"x"}}"#).unwrap_err();
        assert_eq!(err.field(), Some("meta.ok"));
    }

    #[test]
    fn custom_messages_that_quote_or_carry_digits_are_replaced() {
        #[derive(Debug)]
        struct Picky;
        impl<'de> serde::Deserialize<'de> for Picky {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Err(serde::de::Error::custom(format!("bad reference {s}")))
            }
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Holder {
            reference: Picky,
        }
        let err = parse_json::<Holder>(format!(r#"{{"reference":"{SSN}"}}"#).as_bytes()).unwrap_err();
        assert_eq!(err.detail(), Some("invalid value for `reference`: the value is not valid here"));
        assert!(!rendered(err).contains(SSN));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn no_string_sent_in_a_wrong_field_is_echoed(value in "[0-9]{4}[0-9 -]{8,20}") {
            let body = serde_json::json!({ "amount": value, "kind": "card" }).to_string();
            let out = rendered(parse_json::<Strict>(body.as_bytes()).unwrap_err());
            proptest::prop_assert!(!out.contains(&value), "{}", out);
        }
    }

    #[test]
    fn syntax_error_gives_position() {
        let err = parse_json::<Payment>(b"{\"amount\": 1,,}").unwrap_err();
        assert!(err.detail().unwrap().contains("column"), "{:?}", err.detail());
    }

    #[test]
    fn json_content_types() {
        let ok = |s: &'static str| is_json_content_type(Some(&HeaderValue::from_static(s)));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/jsonx"));
        assert!(!is_json_content_type(None));
    }

    #[tokio::test]
    async fn body_yields_its_bytes_once() {
        let body = Body::from("abc");
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abc");
    }
}
