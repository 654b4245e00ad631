//! The CloudWatch alarms: the same windows and thresholds as the evaluator, and a
//! template cfn-lint passes without an error or a warning.

mod support;

use std::path::PathBuf;
use std::process::Command;

use lift_monitoring::alarms;
use lift_monitoring::slo::SloFile;
use serde_json::{json, Value};
use support::alarm_value;

fn payments() -> SloFile {
    SloFile::load(concat!(env!("CARGO_MANIFEST_DIR"), "/slo/payments.toml")).unwrap()
}

#[test]
fn every_slo_and_rule_becomes_two_window_alarms_and_a_composite_with_the_evaluators_numbers() {
    let file = payments();
    let fragment = alarms::fragment(&file);
    let resources = fragment["Resources"].as_object().unwrap();
    // Three per SLO and rule, and the service's outage alarm (tests/outage.rs).
    assert_eq!(resources.len(), file.slos().len() * file.alerts().len() * 3 + 1);
    assert_eq!(resources[&file.outage_alarm_id()]["Properties"]["AlarmName"], "payments-outage");
    for slo in file.slos() {
        for rule in file.alerts() {
            let id = slo.alarm_id(file.service(), rule);
            for (suffix, window) in [("Long", rule.long_window()), ("Short", rule.short_window())] {
                let p = &resources[&format!("{id}{suffix}")]["Properties"];
                // Exactly the threshold the evaluator compares with, not a rounding of it.
                assert_eq!(p["Threshold"].as_f64(), Some(rule.threshold(slo)), "{id}{suffix}");
                assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold");
                assert_eq!(
                    (p["EvaluationPeriods"].as_u64(), p["DatapointsToAlarm"].as_u64()),
                    (Some(1), Some(1))
                );
                assert_eq!(p["TreatMissingData"], "notBreaching");
                let metrics = p["Metrics"].as_array().unwrap();
                for m in metrics.iter().filter(|m| m.get("MetricStat").is_some()) {
                    assert_eq!(m["MetricStat"]["Period"].as_u64(), Some(window.seconds()));
                    assert_eq!(m["MetricStat"]["Metric"]["Namespace"], "Payments");
                    let dims: Vec<(String, String)> = m["MetricStat"]["Metric"]["Dimensions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| {
                            (d["Name"].as_str().unwrap().to_owned(), d["Value"].as_str().unwrap().to_owned())
                        })
                        .collect();
                    assert_eq!(dims, slo.dimensions(file.service()));
                }
                assert_eq!(metrics.iter().filter(|m| m["ReturnData"] == true).count(), 1);
            }
            let composite = &resources[&id];
            assert_eq!(composite["Type"], "AWS::CloudWatch::CompositeAlarm");
            assert_eq!(
                composite["Properties"]["AlarmRule"]["Fn::Sub"],
                format!("ALARM(\"${{{id}Long.Arn}}\") AND ALARM(\"${{{id}Short.Arn}}\")")
            );
            assert_eq!(composite["Properties"]["AlarmName"], slo.alarm_name(file.service(), rule));
            let runbook = slo.runbook().unwrap();
            assert!(composite["Properties"]["AlarmDescription"].as_str().unwrap().contains(runbook));
        }
    }
}

#[test]
fn availability_divides_5xx_by_requests_and_latency_counts_values_above_the_threshold() {
    let fragment = alarms::fragment(&payments());
    let r = &fragment["Resources"];
    let availability = &r["PaymentsCreateAvailabilityPageFastLong"]["Properties"]["Metrics"];
    assert_eq!(availability[0]["MetricStat"]["Metric"]["MetricName"], "5xx");
    assert_eq!(availability[0]["MetricStat"]["Stat"], "Sum");
    assert_eq!(availability[1]["MetricStat"]["Metric"]["MetricName"], "Requests");
    // The long window counts from the minimum of requests on; the short one always.
    assert_eq!(
        availability[2]["Expression"],
        json!({"Fn::Sub": "IF(requests >= ${SloMinRequests}, bad / requests, 0)"})
    );
    let short = &r["PaymentsCreateAvailabilityPageFastShort"]["Properties"]["Metrics"];
    assert_eq!(short[2]["Expression"], "bad / requests");
    let latency = &r["PaymentsCreateLatencyTicketShort"]["Properties"]["Metrics"];
    assert_eq!(latency[0]["MetricStat"]["Metric"]["MetricName"], "Latency");
    // CloudWatch's percentile rank: values at or below 300 (lower bound exclusive, upper
    // inclusive), the evaluator's "equal to the threshold is good".
    assert_eq!(latency[0]["MetricStat"]["Stat"], "PR(:300)");
    assert_eq!(latency[1]["Expression"], "(100 - good) / 100");
    let latency = &r["PaymentsCreateLatencyTicketLong"]["Properties"]["Metrics"];
    assert_eq!(latency[1]["MetricStat"]["Stat"], "SampleCount");
    assert_eq!(
        latency[2]["Expression"],
        json!({"Fn::Sub": "IF(requests >= ${SloMinRequests}, (100 - good) / 100, 0)"})
    );
    let tenant = &r["PaymentsAcmeCreateAvailabilityPageSlowShort"]["Properties"]["Metrics"][0]["MetricStat"];
    assert_eq!(
        tenant["Metric"]["Dimensions"],
        json!([{"Name": "Route", "Value": "/payments"}, {"Name": "Tenant", "Value": "acme"}])
    );
    assert_eq!(tenant["Period"], 1_800);
    // Pages go to the page topic, tickets to the ticket topic, both only when set.
    let actions = |id: &str| r[id]["Properties"]["AlarmActions"]["Fn::If"].clone();
    assert_eq!(actions("PaymentsAvailabilityPageFast")[0], "SloHasPageTopic");
    assert_eq!(actions("PaymentsAvailabilityTicket")[1], json!([{"Ref": "SloTicketTopicArn"}]));
}

