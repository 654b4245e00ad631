//! `lift-deploy`: infrastructure as code from a Lift App.
//!
//! ```text
//! lift-deploy synth --manifest manifest.json --config lift.toml --out infra/
//! lift-deploy rollout --function payments --alias live --publish --strategy canary:10%:30s --health /health/ready
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: lift-deploy synth --manifest <manifest.json> --config <lift.toml> --out <dir>
       lift-deploy rollout --function <name> --alias <alias> (--version <n> | --publish) [options]

  --manifest  what the service is: its routes and tables, as the service prints it
              (e.g. `cargo run -p payments --features deploy --bin payments-manifest`)
  --config    the deployment file (see deploy/README.md)
  --out       where to write <service>-<region>.cfn.yaml, .cfn.json and .tf.json

`lift-deploy rollout` with no options prints its own usage.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|c| c == "rollout") {
        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                eprintln!("lift-deploy: cannot start the async runtime: {err}");
                return ExitCode::from(2);
            }
        };
        return ExitCode::from(runtime.block_on(lift_deploy::rollout::cli::run(&args[1..])));
    }
    match run(&args) {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("lift-deploy: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<Vec<PathBuf>, String> {
    let Some((command, rest)) = args.split_first() else { return Err(USAGE.into()) };
    if command != "synth" {
        return Err(format!("unknown command {command:?}\n{USAGE}"));
    }
    let (mut manifest, mut config, mut out) = (None, None, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--manifest" => manifest = Some(PathBuf::from(value)),
            "--config" => config = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let (Some(manifest), Some(config), Some(out)) = (manifest, config, out) else { return Err(USAGE.into()) };
    let text =
        std::fs::read_to_string(&manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let manifest = lift_deploy::Manifest::from_json(&text).map_err(|e| e.to_string())?;
    let config = lift_deploy::DeployConfig::from_path(&config).map_err(|e| e.to_string())?;
    for warning in config.warnings() {
        eprintln!("lift-deploy: warning: {warning}");
    }
    lift_deploy::Synth::new(manifest, config).write(&out).map_err(|e| e.to_string())
}
