//! The payments deployment: golden templates, cfn-lint, checkov, a stack created in moto's
//! CloudFormation, and the function's synthesized environment configuring payments (with
//! its fingerprint key fetched from a Secrets Manager mock), as a cold start would.
//!
//! The external tools are required: CI installs them (`pip install cfn-lint checkov
//! "moto[server]"`), and a missing one fails the test with the command that installs it.
//! Update the golden files after an intended change with
//! `LIFT_UPDATE_GOLDEN=1 cargo test -p payments --features deploy --test deploy golden`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lift_deploy::{DeployConfig, Synth};

const CONFIGS: [&str; 2] = ["lift.toml", "lift.multi-region.toml"];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn synth(config: &str) -> Synth {
    let config = DeployConfig::from_path(&manifest_dir().join(config))
        .expect("the example deployment files are valid");
    Synth::new(payments::manifest(), config)
}

/// Both example deployments page someone: `lift-deploy synth` warns about a region whose
/// alarms notify no topic, and an example that deploys alarms nobody receives teaches that.
#[test]
fn the_example_deployments_synthesize_without_warnings() {
    for config in CONFIGS {
        let deploy = DeployConfig::from_path(&manifest_dir().join(config)).unwrap();
        assert_eq!(deploy.warnings(), Vec::<String>::new(), "{config}");
    }
}

/// Every output file of both deployment files, by golden path (`single/...`, `multi/...`).
fn outputs() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (config, dir) in CONFIGS.iter().zip(["single", "multi"]) {
        for (name, text) in synth(config).files().unwrap() {
            out.insert(format!("{dir}/{name}"), text);
        }
    }
    out
}

