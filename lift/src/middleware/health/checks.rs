//! Running checks: in parallel, each with its timeout, results cached for a TTL.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Check, CheckReport, CheckStatus, HealthReport};

/// The checks of a service, run together and cached.
///
/// Checks run in parallel, each bounded by its timeout. Results are cached for a TTL, and
/// one run serves every caller that arrives while it is in progress, so a burst of
/// `/health` calls runs each check once. Cloning shares the checks and the cache.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use lift::middleware::health::{check_fn, Check, HealthChecks, Status};
///
/// let checks = HealthChecks::builder()
///     .check(Check::critical("db", check_fn(|| async { Ok(()) })))
///     .check(Check::non_critical("cache", check_fn(|| async { Err("cache miss storm".into()) })))
///     .cache_ttl(Duration::from_secs(5))
///     .build();
/// let report = checks.report().await;
/// assert_eq!(report.status, Status::Degraded);
/// assert_eq!(checks.readiness().await.status, Status::Ok);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HealthChecks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    checks: Vec<Check>,
    default_timeout: Duration,
    ttl: Duration,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    all: Option<(Instant, HealthReport)>,
    critical: Option<(Instant, HealthReport)>,
}

impl HealthChecks {
    /// A builder.
    pub fn builder() -> HealthChecksBuilder {
        HealthChecksBuilder::default()
    }

    /// The report over every check (from the cache while fresh).
    pub async fn report(&self) -> HealthReport {
        let mut cache = self.inner.cache.lock().await;
        if let Some(report) = self.fresh(&cache.all) {
            return report;
        }
        // The lock is held during the run: concurrent callers wait for this run's result.
        let report = HealthReport::from_checks(self.run(|_| true).await);
        cache.all = Some((Instant::now(), report.clone()));
        report
    }

    /// The report over the critical checks only, for readiness (from the cache while fresh).
    pub async fn readiness(&self) -> HealthReport {
        let mut cache = self.inner.cache.lock().await;
        if let Some(report) = self.fresh(&cache.all) {
            return report.critical_only();
        }
        if let Some(report) = self.fresh(&cache.critical) {
            return report;
        }
        let report = HealthReport::from_checks(self.run(Check::is_critical).await);
        cache.critical = Some((Instant::now(), report.clone()));
        report
    }

    fn fresh(&self, entry: &Option<(Instant, HealthReport)>) -> Option<HealthReport> {
        entry.as_ref().filter(|(at, _)| at.elapsed() < self.inner.ttl).map(|(_, report)| report.clone())
    }

    async fn run(&self, select: impl Fn(&Check) -> bool) -> Vec<CheckReport> {
        let runs = self.inner.checks.iter().filter(|c| select(c)).map(|check| self.run_one(check));
        futures_util::future::join_all(runs).await
    }

    async fn run_one(&self, check: &Check) -> CheckReport {
        let timeout = check.timeout.unwrap_or(self.inner.default_timeout);
        let start = Instant::now();
        // A panicking check is a failed check, not a failed health endpoint.
        let outcome = tokio::time::timeout(timeout, AssertUnwindSafe(check.check.run()).catch_unwind()).await;
        let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, error) = match outcome {
            Ok(Ok(Ok(()))) => (CheckStatus::Ok, None),
            Ok(Ok(Err(message))) => (CheckStatus::Failed, Some(message)),
            Ok(Err(_panic)) => (CheckStatus::Failed, Some("the check panicked".to_owned())),
            Err(_elapsed) => {
                (CheckStatus::Timeout, Some(format!("no answer within {} ms", timeout.as_millis())))
            }
        };
        CheckReport { name: check.name.to_string(), status, critical: check.critical, duration_ms, error }
    }
}

/// Configures [`HealthChecks`].
///
/// Defaults: no checks, a 2 s timeout per check, results cached for 5 s.
#[derive(Debug)]
#[must_use]
pub struct HealthChecksBuilder {
    checks: Vec<Check>,
    default_timeout: Duration,
    ttl: Duration,
}

impl Default for HealthChecksBuilder {
    fn default() -> Self {
        Self { checks: Vec::new(), default_timeout: Duration::from_secs(2), ttl: Duration::from_secs(5) }
    }
}

impl HealthChecksBuilder {
    /// Adds a check.
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// The timeout of checks that set none.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// How long results are reused (zero: run the checks on every call).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Builds the checks.
    pub fn build(self) -> HealthChecks {
        HealthChecks {
            inner: Arc::new(Inner {
                checks: self.checks,
                default_timeout: self.default_timeout,
                ttl: self.ttl,
                cache: Mutex::new(Cache::default()),
            }),
        }
    }
}
