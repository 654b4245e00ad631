//! The layer, its builder, and the policy every service of a layer shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::retry::budget::{Budget, TpsBudget};
use tower_layer::Layer;

use super::{Backoff, InvalidConfig, Retry, TransientErrors};

/// What every service of one layer shares.
pub(crate) struct Policy<C, Bg> {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) margin: Duration,
    pub(crate) classify: C,
    pub(crate) budget: Bg,
    pub(crate) retries: AtomicU64,
}

/// Applies [`Retry`] to services; every service it makes shares one retry budget.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::retry::{Backoff, RetryLayer};
/// use tower::retry::budget::TpsBudget;
///
/// let layer = RetryLayer::builder()
///     .max_attempts(3)
///     .backoff(Backoff::exponential(Duration::from_millis(20), Duration::from_millis(500)))
///     .budget(TpsBudget::new(Duration::from_secs(10), 5, 0.1))
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
pub struct RetryLayer<C = TransientErrors, Bg = TpsBudget> {
    policy: Arc<Policy<C, Bg>>,
}

impl<C, Bg> Clone for RetryLayer<C, Bg> {
    fn clone(&self) -> Self {
        Self { policy: Arc::clone(&self.policy) }
    }
}

impl<C, Bg: std::fmt::Debug> std::fmt::Debug for RetryLayer<C, Bg> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("max_attempts", &self.policy.max_attempts)
            .field("backoff", &self.policy.backoff)
            .field("margin", &self.policy.margin)
            .field("budget", &self.policy.budget)
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A layer with the defaults of [`RetryBuilder`].
    pub fn new() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }

    /// A builder.
    pub fn builder() -> RetryBuilder {
        RetryBuilder::default()
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C, Bg> RetryLayer<C, Bg> {
    /// Retries made so far (not counting first attempts).
    pub fn retries(&self) -> u64 {
        self.policy.retries.load(Ordering::Relaxed)
    }

    /// The retry budget.
    pub fn budget(&self) -> &Bg {
        &self.policy.budget
    }
}

impl<S, C, Bg> Layer<S> for RetryLayer<C, Bg> {
    type Service = Retry<S, C, Bg>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_parts(inner, Arc::clone(&self.policy))
    }
}

/// Configures a [`RetryLayer`].
///
/// Defaults: 3 attempts in all, [`Backoff::default`] (50 ms doubling to 1 s, full jitter),
/// tower's default [`TpsBudget`] (retries up to 20 % of requests plus 10 per second over
/// 10 s), [`TransientErrors`], and a 200 ms margin before the Lambda deadline.
#[must_use]
pub struct RetryBuilder<C = TransientErrors, Bg = TpsBudget> {
    max_attempts: u32,
    backoff: Backoff,
    margin: Duration,
    classify: C,
    budget: Bg,
}

impl Default for RetryBuilder {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
            margin: crate::middleware::timeout::DEFAULT_MARGIN,
            classify: TransientErrors,
            budget: TpsBudget::default(),
        }
    }
}

impl<C, Bg> std::fmt::Debug for RetryBuilder<C, Bg> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl<C, Bg> RetryBuilder<C, Bg> {
    /// Attempts in all, the first included (1 disables retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The wait between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The time kept free before the Lambda deadline: no retry or wait may end after
    /// `deadline - margin`.
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Sets which outcomes may be retried (default [`TransientErrors`]).
    pub fn classify<C2>(self, classify: C2) -> RetryBuilder<C2, Bg> {
        RetryBuilder {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            margin: self.margin,
            classify,
            budget: self.budget,
        }
    }

    /// Sets the retry budget (any tower [`Budget`]; default [`TpsBudget::default`]).
    pub fn budget<Bg2: Budget>(self, budget: Bg2) -> RetryBuilder<C, Bg2> {
        RetryBuilder {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            margin: self.margin,
            classify: self.classify,
            budget,
        }
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<RetryLayer<C, Bg>, InvalidConfig> {
        if self.max_attempts == 0 {
            return Err(InvalidConfig::new("retry", "max attempts must be at least 1"));
        }
        if self.backoff.max() < self.backoff.base() {
            return Err(InvalidConfig::new("retry", "the backoff maximum must not be below its base"));
        }
        Ok(RetryLayer {
            policy: Arc::new(Policy {
                max_attempts: self.max_attempts,
                backoff: self.backoff,
                margin: self.margin,
                classify: self.classify,
                budget: self.budget,
                retries: AtomicU64::new(0),
            }),
        })
    }
}
