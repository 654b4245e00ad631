//! The assert stage: each bound of the scenario against what the drill measured.

use super::report::{AssertionResult, FaultReport, WriteCheck};
use super::scenario::{Assertions, FaultAssertions};

/// The figures assertions bound.
pub(crate) struct Figures<'a> {
    /// Each fault's own figures.
    pub(crate) faults: &'a [FaultReport],
    pub(crate) final_primary: &'a str,
    pub(crate) errors_in_window: u64,
    pub(crate) writes: &'a WriteCheck,
    pub(crate) max_lag_ms: Option<f64>,
    pub(crate) success_rate: f64,
    pub(crate) failovers: u32,
    pub(crate) failbacks: u32,
}

/// The worst of `figure` over the faults `bound` selects, with the fault it belongs to;
/// `Err` names the reason there is none (no fault bound, or the first bound fault without
/// a figure).
fn worst_of(
    faults: &[FaultReport],
    bound: impl Fn(&FaultReport) -> bool,
    figure: impl Fn(&FaultReport) -> Option<f64>,
) -> Result<(f64, &FaultReport), Option<&FaultReport>> {
    let mut worst: Option<(f64, &FaultReport)> = None;
    for f in faults.iter().filter(|f| bound(f)) {
        let v = figure(f).ok_or(Some(f))?;
        if worst.is_none_or(|(w, _)| v > w) {
            worst = Some((v, f));
        }
    }
    worst.ok_or(None)
}

