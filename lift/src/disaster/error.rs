//! The errors of the disaster module: one named type per concern, lowercase messages.

use std::time::Duration;

/// Invalid disaster-recovery configuration, found when it is built or read from the
/// environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No region was configured.
    #[error("no regions configured")]
    NoRegions,
    /// Failover needs a primary and at least one secondary.
    #[error("failover needs at least two regions, got {0}")]
    TooFewRegions(usize),
    /// The same region name appears twice.
    #[error("region {0:?} is configured twice")]
    DuplicateRegion(String),
    /// A region name that is not lowercase letters, digits and dashes.
    #[error("invalid region name {0:?}: expected lowercase letters, digits and dashes")]
    InvalidRegionName(String),
    /// A name that is not one of the configured regions.
    #[error("unknown region {0:?}")]
    UnknownRegion(String),
    /// A setting with a value that cannot work.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The setting, e.g. `failure_threshold`.
        setting: &'static str,
        /// Why the value cannot work.
        reason: String,
    },
    /// A URL that cannot be used.
    #[error("invalid url {url:?} for {setting}: {reason}")]
    InvalidUrl {
        /// The setting the URL was given for.
        setting: &'static str,
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A required environment variable is not set.
    #[error("{0} is not set")]
    MissingEnv(String),
    /// An environment variable with a value that cannot be parsed.
    #[error("invalid {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { setting, reason: reason.into() }
    }
}

/// Why a health probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The probe did not answer within its timeout.
    #[error("probe timed out after {0:?}")]
    TimedOut(Duration),
    /// The dependency could not be reached (connection refused or reset, DNS, TLS).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The dependency answered, but not healthy (an error code, a non-200 status).
    #[error("unhealthy: {0}")]
    Unhealthy(String),
}

/// A Route 53 request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Route53Error {
    /// The request could not be sent or its answer not read.
    #[error("route 53 request failed: {0}")]
    Http(String),
    /// No answer within the timeout.
    #[error("route 53 request timed out after {0:?}")]
    TimedOut(Duration),
    /// Route 53 answered with an error.
    #[error("route 53 answered {status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error code, e.g. `InvalidChangeBatch` or `Throttling`.
        code: String,
        /// The error message.
        message: String,
    },
    /// A success answer without the expected XML elements.
    #[error("unexpected route 53 answer: {0}")]
    InvalidResponse(String),
}

/// Starting replication or reading a stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The replicator configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A replicated table has no stream, or one without the images replication needs.
    #[error("table {table} in {region} needs a stream with new and old images ({found})")]
    NoStream {
        /// The physical table name.
        table: String,
        /// The region.
        region: String,
        /// What the table has instead.
        found: String,
    },
    /// A DynamoDB or DynamoDB Streams request failed.
    #[error("{operation} in {region} failed: {message}")]
    Request {
        /// The operation, e.g. `GetRecords`.
        operation: &'static str,
        /// The region it was sent to.
        region: String,
        /// What went wrong.
        message: String,
    },
}

/// A region's part of a failed synchronous write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionFailure {
    /// The region that did not acknowledge.
    pub region: String,
    /// Why.
    pub reason: String,
}

/// A synchronous write that not every target region acknowledged.
///
/// The regions in `acknowledged` hold the write: it is not rolled back there, and stream
/// replication carries it to the others once they are back. The caller must not report the
/// write as durable in every region.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("write acknowledged by {} of {} regions", acknowledged.len(), acknowledged.len() + failures.len())]
pub struct SyncWriteError {
    /// The regions that acknowledged the write.
    pub acknowledged: Vec<String>,
    /// The regions that did not, and why.
    pub failures: Vec<RegionFailure>,
}

/// Checking acknowledged writes against a region failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpoError {
    /// A read failed.
    #[error("{operation} in {region} failed: {message}")]
    Request {
        /// The operation, e.g. `BatchGetItem`.
        operation: &'static str,
        /// The region read.
        region: String,
        /// What went wrong.
        message: String,
    },
    /// The region kept answering with unprocessed keys.
    #[error("{region} left {remaining} keys unprocessed")]
    Unprocessed {
        /// The region read.
        region: String,
        /// How many keys were left.
        remaining: usize,
    },
}

pub(crate) use crate::error::error_chain as sdk_message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_say_what_failed() {
        let err = SyncWriteError {
            acknowledged: vec!["us-east-1".into()],
            failures: vec![RegionFailure { region: "eu-west-1".into(), reason: "refused".into() }],
        };
        assert_eq!(err.to_string(), "write acknowledged by 1 of 2 regions");
        assert_eq!(ConfigError::TooFewRegions(1).to_string(), "failover needs at least two regions, got 1");
        assert_eq!(
            ProbeError::TimedOut(Duration::from_millis(500)).to_string(),
            "probe timed out after 500ms"
        );
    }
}
