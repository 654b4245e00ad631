//! `lift-harness lambda serve|invoke|coldstart`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::http_api::HttpApi;
use super::invoke_api::InvokeApi;
use super::logs::ms;
use super::{coldstart, Function, LocalLambda};

/// The `lambda` subcommands.
#[derive(Debug, Subcommand)]
pub enum LambdaCommand {
    /// Run a function in local sandboxes behind the Invoke API and an API Gateway HTTP API
    /// front; print their endpoints as `export` lines and stay up until Ctrl-C.
    Serve {
        /// The function.
        #[command(flatten)]
        function: FunctionArgs,
        /// Reserved concurrency (excess invocations are throttled).
        #[arg(long)]
        reserved: Option<u32>,
        /// Seconds a sandbox may stay idle before it is reaped.
        #[arg(long, default_value_t = 300)]
        idle_timeout: u64,
        /// The Invoke API's address.
        #[arg(long, default_value = "127.0.0.1:0")]
        invoke_addr: SocketAddr,
        /// The HTTP API front's address.
        #[arg(long, default_value = "127.0.0.1:0")]
        http_addr: SocketAddr,
    },
    /// Invoke a function once in a new sandbox and print its answer and REPORT.
    Invoke {
        /// The function.
        #[command(flatten)]
        function: FunctionArgs,
        /// The event (JSON).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Invoke this many times (the first is cold, the rest warm).
        #[arg(long, default_value_t = 1)]
        times: usize,
    },
    /// Measure cold starts (Init Duration plus the first invocation's Duration, and each
    /// part): median, p90, max.
    Coldstart {
        /// The function.
        #[command(flatten)]
        function: FunctionArgs,
        /// A second binary, measured alternately with the first; prints the ratio.
        #[arg(long, value_name = "BIN")]
        vs: Option<String>,
        /// Cold starts per binary.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// The event (JSON): one the function answers as a user's first request, or the
        /// run measures something else (e.g. an app's refusal of a request without credentials).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// With --vs: fail when the first binary's cold start (init plus the first
        /// invocation) exceeds the second's by more than this many milliseconds, as the
        /// median over the rounds of each run's lead over the other binary's run of the same
        /// round (the two alternate).
        #[arg(long, value_name = "MS")]
        budget_ms: Option<f64>,
        /// With --budget-ms: the --vs binary's median cold start on the machine the budget
        /// was set on. The budget is then moved to this host's speed: times the --vs
        /// binary's median here over this, within [1 / --max-scale, --max-scale].
        #[arg(long, value_name = "MS", requires = "budget_ms")]
        reference_ms: Option<f64>,
        /// With --reference-ms: how far the host's speed may move the budget, either way.
        #[arg(long, value_name = "FACTOR", default_value_t = 2.0)]
        max_scale: f64,
        /// Fail unless every cold start of the first binary succeeded and every answer is an
        /// HTTP response (API Gateway's `statusCode`) with this status.
        #[arg(long, value_name = "STATUS")]
        expect_status: Option<u16>,
        /// Start DynamoDB Local and the mocked JWKS issuer for the runs, so the function's
        /// first request can reach its handler and its table: in the `--env`, `--prepare-env`
        /// and payload texts, `{dynamodb}` becomes DynamoDB Local's endpoint, `{jwt_issuer}`
        /// and `{jwks_url}` the issuer's, `{run}` a suffix of this run (for table names), and
        /// in the payload `{jwt}` a token the issuer signed (`--jwt-claims`).
        #[arg(long)]
        local_aws: bool,
        /// With --local-aws: the claims of the payload's `{jwt}` token, a JSON object laid
        /// over the issuer's own (`iss`, `sub`, `iat`, `exp` an hour on).
        #[arg(long, value_name = "JSON", requires = "local_aws")]
        jwt_claims: Option<String>,
        /// One more variable (`K=V`, repeatable) for a single cold start of the first binary
        /// before the measured runs, which is not measured: one that makes the function create
        /// its tables, say, so that the measured runs find them. The gate fails when that
        /// start fails or answers HTTP 500 or more.
        #[arg(long = "prepare-env", value_name = "K=V")]
        prepare_env: Vec<String>,
    },
}

/// What `--local-aws` starts for a cold-start run, and the texts it fills in.
struct LocalAws {
    dynamodb: std::sync::Arc<crate::dynamodb::DynamoDbLocal>,
    jwks: crate::aws::JwksIssuer,
    run: String,
    jwt: Option<String>,
}

