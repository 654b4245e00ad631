//! A recording HTTP proxy in front of DynamoDB (Local): it asks DynamoDB for the capacity
//! each data-plane request consumes (`"ReturnConsumedCapacity": "TOTAL"` added to the JSON
//! request, unless the caller asked already) and records what the answer reports.
//!
//! DynamoDB Local does not check SigV4 signatures, so the changed body is accepted; against
//! real DynamoDB the signature would no longer match, so this proxy is for local runs only.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;

/// Operations whose requests take `ReturnConsumedCapacity`.
const CAPACITY_OPERATIONS: &[&str] = &[
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ExecuteTransaction",
];

/// Operations that read (their units are read request units when the answer does not split).
const READ_OPERATIONS: &[&str] = &["GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"];

/// What one request consumed.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityRecord {
    /// The operation, e.g. `PutItem`.
    pub operation: String,
    /// Read request units.
    pub read_units: f64,
    /// Write request units.
    pub write_units: f64,
    /// Whether the answer reported consumed capacity (errors do not).
    pub reported: bool,
}

/// The recording proxy; stops when dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use lift_harness::cost::CapacityProxy;
///
/// let proxy = CapacityProxy::start("http://127.0.0.1:8000").await?;
/// // ... point AWS_ENDPOINT_URL_DYNAMODB at proxy.endpoint(), make requests ...
/// for r in proxy.drain() {
///     println!("{} {} RRU {} WRU", r.operation, r.read_units, r.write_units);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CapacityProxy {
    addr: SocketAddr,
    records: Arc<Mutex<Vec<CapacityRecord>>>,
    accept: tokio::task::JoinHandle<()>,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

impl CapacityProxy {
    /// Starts on `127.0.0.1` and a free port in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let records = Arc::new(Mutex::new(Vec::new()));
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let upstream = Arc::new(upstream.trim_end_matches('/').to_owned());
        let state = records.clone();
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (client, upstream, records) = (client.clone(), upstream.clone(), state.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        forward(req, client.clone(), upstream.clone(), records.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self { addr, records, accept })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes what was recorded since the last call.
    pub fn drain(&self) -> Vec<CapacityRecord> {
        std::mem::take(&mut *self.records.lock().expect("records lock"))
    }
}

impl Drop for CapacityProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn forward(
    req: Request<Incoming>,
    client: HttpClient,
    upstream: Arc<String>,
    records: Arc<Mutex<Vec<CapacityRecord>>>,
) -> Result<Response<Full<Bytes>>, String> {
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("-")
        .to_owned();
    let (mut parts, body) = req.into_parts();
    let mut body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let recorded = CAPACITY_OPERATIONS.contains(&operation.as_str());
    if recorded {
        if let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&body) {
            doc.entry("ReturnConsumedCapacity").or_insert_with(|| Value::from("TOTAL"));
            body = Bytes::from(serde_json::to_vec(&doc).map_err(|e| e.to_string())?);
            parts.headers.insert(http::header::CONTENT_LENGTH, body.len().into());
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{path}").parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let response =
        client.request(Request::from_parts(parts, Full::new(body))).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    if recorded {
        let record = consumed(&operation, &body);
        records.lock().expect("records lock").push(record);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// What an answer reports: `ConsumedCapacity` as one object or a list (batch and
/// transactional operations), read and write units apart when DynamoDB splits them, else
/// by the kind of operation.
pub(crate) fn consumed(operation: &str, body: &[u8]) -> CapacityRecord {
    let mut record = CapacityRecord {
        operation: operation.to_owned(),
        read_units: 0.0,
        write_units: 0.0,
        reported: false,
    };
    let Ok(doc) = serde_json::from_slice::<Value>(body) else { return record };
    let entries: Vec<&Value> = match &doc["ConsumedCapacity"] {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![&doc["ConsumedCapacity"]],
        _ => return record,
    };
    record.reported = true;
    let reads = READ_OPERATIONS.contains(&operation);
    for c in entries {
        let read = c["ReadCapacityUnits"].as_f64();
        let write = c["WriteCapacityUnits"].as_f64();
        if read.is_some() || write.is_some() {
            record.read_units += read.unwrap_or(0.0);
            record.write_units += write.unwrap_or(0.0);
        } else if reads {
            record.read_units += c["CapacityUnits"].as_f64().unwrap_or(0.0);
        } else {
            record.write_units += c["CapacityUnits"].as_f64().unwrap_or(0.0);
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_dynamodb_reports_them() {
        let get =
            consumed("GetItem", br#"{"Item":{},"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}}"#);
        assert_eq!((get.read_units, get.write_units, get.reported), (0.5, 0.0, true));
        let put = consumed("PutItem", br#"{"ConsumedCapacity":{"TableName":"t","CapacityUnits":2.0}}"#);
        assert_eq!((put.read_units, put.write_units), (0.0, 2.0));
        let tx = consumed(
            "TransactWriteItems",
            br#"{"ConsumedCapacity":[{"TableName":"a","CapacityUnits":2.0,"WriteCapacityUnits":2.0},{"TableName":"b","CapacityUnits":4.0,"ReadCapacityUnits":2.0,"WriteCapacityUnits":2.0}]}"#,
        );
        assert_eq!((tx.read_units, tx.write_units), (2.0, 4.0));
        let err = consumed(
            "PutItem",
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#,
        );
        assert!(!err.reported);
    }
}
