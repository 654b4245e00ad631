//! The outage alert: a function that is invoked but writes no EMF (init failures, crashes,
//! out of memory, timeouts) pages, in the alarms and in the evaluator alike, where the SLO
//! alerts, reading only the EMF the function writes, see no data and stay silent. A service
//! without traffic, and one whose invocations all count requests, do not page.

mod support;

use lift_monitoring::alarms;
use lift_monitoring::evaluator::{AlertState, Evaluator, Report, SloStatus};
use lift_monitoring::slo::{SloFile, OUTAGE_ALERT};
use serde_json::{json, Value};
use support::{alarm_breaches, minute, request_doc, slo_file, timeline};
use AlertState::{Firing, Resolved};

const AVAILABILITY: &str = r#"
[[slo]]
name = "availability"
kind = "availability"
objective = 99.9
"#;

const OUTAGE_ID: &str = "PaymentsOutage";

/// Feeds minutes `0..minutes`: `invocations(m)` invocations at the start of minute `m`,
/// and `requests(m)` EMF documents (service-wide, none failing) spread over it.
fn run(
    evaluator: Evaluator,
    minutes: i64,
    invocations: impl Fn(i64) -> i64,
    requests: impl Fn(i64) -> i64,
) -> Report {
    let mut evaluator = evaluator;
    for m in 0..minutes {
        if invocations(m) > 0 {
            evaluator.observe_invocations(minute(m), invocations(m) as f64);
        }
        for k in 0..requests(m) {
            evaluator.observe_line(&request_doc(minute(m) + 1 + k * 100, &[&[]], &[], false, 20.0)).unwrap();
        }
    }
    evaluator.finish()
}

#[test]
fn a_total_outage_without_emf_is_silent_in_the_slo_alerts_but_pages_as_an_outage() {
    // 100 invocations a minute, each writing its EMF, for an hour; then, from minute 60,
    // the function crashes before it writes any: 100 invocations a minute, no document.
    let report = run(Evaluator::new(slo_file(AVAILABILITY)), 71, |_| 100, |m| if m < 60 { 100 } else { 0 });
    // The burn-rate rules see windows without requests, which do not breach: silent.
    assert!(report.transitions.iter().all(|t| t.alert == OUTAGE_ALERT), "{:?}", report.transitions);
    // The outage alert, over 5 minutes [b - 5, b): at b=62 minutes 57..=61 hold 500
    // invocations and 300 requests (40% without), at b=63 200 requests (60%, above 50%).
    assert_eq!(timeline(&report.transitions), [(63, OUTAGE_ALERT.to_owned(), Firing)]);
    assert_eq!(report.transitions[0].long_ratio, Some(0.6));
    let slo = &report.slos[0];
    assert_eq!(
        (slo.status, slo.firing.as_slice()),
        (SloStatus::Firing, [OUTAGE_ALERT.to_owned()].as_slice())
    );
    assert!(report.is_firing());
    assert_eq!(report.invocations, 7_100.0);
}

#[test]
fn a_function_that_never_wrote_emf_pages_rather_than_reporting_no_data() {
    // A deployment whose init fails: invoked from the start, never a document.
    let report = run(Evaluator::new(slo_file(AVAILABILITY)), 10, |_| 1, |_| 0);
    // Three invocations in the window at b=3 (minutes 0..=2): 100% without a request.
    assert_eq!(timeline(&report.transitions), [(3, OUTAGE_ALERT.to_owned(), Firing)]);
    assert_eq!(report.slos[0].status, SloStatus::Firing);
    assert_eq!(report.documents, 0);
    assert!(report.to_string().contains("FIRING   availability outage (page)"), "{report}");
}

#[test]
fn a_quiet_service_and_normal_traffic_do_not_page() {
    // No invocations, no documents: nothing known, nothing paged.
    let quiet = run(Evaluator::new(slo_file(AVAILABILITY)), 60, |_| 0, |_| 0);
    assert!(quiet.transitions.is_empty());
    assert_eq!(quiet.slos[0].status, SloStatus::NoData);
    // Every invocation writes its EMF.
    let normal = run(Evaluator::new(slo_file(AVAILABILITY)), 120, |_| 100, |_| 100);
    assert!(normal.transitions.is_empty(), "{:?}", normal.transitions);
    assert_eq!(normal.slos[0].status, SloStatus::Healthy);
    // A batch of records per invocation: more requests than invocations is no outage.
    let batches = run(Evaluator::new(slo_file(AVAILABILITY)), 30, |_| 10, |_| 100);
    assert!(batches.transitions.is_empty());
    // A stream of documents alone (the evaluator never fed invocations) never fires it.
    let emf_only = run(Evaluator::new(slo_file(AVAILABILITY)), 30, |_| 0, |_| 10);
    assert_eq!(emf_only.slos[0].status, SloStatus::Healthy);
    // Below the minimum of invocations (one failed cold start every 5 minutes): no page.
    let rare = run(Evaluator::new(slo_file(AVAILABILITY)), 60, |m| i64::from(m % 5 == 0), |_| 0);
    assert!(rare.transitions.is_empty(), "{:?}", rare.transitions);
}

