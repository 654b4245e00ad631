//! A recording DynamoDB proxy: forwards every request to DynamoDB and records which
//! partition key each item operation touched, how many bytes it was charged on, and which
//! route's request made it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lift_monitoring::capacity::{Access, AccessKind};
use serde_json::{Map, Value};
use tokio::net::TcpListener;

/// The partition key attribute of a table or index, learned with `DescribeTable`.
type Schemas = HashMap<(String, Option<String>), String>;

#[derive(Debug)]
struct State {
    upstream: String,
    route: Mutex<Option<String>>,
    accesses: Mutex<Vec<Access>>,
    /// Item operations seen outside any route (the function's init) or not understood.
    unattributed: Mutex<u64>,
    schemas: Mutex<Schemas>,
    dynamodb: aws_sdk_dynamodb::Client,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A DynamoDB proxy that records the partition keys of item operations per route.
///
/// Point a function's `AWS_ENDPOINT_URL_DYNAMODB` at [`DynamoDbRecorder::endpoint`], say
/// which route is running with [`DynamoDbRecorder::set_route`], and read the
/// [`DynamoDbRecorder::accesses`] afterwards. Writes (`PutItem`, `UpdateItem`,
/// `DeleteItem`, `BatchWriteItem`, `TransactWriteItems` including condition checks) are
/// charged on the item the request carries (for updates: the key and the new values, a
/// lower bound: DynamoDB charges the larger of the item before and after, which the proxy
/// does not see unless the caller asks for it back); reads (`GetItem`, `Query`,
/// `BatchGetItem`, `TransactGetItems`) on the items answered. Scans are not recorded.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use lift_harness::capacity::DynamoDbRecorder;
///
/// let recorder = DynamoDbRecorder::start("http://127.0.0.1:8000", "us-east-1").await?;
/// recorder.set_route(Some("create"));
/// // ... a function using recorder.endpoint() serves a create
/// recorder.set_route(None);
/// for access in recorder.accesses() {
///     println!("{} {} {:?} {} bytes", access.table, access.key, access.kind, access.bytes);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DynamoDbRecorder {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl DynamoDbRecorder {
    /// Starts a recorder on `127.0.0.1` and a free port in front of `upstream`
    /// (`http://...`), whose tables it describes in `region`.
    pub async fn start(upstream: &str, region: &str) -> anyhow::Result<Self> {
        let upstream = upstream.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            upstream.starts_with("http://"),
            "the recorder forwards to http:// only, not {upstream}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            dynamodb: crate::dynamodb::client_for(&upstream, region),
            upstream,
            route: Mutex::new(None),
            accesses: Mutex::new(Vec::new()),
            unattributed: Mutex::new(0),
            schemas: Mutex::new(HashMap::new()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self { addr, state, accept })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Attributes the item operations from now on to `route` (`None`: to no route).
    pub fn set_route(&self, route: Option<&str>) {
        *self.state.route.lock().expect("route lock") = route.map(str::to_owned);
    }

    /// Every access recorded so far.
    pub fn accesses(&self) -> Vec<Access> {
        self.state.accesses.lock().expect("accesses lock").clone()
    }

    /// Item operations seen while no route was set, or whose key could not be told.
    pub fn unattributed(&self) -> u64 {
        *self.state.unattributed.lock().expect("unattributed lock")
    }
}

impl Drop for DynamoDbRecorder {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let state = state.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let route = state.route.lock().expect("route lock").clone();
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_owned();
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let Ok(uri) = format!("{}{path}", state.upstream).parse() else {
        return Ok(Response::builder().status(502).body(Full::new(Bytes::new())).expect("a response"));
    };
    parts.uri = uri;
    // The Host header stays the client's: the request is signed over it.
    let response = match state.client.request(Request::from_parts(parts, Full::new(body.clone()))).await {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!("capacity recorder cannot forward {operation}: {err}");
            return Ok(Response::builder().status(502).body(Full::new(Bytes::new())).expect("a response"));
        }
    };
    let (parts, answer) = response.into_parts();
    let answer = answer.collect().await?.to_bytes();
    let charged = parts.status.is_success()
        || String::from_utf8_lossy(&answer).contains("ConditionalCheckFailed")
        || String::from_utf8_lossy(&answer).contains("TransactionCanceled");
    if charged {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let answered: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let touched = touched(&operation, &request, &answered);
        if !touched.is_empty() {
            record(&state, route, touched).await;
        }
    }
    Ok(Response::from_parts(parts, Full::new(answer)))
}

