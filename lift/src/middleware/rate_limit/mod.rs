//! Rate limiting: a local GCRA pre-filter in front of a limit shared through DynamoDB.
//!
//! Each request gets a key (tenant, user, client IP, route, a function of the request, or
//! several of these: [`RateLimitKey`]). An IPv6 client counts by its /64 (an address
//! prefix one client commonly holds whole; [`RateLimitBuilder::ipv6_prefix`] changes the
//! length), an IPv4 client by its address, also when it arrives mapped into IPv6
//! (`::ffff:192.0.2.1`). A route key counts HEAD as GET, since the router answers HEAD with
//! the GET route's handler. Then:
//!
//! 1. the [`LocalPrefilter`] (governor's keyed GCRA, plus the refusals DynamoDB already
//!    gave) refuses obvious excess in the process, without a round trip;
//! 2. one conditional `UpdateItem` on the [`rate_limits`](crate::store::tables::rate_limits)
//!    table decides against the limit every instance shares: fixed window, sliding window
//!    (two windows weighted) or token bucket ([`Algorithm`]). The condition makes the
//!    count exact under any concurrency: a refused request is never counted.
//!
//! Admitted responses carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
//! (IETF draft `ratelimit-headers`); a refusal is a 429 problem with the same headers and
//! `Retry-After` ([`RateLimited`]). When DynamoDB is throttled, failing or slower than the
//! store timeout, the [`FailMode`] decides: `Closed` (the default, for payments) answers
//! 503 [`LimiterUnavailable`], `Open` admits.
//!
//! # Items
//!
//! In the table (partition key `pk`, TTL `expires_at` in epoch seconds), with `name` the
//! limiter's [name](RateLimitBuilder::name) (default `lift`), `key` its
//! [compound key](compound_key) (SHA-256 hex after `h:` when longer than 256 bytes) and
//! `sig` its algorithm (`fw`, `sw`, `tb`), limit and window in milliseconds (`tb:10/1000`:
//! 10 per second), so two limiters of the same name (both left on `lift`, say) share an
//! item only when they count alike:
//!
//! - windows: `pk = "<name>#<key>#<sig>#<window start, epoch ms>"` with a number
//!   `count`, under `ADD count :one` if `attribute_not_exists(count) OR count < :limit`.
//!   The sliding window lowers `:limit` by the previous window's count weighted by its
//!   overlap (rounded up), read with one `GetItem` per key and window per process: once
//!   its window has passed, that count no longer changes. A process keeps at most 16,384
//!   such counts, so clients choosing fresh keys cannot grow it; a count it dropped is read
//!   again.
//! - token bucket: `pk = "<name>#<key>#<sig>"` with `tat`, the GCRA theoretical arrival
//!   time in epoch µs, which is the token bucket written as one number (tokens left =
//!   `(now + limit × T - tat) / T`, `T = window / limit`). A request takes a token with
//!   `SET tat = tat + :t` if `tat BETWEEN :now AND :now + (limit - 1) × T`; a full bucket
//!   (`tat < now`, or no item) restarts with `SET tat = :now + :t`, a second call only for
//!   the first request after an idle period. A refusal reads the item from the failed
//!   condition (`ReturnValuesOnConditionCheckFailure`), so it costs one call.
//!
//! A request whose DynamoDB call times out may still have been counted: the limiter errs
//! on the side of the limit.
//!
//! Upgrading from a release whose item keys lacked `<sig>` (`<name>#<key>#tb`,
//! `<name>#<key>#<window start>`), or whose IP keys named a whole IPv6 address or HEAD
//! routes apart from GET, resets every counter once: the new keys start empty, and the old
//! items expire through their TTL.
//!
//! The client IP is API Gateway's `sourceIp` on Lambda, or a trusted [`ClientIp`] /
//! `SocketAddr` extension elsewhere; `X-Forwarded-For` is never trusted ([`client_ip`]).
//!
//! # Examples
//!
//! ```
//! # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::middleware::rate_limit::InvalidConfig> {
//! use std::time::Duration;
//! use lift::middleware::rate_limit::{Algorithm, RateLimitKey, RateLimitLayer};
//!
//! let per_ip = RateLimitLayer::builder()
//!     .client(client)
//!     .name("per-ip")
//!     .key(RateLimitKey::Ip)
//!     .limit(20)
//!     .window(Duration::from_secs(1))
//!     .algorithm(Algorithm::TokenBucket)
//!     .build()?;
//! let app = lift::App::new().layer(per_ip);
//! # Ok(()) }
//! ```

mod algorithm;
mod error;
mod future;
mod key;
mod layer;
mod prefilter;
mod service;
mod store;

pub use algorithm::{Algorithm, FailMode};
pub use error::{
    InvalidConfig, LimiterUnavailable, RateLimited, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET,
};
pub use future::ResponseFuture;
pub use key::{client_ip, compound_key, ClientIp, KeyFn, RateLimitKey, DEFAULT_IPV6_PREFIX};
pub use layer::{RateLimitBuilder, RateLimitLayer, DEFAULT_STORE_TIMEOUT};
pub use prefilter::LocalPrefilter;
pub use service::RateLimit;
