//! The failover policy: when to move traffic, and where.

use std::time::{Duration, Instant};

use super::env::{self, ProcessEnv, Vars};
use super::health::{HealthSnapshot, HealthState};
use super::ConfigError;

/// Decides when traffic moves between regions.
///
/// - The active region is unhealthy and another region is healthy: fail over to the first
///   healthy region in failover order (the primary first, then the secondaries).
/// - Traffic is away from the primary, and the primary has passed every probe for
///   `failback_after`: fail back.
/// - No switch within `min_dwell` of the previous one, whatever the health says: an
///   oscillating region causes at most one switch per dwell window.
/// - With `failover_enabled` off nothing moves; with `failback_enabled` off traffic stays
///   on the secondary until an operator moves it.
///
/// # Examples
///
/// ```
/// use lift::disaster::FailoverPolicy;
/// use std::time::Duration;
///
/// let policy = FailoverPolicy::default().failback_after(Duration::from_secs(300));
/// assert!(policy.failover_enabled);
/// assert_eq!(policy.min_dwell, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverPolicy {
    /// Whether traffic moves at all (default on).
    pub failover_enabled: bool,
    /// Whether traffic returns to the primary on its own (default on).
    pub failback_enabled: bool,
    /// How long the primary must pass every probe before traffic returns (default 60 s).
    pub failback_after: Duration,
    /// The minimum time between two switches (default 10 s).
    pub min_dwell: Duration,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        Self {
            failover_enabled: true,
            failback_enabled: true,
            failback_after: Duration::from_secs(60),
            min_dwell: Duration::from_secs(10),
        }
    }
}

/// What the policy wants done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep traffic where it is.
    Stay,
    /// A switch is due but the last one was too recent; it may happen at `until`.
    Held {
        /// When the dwell time since the last switch ends.
        until: Instant,
    },
    /// Move traffic away from the unhealthy active region to region index `to`.
    FailOver {
        /// The index of the target in the [`RegionSet`](super::RegionSet).
        to: usize,
    },
    /// Move traffic back to the primary (index 0).
    FailBack,
}

impl FailoverPolicy {
    /// Turns failover on or off.
    pub fn failover_enabled(mut self, enabled: bool) -> Self {
        self.failover_enabled = enabled;
        self
    }

    /// Turns automatic failback on or off.
    pub fn failback_enabled(mut self, enabled: bool) -> Self {
        self.failback_enabled = enabled;
        self
    }

    /// Sets how long the primary must be healthy before traffic returns.
    pub fn failback_after(mut self, after: Duration) -> Self {
        self.failback_after = after;
        self
    }

    /// Sets the minimum time between two switches.
    pub fn min_dwell(mut self, dwell: Duration) -> Self {
        self.min_dwell = dwell;
        self
    }