impl LocalAws {
    async fn start(jwt_claims: Option<&str>) -> anyhow::Result<Self> {
        let dynamodb = crate::dynamodb::DynamoDbLocal::shared().await.context("starting DynamoDB Local")?;
        let jwks = crate::aws::JwksIssuer::start().await.context("starting the mocked JWKS issuer")?;
        let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let jwt = match jwt_claims {
            Some(given) => {
                let claims = token_claims(jwks.claims("coldstart", ""), given)?;
                Some(jwks.sign(&claims, crate::aws::Alg::Rs256, None)?)
            }
            None => None,
        };
        Ok(Self { dynamodb, jwks, run, jwt })
    }

    /// `text` with this run's endpoints, run suffix and token in their places.
    fn fill(&self, text: &str) -> anyhow::Result<String> {
        let places = [
            ("{dynamodb}", self.dynamodb.endpoint().to_owned()),
            ("{jwt_issuer}", self.jwks.issuer()),
            ("{jwks_url}", self.jwks.jwks_url()),
            ("{run}", self.run.clone()),
        ];
        fill_places(text, &places, self.jwt.as_deref())
    }
}

/// `text` with each place's value in it, and `{jwt}` with the token; a `{jwt}` with no token
/// to put there is refused (the function would be sent the text `{jwt}` for a token).
fn fill_places(text: &str, places: &[(&str, String)], jwt: Option<&str>) -> anyhow::Result<String> {
    let filled = places.iter().fold(text.to_owned(), |text, (place, value)| text.replace(place, value));
    match jwt {
        Some(jwt) => Ok(filled.replace("{jwt}", jwt)),
        None if filled.contains("{jwt}") => bail!("the payload has a {{jwt}} place: give --jwt-claims"),
        None => Ok(filled),
    }
}

/// The issuer's claims (`iss`, `sub`, `iat`, `exp`), without its audience, with `given` (a
/// JSON object) laid over them.
fn token_claims(issuer: serde_json::Value, given: &str) -> anyhow::Result<serde_json::Value> {
    let serde_json::Value::Object(given) = serde_json::from_str(given).context("--jwt-claims is not JSON")?
    else {
        bail!("--jwt-claims must be a JSON object, not {given}");
    };
    let serde_json::Value::Object(mut claims) = issuer else {
        bail!("the issuer's claims are not an object")
    };
    claims.remove("aud");
    claims.extend(given);
    Ok(serde_json::Value::Object(claims))
}

/// The function to run.
#[derive(Debug, Args)]
pub struct FunctionArgs {
    /// The bootstrap binary: a path, or a binary name looked up in the cargo target dir.
    #[arg(long)]
    bin: String,
    /// The function's name [default: the binary's file name].
    #[arg(long)]
    name: Option<String>,
    /// Memory size in MB (also the memory limit and CPU share).
    #[arg(long, default_value_t = 128)]
    memory: u32,
    /// Timeout in seconds.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
    /// An environment variable for the function, `K=V` (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
}

impl FunctionArgs {
    fn function(&self, bin: &str, reserved: Option<u32>) -> anyhow::Result<Function> {
        self.function_filled(bin, reserved, &[], &|v| Ok(v.to_owned()))
    }

    /// The function with `extra` variables after `--env`'s, every value passed through `fill`.
    fn function_filled(
        &self,
        bin: &str,
        reserved: Option<u32>,
        extra: &[String],
        fill: &dyn Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Function> {
        let path = resolve_bin(bin)?;
        let default_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("function").replace('.', "-");
        let name = if bin == self.bin { self.name.clone().unwrap_or(default_name) } else { default_name };
        let mut builder = Function::builder(name, path).memory_mb(self.memory).timeout_secs(self.timeout);
        for kv in self.env.iter().chain(extra) {
            let Some((k, v)) = kv.split_once('=') else { bail!("--env takes K=V, not {kv:?}") };
            builder = builder.env(k, fill(v)?);
        }
        if let Some(n) = reserved {
            builder = builder.reserved_concurrency(n);
        }
        Ok(builder.build()?)
    }
}

/// A path as given, else `name` in the cargo target dir (`$CARGO_TARGET_DIR`, else
/// `target`), the newer of its release and debug builds. Made absolute: the sandbox runs
/// in its task root, where a relative path means nothing.
pub fn resolve_bin(bin: &str) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(find_bin(bin)?)?)
}

fn find_bin(bin: &str) -> anyhow::Result<PathBuf> {
    let given = Path::new(bin);
    if bin.contains('/') || given.is_file() {
        return Ok(given.to_path_buf());
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    let newest = ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join(bin))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max();
    match newest {
        Some((_, path)) => Ok(path),
        None => bail!(
            "no binary {bin:?} in {}/{{release,debug}}: build it first (cargo build --bin {bin}) or give a path",
            target.display()
        ),
    }
}

