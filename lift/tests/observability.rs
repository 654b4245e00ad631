//! Observability: JSON logs with scrubbing, EMF metrics, X-Ray over real UDP, and the three
//! layers mounted in axum and in Lift's App.

use std::convert::Infallible;
use std::net::UdpSocket;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use lift::middleware::logging::{LogConfig, MemoryWriter, RequestLogLayer};
use lift::middleware::metrics::{MemorySink, Metrics, MetricsBuilder, MetricsError, MetricsHandle, Unit};
use lift::middleware::xray::{Namespace, SamplingRule, XrayBuilder, XrayHandle, XrayLayer};
use lift::{Body, Context, Invocation};
use proptest::prelude::*;
use serde_json::Value;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
const PARENT: &str = "53995c3f42cd8ad8";

fn trace_header(sampled: &str) -> String {
    format!("Root={ROOT};Parent={PARENT};Sampled={sampled}")
}

/// Installs a JSON log subscriber writing into memory for the current thread.
fn capture_logs(config: LogConfig) -> (MemoryWriter, tracing::subscriber::DefaultGuard) {
    let logs = MemoryWriter::new();
    let layer = config.writer(logs.clone()).build().expect("valid config");
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (logs, guard)
}

fn json_lines(logs: &MemoryWriter) -> Vec<Value> {
    logs.lines().iter().map(|l| serde_json::from_str(l).expect("every line is one JSON object")).collect()
}

/// A request with a Lift context: request id, tenant and the invocation's trace header.
fn lift_request(request_id: &str, tenant: &str) -> lift::Request {
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

async fn logging_handler(_req: lift::Request) -> Result<lift::Response, Infallible> {
    tracing::info!(amount_cents = 1250u64, "payment captured");
    tracing::debug!("debug detail");
    Ok(lift::Response::default())
}

// ---------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn log_lines_carry_every_required_field() {
    let (logs, _guard) = capture_logs(LogConfig::new().function_name("payments-fn").function_version("42"));
    let mut svc = ServiceBuilder::new().layer(RequestLogLayer::new()).service_fn(logging_handler);
    svc.ready().await.unwrap().call(lift_request("req-abc", "tenant-7")).await.unwrap();

    let lines = json_lines(&logs);
    assert_eq!(lines.len(), 1, "debug is off by default: {lines:?}");
    let line = &lines[0];
    let ts = line["timestamp"].as_str().unwrap();
    assert!(ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T", "RFC 3339 UTC: {ts}");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "payment captured");
    assert_eq!(line["request_id"], "req-abc");
    assert_eq!(line["tenant"], "tenant-7");
    assert_eq!(line["xray_trace_id"], ROOT);
    assert_eq!(line["cold_start"], true);
    assert_eq!(line["function_name"], "payments-fn");
    assert_eq!(line["function_version"], "42");
    assert_eq!(line["amount_cents"], 1250);
}

#[tokio::test]
async fn trace_id_and_request_id_come_from_headers_without_a_context() {
    let (logs, _guard) = capture_logs(LogConfig::new());
    let mut svc = ServiceBuilder::new().layer(RequestLogLayer::new()).service_fn(logging_handler);
    let req = Request::builder()
        .header("x-request-id", "hdr-1")
        .header("x-amzn-trace-id", trace_header("0"))
        .body(Body::empty())
        .unwrap();
    svc.ready().await.unwrap().call(req).await.unwrap();
    let line = &json_lines(&logs)[0];
    assert_eq!((&line["request_id"], &line["xray_trace_id"]), (&"hdr-1".into(), &ROOT.into()));
    assert!(line.get("tenant").is_none());
}

#[tokio::test]
async fn cold_start_is_true_only_for_the_first_request_of_a_layer() {
    let (logs, _guard) = capture_logs(LogConfig::new());
    let layer = RequestLogLayer::new();
    let mut svc = layer.layer(tower::service_fn(logging_handler));
    for i in 0..3 {
        svc.ready().await.unwrap().call(lift_request(&format!("r{i}"), "t")).await.unwrap();
    }
    // A clone of the layer shares the state: still warm.
    let mut clone = layer.clone().layer(tower::service_fn(logging_handler));
    clone.ready().await.unwrap().call(lift_request("r3", "t")).await.unwrap();
    let cold: Vec<bool> = json_lines(&logs).iter().map(|l| l["cold_start"].as_bool().unwrap()).collect();
    assert_eq!(cold, [true, false, false, false]);

    // The flag lives in the layer, not in a process global: a new layer starts cold.
    logs.clear();
    let mut fresh = RequestLogLayer::new().layer(tower::service_fn(logging_handler));
    fresh.ready().await.unwrap().call(lift_request("r4", "t")).await.unwrap();
    assert_eq!(json_lines(&logs)[0]["cold_start"], true);
}

#[tokio::test]
async fn level_comes_from_the_environment_and_filters() {
    let env = |key: &str| (key == "LIFT_LOG_LEVEL").then(|| "warn".to_owned());
    let (logs, _guard) = capture_logs(LogConfig::from_env_vars(env));
    let mut svc = RequestLogLayer::new().layer(tower::service_fn(|_req: lift::Request| async {
        tracing::info!("info is below warn");
        tracing::warn!("warned");
        tracing::error!("failed");
        Ok::<_, Infallible>(lift::Response::default())
    }));
    svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    let lines = json_lines(&logs);
    let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["WARN", "ERROR"]);
    assert_eq!(lines[0]["request_id"], "r", "the request span exists even above info");
}

