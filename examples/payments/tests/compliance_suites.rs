//! The compliance suites in `features/`, run with cucumber against payments on DynamoDB
//! Local: they all pass, and the PCI suite fails when the payments handler logs raw card
//! numbers.

use std::path::Path;

use payments::workload::PaymentsCompliance;

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
    assert_eq!(run.failed, 0, "a compliance step failed (see {})", run.junit.display());
    assert!(run.passed >= 40, "only {} steps ran", run.passed);
    let junit = std::fs::read_to_string(&run.junit).expect("junit");
    assert!(junit.contains("<testsuite") && junit.contains("PCI DSS"), "{junit}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&run.report).expect("report")).expect("json");
    assert_eq!(report["frameworks"][0]["framework"], "PciDss");
    for framework in report["frameworks"].as_array().expect("frameworks") {
        assert_eq!(framework["status"], "Pass", "{framework}");
        let scenarios = framework["scenarios"].as_array().expect("scenarios per framework");
        assert!(scenarios.len() >= 2, "{framework}");
        assert!(scenarios.iter().all(|s| s["passed"] == true));
    }

    // The deliberately broken handler: the same PCI suite must fail.
    let broken = rt
        .block_on(lift_harness::compliance::run(
            PaymentsCompliance::with_broken_pan_logging(),
            &root.join("features/pci_dss.feature"),
            &out.join("broken"),
        ))
        .expect("the suite ran");
    assert!(broken.failed > 0, "a handler logging raw card numbers passed the PCI suite");
    println!("the PCI suite fails with a handler that logs card numbers: {} failed", broken.failed);
}
