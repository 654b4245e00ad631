//! `lift-deploy rollout`: the command line of [`Rollout`](super::Rollout).

use std::sync::Arc;
use std::time::Duration;

use super::{parse_duration, CommandGate, HealthGate, Record, Recovery, Rollout, Status, Strategy, Target};

/// The usage text.
pub const USAGE: &str =
    "usage: lift-deploy rollout --function <name> --alias <alias> (--version <n> | --publish)
         [--strategy all-at-once | canary:<p>%:<t> | linear:<p>%:<t> | blue-green:<t>]
         [--final-bake <t>] [--poll <t>] [--step-timeout <t>] [--lease <t>] [--failures-to-fail <n>]
         [--health <path>] [--check <name>=<command>]... [--pre-traffic <command>]...
         [--post-traffic <command>]... [--table <name>] [--resume] [--no-rollback] [--json <file>]
         [--no-gates]

  Shifts the alias to the new version step by step, reading the gates between steps, and
  rolls back when one fails. At least one gate (--health or --check) is required;
  --no-gates runs without any, promoting the new version on the clock alone (only a failing
  hook can stop it). The Lambda API and DynamoDB are AWS's, or whatever
  AWS_ENDPOINT_URL_LAMBDA and AWS_ENDPOINT_URL_DYNAMODB point at. Exit status: 0 promoted,
  1 rolled back or halted, 2 could not run.";

/// The warning `--no-gates` prints before the rollout starts.
const NO_GATES_WARNING: &str = "warning: --no-gates: no gate reads the new version; every step ends \
     when its time runs out and the version is promoted whatever it does (only a failing hook stops it)";

