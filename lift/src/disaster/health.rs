//! The health of regions: states, streaks and the hysteresis between them.

use std::time::Instant;

use super::ProbeError;

/// What the monitor believes about a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// No verdict yet: the region becomes healthy on its first passing round, or unhealthy
    /// after `failure_threshold` failing ones. Never a failover target.
    Unknown,
    /// The region serves.
    Healthy,
    /// The region failed `failure_threshold` probe rounds in a row and has not yet passed
    /// `recovery_threshold` in a row.
    Unhealthy,
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HealthState::Unknown => "unknown",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        })
    }
}

/// One region's health as of its last probe round.
///
/// Instants come from `tokio::time::Instant`, so they follow a paused test clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionStatus {
    /// The region name.
    pub region: String,
    /// The current verdict.
    pub state: HealthState,
    /// Failing rounds in a row (0 after a passing one).
    pub consecutive_failures: u32,
    /// Passing rounds in a row (0 after a failing one).
    pub consecutive_successes: u32,
    /// When the first failing round of the current failure streak started.
    pub failing_since: Option<Instant>,
    /// When the first passing round of the current success streak started.
    pub passing_since: Option<Instant>,
    /// When the region was declared unhealthy, while it is.
    pub down_since: Option<Instant>,
    /// When the region was declared healthy, while it is.
    pub up_since: Option<Instant>,
    /// When the last round finished.
    pub last_probe_at: Option<Instant>,
    /// The failure of the last failing round: `probe: error`.
    pub last_error: Option<String>,
    /// How many rounds ran.
    pub rounds: u64,
    /// What declared the region unhealthy, while it is.
    pub declared_by: Option<DetectedBy>,
    /// Confirming probes run after a region's requests made it suspect.
    pub confirmations: u64,
}

/// What declared a region unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectedBy {
    /// `failure_threshold` probe rounds in a row failed.
    Probes,
    /// Its requests failed in a row and an immediate probe confirmed it.
    Requests,
}

impl std::fmt::Display for DetectedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DetectedBy::Probes => "probes",
            DetectedBy::Requests => "requests, confirmed by a probe",
        })
    }
}

impl RegionStatus {
    /// A region with no rounds yet.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            state: HealthState::Unknown,
            consecutive_failures: 0,
            consecutive_successes: 0,
            failing_since: None,
            passing_since: None,
            down_since: None,
            up_since: None,
            last_probe_at: None,
            last_error: None,
            rounds: 0,
            declared_by: None,
            confirmations: 0,
        }
    }

    /// Whether the region is healthy.
    pub fn is_healthy(&self) -> bool {
        self.state == HealthState::Healthy
    }
}

/// Every region's health, in [`RegionSet`](super::RegionSet) order (primary first), as
/// published by the monitor's `watch` channel after each round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthSnapshot {
    /// One status per region, primary first.
    pub regions: Vec<RegionStatus>,
}

impl HealthSnapshot {
    /// A snapshot with every region [`HealthState::Unknown`].
    pub fn unknown<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self { regions: names.into_iter().map(RegionStatus::new).collect() }
    }

    /// The status of `region`.
    pub fn get(&self, region: &str) -> Option<&RegionStatus> {
        self.regions.iter().find(|r| r.region == region)
    }

    /// The state of `region`; [`HealthState::Unknown`] for a region not in the snapshot.
    pub fn state(&self, region: &str) -> HealthState {
        self.get(region).map_or(HealthState::Unknown, |r| r.state)
    }
}

/// The hysteresis of one region: probe outcomes in, state changes out.
///
/// A healthy region turns unhealthy after `failure_threshold` failing rounds in a row and
/// back after `recovery_threshold` passing rounds in a row, so one slow probe never flips it.
///
/// # Examples
///
/// ```
/// use lift::disaster::{HealthState, ProbeError, RegionHealth};
/// use std::time::Instant;
///
/// let mut health = RegionHealth::new("us-east-1", 3, 2);
/// let now = Instant::now();
/// assert_eq!(health.record(Ok(()), now, now), Some(HealthState::Healthy));
/// let timeout = || Err(ProbeError::Unreachable("refused".into()));
/// assert_eq!(health.record(timeout(), now, now), None);
/// assert_eq!(health.record(timeout(), now, now), None);
/// assert_eq!(health.record(timeout(), now, now), Some(HealthState::Unhealthy));
/// ```
#[derive(Debug, Clone)]
pub struct RegionHealth {
    status: RegionStatus,
    failure_threshold: u32,
    recovery_threshold: u32,
}

