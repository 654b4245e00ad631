//! `lift-harness up` prints endpoints that the stock AWS CLI can use.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Reads the `export NAME='value'` lines the command prints.
fn parse_exports(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

#[test]
fn aws_cli_creates_and_lists_tables_through_the_printed_endpoint() {
    if Command::new("aws").arg("--version").output().is_err() {
        println!("skipped: the aws CLI is not on PATH");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_lift-harness"))
        .args(["up", "--tables"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lift-harness up");
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("export LIFT_TABLE_LIFT_BLOCKLIST=");
        lines.push(line);
        if done {
            break;
        }
    }
    let env = parse_exports(&lines);
    let endpoint = env.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL_DYNAMODB").map(|(_, v)| v.clone());
    assert!(endpoint.is_some(), "no DynamoDB endpoint in {lines:?}");
    for name in
        ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_STS", "LIFT_JWKS_URL"]
    {
        assert!(env.iter().any(|(k, _)| k == name), "{name} missing from {lines:?}");
    }

    let aws = |args: &[&str]| {
        let out = Command::new("aws").args(args).envs(env.iter().cloned()).output().expect("run aws");
        assert!(out.status.success(), "aws {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // Unique: the DynamoDB Local JVM may be shared with other test processes.
    let table = format!("cli-made-{}", std::process::id());
    aws(&[
        "dynamodb",
        "create-table",
        "--table-name",
        &table,
        "--attribute-definitions",
        "AttributeName=pk,AttributeType=S",
        "--key-schema",
        "AttributeName=pk,KeyType=HASH",
        "--billing-mode",
        "PAY_PER_REQUEST",
    ]);
    let listed: serde_json::Value = serde_json::from_str(&aws(&["dynamodb", "list-tables"])).unwrap();
    let names: Vec<&str> =
        listed["TableNames"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(names.contains(&table.as_str()), "{names:?}");
    assert!(names.contains(&"lift-audit"), "--tables creates Lift's tables: {names:?}");
    let identity: serde_json::Value = serde_json::from_str(&aws(&["sts", "get-caller-identity"])).unwrap();
    assert_eq!(identity["Account"], "000000000000");

    // Ctrl-C stops it cleanly.
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "lift-harness up exited with {status}");
}
