//! The Lambda endpoint: the Invoke API (`POST /2015-03-31/functions/{name}/invocations`), so
//! the stock `aws lambda invoke --endpoint-url` and the SDKs work against the local runtime,
//! and next to it the control plane of versions and aliases (`PublishVersion`, `CreateAlias`, ...).

use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use tokio::task::JoinHandle;

use super::control::{self, parse_target};
use super::http_server::{self, Req, Resp};
use super::LocalLambda;

/// A running Invoke API; stops when dropped.
#[derive(Debug)]
pub struct InvokeApi {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl InvokeApi {
    /// Serves `lambda`'s functions on `addr` (port 0 for a free one): invocations, and the
    /// control-plane operations of versions and aliases.
    pub async fn start(lambda: LocalLambda, addr: SocketAddr) -> std::io::Result<Self> {
        let (listener, addr) = http_server::bind(addr).await?;
        let task = http_server::serve(listener, move |req| handle(lambda.clone(), req));
        Ok(Self { addr, task })
    }

    /// The endpoint URL, for `--endpoint-url` and `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for InvokeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(lambda: LocalLambda, req: Req) -> Resp {
    let path = percent_decode(req.uri().path());
    let segment = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .filter(|segment| !segment.contains('/'));
    let Some(segment) = segment.filter(|_| req.method() == http::Method::POST) else {
        return control::handle(&lambda, &req, &path);
    };
    // The function name may be a name, a partial ARN or an ARN, each with a qualifier, and
    // the qualifier may also come as `?Qualifier=`.
    let (name, from_name) = parse_target(segment);
    let from_query = control::query(&req).remove("Qualifier");
    let target = match control::qualifier(from_name, from_query.as_deref()) {
        Ok(Some(qualifier)) => format!("{name}:{qualifier}"),
        Ok(None) => name.to_owned(),
        Err(err) => return control::control_error(&err),
    };
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let invocation_type = header("x-amz-invocation-type").unwrap_or_else(|| "RequestResponse".into());
    let tail = header("x-amz-log-type").is_some_and(|t| t == "Tail");
    let client_context = header("x-amz-client-context")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let options = super::InvokeOptions {
        client_context,
        cognito_identity: None,
        trace_id: header("x-amzn-trace-id"),
        request_id: None,
    };
    let payload = req.into_body();
    match invocation_type.as_str() {
        "DryRun" => match lambda.route(&target) {
            Ok(_) => http_server::bytes(204, "application/json", Bytes::new()),
            Err(err) => invoke_error(&err),
        },
        // Accepted (202) only once the event passed Lambda's checks; then run, and retried
        // when it fails.
        "Event" => match lambda.invoke_async(&target, payload, options) {
            Ok(request_id) => {
                let mut resp = http_server::bytes(202, "application/json", Bytes::new());
                if let Ok(v) = http::HeaderValue::from_str(&request_id) {
                    resp.headers_mut().insert("x-amzn-requestid", v);
                }
                resp
            }
            Err(err) => invoke_error(&err),
        },
        _ => match lambda.invoke_with(&target, payload, options).await {
            Ok(out) => {
                let mut resp = http_server::bytes(200, "application/json", out.payload.clone());
                let h = resp.headers_mut();
                if let Ok(v) = http::HeaderValue::from_str(&out.executed_version) {
                    h.insert("x-amz-executed-version", v);
                }
                if let Ok(v) = http::HeaderValue::from_str(&out.request_id) {
                    h.insert("x-amzn-requestid", v);
                }
                if let Some(kind) = &out.function_error {
                    h.insert("x-amz-function-error", http::HeaderValue::from_str(kind).expect("ascii"));
                }
                if tail {
                    let log = tail_log(&lambda, name, &out.request_id);
                    let b64 = base64::engine::general_purpose::STANDARD.encode(log);
                    h.insert("x-amz-log-result", http::HeaderValue::from_str(&b64).expect("base64"));
                }
                resp
            }
            Err(err) => invoke_error(&err),
        },
    }
}

/// The last 4 KB of the invocation's log lines, as `--log-type Tail` returns them.
fn tail_log(lambda: &LocalLambda, name: &str, request_id: &str) -> String {
    tail_of(&lambda.logs(name), request_id)
}

/// The invocation's own lines, from its `START` to its `REPORT`, in its sandbox's stream
/// only, cut to their last 4 KB. The function's other sandboxes write into the same log at
/// the same time, other callers' invocations (another tenant's, say): their lines are not
/// this caller's to see. No `START` for the request: nothing.
fn tail_of(lines: &[super::LogLine], request_id: &str) -> String {
    let start_line = format!("START RequestId: {request_id} ");
    let Some(start) = lines.iter().rposition(|l| l.message.starts_with(&start_line)) else {
        return String::new();
    };
    let stream = &lines[start].stream;
    let report = format!("REPORT RequestId: {request_id}");
    let mut text = String::new();
    for line in lines[start..].iter().filter(|l| &l.stream == stream) {
        text.push_str(&line.message);
        text.push('\n');
        if line.message.starts_with(&report) {
            break;
        }
    }
    let cut = text.len().saturating_sub(4096);
    let cut = (cut..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    text[cut..].to_owned()
}

fn invoke_error(err: &super::InvokeError) -> Resp {
    let mut resp = http_server::json(err.status(), &err.body());
    resp.headers_mut().insert("x-amzn-errortype", http::HeaderValue::from_static(err.error_type()));
    resp
}

/// Decodes `%3A` and friends (SDKs escape the colons of an ARN).
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail is the invocation's own: lines another sandbox of the function wrote in
    /// between (another caller's invocation) and lines after its `REPORT` are left out, and a
    /// request with no `START` gets nothing rather than the whole log.
    #[test]
    fn the_tail_holds_the_invocations_own_lines_only() {
        let line = |stream: &str, message: &str| super::super::LogLine {
            function: "payments".into(),
            stream: stream.into(),
            message: message.into(),
        };
        let lines = [
            line("a", "START RequestId: r1 Version: $LATEST"),
            line("b", "START RequestId: r2 Version: $LATEST"),
            line("a", "charging card for tenant acme"),
            line("b", "charging card for tenant globex"),
            line("a", "END RequestId: r1"),
            line("a", "REPORT RequestId: r1\tDuration: 1.00 ms"),
            line("b", "END RequestId: r2"),
            line("a", "START RequestId: r3 Version: $LATEST"),
        ];
        let tail = tail_of(&lines, "r1");
        assert_eq!(
            tail,
            "START RequestId: r1 Version: $LATEST\ncharging card for tenant acme\nEND RequestId: r1\n\
             REPORT RequestId: r1\tDuration: 1.00 ms\n"
        );
        assert!(!tail.contains("globex") && !tail.contains("r3"), "{tail}");
        assert_eq!(tail_of(&lines, "r9"), "", "no START, no lines");
        let long: Vec<_> = std::iter::once(line("a", "START RequestId: r4 Version: 1"))
            .chain((0..100).map(|i| line("a", &format!("{i:0>99}"))))
            .collect();
        let tail = tail_of(&long, "r4");
        assert!(tail.len() <= 4096 && tail.ends_with(&format!("{:0>99}\n", 99)), "{}", tail.len());
    }

    #[test]
    fn names_arns_and_partial_arns_name_the_function() {
        assert_eq!(parse_target("payments").0, "payments");
        assert_eq!(parse_target("arn:aws:lambda:us-east-1:123456789012:function:payments").0, "payments");
        assert_eq!(
            parse_target("arn:aws:lambda:us-east-1:123456789012:function:payments:live").0,
            "payments"
        );
        assert_eq!(parse_target("123456789012:function:payments").0, "payments");
        assert_eq!(percent_decode("arn%3Aaws%3Alambda"), "arn:aws:lambda");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
