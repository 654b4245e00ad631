//! Synthesis of a service that uses every feature: routes, authorizer scopes, least
//! privilege, event sources, determinism, the extra-resources hook; cfn-lint on the result.

mod support;

use serde_json::{json, Value};

use lift_deploy::{DeployConfig, Error, Synth};

fn template() -> Value {
    Synth::new(support::manifest(), support::config()).cloudformation("eu-west-1").unwrap()
}

fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"].as_object().unwrap().iter().filter(|(_, r)| r["Type"] == kind).collect()
}

#[test]
fn the_api_has_exactly_the_apps_routes_with_their_scopes() {
    let t = template();
    let mut keys: Vec<(String, Value, Value)> = of_type(&t, "AWS::ApiGatewayV2::Route")
        .into_iter()
        .map(|(_, r)| {
            let p = &r["Properties"];
            (
                p["RouteKey"].as_str().unwrap().to_owned(),
                p["AuthorizationType"].clone(),
                p["AuthorizationScopes"].clone(),
            )
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        keys,
        [
            ("GET /admin/files/{rest+}".into(), json!("JWT"), Value::Null),
            ("GET /health/ready".into(), json!("NONE"), Value::Null),
            ("GET /orders".into(), json!("JWT"), json!(["orders:read"])),
            ("GET /orders/{id}".into(), json!("JWT"), json!(["orders:read"])),
            ("POST /orders".into(), json!("JWT"), json!(["orders:write"])),
        ],
        "no catch-all, the public route open, all-of scopes left to the function"
    );
    let config =
        DeployConfig::from_toml(&support::CONFIG.replace("[api.jwt]", "[api]\ncatch_all = true\n[api.jwt]"))
            .unwrap();
    let with_default = Synth::new(support::manifest(), config).cloudformation("eu-west-1").unwrap();
    assert!(of_type(&with_default, "AWS::ApiGatewayV2::Route")
        .iter()
        .any(|(_, r)| r["Properties"]["RouteKey"] == "$default"));
}

#[test]
fn iam_is_least_privilege_and_every_wildcard_has_a_reason() {
    let t = template();
    let role = &t["Resources"]["FunctionRole"];
    let statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].as_array().unwrap();
    let reasons = role["Metadata"]["LiftWildcards"].as_object().unwrap();
    for s in statements {
        let sid = s["Sid"].as_str().unwrap();
        let resources = s["Resource"].as_array().unwrap();
        assert!(!resources.is_empty(), "{sid}");
        let wildcard = resources.iter().any(|r| r == "*");
        assert_eq!(
            wildcard,
            reasons.contains_key(sid),
            "{sid}: a wildcard exactly where a reason is written"
        );
        for action in s["Action"].as_array().unwrap() {
            assert!(!action.as_str().unwrap().contains('*'), "{sid}: wildcard action {action}");
        }
    }
    assert_eq!(reasons.len(), 2, "X-Ray and ListStreams only: {reasons:?}");
    let by_sid =
        |sid: &str| statements.iter().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("no {sid}"));
    // The table's actions on the table's own ARN; queries on the index by its own ARN.
    let orders = by_sid("TableOrders");
    assert_eq!(
        orders["Resource"],
        json!([{"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/orders-orders"}])
    );
    assert!(!orders["Action"].as_array().unwrap().iter().any(|a| a == "dynamodb:Scan"));
    assert_eq!(by_sid("IndexOrders")["Resource"][0]["Fn::Sub"], "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/orders-orders/index/by_customer");
    assert_eq!(by_sid("StreamOrders")["Resource"], json!([{"Fn::GetAtt": ["OrdersTable", "StreamArn"]}]));
    assert_eq!(by_sid("Queues")["Resource"], json!(["arn:aws:sqs:eu-west-1:111122223333:orders-jobs"]));
    // The idempotency table gets what the layer calls, and no query.
    assert_eq!(
        by_sid("TableLiftIdempotency")["Action"],
        json!(["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"])
    );
    // No secrets or envelope key configured: no statement for them.
    assert!(statements.iter().all(|s| s["Sid"] != "Secrets" && s["Sid"] != "EnvelopeKey"));
}

