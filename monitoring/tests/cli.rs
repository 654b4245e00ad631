//! The `lift-monitoring` binary: `slo check`, `slo alarms`, `slo eval` and their exit codes.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PAYMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/slo/payments.toml");

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lift-monitoring")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn log(name: &str, lines: &[String]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}.log", std::process::id()));
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
fn check_prints_budgets_thresholds_and_the_dimension_sets_to_publish() {
    let out = run(&["slo", "check", PAYMENTS]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("create-latency (route /payments): 99% within 300 ms over 30d"), "{stdout}");
    assert!(stdout.contains("page page-fast: 14.4x over 1h and 5m -> error ratio above 1.4400%"), "{stdout}");
    assert!(stdout.contains("  []\n  [Route]\n  [Route, Tenant]\n"), "{stdout}");
}

#[test]
fn a_contradictory_file_exits_2_naming_the_key() {
    let out =
        run(&["slo", "check", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/contradictory.toml")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("contradictory.toml: slo[1].objective: slo[0] `availability` already sets"),
        "{stderr}"
    );
    let out = run(&["slo", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage:"));
}

#[test]
fn alarms_prints_the_fragment_or_a_whole_template() {
    let out = run(&["slo", "alarms", PAYMENTS]);
    assert!(out.status.success());
    let fragment: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(fragment.get("AWSTemplateFormatVersion").is_none());
    // Three alarms per SLO and rule, and the outage alarm.
    assert_eq!(fragment["Resources"].as_object().unwrap().len(), 4 * 3 * 3 + 1);
    let out = run(&["slo", "alarms", "--template", PAYMENTS]);
    let template: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(template["AWSTemplateFormatVersion"], "2010-09-09");
    assert_eq!(template["Resources"], fragment["Resources"]);
}

#[test]
fn eval_exits_1_on_a_log_of_invocations_that_wrote_no_emf() {
    // `aws logs tail` of a function that times out on every invocation: no EMF document,
    // so no SLO has data; the outage alert fires instead of "no data" (exit 3).
    let lines: Vec<String> = (0..20)
        .map(|k| {
            format!(
                "{} 2026/01/01/[$LATEST]8f1c REPORT RequestId: r{k}\tDuration: 3000.00 ms\tStatus: timeout",
                lift_monitoring::evaluator::utc(support::minute(k / 2))
            )
        })
        .collect();
    let out = run(&["slo", "eval", PAYMENTS, log("outage", &lines).to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FIRING   availability outage (page)"), "{stdout}");
}

#[test]
fn eval_exits_1_while_firing_0_when_healthy_and_3_without_data() {
    // 99.9% service-wide SLO; 100 requests a minute for 20 minutes.
    let firing = log("firing", &support::series(0..=20, 100, |m| if m >= 15 { 50 } else { 0 }));
    let out = run(&["slo", "eval", PAYMENTS, firing.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // At b=16 the 5m and 1h windows hold 50 of 500 and 50 of 1600: every rule fires.
    // minute(16) is 2026-01-01T00:16:00Z.
    assert_eq!(support::minute(16), 1_767_225_600_000 + 16 * 60_000);
    assert!(stdout.contains("2026-01-01T00:16:00Z FIRING   availability page-fast (page)"), "{stdout}");
    // The route and tenant SLOs read other dimension sets, which this log does not publish.
    assert!(stdout.contains("create-latency           NO DATA"), "{stdout}");

    let healthy = log("healthy", &support::series(0..=20, 100, |_| 0));
    let out = run(&["slo", "eval", "--json", PAYMENTS, healthy.to_str().unwrap()]);
    // Healthy service-wide, but the other SLOs have no data: 3, not 0.
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["slos"][0]["status"], "healthy");
    assert_eq!(report["slos"][1]["status"], "no-data");

    let only = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("only-{}.toml", std::process::id()));
    std::fs::write(&only, "[service]\nname = \"payments\"\nnamespace = \"Payments\"\n[[slo]]\nname = \"availability\"\nkind = \"availability\"\nobjective = 99.9\n").unwrap();
    let out = run(&["slo", "eval", only.to_str().unwrap(), healthy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let empty = log("empty", &[]);
    let out = run(&["slo", "eval", only.to_str().unwrap(), empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).contains("NO DATA"));

    let broken = log("broken", &["{\"_aws\":{}}".to_owned()]);
    let out = run(&["slo", "eval", only.to_str().unwrap(), broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("line 1: not an EMF document"), "{}", text(&out.stderr));
}

/// A burn that paged and stopped still spent the budget: no alert fires at the end, but the
/// SLO is not healthy, and `slo eval` says so with its own exit status.
#[test]
fn eval_exits_4_when_the_budget_is_spent_though_nothing_fires_at_the_end() {
    let only = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("spent-{}.toml", std::process::id()));
    std::fs::write(&only, "[service]\nname = \"payments\"\nnamespace = \"Payments\"\n[[slo]]\nname = \"availability\"\nkind = \"availability\"\nobjective = 99.9\n").unwrap();
    // A day at 10 requests a minute, one of them failing in each minute of the first hour:
    // 60 bad of 14,410 is 0.42%, four times the 0.1% budget; the last six hours are clean,
    // so every rule's short window is clean at the end.
    let day = log("spent", &support::series(0..=1440, 10, |m| i64::from(m < 60)));
    let out = run(&["slo", "eval", "--json", only.to_str().unwrap(), day.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slo = &report["slos"][0];
    assert_eq!((&slo["status"], &slo["firing"]), (&"exhausted".into(), &serde_json::json!([])));
    assert!(slo["budget_remaining"].as_f64().unwrap() < -2.0, "{slo}");
    let fired = report["transitions"].as_array().unwrap();
    assert!(fired.iter().any(|t| t["state"] == "firing"), "it paged on the way: {fired:?}");

    let out = run(&["slo", "eval", only.to_str().unwrap(), day.to_str().unwrap()]);
    assert!(text(&out.stdout).contains("availability             EXHAUSTED"), "{}", text(&out.stdout));
}

/// One document stamped in seconds among documents in milliseconds would have the evaluator
/// step through 56 years of minutes; the log is refused, naming the line.
#[test]
fn eval_refuses_a_log_spanning_decades_naming_the_line() {
    let mut lines = support::series(0..=2, 10, |_| 0);
    lines.insert(5, support::request_doc(support::minute(1) / 1000, &[&[]], &[], false, 5.0));
    let mixed = log("seconds", &lines);
    let out = run(&["slo", "eval", PAYMENTS, mixed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("more than 400 days") && stderr.contains("on line 6"), "{stderr}");
}
