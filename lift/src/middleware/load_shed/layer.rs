//! The layer and its builder.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::{AdaptiveLimit, HealthIsCritical, InvalidConfig, LoadShed};

/// Applies [`LoadShed`] to services; every service it makes shares one adaptive limit.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::middleware::load_shed::LoadShedLayer;
///
/// let layer = LoadShedLayer::builder()
///     .initial_limit(50)
///     .latency_target(Duration::from_millis(250))
///     .build()
///     .unwrap();
/// let limit = layer.limit(); // for metrics
/// let app = lift::App::new().layer(layer);
/// # let _ = limit.limit();
/// ```
#[derive(Debug)]
pub struct LoadShedLayer<P = HealthIsCritical> {
    limit: Arc<AdaptiveLimit>,
    classify: P,
}

impl<P: Clone> Clone for LoadShedLayer<P> {
    fn clone(&self) -> Self {
        Self { limit: Arc::clone(&self.limit), classify: self.classify.clone() }
    }
}

impl LoadShedLayer {
    /// A layer with the defaults of [`LoadShedBuilder`].
    pub fn new() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }

    /// A builder.
    pub fn builder() -> LoadShedBuilder {
        LoadShedBuilder::default()
    }
}

impl Default for LoadShedLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> LoadShedLayer<P> {
    /// The shared limit, for metrics.
    pub fn limit(&self) -> Arc<AdaptiveLimit> {
        Arc::clone(&self.limit)
    }
}

impl<S, P: Clone> Layer<S> for LoadShedLayer<P> {
    type Service = LoadShed<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed::from_parts(inner, Arc::clone(&self.limit), self.classify.clone())
    }
}

/// Configures a [`LoadShedLayer`].
///
/// Defaults: limit 20 (between 1 and 1000), latency target 1 s, backoff ratio 0.9, low
/// priority admitted below 80 % of the limit, [`HealthIsCritical`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LoadShedBuilder<P = HealthIsCritical> {
    initial: usize,
    min: usize,
    max: usize,
    latency_target: Duration,
    backoff_ratio: f64,
    low_share: f64,
    classify: P,
}

impl Default for LoadShedBuilder {
    fn default() -> Self {
        Self {
            initial: 20,
            min: 1,
            max: 1000,
            latency_target: Duration::from_secs(1),
            backoff_ratio: 0.9,
            low_share: 0.8,
            classify: HealthIsCritical,
        }
    }
}

impl<P> LoadShedBuilder<P> {
    /// The limit to start from.
    pub fn initial_limit(mut self, limit: usize) -> Self {
        self.initial = limit;
        self
    }

    /// The lowest the limit may fall to.
    pub fn min_limit(mut self, limit: usize) -> Self {
        self.min = limit;
        self
    }

    /// The highest the limit may grow to.
    pub fn max_limit(mut self, limit: usize) -> Self {
        self.max = limit;
        self
    }

    /// Responses slower than this (or timed out) decrease the limit.
    pub fn latency_target(mut self, target: Duration) -> Self {
        self.latency_target = target;
        self
    }

    /// The factor a slow or timed-out response multiplies the limit by (0 < ratio < 1).
    pub fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// The share of the limit low-priority requests may fill (0 ≤ share ≤ 1).
    pub fn low_priority_share(mut self, share: f64) -> Self {
        self.low_share = share;
        self
    }

    /// Sets how requests are given a priority (default [`HealthIsCritical`]).
    pub fn classify<P2>(self, classify: P2) -> LoadShedBuilder<P2> {
        LoadShedBuilder {
            initial: self.initial,
            min: self.min,
            max: self.max,
            latency_target: self.latency_target,
            backoff_ratio: self.backoff_ratio,
            low_share: self.low_share,
            classify,
        }
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<LoadShedLayer<P>, InvalidConfig> {
        if self.min == 0 || self.min > self.max {
            return Err(InvalidConfig::new("load shedding", "limits must satisfy 1 <= min <= max"));
        }
        if !(self.min..=self.max).contains(&self.initial) {
            return Err(InvalidConfig::new("load shedding", "the initial limit must be between min and max"));
        }
        if !(self.backoff_ratio > 0.0 && self.backoff_ratio < 1.0) {
            return Err(InvalidConfig::new("load shedding", "the backoff ratio must be in (0, 1)"));
        }
        if !(0.0..=1.0).contains(&self.low_share) {
            return Err(InvalidConfig::new("load shedding", "the low-priority share must be in [0, 1]"));
        }
        let limit = AdaptiveLimit::new(
            self.initial,
            self.min,
            self.max,
            self.backoff_ratio,
            self.low_share,
            self.latency_target,
        );
        Ok(LoadShedLayer { limit: Arc::new(limit), classify: self.classify })
    }
}
