//! What happens during a drill, as typed events on one channel: faults from the inject
//! stage, health changes and switches of traffic from the failover client.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lift::disaster::{FailoverRecord, HealthSnapshot, HealthState, SwitchKind};
use tokio::sync::{mpsc, watch};

use super::report::EventRecord;
use super::scenario::FaultKind;

/// One event of a drill.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DrillEvent {
    /// The failover client's monitor declared a region down.
    RegionDown {
        /// The region.
        region: String,
        /// When it was declared down.
        at: Instant,
        /// When the first failing probe round of the streak started.
        failing_since: Option<Instant>,
        /// The failing probes.
        detail: String,
    },
    /// The monitor declared a region healthy (again).
    RegionUp {
        /// The region.
        region: String,
        /// When.
        at: Instant,
        /// The passing probes.
        detail: String,
    },
    /// The monitor lost track of a region's state.
    RegionUnknown {
        /// The region.
        region: String,
        /// When it was noticed.
        at: Instant,
    },
    /// A fault of the timeline took effect.
    FaultInjected {
        /// Its index in the scenario's timeline.
        fault: usize,
        /// Its kind.
        kind: FaultKind,
        /// The region hit.
        region: String,
        /// When it took effect.
        at: Instant,
    },
    /// A fault was healed.
    FaultHealed {
        /// Its index in the scenario's timeline.
        fault: usize,
        /// Its kind.
        kind: FaultKind,
        /// The region.
        region: String,
        /// When the heal took effect.
        at: Instant,
    },
    /// Traffic moved away from the primary.
    Failover(Switch),
    /// Traffic moved back to the primary.
    Failback(Switch),
}

/// A move of traffic, as lift's orchestrator recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    /// Where traffic was.
    pub from: String,
    /// Where it went.
    pub to: String,
    /// When traffic moved.
    pub at: Instant,
    /// Lift's own time to detect.
    pub time_to_detect: Duration,
    /// Lift's own time from the first failing probe to the move.
    pub time_to_failover: Duration,
}

impl DrillEvent {
    /// When it happened.
    pub fn at(&self) -> Instant {
        match self {
            DrillEvent::RegionDown { at, .. }
            | DrillEvent::RegionUp { at, .. }
            | DrillEvent::RegionUnknown { at, .. }
            | DrillEvent::FaultInjected { at, .. }
            | DrillEvent::FaultHealed { at, .. } => *at,
            DrillEvent::Failover(s) | DrillEvent::Failback(s) => s.at,
        }
    }

    /// Its line in the report, `ms` giving milliseconds since the load began.
    pub(crate) fn record(&self, ms: impl Fn(Instant) -> f64) -> EventRecord {
        let rec = |region: &str, kind: &str, detail: String| EventRecord {
            t_ms: ms(self.at()),
            region: region.to_owned(),
            kind: kind.to_owned(),
            detail,
        };
        match self {
            DrillEvent::RegionDown { region, detail, .. } => rec(region, "region_down", detail.clone()),
            DrillEvent::RegionUp { region, detail, .. } => rec(region, "region_up", detail.clone()),
            DrillEvent::RegionUnknown { region, .. } => rec(region, "region_unknown", String::new()),
            DrillEvent::FaultInjected { region, kind, .. } => {
                rec(region, "fault_injected", kind.name().into())
            }
            DrillEvent::FaultHealed { region, kind, .. } => rec(region, "fault_healed", kind.name().into()),
            DrillEvent::Failover(s) => rec(&s.to, "failover", s.detail()),
            DrillEvent::Failback(s) => rec(&s.to, "failback", s.detail()),
        }
    }
}

impl Switch {
    fn detail(&self) -> String {
        format!(
            "{} -> {}; lift measured {} ms to detect and {} ms to move from the first failing probe",
            self.from,
            self.to,
            self.time_to_detect.as_millis(),
            self.time_to_failover.as_millis()
        )
    }
}

/// The event of one orchestrator record.
pub(crate) fn switch_event(record: &FailoverRecord) -> DrillEvent {
    let switch = Switch {
        from: record.from.clone(),
        to: record.to.clone(),
        at: record.traffic_moved_at,
        time_to_detect: record.time_to_detect,
        time_to_failover: record.time_to_failover,
    };
    match record.kind {
        SwitchKind::FailOver => DrillEvent::Failover(switch),
        SwitchKind::FailBack => DrillEvent::Failback(switch),
    }
}

/// Sends each region's state changes, at the instants the monitor gives, until `stop`.
pub(crate) async fn watch_health(
    mut health: watch::Receiver<HealthSnapshot>,
    events: mpsc::UnboundedSender<DrillEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut previous: BTreeMap<String, HealthState> =
        health.borrow_and_update().regions.iter().map(|r| (r.region.clone(), r.state)).collect();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            changed = health.changed() => if changed.is_err() { return },
        }
        let snapshot = health.borrow_and_update().clone();
        for status in &snapshot.regions {
            if previous.insert(status.region.clone(), status.state) == Some(status.state) {
                continue;
            }
            let region = status.region.clone();
            let event = match status.state {
                HealthState::Unhealthy => DrillEvent::RegionDown {
                    region,
                    at: status.down_since.unwrap_or_else(Instant::now),
                    failing_since: status.failing_since,
                    detail: match status.declared_by {
                        Some(lift::disaster::DetectedBy::Requests) => format!(
                            "requests failed in a row, confirmed by an immediate probe; {}",
                            status.last_error.as_deref().unwrap_or("no error recorded")
                        ),
                        _ => format!(
                            "{} failing probe rounds in a row; {}",
                            status.consecutive_failures,
                            status.last_error.as_deref().unwrap_or("no error recorded")
                        ),
                    },
                },
                HealthState::Healthy => DrillEvent::RegionUp {
                    region,
                    at: status.up_since.unwrap_or_else(Instant::now),
                    detail: format!("{} passing probe rounds in a row", status.consecutive_successes),
                },
                HealthState::Unknown => DrillEvent::RegionUnknown { region, at: Instant::now() },
            };
            let _ = events.send(event);
        }
    }
}
