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
    // An alias, or anything else than a key: the policy grants the data key by this ARN.
    for resource in ["alias/orders", "alias/aws/dynamodb", "mrk-1"] {
        let (key, reason) =
            refused(&format!("{BASE}[kms.data_keys]\nus-east-1 = \"arn:aws:kms:us-east-1:1:{resource}\"\n"));
        assert_eq!(key, "kms.data_keys.us-east-1", "{resource}");
        assert!(
            reason.contains("key/<key id>") && reason.contains("grants the alias, not its key"),
            "{reason}"
        );
    }
    DeployConfig::from_toml(&format!(
        "{BASE}[kms.data_keys]\nus-east-1 = \"arn:aws:kms:us-east-1:1:key/mrk-1\"\n"
    ))
    .unwrap();
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
    let err = Synth::new(manifest, support::config_without_events()).cloudformation("eu-west-1").unwrap_err();
    assert!(matches!(&err, Error::Manifest { reason, .. } if reason.contains("without one")), "{err}");
}

#[test]
fn values_that_would_let_bad_input_through_are_refused() {
    // No prefix: the function's rights would cover every unprefixed table of the account.
    let (key, reason) = refused(&format!("{BASE}[tables]\nprefix = \"\"\n"));
    assert_eq!(key, "tables.prefix");
    assert!(reason.contains("every unprefixed table"), "{reason}");
    // A threshold of 0 is in ALARM on every period.
    assert_eq!(refused(&format!("{BASE}[alarms]\nerrors_threshold = 0\n")).0, "alarms.errors_threshold");
    assert_eq!(refused(&format!("{BASE}[alarms]\napi_5xx_threshold = 0\n")).0, "alarms.api_5xx_threshold");
    DeployConfig::from_toml(&format!("{BASE}[alarms]\nerrors_threshold = 1\n")).unwrap();
    // CloudWatch notifies topics of the alarm's own region only.
    let (key, reason) = refused(&format!("{BASE}[alarms]\ntopic = \"arn:aws:sns:eu-west-1:1:oncall\"\n"));
    assert_eq!(key, "alarms.topic");
    assert!(reason.contains("eu-west-1"), "{reason}");
    let two = support::MULTI_CONFIG.replace(
        "eu-west-1 = \"arn:aws:sns:eu-west-1:111122223333:orders-oncall\"",
        "eu-west-1 = \"arn:aws:sns:us-east-1:111122223333:orders-oncall\"",
    );
    assert_eq!(refused(&two).0, "alarms.topics.eu-west-1");
    // Lambda polls queues of its own region; only the primary polls.
    let queue = support::MULTI_CONFIG.replace("sqs:us-east-1", "sqs:eu-west-1");
    assert_eq!(refused(&queue).0, "events.sqs_queues[0]");
}

#[test]
fn alarms_without_a_topic_are_allowed_with_a_warning() {
    // The file's own default is no topic: alarms still gate rollouts, so warn, not refuse.
    let config = DeployConfig::from_toml(BASE).unwrap();
    assert_eq!(config.warnings().len(), 1);
    assert!(config.warnings()[0].starts_with("alarms.topic: the alarms in us-east-1 notify no one"));
    let with_topic = format!("{BASE}[alarms]\ntopic = \"arn:aws:sns:us-east-1:1:oncall\"\n");
    assert!(DeployConfig::from_toml(&with_topic).unwrap().warnings().is_empty());
    let off = format!("{BASE}[alarms]\nenabled = false\n");
    assert!(DeployConfig::from_toml(&off).unwrap().warnings().is_empty());
    // Two regions, one topic: the other region's alarms notify no one, and say so.
    let one_topic = support::MULTI_CONFIG
        .replace("[alarms.topics]\nus-east-1 = ", "[alarms]\ntopic = ")
        .replace("eu-west-1 = \"arn:aws:sns:eu-west-1:111122223333:orders-oncall\"\n", "");
    let config = DeployConfig::from_toml(&one_topic).unwrap();
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("eu-west-1"), "{warnings:?}");
    let t = Synth::new(support::manifest(), config).cloudformation("eu-west-1").unwrap();
    assert_eq!(t["Resources"]["ErrorsAlarm"]["Properties"]["AlarmActions"], serde_json::json!([]));
}