#[test]
fn tables_functions_and_sources_are_configured_as_the_issue_asks() {
    let t = template();
    let orders = &t["Resources"]["OrdersTable"]["Properties"];
    assert_eq!(orders["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(orders["SSESpecification"]["SSEType"], "KMS");
    assert_eq!(orders["SSESpecification"]["KMSMasterKeyId"], json!({"Fn::GetAtt": ["DataKey", "Arn"]}));
    assert_eq!(orders["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(orders["DeletionProtectionEnabled"], true);
    assert_eq!(orders["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
    assert!(orders.get("TimeToLiveSpecification").is_none(), "no TTL where the definition has none");
    let idem = &t["Resources"]["LiftIdempotencyTable"]["Properties"];
    assert_eq!(idem["TimeToLiveSpecification"], json!({"AttributeName": "expires_at", "Enabled": true}));
    assert!(idem.get("StreamSpecification").is_none(), "no stream where the definition has none");
    let f = &t["Resources"]["Function"]["Properties"];
    assert_eq!(f["Architectures"], json!(["arm64"]));
    assert_eq!(f["TracingConfig"]["Mode"], "Active");
    assert_eq!(f["ReservedConcurrentExecutions"], 100);
    assert_eq!(t["Resources"]["LiveAlias"]["Properties"]["Name"], "live");
    assert_eq!(t["Resources"]["LogGroup"]["Properties"]["RetentionInDays"], 365);
    // Async sources fail to the dead-letter queue; the integration invokes the alias.
    assert_eq!(
        t["Resources"]["AsyncFailures"]["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
        json!({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
    );
    assert_eq!(t["Resources"]["Integration"]["Properties"]["IntegrationUri"], json!({"Ref": "LiveAlias"}));
    assert_eq!(of_type(&t, "AWS::Events::Rule").len(), 2, "the schedule and the pattern");
    assert_eq!(of_type(&t, "AWS::Lambda::EventSourceMapping").len(), 2, "the queue and the stream");
    assert_eq!(
        t["Resources"]["ScheduleNightlySettlement"]["Properties"]["ScheduleExpression"],
        "cron(0 2 * * ? *)"
    );
}

#[test]
fn output_is_deterministic_and_new_code_publishes_a_new_version() {
    let a = Synth::new(support::manifest(), support::config()).files().unwrap();
    let b = Synth::new(support::manifest(), support::config()).files().unwrap();
    assert_eq!(a, b);
    let version = |t: &Value| of_type(t, "AWS::Lambda::Version")[0].0.clone();
    let next = DeployConfig::from_toml(&support::CONFIG.replace("1.0.0", "1.0.1")).unwrap();
    let t2 = Synth::new(support::manifest(), next).cloudformation("eu-west-1").unwrap();
    assert_ne!(version(&template()), version(&t2));
}

#[test]
fn extra_resources_are_added_and_may_not_replace_synthesized_ones() {
    let alarm = json!({"Type": "AWS::CloudWatch::Alarm", "Properties": {}});
    let extra: serde_json::Map<String, Value> =
        [("SloBurnAlarm".to_owned(), alarm.clone())].into_iter().collect();
    let t = Synth::new(support::manifest(), support::config())
        .extra_cloudformation(extra)
        .cloudformation("eu-west-1")
        .unwrap();
    assert_eq!(t["Resources"]["SloBurnAlarm"], alarm);
    let clash: serde_json::Map<String, Value> = [("Function".to_owned(), alarm)].into_iter().collect();
    let err = Synth::new(support::manifest(), support::config())
        .extra_cloudformation(clash)
        .cloudformation("eu-west-1");
    assert!(matches!(err, Err(Error::Extra(name)) if name == "Function"));
}

#[test]
fn cfn_lint_accepts_every_feature() {
    let dir = std::env::temp_dir().join(format!("lift-deploy-synth-{}", std::process::id()));
    let written = Synth::new(support::manifest(), support::config()).write(&dir).unwrap();
    let templates: Vec<_> = written.iter().filter(|p| p.to_string_lossy().contains(".cfn.")).collect();
    assert_eq!(templates.len(), 2);
    let out = std::process::Command::new("cfn-lint")
        .args(&templates)
        .output()
        .unwrap_or_else(|e| panic!("cfn-lint is required ({e}); install it with `pip install cfn-lint`"));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.trim().is_empty(), "cfn-lint found:\n{report}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_slo_alarms_merge_with_their_parameters_and_conditions_and_cfn_lint_accepts_the_stack() {
    let file = lift_monitoring::slo::SloFile::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../monitoring/slo/payments.toml"
    ))
    .unwrap();
    let fragment = lift_monitoring::alarms::fragment(&file);
    // The alarms refer to the fragment's own parameters and conditions: all three come in.
    let synth = Synth::new(support::manifest(), support::config())
        .extra_cloudformation_fragment(&fragment)
        .extra_cloudformation_fragment(&fragment);
    let t = synth.cloudformation("eu-west-1").unwrap();
    for section in ["Parameters", "Conditions", "Resources"] {
        let items = fragment[section].as_object().unwrap();
        assert!(!items.is_empty(), "{section}");
        for (name, item) in items {
            if name == lift_monitoring::alarms::FUNCTION_NAME_PARAMETER {
                // Defaulted to the stack's own function: the outage alarm counts its invocations.
                let mut defaulted = item.clone();
                defaulted["Default"] = t["Resources"]["Function"]["Properties"]["FunctionName"].clone();
                assert!(defaulted["Default"].is_string(), "{defaulted}");
                assert_eq!(t[section][name], defaulted, "{section}.{name}");
            } else {
                assert_eq!(t[section][name], *item, "{section}.{name}");
            }
        }
    }
    assert!(t["Parameters"].get("LiveVersion").is_some(), "the synthesized parameter is kept");
    let path = std::env::temp_dir().join(format!("lift-deploy-slo-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(&t).unwrap()).unwrap();
    let out = std::process::Command::new("cfn-lint")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cfn-lint is required ({e}); install it with `pip install cfn-lint`"));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.trim().is_empty(), "cfn-lint found:\n{report}");
    let _ = std::fs::remove_file(path);
    // A fragment may not redefine a synthesized parameter, give a parameter two meanings,
    // or carry a section that would be dropped.
    let refused = |extra: Value| match Synth::new(support::manifest(), support::config())
        .extra_cloudformation_fragment(&fragment)
        .extra_cloudformation_fragment(&extra)
        .cloudformation("eu-west-1")
    {
        Err(Error::Extra(name)) => name,
        other => panic!("expected Error::Extra, got {other:?}"),
    };
    assert_eq!(refused(json!({"Parameters": {"LiveVersion": {"Type": "String"}}})), "LiveVersion");
    assert_eq!(
        refused(json!({"Parameters": {"SloPageTopicArn": {"Type": "String"}}})),
        "Parameters.SloPageTopicArn"
    );
    assert_eq!(refused(json!({"Outputs": {}})), "Outputs");
}

fn version_of(t: &Value) -> String {
    let versions = of_type(t, "AWS::Lambda::Version");
    assert_eq!(versions.len(), 1);
    // Published for the rollout to shift to, and named in the output it reads.
    assert_eq!(t["Outputs"]["CandidateVersion"]["Value"]["Fn::GetAtt"], json!([versions[0].0, "Version"]));
    versions[0].0.clone()
}

fn cfn_with(config: &str) -> Value {
    Synth::new(support::manifest(), DeployConfig::from_toml(config).unwrap())
        .cloudformation("eu-west-1")
        .unwrap()
}

#[test]
fn every_configuration_change_publishes_a_new_version() {
    // Same configuration, same version: a redeploy publishes nothing.
    assert_eq!(version_of(&template()), version_of(&cfn_with(support::CONFIG)));
    // Memory, an environment variable: the same code with new settings is a new version,
    // as Terraform's `publish` makes one, so a rollout can move `live` to the new settings.
    let memory = support::CONFIG.replace("orders-1.0.0.zip\"", "orders-1.0.0.zip\"\nmemory_mb = 1024");
    let env = support::CONFIG
        .replace("orders-1.0.0.zip\"", "orders-1.0.0.zip\"\nenvironment = { MODE = \"strict\" }");
    let (base, with_memory, with_env) =
        (version_of(&template()), version_of(&cfn_with(&memory)), version_of(&cfn_with(&env)));
    assert_ne!(base, with_memory, "memory_mb changed");
    assert_ne!(base, with_env, "an environment variable changed");
    assert_ne!(with_memory, with_env);
}

/// The `live` alias of both formats, synthesized from `config`.
fn live_alias(config: &str) -> (Value, Value) {
    let synth = Synth::new(support::manifest(), DeployConfig::from_toml(config).unwrap());
    let cfn = synth.cloudformation("eu-west-1").unwrap();
    let tf = synth.terraform("eu-west-1").unwrap();
    (cfn["Resources"]["LiveAlias"]["Properties"].clone(), tf["resource"]["aws_lambda_alias"]["live"].clone())
}

#[test]
fn a_deploy_publishes_a_version_and_leaves_live_to_the_rollout() {
    // New code, new memory: each publishes another version, and neither touches `live`.
    // CloudFormation updates a resource only when its properties change, and the alias's
    // never do; Terraform is told to leave its version and split alone.
    let code = support::CONFIG.replace("1.0.0", "1.0.1");
    let memory = support::CONFIG.replace("orders-1.0.0.zip\"", "orders-1.0.0.zip\"\nmemory_mb = 1024");
    let (cfn, tf) = live_alias(support::CONFIG);
    for changed in [&code, &memory] {
        assert_ne!(version_of(&template()), version_of(&cfn_with(changed)), "a new version is published");
        let (cfn_after, tf_after) = live_alias(changed);
        assert_eq!(cfn, cfn_after, "the CloudFormation alias is unchanged");
        assert_eq!(tf, tf_after, "the Terraform alias is unchanged");
    }
    // CloudFormation: the version `live` is created on comes from a parameter the rollout
    // owns (a new function's first version is 1), not from the version just published.
    assert_eq!(cfn["FunctionVersion"], json!({"Ref": "LiveVersion"}));
    // Pinned whole: any change to the alias's properties makes CloudFormation update it,
    // setting `live` back to LiveVersion (on a stack rolled forward since, usually the
    // first version, kept by UsePreviousValue) and undoing every rollout. A change here
    // needs a migration note in deploy/README.md.
    assert_eq!(
        cfn,
        json!({
            "Description": "moved only by lift-deploy rollout, behind its gates; a stack or Terraform update publishes a version and leaves this alias as it is",
            "FunctionName": {"Ref": "Function"},
            "FunctionVersion": {"Ref": "LiveVersion"},
            "Name": "live"
        })
    );
    let t = template();
    assert_eq!(t["Parameters"]["LiveVersion"]["Default"], "1");
    let version = version_of(&t);
    assert_eq!(t["Resources"]["LiveAlias"]["DependsOn"], json!([version]), "created once version 1 exists");
    assert!(!t["Resources"]["LiveAlias"]["Properties"].to_string().contains(&version));
    // Terraform: the first version, then the rollout's.
    assert_eq!(tf["function_version"], "${aws_lambda_function.function.version}");
    let mut ignored: Vec<&str> =
        tf["lifecycle"]["ignore_changes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    ignored.sort_unstable();
    assert_eq!(ignored, ["function_version", "routing_config"]);
    let tf_full = Synth::new(support::manifest(), support::config()).terraform("eu-west-1").unwrap();
    assert_eq!(tf_full["output"]["candidate_version"]["value"], "${aws_lambda_function.function.version}");
}

#[test]
fn basic_alarms_have_the_names_terraform_gives_them() {
    let synth = Synth::new(support::manifest(), support::config());
    let mut cfn: Vec<String> = of_type(&synth.cloudformation("eu-west-1").unwrap(), "AWS::CloudWatch::Alarm")
        .iter()
        .map(|(_, a)| a["Properties"]["AlarmName"].as_str().expect("an AlarmName").to_owned())
        .collect();
    cfn.sort();
    let tf = synth.terraform("eu-west-1").unwrap();
    let mut names: Vec<String> = tf["resource"]["aws_cloudwatch_metric_alarm"]
        .as_object()
        .unwrap()
        .values()
        .map(|a| a["alarm_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(cfn, names);
    // The READMEs' rollout gate finds them by the service's prefix.
    assert_eq!(cfn, ["orders-eu-west-1-api_5xx", "orders-eu-west-1-errors", "orders-eu-west-1-throttles"]);
}

#[test]
fn failing_requests_page_and_throttles_open_a_ticket_in_both_formats() {
    // The alert router reads the severity from the description's label block; without one
    // it takes an alarm for a ticket, and failing requests would reach no one on call.
    let synth = Synth::new(support::manifest(), support::config());
    let cfn = synth.cloudformation("eu-west-1").unwrap();
    let tf = synth.terraform("eu-west-1").unwrap();
    for (cfn_id, tf_name, severity) in [
        ("ErrorsAlarm", "errors", "page"),
        ("Api5xxAlarm", "api_5xx", "page"),
        ("ThrottlesAlarm", "throttles", "ticket"),
    ] {
        let from_cfn = cfn["Resources"][cfn_id]["Properties"]["AlarmDescription"].as_str().unwrap();
        let from_tf =
            tf["resource"]["aws_cloudwatch_metric_alarm"][tf_name]["alarm_description"].as_str().unwrap();
        assert_eq!(from_cfn, from_tf);
        assert!(from_cfn.ends_with(&format!(" [severity={severity}]")), "{from_cfn}");
    }
}

#[test]
fn two_sources_of_one_resource_name_are_refused_naming_both() {
    use lift_deploy::Manifest;
    async fn h(_: lift::Request) -> lift::Response {
        lift::Response::default()
    }
    // `RouteGETOrdersId` and `get_orders_id` from both routes: one would be dropped.
    let app = lift::App::new().get("/orders/:id", h).get("/orders-id", h);
    let synth = Synth::new(Manifest::from_app(&app), support::config_without_events());
    for err in [synth.cloudformation("eu-west-1").unwrap_err(), synth.terraform("eu-west-1").unwrap_err()] {
        match &err {
            Error::SameName { first, second, .. } => {
                let mut both = [first.as_str(), second.as_str()];
                both.sort_unstable();
                assert_eq!(both, ["route GET /orders-id", "route GET /orders/:id"], "{err}");
            }
            other => panic!("expected SameName, got {other:?}"),
        }
    }
    let cfn = synth.cloudformation("eu-west-1").unwrap_err().to_string();
    assert!(cfn.contains("RouteGETOrdersId"), "{cfn}");
}

/// Every `arn:<partition>:<service>:<region>:` region in the strings of `value`.
fn arn_regions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            for (i, _) in s.match_indices("arn:aws:") {
                if let Some(region) = s[i..].split(':').nth(3) {
                    out.push(region.to_owned());
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| arn_regions(v, out)),
        Value::Object(map) => map.values().for_each(|v| arn_regions(v, out)),
        _ => {}
    }
}

#[test]
fn the_secondary_region_has_only_its_own_arns_and_no_event_sources() {
    let synth = Synth::new(support::manifest(), DeployConfig::from_toml(support::MULTI_CONFIG).unwrap());
    let secondary = synth.cloudformation("eu-west-1").unwrap();
    let mut regions = Vec::new();
    arn_regions(&secondary, &mut regions);
    assert!(!regions.is_empty());
    assert!(regions.iter().all(|r| r == "eu-west-1" || r.is_empty()), "{regions:?}");
    let alarm = &secondary["Resources"]["ErrorsAlarm"]["Properties"];
    assert_eq!(alarm["AlarmActions"], json!(["arn:aws:sns:eu-west-1:111122223333:orders-oncall"]));
    // A nightly job runs once, from the primary; messages and events are handled there.
    for kind in ["AWS::Events::Rule", "AWS::Lambda::EventSourceMapping"] {
        assert!(of_type(&secondary, kind).is_empty(), "{kind} in the secondary");
    }
    let tf = synth.terraform("eu-west-1").unwrap();
    let mut regions = Vec::new();
    arn_regions(&tf["resource"], &mut regions);
    assert!(regions.iter().all(|r| r == "eu-west-1" || r.is_empty()), "{regions:?}");
    for kind in ["aws_cloudwatch_event_rule", "aws_lambda_event_source_mapping"] {
        assert!(tf["resource"].get(kind).is_none(), "{kind} in the secondary");
    }
    // The primary has them all: the schedule, the pattern, the queue and the stream.
    let primary = synth.cloudformation("us-east-1").unwrap();
    assert_eq!(of_type(&primary, "AWS::Events::Rule").len(), 2);
    assert_eq!(of_type(&primary, "AWS::Lambda::EventSourceMapping").len(), 2);
    let tf = synth.terraform("us-east-1").unwrap();
    assert_eq!(tf["resource"]["aws_cloudwatch_event_rule"].as_object().unwrap().len(), 2);
    assert_eq!(tf["resource"]["aws_lambda_event_source_mapping"].as_object().unwrap().len(), 2);
}

#[test]
fn terraform_keeps_what_cloudformation_retains() {
    let tf = Synth::new(support::manifest(), support::config()).terraform("eu-west-1").unwrap();
    let r = &tf["resource"];
    for (kind, name) in [
        ("aws_cloudwatch_log_group", "function"),
        ("aws_cloudwatch_log_group", "access"),
        ("aws_kms_key", "data"),
    ] {
        assert_eq!(r[kind][name]["lifecycle"]["prevent_destroy"], true, "{kind}.{name}");
    }
    let cfn = template();
    for kind in ["AWS::Logs::LogGroup", "AWS::KMS::Key", "AWS::DynamoDB::Table"] {
        assert!(of_type(&cfn, kind).iter().all(|(_, r)| r["DeletionPolicy"] == "Retain"), "{kind}");
    }
}

#[test]
fn tables_whose_names_differ_in_punctuation_are_refused_in_every_region() {
    use lift::store::{KeyAttribute, TableDef};
    use lift_deploy::TableAccess;
    let manifest = support::manifest()
        .table(TableDef::new("ledger-entries", KeyAttribute::string("pk")), TableAccess::read())
        .table(TableDef::new("ledger_entries", KeyAttribute::string("pk")), TableAccess::read());
    let synth = Synth::new(manifest, DeployConfig::from_toml(support::MULTI_CONFIG).unwrap());
    // The secondary has no table resources, but its policy would hold `TableLedgerEntries` twice.
    for region in ["us-east-1", "eu-west-1"] {
        for err in [synth.cloudformation(region).unwrap_err(), synth.terraform(region).unwrap_err()] {
            assert!(
                matches!(&err, Error::SameName { first, second, .. }
                    if first == "table ledger-entries" && second == "table ledger_entries"),
                "{region}: {err}"
            );
        }
    }
}

/// The function's variables and its policy's statements, from CloudFormation and from
/// Terraform, in `region`.
fn function_of(synth: &Synth, region: &str) -> Vec<(&'static str, Value, Vec<Value>)> {
    let cfn = synth.cloudformation(region).unwrap();
    let tf = synth.terraform(region).unwrap();
    let tf_policy: Value =
        serde_json::from_str(tf["resource"]["aws_iam_role_policy"]["function"]["policy"].as_str().unwrap())
            .unwrap();
    vec![
        (
            "cloudformation",
            cfn["Resources"]["Function"]["Properties"]["Environment"]["Variables"].clone(),
            cfn["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap()
                .clone(),
        ),
        (
            "terraform",
            tf["resource"]["aws_lambda_function"]["function"]["environment"]["variables"].clone(),
            tf_policy["Statement"].as_array().unwrap().clone(),
        ),
    ]
}

#[test]
fn each_region_reads_its_own_replica_of_the_secret_and_envelope_key() {
    let synth = Synth::new(support::manifest(), DeployConfig::from_toml(support::MULTI_CONFIG).unwrap());
    for region in ["us-east-1", "eu-west-1"] {
        for (format, env, statements) in function_of(&synth, region) {
            let what = format!("{region} {format}");
            assert_eq!(env["LIFT_SECRET_SIGNING_KEY_ARN"], json!(support::secret_in(region)), "{what}");
            assert_eq!(env["LIFT_KMS_KEY_ID"], json!(support::envelope_key_in(region)), "{what}");
            let resource = |sid: &str| {
                statements.iter().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("{what}: no {sid}"))
                    ["Resource"]
                    .clone()
            };
            assert_eq!(resource("Secrets"), json!([support::secret_in(region)]), "{what}");
            assert_eq!(resource("EnvelopeKey"), json!([support::envelope_key_in(region)]), "{what}");
        }
    }
    // A single-region service's one ARN, as before.
    let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/signing-key-AbCdEf";
    let one = support::CONFIG.replace("[api.jwt]", &format!("[secrets]\nsigning_key = \"{arn}\"\n[api.jwt]"));
    let synth = Synth::new(support::manifest(), DeployConfig::from_toml(&one).unwrap());
    for (format, env, statements) in function_of(&synth, "eu-west-1") {
        assert_eq!(env["LIFT_SECRET_SIGNING_KEY_ARN"], arn, "{format}");
        let secrets = statements.iter().find(|s| s["Sid"] == "Secrets").unwrap();
        assert_eq!(secrets["Resource"], json!([arn]), "{format}");
    }
}

/// The ARNs in the strings of `value` (`at` says where) that name a region other than
/// `region`. Region-free ARNs (IAM, Route 53, S3) and the template's own region
/// (`${AWS::Region}`) are `region`'s; a global table's replica (an object whose `Region` or
/// `region_name` is R) is by nature configured from the primary with R's key, so R's ARNs
/// are allowed inside it.
fn foreign_arns(value: &Value, region: &str, replica: Option<&str>, at: &str, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            for (i, _) in s.match_indices("arn:") {
                if s[..i].ends_with(|c: char| c.is_ascii_alphanumeric()) {
                    continue;
                }
                let rest = &s[i + 4..];
                // The partition: `aws`, or a reference such as `${AWS::Partition}`.
                let after_partition = match rest.strip_prefix("${") {
                    Some(r) => r.split_once('}').map_or("", |(_, r)| r),
                    None => {
                        rest.split_once(':').map_or("", |(p, r)| if p.starts_with("aws") { r } else { "" })
                    }
                };
                let Some(after_partition) = after_partition.strip_prefix(':').or(Some(after_partition))
                else {
                    continue;
                };
                let mut fields = after_partition.split(':');
                let (Some(_service), Some(arn_region)) = (fields.next(), fields.next()) else { continue };
                let own = arn_region.is_empty()
                    || arn_region.starts_with("${")
                    || arn_region == region
                    || Some(arn_region) == replica;
                if !own {
                    let end = s[i..].find(['"', ' ', ',']).map_or(s.len(), |e| i + e);
                    out.push(format!("{at}: {}", &s[i..end]));
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                foreign_arns(v, region, replica, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            let replica = ["Region", "region_name"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str))
                .or(replica);
            for (k, v) in map {
                foreign_arns(v, region, replica, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Every region's templates, by name.
fn every_template(synth: &Synth, regions: &[&str]) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for region in regions {
        out.push((format!("{region}.cfn"), (*region).to_owned(), synth.cloudformation(region).unwrap()));
        out.push((format!("{region}.tf"), (*region).to_owned(), synth.terraform(region).unwrap()));
    }
    out
}

#[test]
fn no_region_names_an_arn_of_another_region() {
    // The scan itself: another region's ARN is found, in a policy document held as a
    // string too; the template's own region and region-free ARNs are not.
    let mut found = Vec::new();
    let probe = json!({"a": "arn:aws:secretsmanager:us-east-1:1:secret:s", "b": "{\"Resource\":[\"arn:${data.aws_partition.current.partition}:kms:us-east-1:1:key/k\"]}",
        "ok": ["arn:aws:iam::1:root", {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:x"}, "arn:aws:sns:eu-west-1:1:t"]});
    foreign_arns(&probe, "eu-west-1", None, "probe", &mut found);
    assert_eq!(found.len(), 2, "{found:?}");
    // Every feature in two regions, and the payments example's goldens.
    let synth = Synth::new(support::manifest(), DeployConfig::from_toml(support::MULTI_CONFIG).unwrap());
    let mut templates = every_template(&synth, &["us-east-1", "eu-west-1"]);
    for (name, text) in [
        (
            "payments-us-east-1.cfn.json",
            include_str!("../../examples/payments/tests/fixtures/deploy/multi/payments-us-east-1.cfn.json"),
        ),
        (
            "payments-us-east-1.tf.json",
            include_str!("../../examples/payments/tests/fixtures/deploy/multi/payments-us-east-1.tf.json"),
        ),
        (
            "payments-eu-west-1.cfn.json",
            include_str!("../../examples/payments/tests/fixtures/deploy/multi/payments-eu-west-1.cfn.json"),
        ),
        (
            "payments-eu-west-1.tf.json",
            include_str!("../../examples/payments/tests/fixtures/deploy/multi/payments-eu-west-1.tf.json"),
        ),
    ] {
        let region = name.trim_start_matches("payments-").split('.').next().unwrap().to_owned();
        templates.push((name.to_owned(), region, serde_json::from_str(text).unwrap()));
    }
    let mut found = Vec::new();
    for (name, region, template) in &templates {
        let mut arns = Vec::new();
        arn_regions(template, &mut arns);
        assert!(!arns.is_empty(), "{name}: the scan saw no ARN");
        foreign_arns(template, region, None, name, &mut found);
    }
    assert!(found.is_empty(), "ARNs of another region:\n{}", found.join("\n"));
}
