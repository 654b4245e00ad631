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
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = if path == "." || path.is_empty() { None } else { Some(path) };
        let detail = match (&field, inner.classify()) {
            (_, serde_json::error::Category::Eof) => "the JSON body ends unexpectedly".to_owned(),
            (_, serde_json::error::Category::Syntax) => {
                format!("the JSON body is not valid JSON (line {}, column {})", inner.line(), inner.column())
            }
            (Some(field), _) => format!("invalid value for `{field}`: {}", strip_position(&inner)),
            (None, _) => format!("invalid JSON body: {}", strip_position(&inner)),
        };
        Error::malformed_json(field, detail)
    })
}

/// serde_json appends " at line L column C"; field errors read better without it.
fn strip_position(err: &serde_json::Error) -> String {
    let msg = err.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
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
