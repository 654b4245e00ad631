//! The three endpoints and their responses.

use http::{header, HeaderValue, Method, StatusCode};

use super::HealthChecks;

/// One of the health endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Full,
    Live,
    Ready,
}

impl Endpoint {
    /// The endpoint a request is for, if any (GET and HEAD only).
    pub(crate) fn of(base: &str, method: &Method, path: &str) -> Option<Self> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let rest = path.strip_prefix(base)?;
        match rest {
            "" | "/" => Some(Endpoint::Full),
            "/live" => Some(Endpoint::Live),
            "/ready" => Some(Endpoint::Ready),
            _ => None,
        }
    }
}

/// Answers an endpoint: status and JSON body.
pub(crate) async fn answer(checks: &HealthChecks, endpoint: Endpoint) -> (StatusCode, String) {
    let report = match endpoint {
        Endpoint::Live => return (StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        Endpoint::Full => checks.report().await,
        Endpoint::Ready => checks.readiness().await,
    };
    (report.status.http_status(), serde_json::to_string(&report).unwrap_or_default())
}

/// Builds the response; HEAD gets the status and headers without a body.
pub(crate) fn response<B: From<String>>(status: StatusCode, body: String, head: bool) -> http::Response<B> {
    let mut res = http::Response::new(B::from(if head { String::new() } else { body }));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
