//! The assert stage: each bound of the scenario against what the drill measured.

use super::report::{AssertionResult, WriteCheck};
use super::scenario::Assertions;

/// The figures assertions bound.
pub(crate) struct Figures<'a> {
    pub(crate) time_to_failover_ms: Option<f64>,
    pub(crate) time_to_detect_ms: Option<f64>,
    pub(crate) final_primary: &'a str,
    pub(crate) errors_in_window: u64,
    pub(crate) writes: &'a WriteCheck,
    pub(crate) max_lag_ms: Option<f64>,
    pub(crate) success_rate: f64,
    pub(crate) failovers: u32,
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
        match r.time_to_failover_ms {
            Some(ms) => check(
                "max_failover_secs",
                format!("{max}"),
                format!("{:.2}", ms / 1000.0),
                ms / 1000.0 <= max,
                Some(format!("traffic reached the new region {:.2}s after the fault", ms / 1000.0)),
            ),
            None => check(
                "max_failover_secs",
                format!("{max}"),
                "none".into(),
                false,
                Some(format!(
                    "no failover: traffic never succeeded outside the faulted region (final primary {})",
                    r.final_primary
                )),
            ),
        }
    }
    if let Some(max) = a.max_detect_secs {
        let actual = r.time_to_detect_ms.map(|ms| ms / 1000.0);
        check(
            "max_detect_secs",
            format!("{max}"),
            actual.map_or("none".into(), |v| format!("{v:.2}")),
            actual.is_some_and(|v| v <= max),
            Some(actual.map_or("the faulted region was never declared down".into(), |v| {
                format!("declared down after {v:.2}s")
            })),
        );
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
    if let Some(max) = a.max_failovers {
        check(
            "max_failovers",
            max.to_string(),
            r.failovers.to_string(),
            r.failovers <= max,
            Some(format!("{} failovers happened", r.failovers)),
        );
    }
    out
}
