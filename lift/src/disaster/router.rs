//! Client-side routing: which region the service's own DynamoDB calls go to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use super::{ConfigError, Region, RegionSet};

/// Hands out the active region's DynamoDB client; the failover orchestrator moves it.
///
/// Read it on every call (`router.dynamodb().put_item()...`) rather than keeping a client:
/// a switch then takes effect on the next call. Reading is one atomic load. Cloning is
/// cheap and every clone sees the same active region.
///
/// # Examples
///
/// ```
/// use lift::disaster::{RegionConfig, RegionRouter, RegionSet};
///
/// let regions = RegionSet::builder()
///     .region(RegionConfig::new("us-east-1").dynamodb_endpoint("http://127.0.0.1:8000"))
///     .region(RegionConfig::new("eu-west-1").dynamodb_endpoint("http://127.0.0.1:8001"))
///     .build()?;
/// let router = RegionRouter::new(regions);
/// assert_eq!(router.active().name(), "us-east-1");
/// router.switch_to("eu-west-1")?;
/// assert_eq!(router.active().name(), "eu-west-1");
/// let _client = router.dynamodb();
/// # Ok::<(), lift::disaster::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RegionRouter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    regions: RegionSet,
    active: AtomicUsize,
    changes: watch::Sender<usize>,
}

impl RegionRouter {
    /// A router with traffic on the primary.
    pub fn new(regions: RegionSet) -> Self {
        let (changes, _) = watch::channel(0);
        Self { inner: Arc::new(Inner { regions, active: AtomicUsize::new(0), changes }) }
    }

    /// The regions routed between.
    pub fn regions(&self) -> &RegionSet {
        &self.inner.regions
    }

    /// The region traffic goes to now.
    pub fn active(&self) -> &Region {
        let index = self.active_index();
        self.inner.regions.get(index).unwrap_or_else(|| self.inner.regions.primary())
    }

    /// The index of the active region in the [`RegionSet`] (0 is the primary).
    pub fn active_index(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Whether traffic is on the primary.
    pub fn is_on_primary(&self) -> bool {
        self.active_index() == 0
    }

    /// The active region's DynamoDB client.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.active().dynamodb().clone()
    }

    /// Moves traffic to the region called `name` and returns the region it left, or `None`
    /// if traffic was there already.
    pub fn switch_to(&self, name: &str) -> Result<Option<&Region>, ConfigError> {
        let index =
            self.inner.regions.index_of(name).ok_or_else(|| ConfigError::UnknownRegion(name.to_owned()))?;
        Ok(self.switch_to_index(index).and_then(|from| self.inner.regions.get(from)))
    }

    /// Moves traffic to region `index`; returns the previous index if it changed.
    pub(crate) fn switch_to_index(&self, index: usize) -> Option<usize> {
        let previous = self.inner.active.swap(index, Ordering::AcqRel);
        if previous == index {
            return None;
        }
        self.inner.changes.send_replace(index);
        tracing::warn!(
            from = self.inner.regions.get(previous).map(Region::name).unwrap_or_default(),
            to = self.active().name(),
            "traffic moved"
        );
        Some(previous)
    }

    /// A receiver of the active region index; `changed()` fires on every switch.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.inner.changes.subscribe()
    }
}
