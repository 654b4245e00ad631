//! The analyse stage: from what the other stages observed to the [`DrillReport`], built
//! once.

use std::collections::BTreeMap;
use std::time::Instant;

use super::assert::{evaluate, Figures};
use super::events::{DrillEvent, Switch};
use super::inject::Applied;
use super::metrics::{percentile, OpRecord, Recorder, Sample};
use super::report::{DrillReport, FaultReport, LagSummary, SwitchReport, Totals, WriteCheck};
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
    /// The load's DynamoDB traffic, priced.
    pub(crate) cost: Option<super::report::DrillCost>,
}

/// The report of a drill, its assertions evaluated.
pub(crate) fn analyse(o: Observed<'_>) -> DrillReport {
    let s = o.scenario;
    let records = o.recorder.records();
    let ms = |at: Instant| o.recorder.ms(at);
    let a = attribute(&o.applied, &o.events, &records, o.recorder, o.load_end);
    let mut events: Vec<_> = o.events.iter().map(|e| e.record(ms)).collect();
    events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms).then_with(|| a.kind.cmp(&b.kind)));
    let replication_lag = lag_summary(&o.lags_ms, o.unseen_heartbeats);
    let totals = totals(&records, o.recorder.started_count(), o.recorder.shed_count());
    let failovers = a.switches.iter().filter(|s| s.kind == "failover").count() as u32;
    let failbacks = a.switches.iter().filter(|s| s.kind == "failback").count() as u32;
    let figures = Figures {
        faults: &a.reports,
        final_primary: &o.final_primary,
        errors_in_window: a.errors,
        writes: &o.writes,
        max_lag_ms: replication_lag.max_ms,
        success_rate: totals.success_rate,
        failovers,
        failbacks,
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
        time_to_detect_ms: worst(&a.reports, |f| f.detect_bound, |f| f.time_to_detect_ms),
        time_to_failover_ms: worst(&a.reports, |f| f.failover_bound, |f| f.time_to_failover_ms),
        faults: a.reports,
        events,
        failovers,
        failbacks,
        switches: a.switches,
        errors_in_window: a.errors,
        writes: o.writes,
        replication_lag,
        passed: assertions.iter().all(|a| a.passed),
        assertions,
        samples: o.samples,
        cost: o.cost,
    }
}

/// The worst figure over the faults `bound` selects: `None` when one of them has none, or
/// none is selected.
pub(crate) fn worst(
    faults: &[FaultReport],
    bound: impl Fn(&FaultReport) -> bool,
    figure: impl Fn(&FaultReport) -> Option<f64>,
) -> Option<f64> {
    let mut bound_faults = faults.iter().filter(|f| bound(f)).peekable();
    bound_faults.peek()?;
    bound_faults.map(figure).try_fold(f64::NEG_INFINITY, |worst, v| v.map(|v| worst.max(v)))
}

/// What the faults caused, each from the events of its own region.
struct Attribution {
    /// One per fault, in the order they were injected (region and kind break ties).
    reports: Vec<FaultReport>,
    /// Every move of traffic, in order.
    switches: Vec<SwitchReport>,
    /// Errors in the union of the fault windows, each counted once.
    errors: u64,
}

/// An operation reads the router a moment after its start is recorded: one that started
/// this much before a switch may already have gone to the new region.
const SWITCH_SLACK_MS: f64 = 5.0;

/// Whether a fault kind is expected to move traffic when it hits the active region.
fn moves_traffic(kind: FaultKind) -> bool {
    !matches!(kind, FaultKind::Partition)
}

/// A fault that takes its region out whatever its settings: it must be detected, and
/// moved away from when it hits the region serving traffic. The others (latency,
/// throttling) may be absorbed, by design (a 30% throttle the SDK retries through).
fn is_hard(kind: FaultKind) -> bool {
    matches!(kind, FaultKind::RegionOutage | FaultKind::ProcessKill)
}

