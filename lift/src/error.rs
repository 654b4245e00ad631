//! Lift's HTTP-facing error, rendered once as `application/problem+json` (RFC 9457).
//!
//! A handler returns `Result<Response, Error>`. The error carries a status, a short title,
//! an optional detail that is safe to show the caller, and an optional internal source
//! that is logged but never rendered: internals and secrets never reach a response.

use std::fmt;

use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;

use crate::body::{Body, Response};
use crate::BoxError;

/// The content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error that renders as an HTTP problem response.
///
/// # Examples
///
/// ```
/// let err = lift::Error::conflict("payment p_1 already exists");
/// let res = err.into_response();
/// assert_eq!(res.status(), 409);
/// assert_eq!(res.headers()["content-type"], "application/problem+json");
/// ```
pub struct Error(Box<Inner>);

/// Boxed so that `Result<T, Error>` stays small on the success path.
struct Inner {
    status: StatusCode,
    title: &'static str,
    problem_type: &'static str,
    detail: Option<String>,
    field: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    source: Option<BoxError>,
    /// The typed rejection this error renders (e.g. a layer's `CircuitOpen`): found with
    /// [`Error::cause`], never logged as a failure.
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The JSON body of a problem response.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short, fixed summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request, safe to show the caller.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// The request id, to find the request in the logs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
}

impl Error {
    /// An error with the given status; the title is the status's reason phrase.
    pub fn new(status: StatusCode) -> Self {
        Self(Box::new(Inner {
            status,
            title: status.canonical_reason().unwrap_or("Error"),
            problem_type: "about:blank",
            detail: None,
            field: None,
            headers: Vec::new(),
            source: None,
            cause: None,
        }))
    }

    /// Sets the detail shown to the caller.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Sets the problem type URI and title.
    pub fn with_type(mut self, problem_type: &'static str, title: &'static str) -> Self {
        self.0.problem_type = problem_type;
        self.0.title = title;
        self
    }

