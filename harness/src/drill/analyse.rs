//! The analyse stage: from what the other stages observed to the [`DrillReport`], built
//! once.

use std::collections::BTreeMap;
use std::time::Instant;

use super::assert::{evaluate, Figures};
use super::events::DrillEvent;
use super::inject::Applied;
use super::metrics::{percentile, OpRecord, Recorder, Sample};
use super::report::{DrillReport, FaultReport, LagSummary, Totals, WriteCheck};
use super::scenario::{FaultKind, ReplicationMode, Scenario};

/// Everything the stages observed.
pub(crate) struct Observed<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) recorder: &'a Recorder,
    pub(crate) started_at_unix: f64,
    pub(crate) load_end: Instant,
    pub(crate) final_primary: String,
    pub(crate) applied: Vec<Applied>,
    pub(crate) events: Vec<DrillEvent>,
    pub(crate) writes: WriteCheck,
    pub(crate) lags_ms: Vec<f64>,
    pub(crate) unseen_heartbeats: u64,
    pub(crate) samples: Vec<Sample>,
    /// What drove the load, for the report.
    pub(crate) target: String,
}

/// The report of a drill, its assertions evaluated.
pub(crate) fn analyse(o: Observed<'_>) -> DrillReport {
    let s = o.scenario;
    let records = o.recorder.records();
    let ms = |at: Instant| o.recorder.ms(at);
    let windows = fault_windows(&o.applied, &o.events, &records, o.recorder, o.load_end);
    let failovers = o.events.iter().filter(|e| matches!(e, DrillEvent::Failover(_))).count() as u32;
    let mut events: Vec<_> = o.events.iter().map(|e| e.record(ms)).collect();
    events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    let replication_lag = lag_summary(&o.lags_ms, o.unseen_heartbeats);
    let totals = totals(&records, o.recorder.started_count(), o.recorder.shed_count());
    let figures = Figures {
        time_to_failover_ms: windows.headline.1,
        time_to_detect_ms: windows.headline.0,
        final_primary: &o.final_primary,
        errors_in_window: windows.errors,
        writes: &o.writes,
        max_lag_ms: replication_lag.max_ms,
        success_rate: totals.success_rate,
        failovers,
    };
    let assertions = evaluate(&s.assertions, &figures);
    DrillReport {
        scenario: s.name.clone(),
        description: s.description.clone(),
        started_at_unix: o.started_at_unix,
        duration_secs: o.load_end.duration_since(o.recorder.start()).as_secs_f64(),
        regions: s.regions.iter().map(|r| r.name.clone()).collect(),
        initial_primary: s.primary().to_owned(),
        final_primary: o.final_primary.clone(),
        failover_enabled: s.failover.enabled,
        replication: match s.failover.replication {
            ReplicationMode::Sync => "sync".into(),
            ReplicationMode::Async => "async".into(),
        },
        target: o.target,
        totals,
        faults: windows.reports,
        events,
        failovers,
        time_to_detect_ms: windows.headline.0,
        time_to_failover_ms: windows.headline.1,
        errors_in_window: windows.errors,
        writes: o.writes,
        replication_lag,
        passed: assertions.iter().all(|a| a.passed),
        assertions,
        samples: o.samples,
    }
}

/// What the faults caused.
struct Windows {
    reports: Vec<FaultReport>,
    /// Detect and failover times of the headline fault.
    headline: (Option<f64>, Option<f64>),
    /// Errors in the union of the fault windows, each counted once.
    errors: u64,
}

/// Whether a fault kind is expected to move traffic when it hits the active region.
fn moves_traffic(kind: FaultKind) -> bool {
    !matches!(kind, FaultKind::Partition)
}

