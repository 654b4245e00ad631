//! The budget gate against real criterion results: a layer over budget fails the gate (and
//! the `lift-harness budget` exit code), a cheap one passes, and bad inputs give clear errors.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use lift_harness::budget::{
    history, BudgetError, Budgets, CriterionResults, Gate, GateFailed, HistoryEntry, HistoryRecord,
    RemeasureReason, Report, TrendPolicy, TrendReport, TrendVerdict, Verdict, HISTORY_ENV,
};
use tower::{Layer, Service, ServiceExt};

/// How long the slow layer busy-spins per call.
const SPIN: Duration = Duration::from_micros(20);

/// A layer that busy-spins (not sleeps: the CPU time is the point) before the inner call.
#[derive(Clone, Copy)]
struct SpinLayer(Duration);

#[derive(Clone)]
struct Spin<S> {
    inner: S,
    spin: Duration,
}

impl<S> Layer<S> for SpinLayer {
    type Service = Spin<S>;

    fn layer(&self, inner: S) -> Spin<S> {
        Spin { inner, spin: self.0 }
    }
}

impl<S: Service<u64>> Service<u64> for Spin<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: u64) -> S::Future {
        spin(self.spin);
        self.inner.call(req)
    }
}

/// A layer that adds nothing: its service forwards every call.
#[derive(Clone, Copy)]
struct PassThroughLayer;

#[derive(Clone)]
struct PassThrough<S>(S);

impl<S> Layer<S> for PassThroughLayer {
    type Service = PassThrough<S>;

    fn layer(&self, inner: S) -> PassThrough<S> {
        PassThrough(inner)
    }
}

impl<S: Service<u64>> Service<u64> for PassThrough<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: u64) -> S::Future {
        self.0.call(req)
    }
}

/// The bare no-op service: answers at once.
type Noop = tower::util::ServiceFn<fn(u64) -> std::future::Ready<Result<u64, Infallible>>>;

fn noop() -> Noop {
    tower::service_fn(|n| std::future::ready(Ok(n)))
}

/// Benches `<group>/bare` (the no-op) and `<group>/layer` (the layer over the same no-op),
/// the way the bench files do.
fn bench_group<L>(c: &mut Criterion, rt: &tokio::runtime::Runtime, group: &str, layer: L)
where
    L: Layer<Noop>,
    L::Service: Service<u64, Response = u64, Error = Infallible> + Clone,
{
    let bare = noop();
    let layered = layer.layer(noop());
    let mut g = c.benchmark_group(group);
    // The machine's speed before and after the group: a fixed 1 µs of spinning.
    g.bench_function("calibrate_before", |b| b.iter(|| spin(CALIBRATION_SPIN)));
    g.bench_function("bare", |b| {
        b.to_async(rt).iter(|| {
            let svc = bare; // the no-op is `Copy`
            async move { black_box(svc.oneshot(black_box(1)).await) }
        })
    });
    g.bench_function("layer", |b| {
        b.to_async(rt).iter(|| {
            let svc = layered.clone();
            async move { black_box(svc.oneshot(black_box(1)).await) }
        })
    });
    g.bench_function("calibrate_after", |b| b.iter(|| spin(CALIBRATION_SPIN)));
    g.finish();
}

/// How long the calibration workload of these tests spins.
const CALIBRATION_SPIN: Duration = Duration::from_micros(1);

fn spin(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

/// A fresh directory under cargo's per-test temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("budget-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Criterion results for `slow_layer` and `pass_through`, measured once per test process
/// (benches run one at a time, so they do not disturb each other).
fn measured() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("criterion");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut c = Criterion::default()
            .output_directory(&dir)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .sample_size(10)
            .without_plots();
        bench_group(&mut c, &rt, "slow_layer", SpinLayer(SPIN));
        bench_group(&mut c, &rt, "pass_through", PassThroughLayer);
        dir
    })
}

fn write_budgets(text: &str) -> PathBuf {
    let path = temp_dir("budgets").join("budgets.toml");
    std::fs::write(&path, text).expect("write budgets");
    path
}

const BOTH: &str = r#"
[budgets.slow_layer]
budget_ns = 5000
description = "a layer that spins 20 µs"

[budgets.pass_through]
budget_ns = 5000
description = "a layer that only forwards"
"#;

const CHEAP_ONLY: &str = "[budgets.pass_through]\nbudget_ns = 5000\n";

/// Writes `<dir>/<group>/<function>/new/estimates.json` with this median.
fn fake_estimates(dir: &Path, group: &str, function: &str, median_ns: f64) {
    let new = dir.join(group).join(function).join("new");
    std::fs::create_dir_all(&new).unwrap();
    let json = serde_json::json!({
        "mean": { "point_estimate": median_ns, "standard_error": 1.0,
                  "confidence_interval": { "confidence_level": 0.95, "lower_bound": median_ns, "upper_bound": median_ns } },
        "median": { "point_estimate": median_ns, "standard_error": 1.0,
                    "confidence_interval": { "confidence_level": 0.95, "lower_bound": median_ns, "upper_bound": median_ns } },
        "median_abs_dev": { "point_estimate": 0.0, "standard_error": 0.0,
                            "confidence_interval": { "confidence_level": 0.95, "lower_bound": 0.0, "upper_bound": 0.0 } },
        "slope": null,
        "std_dev": { "point_estimate": 0.0, "standard_error": 0.0,
                     "confidence_interval": { "confidence_level": 0.95, "lower_bound": 0.0, "upper_bound": 0.0 } }
    });
    std::fs::write(new.join("estimates.json"), json.to_string()).unwrap();
}

#[test]
fn a_slow_layer_fails_the_gate_and_a_cheap_one_passes() {
    let dir = measured();
    let budgets = Budgets::load(write_budgets(BOTH)).unwrap();
    let report = Gate::new(budgets, CriterionResults::new(dir)).check().unwrap();
    println!("{report}");

    let slow = report.group("slow_layer").unwrap();
    assert_eq!(slow.verdict(), Verdict::Fail);
    let m = slow.measurement().unwrap();
    // The spin dominates: at least most of 20 µs over the bare service, whatever the noise.
    assert!(m.overhead_ns() > 15_000.0, "slow overhead {} ns", m.overhead_ns());
    assert!(m.ratio().unwrap() > 2.0);

    let cheap = report.group("pass_through").unwrap();
    assert_eq!(cheap.verdict(), Verdict::Pass, "{report}");

    assert!(!report.passed());
    assert_eq!(
        report.ensure_passed(),
        Err(GateFailed { over_budget: vec!["slow_layer".into()], missing: vec![], stale: vec![] })
    );
    let table = report.to_string();
    assert!(table.lines().any(|l| l.starts_with("slow_layer") && l.ends_with("FAIL")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("pass_through") && l.ends_with("PASS")), "{table}");
    assert!(table.ends_with("gate FAILED"), "{table}");

    let cheap_only = Budgets::load(write_budgets(CHEAP_ONLY)).unwrap();
    let report = Gate::new(cheap_only, CriterionResults::new(dir)).check().unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.ensure_passed(), Ok(()));
}

#[test]
fn the_command_exits_non_zero_when_a_bench_is_over_budget() {
    let dir = measured();
    let json = temp_dir("json").join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .env(HISTORY_ENV, temp_dir("history").join("history.jsonl"))
        .arg("budget")
        .arg("--budgets")
        .arg(write_budgets(BOTH))
        .arg("--criterion-dir")
        .arg(dir)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("layer median") && stdout.contains("ratio"), "{stdout}");
    assert!(stderr.contains("budget gate failed: over budget: slow_layer"), "{stderr}");

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["groups"][0]["group"], "slow_layer");
    assert_eq!(report["groups"][0]["verdict"], "FAIL");
    assert!(report["groups"][0]["overhead_ns"].as_f64().unwrap() > 15_000.0);
    assert_eq!(report["groups"][1]["verdict"], "PASS");

    let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .env(HISTORY_ENV, temp_dir("history").join("history.jsonl"))
        .args(["budget", "--budgets"])
        .arg(write_budgets(CHEAP_ONLY))
        .arg("--criterion-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Checking the same results again records no second run: without `--since` a run is
/// named by when its newest result was written, so the trend does not count one
/// measurement twice. New results make a new run. (Run ids are whole seconds: the pause
/// puts the second check in another second, where an id taken from the clock would differ.)
#[test]
fn checking_the_same_results_again_records_no_second_run() {
    let dir = temp_dir("recheck");
    fake_estimates(&dir, "timeout", "bare", 20.0);
    fake_estimates(&dir, "timeout", "layer", 120.0);
    let budgets = write_budgets("[budgets.timeout]\nbudget_ns = 150\n");
    let history = temp_dir("history").join("history.jsonl");
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
            .env(HISTORY_ENV, &history)
            .args(["budget", "--budgets"])
            .arg(&budgets)
            .arg("--criterion-dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        lift_harness::budget::history::load(&history).unwrap()
    };
    assert_eq!(check().len(), 1);
    std::thread::sleep(Duration::from_millis(1100));
    let runs = check();
    assert_eq!(runs.len(), 1, "the same results, checked again: {runs:?}");
    fake_estimates(&dir, "timeout", "layer", 130.0);
    let runs = check();
    assert_eq!(runs.len(), 2, "new results: {runs:?}");
    assert_eq!(runs[1].groups[0].layer_median_ns, 130.0);
}

#[test]
fn a_budget_without_results_fails_unless_allowed() {
    let dir = temp_dir("partial");
    fake_estimates(&dir, "timeout", "bare", 20.0);
    fake_estimates(&dir, "timeout", "layer", 120.0);
    fake_estimates(&dir, "bulkhead", "bare", 20.0); // no bulkhead/layer
    let budgets = Budgets::load(write_budgets(
        "[budgets.timeout]\nbudget_ns = 150\n[budgets.bulkhead]\nbudget_ns = 150\n[budgets.jwt]\nbudget_ns = 500\n",
    ))
    .unwrap();

    let report = Gate::new(budgets.clone(), CriterionResults::new(&dir)).check().unwrap();
    assert_eq!(report.group("timeout").unwrap().verdict(), Verdict::Pass);
    assert_eq!(report.group("timeout").unwrap().measurement().unwrap().overhead_ns(), 100.0);
    let bulkhead = report.group("bulkhead").unwrap();
    assert_eq!(bulkhead.verdict(), Verdict::Missing);
    assert!(
        bulkhead.missing().unwrap().starts_with("no results for bulkhead/layer: run cargo bench first"),
        "{:?}",
        bulkhead.missing()
    );
    assert_eq!(
        report.ensure_passed(),
        Err(GateFailed {
            over_budget: vec![],
            missing: vec!["bulkhead".into(), "jwt".into()],
            stale: vec![]
        })
    );
    assert!(report.to_string().contains("no results for jwt/layer: run cargo bench first"));

    let report = Gate::new(budgets, CriterionResults::new(&dir)).allow_missing(true).check().unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.group("jwt").unwrap().verdict(), Verdict::Skipped);
}

#[test]
fn allow_missing_still_fails_on_a_layer_over_budget() {
    let dir = temp_dir("over");
    fake_estimates(&dir, "retry_first_attempt", "bare", 20.0);
    fake_estimates(&dir, "retry_first_attempt", "layer", 421.0);
    let budgets = Budgets::load(write_budgets("[budgets.retry_first_attempt]\nbudget_ns = 300\n")).unwrap();
    let report = Gate::new(budgets, CriterionResults::new(&dir)).allow_missing(true).check().unwrap();
    assert_eq!(report.group("retry_first_attempt").unwrap().verdict(), Verdict::Fail);
    assert!(!report.passed());
}

