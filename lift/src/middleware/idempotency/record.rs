//! Idempotency records in DynamoDB.
//!
//! One item per record (table [`tables::idempotency`](crate::store::tables::idempotency),
//! partition key `pk`, TTL `expires_at` in epoch seconds): `status` (`IN_PROGRESS` or
//! `COMPLETED`), `payload_hash`, `lock_id` (the invocation holding it), `tenant`, `route`
//! (the method and the matched route's pattern, `POST /payments/:id/refunds`, or the method
//! alone before routing: never the path, which holds ids),
//! and once completed `response_status`, `response_headers` (M of L of S), `response_body` (B)
//! `response_sealed` (BOOL: the body is as a [`ResponseCipher`](super::ResponseCipher)
//! sealed it) and `body_omitted` (BOOL: the body was too large to store and is empty; absent
//! on records written before it existed, which stored their body), and `audit_classes` (L
//! of S: the data classes the handler named for the audit trail, `phi`, `pci`..., so the
//! audit entry of a replay names what the replayed answer holds; absent when it named none).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::body::{Body, Response};

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";
/// Tries to take a lock whose record vanished between the failed put and the read.
const LOCK_ATTEMPTS: usize = 3;

/// What an existing record says.
#[derive(Debug)]
pub(crate) enum Existing {
    InProgress {
        payload_hash: String,
    },
    /// `sealed`: the body is as a [`ResponseCipher`](super::ResponseCipher) sealed it;
    /// `omitted`: the body was too large to store, and the stored one is empty.
    /// `audit_classes`: the data classes the handler named for the audit trail.
    Completed {
        payload_hash: String,
        response: Response,
        sealed: bool,
        omitted: bool,
        audit_classes: Vec<String>,
    },
}

impl Existing {
    pub(crate) fn payload_hash(&self) -> &str {
        match self {
            Self::InProgress { payload_hash } | Self::Completed { payload_hash, .. } => payload_hash,
        }
    }
}

/// The outcome of taking the lock.
#[derive(Debug)]
pub(crate) enum Lock {
    Acquired,
    Held(Existing),
}

/// A new in-progress record.
pub(crate) struct NewRecord<'a> {
    pub(crate) pk: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) route: &'a str,
    pub(crate) payload_hash: &'a str,
    pub(crate) lock_id: &'a str,
    pub(crate) expires_at: u64,
}

/// What a completed record keeps of the response body.
pub(crate) enum StoredBody<'a> {
    /// The body as the handler answered it.
    Clear(&'a [u8]),
    /// The body as a [`ResponseCipher`](super::ResponseCipher) sealed it.
    Sealed(Vec<u8>),
    /// Nothing: the body was larger than the layer stores. The record still completes, so a
    /// retry is told the request was done instead of running it again.
    Omitted,
}

/// Why the store failed: the AWS error code or the kind of failure, no request data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreFailure(pub(crate) String);

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "idempotency store failed: {}", self.0)
    }
}

impl std::error::Error for StoreFailure {}

fn failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> StoreFailure {
    StoreFailure(match err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch failure".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        _ => "request not sent".to_owned(),
    })
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The records of one table.
pub(crate) struct RecordStore {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl RecordStore {
    /// Takes the lock in one conditional put, or reports the record that holds the key.
    pub(crate) async fn lock(&self, record: &NewRecord<'_>) -> Result<Lock, StoreFailure> {
        for _ in 0..LOCK_ATTEMPTS {
            let now = now_secs();
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(record.pk))
                .item("status", s(IN_PROGRESS))
                .item("payload_hash", s(record.payload_hash))
                .item("lock_id", s(record.lock_id))
                .item("tenant", s(record.tenant))
                .item("route", s(record.route))
                .item("expires_at", n(record.expires_at))
                .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
                .expression_attribute_values(":now", n(now))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let old = match put {
                Ok(_) => return Ok(Lock::Acquired),
                Err(SdkError::ServiceError(err)) if err.err().is_conditional_check_failed_exception() => {
                    match err.err() {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(ccf) => {
                            ccf.item().cloned()
                        }
                        _ => None,
                    }
                }
                Err(err) => return Err(failure(&err)),
            };
            // A DynamoDB that does not return the failed item gets a consistent read.
            let old = match old {
                Some(item) => Some(item),
                None => self.read(record.pk).await?,
            };
            if let Some(item) = old {
                return Ok(Lock::Held(parse(&item)?));
            }
        }
        Err(StoreFailure("the record changed under every attempt".into()))
    }