/// Attributes every region event and move of traffic to the fault it answers: the latest
/// fault injected into that region before it. Nothing depends on the order of `applied`.
fn attribute(
    applied: &[Applied],
    events: &[DrillEvent],
    records: &[OpRecord],
    recorder: &Recorder,
    end: Instant,
) -> Attribution {
    let end_ms = recorder.ms(end);
    let mut applied: Vec<&Applied> = applied.iter().collect();
    applied.sort_by(|a, b| {
        a.injected
            .cmp(&b.injected)
            .then_with(|| a.spec.region.cmp(&b.spec.region))
            .then_with(|| a.spec.kind.name().cmp(b.spec.kind.name()))
            .then_with(|| a.spec.name.cmp(&b.spec.name))
    });
    let mut switches: Vec<(&Switch, bool)> = events
        .iter()
        .filter_map(|e| match e {
            DrillEvent::Failover(s) => Some((s, true)),
            DrillEvent::Failback(s) => Some((s, false)),
            _ => None,
        })
        .collect();
    switches.sort_by_key(|(s, _)| s.at);
    // The fault of `region` a moment belongs to: the latest injected there at or before it.
    let owner = |region: &str, t_ms: f64| -> Option<usize> {
        applied
            .iter()
            .enumerate()
            .filter(|(_, f)| f.spec.region == region && recorder.ms(f.injected) <= t_ms)
            .map(|(i, _)| i)
            .next_back()
    };
    let mut windows = Vec::new();
    let mut reports = Vec::new();
    for (i, fault) in applied.iter().enumerate() {
        let region = fault.spec.region.as_str();
        let injected_ms = recorder.ms(fault.injected);
        let healed_ms = fault.healed.map(|h| recorder.ms(h));
        let window_end = healed_ms.unwrap_or(end_ms);
        windows.push((injected_ms, window_end));
        let owned = |t_ms: f64| owner(region, t_ms) == Some(i);
        // Region state changes of this region, in time order.
        let mut states: Vec<(f64, bool, Option<f64>)> = events
            .iter()
            .filter_map(|e| match e {
                DrillEvent::RegionDown { region: r, at, failing_since, .. } if r == region => {
                    Some((recorder.ms(*at), false, failing_since.map(|f| recorder.ms(f))))
                }
                DrillEvent::RegionUp { region: r, at, .. } if r == region => {
                    Some((recorder.ms(*at), true, None))
                }
                _ => None,
            })
            .collect();
        states.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Once the region is declared up after the heal, what follows is another incident.
        let recovered = healed_ms
            .and_then(|h| states.iter().find(|(t, up, _)| *up && *t >= h && owned(*t)).map(|(t, ..)| *t));
        let mine = |t_ms: f64| owned(t_ms) && recovered.is_none_or(|r| t_ms <= r);
        // Still held down from before: detected the moment it landed.
        let held_down = states.iter().rev().find(|(t, ..)| *t < injected_ms).is_some_and(|(_, up, _)| !up);
        let declared = states.iter().find(|(t, up, _)| !up && *t >= injected_ms && mine(*t));
        let (detected, from_probe) = match declared {
            _ if held_down => (Some(injected_ms), None),
            Some((t, _, failing)) => (Some(*t), failing.map(|f| t - f)),
            None => (None, None),
        };
        let failover = switches
            .iter()
            .find(|(s, over)| *over && s.from == region && mine(recorder.ms(s.at)))
            .map(|(s, _)| *s);
        let failed_back = healed_ms.and_then(|h| {
            switches
                .iter()
                .find(|(s, over)| {
                    !over && s.to == region && recorder.ms(s.at) >= h && owned(recorder.ms(s.at))
                })
                .map(|(s, _)| recorder.ms(s.at))
        });
        // The first success in the region traffic moved to, after the fault and the move
        // (traffic may have been there before, when the region was already held down): when
        // it ended, not when it was sent, so a slow first answer counts in full.
        let first_there = failover.and_then(|s| {
            let from_ms = injected_ms.max(recorder.ms(s.at) - SWITCH_SLACK_MS);
            records
                .iter()
                .filter(|r| r.ok && r.start_ms >= from_ms && r.region.as_deref() == Some(s.to.as_str()))
                .map(|r| r.end_ms)
                .min_by(f64::total_cmp)
        });
        // Each operation counts for the region it called.
        let in_window: Vec<&OpRecord> = records
            .iter()
            .filter(|r| {
                r.region.as_deref() == Some(region) && r.end_ms >= injected_ms && r.end_ms <= window_end
            })
            .collect();
        let was_active = fault.active_at_injection == region;
        let kind = fault.spec.kind;
        reports.push(FaultReport {
            name: fault.spec.name.clone(),
            kind: kind.name().into(),
            region: region.to_owned(),
            action: fault.action.clone(),
            active_at_injection: fault.active_at_injection.clone(),
            injected_at_ms: injected_ms,
            healed_at_ms: healed_ms,
            detected_at_ms: detected,
            time_to_detect_ms: detected.map(|d| d - injected_ms),
            time_to_detect_from_probe_ms: from_probe,
            switched_at_ms: failover.map(|s| recorder.ms(s.at)),
            failed_over_to: failover.map(|s| s.to.clone()),
            failed_over_at_ms: first_there,
            time_to_failover_ms: first_there.map(|t| t - injected_ms),
            recovered_at_ms: recovered,
            time_to_recover_ms: recovered.zip(healed_ms).map(|(r, h)| r - h),
            failed_back_at_ms: failed_back,
            ops_in_window: in_window.len() as u64,
            errors_in_window: in_window.iter().filter(|r| !r.ok).count() as u64,
            detect_bound: moves_traffic(kind) && (is_hard(kind) || detected.is_some()),
            failover_bound: moves_traffic(kind) && ((is_hard(kind) && was_active) || failover.is_some()),
        });
    }
    let switches = switches
        .iter()
        .map(|(s, over)| {
            let t = recorder.ms(s.at);
            let region = if *over { &s.from } else { &s.to };
            SwitchReport {
                kind: if *over { "failover" } else { "failback" }.into(),
                from: s.from.clone(),
                to: s.to.clone(),
                at_ms: t,
                lift_detect_ms: s.time_to_detect.as_secs_f64() * 1000.0,
                lift_switch_ms: s.time_to_failover.as_secs_f64() * 1000.0,
                fault: owner(region, t).map(|i| reports[i].label()),
            }
        })
        .collect();
    let errors = records
        .iter()
        .filter(|r| !r.ok && windows.iter().any(|(from, to)| r.end_ms >= *from && r.end_ms <= *to))
        .count() as u64;
    Attribution { reports, switches, errors }
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
    use std::time::Duration;

    use super::*;
    use crate::drill::report::AssertionResult;
    use crate::drill::{FaultSpec, Scenario};

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

    /// Operations every 100 ms in `[from, to)` against `region`.
    fn ops(from: f64, to: f64, region: &str, ok: bool) -> Vec<OpRecord> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            out.push(op(t, region, ok));
            t += 100.0;
        }
        out
    }

    fn fault(r: &Recorder, toml: &str, at: f64, heal: f64, active: &str) -> Applied {
        Applied {
            spec: toml::from_str(toml).unwrap(),
            action: String::new(),
            injected: r.at(at),
            healed: Some(r.at(heal)),
            active_at_injection: active.into(),
        }
    }

    fn down(r: &Recorder, region: &str, ms: f64, failing_ms: f64) -> DrillEvent {
        DrillEvent::RegionDown {
            region: region.into(),
            at: r.at(ms),
            failing_since: Some(r.at(failing_ms)),
            detail: String::new(),
        }
    }

    fn up(r: &Recorder, region: &str, ms: f64) -> DrillEvent {
        DrillEvent::RegionUp { region: region.into(), at: r.at(ms), detail: String::new() }
    }

    fn switch(r: &Recorder, failover: bool, from: &str, to: &str, ms: f64) -> DrillEvent {
        let s = Switch {
            from: from.into(),
            to: to.into(),
            at: r.at(ms),
            time_to_detect: Duration::from_millis(1_000),
            time_to_failover: Duration::from_millis(1_050),
        };
        if failover {
            DrillEvent::Failover(s)
        } else {
            DrillEvent::Failback(s)
        }
    }

    /// The attribution and the verdicts of `assertions` (an `[assertions]` body).
    fn judge(
        r: &Recorder,
        applied: &[Applied],
        events: &[DrillEvent],
        records: &[OpRecord],
        assertions: &str,
    ) -> (Attribution, Vec<AssertionResult>) {
        let a = attribute(applied, events, records, r, r.at(40_000.0));
        let bounds: crate::drill::Assertions = toml::from_str(assertions).unwrap();
        let writes = WriteCheck::default();
        let figures = Figures {
            faults: &a.reports,
            final_primary: "eu-west-1",
            errors_in_window: a.errors,
            writes: &writes,
            max_lag_ms: None,
            success_rate: 1.0,
            failovers: a.switches.iter().filter(|s| s.kind == "failover").count() as u32,
            failbacks: a.switches.iter().filter(|s| s.kind == "failback").count() as u32,
        };
        let verdicts = evaluate(&bounds, &figures);
        (a, verdicts)
    }

    fn verdict<'v>(verdicts: &'v [AssertionResult], name: &str) -> &'v AssertionResult {
        verdicts.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no verdict {name}: {verdicts:?}"))
    }

    /// All orders of `items`.
    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first.clone());
                out.push(tail);
            }
        }
        out
    }

    const OUTAGE: &str = "at = \"5s\"\nkind = \"region_outage\"\nregion = \"us-east-1\"";
    const STORM: &str =
        "name = \"storm\"\nat = \"12s\"\nkind = \"throttling\"\nregion = \"eu-west-1\"\nrate = 0.3";
    const FLAP_BOUNDS: &str = "max_detect_secs = 2.0\nmax_failover_secs = 2.0\nmin_failovers = 2\nmax_failovers = 2\nmin_failbacks = 1\nmax_failbacks = 1\n[fault.storm]\nfails_over = false";

    /// The reported run: us-east-1 flaps (two outages), eu-west-1 throttles in between
    /// while it serves, and the policy fails back to the healed us-east-1 during the
    /// throttling.
    fn flapping(r: &Recorder) -> (Vec<Applied>, Vec<DrillEvent>, Vec<OpRecord>) {
        let applied = vec![
            fault(r, OUTAGE, 5_000.0, 10_000.0, "us-east-1"),
            fault(r, STORM, 12_000.0, 20_000.0, "eu-west-1"),
            fault(r, &OUTAGE.replace("5s", "25s"), 25_000.0, 30_000.0, "us-east-1"),
        ];
        let events = vec![
            down(r, "us-east-1", 6_400.0, 5_100.0),
            switch(r, true, "us-east-1", "eu-west-1", 6_450.0),
            up(r, "us-east-1", 11_500.0),
            switch(r, false, "eu-west-1", "us-east-1", 16_000.0),
            down(r, "us-east-1", 26_400.0, 25_100.0),
            switch(r, true, "us-east-1", "eu-west-1", 26_480.0),
            up(r, "us-east-1", 31_500.0),
        ];
        let mut records = ops(0.0, 5_000.0, "us-east-1", true);
        records.extend(ops(5_000.0, 6_450.0, "us-east-1", false));
        records.extend(ops(6_500.0, 16_000.0, "eu-west-1", true));
        records.extend(ops(16_050.0, 25_000.0, "us-east-1", true));
        records.extend(ops(25_000.0, 26_480.0, "us-east-1", false));
        records.extend(ops(26_500.0, 40_000.0, "eu-west-1", true));
        (applied, events, records)
    }

    #[test]
    fn a_failback_during_another_regions_fault_is_a_failback_not_its_failover() {
        let r = Recorder::new(Instant::now());
        let (applied, events, records) = flapping(&r);
        let (a, verdicts) = judge(&r, &applied, &events, &records, FLAP_BOUNDS);
        let storm = a.reports.iter().find(|f| f.kind == "throttling").unwrap();
        assert_eq!(storm.failed_over_to, None, "{storm:?}");
        assert_eq!(
            (storm.switched_at_ms, storm.time_to_failover_ms, storm.detected_at_ms),
            (None, None, None)
        );
        assert!(!storm.detect_bound && !storm.failover_bound, "an absorbed throttle binds nothing");
        assert_eq!(storm.errors_in_window, 0, "us-east-1's failures are not eu-west-1's");
        let outages: Vec<&FaultReport> = a.reports.iter().filter(|f| f.kind == "region_outage").collect();
        for f in &outages {
            assert_eq!(f.time_to_detect_ms.map(f64::round), Some(1_400.0), "{f:?}");
            assert_eq!(f.time_to_detect_from_probe_ms.map(f64::round), Some(1_300.0), "{f:?}");
            // The first success in eu-west-1 is sent at 1.5 s and answered 5 ms later.
            assert_eq!(f.time_to_failover_ms.map(f64::round), Some(1_505.0), "{f:?}");
            assert_eq!(f.failed_over_to.as_deref(), Some("eu-west-1"));
            assert_eq!(f.time_to_recover_ms.map(f64::round), Some(1_500.0));
            assert!(f.detect_bound && f.failover_bound);
            assert!(f.errors_in_window > 10, "{f:?}");
        }
        assert_eq!(outages[0].failed_back_at_ms.map(f64::round), Some(16_000.0));
        assert_eq!(outages[1].failed_back_at_ms, None);
        let kinds: Vec<&str> = a.switches.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["failover", "failback", "failover"]);
        assert_eq!(a.switches[1].fault.as_deref(), Some("region_outage on us-east-1 at 5.0s"));
        assert_eq!(a.switches[2].fault.as_deref(), Some("region_outage on us-east-1 at 25.0s"));
        assert_eq!(
            worst(&a.reports, |f| f.detect_bound, |f| f.time_to_detect_ms).map(f64::round),
            Some(1_400.0)
        );
        assert_eq!(
            worst(&a.reports, |f| f.failover_bound, |f| f.time_to_failover_ms).map(f64::round),
            Some(1_505.0)
        );
        assert!(verdicts.iter().all(|v| v.passed), "{verdicts:#?}");
        assert_eq!(verdict(&verdicts, "max_detect_secs").actual, "1.40");
        assert_eq!(verdict(&verdicts, "fault.storm.fails_over").actual, "false");
    }

    #[test]
    fn reordering_the_faults_or_the_events_changes_no_figure() {
        let r = Recorder::new(Instant::now());
        let (applied, events, records) = flapping(&r);
        let (first, first_verdicts) = judge(&r, &applied, &events, &records, FLAP_BOUNDS);
        let figures = |a: &Attribution| serde_json::to_string(&(&a.reports, &a.switches, a.errors)).unwrap();
        let reference = figures(&first);
        let verdicts = |v: &[AssertionResult]| serde_json::to_string(v).unwrap();
        let mut reversed = events.clone();
        reversed.reverse();
        for order in permutations(&applied) {
            for events in [&events, &reversed] {
                let (a, v) = judge(&r, &order, events, &records, FLAP_BOUNDS);
                assert_eq!(
                    figures(&a),
                    reference,
                    "order {:?}",
                    order.iter().map(|f| f.spec.at).collect::<Vec<_>>()
                );
                assert_eq!(verdicts(&v), verdicts(&first_verdicts));
            }
        }
        // And a scenario file listing the faults in another order parses to the same timeline.
        let scenario = |faults: &[&str]| {
            let mut text = String::from("name = \"flap\"\n[[region]]\nname = \"us-east-1\"\n[[region]]\nname = \"eu-west-1\"\n[load]\nrate = 10\nduration = \"40s\"\n");
            for f in faults {
                text.push_str(&format!("[[fault]]\n{f}\n"));
            }
            text.push_str(&format!(
                "[assertions]\n{}\n",
                FLAP_BOUNDS.replace("[fault.", "[assertions.fault.")
            ));
            Scenario::parse(&text).unwrap()
        };
        let second = OUTAGE.replace("5s", "25s");
        let a = scenario(&[OUTAGE, STORM, &second]);
        let b = scenario(&[&second, STORM, OUTAGE]);
        let mut at_a: Vec<_> = a.faults.iter().map(|f| (f.at, f.region.clone())).collect();
        let mut at_b: Vec<_> = b.faults.iter().map(|f| (f.at, f.region.clone())).collect();
        at_a.sort();
        at_b.sort();
        assert_eq!(at_a, at_b);
    }

    #[test]
    fn every_bound_fault_is_held_to_the_bound() {
        let r = Recorder::new(Instant::now());
        let (applied, mut events, records) = flapping(&r);
        // The second outage is never moved away from: its failover is missing, whatever
        // the first one did.
        events.retain(|e| !matches!(e, DrillEvent::Failover(s) if s.at == r.at(26_480.0)));
        let (_, verdicts) = judge(&r, &applied, &events, &records, FLAP_BOUNDS);
        let failover = verdict(&verdicts, "max_failover_secs");
        assert!(!failover.passed && failover.actual == "none", "{failover:?}");
        assert!(
            failover.message.as_deref().unwrap().contains("at 25.0s did not move traffic"),
            "{failover:?}"
        );
        assert!(!verdict(&verdicts, "min_failovers").passed);
        // A second outage detected late fails the worst case, not hidden behind the first.
        let (applied, mut events, records) = flapping(&r);
        events[4] = down(&r, "us-east-1", 29_000.0, 27_500.0);
        let (_, verdicts) = judge(&r, &applied, &events, &records, FLAP_BOUNDS);
        let detect = verdict(&verdicts, "max_detect_secs");
        assert!(!detect.passed && detect.actual == "4.00", "{detect:?}");
        // A hard fault on a region not serving is still to be detected.
        let (mut applied, events, records) = flapping(&r);
        applied.push(fault(
            &r,
            "at = \"33s\"\nkind = \"region_outage\"\nregion = \"us-east-1\"",
            33_000.0,
            36_000.0,
            "eu-west-1",
        ));
        let (a, verdicts) = judge(&r, &applied, &events, &records, FLAP_BOUNDS);
        let late = a.reports.last().unwrap();
        assert!(late.detect_bound && !late.failover_bound, "{late:?}");
        assert!(!verdict(&verdicts, "max_detect_secs").passed);
        assert!(verdict(&verdicts, "max_failover_secs").passed);
        // A named fault's bounds are strict: the storm must not move traffic, and when it
        // does, that is its failover.
        let (applied, mut events, records) = flapping(&r);
        events[3] = switch(&r, true, "eu-west-1", "us-east-1", 16_000.0);
        let (a, verdicts) = judge(&r, &applied, &events, &records, FLAP_BOUNDS);
        assert_eq!(a.reports[1].failed_over_to.as_deref(), Some("us-east-1"));
        assert!(!verdict(&verdicts, "fault.storm.fails_over").passed);
        assert!(!verdict(&verdicts, "min_failbacks").passed);
    }

    #[test]
    fn an_absorbed_soft_fault_binds_nothing_but_a_scenario_must_move_somewhere() {
        let r = Recorder::new(Instant::now());
        let mild = "at = \"5s\"\nkind = \"throttling\"\nregion = \"us-east-1\"\nrate = 0.3";
        let storm = "at = \"25s\"\nkind = \"throttling\"\nregion = \"us-east-1\"";
        let applied = vec![
            fault(&r, mild, 5_000.0, 20_000.0, "us-east-1"),
            fault(&r, storm, 25_000.0, 35_000.0, "us-east-1"),
        ];
        let mut records = ops(0.0, 27_000.0, "us-east-1", true);
        records.extend(ops(27_100.0, 40_000.0, "eu-west-1", true));
        let events = vec![
            down(&r, "us-east-1", 26_500.0, 25_200.0),
            switch(&r, true, "us-east-1", "eu-west-1", 26_600.0),
        ];
        let bounds = "max_failover_secs = 10\nmax_detect_secs = 3\nmax_failovers = 1";
        let (a, verdicts) = judge(&r, &applied, &events, &records, bounds);
        assert!(!a.reports[0].failover_bound && a.reports[1].failover_bound);
        assert!(verdicts.iter().all(|v| v.passed), "{verdicts:#?}");
        // Nothing moved: the failover bound fails, naming no fault.
        let (_, verdicts) = judge(&r, &applied, &[], &records, bounds);
        let failover = verdict(&verdicts, "max_failover_secs");
        assert!(!failover.passed && failover.message.as_deref().unwrap().contains("no fault moved traffic"));
        assert!(!verdict(&verdicts, "max_detect_secs").passed);
    }

    #[test]
    fn a_fault_landing_on_a_region_held_down_and_an_incident_after_recovery_are_told_apart() {
        let r = Recorder::new(Instant::now());
        let partition = "at = \"10s\"\nkind = \"partition\"\nregion = \"us-east-1\"";
        let applied = vec![fault(&r, partition, 10_000.0, 30_000.0, "eu-west-1")];
        let events = vec![
            down(&r, "us-east-1", 7_400.0, 6_000.0),
            switch(&r, true, "us-east-1", "eu-west-1", 7_400.0),
            up(&r, "us-east-1", 31_000.0),
            switch(&r, false, "eu-west-1", "us-east-1", 32_000.0),
            down(&r, "us-east-1", 37_900.0, 36_500.0),
            switch(&r, true, "us-east-1", "eu-west-1", 37_900.0),
        ];
        let mut records = ops(7_500.0, 32_000.0, "eu-west-1", true);
        records.extend(ops(32_000.0, 37_900.0, "us-east-1", true));
        records.extend(ops(37_950.0, 40_000.0, "eu-west-1", true));
        let a = attribute(&applied, &events, &records, &r, r.at(40_000.0));
        let f = &a.reports[0];
        assert_eq!(f.time_to_detect_ms, Some(0.0), "held down when it landed");
        assert_eq!(f.failed_over_to, None, "the failover at 37.9 s came after us-east-1 recovered: {f:?}");
        assert_eq!(f.time_to_failover_ms, None);
        assert_eq!(f.failed_back_at_ms.map(f64::round), Some(32_000.0));
        assert!(!f.failover_bound && !f.detect_bound, "a partition binds neither");
        // A move made while traffic already served the new region: measured from the move.
        let outage = "at = \"10s\"\nkind = \"region_outage\"\nregion = \"us-east-1\"";
        let applied = vec![fault(&r, outage, 10_000.0, 20_000.0, "us-east-1")];
        let events = vec![
            down(&r, "us-east-1", 11_400.0, 10_100.0),
            switch(&r, true, "us-east-1", "eu-west-1", 11_400.0),
        ];
        let mut records = ops(10_050.0, 11_400.0, "us-east-1", false);
        records.extend(ops(11_420.0, 20_000.0, "eu-west-1", true));
        records.push(op(10_010.0, "eu-west-1", true));
        let a = attribute(&applied, &events, &records, &r, r.at(40_000.0));
        assert_eq!(a.reports[0].time_to_failover_ms.map(f64::round), Some(1_425.0), "{:?}", a.reports[0]);
    }

    /// The failover is timed to the first success's answer, not to when it was sent: a first
    /// request in the new region that takes 900 ms counts in full.
    #[test]
    fn failover_is_timed_to_the_first_answer() {
        let r = Recorder::new(Instant::now());
        let applied = vec![fault(&r, OUTAGE, 5_000.0, 20_000.0, "us-east-1")];
        let events = vec![
            down(&r, "us-east-1", 5_300.0, 5_100.0),
            switch(&r, true, "us-east-1", "eu-west-1", 5_300.0),
        ];
        let mut records = ops(5_000.0, 5_300.0, "us-east-1", false);
        let mut slow = op(5_310.0, "eu-west-1", true);
        slow.end_ms = 6_210.0;
        records.push(slow);
        records.extend(ops(6_300.0, 10_000.0, "eu-west-1", true));
        let (a, verdicts) = judge(&r, &applied, &events, &records, "max_failover_secs = 1.0");
        assert_eq!(a.reports[0].time_to_failover_ms.map(f64::round), Some(1_210.0), "{:?}", a.reports[0]);
        assert!(
            !verdict(&verdicts, "max_failover_secs").passed,
            "sent at 0.31 s, answered at 1.21 s: over 1 s"
        );
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
        // b going down first must not count as a's detection; a's own event does.
        let events = vec![
            down(&recorder, "b", 1_200.0, 1_000.0),
            down(&recorder, "a", 2_500.0, 1_500.0),
            switch(&recorder, true, "a", "b", 2_900.0),
        ];
        let records = vec![
            op(1_100.0, "a", false),
            // An operation that called a (and succeeded late) is not a failover.
            op(1_500.0, "a", true),
            op(3_000.0, "b", true),
        ];
        let w = attribute(&applied, &events, &records, &recorder, recorder.at(10_000.0));
        let f = &w.reports[0];
        assert_eq!(f.detected_at_ms.map(f64::round), Some(2_500.0));
        assert_eq!(f.failed_over_to.as_deref(), Some("b"));
        assert_eq!(
            f.time_to_failover_ms.map(f64::round),
            Some(2_005.0),
            "to the first answer, 5 ms after it was sent"
        );
        assert_eq!(w.errors, 1);
        assert_eq!(
            worst(&w.reports, |f| f.detect_bound, |f| f.time_to_detect_ms).map(f64::round),
            Some(1_500.0)
        );
    }
}
