//! The response future.

use futures_util::future::BoxFuture;

use crate::body::Body;

/// The response future of [`Idempotency`](super::Idempotency).
///
/// Boxed: around the inner call sit up to three DynamoDB round trips (lock, then store or
/// remove the record), each a branch of its own; an `async fn` states that flow plainly,
/// and one allocation is nothing next to a network call.
pub type ResponseFuture<E, B = Body> = BoxFuture<'static, Result<http::Response<B>, E>>;
