//! The local evaluator against series whose alert times are worked out by hand.

mod support;

use lift_monitoring::evaluator::{AlertState, Evaluator, SloStatus};
use support::{evaluate, minute, request_doc, series, slo_file, timeline};
use AlertState::{Firing, Resolved};

const AVAILABILITY: &str = r#"
[[slo]]
name = "availability"
kind = "availability"
objective = 99.9
"#;

fn at(m: i64, alert: &str, state: AlertState) -> (i64, String, AlertState) {
    (m, alert.to_owned(), state)
}

/// Steady errors: one in minutes 10, 30, 50, ... (m % 20 == 10), out of 100 requests a
/// minute, 0.05%: half the budget of a 99.9% SLO.
fn steady(m: i64) -> i64 {
    i64::from(m % 20 == 10)
}

#[test]
fn a_steady_error_rate_then_a_burst_fires_and_resolves_each_rule_at_the_minutes_worked_out_by_hand() {
    // 100 requests a minute for minutes 0..=730; steady errors as above; minutes 360..=369
    // a burst of 60 errors a minute. Requests of minute m count in the windows of every
    // boundary b > m; a window W at boundary b covers minutes [b - W, b).
    let burst = |m: i64| if (360..=369).contains(&m) { 60 } else { steady(m) };
    let report = evaluate(slo_file(AVAILABILITY), &series(0..=730, 100, burst));

    // Budget 1 - 99.9/100 = 0.001.
    //
    // ticket, 1x over 3d and 6h: above 0.001.
    //   b=360: 6h [0,360): steady 10,30,...,350 = 18 errors / 36000 = 0.0005. Never above
    //          before the burst: the worst is b=11, 1 / 1100 = 0.00091.
    //   b=361: 6h [1,361): 18 + 60 = 78 / 36000 = 0.00217; 3d (all 361 minutes): 78 / 36100
    //          = 0.00216. Both above: FIRING at 361.
    //   b=729: 6h [369,729): 60 (minute 369) + steady 370,390,...,710 (18) = 78 / 36000: above.
    //   b=730: 6h [370,730): 18 / 36000 = 0.0005: RESOLVED at 730.
    // page-fast, 14.4x over 1h and 5m: above 0.0144, i.e. > 86.4 of 6000 and > 7.2 of 500.
    //   b=361: 1h [301,361): steady 310,330,350 = 3, + 60 = 63: not above.
    //   b=362: 1h [302,362): 3 + 120 = 123; 5m [357,362): 120. FIRING at 362.
    //   b=374: 5m [369,374): 60 + 1 (minute 370) = 61: still above.
    //   b=375: 5m [370,375): 1 / 500 = 0.002: RESOLVED at 375 (the 1h is still at 603 / 6000).
    // page-slow, 6x over 6h and 30m: above 0.006, i.e. > 216 of 36000 and > 18 of 3000.
    //   b=363: 6h [3,363): 18 + 180 = 198: not above.
    //   b=364: 6h [4,364): 18 + 240 = 258; 30m [334,364): 1 (350) + 240 = 241. FIRING at 364.
    //   b=399: 30m [369,399): 60 + 2 (370, 390) = 62: still above.
    //   b=400: 30m [370,400): 2 / 3000: RESOLVED at 400.
    assert_eq!(
        timeline(&report.transitions),
        vec![
            at(361, "ticket", Firing),
            at(362, "page-fast", Firing),
            at(364, "page-slow", Firing),
            at(375, "page-fast", Resolved),
            at(400, "page-slow", Resolved),
            at(730, "ticket", Resolved),
        ]
    );
    let fast_resolved = &report.transitions[3];
    assert_eq!(fast_resolved.long_ratio, Some(603.0 / 6000.0));
    assert_eq!(fast_resolved.short_ratio, Some(1.0 / 500.0));

    // The last boundary is 731 (the minute of the last document closed). The 30-day window
    // holds all 731 minutes: 73100 requests, 37 steady errors (10, 30, ..., 730) + 600.
    let slo = &report.slos[0];
    assert_eq!(report.as_of_ms, Some(minute(731)));
    // Nothing fires at the end, but the burst spent the budget: exhausted, not healthy.
    assert_eq!((slo.status, slo.requests, slo.bad), (SloStatus::Exhausted, 73_100.0, 637.0));
    let remaining = slo.budget_remaining.unwrap();
    assert!((remaining - (1.0 - (637.0 / 73_100.0) / 0.001)).abs() < 1e-9, "{remaining}");
    assert!(remaining < 0.0, "the burst overspent the month's budget: {remaining}");
    // Burn rate over the last 5 minutes [726,731): 1 error (730) / 500 / 0.001 = 2x.
    let five = slo.burn_rates.iter().find(|b| b.window.seconds() == 300).unwrap();
    assert!((five.rate.unwrap() - 2.0).abs() < 1e-9, "{:?}", five.rate);
}