#[test]
fn one_error_in_a_quiet_hour_does_not_breach_the_long_window_but_an_outage_at_real_traffic_does() {
    let fragment = alarms::fragment(&payments());
    assert_eq!(
        fragment["Parameters"][alarms::MIN_REQUESTS_PARAMETER]["Default"].as_u64(),
        Some(u64::from(alarms::DEFAULT_MIN_REQUESTS))
    );
    let threshold = |id: &str| {
        fragment["Resources"][id]["Properties"]["Threshold"].as_f64().unwrap_or_else(|| panic!("{id}"))
    };
    let breaches = |id: &str, values: &[(&str, f64)]| alarm_value(&fragment, id, values) > threshold(id);
    let (long, short) = ("PaymentsAvailabilityPageFastLong", "PaymentsAvailabilityPageFastShort");
    // One request a minute, one 5xx: 1 of 60 in the hour is above the 1.44% threshold, and
    // the 5 minutes (1 of 5) too; the long window reads 0, so the alert (both) stays quiet.
    assert!(1.0 / 60.0 > threshold(long));
    assert!(!breaches(long, &[("requests", 60.0), ("bad", 1.0)]));
    assert!(breaches(short, &[("requests", 5.0), ("bad", 1.0)]));
    // Real traffic, a real outage: both windows breach, the alert pages.
    assert!(breaches(long, &[("requests", 6_000.0), ("bad", 600.0)]));
    assert!(breaches(short, &[("requests", 500.0), ("bad", 50.0)]));
    // The minimum itself, as the evaluator counts it: 200 requests count, 199 do not.
    let min = f64::from(alarms::DEFAULT_MIN_REQUESTS);
    assert!(breaches(long, &[("requests", min), ("bad", min)]));
    assert!(!breaches(long, &[("requests", min - 1.0), ("bad", min - 1.0)]));
    // Latency: `good` is the percentage of values within the threshold.
    let latency = "PaymentsCreateLatencyPageFastLong";
    assert!(!breaches(latency, &[("requests", 60.0), ("good", 50.0)]));
    assert!(breaches(latency, &[("requests", 6_000.0), ("good", 50.0)]));
}

#[test]
fn an_alerts_description_carries_its_slos_route_and_tenant_and_window_alarms_are_marked() {
    let fragment = alarms::fragment(&payments());
    let description =
        |id: &str| fragment["Resources"][id]["Properties"]["AlarmDescription"].as_str().unwrap().to_owned();
    let tenant = description("PaymentsAcmeCreateAvailabilityPageFast");
    assert!(
        tenant
            .ends_with("Runbook: https://runbooks.example.com/payments/tenant [route=/payments tenant=acme]"),
        "{tenant}"
    );
    let route = description("PaymentsCreateLatencyTicket");
    assert!(route.ends_with(" [route=/payments]"), "{route}");
    // A service-wide SLO has neither: no block.
    assert!(!description("PaymentsAvailabilityPageFast").contains('['));
    for (id, window) in
        [("PaymentsAvailabilityPageFastLong", "long"), ("PaymentsAcmeCreateAvailabilityTicketShort", "short")]
    {
        let text = description(id);
        assert!(text.ends_with(&format!(" [{}={window}]", alarms::WINDOW_LABEL)), "{text}");
    }
}

#[test]
fn descriptions_stay_within_cloudwatchs_1024_characters_at_every_limit() {
    let long = |n: usize| "x".repeat(n);
    let file = SloFile::parse(&format!(
        "[service]\nname = \"{}\"\nnamespace = \"P\"\n[[slo]]\nname = \"{}\"\nkind = \"latency\"\nobjective = 99.99999999999999\n\
         threshold_ms = 0.30000000000000004\nroute = \"/{}\"\ntenant = \"{}\"\nrunbook = \"https://{}\"\n\
         [[alert]]\nname = \"{}\"\nseverity = \"ticket\"\nburn_rate = 1.0000000000000002\nlong_window = \"7d\"\nshort_window = \"6d\"\n",
        long(64),
        long(64),
        long(127),
        long(128),
        long(504),
        long(64)
    ))
    .unwrap();
    let fragment = alarms::fragment(&file);
    for (id, resource) in fragment["Resources"].as_object().unwrap() {
        let text = resource["Properties"]["AlarmDescription"].as_str().unwrap();
        assert!(text.len() <= 1024, "{id}: {} characters", text.len());
    }
}