#[tokio::test]
async fn a_sampled_request_logs_at_debug() {
    let (logs, _guard) = capture_logs(LogConfig::new().sample_rate(1.0));
    let mut svc = RequestLogLayer::new().layer(tower::service_fn(logging_handler));
    svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    let lines = json_lines(&logs);
    let messages: Vec<&str> = lines.iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["payment captured", "debug detail", "request completed"]);
    assert_eq!(lines[2]["status"], 200);
    assert_eq!(lines[2]["request_id"], "r");

    let (logs, _guard) = capture_logs(LogConfig::new().sample_rate(0.0));
    let mut svc = RequestLogLayer::new().layer(tower::service_fn(logging_handler));
    svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    assert_eq!(json_lines(&logs).len(), 1);
}

/// A Luhn-valid card number: issuer prefix, random digits, check digit.
fn pan() -> impl Strategy<Value = String> {
    let issuer = prop_oneof![
        Just(("4", 16)),
        Just(("4", 13)),
        Just(("4", 19)),
        Just(("51", 16)),
        Just(("55", 16)),
        Just(("2221", 16)),
        Just(("2720", 16)),
        Just(("34", 15)),
        Just(("37", 15)),
        Just(("6011", 16)),
        Just(("65", 16)),
        // JCB is 3528–3589: a bare 35 made numbers no issuer owns (the scrubber had no
        // issuer check then).
        Just(("358", 16)),
        Just(("36", 14)),
        Just(("62", 19)),
    ];
    (issuer, proptest::collection::vec(0u8..10, 18)).prop_map(|((prefix, len), random)| {
        let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
        digits.extend(random.iter().take(len - 1 - digits.len()));
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                let d = u32::from(d);
                if i % 2 == 0 {
                    let x = d * 2;
                    if x > 9 {
                        x - 9
                    } else {
                        x
                    }
                } else {
                    d
                }
            })
            .sum();
        digits.push(((10 - sum % 10) % 10) as u8);
        digits.iter().map(|d| char::from(b'0' + d)).collect()
    })
}