#[test]
fn no_criterion_directory_is_an_error_even_when_missing_results_are_allowed() {
    let budgets = Budgets::load(write_budgets(CHEAP_ONLY)).unwrap();
    let err = Gate::new(budgets, CriterionResults::new("/nonexistent/criterion"))
        .allow_missing(true)
        .check()
        .unwrap_err();
    assert!(matches!(err, BudgetError::NoCriterionDir { .. }));
    assert_eq!(
        err.to_string(),
        "no criterion results in /nonexistent/criterion: run cargo bench first, or pass --criterion-dir"
    );
}

#[test]
fn malformed_estimates_are_an_error_naming_the_file() {
    let dir = temp_dir("malformed");
    fake_estimates(&dir, "timeout", "bare", 20.0);
    let layer = dir.join("timeout/layer/new/estimates.json");
    std::fs::create_dir_all(layer.parent().unwrap()).unwrap();
    std::fs::write(&layer, r#"{"mean": {"point_estimate": 3.0}}"#).unwrap();
    let budgets = Budgets::load(write_budgets("[budgets.timeout]\nbudget_ns = 150\n")).unwrap();
    let err = Gate::new(budgets, CriterionResults::new(&dir)).check().unwrap_err();
    match &err {
        BudgetError::MalformedEstimates { path, .. } => assert_eq!(path, &layer),
        other => panic!("expected malformed estimates, got {other:?}"),
    }
    assert!(err.to_string().starts_with("malformed criterion estimates "), "{err}");
    assert!(err.to_string().ends_with(": no median.point_estimate"), "{err}");
}

#[test]
fn bad_or_missing_budgets_files_are_clear_errors() {
    let err = Budgets::load(write_budgets("[budgets.timeout\nbudget_ns = 150\n")).unwrap_err();
    assert!(matches!(err, BudgetError::BadToml { location: Some((1, _)), .. }), "{err:?}");
    assert!(err.to_string().starts_with("bad budgets file "), "{err}");

    let err = Budgets::load(write_budgets("[budgets.timeout]\nbudget_ns = \"fast\"\n")).unwrap_err();
    assert!(matches!(err, BudgetError::BadToml { .. }), "{err:?}");

    let missing = temp_dir("nobudgets").join("budgets.toml");
    let err = Budgets::load(&missing).unwrap_err();
    assert!(matches!(err, BudgetError::MissingFile { .. }));
    assert_eq!(err.to_string(), format!("budgets file {} not found", missing.display()));
}

#[test]
fn group_names_are_found_under_criterion_directory_names() {
    let dir = temp_dir("names");
    // Criterion writes group "GET /payments/:id" as the directory "GET _payments__id".
    fake_estimates(&dir, "GET _payments__id", "bare", 10.0);
    fake_estimates(&dir, "GET _payments__id", "layer", 50.0);
    // A directory criterion renamed (`_2`) is found through its benchmark.json.
    fake_estimates(&dir, "renamed_2", "bare", 10.0);
    fake_estimates(&dir, "renamed_2", "layer", 70.0);
    for function in ["bare", "layer"] {
        let id = serde_json::json!({ "group_id": "renamed", "function_id": function, "value_str": null,
                                     "throughput": null, "full_id": format!("renamed/{function}"),
                                     "directory_name": format!("renamed_2/{function}"), "title": "renamed" });
        std::fs::write(dir.join("renamed_2").join(function).join("new/benchmark.json"), id.to_string())
            .unwrap();
    }
    let budgets = Budgets::load(write_budgets(
        "[budgets.\"GET /payments/:id\"]\nbudget_ns = 100\n[budgets.renamed]\nbudget_ns = 100\n",
    ))
    .unwrap();
    let report = Gate::new(budgets, CriterionResults::new(&dir)).check().unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.group("GET /payments/:id").unwrap().measurement().unwrap().overhead_ns(), 40.0);
    assert_eq!(report.group("renamed").unwrap().measurement().unwrap().overhead_ns(), 60.0);
}

#[test]
fn the_workspace_budgets_file_covers_every_bench_group() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/budgets.toml");
    let budgets = Budgets::load(&path).unwrap();
    // Every budget is at most 1.5x its measured median (see
    // every_workspace_budget_fails_a_layer_1_6x_slower_than_its_measured_median).
    let expected = [
        "circuit_breaker",
        "bulkhead",
        "load_shed",
        "timeout",
        "retry_first_attempt",
        "resilience_stack",
        "emf_metric_record",
        "log_line",
        "xray_segment",
        "stack",
        "router",
    ];
    for group in expected {
        let budget = budgets.get(group).unwrap_or_else(|| panic!("no budget for {group}"));
        assert!(!budget.description().is_empty(), "{group} has no description");
    }
    // Each resilience layer is held against tower's own layer in the same run (load shed
    // above its 1.5x target, which it does not meet, at 2.3x: its ratio against a twin that
    // does nothing rises as the bare service gets faster; the stack above its 1.3x target, which
    // it meets in some runs and not in others: its time ratio moved from 1.37x to 1.51x over
    // four runs of unchanged code, and the instruction gate holds it at 1.3x).
    for (group, max_ratio) in [
        ("bulkhead", 1.5),
        ("load_shed", 2.3),
        ("timeout", 1.5),
        ("retry_first_attempt", 1.5),
        ("resilience_stack", 1.7),
    ] {
        let twin = budgets.get(group).unwrap().twin().unwrap_or_else(|| panic!("{group} has no twin"));
        assert_eq!((twin.function(), twin.max_ratio()), ("tower", max_ratio), "{group}");
    }
    let calibration = budgets.calibration().expect("the budgets scale with the machine's speed");
    assert_eq!(calibration.functions(), ["calibrate_before", "calibrate_after"]);
    assert!(calibration.max_factor() <= 3.0, "a cap above 3x would excuse a tripled layer");
    // Every bench group runs the calibration first and last.
    let benches = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/benches");
    for entry in std::fs::read_dir(benches).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("criterion_main!") {
            continue; // the instruction bench (gungraun) has no time budget
        }
        let groups = text.matches("c.benchmark_group(").count();
        assert!(groups > 0, "{}: no bench group", path.display());
        let calls = |call: &str| text.matches(call).count();
        assert_eq!(calls("lift_benches::calibrate_before(&mut group);"), groups, "{}", path.display());
        assert_eq!(calls("lift_benches::calibrate_after(&mut group);"), groups, "{}", path.display());
        // Right after the group opens, right before it closes.
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0].contains("c.benchmark_group(") {
                assert_eq!(pair[1], "lift_benches::calibrate_before(&mut group);", "{}", path.display());
            }
            if pair[1] == "group.finish();" {
                assert_eq!(pair[0], "lift_benches::calibrate_after(&mut group);", "{}", path.display());
            }
        }
    }
}

const XRAY: &str = r#"
[budgets.xray_segment]
budget_ns = 5000
kernel = "udp_send"
kernel_reference_ns = 3000
"#;

/// A run with these medians for the X-Ray group: the same layer overhead (5.5 µs) under
/// kernels of different speed.
fn xray_run(kernel_ns: f64) -> Report {
    let dir = temp_dir("kernel");
    fake_estimates(&dir, "xray_segment", "bare", 300.0);
    fake_estimates(&dir, "xray_segment", "layer", 5_800.0);
    fake_estimates(&dir, "xray_segment", "udp_send", kernel_ns);
    Gate::new(Budgets::load(write_budgets(XRAY)).unwrap(), CriterionResults::new(&dir)).check().unwrap()
}

#[test]
fn a_kernel_adjusted_budget_moves_with_the_kernel_measured_in_the_same_run() {
    // The send took 3.6 µs instead of 3.0: the budget is 5.6 µs, and 5.5 µs passes.
    let slow_kernel = xray_run(3_600.0);
    let g = slow_kernel.group("xray_segment").unwrap();
    assert_eq!((g.verdict(), g.budget_ns(), g.effective_budget_ns()), (Verdict::Pass, 5_000, 5_600.0));
    let k = g.kernel().unwrap();
    assert_eq!(
        (k.reading().function(), k.reading().median_ns(), k.reading().reference_ns(), k.shift_ns()),
        ("udp_send", 3_600.0, 3_000, 600.0)
    );
    let table = slow_kernel.to_string();
    assert!(table.contains("5.60 µs *"), "{table}");
    assert!(
        table.contains(
            "* xray_segment: budget 5.00 µs + (xray_segment/udp_send 3.60 µs - reference 3.00 µs) = 5.60 µs"
        ),
        "{table}"
    );
    let json = serde_json::to_value(&slow_kernel).unwrap();
    assert_eq!(json["groups"][0]["kernel"]["median_ns"], 3_600.0);

    // The same layer under the reference kernel is over its 5 µs: the layer's own work grew.
    assert_eq!(xray_run(3_000.0).group("xray_segment").unwrap().verdict(), Verdict::Fail);
    // A faster kernel tightens the budget too: 4.5 µs.
    let fast = xray_run(2_500.0);
    assert_eq!(fast.group("xray_segment").unwrap().effective_budget_ns(), 4_500.0);
    assert_eq!(fast.group("xray_segment").unwrap().verdict(), Verdict::Fail);
}

#[test]
fn a_kernel_budget_without_the_kernel_measurement_is_missing() {
    let dir = temp_dir("kernel-missing");
    fake_estimates(&dir, "xray_segment", "bare", 300.0);
    fake_estimates(&dir, "xray_segment", "layer", 800.0);
    let report =
        Gate::new(Budgets::load(write_budgets(XRAY)).unwrap(), CriterionResults::new(&dir)).check().unwrap();
    let g = report.group("xray_segment").unwrap();
    assert_eq!(g.verdict(), Verdict::Missing, "a cheap layer does not pass without the kernel's median");
    assert!(g.missing().unwrap().contains("xray_segment/udp_send"), "{:?}", g.missing());
}

#[test]
fn kernel_settings_are_checked() {
    for (text, reason) in [
        (
            "[budgets.x]\nbudget_ns = 5000\nkernel = \"udp_send\"\n",
            "kernel and kernel_reference_ns go together",
        ),
        (
            "[budgets.x]\nbudget_ns = 5000\nkernel_reference_ns = 3000\n",
            "kernel and kernel_reference_ns go together",
        ),
        (
            "[budgets.x]\nbudget_ns = 5000\nkernel = \"layer\"\nkernel_reference_ns = 3000\n",
            "a bench function of its own",
        ),
        ("[budgets.x]\nbudget_ns = 5000\nkernel = \"send\"\nkernel_reference_ns = 5000\n", "below budget_ns"),
        ("[budgets.x]\nbudget_ns = 5000\nkernel = \"send\"\nkernel_reference_ns = 0\n", "above 0"),
    ] {
        assert_invalid(text, reason);
    }
}

/// The budgets file `text` is refused as invalid, the error saying `reason`.
fn assert_invalid(text: &str, reason: &str) {
    let err = Budgets::parse(text, "budgets.toml").unwrap_err();
    assert!(matches!(err, BudgetError::InvalidBudget { .. }), "{err}");
    assert!(err.to_string().contains(reason), "{err} should say {reason}");
}