#[test]
fn a_burst_shorter_than_the_short_window_does_not_page_but_the_same_burst_a_minute_longer_does() {
    // One minute of 50 errors in 100 at minute 360: the 5m window is at 10%, far above
    // 1.44%, but the 1h never holds more than 3 steady + 50 = 53 of 6000 (0.88%); nor does
    // the slow page's 6h (full from minute 360 on) hold more than 18 + 50 = 68 of 36000 (0.19%,
    // under 0.6%). The series starts at minute 0 so that the 6h window is full: on a shorter
    // history the window holds fewer requests and the same burst weighs more.
    let one = |m: i64| if m == 360 { 50 } else { steady(m) };
    let report = evaluate(slo_file(AVAILABILITY), &series(0..=420, 100, one));
    assert!(
        report.transitions.iter().all(|t| t.alert != "page-fast" && t.alert != "page-slow"),
        "{:?}",
        report.transitions
    );
    // Two minutes: at b=362 the 1h [302,362) holds 3 (310, 330, 350) + 100 = 103 > 86.4, and
    // the 5m [357,362) 100 of 500.
    let two = |m: i64| if m == 360 || m == 361 { 50 } else { steady(m) };
    let report = evaluate(slo_file(AVAILABILITY), &series(0..=420, 100, two));
    let fast: Vec<_> = timeline(&report.transitions).into_iter().filter(|t| t.1 == "page-fast").collect();
    assert_eq!(fast[0], at(362, "page-fast", Firing));
}

#[test]
fn the_long_window_alone_does_not_page() {
    // Burst of 60 errors a minute in minutes 60..=69 after an hour of steady errors.
    // page-fast: fires at 62 (1h [2,62): 3 + 120), resolves at 75 (5m [70,75): 1 error),
    // while the 1h window [15,75) still holds 30, 50, 70 + 600 = 603 of 6000 (10%) and stays
    // above 1.44% until the burst leaves it: no page comes back in that time.
    let burst = |m: i64| if (60..=69).contains(&m) { 60 } else { steady(m) };
    let report = evaluate(slo_file(AVAILABILITY), &series(0..=128, 100, burst));
    let fast: Vec<_> = report.transitions.iter().filter(|t| t.alert == "page-fast").collect();
    assert_eq!(
        timeline(&fast.iter().map(|t| (*t).clone()).collect::<Vec<_>>()),
        vec![at(62, "page-fast", Firing), at(75, "page-fast", Resolved)]
    );
    assert_eq!(fast[1].long_ratio, Some(603.0 / 6000.0));
    assert!(fast[1].long_ratio.unwrap() > 0.0144);
}