#[test]
fn the_file_may_wire_only_what_the_app_handles() {
    let synth_err = |config: &str| -> (String, String) {
        match Synth::new(support::manifest(), DeployConfig::from_toml(config).unwrap())
            .cloudformation("eu-west-1")
        {
            Err(Error::Config { key, reason }) => (key, reason),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    };
    // A schedule the App does not handle would fail every time it fires.
    let extra = support::CONFIG.replace(
        "nightly-settlement = \"cron(0 2 * * ? *)\"",
        "nightly-settlement = \"cron(0 2 * * ? *)\"\nweekly-report = \"rate(7 days)\"",
    );
    let (key, reason) = synth_err(&extra);
    assert_eq!(key, "events.schedules.weekly-report");
    assert!(reason.contains("nightly-settlement"), "names what the App handles: {reason}");
    // Queues for an App that handles no SQS message.
    use lift_deploy::Manifest;
    async fn h(_: lift::Request) -> lift::Response {
        lift::Response::default()
    }
    let events = lift::event::EventRouter::new().on_schedule("nightly-settlement", |_| async { Ok(()) });
    let no_sqs = Manifest::from_app(&lift::App::new().get("/", h).events(events));
    match Synth::new(no_sqs, support::config()).terraform("eu-west-1") {
        Err(Error::Config { key, reason }) => {
            assert_eq!(key, "events.sqs_queues[0]");
            assert!(reason.contains("orders-jobs"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The App handles one queue by name: the file must list it, and nothing else.
    let events = lift::event::EventRouter::new()
        .on_sqs_queue("refunds", |_| async { Ok(()) })
        .on_schedule("nightly-settlement", |_| async { Ok(()) });
    let refunds = Manifest::from_app(&lift::App::new().get("/", h).events(events));
    match Synth::new(refunds.clone(), support::config()).cloudformation("eu-west-1") {
        Err(Error::Config { key, reason }) => {
            assert_eq!(key, "events.sqs_queues[0]");
            assert!(reason.contains("refunds") && reason.contains("orders-jobs"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let listed = support::CONFIG.replace("orders-jobs", "refunds");
    Synth::new(refunds, DeployConfig::from_toml(&listed).unwrap()).cloudformation("eu-west-1").unwrap();
}

#[test]
fn table_actions_outside_the_allow_list_are_refused() {
    use lift_deploy::{Manifest, TableAccess};
    let manifest = support::manifest().table(support::orders(), TableAccess::actions(["*"]));
    let err = Synth::new(manifest.clone(), support::config()).cloudformation("eu-west-1").unwrap_err();
    assert!(matches!(&err, Error::Manifest { path, .. } if path == "tables[2].actions[0]"), "{err}");
    // The same from the JSON `lift-deploy synth --manifest` reads.
    let err = Manifest::from_json(&manifest.to_json()).unwrap_err();
    assert!(err.to_string().contains("tables[2].actions[0]"), "{err}");
    for bad in ["dynamodb:GetItem", "DeleteTable", "Get*"] {
        let m = support::manifest().table(support::orders(), TableAccess::actions([bad]));
        assert!(Synth::new(m, support::config()).terraform("eu-west-1").is_err(), "{bad}");
    }
}

/// [`support::MULTI_CONFIG`] with `[secrets.signing_key]`'s table replaced by `lines`.
fn multi_with_secret(lines: &str) -> String {
    let table = format!(
        "[secrets.signing_key]\nus-east-1 = \"{}\"\neu-west-1 = \"{}\"\n",
        support::secret_in("us-east-1"),
        support::secret_in("eu-west-1")
    );
    assert!(support::MULTI_CONFIG.contains(&table));
    support::MULTI_CONFIG.replace(&table, lines)
}

#[test]
fn a_multi_region_service_names_each_regions_replica_of_a_secret() {
    // Each region its own replica: accepted, and each region's stack gets its own.
    let config = DeployConfig::from_toml(support::MULTI_CONFIG).unwrap();
    let secret = &config.secrets["signing_key"];
    assert_eq!(secret.in_region("eu-west-1"), Some(support::secret_in("eu-west-1").as_str()));
    assert_eq!(secret.in_region("us-east-1"), Some(support::secret_in("us-east-1").as_str()));
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    // One ARN for both regions: eu-west-1 could not cold-start while us-east-1 is dark.
    let one = format!("[secrets]\nsigning_key = \"{}\"\n", support::secret_in("us-east-1"));
    let (key, reason) = refused(&multi_with_secret(&one));
    assert_eq!(key, "secrets.signing_key");
    assert!(reason.contains("replicate the secret") && reason.contains("[secrets.signing_key]"), "{reason}");
    assert!(reason.contains("eu-west-1 = \"arn:aws:secretsmanager:eu-west-1:...\""), "{reason}");
    // A region without its replica.
    let us_only = format!("[secrets.signing_key]\nus-east-1 = \"{}\"\n", support::secret_in("us-east-1"));
    let (key, reason) = refused(&multi_with_secret(&us_only));
    assert_eq!(key, "secrets.signing_key.eu-west-1");
    assert!(reason.contains("replicate the secret"), "{reason}");
    // Another region's ARN under a region.
    let swapped = format!(
        "[secrets.signing_key]\nus-east-1 = \"{}\"\neu-west-1 = \"{}\"\n",
        support::secret_in("us-east-1"),
        support::secret_in("us-east-1")
    );
    let (key, reason) = refused(&multi_with_secret(&swapped));
    assert_eq!(key, "secrets.signing_key.eu-west-1");
    assert!(reason.contains("must be in eu-west-1"), "{reason}");
    // A region the service is not in.
    let extra = format!(
        "[secrets.signing_key]\nus-east-1 = \"{}\"\neu-west-1 = \"{}\"\nap-south-1 = \"{}\"\n",
        support::secret_in("us-east-1"),
        support::secret_in("eu-west-1"),
        support::secret_in("ap-south-1")
    );
    let (key, reason) = refused(&multi_with_secret(&extra));
    assert_eq!(key, "secrets.signing_key.ap-south-1");
    assert!(reason.contains("not in service.regions"), "{reason}");
    // Not a secret.
    let kms = format!(
        "[secrets.signing_key]\nus-east-1 = \"{}\"\neu-west-1 = \"arn:aws:kms:eu-west-1:1:key/x\"\n",
        support::secret_in("us-east-1")
    );
    let (key, reason) = refused(&multi_with_secret(&kms));
    assert_eq!(key, "secrets.signing_key.eu-west-1");
    assert!(reason.contains("secretsmanager ARN"), "{reason}");
    // Neither an ARN nor a table.
    let (key, reason) = refused(&multi_with_secret("[secrets]\nsigning_key = 42\n"));
    assert_eq!(key, "secrets.signing_key");
    assert!(reason.contains("an ARN, or a table of region = ARN"), "{reason}");
    let (key, _) = refused(&multi_with_secret("[secrets.signing_key]\n"));
    assert_eq!(key, "secrets.signing_key.us-east-1");
}

#[test]
fn a_single_region_service_may_name_its_secret_either_way() {
    let arn = "arn:aws:secretsmanager:us-east-1:1:secret:fingerprint-AbCdEf";
    for form in [
        format!("[secrets]\nfingerprint = \"{arn}\"\n"),
        format!("[secrets.fingerprint]\nus-east-1 = \"{arn}\"\n"),
    ] {
        let config = DeployConfig::from_toml(&format!("{BASE}{form}")).unwrap();
        assert_eq!(config.secrets["fingerprint"].in_region("us-east-1"), Some(arn), "{form}");
        assert_eq!(config.warnings().len(), 1, "only the alarm topic's: {:?}", config.warnings());
    }
    // In another region it works (the function asks the secret's region) but ties every
    // cold start to that region too: allowed, with a warning.
    let remote = format!("{BASE}[secrets]\nfingerprint = \"{}\"\n", arn.replace("us-east-1", "eu-west-1"));
    let warnings = DeployConfig::from_toml(&remote).unwrap().warnings();
    assert!(
        warnings.iter().any(|w| w.starts_with("secrets.fingerprint: the secret is in eu-west-1")
            && w.contains("replicate it to us-east-1")),
        "{warnings:?}"
    );
    // The table form is held to the service's one region.
    let table =
        format!("{BASE}[secrets.fingerprint]\neu-west-1 = \"{}\"\n", arn.replace("us-east-1", "eu-west-1"));
    assert_eq!(refused(&table).0, "secrets.fingerprint.eu-west-1");
}

#[test]
fn the_envelope_key_is_in_each_functions_region_and_one_multi_region_key() {
    let envelope = format!(
        "[kms.envelope_key]\nus-east-1 = \"{}\"\neu-west-1 = \"{}\"\n",
        support::envelope_key_in("us-east-1"),
        support::envelope_key_in("eu-west-1")
    );
    assert!(support::MULTI_CONFIG.contains(&envelope));
    let config = DeployConfig::from_toml(support::MULTI_CONFIG).unwrap();
    let key = config.kms.envelope_key.as_ref().unwrap();
    assert_eq!(key.in_region("eu-west-1"), Some(support::envelope_key_in("eu-west-1").as_str()));
    let with = |lines: &str| support::MULTI_CONFIG.replace(&envelope, lines);
    // One key for both regions.
    let (key, reason) =
        refused(&with(&format!("[kms]\nenvelope_key = \"{}\"\n", support::envelope_key_in("us-east-1"))));
    assert_eq!(key, "kms.envelope_key");
    assert!(reason.contains("multi-region key") && reason.contains("[kms.envelope_key]"), "{reason}");
    // Two unrelated keys: what us-east-1 wraps, eu-west-1 could not unwrap.
    let unrelated = envelope.replace("eu-west-1:111122223333:key/mrk-2", "eu-west-1:111122223333:key/mrk-3");
    let (key, reason) = refused(&with(&unrelated));
    assert_eq!(key, "kms.envelope_key");
    assert!(reason.contains("the same key/mrk-"), "{reason}");
    let single_region_keys = envelope.replace("key/mrk-2", "key/2");
    assert_eq!(refused(&with(&single_region_keys)).0, "kms.envelope_key");
    assert_eq!(refused(&with("[kms.envelope_key]\n")).0, "kms.envelope_key.us-east-1");
    // A single-region service: KMS serves a key in its own region only.
    let remote = format!("{BASE}[kms]\nenvelope_key = \"arn:aws:kms:eu-west-1:1:key/a\"\n");
    let (key, reason) = refused(&remote);
    assert_eq!(key, "kms.envelope_key");
    assert!(reason.contains("must be in us-east-1"), "{reason}");
    DeployConfig::from_toml(&remote.replace("eu-west-1", "us-east-1")).unwrap();
    // An alias: the function's policy would grant the alias, not the key behind it.
    let alias = format!("{BASE}[kms]\nenvelope_key = \"arn:aws:kms:us-east-1:111122223333:alias/orders\"\n");
    let (key, reason) = refused(&alias);
    assert_eq!(key, "kms.envelope_key");
    assert!(reason.contains("grants the alias, not its key") && reason.contains("key/<key id>"), "{reason}");
}

/// [`multi_with_secret`] with `eu-west-1`'s replica named `arn` (us-east-1's unchanged).
fn multi_with_eu_secret(arn: &str) -> String {
    multi_with_secret(&format!(
        "[secrets.signing_key]\nus-east-1 = \"{}\"\neu-west-1 = \"{arn}\"\n",
        support::secret_in("us-east-1")
    ))
}

#[test]
fn a_secret_named_differently_in_another_region_is_refused() {
    // Another secret's name: the standby would read another value after a failover.
    let (key, reason) = refused(&multi_with_eu_secret(
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/other-key-AbCdEf",
    ));
    assert_eq!(key, "secrets.signing_key");
    assert!(
        reason.contains("us-east-1 names secret:orders/signing-key-AbCdEf")
            && reason.contains("eu-west-1 secret:orders/other-key-AbCdEf")
            && reason.contains("a replica keeps its primary's name and suffix"),
        "{reason}"
    );
}

#[test]
fn a_secret_with_another_suffix_in_another_region_is_refused() {
    // The same name with another suffix: a secret deleted and created again, not a replica.
    let (key, reason) = refused(&multi_with_eu_secret(
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/signing-key-XyZ123",
    ));
    assert_eq!(key, "secrets.signing_key");
    assert!(
        reason.contains(
            "us-east-1 names secret:orders/signing-key-AbCdEf and eu-west-1 secret:orders/signing-key-XyZ123"
        ) && reason.contains("another suffix"),
        "{reason}"
    );
}

#[test]
fn a_secret_of_another_account_or_partition_in_another_region_is_refused() {
    let (key, reason) = refused(&multi_with_eu_secret(
        "arn:aws:secretsmanager:eu-west-1:444455556666:secret:orders/signing-key-AbCdEf",
    ));
    assert_eq!(key, "secrets.signing_key");
    assert!(
        reason.contains(
            "us-east-1 names a secret of account 111122223333 and eu-west-1 one of account 444455556666"
        ),
        "{reason}"
    );
    let (key, reason) = refused(&multi_with_eu_secret(
        "arn:aws-cn:secretsmanager:eu-west-1:111122223333:secret:orders/signing-key-AbCdEf",
    ));
    assert_eq!(key, "secrets.signing_key");
    assert!(
        reason.contains("us-east-1 names a secret in partition aws and eu-west-1 one in aws-cn"),
        "{reason}"
    );
}

#[test]
fn a_secret_arn_without_its_full_name_is_refused() {
    // Not a full secret ARN: without its suffix, a short suffix, without `secret:`, no account.
    for malformed in [
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/signing-key",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/signing-key-AbC",
        "arn:aws:secretsmanager:eu-west-1:111122223333:orders/signing-key-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1::secret:orders/signing-key-AbCdEf",
    ] {
        let (key, reason) = refused(&multi_with_eu_secret(malformed));
        assert_eq!(key, "secrets.signing_key.eu-west-1", "{malformed}");
        assert!(reason.contains("secret:<name>-<6 characters>"), "{malformed}: {reason}");
    }
}

/// [`support::MULTI_CONFIG`]'s `[kms.envelope_key]` table.
fn envelope_table() -> String {
    let table = format!(
        "[kms.envelope_key]\nus-east-1 = \"{}\"\neu-west-1 = \"{}\"\n",
        support::envelope_key_in("us-east-1"),
        support::envelope_key_in("eu-west-1")
    );
    assert!(support::MULTI_CONFIG.contains(&table));
    table
}

/// [`support::MULTI_CONFIG`] with the envelope key of us-east-1 `us` and of eu-west-1 `eu`.
fn multi_with_envelope_keys(us: &str, eu: &str) -> String {
    support::MULTI_CONFIG.replace(
        &envelope_table(),
        &format!("[kms.envelope_key]\nus-east-1 = \"{us}\"\neu-west-1 = \"{eu}\"\n"),
    )
}

#[test]
fn an_envelope_key_with_another_id_in_another_region_is_refused() {
    // What us-east-1 wraps, eu-west-1 could not unwrap.
    let (key, reason) = refused(&multi_with_envelope_keys(
        &support::envelope_key_in("us-east-1"),
        "arn:aws:kms:eu-west-1:111122223333:key/mrk-3",
    ));
    assert_eq!(key, "kms.envelope_key");
    assert!(reason.contains("us-east-1 names key/mrk-2 and eu-west-1 key/mrk-3"), "{reason}");
}

#[test]
fn an_envelope_key_of_another_account_in_another_region_is_refused() {
    let (key, reason) = refused(&multi_with_envelope_keys(
        &support::envelope_key_in("us-east-1"),
        "arn:aws:kms:eu-west-1:444455556666:key/mrk-2",
    ));
    assert_eq!(key, "kms.envelope_key");
    assert!(
        reason.contains(
            "us-east-1 names a key of account 111122223333 and eu-west-1 one of account 444455556666"
        ),
        "{reason}"
    );
}

#[test]
fn a_single_region_envelope_key_listed_for_two_regions_is_refused() {
    // The same single-region key id under both regions: it exists in one of them only.
    let (key, reason) = refused(&multi_with_envelope_keys(
        "arn:aws:kms:us-east-1:111122223333:key/0b7c2a9e-5f0e-4a53-9d8e-3b1f2c4d5e6f",
        "arn:aws:kms:eu-west-1:111122223333:key/0b7c2a9e-5f0e-4a53-9d8e-3b1f2c4d5e6f",
    ));
    assert_eq!(key, "kms.envelope_key");
    assert!(
        reason.contains(
            "us-east-1 and eu-west-1 both name key/0b7c2a9e-5f0e-4a53-9d8e-3b1f2c4d5e6f, a single-region key"
        ),
        "{reason}"
    );
}

#[test]
fn an_envelope_key_arn_that_names_neither_a_key_nor_an_alias_is_refused() {
    let (key, reason) = refused(&multi_with_envelope_keys(
        &support::envelope_key_in("us-east-1"),
        "arn:aws:kms:eu-west-1:111122223333:mrk-2",
    ));
    assert_eq!(key, "kms.envelope_key.eu-west-1");
    assert!(reason.contains("key/<key id> or ...:alias/<alias name>"), "{reason}");
}

/// Each region's alias may point at any key of its region, and the function's policy would
/// grant the alias, not the key: aliases are refused whatever their names.
fn refused_alias(us: &str, eu: &str) -> (String, String) {
    let (key, reason) = refused(&multi_with_envelope_keys(us, eu));
    assert!(
        reason.contains("an IAM policy that names an alias ARN grants the alias, not its key")
            && reason.contains("key/mrk-"),
        "{reason}"
    );
    (key, reason)
}

#[test]
fn envelope_key_aliases_with_different_names_are_refused() {
    let (key, _) = refused_alias(
        "arn:aws:kms:us-east-1:111122223333:alias/orders-envelope",
        "arn:aws:kms:eu-west-1:111122223333:alias/orders-other",
    );
    assert_eq!(key, "kms.envelope_key.us-east-1");
}

#[test]
fn envelope_key_aliases_with_the_same_name_are_refused_too() {
    let (key, _) = refused_alias(
        "arn:aws:kms:us-east-1:111122223333:alias/orders-envelope",
        "arn:aws:kms:eu-west-1:111122223333:alias/orders-envelope",
    );
    assert_eq!(key, "kms.envelope_key.us-east-1");
    let (key, _) = refused_alias(
        &support::envelope_key_in("us-east-1"),
        "arn:aws:kms:eu-west-1:111122223333:alias/orders-envelope",
    );
    assert_eq!(key, "kms.envelope_key.eu-west-1");
}

#[test]
fn settings_that_differ_per_region_by_nature_are_not_held_to_one_arn() {
    // Each global-table replica, log group, queue and environment is encrypted in its own
    // region with that region's data key: nothing one region's key encrypts is decrypted
    // in another, so the keys may be unrelated (so may certificates and topics).
    let config = support::MULTI_CONFIG.replace(
        "eu-west-1 = \"arn:aws:kms:eu-west-1:111122223333:key/mrk-1\"",
        "eu-west-1 = \"arn:aws:kms:eu-west-1:111122223333:key/0b7c2a9e-5f0e-4a53-9d8e-3b1f2c4d5e6f\"",
    );
    assert_ne!(config, support::MULTI_CONFIG);
    DeployConfig::from_toml(&config).unwrap();
}

#[test]
fn the_payments_multi_region_file_names_replicas_and_warns_of_nothing() {
    let config =
        DeployConfig::from_toml(include_str!("../../examples/payments/lift.multi-region.toml")).unwrap();
    assert_eq!(config.warnings(), Vec::<String>::new());
    let secret = &config.secrets["fingerprint_key"];
    assert_eq!(
        secret.in_region("eu-west-1"),
        Some("arn:aws:secretsmanager:eu-west-1:111122223333:secret:payments/fingerprint-key-AbCdEf")
    );
}

mod replicas {
    use super::*;
    use proptest::prelude::*;

    fn secret(region: &str, account: &str, name: &str) -> String {
        format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}")
    }

    proptest! {
        /// Two per-region secret ARNs are accepted exactly when they are one secret's
        /// replicas: the same account, name and suffix.
        #[test]
        fn secrets_are_accepted_only_as_replicas_of_one(
            us_name in "[a-z][a-z0-9/_.-]{0,12}-[A-Za-z0-9]{6}",
            eu_name in "[a-z][a-z0-9/_.-]{0,12}-[A-Za-z0-9]{6}",
            same_name in any::<bool>(),
            eu_account in prop_oneof![Just("111122223333"), Just("444455556666")],
        ) {
            let eu_name = if same_name { us_name.clone() } else { eu_name };
            let text = multi_with_secret(&format!(
                "[secrets.signing_key]\nus-east-1 = \"{}\"\neu-west-1 = \"{}\"\n",
                secret("us-east-1", "111122223333", &us_name),
                secret("eu-west-1", eu_account, &eu_name),
            ));
            let replicas = us_name == eu_name && eu_account == "111122223333";
            match DeployConfig::from_toml(&text) {
                Ok(_) => prop_assert!(replicas, "accepted {us_name} / {eu_name} in {eu_account}"),
                Err(Error::Config { key, reason }) => {
                    prop_assert!(!replicas, "refused replicas: {reason}");
                    prop_assert_eq!(key, "secrets.signing_key");
                    prop_assert!(reason.contains("us-east-1") && reason.contains("eu-west-1"), "{}", reason);
                }
                Err(other) => prop_assert!(false, "{other}"),
            }
        }

        /// Two per-region key ids are accepted exactly when they are the same multi-region
        /// key's (`mrk-`); a single-region key id is refused even when both regions agree.
        #[test]
        fn keys_are_accepted_only_as_replicas_of_one_multi_region_key(
            us in "(mrk-)?[0-9a-f]{1,32}",
            eu in "(mrk-)?[0-9a-f]{1,32}",
            same in any::<bool>(),
        ) {
            let eu = if same { us.clone() } else { eu };
            let replicas = us == eu && us.starts_with("mrk-");
            match DeployConfig::from_toml(&multi_with_envelope_keys(
                &format!("arn:aws:kms:us-east-1:111122223333:key/{us}"),
                &format!("arn:aws:kms:eu-west-1:111122223333:key/{eu}"),
            )) {
                Ok(_) => prop_assert!(replicas, "accepted {us} / {eu}"),
                Err(Error::Config { key, reason }) => {
                    prop_assert!(!replicas, "refused replicas: {reason}");
                    prop_assert_eq!(key, "kms.envelope_key");
                    prop_assert!(reason.contains("us-east-1") && reason.contains("eu-west-1"), "{}", reason);
                }
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }
}

#[test]
fn wildcards_in_arns_are_refused_as_the_policy_would_grant_everything_they_match() {
    // Each ARN becomes a policy resource (or names one resource): `*` and `?` there would
    // grant every key, queue or secret they match, not the one meant.
    let kms = "arn:aws:kms:us-east-1:111122223333";
    let sqs = "arn:aws:sqs:us-east-1:111122223333";
    let secret = "arn:aws:secretsmanager:us-east-1:111122223333:secret";
    let cases = [
        (
            "[kms]\nenvelope_key = \"ARN\"\n",
            "kms.envelope_key",
            format!("{kms}:key/*"),
            format!("{kms}:key/1234abcd"),
        ),
        (
            "[kms]\nenvelope_key = \"ARN\"\n",
            "kms.envelope_key",
            format!("{kms}:key/mrk-?"),
            format!("{kms}:key/mrk-1"),
        ),
        (
            "[kms.data_keys]\nus-east-1 = \"ARN\"\n",
            "kms.data_keys.us-east-1",
            format!("{kms}:key/*"),
            format!("{kms}:key/1234abcd"),
        ),
        (
            "[events]\nsqs_queues = [\"ARN\"]\n",
            "events.sqs_queues[0]",
            format!("{sqs}:*"),
            format!("{sqs}:jobs"),
        ),
        (
            "[events]\nsqs_queues = [\"ARN\"]\n",
            "events.sqs_queues[0]",
            format!("{sqs}:orders-*"),
            format!("{sqs}:orders-jobs"),
        ),
        (
            "[secrets]\nsigning_key = \"ARN\"\n",
            "secrets.signing_key",
            format!("{secret}:orders/*-AbCdEf"),
            format!("{secret}:orders/signing-AbCdEf"),
        ),
        (
            "[secrets]\nsigning_key = \"ARN\"\n",
            "secrets.signing_key",
            format!("{secret}:orders/signing-??????"),
            format!("{secret}:orders/signing-AbCdEf"),
        ),
    ];
    for (lines, expected_key, wildcard, exact) in cases {
        let (key, reason) = refused(&format!("{BASE}{}", lines.replace("ARN", &wildcard)));
        assert_eq!(key, expected_key, "{wildcard}");
        assert!(reason.contains("wildcard") && reason.contains("full ARN"), "{wildcard}: {reason}");
        // The same setting naming one resource is accepted: the wildcard is what is refused.
        DeployConfig::from_toml(&format!("{BASE}{}", lines.replace("ARN", &exact)))
            .unwrap_or_else(|e| panic!("{exact}: {e}"));
    }
    // A region's replica of a secret, in a service of several regions.
    let eu = support::secret_in("eu-west-1");
    let (key, reason) = refused(&support::MULTI_CONFIG.replace(&eu, &eu.replace("signing-key", "signing-*")));
    assert_eq!(key, "secrets.signing_key.eu-west-1");
    assert!(reason.contains("wildcard"), "{reason}");
}