fn fault_windows(
    applied: &[Applied],
    events: &[DrillEvent],
    records: &[OpRecord],
    recorder: &Recorder,
    end: Instant,
) -> Windows {
    let end_ms = recorder.ms(end);
    let mut windows = Vec::new();
    let mut reports = Vec::new();
    let mut headline: Option<(Option<f64>, Option<f64>, bool)> = None;
    for fault in applied {
        let injected_ms = recorder.ms(fault.injected);
        let healed_ms = fault.healed.map(|h| recorder.ms(h));
        let window_end = healed_ms.unwrap_or(end_ms);
        windows.push((injected_ms, window_end));
        // A detection or a failover belongs to the latest fault on that region before it:
        // a mild fault that was absorbed does not take the credit for a later storm's.
        let until_ms = applied
            .iter()
            .filter(|other| other.spec.region == fault.spec.region)
            .map(|other| recorder.ms(other.injected))
            .filter(|t| *t > injected_ms)
            .fold(f64::INFINITY, f64::min);
        let detected = events.iter().find_map(|e| match e {
            DrillEvent::RegionDown { region, at, .. } if *region == fault.spec.region => {
                let t = recorder.ms(*at);
                (t >= injected_ms && t < until_ms).then_some(t)
            }
            _ => None,
        });
        let was_active = fault.active_at_injection == fault.spec.region;
        // Each operation counts for the region it called.
        let first_elsewhere = records
            .iter()
            .filter(|r| {
                was_active
                    && r.ok
                    && r.start_ms >= injected_ms
                    && r.start_ms < until_ms
                    && r.region.as_deref() != Some(fault.spec.region.as_str())
            })
            .min_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        let in_window: Vec<&OpRecord> =
            records.iter().filter(|r| r.end_ms >= injected_ms && r.end_ms <= window_end).collect();
        let item = FaultReport {
            kind: fault.spec.kind.name().into(),
            region: fault.spec.region.clone(),
            action: fault.action.clone(),
            injected_at_ms: injected_ms,
            healed_at_ms: healed_ms,
            detected_at_ms: detected,
            time_to_detect_ms: detected.map(|d| d - injected_ms),
            failed_over_to: first_elsewhere.and_then(|r| r.region.clone()),
            failed_over_at_ms: first_elsewhere.map(|r| r.start_ms),
            time_to_failover_ms: first_elsewhere.map(|r| r.start_ms - injected_ms),
            ops_in_window: in_window.len() as u64,
            errors_in_window: in_window.iter().filter(|r| !r.ok).count() as u64,
        };
        // The headline is the first fault that moved traffic, else the first that should have.
        let moved = item.failed_over_to.is_some();
        if (moved && !headline.is_some_and(|(_, _, m)| m))
            || (headline.is_none() && was_active && moves_traffic(fault.spec.kind))
        {
            headline = Some((item.time_to_detect_ms, item.time_to_failover_ms, moved));
        }
        reports.push(item);
    }
    let errors = records
        .iter()
        .filter(|r| !r.ok && windows.iter().any(|(from, to)| r.end_ms >= *from && r.end_ms <= *to))
        .count() as u64;
    Windows { reports, headline: headline.map_or((None, None), |(d, f, _)| (d, f)), errors }
}

fn totals(records: &[OpRecord], started: u64, shed: u64) -> Totals {
    let mut latencies: Vec<f64> = records.iter().map(OpRecord::latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let ok = records.iter().filter(|r| r.ok).count() as u64;
    let mut errors_by_class = BTreeMap::new();
    let mut ok_by_region = BTreeMap::new();
    for r in records {
        match (&r.error, r.ok) {
            (Some(class), false) => *errors_by_class.entry(class.clone()).or_insert(0) += 1,
            (_, true) => *ok_by_region.entry(r.region.clone().unwrap_or_default()).or_insert(0) += 1,
            _ => {}
        }
    }
    Totals {
        started,
        completed: records.len() as u64,
        ok,
        errors: records.len() as u64 - ok,
        timeouts: errors_by_class.get("timeout").copied().unwrap_or(0),
        shed,
        success_rate: if records.is_empty() { 0.0 } else { ok as f64 / records.len() as f64 },
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        errors_by_class,
        ok_by_region,
    }
}

fn lag_summary(lags: &[f64], unseen: u64) -> LagSummary {
    let mut sorted = lags.to_vec();
    sorted.sort_by(f64::total_cmp);
    LagSummary {
        source: format!(
            "heartbeats every 250 ms in the active region, looked for in the others every 50 ms{}",
            if unseen > 0 {
                format!("; {unseen} never arrived, counted at their age")
            } else {
                String::new()
            }
        ),
        samples: sorted.len() as u64,
        max_ms: sorted.last().copied(),
        p99_ms: percentile(&sorted, 0.99),
        p50_ms: percentile(&sorted, 0.5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::FaultSpec;

    fn op(start: f64, region: &str, ok: bool) -> OpRecord {
        OpRecord {
            start_ms: start,
            end_ms: start + 5.0,
            kind: "put".into(),
            region: Some(region.into()),
            ok,
            error: None,
        }
    }

    #[test]
    fn detection_and_failover_are_attributed_to_the_region_hit() {
        let recorder = Recorder::new(Instant::now());
        let spec: FaultSpec =
            toml::from_str("at = \"1s\"\nkind = \"region_outage\"\nregion = \"a\"").unwrap();
        let applied = vec![Applied {
            spec,
            action: String::new(),
            injected: recorder.at(1_000.0),
            healed: Some(recorder.at(5_000.0)),
            active_at_injection: "a".into(),
        }];
        let down = |region: &str, ms: f64| DrillEvent::RegionDown {
            region: region.into(),
            at: recorder.at(ms),
            detail: String::new(),
        };
        // b going down first must not count as a's detection; a's own event does.
        let events = vec![down("b", 1_200.0), down("a", 2_500.0)];
        let records = vec![
            op(1_100.0, "a", false),
            // An operation that called a (and succeeded late) is not a failover.
            op(1_500.0, "a", true),
            op(3_000.0, "b", true),
        ];
        let w = fault_windows(&applied, &events, &records, &recorder, recorder.at(10_000.0));
        let f = &w.reports[0];
        assert_eq!(f.detected_at_ms.map(f64::round), Some(2_500.0));
        assert_eq!(f.failed_over_to.as_deref(), Some("b"));
        assert_eq!(f.time_to_failover_ms.map(f64::round), Some(2_000.0));
        assert_eq!(w.errors, 1);
        assert_eq!(w.headline.0.map(f64::round), Some(1_500.0));
    }
}