impl RegionHealth {
    /// A region of unknown health with these thresholds (each at least 1).
    pub fn new(region: impl Into<String>, failure_threshold: u32, recovery_threshold: u32) -> Self {
        Self {
            status: RegionStatus::new(region),
            failure_threshold: failure_threshold.max(1),
            recovery_threshold: recovery_threshold.max(1),
        }
    }

    /// Records one probe round that ran from `started_at` to `finished_at`, and returns the
    /// new state if the round changed it.
    pub fn record(
        &mut self,
        outcome: Result<(), ProbeError>,
        started_at: Instant,
        finished_at: Instant,
    ) -> Option<HealthState> {
        let s = &mut self.status;
        s.rounds += 1;
        s.last_probe_at = Some(finished_at);
        let before = s.state;
        match outcome {
            Ok(()) => {
                s.consecutive_successes = s.consecutive_successes.saturating_add(1);
                s.consecutive_failures = 0;
                s.failing_since = None;
                s.passing_since.get_or_insert(started_at);
                let recovered = match s.state {
                    HealthState::Unknown => true,
                    HealthState::Unhealthy => s.consecutive_successes >= self.recovery_threshold,
                    HealthState::Healthy => false,
                };
                if recovered {
                    s.state = HealthState::Healthy;
                    s.up_since = Some(finished_at);
                    s.down_since = None;
                    s.declared_by = None;
                }
            }
            Err(err) => {
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                s.consecutive_successes = 0;
                s.passing_since = None;
                s.failing_since.get_or_insert(started_at);
                s.last_error = Some(err.to_string());
                if s.state != HealthState::Unhealthy && s.consecutive_failures >= self.failure_threshold {
                    s.state = HealthState::Unhealthy;
                    s.down_since = Some(finished_at);
                    s.up_since = None;
                    s.declared_by = Some(DetectedBy::Probes);
                }
            }
        }
        (s.state != before).then_some(s.state)
    }

    /// Records a confirming probe round, run because the region's own requests failed in a
    /// row since `suspect_since`. A failing one declares the region unhealthy at once (the
    /// failure streak starts at the first failed request, if earlier than the round); a
    /// passing one counts as a passing round.
    pub fn confirm(
        &mut self,
        outcome: Result<(), ProbeError>,
        suspect_since: Option<Instant>,
        started_at: Instant,
        finished_at: Instant,
    ) -> Option<HealthState> {
        self.status.confirmations += 1;
        let failed = outcome.is_err();
        let before = self.status.state;
        let changed = self.record(outcome, started_at, finished_at);
        let s = &mut self.status;
        if failed {
            if let Some(since) = suspect_since {
                s.failing_since = Some(s.failing_since.map_or(since, |f| f.min(since)));
            }
            if s.state != HealthState::Unhealthy {
                s.state = HealthState::Unhealthy;
                s.down_since = Some(finished_at);
                s.up_since = None;
                s.declared_by = Some(DetectedBy::Requests);
            }
            return (s.state != before).then_some(s.state);
        }
        changed
    }

