//! `lift-harness cost` on the payments service's real Lambda binary: usage measured per
//! route in the local Lambda runtime on DynamoDB Local, priced with the price table.

use std::path::Path;

use lift_harness::cost::{load_profile, measure, price, Plan};
use lift_monitoring::cost::{Arch, PriceTable, BYTES_PER_GB};

fn plan() -> Plan {
    Plan::from_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cost.toml")).expect("the payments cost plan")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_costs_per_route_are_measured_and_priced_by_hand_arithmetic() {
    let plan = plan();
    // The memory lift.toml deploys (cost.toml's `deploy`).
    let memory = plan.function.memory_mb;
    assert_eq!(memory, 512);
    let bin = Path::new(env!("CARGO_BIN_EXE_payments"));
    let m = measure(&plan, bin, memory, 6).await.expect("a measured run");
    assert!(m.failures.is_empty(), "{:?}", m.failures);
    assert_eq!(
        m.routes.iter().map(|u| u.route.as_str()).collect::<Vec<_>>(),
        ["create", "get", "list", "refund"]
    );
    for u in &m.routes {
        assert_eq!(u.invocations, 6, "{u:?}");
        assert_eq!(u.memory_mb, memory);
        assert!(u.billed_ms >= 6, "{u:?}");
        // Every request goes through the DynamoDB-backed rate limiter and the audit trail.
        assert!(u.write_units >= 6.0, "{} wrote nothing: {u:?}", u.route);
        assert_eq!(u.dynamodb_unreported, 0, "{u:?}");
        assert!(u.log_events >= 6 * 3, "START, END and REPORT at least: {u:?}");
        // Active tracing: one trace per request, sent by the function to the daemon.
        assert_eq!(u.traces, 6, "{u:?}");
    }
    let by = |r: &str| m.routes.iter().find(|u| u.route == r).unwrap().clone();
    assert!(by("get").read_units >= 6.0 * 0.5, "a get reads the payment: {:?}", by("get"));
    // A create stores the payment, its idempotency record and its audit record.
    assert!(by("create").write_units_per_request() > by("get").write_units_per_request());
    assert!(m.cold_start_init_ms.is_some());

    let table = PriceTable::embedded();
    let report = price(m.clone(), &table, "us-east-1", Arch::X86_64, None).unwrap();
    for (u, (route, c)) in m.routes.iter().zip(&report.per_million) {
        assert_eq!(&u.route, route);
        let n = u.invocations as f64;
        // us-east-1 x86_64, typed from the table: $0.0000166667 per GB-s, $0.20 per million
        // requests, HTTP API $1.00 per million, $0.125 / $0.625 per million RRU / WRU,
        // $0.50 per GB of logs, $5.00 per million traces.
        let compute = 1e6 * (u.billed_ms as f64 / n / 1000.0) * (f64::from(memory) / 1024.0) * 0.0000166667;
        let ddb = u.read_units / n * 0.125 + u.write_units / n * 0.625;
        let logs = 1e6 * (u.log_bytes as f64 / n) / BYTES_PER_GB * 0.50;
        let xray = u.traces as f64 / n * 5.00;
        let hand = compute + 0.20 + 1.00 + ddb + logs + xray;
        assert!((c.lambda_compute - compute).abs() < 1e-9, "{route}: {c:?}");
        assert!((c.total - hand).abs() < 1e-9, "{route}: {} vs {hand}", c.total);
    }
    let arm = price(m.clone(), &table, "us-east-1", Arch::Arm64, None).unwrap();
    for ((route, x86), (_, arm)) in report.per_million.iter().zip(&arm.per_million) {
        assert!(arm.total < x86.total, "{route}: arm64 {} vs x86 {}", arm.total, x86.total);
    }
    let err = price(m.clone(), &table, "xx-nowhere-1", Arch::X86_64, None).unwrap_err().to_string();
    assert!(err.contains("xx-nowhere-1"), "{err}");

    let profile =
        load_profile(&Path::new(env!("CARGO_MANIFEST_DIR")).join("traffic.toml"), Some(&plan)).unwrap();
    // The architecture lift.toml deploys (traffic.toml's `deploy`).
    assert_eq!(profile.arch, Arch::Arm64);
    let projected = price(m, &table, "us-east-1", profile.arch, Some(&profile)).unwrap();
    let p = projected.projection.as_ref().unwrap();
    assert_eq!(p.requests, 50.0 * 3600.0 * 730.0);
    assert!(p.total > p.lambda_requests + p.api_gateway && p.metric_series > 0, "{p:?}");
    println!("{}", projected.table());
}
