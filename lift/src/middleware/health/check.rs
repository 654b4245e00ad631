//! Health checks: the trait, closures as checks, and a check's options.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

/// A dependency check: `Ok(())` when healthy, else a short message safe to show on
/// `/health` (never secrets or connection strings).
///
/// # Examples
///
/// ```
/// use lift::middleware::health::HealthCheck;
///
/// struct Psp { reachable: bool }
///
/// impl HealthCheck for Psp {
///     async fn check(&self) -> Result<(), String> {
///         if self.reachable { Ok(()) } else { Err("payment provider unreachable".into()) }
///     }
/// }
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// Runs the check once.
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// A check from an async closure, see [`check_fn`].
#[derive(Debug, Clone)]
pub struct CheckFn<F>(F);

/// Turns an async closure into a [`HealthCheck`].
///
/// # Examples
///
/// ```
/// use lift::middleware::health::{check_fn, Check};
/// let check = Check::non_critical("cache", check_fn(|| async { Ok(()) }));
/// ```
pub fn check_fn<F, Fut>(f: F) -> CheckFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    CheckFn(f)
}

impl<F, Fut> HealthCheck for CheckFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send {
        (self.0)()
    }
}

/// Object-safe form of [`HealthCheck`], so checks of different types sit in one list.
pub(crate) trait DynCheck: Send + Sync {
    fn run(&self) -> BoxFuture<'_, Result<(), String>>;
}

impl<T: HealthCheck> DynCheck for T {
    fn run(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.check())
    }
}

/// A named check with its criticality and timeout.
///
/// A failing **critical** check makes the service unhealthy (503 on `/health` and
/// `/health/ready`); a failing non-critical one makes it "degraded" but still ready (200).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::health::{check_fn, Check};
///
/// let db = Check::critical("dynamodb", check_fn(|| async { Ok(()) })).timeout(Duration::from_millis(500));
/// assert!(db.is_critical());
/// assert_eq!(db.name(), "dynamodb");
/// ```
#[derive(Clone)]
pub struct Check {
    pub(crate) name: Cow<'static, str>,
    pub(crate) critical: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) check: Arc<dyn DynCheck>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// A check the service cannot work without.
    pub fn critical(name: impl Into<Cow<'static, str>>, check: impl HealthCheck) -> Self {
        Self { name: name.into(), critical: true, timeout: None, check: Arc::new(check) }
    }

    /// A check the service can work without, degraded.
    pub fn non_critical(name: impl Into<Cow<'static, str>>, check: impl HealthCheck) -> Self {
        Self { critical: false, ..Self::critical(name, check) }
    }

    /// Sets this check's timeout (default: the checks' default timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The name shown in the report.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the check is critical.
    pub fn is_critical(&self) -> bool {
        self.critical
    }
}