#[test]
fn a_slow_layer_fails_a_calibrated_gate_too() {
    // The calibration workload of `measured()` spins 1 µs: the machine's speed is about 1.
    let budgets = Budgets::load(write_budgets(&format!(
        "[calibration]\nreference_ns = {}\nmax_factor = 2.0\n{BOTH}",
        CALIBRATION_SPIN.as_nanos()
    )))
    .unwrap();
    let report = Gate::new(budgets, CriterionResults::new(measured())).check().unwrap();
    println!("{report}");
    let slow = report.group("slow_layer").unwrap();
    let speed = slow.speed().unwrap();
    assert_eq!(speed.readings().len(), 2);
    assert!((0.9..2.0).contains(&speed.factor()), "a 1 µs spin measured {:?}", speed.readings());
    assert_eq!(slow.verdict(), Verdict::Fail, "20 µs of spin is over 5 µs at any speed up to 2x");
    assert_eq!(report.group("pass_through").unwrap().verdict(), Verdict::Pass);
}

const SCALED: &str = r#"
[calibration]
reference_ns = 4000
max_factor = 2.5

[budgets.timeout]
budget_ns = 150

[budgets.xray_segment]
budget_ns = 5000
kernel = "udp_send"
kernel_reference_ns = 3000
"#;

/// A run in which the calibration workload took `calibrate_ns` before and after every group,
/// the timeout added `timeout_ns` and X-Ray 6 µs with its send at 3.5 µs.
fn scaled_run(calibrate_ns: f64, timeout_ns: f64) -> Report {
    scaled_run_with(calibrate_ns, calibrate_ns, timeout_ns)
}

fn scaled_run_with(before_ns: f64, after_ns: f64, timeout_ns: f64) -> Report {
    let dir = temp_dir("scaled");
    fake_estimates(&dir, "timeout", "bare", 20.0);
    fake_estimates(&dir, "timeout", "layer", 20.0 + timeout_ns);
    fake_estimates(&dir, "xray_segment", "bare", 300.0);
    fake_estimates(&dir, "xray_segment", "layer", 6_300.0);
    fake_estimates(&dir, "xray_segment", "udp_send", 3_500.0);
    for group in ["timeout", "xray_segment"] {
        fake_estimates(&dir, group, "calibrate_before", before_ns);
        fake_estimates(&dir, group, "calibrate_after", after_ns);
    }
    Gate::new(Budgets::load(write_budgets(SCALED)).unwrap(), CriterionResults::new(&dir)).check().unwrap()
}

#[test]
fn budgets_scale_with_the_calibration_measured_beside_each_group() {
    // At the reference speed the budgets are as written: 240 ns is over 150 ns, and X-Ray's
    // 6 µs is over (5 - 3) + 3.5 = 5.5 µs.
    let reference = scaled_run(4_000.0, 240.0);
    let timeout = reference.group("timeout").unwrap();
    assert_eq!((timeout.verdict(), timeout.effective_budget_ns()), (Verdict::Fail, 150.0));
    let xray = reference.group("xray_segment").unwrap();
    assert_eq!((xray.verdict(), xray.effective_budget_ns()), (Verdict::Fail, 5_500.0));

    // The machine ran 1.6x slower beside them: 240 ns is within 150 x 1.6, and X-Ray within
    // 2 µs x 1.6 + 3.5 µs (the send, measured on its own, is not scaled again).
    let slow = scaled_run(6_400.0, 240.0);
    let timeout = slow.group("timeout").unwrap();
    assert_eq!((timeout.verdict(), timeout.effective_budget_ns()), (Verdict::Pass, 240.0));
    let speed = timeout.speed().unwrap();
    let reading = &speed.readings()[0];
    assert_eq!(
        (reading.function(), reading.median_ns(), reading.reference_ns()),
        ("calibrate_before", 6_400.0, 4_000)
    );
    assert!((speed.factor() - 1.6).abs() < 1e-9 && !speed.capped());
    let xray = slow.group("xray_segment").unwrap();
    assert_eq!(xray.verdict(), Verdict::Pass);
    assert!((xray.effective_budget_ns() - 6_700.0).abs() < 1e-6, "{}", xray.effective_budget_ns());
    let table = slow.to_string();
    println!("{table}");
    assert!(table.contains("1.60x") && table.contains("240.0 ns *"), "{table}");
    assert!(
        table.contains(
            "speed = min(median(<group>/calibrate_before), median(<group>/calibrate_after)) / reference 4.00 µs, \
             at most 2.5x"
        ),
        "{table}"
    );
    assert!(
        table.contains(
            "* xray_segment: (budget 5.00 µs - udp_send reference 3.00 µs) x speed 1.60 + \
             xray_segment/udp_send 3.50 µs = 6.70 µs"
        ),
        "{table}"
    );
    let json = serde_json::to_value(&slow).unwrap();
    assert_eq!(json["groups"][0]["speed"]["readings"][1]["median_ns"], 6_400.0);
    assert_eq!(json["groups"][0]["speed"]["factor"], 1.6);

    // A burst of noise in one reading does not loosen them: the faster one counts.
    for (before, after) in [(4_000.0, 9_000.0), (9_000.0, 4_000.0)] {
        let burst = scaled_run_with(before, after, 240.0);
        let timeout = burst.group("timeout").unwrap();
        assert_eq!(
            (timeout.verdict(), timeout.effective_budget_ns()),
            (Verdict::Fail, 150.0),
            "{before}/{after}"
        );
    }
    // A slowdown through the whole group shows in both and counts by the faster: 1.5x.
    let busy = scaled_run_with(6_000.0, 7_000.0, 200.0);
    assert_eq!(busy.group("timeout").unwrap().effective_budget_ns(), 225.0);
    assert_eq!(busy.group("timeout").unwrap().verdict(), Verdict::Pass);

    // A faster machine tightens them: at half the reference time 100 ns is over 75 ns.
    let fast = scaled_run(2_000.0, 100.0);
    let timeout = fast.group("timeout").unwrap();
    assert_eq!((timeout.verdict(), timeout.effective_budget_ns()), (Verdict::Fail, 75.0));
}

#[test]
fn the_speed_factor_is_capped() {
    // Ten times slower, but budgets scale by 2.5x at most: a layer four times over its budget
    // fails however slow the machine measured, one twice over passes.
    let crawling = scaled_run(40_000.0, 600.0);
    let timeout = crawling.group("timeout").unwrap();
    let speed = timeout.speed().unwrap();
    assert!(speed.capped());
    assert_eq!((speed.measured_factor(), speed.factor()), (10.0, 2.5));
    assert_eq!((timeout.verdict(), timeout.effective_budget_ns()), (Verdict::Fail, 375.0));
    let table = crawling.to_string();
    assert!(table.contains("2.50x!"), "{table}");
    assert!(
        table.contains(
            "! timeout: the calibration ran 10.00x slower than the reference at its fastest, beyond the 2.5x"
        ),
        "{table}"
    );
    assert_eq!(scaled_run(40_000.0, 300.0).group("timeout").unwrap().verdict(), Verdict::Pass);
}

#[test]
fn a_calibrated_budget_without_the_calibration_measurement_is_missing() {
    let dir = temp_dir("calibration-missing");
    fake_estimates(&dir, "timeout", "bare", 20.0);
    fake_estimates(&dir, "timeout", "layer", 30.0);
    fake_estimates(&dir, "timeout", "calibrate_before", 4_000.0);
    let budgets = Budgets::load(write_budgets(
        "[calibration]\nreference_ns = 4000\nmax_factor = 2.5\n[budgets.timeout]\nbudget_ns = 150\n",
    ))
    .unwrap();
    let report = Gate::new(budgets, CriterionResults::new(&dir)).check().unwrap();
    let g = report.group("timeout").unwrap();
    assert_eq!(g.verdict(), Verdict::Missing, "a cheap layer does not pass without the machine's speed");
    assert!(g.missing().unwrap().contains("timeout/calibrate_after"), "{:?}", g.missing());
}

#[test]
fn calibration_settings_are_checked() {
    const BUDGET: &str = "[budgets.x]\nbudget_ns = 5000\nkernel = \"send\"\nkernel_reference_ns = 3000\n";
    for (calibration, reason) in [
        ("reference_ns = 0\nmax_factor = 2.0\n", "reference_ns must be above 0"),
        ("reference_ns = 4000\nmax_factor = 0.5\n", "max_factor must be a number of at least 1"),
        ("reference_ns = 4000\nmax_factor = nan\n", "max_factor must be a number of at least 1"),
        ("reference_ns = 4000\nmax_factor = inf\n", "max_factor must be a number of at least 1"),
        ("functions = []\nreference_ns = 4000\nmax_factor = 2.0\n", "at least one function, none empty"),
        (
            "functions = [\"c\", \"\"]\nreference_ns = 4000\nmax_factor = 2.0\n",
            "at least one function, none empty",
        ),
        ("functions = [\"c\", \"c\"]\nreference_ns = 4000\nmax_factor = 2.0\n", "\"c\" is listed twice"),
        (
            "functions = [\"c\", \"layer\"]\nreference_ns = 4000\nmax_factor = 2.0\n",
            "already a function of x's budget",
        ),
        (
            "functions = [\"send\"]\nreference_ns = 4000\nmax_factor = 2.0\n",
            "already a function of x's budget",
        ),
    ] {
        assert_invalid(&format!("[calibration]\n{calibration}{BUDGET}"), reason);
    }
    for calibration in [
        "reference_ns = 4000\n",
        "max_factor = 2.0\n",
        "reference_ns = 4000\nmax_factor = 2.0\nfloor = 1\n",
        "function = \"calibrate\"\nreference_ns = 4000\nmax_factor = 2.0\n",
    ] {
        let text = format!("[calibration]\n{calibration}{BUDGET}");
        let err = Budgets::parse(&text, "budgets.toml").unwrap_err();
        assert!(matches!(err, BudgetError::BadToml { .. }), "{calibration}: {err}");
    }
    let whole =
        Budgets::parse(&format!("[calibration]\nreference_ns = 4000\nmax_factor = 2\n{BUDGET}"), "b.toml");
    assert_eq!(whole.unwrap().calibration().unwrap().max_factor(), 2.0, "a whole number is a factor too");
}

// ------------------------------------------------------------ an honest gate (issue 15)

const TWIN: &str = r#"
[budgets.load_shed]
budget_ns = 60
measured_ns = 40
twin = "tower"
max_twin_ratio = 1.5
"#;

/// A run of the twin group: bare 30 ns, the layer at `overhead_ns` over it, tower's twin
/// at `tower_ns`.
fn twin_run(overhead_ns: f64, tower_ns: f64) -> Report {
    let dir = temp_dir("twin");
    fake_estimates(&dir, "load_shed", "bare", 30.0);
    fake_estimates(&dir, "load_shed", "layer", 30.0 + overhead_ns);
    fake_estimates(&dir, "load_shed", "tower", tower_ns);
    Gate::new(Budgets::load(write_budgets(TWIN)).unwrap(), CriterionResults::new(&dir)).check().unwrap()
}

#[test]
fn a_layer_1_6x_slower_than_measured_fails_its_budget() {
    // The budget is 1.5x the measured 40 ns: as measured it passes, 1.6x slower it fails.
    assert_eq!(twin_run(40.0, 60.0).group("load_shed").unwrap().verdict(), Verdict::Pass);
    let slower = twin_run(64.0, 200.0);
    let g = slower.group("load_shed").unwrap();
    assert_eq!(g.verdict(), Verdict::Fail, "{slower}");
    assert!(g.twin().unwrap().within(), "the twin ratio passed: the budget failed it");
}