#[test]
fn one_error_at_one_request_a_minute_pages_no_one_but_an_outage_at_real_traffic_does() {
    // One request a minute, one 5xx at minute 400. Without a minimum, at b=401 the 1h window
    // holds 1 bad of 60 (1.7%, above page-fast's 1.44%) and the 5m window 1 of 5: a page on
    // one error. With the default minimum (200) the 1h window never counts; the 6h window
    // does (360 requests), but 1 of 360 is 0.28%, under page-slow's 0.6%.
    let one = |m: i64| i64::from(m == 400);
    let report = evaluate(slo_file(AVAILABILITY), &series(0..=480, 1, one));
    let pages: Vec<_> = report.transitions.iter().filter(|t| t.severity.to_string() == "page").collect();
    assert!(pages.is_empty(), "{pages:?}");
    // The same log with no minimum (1) pages: the minimum is what keeps it quiet.
    let mut evaluator = Evaluator::new(slo_file(AVAILABILITY)).with_min_requests(1);
    for line in series(0..=480, 1, one) {
        evaluator.observe_line(&line).unwrap();
    }
    let noisy = evaluator.finish();
    assert_eq!(
        timeline(&noisy.transitions).into_iter().find(|t| t.1 == "page-fast"),
        Some(at(401, "page-fast", Firing)),
    );
    // Real traffic, 100 requests a minute, every one failing from minute 100: both pages
    // fire at the first boundary, the 1h window holding 6000 requests.
    let outage = evaluate(slo_file(AVAILABILITY), &series(0..=120, 100, |m| if m >= 100 { 100 } else { 0 }));
    let fired: Vec<_> = timeline(&outage.transitions).into_iter().filter(|t| t.2 == Firing).collect();
    assert_eq!(fired[..2], [at(101, "page-fast", Firing), at(101, "page-slow", Firing)]);
}

#[test]
fn a_latency_exactly_at_the_threshold_is_good_and_just_above_it_is_bad() {
    let file = || {
        slo_file(
            r#"
[[slo]]
name = "create-latency"
kind = "latency"
route = "/payments"
objective = 99.0
threshold_ms = 300
"#,
        )
    };
    // 200 requests a minute: every long window holds the minimum of requests from b=1 on.
    let run = |latency: f64| {
        let lines: Vec<String> = (0..20)
            .flat_map(|m| {
                (0..200).map(move |k| {
                    request_doc(minute(m) + k * 250, &[&["Route"]], &[("Route", "/payments")], false, latency)
                })
            })
            .collect();
        evaluate(file(), &lines)
    };
    let at_threshold = run(300.0);
    assert_eq!((at_threshold.slos[0].requests, at_threshold.slos[0].bad), (4000.0, 0.0));
    assert!(at_threshold.transitions.is_empty(), "{:?}", at_threshold.transitions);
    assert_eq!(at_threshold.slos[0].status, SloStatus::Healthy);

    let above = run(300.25);
    assert_eq!((above.slos[0].requests, above.slos[0].bad), (4000.0, 4000.0));
    // Every request bad from minute 0: both windows of every rule are at 100% at b=1.
    assert_eq!(
        timeline(&above.transitions),
        vec![at(1, "page-fast", Firing), at(1, "page-slow", Firing), at(1, "ticket", Firing)]
    );
    assert_eq!(above.slos[0].status, SloStatus::Firing);
}

#[test]
fn a_tenant_slo_is_not_triggered_by_another_tenants_errors() {
    let file = slo_file(
        r#"
[[slo]]
name = "acme-create"
kind = "availability"
route = "/payments"
tenant = "acme"
objective = 99.95

[[slo]]
name = "create"
kind = "availability"
route = "/payments"
objective = 99.9
"#,
    );
    // lift with dimension sets [Route, Tenant] and [Route]: globex fails every request,
    // acme none, 50 requests each a minute.
    let sets: &[&[&str]] = &[&["Route", "Tenant"], &["Route"]];
    let mut lines = Vec::new();
    for m in 0..30 {
        for k in 0..50 {
            let ts = minute(m) + k * 1000;
            lines.push(request_doc(ts, sets, &[("Route", "/payments"), ("Tenant", "globex")], true, 20.0));
            lines.push(request_doc(ts, sets, &[("Route", "/payments"), ("Tenant", "acme")], false, 20.0));
        }
    }
    let report = evaluate(file, &lines);
    let acme = &report.slos[0];
    assert_eq!((acme.status, acme.requests, acme.bad), (SloStatus::Healthy, 1500.0, 0.0));
    assert!(report.transitions.iter().all(|t| t.slo != "acme-create"), "{:?}", report.transitions);
    // The route's SLO saw globex's errors: the stream did carry them.
    let route = &report.slos[1];
    assert_eq!((route.status, route.requests, route.bad), (SloStatus::Firing, 3000.0, 1500.0));
}

