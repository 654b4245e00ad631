//! Retention: how long an item of each class may be kept, as a DynamoDB TTL.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::classify::{DataClass, Level};

/// A time to live per level, with per-class overrides.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use lift::security::protection::{DataClass, RetentionPolicy};
/// let policy = RetentionPolicy::default().class(DataClass::Pan, Duration::from_secs(60));
/// let now = UNIX_EPOCH + Duration::from_secs(1_000);
/// assert_eq!(policy.expires_at(DataClass::Pan, now), 1_060);
/// ```
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    levels: HashMap<Level, Duration>,
    classes: HashMap<DataClass, Duration>,
}

const DAY: u64 = 86_400;

impl Default for RetentionPolicy {
    /// Restricted 90 days, Confidential 1 year, Internal 3 years, Public 7 years.
    fn default() -> Self {
        let levels = [
            (Level::Restricted, 90 * DAY),
            (Level::Confidential, 365 * DAY),
            (Level::Internal, 3 * 365 * DAY),
            (Level::Public, 7 * 365 * DAY),
        ];
        Self {
            levels: levels.into_iter().map(|(l, s)| (l, Duration::from_secs(s))).collect(),
            classes: HashMap::new(),
        }
    }
}

impl RetentionPolicy {
    /// Sets the retention of a level.
    pub fn level(mut self, level: Level, ttl: Duration) -> Self {
        self.levels.insert(level, ttl);
        self
    }

    /// Sets the retention of a class (wins over its level's).
    pub fn class(mut self, class: DataClass, ttl: Duration) -> Self {
        self.classes.insert(class, ttl);
        self
    }

    /// How long an item of the class is kept.
    pub fn ttl(&self, class: DataClass) -> Duration {
        self.classes
            .get(&class)
            .or_else(|| self.levels.get(&class.level()))
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// How long an item of the level is kept.
    pub fn ttl_of_level(&self, level: Level) -> Duration {
        self.levels.get(&level).copied().unwrap_or(Duration::ZERO)
    }

    /// The `expires_at` (epoch seconds) of an item of the class written at `now`.
    pub fn expires_at(&self, class: DataClass, now: SystemTime) -> u64 {
        epoch(now) + self.ttl(class).as_secs()
    }

    /// The `expires_at` (epoch seconds) of an item of the level written at `now`.
    pub fn expires_at_level(&self, level: Level, now: SystemTime) -> u64 {
        epoch(now) + self.ttl_of_level(level).as_secs()
    }
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