#[test]
fn every_workspace_budget_fails_a_layer_1_6x_slower_than_its_measured_median() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/budgets.toml");
    let budgets = Budgets::load(&path).unwrap();
    for budget in &budgets {
        let measured = budget.measured_ns().unwrap_or_else(|| panic!("{}: no measured_ns", budget.group()));
        // At the reference speed and kernel, the budget is at most 1.5x the measured median.
        let own = budget.budget_ns() as f64;
        assert!(own <= measured * 1.5 + 1.0, "{}: budget {own} > 1.5 x measured {measured}", budget.group());
        assert!(own >= measured, "{}: budget {own} below its measured {measured}", budget.group());
    }
}

#[test]
fn a_layer_far_dearer_than_its_twin_fails_within_its_budget() {
    // Overhead 50 ns is within the 60 ns budget, but 80 ns against tower's 50 is 1.6x.
    let report = twin_run(50.0, 50.0);
    let g = report.group("load_shed").unwrap();
    assert_eq!(g.verdict(), Verdict::Fail, "{report}");
    let t = g.twin().unwrap();
    assert_eq!((t.function(), t.ratio(), t.max_ratio()), ("tower", 80.0 / 50.0, 1.5));
    assert!(
        report.to_string().contains("! load_shed: layer 80.0 ns is 1.60x load_shed/tower 50.0 ns"),
        "{report}"
    );
    // At 1.5x it passes.
    assert_eq!(twin_run(45.0, 50.0).group("load_shed").unwrap().verdict(), Verdict::Pass);
}

#[test]
fn twin_settings_are_checked() {
    assert_invalid("[budgets.a]\nbudget_ns = 10\ntwin = \"tower\"\n", "twin and max_twin_ratio go together");
    assert_invalid("[budgets.a]\nbudget_ns = 10\ntwin = \"layer\"\nmax_twin_ratio = 1.5\n", "twin must name");
    assert_invalid("[budgets.a]\nbudget_ns = 10\ntwin = \"tower\"\nmax_twin_ratio = 0.0\n", "max_twin_ratio");
    assert_invalid("[budgets.a]\nbudget_ns = 10\nmeasured_ns = -1.0\n", "measured_ns");
}

#[test]
fn results_older_than_the_run_fail_the_gate() {
    let dir = temp_dir("stale");
    fake_estimates(&dir, "pass_through", "bare", 100.0);
    fake_estimates(&dir, "pass_through", "layer", 110.0);
    let budgets = || Budgets::load(write_budgets(CHEAP_ONLY)).unwrap();
    // Written before the run started (the run started 60 s from now): refused, and a failure
    // even when missing results are allowed.
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    let stale = Gate::new(budgets(), CriterionResults::new(&dir).fresh_since(later))
        .allow_missing(true)
        .check()
        .unwrap();
    let g = stale.group("pass_through").unwrap();
    assert_eq!(g.verdict(), Verdict::Stale, "{stale}");
    assert!(!stale.passed());
    assert!(g.missing().unwrap().contains("older than the run"), "{stale}");
    let err = stale.ensure_passed().unwrap_err();
    assert_eq!(err.stale, ["pass_through"]);
    assert!(err.to_string().contains("results older than the run: pass_through"), "{err}");
    // Written after the run started: used.
    let earlier = std::time::SystemTime::now() - Duration::from_secs(60);
    let fresh = Gate::new(budgets(), CriterionResults::new(&dir).fresh_since(earlier)).check().unwrap();
    assert_eq!(fresh.group("pass_through").unwrap().verdict(), Verdict::Pass, "{fresh}");
}