/// Writes the outputs under a fresh temporary directory and returns it.
fn written() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("payments-deploy-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    for (name, text) in outputs() {
        let path = dir.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["single", "multi"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs a required tool; a missing one fails with how to install it.
fn tool(program: &str, install: &str) -> Command {
    if Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        panic!("{program} is required for this test and was not found on PATH; install it with `{install}`");
    }
    Command::new(program)
}

#[test]
fn golden_files_match_and_output_is_deterministic() {
    let golden = manifest_dir().join("tests/fixtures/deploy");
    let first = outputs();
    // Byte-identical on a second run: nothing depends on hash order or time.
    assert_eq!(first, outputs());
    if std::env::var_os("LIFT_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        for (name, text) in &first {
            let path = golden.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }
    for (name, text) in &first {
        let expected = std::fs::read_to_string(golden.join(name)).unwrap_or_else(|_| {
            panic!("no golden file {name}; create it with LIFT_UPDATE_GOLDEN=1 cargo test -p payments --features deploy --test deploy golden")
        });
        assert!(
            &expected == text,
            "{name} differs from its golden file; review the change and update with \
             LIFT_UPDATE_GOLDEN=1 cargo test -p payments --features deploy --test deploy golden"
        );
    }
    let mut on_disk: Vec<String> = Vec::new();
    for sub in ["single", "multi"] {
        for entry in std::fs::read_dir(golden.join(sub)).unwrap() {
            on_disk.push(format!("{sub}/{}", entry.unwrap().file_name().to_string_lossy()));
        }
    }
    on_disk.sort();
    assert_eq!(on_disk, first.keys().cloned().collect::<Vec<_>>(), "stale golden files");
}

#[test]
fn cfn_lint_reports_nothing_on_every_template() {
    let dir = written();
    let mut templates = files_with(&dir, ".cfn.yaml");
    templates.extend(files_with(&dir, ".cfn.json"));
    assert_eq!(templates.len(), 6, "single region: one per format; two regions: two per format");
    let out = tool("cfn-lint", "pip install cfn-lint").args(&templates).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    // Exit code 0: no error, no warning, no informational finding.
    assert!(
        out.status.success() && report.trim().is_empty(),
        "cfn-lint found:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs checkov once over a directory and returns its failed checks as (file, first line,
/// last line, check id).
fn checkov_failures(dir: &Path, framework: &str) -> (Vec<(PathBuf, usize, usize, String)>, u64) {
    let out = tool("checkov", "pip install checkov")
        .args(["--skip-download", "--quiet", "--compact", "-o", "json", "--framework", framework, "-d"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("checkov output is not JSON ({e}):\n{text}"));
    // One framework gives an object; keep the list form too.
    let reports = match report {
        serde_json::Value::Array(list) => list,
        one => vec![one],
    };
    let mut failed = Vec::new();
    let mut passed = 0;
    for report in reports {
        passed += report["summary"]["passed"].as_u64().unwrap_or(0);
        for check in report["results"]["failed_checks"].as_array().into_iter().flatten() {
            let file = dir.join(check["file_path"].as_str().unwrap().trim_start_matches('/'));
            let range = &check["file_line_range"];
            failed.push((
                file,
                range[0].as_u64().unwrap() as usize,
                range[1].as_u64().unwrap() as usize,
                check["check_id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    (failed, passed)
}

#[test]
fn checkov_passes_the_cloudformation_with_every_skip_justified() {
    let dir = written();
    let cfn = dir.join("cfn");
    std::fs::create_dir_all(&cfn).unwrap();
    for (i, path) in
        files_with(&dir, ".cfn.json").into_iter().chain(files_with(&dir, ".cfn.yaml")).enumerate()
    {
        std::fs::copy(&path, cfn.join(format!("{i}-{}", path.file_name().unwrap().to_string_lossy())))
            .unwrap();
    }
    let (failed, passed) = checkov_failures(&cfn, "cloudformation");
    // The YAML templates hold the same template (the golden test and cfn-lint read them);
    // checkov reads the JSON ones only, which halves its time in CI.
    assert!(passed > 100, "checkov ran {passed} checks: did it read the templates?");
    assert!(failed.is_empty(), "checkov failed checks: {failed:?}");
    // Every skip checkov honoured carries a written reason in the template.
    for path in files_with(&dir, ".cfn.json") {
        let template: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (name, resource) in template["Resources"].as_object().unwrap() {
            for skip in resource["Metadata"]["checkov"]["skip"].as_array().into_iter().flatten() {
                let why = skip["comment"].as_str().unwrap_or_default();
                assert!(why.len() > 20, "{name} skips {} without a reason", skip["id"]);
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn checkov_passes_the_terraform_except_justified_skips() {
    // checkov's Terraform JSON runner reads no skip comments; each failure must instead sit
    // in a resource whose `//` comment names the check with a reason.
    let dir = written();
    let tf = dir.join("tf");
    for (i, path) in files_with(&dir, ".tf.json").into_iter().enumerate() {
        let sub = tf.join(i.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::copy(&path, sub.join(path.file_name().unwrap())).unwrap();
    }
    let (failed, passed) = checkov_failures(&tf, "terraform_json");
    assert!(passed > 100, "checkov ran {passed} checks: did it read the configurations?");
    for (file, first, last, id) in &failed {
        let text = std::fs::read_to_string(file).unwrap();
        let block: Vec<&str> = text.lines().skip(first.saturating_sub(1)).take(last + 1 - first).collect();
        let marker = format!("checkov:skip={id}:");
        let justified = block.iter().any(|line| {
            line.split(&marker).nth(1).is_some_and(|why| why.split(" | ").next().unwrap_or("").len() > 20)
        });
        assert!(justified, "{id} failed in {}:{first}-{last} without a justified skip", file.display());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A moto server on a free port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tool("moto_server", "pip install \"moto[server]\"")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        // Ready when it accepts connections (a bounded wait, not a timing assertion).
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("moto_server did not listen on port {port}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_payments_stack_creates_in_moto_and_its_tables_exist() {
    let moto = Moto::start();
    let synth = synth("lift.toml");
    let dir = written();
    let template = dir.join("single/payments-us-east-1.cfn.json");
    let config = DeployConfig::from_path(&manifest_dir().join("lift.toml")).unwrap();
    let (bucket, key) = config.code();
    let script = manifest_dir().join("tests/support/moto_stack.py");
    let out = tool("python3", "install Python 3 and `pip install boto3 \"moto[server]\"`")
        .arg(&script)
        .args([&moto.endpoint, template.to_str().unwrap(), bucket, key])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stack creation failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l == "STATUS CREATE_COMPLETE"), "{stdout}");
    // Every table of the manifest exists under its physical name, on demand.
    let manifest = payments::manifest();
    let mut expected: Vec<String> = manifest.tables.iter().map(|t| format!("payments-{}", t.name)).collect();
    expected.sort();
    let mut tables: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("TABLE ")).collect();
    tables.sort();
    assert_eq!(tables.len(), expected.len(), "{stdout}");
    for (line, name) in tables.iter().zip(&expected) {
        assert!(line.starts_with(&format!("{name} PAY_PER_REQUEST")), "{line}");
    }
    // The function, its role, key, queue and log groups are created too; what moto does not
    // model is listed (see deploy/README.md), and never a table.
    for kind in [
        "AWS::Lambda::Function",
        "AWS::IAM::Role",
        "AWS::KMS::Key",
        "AWS::SQS::Queue",
        "AWS::Logs::LogGroup",
        "AWS::Lambda::Version",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("RESOURCE ") && l.contains(kind) && l.ends_with("CREATE_COMPLETE")),
            "{kind} missing:\n{stdout}"
        );
    }
    let unsupported: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("UNSUPPORTED ")).collect();
    assert!(!unsupported.iter().any(|t| t.starts_with("AWS::DynamoDB")), "{unsupported:?}");
    eprintln!("resource types moto does not create: {unsupported:?}");
    drop(synth);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn failover_records_are_the_ones_lift_disaster_names() {
    // What lift::disaster's orchestrator would write for each region, from the same file.
    let config = DeployConfig::from_path(&manifest_dir().join("lift.multi-region.toml")).unwrap();
    let domain = config.domain.clone().unwrap();
    let mut dns = lift::disaster::Route53Failover::new(&domain.hosted_zone_id, format!("{}.", domain.name));
    for region in &config.service.regions {
        dns = dns.target(region, domain.regional_name(region));
    }
    let synth = synth("lift.multi-region.toml");
    for (i, region) in config.service.regions.iter().enumerate() {
        let t = synth.cloudformation(region).unwrap();
        let record = &t["Resources"]["FailoverRecord"]["Properties"];
        let expected = dns.clone().set_identifier(region).record_for(region).unwrap();
        assert_eq!(record["Name"], expected.name);
        assert_eq!(record["Type"], expected.record_type);
        assert_eq!(record["TTL"], expected.ttl.unwrap().to_string());
        assert_eq!(record["ResourceRecords"], serde_json::json!(expected.values));
        assert_eq!(record["SetIdentifier"], serde_json::json!(expected.set_identifier));
        assert_eq!(record["Failover"], if i == 0 { "PRIMARY" } else { "SECONDARY" });
        // Route 53 probes the URL lift::disaster probes, and the function is told it.
        let check = &t["Resources"]["HealthCheck"]["Properties"]["HealthCheckConfig"];
        let url = format!(
            "https://{}{}",
            check["FullyQualifiedDomainName"].as_str().unwrap(),
            check["ResourcePath"].as_str().unwrap()
        );
        let env = &t["Resources"]["Function"]["Properties"]["Environment"]["Variables"];
        let suffix = region.to_uppercase().replace('-', "_");
        assert_eq!(env[format!("LIFT_HEALTH_URL_{suffix}")], url);
        assert!(url.ends_with("/health/ready"));
        assert_eq!(env["LIFT_REGIONS"], config.service.regions.join(","));
        // The global table lives in the primary's template only, with a replica per region.
        let tables = t["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["Type"] == "AWS::DynamoDB::GlobalTable")
            .count();
        if i == 0 {
            assert_eq!(tables, payments::manifest().tables.len());
            let replicas = t["Resources"]["PaymentsTable"]["Properties"]["Replicas"].as_array().unwrap();
            let names: Vec<&str> = replicas.iter().map(|r| r["Region"].as_str().unwrap()).collect();
            assert_eq!(names, config.service.regions.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(replicas.iter().all(|r| r["SSESpecification"]["KMSMasterKeyId"]
                .as_str()
                .unwrap()
                .contains(r["Region"].as_str().unwrap())));
        } else {
            assert_eq!(tables, 0);
        }
    }
}

/// The variables of the function `deploy` synthesizes for `region`, as CloudFormation's
/// `Environment.Variables` and Terraform's `environment.variables` give them: both must be
/// plain strings (what Lambda hands the process) and the same.
fn function_environment(deploy: &DeployConfig, region: &str) -> BTreeMap<String, String> {
    let synth = Synth::new(payments::manifest(), deploy.clone());
    let cfn = synth.cloudformation(region).unwrap();
    let tf = synth.terraform(region).unwrap();
    let variables = |v: &serde_json::Value, what: &str| -> BTreeMap<String, String> {
        let v = v.as_object().unwrap_or_else(|| panic!("{what}: no variables"));
        v.iter()
            .map(|(k, v)| {
                let text = v.as_str().unwrap_or_else(|| panic!("{what}: {k} is not a plain string: {v}"));
                (k.clone(), text.to_owned())
            })
            .collect()
    };
    let from_cfn = variables(&cfn["Resources"]["Function"]["Properties"]["Environment"]["Variables"], "cfn");
    let from_tf = variables(
        &tf["resource"]["aws_lambda_function"]["function"]["environment"]["variables"],
        "terraform",
    );
    assert_eq!(from_cfn, from_tf, "{region}: CloudFormation and Terraform environments differ");
    from_cfn
}

/// The example deployment files, and lift.toml with two audiences and its own JWK set URL
/// (what the examples leave at their defaults), each with what payments must resolve:
/// audiences and JWK set URL.
fn deployments() -> Vec<(String, DeployConfig, &'static str, &'static str)> {
    let load = |file: &str| DeployConfig::from_path(&manifest_dir().join(file)).unwrap();
    let default_jwks = "https://id.example.com/.well-known/jwks.json";
    let mut own = load("lift.toml");
    let jwt = own.api.jwt.as_mut().unwrap();
    jwt.audience = vec!["payments-api".into(), "ledger".into()];
    jwt.jwks_url = Some("https://keys.example.com/payments/jwks.json".into());
    vec![
        ("lift.toml".into(), load("lift.toml"), "payments", default_jwks),
        ("lift.multi-region.toml".into(), load("lift.multi-region.toml"), "payments", default_jwks),
        (
            "lift.toml with [api.jwt] audience and jwks_url".into(),
            own,
            "payments-api,ledger",
            "https://keys.example.com/payments/jwks.json",
        ),
    ]
}

/// `synthesized` plus only what Lambda itself sets (region, function name, runtime API) and
/// the endpoint variables `endpoints` (the harness's mocks).
fn as_lambda_runs_it(
    synthesized: &BTreeMap<String, String>,
    region: &str,
    endpoints: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut env = synthesized.clone();
    let lambda = [
        ("AWS_REGION".to_owned(), region.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), "payments".to_owned()),
        ("AWS_LAMBDA_RUNTIME_API".to_owned(), "127.0.0.1:9001".to_owned()),
    ];
    for (name, value) in lambda.into_iter().chain(endpoints.iter().cloned()) {
        assert!(name.starts_with("AWS_"), "only what Lambda sets is added, not {name}");
        assert!(env.insert(name.clone(), value).is_none(), "{name} would hide a synthesized variable");
    }
    env
}

/// The fingerprint key the tests store in the Secrets Manager mock.
const SECRET_KEY: &str = "fingerprint-key-from-secrets-manager-0123";

#[tokio::test]
async fn the_synthesized_environment_configures_payments_and_fetches_its_key() {
    use lift_harness::aws::SecretsManagerMock;
    use payments::{Config, FingerprintKey, StackParts};

    for (name, deploy, audience, jwks_url) in deployments() {
        let jwt = deploy.api.jwt.clone().expect("payments configures [api.jwt]");
        // The mock keeps its own ARNs; a secret named by the full ARN answers only a
        // `GetSecretValue` for exactly that ARN: each region's replica is put in.
        let secrets = SecretsManagerMock::start("us-east-1").await;
        let fingerprint_key = &deploy.secrets["fingerprint_key"];
        for region in &deploy.service.regions {
            secrets.put_secret(fingerprint_key.in_region(region).expect("a replica per region"), SECRET_KEY);
        }
        secrets.require_signature(true);
        for region in &deploy.service.regions {
            let arn = fingerprint_key.in_region(region).unwrap().to_owned();
            let envelope_key = deploy.kms.envelope_key.as_ref().and_then(|k| k.in_region(region));
            let synthesized = function_environment(&deploy, region);
            let endpoints = [("AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(), secrets.uri())];
            let env = as_lambda_runs_it(&synthesized, region, &endpoints);
            let lookup = |name: &str| env.get(name).cloned();
            let what = format!("{name} {region}");

            let config = Config::from_env_vars(lookup).unwrap_or_else(|e| {
                panic!("{what}: the synthesized environment does not configure payments: {e}")
            });
            assert_eq!(config.jwt_issuer.as_deref(), Some(jwt.issuer.as_str()), "{what}");
            assert_eq!(config.jwt_issuer.as_deref(), Some("https://id.example.com"), "{what}");
            assert_eq!(config.jwt_audience, jwt.audience.join(","), "{what}");
            assert_eq!(config.jwt_audience, audience, "{what}");
            assert_eq!(config.jwks_url.as_deref(), Some(jwt.jwks_url().as_str()), "{what}");
            assert_eq!(config.jwks_url.as_deref(), Some(jwks_url), "{what}");
            assert!(config.jwt_layer().unwrap().is_some(), "{what}: tokens are checked");
            assert_eq!(config.fingerprint_key, FingerprintKey::Secret(arn.clone()), "{what}");
            assert_eq!(config.kms_key_id.as_deref(), envelope_key, "{what}");
            // The stack main builds from it.
            let stack = config.stack(StackParts::default(), lift::middleware::metrics::MemorySink::new());
            assert!(stack.is_ok(), "{what}: {:?}", stack.err());

            secrets.clear_calls();
            let key = config
                .fingerprint_key
                .load_with_env_vars(lookup)
                .await
                .unwrap_or_else(|e| panic!("{what}: the fingerprint key does not load: {e}"));
            assert_eq!(key, SECRET_KEY.as_bytes(), "{what}");
            let calls = secrets.calls_to("GetSecretValue");
            assert_eq!(calls.len(), 1, "{what}: fetched once at init");
            assert_eq!(calls[0].body["SecretId"], arn.as_str(), "{what}");
            // Asked in the function's own region, for that region's replica: a region's cold
            // start never depends on another region.
            assert!(arn.starts_with(&format!("arn:aws:secretsmanager:{region}:")), "{what}: {arn}");
            assert_eq!(calls[0].sigv4().expect("signed").region, region.as_str(), "{what}");
        }
    }
}

#[tokio::test]
async fn a_missing_or_unreachable_fingerprint_secret_is_refused_naming_its_arn() {
    use lift_harness::aws::{Fault, SecretsManagerMock};
    use payments::Config;

    let deploy = DeployConfig::from_path(&manifest_dir().join("lift.toml")).unwrap();
    let synthesized = function_environment(&deploy, "us-east-1");
    let arn = synthesized["LIFT_SECRET_FINGERPRINT_KEY_ARN"].clone();
    let secrets = SecretsManagerMock::start("us-east-1").await;
    let load = |endpoint: String| {
        let env = as_lambda_runs_it(
            &synthesized,
            "us-east-1",
            &[("AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(), endpoint)],
        );
        async move {
            let lookup = |name: &str| env.get(name).cloned();
            let config = Config::from_env_vars(lookup).expect("the configuration itself is complete");
            config.fingerprint_key.load_with_env_vars(lookup).await.map(|_| ()).unwrap_err().to_string()
        }
    };

    // No such secret.
    let missing = load(secrets.uri()).await;
    assert_eq!(
        missing,
        format!("missing or invalid configuration: the fingerprint key (LIFT_SECRET_FINGERPRINT_KEY_ARN): secret {arn} not found")
    );
    // Secrets Manager unreachable (nothing listens on port 9).
    let unreachable = load("http://127.0.0.1:9".to_owned()).await;
    assert!(unreachable.contains(&arn) && unreachable.contains("dispatch failure"), "{unreachable}");
    // Secrets Manager failing: the value exists but never reaches an error.
    secrets.put_secret(&arn, SECRET_KEY);
    secrets.fault("GetSecretValue", Fault::internal_failure());
    let failing = load(secrets.uri()).await;
    assert!(failing.contains(&arn) && !failing.contains(SECRET_KEY), "{failing}");
    secrets.clear_faults();
    // A secret too short to key fingerprints: refused, the value not quoted.
    let short = "too-short";
    secrets.put_secret(&arn, short);
    let refused = load(secrets.uri()).await;
    assert!(refused.contains(&arn) && refused.contains("at least 16 bytes"), "{refused}");
    assert!(!refused.contains(short), "{refused}");
}

/// The real `payments` binary in the harness's local Lambda runtime (which sets what Lambda
/// sets), with exactly the synthesized variables of lift.toml plus the endpoints of the
/// harness's mocks; its fingerprint secret holds `secret` when given.
async fn cold_start(
    secret: Option<&str>,
) -> (lift_harness::lambda::LocalLambda, lift_harness::aws::AwsMocks, String) {
    use lift_harness::aws::AwsMocks;
    use lift_harness::lambda::{Function, LocalLambda};

    let deploy = DeployConfig::from_path(&manifest_dir().join("lift.toml")).unwrap();
    let region = deploy.primary().to_owned();
    let synthesized = function_environment(&deploy, &region);
    let arn = synthesized["LIFT_SECRET_FINGERPRINT_KEY_ARN"].clone();
    let mocks = AwsMocks::start_in(&region).await.expect("the AWS mocks");
    if let Some(value) = secret {
        mocks.secrets.put_secret(&arn, value);
    }
    let ddb = lift_harness::dynamodb::DynamoDbLocal::shared().await.expect("DynamoDB Local");
    // Only the mocks' endpoints: their JWT issuer variables would hide the synthesized ones.
    let mut endpoints: Vec<(String, String)> =
        mocks.env_vars().into_iter().filter(|(name, _)| name.starts_with("AWS_ENDPOINT_URL_")).collect();
    endpoints.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), ddb.endpoint().to_owned()));
    let mut function = Function::builder("payments", env!("CARGO_BIN_EXE_payments"))
        .memory_mb(deploy.function.memory_mb)
        .timeout_secs(u64::from(deploy.function.timeout_seconds))
        .region(&region);
    for (name, value) in &synthesized {
        function = function.env(name, value);
    }
    for (name, value) in &endpoints {
        assert!(!synthesized.contains_key(name), "{name} would hide a synthesized variable");
        function = function.env(name, value);
    }
    let lambda =
        LocalLambda::builder().function(function.build().expect("a valid function")).build().unwrap();
    (lambda, mocks, arn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_cold_starts_from_the_synthesized_environment() {
    use lift_harness::lambda::http_api::HttpApi;

    let (lambda, mocks, arn) = cold_start(Some(SECRET_KEY)).await;
    let front = HttpApi::start(lambda.clone(), "payments", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let res =
        front.send(http::Method::GET, "/payments", &[], String::new()).await.expect("the front answers");
    let logs: Vec<String> = lambda.logs("payments").into_iter().map(|l| l.message).collect();
    // Init finished and the JWT layer, trusting the synthesized issuer, refused the request.
    assert_eq!(res.status, 401, "{}\n{}", String::from_utf8_lossy(&res.body), logs.join("\n"));
    let calls = mocks.secrets.calls_to("GetSecretValue");
    assert_eq!(calls.len(), 1, "the key is fetched once, at init");
    assert_eq!(calls[0].body["SecretId"], arn.as_str());
    assert!(!logs.iter().any(|l| l.contains(SECRET_KEY)), "the key is logged:\n{}", logs.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_without_its_secret_fails_naming_the_arn_never_the_value() {
    use lift_harness::lambda::http_api::HttpApi;

    // No secret at the ARN; then one too short to key fingerprints.
    for (secret, why) in [(None, "not found"), (Some("too-short"), "at least 16 bytes")] {
        let (lambda, _mocks, arn) = cold_start(secret).await;
        let front = HttpApi::start(lambda.clone(), "payments", "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let res =
            front.send(http::Method::GET, "/payments", &[], String::new()).await.expect("the front answers");
        let logs: Vec<String> = lambda.logs("payments").into_iter().map(|l| l.message).collect();
        let all = logs.join("\n");
        assert_ne!(res.status, 401, "{why}: init should have failed:\n{all}");
        assert!(all.contains(&arn) && all.contains(why), "{why}: the log names the secret and why:\n{all}");
        assert!(!all.contains("too-short"), "{why}: the value is logged:\n{all}");
    }
}