/// Runs one `lambda` subcommand.
pub async fn run(command: LambdaCommand) -> anyhow::Result<()> {
    match command {
        LambdaCommand::Serve { function, reserved, idle_timeout, invoke_addr, http_addr } => {
            let f = function.function(&function.bin, reserved)?;
            let name = f.name().to_owned();
            let lambda = LocalLambda::builder()
                .function(f)
                .idle_timeout(Duration::from_secs(idle_timeout))
                .echo_logs(true)
                .build()?;
            let invoke =
                InvokeApi::start(lambda.clone(), invoke_addr).await.context("starting the Invoke API")?;
            let http =
                HttpApi::start(lambda.clone(), &name, http_addr).await.context("starting the HTTP API")?;
            println!("export AWS_ENDPOINT_URL_LAMBDA={}", invoke.endpoint());
            println!("export LIFT_LAMBDA_FUNCTION={name}");
            println!("export LIFT_LAMBDA_HTTP_API={}", http.url());
            eprintln!("# e.g. curl $LIFT_LAMBDA_HTTP_API/ or aws lambda invoke --endpoint-url $AWS_ENDPOINT_URL_LAMBDA --function-name {name} out.json");
            // Ctrl-C or SIGTERM: returning drops the sandboxes, which kills them (frozen ones too).
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
                _ = term.recv() => {}
            }
            drop((invoke, http));
            lambda.reset().await;
            Ok(())
        }
        LambdaCommand::Invoke { function, payload, times } => {
            let f = function.function(&function.bin, None)?;
            let name = f.name().to_owned();
            let lambda = LocalLambda::builder().function(f).echo_logs(true).build()?;
            for _ in 0..times.max(1) {
                let out = lambda.invoke(&name, payload.clone().into_bytes()).await?;
                println!("{}", String::from_utf8_lossy(&out.payload));
                if let Some(kind) = &out.function_error {
                    eprintln!("X-Amz-Function-Error: {kind}");
                }
                lambda.settle(&name, Duration::from_secs(2)).await;
            }
            Ok(())
        }
        LambdaCommand::Coldstart {
            function,
            vs,
            runs,
            payload,
            budget_ms,
            reference_ms,
            max_scale,
            expect_status,
            local_aws,
            jwt_claims,
            prepare_env,
        } => {
            if budget_ms.is_some() && vs.is_none() {
                // The budget is a difference from the --vs function: without one, nothing
                // would be checked, and the command would pass as if it had been.
                bail!("--budget-ms is a budget over the --vs function's cold start: give --vs");
            }
            let local = match local_aws {
                true => Some(LocalAws::start(jwt_claims.as_deref()).await?),
                false => None,
            };
            let fill = |text: &str| match &local {
                Some(local) => local.fill(text),
                None => Ok(text.to_owned()),
            };
            let payload = fill(&payload)?;
            let mut functions = vec![function.function_filled(&function.bin, None, &[], &fill)?];
            if let Some(vs) = &vs {
                let other = function.function_filled(vs, None, &[], &fill)?;
                if other.name() == functions[0].name() {
                    bail!("--bin and --vs name the same function");
                }
                functions.push(other);
            }
            if !prepare_env.is_empty() {
                let prepare = function.function_filled(&function.bin, None, &prepare_env, &fill)?;
                let done = coldstart::measure(vec![prepare], 1, payload.as_bytes()).await?;
                let done = &done[0];
                let server_error = done.statuses.keys().any(|status| *status >= 500);
                if done.failures > 0 || server_error {
                    bail!("the unmeasured start with --prepare-env failed: {}", done.summary());
                }
                println!("prepared (not measured): {}", done.summary());
            }
            let stats = coldstart::measure(functions, runs.max(1), payload.as_bytes()).await?;
            for s in &stats {
                println!("{}", s.summary());
                // Asked for with `--expect-status 4xx`, the refusal is what the run measures.
                if s.refused() > 0 && expect_status.is_none_or(|status| status < 400) {
                    eprintln!(
                        "warning: {} refused {} of {} cold starts' events (HTTP status 400 or more): what was measured is the refusal, not the handler; send an event it accepts (--payload) and check with --expect-status",
                        s.name,
                        s.refused(),
                        s.cold_start.len()
                    );
                }
            }
            if let (Some(expected), Some(first)) = (expect_status, stats.first()) {
                // A failed run has no status to check: without this, runs that all failed
                // passed the check with nothing checked.
                if first.failures > 0 || first.cold_start.is_empty() {
                    bail!(
                        "{} of {}'s {} cold starts failed ({} measured): none of them answered HTTP {expected}",
                        first.failures,
                        first.name,
                        first.failures + first.cold_start.len(),
                        first.cold_start.len()
                    );
                }
                let other = first.answers_other_than(expected);
                if other > 0 {
                    bail!(
                        "{} of {}'s answers were not HTTP {expected} ({:?})",
                        other,
                        first.name,
                        first.statuses
                    );
                }
            }
            if let [a, b] = stats.as_slice() {
                // A side with no cold start measured has no median: a ratio against it is
                // a division by nothing (it printed 10^15).
                if let Some(none) = [a, b].into_iter().find(|s| s.cold_start.is_empty()) {
                    bail!(
                        "no cold start of {} succeeded ({} failed): there is nothing to compare",
                        none.name,
                        none.failures
                    );
                }
                let (ma, mb) = (a.cold_start_median(), b.cold_start_median());
                let ratio = ms(ma) / ms(mb).max(f64::EPSILON);
                let excess = coldstart::excess_ms(a, b);
                println!(
                    "cold start median {}: {:.2} ms (init {:.2} + first invocation {:.2}) vs {}: {:.2} ms (init {:.2} + first invocation {:.2}): ratio {ratio:.2}, difference {:+.2} ms; median lead over the same round's run {}",
                    a.name,
                    ms(ma),
                    ms(a.init_median()),
                    ms(a.first_duration_median()),
                    b.name,
                    ms(mb),
                    ms(b.init_median()),
                    ms(b.first_duration_median()),
                    ms(ma) - ms(mb),
                    excess.map_or("none (no round measured both)".to_owned(), |e| format!("{e:+.2} ms")),
                );
                if a.failures > 0 || b.failures > 0 {
                    bail!("{} of the cold starts failed", a.failures + b.failures);
                }
                if let Some(budget) = budget_ms {
                    let budget = budget.max(0.0);
                    let scaled = match reference_ms {
                        Some(reference) => {
                            let scaled = coldstart::scaled_budget(budget, ms(mb), reference, max_scale);
                            println!(
                                "budget {budget} ms where {} started in {reference:.2} ms; here in {:.2} ms: speed {:.2} (measured {:.2}, held within 1/{max_scale} to {max_scale}), budget {:.2} ms",
                                b.name,
                                ms(mb),
                                scaled.speed,
                                scaled.measured_speed,
                                scaled.budget_ms
                            );
                            scaled.budget_ms
                        }
                        None => budget,
                    };
                    if !coldstart::within_budget(a, b, Duration::from_secs_f64(scaled / 1000.0)) {
                        bail!(
                            "cold-start budget exceeded: {} cold start median {:.2} ms (init {:.2} + first invocation {:.2}) vs {} {:.2} ms: median lead over the same round's run {} > {scaled:.2} ms",
                            a.name,
                            ms(ma),
                            ms(a.init_median()),
                            ms(a.first_duration_median()),
                            b.name,
                            ms(mb),
                            excess.map_or("none".to_owned(), |e| format!("{e:+.2} ms")),
                        );
                    }
                    println!("cold-start budget held: within {scaled:.2} ms of {}", b.name);
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_is_filled_and_a_token_place_needs_a_token() {
        let places = [("{dynamodb}", "http://127.0.0.1:8000".to_owned()), ("{run}", "ab12".to_owned())];
        let filled = fill_places("{dynamodb} t-{run}-x {dynamodb}", &places, None).unwrap();
        assert_eq!(filled, "http://127.0.0.1:8000 t-ab12-x http://127.0.0.1:8000");
        let with_token = fill_places(r#"{"authorization":"Bearer {jwt}"}"#, &places, Some("a.b.c")).unwrap();
        assert_eq!(with_token, r#"{"authorization":"Bearer a.b.c"}"#);
        // Sent as it is, the function would be measured refusing the text `{jwt}`.
        let err = fill_places("Bearer {jwt}", &places, None).unwrap_err();
        assert!(err.to_string().contains("give --jwt-claims"), "{err}");
    }

    #[test]
    fn given_claims_lie_over_the_issuers_and_must_be_an_object() {
        let issuer = serde_json::json!({"iss": "http://i", "sub": "coldstart", "aud": "", "exp": 9});
        let claims =
            token_claims(issuer.clone(), r#"{"aud": "payments", "tenant_id": "t1", "sub": "u"}"#).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iss": "http://i", "sub": "u", "aud": "payments", "tenant_id": "t1", "exp": 9})
        );
        // No audience given: none at all, not the issuer's empty one.
        assert!(token_claims(issuer.clone(), "{}").unwrap().get("aud").is_none());
        assert!(token_claims(issuer.clone(), r#"["aud"]"#).is_err());
        assert!(token_claims(issuer, "aud=payments").is_err());
    }
}