#[test]
fn the_command_refuses_results_older_than_since() {
    let dir = temp_dir("stale-cli");
    fake_estimates(&dir, "pass_through", "bare", 100.0);
    fake_estimates(&dir, "pass_through", "layer", 110.0);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 60;
    let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .env(HISTORY_ENV, temp_dir("history").join("history.jsonl"))
        .args(["budget", "--budgets"])
        .arg(write_budgets(CHEAP_ONLY))
        .arg("--criterion-dir")
        .arg(&dir)
        .args(["--since", &since.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("STALE"), "{stdout}");
}

#[test]
fn a_kernel_reading_of_10x_its_reference_does_not_widen_the_budget_past_the_cap() {
    // udp_send at 30 µs, ten times its 3 µs reference: counted at 2 x 3 µs = 6 µs, so the
    // budget is 5 - 3 + 6 = 8 µs, not 32 µs.
    let report = xray_run(30_000.0);
    let g = report.group("xray_segment").unwrap();
    assert_eq!(g.effective_budget_ns(), 8_000.0);
    let k = g.kernel().unwrap();
    assert!(k.capped());
    assert_eq!((k.reading().median_ns(), k.counted_ns(), k.shift_ns()), (30_000.0, 6_000.0, 3_000.0));
    assert!(report.to_string().contains("counted at 6.00 µs"), "{report}");
    // A layer whose own work grew to 8.7 µs fails however slow the kernel measured.
    let dir = temp_dir("kernel-cap");
    fake_estimates(&dir, "xray_segment", "bare", 300.0);
    fake_estimates(&dir, "xray_segment", "layer", 9_000.0);
    fake_estimates(&dir, "xray_segment", "udp_send", 30_000.0);
    let slow =
        Gate::new(Budgets::load(write_budgets(XRAY)).unwrap(), CriterionResults::new(&dir)).check().unwrap();
    assert_eq!(slow.group("xray_segment").unwrap().verdict(), Verdict::Fail, "{slow}");
    // Below the cap the kernel still moves the budget one for one.
    assert_eq!(xray_run(5_000.0).group("xray_segment").unwrap().effective_budget_ns(), 7_000.0);
}

/// Attempts of the pass-through group, each with this layer median over a 100 ns bare.
fn attempts_run(layer_ns: &[f64]) -> Report {
    let dir = temp_dir("attempts");
    for (i, layer) in layer_ns.iter().enumerate() {
        let attempt = dir.join(format!("{}", i + 1));
        fake_estimates(&attempt, "pass_through", "bare", 100.0);
        fake_estimates(&attempt, "pass_through", "layer", *layer);
    }
    let budgets = Budgets::load(write_budgets("[budgets.pass_through]\nbudget_ns = 50\n")).unwrap();
    Gate::new(budgets, CriterionResults::new(temp_dir("live")).with_attempts(&dir)).check().unwrap()
}

#[test]
fn the_gate_decides_on_the_median_over_attempts() {
    // One noisy attempt (400 ns) of three does not fail a 30 ns layer...
    let noisy_first = attempts_run(&[400.0, 130.0, 128.0]);
    let g = noisy_first.group("pass_through").unwrap();
    assert_eq!((g.verdict(), g.attempts()), (Verdict::Pass, 3), "{noisy_first}");
    assert_eq!(g.measurement().unwrap().layer_median_ns(), 130.0);
    // ... nor does one lucky attempt pass a 100 ns layer, wherever it comes: the last one
    // used to decide alone.
    let lucky_last = attempts_run(&[200.0, 205.0, 120.0]);
    assert_eq!(lucky_last.group("pass_through").unwrap().verdict(), Verdict::Fail, "{lucky_last}");
    assert!(lucky_last.to_string().contains("median over the attempts"), "{lucky_last}");
    // Two attempts: the mean of the two.
    let two = attempts_run(&[200.0, 120.0]);
    assert_eq!(two.group("pass_through").unwrap().measurement().unwrap().layer_median_ns(), 160.0);
}

#[test]
fn attempts_that_did_not_measure_a_group_do_not_count_for_it() {
    let dir = temp_dir("attempts-partial");
    fake_estimates(&dir.join("1"), "pass_through", "bare", 100.0);
    fake_estimates(&dir.join("1"), "pass_through", "layer", 120.0);
    std::fs::create_dir_all(dir.join("2").join("other")).unwrap();
    let budgets = Budgets::load(write_budgets(CHEAP_ONLY)).unwrap();
    let report =
        Gate::new(budgets, CriterionResults::new(temp_dir("live")).with_attempts(&dir)).check().unwrap();
    let g = report.group("pass_through").unwrap();
    assert_eq!((g.verdict(), g.attempts()), (Verdict::Pass, 1));
}

/// Writes each attempt's medians of one group under `<dir>/<n>/` (attempts numbered from 1).
fn write_attempts(dir: &Path, group: &str, attempts: &[&[(&str, f64)]]) {
    for (i, medians) in attempts.iter().enumerate() {
        for (function, median_ns) in medians.iter() {
            fake_estimates(&dir.join(format!("{}", i + 1)), group, function, *median_ns);
        }
    }
}

/// The gate over the attempts in `dir`, with this budgets file.
fn gate_attempts(budgets: &str, dir: &Path) -> Report {
    let budgets = Budgets::load(write_budgets(budgets)).unwrap();
    Gate::new(budgets, CriterionResults::new(temp_dir("live")).with_attempts(dir)).check().unwrap()
}

/// Attempts of the pass-through group with these (bare, layer) medians, under a 50 ns budget.
fn bare_layer_attempts(attempts: &[(f64, f64)]) -> Report {
    let dir = temp_dir("per-attempt");
    let rows: Vec<[(&str, f64); 2]> =
        attempts.iter().map(|&(bare, layer)| [("bare", bare), ("layer", layer)]).collect();
    let rows: Vec<&[(&str, f64)]> = rows.iter().map(|r| &r[..]).collect();
    write_attempts(&dir, "pass_through", &rows);
    gate_attempts("[budgets.pass_through]\nbudget_ns = 50\n", &dir)
}

/// Two attempts of three are over budget (overheads 60, 10 and 60 ns against 50): the gate
/// fails. Medians taken per function, then combined, made 300 - 250 = 50 ns and passed.
#[test]
fn two_attempts_of_three_over_budget_fail_however_the_medians_of_bare_and_layer_fall() {
    let report = bare_layer_attempts(&[(40.0, 100.0), (290.0, 300.0), (250.0, 310.0)]);
    let g = report.group("pass_through").unwrap();
    assert_eq!((g.verdict(), g.attempts()), (Verdict::Fail, 3), "{report}");
    let overheads: Vec<f64> = g.per_attempt().iter().map(|a| a.overhead_ns()).collect();
    assert_eq!(overheads, [60.0, 10.0, 60.0]);
    let attempts: Vec<Option<&str>> = g.per_attempt().iter().map(|a| a.attempt()).collect();
    assert_eq!(attempts, [Some("1"), Some("2"), Some("3")]);
    // The verdict's figure and the printed overhead are medians of the attempts' own.
    assert_eq!(g.budget_fraction(), Some(1.2));
    let m = g.measurement().unwrap();
    assert_eq!((m.overhead_ns(), m.layer_median_ns(), m.bare_median_ns()), (60.0, 300.0, 250.0));
    let table = report.to_string();
    assert!(
        table.lines().any(|l| l.starts_with("pass_through") && l.contains("120%") && l.ends_with("FAIL")),
        "{table}"
    );
    assert!(
        table.contains(
            "each figure is the median over the attempts that measured the group of that attempt's own"
        ),
        "{table}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["groups"][0]["budget_fraction"], 1.2);
    assert_eq!(json["groups"][0]["per_attempt"][1]["overhead_ns"], 10.0);
}

/// Two of three attempts within budget (overheads 30, 300 and 40 ns against 50): passes.
#[test]
fn two_attempts_of_three_within_budget_pass() {
    let report = bare_layer_attempts(&[(100.0, 130.0), (100.0, 400.0), (100.0, 140.0)]);
    let g = report.group("pass_through").unwrap();
    assert_eq!(g.verdict(), Verdict::Pass, "{report}");
    assert_eq!(g.budget_fraction(), Some(0.8));
    assert_eq!(g.measurement().unwrap().overhead_ns(), 40.0);
}

/// Each attempt's speed is its own faster reading: 4 900 ns in both attempts, so 1.0x, and
/// 60 ns is over 50. Medians taken per function made min(7 350, 7 350) / 4 900 = 1.5x and
/// a 75 ns budget.
#[test]
fn each_attempt_scales_its_budget_by_its_own_calibration() {
    let dir = temp_dir("per-attempt-speed");
    write_attempts(
        &dir,
        "pass_through",
        &[
            &[("bare", 100.0), ("layer", 160.0), ("calibrate_before", 4_900.0), ("calibrate_after", 9_800.0)],
            &[("bare", 100.0), ("layer", 160.0), ("calibrate_before", 9_800.0), ("calibrate_after", 4_900.0)],
        ],
    );
    let report = gate_attempts(
        "[calibration]\nreference_ns = 4900\nmax_factor = 2.0\n[budgets.pass_through]\nbudget_ns = 50\n",
        &dir,
    );
    let g = report.group("pass_through").unwrap();
    assert_eq!(g.verdict(), Verdict::Fail, "{report}");
    let speed = g.speed().unwrap();
    assert_eq!((speed.factor(), speed.measured_factor()), (1.0, 1.0));
    let factors: Vec<Option<f64>> = g.per_attempt().iter().map(|a| a.speed_factor()).collect();
    assert_eq!(factors, [Some(1.0), Some(1.0)]);
    assert_eq!((g.effective_budget_ns(), g.budget_fraction()), (50.0, Some(1.2)));
    let table = report.to_string();
    assert!(table.lines().any(|l| l.starts_with("pass_through") && l.contains("1.00x")), "{table}");
}

/// The twin ratio is each attempt's layer over that attempt's twin (2.0x, 1.03x, 2.0x: a
/// median of 2.0x, over 1.5x), not the median layer over the median twin (300 / 200).
#[test]
fn the_twin_ratio_is_taken_within_each_attempt() {
    let dir = temp_dir("per-attempt-twin");
    write_attempts(
        &dir,
        "load_shed",
        &[
            &[("bare", 30.0), ("layer", 100.0), ("tower", 50.0)],
            &[("bare", 30.0), ("layer", 300.0), ("tower", 290.0)],
            &[("bare", 30.0), ("layer", 400.0), ("tower", 200.0)],
        ],
    );
    let report = gate_attempts(
        "[budgets.load_shed]\nbudget_ns = 1000\ntwin = \"tower\"\nmax_twin_ratio = 1.5\n",
        &dir,
    );
    let g = report.group("load_shed").unwrap();
    assert_eq!(g.verdict(), Verdict::Fail, "{report}");
    assert!(g.budget_fraction().unwrap() < 1.0);
    assert_eq!(g.twin().unwrap().ratio(), 2.0);
    assert!(!g.twin().unwrap().within());
    assert_eq!(report.remeasure()[0].why, "fails: 2.00x its twin, above 1.50x (median over 3 attempts)");
}

/// An attempt that measured some of a group's functions but not all is not a figure of that
/// attempt: the group is missing, not decided on the other attempts.
#[test]
fn an_attempt_that_measured_part_of_a_group_makes_it_missing() {
    let dir = temp_dir("per-attempt-partial");
    write_attempts(&dir, "pass_through", &[&[("bare", 100.0), ("layer", 120.0)], &[("layer", 400.0)]]);
    let report = gate_attempts("[budgets.pass_through]\nbudget_ns = 50\n", &dir);
    let g = report.group("pass_through").unwrap();
    assert_eq!(g.verdict(), Verdict::Missing, "{report}");
    assert!(g.missing().unwrap().starts_with("no results for pass_through/bare"), "{:?}", g.missing());
    assert!(g.missing().unwrap().contains(&dir.join("2").display().to_string()), "{:?}", g.missing());
}

// ------------------------------------------------------------ which groups are measured again

const CLOSE: &str = r#"
[budgets.close]
budget_ns = 100

[budgets.far]
budget_ns = 100

[budgets.over]
budget_ns = 100

[budgets.twin_close]
budget_ns = 1000
twin = "tower"
max_twin_ratio = 2.0
"#;

/// Attempt `n` (from 1) of the CLOSE groups: `close` and `over` at these overheads, `far`
/// at 50 ns, `twin_close` at 1.7x its twin (0.85 of its limit) and 10% of its budget.
fn close_attempt(dir: &Path, n: usize, close_ns: f64, over_ns: f64) {
    let attempt = dir.join(n.to_string());
    for (group, overhead) in [("close", close_ns), ("far", 50.0), ("over", over_ns)] {
        fake_estimates(&attempt, group, "bare", 100.0);
        fake_estimates(&attempt, group, "layer", 100.0 + overhead);
    }
    fake_estimates(&attempt, "twin_close", "bare", 100.0);
    fake_estimates(&attempt, "twin_close", "layer", 170.0);
    fake_estimates(&attempt, "twin_close", "tower", 100.0);
}

fn remeasured(report: &Report) -> Vec<(&str, RemeasureReason)> {
    report.remeasure().iter().map(|r| (r.group.as_str(), r.reason)).collect()
}

/// A group whose first attempt is above 0.8 of its budget or twin limit is measured until it
/// has three attempts, a failing one always (the CI stops at its limit), one well within
/// once; the decision is the median over all its attempts.
#[test]
fn groups_close_to_their_budget_in_the_first_attempt_are_measured_in_three() {
    let dir = temp_dir("remeasure");
    // Attempt 1: close at 0.85, over at 1.2.
    close_attempt(&dir, 1, 85.0, 120.0);
    let report = gate_attempts(CLOSE, &dir);
    assert!(!report.passed());
    assert_eq!(
        remeasured(&report),
        [
            ("close", RemeasureReason::Close),
            ("over", RemeasureReason::Fails),
            ("twin_close", RemeasureReason::Close)
        ],
        "{report}"
    );
    let close = &report.remeasure()[0];
    assert_eq!((close.attempts, close.first_attempt), (1, Some(0.85)));
    assert_eq!(
        close.why,
        "close: its first attempt came to 0.85 of its budget, above 0.80: measured in at least 3 attempts, 1 so far"
    );
    let twin = &report.remeasure()[2];
    assert_eq!(twin.first_attempt, Some(0.85), "the twin ratio over its limit");
    assert!(
        twin.why.starts_with("close: its first attempt came to 1.70x its twin, 0.85 of its limit 2.00x"),
        "{}",
        twin.why
    );
    // Measured again (only those groups), within budget now: still fewer than 3 attempts.
    let again = dir.join("2");
    for (group, overhead) in [("close", 40.0), ("over", 40.0)] {
        fake_estimates(&again, group, "bare", 100.0);
        fake_estimates(&again, group, "layer", 100.0 + overhead);
    }
    for (function, median) in [("bare", 100.0), ("layer", 170.0), ("tower", 100.0)] {
        fake_estimates(&again, "twin_close", function, median);
    }
    // `over` passes on the median of 120 and 40 ns, but its first attempt was close (over,
    // even): it too wants a third.
    let report = gate_attempts(CLOSE, &dir);
    assert!(report.passed(), "{report}");
    assert_eq!(
        remeasured(&report),
        [
            ("close", RemeasureReason::Close),
            ("over", RemeasureReason::Close),
            ("twin_close", RemeasureReason::Close)
        ],
        "{report}"
    );
    assert_eq!(report.group("far").unwrap().attempts(), 1);
    // A third attempt, over budget again for `close`: the median of 85, 40 and 120 ns is
    // 85 ns, it passes and is done; `over` (120, 40, 130) fails on its median.
    let third = dir.join("3");
    for (group, overhead) in [("close", 120.0), ("over", 130.0)] {
        fake_estimates(&third, group, "bare", 100.0);
        fake_estimates(&third, group, "layer", 100.0 + overhead);
    }
    for (function, median) in [("bare", 100.0), ("layer", 170.0), ("tower", 100.0)] {
        fake_estimates(&third, "twin_close", function, median);
    }
    let report = gate_attempts(CLOSE, &dir);
    assert_eq!(report.group("close").unwrap().verdict(), Verdict::Pass, "{report}");
    assert_eq!(report.group("over").unwrap().verdict(), Verdict::Fail, "{report}");
    assert_eq!(remeasured(&report), [("over", RemeasureReason::Fails)], "{report}");
    assert_eq!(report.remeasure()[0].why, "fails: 1.20 of its budget (median over 3 attempts)");
}

/// A lucky first attempt does not decide alone: `close` passed attempt 1 at 0.85 and fails
/// once its other attempts count.
#[test]
fn a_close_first_attempt_that_passed_can_fail_on_the_median() {
    let dir = temp_dir("remeasure-lucky");
    close_attempt(&dir, 1, 85.0, 50.0);
    assert!(gate_attempts(CLOSE, &dir).passed());
    close_attempt(&dir, 2, 130.0, 50.0);
    close_attempt(&dir, 3, 125.0, 50.0);
    let report = gate_attempts(CLOSE, &dir);
    assert_eq!(report.group("close").unwrap().verdict(), Verdict::Fail, "{report}");
}

/// The first attempt is attempt 1, then 2, ... 10 (not "10" before "2"): here 9 is the first
/// and well within, 10 close, so nothing is measured again.
#[test]
fn attempts_are_ordered_by_number() {
    let dir = temp_dir("remeasure-order");
    for (n, overhead) in [(9, 30.0), (10, 90.0)] {
        fake_estimates(&dir.join(n.to_string()), "far", "bare", 100.0);
        fake_estimates(&dir.join(n.to_string()), "far", "layer", 100.0 + overhead);
    }
    let report = gate_attempts("[budgets.far]\nbudget_ns = 100\n", &dir);
    let g = report.group("far").unwrap();
    let attempts: Vec<Option<&str>> = g.per_attempt().iter().map(|a| a.attempt()).collect();
    assert_eq!(attempts, [Some("9"), Some("10")]);
    assert!(report.remeasure().is_empty(), "{:?}", report.remeasure());
}

/// The JSON report of `lift-harness budget --attempts` lists the groups to measure again:
/// what `.ci/bench-gate` reads.
#[test]
fn the_json_report_lists_the_groups_to_measure_again() {
    let dir = temp_dir("remeasure-cli");
    close_attempt(&dir, 1, 85.0, 120.0);
    let json = temp_dir("remeasure-json").join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .env(HISTORY_ENV, temp_dir("history").join("history.jsonl"))
        .args(["budget", "--budgets"])
        .arg(write_budgets(CLOSE))
        .arg("--criterion-dir")
        .arg(temp_dir("live"))
        .arg("--attempts")
        .arg(&dir)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(!out.status.success(), "over fails");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let listed: Vec<(&str, &str)> = report["remeasure"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("close", "close"), ("over", "fails"), ("twin_close", "close")]);
    assert!(report["remeasure"][0]["why"].as_str().unwrap().contains("at least 3 attempts"));
}

/// With CRITERION_HOME set, the default `--callgrind-dir` of `budget --instructions` is
/// still under the cargo target directory, not beside criterion's home, and so is the
/// default history file.
#[test]
fn criterion_home_does_not_move_the_target_directory() {
    let target = temp_dir("target");
    let home = temp_dir("elsewhere").join("criterion");
    let callgrind = target.join(lift_harness::budget::DEFAULT_CALLGRIND_SUBDIR);
    for (bench, instructions) in [
        ("bare", 10_000),
        ("bulkhead", 11_000),
        ("tower_concurrency_limit", 10_900),
        ("stack", 13_000),
        ("tower_stack", 12_000),
    ] {
        fake_callgrind(&callgrind, bench, instructions);
    }
    let baseline = temp_dir("instructions").join("instructions.toml");
    std::fs::write(&baseline, BASELINE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .env("CRITERION_HOME", &home)
        .env("CARGO_TARGET_DIR", &target)
        .args(["budget", "--instructions", "--baseline"])
        .arg(&baseline)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("gate passed"), "{stdout}");

    fake_estimates(&home, "pass_through", "bare", 100.0);
    fake_estimates(&home, "pass_through", "layer", 110.0);
    let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .env("CRITERION_HOME", &home)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove(HISTORY_ENV)
        .args(["budget", "--budgets"])
        .arg(write_budgets(CHEAP_ONLY))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(target.join(lift_harness::budget::DEFAULT_HISTORY_FILE).is_file());
    assert!(!home.parent().unwrap().join(lift_harness::budget::DEFAULT_HISTORY_FILE).exists());
}

// ------------------------------------------------------------ the instruction gate

/// Writes gungraun's callgrind output for a bench with this instruction count.
fn fake_callgrind(dir: &Path, bench: &str, instructions: u64) {
    let out = dir.join(format!("{bench}.calls"));
    std::fs::create_dir_all(&out).unwrap();
    let text = format!(
        "version: 1\ncreator: callgrind-3.19.0\ncmd: bench\npositions: line\nevents: Ir Dr Dw\n\
         summary: {instructions} 10 10\ntotals: {instructions} 10 10\n"
    );
    std::fs::write(out.join(format!("callgrind.{bench}.calls.out")), text).unwrap();
    // gungraun keeps the previous run beside it; it must not be read.
    std::fs::write(out.join(format!("callgrind.{bench}.calls.out.old")), "events: Ir\ntotals: 1\n").unwrap();
}

const BASELINE: &str = r#"# comment kept
max_rise = 0.02
max_twin_ratio = 1.2
bare_instructions = 10000

[twins]
tower_concurrency_limit = 10900
tower_stack = 12000

[layers.bulkhead]
# comment kept too
over_bare = 1000
twin = "tower_concurrency_limit"

[layers.stack]
over_bare = 3000
twin = "tower_stack"
max_twin_ratio = 1.3
"#;

/// Counts for the baseline: bare 10 000, the stack as its baseline, bulkhead as given.
fn counted(bulkhead: u64) -> lift_harness::budget::InstructionCounts {
    let dir = temp_dir("callgrind");
    fake_callgrind(&dir, "bare", 10_000);
    fake_callgrind(&dir, "bulkhead", bulkhead);
    fake_callgrind(&dir, "tower_concurrency_limit", 10_900);
    fake_callgrind(&dir, "stack", 13_000);
    fake_callgrind(&dir, "tower_stack", 12_000);
    lift_harness::budget::InstructionCounts::new(dir)
}

/// Counts of these benches, written now.
fn counts_of(benches: &[(&str, u64)]) -> lift_harness::budget::InstructionCounts {
    let dir = temp_dir("callgrind");
    for (bench, instructions) in benches {
        fake_callgrind(&dir, bench, *instructions);
    }
    lift_harness::budget::InstructionCounts::new(dir)
}

/// The callgrind output `fake_callgrind` wrote for a bench.
fn callgrind_out(dir: &Path, bench: &str) -> PathBuf {
    dir.join(format!("{bench}.calls")).join(format!("callgrind.{bench}.calls.out"))
}

/// Sets a file's modification time this long ago.
fn backdate(path: &Path, ago: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - ago).unwrap();
}

