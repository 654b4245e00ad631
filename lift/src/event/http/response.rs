//! From a [`crate::Response`] to the JSON response shape of the event's origin.
//!
//! lambda_http's own `LambdaResponse::from_response` is crate-private, so this follows it
//! field for field: the body is converted by lambda_http's public `IntoResponse` (text for
//! textual content types, base64 otherwise), and the headers are placed as each origin
//! expects. Unlike lambda_http, repeated headers are not cut to their first value where
//! the shape has one value per name: they are joined with `, ` (RFC 9110), and values that
//! are not UTF-8 (which the JSON cannot carry) are dropped with a warning.

use aws_lambda_events::alb::AlbTargetGroupResponse;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use lambda_http::{Body, IntoResponse};
use serde_json::Value;

use super::Origin;
use crate::event::error::EventError;
use crate::Response;

/// Serializes the response for the origin.
pub(super) async fn into_origin(origin: Origin, response: Response) -> Result<Value, EventError> {
    let (parts, body) = response.into_response().await.into_parts();
    let (is_base64_encoded, body) = match body {
        b @ Body::Text(_) => (false, Some(b)),
        b @ Body::Binary(_) => (true, Some(b)),
        _ => (false, None),
    };
    let status_code = i64::from(parts.status.as_u16());
    let mut headers = utf8_only(parts.headers);
    let value = match origin {
        Origin::V1 => {
            let mut res = ApiGatewayProxyResponse::default();
            res.status_code = status_code;
            // Only multiValueHeaders: API Gateway merges both fields, duplicating headers.
            res.multi_value_headers = headers;
            res.body = body;
            res.is_base64_encoded = is_base64_encoded;
            serde_json::to_value(res)
        }
        Origin::V2 => {
            let mut res = ApiGatewayV2httpResponse::default();
            res.status_code = status_code;
            // Payload format 2.0 wants Set-Cookie in `cookies`.
            res.cookies = headers
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            headers.remove(SET_COOKIE);
            res.headers = joined(&headers);
            res.body = body;
            res.is_base64_encoded = is_base64_encoded;
            serde_json::to_value(res)
        }
        Origin::Alb => {
            let mut res = AlbTargetGroupResponse::default();
            res.status_code = status_code;
            let reason = parts.status.canonical_reason().unwrap_or_default();
            res.status_description = Some(format!("{status_code} {reason}"));
            // Both fields: the target group may have multi-value headers on or off.
            res.headers = joined(&headers);
            res.multi_value_headers = headers;
            res.body = body;
            res.is_base64_encoded = is_base64_encoded;
            serde_json::to_value(res)
        }
    };
    value.map_err(EventError::Serialize)
}

/// The headers whose values are UTF-8.
fn utf8_only(headers: HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    let mut name = None;
    for (key, value) in headers {
        name = key.or(name);
        let Some(name) = &name else { continue };
        if value.to_str().is_ok() {
            out.append(name.clone(), value);
        } else {
            tracing::warn!(header = %name, "dropped a response header value that is not utf-8");
        }
    }
    out
}

/// One value per name: repeated values joined with `, `; Set-Cookie keeps its first value,
/// as a comma would corrupt cookie dates.
fn joined(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        let mut value = first.as_bytes().to_vec();
        if name != SET_COOKIE {
            for next in values {
                value.extend_from_slice(b", ");
                value.extend_from_slice(next.as_bytes());
            }
        }
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            out.insert(name.clone(), value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_are_joined_and_non_utf8_dropped() {
        let mut headers = HeaderMap::new();
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.append(SET_COOKIE, HeaderValue::from_static("a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT"));
        headers.append(SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.append("x-bin", HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap());
        let clean = utf8_only(headers);
        assert!(clean.get("x-bin").is_none());
        let one = joined(&clean);
        assert_eq!(one["x-multi"], "a, b");
        assert_eq!(one[SET_COOKIE], "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT");
    }
}
