//! From an HTTP event's JSON to a [`crate::Request`], refusing what would make lambda_http
//! panic (bad base64, hosts and URLs it cannot parse) with a detail for the 400.

use std::net::Ipv4Addr;
use std::panic::AssertUnwindSafe;

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::query_map::QueryMap;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, HOST};
use http::uri::PathAndQuery;
use lambda_http::request::LambdaRequest;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Origin;
use crate::context::Invocation;
use crate::event::error::describe;
use crate::{Body, Request};

/// http::Uri refuses URIs of 64 KiB and more; lambda_http would panic on them.
const MAX_URL_LEN: usize = 32 * 1024;

/// A parsed event, its body already taken out (and decoded).
pub(super) struct Parsed {
    request: LambdaRequest,
    body: Bytes,
    /// The REST API stage lambda_http puts in front of the path, to take off again.
    stage_prefix: Option<String>,
}

/// What lambda_http builds the URL from.
struct UrlParts<'a> {
    headers: &'a HeaderMap,
    domain: Option<&'a str>,
    path: Option<&'a str>,
    stage: Option<&'a str>,
    query_len: usize,
    raw_query: Option<&'a str>,
}

/// Deserializes the event for its origin and checks what lambda_http would choke on.
pub(super) fn parse(origin: Origin, payload: Value) -> Result<Parsed, String> {
    match origin {
        Origin::V1 => {
            let mut ev: ApiGatewayProxyRequest = deserialize(payload)?;
            let body = take_body(ev.body.take(), std::mem::take(&mut ev.is_base64_encoded))?;
            check_url(&UrlParts {
                headers: &ev.headers,
                domain: ev.request_context.domain_name.as_deref(),
                path: ev.path.as_deref(),
                stage: ev.request_context.stage.as_deref(),
                query_len: query_len(&ev.query_string_parameters, &ev.multi_value_query_string_parameters),
                raw_query: None,
            })?;
            // lambda_http prefixes a REST API's stage to the path (`/prod/payments`) unless
            // AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH is set; routes are written without it.
            let stage_prefix = match ev.request_context.stage.as_deref() {
                Some(stage) if std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_none() => {
                    Some(format!("/{stage}"))
                }
                _ => None,
            };
            Ok(Parsed { request: LambdaRequest::ApiGatewayV1(ev), body, stage_prefix })
        }
        Origin::V2 => {
            let mut ev: ApiGatewayV2httpRequest = deserialize(payload)?;
            let body = take_body(ev.body.take(), std::mem::take(&mut ev.is_base64_encoded))?;
            check_url(&UrlParts {
                headers: &ev.headers,
                domain: ev.request_context.domain_name.as_deref(),
                path: ev.raw_path.as_deref(),
                stage: ev.request_context.stage.as_deref(),
                query_len: 0,
                raw_query: ev.raw_query_string.as_deref(),
            })?;
            Ok(Parsed { request: LambdaRequest::ApiGatewayV2(ev), body, stage_prefix: None })
        }
        Origin::Alb => {
            let mut ev: AlbTargetGroupRequest = deserialize(payload)?;
            let body = take_body(ev.body.take(), std::mem::take(&mut ev.is_base64_encoded))?;
            check_url(&UrlParts {
                headers: &ev.headers,
                domain: None,
                path: ev.path.as_deref(),
                stage: None,
                query_len: query_len(&ev.query_string_parameters, &ev.multi_value_query_string_parameters),
                raw_query: None,
            })?;
            Ok(Parsed { request: LambdaRequest::Alb(ev), body, stage_prefix: None })
        }
    }
}