/// One verdict per bound set, in a fixed order.
pub(crate) fn evaluate(a: &Assertions, r: &Figures<'_>) -> Vec<AssertionResult> {
    let mut out = Vec::new();
    let mut check = |name: &str, limit: String, actual: String, passed: bool, why: Option<String>| {
        out.push(AssertionResult {
            name: name.into(),
            limit,
            actual,
            passed,
            message: if passed { None } else { why },
        });
    };
    if let Some(max) = a.max_failover_secs {
        let limit = format!("{max}");
        match worst_of(r.faults, |f| f.failover_bound, |f| f.time_to_failover_ms) {
            Ok((ms, f)) => check(
                "max_failover_secs",
                limit,
                format!("{:.2}", ms / 1000.0),
                ms / 1000.0 <= max,
                Some(format!("traffic reached {} {:.2}s after {}", to_of(f), ms / 1000.0, f.label())),
            ),
            Err(missing) => check(
                "max_failover_secs",
                limit,
                "none".into(),
                false,
                Some(match missing {
                    Some(f) => {
                        format!("{} did not move traffic (final primary {})", f.label(), r.final_primary)
                    }
                    None => format!(
                        "no failover: no fault moved traffic away from its region (final primary {})",
                        r.final_primary
                    ),
                }),
            ),
        }
    }
    if let Some(max) = a.max_detect_secs {
        let limit = format!("{max}");
        match worst_of(r.faults, |f| f.detect_bound, |f| f.time_to_detect_ms) {
            Ok((ms, f)) => check(
                "max_detect_secs",
                limit,
                format!("{:.2}", ms / 1000.0),
                ms / 1000.0 <= max,
                Some(format!("{} declared down after {:.2}s", f.label(), ms / 1000.0)),
            ),
            Err(missing) => check(
                "max_detect_secs",
                limit,
                "none".into(),
                false,
                Some(match missing {
                    Some(f) => format!("{}: the region was never declared down", f.label()),
                    None => "no faulted region was ever declared down".into(),
                }),
            ),
        }
    }
    if let Some(max) = a.max_errors_in_window {
        check(
            "max_errors_in_window",
            max.to_string(),
            r.errors_in_window.to_string(),
            r.errors_in_window <= max,
            Some(format!("{} operations failed between fault and heal", r.errors_in_window)),
        );
    }
    if let Some(max) = a.max_acknowledged_writes_lost {
        check(
            "max_acknowledged_writes_lost",
            max.to_string(),
            r.writes.lost.to_string(),
            r.writes.lost <= max,
            Some(format!("{} acknowledged writes missing in {}", r.writes.lost, r.writes.checked_in)),
        );
    }
    if let Some(max) = a.max_replication_lag_ms {
        let actual = r.max_lag_ms;
        check(
            "max_replication_lag_ms",
            max.to_string(),
            actual.map_or("none".into(), |v| format!("{v:.0}")),
            actual.is_some_and(|v| v <= max as f64),
            Some(actual.map_or("no heartbeat was measured".into(), |v| format!("lag reached {v:.0} ms"))),
        );
    }
    if let Some(min) = a.min_success_rate {
        check(
            "min_success_rate",
            format!("{min}"),
            format!("{:.4}", r.success_rate),
            r.success_rate >= min,
            Some(format!("{:.2}% of operations succeeded", r.success_rate * 100.0)),
        );
    }
    if let Some(max) = a.max_writes_missing_after_settle {
        let missing: u64 = r.writes.missing_by_region.values().sum();
        check(
            "max_writes_missing_after_settle",
            max.to_string(),
            missing.to_string(),
            missing <= max,
            Some(format!("{missing} acknowledged writes never reached the other regions")),
        );
    }
    if let Some(max) = a.max_writes_missing_in_primary_after_settle {
        let missing: u64 = r.writes.missing_in_primary_by_region.values().sum();
        check(
            "max_writes_missing_in_primary_after_settle",
            max.to_string(),
            missing.to_string(),
            missing <= max,
            Some(format!(
                "{missing} acknowledged writes held elsewhere never reached {}",
                r.writes.checked_in
            )),
        );
    }
    if let Some(max) = a.max_writes_missing_at_failover {
        let worst = r.writes.missing_at_failover.iter().max().copied();
        // A failover the watcher never saw is one not measured: its evidence is missing.
        let watched = r.writes.missing_at_failover.len() as u64 + r.writes.failovers_unmeasured;
        let unmeasured = r.writes.failovers_unmeasured + u64::from(r.failovers).saturating_sub(watched);
        let actual = match (worst, unmeasured) {
            (_, 1..) => format!("{unmeasured} failover(s) not measured"),
            (Some(n), 0) => n.to_string(),
            (None, 0) => "no failover".to_owned(),
        };
        check(
            "max_writes_missing_at_failover",
            max.to_string(),
            actual,
            unmeasured == 0 && worst.is_none_or(|n| n <= max),
            Some(if unmeasured > 0 {
                format!(
                    "{unmeasured} of {} failover(s): the new primary could not be read, or the failover was not watched",
                    r.failovers
                )
            } else {
                format!(
                    "acknowledged writes missing in the new primary when traffic moved: {:?}",
                    r.writes.missing_at_failover
                )
            }),
        );
    }
    if let Some(max) = a.max_degraded_writes {
        check(
            "max_degraded_writes",
            max.to_string(),
            r.writes.degraded.to_string(),
            r.writes.degraded <= max,
            Some(format!(
                "{} acknowledged operations were written to one region alone (no other was healthy)",
                r.writes.degraded
            )),
        );
    }
    if let Some(max) = a.max_failovers {
        check(
            "max_failovers",
            max.to_string(),
            r.failovers.to_string(),
            r.failovers <= max,
            Some(format!("{} failovers happened", r.failovers)),
        );
    }
    for (name, n, bound, at_least) in [
        ("min_failovers", r.failovers, a.min_failovers, true),
        ("max_failbacks", r.failbacks, a.max_failbacks, false),
        ("min_failbacks", r.failbacks, a.min_failbacks, true),
    ] {
        if let Some(bound) = bound {
            let what = if name.ends_with("failovers") { "failovers" } else { "failbacks" };
            check(
                name,
                bound.to_string(),
                n.to_string(),
                if at_least { n >= bound } else { n <= bound },
                Some(format!("{n} {what} happened")),
            );
        }
    }
    for (name, bounds) in &a.faults {
        match r.faults.iter().find(|f| f.name.as_deref() == Some(name.as_str())) {
            Some(f) => fault_bounds(&mut check, name, bounds, f),
            None => check(
                &format!("fault.{name}"),
                "injected".into(),
                "never".into(),
                false,
                Some(format!("the fault {name} was never injected")),
            ),
        }
    }
    out
}

fn to_of(f: &FaultReport) -> &str {
    f.failed_over_to.as_deref().unwrap_or("the new region")
}

