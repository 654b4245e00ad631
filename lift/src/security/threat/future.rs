//! The response future.

use futures_util::future::BoxFuture;

use crate::body::Body;

/// The response future of [`Threat`](super::Threat).
///
/// Boxed: around the inner call sit optional DynamoDB round trips (blocklist, counters)
/// and the incident playbook, each a branch of its own; an `async fn` states that flow
/// plainly, and one allocation is small next to the detectors' work.
pub type ResponseFuture<E, B = Body> = BoxFuture<'static, Result<http::Response<B>, E>>;