/// Runs cfn-lint once over the templates (it takes seconds to start): its exit code and
/// each template's findings, in order.
fn cfn_lint(templates: &[&Value]) -> (i32, Vec<String>) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let paths: Vec<PathBuf> = templates
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let path = dir.join(format!("slo-alarms-{}-{i}.json", std::process::id()));
            std::fs::write(&path, serde_json::to_string_pretty(t).unwrap()).unwrap();
            path
        })
        .collect();
    let out = Command::new("cfn-lint")
        .args(["--format", "parseable", "--"])
        .args(&paths)
        .output()
        .expect("cfn-lint is installed (pip install cfn-lint)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let findings = paths
        .iter()
        .map(|p| {
            let _ = std::fs::remove_file(p);
            let name = p.display().to_string();
            text.lines().filter(|l| l.starts_with(&name)).collect::<Vec<_>>().join("\n")
        })
        .collect();
    (out.status.code().unwrap_or(-1), findings)
}

#[test]
fn cfn_lint_finds_no_error_and_no_warning_in_templates_wrapping_the_fragment_and_does_catch_a_broken_one() {
    let full = alarms::template(&payments());
    // Only pages: no ticket parameter left unused.
    let pages = SloFile::parse(
        "[service]\nname = \"p\"\nnamespace = \"P\"\n[[slo]]\nname = \"a\"\nkind = \"availability\"\nobjective = 99.0\n\
         [[alert]]\nname = \"page\"\nseverity = \"page\"\nburn_rate = 10\nlong_window = \"1h\"\nshort_window = \"5m\"\n",
    )
    .unwrap();
    let pages = alarms::template(&pages);
    assert!(pages["Parameters"].get("SloTicketTopicArn").is_none());
    // The check is worth something only if cfn-lint reads these resources: a broken copy.
    let mut broken = full.clone();
    broken["Resources"]["PaymentsAvailabilityPageFastLong"]["Properties"]["ComparisonOperator"] =
        json!("MoreThan");
    broken["Resources"]["PaymentsAvailabilityPageFast"]["Properties"]["AlarmRule"]["Fn::Sub"] =
        json!("ALARM(\"${NoSuchAlarm.Arn}\")");

    let (code, findings) = cfn_lint(&[&full, &pages, &broken]);
    assert_eq!(findings[0], "", "cfn-lint on the payments alarms");
    assert_eq!(findings[1], "", "cfn-lint on the pages-only alarms");
    assert!(findings[2].contains("MoreThan") && findings[2].contains("NoSuchAlarm"), "{}", findings[2]);
    // Errors only come from the broken template (exit status 2: errors, no warnings).
    assert_eq!(code, 2, "{findings:?}");
}

use proptest::prelude::*;

/// Names that make the same alarm ids when put together (`a` + `page-long` and `a-page` +
/// `long`, `p-1` and `p1`, `page` + `Long` and `page-long`), and some that do not.
const NAMES: [&str; 9] = ["a", "a-page", "page", "page-long", "long", "page-short", "p-1", "p1", "ticket"];

proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 256, ..Default::default() })]

    /// A file that is accepted gives every SLO and rule its own three alarms: nothing is
    /// replaced in the template, no two alarms share a name.
    #[test]
    fn an_accepted_file_gives_three_alarms_of_its_own_per_slo_and_rule(
        slos in proptest::sample::subsequence(NAMES.to_vec(), 1..=3).prop_shuffle(),
        rules in proptest::sample::subsequence(NAMES.to_vec(), 1..=4).prop_shuffle(),
    ) {
        let mut text = "[service]\nname = \"payments\"\nnamespace = \"Payments\"\n".to_owned();
        for (i, name) in slos.iter().enumerate() {
            text += &format!("[[slo]]\nname = \"{name}\"\nkind = \"availability\"\nobjective = 99.9\nroute = \"/r{i}\"\n");
        }
        for name in &rules {
            text += &format!("[[alert]]\nname = \"{name}\"\nseverity = \"page\"\nburn_rate = 10\nlong_window = \"1h\"\nshort_window = \"5m\"\n");
        }
        let Ok(file) = SloFile::parse(&text) else { return Ok(()) };
        let fragment = alarms::fragment(&file);
        let resources = fragment["Resources"].as_object().unwrap();
        prop_assert_eq!(resources.len(), slos.len() * rules.len() * 3);
        let names: std::collections::BTreeSet<&str> =
            resources.values().map(|r| r["Properties"]["AlarmName"].as_str().unwrap()).collect();
        prop_assert_eq!(names.len(), resources.len());
    }
}