    /// Names the request field the problem is about (a JSON pointer or dotted path), as
    /// validation problems do; never its value.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    /// Adds a response header (e.g. `Allow`, `Retry-After`, `WWW-Authenticate`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// Attaches an internal cause: logged, never rendered.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// Carries the typed rejection this error renders, so a caller can still tell which
    /// layer refused and why ([`Error::cause`], [`Error::find`]). Unlike a
    /// [source](Self::with_source) it is an expected outcome and is not logged.
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.cause = Some(Box::new(cause));
        self
    }

    /// The typed rejection carried, when it is a `T`.
    pub fn cause<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.cause.as_deref().and_then(|c| (c as &(dyn std::error::Error + 'static)).downcast_ref())
    }

    /// Finds a `T` in an error a service returned: the error itself, or the cause of the
    /// Lift error it is. Every Lift layer refuses with a [`Error`] carrying its typed
    /// rejection, so `Error::find::<CircuitOpen>(&err)` tells a breaker's refusal from the
    /// others.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lift::middleware::circuit_breaker::CircuitOpen;
    ///
    /// let err: lift::BoxError = lift::Error::from(CircuitOpen::new(Duration::from_secs(2))).into();
    /// assert_eq!(lift::Error::find::<CircuitOpen>(&*err).unwrap().retry_after_secs(), 2);
    /// assert!(lift::Error::find::<std::fmt::Error>(&*err).is_none());
    /// ```
    pub fn find<'a, T: std::error::Error + 'static>(
        err: &'a (dyn std::error::Error + Send + Sync + 'static),
    ) -> Option<&'a T> {
        err.downcast_ref::<T>().or_else(|| err.downcast_ref::<Error>().and_then(Error::cause))
    }

    /// 400 with a detail.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST).with_detail(detail)
    }

    /// 400 for a body that is not valid JSON or not of the expected shape.
    pub fn malformed_json(field: Option<String>, detail: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::BAD_REQUEST)
            .with_type("https://lift.dev/problems/malformed-json", "Malformed JSON body")
            .with_detail(detail);
        err.0.field = field;
        err
    }

    /// 400 for a field that parsed but is not valid.
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::BAD_REQUEST)
            .with_type("https://lift.dev/problems/validation", "Invalid request")
            .with_detail(detail);
        err.0.field = Some(field.into());
        err
    }

    /// 401, with a `WWW-Authenticate` challenge.
    pub fn unauthorized(challenge: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge))
    }

    /// 403 with a detail.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN).with_detail(detail)
    }

    /// 404: no such resource (or no route).
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND)
    }

    /// 405 with the `Allow` header listing the allowed methods.
    pub fn method_not_allowed(allowed: &[Method]) -> Self {
        let allow = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        let value = HeaderValue::from_str(&allow).unwrap_or_else(|_| HeaderValue::from_static(""));
        Self::new(StatusCode::METHOD_NOT_ALLOWED)
            .with_detail(format!("allowed methods: {allow}"))
            .with_header(header::ALLOW, value)
    }

    /// 409 with a detail.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT).with_detail(detail)
    }

    /// 413: the body is larger than `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE)
            .with_detail(format!("the request body is larger than {limit} bytes"))
    }

    /// 415: the content type is not the expected one.
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .with_detail(format!("the request body must be {expected}"))
    }

    /// 422 with a detail.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY).with_detail(detail)
    }

    /// 500 for an internal failure. The source is logged; the caller sees a generic detail.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR).with_source(source)
    }

    /// 503 with a `Retry-After` in seconds.
    pub fn service_unavailable(retry_after_secs: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE)
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The detail shown to the caller, if any.
    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// The problem body for this error.
    pub fn problem(&self, request_id: Option<&str>) -> Problem {
        // A 5xx detail could carry internals; only details set for 5xx on purpose
        // (e.g. "retry later") are kept, never the source.
        Problem {
            problem_type: self.0.problem_type.to_owned(),
            title: self.0.title.to_owned(),
            status: self.0.status.as_u16(),
            detail: self.0.detail.clone(),
            field: self.0.field.clone(),
            request_id: request_id.map(str::to_owned),
        }
    }

    /// Renders the error as a problem+json response.
    pub fn into_response(self) -> Response {
        self.render(None)
    }

    /// Renders the error as a problem+json response carrying the request id.
    pub fn render(self, request_id: Option<&str>) -> Response {
        if let Some(source) = &self.0.source {
            tracing::error!(status = self.0.status.as_u16(), request_id, error = %source, "request failed");
        }
        let body = serde_json::to_vec(&self.problem(request_id)).unwrap_or_default();
        let mut res = http::Response::builder()
            .status(self.0.status)
            .header(header::CONTENT_TYPE, PROBLEM_JSON)
            .body(Body::from(body))
            .expect("status and content type are valid");
        for (name, value) in self.0.headers {
            res.headers_mut().append(name, value);
        }
        res
    }

    /// Turns any boxed error from a layer into a Lift error: a Lift error (every Lift
    /// layer's refusal is one) stays as it is, tower's own timeout becomes 504 and its
    /// overload 503, anything else 500.
    pub fn from_boxed(err: BoxError) -> Self {
        match err.downcast::<Error>() {
            Ok(err) => *err,
            Err(err) if err.is::<tower::timeout::error::Elapsed>() => {
                Self::new(StatusCode::GATEWAY_TIMEOUT).with_detail("the request timed out")
            }
            Err(err) if err.is::<tower::load_shed::error::Overloaded>() => {
                Self::service_unavailable(1).with_detail("the service is overloaded; retry later")
            }
            Err(err) => Self::internal(err),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("status", &self.0.status)
            .field("title", &self.0.title)
            .field("detail", &self.0.detail)
            .field("field", &self.0.field)
            .field("source", &self.0.source)
            .field("cause", &self.0.cause)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = self.0.title.to_lowercase();
        match &self.0.detail {
            Some(detail) => write!(f, "{} {title}: {detail}", self.0.status.as_u16()),
            None => write!(f, "{} {title}", self.0.status.as_u16()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let source = self.0.source.as_deref().or(self.0.cause.as_deref());
        source.map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An error and its causes on one line (`outer: cause: root cause`), each cause once: for
/// messages and logs of SDK errors, whose `Display` alone hides the cause.
#[cfg_attr(not(any(feature = "disaster", feature = "audit", feature = "threat")), allow(dead_code))]
pub(crate) fn error_chain<E: std::error::Error + 'static>(err: &E) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_of(res: Response) -> Problem {
        serde_json::from_slice(res.body().as_bytes()).unwrap()
    }

    #[test]
    fn internal_error_never_leaks_its_source() {
        let res = Error::internal("connection to db-prod-7.internal:5432 refused, password=hunter2")
            .render(Some("r-1"));
        assert_eq!(res.status(), 500);
        let raw = String::from_utf8(res.body().as_bytes().to_vec()).unwrap();
        assert!(!raw.contains("hunter2") && !raw.contains("db-prod"), "{raw}");
        let problem: Problem = serde_json::from_str(&raw).unwrap();
        assert_eq!(problem.request_id.as_deref(), Some("r-1"));
        assert_eq!(problem.status, 500);
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let res = Error::method_not_allowed(&[Method::GET, Method::POST]).into_response();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()[header::ALLOW], "GET, POST");
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn malformed_json_names_the_field() {
        let res = Error::malformed_json(Some("amount".into()), "invalid").into_response();
        let p = problem_of(res);
        assert_eq!(p.field.as_deref(), Some("amount"));
        assert_eq!(p.status, 400);
    }

    #[test]
    fn boxed_errors_map_to_statuses() {
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(Error::from_boxed(elapsed).status(), StatusCode::GATEWAY_TIMEOUT);
        let over: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
        assert_eq!(Error::from_boxed(over).status(), StatusCode::SERVICE_UNAVAILABLE);
        let lift: BoxError = Box::new(Error::conflict("x"));
        assert_eq!(Error::from_boxed(lift).status(), StatusCode::CONFLICT);
        let other: BoxError = "boom".into();
        assert_eq!(Error::from_boxed(other).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[derive(Debug)]
    struct Refused;
    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("refused")
        }
    }
    impl std::error::Error for Refused {}

    #[test]
    fn a_typed_rejection_survives_boxing_and_is_found_again() {
        let err: BoxError = Error::service_unavailable(2).with_cause(Refused).into();
        assert!(Error::find::<Refused>(&*err).is_some());
        assert!(Error::find::<std::fmt::Error>(&*err).is_none());
        // The cause is the error's source for generic error chains.
        let lift = err.downcast_ref::<Error>().unwrap();
        assert!(std::error::Error::source(lift).unwrap().is::<Refused>());
        // A bare rejection is found as itself.
        let bare: BoxError = Box::new(Refused);
        assert!(Error::find::<Refused>(&*bare).is_some());
        // One downcast renders it: the status and Retry-After the layer chose.
        let rendered = Error::from_boxed(err);
        assert_eq!(rendered.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(rendered.cause::<Refused>().is_some());
        let res = rendered.into_response();
        assert_eq!(res.headers()["retry-after"], "2");
    }

    #[test]
    fn display_is_lowercase() {
        assert_eq!(Error::not_found().to_string(), "404 not found");
    }
}