    /// The status after the rounds recorded so far.
    pub fn status(&self) -> &RegionStatus {
        &self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fail() -> Result<(), ProbeError> {
        Err(ProbeError::TimedOut(Duration::from_millis(500)))
    }

    /// Feeds outcomes one second apart and returns the states after each.
    fn run(health: &mut RegionHealth, t0: Instant, outcomes: &[bool]) -> Vec<HealthState> {
        let start = health.status().rounds as u32;
        outcomes
            .iter()
            .enumerate()
            .map(|(i, ok)| {
                let at = t0 + Duration::from_secs(u64::from(start) + i as u64);
                health.record(if *ok { Ok(()) } else { fail() }, at, at + Duration::from_millis(10));
                health.status().state
            })
            .collect()
    }

    #[test]
    fn one_failure_does_not_flip_a_healthy_region() {
        use HealthState::*;
        let t0 = Instant::now();
        let mut health = RegionHealth::new("r", 3, 2);
        let states = run(&mut health, t0, &[true, false, true, false, false, true]);
        assert_eq!(states, [Healthy; 6]);
        assert_eq!(health.status().consecutive_failures, 0);
        assert_eq!(health.status().down_since, None);
    }

    #[test]
    fn n_failures_in_a_row_flip_it_and_the_streak_start_is_kept() {
        use HealthState::*;
        let t0 = Instant::now();
        let mut health = RegionHealth::new("r", 3, 2);
        let states = run(&mut health, t0, &[true, false, false, false]);
        assert_eq!(states, [Healthy, Healthy, Healthy, Unhealthy]);
        let s = health.status();
        assert_eq!(s.failing_since, Some(t0 + Duration::from_secs(1)));
        assert_eq!(s.down_since, Some(t0 + Duration::from_secs(3) + Duration::from_millis(10)));
        assert_eq!(s.last_error.as_deref(), Some("probe timed out after 500ms"));
    }

    #[test]
    fn recovery_needs_m_successes_in_a_row() {
        use HealthState::*;
        let t0 = Instant::now();
        let mut health = RegionHealth::new("r", 2, 3);
        run(&mut health, t0, &[false, false]);
        assert_eq!(health.status().state, Unhealthy);
        let states = run(&mut health, t0, &[true, true, false, true, true, true]);
        assert_eq!(states, [Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Healthy]);
        let s = health.status();
        assert_eq!(s.passing_since, Some(t0 + Duration::from_secs(5)));
        assert_eq!(s.down_since, None);
        assert!(s.up_since.is_some());
    }

    #[test]
    fn a_failed_confirmation_declares_the_region_down_at_once_and_a_passing_one_does_not() {
        use HealthState::*;
        let t0 = Instant::now();
        let mut health = RegionHealth::new("r", 3, 2);
        run(&mut health, t0, &[true]);
        let suspect = t0 + Duration::from_millis(1_100);
        let at = t0 + Duration::from_millis(1_300);
        // A passing confirmation is a passing round: nothing moves.
        assert_eq!(health.confirm(Ok(()), Some(suspect), at, at), None);
        assert_eq!(health.status().state, Healthy);
        assert_eq!(health.status().failing_since, None);
        let changed = health.confirm(fail(), Some(suspect), at, at + Duration::from_millis(100));
        assert_eq!(changed, Some(Unhealthy), "one failed confirmation, not three rounds");
        let s = health.status();
        assert_eq!(s.failing_since, Some(suspect), "from the first failed request");
        assert_eq!(s.down_since, Some(at + Duration::from_millis(100)));
        assert_eq!(s.declared_by, Some(DetectedBy::Requests));
        assert_eq!(s.confirmations, 2);
        // Recovery is the probes' business, with the usual threshold.
        assert_eq!(run(&mut health, t0 + Duration::from_secs(5), &[true, true]), [Unhealthy, Healthy]);
        assert_eq!(health.status().declared_by, None);
        // Probe rounds alone declare it as before.
        run(&mut health, t0 + Duration::from_secs(9), &[false, false, false]);
        assert_eq!(health.status().declared_by, Some(DetectedBy::Probes));
    }

    #[test]
    fn an_unknown_region_needs_the_full_failure_threshold() {
        let t0 = Instant::now();
        let mut health = RegionHealth::new("r", 3, 2);
        let states = run(&mut health, t0, &[false, false]);
        assert_eq!(states, [HealthState::Unknown; 2]);
        assert_eq!(run(&mut health, t0, &[false]), [HealthState::Unhealthy]);
    }
}
