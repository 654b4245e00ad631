//! Errors of the idempotency layer, each rendered once as a problem response.

use std::fmt;

use http::HeaderValue;

/// Another request with the same key is still being processed.
///
/// Lift renders it as 409 with `Retry-After: 1`.
///
/// # Examples
///
/// ```
/// use lift::middleware::idempotency::KeyInUse;
///
/// assert_eq!(KeyInUse.to_string(), "idempotency key in use");
/// let res = lift::Error::from(KeyInUse).into_response();
/// assert_eq!(res.status(), 409);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInUse;

impl fmt::Display for KeyInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("idempotency key in use")
    }
}

impl std::error::Error for KeyInUse {}

impl From<KeyInUse> for crate::Error {
    fn from(_: KeyInUse) -> Self {
        crate::Error::conflict("a request with this idempotency key is still in progress; retry later")
            .with_type("https://lift.dev/problems/idempotency-key-in-use", "Idempotency key in use")
            .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
    }
}

/// The key was used before with a different payload.
///
/// Lift renders it as 422.
///
/// # Examples
///
/// ```
/// use lift::middleware::idempotency::PayloadMismatch;
///
/// assert_eq!(PayloadMismatch.to_string(), "idempotency key reused with another payload");
/// assert_eq!(lift::Error::from(PayloadMismatch).status(), 422);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadMismatch;

impl fmt::Display for PayloadMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("idempotency key reused with another payload")
    }
}

impl std::error::Error for PayloadMismatch {}

impl From<PayloadMismatch> for crate::Error {
    fn from(_: PayloadMismatch) -> Self {
        crate::Error::unprocessable("this idempotency key was already used with a different request payload")
            .with_type("https://lift.dev/problems/idempotency-key-reused", "Idempotency key reused")
    }
}

/// The request has no idempotency key where one is required, or a malformed one.
///
/// Lift renders it as 400.
///
/// # Examples
///
/// ```
/// use lift::middleware::idempotency::InvalidKey;
///
/// let err = InvalidKey::missing();
/// assert_eq!(err.to_string(), "invalid idempotency key: an idempotency key is required");
/// assert_eq!(lift::Error::from(err).status(), 400);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidKey {
    detail: &'static str,
}

impl InvalidKey {
    /// No key, and one is required.
    pub const fn missing() -> Self {
        Self { detail: "an idempotency key is required" }
    }

    pub(crate) const fn malformed(detail: &'static str) -> Self {
        Self { detail }
    }
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid idempotency key: {}", self.detail)
    }
}

impl std::error::Error for InvalidKey {}

impl From<InvalidKey> for crate::Error {
    fn from(err: InvalidKey) -> Self {
        crate::Error::bad_request(err.detail)
            .with_type("https://lift.dev/problems/invalid-idempotency-key", "Invalid idempotency key")
    }
}

/// The idempotency table could not be used (DynamoDB throttled, failing or unreachable).
///
/// The layer fails closed: without the record, a retry could pay twice. Lift renders it
/// as 503 with `Retry-After`.
///
/// # Examples
///
/// ```
/// use lift::middleware::idempotency::IdempotencyUnavailable;
///
/// let err = IdempotencyUnavailable::new("ThrottlingException");
/// assert_eq!(err.to_string(), "idempotency store unavailable: ThrottlingException");
/// assert_eq!(lift::Error::from(err).status(), 503);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyUnavailable {
    reason: String,
}

impl IdempotencyUnavailable {
    /// An unavailable store, with why (no request data).
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

impl fmt::Display for IdempotencyUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "idempotency store unavailable: {}", self.reason)
    }
}

impl std::error::Error for IdempotencyUnavailable {}

impl From<IdempotencyUnavailable> for crate::Error {
    fn from(err: IdempotencyUnavailable) -> Self {
        crate::Error::service_unavailable(1)
            .with_type("https://lift.dev/problems/idempotency-unavailable", "Idempotency unavailable")
            .with_detail("the request cannot be made idempotent right now; retry later")
            .with_source(err)
    }
}

/// The request reached the idempotency layer without an authenticated principal.
///
/// Records are scoped to the principal, so the layer must run inside authentication (and
/// authorization). Without a principal it refuses rather than share one scope between
/// every anonymous caller, unless the layer was built with
/// [`allow_anonymous`](super::IdempotencyBuilder::allow_anonymous). Lift renders it as 401.
///
/// # Examples
///
/// ```
/// use lift::middleware::idempotency::PrincipalRequired;
///
/// assert_eq!(PrincipalRequired.to_string(), "idempotency needs an authenticated principal");
/// assert_eq!(lift::Error::from(PrincipalRequired).status(), 401);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalRequired;

impl fmt::Display for PrincipalRequired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("idempotency needs an authenticated principal")
    }
}

impl std::error::Error for PrincipalRequired {}

impl From<PrincipalRequired> for crate::Error {
    fn from(_: PrincipalRequired) -> Self {
        crate::Error::unauthorized("Bearer").with_detail("authentication is required")
    }
}

/// The stored answer under this key was erased (its subject's key was destroyed), so it
/// cannot be replayed; the operation is not run again either.
///
/// Lift renders it as 410.
///
/// # Examples
///
/// ```
/// use lift::middleware::idempotency::ResponseErased;
///
/// assert_eq!(ResponseErased.to_string(), "the stored idempotent response was erased");
/// assert_eq!(lift::Error::from(ResponseErased).status(), 410);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseErased;

impl fmt::Display for ResponseErased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the stored idempotent response was erased")
    }
}

impl std::error::Error for ResponseErased {}

impl From<ResponseErased> for crate::Error {
    fn from(_: ResponseErased) -> Self {
        crate::Error::new(http::StatusCode::GONE)
            .with_type("https://lift.dev/problems/idempotent-response-erased", "Idempotent response erased")
            .with_detail("the request under this idempotency key was completed, and its answer has since been erased; it is not repeated")
    }
}

pub use crate::config::InvalidConfig;
