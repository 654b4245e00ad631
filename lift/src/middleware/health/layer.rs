//! The layer.

use std::borrow::Cow;

use tower_layer::Layer;

use super::{Health, HealthChecks};

/// Applies [`Health`] to a service: answers the health endpoints, passes the rest on.
///
/// # Examples
///
/// ```
/// use lift::middleware::health::{check_fn, Check, HealthChecks, HealthLayer};
///
/// let checks = HealthChecks::builder()
///     .check(Check::critical("db", check_fn(|| async { Ok(()) })))
///     .build();
/// let app = lift::App::new().layer(HealthLayer::new(checks));
/// ```
#[derive(Debug, Clone)]
pub struct HealthLayer {
    checks: HealthChecks,
    base: Cow<'static, str>,
}

impl HealthLayer {
    /// Answers `/health`, `/health/live` and `/health/ready` from these checks.
    pub fn new(checks: HealthChecks) -> Self {
        Self { checks, base: Cow::Borrowed("/health") }
    }

    /// Moves the endpoints under another base path (e.g. `/internal/health`).
    pub fn base_path(mut self, base: impl Into<Cow<'static, str>>) -> Self {
        let base = base.into();
        self.base = match base.strip_suffix('/') {
            Some(trimmed) => Cow::Owned(trimmed.to_owned()),
            None => base,
        };
        self
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Health::from_parts(inner, self.checks.clone(), self.base.clone())
    }
}
