//! Which outcomes may be retried.

/// Whether an outcome may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retryable {
    /// Never retry: the outcome is final (a success, a 4xx, a deterministic error).
    No,
    /// Retry only when the request is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or
    /// carrying an `Idempotency-Key`): the first attempt may have had effects.
    IfIdempotent,
    /// Retry any request: the error proves the request was not processed (e.g. refused
    /// before it was sent).
    Yes,
}

/// Decides whether an outcome may be retried.
///
/// Implemented by [`TransientErrors`] (the default) and any `Fn(&Result<T, E>) -> Retryable`.
///
/// # Examples
///
/// ```
/// use lift::middleware::retry::{ClassifyRetry, Retryable};
///
/// // A connection refused before sending can be retried even for a POST.
/// let classify = |res: &Result<http::Response<()>, std::io::Error>| match res {
///     Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Retryable::Yes,
///     Err(_) => Retryable::IfIdempotent,
///     Ok(_) => Retryable::No,
/// };
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(classify.classify(&Err(refused)), Retryable::Yes);
/// ```
pub trait ClassifyRetry<T, E>: Send + Sync + 'static {
    /// Whether the outcome may be retried.
    fn classify(&self, outcome: &Result<T, E>) -> Retryable;
}

/// The default classifier: errors and 502, 503, 504 responses are retried when the request
/// is idempotent; everything else is final.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransientErrors;

impl<B, E> ClassifyRetry<http::Response<B>, E> for TransientErrors {
    fn classify(&self, outcome: &Result<http::Response<B>, E>) -> Retryable {
        match outcome {
            Err(_) => Retryable::IfIdempotent,
            Ok(res) if matches!(res.status().as_u16(), 502..=504) => Retryable::IfIdempotent,
            Ok(_) => Retryable::No,
        }
    }
}

impl<T, E, F> ClassifyRetry<T, E> for F
where
    F: Fn(&Result<T, E>) -> Retryable + Send + Sync + 'static,
{
    fn classify(&self, outcome: &Result<T, E>) -> Retryable {
        self(outcome)
    }
}

/// The header that makes any request idempotent for the retry layer.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Whether retrying the request cannot repeat an effect: an idempotent method, or an
/// `Idempotency-Key` header.
///
/// # Examples
///
/// ```
/// use lift::middleware::retry::is_idempotent;
/// assert!(is_idempotent(&http::Request::get("/p").body(()).unwrap()));
/// assert!(!is_idempotent(&http::Request::post("/p").body(()).unwrap()));
/// assert!(is_idempotent(&http::Request::post("/p").header("Idempotency-Key", "k1").body(()).unwrap()));
/// ```
pub fn is_idempotent<B>(req: &http::Request<B>) -> bool {
    use http::Method;
    matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    ) || req.headers().contains_key(IDEMPOTENCY_KEY)
}
