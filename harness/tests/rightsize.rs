//! Local power tuning on a CPU-bound function: with the CPU share set by the CFS quota,
//! duration falls as memory grows up to one vCPU.

use lift_harness::cost::rightsize::{power_tune, Target};
use lift_harness::lambda::sandbox::cgroups_for_test;
use lift_monitoring::cost::rightsize::{recommend, DEFAULT_BALANCE_WEIGHT};
use lift_monitoring::cost::{Arch, PriceTable};

/// CPU work (not sleep) of about 15-40 ms at one full CPU in a debug build.
const BURN: &str = r#"{"action":"burn","iterations":BURN_ITERATIONS}"#;
const BURN_ITERATIONS: u64 = 2_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_function_is_faster_with_more_memory_up_to_one_vcpu() {
    let target = Target::Payload {
        name: "burn".into(),
        bin: env!("CARGO_BIN_EXE_lambda-fixture").into(),
        payload: BURN.replace("BURN_ITERATIONS", &BURN_ITERATIONS.to_string()).into_bytes(),
        env: vec![],
    };
    let samples = power_tune(&target, &[256, 1769], 1, 5).await.expect("measured");
    assert_eq!(samples.len(), 2);
    assert!(samples.iter().all(|s| s.duration_ms.len() == 5 && s.billed_ms.len() == 5));
    let table = PriceTable::embedded();
    let prices = table.region("us-east-1").unwrap().lambda.arch(Arch::X86_64).clone();
    let r = recommend(&samples, &prices, DEFAULT_BALANCE_WEIGHT).unwrap();
    let p50 = |mb: u32| r.sizes.iter().find(|s| s.memory_mb == mb).unwrap().duration_p50_ms;
    println!("p50 at 256 MB {:.1} ms, at 1769 MB {:.1} ms", p50(256), p50(1769));
    // Billed duration is the real one rounded up to the millisecond (of whole microseconds).
    for s in &samples {
        for (d, b) in s.duration_ms.iter().zip(&s.billed_ms) {
            assert!(*b as f64 >= d - 0.001 && (*b as f64) < d + 1.0, "{s:?}");
        }
    }
    if !cgroups_for_test("the shape assertion of rightsize (no CPU quota applies)") {
        return;
    }
    // 256/1769 of a CPU against a whole one: about 5-7 times slower (the quota is spent in
    // 100 ms periods); anything above 2.5 shows the share is applied.
    assert!(p50(256) > 2.5 * p50(1769), "256 MB {:.1} ms vs 1769 MB {:.1} ms", p50(256), p50(1769));
    assert_eq!(r.fastest, 1769);
}

/// An answer refusing the event (401 here, as an app with auth gives an event without
/// credentials) measures the refusal, not the work: no size is measured from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_is_not_a_sample() {
    let target = Target::Payload {
        name: "refusing".into(),
        bin: env!("CARGO_BIN_EXE_lambda-fixture").into(),
        payload: br#"{"action":"status","status":401}"#.to_vec(),
        env: vec![],
    };
    let err = power_tune(&target, &[256], 0, 2).await.expect_err("a 401 was measured as the work");
    assert!(err.to_string().contains("answered 401"), "{err}");
}

/// Without cgroups no CPU share or memory limit applies, so every size runs at full speed:
/// `rightsize` refuses to recommend a size rather than pick one from durations that say
/// nothing about memory.
#[test]
fn without_cgroups_no_size_is_recommended() {
    let html = std::env::temp_dir().join(format!("rightsize-{}.html", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .args(["rightsize", "--bin", env!("CARGO_BIN_EXE_lambda-fixture")])
        .args(["--payload", r#"{"action":"burn","iterations":1000}"#])
        .args(["--memory", "128,256", "--invocations", "1", "--warmup", "0", "--html"])
        .arg(&html)
        .env("LIFT_LAMBDA_NO_CGROUPS", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a size was recommended without a CPU limit:\n{stdout}\n{stderr}");
    assert!(stderr.contains("no size can be recommended"), "{stderr}");
    assert!(!stdout.contains("cheapest"), "{stdout}");
    assert!(!html.exists(), "no chart of durations that say nothing");
}
