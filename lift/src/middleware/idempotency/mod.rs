//! Idempotency for payments: a repeated request gets the first one's response, never a
//! second charge.
//!
//! A request is subject to it when its method is listed (POST and PATCH by default) and it
//! has a key: the `Idempotency-Key` header, or a selection of JSON body fields
//! ([`KeySource`]). Records are scoped to the authenticated principal (tenant and
//! subject) of the request's [`Context`](crate::Context), and to method and path, so no
//! caller can replay another's answer or poison another's key, not even within one tenant.
//!
//! **Where it goes:** per route, innermost, just outside the handler: after authentication,
//! the route's scope check and the compliance, audit, threat detection and residency
//! layers ([`lift::stack()`](crate::stack()) puts it there; in a
//! [`RouteGroup`](crate::RouteGroup), add it first, since group layers added first run
//! innermost). A completed record is answered without calling what is inside the layer:
//! mounted outside those checks, a replay would skip them, and a revoked token or a blocked
//! caller would still get the stored answer, unaudited. Inside them, every attempt is
//! checked and audited (the audit entry of a replay says so, and names the data classes
//! the first attempt's handler named, which the record keeps), a caller without the route's
//! scope is refused before any record is read or written, and a refusal from those layers
//! is never stored. A request that reaches the layer without a principal is refused with
//! 401 ([`PrincipalRequired`]) unless the layer was built with
//! [`allow_anonymous`](IdempotencyBuilder::allow_anonymous).
//!
//! Records are keyed by the request's path with its percent-encoding normalized (escaped
//! unreserved characters decoded, the hex of other escapes in upper case, RFC 3986
//! §6.2.2), so `/payments/p%5F1/refunds` and `/payments/p_1/refunds`, which the router
//! hands to one handler with one id, share a record. The layer expects the router's
//! [`MatchedRoute`](crate::MatchedRoute) on the request; mounted app-wide it sees none,
//! warns once and counts such requests
//! ([`unrouted_requests`](IdempotencyLayer::unrouted_requests)).
//!
//! 1. One conditional `PutItem` (`attribute_not_exists(pk) OR expires_at < :now`) takes
//!    the lock: an in-progress record holding the SHA-256 of the query string and body.
//!    Its expiry is the invocation's deadline ([`Context::deadline`](crate::Context::deadline)),
//!    so the lock of a crashed or timed-out invocation frees itself.
//! 2. If the key is held: a different payload hash (another body, or the same body with
//!    another query string) answers 422 ([`PayloadMismatch`]); an
//!    in-progress record answers 409 ([`KeyInUse`]); a completed one is replayed (status,
//!    a subset of headers, body) with `Idempotent-Replayed: true`.
//! 3. The handler runs. A success (2xx) or redirection (3xx) is stored and the record
//!    completed, to expire after the TTL (24 h by default); with a [`ResponseCipher`] the
//!    stored body is sealed first. A body larger than
//!    [`max_response_bytes`](IdempotencyBuilder::max_response_bytes) is not stored, but the
//!    record still completes: its replay has the status and `Location`, an empty body and
//!    [`Idempotent-Response-Omitted: true`](IDEMPOTENT_RESPONSE_OMITTED), never a second run. Any other answer (a refusal such as 401 or 403, a
//!    validation error, a conflict, a 429, a 5xx) or an error removes the record: those
//!    changed nothing, so the client's retry runs for real, and a refusal can never be
//!    replayed to anyone.
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
//! async fn create(_req: lift::Request) -> lift::Response { lift::Response::default() }
//!
//! let by_header = IdempotencyLayer::builder().client(client.clone()).build()?;
//! let by_fields = IdempotencyLayer::builder()
//!     .client(client)
//!     .key_source(KeySource::json_fields(["/customer/id", "/reference"]))
//!     .build()?;
//! // Added first, so innermost: any audit, compliance or threat layer added after it runs
//! // on replays too, and the scope check added last refuses a caller without
//! // `payments:write` before a record is read.
//! let payments = lift::RouteGroup::new("/payments")
//!     .post("/", create)
//!     .layer(by_header)
//!     .layer(lift::middleware::auth::require_scope("payments:write"));
//! let app = lift::App::new().group(payments);
//! # let _ = by_fields;
//! # Ok(()) }
//! ```

mod cipher;
mod error;
mod future;
mod key;
mod layer;
mod record;
mod service;

pub use cipher::ResponseCipher;
pub use error::{
    IdempotencyUnavailable, InvalidConfig, InvalidKey, KeyInUse, PayloadMismatch, PrincipalRequired,
    ResponseErased,
};
pub use future::ResponseFuture;
pub use key::{IdempotentRequest, KeySource, IDEMPOTENCY_KEY};
pub use layer::{
    IdempotencyBuilder, IdempotencyLayer, DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TTL,
};
pub use service::{Idempotency, IDEMPOTENT_REPLAYED, IDEMPOTENT_RESPONSE_OMITTED};
