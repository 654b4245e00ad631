//! DynamoDB reachability: a `DescribeTable` with a timeout.

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::TableStatus;
use aws_sdk_dynamodb::Client;

use super::HealthCheck;

/// Checks that a DynamoDB table answers and is usable (`ACTIVE` or `UPDATING`).
///
/// One `DescribeTable` call: a control-plane read that consumes no capacity units. Failure
/// messages name the table and the error code, never the endpoint or credentials.
///
/// # Examples
///
/// ```
/// # fn demo(client: aws_sdk_dynamodb::Client) {
/// use lift::middleware::health::{Check, DynamoDbCheck, HealthChecks};
///
/// let checks = HealthChecks::builder()
///     .check(Check::critical("dynamodb", DynamoDbCheck::new(client, "payments")))
///     .build();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoDbCheck {
    client: Client,
    table: String,
    timeout: Duration,
}

impl DynamoDbCheck {
    /// Checks `table` through `client`, with a 2 s timeout.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), timeout: Duration::from_secs(2) }
    }

    /// Sets the timeout of the call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl HealthCheck for DynamoDbCheck {
    async fn check(&self) -> Result<(), String> {
        let call = self.client.describe_table().table_name(&self.table).send();
        let out = match tokio::time::timeout(self.timeout, call).await {
            Err(_elapsed) => {
                return Err(format!(
                    "DescribeTable {} timed out after {} ms",
                    self.table,
                    self.timeout.as_millis()
                ))
            }
            Ok(Err(err)) => return Err(format!("DescribeTable {} failed: {}", self.table, error_kind(&err))),
            Ok(Ok(out)) => out,
        };
        match out.table().and_then(|t| t.table_status()) {
            Some(TableStatus::Active | TableStatus::Updating) => Ok(()),
            Some(status) => Err(format!("table {} is {}", self.table, status.as_str())),
            None => Err(format!("table {} has no status", self.table)),
        }
    }
}

/// A short, safe name for an SDK error: the service's error code, or the kind of failure.
fn error_kind<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(service) => service.err().code().unwrap_or("service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch failure (endpoint unreachable)".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request construction failed".to_owned(),
        _ => "unknown error".to_owned(),
    }
}
