//! Priority classes.

/// How much a request matters when the service is near its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Shed first: admitted only below the low-priority share of the limit.
    Low,
    /// Admitted up to the limit.
    Normal,
    /// Never shed (health checks): always admitted, and not sampled for the limit.
    Critical,
}

/// Gives a request its [`Priority`].
///
/// Implemented by [`HealthIsCritical`] (the default) and any `Fn(&http::Request<B>) -> Priority`.
///
/// # Examples
///
/// ```
/// use lift::middleware::load_shed::{ClassifyPriority, Priority};
///
/// // Health checks are critical, reports are low priority, the rest normal.
/// let classify = |req: &http::Request<lift::Body>| match req.uri().path() {
///     p if p.starts_with("/health") => Priority::Critical,
///     p if p.starts_with("/reports") => Priority::Low,
///     _ => Priority::Normal,
/// };
/// let req = http::Request::get("/reports/daily").body(lift::Body::empty()).unwrap();
/// assert_eq!(classify.priority(&req), Priority::Low);
/// ```
pub trait ClassifyPriority<B>: Clone + Send + Sync + 'static {
    /// The priority of a request.
    fn priority(&self, req: &http::Request<B>) -> Priority;
}

/// The default: paths starting with `/health` are critical, everything else normal.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthIsCritical;

impl<B> ClassifyPriority<B> for HealthIsCritical {
    fn priority(&self, req: &http::Request<B>) -> Priority {
        if req.uri().path().starts_with("/health") {
            Priority::Critical
        } else {
            Priority::Normal
        }
    }
}

impl<B, F> ClassifyPriority<B> for F
where
    F: Fn(&http::Request<B>) -> Priority + Clone + Send + Sync + 'static,
{
    fn priority(&self, req: &http::Request<B>) -> Priority {
        self(req)
    }
}
