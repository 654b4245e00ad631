//! Test functions for the local Lambda runtime, chosen by the event's `action`: `echo`,
//! `sleep` (`ms`), `allocate` (`mb`), `burn` (`iterations` of CPU work), `background`
//! (a task printing `background ran` `ms` after the answer), `fail`, `big` (`bytes` of
//! answer), `exit` and `emf` (default: `FIXTURE_DEFAULT_ACTION`, else `echo`). `FIXTURE_INIT=crash` exits during init, `FIXTURE_INIT=error`
//! returns an error from `main`, `FIXTURE_INIT=report` posts `/runtime/init/error` as a custom
//! runtime does, and `FIXTURE_INIT=hang` never finishes init.

use std::time::{Duration, Instant};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    match std::env::var("FIXTURE_INIT").as_deref() {
        Ok("crash") => {
            eprintln!("fixture: crashing during init");
            std::process::exit(3);
        }
        Ok("error") => return Err("fixture: init failed on purpose".into()),
        Ok("report") => {
            report_init_error()?;
            std::process::exit(1);
        }
        Ok("hang") => loop {
            std::thread::sleep(Duration::from_secs(60));
        },
        _ => {}
    }
    lambda_runtime::run(service_fn(handle)).await
}

/// `POST /runtime/init/error` with Lambda's error document and error-type header, over a
/// plain HTTP/1.1 connection to `AWS_LAMBDA_RUNTIME_API`.
fn report_init_error() -> Result<(), Error> {
    use std::io::{Read, Write};
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")?;
    let body =
        r#"{"errorMessage":"fixture: the configuration is incomplete","errorType":"FixtureConfigError"}"#;
    let mut stream = std::net::TcpStream::connect(&api)?;
    write!(
        stream,
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\nLambda-Runtime-Function-Error-Type: FixtureConfigError\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    eprintln!("fixture: init error reported: {}", answer.lines().next().unwrap_or(""));
    Ok(())
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    // Without an `action` in the event (an HTTP API event), FIXTURE_DEFAULT_ACTION and
    // FIXTURE_<NAME> variables choose.
    let var = |k: &str| std::env::var(format!("FIXTURE_{}", k.to_uppercase())).ok();
    let n = |k: &str| payload[k].as_u64().or_else(|| var(k)?.parse().ok()).unwrap_or(0);
    let default_action = var("default_action").unwrap_or_else(|| "echo".to_owned());
    match payload["action"].as_str().unwrap_or(&default_action) {
        "sleep" => {
            tokio::time::sleep(Duration::from_millis(n("ms"))).await;
            Ok(json!({"slept_ms": n("ms")}))
        }
        "allocate" => {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            for _ in 0..n("mb") {
                // Touch every page so the memory is really used.
                chunks.push(vec![1u8; 1024 * 1024]);
            }
            Ok(json!({"allocated_mb": chunks.len()}))
        }
        "burn" => {
            let started = Instant::now();
            let cpu_before = cpu_time();
            let mut x: u64 = 0;
            for i in 0..n("iterations") {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i) ^ (x >> 13);
            }
            std::hint::black_box(x);
            Ok(
                json!({"wall_ms": started.elapsed().as_secs_f64() * 1000.0, "cpu_ms": (cpu_time() - cpu_before) * 1000.0}),
            )
        }
        "background" => {
            let ms = n("ms");
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                println!("background ran");
            });
            Ok(json!({"scheduled_ms": ms}))
        }
        "fail" => Err("fixture: failing on purpose".into()),
        // An API Gateway answer with the status asked for (`status`).
        "status" => Ok(json!({"statusCode": n("status"), "body": ""})),
        "big" => Ok(json!({"data": "x".repeat(n("bytes") as usize)})),
        "exit" => std::process::exit(7),
        "emf" => {
            println!(
                "{}",
                json!({"_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": "Fixture", "Dimensions": [["function"]], "Metrics": [{"Name": "handled", "Unit": "Count"}]}]}, "function": "fixture", "handled": 1})
            );
            Ok(json!({"emitted": true}))
        }
        _ => Ok(json!({
            "event": payload,
            "request_id": ctx.request_id,
            "deadline": ctx.deadline,
            "arn": ctx.invoked_function_arn,
            "trace_id": ctx.xray_trace_id,
            "client_context": ctx.client_context.map(|c| c.custom),
            "env": {
                "AWS_LAMBDA_FUNCTION_NAME": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
                "AWS_LAMBDA_FUNCTION_VERSION": std::env::var("AWS_LAMBDA_FUNCTION_VERSION").ok(),
                "AWS_LAMBDA_LOG_GROUP_NAME": std::env::var("AWS_LAMBDA_LOG_GROUP_NAME").ok(),
                "AWS_LAMBDA_LOG_STREAM_NAME": std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").ok(),
                "AWS_REGION": std::env::var("AWS_REGION").ok(),
                "TZ": std::env::var("TZ").ok(),
                "LAMBDA_TASK_ROOT": std::env::var("LAMBDA_TASK_ROOT").ok(),
                "USER_VAR": std::env::var("USER_VAR").ok(),
                "HOME": std::env::var("HOME").ok(),
            },
        })),
    }
}

/// This process's CPU time in seconds (utime + stime from /proc/self/stat).
fn cpu_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}
