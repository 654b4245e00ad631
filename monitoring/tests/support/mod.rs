//! Shared by the integration tests: synthetic EMF streams in lift's format.

#![allow(dead_code, unreachable_pub)]

use lift_monitoring::evaluator::{AlertState, Report, Transition};
use lift_monitoring::slo::SloFile;

/// 2026-01-01T00:00:00Z, a minute boundary.
pub const T0_MS: i64 = 1_767_225_600_000;

/// The start of minute `m` of a series.
pub fn minute(m: i64) -> i64 {
    T0_MS + m * 60_000
}

/// One request's EMF document as lift's metrics layer writes it: `Requests`, `Latency`,
/// `4xx`, `5xx`, published under each of `sets` (dimension keys), with `dims` values.
pub fn request_doc(
    ts_ms: i64,
    sets: &[&[&str]],
    dims: &[(&str, &str)],
    server_error: bool,
    latency_ms: f64,
) -> String {
    let sets: Vec<Vec<&str>> = sets.iter().map(|s| s.to_vec()).collect();
    let mut doc = serde_json::json!({
        "_aws": {
            "Timestamp": ts_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Payments",
                "Dimensions": sets,
                "Metrics": [
                    {"Name": "Requests", "Unit": "Count"},
                    {"Name": "Latency", "Unit": "Milliseconds"},
                    {"Name": "4xx", "Unit": "Count"},
                    {"Name": "5xx", "Unit": "Count"}
                ]
            }]
        },
        "Requests": 1.0,
        "Latency": latency_ms,
        "4xx": 0.0,
        "5xx": if server_error { 1.0 } else { 0.0 },
    });
    for (k, v) in dims {
        doc[*k] = serde_json::Value::from(*v);
    }
    doc.to_string()
}

/// `per_minute` requests in each minute of `minutes`, the first `errors(m)` of minute `m`
/// answered 5xx, spread 500 ms apart from the minute's start, service-wide (dimension set `[]`).
pub fn series(
    minutes: std::ops::RangeInclusive<i64>,
    per_minute: i64,
    errors: impl Fn(i64) -> i64,
) -> Vec<String> {
    let mut lines = Vec::new();
    for m in minutes {
        let bad = errors(m);
        for k in 0..per_minute {
            lines.push(request_doc(minute(m) + k * 500, &[&[]], &[], k < bad, 20.0));
        }
    }
    lines
}

/// An SLO file: `[service]` for namespace Payments, then `body`.
pub fn slo_file(body: &str) -> SloFile {
    SloFile::parse(&format!("[service]\nname = \"payments\"\nnamespace = \"Payments\"\n{body}")).unwrap()
}

/// Feeds the lines to a fresh evaluator in order and reports.
pub fn evaluate(file: SloFile, lines: &[String]) -> Report {
    let mut evaluator = lift_monitoring::evaluator::Evaluator::new(file);
    for line in lines {
        assert!(evaluator.observe_line(line).unwrap(), "not an EMF document: {line}");
    }
    evaluator.finish()
}

/// The transitions as (minute of the series, alert, state), for comparing with hand arithmetic.
pub fn timeline(transitions: &[Transition]) -> Vec<(i64, String, AlertState)> {
    transitions
        .iter()
        .map(|t| {
            assert_eq!((t.at_ms - T0_MS) % 60_000, 0, "transitions happen at minute boundaries");
            ((t.at_ms - T0_MS) / 60_000, t.alert.clone(), t.state)
        })
        .collect()
}