#[test]
fn the_instruction_gate_fails_a_layer_given_5_percent_more_work() {
    let baseline = lift_harness::budget::InstructionBaseline::parse(BASELINE, "instructions.toml").unwrap();
    let at_baseline = baseline.check(&counted(11_000)).unwrap();
    assert!(at_baseline.passed, "{at_baseline}");
    // 5% more work over bare: 1050 > 1000 x 1.02.
    let slower = baseline.check(&counted(11_050)).unwrap();
    assert!(!slower.passed, "{slower}");
    let bulkhead = slower.layers.iter().find(|l| l.layer == "bulkhead").unwrap();
    assert_eq!((bulkhead.over_bare, bulkhead.passed), (1050, false));
    assert!((bulkhead.rise - 0.05).abs() < 1e-9);
    assert!(slower.to_string().contains("gate FAILED"), "{slower}");
    // 2% is still within.
    assert!(baseline.check(&counted(11_020)).unwrap().passed);
    // Cheaper passes.
    assert!(baseline.check(&counted(10_500)).unwrap().passed);
}

#[test]
fn the_instruction_gate_fails_a_layer_dearer_than_1_2x_its_twin() {
    let text = BASELINE.replace("over_bare = 1000", "over_bare = 5000");
    let baseline = lift_harness::budget::InstructionBaseline::parse(&text, "instructions.toml").unwrap();
    // Within its own baseline (3000 < 5000): 13 000 / 10 900 = 1.19x passes...
    assert!(baseline.check(&counted(13_000)).unwrap().passed);
    // ... and 13 500 / 10 900 = 1.24x fails.
    let dear = baseline.check(&counted(13_500)).unwrap();
    let bulkhead = dear.layers.iter().find(|l| l.layer == "bulkhead").unwrap();
    assert!(!bulkhead.passed, "{dear}");
    assert_eq!(bulkhead.twin.as_ref().unwrap().ratio, 13_500.0 / 10_900.0);
    // The stack has its own ratio: 13 000 / 12 000 = 1.08x.
    assert!(dear.layers.iter().find(|l| l.layer == "stack").unwrap().passed);
}

#[test]
fn the_instruction_baseline_updates_in_place_and_a_missing_bench_is_an_error() {
    let baseline = lift_harness::budget::InstructionBaseline::parse(BASELINE, "instructions.toml").unwrap();
    let updated =
        lift_harness::budget::InstructionBaseline::updated(BASELINE, &baseline, &counted(11_050)).unwrap();
    assert!(updated.contains("# comment kept\n") && updated.contains("# comment kept too\n"), "{updated}");
    assert!(updated.contains("over_bare = 1050\n") && updated.contains("over_bare = 3000\n"), "{updated}");
    let again = lift_harness::budget::InstructionBaseline::parse(&updated, "instructions.toml").unwrap();
    assert!(again.check(&counted(11_050)).unwrap().passed);
    // Bare's and the twins' counts are written too, and the layers' over the new bare.
    let moved = counts_of(&[
        ("bare", 10_100),
        ("bulkhead", 11_000),
        ("tower_concurrency_limit", 11_500),
        ("stack", 13_000),
        ("tower_stack", 11_900),
    ]);
    let updated = lift_harness::budget::InstructionBaseline::updated(BASELINE, &baseline, &moved).unwrap();
    for line in [
        "bare_instructions = 10100\n",
        "tower_concurrency_limit = 11500\n",
        "tower_stack = 11900\n",
        "over_bare = 900\n",
        "over_bare = 2900\n",
    ] {
        assert!(updated.contains(line), "{line:?} not in {updated}");
    }
    let again = lift_harness::budget::InstructionBaseline::parse(&updated, "instructions.toml").unwrap();
    assert_eq!((again.bare_instructions, again.twins()[0].instructions), (10_100, 11_500));
    assert!(again.check(&moved).unwrap().passed);
    // A count the rewrite cannot reach (an inline table) is an error, not a baseline left
    // partly old.
    let inline = BASELINE.replace(
        "[twins]\ntower_concurrency_limit = 10900\ntower_stack = 12000\n",
        "twins = { tower_concurrency_limit = 10900, tower_stack = 12000 }\n",
    );
    let inline_baseline =
        lift_harness::budget::InstructionBaseline::parse(&inline, "instructions.toml").unwrap();
    let err =
        lift_harness::budget::InstructionBaseline::updated(&inline, &inline_baseline, &moved).unwrap_err();
    assert!(err.to_string().contains("write twins.tower_concurrency_limit on a line of its own"), "{err}");

    let dir = temp_dir("callgrind-missing");
    fake_callgrind(&dir, "bare", 10_000);
    let err = baseline.check(&lift_harness::budget::InstructionCounts::new(dir)).unwrap_err();
    assert!(
        matches!(err, BudgetError::MissingResults { ref function, .. } if function == "bulkhead"),
        "{err}"
    );
}

#[test]
fn the_workspace_instruction_baseline_covers_every_resilience_layer_with_its_twin() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/instructions.toml");
    let baseline = lift_harness::budget::InstructionBaseline::load(&path).unwrap();
    assert_eq!((baseline.max_rise, baseline.max_twin_ratio), (0.02, 1.2));
    assert_eq!(baseline.bare, "bare");
    let twins: Vec<(&str, Option<&str>)> =
        baseline.layers().iter().map(|l| (l.name.as_str(), l.twin.as_deref())).collect();
    for expected in [
        ("bulkhead", Some("tower_concurrency_limit")),
        ("load_shed", Some("tower_load_shed")),
        ("timeout", Some("tower_timeout")),
        ("retry", Some("tower_retry")),
        ("stack", Some("tower_stack")),
    ] {
        assert!(twins.contains(&expected), "{expected:?} not in {twins:?}");
    }
    for layer in baseline.layers() {
        assert!(layer.over_bare > 0, "{}: no baseline count", layer.name);
    }
    // Every layer's own ratios, as reviewed: loosening one (or adding one) shows here.
    let mut ratios: Vec<_> = baseline
        .layers()
        .iter()
        .map(|l| {
            let also: Vec<(&str, f64)> = l.also.iter().map(|a| (a.twin.as_str(), a.max_twin_ratio)).collect();
            (l.name.as_str(), l.max_twin_ratio, also)
        })
        .collect();
    ratios.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        ratios,
        [
            ("bulkhead", None, vec![]),
            ("load_shed", Some(1.38), vec![("tower_limited_load_shed", 1.0)]),
            ("retry", None, vec![]),
            ("stack", Some(1.3), vec![]),
            ("timeout", None, vec![]),
        ]
    );
    // Bare and every twin have a count of their own (parse refuses a twin without one).
    assert!(baseline.bare_instructions > 0);
    let mut counted: Vec<&str> = baseline.twins().iter().map(|t| t.name.as_str()).collect();
    counted.sort_unstable();
    assert_eq!(
        counted,
        [
            "tower_concurrency_limit",
            "tower_limited_load_shed",
            "tower_load_shed",
            "tower_retry",
            "tower_stack",
            "tower_timeout"
        ]
    );
    // The bench group is exactly bare, the layers and the twins: a bench the baseline does
    // not name would fail the gate on its output directory.
    let bench = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/benches/instructions.rs"),
    )
    .unwrap();
    let group = bench.split("benchmarks = [").nth(1).and_then(|rest| rest.split(']').next()).unwrap();
    let mut in_code: Vec<&str> = group.split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
    in_code.sort_unstable();
    let mut in_baseline: Vec<&str> = std::iter::once(baseline.bare.as_str())
        .chain(baseline.layers().iter().map(|l| l.name.as_str()))
        .chain(counted)
        .collect();
    in_baseline.sort_unstable();
    assert_eq!(in_code, in_baseline);
}

