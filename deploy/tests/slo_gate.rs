//! The rollout's SLO gate over EMF documents shaped as Lift's metrics layer writes them: a
//! burn rate proven too high with 99% confidence fails, one proven low enough passes, and
//! anything in between (a clean but small canary, one error among a handful of requests) is
//! not yet a verdict. Computed exactly over the binomial distribution: a version failing
//! twice the limit almost never passes, and a healthy one passes given enough requests.
//! Missing documents are not health: an SLO the new version's documents stop feeding (the
//! service-wide one, or one the old version still feeds) has no verdict.

mod support;

use std::sync::Arc;

use lift_deploy::rollout::{SloGate, Verdict};
use lift_monitoring::emf::EmfDocument;
use lift_monitoring::slo::SloFile;
use proptest::prelude::*;
use support::{availability_gate, NoSource};

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
fn a_clean_canary_passes_once_it_is_proof_and_a_fifth_failing_fails() {
    // The 99.9% SLO's limit is 14.4 x 0.1% = 1.44%: 455 clean requests put the upper bound
    // under it, 454 do not.
    assert_eq!(gate().requests_to_pass(), 455);
    let small = gate().judge(&docs(50, 0, 0));
    assert_eq!(small.verdict, Verdict::NoData, "50 clean requests prove nothing under 1.44%: {small:?}");
    assert!(small.detail.contains("a pass takes 455 requests"), "{}", small.detail);
    assert_eq!(gate().judge(&docs(454, 0, 0)).verdict, Verdict::NoData);
    let proven = gate().judge(&docs(455, 0, 0));
    assert_eq!(proven.verdict, Verdict::Pass, "{proven:?}");
    let bad = gate().judge(&docs(20, 4, 0));
    assert_eq!(bad.verdict, Verdict::Fail, "{bad:?}");
    assert!(bad.detail.contains("availability: 4/20 bad"), "{}", bad.detail);
}

#[test]
fn one_error_among_a_handful_is_not_a_verdict_yet_and_more_good_requests_clear_it() {
    let one = gate().judge(&docs(11, 1, 0));
    assert_eq!(one.verdict, Verdict::NoData, "{one:?}");
    assert!(one.detail.contains("not yet conclusive"), "{}", one.detail);
    // The same error among 100 requests is a 1% rate, under 14.4 × 0.1%, but a true rate of
    // up to 8% would show it as often: among 1000, it is proof.
    assert_eq!(gate().judge(&docs(100, 1, 0)).verdict, Verdict::NoData);
    assert_eq!(gate().judge(&docs(1000, 1, 0)).verdict, Verdict::Pass);
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
    assert_eq!(p90_gate.requests_to_pass(), 10, "a 50% limit is quickly proven: min_requests decides");
    assert_eq!(p90_gate.judge(&docs(100, 0, 0)).verdict, Verdict::Pass);
    assert!(p90_gate.judge(&docs(100, 0, 100)).detail.contains("latency: 100/100 bad"));
    // The same for a limit set too high on the 99.9% SLO: 1000 x 0.1% is every request.
    let failing_all = gate().max_burn(1000.0).judge(&docs(50, 50, 0));
    assert_eq!(failing_all.verdict, Verdict::Fail, "{failing_all:?}");
    assert!(failing_all.detail.contains("availability: a burn rate of 1000"), "{}", failing_all.detail);
}

proptest! {
    /// A version whose observed rate is above the limit is never judged healthy, however
    /// many requests; one with no bad request never fails, and passes once there are enough.
    #[test]
    fn a_bad_version_never_passes_and_a_clean_one_never_fails(
        total in 10u64..2000,
        bad_share in prop_oneof![Just(0.0), 0.0f64..0.05, 0.0f64..1.0],
    ) {
        let errors = (total as f64 * bad_share).round() as u64;
        let reading = availability_gate().judge(&[counted(total, errors)]);
        let limit = 14.4 * 0.001;
        if errors as f64 / total as f64 > limit {
            prop_assert_ne!(reading.verdict, Verdict::Pass, "{:?}", reading);
        }
        if errors == 0 {
            let expected = if total >= 455 { Verdict::Pass } else { Verdict::NoData };
            prop_assert_eq!(reading.verdict, expected, "{:?}", reading);
        }
    }
}

