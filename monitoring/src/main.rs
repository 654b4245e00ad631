//! `lift-monitoring`: SLO files checked, turned into CloudWatch alarms, and evaluated over
//! EMF logs.

use std::io::BufReader;
use std::process::ExitCode;

use lift_monitoring::slo::SloFile;
use lift_monitoring::{alarms, evaluator};

const USAGE: &str = "usage:
  lift-monitoring slo check <slo.toml>
      validate the file; print each SLO's budget, alert thresholds and the dimension sets
      the service must publish
  lift-monitoring slo alarms [--template] <slo.toml>
      print the CloudWatch alarms as a CloudFormation fragment (JSON); --template wraps it
      into a whole template
  lift-monitoring slo eval [--json] <slo.toml> <emf-log | ->
      run the alert rules over an EMF log (a file, or - for stdin), in event time

exit status: 0 ok; 1 an alert is firing at the end of the log; 2 bad input;
3 an SLO had no data (and nothing is firing); 4 an SLO spent its error budget over its
window (and nothing is firing at the end)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("lift-monitoring: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let flag = |name: &str| args.iter().any(|a| a == name);
    let positional: Vec<&str> = args.iter().filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    if let Some(unknown) =
        args.iter().find(|a| a.starts_with("--") && !["--json", "--template"].contains(&a.as_str()))
    {
        return Err(format!("unknown option {unknown}\n{USAGE}"));
    }
    let load = |path: &str| SloFile::load(path).map_err(|e| e.to_string());
    match positional.as_slice() {
        ["slo", "check", path] => {
            let file = load(path)?;
            print_check(&file);
            Ok(ExitCode::SUCCESS)
        }
        ["slo", "alarms", path] => {
            let file = load(path)?;
            let value = if flag("--template") { alarms::template(&file) } else { alarms::fragment(&file) };
            println!("{}", serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?);
            Ok(ExitCode::SUCCESS)
        }
        ["slo", "eval", path, log] => {
            let file = load(path)?;
            let report = if *log == "-" {
                evaluator::evaluate_log(file, std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(log).map_err(|e| format!("cannot read {log}: {e}"))?;
                evaluator::evaluate_log(file, BufReader::new(f))
            }
            .map_err(|e| format!("{log}: {e}"))?;
            if flag("--json") {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            } else {
                print!("{report}");
            }
            Ok(match () {
                () if report.is_firing() => ExitCode::from(1),
                () if report.is_exhausted() => ExitCode::from(4),
                () if report.has_no_data() => ExitCode::from(3),
                () => ExitCode::SUCCESS,
            })
        }
        ["help"] | [] => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("unknown command\n{USAGE}")),
    }
}

fn print_check(file: &SloFile) {
    let service = file.service();
    println!(
        "service {} (namespace {}): {} SLOs, {} alert rules",
        service.name(),
        service.namespace(),
        file.slos().len(),
        file.alerts().len()
    );
    for slo in file.slos() {
        let scope = match (&slo.scope().route, &slo.scope().tenant) {
            (None, None) => "every route".to_owned(),
            (Some(r), None) => format!("route {r}"),
            (None, Some(t)) => format!("tenant {t}"),
            (Some(r), Some(t)) => format!("route {r}, tenant {t}"),
        };
        let what = match slo.threshold_ms() {
            Some(t) => format!("{}% within {t} ms", slo.objective()),
            None => format!("{}% not 5xx", slo.objective()),
        };
        println!(
            "  {} ({scope}): {what} over {}, error budget {:.4}%",
            slo.name(),
            slo.window(),
            slo.error_budget() * 100.0
        );
        for rule in file.alerts() {
            println!(
                "    {} {}: {}x over {} and {} -> error ratio above {:.4}%",
                rule.severity(),
                rule.name(),
                rule.burn_rate(),
                rule.long_window(),
                rule.short_window(),
                rule.threshold(slo) * 100.0
            );
        }
    }
    println!("dimension sets the service must publish (MetricsBuilder::dimension_set):");
    for set in file.dimension_sets() {
        println!("  [{}]", set.join(", "));
    }
}