/// gungraun's directory outlives a run: with `--since`, an output written before the run is
/// refused, naming the file, in a check and in an update alike; without it, nothing checks.
#[test]
fn the_instruction_gate_refuses_output_older_than_the_run() {
    let baseline = lift_harness::budget::InstructionBaseline::parse(BASELINE, "instructions.toml").unwrap();
    let counts = counted(11_000);
    let start = std::time::SystemTime::now() - Duration::from_secs(60);
    assert!(baseline.check(&counts.clone().fresh_since(start)).unwrap().passed);
    // The bulkhead was not benched this time (filtered out, say): its output is an hour old.
    let old = callgrind_out(counts.dir(), "bulkhead");
    backdate(&old, Duration::from_secs(3600));
    let fresh = counts.clone().fresh_since(start);
    let err = baseline.check(&fresh).unwrap_err();
    match &err {
        BudgetError::StaleResults { function, path, .. } => {
            assert_eq!((function.as_str(), path), ("bulkhead", &old))
        }
        other => panic!("expected stale results, got {other:?}"),
    }
    assert!(err.to_string().starts_with("results for instructions/bulkhead are "), "{err}");
    assert!(err.to_string().contains(&old.display().to_string()), "{err}");
    let err = lift_harness::budget::InstructionBaseline::updated(BASELINE, &baseline, &fresh).unwrap_err();
    assert!(matches!(err, BudgetError::StaleResults { ref function, .. } if function == "bulkhead"), "{err}");
    assert!(baseline.check(&counts).unwrap().passed, "no --since, no time check");
}