#[test]
fn an_outage_resolves_when_the_requests_come_back_and_the_thresholds_are_settings() {
    let report = run(
        Evaluator::new(slo_file(AVAILABILITY)),
        40,
        |_| 10,
        |m| if (10..20).contains(&m) { 0 } else { 10 },
    );
    // Fires at b=13 (minutes 8..=12: 30 of 50 without), resolves at b=23 (18..=22: 20 of 50).
    assert_eq!(
        timeline(&report.transitions),
        [(13, OUTAGE_ALERT.to_owned(), Firing), (23, OUTAGE_ALERT.to_owned(), Resolved)]
    );
    // Exactly the percentage is not above it: half the invocations without a request.
    let half = || run(Evaluator::new(slo_file(AVAILABILITY)), 10, |_| 10, |_| 5);
    assert!(half().transitions.is_empty());
    let strict = run(Evaluator::new(slo_file(AVAILABILITY)).with_outage_percent(40), 10, |_| 10, |_| 5);
    assert_eq!(timeline(&strict.transitions), [(1, OUTAGE_ALERT.to_owned(), Firing)]);
    // A higher minimum keeps a quiet crash loop from paging; 100 percent never fires.
    let crash = || Evaluator::new(slo_file(AVAILABILITY));
    assert!(run(crash().with_outage_min_invocations(20), 10, |_| 3, |_| 0).transitions.is_empty());
    assert!(run(crash().with_outage_percent(100), 10, |_| 3, |_| 0).transitions.is_empty());
}

#[test]
fn invocation_counts_older_than_a_closed_minute_are_late() {
    let mut evaluator = Evaluator::new(slo_file(AVAILABILITY));
    evaluator.observe_invocations(minute(0), 5.0);
    evaluator.observe_invocations(minute(2), 5.0);
    evaluator.observe_invocations(minute(1), 5.0);
    // Not counts: ignored.
    evaluator.observe_invocations(minute(2), f64::NAN);
    evaluator.observe_invocations(minute(2), -3.0);
    let report = evaluator.finish();
    assert_eq!((report.invocations, report.late), (10.0, 1));
}

#[test]
fn an_slo_file_without_a_service_wide_slo_has_no_outage_alert() {
    // A route's requests are a part of the function's invocations: a quiet route is no outage.
    let route_only = slo_file(
        "[[slo]]\nname = \"create\"\nkind = \"availability\"\nroute = \"/payments\"\nobjective = 99.9\n",
    );
    assert!(route_only.outage_slo().is_none());
    let fragment = alarms::fragment(&route_only);
    assert!(fragment["Resources"].get(OUTAGE_ID).is_none());
    assert!(fragment["Parameters"].get(alarms::FUNCTION_NAME_PARAMETER).is_none());
    let report = run(Evaluator::new(route_only), 10, |_| 10, |_| 0);
    assert!(report.transitions.is_empty());
    // An alert rule may not take the outage alert's name.
    let err = SloFile::parse(
        "[service]\nname = \"p\"\nnamespace = \"P\"\n[[slo]]\nname = \"a\"\nkind = \"availability\"\nobjective = 99.0\n\
         [[alert]]\nname = \"outage\"\nseverity = \"page\"\nburn_rate = 10\nlong_window = \"1h\"\nshort_window = \"5m\"\n",
    )
    .unwrap_err();
    assert_eq!(err.key(), Some("alert[0].name"));
}

fn payments() -> SloFile {
    SloFile::load(concat!(env!("CARGO_MANIFEST_DIR"), "/slo/payments.toml")).unwrap()
}

