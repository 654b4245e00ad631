//! The local Lambda runtime against real `lambda_runtime` binaries (`lambda-fixture`,
//! `lambda-hello`) and shell bootstraps: Lambda's environment and headers, the function's
//! credentials (never the harness's own), timeouts, freeze, memory and CPU limits, reserved
//! concurrency, reaping, each sandbox's own `/tmp`, output that is not UTF-8, Lambda's errors,
//! the Runtime API's answers to late, oversized and repeated posts, the unprivileged sandbox
//! user with Lambda's open-file and process limits, the Invoke API (also through the stock
//! `aws` CLI) with its asynchronous invocations and their retries, the HTTP API front, the
//! cold-start gate, and how cgroup tests skip.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lift_harness::lambda::http_api::HttpApi;
use lift_harness::lambda::invoke_api::InvokeApi;
use lift_harness::lambda::runtime_api::{NextInvocation, RuntimeApi, RuntimeEvent};
use lift_harness::lambda::sandbox::{
    aws_cli_for_test, cgroups_available, cgroups_for_test, SANDBOX_UID_BASE,
};
use lift_harness::lambda::{
    Function, FunctionBuilder, InvokeError, InvokeOptions, LocalLambda, ASYNC_REQUEST_LIMIT_BYTES,
};
use serde_json::{json, Value};

const FIXTURE: &str = env!("CARGO_BIN_EXE_lambda-fixture");
const HELLO: &str = env!("CARGO_BIN_EXE_lambda-hello");
const HARNESS: &str = env!("CARGO_BIN_EXE_lift-harness");
const SETTLE: Duration = Duration::from_secs(3);

/// The CPU-share test measures how long CPU work takes under the sandbox's quota. The
/// other tests of this file, run at the same time on a 2-core machine, would take CPU from
/// it, so they hold this lock for reading and the CPU test holds it alone.
static CPU: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn fixture() -> FunctionBuilder {
    Function::builder("fixture", FIXTURE).memory_mb(256).timeout_secs(3)
}

fn lambda_with(f: FunctionBuilder) -> LocalLambda {
    LocalLambda::builder().function(f.build().unwrap()).build().unwrap()
}

async fn invoke(lambda: &LocalLambda, payload: Value) -> lift_harness::lambda::InvokeResponse {
    lambda.invoke("fixture", payload.to_string()).await.expect("the invocation reaches the function")
}

#[tokio::test]
async fn the_runtime_gets_lambdas_environment_headers_and_reports() {
    let _shared = CPU.read().await;
    let lambda = lambda_with(fixture().env("USER_VAR", "from-user").region("eu-west-1"));
    let options = InvokeOptions {
        client_context: Some(
            json!({
                "client": {"installation_id": "i-1", "app_title": "shop", "app_version_name": "1.0",
                           "app_version_code": "1", "app_package_name": "com.example.shop"},
                "custom": {"app": "mobile"},
                "env": {"platform": "android"}
            })
            .to_string(),
        ),
        trace_id: Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into()),
        ..InvokeOptions::default()
    };
    let before = std::time::SystemTime::now();
    let out = lambda.invoke_with("fixture", r#"{"order":42}"#, options).await.unwrap();
    assert!(out.function_error.is_none(), "{:?}", out.payload);
    let body = out.json();
    assert_eq!(body["event"], json!({"order": 42}));
    assert_eq!(body["request_id"], out.request_id);
    assert_eq!(body["arn"], "arn:aws:lambda:eu-west-1:000000000000:function:fixture");
    assert_eq!(
        body["trace_id"],
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    );
    assert_eq!(body["client_context"], json!({"app": "mobile"}));
    // The deadline is the timeout from now, in Unix milliseconds.
    let deadline = body["deadline"].as_u64().unwrap();
    let now_ms = before.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(
        deadline >= now_ms + 2_900 && deadline <= now_ms + 3_000 + 2_000,
        "deadline {deadline} vs now {now_ms}"
    );
    let env = &body["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "fixture");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/fixture");
    assert!(env["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().unwrap().contains("[$LATEST]"));
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["USER_VAR"], "from-user");
    assert!(env["LAMBDA_TASK_ROOT"].is_string());
    // Lambda's environment is its own: the harness's HOME does not leak in.
    assert_eq!(env["HOME"], Value::Null);

    // Cold: Init Duration in the REPORT; then warm in the same sandbox, without it.
    assert!(out.cold_start);
    assert!(out.report.init_duration.is_some());
    assert!(lambda.settle("fixture", SETTLE).await);
    let warm = invoke(&lambda, json!({"n": 2})).await;
    assert!(!warm.cold_start);
    assert_eq!(warm.sandbox_id, out.sandbox_id);
    assert!(warm.report.init_duration.is_none());
    assert_eq!(lambda.cold_starts("fixture"), 1);
    // The warm invocation's REPORT is written when its runtime asks for the next one.
    assert!(lambda.settle("fixture", SETTLE).await);

    let log: Vec<String> = lambda.logs("fixture").into_iter().map(|l| l.message).collect();
    let start =
        log.iter().position(|l| *l == format!("START RequestId: {} Version: $LATEST", out.request_id));
    let end = log.iter().position(|l| *l == format!("END RequestId: {}", out.request_id));
    let report =
        log.iter().position(|l| l.starts_with(&format!("REPORT RequestId: {}\tDuration: ", out.request_id)));
    assert!(start < end && end < report, "{log:#?}");
    let line = &log[report.unwrap()];
    for field in ["Billed Duration: ", "Memory Size: 256 MB", "Max Memory Used: ", "Init Duration: "] {
        assert!(line.contains(field), "{line}");
    }
    let reports = lambda.reports("fixture");
    assert_eq!(reports.len(), 2);
    assert!(reports[0].max_memory_used_mb > 0);
    assert!(reports[1].billed_ms >= 1);
}

#[tokio::test]
async fn a_handler_past_its_timeout_is_killed_at_the_deadline_and_the_next_invocation_is_cold() {
    let _shared = CPU.read().await;
    let lambda = lambda_with(fixture().timeout_secs(1));
    let first = invoke(&lambda, json!({"action": "echo"})).await;
    assert!(lambda.settle("fixture", SETTLE).await);
    let started = Instant::now();
    let out = invoke(&lambda, json!({"action": "sleep", "ms": 5_000})).await;
    let elapsed = started.elapsed();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.error_type().as_deref(), Some("Sandbox.Timedout"));
    let message = out.json()["errorMessage"].as_str().unwrap().to_owned();
    assert_eq!(message, format!("RequestId: {} Error: Task timed out after 1.00 seconds", out.request_id));
    // Killed, and answered, within 100 ms of the 1 s deadline.
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_100), "answered {elapsed:?} after the start");
    assert_eq!(out.report.status.as_deref(), Some("timeout"));
    assert_eq!(lambda.sandboxes("fixture"), 0, "the timed-out sandbox is gone");

    let next = invoke(&lambda, json!({"action": "echo"})).await;
    assert!(next.cold_start, "the next invocation starts a new sandbox");
    assert_ne!(next.sandbox_id, first.sandbox_id);
    assert!(next.report.init_duration.is_some());
    assert!(next.function_error.is_none());
}

async fn background_line_while_idle(freeze: bool) -> (bool, LocalLambda) {
    let lambda = lambda_with(fixture().freeze(freeze));
    let out = invoke(&lambda, json!({"action": "background", "ms": 200})).await;
    assert!(out.function_error.is_none());
    assert!(lambda.settle("fixture", SETTLE).await);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ran = lambda.logs("fixture").iter().any(|l| l.message == "background ran");
    (ran, lambda)
}

#[tokio::test]
async fn a_frozen_sandbox_runs_no_background_task_until_the_next_invocation_thaws_it() {
    let _shared = CPU.read().await;
    let (ran_while_idle, lambda) = background_line_while_idle(true).await;
    assert!(!ran_while_idle, "a background task ran while the sandbox was frozen");
    let thawing = invoke(&lambda, json!({"action": "echo"})).await;
    assert!(!thawing.cold_start);
    // Thawed, the overdue timer fires: its line comes after the thawing invocation's START.
    let mut waited = Duration::ZERO;
    while !lambda.logs("fixture").iter().any(|l| l.message == "background ran") && waited < SETTLE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let log: Vec<String> = lambda.logs("fixture").into_iter().map(|l| l.message).collect();
    let start = log.iter().position(|l| l.starts_with(&format!("START RequestId: {}", thawing.request_id)));
    let ran = log.iter().position(|l| l == "background ran");
    assert!(ran.is_some(), "the background task never ran after the thaw: {log:#?}");
    assert!(start < ran, "{log:#?}");
}

#[tokio::test]
async fn without_the_freeze_the_same_background_task_runs_while_idle() {
    let _shared = CPU.read().await;
    // The control for the test above: it is the freeze, not the timing, that holds the task.
    let (ran_while_idle, _lambda) = background_line_while_idle(false).await;
    assert!(ran_while_idle);
}

#[tokio::test]
async fn allocating_past_the_memory_size_is_killed_and_reported_out_of_memory() {
    let _shared = CPU.read().await;
    if !cgroups_for_test("allocating_past_the_memory_size_is_killed_and_reported_out_of_memory") {
        return;
    }
    let lambda = lambda_with(fixture().memory_mb(128));
    let fits = invoke(&lambda, json!({"action": "allocate", "mb": 40})).await;
    assert!(fits.function_error.is_none(), "40 MB fits in 128 MB: {:?}", fits.payload);
    assert!(fits.report.max_memory_used_mb >= 40, "{:?}", fits.report);
    assert!(lambda.settle("fixture", SETTLE).await);

    let out = invoke(&lambda, json!({"action": "allocate", "mb": 400})).await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.error_type().as_deref(), Some("Runtime.OutOfMemory"), "{:?}", out.payload);
    assert_eq!(
        out.json()["errorMessage"],
        format!("RequestId: {} Error: Runtime exited with error: signal: killed", out.request_id)
    );
    assert_eq!(out.report.error_type.as_deref(), Some("Runtime.OutOfMemory"));
    assert!(out.report.max_memory_used_mb >= 120 && out.report.max_memory_used_mb <= 129, "{:?}", out.report);
    assert_eq!(lambda.sandboxes("fixture"), 0);
    assert!(invoke(&lambda, json!({})).await.cold_start);
}

