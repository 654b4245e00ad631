//! The deployment file: defaults, and a clear error naming the key for each bad value.

mod support;

use lift_deploy::{DeployConfig, Error, Synth};

const BASE: &str = r#"
[service]
name = "payments"
regions = ["us-east-1"]

[function]
code = "s3://artifacts/payments.zip"
"#;

/// The key a bad file is refused for.
fn refused(text: &str) -> (String, String) {
    match DeployConfig::from_toml(text) {
        Err(Error::Config { key, reason }) => (key, reason),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn defaults_are_a_careful_operators() {
    let config = DeployConfig::from_toml(BASE).unwrap();
    assert_eq!(config.function.architecture, "arm64");
    assert_eq!(config.function.memory_mb, 512);
    assert_eq!(config.function.timeout_seconds, 10);
    assert_eq!(config.function.reserved_concurrency, 100);
    assert_eq!(config.logs.retention_days, 365);
    assert!(config.alarms.enabled);
    assert!(!config.api.catch_all);
    assert_eq!(config.table_prefix(), "payments-");
    assert_eq!(config.code(), ("artifacts", "payments.zip"));
}

#[test]
fn wrong_types_and_unknown_keys_name_the_key() {
    let (key, reason) = refused(&format!("{BASE}memory_mb = \"lots\"\n"));
    assert_eq!(key, "function.memory_mb");
    assert!(reason.contains("invalid type"), "{reason}");
    // A typo is refused, never silently ignored.
    let (key, reason) = refused(&format!("{BASE}memroy_mb = 1024\n"));
    assert_eq!(key, "function.memroy_mb");
    assert!(reason.contains("unknown field"), "{reason}");
    let (key, _) = refused("[service]\nname = \"p\"\nregions = [\"us-east-1\"]\n");
    assert_eq!(key, "(top level)");
}

#[test]
fn out_of_range_values_name_the_key() {
    let cases = [
        ("memory_mb = 64", "function.memory_mb"),
        ("timeout_seconds = 0", "function.timeout_seconds"),
        ("architecture = \"sparc\"", "function.architecture"),
        ("reserved_concurrency = 0", "function.reserved_concurrency"),
        ("environment = { AWS_REGION = \"x\" }", "function.environment.AWS_REGION"),
    ];
    for (line, expected) in cases {
        let (key, _) = refused(&format!("{BASE}{line}\n"));
        assert_eq!(key, expected, "{line}");
    }
    let (key, _) = refused(&format!("{BASE}[logs]\nretention_days = 42\n"));
    assert_eq!(key, "logs.retention_days");
    let (key, _) = refused(&BASE.replace("s3://artifacts/payments.zip", "artifacts/payments.zip"));
    assert_eq!(key, "function.code");
    let (key, _) = refused(&BASE.replace("\"payments\"", "\"Payments_API\""));
    assert_eq!(key, "service.name");
    let (key, _) = refused(&BASE.replace("[\"us-east-1\"]", "[\"us-east-1\", \"moon-1\"]"));
    assert_eq!(key, "service.regions[1]");
    let (key, _) = refused(&format!("{BASE}[secrets]\nfingerprint = \"arn:aws:kms:us-east-1:1:key/x\"\n"));
    assert_eq!(key, "secrets.fingerprint");
}

#[test]
fn contradictions_name_the_key() {
    // A function timeout the HTTP API cannot wait for.
    let (key, reason) = refused(&format!("{BASE}timeout_seconds = 60\n"));
    assert_eq!(key, "function.timeout_seconds");
    assert!(reason.contains("29"), "{reason}");
    // Two regions without a domain for failover.
    let two = BASE.replace("[\"us-east-1\"]", "[\"us-east-1\", \"eu-west-1\"]");
    let keys = "[kms.data_keys]\nus-east-1 = \"arn:aws:kms:us-east-1:1:key/a\"\neu-west-1 = \"arn:aws:kms:eu-west-1:1:key/a\"\n";
    assert_eq!(refused(&format!("{two}{keys}")).0, "domain");
    // Two regions, one without its replica key.
    let (key, _) = refused(&format!("{two}[kms.data_keys]\nus-east-1 = \"arn:aws:kms:us-east-1:1:key/a\"\n"));
    assert_eq!(key, "kms.data_keys.eu-west-1");
    // A key in the wrong region.
    let (key, reason) =
        refused(&format!("{BASE}[kms.data_keys]\nus-east-1 = \"arn:aws:kms:eu-west-1:1:key/a\"\n"));
    assert_eq!(key, "kms.data_keys.us-east-1");
    assert!(reason.contains("us-east-1"), "{reason}");
    // A domain without a region's certificate.
    let domain = "[domain]\nname = \"api.example.com\"\nhosted_zone_id = \"Z1\"\n[domain.certificates]\nus-east-1 = \"arn:aws:acm:us-east-1:1:certificate/a\"\n";
    assert_eq!(refused(&format!("{two}{keys}{domain}")).0, "domain.certificates.eu-west-1");
    // Three regions: Route 53 failover has a primary and a secondary only.
    let three = BASE.replace("[\"us-east-1\"]", "[\"us-east-1\", \"eu-west-1\", \"ap-south-1\"]");
    let keys3 = format!("{keys}ap-south-1 = \"arn:aws:kms:ap-south-1:1:key/a\"\n");
    assert_eq!(refused(&format!("{three}{keys3}{domain}")).0, "domain");
    // A burst below the rate.
    assert_eq!(
        refused(&format!("{BASE}[api]\nthrottle_rate = 100\nthrottle_burst = 10\n")).0,
        "api.throttle_burst"
    );
    // A JWT issuer over plain HTTP.
    assert_eq!(
        refused(&format!("{BASE}[api.jwt]\nissuer = \"http://id\"\naudience = [\"a\"]\n")).0,
        "api.jwt.issuer"
    );
}

#[test]
fn the_file_must_cover_what_the_app_handles() {
    // The App handles a schedule and SQS: the file must say which queue and when.
    let without_schedule = support::CONFIG.replace("nightly-settlement = \"cron(0 2 * * ? *)\"", "");
    let synth = Synth::new(support::manifest(), DeployConfig::from_toml(&without_schedule).unwrap());
    match synth.cloudformation("eu-west-1") {
        Err(Error::Config { key, .. }) => assert_eq!(key, "events.schedules.nightly-settlement"),
        other => panic!("{other:?}"),
    }
    let without_queue =
        support::CONFIG.replace("sqs_queues = [\"arn:aws:sqs:eu-west-1:111122223333:orders-jobs\"]", "");
    let synth = Synth::new(support::manifest(), DeployConfig::from_toml(&without_queue).unwrap());
    assert!(
        matches!(synth.terraform("eu-west-1"), Err(Error::Config { key, .. }) if key == "events.sqs_queues")
    );
}

#[test]
fn a_stream_handler_must_name_a_table_with_a_stream() {
    use lift_deploy::{Manifest, TableAccess};
    async fn h(_: lift::Request) -> lift::Response {
        lift::Response::default()
    }
    // The App reads the stream of a table that has none: refused before any template exists.
    let events =
        lift::event::EventRouter::new().on_dynamodb_table("orders-lift-idempotency", |_| async { Ok(()) });
    let app = lift::App::new().get("/", h).events(events);
    let manifest =
        Manifest::from_app(&app).table(lift::store::tables::idempotency(), TableAccess::idempotency());
    let err = Synth::new(manifest, support::config()).cloudformation("eu-west-1").unwrap_err();
    assert!(matches!(&err, Error::Manifest { reason, .. } if reason.contains("without one")), "{err}");
}