    /// The defaults, overridden by `LIFT_FAILOVER_ENABLED`, `LIFT_FAILBACK_ENABLED`,
    /// `LIFT_FAILBACK_AFTER_SECS` and `LIFT_FAILOVER_MIN_DWELL_SECS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&ProcessEnv)
    }

    fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let mut policy = Self::default();
        if let Some(v) = env::flag(vars, "LIFT_FAILOVER_ENABLED")? {
            policy.failover_enabled = v;
        }
        if let Some(v) = env::flag(vars, "LIFT_FAILBACK_ENABLED")? {
            policy.failback_enabled = v;
        }
        if let Some(v) = env::secs(vars, "LIFT_FAILBACK_AFTER_SECS")? {
            policy.failback_after = v;
        }
        if let Some(v) = env::secs(vars, "LIFT_FAILOVER_MIN_DWELL_SECS")? {
            policy.min_dwell = v;
        }
        Ok(policy)
    }

    /// What to do at `now`, with traffic on region index `active`, the regions' `health`
    /// (in [`RegionSet`](super::RegionSet) order) and the time of the last switch.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::disaster::{Decision, FailoverPolicy, HealthSnapshot, HealthState};
    /// use std::time::Instant;
    ///
    /// let mut health = HealthSnapshot::unknown(["us-east-1", "eu-west-1"]);
    /// health.regions[0].state = HealthState::Unhealthy;
    /// health.regions[1].state = HealthState::Healthy;
    /// let policy = FailoverPolicy::default();
    /// assert_eq!(policy.decide(Instant::now(), 0, &health, None), Decision::FailOver { to: 1 });
    /// let off = policy.failover_enabled(false);
    /// assert_eq!(off.decide(Instant::now(), 0, &health, None), Decision::Stay);
    /// ```
    pub fn decide(
        &self,
        now: Instant,
        active: usize,
        health: &HealthSnapshot,
        last_switch: Option<Instant>,
    ) -> Decision {
        if !self.failover_enabled {
            return Decision::Stay;
        }
        let regions = &health.regions;
        let Some(current) = regions.get(active) else {
            return Decision::Stay;
        };
        let wanted = if current.state == HealthState::Unhealthy {
            regions
                .iter()
                .enumerate()
                .find(|(i, r)| *i != active && r.state == HealthState::Healthy)
                .map(|(to, _)| if to == 0 { Decision::FailBack } else { Decision::FailOver { to } })
        } else if active != 0 && self.failback_enabled {
            regions
                .first()
                .filter(|primary| primary.state == HealthState::Healthy)
                .and_then(|primary| primary.passing_since)
                .filter(|since| now.saturating_duration_since(*since) >= self.failback_after)
                .map(|_| Decision::FailBack)
        } else {
            None
        };
        match (wanted, last_switch) {
            (None, _) => Decision::Stay,
            (Some(_), Some(last)) if now.saturating_duration_since(last) < self.min_dwell => {
                Decision::Held { until: last + self.min_dwell }
            }
            (Some(decision), _) => decision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn health(states: &[HealthState], passing_since: Option<Instant>) -> HealthSnapshot {
        let names = ["us-east-1", "eu-west-1", "ap-south-1"];
        let mut snapshot = HealthSnapshot::unknown(names.into_iter().take(states.len()));
        for (status, state) in snapshot.regions.iter_mut().zip(states) {
            status.state = *state;
            status.passing_since = (*state == HealthState::Healthy).then_some(passing_since).flatten();
        }
        snapshot
    }

    use HealthState::{Healthy, Unhealthy, Unknown};

    #[test]
    fn no_failover_when_disabled() {
        let now = Instant::now();
        let down = health(&[Unhealthy, Healthy], Some(now));
        let policy = FailoverPolicy::default().failover_enabled(false);
        assert_eq!(policy.decide(now, 0, &down, None), Decision::Stay);
        assert_eq!(FailoverPolicy::default().decide(now, 0, &down, None), Decision::FailOver { to: 1 });
    }

    #[test]
    fn failover_goes_to_the_first_healthy_secondary_only() {
        let now = Instant::now();
        let policy = FailoverPolicy::default();
        let first_down = health(&[Unhealthy, Unhealthy, Healthy], Some(now));
        assert_eq!(policy.decide(now, 0, &first_down, None), Decision::FailOver { to: 2 });
        // Unknown is not healthy: never a target.
        let unknown = health(&[Unhealthy, Unknown], None);
        assert_eq!(policy.decide(now, 0, &unknown, None), Decision::Stay);
        // A healthy or unknown primary keeps traffic.
        assert_eq!(policy.decide(now, 0, &health(&[Unknown, Healthy], Some(now)), None), Decision::Stay);
    }

    #[test]
    fn failback_waits_until_the_primary_has_been_healthy_long_enough() {
        let t0 = Instant::now();
        let policy = FailoverPolicy::default().failback_after(Duration::from_secs(60));
        let recovered = health(&[Healthy, Healthy], Some(t0));
        let switched = Some(t0 - Duration::from_secs(100));
        assert_eq!(policy.decide(t0 + Duration::from_secs(59), 1, &recovered, switched), Decision::Stay);
        assert_eq!(policy.decide(t0 + Duration::from_secs(60), 1, &recovered, switched), Decision::FailBack);
        let no_failback = policy.clone().failback_enabled(false);
        assert_eq!(
            no_failback.decide(t0 + Duration::from_secs(600), 1, &recovered, switched),
            Decision::Stay
        );
        // The active secondary failing sends traffic to a healthy primary at once.
        let secondary_down = health(&[Healthy, Unhealthy], Some(t0));
        assert_eq!(policy.decide(t0, 1, &secondary_down, switched), Decision::FailBack);
    }

    #[test]
    fn switches_are_held_within_the_dwell_time() {
        let t0 = Instant::now();
        let policy = FailoverPolicy::default().min_dwell(Duration::from_secs(10));
        let down = health(&[Unhealthy, Healthy], Some(t0));
        let last = Some(t0);
        assert_eq!(
            policy.decide(t0 + Duration::from_secs(3), 0, &down, last),
            Decision::Held { until: t0 + Duration::from_secs(10) }
        );
        assert_eq!(policy.decide(t0 + Duration::from_secs(10), 0, &down, last), Decision::FailOver { to: 1 });
        // Nothing wanted: nothing held.
        let fine = health(&[Healthy, Healthy], Some(t0));
        assert_eq!(policy.decide(t0, 0, &fine, last), Decision::Stay);
    }

    #[test]
    fn settings_come_from_the_environment() {
        let vars: HashMap<&str, &str> =
            [("LIFT_FAILOVER_ENABLED", "false"), ("LIFT_FAILBACK_AFTER_SECS", "5")].into_iter().collect();
        let policy = FailoverPolicy::from_vars(&vars).unwrap();
        assert!(!policy.failover_enabled);
        assert_eq!(policy.failback_after, Duration::from_secs(5));
        let bad: HashMap<&str, &str> = [("LIFT_FAILOVER_ENABLED", "maybe")].into_iter().collect();
        assert!(FailoverPolicy::from_vars(&bad).is_err());
    }
}