#[tokio::test]
async fn the_memory_limit_covers_swap_where_the_kernel_accounts_for_swap() {
    let _shared = CPU.read().await;
    if !cgroups_for_test("the_memory_limit_covers_swap_where_the_kernel_accounts_for_swap") {
        return;
    }
    let lambda = lambda_with(fixture().memory_mb(128));
    let out = invoke(&lambda, json!({})).await;
    // The sandbox stays, idle, with its group: the limits it ran under.
    let group = std::path::Path::new("/sys/fs/cgroup/memory/lift-lambda").join(&out.sandbox_id);
    let limit =
        |file: &str| std::fs::read_to_string(group.join(file)).map(|s| s.trim().parse::<u64>().unwrap());
    assert_eq!(limit("memory.limit_in_bytes").unwrap(), 128 << 20);
    match limit("memory.memsw.limit_in_bytes") {
        // Lambda has no swap: over its memory size a function is killed, not swapped out.
        Ok(memsw) => assert_eq!(memsw, 128 << 20, "memory+swap is limited to the memory size"),
        Err(_) => eprintln!("skipped the swap half: the kernel does not account for swap here"),
    }
}

#[tokio::test]
async fn cpu_share_grows_with_memory_one_vcpu_at_1769_mb() {
    let _alone = CPU.write().await;
    if !cgroups_for_test("cpu_share_grows_with_memory_one_vcpu_at_1769_mb") {
        return;
    }
    let lambda = LocalLambda::builder()
        .function(Function::builder("half", FIXTURE).memory_mb(884).timeout_secs(30).build().unwrap())
        .function(Function::builder("full", FIXTURE).memory_mb(1769).timeout_secs(30).build().unwrap())
        .build()
        .unwrap();
    let burn = json!({"action": "burn", "iterations": 100_000_000u64}).to_string();
    // The machine is shared, so wall time also measures the neighbours. What the share
    // decides is how long the handler takes for its CPU work when the quota is the only
    // limit: its CPU time plus the time the CFS quota held it back. Alternate the two sizes
    // and keep each one's best.
    let (mut half, mut full) = (f64::MAX, f64::MAX);
    let (mut half_wall, mut full_wall) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        for name in ["half", "full"] {
            let out = lambda.invoke(name, burn.clone()).await.unwrap();
            assert!(out.function_error.is_none(), "{:?}", out.payload);
            let body = out.json();
            let needed = body["cpu_ms"].as_f64().unwrap() + out.cpu_throttled.as_secs_f64() * 1000.0;
            let wall = body["wall_ms"].as_f64().unwrap();
            if name == "half" {
                (half, half_wall) = (half.min(needed), half_wall.min(wall));
            } else {
                (full, full_wall) = (full.min(needed), full_wall.min(wall));
            }
            assert!(lambda.settle(name, SETTLE).await);
        }
    }
    let ratio = half / full;
    eprintln!(
        "cpu share: the work needs {half:.0} ms at 884 MB, {full:.0} ms at 1769 MB: {ratio:.2}x (wall {half_wall:.0} / {full_wall:.0} ms: {:.2}x)",
        half_wall / full_wall
    );
    assert!((1.6..=2.4).contains(&ratio), "884 MB vs 1769 MB took {ratio:.2}x");
}

/// Reserved concurrency 4 and ten invocations at once: exactly four run, at the same time as
/// the function itself counts them, and the other six are throttled. The four hold until the
/// six have been refused and all four are inside, so the split does not depend on timing.
#[tokio::test]
async fn reserved_concurrency_runs_exactly_that_many_at_once_and_throttles_the_rest() {
    let _shared = CPU.read().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("lift-concurrency-{}", uuid::Uuid::new_v4().simple()));
    shared_dir(&dir);
    shared_dir(&dir.join("running"));
    // Each invocation marks itself running, records how many are running with it, and holds
    // until the test releases it.
    let handler = r#"mkdir "$DIR/running/$id"
ls "$DIR/running" | wc -l >> "$DIR/overlap"
while [ ! -e "$DIR/release" ]; do sleep 0.02; done
rmdir "$DIR/running/$id"
echo '{}'"#;
    let function = shell_function("reserved", handler)
        .env("DIR", dir.display().to_string())
        .timeout_secs(30)
        .reserved_concurrency(4);
    let lambda = lambda_with(function);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let lambda = lambda.clone();
            tokio::spawn(async move { lambda.invoke("reserved", "{}").await })
        })
        .collect();
    let finished = |calls: &[tokio::task::JoinHandle<_>]| calls.iter().filter(|c| c.is_finished()).count();
    let overlaps = || -> Vec<usize> {
        let text = std::fs::read_to_string(dir.join("overlap")).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    };
    let until = Instant::now() + Duration::from_secs(20);
    while (finished(&calls) < 6 || overlaps().len() < 4) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_while_held = finished(&calls);
    std::fs::write(dir.join("release"), "").unwrap();
    let results: Vec<_> = futures_join(calls.into_iter()).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(out) if out.function_error.is_none())).count();
    let throttled = results.iter().filter(|r| matches!(r, Err(InvokeError::TooManyRequests))).count();
    let overlaps = overlaps();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(refused_while_held, 6, "while four held, the rest answered: {results:?}");
    assert_eq!((ok, throttled), (4, 6), "{results:?}");
    assert_eq!(overlaps.len(), 4, "invocations the function saw: {overlaps:?}");
    assert_eq!(overlaps.iter().max(), Some(&4), "at most this many ran at once: {overlaps:?}");
    assert_eq!(lambda.cold_starts("reserved"), 4);
    let err = InvokeError::TooManyRequests;
    assert_eq!((err.status(), err.error_type()), (429, "TooManyRequestsException"));
}

