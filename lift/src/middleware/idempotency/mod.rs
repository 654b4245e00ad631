//! Idempotency for payments: a repeated request gets the first one's response, never a
//! second charge.
//!
//! A request is subject to it when its method is listed (POST and PATCH by default) and it
//! has a key: the `Idempotency-Key` header, or a selection of JSON body fields
//! ([`KeySource`]). Records are scoped by the tenant of the request's
//! [`Context`](crate::Context) and by method and path, so two tenants can never see each
//! other's responses; run authentication *outside* (after, in `App::layer` order) this
//! layer so the tenant is known. Requests without a tenant share one scope.
//!
//! 1. One conditional `PutItem` (`attribute_not_exists(pk) OR expires_at < :now`) takes
//!    the lock: an in-progress record holding the SHA-256 of the body. Its expiry is the
//!    invocation's deadline ([`Context::deadline`](crate::Context::deadline)), so the lock
//!    of a crashed or timed-out invocation frees itself.
//! 2. If the key is held: a different payload hash answers 422 ([`PayloadMismatch`]); an
//!    in-progress record answers 409 ([`KeyInUse`]); a completed one is replayed (status,
//!    a subset of headers, body) with `Idempotent-Replayed: true`.
//! 3. The handler runs. A response is stored and the record completed, to expire after
//!    the TTL (24 h by default). On a 5xx, a 429 or an error the record is removed, so the
//!    client can retry.
//!
//! The layer fails closed: when DynamoDB cannot take the lock it answers 503
//! ([`IdempotencyUnavailable`]) rather than risk a double charge. If the future is
//! dropped mid-handler (an outer timeout), the lock stays until its expiry: the handler
//! may have charged already, so releasing it early could let a retry charge again.
//!
//! # Examples
//!
//! ```
//! # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::middleware::idempotency::InvalidConfig> {
//! use lift::middleware::idempotency::{IdempotencyLayer, KeySource};
//!
//! let by_header = IdempotencyLayer::builder().client(client.clone()).build()?;
//! let by_fields = IdempotencyLayer::builder()
//!     .client(client)
//!     .key_source(KeySource::json_fields(["/customer/id", "/reference"]))
//!     .build()?;
//! let app = lift::App::new().layer(by_header);
//! # let _ = by_fields;
//! # Ok(()) }
//! ```

mod error;
mod future;
mod key;
mod layer;
mod record;
mod service;

pub use error::{IdempotencyUnavailable, InvalidConfig, InvalidKey, KeyInUse, PayloadMismatch};
pub use future::ResponseFuture;
pub use key::{KeySource, IDEMPOTENCY_KEY};
pub use layer::{
    IdempotencyBuilder, IdempotencyLayer, DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TTL,
};
pub use service::{Idempotency, IDEMPOTENT_REPLAYED};