#[test]
fn an_empty_stream_is_no_data_not_healthy() {
    let report = Evaluator::new(slo_file(AVAILABILITY)).finish();
    assert_eq!(report.as_of_ms, None);
    assert_eq!(report.slos[0].status, SloStatus::NoData);
    assert_eq!((report.slos[0].sli, report.slos[0].budget_remaining), (None, None));
    assert!(report.has_no_data() && !report.is_firing());

    // Documents that are not the SLO's (another namespace, or only a [Route] set when the
    // SLO reads the service-wide one) are no data either.
    let mut other_ns = request_doc(minute(0), &[&[]], &[], true, 1.0);
    other_ns = other_ns.replace("\"Payments\"", "\"Other\"");
    let route_only = request_doc(minute(0), &[&["Route"]], &[("Route", "/payments")], true, 1.0);
    let report = evaluate(slo_file(AVAILABILITY), &[other_ns, route_only]);
    assert_eq!((report.documents, report.slos[0].status), (2, SloStatus::NoData));
    assert!(report.transitions.is_empty());
}

#[test]
fn documents_older_than_a_closed_minute_are_late_and_not_counted() {
    let mut evaluator = Evaluator::new(slo_file(AVAILABILITY));
    for line in [
        request_doc(minute(0), &[&[]], &[], false, 1.0),
        request_doc(minute(2), &[&[]], &[], false, 1.0),
        // Minute 1 closed when minute 2's document arrived.
        request_doc(minute(1) + 30_000, &[&[]], &[], true, 1.0),
        // Minute 2 is still open.
        request_doc(minute(2) + 59_999, &[&[]], &[], true, 1.0),
    ] {
        evaluator.observe_line(&line).unwrap();
    }
    let report = evaluator.finish();
    assert_eq!((report.documents, report.late), (4, 1));
    assert_eq!((report.slos[0].requests, report.slos[0].bad), (3.0, 1.0));
}

#[test]
fn a_log_out_of_order_is_sorted_by_event_time_so_nothing_is_late() {
    let mut lines = series(0..=10, 10, |_| 0);
    lines.reverse();
    lines.insert(3, "START RequestId: 1 Version: $LATEST".to_owned());
    let report =
        lift_monitoring::evaluator::evaluate_log(slo_file(AVAILABILITY), lines.join("\n").as_bytes())
            .unwrap();
    assert_eq!((report.documents, report.late, report.slos[0].requests), (110, 0, 110.0));
    let broken = "{\"_aws\":{\"Timestamp\":\"soon\"}}";
    let err =
        lift_monitoring::evaluator::evaluate_log(slo_file(AVAILABILITY), format!("\n{broken}").as_bytes())
            .unwrap_err();
    assert!(err.to_string().starts_with("line 2: "), "{err}");
}

