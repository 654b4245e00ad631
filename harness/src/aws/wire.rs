//! AWS wire formats: operation names, form bodies, JSON 1.x and query (XML) responses.

use serde_json::{Map, Value};
use wiremock::{Request, ResponseTemplate};

use super::fault::AwsError;

/// Content type of AWS JSON 1.0 (STS JSON, DynamoDB).
pub(crate) const JSON_1_0: &str = "application/x-amz-json-1.0";
/// Content type of AWS JSON 1.1 (Secrets Manager, KMS).
pub(crate) const JSON_1_1: &str = "application/x-amz-json-1.1";

/// The `X-Amz-Target` header split into service prefix and operation.
pub(crate) fn target(request: &Request) -> Option<(&str, &str)> {
    let value = request.headers.get("x-amz-target")?.to_str().ok()?;
    value.rsplit_once('.')
}

/// The operation a request calls: `X-Amz-Target`, else the query `Action`, else the path.
pub(crate) fn operation(request: &Request) -> String {
    if let Some((_, operation)) = target(request) {
        return operation.to_owned();
    }
    let action = form(request)
        .into_iter()
        .chain(request.url.query().map(parse_form).unwrap_or_default())
        .find(|(k, _)| k == "Action");
    match action {
        Some((_, action)) => action,
        None => request.url.path().to_owned(),
    }
}

/// Whether the body is form-encoded (the awsQuery protocol).
pub(crate) fn is_form(request: &Request) -> bool {
    request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The form pairs of a form-encoded body; empty for any other body.
pub(crate) fn form(request: &Request) -> Vec<(String, String)> {
    if !is_form(request) {
        return Vec::new();
    }
    parse_form(&String::from_utf8_lossy(&request.body))
}

/// The body as JSON: a form body becomes an object of strings, an unreadable body `Null`.
pub(crate) fn body_value(request: &Request) -> Value {
    if is_form(request) {
        let pairs = form(request).into_iter().map(|(k, v)| (k, Value::String(v)));
        return Value::Object(pairs.collect::<Map<_, _>>());
    }
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

/// Parses `application/x-www-form-urlencoded` text.
pub(crate) fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[hi, lo]) if bytes[i] == b'%' => hex_value(hi).zip(hex_value(lo)),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some((hi, lo))) => {
                out.push(hi << 4 | lo);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// A JSON 1.x success response with a request id.
pub(crate) fn json_ok(content_type: &str, body: &Value) -> ResponseTemplate {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    ResponseTemplate::new(200)
        .insert_header("x-amzn-RequestId", request_id())
        .set_body_raw(bytes, content_type)
}

/// A JSON 1.x error response, as AWS sends it: `{"__type": code, <message_key>: message}`.
pub(crate) fn json_error(content_type: &str, message_key: &str, error: &AwsError) -> ResponseTemplate {
    let mut body = Map::new();
    body.insert("__type".into(), Value::String(error.code.clone()));
    body.insert(message_key.into(), Value::String(error.message.clone()));
    let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
    ResponseTemplate::new(error.status)
        .insert_header("x-amzn-RequestId", request_id())
        .set_body_raw(bytes, content_type)
}

/// A query-protocol (XML) error response: `<ErrorResponse>` with Type, Code, Message.
pub(crate) fn query_error(namespace: &str, error: &AwsError) -> ResponseTemplate {
    let side = if error.status >= 500 { "Receiver" } else { "Sender" };
    let id = request_id();
    let xml = format!(
        "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>{side}</Type>\n    \
         <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{id}</RequestId>\n\
         </ErrorResponse>\n",
        xml_escape(&error.code),
        xml_escape(&error.message),
    );
    ResponseTemplate::new(error.status).insert_header("x-amzn-RequestId", id).set_body_raw(xml, "text/xml")
}

/// Escapes text for an XML element.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A fresh AWS-style request id.
pub(crate) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A `400 ValidationException` error.
pub(crate) fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationException", message)
}

/// A `400 SerializationException` error, for bodies that are not the expected JSON.
pub(crate) fn serialization(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "SerializationException", message)
}

/// A `400 UnknownOperationException` error.
pub(crate) fn unknown_operation() -> AwsError {
    AwsError::new(400, "UnknownOperationException", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_escapes_and_plus() {
        let pairs = parse_form("Action=GetCallerIdentity&Version=2011-06-15&X=a%2Bb+c%&Y");
        assert_eq!(pairs[0], ("Action".into(), "GetCallerIdentity".into()));
        assert_eq!(pairs[1], ("Version".into(), "2011-06-15".into()));
        assert_eq!(pairs[2], ("X".into(), "a+b c%".into()));
        assert_eq!(pairs[3], ("Y".into(), String::new()));
    }

    #[test]
    fn xml_escape_escapes_markup() {
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
