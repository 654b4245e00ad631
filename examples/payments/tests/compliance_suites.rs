//! The compliance suites in `features/` (PCI DSS, SOC 2, GDPR; HIPAA is health-records'),
//! run with cucumber against payments on DynamoDB Local: they all pass, with every
//! requirement of those frameworks exercised; the PCI suite
//! fails when the payments handler logs raw card numbers, and then the Markdown and JSON
//! reports say the same; a typo in a step and a feature that does not parse fail the run,
//! naming the file, the line and the closest step.

use std::path::Path;

use payments::workload::PaymentsCompliance;

/// Each framework's heading in the Markdown report: `## PCI-DSS — Fail` → ("PCI-DSS", "Fail").
fn markdown_verdicts(markdown: &str) -> Vec<(String, String)> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| h.split_once(" — "))
        .map(|(f, s)| (f.to_owned(), s.to_owned()))
        .collect()
}

/// The JSON status in the Markdown's words.
fn status_words(status: &str) -> &str {
    match status {
        "NotExercised" => "Not exercised",
        other => other,
    }
}

fn assert_reports_agree(run: &lift_harness::compliance::SuiteRun) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&run.report).expect("report")).expect("json");
    let markdown = std::fs::read_to_string(&run.report_markdown).expect("markdown");
    let headings = markdown_verdicts(&markdown);
    let frameworks = report["frameworks"].as_array().expect("frameworks");
    assert_eq!(headings.len(), frameworks.len(), "{markdown}");
    for ((name, words), f) in headings.iter().zip(frameworks) {
        assert_eq!(words, status_words(f["status"].as_str().unwrap()), "{name}: Markdown and JSON disagree");
    }
    report
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join("target/compliance");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let run = rt
        .block_on(lift_harness::compliance::run(PaymentsCompliance::default(), &root.join("features"), &out))
        .expect("the suites ran");
    println!(
        "compliance suites: {} steps passed, {} failed; reports in {}",
        run.passed,
        run.failed,
        out.display()
    );
    assert!(run.problems.is_empty(), "{:?}", run.problems);
    assert_eq!(run.failed, 0, "a compliance step failed (see {})", run.junit.display());
    // 77 steps in the PCI, SOC 2 and GDPR features (the HIPAA ones moved to health-records).
    assert!(run.passed >= 77, "only {} steps ran", run.passed);
    let junit = std::fs::read_to_string(&run.junit).expect("junit");
    assert!(junit.contains("<testsuite") && junit.contains("PCI DSS"), "{junit}");
    let report = assert_reports_agree(&run);
    assert_eq!(report["frameworks"][0]["framework"], "PciDss");
    for framework in report["frameworks"].as_array().expect("frameworks") {
        if framework["framework"] == "Hipaa" {
            // HIPAA is the health-records service's suite (examples/health-records/features):
            // payments runs no scenario of it, so it is never Pass here.
            assert_ne!(framework["status"], "Pass", "{framework}");
            assert_eq!(framework["scenarios"], serde_json::json!([]), "{framework}");
            continue;
        }
        assert_eq!(framework["status"], "Pass", "{framework}");
        assert_eq!(framework["not_exercised"], serde_json::json!([]), "{framework}");
        for r in framework["requirements"].as_array().expect("requirements") {
            assert!(r["applied"].as_u64().unwrap() > 0 && r["violated"] == 0 && r["unknown"] == 0, "{r}");
            println!(
                "{}: applied {}, held {}, violated {}, blocked {}, unknown {}",
                r["id"].as_str().unwrap(),
                r["applied"],
                r["held"],
                r["violated"],
                r["blocked"],
                r["unknown"]
            );
        }
        let scenarios = framework["scenarios"].as_array().expect("scenarios per framework");
        assert!(scenarios.len() >= 3, "{framework}");
        assert!(scenarios.iter().all(|s| s["passed"] == true));
        let audit = framework["audit"].as_array().expect("audit chains");
        assert!(
            !audit.is_empty()
                && audit.iter().all(|a| a["problem"].is_null() && a["checkpoints"].as_u64() > Some(0))
        );
    }
    let markdown = std::fs::read_to_string(&run.report_markdown).expect("markdown");
    for row in markdown.lines().filter(|l| l.starts_with("| soc2 |") || l.starts_with("| pci_dss |")) {
        let requirements = row.split('|').nth(3).unwrap_or_default();
        assert!(
            !requirements.contains("soc2") && !requirements.contains("pci_dss"),
            "a framework tag as a requirement: {row}"
        );
        assert!(!requirements.trim().is_empty(), "{row}");
    }
    assert!(markdown.contains("signed checkpoint(s)"), "{markdown}");

    // The deliberately broken handler: the same PCI suite must fail, and both reports say so.
    let broken = rt
        .block_on(lift_harness::compliance::run(
            PaymentsCompliance::with_broken_pan_logging(),
            &root.join("features/pci_dss.feature"),
            &out.join("broken"),
        ))
        .expect("the suite ran");
    assert!(broken.failed > 0, "a handler logging raw card numbers passed the PCI suite");
    let report = assert_reports_agree(&broken);
    assert_eq!(report["frameworks"][0]["status"], "Fail");
    for f in report["frameworks"].as_array().unwrap() {
        assert_ne!(f["status"], "Pass", "no scenario of its own ran: {}", f["framework"]);
    }
    println!("the PCI suite fails with a handler that logs card numbers: {} failed", broken.failed);

    // A typo and a feature that does not parse fail the run with file, line and advice.
    let dir = out.join("bad-features");
    std::fs::create_dir_all(&dir).expect("a directory");
    std::fs::write(
        dir.join("typo.feature"),
        "@pci_dss\nFeature: typo\n\n  Scenario: a typo\n    Given the service runs in region eu-west-1\n    Then the anwser is 201\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("broken.feature"),
        "@gdpr\nFeature: broken\n  Scenario: x\n    Then the answer is 200\nFeature: twice\n",
    )
    .expect("write");
    let bad = rt
        .block_on(lift_harness::compliance::run(PaymentsCompliance::default(), &dir, &out.join("bad")))
        .expect("the suite ran");
    assert!(bad.failed >= 2, "{bad:?}");
    assert!(
        bad.problems.iter().any(|p| p.contains("typo.feature:6") && p.contains("\"the answer is {int}\"")),
        "{:?}",
        bad.problems
    );
    assert!(
        bad.problems.iter().any(|p| p.contains("broken.feature: does not parse: Error at ")),
        "{:?}",
        bad.problems
    );
    let report = assert_reports_agree(&bad);
    for f in report["frameworks"].as_array().unwrap() {
        assert_ne!(f["status"], "Pass", "{}", f["framework"]);
    }
}