/// The card number as people write it.
fn layout(digits: &str, style: u8) -> String {
    let group = |sizes: &[usize], sep: &str| {
        let mut out = Vec::new();
        let mut at = 0;
        for &size in sizes {
            if at >= digits.len() {
                break;
            }
            let end = (at + size).min(digits.len());
            out.push(&digits[at..end]);
            at = end;
        }
        if at < digits.len() {
            out.push(&digits[at..]);
        }
        out.join(sep)
    };
    match style {
        0 => digits.to_owned(),
        1 => group(&[4, 4, 4, 4], " "),
        2 => group(&[4, 4, 4, 4], "-"),
        3 => group(&[4, 6, 5], " "),
        _ => group(&[4, 6, 5], "-"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_generated_card_number_survives_in_a_log_line(
        digits in pan(),
        style in 0u8..5,
        before in "[a-zA-Z0-9 .,;!?()#@/_]{0,24}",
        after in "[a-zA-Z0-9 .,;!?()#@/_]{0,24}",
        left in prop_oneof![Just(" "), Just(": "), Just("="), Just("("), Just("#"), Just("\n")],
        right in prop_oneof![Just(" "), Just("."), Just(")"), Just(","), Just("\t")],
    ) {
        let written = layout(&digits, style);
        let text = format!("{before}{left}{written}{right}{after}");
        let logs = MemoryWriter::new();
        let layer = LogConfig::new().writer(logs.clone()).build().unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!(note = %text, "customer said: {}", text);
        });
        let line = logs.contents();
        prop_assert!(!line.contains(&digits), "digits survived: {}", line);
        prop_assert!(!line.contains(&written), "card survived: {}", line);
        let parsed: Value = serde_json::from_str(line.trim_end()).unwrap();
        prop_assert!(parsed["message"].as_str().unwrap().contains("[REDACTED:"), "{}", line);
        prop_assert!(parsed["note"].as_str().unwrap().contains("[REDACTED:"), "{}", line);
    }
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

fn metrics_layer(sink: &MemorySink) -> lift::middleware::metrics::MetricsLayer {
    MetricsBuilder::new()
        .namespace("Lift/Test")
        .function_name("payments-fn")
        .sink(sink.clone())
        .build()
        .unwrap()
}

fn status_handler(
    status: u16,
) -> impl Fn(lift::Request) -> std::future::Ready<Result<lift::Response, Infallible>> + Clone {
    move |_req| {
        let mut res = lift::Response::default();
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        std::future::ready(Ok(res))
    }
}

fn request_doc(docs: &[Value]) -> &Value {
    docs.iter().find(|d| d.get("Requests").is_some()).expect("a request document")
}

#[tokio::test]
async fn the_layer_writes_request_metrics_by_tenant_and_route() {
    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(|req: lift::Request| async move {
        MetricsHandle::of(&req).unwrap().record("ChargeAmount", 12.5, Unit::None).unwrap();
        Ok::<_, Infallible>(lift::Response::default())
    }));
    let mut req = lift_request("r", "tenant-7");
    req.extensions_mut().insert(lift::MatchedRoute("/payments/:id".into()));
    svc.ready().await.unwrap().call(req).await.unwrap();

    let docs = sink.json();
    let doc = request_doc(&docs);
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Lift/Test");
    assert_eq!(directive["Dimensions"], serde_json::json!([["Tenant", "Route"]]));
    let declared: Vec<(&str, &str)> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
        .collect();
    assert_eq!(
        declared,
        [
            ("ChargeAmount", "None"),
            ("Requests", "Count"),
            ("Latency", "Milliseconds"),
            ("4xx", "Count"),
            ("5xx", "Count")
        ]
    );
    assert!(doc["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!((&doc["Tenant"], &doc["Route"]), (&"tenant-7".into(), &"/payments/:id".into()));
    assert_eq!(
        (doc["Requests"].as_f64(), doc["4xx"].as_f64(), doc["5xx"].as_f64()),
        (Some(1.0), Some(0.0), Some(0.0))
    );
    assert!(doc["Latency"].as_f64().unwrap() >= 0.0);
    assert_eq!(doc["ChargeAmount"], 12.5);
}

#[tokio::test]
async fn errors_are_counted_by_status_class() {
    for (status, client, server) in [(404u16, 1.0, 0.0), (429, 1.0, 0.0), (503, 0.0, 1.0), (201, 0.0, 0.0)] {
        let sink = MemorySink::new();
        let mut svc = metrics_layer(&sink).layer(tower::service_fn(status_handler(status)));
        svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
        let docs = sink.json();
        let doc = request_doc(&docs);
        assert_eq!(
            (doc["4xx"].as_f64(), doc["5xx"].as_f64()),
            (Some(client), Some(server)),
            "status {status}"
        );
    }
}

#[tokio::test]
async fn the_cold_start_has_its_own_document_once() {
    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(status_handler(200)));
    for _ in 0..3 {
        svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    }
    let docs = sink.json();
    let cold: Vec<&Value> = docs.iter().filter(|d| d.get("ColdStart").is_some()).collect();
    assert_eq!(cold.len(), 1);
    assert_eq!(cold[0]["ColdStart"], 1.0);
    assert_eq!(cold[0]["FunctionName"], "payments-fn");
    assert_eq!(cold[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["FunctionName"]]));
    assert!(cold[0].get("Requests").is_none(), "the cold start is not mixed into a request document");
    assert_eq!(docs.iter().filter(|d| d.get("Requests").is_some()).count(), 3);
}

