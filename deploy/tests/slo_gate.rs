//! The rollout's SLO gate over EMF documents shaped as Lift's metrics layer writes them: a
//! burn rate proven with 99% confidence fails, a clean canary passes, one error among a
//! handful of requests is not yet a verdict, and a bad version is never judged healthy.

use std::sync::Arc;

use lift_deploy::rollout::{BoxFuture, MetricSource, SloGate, Verdict};
use lift_monitoring::emf::EmfDocument;
use lift_monitoring::slo::SloFile;
use proptest::prelude::*;

const SLOS: &str = r#"
[service]
name = "payments"
namespace = "Payments"

[[slo]]
name = "availability"
kind = "availability"
objective = 99.9

[[slo]]
name = "latency"
kind = "latency"
objective = 99.0
threshold_ms = 300
"#;

struct NoSource;

impl MetricSource for NoSource {
    fn documents<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: i64,
    ) -> BoxFuture<'a, Result<Vec<EmfDocument>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn gate() -> SloGate {
    SloGate::new(SloFile::parse(SLOS).unwrap(), Arc::new(NoSource)).min_requests(10)
}

fn doc(error: bool, latency_ms: f64) -> EmfDocument {
    let line = serde_json::json!({
        "_aws": {"Timestamp": 1_764_720_000_000_i64, "CloudWatchMetrics": [{
            "Namespace": "Payments", "Dimensions": [[]],
            "Metrics": [{"Name": "Requests", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}, {"Name": "5xx", "Unit": "Count"}]
        }]},
        "Requests": 1.0, "Latency": latency_ms, "5xx": if error { 1.0 } else { 0.0 },
    });
    EmfDocument::parse(&line.to_string()).unwrap().unwrap()
}

fn docs(total: usize, errors: usize, slow: usize) -> Vec<EmfDocument> {
    (0..total).map(|i| doc(i < errors, if i < slow { 450.0 } else { 20.0 })).collect()
}

#[test]
fn a_clean_canary_passes_and_a_fifth_failing_fails() {
    assert_eq!(gate().judge(&docs(50, 0, 0)).verdict, Verdict::Pass);
    let bad = gate().judge(&docs(20, 4, 0));
    assert_eq!(bad.verdict, Verdict::Fail, "{bad:?}");
    assert!(bad.detail.contains("availability: 4/20 bad"), "{}", bad.detail);
}

#[test]
fn one_error_among_a_handful_is_not_a_verdict_yet_and_more_good_requests_clear_it() {
    let one = gate().judge(&docs(11, 1, 0));
    assert_eq!(one.verdict, Verdict::NoData, "{one:?}");
    assert!(one.detail.contains("not yet conclusive"), "{}", one.detail);
    // The same error among 100 requests is a 1% rate: under 14.4 × 0.1%.
    assert_eq!(gate().judge(&docs(100, 1, 0)).verdict, Verdict::Pass);
    // Observed alone (no confidence), one in 11 would have failed it.
    assert_eq!(gate().confidence_z(0.0).judge(&docs(11, 1, 0)).verdict, Verdict::Fail);
}

#[test]
fn slow_requests_fail_the_latency_slo_and_fewer_than_the_minimum_decide_nothing() {
    let slow = gate().judge(&docs(20, 0, 20));
    assert_eq!(slow.verdict, Verdict::Fail);
    assert!(slow.detail.contains("latency: 20/20 bad"), "{}", slow.detail);
    assert_eq!(gate().judge(&docs(9, 9, 9)).verdict, Verdict::NoData, "9 requests are under the minimum");
    assert_eq!(gate().judge(&[]).verdict, Verdict::NoData);
}

#[test]
fn documents_of_another_namespace_or_dimension_set_are_not_evidence() {
    let other = serde_json::json!({
        "_aws": {"Timestamp": 1_764_720_000_000_i64, "CloudWatchMetrics": [{
            "Namespace": "Other", "Dimensions": [[]],
            "Metrics": [{"Name": "Requests"}, {"Name": "5xx"}]
        }]},
        "Requests": 1.0, "5xx": 1.0,
    });
    let docs: Vec<EmfDocument> =
        (0..50).map(|_| EmfDocument::parse(&other.to_string()).unwrap().unwrap()).collect();
    assert_eq!(gate().judge(&docs).verdict, Verdict::NoData);
}

/// A limit no version can reach (more than every request bad) would pass one that fails every
/// request: the gate fails instead, and says how to fix it. With the workbook's alert rules an
/// SLO file cannot pair such an objective with 14.4; with alert rules of its own it can.
#[test]
fn a_burn_rate_no_version_can_reach_fails_rather_than_passing_everything() {
    let p90 = SloFile::parse(
        r#"
[service]
name = "payments"
namespace = "Payments"

[[alert]]
name = "ticket"
severity = "ticket"
burn_rate = 2
long_window = "6h"
short_window = "30m"

[[slo]]
name = "latency"
kind = "latency"
objective = 90.0
threshold_ms = 300
"#,
    )
    .unwrap();
    let p90_gate = SloGate::new(p90, Arc::new(NoSource)).min_requests(10);
    let every_request_slow = p90_gate.judge(&docs(100, 0, 100));
    assert_eq!(every_request_slow.verdict, Verdict::Fail, "{every_request_slow:?}");
    assert!(every_request_slow.detail.contains("set max_burn below 10.0"), "{}", every_request_slow.detail);
    // Reachable again below 1 / budget: a clean canary passes, a slow one fails on evidence.
    let p90_gate = p90_gate.max_burn(5.0);
    assert_eq!(p90_gate.judge(&docs(100, 0, 0)).verdict, Verdict::Pass);
    assert!(p90_gate.judge(&docs(100, 0, 100)).detail.contains("latency: 100/100 bad"));
    // The same for a limit set too high on the 99.9% SLO: 1000 x 0.1% is every request.
    let failing_all = gate().max_burn(1000.0).judge(&docs(50, 50, 0));
    assert_eq!(failing_all.verdict, Verdict::Fail, "{failing_all:?}");
    assert!(failing_all.detail.contains("availability: a burn rate of 1000"), "{}", failing_all.detail);
}

proptest! {
    /// A version whose every request fails, or whose observed rate is above the limit, is
    /// never judged healthy, however many requests; one with no bad request always passes
    /// once the minimum is met.
    #[test]
    fn a_bad_version_never_passes_and_a_clean_one_never_fails(total in 10usize..400, bad_share in 0.0f64..1.0) {
        let errors = (total as f64 * bad_share).round() as usize;
        let reading = gate().judge(&docs(total, errors, 0));
        let limit = 14.4 * 0.001;
        if errors as f64 / total as f64 > limit {
            prop_assert_ne!(reading.verdict, Verdict::Pass, "{:?}", reading);
        }
        if errors == 0 {
            prop_assert_eq!(reading.verdict, Verdict::Pass);
        }
    }
}
