//! Fault injection: a TCP proxy with toxics, a DynamoDB-aware HTTP proxy that answers with
//! DynamoDB's own errors, and process faults on a dedicated DynamoDB Local.
//!
//! Everything here is controlled from code at any time, so a drill can change faults while
//! load runs:
//!
//! - [`FaultProxy`]: TCP, between any client and any server. Toxics ([`Toxic`]): latency
//!   with jitter, blackhole, reset, bandwidth limit, timeout; per [`Direction`] and with a
//!   probability per connection. They act on open (pooled) connections too.
//! - [`AwsFaultProxy`]: HTTP, in front of DynamoDB. Answers chosen operations (by
//!   `X-Amz-Target`) with [`DynamoDbFault`]s at a set rate; forwards the rest; counts both.
//! - [`ProcessFault`]: kill or pause a [`DedicatedDynamoDb`](crate::dynamodb::DedicatedDynamoDb),
//!   then restart or resume it.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lift_harness::dynamodb::DynamoDbLocal;
//! use lift_harness::faults::{AwsFaultProxy, DynamoDbFault, FaultProxy, Toxic};
//!
//! let ddb = DynamoDbLocal::shared().await?;
//! // client -> FaultProxy (network) -> AwsFaultProxy (API errors) -> DynamoDB Local
//! let api = AwsFaultProxy::start(ddb.endpoint()).await?;
//! let net = FaultProxy::start(&api.endpoint()).await?;
//! let client = lift_harness::dynamodb::client_for(&net.endpoint(), "us-east-1");
//! api.inject("PutItem", DynamoDbFault::Throttling, 0.2);
//! net.set(Toxic::blackhole());
//! # drop(client); Ok(()) }
//! ```

mod aws;
mod process;
mod tcp;
mod toxic;

pub use aws::{
    AwsFaultProxy, DynamoDbFault, OperationStats, ANY_OPERATION, DYNAMODB_OPERATIONS, DYNAMODB_TARGET_PREFIX,
};
pub use process::ProcessFault;
pub use tcp::{FaultProxy, ProxyStats};
pub use toxic::{Direction, Toxic, ToxicKind};

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// The proxy could not listen on 127.0.0.1.
    #[error("cannot listen on 127.0.0.1")]
    Bind(#[source] std::io::Error),
    /// The upstream is not `host:port` or an `http://` URL with a port.
    #[error("invalid upstream {0:?}: expected host:port or http://host:port")]
    Upstream(String),
}