#[test]
fn a_truncated_document_is_an_error_naming_its_line_and_lambdas_own_lines_are_skipped() {
    let lambda = [
        "START RequestId: 8f0c Version: $LATEST",
        "[payments] listening on the Lambda Runtime API",
        "END RequestId: 8f0c",
        "REPORT RequestId: 8f0c Duration: 12.41 ms Billed Duration: 13 ms Memory Size: 1769 MB Max Memory Used: 30 MB",
    ];
    let mut lines: Vec<String> = lambda.iter().map(|l| (*l).to_owned()).collect();
    lines.extend(series(0..=1, 3, |m| m * 3));
    let log = lines.join("\n");
    let report = lift_monitoring::evaluator::evaluate_log(slo_file(AVAILABILITY), log.as_bytes()).unwrap();
    assert_eq!((report.documents, report.slos[0].requests, report.slos[0].bad), (6, 6.0, 3.0));

    // The same log with its last document cut short (a line the runtime split): counting
    // the others alone would report 2 bad requests in 5 where 3 in 6 were.
    let truncated = &log[..log.len() - 20];
    let err = lift_monitoring::evaluator::evaluate_log(slo_file(AVAILABILITY), truncated.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("line {}: ", lines.len())), "{err}");
    assert!(err.contains("not a JSON object"), "{err}");
}

/// Rules with windows short enough for series of an hour or two.
const SHORT_RULES: &str = r#"
[[alert]]
name = "fast"
severity = "page"
burn_rate = 10
long_window = "10m"
short_window = "2m"

[[alert]]
name = "slow"
severity = "ticket"
burn_rate = 2
long_window = "30m"
short_window = "5m"
"#;

/// The transitions worked out the slow way: at every boundary, sum every minute in each
/// window from the raw counts, with no running sums; a long window with fewer than
/// `min_requests` requests does not breach.
fn naive(
    minutes: &[(i64, i64)],
    rules: &[(&str, f64, i64, i64)],
    min_requests: i64,
) -> Vec<(i64, String, AlertState)> {
    let with_data: Vec<i64> = (0..minutes.len() as i64).filter(|m| minutes[*m as usize].0 > 0).collect();
    let (Some(first), Some(last)) = (with_data.first(), with_data.last()) else { return Vec::new() };
    let mut firing = vec![false; rules.len()];
    let mut out = Vec::new();
    for b in first + 1..=last + 1 {
        for (r, (name, threshold, long, short)) in rules.iter().enumerate() {
            let breached = |w: i64, least: i64| {
                let (mut req, mut bad) = (0, 0);
                for m in (b - w).max(0)..b {
                    req += minutes[m as usize].0;
                    bad += minutes[m as usize].1;
                }
                req > 0 && req >= least && bad as f64 / req as f64 > *threshold
            };
            let now = breached(*long, min_requests) && breached(*short, 0);
            if now != firing[r] {
                firing[r] = now;
                out.push((b, (*name).to_owned(), if now { Firing } else { Resolved }));
            }
        }
    }
    out
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 48, ..Default::default() })]

    /// The evaluator's running sums give the transitions that summing every window from
    /// scratch gives, on random series with quiet minutes and gaps.
    #[test]
    fn transitions_match_a_from_scratch_recomputation(
        minutes in proptest::collection::vec((0i64..=6).prop_flat_map(|n| (Just(n), 0..=n)), 1..120),
        min_requests in 1u32..=40,
    ) {
        let file = slo_file(&format!("{AVAILABILITY}{SHORT_RULES}"));
        let budget = file.slos()[0].error_budget();
        let rules: Vec<(&str, f64, i64, i64)> =
            vec![("fast", 10.0 * budget, 10, 2), ("slow", 2.0 * budget, 30, 5)];
        let mut lines = Vec::new();
        for (m, (requests, bad)) in minutes.iter().enumerate() {
            for k in 0..*requests {
                lines.push(request_doc(minute(m as i64) + k * 7_000, &[&[]], &[], k < *bad, 1.0));
            }
        }
        let mut evaluator = Evaluator::new(file).with_min_requests(min_requests);
        for line in &lines {
            evaluator.observe_line(line).unwrap();
        }
        let report = evaluator.finish();
        prop_assert_eq!(timeline(&report.transitions), naive(&minutes, &rules, i64::from(min_requests)));
        let total: i64 = minutes.iter().map(|m| m.0).sum();
        prop_assert_eq!(report.slos[0].requests, total as f64);
    }
}