/// `requests` requests of which `bad` answered 5xx, in one document (the metrics layer may
/// aggregate; the gate sums whatever it is given).
fn counted(requests: u64, bad: u64) -> EmfDocument {
    let line = serde_json::json!({
        "_aws": {"Timestamp": 1_764_720_000_000_i64, "CloudWatchMetrics": [{
            "Namespace": "Payments", "Dimensions": [[]],
            "Metrics": [{"Name": "Requests", "Unit": "Count"}, {"Name": "5xx", "Unit": "Count"}]
        }]},
        "Requests": requests as f64, "5xx": bad as f64,
    });
    EmfDocument::parse(&line.to_string()).unwrap().unwrap()
}

/// ln P(X = k) for X ~ Binomial(n, p), 0 < p < 1.
fn ln_binomial(n: u64, k: u64, p: f64) -> f64 {
    let ln_choose: f64 = (0..k).map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln()).sum();
    ln_choose + k as f64 * p.ln() + (n - k) as f64 * (-p).ln_1p()
}

/// The probabilities that a reading of `n` requests from a version whose requests fail
/// independently at `rate` passes, and that it fails: the binomial distribution summed over
/// every bad count the gate judges so. Counts too improbable to matter (below 1e-18 each)
/// are not judged and are added to both, so neither is understated.
fn verdict_probabilities(gate: &SloGate, n: u64, rate: f64) -> (f64, f64) {
    let (mut pass, mut fail) = (0.0, 0.0);
    for bad in 0..=n {
        let p = ln_binomial(n, bad, rate).exp();
        if p < 1e-18 {
            pass += p;
            fail += p;
            // Past the mode every further count is less likely still.
            if bad as f64 > n as f64 * rate {
                pass += (n - bad) as f64 * p;
                fail += (n - bad) as f64 * p;
                break;
            }
            continue;
        }
        match gate.judge(&[counted(n, bad)]).verdict {
            Verdict::Pass => pass += p,
            Verdict::Fail => fail += p,
            Verdict::NoData => {}
        }
    }
    (pass, fail)
}

/// Every reading size from the minimum to 1000, then sparser to 6000: wherever a step ends,
/// its reading is one of these.
fn reading_sizes() -> impl Iterator<Item = u64> {
    (20..=1000).chain((1050..=6000).step_by(50))
}

#[test]
fn a_version_failing_at_twice_the_limit_passes_less_than_one_reading_in_a_hundred() {
    let gate = availability_gate();
    let limit = 14.4 * 0.001;
    for n in reading_sizes() {
        let (pass, _) = verdict_probabilities(&gate, n, 2.0 * limit);
        assert!(pass < 0.01, "at {n} requests a version failing 2.88% passes with probability {pass}");
        assert!(pass < 1e-5, "at {n} requests: {pass}, more than the README says");
    }
    // A version failing 5% of requests (a burn rate of 50) shows none bad among 20 requests
    // 36% of the time: that is no pass.
    let (pass, _) = verdict_probabilities(&gate, 20, 0.05);
    assert!(pass < 1e-6, "{pass}");
    assert_ne!(gate.judge(&[counted(20, 0)]).verdict, Verdict::Pass);
}

#[test]
fn a_version_failing_at_the_limit_passes_about_one_reading_in_two_hundred_at_most() {
    let gate = availability_gate();
    let worst = reading_sizes().map(|n| verdict_probabilities(&gate, n, 14.4 * 0.001).0).fold(0.0, f64::max);
    assert!(worst < 0.006, "the one-sided 99.5% bound let {worst} through");
}

