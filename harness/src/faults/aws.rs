//! An HTTP proxy in front of DynamoDB (Local) that answers chosen operations with the
//! error bodies DynamoDB itself sends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::net::TcpListener;

use super::FaultError;

/// The `X-Amz-Target` prefix of DynamoDB operations.
pub const DYNAMODB_TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// Matches every operation in [`AwsFaultProxy::inject`].
pub const ANY_OPERATION: &str = "*";

/// DynamoDB's operations (the `X-Amz-Target` suffixes) a fault can name: a name not here
/// would match no request, and the fault would do nothing.
pub const DYNAMODB_OPERATIONS: &[&str] = &[
    "BatchExecuteStatement",
    "BatchGetItem",
    "BatchWriteItem",
    "CreateBackup",
    "CreateTable",
    "DeleteBackup",
    "DeleteItem",
    "DeleteTable",
    "DescribeBackup",
    "DescribeContinuousBackups",
    "DescribeEndpoints",
    "DescribeTable",
    "DescribeTimeToLive",
    "ExecuteStatement",
    "ExecuteTransaction",
    "GetItem",
    "ListBackups",
    "ListTables",
    "ListTagsOfResource",
    "PutItem",
    "Query",
    "RestoreTableFromBackup",
    "RestoreTableToPointInTime",
    "Scan",
    "TagResource",
    "TransactGetItems",
    "TransactWriteItems",
    "UntagResource",
    "UpdateContinuousBackups",
    "UpdateItem",
    "UpdateTable",
    "UpdateTimeToLive",
];

/// An error DynamoDB answers with when it is overloaded or failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DynamoDbFault {
    /// 400 `ProvisionedThroughputExceededException`: a table or index is over its capacity.
    ProvisionedThroughputExceeded,
    /// 400 `ThrottlingException`: requests come too fast (account or control plane).
    Throttling,
    /// 500 `InternalServerError`.
    InternalServerError,
    /// 503 `ServiceUnavailable`.
    ServiceUnavailable,
}

impl DynamoDbFault {
    /// The HTTP status DynamoDB answers with.
    pub fn status(self) -> u16 {
        match self {
            DynamoDbFault::ProvisionedThroughputExceeded | DynamoDbFault::Throttling => 400,
            DynamoDbFault::InternalServerError => 500,
            DynamoDbFault::ServiceUnavailable => 503,
        }
    }

    /// The error code the SDKs report (the part of `__type` after `#`).
    pub fn code(self) -> &'static str {
        match self {
            DynamoDbFault::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            DynamoDbFault::Throttling => "ThrottlingException",
            DynamoDbFault::InternalServerError => "InternalServerError",
            DynamoDbFault::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The full `__type`, with the namespace DynamoDB uses for it.
    pub fn error_type(self) -> String {
        let namespace = match self {
            // Throttling comes from the shared AWS front end ("coral"), not DynamoDB's model.
            DynamoDbFault::Throttling => "com.amazon.coral.availability",
            _ => "com.amazonaws.dynamodb.v20120810",
        };
        format!("{namespace}#{}", self.code())
    }

    /// DynamoDB's message for it.
    pub fn message(self) -> &'static str {
        match self {
            DynamoDbFault::ProvisionedThroughputExceeded => {
                "The level of configured provisioned throughput for the table was exceeded. \
                 Consider increasing your provisioning level with the UpdateTable API."
            }
            DynamoDbFault::Throttling => "Rate of requests exceeds the allowed throughput.",
            DynamoDbFault::InternalServerError => "Internal server error",
            DynamoDbFault::ServiceUnavailable => {
                "DynamoDB is currently unavailable. (This should be a temporary state.)"
            }
        }
    }

    /// The JSON body, exactly as DynamoDB sends it: `{"__type":"…","message":"…"}`.
    pub fn body(self) -> String {
        serde_json::json!({ "__type": self.error_type(), "message": self.message() }).to_string()
    }
}

/// Counts of one operation through an [`AwsFaultProxy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OperationStats {
    /// Requests forwarded to DynamoDB.
    pub forwarded: u64,
    /// Requests answered with an injected error.
    pub injected: u64,
}