/// The command passes `--since` to the instruction gate: an old output fails the check and
/// the update (which leaves the baseline as it was), fresh ones pass and update every count.
#[test]
fn the_instruction_command_refuses_output_older_than_since() {
    let file = temp_dir("instructions").join("instructions.toml");
    std::fs::write(&file, BASELINE).unwrap();
    let counts = counted(11_000);
    let since = (std::time::SystemTime::now() - Duration::from_secs(60))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let gate = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lift-harness"))
            .args(["budget", "--instructions", "--baseline"])
            .arg(&file)
            .arg("--callgrind-dir")
            .arg(counts.dir())
            .args(["--since", &since])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = gate(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("gate passed"), "{stdout}");

    let old = callgrind_out(counts.dir(), "bare");
    backdate(&old, Duration::from_secs(3600));
    for extra in [&[][..], &["--update"][..]] {
        let out = gate(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stdout));
        assert!(stderr.contains("results for instructions/bare are "), "{extra:?}: {stderr}");
        assert!(stderr.contains(&old.display().to_string()), "{extra:?}: {stderr}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), BASELINE);

    fake_callgrind(counts.dir(), "bare", 10_100);
    let out = gate(&["--update"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let updated = std::fs::read_to_string(&file).unwrap();
    assert!(
        updated.contains("bare_instructions = 10100\n") && updated.contains("over_bare = 900\n"),
        "{updated}"
    );
}

/// One output per bench: a bench that ran several threads, or under a second bench id, is an
/// error naming its outputs, not whichever the directory listing gives first; gungraun's
/// previous run (`.out.old`) and the logs are not outputs.
#[test]
fn a_bench_with_several_callgrind_outputs_is_an_error() {
    let baseline = lift_harness::budget::InstructionBaseline::parse(BASELINE, "instructions.toml").unwrap();
    let counts = counted(11_000);
    let calls = counts.dir().join("bulkhead.calls");
    std::fs::write(calls.join("callgrind.bulkhead.calls.log"), "==1== Callgrind\n").unwrap();
    std::fs::write(calls.join("callgrind.bulkhead.calls.log.old"), "==1== Callgrind\n").unwrap();
    assert!(baseline.check(&counts).unwrap().passed);

    // Two threads: gungraun names their outputs `.t1.p1.out` and `.t2.p1.out`.
    std::fs::remove_file(calls.join("callgrind.bulkhead.calls.out")).unwrap();
    let text = |ir: u64| format!("events: Ir Dr Dw\nsummary: {ir} 1 1\ntotals: {ir} 1 1\n");
    let threads =
        [calls.join("callgrind.bulkhead.calls.t1.p1.out"), calls.join("callgrind.bulkhead.calls.t2.p1.out")];
    std::fs::write(&threads[0], text(11_000)).unwrap();
    std::fs::write(&threads[1], text(500)).unwrap();
    let err = baseline.check(&counts).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, BudgetError::BadInstructionCounts { ref bench, .. } if bench == "bulkhead"),
        "{err:?}"
    );
    assert!(
        message.starts_with(
            "instruction counts of bulkhead: 2 callgrind outputs, one expected (it ran 2 threads): "
        ),
        "{message}"
    );
    assert!(threads.iter().all(|t| message.contains(&t.display().to_string())), "{message}");

    // A second bench id: another directory.
    let counts = counted(11_000);
    let light = counts.dir().join("bulkhead.light");
    std::fs::create_dir_all(&light).unwrap();
    let second = light.join("callgrind.bulkhead.light.out");
    std::fs::write(&second, text(10_500)).unwrap();
    for err in [
        baseline.check(&counts).unwrap_err(),
        lift_harness::budget::InstructionBaseline::updated(BASELINE, &baseline, &counts).unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(
            message.contains("2 callgrind outputs, one expected (it ran under 2 bench ids)"),
            "{message}"
        );
        assert!(message.contains(&second.display().to_string()), "{message}");
        assert!(
            message.contains(&callgrind_out(counts.dir(), "bulkhead").display().to_string()),
            "{message}"
        );
    }
}

/// A bench in the group but not in the baseline would never be gated: its output directory
/// fails the gate.
#[test]
fn an_output_of_a_bench_the_baseline_does_not_name_is_an_error() {
    let baseline = lift_harness::budget::InstructionBaseline::parse(BASELINE, "instructions.toml").unwrap();
    let counts = counted(11_000);
    fake_callgrind(counts.dir(), "circuit_breaker", 12_000);
    let dir = counts.dir().join("circuit_breaker.calls");
    for err in [
        baseline.check(&counts).unwrap_err(),
        lift_harness::budget::InstructionBaseline::updated(BASELINE, &baseline, &counts).unwrap_err(),
    ] {
        assert!(
            matches!(err, BudgetError::BadInstructionCounts { ref bench, .. } if bench == "circuit_breaker"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&dir.display().to_string()), "{message}");
        assert!(message.contains("neither bare, a layer nor a twin in instructions.toml"), "{message}");
    }
}

/// A count of 0 (bare, a layer or a twin) and a layer below bare are errors, not counts: with
/// them over_bare and the ratios mean nothing (0 / 0 was a ratio of 0).
#[test]
fn zero_counts_and_a_layer_below_bare_are_errors() {
    let baseline = lift_harness::budget::InstructionBaseline::parse(BASELINE, "instructions.toml").unwrap();
    for bench in ["bare", "bulkhead", "tower_concurrency_limit"] {
        let counts = counted(11_000);
        fake_callgrind(counts.dir(), bench, 0);
        let err = baseline.check(&counts).unwrap_err();
        let expected = format!(
            "instruction counts of {bench}: 0 instructions in {}",
            callgrind_out(counts.dir(), bench).display()
        );
        assert!(err.to_string().starts_with(&expected), "{err}");
    }
    // Layer and twin both 0: no longer a ratio of 0.
    let counts = counted(0);
    fake_callgrind(counts.dir(), "tower_concurrency_limit", 0);
    assert!(matches!(baseline.check(&counts), Err(BudgetError::BadInstructionCounts { .. })));
    let err = baseline.check(&counted(9_000)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("instruction counts of bulkhead: 9000 instructions, fewer than bare's 10000"),
        "{err}"
    );
    let err =
        lift_harness::budget::InstructionBaseline::updated(BASELINE, &baseline, &counted(9_000)).unwrap_err();
    assert!(
        matches!(err, BudgetError::BadInstructionCounts { ref bench, .. } if bench == "bulkhead"),
        "{err}"
    );
}

/// Bare's and each twin's own counts are held with max_rise: a costlier bare shrinks every
/// over_bare and a costlier twin loosens every ratio, so either fails the gate though every
/// layer passes. Lower passes, as for layers.
#[test]
fn bare_and_the_twins_are_held_at_their_baseline_counts() {
    let baseline = lift_harness::budget::InstructionBaseline::parse(BASELINE, "instructions.toml").unwrap();
    let run = |bare: u64, twin: u64| {
        baseline
            .check(&counts_of(&[
                ("bare", bare),
                ("bulkhead", bare + 1_000),
                ("tower_concurrency_limit", twin),
                ("stack", bare + 3_000),
                ("tower_stack", 12_000),
            ]))
            .unwrap()
    };
    assert!(run(10_000, 10_900).passed);
    // Bare 3% dearer, every layer the same over it: the layers pass, bare fails.
    let dearer = run(10_300, 10_900);
    assert!(dearer.layers.iter().all(|l| l.passed), "{dearer}");
    assert!(!dearer.passed, "{dearer}");
    assert_eq!(dearer.failed(), ["bare"]);
    let table = dearer.to_string();
    assert!(table.lines().any(|l| l.starts_with("bare ") && l.ends_with("FAIL")), "{table}");
    assert!(table.ends_with("gate FAILED"), "{table}");
    // 2% is within; cheaper passes.
    assert!(run(10_200, 10_900).passed);
    assert!(run(9_500, 10_900).passed);
    // A twin 2.75% dearer: the bulkhead's ratio looks better (0.98x), and the twin fails.
    let twin = run(10_000, 11_200);
    assert_eq!(twin.failed(), ["tower_concurrency_limit"], "{twin}");
    assert!(run(10_000, 11_118).passed, "2% is within");
    assert!(run(10_000, 10_000).passed);

    // Bare and every twin need a count, and every count a twin.
    for (text, reason) in [
        (BASELINE.replace("bare_instructions = 10000\n", ""), "missing field `bare_instructions`"),
        (BASELINE.replace("bare_instructions = 10000", "bare_instructions = 0"), "bare_instructions must be a count above 0"),
        (
            BASELINE.replace("tower_stack = 12000\n", ""),
            "layers.stack: twin \"tower_stack\" has no count: add `tower_stack = <instructions>` under [twins]",
        ),
        (BASELINE.replace("tower_stack = 12000\n", "tower_stack = 0\n"), "twins.tower_stack must be a count above 0"),
        (
            BASELINE.replace("[twins]\n", "[twins]\ntower_retry = 100\n"),
            "twins.tower_retry: no layer names it as a twin",
        ),
    ] {
        let err = lift_harness::budget::InstructionBaseline::parse(&text, "instructions.toml").unwrap_err();
        assert!(err.to_string().contains(reason), "{reason}: {err}");
    }
}

// The bench history and its trend.

/// A run that measured `pass_through` with this overhead (bare 50 ns) at this speed factor.
fn history_run(run: u64, overhead_ns: f64, speed_factor: Option<f64>) -> HistoryRecord {
    HistoryRecord {
        run,
        recorded_at: run,
        groups: vec![HistoryEntry {
            group: "pass_through".into(),
            layer_median_ns: 50.0 + overhead_ns,
            bare_median_ns: 50.0,
            overhead_ns: None,
            speed_factor,
            effective_budget_ns: 500.0 * speed_factor.unwrap_or(1.0),
            verdict: "PASS".into(),
        }],
    }
}

/// Ten runs at 100 ns, then these overheads, all at the reference speed.
fn history_with_latest(latest: &[f64]) -> Vec<HistoryRecord> {
    let values = std::iter::repeat_n(100.0, 10).chain(latest.iter().copied());
    values.enumerate().map(|(i, ns)| history_run(1_000 + i as u64, ns, Some(1.0))).collect()
}

fn verdict_of(runs: &[HistoryRecord]) -> TrendVerdict {
    let report = TrendReport::new(runs, TrendPolicy::default());
    assert_eq!(report.trends.len(), 1, "{report}");
    report.trends[0].verdict
}

#[test]
fn three_runs_over_20_percent_above_the_baseline_are_a_regression_though_each_passed_its_budget() {
    let runs = history_with_latest(&[125.0, 126.0, 124.0]);
    let report = TrendReport::new(&runs, TrendPolicy::default());
    let trend = &report.trends[0];
    assert_eq!((trend.verdict, trend.baseline_ns), (TrendVerdict::Regression, Some(100.0)), "{report}");
    // The smallest of the three: the sustained part.
    assert!((trend.change.unwrap() - 0.24).abs() < 1e-9, "{:?}", trend.change);
    assert_eq!(report.regressions(), ["pass_through"]);
    let table = report.to_string();
    assert!(table.contains("REGRESSION (last 3 runs over)") && table.contains("+24%"), "{table}");
}

#[test]
fn one_or_two_slow_runs_or_a_rise_of_20_percent_or_less_are_not_a_regression() {
    // The third latest run is back at the baseline.
    assert_eq!(verdict_of(&history_with_latest(&[100.0, 130.0, 130.0])), TrendVerdict::Steady);
    // A spike that went away.
    assert_eq!(verdict_of(&history_with_latest(&[130.0, 130.0, 101.0])), TrendVerdict::Steady);
    // 15%, and exactly 20%: not more than 20%.
    assert_eq!(verdict_of(&history_with_latest(&[115.0, 115.0, 115.0])), TrendVerdict::Steady);
    assert_eq!(verdict_of(&history_with_latest(&[120.0, 120.0, 120.0])), TrendVerdict::Steady);
    // Just over: flagged, so the lines above are not passing for another reason.
    assert_eq!(verdict_of(&history_with_latest(&[120.5, 120.5, 120.5])), TrendVerdict::Regression);
}

#[test]
fn runs_compare_at_the_same_speed_factor() {
    // 130 ns on a machine 1.3x slower is 100 ns at the reference speed: no regression.
    let mut runs = history_with_latest(&[]);
    runs.extend((0..3).map(|i| history_run(2_000 + i, 130.0, Some(1.3))));
    assert_eq!(verdict_of(&runs), TrendVerdict::Steady);
    // 130 ns at the reference speed is.
    let mut runs = history_with_latest(&[]);
    runs.extend((0..3).map(|i| history_run(2_000 + i, 130.0, Some(1.0))));
    assert_eq!(verdict_of(&runs), TrendVerdict::Regression);
    // And the same 130 ns on a quick machine after a baseline taken on a slow one is too:
    // the baseline was 130 / 1.3 = 100 ns at the reference speed.
    let mut runs: Vec<HistoryRecord> = (0..10).map(|i| history_run(1_000 + i, 130.0, Some(1.3))).collect();
    runs.extend((0..3).map(|i| history_run(2_000 + i, 130.0, Some(1.0))));
    assert_eq!(verdict_of(&runs), TrendVerdict::Regression);
}

#[test]
fn too_short_a_history_or_a_rise_below_a_nanosecond_is_not_a_regression() {
    let short: Vec<HistoryRecord> =
        [100.0, 200.0, 200.0].iter().enumerate().map(|(i, ns)| history_run(i as u64, *ns, None)).collect();
    assert_eq!(verdict_of(&short), TrendVerdict::NotEnoughRuns);
    // 2 ns to 2.5 ns is 25% but half a nanosecond: timer noise, not a regression.
    let tiny: Vec<HistoryRecord> = [2.0, 2.0, 2.0, 2.5, 2.5, 2.5]
        .iter()
        .enumerate()
        .map(|(i, ns)| history_run(i as u64, *ns, None))
        .collect();
    assert_eq!(verdict_of(&tiny), TrendVerdict::Steady);
}

#[test]
fn a_run_measured_again_counts_once_with_its_last_record() {
    // The gate's retries within one run (same --since) each append; the last one is the run's.
    let mut lines = Vec::new();
    for record in history_with_latest(&[]) {
        lines.push(serde_json::to_string(&record).unwrap());
    }
    for i in 0..3u64 {
        lines.push(serde_json::to_string(&history_run(2_000 + i, 160.0, Some(1.0))).unwrap());
        lines.push(serde_json::to_string(&history_run(2_000 + i, 101.0, Some(1.0))).unwrap());
    }
    let runs = history::parse(&lines.join("\n"), Path::new("history.jsonl")).unwrap();
    assert_eq!(runs.len(), 13);
    assert_eq!(verdict_of(&runs), TrendVerdict::Steady);
    let err = history::parse("{\"run\":1,\"recorded_at\":1,\"groups\":[]}\n\nnot json", Path::new("h.jsonl"))
        .unwrap_err();
    assert!(err.to_string().starts_with("malformed bench history h.jsonl line 3:"), "{err}");
}

#[test]
fn the_gate_appends_each_run_and_budget_trend_flags_a_sustained_regression() {
    let dir = temp_dir("history-cli");
    let history_file = dir.join("nested").join("history.jsonl");
    let budgets = write_budgets(CHEAP_ONLY);
    let gate = |since: u64, layer_ns: f64| {
        let criterion = temp_dir("history-criterion");
        fake_estimates(&criterion, "pass_through", "bare", 50.0);
        fake_estimates(&criterion, "pass_through", "layer", layer_ns);
        let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
            .env(HISTORY_ENV, &history_file)
            .args(["budget", "--budgets"])
            .arg(&budgets)
            .arg("--criterion-dir")
            .arg(&criterion)
            .args(["--since", &since.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    // Results written now are fresh for a run that started a minute ago.
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 60;
    for run in 0..4 {
        gate(start - 100 + run, 150.0);
    }
    for run in 4..7 {
        gate(start - 100 + run, 180.0);
    }
    let text = std::fs::read_to_string(&history_file).unwrap();
    assert_eq!(text.lines().count(), 7);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["run"], start - 100);
    assert_eq!(first["groups"][0]["group"], "pass_through");
    assert_eq!(
        (first["groups"][0]["layer_median_ns"].as_f64(), first["groups"][0]["bare_median_ns"].as_f64()),
        (Some(150.0), Some(50.0))
    );
    assert_eq!(first["groups"][0]["overhead_ns"].as_f64(), Some(100.0), "the overhead the gate reported");
    // No calibration in this budgets file: no speed factor.
    assert!(first["groups"][0]["speed_factor"].is_null());

    let trend = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lift-harness"))
            .args(["budget", "--trend", "--history"])
            .arg(&history_file)
            .args(extra)
            .output()
            .unwrap()
    };
    // 100 ns then 130 ns: 30% over for the last 3 runs.
    let out = trend(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a flag, not a failure, unless asked");
    assert!(stdout.contains("REGRESSION") && stdout.contains("+30%"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sustained regression: pass_through"));
    let out = trend(&["--fail-on-regression"]);
    assert!(!out.status.success());
    // 4 runs of the last needed: at 35% nothing is flagged.
    let out = trend(&["--trend-runs", "4"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("steady"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = trend(&["--trend-threshold", "35", "--fail-on-regression"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let out = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .args(["budget", "--trend", "--history"])
        .arg(dir.join("none.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bench history"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A layer held against a second twin (`also`) fails when it costs more than that twin
/// allows, even within its baseline and its first twin's ratio; a missing second twin is an
/// error, not a pass; a ratio of 0 is refused.
#[test]
fn the_instruction_gate_holds_a_layer_against_its_other_twins() {
    let text = BASELINE
        .replace(
            "twin = \"tower_concurrency_limit\"\n",
            "twin = \"tower_concurrency_limit\"\nalso = [{ twin = \"tower_limited\", max_twin_ratio = 1.0 }]\n",
        )
        .replace("[twins]\n", "[twins]\ntower_limited = 11000\n");
    let baseline = lift_harness::budget::InstructionBaseline::parse(&text, "instructions.toml").unwrap();
    let counts = |limited: u64| {
        let counts = counted(11_000);
        fake_callgrind(counts.dir(), "tower_limited", limited);
        counts
    };
    // 11 000 against 11 000: within 1.0x.
    let within = baseline.check(&counts(11_000)).unwrap();
    assert!(within.passed, "{within}");
    let bulkhead = within.layers.iter().find(|l| l.layer == "bulkhead").unwrap();
    assert_eq!(bulkhead.also.len(), 1);
    assert!(within.to_string().contains("1.00x tower_limited (<= 1.00x)"), "{within}");
    // A cheaper second twin: 11 000 / 10 900 = 1.01x fails, though the layer is at its
    // baseline and within 1.2x of its first twin.
    let dear = baseline.check(&counts(10_900)).unwrap();
    let bulkhead = dear.layers.iter().find(|l| l.layer == "bulkhead").unwrap();
    assert!(!bulkhead.passed && !dear.passed, "{dear}");
    assert!(bulkhead.twin.as_ref().is_some_and(|t| t.ratio <= t.max_ratio));
    // Not counted: an error naming it.
    let err = baseline.check(&counted(11_000)).unwrap_err();
    assert!(
        matches!(err, BudgetError::MissingResults { ref function, .. } if function == "tower_limited"),
        "{err}"
    );
    let zero = text.replace("max_twin_ratio = 1.0 }", "max_twin_ratio = 0.0 }");
    let err = lift_harness::budget::InstructionBaseline::parse(&zero, "instructions.toml").unwrap_err();
    assert!(err.to_string().contains("layers.bulkhead: a twin ratio must be a number above 0"), "{err}");
    // A twin that is the layer itself (1.00x, always within 1.0x), bare, or the first twin
    // again: refused, not a check that cannot fail.
    for (twin, reason) in [
        ("bulkhead", "must be a bench of its own"),
        ("bare", "must be a bench of its own"),
        ("tower_concurrency_limit", "is named twice"),
    ] {
        let typo =
            text.replace("also = [{ twin = \"tower_limited\"", &format!("also = [{{ twin = \"{twin}\""));
        let err = lift_harness::budget::InstructionBaseline::parse(&typo, "instructions.toml").unwrap_err();
        assert!(err.to_string().contains(&format!("layers.bulkhead: twin \"{twin}\" {reason}")), "{err}");
    }
}