#[tokio::test(start_paused = true)]
async fn metrics_are_flushed_when_the_response_completes_not_on_a_timer() {
    let sink = MemorySink::new();
    let (mock, mut handle) = tower_test::mock::pair::<lift::Request, lift::Response>();
    let mut svc = metrics_layer(&sink).layer(mock);
    let response = svc.ready().await.unwrap().call(lift_request("r", "t"));
    let task = tokio::spawn(response);

    let (req, send) = handle.next_request().await.expect("the request reaches the inner service");
    let metrics = MetricsHandle::of(&req).expect("the handle is in the request").clone();
    metrics.count("Started").unwrap();
    // Time passes (as it would between Lambda invocations): nothing is written.
    tokio::time::advance(Duration::from_secs(3600)).await;
    tokio::task::yield_now().await;
    assert!(sink.documents().is_empty(), "nothing before the response: {:?}", sink.documents());

    send.send_response(lift::Response::default());
    task.await.unwrap().unwrap();
    let docs = sink.json();
    assert_eq!(docs.len(), 2, "cold start + request");
    assert_eq!(request_doc(&docs)["Started"], 1.0);
    // The request's recorder is closed: a late value is an error, not a silent loss.
    assert!(matches!(metrics.count("Late"), Err(MetricsError::AlreadyFlushed { .. })));
}

#[tokio::test]
async fn handler_metrics_past_the_emf_limits_are_split() {
    let sink = MemorySink::new();
    let mut svc = metrics_layer(&sink).layer(tower::service_fn(|req: lift::Request| async move {
        let m = MetricsHandle::of(&req).unwrap();
        for i in 0..101 {
            m.count(format!("Metric{i}")).unwrap();
            m.record("Values", f64::from(i), Unit::Milliseconds).unwrap();
        }
        Ok::<_, Infallible>(lift::Response::default())
    }));
    svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    let docs: Vec<Value> = sink.json().into_iter().filter(|d| d.get("ColdStart").is_none()).collect();
    assert_eq!(docs.len(), 2);
    for doc in &docs {
        let metrics = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        assert!(metrics.len() <= 100);
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            let count = doc[name].as_array().map_or(1, Vec::len);
            assert!(count <= 100, "{name} has {count} values");
        }
    }
    let values: usize = docs.iter().map(|d| d["Values"].as_array().map_or(1, Vec::len)).sum();
    assert_eq!(values, 101);
}

#[test]
fn emf_limits_are_errors_at_build_time() {
    let keys: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
    let err = MetricsBuilder::new().namespace("N").dimension_set(keys).build().unwrap_err();
    assert_eq!(err, MetricsError::TooManyDimensions { count: 31 });
    assert_eq!(err.to_string(), "too many dimensions: 31, at most 30 are allowed");
    assert_eq!(MetricsBuilder::new().build().unwrap_err(), MetricsError::MissingNamespace);

    let mut m = Metrics::new("N").unwrap();
    assert!(matches!(m.record("", 1.0, Unit::Count), Err(MetricsError::InvalidMetricName { .. })));
    assert!(matches!(
        m.record("n".repeat(256), 1.0, Unit::Count),
        Err(MetricsError::InvalidMetricName { .. })
    ));
    assert!(m.record("n".repeat(255), 1.0, Unit::Count).is_ok());
    for i in 0..101 {
        m.count(format!("M{i}")).unwrap();
    }
    assert_eq!(m.to_documents(std::time::SystemTime::now()).len(), 2);
}

// ---------------------------------------------------------------------------------------
// X-Ray
// ---------------------------------------------------------------------------------------

/// A stand-in X-Ray daemon: a real UDP socket on an ephemeral port.
struct Daemon {
    socket: UdpSocket,
}