/// One item-level touch before its partition key is known.
#[derive(Debug)]
pub(crate) struct Touch {
    pub(crate) table: String,
    index: Option<String>,
    /// The key or item attributes (the partition key among them), or for a query the key
    /// condition's values by attribute name.
    attributes: Map<String, Value>,
    pub(crate) kind: AccessKind,
    pub(crate) transactional: bool,
    pub(crate) bytes: u64,
}

async fn record(state: &State, route: Option<String>, touched: Vec<Touch>) {
    let Some(route) = route else {
        *state.unattributed.lock().expect("unattributed lock") += touched.len() as u64;
        return;
    };
    for t in touched {
        let Some(pk) = partition_key(state, &t.table, t.index.as_deref()).await else {
            *state.unattributed.lock().expect("unattributed lock") += 1;
            continue;
        };
        let Some(value) = t.attributes.get(&pk).and_then(key_text) else {
            *state.unattributed.lock().expect("unattributed lock") += 1;
            continue;
        };
        let mut access = Access::new(route.clone(), t.table, value, t.kind, t.bytes);
        access.transactional = t.transactional;
        state.accesses.lock().expect("accesses lock").push(access);
    }
}

async fn partition_key(state: &State, table: &str, index: Option<&str>) -> Option<String> {
    let id = (table.to_owned(), index.map(str::to_owned));
    if let Some(pk) = state.schemas.lock().expect("schemas lock").get(&id) {
        return Some(pk.clone());
    }
    let described = state.dynamodb.describe_table().table_name(table).send().await.ok()?;
    let t = described.table()?;
    let hash = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        schema
            .iter()
            .find(|k| k.key_type() == &aws_sdk_dynamodb::types::KeyType::Hash)
            .map(|k| k.attribute_name().to_owned())
    };
    let pk = match index {
        None => hash(t.key_schema()),
        Some(name) => t
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(name))
            .and_then(|i| hash(i.key_schema()))
            // A local secondary index shares the table's partition key.
            .or_else(|| hash(t.key_schema())),
    }?;
    state.schemas.lock().expect("schemas lock").insert(id, pk.clone());
    Some(pk)
}

