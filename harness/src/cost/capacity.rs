//! A recording HTTP proxy in front of DynamoDB (Local): it asks DynamoDB for the capacity
//! each data-plane request consumes (`"ReturnConsumedCapacity": "TOTAL"` added to the JSON
//! request, unless the caller asked already) and records what the answer reports.
//!
//! A write refused on its condition answers an error without `ConsumedCapacity`, yet
//! DynamoDB charges it: at least one write unit, on the larger of the item before and the
//! item sent. The proxy charges it from the request, as the capacity recorder sizes writes
//! ([`crate::capacity::DynamoDbRecorder`]): the item a put sends, the key and values an
//! update sends, or the item answered back when the caller asked for it
//! (`ReturnValuesOnConditionCheckFailure`), whichever is larger, at least 1 unit per item.
//! That is a lower bound where the stored item is larger than what the request carries. A
//! transaction cancelled on a condition (`TransactionCanceledException` with a
//! `ConditionalCheckFailed` reason) is charged likewise, each item at transactional rates,
//! as the capacity recorder charges it; AWS documents the charge for single-item
//! conditional writes, and this proxy assumes the same of a cancelled transaction.
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
use lift_monitoring::capacity::{Access, AccessKind};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::capacity::{item_size, touched};

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
    /// Whether the units are known: the answer reported consumed capacity, or the request
    /// was a write refused on its condition, charged from its size. Other errors (throttling,
    /// validation) consume nothing and are not.
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
    let request = body.clone();
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
        let record = consumed(&operation, &request, &body);
        records.lock().expect("records lock").push(record);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// What an answer reports: `ConsumedCapacity` as one object or a list (batch and
