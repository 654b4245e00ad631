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

/// The default: `/health` and the paths below it (`/health/ready`) are critical, everything
/// else normal. A path that only shares the letters (`/healthcare/...`, `/healthz`) is not:
/// it would never be shed.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthIsCritical;

impl<B> ClassifyPriority<B> for HealthIsCritical {
    #[inline]
    fn priority(&self, req: &http::Request<B>) -> Priority {
        // Read from the path and query whole, which needs no search for where the query
        // starts: `/health`, then its end, a `/` or the `?` of a query.
        let health = req.uri().path_and_query().is_some_and(|pq| {
            pq.as_str()
                .strip_prefix("/health")
                .is_some_and(|rest| matches!(rest.bytes().next(), None | Some(b'/' | b'?')))
        });
        if health {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The classification reads the path and query whole; it must agree with the path alone:
    /// `/health` and below, not paths that only share its letters.
    #[test]
    fn health_is_read_from_the_path_alone() {
        for uri in [
            "/health",
            "/health?deep=1",
            "/health/",
            "/healthz",
            "/healthz?x",
            "/healthcare/patients",
            "/health-records/1",
            "/health/ready?x",
            "/hea?lth",
            "/heal",
            "/",
            "/payments?next=/health",
            "https://api.example.com/health?x",
            "https://api.example.com",
            "api.example.com:443",
            "*",
        ] {
            let uri: http::Uri = uri.parse().unwrap();
            let path = uri.path();
            let expected = if path == "/health" || path.starts_with("/health/") {
                Priority::Critical
            } else {
                Priority::Normal
            };
            let req = http::Request::builder().uri(uri.clone()).body(()).unwrap();
            assert_eq!(HealthIsCritical.priority(&req), expected, "{uri}");
        }
    }
}