/// The items an operation touched, from its request and answer (DynamoDB's JSON protocol).
pub(crate) fn touched(operation: &str, req: &Value, answer: &Value) -> Vec<Touch> {
    let table = |v: &Value| v["TableName"].as_str().unwrap_or_default().to_owned();
    let consistent = |v: &Value| {
        if v["ConsistentRead"].as_bool() == Some(true) {
            AccessKind::ConsistentRead
        } else {
            AccessKind::EventualRead
        }
    };
    let obj = |v: &Value| v.as_object().cloned().unwrap_or_default();
    let touch = |table: String, attributes: Map<String, Value>, kind, bytes| Touch {
        table,
        index: None,
        attributes,
        kind,
        transactional: false,
        bytes,
    };
    match operation {
        "PutItem" => vec![touch(table(req), obj(&req["Item"]), AccessKind::Write, item_size(&req["Item"]))],
        "UpdateItem" => {
            let bytes = item_size(&req["Key"]) + item_size(&req["ExpressionAttributeValues"]);
            let bytes = bytes.max(item_size(&answer["Attributes"]));
            vec![touch(table(req), obj(&req["Key"]), AccessKind::Write, bytes)]
        }
        "DeleteItem" => {
            let bytes = item_size(&req["Key"]).max(item_size(&answer["Attributes"]));
            vec![touch(table(req), obj(&req["Key"]), AccessKind::Write, bytes)]
        }
        "GetItem" => vec![touch(table(req), obj(&req["Key"]), consistent(req), item_size(&answer["Item"]))],
        "Query" => {
            let bytes = answer["Items"].as_array().map_or(0, |items| items.iter().map(item_size).sum());
            vec![Touch {
                index: req["IndexName"].as_str().map(str::to_owned),
                ..touch(table(req), key_condition_values(req), consistent(req), bytes)
            }]
        }
        "BatchWriteItem" => {
            let mut out = Vec::new();
            for (t, writes) in req["RequestItems"].as_object().into_iter().flatten() {
                for w in writes.as_array().into_iter().flatten() {
                    let item = if w["PutRequest"].is_object() {
                        &w["PutRequest"]["Item"]
                    } else {
                        &w["DeleteRequest"]["Key"]
                    };
                    out.push(touch(t.clone(), obj(item), AccessKind::Write, item_size(item)));
                }
            }
            out
        }
        "BatchGetItem" => {
            let mut out = Vec::new();
            for (t, get) in req["RequestItems"].as_object().into_iter().flatten() {
                let answered = answer["Responses"][t].as_array().cloned().unwrap_or_default();
                for key in get["Keys"].as_array().into_iter().flatten() {
                    let item = answered.iter().find(|i| matches_key(i, key)).unwrap_or(&Value::Null);
                    out.push(touch(t.clone(), obj(key), consistent(get), item_size(item)));
                }
            }
            out
        }
        "TransactWriteItems" => req["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let (kind, inner) = entry.as_object()?.iter().next()?;
                let (attributes, bytes) = match kind.as_str() {
                    "Put" => (obj(&inner["Item"]), item_size(&inner["Item"])),
                    "Update" => (
                        obj(&inner["Key"]),
                        item_size(&inner["Key"]) + item_size(&inner["ExpressionAttributeValues"]),
                    ),
                    _ => (obj(&inner["Key"]), item_size(&inner["Key"])),
                };
                Some(Touch {
                    transactional: true,
                    ..touch(table(inner), attributes, AccessKind::Write, bytes)
                })
            })
            .collect(),
        "TransactGetItems" => req["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, entry)| {
                let get = &entry["Get"];
                let bytes = item_size(&answer["Responses"][i]["Item"]);
                Touch {
                    transactional: true,
                    ..touch(table(get), obj(&get["Key"]), AccessKind::ConsistentRead, bytes)
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn matches_key(item: &Value, key: &Value) -> bool {
    key.as_object().is_some_and(|k| k.iter().all(|(name, v)| item.get(name) == Some(v)))
}

/// The equality conditions of a query's `KeyConditionExpression`, as attribute name →
/// value (`#pk = :pk AND begins_with(sk, :p)` gives the value of `:pk` under `pk`'s name).
fn key_condition_values(req: &Value) -> Map<String, Value> {
    let expression = req["KeyConditionExpression"].as_str().unwrap_or_default();
    let names = &req["ExpressionAttributeNames"];
    let values = &req["ExpressionAttributeValues"];
    let mut out = Map::new();
    let lower = expression.to_ascii_lowercase();
    let mut start = 0;
    let mut clauses = Vec::new();
    for (i, _) in lower.match_indices(" and ") {
        clauses.push(&expression[start..i]);
        start = i + 5;
    }
    clauses.push(&expression[start..]);
    for clause in clauses {
        let clause = clause.trim().trim_start_matches('(').trim_end_matches(')');
        if clause.contains("<=") || clause.contains(">=") || clause.contains("<>") {
            continue;
        }
        let Some((left, right)) = clause.split_once('=') else { continue };
        let (mut left, mut right) = (left.trim(), right.trim());
        if left.starts_with(':') {
            std::mem::swap(&mut left, &mut right);
        }
        let name = if left.starts_with('#') { names[left].as_str().unwrap_or(left) } else { left };
        if let Some(v) = values.get(right) {
            out.insert(name.to_owned(), v.clone());
        }
    }
    out
}

/// A key attribute's value as text (`S`, `N`, or `B` as base64).
fn key_text(v: &Value) -> Option<String> {
    v["S"].as_str().or_else(|| v["N"].as_str()).or_else(|| v["B"].as_str()).map(str::to_owned)
}

/// An item's size by DynamoDB's rules: each attribute name's UTF-8 bytes plus its value's
/// size (strings their UTF-8 bytes, numbers about one byte per two digits plus one, binary
/// its bytes, booleans and nulls one, lists and maps three plus their elements).
pub(crate) fn item_size(item: &Value) -> u64 {
    item.as_object().map_or(0, |attrs| attrs.iter().map(|(name, v)| name.len() as u64 + value_size(v)).sum())
}

fn value_size(v: &Value) -> u64 {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else { return 0 };
    let number = |n: &str| {
        let digits = n.chars().filter(char::is_ascii_digit).count() as u64;
        digits.div_ceil(2) + 1
    };
    let binary =
        |b: &str| base64::engine::general_purpose::STANDARD.decode(b).map_or(b.len(), |d| d.len()) as u64;
    let strings = |f: &dyn Fn(&str) -> u64| {
        inner.as_array().map_or(0, |a| a.iter().filter_map(Value::as_str).map(f).sum())
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, |s| s.len() as u64),
        "N" => inner.as_str().map_or(0, number),
        "B" => inner.as_str().map_or(0, binary),
        "BOOL" | "NULL" => 1,
        "SS" => strings(&|s| s.len() as u64),
        "NS" => strings(&number),
        "BS" => strings(&binary),
        "L" => 3 + inner.as_array().map_or(0, |a| a.iter().map(|e| 1 + value_size(e)).sum()),
        "M" => {
            3 + inner
                .as_object()
                .map_or(0, |m| m.iter().map(|(k, e)| 1 + k.len() as u64 + value_size(e)).sum())
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sizes_follow_dynamodb_rules() {
        // "pk" (2) + "TENANT#a" (8); "n" (1) + 3 digits -> 2 + 1 = 3; "ok" (2) + 1.
        let item = json!({"pk": {"S": "TENANT#a"}, "n": {"N": "123"}, "ok": {"BOOL": true}});
        assert_eq!(item_size(&item), 10 + 4 + 3);
        // A map: 3 + per entry 1 + name + value.
        assert_eq!(item_size(&json!({"m": {"M": {"a": {"S": "xy"}}}})), 1 + 3 + 1 + 1 + 2);
        assert_eq!(item_size(&Value::Null), 0);
    }

    #[test]
    fn operations_name_their_items_and_keys() {
        let put = json!({"TableName": "t", "Item": {"pk": {"S": "A"}, "body": {"S": "x".repeat(2000)}}});
        let t = touched("PutItem", &put, &Value::Null);
        assert_eq!((t.len(), t[0].kind, t[0].bytes), (1, AccessKind::Write, 2 + 1 + 4 + 2000));
        let get = json!({"TableName": "t", "Key": {"pk": {"S": "A"}}, "ConsistentRead": true});
        let t = touched("GetItem", &get, &json!({"Item": {"pk": {"S": "A"}}}));
        assert_eq!((t[0].kind, t[0].bytes), (AccessKind::ConsistentRead, 3));
        let tx = json!({"TransactItems": [
            {"Put": {"TableName": "a", "Item": {"pk": {"S": "1"}}}},
            {"ConditionCheck": {"TableName": "b", "Key": {"pk": {"S": "2"}}}}
        ]});
        let t = touched("TransactWriteItems", &tx, &Value::Null);
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|t| t.transactional && t.kind == AccessKind::Write));
        assert_eq!(t[1].table, "b");
        assert!(touched("Scan", &json!({}), &Value::Null).is_empty());
    }

    #[test]
    fn a_query_names_its_partition_by_the_key_condition() {
        let q = json!({
            "TableName": "t",
            "KeyConditionExpression": "#p = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeNames": {"#p": "pk"},
            "ExpressionAttributeValues": {":pk": {"S": "TENANT#a"}, ":prefix": {"S": "PAYMENT#"}}
        });
        let t =
            touched("Query", &q, &json!({"Items": [{"pk": {"S": "TENANT#a"}}, {"pk": {"S": "TENANT#a"}}]}));
        assert_eq!(key_text(&t[0].attributes["pk"]).as_deref(), Some("TENANT#a"));
        assert!(!t[0].attributes.contains_key("sk"), "begins_with is not an equality");
        // Two items answered, each "pk" (2) + "TENANT#a" (8).
        assert_eq!((t[0].kind, t[0].bytes), (AccessKind::EventualRead, 20));
    }
}