/// transactional operations), read and write units apart when DynamoDB splits them, else
/// by the kind of operation; for a write refused on its condition, what DynamoDB charges
/// for it ([`refused_write_units`]).
pub(crate) fn consumed(operation: &str, request: &[u8], body: &[u8]) -> CapacityRecord {
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
        _ => {
            if let Some(units) = refused_write_units(operation, request, &doc) {
                record.write_units = units;
                record.reported = true;
            }
            return record;
        }
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

/// The write units of a write refused on its condition (see the module docs), or `None`
/// when `answer` is not such a refusal.
fn refused_write_units(operation: &str, request: &[u8], answer: &Value) -> Option<f64> {
    let refused = match answer["__type"].as_str()?.rsplit('#').next()? {
        "ConditionalCheckFailedException" => true,
        "TransactionCanceledException" => answer.to_string().contains("ConditionalCheckFailed"),
        _ => false,
    };
    if !refused {
        return None;
    }
    let request: Value = serde_json::from_slice(request).ok()?;
    let before = item_size(&answer["Item"]);
    let units: Vec<f64> = touched(operation, &request, &Value::Null)
        .into_iter()
        .filter(|t| t.kind == AccessKind::Write)
        .map(|t| {
            let access = Access::new("", t.table, "", AccessKind::Write, t.bytes.max(before));
            if t.transactional {
                access.transactional().units()
            } else {
                access.units()
            }
        })
        .collect();
    // An operation whose items the request does not name (PartiQL) stays unknown.
    (!units.is_empty()).then(|| units.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_dynamodb_reports_them() {
        let get = consumed(
            "GetItem",
            b"{}",
            br#"{"Item":{},"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}}"#,
        );
        assert_eq!((get.read_units, get.write_units, get.reported), (0.5, 0.0, true));
        let put =
            consumed("PutItem", b"{}", br#"{"ConsumedCapacity":{"TableName":"t","CapacityUnits":2.0}}"#);
        assert_eq!((put.read_units, put.write_units), (0.0, 2.0));
        let tx = consumed(
            "TransactWriteItems",
            b"{}",
            br#"{"ConsumedCapacity":[{"TableName":"a","CapacityUnits":2.0,"WriteCapacityUnits":2.0},{"TableName":"b","CapacityUnits":4.0,"ReadCapacityUnits":2.0,"WriteCapacityUnits":2.0}]}"#,
        );
        assert_eq!((tx.read_units, tx.write_units), (2.0, 4.0));
        // Errors other than a refused condition consume nothing.
        let throttled = consumed(
            "PutItem",
            br#"{"TableName":"t","Item":{"pk":{"S":"a"}}}"#,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}"#,
        );
        assert_eq!((throttled.write_units, throttled.reported), (0.0, false));
    }

    const REFUSED: &[u8] = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;

    #[test]
    fn a_write_refused_on_its_condition_is_charged_by_its_size() {
        // 1,500 bytes of item ("pk" 2 + "a" 1, "body" 4 + 1,493): two 1 KB units.
        let big = serde_json::json!({"TableName": "t", "Item": {"pk": {"S": "a"}, "body": {"S": "x".repeat(1493)}}});
        let put = consumed("PutItem", big.to_string().as_bytes(), REFUSED);
        assert_eq!((put.write_units, put.read_units, put.reported), (2.0, 0.0, true));
        // A small update or delete: the minimum, one unit.
        let key = br#"{"TableName":"t","Key":{"pk":{"S":"a"}},"ConditionExpression":"attribute_exists(pk)"}"#;
        assert_eq!(consumed("UpdateItem", key, REFUSED).write_units, 1.0);
        assert_eq!(consumed("DeleteItem", key, REFUSED).write_units, 1.0);
        // The item before, answered back, counts when it is the larger (3,000 bytes: 3 units).
        let with_item = format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","Item":{{"pk":{{"S":"a"}},"b":{{"S":"{}"}}}}}}"#,
            "y".repeat(2996)
        );
        assert_eq!(consumed("UpdateItem", key, with_item.as_bytes()).write_units, 3.0);
        // A transaction cancelled on a condition: each item at transactional rates.
        let tx = br#"{"TransactItems":[{"Put":{"TableName":"a","Item":{"pk":{"S":"1"}}}},{"ConditionCheck":{"TableName":"b","Key":{"pk":{"S":"2"}},"ConditionExpression":"attribute_exists(pk)"}}]}"#;
        let cancelled = br#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]"}"#;
        let charged = consumed("TransactWriteItems", tx, cancelled);
        assert_eq!((charged.write_units, charged.reported), (4.0, true));
        // Cancelled for another reason (a conflict): not a refused condition.
        let conflict = br#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None]"}"#;
        assert!(!consumed("TransactWriteItems", tx, conflict).reported);
    }

    /// A request whose conditional writes DynamoDB Local refuses costs write units through
    /// the proxy `lift-harness cost` bills routes from.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conditional_writes_dynamodb_local_refuses_cost_write_units() {
        use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
        let ddb = crate::dynamodb::DynamoDbLocal::shared().await.unwrap();
        let def = lift::store::TableDef::new("refused", lift::store::KeyAttribute::string("pk"));
        let table = ddb.create_table(&def).await.unwrap();
        let proxy = CapacityProxy::start(ddb.endpoint()).await.unwrap();
        let client = crate::dynamodb::client_for(&proxy.endpoint(), &crate::dynamodb::default_region());
        let pk = |v: &str| AttributeValue::S(v.to_owned());
        client.put_item().table_name(&table).item("pk", pk("a")).send().await.unwrap();
        let refused = client
            .put_item()
            .table_name(&table)
            .item("pk", pk("a"))
            .item("body", AttributeValue::S("x".repeat(1500)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .unwrap_err();
        assert!(refused.into_service_error().is_conditional_check_failed_exception());
        let refused = client
            .update_item()
            .table_name(&table)
            .key("pk", pk("missing"))
            .update_expression("SET n = :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .unwrap_err();
        assert!(refused.into_service_error().is_conditional_check_failed_exception());
        let check = ConditionCheck::builder()
            .table_name(&table)
            .key("pk", pk("missing"))
            .condition_expression("attribute_exists(pk)")
            .build()
            .unwrap();
        let put = Put::builder().table_name(&table).item("pk", pk("b")).build().unwrap();
        let cancelled = client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .unwrap_err();
        assert!(cancelled.into_service_error().is_transaction_canceled_exception());
        let records = proxy.drain();
        let units: Vec<(&str, f64, bool)> =
            records.iter().map(|r| (r.operation.as_str(), r.write_units, r.reported)).collect();
        assert_eq!(
            units,
            [
                ("PutItem", 1.0, true),
                ("PutItem", 2.0, true),
                ("UpdateItem", 1.0, true),
                ("TransactWriteItems", 4.0, true)
            ]
        );
    }
}