/// How much of a batch request the proxy hands back unprocessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandBack {
    /// Every key or write: nothing is forwarded.
    All,
    /// The later half of each table's keys or writes: the earlier half is forwarded.
    LaterHalf,
}

#[derive(Debug)]
struct Rule {
    fault: DynamoDbFault,
    rate: f64,
}

#[derive(Debug)]
struct State {
    upstream: String,
    rules: Mutex<HashMap<String, Rule>>,
    /// Operations whose next answers are lost: forwarded, then answered with a fault.
    lost: Mutex<HashMap<String, (DynamoDbFault, u32)>>,
    /// Batch operations whose next requests are handed back unprocessed (whole or in part),
    /// and how many.
    unprocessed: Mutex<HashMap<String, (HandBack, u32)>>,
    stats: Mutex<HashMap<String, OperationStats>>,
    rng: Mutex<StdRng>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A DynamoDB-aware HTTP proxy: picks operations by `X-Amz-Target` (e.g.
/// `DynamoDB_20120810.PutItem`) and answers a chosen share of them with DynamoDB's own error
/// responses (status, JSON body, `x-amzn-RequestId`, `x-amz-crc32`); forwards everything else.
///
/// Rules change at any time; counts of forwarded and injected requests are kept per operation.
/// The proxy stops when dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lift_harness::faults::FaultError> {
/// use lift_harness::faults::{AwsFaultProxy, DynamoDbFault};
///
/// let proxy = AwsFaultProxy::start("http://127.0.0.1:8000").await?;
/// proxy.inject("PutItem", DynamoDbFault::ProvisionedThroughputExceeded, 0.5);
/// // ... a client on proxy.endpoint() now sees half its PutItems throttled
/// println!("{:?}", proxy.stats("PutItem"));
/// proxy.clear();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AwsFaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl AwsFaultProxy {
    /// Starts a proxy on `127.0.0.1` and a free port in front of `upstream` (a URL such as
    /// `http://127.0.0.1:8000`).
    pub async fn start(upstream: &str) -> Result<Self, FaultError> {
        Self::start_seeded(upstream, rand::random()).await
    }

    /// Like [`AwsFaultProxy::start`], with a seed for the injection rolls (repeatable runs).
    pub async fn start_seeded(upstream: &str, seed: u64) -> Result<Self, FaultError> {
        let upstream = upstream.trim_end_matches('/').to_owned();
        if !upstream.starts_with("http://") {
            return Err(FaultError::Upstream(upstream));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(FaultError::Bind)?;
        let addr = listener.local_addr().map_err(FaultError::Bind)?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(HashMap::new()),
            lost: Mutex::new(HashMap::new()),
            unprocessed: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            client,
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self { addr, state, accept })
    }

    /// `http://127.0.0.1:<port>`, for SDK clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `rate` (0.0 to 1.0) of the requests for `operation` (`PutItem`, the full
    /// `DynamoDB_20120810.PutItem`, or [`ANY_OPERATION`]) with `fault`, replacing the rule
    /// for that operation. A rule for the operation itself wins over the `*` rule.
    pub fn inject(&self, operation: &str, fault: DynamoDbFault, rate: f64) {
        let rate = if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) };
        self.state
            .rules
            .lock()
            .expect("rules lock")
            .insert(short(operation).to_owned(), Rule { fault, rate });
    }

    /// Loses the answers of the next `count` requests for `operation`: each is forwarded
    /// and carried out by DynamoDB, and the client is answered with `fault` instead. This
    /// is the failure that tempts a client to do twice what was done once (a write that
    /// succeeded on the server and failed on the client).
    pub fn lose_answers(&self, operation: &str, fault: DynamoDbFault, count: u32) {
        self.state.lost.lock().expect("lost lock").insert(short(operation).to_owned(), (fault, count));
    }

    /// Hands the next `count` requests of a batch operation (`BatchGetItem` or
    /// `BatchWriteItem`) back unprocessed, as DynamoDB does when a batch meets throttling or
    /// a size limit: `200`, nothing read or written, and every key of the request in
    /// `UnprocessedKeys` (every write in `UnprocessedItems`), for the client to ask again.
    /// Counted as injected.
    ///
    /// # Panics
    /// When `operation` is not one of the two batch operations.
    pub fn leave_unprocessed(&self, operation: &str, count: u32) {
        self.hand_back(operation, HandBack::All, count);
    }

    /// Hands part of the next `count` requests of a batch operation back unprocessed, as
    /// DynamoDB does when a batch meets a limit part of the way: the earlier half of each
    /// table's keys or writes (rounded up) is forwarded and carried out, and the answer is
    /// DynamoDB's, with the later half added to `UnprocessedKeys` (`UnprocessedItems`). A
    /// client that keeps only its last answer, or sends again what was done, shows it.
    /// Counted as injected.
    ///
    /// The forwarded request's body is not the one its client signed: DynamoDB Local does
    /// not check signatures; DynamoDB would refuse it.
    ///
    /// # Panics
    /// When `operation` is not one of the two batch operations.
    pub fn hand_back_part(&self, operation: &str, count: u32) {
        self.hand_back(operation, HandBack::LaterHalf, count);
    }

    fn hand_back(&self, operation: &str, how: HandBack, count: u32) {
        let operation = short(operation);
        assert!(
            matches!(operation, "BatchGetItem" | "BatchWriteItem"),
            "only batch operations leave work unprocessed, not {operation}"
        );
        self.state.unprocessed.lock().expect("unprocessed lock").insert(operation.to_owned(), (how, count));
    }

    /// Stops injecting into `operation`.
    pub fn remove(&self, operation: &str) {
        self.state.rules.lock().expect("rules lock").remove(short(operation));
    }

    /// Stops injecting anything: rules, answers still to lose, batches still to hand back.
    pub fn clear(&self) {
        self.state.rules.lock().expect("rules lock").clear();
        self.state.lost.lock().expect("lost lock").clear();
        self.state.unprocessed.lock().expect("unprocessed lock").clear();
    }

    /// Counts for `operation` (short name, e.g. `PutItem`).
    pub fn stats(&self, operation: &str) -> OperationStats {
        self.state.stats.lock().expect("stats lock").get(short(operation)).copied().unwrap_or_default()
    }

    /// Counts for every operation seen.
    pub fn all_stats(&self) -> HashMap<String, OperationStats> {
        self.state.stats.lock().expect("stats lock").clone()
    }
}