#[test]
fn a_healthy_version_passes_given_enough_requests_and_is_not_failed() {
    let gate = availability_gate();
    // No bad request at all: a pass from 455 on, never before, never a failure.
    assert_eq!(gate.judge(&[counted(454, 0)]).verdict, Verdict::NoData);
    for n in [455, 500, 1000, 6000] {
        assert_eq!(gate.judge(&[counted(n, 0)]).verdict, Verdict::Pass, "{n}");
    }
    // Failing exactly at its budget (0.1%, a burn rate of 1): 99% of readings of 1000 pass,
    // nearly all of 1500; hardly any reading fails it, small or large.
    for (n, at_least) in [(1000, 0.99), (1500, 0.9999)] {
        let (pass, _) = verdict_probabilities(&gate, n, 0.001);
        assert!(pass > at_least, "a healthy version passes {pass} of readings of {n}");
    }
    for (n, at_most) in [(20, 1e-3), (100, 1e-6), (1000, 1e-12)] {
        let (_, fail) = verdict_probabilities(&gate, n, 0.001);
        assert!(fail < at_most, "a healthy version fails {fail} of readings of {n}");
    }
}

/// A service-wide availability SLO, and one for acme's requests to `/payments`.
const SCOPED_SLOS: &str = r#"
[service]
name = "payments"
namespace = "Payments"

[[slo]]
name = "availability"
kind = "availability"
objective = 99.9

[[slo]]
name = "acme-create-availability"
kind = "availability"
route = "/payments"
tenant = "acme"
objective = 99.9
"#;

/// `requests` clean requests under the dimension sets `sets` (`[]` is the service-wide one).
fn under(sets: serde_json::Value, requests: u64) -> EmfDocument {
    let line = serde_json::json!({
        "_aws": {"Timestamp": 1_764_720_000_000_i64, "CloudWatchMetrics": [{
            "Namespace": "Payments", "Dimensions": sets,
            "Metrics": [{"Name": "Requests", "Unit": "Count"}, {"Name": "5xx", "Unit": "Count"}]
        }]},
        "Route": "/payments", "Tenant": "acme", "Requests": requests as f64, "5xx": 0.0,
    });
    EmfDocument::parse(&line.to_string()).unwrap().unwrap()
}

/// A new version whose documents carry only the `[Route, Tenant]` set feeds the scoped SLO
/// but not the service-wide one, which counts every request: that SLO has no evidence, and
/// the gate does not pass on the scoped one alone.
#[test]
fn documents_that_stop_feeding_the_service_wide_slo_do_not_pass() {
    let gate = SloGate::new(SloFile::parse(SCOPED_SLOS).unwrap(), Arc::new(NoSource));
    let both = gate.judge(&[under(serde_json::json!([[], ["Route", "Tenant"]]), 1000)]);
    assert_eq!(both.verdict, Verdict::Pass, "{both:?}");
    let scoped_only = gate.judge(&[under(serde_json::json!([["Route", "Tenant"]]), 1000)]);
    assert_eq!(scoped_only.verdict, Verdict::NoData, "{scoped_only:?}");
    assert!(scoped_only.detail.contains("availability: covers every request"), "{}", scoped_only.detail);
}

/// An SLO the old version's documents feed over the same time, and the new version's do
/// not, has no verdict: the new version stopped writing what it reads, or never reached it.
#[test]
fn an_slo_the_old_version_feeds_and_the_new_one_does_not_is_no_evidence() {
    let gate = SloGate::new(SloFile::parse(SCOPED_SLOS).unwrap(), Arc::new(NoSource));
    let old = [under(serde_json::json!([[], ["Route", "Tenant"]]), 100)];
    let service_wide_only = [under(serde_json::json!([[]]), 1000)];
    assert_eq!(gate.judge(&service_wide_only).verdict, Verdict::Pass, "alone, the scoped SLO has no say");
    let against_old = gate.judge_against(&service_wide_only, &old);
    assert_eq!(against_old.verdict, Verdict::NoData, "{against_old:?}");
    assert!(
        against_old
            .detail
            .contains("acme-create-availability: no request of the new version counted, though 100"),
        "{}",
        against_old.detail
    );
    // Fed by both: judged as before.
    let fed = [under(serde_json::json!([[], ["Route", "Tenant"]]), 1000)];
    assert_eq!(gate.judge_against(&fed, &old).verdict, Verdict::Pass);
}
