//! Observability: log capture, EMF sinks, an X-Ray daemon socket.

pub(crate) use std::convert::Infallible;
pub(crate) use std::net::UdpSocket;
pub(crate) use std::time::Duration;

pub(crate) use http::{Request, Response, StatusCode};
pub(crate) use lift::middleware::logging::{LogConfig, MemoryWriter, RequestLogLayer};
pub(crate) use lift::middleware::metrics::{
    MemorySink, Metrics, MetricsBuilder, MetricsError, MetricsHandle, Unit,
};
pub(crate) use lift::middleware::xray::{Namespace, SamplingRule, XrayBuilder, XrayHandle, XrayLayer};
pub(crate) use lift::{Body, Context, Invocation};
pub(crate) use proptest::prelude::*;
pub(crate) use serde_json::Value;
pub(crate) use tower::{Layer, Service, ServiceBuilder, ServiceExt};
pub(crate) use tracing_subscriber::layer::SubscriberExt;
pub(crate) const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
pub(crate) const PARENT: &str = "53995c3f42cd8ad8";

pub(crate) fn trace_header(sampled: &str) -> String {
    format!("Root={ROOT};Parent={PARENT};Sampled={sampled}")
}

/// Installs a JSON log subscriber writing into memory for the current thread.
pub(crate) fn capture_logs(config: LogConfig) -> (MemoryWriter, tracing::subscriber::DefaultGuard) {
    let logs = MemoryWriter::new();
    let layer = config.writer(logs.clone()).build().expect("valid config");
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (logs, guard)
}

pub(crate) fn json_lines(logs: &MemoryWriter) -> Vec<Value> {
    logs.lines().iter().map(|l| serde_json::from_str(l).expect("every line is one JSON object")).collect()
}

/// A request with a Lift context: request id, tenant and the invocation's trace header.
pub(crate) fn lift_request(request_id: &str, tenant: &str) -> lift::Request {
    let invocation = Invocation {
        request_id: request_id.to_owned(),
        deadline: None,
        invoked_function_arn: None,
        xray_trace_id: Some(trace_header("1")),
    };
    let mut ctx = Context::from_parts(&http::HeaderMap::new(), Some(&invocation), None);
    ctx.set_tenant(tenant);
    let mut req = Request::builder().uri("/payments/pay_1").body(Body::empty()).unwrap();
    req.extensions_mut().insert(ctx);
    req
}

pub(crate) async fn logging_handler(_req: lift::Request) -> Result<lift::Response, Infallible> {
    tracing::info!(amount_cents = 1250u64, "payment captured");
    tracing::debug!("debug detail");
    Ok(lift::Response::default())
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

pub(crate) fn metrics_layer(sink: &MemorySink) -> lift::middleware::metrics::MetricsLayer {
    MetricsBuilder::new()
        .namespace("Lift/Test")
        .function_name("payments-fn")
        .sink(sink.clone())
        .build()
        .unwrap()
}

pub(crate) fn status_handler(
    status: u16,
) -> impl Fn(lift::Request) -> std::future::Ready<Result<lift::Response, Infallible>> + Clone {
    move |_req| {
        let mut res = lift::Response::default();
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        std::future::ready(Ok(res))
    }
}

pub(crate) fn request_doc(docs: &[Value]) -> &Value {
    docs.iter().find(|d| d.get("Requests").is_some()).expect("a request document")
}

// ---------------------------------------------------------------------------------------
// X-Ray
// ---------------------------------------------------------------------------------------

/// A stand-in X-Ray daemon: a real UDP socket on an ephemeral port.
pub(crate) struct Daemon {
    pub(crate) socket: UdpSocket,
}

impl Daemon {
    pub(crate) fn bind() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Only a guard against hanging forever if a datagram never comes.
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self { socket }
    }

    pub(crate) fn address(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    pub(crate) fn layer(&self, rule: SamplingRule, lambda: bool) -> XrayLayer {
        XrayBuilder::new()
            .daemon_address(self.address())
            .service_name("payments")
            .sampling_rule(rule)
            .lambda(lambda)
            .build()
            .unwrap()
    }

    /// The next document, after checking the daemon header line.
    pub(crate) fn receive(&self) -> Value {
        let mut buf = vec![0u8; 65_536];
        let n = self.socket.recv(&mut buf).expect("a datagram");
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let (header, doc) = text.split_once('\n').expect("a header line");
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        serde_json::from_str(doc).unwrap()
    }
}

pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn is_trace_id(s: &str) -> bool {
    s.len() == 35 && s.starts_with("1-") && is_hex(&s[2..10], 8) && &s[10..11] == "-" && is_hex(&s[11..], 24)
}

pub(crate) fn traced_request(header: &str) -> lift::Request {
    Request::builder()
        .uri("/payments/pay_1?card=4111111111111111")
        .header("host", "api.example.com")
        .header("x-amzn-trace-id", header)
        .body(Body::empty())
        .unwrap()
}

pub(crate) async fn downstream_handler(req: lift::Request) -> Result<lift::Response, Infallible> {
    let xray = XrayHandle::of(&req).expect("the handle is in the request");
    {
        let mut call = xray.subsegment("DynamoDB", Namespace::Aws);
        call.annotate("table", "payments");
        call.http_status(200);
    }
    let mut ledger = xray.subsegment("ledger", Namespace::Remote);
    assert_eq!(ledger.trace_header().root.to_string(), xray.trace_id().to_string());
    ledger.http_status(429);
    ledger.end();
    Ok(lift::Response::default())
}
