//! Faults a mock answers with instead of its normal response.

use std::sync::Mutex;
use std::time::Duration;

/// Operation name that matches every operation of a mock.
pub const ANY_OPERATION: &str = "*";

/// A fault: what a mock does instead of answering an operation normally.
///
/// A fault applies until cleared, or `n` times with [`Fault::times`]. Faults armed on
/// the same operation apply in the order they were armed.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), lift_harness::aws::MockError> {
/// use lift_harness::aws::{AwsMocks, Fault};
/// use std::time::Duration;
///
/// let mocks = AwsMocks::start().await?;
/// mocks.secrets.fault("GetSecretValue", Fault::throttling().times(2));
/// mocks.kms.fault("Decrypt", Fault::delay(Duration::from_millis(200)));
/// mocks.sts.fault("GetCallerIdentity", Fault::drop_connection().times(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    kind: FaultKind,
    times: Option<u32>,
}

/// What a [`Fault`] does to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with an AWS error body in the service's own protocol.
    AwsError(AwsError),
    /// Answer normally, after this delay.
    Delay(Duration),
    /// Close the connection without writing a response.
    DropConnection,
}

/// An AWS error: HTTP status, error code (`__type`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// HTTP status code, e.g. 400.
    pub status: u16,
    /// AWS error code, e.g. `ThrottlingException`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl AwsError {
    /// Builds an AWS error from its status, code and message.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into() }
    }
}

impl Fault {
    /// Answers with an AWS error body: status, `__type` code and message.
    pub fn aws_error(status: u16, code: &str, message: &str) -> Self {
        Self::new(FaultKind::AwsError(AwsError::new(status, code, message)))
    }

    /// Answers `400 ThrottlingException: Rate exceeded`, as AWS does under load.
    pub fn throttling() -> Self {
        Self::aws_error(400, "ThrottlingException", "Rate exceeded")
    }

    /// Answers `500 InternalFailure`.
    pub fn internal_failure() -> Self {
        Self::aws_error(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// Answers `503 ServiceUnavailable`.
    pub fn service_unavailable() -> Self {
        Self::aws_error(
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        )
    }

    /// Answers normally after `delay`.
    pub fn delay(delay: Duration) -> Self {
        Self::new(FaultKind::Delay(delay))
    }

    /// Closes the connection without a response.
    pub fn drop_connection() -> Self {
        Self::new(FaultKind::DropConnection)
    }

    /// Applies the fault to the next `n` calls only, then answers normally again.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// What the fault does.
    pub fn kind(&self) -> &FaultKind {
        &self.kind
    }

    fn new(kind: FaultKind) -> Self {
        Self { kind, times: None }
    }
}

#[derive(Debug)]
struct Armed {
    operation: String,
    fault: Fault,
}

/// The faults armed on one mock, in arming order.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    armed: Mutex<Vec<Armed>>,
}

impl FaultBook {
    pub(crate) fn arm(&self, operation: &str, fault: Fault) {
        if fault.times == Some(0) {
            return;
        }
        let armed = Armed { operation: operation.to_owned(), fault };
        lock(&self.armed).push(armed);
    }

    pub(crate) fn clear(&self) {
        lock(&self.armed).clear();
    }

    /// Whether the fault that applies next to `operation` drops the connection.
    pub(crate) fn next_drops(&self, operation: &str) -> bool {
        let armed = lock(&self.armed);
        let next = armed.iter().find(|a| applies(a, operation));
        next.is_some_and(|a| a.fault.kind == FaultKind::DropConnection)
    }

    /// Takes one use of the fault that applies next to `operation`.
    ///
    /// With `drop_allowed` false, a drop fault is left armed and `None` is returned: only
    /// the drop responder can act on it.
    pub(crate) fn take(&self, operation: &str, drop_allowed: bool) -> Option<Fault> {
        let mut armed = lock(&self.armed);
        let index = armed.iter().position(|a| applies(a, operation))?;
        if !drop_allowed && armed[index].fault.kind == FaultKind::DropConnection {
            return None;
        }
        let entry = &mut armed[index];
        let taken = Fault { kind: entry.fault.kind.clone(), times: None };
        if let Some(left) = entry.fault.times.as_mut() {
            *left -= 1;
            if *left == 0 {
                armed.remove(index);
            }
        }
        Some(taken)
    }
}

fn applies(armed: &Armed, operation: &str) -> bool {
    armed.operation == operation || armed.operation == ANY_OPERATION
}

/// Locks a mutex, recovering the data if a panicking test poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_counts_down_then_disarms() {
        let book = FaultBook::default();
        book.arm("Op", Fault::throttling().times(2));
        assert!(book.take("Op", true).is_some());
        assert!(book.take("Other", true).is_none());
        assert!(book.take("Op", true).is_some());
        assert!(book.take("Op", true).is_none());
    }

    #[test]
    fn faults_apply_in_arming_order_and_wildcard_matches_all() {
        let book = FaultBook::default();
        book.arm("Op", Fault::drop_connection().times(1));
        book.arm(ANY_OPERATION, Fault::internal_failure());
        assert!(book.next_drops("Op"));
        assert!(book.take("Op", false).is_none());
        assert_eq!(book.take("Op", true).map(|f| f.kind), Some(FaultKind::DropConnection));
        assert!(!book.next_drops("Op"));
        assert!(matches!(
            book.take("Any", true).map(|f| f.kind),
            Some(FaultKind::AwsError(e)) if e.status == 500
        ));
        book.clear();
        assert!(book.take("Op", true).is_none());
    }
}
