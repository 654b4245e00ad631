//! A local Lambda runtime that behaves like AWS Lambda: the Runtime API (2018-06-01) that
//! `lambda_runtime` talks to, sandboxes of the function's real bootstrap binary with Lambda's
//! environment, a bounded init phase, the timeout that kills the sandbox, the freeze between
//! invocations, the memory limit and the CPU share that grows with memory, reserved
//! concurrency and idle reaping, the Invoke API and an API Gateway HTTP API front, and
//! `START`/`END`/`REPORT` lines with the EMF metrics picked out of the output.
//!
//! Each function has `$LATEST` and the versions published from it (1, 2, ...): immutable
//! snapshots of its configuration (bootstrap path, environment, memory, timeout), each with
//! sandboxes, cold starts and a `[N]` log stream of its own, in the function's one log group.
//! Aliases name a version and may send a share of invocations to one additional version,
//! drawn at random per invocation; invocation targets are `name`, `name:$LATEST`, `name:3`,
//! `name:live` and their ARNs (the Invoke API also takes `?Qualifier=`, and answers
//! `X-Amz-Executed-Version`). The same endpoint serves the control plane as the SDKs speak it
//! (REST-JSON, a SigV4 `Authorization` header for `lambda` required, its signature not
//! checked): `PublishVersion`, `ListVersionsByFunction`, `GetFunctionConfiguration`,
//! `UpdateFunctionConfiguration` (`Environment`, `MemorySize`, `Timeout`), `CreateAlias`,
//! `GetAlias`, `UpdateAlias`, `DeleteAlias` and `ListAliases`, with Lambda's validation and
//! `RevisionId` preconditions. Not modelled: `UpdateFunctionCode` (a version keeps the path of
//! the bootstrap, so rebuilding it changes what every version runs), deleting versions,
//! provisioned concurrency, and per-alias or per-version concurrency settings.
//!
//! Limits use cgroups v1 (`freezer`, `memory`, `cpu`, `pids`) under
//! `/sys/fs/cgroup/<ctl>/lift-lambda`, the memory limit covering swap too where the kernel
//! accounts for swap (Lambda has none), `pids.max` being Lambda's 1,024 processes and threads;
//! where those cannot be written, one notice is printed and sandboxes run without memory, CPU
//! and process limits, frozen with `SIGSTOP`/`SIGCONT` of their process group instead. Each
//! process of a sandbox may open 1,024 files, and a harness running as root runs each
//! function's sandboxes as an unprivileged user of that function's own (see [`sandbox`]).
//!
//! An invocation ends as Lambda's invoke phase does, when the runtime asks for its next one:
//! the caller has the answer at once, and the `END` and `REPORT` lines follow that ask (work
//! after the answer counts in the duration; a runtime that never asks again times out).
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use lift_harness::lambda::{Function, LocalLambda};
//!
//! let lambda = LocalLambda::builder()
//!     .function(Function::builder("hello", "target/debug/lambda-hello").memory_mb(256).build()?)
//!     .build()?;
//! let out = lambda.invoke("hello", br#"{"name":"ada"}"#.to_vec()).await?;
//! assert!(out.function_error.is_none());
//! println!("{}", out.report.line());
//! # Ok(()) }
//! ```

pub mod cli;
pub mod coldstart;
mod control;
mod function;
pub mod http_api;
mod http_server;
pub mod invoke_api;
pub mod logs;
mod pool;
pub mod runtime_api;
pub mod sandbox;

pub use control::{AliasInfo, ControlError, FunctionUpdate, VersionInfo};
pub use function::{Function, FunctionBuilder, FunctionConfigError};
pub use logs::{EmfMetric, LogLine, Report};
pub use pool::{InvokeError, InvokeOptions, InvokeResponse, LocalLambda, LocalLambdaBuilder};

/// The request payload size a synchronous invocation must stay under: Lambda refuses 6 MiB
/// (6,291,456 bytes) or more with "Request must be smaller than 6291456 bytes for the
/// InvokeFunction operation".
pub const REQUEST_LIMIT_BYTES: usize = 6_291_456;

/// The request payload size an asynchronous invocation (`Event`) must stay under: Lambda
/// documents 1 MB (it was 256 KB until 2025); taken here as 1 MiB, 1,048,576 bytes.
pub const ASYNC_REQUEST_LIMIT_BYTES: usize = 1_048_576;

/// The largest response payload of a synchronous invocation: 6 MiB and 100 bytes
/// (6,291,556), 100 bytes more than a request may carry.
pub const MAX_RESPONSE_BYTES: usize = 6_291_556;

/// The memory size that buys one full vCPU.
pub const MB_PER_VCPU: u32 = 1769;