    async fn read(&self, pk: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreFailure> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure(&e))?;
        Ok(out
            .item()
            .cloned()
            .filter(|item| read_n(item.get("expires_at")).is_none_or(|exp| exp >= now_secs())))
    }

    /// Stores the response (its status and replayed headers, and `body`: the response's
    /// own, as sealed, or none) and the data classes the handler named for the audit trail,
    /// and marks the record completed, if this invocation still holds it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn complete(
        &self,
        pk: &str,
        lock_id: &str,
        response: &Response,
        body: StoredBody<'_>,
        headers: &[HeaderName],
        audit_classes: &[String],
        expires_at: u64,
    ) -> Result<bool, StoreFailure> {
        let (body, sealed, omitted) = match &body {
            StoredBody::Clear(bytes) => (*bytes, false, false),
            StoredBody::Sealed(bytes) => (bytes.as_slice(), true, false),
            StoredBody::Omitted => (&[][..], false, true),
        };
        let mut stored = HashMap::new();
        for name in headers {
            let values: Vec<_> =
                response.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).map(s).collect();
            if !values.is_empty() {
                stored.insert(name.as_str().to_owned(), AttributeValue::L(values));
            }
        }
        let mut update = String::from(
            "SET #status = :completed, response_status = :code, response_headers = :headers, \
             response_body = :body, response_sealed = :sealed, body_omitted = :omitted, \
             expires_at = :exp",
        );
        // Only when there are some: a record of a layer without an audit trail keeps the
        // attributes it has always had.
        if !audit_classes.is_empty() {
            update.push_str(", audit_classes = :classes");
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .update_expression(update)
            .set_expression_attribute_values((!audit_classes.is_empty()).then(|| {
                HashMap::from([(
                    ":classes".to_owned(),
                    AttributeValue::L(audit_classes.iter().map(|c| s(c)).collect()),
                )])
            }))
            .condition_expression("lock_id = :me AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":code", n(u64::from(response.status().as_u16())))
            .expression_attribute_values(":headers", AttributeValue::M(stored))
            .expression_attribute_values(":body", AttributeValue::B(Blob::new(body)))
            .expression_attribute_values(":sealed", AttributeValue::Bool(sealed))
            .expression_attribute_values(":omitted", AttributeValue::Bool(omitted))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":me", s(lock_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(err)) if err.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(err) => Err(failure(&err)),
        }
    }

    /// Removes the in-progress record this invocation holds, so the client can retry.
    pub(crate) async fn release(&self, pk: &str, lock_id: &str) -> Result<(), StoreFailure> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .condition_expression("lock_id = :me AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":me", s(lock_id))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(err)) if err.err().is_conditional_check_failed_exception() => Ok(()),
            Err(err) => Err(failure(&err)),
        }
    }
}

fn parse(item: &HashMap<String, AttributeValue>) -> Result<Existing, StoreFailure> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let payload_hash = text("payload_hash").unwrap_or_default();
    match text("status").as_deref() {
        Some(IN_PROGRESS) => Ok(Existing::InProgress { payload_hash }),
        Some(COMPLETED) => {
            let status = read_n(item.get("response_status"))
                .and_then(|code| u16::try_from(code).ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or_else(|| StoreFailure("a completed record has no valid status".into()))?;
            let body = item.get("response_body").and_then(|v| v.as_b().ok()).map(|b| b.as_ref().to_vec());
            let mut response = Response::new(Body::from(body.unwrap_or_default()));
            *response.status_mut() = status;
            if let Some(Ok(headers)) = item.get("response_headers").map(AttributeValue::as_m) {
                for (name, values) in headers {
                    let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { continue };
                    for value in values.as_l().map(Vec::as_slice).unwrap_or_default() {
                        if let Some(value) = value.as_s().ok().and_then(|v| HeaderValue::from_str(v).ok()) {
                            response.headers_mut().append(name.clone(), value);
                        }
                    }
                }
            }
            let sealed = matches!(item.get("response_sealed"), Some(AttributeValue::Bool(true)));
            let omitted = matches!(item.get("body_omitted"), Some(AttributeValue::Bool(true)));
            let audit_classes = item
                .get("audit_classes")
                .and_then(|v| v.as_l().ok())
                .map(|classes| classes.iter().filter_map(|c| c.as_s().ok().cloned()).collect())
                .unwrap_or_default();
            Ok(Existing::Completed { payload_hash, response, sealed, omitted, audit_classes })
        }
        _ => Err(StoreFailure("a record has an unknown status".into())),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn read_n(value: Option<&AttributeValue>) -> Option<u64> {
    value.and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}
