//! Process faults on a dedicated DynamoDB Local.

#[cfg(unix)]
use crate::dynamodb::{DedicatedDynamoDb, DynamoDbError};

/// What to do to a DynamoDB Local process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessFault {
    /// SIGKILL: the node crashes; connections are refused until a restart.
    Kill,
    /// SIGSTOP: the node freezes (a GC pause, a hung host); connections hang.
    Pause,
}

#[cfg(unix)]
impl ProcessFault {
    /// Applies the fault.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), lift_harness::dynamodb::DynamoDbError> {
    /// use lift_harness::dynamodb::DynamoDbLocal;
    /// use lift_harness::faults::ProcessFault;
    ///
    /// let ddb = DynamoDbLocal::dedicated().await?;
    /// ProcessFault::Pause.inject(&ddb)?;
    /// ProcessFault::Pause.heal(&ddb).await?;
    /// # Ok(()) }
    /// ```
    pub fn inject(self, target: &DedicatedDynamoDb) -> Result<(), DynamoDbError> {
        match self {
            ProcessFault::Kill => target.kill(),
            ProcessFault::Pause => target.pause(),
        }
    }

    /// Undoes the fault: restarts a killed node (same port), resumes a paused one.
    pub async fn heal(self, target: &DedicatedDynamoDb) -> Result<(), DynamoDbError> {
        match self {
            ProcessFault::Kill => target.restart().await,
            ProcessFault::Pause => target.resume(),
        }
    }
}