/// Parsed arguments.
#[derive(Debug)]
struct Args {
    function: String,
    alias: String,
    target: Target,
    strategy: Strategy,
    final_bake: Duration,
    poll: Duration,
    step_timeout: Duration,
    lease: Duration,
    failures_to_fail: u32,
    health: Option<String>,
    checks: Vec<(String, String)>,
    pre: Vec<String>,
    post: Vec<String>,
    table: Option<String>,
    resume: bool,
    rollback: bool,
    no_gates: bool,
    json: Option<std::path::PathBuf>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut function = None;
    let mut alias = None;
    let mut target = None;
    let mut parsed = Args {
        function: String::new(),
        alias: String::new(),
        target: Target::Publish,
        strategy: Strategy::AllAtOnce,
        final_bake: Duration::ZERO,
        poll: Duration::from_secs(1),
        step_timeout: Duration::from_secs(30),
        lease: Duration::from_secs(15),
        failures_to_fail: 1,
        health: None,
        checks: Vec::new(),
        pre: Vec::new(),
        post: Vec::new(),
        table: None,
        resume: false,
        rollback: true,
        no_gates: false,
        json: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--function" => function = Some(value()?),
            "--alias" => alias = Some(value()?),
            "--version" => target = Some(Target::Version(value()?)),
            "--publish" => target = Some(Target::Publish),
            "--strategy" => parsed.strategy = Strategy::parse(&value()?)?,
            "--final-bake" => parsed.final_bake = parse_duration(&value()?)?,
            "--poll" => parsed.poll = parse_duration(&value()?)?,
            "--step-timeout" => parsed.step_timeout = parse_duration(&value()?)?,
            "--lease" => parsed.lease = parse_duration(&value()?)?,
            "--failures-to-fail" => {
                let v = value()?;
                parsed.failures_to_fail = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--failures-to-fail {v:?}: expected a count above 0"))?;
            }
            "--health" => parsed.health = Some(value()?),
            "--check" => {
                let v = value()?;
                let (name, command) =
                    v.split_once('=').ok_or_else(|| format!("--check {v:?}: expected <name>=<command>"))?;
                parsed.checks.push((name.to_owned(), command.to_owned()));
            }
            "--pre-traffic" => parsed.pre.push(value()?),
            "--post-traffic" => parsed.post.push(value()?),
            "--table" => parsed.table = Some(value()?),
            "--json" => parsed.json = Some(value()?.into()),
            "--resume" => parsed.resume = true,
            "--no-rollback" => parsed.rollback = false,
            "--no-gates" => parsed.no_gates = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    parsed.function = function.ok_or("--function is required")?;
    parsed.alias = alias.ok_or("--alias is required")?;
    parsed.target = target.ok_or("--version <n> or --publish is required")?;
    let has_gate = parsed.health.is_some() || !parsed.checks.is_empty();
    if !has_gate && !parsed.no_gates {
        return Err("no gate: give --health <path> or --check <name>=<command>, so the new version is \
                    judged before it takes all traffic (hooks run only once, at the edges), or \
                    --no-gates to promote it on the clock alone"
            .into());
    }
    if has_gate && parsed.no_gates {
        return Err("--no-gates with --health or --check: drop one".into());
    }
    Ok(parsed)
}

/// Runs `lift-deploy rollout` with `args` (after the command word), with clients from the
/// environment (region, credentials, `AWS_ENDPOINT_URL_LAMBDA`, `AWS_ENDPOINT_URL_DYNAMODB`):
/// the exit status.
pub async fn run(args: &[String]) -> u8 {
    // Arguments first: a mistake is named at once, before the environment is read.
    let Some(args) = parse_or_usage(args) else { return 2 };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    execute(args, aws_sdk_lambda::Client::new(&config), aws_sdk_dynamodb::Client::new(&config)).await
}

/// As [`run`], with the clients given.
pub async fn run_with(
    args: &[String],
    lambda: aws_sdk_lambda::Client,
    dynamodb: aws_sdk_dynamodb::Client,
) -> u8 {
    let Some(args) = parse_or_usage(args) else { return 2 };
    execute(args, lambda, dynamodb).await
}

/// The parsed arguments, or `None` after printing what is wrong and the usage.
fn parse_or_usage(args: &[String]) -> Option<Args> {
    match parse(args) {
        Ok(args) => Some(args),
        Err(message) => {
            eprintln!("lift-deploy rollout: {message}\n{USAGE}");
            None
        }
    }
}

async fn execute(args: Args, lambda: aws_sdk_lambda::Client, dynamodb: aws_sdk_dynamodb::Client) -> u8 {
    if args.no_gates {
        eprintln!("lift-deploy rollout: {NO_GATES_WARNING}");
    }
    let table = args.table.clone().unwrap_or_else(|| super::table_def().resolve_name());
    let mut rollout = Rollout::new(lambda, Record::new(dynamodb, table), &args.function, &args.alias)
        .target(args.target.clone())
        .strategy(args.strategy.clone())
        .final_bake(args.final_bake)
        .poll(args.poll)
        .step_timeout(args.step_timeout)
        .lease(args.lease)
        .failures_to_fail(args.failures_to_fail)
        .auto_rollback(args.rollback)
        .recovery(if args.resume { Recovery::Resume } else { Recovery::RollBack })
        .allow_no_gates(args.no_gates)
        .on_event(|event| println!("{:>8} ms  {:<12} {}", event.after_ms, event.kind, event.detail));
    if let Some(path) = &args.health {
        let gate = Arc::new(HealthGate::new(path));
        rollout = rollout.pre_traffic(gate.clone()).gate(gate);
    }
    for (name, command) in &args.checks {
        rollout = rollout.gate(Arc::new(CommandGate::new(name, command)));
    }
    for (n, command) in args.pre.iter().enumerate() {
        rollout = rollout.pre_traffic(Arc::new(CommandGate::new(format!("pre-traffic-{}", n + 1), command)));
    }
    for (n, command) in args.post.iter().enumerate() {
        rollout =
            rollout.post_traffic(Arc::new(CommandGate::new(format!("post-traffic-{}", n + 1), command)));
    }
    match rollout.run().await {
        Ok(outcome) => {
            let ms = |d: Option<Duration>| {
                d.map(|d| format!("{} ms", d.as_millis())).unwrap_or_else(|| "-".into())
            };
            println!(
                "{}: {} → {}: {:?}{} (first traffic {}, detected {}, rolled back {}, total {} ms)",
                outcome.function,
                outcome.from_version,
                outcome.to_version,
                outcome.status,
                outcome.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(),
                ms(outcome.first_traffic_after),
                ms(outcome.detected_after),
                ms(outcome.rolled_back_after),
                outcome.total.as_millis()
            );
            if let Some(path) = &args.json {
                let text = serde_json::to_string_pretty(&outcome).unwrap_or_default();
                if let Err(err) = std::fs::write(path, text + "\n") {
                    eprintln!("lift-deploy rollout: cannot write {}: {err}", path.display());
                    return 2;
                }
            }
            u8::from(outcome.status != Status::Succeeded)
        }
        Err(err) => {
            eprintln!("lift-deploy rollout: {err}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_parse_and_mistakes_are_named() {
        let a = parse(&args("--function payments --alias live --version 3 --strategy canary:10%:30s --check alarms=true --no-rollback")).unwrap();
        assert_eq!(a.target, Target::Version("3".into()));
        assert_eq!(a.checks, vec![("alarms".to_owned(), "true".to_owned())]);
        assert!(!a.rollback);
        assert!(parse(&args("--function payments --alias live")).unwrap_err().contains("--version"));
        assert!(parse(&args("--alias live --publish")).unwrap_err().contains("--function"));
        assert!(parse(&args("--function f --alias a --publish --strategy canary"))
            .unwrap_err()
            .contains("canary"));
        assert!(parse(&args("--function f --alias a --publish --check nocommand"))
            .unwrap_err()
            .contains("<name>="));
        assert!(parse(&args("--function f --alias a --publish --bogus")).unwrap_err().contains("--bogus"));
    }

    #[test]
    fn a_rollout_with_no_gate_is_refused_unless_asked_for_by_name() {
        for hooks_only in ["", "--pre-traffic true --post-traffic true"] {
            let refused =
                parse(&args(&format!("--function f --alias a --publish {hooks_only}"))).unwrap_err();
            assert!(refused.starts_with("no gate") && refused.contains("--no-gates"), "{refused}");
        }
        let allowed = parse(&args("--function f --alias a --publish --no-gates")).unwrap();
        assert!(allowed.no_gates);
        assert!(parse(&args("--function f --alias a --publish --health /health/ready")).is_ok());
        assert!(parse(&args("--function f --alias a --publish --check ok=true")).is_ok());
        let both = parse(&args("--function f --alias a --publish --no-gates --check ok=true")).unwrap_err();
        assert!(both.contains("drop one"), "{both}");
    }
}
