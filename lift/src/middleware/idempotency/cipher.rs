//! Encryption of stored responses, for services whose answers carry personal data.

use futures_util::future::BoxFuture;

use crate::body::Request;
use crate::BoxError;

/// Seals a response body before the idempotency layer stores it, and opens it for replay.
///
/// A service whose answers carry personal data plugs in its crypto-shredding scheme here
/// (a data key per data subject, destroyed on erasure): a stored answer is then as
/// erasable as the record it describes, backups of the idempotency table included.
///
/// # Examples
///
/// ```
/// use futures_util::future::BoxFuture;
/// use lift::middleware::idempotency::ResponseCipher;
///
/// /// Reverses the bytes: a stand-in for real encryption in a doc example.
/// struct Reverse;
///
/// impl ResponseCipher for Reverse {
///     fn seal<'a>(&'a self, _req: &'a lift::Request, body: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, lift::BoxError>> {
///         Box::pin(async move { Ok(body.iter().rev().copied().collect()) })
///     }
///     fn open<'a>(&'a self, _tenant: &'a str, sealed: &'a [u8]) -> BoxFuture<'a, Result<Option<Vec<u8>>, lift::BoxError>> {
///         Box::pin(async move { Ok(Some(sealed.iter().rev().copied().collect())) })
///     }
/// }
/// ```
pub trait ResponseCipher: Send + Sync + 'static {
    /// Seals a response body before it is stored; `req` is the request being answered
    /// (after authentication, so its [`Context`](crate::Context) names the principal).
    fn seal<'a>(&'a self, req: &'a Request, body: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, BoxError>>;

    /// Opens a stored body for replay; `Ok(None)` when it was erased for good (its key
    /// was destroyed). An error fails the request closed (503), never re-runs it.
    fn open<'a>(
        &'a self,
        tenant: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, BoxError>>;
}