/// The strict bounds of one named fault.
fn fault_bounds(
    check: &mut impl FnMut(&str, String, String, bool, Option<String>),
    name: &str,
    b: &FaultAssertions,
    f: &FaultReport,
) {
    let secs = |ms: Option<f64>| ms.map_or("none".into(), |ms| format!("{:.2}", ms / 1000.0));
    if let Some(max) = b.max_detect_secs {
        check(
            &format!("fault.{name}.max_detect_secs"),
            format!("{max}"),
            secs(f.time_to_detect_ms),
            f.time_to_detect_ms.is_some_and(|ms| ms / 1000.0 <= max),
            Some(match f.time_to_detect_ms {
                Some(ms) => format!("{} declared down after {:.2}s", f.label(), ms / 1000.0),
                None => format!("{}: the region was never declared down", f.label()),
            }),
        );
    }
    if let Some(max) = b.max_failover_secs {
        check(
            &format!("fault.{name}.max_failover_secs"),
            format!("{max}"),
            secs(f.time_to_failover_ms),
            f.time_to_failover_ms.is_some_and(|ms| ms / 1000.0 <= max),
            Some(match f.time_to_failover_ms {
                Some(ms) => format!("traffic reached {} {:.2}s after {}", to_of(f), ms / 1000.0, f.label()),
                None => format!("{} did not move traffic", f.label()),
            }),
        );
    }
    if let Some(max) = b.max_errors_in_window {
        check(
            &format!("fault.{name}.max_errors_in_window"),
            max.to_string(),
            f.errors_in_window.to_string(),
            f.errors_in_window <= max,
            Some(format!("{} operations that called {} failed in its window", f.errors_in_window, f.region)),
        );
    }
    if let Some(expected) = b.fails_over {
        let moved = f.switched_at_ms.is_some();
        check(
            &format!("fault.{name}.fails_over"),
            expected.to_string(),
            moved.to_string(),
            moved == expected,
            Some(if moved {
                format!("traffic moved away from {} after {}", f.region, f.label())
            } else {
                format!("traffic never moved away from {} after {}", f.region, f.label())
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(a: &Assertions, writes: &WriteCheck) -> AssertionResult {
        verdict_of(a, writes, writes.missing_at_failover.len() as u32 + writes.failovers_unmeasured as u32)
    }

    fn verdict_of(a: &Assertions, writes: &WriteCheck, failovers: u32) -> AssertionResult {
        let figures = Figures {
            faults: &[],
            final_primary: "b",
            errors_in_window: 0,
            writes,
            max_lag_ms: None,
            success_rate: 1.0,
            failovers,
            failbacks: 0,
        };
        let mut out = evaluate(a, &figures);
        assert_eq!(out.len(), 1, "{out:?}");
        out.remove(0)
    }

    /// The worst failover counts; none holds; one that could not be measured fails.
    #[test]
    fn writes_missing_at_failover_are_bounded_at_the_worst_failover() {
        let a = Assertions { max_writes_missing_at_failover: Some(0), ..Default::default() };
        let none = verdict(&a, &WriteCheck::default());
        assert!(none.passed && none.actual == "no failover", "{none:?}");
        let writes = WriteCheck { missing_at_failover: vec![0, 3], ..Default::default() };
        let worst = verdict(&a, &writes);
        assert!(!worst.passed && worst.actual == "3", "{worst:?}");
        let writes =
            WriteCheck { missing_at_failover: vec![0], failovers_unmeasured: 1, ..Default::default() };
        let unmeasured = verdict(&a, &writes);
        assert!(!unmeasured.passed && unmeasured.actual.contains("not measured"), "{unmeasured:?}");
        // Two failovers in the report, one watched: the other has no evidence.
        let writes = WriteCheck { missing_at_failover: vec![0], ..Default::default() };
        let unwatched = verdict_of(&a, &writes, 2);
        assert!(!unwatched.passed && unwatched.actual == "1 failover(s) not measured", "{unwatched:?}");
        assert!(verdict_of(&a, &writes, 1).passed);
    }

    #[test]
    fn both_directions_of_convergence_and_degraded_writes_have_bounds_of_their_own() {
        let writes = WriteCheck {
            missing_by_region: [("a".to_owned(), 0)].into(),
            missing_in_primary_by_region: [("a".to_owned(), 4)].into(),
            degraded: 2,
            ..Default::default()
        };
        let settle = Assertions { max_writes_missing_after_settle: Some(0), ..Default::default() };
        assert!(verdict(&settle, &writes).passed, "a lacks nothing the primary holds");
        let back = Assertions { max_writes_missing_in_primary_after_settle: Some(0), ..Default::default() };
        let back = verdict(&back, &writes);
        assert!(!back.passed && back.actual == "4", "{back:?}");
        let degraded = Assertions { max_degraded_writes: Some(1), ..Default::default() };
        assert!(!verdict(&degraded, &writes).passed);
    }
}