#[test]
fn the_outage_alarm_pages_on_invocations_without_requests_where_the_slo_alarms_see_no_data() {
    let fragment = alarms::fragment(&payments());
    let resources = fragment["Resources"].as_object().unwrap();
    // The outage: invocations, and no EMF, so no `Requests`, `5xx` or `Latency` data. Every
    // SLO window alarm reads no data, which does not breach: the hole this alarm closes.
    for (id, resource) in resources {
        if id == OUTAGE_ID {
            continue;
        }
        if resource["Type"] == "AWS::CloudWatch::Alarm" {
            assert!(!alarm_breaches(&fragment, id, &[]), "{id} breached on no data");
        }
    }
    let outage = |values: &[(&str, f64)]| alarm_breaches(&fragment, OUTAGE_ID, values);
    assert!(outage(&[("invocations", 500.0)]), "a total outage pages");
    // A quiet service: no invocations, no requests: no data, no page.
    assert!(!outage(&[]));
    // Normal traffic; batches (more requests than invocations); a partial outage at and
    // above the percentage; fewer invocations than the minimum.
    assert!(!outage(&[("invocations", 500.0), ("requests", 500.0)]));
    assert!(!outage(&[("invocations", 50.0), ("requests", 500.0)]));
    assert!(!outage(&[("invocations", 100.0), ("requests", 50.0)]));
    assert!(outage(&[("invocations", 100.0), ("requests", 49.0)]));
    assert!(!outage(&[("invocations", 2.0)]));
    assert!(outage(&[("invocations", 3.0)]));
}

#[test]
fn the_outage_alarm_reads_the_functions_invocations_and_the_service_wide_requests_and_pages() {
    let file = payments();
    let fragment = alarms::fragment(&file);
    let p = &fragment["Resources"][OUTAGE_ID]["Properties"];
    assert_eq!(fragment["Resources"][OUTAGE_ID]["Type"], "AWS::CloudWatch::Alarm");
    assert_eq!(p["AlarmName"], "payments-outage");
    let metrics = p["Metrics"].as_array().unwrap();
    assert_eq!(
        metrics[0]["MetricStat"],
        json!({
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations",
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "SloFunctionName"}}]},
            "Period": 300,
            "Stat": "Sum",
        })
    );
    assert_eq!(
        metrics[1]["MetricStat"],
        json!({
            "Metric": {"Namespace": "Payments", "MetricName": "Requests", "Dimensions": []},
            "Period": 300,
            "Stat": "Sum",
        })
    );
    assert_eq!(file.outage_window().seconds(), 300);
    // The stack must name its function: no default to silently watch another one.
    assert!(fragment["Parameters"]["SloFunctionName"].get("Default").is_none());
    assert_eq!(p["Threshold"], json!({"Ref": "SloOutagePercent"}));
    assert_eq!(p["ActionsEnabled"], true);
    assert_eq!(p["AlarmActions"]["Fn::If"][0], "SloHasPageTopic");
    assert_eq!(p["OKActions"], p["AlarmActions"]);
    // The router's label block: a page, not a window of an alert.
    let description = p["AlarmDescription"].as_str().unwrap();
    assert!(description.starts_with("page payments: "), "{description}");
    assert!(description.ends_with(" [severity=page kind=outage slo=availability]"), "{description}");
    assert!(!description.contains(alarms::WINDOW_LABEL));
    assert!(description.contains("Runbook: https://runbooks.example.com/payments/availability"));
    // A service-wide latency SLO alone: its values are the requests; and tickets only still
    // get the page topic for the outage.
    let latency = slo_file(
        "[[slo]]\nname = \"fast\"\nkind = \"latency\"\nobjective = 99.0\nthreshold_ms = 300\n\
         [[alert]]\nname = \"ticket\"\nseverity = \"ticket\"\nburn_rate = 1\nlong_window = \"6h\"\nshort_window = \"30m\"\n",
    );
    let fragment = alarms::fragment(&latency);
    let requests = &fragment["Resources"][OUTAGE_ID]["Properties"]["Metrics"][1]["MetricStat"];
    assert_eq!(
        (&requests["Metric"]["MetricName"], &requests["Stat"]),
        (&json!("Latency"), &json!("SampleCount"))
    );
    assert_eq!(requests["Period"], 1_800);
    assert!(fragment["Parameters"].get(alarms::PAGE_TOPIC_PARAMETER).is_some());
    assert!(fragment["Conditions"].get("SloHasPageTopic").is_some());
}