#[tokio::test]
async fn idle_sandboxes_are_reaped_after_the_idle_timeout() {
    let _shared = CPU.read().await;
    let lambda = LocalLambda::builder()
        .function(fixture().build().unwrap())
        .idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    invoke(&lambda, json!({})).await;
    assert!(lambda.settle("fixture", SETTLE).await);
    assert_eq!(lambda.sandboxes("fixture"), 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(lambda.sandboxes("fixture"), 0, "the idle sandbox was not reaped");
    assert!(invoke(&lambda, json!({})).await.cold_start);
}

/// Makes `dir`, writable by every user: a place outside its `TMPDIR` where a sandbox, which
/// runs as an unprivileged user of its own when the tests run as root, leaves what the test
/// reads after the sandbox (and its `TMPDIR`) is gone.
fn shared_dir(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// A bootstrap that starts helpers which outlive the runtime process, then execs the fixture:
/// one helper in the bootstrap's process group and, where cgroups hold the sandbox, one that
/// left the group with `setsid`. Each writes its pid to `$HELPER_DIR/pids`; after 2 s it
/// logs `orphan`, leaves a marker file and lives 5 s more, unless the sandbox's end killed it.
fn with_outliving_helpers(name: &str, dir: &std::path::Path) -> FunctionBuilder {
    shared_dir(dir);
    let setsid = if cgroups_available() {
        "setsid sh -c 'sleep 2; echo orphan; touch \"$HELPER_DIR/setsid-ran\"; sleep 5' &\necho $! >> \"$HELPER_DIR/pids\"\n"
    } else {
        ""
    };
    let script = format!(
        "#!/bin/sh\ntrap '' HUP\n(sleep 2; echo orphan; touch \"$HELPER_DIR/group-ran\"; sleep 5) &\necho $! >> \"$HELPER_DIR/pids\"\n{setsid}exec '{FIXTURE}'\n"
    );
    let bootstrap = dir.join("bootstrap");
    std::fs::write(&bootstrap, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    Function::builder(name, bootstrap).env("HELPER_DIR", dir.display().to_string()).timeout_secs(1)
}

/// Whether `pid` still runs (a zombie waiting for its reaper does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

/// Lambda resets the whole execution environment after a timeout, a crash or the end of an
/// idle sandbox: no process the function started runs on, frozen or not, in the process
/// group or out of it.
#[tokio::test]
async fn the_end_of_a_sandbox_kills_every_process_it_started_not_only_the_bootstrap() {
    let _shared = CPU.read().await;
    let root = std::env::temp_dir().join(format!("lift-orphans-{}", uuid::Uuid::new_v4().simple()));
    let dir = |name: &str| root.join(name);
    let lambda = LocalLambda::builder()
        .function(with_outliving_helpers("times_out", &dir("times_out")).build().unwrap())
        .function(with_outliving_helpers("exits", &dir("exits")).build().unwrap())
        .function(with_outliving_helpers("reaped", &dir("reaped")).build().unwrap())
        .idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    let (timed_out, exited, idle) = tokio::join!(
        lambda.invoke("times_out", json!({"action": "sleep", "ms": 5_000}).to_string()),
        lambda.invoke("exits", json!({"action": "exit"}).to_string()),
        lambda.invoke("reaped", json!({"action": "echo"}).to_string()),
    );
    assert_eq!(timed_out.unwrap().error_type().as_deref(), Some("Sandbox.Timedout"));
    assert_eq!(exited.unwrap().error_type().as_deref(), Some("Runtime.ExitError"));
    assert!(idle.unwrap().function_error.is_none());
    // The reaped sandbox goes frozen, then is reaped after 200 ms idle.
    let mut waited = Duration::ZERO;
    while lambda.sandboxes("reaped") > 0 && waited < SETTLE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    assert_eq!(lambda.sandboxes("reaped"), 0, "the idle sandbox was not reaped");
    // Past the helpers' 2 s, with room for a busy machine.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(started.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    for name in ["times_out", "exits", "reaped"] {
        let pids: Vec<u32> = std::fs::read_to_string(dir(name).join("pids"))
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert!(!pids.is_empty(), "{name}: the helpers did not start");
        let living: Vec<u32> = pids.iter().copied().filter(|&pid| running(pid)).collect();
        assert!(living.is_empty(), "{name}: helpers {living:?} outlived the sandbox");
        for marker in ["group-ran", "setsid-ran"] {
            assert!(!dir(name).join(marker).exists(), "{name}: a helper ran on ({marker})");
        }
        let log: Vec<String> = lambda.logs(name).into_iter().map(|l| l.message).collect();
        assert!(!log.iter().any(|l| l == "orphan"), "{name}: a helper wrote to the log stream: {log:#?}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// An init error the runtime reports, and an init that never ends, reach the caller as
/// Lambda reports them; neither leaves a sandbox behind, and the next invocation starts anew.
#[tokio::test]
async fn init_errors_and_init_timeouts_are_reported_as_lambda_does() {
    let _shared = CPU.read().await;
    let lambda = LocalLambda::builder()
        .function(Function::builder("reports", FIXTURE).env("FIXTURE_INIT", "report").build().unwrap())
        .function(
            Function::builder("hangs", FIXTURE)
                .env("FIXTURE_INIT", "hang")
                .init_timeout(Duration::from_millis(400))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let reported = lambda.invoke("reports", "{}").await.unwrap();
    assert_eq!(reported.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(
        reported.json(),
        json!({"errorMessage": "fixture: the configuration is incomplete", "errorType": "FixtureConfigError"})
    );
    assert!(lambda.logs("reports").iter().any(|l| l.message.contains("Phase: init\tStatus: error")));
    assert_eq!(lambda.sandboxes("reports"), 0);

    let started = std::time::Instant::now();
    let hung = lambda.invoke("hangs", "{}").await.unwrap();
    assert_eq!(hung.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(hung.error_type().as_deref(), Some("Sandbox.Timedout"));
    assert_eq!(
        hung.json()["errorMessage"],
        format!("RequestId: {} Error: Task timed out after 0.40 seconds", hung.request_id)
    );
    assert!(started.elapsed() < Duration::from_secs(5), "the init bound did not stop the sandbox");
    assert_eq!(lambda.sandboxes("hangs"), 0);
    // The next invocation is a new cold start, bounded again.
    assert_eq!(lambda.invoke("hangs", "{}").await.unwrap().error_type().as_deref(), Some("Sandbox.Timedout"));
    assert_eq!(lambda.cold_starts("hangs"), 2);
}

#[tokio::test]
async fn bad_input_gets_lambdas_own_errors() {
    let _shared = CPU.read().await;
    let lambda = LocalLambda::builder()
        .function(fixture().build().unwrap())
        .function(Function::builder("crashes", FIXTURE).env("FIXTURE_INIT", "crash").build().unwrap())
        .function(Function::builder("missing", "/nonexistent/bootstrap").build().unwrap())
        .build()
        .unwrap();
    let unknown = lambda.invoke("nope", "{}").await.unwrap_err();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.error_type(), "ResourceNotFoundException");
    assert!(unknown.body()["message"].as_str().unwrap().starts_with("Function not found: arn:aws:lambda:"));

    let not_json = lambda.invoke("fixture", "{not json").await.unwrap_err();
    assert!(matches!(not_json, InvokeError::InvalidRequestContent(_)));
    assert_eq!((not_json.status(), not_json.error_type()), (400, "InvalidRequestContentException"));
    assert_eq!(lambda.cold_starts("fixture"), 0, "a refused payload starts nothing");

    let too_big = lambda.invoke("fixture", format!("\"{}\"", "x".repeat(6_300_000))).await.unwrap_err();
    assert_eq!((too_big.status(), too_big.error_type()), (413, "RequestTooLargeException"));

    let crash = lambda.invoke("crashes", "{}").await.unwrap();
    assert_eq!(crash.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(crash.error_type().as_deref(), Some("Runtime.ExitError"));
    assert_eq!(
        crash.json()["errorMessage"],
        format!("RequestId: {} Error: Runtime exited with error: exit status 3", crash.request_id)
    );
    assert!(lambda.logs("crashes").iter().any(|l| l.message == "fixture: crashing during init"));
    assert_eq!(lambda.sandboxes("crashes"), 0);

    let missing = lambda.invoke("missing", "{}").await.unwrap();
    assert_eq!(missing.error_type().as_deref(), Some("Runtime.InvalidEntrypoint"));
    assert!(missing.json()["errorMessage"].as_str().unwrap().contains("/nonexistent/bootstrap"));
    assert_eq!(lambda.sandboxes("missing"), 0);

    let failed = invoke(&lambda, json!({"action": "fail"})).await;
    assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(failed.json()["errorMessage"], "fixture: failing on purpose");
    assert!(failed.json()["errorType"].is_string());
    assert!(lambda.settle("fixture", SETTLE).await);

    // Over 6 MB: the Runtime API refuses it and the caller gets Lambda's error.
    let big = invoke(&lambda, json!({"action": "big", "bytes": 6_300_000})).await;
    assert_eq!(big.error_type().as_deref(), Some("Function.ResponseSizeTooLarge"));
    assert_eq!(
        big.json()["errorMessage"],
        "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
    );
    assert!(lambda.settle("fixture", SETTLE).await);
    let under = invoke(&lambda, json!({"action": "big", "bytes": 6_000_000})).await;
    assert!(under.function_error.is_none(), "6,000,000 bytes is under the limit");
    assert!(lambda.settle("fixture", SETTLE).await);

    let exited = invoke(&lambda, json!({"action": "exit"})).await;
    assert_eq!(exited.error_type().as_deref(), Some("Runtime.ExitError"));
    assert!(exited.json()["errorMessage"]
        .as_str()
        .unwrap()
        .ends_with("Runtime exited with error: exit status 7"));
}

/// A JSON event of exactly `len` bytes that the fixture answers in a few bytes (`sleep` 0 ms).
fn event_of_len(len: usize) -> String {
    let frame = r#"{"action":"sleep","pad":""}"#.len();
    format!(r#"{{"action":"sleep","pad":"{}"}}"#, "x".repeat(len - frame))
}

#[tokio::test]
async fn a_request_must_be_smaller_than_6291456_bytes_on_the_invoke_api_too() {
    let _shared = CPU.read().await;
    let lambda = lambda_with(fixture());
    let refused = "Request must be smaller than 6291456 bytes for the InvokeFunction operation";

    let at_limit = event_of_len(6_291_456);
    assert_eq!(at_limit.len(), 6_291_456);
    let err = lambda.invoke("fixture", at_limit.clone()).await.unwrap_err();
    assert_eq!(err, InvokeError::RequestTooLarge { size: 6_291_456, limit: 6_291_456 });
    assert_eq!((err.status(), err.error_type()), (413, "RequestTooLargeException"));
    assert_eq!(err.body()["message"], refused);
    assert_eq!(lambda.cold_starts("fixture"), 0, "a refused payload starts nothing");

    let under = event_of_len(6_291_455);
    let out = lambda.invoke("fixture", under.clone()).await.expect("one byte under the limit is invoked");
    assert!(out.function_error.is_none(), "{:?}", out.payload);
    assert_eq!(out.json(), json!({"slept_ms": 0}));
    assert!(lambda.settle("fixture", SETTLE).await);

    // The Invoke API: Lambda's status, error type header and message.
    let api = InvokeApi::start(lambda.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("{}/2015-03-31/functions/fixture/invocations", api.endpoint());
    let (status, headers, body) = post(&url, &[], &at_limit).await;
    assert_eq!(status, 413);
    assert_eq!(headers.get("x-amzn-errortype").unwrap(), "RequestTooLargeException");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["message"], refused);
    let (status, _, body) = post(&url, &[], &under).await;
    assert_eq!((status, serde_json::from_slice::<Value>(&body).unwrap()), (200, json!({"slept_ms": 0})));
}

#[tokio::test]
async fn emf_documents_in_the_output_become_metrics() {
    let _shared = CPU.read().await;
    let lambda = lambda_with(fixture());
    invoke(&lambda, json!({"action": "emf"})).await;
    invoke(&lambda, json!({"action": "echo"})).await;
    let mut waited = Duration::ZERO;
    while lambda.metrics().is_empty() && waited < SETTLE {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    let metrics = lambda.metrics();
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    assert_eq!(metrics[0].namespace, "Fixture");
    assert_eq!(metrics[0].name, "handled");
    assert_eq!(metrics[0].value, 1.0);
    assert_eq!(metrics[0].dimensions, vec![("function".to_owned(), "fixture".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoke_api_answers_as_lambda_does_and_the_aws_cli_works_against_it() {
    let _shared = CPU.read().await;
    let lambda = LocalLambda::builder()
        .function(fixture().build().unwrap())
        .function(Function::builder("busy", FIXTURE).reserved_concurrency(1).timeout_secs(5).build().unwrap())
        .build()
        .unwrap();
    let api = InvokeApi::start(lambda.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = |name: &str| format!("{}/2015-03-31/functions/{name}/invocations", api.endpoint());

    let (status, headers, body) = post(&url("fixture"), &[], r#"{"a":1}"#).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-amz-executed-version").unwrap(), "$LATEST");
    assert!(headers.get("x-amz-function-error").is_none());
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["event"], json!({"a": 1}));

    let (status, headers, body) = post(&url("fixture"), &[], r#"{"action":"fail"}"#).await;
    assert_eq!(status, 200, "a function error is still a 200");
    assert_eq!(headers.get("x-amz-function-error").unwrap(), "Unhandled");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["errorMessage"],
        "fixture: failing on purpose"
    );

    let (status, headers, body) = post(&url("nope"), &[], "{}").await;
    assert_eq!(status, 404);
    assert_eq!(headers.get("x-amzn-errortype").unwrap(), "ResourceNotFoundException");
    assert!(String::from_utf8_lossy(&body).contains("Function not found"));
    let (status, headers, _) = post(&url("fixture"), &[], "not json").await;
    assert_eq!(status, 400);
    assert_eq!(headers.get("x-amzn-errortype").unwrap(), "InvalidRequestContentException");
    let arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Afixture";
    let (status, _, _) = post(&url(arn), &[], "{}").await;
    assert_eq!(status, 200, "an escaped ARN names the function");

    // The stock CLI: a success, a function error, a throttle.
    let dir = std::env::temp_dir().join(format!("lift-lambda-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_file = dir.join("out.json");
    let cli = |name: &str, payload: &str| {
        let out = std::process::Command::new("aws")
            .args(["lambda", "invoke", "--endpoint-url", &api.endpoint(), "--region", "us-east-1"])
            .args(["--function-name", name, "--payload", payload])
            .arg(&out_file)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .expect("the aws CLI runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A skip is printed past the capture, and fails under CI's LIFT_REQUIRE_CGROUPS=1.
    let half = "the_invoke_api_answers_as_lambda_does_and_the_aws_cli_works_against_it (the aws CLI half)";
    if !tokio::task::block_in_place(|| aws_cli_for_test(half)) {
        return;
    }
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| cli("fixture", r#"{"via":"cli"}"#));
    assert!(ok, "{stdout}\n{stderr}");
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["StatusCode"], 200);
    assert_eq!(printed["ExecutedVersion"], "$LATEST");
    let answer: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(answer["event"], json!({"via": "cli"}));

    let (ok, stdout, _) = tokio::task::block_in_place(|| cli("fixture", r#"{"action":"fail"}"#));
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["FunctionError"], "Unhandled");

    let (ok, _, stderr) = tokio::task::block_in_place(|| cli("nope", "{}"));
    assert!(!ok);
    assert!(stderr.contains("ResourceNotFoundException"), "{stderr}");

    let hold = {
        let lambda = lambda.clone();
        tokio::spawn(async move {
            // Long enough for the CLI's own start (a second or more of Python on a busy host).
            lambda.invoke("busy", json!({"action": "sleep", "ms": 4000}).to_string()).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, _, stderr) = tokio::task::block_in_place(|| cli("busy", "{}"));
    assert!(!ok);
    assert!(stderr.contains("TooManyRequestsException"), "{stderr}");
    assert!(hold.await.unwrap().unwrap().function_error.is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_http_api_front_turns_requests_into_events_and_failures_into_api_gateways_answers() {
    let _shared = CPU.read().await;
    let lambda = LocalLambda::builder()
        .function(fixture().reserved_concurrency(1).build().unwrap())
        .function(Function::builder("fails", FIXTURE).env("FIXTURE_DEFAULT_ACTION", "fail").build().unwrap())
        .function(
            Function::builder("slow", FIXTURE)
                .timeout_secs(5)
                .env("FIXTURE_DEFAULT_ACTION", "sleep")
                .env("FIXTURE_MS", "2000")
                .build()
                .unwrap(),
        )
        .function(
            Function::builder("times_out", FIXTURE)
                .timeout_secs(1)
                .env("FIXTURE_DEFAULT_ACTION", "sleep")
                .env("FIXTURE_MS", "3000")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let addr = "127.0.0.1:0".parse().unwrap();
    let front = HttpApi::start(lambda.clone(), "fixture", addr).await.unwrap();
    // The fixture answers with the event as JSON without a statusCode: a 200 with that body.
    let url = format!("{}/orders?x=1", front.url());
    let (status, headers, body) = post(&url, &[("content-type", "application/json")], r#"{"k":"v"}"#).await;
    assert_eq!(status, 200);
    assert!(headers.get("apigw-requestid").is_some());
    let event = &serde_json::from_slice::<Value>(&body).unwrap()["event"];
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/orders");
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["queryStringParameters"]["x"], "1");
    assert_eq!(event["body"], r#"{"k":"v"}"#);
    assert!(lambda.settle("fixture", SETTLE).await);

    let internal = json!({"message": "Internal Server Error"});
    // A throttle (reserved concurrency 1, held by a slow invocation): API Gateway's 500.
    let hold = {
        let lambda = lambda.clone();
        tokio::spawn(async move {
            lambda.invoke("fixture", json!({"action": "sleep", "ms": 800}).to_string()).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = post(&format!("{}/", front.url()), &[], "").await;
    assert_eq!((status, serde_json::from_slice::<Value>(&body).unwrap()), (500, internal.clone()));
    assert!(hold.await.unwrap().unwrap().function_error.is_none());

    // A function error: 500.
    let fails = HttpApi::start(lambda.clone(), "fails", addr).await.unwrap();
    let (status, _, body) = post(&format!("{}/", fails.url()), &[], "").await;
    assert_eq!((status, serde_json::from_slice::<Value>(&body).unwrap()), (500, internal.clone()));

    // Lambda's own timeout (1 s) before the integration's: the function error, 500.
    let times_out = HttpApi::start(lambda.clone(), "times_out", addr).await.unwrap();
    let (status, _, body) = post(&format!("{}/", times_out.url()), &[], "").await;
    assert_eq!((status, serde_json::from_slice::<Value>(&body).unwrap()), (500, internal));

    // The integration timeout (here 300 ms) before the function answers: 503.
    let slow =
        HttpApi::start_with_timeout(lambda.clone(), "slow", addr, Duration::from_millis(300)).await.unwrap();
    let started = Instant::now();
    let (status, _, body) = post(&format!("{}/", slow.url()), &[], "").await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({"message": "Service Unavailable"}));
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, http::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method("POST").uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.into_body().collect().await.unwrap().to_bytes())
}

/// A function whose bootstrap is `script`, a shell script.
fn script_function(name: &str, script: &str) -> FunctionBuilder {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("lift-shell-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bootstrap = dir.join("bootstrap");
    std::fs::write(&bootstrap, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    Function::builder(name, bootstrap).memory_mb(256).timeout_secs(3)
}

/// The start of a shell bootstrap speaking the Runtime API with curl: `$api` is the invocation
/// path, and `header NAME` prints a header of the `/next` answer in `$next`.
const SHELL_PRELUDE: &str = r#"#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
header() {
  printf '%s\n' "$next" | grep -i "^$1:" | sed 's/^[^:]*: *//'
}
"#;

/// A function whose bootstrap is a shell script speaking the Runtime API with curl: each
/// event (in `$event`) is answered with what `handler` prints.
fn shell_function(name: &str, handler: &str) -> FunctionBuilder {
    script_function(
        name,
        &format!(
            r#"{SHELL_PRELUDE}handle() {{
{handler}
}}
while :; do
  next=$(curl -sS -i "$api/next" | tr -d '\r')
  id=$(header lambda-runtime-aws-request-id)
  event=$(printf '%s\n' "$next" | tail -n 1)
  answer=$(handle)
  curl -sS -o /dev/null -X POST --data-binary "$answer" "$api/$id/response"
done
"#
        ),
    )
}

/// A line of output that is not UTF-8 is logged lossily and the copy goes on: the lines after
/// it (EMF metrics, errors) reach the log, and the function's next write does not fail on a
/// pipe nobody reads.
#[tokio::test]
async fn output_that_is_not_utf8_is_logged_and_so_is_everything_after_it() {
    let _shared = CPU.read().await;
    let script = format!(
        r#"{SHELL_PRELUDE}while :; do
  next=$(curl -sS -i "$api/next" | tr -d '\r')
  id=$(header lambda-runtime-aws-request-id)
  printf '\377\n'
  echo after
  curl -sS -o /dev/null -X POST --data-binary '{{"ok":true}}' "$api/$id/response"
done
"#
    );
    let lambda = lambda_with(script_function("bytes", &script));
    for round in 1..=2 {
        let out = lambda.invoke("bytes", "{}").await.unwrap();
        assert!(out.function_error.is_none(), "round {round}: {:?}", out.payload);
        assert!(lambda.settle("bytes", SETTLE).await);
    }
    let messages = || lambda.logs("bytes").into_iter().map(|l| l.message).collect::<Vec<_>>();
    let until = Instant::now() + SETTLE;
    while messages().iter().filter(|m| *m == "after").count() < 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = messages();
    assert_eq!(log.iter().filter(|m| *m == "after").count(), 2, "{log:#?}");
    assert_eq!(log.iter().filter(|m| *m == "\u{fffd}").count(), 2, "{log:#?}");
    assert_eq!(lambda.cold_starts("bytes"), 1);
}

/// The test [`the_harnesss_own_credentials_never_reach_a_sandbox`] runs again with
/// credentials in its environment.
const CREDENTIALS_TEST: &str = "the_sandbox_gets_the_functions_credentials";

/// The credentials variables of the execution role.
const CREDENTIAL_VARS: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// A sandbox gets its function's credentials: the ones configured, else the `local`
/// placeholders; never those of the process running the harness. Run on its own by
/// [`the_harnesss_own_credentials_never_reach_a_sandbox`] with credentials in this process's
/// environment, as a developer's shell has them.
#[tokio::test]
async fn the_sandbox_gets_the_functions_credentials() {
    let _shared = CPU.read().await;
    // The bootstrap prints its environment to the log, then a marker that it is complete.
    let print_env = "env >&2\necho env-printed >&2\necho '{}'";
    let lambda = LocalLambda::builder()
        .function(shell_function("placeholder", print_env).build().unwrap())
        .function(
            shell_function("role", print_env)
                .credentials("ASIAROLEKEY", "role-secret", Some("role-token".to_owned()))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut seen = std::collections::HashMap::new();
    for name in ["placeholder", "role"] {
        let out = lambda.invoke(name, "{}").await.unwrap();
        assert!(out.function_error.is_none(), "{:?}", out.payload);
        let until = Instant::now() + SETTLE;
        while !lambda.logs(name).iter().any(|l| l.message == "env-printed") && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let env: std::collections::HashMap<String, String> = lambda
            .logs(name)
            .into_iter()
            .filter_map(|l| l.message.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .filter(|(k, _)| CREDENTIAL_VARS.contains(&k.as_str()))
            .collect();
        seen.insert(name, env);
    }
    // Compared without printing: on a failure the value may be a real secret.
    let credentials = |name: &str| CREDENTIAL_VARS.map(|k| seen[name].get(k).map(String::as_str));
    assert!(
        credentials("placeholder") == [Some("local"), Some("local"), None],
        "the placeholder function's credentials are not local/local without a session token"
    );
    assert!(
        credentials("role") == [Some("ASIAROLEKEY"), Some("role-secret"), Some("role-token")],
        "the role function's credentials are not the configured ones"
    );
    for key in CREDENTIAL_VARS {
        let Ok(own) = std::env::var(key) else { continue };
        let expected = ["local", "ASIAROLEKEY", "role-secret", "role-token"];
        if own.is_empty() || expected.contains(&own.as_str()) {
            continue;
        }
        for name in ["placeholder", "role"] {
            let leaked = lambda.logs(name).iter().any(|l| l.message.contains(&own));
            assert!(!leaked, "this process's own {key} reached {name}'s sandbox");
        }
    }
}

#[test]
fn the_harnesss_own_credentials_never_reach_a_sandbox() {
    // Set for the child process only: this process's environment, shared by the other tests,
    // stays as it is.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CREDENTIALS_TEST, "--test-threads", "1"])
        .env("AWS_ACCESS_KEY_ID", "AKIDHARNESSOWNMARKER")
        .env("AWS_SECRET_ACCESS_KEY", "harness-own-secret-marker")
        .env("AWS_SESSION_TOKEN", "harness-own-session-token-marker")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("test {CREDENTIALS_TEST} ... ok")),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// Lambda takes an answer only until the deadline it handed out: a response posted after
/// `Lambda-Runtime-Deadline-Ms` makes no success of a timed-out invocation. End to end, this
/// passed before late answers were refused too, since the sandbox is usually killed at the
/// deadline before its post gets out: it guards the whole path. The race it stands for (a
/// late answer and the deadline ready at once) is the unit tests' in `pool.rs` and
/// `runtime_api.rs`, and the refusal is `the_runtime_api_refuses_an_answer_after_the_deadline_with_410`.
#[tokio::test]
async fn a_response_posted_after_the_deadline_is_a_timeout_not_a_success() {
    let _shared = CPU.read().await;
    let script = format!(
        r#"{SHELL_PRELUDE}while :; do
  next=$(curl -sS -i "$api/next" | tr -d '\r')
  id=$(header lambda-runtime-aws-request-id)
  late=$(( $(header lambda-runtime-deadline-ms) + 30 - $(date +%s%3N) ))
  sleep "$(awk -v ms="$late" 'BEGIN {{ printf "%.3f", (ms > 0 ? ms : 0) / 1000 }}')"
  status=$(curl -sS -o /dev/null -w '%{{http_code}}' -X POST --data-binary '{{"late":true}}' "$api/$id/response")
  echo "late response: $status"
done
"#
    );
    let lambda = lambda_with(script_function("late", &script).timeout_secs(1));
    let out = lambda.invoke("late", "{}").await.unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"), "{:?}", out.payload);
    assert_eq!(out.error_type().as_deref(), Some("Sandbox.Timedout"), "{:?}", out.payload);
    assert_eq!(out.report.status.as_deref(), Some("timeout"));
    assert!(out.report.duration <= Duration::from_secs(1), "{:?}", out.report);
    // The sandbox dies at its deadline; a post that got out before the kill was refused.
    let log: Vec<String> = lambda.logs("late").into_iter().map(|l| l.message).collect();
    for line in log.iter().filter(|l| l.starts_with("late response: ")) {
        assert_eq!(line, "late response: 410", "{log:#?}");
    }
}

async fn get(url: &str) -> (u16, http::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.into_body().collect().await.unwrap().to_bytes())
}

/// The Runtime API on its own, as a runtime speaks to it: an answer after the deadline gets
/// Lambda's `410 InvokeTimeout` (which `lambda_runtime` logs as "invocation timed out or
/// response was stale"), reaches no one, and disarms the request id.
#[tokio::test]
async fn the_runtime_api_refuses_an_answer_after_the_deadline_with_410() {
    let (api, mut events) = RuntimeApi::start().await.unwrap();
    let base = format!("http://{}/2018-06-01/runtime/invocation", api.host());
    let timeout = Duration::from_millis(300);
    let deadline = Instant::now() + timeout;
    let deadline_ms =
        (std::time::SystemTime::now() + timeout).duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let invocation = NextInvocation {
        request_id: "late-1".into(),
        deadline_ms,
        deadline,
        invoked_function_arn: "arn:aws:lambda:us-east-1:000000000000:function:late".into(),
        trace_id: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".into(),
        client_context: None,
        cognito_identity: None,
        payload: Bytes::from_static(b"{}"),
    };
    assert!(api.dispatch(invocation).await);
    let (status, headers, _) = get(&format!("{base}/next")).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("lambda-runtime-aws-request-id").unwrap(), "late-1");
    assert_eq!(headers.get("lambda-runtime-deadline-ms").unwrap().to_str().unwrap(), deadline_ms.to_string());

    tokio::time::sleep_until((deadline + Duration::from_millis(30)).into()).await;
    let (status, _, body) = post(&format!("{base}/late-1/response"), &[], r#"{"late":true}"#).await;
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"errorMessage": "Invoke timeout", "errorType": "InvokeTimeout"})
    );
    let (status, _, _) = post(&format!("{base}/late-1/error"), &[], r#"{"errorMessage":"late"}"#).await;
    assert_eq!(status, 400, "the request id is disarmed");
    let received: Vec<RuntimeEvent> =
        std::iter::from_fn(|| events.try_recv().ok()).map(|r| r.event).collect();
    assert!(matches!(received[..], [RuntimeEvent::Next]), "{received:?}");
}

/// Past the Runtime API's read limit (16 MiB), a response ends its invocation at once with
/// Lambda's `Function.ResponseSizeTooLarge`, as one over 6 MB does, and its request id takes
/// no other answer.
#[tokio::test]
async fn a_response_past_the_read_limit_fails_the_invocation_at_once_and_disarms_its_id() {
    let _shared = CPU.read().await;
    let script = format!(
        r#"{SHELL_PRELUDE}head -c 17000000 /dev/zero | tr '\0' x > "$TMPDIR/big"
while :; do
  next=$(curl -sS -i "$api/next" | tr -d '\r')
  id=$(header lambda-runtime-aws-request-id)
  status=$(curl -sS -o /dev/null -w '%{{http_code}}' -X POST --data-binary @"$TMPDIR/big" "$api/$id/response")
  echo "big response: $status"
  status=$(curl -sS -o /dev/null -w '%{{http_code}}' -X POST --data-binary '{{"small":true}}' "$api/$id/response")
  echo "small response: $status"
done
"#
    );
    let lambda = lambda_with(script_function("big", &script).timeout_secs(10));
    let started = Instant::now();
    let out = lambda.invoke("big", "{}").await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(out.error_type().as_deref(), Some("Function.ResponseSizeTooLarge"), "{:?}", out.payload);
    assert_eq!(
        out.json()["errorMessage"],
        "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
    );
    assert!(elapsed < Duration::from_secs(5), "answered after {elapsed:?}, not at once");
    let mut small = None;
    let until = Instant::now() + SETTLE;
    while small.is_none() && Instant::now() < until {
        small = lambda.logs("big").into_iter().map(|l| l.message).find(|l| l.starts_with("small response: "));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(small.as_deref(), Some("small response: 400"), "{:#?}", lambda.logs("big"));
}

/// A runtime that asks for its next invocation before it has answered the current one is
/// handed the current one again, as Lambda's Runtime API does, and may still answer it.
#[tokio::test]
async fn asking_for_the_next_invocation_before_answering_hands_out_the_same_one() {
    let _shared = CPU.read().await;
    let script = format!(
        r#"{SHELL_PRELUDE}while :; do
  next=$(curl -sS -i "$api/next" | tr -d '\r')
  id=$(header lambda-runtime-aws-request-id)
  next=$(curl -sS -i "$api/next" | tr -d '\r')
  again=$(header lambda-runtime-aws-request-id)
  event=$(printf '%s\n' "$next" | tail -n 1)
  curl -sS -o /dev/null -X POST --data-binary "{{\"again\":\"$again\",\"event\":$event}}" "$api/$id/response"
done
"#
    );
    let lambda = lambda_with(script_function("asks_twice", &script).timeout_secs(2));
    for _ in 0..2 {
        let out = lambda.invoke("asks_twice", r#"{"n":7}"#).await.unwrap();
        assert!(out.function_error.is_none(), "{:?}", out.payload);
        assert_eq!(out.json(), json!({"again": out.request_id, "event": {"n": 7}}));
        assert!(lambda.settle("asks_twice", SETTLE).await);
    }
    assert_eq!(lambda.cold_starts("asks_twice"), 1);
}

/// A sandbox whose freeze fails is killed, not parked as frozen to run on while idle. The
/// failure here is real: the sandbox's freezer group is taken away (its processes moved to
/// the parent group) between its answer and its next `/next`, so freezing it cannot work.
#[tokio::test]
async fn a_sandbox_that_cannot_be_frozen_is_killed_instead_of_parked() {
    let _shared = CPU.read().await;
    if !cgroups_for_test("a_sandbox_that_cannot_be_frozen_is_killed_instead_of_parked") {
        return;
    }
    let script = format!(
        r#"{SHELL_PRELUDE}while :; do
  next=$(curl -sS -i "$api/next" | tr -d '\r')
  id=$(header lambda-runtime-aws-request-id)
  curl -sS -o /dev/null -X POST --data-binary '{{}}' "$api/$id/response"
  sleep 2
done
"#
    );
    let lambda = lambda_with(script_function("unfreezable", &script).timeout_secs(5));
    let out = lambda.invoke("unfreezable", "{}").await.unwrap();
    assert!(out.function_error.is_none(), "{:?}", out.payload);
    let parent = std::path::Path::new("/sys/fs/cgroup/freezer/lift-lambda");
    let group = parent.join(&out.sandbox_id);
    let mut removed = false;
    for _ in 0..100 {
        for pid in std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default().lines() {
            let _ = std::fs::write(parent.join("cgroup.procs"), pid);
        }
        if std::fs::remove_dir(&group).is_ok() {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(removed, "the freezer group {} could not be taken away", group.display());
    let until = Instant::now() + SETTLE + Duration::from_secs(2);
    while lambda.sandboxes("unfreezable") > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lambda.sandboxes("unfreezable"), 0, "the sandbox was parked although it could not be frozen");
    let next = lambda.invoke("unfreezable", "{}").await.unwrap();
    assert!(next.cold_start);
    assert!(next.function_error.is_none(), "{:?}", next.payload);
}

#[tokio::test]
async fn each_sandbox_has_its_own_tmp_kept_across_warm_invocations_and_removed_with_it() {
    let _shared = CPU.read().await;
    // Lists the temporary directory, leaves a file in it, and holds on `{"hold":...}`.
    let handler = r#"  dir="${TMPDIR:-/tmp}"
  files=$(ls -A "$dir" | tr '\n' ' ')
  touch "$dir/seen"
  case "$event" in *hold*) sleep 1 ;; esac
  printf '{"tmpdir":"%s","files":"%s"}' "$dir" "$files""#;
    let lambda = lambda_with(shell_function("tmp", handler));
    let first = lambda.invoke("tmp", "{}").await.unwrap();
    assert!(first.function_error.is_none(), "{:?}", first.payload);
    assert_eq!(first.json()["files"], "", "a new sandbox's /tmp is empty: {}", first.json());
    let tmp_a = first.json()["tmpdir"].as_str().unwrap().to_owned();
    assert!(std::path::Path::new(&tmp_a).join("seen").exists());
    assert!(lambda.settle("tmp", SETTLE).await);

    // Warm, in the same sandbox, held busy for a second: what it wrote is still there.
    let held = {
        let lambda = lambda.clone();
        tokio::spawn(async move { lambda.invoke("tmp", r#"{"hold":true}"#).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile a second sandbox: a /tmp of its own, without the first one's file.
    let other = lambda.invoke("tmp", "{}").await.unwrap();
    let held = held.await.unwrap();
    assert!(!held.cold_start);
    assert_eq!(held.sandbox_id, first.sandbox_id);
    assert_eq!(held.json(), json!({"tmpdir": tmp_a, "files": "seen "}));
    assert!(other.cold_start);
    assert_ne!(other.sandbox_id, first.sandbox_id);
    assert_eq!(other.json()["files"], "", "{}", other.json());
    assert_ne!(other.json()["tmpdir"], tmp_a.as_str());
    let tmp_b = other.json()["tmpdir"].as_str().unwrap().to_owned();

    // The end of a sandbox removes its /tmp; the next sandbox starts with an empty one.
    assert!(lambda.settle("tmp", SETTLE).await);
    lambda.reset().await;
    for _ in 0..100 {
        if !std::path::Path::new(&tmp_a).exists() && !std::path::Path::new(&tmp_b).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!std::path::Path::new(&tmp_a).exists() && !std::path::Path::new(&tmp_b).exists());
    let next = lambda.invoke("tmp", "{}").await.unwrap();
    assert!(next.cold_start);
    assert_eq!(next.json()["files"], "", "{}", next.json());
}

/// `Uid:` or `Gid:` of this process, effective: the second number of that line of
/// `/proc/self/status`.
fn own_id(line: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let ids = status.lines().find_map(|l| l.strip_prefix(line)).unwrap();
    ids.split_whitespace().nth(1).unwrap().to_owned()
}

/// The test [`the_sandbox_user_is_the_one_lift_lambda_sandbox_user_names`] runs again with
/// another sandbox user.
const SANDBOX_USER_TEST: &str = "a_function_runs_as_an_unprivileged_user_that_may_write_only_its_tmp";

/// As on Lambda, where a function runs as `sbx_user1051`: a harness running as root runs each
/// function as a user and group of its own from `SANDBOX_UID_BASE` on (or as the ids
/// `LIFT_LAMBDA_SANDBOX_USER` names), which may write the
/// sandbox's `TMPDIR` and not its task root, under Lambda's limits of 1,024 open files and
/// 1,024 processes.
#[tokio::test]
async fn a_function_runs_as_an_unprivileged_user_that_may_write_only_its_tmp() {
    let _shared = CPU.read().await;
    let handler = r#"  if touch "$LAMBDA_TASK_ROOT/written" 2>/dev/null; then root=writable; else root=read-only; fi
  if touch "$TMPDIR/written" 2>/dev/null; then tmp=writable; else tmp=read-only; fi
  pids=$(grep ':pids:' /proc/self/cgroup | cut -d: -f3)
  printf '{"uid":"%s","gid":"%s","task_root":"%s","tmp":"%s","nofile":"%s %s","pids":"%s"}' \
    "$(id -u)" "$(id -g)" "$root" "$tmp" "$(ulimit -Sn)" "$(ulimit -Hn)" "$pids""#;
    let lambda = lambda_with(shell_function("identity", handler));
    let out = lambda.invoke("identity", "{}").await.unwrap();
    assert!(out.function_error.is_none(), "{:?}", out.payload);
    let seen = out.json();
    let (own_uid, own_gid) = (own_id("Uid:"), own_id("Gid:"));
    let (uid, gid) = match std::env::var("LIFT_LAMBDA_SANDBOX_USER") {
        _ if own_uid != "0" => (own_uid.clone(), own_gid),
        Ok(ids) => ids.split_once(':').map(|(u, g)| (u.to_owned(), g.to_owned())).unwrap(),
        // A user and group of the function's own, from the base on.
        Err(_) => {
            let id = seen["uid"].as_str().unwrap_or_default().to_owned();
            let n: u32 = id.parse().unwrap_or_else(|_| panic!("{seen}"));
            assert!(n >= SANDBOX_UID_BASE, "{seen}");
            (id.clone(), id)
        }
    };
    assert_eq!((seen["uid"].as_str(), seen["gid"].as_str()), (Some(&*uid), Some(&*gid)), "{seen}");
    assert_eq!(seen["tmp"], "writable", "{seen}");
    // The task root belongs to this process's user: only another user is kept out of it.
    if uid != own_uid {
        assert_eq!(seen["task_root"], "read-only", "{seen}");
    }
    assert_eq!(seen["nofile"], "1024 1024", "{seen}");
    if cgroups_for_test("a_function_runs_as_an_unprivileged_user_that_may_write_only_its_tmp (pids)") {
        assert_eq!(seen["pids"], format!("/lift-lambda/{}", out.sandbox_id), "{seen}");
        // The sandbox stays, idle, with its groups: the limit it ran under.
        let group = std::path::Path::new("/sys/fs/cgroup/pids/lift-lambda").join(&out.sandbox_id);
        assert_eq!(std::fs::read_to_string(group.join("pids.max")).unwrap().trim(), "1024");
    }
}

#[test]
fn the_sandbox_user_is_the_one_lift_lambda_sandbox_user_names() {
    // Set for the child process only, which reads it once, at its first sandbox.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", SANDBOX_USER_TEST, "--test-threads", "1"])
        .env("LIFT_LAMBDA_SANDBOX_USER", "4321:4322")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("test {SANDBOX_USER_TEST} ... ok")),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[tokio::test]
async fn async_invocations_are_checked_before_they_are_accepted() {
    let _shared = CPU.read().await;
    let lambda = lambda_with(fixture());
    let api = InvokeApi::start(lambda.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("{}/2015-03-31/functions/fixture/invocations", api.endpoint());
    let event = [("x-amz-invocation-type", "Event")];
    let refused = format!(
        "Request must be smaller than {ASYNC_REQUEST_LIMIT_BYTES} bytes for the InvokeFunction operation"
    );

    // 1 MB for an asynchronous invocation, not the 6 MB of a synchronous one.
    let (status, headers, body) = post(&url, &event, &event_of_len(ASYNC_REQUEST_LIMIT_BYTES)).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("x-amzn-errortype").unwrap(), "RequestTooLargeException");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["message"], refused.as_str());

    let (status, headers, body) = post(&url, &event, "{not json").await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("x-amzn-errortype").unwrap(), "InvalidRequestContentException");
    assert_eq!(lambda.cold_starts("fixture"), 0, "a refused event starts nothing");

    let (status, headers, _) = post(&url, &event, &event_of_len(ASYNC_REQUEST_LIMIT_BYTES - 1)).await;
    assert_eq!(status, 202);
    let request_id = headers.get("x-amzn-requestid").unwrap().to_str().unwrap().to_owned();
    let mut reports = Vec::new();
    for _ in 0..300 {
        reports = lambda.reports("fixture");
        if !reports.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(reports.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), [request_id.as_str()]);
}

#[tokio::test]
async fn a_failed_async_invocation_is_retried_twice_under_its_request_id() {
    let _shared = CPU.read().await;
    let retried = fixture().retry_delay(Duration::from_millis(100)).build().unwrap();
    let once = Function::builder("once", FIXTURE)
        .max_retry_attempts(0)
        .retry_delay(Duration::from_millis(100))
        .build()
        .unwrap();
    let lambda = LocalLambda::builder().function(retried).function(once).build().unwrap();
    let fail = json!({"action": "fail"}).to_string();
    let started = Instant::now();
    let id = lambda.invoke_async("fixture", fail.clone(), InvokeOptions::default()).unwrap();
    let once_id = lambda.invoke_async("once", fail, InvokeOptions::default()).unwrap();
    let ok_id = lambda.invoke_async("fixture", "{}", InvokeOptions::default()).unwrap();
    for _ in 0..500 {
        if lambda.reports("fixture").len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first attempt, one after 100 ms, one after 200 ms more; then no more.
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids = |name: &str| lambda.reports(name).into_iter().map(|r| r.request_id).collect::<Vec<_>>();
    let fixture_ids = ids("fixture");
    assert_eq!(fixture_ids.iter().filter(|r| **r == id).count(), 3, "{fixture_ids:?}");
    assert_eq!(fixture_ids.iter().filter(|r| **r == ok_id).count(), 1, "a success is not retried");
    assert_eq!(fixture_ids.len(), 4);
    assert_eq!(ids("once"), [once_id], "MaximumRetryAttempts 0: one attempt");
}

#[test]
fn a_cgroup_test_that_cannot_run_says_so_and_fails_where_cgroups_are_required() {
    // This test binary runs one of its cgroup tests where cgroups are turned off.
    let test = "allocating_past_the_memory_size_is_killed_and_reported_out_of_memory";
    let run = |require: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", test, "--test-threads", "1"])
            .env("LIFT_LAMBDA_NO_CGROUPS", "1")
            .env_remove("LIFT_REQUIRE_CGROUPS");
        if require {
            cmd.env("LIFT_REQUIRE_CGROUPS", "1");
        }
        let out = cmd.output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (passed, stdout, stderr) = run(false);
    assert!(passed && stdout.contains(&format!("test {test} ... ok")), "{stdout}\n{stderr}");
    // Shown in a passing run, not kept in the captured output.
    assert!(stderr.contains(&format!("SKIPPED {test}: cgroups v1")), "{stderr}");
    let (passed, stdout, stderr) = run(true);
    assert!(!passed, "LIFT_REQUIRE_CGROUPS=1 makes the skip a failure: {stdout}\n{stderr}");
    assert!(stdout.contains("LIFT_REQUIRE_CGROUPS=1 requires them"), "{stdout}\n{stderr}");
}

/// `lift-harness lambda coldstart` with `args`: whether it passed, its stdout and stderr.
fn coldstart_gate(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(HARNESS).args(["lambda", "coldstart"]).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The gate's arguments for the fixture against the bare hello, `runs` each, with a 150 ms
/// budget and `more`: the fixture's init is as quick as the bare function's, but every
/// request (the first among them) takes 400 ms, setup moved out of init into the first
/// request.
fn deferred_setup_against_hello(runs: &'static str, more: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "--bin",
        FIXTURE,
        "--vs",
        HELLO,
        "--runs",
        runs,
        "--memory",
        "1769",
        "--env",
        "FIXTURE_DEFAULT_ACTION=sleep",
        "--env",
        "FIXTURE_MS=400",
        "--budget-ms",
        "150",
    ];
    args.extend_from_slice(more);
    args
}

#[tokio::test]
async fn the_cold_start_gate_counts_setup_deferred_to_the_first_request() {
    let _shared = CPU.read().await;
    let args = deferred_setup_against_hello("3", &[]);
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || coldstart_gate(&args)).await.unwrap();
    assert!(!passed, "the gate let 400 ms of first-request setup through:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("cold-start budget exceeded: lambda-fixture cold start median"),
        "{stdout}\n{stderr}"
    );
    // Both parts are reported.
    let line = stdout.lines().find(|l| l.starts_with("lambda-fixture: ")).unwrap_or_default();
    assert!(line.contains("cold start (init + first invocation) median 4"), "{stdout}");
    assert!(line.contains("; init median ") && line.contains("; first invocation median 4"), "{stdout}");
}

/// The budget moves with the host's speed, measured on the baseline, no further than the
/// cap: against a reference the baseline's start exceeds a thousandfold, a 150 ms budget
/// becomes 300 ms (cap 2) and 400 ms of first-request setup still fails it; with the cap at
/// 4 it is 600 ms and passes.
#[tokio::test]
async fn the_cold_start_budget_moves_with_the_host_no_further_than_its_cap() {
    let _shared = CPU.read().await;
    let gate = |max_scale: &'static str| {
        let args = deferred_setup_against_hello("2", &["--reference-ms", "0.001", "--max-scale", max_scale]);
        tokio::task::spawn_blocking(move || coldstart_gate(&args))
    };
    let (passed, stdout, stderr) = gate("2").await.unwrap();
    assert!(!passed, "a slow host widened the budget past its cap:\n{stdout}\n{stderr}");
    assert!(stdout.contains("speed 2.00 (measured "), "{stdout}");
    assert!(stderr.contains("> 300.00 ms"), "{stdout}\n{stderr}");
    let (passed, stdout, stderr) = gate("4").await.unwrap();
    assert!(passed, "{stdout}\n{stderr}");
    assert!(stdout.contains("cold-start budget held: within 600.00 ms of "), "{stdout}");
}

/// A baseline that never starts leaves nothing to compare with: the gate fails saying so,
/// and prints no ratio (against an empty median it printed one of 10^15).
#[tokio::test]
async fn the_cold_start_gate_refuses_to_compare_with_a_baseline_that_never_started() {
    let _shared = CPU.read().await;
    let args =
        ["--bin", HELLO, "--vs", FIXTURE, "--runs", "2", "--env", "FIXTURE_INIT=crash", "--budget-ms", "5"];
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || coldstart_gate(&args)).await.unwrap();
    assert!(!passed, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no cold start of lambda-fixture succeeded (2 failed): there is nothing to compare"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("ratio"), "{stdout}");
}

/// A budget is a difference from the `--vs` function: without one the gate checked nothing
/// and passed. It is refused before anything runs.
#[tokio::test]
async fn a_cold_start_budget_without_a_baseline_is_refused() {
    let args = ["--bin", HELLO, "--runs", "1", "--budget-ms", "5"];
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || coldstart_gate(&args)).await.unwrap();
    assert!(!passed, "{stdout}\n{stderr}");
    assert!(stderr.contains("--budget-ms is a budget over the --vs function's cold start"), "{stderr}");
    assert!(stdout.is_empty(), "nothing measured: {stdout}");
}

#[tokio::test]
async fn the_cold_start_gate_says_when_the_app_refuses_its_event() {
    let _shared = CPU.read().await;
    // An app whose auth refuses an event without credentials, as API Gateway's answer.
    let handler = r#"  printf '{"statusCode":401,"body":"{\\"message\\":\\"Unauthorized\\"}"}'"#;
    let bin = shell_function("refuses", handler).build().unwrap().bin().display().to_string();
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || {
        coldstart_gate(&["--bin", &bin, "--runs", "2", "--expect-status", "200"])
    })
    .await
    .unwrap();
    assert!(!passed, "{stdout}\n{stderr}");
    assert!(stderr.contains("refused 2 of 2 cold starts' events"), "{stdout}\n{stderr}");
    assert!(stderr.contains("2 of bootstrap's answers were not HTTP 200"), "{stdout}\n{stderr}");
    assert!(stdout.contains("answers 401 x2"), "{stdout}");
}

/// A shell handler that answers 200 only for an event whose bearer token has a JWT's three
/// parts, and only while the key set at `$JWKS_URL` and DynamoDB at `$DDB` both answer: the
/// first request of a function that reaches its handler and its table.
const NEEDS_LOCAL_AWS: &str = r#"  token=$(printf '%s' "$event" | sed -n 's/.*"Bearer \([^"]*\)".*/\1/p')
  case "$token" in
    *.*.*) ;;
    *) printf '{"statusCode":401}'; return ;;
  esac
  if curl -sf "$JWKS_URL" | grep -q '"keys"' && [ "$(curl -s -o /dev/null -w '%{http_code}' "$DDB")" != 000 ]; then
    printf '{"statusCode":200}'
  else
    printf '{"statusCode":503}'
  fi"#;

/// `--local-aws` starts the issuer and DynamoDB Local and fills their places in the function's
/// variables and the event, with a signed token: the run reaches the handler (200). The same
/// run without it sends the text `{jwt}` and empty endpoints, and the gate fails on the
/// refusals instead of timing them.
#[tokio::test]
async fn the_cold_start_gate_reaches_the_handler_with_local_aws() {
    let _shared = CPU.read().await;
    let bin = shell_function("needs-local-aws", NEEDS_LOCAL_AWS).build().unwrap().bin().display().to_string();
    let payload = r#"{"headers":{"authorization":"Bearer {jwt}"}}"#;
    let base = move |local: bool| {
        let mut args: Vec<String> =
            ["--bin", &bin, "--runs", "2", "--expect-status", "200", "--payload", payload]
                .map(str::to_owned)
                .to_vec();
        args.extend(["--env", "JWKS_URL={jwks_url}", "--env", "DDB={dynamodb}"].map(str::to_owned));
        if local {
            args.extend(["--local-aws", "--jwt-claims", r#"{"aud":"x"}"#].map(str::to_owned));
        }
        args
    };
    let (with, without) = (base(true), base(false));
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || {
        coldstart_gate(&with.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(passed, "{stdout}\n{stderr}");
    assert!(stdout.contains("answers 200 x2"), "{stdout}");
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || {
        coldstart_gate(&without.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(
        !passed,
        "without --local-aws nothing reached the handler, yet the gate passed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("answers 401 x2"), "{stdout}");
}

/// The unmeasured start with `--prepare-env` must succeed: a function that could not make its
/// tables would be measured answering errors. Its variables are that start's alone: the
/// measured starts run without them, and pass.
#[tokio::test]
async fn the_cold_start_gate_fails_when_its_preparing_start_fails() {
    let _shared = CPU.read().await;
    let args = ["--bin", FIXTURE, "--runs", "1", "--prepare-env", "FIXTURE_INIT=crash"];
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || coldstart_gate(&args)).await.unwrap();
    assert!(!passed, "the preparing start crashed, yet the gate passed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("the unmeasured start with --prepare-env failed"), "{stdout}\n{stderr}");
    let args = ["--bin", FIXTURE, "--runs", "1", "--prepare-env", "FIXTURE_MS=1"];
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || coldstart_gate(&args)).await.unwrap();
    assert!(passed, "{stdout}\n{stderr}");
    assert!(stdout.contains("prepared (not measured): lambda-fixture"), "{stdout}");
}

/// Without `--vs`, `--expect-status` checked only the runs that succeeded: runs that all
/// failed left nothing to check, and the gate passed.
#[tokio::test]
async fn the_cold_start_gate_fails_when_the_runs_it_checks_failed() {
    let _shared = CPU.read().await;
    let args = ["--bin", FIXTURE, "--runs", "2", "--env", "FIXTURE_INIT=crash", "--expect-status", "200"];
    let (passed, stdout, stderr) = tokio::task::spawn_blocking(move || coldstart_gate(&args)).await.unwrap();
    assert!(!passed, "every cold start crashed, yet the gate passed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("2 of lambda-fixture's 2 cold starts failed (0 measured)"), "{stdout}\n{stderr}");
}

/// A shell bootstrap that answers each event with `{"ok":true}`, then runs `after` before it
/// asks for the next one.
fn answers_then(name: &str, after: &str) -> FunctionBuilder {
    script_function(
        name,
        &format!(
            r#"{SHELL_PRELUDE}while :; do
  next=$(curl -sS -i "$api/next" | tr -d '\r')
  id=$(header lambda-runtime-aws-request-id)
  curl -sS -o /dev/null -X POST --data-binary '{{"ok":true}}' "$api/$id/response"
{after}
done
"#
        ),
    )
}

/// Output reaches the log through pipes, after the answer: a check that something is not in
/// the log needs every line read first. The bootstrap answers, then prints numbered lines
/// (copied to a file as they go) until the timeout kills it, leaving a pipe full of lines
/// the log has not read yet; `drained_logs` has every line the copy has, the last included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_logs_hold_everything_the_sandbox_printed_after_its_answer() {
    let _shared = CPU.read().await;
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lift-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Open to the sandbox's user, whichever it is.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let copy = dir.join("copy");
    let printer = answers_then("drain", "  seq 1 100000000 | tee \"$COPY_DIR/copy\"")
        .timeout_secs(1)
        .env("COPY_DIR", dir.display().to_string());
    let lambda = lambda_with(printer);
    for round in 0..3 {
        let _ = std::fs::remove_file(&copy);
        let out = lambda.invoke("drain", "{}").await.unwrap();
        assert!(out.function_error.is_none(), "round {round}: {:?}", out.payload);
        let log = lambda.drained_logs("drain").await;
        let copied = std::fs::read_to_string(&copy).unwrap();
        // The last line the copy has whole: the pipe had it before the file did.
        let last = copied.rsplit_once('\n').map(|(whole, _)| whole).unwrap_or_default();
        let last = last.rsplit('\n').next().unwrap_or_default().to_owned();
        assert!(!last.is_empty(), "round {round}: nothing printed");
        assert!(
            log.iter().any(|l| l.message == last),
            "round {round}: line {last} is not in the drained log"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// On Lambda the invoke phase ends at the runtime's next `/next`, not at its answer: work
/// after the answer counts in the REPORT's duration, and what it prints comes before END.
#[tokio::test]
async fn an_invocation_lasts_until_the_runtime_asks_for_the_next_one() {
    let _shared = CPU.read().await;
    let lambda = lambda_with(answers_then("after", "  sleep 0.5\n  echo post"));
    let out = lambda.invoke("after", "{}").await.unwrap();
    assert!(out.function_error.is_none(), "{:?}", out.payload);
    assert!(lambda.settle("after", SETTLE).await);
    let reports = lambda.reports("after");
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert!(report.duration >= Duration::from_millis(500), "{report:?}");
    assert!(report.billed_ms >= 500, "{report:?}");
    assert_eq!(report.status, None, "{report:?}");
    let log: Vec<String> = lambda.logs("after").into_iter().map(|l| l.message).collect();
    let post = log.iter().position(|m| m == "post");
    let end = log.iter().position(|m| *m == format!("END RequestId: {}", out.request_id));
    assert!(matches!((post, end), (Some(p), Some(e)) if p < e), "{log:#?}");
}

/// A runtime that answers but never asks for the next invocation has timed out: the caller
/// has its answer, the REPORT says timeout, and the sandbox is gone.
#[tokio::test]
async fn a_runtime_that_answers_but_never_asks_again_times_out() {
    let _shared = CPU.read().await;
    let lambda = lambda_with(answers_then("stuck", "  sleep 30").timeout_secs(1));
    let out = lambda.invoke("stuck", "{}").await.unwrap();
    assert!(out.function_error.is_none(), "{:?}", out.payload);
    assert_eq!(out.json(), json!({"ok": true}));
    assert!(lambda.settle("stuck", SETTLE).await);
    let reports = lambda.reports("stuck");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].status.as_deref(), Some("timeout"), "{:?}", reports[0]);
    assert!(reports[0].duration >= Duration::from_secs(1), "{:?}", reports[0]);
    assert_eq!(lambda.sandboxes("stuck"), 0);
    let log: Vec<String> = lambda.logs("stuck").into_iter().map(|l| l.message).collect();
    let timed_out = format!("RequestId: {} Error: Task timed out after 1.00 seconds", out.request_id);
    assert!(log.iter().any(|m| m.starts_with(&timed_out)), "{log:#?}");
    assert!(lambda.invoke("stuck", "{}").await.unwrap().cold_start);
}

/// A sandbox reaches neither the harness's environment nor another function's: not its
/// `/proc/<pid>/environ` (its role's keys, its secrets), not its `TMPDIR`. As root only: a
/// harness that is not root runs every sandbox as its own user, which separates nothing (see
/// `SANDBOX_UID_BASE`).
#[tokio::test]
async fn a_sandbox_reads_neither_the_harness_nor_another_functions_environment_or_tmp() {
    let _shared = CPU.read().await;
    if !cgroups_for_test("a_sandbox_reads_neither_the_harness_nor_another_functions_environment_or_tmp")
        || own_id("Uid:") != "0"
        || std::env::var_os("LIFT_LAMBDA_SANDBOX_USER").is_some()
    {
        return;
    }
    let victim = r#"  printf 'victim-tmp-marker' > "$TMPDIR/secret"
  printf '{"pid":"%s","tmp":"%s"}' "$$" "$TMPDIR""#;
    let prober = r#"  pid=$(printf '%s' "$event" | sed 's/.*"pid":"\([0-9]*\)".*/\1/')
  tmp=$(printf '%s' "$event" | sed 's/.*"tmp":"\([^"]*\)".*/\1/')
  if cat "/proc/$PPID/environ" >/dev/null 2>&1; then parent=readable; else parent=unreadable; fi
  other=$(tr '\0' ' ' < "/proc/$pid/environ" 2>/dev/null)
  secret=$(cat "$tmp/secret" 2>/dev/null)
  listing=$(ls -A "$tmp" 2>/dev/null | tr '\n' ' ')
  if touch "$tmp/intruder" 2>/dev/null; then wrote=yes; else wrote=no; fi
  printf '{"parent":"%s","other":"%s","secret":"%s","listing":"%s","wrote":"%s"}' \
    "$parent" "$other" "$secret" "$listing" "$wrote""#;
    let lambda = LocalLambda::builder()
        .function(shell_function("victim", victim).env("VICTIM_SECRET", "victim-env-marker").build().unwrap())
        .function(shell_function("prober", prober).build().unwrap())
        .build()
        .unwrap();
    let victim = lambda.invoke("victim", "{}").await.unwrap();
    assert!(victim.function_error.is_none(), "{:?}", victim.payload);
    assert!(lambda.settle("victim", SETTLE).await);
    let tmp = victim.json()["tmp"].as_str().unwrap().to_owned();
    let out = lambda.invoke("prober", victim.json().to_string()).await.unwrap();
    assert!(out.function_error.is_none(), "{:?}", out.payload);
    let text = String::from_utf8_lossy(&out.payload).into_owned();
    let seen = out.json();
    assert_eq!(seen["parent"], "unreadable", "{text}");
    assert!(!text.contains("victim-env-marker") && !text.contains("victim-tmp-marker"), "{text}");
    assert_eq!(seen["other"], "", "{text}");
    assert_eq!(seen["listing"], "", "{text}");
    assert_eq!(seen["wrote"], "no", "{text}");
    assert!(!std::path::Path::new(&tmp).join("intruder").exists());
    // The victim still reads its own.
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(&tmp).join("secret")).unwrap(),
        "victim-tmp-marker"
    );
}