impl Drop for AwsFaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// `PutItem` of `DynamoDB_20120810.PutItem` (and of `PutItem`).
fn short(operation: &str) -> &str {
    operation.strip_prefix(DYNAMODB_TARGET_PREFIX).unwrap_or(operation)
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!("aws fault proxy accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        // Held in the set, so aborting the accept loop ends the connections too.
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Why a request could not be forwarded: the connection is closed without an answer, as a
/// dead DynamoDB node would leave it (a 502 would read as an answer from DynamoDB).
#[derive(Debug)]
struct Unforwarded(String);

impl std::fmt::Display for Unforwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot forward to dynamodb: {}", self.0)
    }
}

impl std::error::Error for Unforwarded {}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, Unforwarded> {
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| short(t).to_owned())
        .unwrap_or_else(|| "-".to_owned());
    let lost = {
        let mut lost = state.lost.lock().expect("lost lock");
        match lost.get_mut(&operation) {
            Some((fault, left)) if *left > 0 => {
                *left -= 1;
                Some(*fault)
            }
            _ => None,
        }
    };
    if let Some(fault) = lost {
        state.stats.lock().expect("stats lock").entry(operation.clone()).or_default().injected += 1;
        forward(req, &state).await.map_err(Unforwarded)?;
        return Ok(error_response(fault));
    }
    let hand_back = {
        let mut unprocessed = state.unprocessed.lock().expect("unprocessed lock");
        unprocessed.get_mut(&operation).and_then(|(how, left)| {
            let take = *left > 0;
            *left = left.saturating_sub(1);
            take.then_some(*how)
        })
    };
    if let Some(how) = hand_back {
        state.stats.lock().expect("stats lock").entry(operation.clone()).or_default().injected += 1;
        let (mut parts, body) = req.into_parts();
        let body = body.collect().await.map_err(|e| Unforwarded(e.to_string()))?.to_bytes();
        if how == HandBack::All {
            return Ok(unprocessed_response(&operation, &body));
        }
        let Some((forwarded, handed_back)) = split_batch(&operation, &body) else {
            return Ok(unprocessed_response(&operation, &body));
        };
        let forwarded = Bytes::from(forwarded.to_string());
        parts.headers.insert(http::header::CONTENT_LENGTH, forwarded.len().into());
        let answer = forward_bytes(parts, forwarded, &state).await.map_err(Unforwarded)?;
        return Ok(with_handed_back(&operation, answer, handed_back).await);
    }
    let injected = {
        let rules = state.rules.lock().expect("rules lock");
        rules.get(&operation).or_else(|| rules.get(ANY_OPERATION)).and_then(|rule| {
            let hit = rule.rate >= 1.0
                || (rule.rate > 0.0 && state.rng.lock().expect("rng lock").gen_bool(rule.rate));
            hit.then_some(rule.fault)
        })
    };
    {
        let mut stats = state.stats.lock().expect("stats lock");
        let entry = stats.entry(operation.clone()).or_default();
        if injected.is_some() {
            entry.injected += 1;
        } else {
            entry.forwarded += 1;
        }
    }
    if let Some(fault) = injected {
        // Read the request whole, as DynamoDB would, before answering.
        let _ = req.into_body().collect().await;
        return Ok(error_response(fault));
    }
    forward(req, &state).await.map_err(|reason| {
        tracing::debug!(%operation, "aws fault proxy cannot forward: {reason}");
        Unforwarded(reason)
    })
}