/// Converts with lambda_http, then moves the body and invocation into a Lift request.
pub(super) fn into_lift(parsed: Parsed, invocation: &Invocation) -> Result<Request, String> {
    let Parsed { request, body, stage_prefix } = parsed;
    // The checks above cover the inputs lambda_http is known to panic on (it unwraps URL
    // parsing); this catches any other so a hostile event never takes the function down.
    let converted =
        std::panic::catch_unwind(AssertUnwindSafe(|| http::Request::<lambda_http::Body>::from(request)))
            .map_err(|_| "the request url cannot be built from the event".to_owned())?;
    let (mut parts, _empty) = converted.into_parts();
    if let Some(prefix) = stage_prefix {
        parts.uri = strip_stage(&parts.uri, &prefix)?;
    }
    if let Some(trace) = invocation.xray_trace_id.as_deref() {
        if let Ok(value) = HeaderValue::from_str(trace) {
            parts.headers.insert("x-amzn-trace-id", value);
        }
    }
    parts.extensions.insert(invocation.clone());
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// Takes the stage prefix off the path of a URI, keeping the query.
fn strip_stage(uri: &http::Uri, prefix: &str) -> Result<http::Uri, String> {
    let path = uri.path();
    let rest = match path.strip_prefix(prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return Ok(uri.clone()),
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query).map_err(|_| "the request path is not valid".to_owned())?);
    http::Uri::from_parts(parts).map_err(|_| "the request url cannot be built from the event".to_owned())
}

fn deserialize<T: DeserializeOwned>(payload: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(payload).map_err(|e| format!("invalid event: {}", describe(&e)))
}

fn take_body(body: Option<String>, base64: bool) -> Result<Bytes, String> {
    match body {
        None => Ok(Bytes::new()),
        // The same decoder lambda_http uses, without its panic on bad input.
        Some(text) if base64 => serde_json::from_value::<Base64Data>(Value::String(text))
            .map(|data| Bytes::from(data.0))
            .map_err(|_| "the body is marked isBase64Encoded but is not valid base64".to_owned()),
        Some(text) => Ok(Bytes::from(text)),
    }
}

fn query_len(single: &QueryMap, multi: &QueryMap) -> usize {
    single.to_query_string().len().max(multi.to_query_string().len())
}

fn check_url(url: &UrlParts<'_>) -> Result<(), String> {
    let host = url.headers.get(HOST).and_then(|h| h.to_str().ok()).or(url.domain);
    if host.is_some_and(|h| !valid_host(h)) {
        return Err("the host is not a valid host name".into());
    }
    let proto = url.headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok());
    if proto.is_some_and(|p| !p.eq_ignore_ascii_case("http") && !p.eq_ignore_ascii_case("https")) {
        return Err("the x-forwarded-proto header must be http or https".into());
    }
    let path = url.path.unwrap_or("");
    if !path.is_empty() && !path.starts_with('/') {
        return Err("the path must start with `/`".into());
    }
    let raw_query = url.raw_query.unwrap_or("");
    if !raw_query.is_empty() && PathAndQuery::try_from(format!("/?{raw_query}")).is_err() {
        return Err("`rawQueryString` is not a valid query string".into());
    }
    let len = host.map_or(0, str::len)
        + path.len()
        + url.stage.map_or(0, str::len)
        + url.query_len
        + raw_query.len();
    if len > MAX_URL_LEN {
        return Err(format!("the request url is longer than {MAX_URL_LEN} bytes"));
    }
    Ok(())
}

/// A DNS name, IPv4 or bracketed IPv6 address, with an optional port: what URL parsing
/// accepts (a name whose last label is numeric must be a whole IPv4 address).
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("::", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || p.parse::<u16>().is_err()) {
        return false;
    }
    if name == "::" {
        return true;
    }
    let label_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if name.is_empty() || !name.bytes().all(label_ok) {
        return false;
    }
    let last = name.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.to_ascii_lowercase().starts_with("0x");
    !numeric || name.trim_end_matches('.').parse::<Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in ["example.com", "a-b.example.com:443", "10.0.0.1", "[::1]", "[::1]:8080", "x_y.internal"] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in
            ["", "a b", "example.com:99999", "example.com:", "999.1.1.1", "1.2.3", "[::1", "a@b", "0x1g"]
        {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(take_body(Some("aGVsbG8=".into()), true).unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(take_body(Some("plain".into()), false).unwrap(), Bytes::from_static(b"plain"));
        assert!(take_body(Some("!!not base64!!".into()), true).is_err());
        assert!(take_body(None, true).unwrap().is_empty());
    }
}
