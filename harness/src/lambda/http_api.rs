//! An API Gateway HTTP API in front of one function: HTTP requests become payload format 2.0
//! events, the function's answers become HTTP responses, and failures answer as the HTTP API
//! does: a function error or a Lambda throttle is `500 {"message":"Internal Server Error"}`
//! (API Gateway maps Lambda's 429 to its integration failure), and an integration that
//! outlasts the integration timeout (30 s at most) is `503 {"message":"Service Unavailable"}`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::task::JoinHandle;

use super::http_server::{self, Req, Resp};
use super::LocalLambda;

/// The HTTP API's largest integration timeout.
pub const MAX_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A running HTTP API front; stops when dropped.
#[derive(Debug)]
pub struct HttpApi {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpApi {
    /// Serves `function` of `lambda` on `addr` with the largest integration timeout.
    pub async fn start(lambda: LocalLambda, function: &str, addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_with_timeout(lambda, function, addr, MAX_INTEGRATION_TIMEOUT).await
    }

    /// As [`HttpApi::start`], with an integration timeout (capped at 30 s, as the HTTP API).
    pub async fn start_with_timeout(
        lambda: LocalLambda,
        function: &str,
        addr: SocketAddr,
        integration_timeout: Duration,
    ) -> std::io::Result<Self> {
        let (listener, addr) = http_server::bind(addr).await?;
        let function = function.to_owned();
        let timeout = integration_timeout.min(MAX_INTEGRATION_TIMEOUT);
        let task = http_server::serve(listener, move |req| {
            handle(lambda.clone(), function.clone(), timeout, addr, req)
        });
        Ok(Self { addr, task })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// An answer from the front, for tests: status, headers, body.
#[derive(Debug, Clone)]
pub struct FrontResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl FrontResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl HttpApi {
    /// Sends one HTTP request to the front, as curl would.
    pub async fn send(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<FrontResponse, Box<dyn std::error::Error + Send + Sync>> {
        use http_body_util::BodyExt;
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<Bytes>>();
        let mut req = http::Request::builder().method(method).uri(format!("{}{path_and_query}", self.url()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = client.request(req.body(http_body_util::Full::new(body.into()))?).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(FrontResponse { status, headers, body })
    }
}

impl Drop for HttpApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    lambda: LocalLambda,
    function: String,
    timeout: Duration,
    addr: SocketAddr,
    req: Req,
) -> Resp {
    let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let event = to_event(&req, &request_id, addr);
    let invocation = {
        let lambda = lambda.clone();
        tokio::spawn(async move { lambda.invoke(&function, Bytes::from(event.to_string())).await })
    };
    let mut resp = match tokio::time::timeout(timeout, invocation).await {
        Err(_) => gateway_error(503, "Service Unavailable"),
        Ok(Err(_)) | Ok(Ok(Err(_))) => gateway_error(500, "Internal Server Error"),
        Ok(Ok(Ok(out))) if out.function_error.is_some() => gateway_error(500, "Internal Server Error"),
        Ok(Ok(Ok(out))) => {
            from_output(&out.payload).unwrap_or_else(|| gateway_error(500, "Internal Server Error"))
        }
    };
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("apigw-requestid", v);
    }
    resp
}

/// An error API Gateway answers itself.
fn gateway_error(status: u16, message: &str) -> Resp {
    http_server::json(status, &json!({ "message": message }))
}

/// The payload format 2.0 event for `req`.
pub(crate) fn to_event(req: &Req, request_id: &str, addr: SocketAddr) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| Value::from(c.trim().to_owned())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::from(value));
            }
        }
    }
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let mut query = Map::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match query.get_mut(k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(v);
            }
            _ => {
                query.insert(k.to_owned(), Value::from(v.to_owned()));
            }
        }
    }
    let body = req.body();
    let textual = std::str::from_utf8(body).ok().filter(|_| {
        let ct = headers.get("content-type").and_then(Value::as_str).unwrap_or("");
        ct.is_empty()
            || ct.starts_with("text/")
            || ct.contains("json")
            || ct.contains("xml")
            || ct.contains("x-www-form-urlencoded")
    });
    let (body, is_base64) = match (body.is_empty(), textual) {
        (true, _) => (Value::Null, false),
        (false, Some(text)) => (Value::from(text.to_owned()), false),
        (false, None) => (Value::from(base64::engine::general_purpose::STANDARD.encode(body)), true),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let user_agent = headers.get("user-agent").cloned().unwrap_or(Value::from(""));
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": req.uri().path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": addr.to_string(),
            "domainPrefix": "local",
            "http": {
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time,
            "timeEpoch": now.as_millis() as u64,
        },
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::from(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

/// The HTTP response for a function's output: a `statusCode` document as it says, any other
/// JSON as a 200 with that JSON as body (the format 2.0 inference); `None` when the output
/// is not JSON (API Gateway's 500).
pub(crate) fn from_output(payload: &[u8]) -> Option<Resp> {
    let out: Value = serde_json::from_slice(payload).ok()?;
    let Some(status) = out.get("statusCode").and_then(Value::as_u64) else {
        return Some(http_server::bytes(200, "application/json", Bytes::from(out.to_string())));
    };
    let status = u16::try_from(status).ok().filter(|s| (100..=599).contains(s))?;
    let body = match out.get("body") {
        Some(Value::String(s)) if out["isBase64Encoded"].as_bool() == Some(true) => {
            Bytes::from(base64::engine::general_purpose::STANDARD.decode(s).ok()?)
        }
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(Value::Null) | None => Bytes::new(),
        Some(other) => Bytes::from(other.to_string()),
    };
    let mut resp = http::Response::builder().status(status).body(http_body_util::Full::new(body)).ok()?;
    let h = resp.headers_mut();
    for (name, value) in out.get("headers").and_then(Value::as_object).into_iter().flatten() {
        let value = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
        if let (Ok(n), Ok(v)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(&value))
        {
            h.insert(n, v);
        }
    }
    for (name, values) in out.get("multiValueHeaders").and_then(Value::as_object).into_iter().flatten() {
        for value in values.as_array().into_iter().flatten().filter_map(Value::as_str) {
            if let (Ok(n), Ok(v)) =
                (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
            {
                h.append(n, v);
            }
        }
    }
    for cookie in out.get("cookies").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
    {
        if let Ok(v) = http::HeaderValue::from_str(cookie) {
            h.append(http::header::SET_COOKIE, v);
        }
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)], body: &'static [u8]) -> Req {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Bytes::from_static(body)).unwrap()
    }

    #[test]
    fn requests_become_payload_2_0_events() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let r = req(
            "POST",
            "/payments?limit=5&tag=a&tag=b",
            &[
                ("content-type", "application/json"),
                ("cookie", "a=1; b=2"),
                ("x-multi", "1"),
                ("x-multi", "2"),
            ],
            br#"{"amount":1}"#,
        );
        let e = to_event(&r, "req-1", addr);
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], "/payments");
        assert_eq!(e["rawQueryString"], "limit=5&tag=a&tag=b");
        assert_eq!(e["queryStringParameters"]["tag"], "a,b");
        assert_eq!(e["headers"]["x-multi"], "1,2");
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["body"], r#"{"amount":1}"#);
        assert_eq!(e["isBase64Encoded"], false);

        let binary = req("PUT", "/blob", &[("content-type", "application/octet-stream")], b"\x00\xff");
        let e = to_event(&binary, "req-2", addr);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "AP8=");
        assert!(to_event(&req("GET", "/", &[], b""), "r", addr).get("body").is_none());
    }

    #[tokio::test]
    async fn outputs_become_responses_as_the_http_api_infers_them() {
        let out = br#"{"statusCode":201,"headers":{"content-type":"application/json"},"cookies":["s=1"],"body":"{\"id\":\"p1\"}"}"#;
        let resp = from_output(out).unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["set-cookie"], "s=1");
        assert_eq!(
            resp.into_body().collect().await.unwrap().to_bytes(),
            Bytes::from_static(br#"{"id":"p1"}"#)
        );

        let b64 = from_output(br#"{"statusCode":200,"isBase64Encoded":true,"body":"AP8="}"#).unwrap();
        assert_eq!(b64.into_body().collect().await.unwrap().to_bytes(), Bytes::from_static(b"\x00\xff"));

        let inferred = from_output(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(inferred.status(), 200);
        assert_eq!(inferred.headers()["content-type"], "application/json");

        assert!(from_output(b"not json").is_none());
        assert!(from_output(br#"{"statusCode":999}"#).is_none());
    }
}