async fn forward(req: Request<Incoming>, state: &State) -> Result<Response<Full<Bytes>>, String> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    forward_bytes(parts, body, state).await
}

async fn forward_bytes(
    mut parts: http::request::Parts,
    body: Bytes,
    state: &State,
) -> Result<Response<Full<Bytes>>, String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri =
        format!("{}{path}", state.upstream).parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
    // The Host header stays the client's: the request is signed over it.
    let response = state
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn error_response(fault: DynamoDbFault) -> Response<Full<Bytes>> {
    json_response(fault.status(), fault.body())
}

/// An answer as DynamoDB sends it: its JSON content type, a request id and the body's CRC-32.
fn json_response(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", request_id())
        .header("x-amz-crc32", crc32(body.as_bytes()).to_string())
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// The answer to a batch request of which nothing was done: its `RequestItems` handed back
/// whole, as `UnprocessedKeys` (with an empty `Responses`) or `UnprocessedItems`.
fn unprocessed_response(operation: &str, request: &[u8]) -> Response<Full<Bytes>> {
    let items = serde_json::from_slice::<serde_json::Value>(request)
        .ok()
        .and_then(|mut v| v.get_mut("RequestItems").map(serde_json::Value::take))
        .unwrap_or_else(|| serde_json::json!({}));
    let body = if operation == "BatchGetItem" {
        let responses: serde_json::Map<String, serde_json::Value> = items
            .as_object()
            .map(|tables| tables.keys().map(|t| (t.clone(), serde_json::json!([]))).collect())
            .unwrap_or_default();
        serde_json::json!({ "Responses": responses, "UnprocessedKeys": items })
    } else {
        serde_json::json!({ "UnprocessedItems": items })
    };
    json_response(200, body.to_string())
}

/// A batch request split in two: the request with the earlier half of each table's keys
/// (writes), rounded up, and what is handed back: per table, the request's `KeysAndAttributes`
/// with the later half of its keys (for `BatchWriteItem`, the later half of its writes).
/// `None` when the body is not a batch request.
fn split_batch(operation: &str, request: &[u8]) -> Option<(serde_json::Value, serde_json::Value)> {
    let mut request: serde_json::Value = serde_json::from_slice(request).ok()?;
    let tables = request.get_mut("RequestItems")?.as_object_mut()?;
    let mut handed_back = serde_json::Map::new();
    for (table, asked) in tables.iter_mut() {
        let later = {
            let list = if operation == "BatchGetItem" { asked.get_mut("Keys")? } else { &mut *asked };
            let list = list.as_array_mut()?;
            list.split_off(list.len().div_ceil(2))
        };
        if later.is_empty() {
            continue;
        }
        let back = if operation == "BatchGetItem" {
            let mut back = asked.clone();
            back["Keys"] = serde_json::Value::Array(later);
            back
        } else {
            serde_json::Value::Array(later)
        };
        handed_back.insert(table.clone(), back);
    }
    Some((request, serde_json::Value::Object(handed_back)))
}

/// DynamoDB's answer to the forwarded half, with the handed-back half added to its
/// `UnprocessedKeys` (`UnprocessedItems`). An answer that is not a 200 is passed on as it is.
/// A 200 whose body is not a JSON object (one compressed on the way, say) cannot be
/// amended: it is answered with a 500, which the client retries whole, rather than with an
/// answer that would leave out what was read.
async fn with_handed_back(
    operation: &str,
    answer: Response<Full<Bytes>>,
    handed_back: serde_json::Value,
) -> Response<Full<Bytes>> {
    if answer.status() != 200 {
        return answer;
    }
    let Ok(body) = answer.into_body().collect().await.map(|b| b.to_bytes());
    let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice(&body) else {
        return error_response(DynamoDbFault::InternalServerError);
    };
    let field = if operation == "BatchGetItem" { "UnprocessedKeys" } else { "UnprocessedItems" };
    let unprocessed = body.entry(field).or_insert_with(|| serde_json::json!({}));
    if let (serde_json::Value::Object(unprocessed), serde_json::Value::Object(handed_back)) =
        (unprocessed, handed_back)
    {
        for (table, back) in handed_back {
            match (unprocessed.get_mut(&table), back) {
                // DynamoDB left some of this table's keys unprocessed too: both go back.
                (Some(left), back) if operation == "BatchGetItem" => {
                    let more =
                        back.get("Keys").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
                    match left.get_mut("Keys").and_then(serde_json::Value::as_array_mut) {
                        Some(keys) => keys.extend(more),
                        // An entry without a list of keys to add to: ours takes its place, so
                        // no handed-back key is dropped.
                        None => *left = back,
                    }
                }
                (Some(serde_json::Value::Array(left)), serde_json::Value::Array(more)) => left.extend(more),
                (_, back) => {
                    unprocessed.insert(table, back);
                }
            }
        }
    }
    json_response(200, serde_json::Value::Object(body).to_string())
}

/// A request id shaped like DynamoDB's: 52 characters of `A-Z0-9`.
fn request_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..52).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// CRC-32 (IEEE 802.3), which DynamoDB sends in `x-amz-crc32` as a decimal number.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn bodies_are_dynamodbs() {
        assert_eq!(
            DynamoDbFault::ProvisionedThroughputExceeded.body(),
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}"#
        );
        assert_eq!(
            DynamoDbFault::Throttling.error_type(),
            "com.amazon.coral.availability#ThrottlingException"
        );
        assert_eq!(DynamoDbFault::ServiceUnavailable.status(), 503);
        assert_eq!(DynamoDbFault::InternalServerError.status(), 500);
    }

    #[tokio::test]
    async fn an_unprocessed_batch_hands_every_key_back() {
        let request =
            br#"{"RequestItems":{"blocks":{"Keys":[{"pk":{"S":"BLOCK#ip#1"}}],"ConsistentRead":true}}}"#;
        let response = unprocessed_response("BatchGetItem", request);
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
        assert_eq!(body["Responses"]["blocks"], serde_json::json!([]));
        assert_eq!(body["UnprocessedKeys"]["blocks"]["Keys"][0]["pk"]["S"], "BLOCK#ip#1");
        assert_eq!(body["UnprocessedKeys"]["blocks"]["ConsistentRead"], true);
        let writes = br#"{"RequestItems":{"t":[{"PutRequest":{"Item":{"pk":{"S":"1"}}}}]}}"#;
        let response = unprocessed_response("BatchWriteItem", writes);
        let body = response.into_body().collect().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
        assert_eq!(body["UnprocessedItems"]["t"][0]["PutRequest"]["Item"]["pk"]["S"], "1");
    }

    /// A part handed back: the earlier half of each table's keys (rounded up) is forwarded,
    /// with the request's other fields; the later half goes back with them too; a table of
    /// one key is forwarded whole. DynamoDB's own unprocessed keys are kept beside ours.
    #[tokio::test]
    async fn a_part_handed_back_is_the_later_half_of_each_table() {
        let request = br#"{"RequestItems":{
            "a":{"Keys":[{"pk":{"S":"1"}},{"pk":{"S":"2"}},{"pk":{"S":"3"}}],"ConsistentRead":true,"ProjectionExpression":"until_ms"},
            "b":{"Keys":[{"pk":{"S":"only"}}]}}}"#;
        let (forwarded, back) = split_batch("BatchGetItem", request).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v["Keys"].as_array().unwrap().iter().map(|k| k["pk"]["S"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(keys(&forwarded["RequestItems"]["a"]), ["1", "2"]);
        assert_eq!(keys(&forwarded["RequestItems"]["b"]), ["only"]);
        assert_eq!(keys(&back["a"]), ["3"]);
        assert_eq!(back["a"]["ConsistentRead"], true);
        assert_eq!(back["a"]["ProjectionExpression"], "until_ms");
        assert!(back.get("b").is_none(), "{back}");

        let answer = json_response(
            200,
            r#"{"Responses":{"a":[{"pk":{"S":"1"}}]},"UnprocessedKeys":{"a":{"Keys":[{"pk":{"S":"2"}}],"ConsistentRead":true}}}"#
                .to_owned(),
        );
        let answer = with_handed_back("BatchGetItem", answer, back).await;
        let crc = answer.headers()["x-amz-crc32"].to_str().unwrap().to_owned();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(crc, crc32(&body).to_string(), "the answer's checksum is of its new body");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(keys(&body["UnprocessedKeys"]["a"]), ["2", "3"]);
        assert_eq!(body["Responses"]["a"][0]["pk"]["S"], "1");

        let writes = br#"{"RequestItems":{"t":[{"PutRequest":{"Item":{"pk":{"S":"1"}}}},{"DeleteRequest":{"Key":{"pk":{"S":"2"}}}}]}}"#;
        let (forwarded, back) = split_batch("BatchWriteItem", writes).unwrap();
        assert_eq!(forwarded["RequestItems"]["t"].as_array().unwrap().len(), 1);
        assert_eq!(back["t"][0]["DeleteRequest"]["Key"]["pk"]["S"], "2");
        let answer = with_handed_back(
            "BatchWriteItem",
            json_response(200, r#"{"UnprocessedItems":{}}"#.to_owned()),
            back,
        )
        .await;
        let body: serde_json::Value =
            serde_json::from_slice(&answer.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["UnprocessedItems"]["t"][0]["DeleteRequest"]["Key"]["pk"]["S"], "2");
        assert!(split_batch("BatchGetItem", b"not json").is_none());
        // DynamoDB's entry for a table with no list of keys: the handed-back keys are not lost.
        let answer = with_handed_back(
            "BatchGetItem",
            json_response(
                200,
                r#"{"Responses":{"a":[]},"UnprocessedKeys":{"a":{"ConsistentRead":true}}}"#.to_owned(),
            ),
            serde_json::json!({"a": {"Keys": [{"pk": {"S": "3"}}]}}),
        )
        .await;
        let body: serde_json::Value =
            serde_json::from_slice(&answer.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(keys(&body["UnprocessedKeys"]["a"]), ["3"]);
        // A 200 that cannot be read is never passed on without what it read: a 500 instead.
        let unreadable =
            Response::builder().status(200).body(Full::new(Bytes::from_static(b"\x1f\x8b"))).unwrap();
        let answer =
            with_handed_back("BatchGetItem", unreadable, serde_json::json!({"a": {"Keys": []}})).await;
        assert_eq!(answer.status(), 500);
    }

    #[tokio::test]
    #[should_panic(expected = "only batch operations")]
    async fn only_batches_leave_work_unprocessed() {
        let proxy = AwsFaultProxy::start("http://127.0.0.1:9").await.unwrap();
        proxy.leave_unprocessed("GetItem", 1);
    }

    #[test]
    fn operations_match_by_short_name() {
        assert_eq!(short("DynamoDB_20120810.PutItem"), "PutItem");
        assert_eq!(short("PutItem"), "PutItem");
        let id = request_id();
        assert_eq!(id.len(), 52);
        assert!(id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    }
}
