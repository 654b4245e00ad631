//! The layer: configuration only.

use std::time::Duration;

use tower_layer::Layer;

use super::Timeout;

/// The default safety margin kept before the Lambda deadline: time to render and return a
/// 504 before Lambda cuts the invocation off.
pub(crate) const DEFAULT_MARGIN: Duration = Duration::from_millis(200);

/// Applies [`Timeout`] to a service.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::timeout::TimeoutLayer;
/// use tower::ServiceBuilder;
///
/// let svc = ServiceBuilder::new()
///     .layer(TimeoutLayer::new(Duration::from_secs(2)))
///     .service_fn(|_req: http::Request<lift::Body>| async {
///         Ok::<_, std::convert::Infallible>(lift::Response::default())
///     });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
    margin: Duration,
}

impl TimeoutLayer {
    /// A layer that ends each request after `timeout`, or earlier when the Lambda deadline
    /// (minus the default 200 ms margin) comes first.
    pub const fn new(timeout: Duration) -> Self {
        Self { timeout, margin: DEFAULT_MARGIN }
    }

    /// Sets the margin kept before the Lambda deadline.
    pub const fn safety_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.timeout).safety_margin(self.margin)
    }
}