impl Daemon {
    fn bind() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Only a guard against hanging forever if a datagram never comes.
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self { socket }
    }

    fn address(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    fn layer(&self, rule: SamplingRule, lambda: bool) -> XrayLayer {
        XrayBuilder::new()
            .daemon_address(self.address())
            .service_name("payments")
            .sampling_rule(rule)
            .lambda(lambda)
            .build()
            .unwrap()
    }

    /// The next document, after checking the daemon header line.
    fn receive(&self) -> Value {
        let mut buf = vec![0u8; 65_536];
        let n = self.socket.recv(&mut buf).expect("a datagram");
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let (header, doc) = text.split_once('\n').expect("a header line");
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        serde_json::from_str(doc).unwrap()
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_trace_id(s: &str) -> bool {
    s.len() == 35 && s.starts_with("1-") && is_hex(&s[2..10], 8) && &s[10..11] == "-" && is_hex(&s[11..], 24)
}

fn traced_request(header: &str) -> lift::Request {
    Request::builder()
        .uri("/payments/pay_1?card=4111111111111111")
        .header("host", "api.example.com")
        .header("x-amzn-trace-id", header)
        .body(Body::empty())
        .unwrap()
}

async fn downstream_handler(req: lift::Request) -> Result<lift::Response, Infallible> {
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

#[tokio::test]
async fn a_sampled_request_sends_its_segment_with_subsegments_over_udp() {
    let daemon = Daemon::bind();
    let mut svc = daemon.layer(SamplingRule::new(0, 0.0), false).layer(tower::service_fn(downstream_handler));
    let res = svc.ready().await.unwrap().call(traced_request(&trace_header("1"))).await.unwrap();
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT};Sampled=1"));

    let doc = daemon.receive();
    assert_eq!(doc["name"], "payments");
    assert_eq!(doc["trace_id"], ROOT);
    assert!(is_trace_id(doc["trace_id"].as_str().unwrap()));
    assert_eq!(doc["parent_id"], PARENT);
    assert!(is_hex(doc["id"].as_str().unwrap(), 16));
    assert!(doc.get("type").is_none(), "off Lambda the handler is a segment");
    let (start, end) = (doc["start_time"].as_f64().unwrap(), doc["end_time"].as_f64().unwrap());
    assert!(start > 1.6e9 && start <= end, "{start} {end}");
    assert_eq!(doc["http"]["request"]["method"], "GET");
    assert_eq!(doc["http"]["request"]["url"], "https://api.example.com/payments/pay_1", "no query string");
    assert_eq!(doc["http"]["response"]["status"], 200);
    assert!(doc.get("fault").is_none() && doc.get("error").is_none());

    let subs = doc["subsegments"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!((&subs[0]["name"], &subs[0]["namespace"]), (&"DynamoDB".into(), &"aws".into()));
    assert_eq!(subs[0]["http"]["response"]["status"], 200);
    assert_eq!(subs[0]["annotations"]["table"], "payments");
    assert_ne!(subs[0]["id"], subs[1]["id"]);
    for sub in subs {
        let (s, e) = (sub["start_time"].as_f64().unwrap(), sub["end_time"].as_f64().unwrap());
        assert!(start <= s && s <= e && e <= end, "subsegment inside the segment");
    }
    assert_eq!(
        (&subs[1]["namespace"], &subs[1]["throttle"], &subs[1]["error"]),
        (&"remote".into(), &true.into(), &true.into())
    );
}

#[tokio::test]
async fn on_lambda_the_handler_is_a_subsegment_of_the_facade() {
    let daemon = Daemon::bind();
    let mut svc = daemon.layer(SamplingRule::default(), true).layer(tower::service_fn(status_handler(200)));
    // The Lambda invocation's trace header comes through the Context.
    svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    let doc = daemon.receive();
    assert_eq!(doc["type"], "subsegment");
    assert_eq!(doc["parent_id"], PARENT);
    assert_eq!(doc["trace_id"], ROOT);
}

#[tokio::test]
async fn server_errors_are_faults_and_client_errors_errors() {
    let daemon = Daemon::bind();
    for (status, fault, error) in [(503u16, true, false), (404, false, true)] {
        let mut svc =
            daemon.layer(SamplingRule::default(), false).layer(tower::service_fn(status_handler(status)));
        svc.ready().await.unwrap().call(traced_request(&trace_header("1"))).await.unwrap();
        let doc = daemon.receive();
        assert_eq!(doc["http"]["response"]["status"], status);
        assert_eq!(doc.get("fault").is_some(), fault, "{status}: {doc}");
        assert_eq!(doc.get("error").is_some(), error, "{status}: {doc}");
    }
}

#[tokio::test]
async fn unsampled_requests_send_nothing() {
    let daemon = Daemon::bind();
    let mut svc =
        daemon.layer(SamplingRule::new(100, 1.0), false).layer(tower::service_fn(downstream_handler));
    let res = svc.ready().await.unwrap().call(traced_request(&trace_header("0"))).await.unwrap();
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT};Sampled=0"));
    // Then a sampled request with another trace: the first datagram must be its.
    let other = "1-5759e988-000000000000000000000001";
    svc.ready().await.unwrap().call(traced_request(&format!("Root={other};Sampled=1"))).await.unwrap();
    assert_eq!(daemon.receive()["trace_id"], other);
}

#[tokio::test]
async fn without_a_header_a_new_trace_follows_the_local_rule() {
    let daemon = Daemon::bind();
    let plain = || Request::builder().uri("/x").body(Body::empty()).unwrap();
    let mut never =
        daemon.layer(SamplingRule::new(0, 0.0), false).layer(tower::service_fn(status_handler(200)));
    let res = never.ready().await.unwrap().call(plain()).await.unwrap();
    let header = res.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    assert!(header.ends_with(";Sampled=0") && is_trace_id(&header[5..40]), "{header}");

    let mut reservoir =
        daemon.layer(SamplingRule::new(1, 0.0), false).layer(tower::service_fn(status_handler(200)));
    let res = reservoir.ready().await.unwrap().call(plain()).await.unwrap();
    let header = res.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    assert!(header.ends_with(";Sampled=1"), "the reservoir takes the first request: {header}");
    let doc = daemon.receive();
    assert_eq!(doc["trace_id"].as_str().unwrap(), &header[5..40]);
    assert!(doc.get("parent_id").is_none());
}

// ---------------------------------------------------------------------------------------
// All three layers in axum and in Lift's App
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_three_layers_mount_in_an_axum_router() {
    use axum::routing::get;

    let (logs, _guard) = capture_logs(LogConfig::new().function_name("axum-fn"));
    let sink = MemorySink::new();
    let daemon = Daemon::bind();
    async fn payment(req: axum::extract::Request) -> &'static str {
        tracing::info!(card = "4111 1111 1111 1111", "fetching payment");
        let _call = XrayHandle::of(&req).unwrap().subsegment("DynamoDB", Namespace::Aws);
        MetricsHandle::of(&req).unwrap().count("PaymentsRead").unwrap();
        "ok"
    }
    let router = axum::Router::new()
        .route("/payments/{id}", get(payment))
        .layer(RequestLogLayer::new())
        .layer(metrics_layer(&sink))
        .layer(daemon.layer(SamplingRule::default(), false));
    let req = Request::builder()
        .uri("/payments/p1")
        .header("x-request-id", "axum-1")
        .header("x-amzn-trace-id", trace_header("1"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = router.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT};Sampled=1"));

    let line = &json_lines(&logs)[0];
    assert_eq!((&line["request_id"], &line["xray_trace_id"]), (&"axum-1".into(), &ROOT.into()));
    assert_eq!(line["card"], "[REDACTED:pan]");
    assert_eq!(request_doc(&sink.json())["PaymentsRead"], 1.0);
    assert_eq!(daemon.receive()["subsegments"][0]["name"], "DynamoDB");
}

#[tokio::test]
async fn the_three_layers_mount_in_a_lift_app() {
    let (logs, _guard) = capture_logs(LogConfig::new());
    let sink = MemorySink::new();
    let daemon = Daemon::bind();
    async fn payment(req: lift::Request) -> Result<lift::Response, lift::Error> {
        tracing::info!("fetching payment");
        let _call = XrayHandle::of(&req).unwrap().subsegment("DynamoDB", Namespace::Aws);
        MetricsHandle::of(&req).unwrap().count("PaymentsRead").map_err(lift::Error::internal)?;
        Ok(lift::Response::default())
    }
    let app = lift::App::new()
        .get("/payments/:id", payment)
        .layer(RequestLogLayer::new())
        .layer(metrics_layer(&sink))
        .layer(daemon.layer(SamplingRule::default(), false));
    let req = Request::builder()
        .uri("/payments/p1")
        .header("x-request-id", "app-1")
        .header("x-amzn-trace-id", trace_header("1"))
        .body(Body::empty())
        .unwrap();
    let res: Response<Body> = app.into_service().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT};Sampled=1"));
    assert_eq!(res.headers()["x-request-id"], "app-1");

    let line = &json_lines(&logs)[0];
    assert_eq!((&line["request_id"], &line["xray_trace_id"]), (&"app-1".into(), &ROOT.into()));
    assert_eq!(request_doc(&sink.json())["PaymentsRead"], 1.0);
    let doc = daemon.receive();
    assert_eq!((&doc["trace_id"], &doc["parent_id"]), (&ROOT.into(), &PARENT.into()));
    assert_eq!(doc["subsegments"][0]["name"], "DynamoDB");
}
