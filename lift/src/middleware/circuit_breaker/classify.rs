//! What counts as a failure.

/// Decides whether the outcome of a call counts as a failure for the breaker.
///
/// Implemented by [`ServerErrors`] (the default) and any `Fn(&Result<T, E>) -> bool`.
///
/// # Examples
///
/// ```
/// use lift::middleware::circuit_breaker::ClassifyFailure;
///
/// // Count 429s as failures too.
/// let classify = |res: &Result<http::Response<()>, lift::BoxError>| match res {
///     Ok(res) => res.status().is_server_error() || res.status() == 429,
///     Err(_) => true,
/// };
/// let too_many = http::Response::builder().status(429).body(()).unwrap();
/// assert!(classify.is_failure(&Ok(too_many)));
/// ```
pub trait ClassifyFailure<T, E>: Clone + Send + Sync + 'static {
    /// Whether the outcome is a failure.
    fn is_failure(&self, outcome: &Result<T, E>) -> bool;
}

/// The default classifier: an error from the inner service, or a 5xx response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrors;

impl<B, E> ClassifyFailure<http::Response<B>, E> for ServerErrors {
    fn is_failure(&self, outcome: &Result<http::Response<B>, E>) -> bool {
        match outcome {
            Ok(res) => res.status().is_server_error(),
            Err(_) => true,
        }
    }
}

impl<T, E, F> ClassifyFailure<T, E> for F
where
    F: Fn(&Result<T, E>) -> bool + Clone + Send + Sync + 'static,
{
    fn is_failure(&self, outcome: &Result<T, E>) -> bool {
        self(outcome)
    }
}