/// The evaluator and the alarm agree at the boundary after five minutes of a given number
/// of invocations and EMF requests.
#[test]
fn the_evaluator_and_the_alarm_agree_on_every_mix_of_invocations_and_requests() {
    let fragment = alarms::fragment(&slo_file(AVAILABILITY));
    for (invocations, requests) in [
        (0, 0),
        (0, 7),
        (1, 0),
        (2, 0),
        (3, 0),
        (3, 1),
        (3, 2),
        (10, 5),
        (10, 4),
        (10, 10),
        (10, 30),
        (500, 0),
        (500, 249),
        (500, 250),
    ] {
        // Spread over minutes 0..=4: the counts of the window ending at b=5.
        let per = |total: i64| move |m: i64| total / 5 + i64::from(m < total % 5);
        let report = run(Evaluator::new(slo_file(AVAILABILITY)), 5, per(invocations), per(requests));
        let evaluator = report.slos[0].firing.iter().any(|a| a == OUTAGE_ALERT);
        let mut values = Vec::new();
        if invocations > 0 {
            values.push(("invocations", invocations as f64));
        }
        if requests > 0 {
            values.push(("requests", requests as f64));
        }
        let alarm = alarm_breaches(&fragment, OUTAGE_ID, &values);
        assert_eq!(evaluator, alarm, "{invocations} invocations, {requests} requests");
    }
}

#[test]
fn the_outage_description_stays_within_cloudwatchs_1024_characters() {
    let long = |n: usize| "x".repeat(n);
    let file = SloFile::parse(&format!(
        "[service]\nname = \"{}\"\nnamespace = \"P\"\n[[slo]]\nname = \"{}\"\nkind = \"availability\"\nobjective = 99.9\nrunbook = \"https://{}\"\n",
        long(64),
        long(64),
        long(504)
    ))
    .unwrap();
    let fragment = alarms::fragment(&file);
    let outage: &Value = &fragment["Resources"][file.outage_alarm_id()];
    let text = outage["Properties"]["AlarmDescription"].as_str().unwrap();
    assert!(text.len() <= 1024, "{} characters", text.len());
}

/// `aws logs tail`'s lines: the time, the stream, the message.
fn tail_line(ms: i64, message: &str) -> String {
    format!("{} 2026/01/01/[$LATEST]8f1c {message}", lift_monitoring::evaluator::utc(ms))
}

#[test]
fn a_logs_report_lines_with_their_times_are_invocations_so_a_crash_loop_log_is_an_outage() {
    let report_line = |m: i64, k: i64| {
        tail_line(
            minute(m) + k * 1_000,
            &format!("REPORT RequestId: r{m}-{k}\tDuration: 3000.00 ms\tStatus: timeout"),
        )
    };
    // Ten minutes of timeouts: the runtime's REPORT lines and nothing else.
    let crashes: Vec<String> = (0..10).flat_map(|m| (0..5).map(move |k| report_line(m, k))).collect();
    let report =
        lift_monitoring::evaluator::evaluate_log(slo_file(AVAILABILITY), crashes.join("\n").as_bytes())
            .unwrap();
    assert_eq!((report.documents, report.invocations), (0, 50.0));
    assert_eq!(timeline(&report.transitions), [(1, OUTAGE_ALERT.to_owned(), Firing)]);
    assert!(report.is_firing());
    // The same invocations, each with its EMF document: healthy.
    let mut healthy = crashes.clone();
    for m in 0..10 {
        for k in 0..5 {
            healthy.push(tail_line(
                minute(m) + k * 1_000,
                &request_doc(minute(m) + k * 1_000, &[&[]], &[], false, 20.0),
            ));
        }
    }
    let report =
        lift_monitoring::evaluator::evaluate_log(slo_file(AVAILABILITY), healthy.join("\n").as_bytes())
            .unwrap();
    assert_eq!((report.documents, report.invocations), (50, 50.0));
    assert!(report.transitions.is_empty(), "{:?}", report.transitions);
    assert_eq!(report.slos[0].status, SloStatus::Healthy);
    // REPORT lines without a time (a local runtime's output) cannot be placed: skipped.
    let untimed: Vec<String> =
        (0..50).map(|k| format!("REPORT RequestId: r{k}\tDuration: 1.00 ms")).collect();
    let report =
        lift_monitoring::evaluator::evaluate_log(slo_file(AVAILABILITY), untimed.join("\n").as_bytes())
            .unwrap();
    assert_eq!((report.invocations, report.slos[0].status), (0.0, SloStatus::NoData));
}
