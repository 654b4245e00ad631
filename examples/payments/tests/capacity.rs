//! `lift-harness capacity` on the payments example's real Lambda binary: the durations in the
//! JSON report are measured, the concurrency projection is rate × measured duration of the
//! same JSON, and a hot tenant's partition is flagged under a skewed profile and not under
//! an even one.

use lift_harness::capacity::{self, CapacityArgs};
use serde_json::Value;

const PROFILE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../monitoring/profiles/capacity_payments.toml");
/// The payments table's name in reports (the profile's `capacity-payments-{run}`).
const TABLE: &str = "capacity-payments";

async fn run(extra: &[&str]) -> Value {
    let out = std::env::temp_dir().join(format!("lift-capacity-{}.json", uuid::Uuid::new_v4().simple()));
    let mut argv = vec!["capacity", PROFILE, "--quiet", "--bin", env!("CARGO_BIN_EXE_payments")];
    let out_arg = out.display().to_string();
    argv.extend(["--out", &out_arg, "--invocations", "25", "--peak-rps", "2000"]);
    argv.extend(extra);
    capacity::run(CapacityArgs::parse_from(argv).unwrap()).await.expect("the capacity run");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    json
}

/// Nearest rank, recomputed here rather than trusted from the report.
fn nearest_rank(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn payments_keys(json: &Value) -> Vec<&Value> {
    json["keys"].as_array().unwrap().iter().filter(|k| k["table"] == TABLE).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_measures_payments_and_finds_the_hot_tenant() {
    let even = run(&[]).await;
    let peak = even["profile"]["peak_rps"].as_f64().unwrap();
    let pct = even["profile"]["percentile"].as_f64().unwrap();
    let mix = even["profile"]["mix"].as_object().unwrap();
    let total_weight: f64 = mix.values().map(|w| w.as_f64().unwrap()).sum();
    let mut planned = 0.0;
    for (route, weight) in mix {
        let measured = &even["measurements"]["routes"][route];
        let durations: Vec<f64> =
            measured["durations_ms"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap()).collect();
        assert_eq!(durations.len(), 25, "{route}");
        assert!(durations.iter().all(|d| *d > 0.0), "{route}: {durations:?}");
        // Little's law from the same JSON: rate × measured duration.
        let rate = peak * weight.as_f64().unwrap() / total_weight;
        let expected = rate * nearest_rank(&durations, pct) / 1000.0;
        let row = even["routes"].as_array().unwrap().iter().find(|r| r["route"] == route.as_str()).unwrap();
        assert!((row["concurrency_planned"].as_f64().unwrap() - expected).abs() < 1e-9, "{route}");
        let mean = durations.iter().sum::<f64>() / durations.len() as f64;
        assert!((row["concurrency_mean"].as_f64().unwrap() - rate * mean / 1000.0).abs() < 1e-9, "{route}");
        planned += expected;
    }
    assert!(planned > 0.0);
    assert!((even["concurrency"]["planned"].as_f64().unwrap() - planned).abs() < 1e-9);
    // The keys come from recorded accesses: creates wrote under tenants' partitions.
    let accesses = even["measurements"]["accesses"].as_array().unwrap();
    assert!(accesses.iter().any(|a| a["route"] == "create" && a["table"] == TABLE && a["kind"] == "write"));
    let keys = payments_keys(&even);
    assert!(keys.len() > 3, "tenants' partitions: {keys:?}");
    assert!(keys.iter().all(|k| k["key"].as_str().unwrap().starts_with("TENANT#tenant-")), "{keys:?}");
    assert!(keys.iter().all(|k| k["hot"] == false), "an even spread has no hot tenant: {keys:?}");
    // Keys, not items: the card number and the customer's email never reach the report.
    let text = even.to_string();
    assert!(!text.contains("4111 1111") && !text.contains("capacity@example.com"));

    let skewed = run(&["--hot-tenant-share", "0.7"]).await;
    let hot = format!("{TABLE} TENANT#tenant-0");
    let flagged: Vec<&str> =
        skewed["hot_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert!(flagged.contains(&hot.as_str()), "{flagged:?}");
    let top = payments_keys(&skewed)[0];
    assert_eq!(top["key"], "TENANT#tenant-0");
    assert!(top["wcu_per_s"].as_f64().unwrap() >= 1000.0 || top["rcu_per_s"].as_f64().unwrap() >= 3000.0);
    let months = [&top["write_limit_month"], &top["read_limit_month"]];
    assert!(months.iter().any(|m| m.as_u64() == Some(0)), "a hot key is at its limit today: {top}");
}
