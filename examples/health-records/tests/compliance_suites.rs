//! The HIPAA suite (`examples/health-records/features/hipaa.feature`), run with cucumber
//! against the health-records service on DynamoDB Local and the KMS mock: it passes with
//! every HIPAA requirement exercised, and the report says so.

use std::path::Path;

use health_records::workload::HealthRecordsCompliance;

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = here.join("../../target/compliance-health-records");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let run = rt
        .block_on(lift_harness::compliance::run(HealthRecordsCompliance, &here.join("features"), &out))
        .expect("the suite ran");
    println!("hipaa suite: {} steps passed, {} failed; reports in {}", run.passed, run.failed, out.display());
    assert!(run.problems.is_empty(), "{:?}", run.problems);
    assert_eq!(run.failed, 0, "a compliance step failed (see {})", run.junit.display());
    assert!(run.passed >= 60, "only {} steps ran", run.passed);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&run.report).expect("report")).expect("json");
    let hipaa = report["frameworks"]
        .as_array()
        .expect("frameworks")
        .iter()
        .find(|f| f["framework"] == "Hipaa")
        .expect("a HIPAA section");
    assert_eq!(hipaa["status"], "Pass", "{hipaa}");
    assert_eq!(hipaa["not_exercised"], serde_json::json!([]), "{hipaa}");
    for r in hipaa["requirements"].as_array().expect("requirements") {
        assert!(r["applied"].as_u64().unwrap() > 0 && r["violated"] == 0 && r["unknown"] == 0, "{r}");
    }
    let scenarios = hipaa["scenarios"].as_array().expect("scenarios");
    assert!(scenarios.len() >= 8 && scenarios.iter().all(|s| s["passed"] == true), "{scenarios:?}");
}
