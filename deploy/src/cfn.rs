//! CloudFormation: one template per region.

use serde_json::{json, Map, Value};

use crate::config::DeployConfig;
use crate::manifest::{EventSourceSpec, Manifest, TableSpec};
use crate::plan::{self, camel, Res};
use crate::Error;

/// Why a table without backups is right, written into the template.
pub(crate) const NO_BACKUPS: &str =
    "kept out of backups on purpose: a restored copy would bring erased subjects' keys back and undo crypto-shredding";

/// Why the function runs outside a VPC.
pub(crate) const NO_VPC: &str = "the function calls only AWS APIs over TLS with IAM; a VPC would add NAT cost and cold-start latency without narrowing access";
/// Why a route without a requirement has no authorizer.
pub(crate) const PUBLIC_ROUTE: &str =
    "the App registers this route without a role or scope requirement: it is public by design";
/// Why routes have no authorizer when none is configured.
pub(crate) const FUNCTION_AUTH: &str = "the function authenticates every request itself (lift's JWT layer); no [api.jwt] authorizer was asked for";
/// The API's access log line.
pub(crate) const ACCESS_LOG_FORMAT: &str = "{\"requestId\":\"$context.requestId\",\"routeKey\":\"$context.routeKey\",\"status\":\"$context.status\",\"latency\":\"$context.responseLatency\",\"integrationError\":\"$context.integrationErrorMessage\"}";

/// The function's environment in `region`: the table prefix, the token issuer, that
/// region's secrets and keys, and what lift::disaster reads. CloudFormation and Terraform
/// both take it from here.
pub(crate) fn environment_vars(config: &DeployConfig, region: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = config.function.environment.clone().into_iter().collect();
    env.push(("LIFT_TABLE_PREFIX".into(), config.table_prefix()));
    // The authorizer checks only routes with a requirement, and not roles or all-of scopes:
    // the function verifies every token itself, so it must trust the same issuer.
    if let Some(jwt) = &config.api.jwt {
        env.push(("LIFT_JWT_ISSUER".into(), jwt.issuer.clone()));
        env.push(("LIFT_JWT_AUDIENCE".into(), jwt.audience.join(",")));
        env.push(("LIFT_JWKS_URL".into(), jwt.jwks_url()));
    }
    // Each region's own replica: a function that fetched another region's would stop
    // cold-starting when that region goes dark.
    for (name, arn) in plan::secrets_in(config, region) {
        env.push((format!("LIFT_SECRET_{}_ARN", name.to_ascii_uppercase()), arn.to_owned()));
    }
    if let Some(key) = plan::envelope_key_in(config, region) {
        env.push(("LIFT_KMS_KEY_ID".into(), key.to_owned()));
    }
    // lift::disaster: the regions, primary first, and each region's readiness URL.
    if let Some(domain) = &config.domain {
        env.push(("LIFT_REGIONS".into(), config.service.regions.join(",")));
        for r in &config.service.regions {
            let suffix = r.to_ascii_uppercase().replace('-', "_");
            env.push((
                format!("LIFT_HEALTH_URL_{suffix}"),
                format!("https://{}/health/ready", domain.regional_name(r)),
            ));
        }
    }
    env.sort();
    env
}

/// The parameter `live`'s version comes from (see [`template`]).
pub(crate) const LIVE_VERSION: &str = "LiveVersion";
/// Written on the alias, so whoever reads the stack knows what moves it.
pub(crate) const LIVE_ALIAS_DESCRIPTION: &str =
    "moved only by lift-deploy rollout, behind its gates; a stack or Terraform update publishes a version and leaves this alias as it is";

fn sub(s: &str) -> Value {
    json!({ "Fn::Sub": s })
}

fn get_att(resource: &str, attr: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attr] })
}

fn reference(resource: &str) -> Value {
    json!({ "Ref": resource })
}

/// A template's resources, each logical id given once (see [`plan::Names`]).
#[derive(Default)]
struct Resources {
    map: Map<String, Value>,
    names: plan::Names,
}

impl Resources {
    /// A resource lift-deploy always makes, under a fixed id.
    fn insert(&mut self, id: String, resource: Value) {
        let from = format!("the synthesized {id}");
        self.insert_from(id, &from, resource);
    }

    /// A resource named after a part of the App or the file (`from`, e.g. `route GET /orders/:id`).
    fn insert_from(&mut self, id: String, from: &str, resource: Value) {
        if self.names.claim(&id, from) {
            self.map.insert(id, resource);
        }
    }
}

fn skip(checks: &[(&str, &str)]) -> Value {
    json!({ "checkov": { "skip": checks.iter().map(|(id, why)| json!({"id": id, "comment": why})).collect::<Vec<_>>() } })
}

/// What [`crate::Synth`] adds to every template beyond what it synthesizes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    pub(crate) resources: Map<String, Value>,
    parameters: Map<String, Value>,
    conditions: Map<String, Value>,
    /// What a fragment could not give (a section other than these three, a parameter or
    /// condition defined twice differently): refused when a template is made.
    refused: Vec<String>,
}

impl Extra {
    /// Takes a fragment's `Parameters`, `Conditions` and `Resources`.
    pub(crate) fn add_fragment(&mut self, fragment: &Value) {
        let Some(sections) = fragment.as_object() else {
            self.refused.push("a fragment that is not a JSON object".into());
            return;
        };
        for (section, body) in sections {
            let Some(items) = body.as_object() else {
                self.refused.push(section.clone());
                continue;
            };
            let into = match section.as_str() {
                "Parameters" => &mut self.parameters,
                "Conditions" => &mut self.conditions,
                "Resources" => &mut self.resources,
                _ => {
                    self.refused.push(section.clone());
                    continue;
                }
            };
            for (name, item) in items {
                // Two fragments may share a parameter (the same page topic), not redefine it.
                match into.get(name) {
                    Some(existing) if existing != item => self.refused.push(format!("{section}.{name}")),
                    _ => {
                        into.insert(name.clone(), item.clone());
                    }
                }
            }
        }
    }
}

/// Adds `extra` to `into`, refusing a name `into` already has.
fn merge(into: &mut Map<String, Value>, extra: &Map<String, Value>) -> Result<(), Error> {
    for (name, item) in extra {
        if into.insert(name.clone(), item.clone()).is_some() {
            return Err(Error::Extra(name.clone()));
        }
    }
    Ok(())
}

/// What one region's template needs to know.
struct Ctx<'a> {
    manifest: &'a Manifest,
    config: &'a DeployConfig,
    region: &'a str,
    primary: bool,
    function: String,
}

impl Ctx<'_> {
    fn table_name(&self, table: &str) -> String {
        format!("{}{table}", self.config.table_prefix())
    }

    fn data_key(&self) -> Value {
        match self.config.kms.data_keys.get(self.region) {
            Some(arn) => Value::String(arn.clone()),
            None => get_att("DataKey", "Arn"),
        }
    }

    fn resolve(&self, res: &Res) -> Value {
        match res {
            Res::Table(t) => sub(&format!(
                "arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/{}",
                self.table_name(t)
            )),
            Res::Index(t, i) => sub(&format!(
                "arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/{}/index/{i}",
                self.table_name(t)
            )),
            // The stream's label is known only in the stack that creates the table.
            Res::Stream(t) if self.primary => get_att(&format!("{}Table", camel(t)), "StreamArn"),
            Res::Stream(t) => sub(&format!(
                "arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/{}/stream/*",
                self.table_name(t)
            )),
            Res::Dlq => get_att("DeadLetterQueue", "Arn"),
            Res::LogGroup => get_att("LogGroup", "Arn"),
            Res::DataKey => self.data_key(),
            Res::Arn(a) => Value::String(a.clone()),
            Res::Any => Value::String("*".into()),
        }
    }
}

fn attribute_definitions(t: &TableSpec) -> Value {
    let mut seen: Vec<(String, String)> = Vec::new();
    let keys = std::iter::once(&t.partition_key)
        .chain(t.sort_key.iter())
        .chain(t.indexes.iter().flat_map(|i| std::iter::once(&i.partition_key).chain(i.sort_key.iter())));
    for k in keys {
        if !seen.iter().any(|s| s.0 == k.0) {
            seen.push(k.clone());
        }
    }
    Value::Array(seen.into_iter().map(|(n, k)| json!({"AttributeName": n, "AttributeType": k})).collect())
}

fn key_schema(pk: &(String, String), sk: Option<&(String, String)>) -> Value {
    let mut v = vec![json!({"AttributeName": pk.0, "KeyType": "HASH"})];
    if let Some(sk) = sk {
        v.push(json!({"AttributeName": sk.0, "KeyType": "RANGE"}));
    }
    Value::Array(v)
}

fn table_resource(ctx: &Ctx<'_>, t: &TableSpec) -> Value {
    let mut props = Map::new();
    props.insert("TableName".into(), json!(ctx.table_name(&t.name)));
    props.insert("BillingMode".into(), json!("PAY_PER_REQUEST"));
    props.insert("AttributeDefinitions".into(), attribute_definitions(t));
    props.insert("KeySchema".into(), key_schema(&t.partition_key, t.sort_key.as_ref()));
    if !t.indexes.is_empty() {
        let gsis: Vec<Value> = t
            .indexes
            .iter()
            .map(|i| {
                json!({"IndexName": i.name, "KeySchema": key_schema(&i.partition_key, i.sort_key.as_ref()),
                       "Projection": {"ProjectionType": "ALL"}})
            })
            .collect();
        props.insert("GlobalSecondaryIndexes".into(), Value::Array(gsis));
    }
    if let Some(attr) = &t.ttl_attribute {
        props.insert("TimeToLiveSpecification".into(), json!({"AttributeName": attr, "Enabled": true}));
    }
    let regions = &ctx.config.service.regions;
    let mut metadata = Map::new();
    if !t.backups {
        metadata.insert(
            "LiftBackups".into(),
            json!("off: copies of this table would bring erased subjects' keys back (lift::store::tables::subject_keys)"),
        );
        metadata.extend(
            skip(&[("CKV_AWS_28", NO_BACKUPS), ("CKV_AWS_165", NO_BACKUPS)])
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    }
    let kind = if regions.len() == 1 {
        props.insert(
            "SSESpecification".into(),
            json!({"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": ctx.data_key()}),
        );
        props.insert(
            "PointInTimeRecoverySpecification".into(),
            json!({"PointInTimeRecoveryEnabled": t.backups}),
        );
        props.insert("DeletionProtectionEnabled".into(), json!(true));
        if let Some(view) = &t.stream {
            props.insert("StreamSpecification".into(), json!({"StreamViewType": view}));
        }
        "AWS::DynamoDB::Table"
    } else {
        // Global tables replicate through streams: new and old images, whatever the definition says.
        let view = match t.stream.as_deref() {
            None | Some("NEW_AND_OLD_IMAGES") => "NEW_AND_OLD_IMAGES",
            Some(_) => "NEW_AND_OLD_IMAGES",
        };
        props.insert("StreamSpecification".into(), json!({"StreamViewType": view}));
        props.insert("SSESpecification".into(), json!({"SSEEnabled": true, "SSEType": "KMS"}));
        let replicas: Vec<Value> = regions
            .iter()
            .map(|r| {
                json!({"Region": r,
                       "DeletionProtectionEnabled": true,
                       "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": t.backups},
                       "SSESpecification": {"KMSMasterKeyId": ctx.config.kms.data_keys[r]}})
            })
            .collect();
        props.insert("Replicas".into(), Value::Array(replicas));
        "AWS::DynamoDB::GlobalTable"
    };
    let mut res = json!({"Type": kind, "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain", "Properties": props});
    if !metadata.is_empty() {
        res["Metadata"] = Value::Object(metadata);
    }
    res
}

fn log_group(name: Value, ctx: &Ctx<'_>) -> Value {
    json!({"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
           "Properties": {"LogGroupName": name, "RetentionInDays": ctx.config.logs.retention_days, "KmsKeyId": ctx.data_key()}})
}

fn data_key(ctx: &Ctx<'_>) -> Value {
    json!({"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Description": format!("{}: tables, logs, dead letters and environment", ctx.config.service.name),
            "EnableKeyRotation": true,
            "KeyPolicy": {"Version": "2012-10-17", "Statement": [
                {"Sid": "AccountAdministers", "Effect": "Allow",
                 "Principal": {"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "LogsEncrypt", "Effect": "Allow",
                 "Principal": {"Service": sub("logs.${AWS::Region}.amazonaws.com")},
                 "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:Describe*"],
                 "Resource": "*",
                 "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                     sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*")}}}
            ]}
        },
        "Metadata": {"LiftWildcards": "a key policy's Resource is always \"*\": it means this key"}
    })
}

fn role(ctx: &Ctx<'_>) -> Value {
    let statements = plan::policy(ctx.manifest, ctx.config, ctx.region);
    let mut reasons = Map::new();
    let rendered: Vec<Value> = statements
        .iter()
        .map(|s| {
            if let Some(why) = s.wildcard_reason {
                reasons.insert(s.sid.clone(), json!(why));
            }
            let resources: Vec<Value> = s.resources.iter().map(|r| ctx.resolve(r)).collect();
            json!({"Sid": s.sid, "Effect": "Allow", "Action": s.actions, "Resource": resources})
        })
        .collect();
    json!({"Type": "AWS::IAM::Role",
    "Metadata": {"LiftWildcards": reasons},
    "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "function", "PolicyDocument": {"Version": "2012-10-17", "Statement": rendered}}]
    }})
}

fn environment(ctx: &Ctx<'_>) -> Value {
    Value::Object(
        environment_vars(ctx.config, ctx.region).into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
    )
}

/// The hash of the function's whole configuration (its synthesized properties: code,
/// memory, timeout, environment, keys, architecture...) names the version resource, so any
/// change publishes a new version, as Terraform's `publish` does: the candidate that
/// `lift-deploy rollout --version` then shifts `live` to behind its gates. A hash of the
/// code alone would publish nothing for new settings, and a rollout could not move them.
fn version_id(function_properties: &Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(function_properties.to_string().as_bytes());
    format!("FunctionVersion{}", &hex::encode(digest)[..12])
}

pub(crate) fn template(
    manifest: &Manifest,
    config: &DeployConfig,
    region: &str,
    extra: &Extra,
) -> Result<Value, Error> {
    if let Some(refused) = extra.refused.first() {
        return Err(Error::Extra(refused.clone()));
    }
    let primary = region == config.primary();
    let ctx = Ctx { manifest, config, region, primary, function: config.service.name.clone() };
    let mut r = Resources::default();
    plan::claim_table_statements(&mut r.names, manifest);
    if !config.kms.data_keys.contains_key(region) {
        r.insert("DataKey".into(), data_key(&ctx));
    }
    if primary {
        for t in &manifest.tables {
            r.insert_from(
                format!("{}Table", camel(&t.name)),
                &format!("table {}", t.name),
                table_resource(&ctx, t),
            );
        }
    }
    r.insert("LogGroup".into(), log_group(json!(format!("/aws/lambda/{}", ctx.function)), &ctx));
    r.insert("AccessLogGroup".into(), log_group(json!(format!("/aws/apigateway/{}", ctx.function)), &ctx));
    r.insert("DeadLetterQueue".into(), json!({"Type": "AWS::SQS::Queue", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
        "Properties": {"QueueName": format!("{}-dead-letters", ctx.function), "MessageRetentionPeriod": 1_209_600, "KmsMasterKeyId": ctx.data_key()}}));
    r.insert("FunctionRole".into(), role(&ctx));
    let (bucket, key) = config.code();
    let function = json!({"Type": "AWS::Lambda::Function",
    "Metadata": skip(&[("CKV_AWS_117", NO_VPC)]),
    "Properties": {
        "FunctionName": ctx.function,
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "Architectures": [config.function.architecture],
        "MemorySize": config.function.memory_mb,
        "Timeout": config.function.timeout_seconds,
        "ReservedConcurrentExecutions": config.function.reserved_concurrency,
        "Role": get_att("FunctionRole", "Arn"),
        "Code": {"S3Bucket": bucket, "S3Key": key},
        "TracingConfig": {"Mode": "Active"},
        "DeadLetterConfig": {"TargetArn": get_att("DeadLetterQueue", "Arn")},
        "KmsKeyArn": ctx.data_key(),
        "LoggingConfig": {"LogFormat": "JSON", "LogGroup": reference("LogGroup")},
        "Environment": {"Variables": environment(&ctx)}
    }});
    let version = version_id(&function["Properties"]);
    r.insert("Function".into(), function);
    r.insert(version.clone(), json!({"Type": "AWS::Lambda::Version", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        "Properties": {"FunctionName": reference("Function"), "Description": format!("code {}", config.function.code)}}));
    // `live` takes its version from a parameter, never from the version just published:
    // its properties stay the same on every update, so CloudFormation never touches it
    // again, and neither shifts traffic to an ungated version nor undoes a rollout's split
    // or rollback. DependsOn only orders the first creation after version 1 exists.
    r.insert(
        "LiveAlias".into(),
        json!({"Type": "AWS::Lambda::Alias", "DependsOn": [version],
        "Properties": {"FunctionName": reference("Function"), "Name": "live", "FunctionVersion": reference(LIVE_VERSION),
            "Description": LIVE_ALIAS_DESCRIPTION}}),
    );
    let asynchronous = manifest
        .event_sources
        .iter()
        .any(|s| matches!(s, EventSourceSpec::EventBridge { .. } | EventSourceSpec::Schedule { .. }));
    if asynchronous {
        r.insert("AsyncFailures".into(), json!({"Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {"FunctionName": reference("Function"), "Qualifier": "live", "MaximumRetryAttempts": 2,
                "DestinationConfig": {"OnFailure": {"Destination": get_att("DeadLetterQueue", "Arn")}}},
            "DependsOn": ["LiveAlias"]}));
    }
    events(&ctx, &mut r);
    api(&ctx, &mut r);
    if let Some(domain) = &config.domain {
        failover(&ctx, domain, &mut r);
    }
    if config.alarms.enabled {
        alarms(&ctx, &mut r);
    }
    r.names.check()?;
    let mut r = r.map;
    merge(&mut r, &extra.resources)?;
    let mut outputs = Map::new();
    outputs.insert("ApiEndpoint".into(), json!({"Value": get_att("HttpApi", "ApiEndpoint")}));
    outputs.insert("LiveAlias".into(), json!({"Value": reference("LiveAlias")}));
    outputs.insert(
        "CandidateVersion".into(),
        json!({"Description": "the version this deployment published: `lift-deploy rollout --version <it>` moves live to it",
            "Value": get_att(&version, "Version")}),
    );
    let mut parameters = Map::new();
    parameters.insert(
        LIVE_VERSION.into(),
        json!({"Type": "String", "Default": "1", "AllowedPattern": "^[0-9]+$",
            "Description": "The version live points at when the stack creates it (a new function's first published version is 1). \
                lift-deploy rollout moves live after that: keep this value on every update (UsePreviousValue); \
                a new value moves all traffic at once with no gate"}),
    );
    merge(&mut parameters, &extra.parameters)?;
    // lift-monitoring's outage alarm compares this function's invocations with its SLOs'
    // requests; its parameter has no default of its own, so the stack names its function.
    if let Some(Value::Object(p)) = parameters.get_mut(lift_monitoring::alarms::FUNCTION_NAME_PARAMETER) {
        p.entry("Default").or_insert_with(|| json!(ctx.function));
    }
    let mut template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("{} in {region} ({}), synthesized by lift-deploy from the App", config.service.name,
            if primary { "primary" } else { "secondary" }),
        "Parameters": parameters,
        "Resources": r,
        "Outputs": outputs,
    });
    if !extra.conditions.is_empty() {
        template["Conditions"] = Value::Object(extra.conditions.clone());
    }
    Ok(template)
}

/// The non-HTTP sources, in the primary region only: in every region a nightly job would
/// run once per region, and a message or event be handled twice, against one global table.
fn events(ctx: &Ctx<'_>, r: &mut Resources) {
    if !ctx.primary {
        return;
    }
    for (i, queue) in ctx.config.events.sqs_queues.iter().enumerate() {
        r.insert(
            format!("QueueSource{i}"),
            json!({"Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {"FunctionName": reference("LiveAlias"), "EventSourceArn": queue, "BatchSize": 10,
                "FunctionResponseTypes": ["ReportBatchItemFailures"]}}),
        );
    }
    for t in plan::streamed_tables(ctx.manifest, &ctx.config.table_prefix()) {
        r.insert_from(format!("{}StreamSource", camel(&t.name)), &format!("the stream of table {}", t.name), json!({"Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {"FunctionName": reference("LiveAlias"),
                "EventSourceArn": get_att(&format!("{}Table", camel(&t.name)), "StreamArn"),
                "StartingPosition": "TRIM_HORIZON", "BisectBatchOnFunctionError": true, "MaximumRetryAttempts": 5,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "DestinationConfig": {"OnFailure": {"Destination": get_att("DeadLetterQueue", "Arn")}}}}));
    }
    let mut n = 0;
    for source in &ctx.manifest.event_sources {
        let (name, from, props) = match source {
            EventSourceSpec::Schedule { rule } => (
                format!("Schedule{}", camel(rule)),
                format!("schedule {rule}"),
                json!({"Name": format!("{}-{rule}", ctx.function), "ScheduleExpression": ctx.config.events.schedules[rule], "State": "ENABLED"}),
            ),
            EventSourceSpec::EventBridge { pattern } => {
                n += 1;
                (
                    format!("EventRule{n}"),
                    format!("event rule {pattern}"),
                    json!({"EventPattern": pattern, "State": "ENABLED"}),
                )
            }
            _ => continue,
        };
        let mut props = props;
        props["Targets"] = json!([{"Arn": reference("LiveAlias"), "Id": "live"}]);
        r.insert_from(name.clone(), &from, json!({"Type": "AWS::Events::Rule", "Properties": props}));
        r.insert_from(
            format!("{name}Permission"),
            &format!("the permission of {from}"),
            json!({"Type": "AWS::Lambda::Permission",
            "Properties": {"Action": "lambda:InvokeFunction", "FunctionName": reference("LiveAlias"),
                "Principal": "events.amazonaws.com", "SourceArn": get_att(&name, "Arn")}}),
        );
    }
}

fn api(ctx: &Ctx<'_>, r: &mut Resources) {
    let config = ctx.config;
    r.insert("HttpApi".into(), json!({"Type": "AWS::ApiGatewayV2::Api",
        "Properties": {"Name": ctx.function, "ProtocolType": "HTTP", "DisableExecuteApiEndpoint": config.domain.is_some()}}));
    r.insert("Integration".into(), json!({"Type": "AWS::ApiGatewayV2::Integration",
        "Properties": {"ApiId": reference("HttpApi"), "IntegrationType": "AWS_PROXY", "IntegrationUri": reference("LiveAlias"),
            "PayloadFormatVersion": "2.0", "TimeoutInMillis": (config.function.timeout_seconds * 1000 + 500).min(30_000)}}));
    if let Some(jwt) = &config.api.jwt {
        r.insert(
            "JwtAuthorizer".into(),
            json!({"Type": "AWS::ApiGatewayV2::Authorizer",
            "Properties": {"ApiId": reference("HttpApi"), "AuthorizerType": "JWT", "Name": "jwt",
                "IdentitySource": ["$request.header.Authorization"],
                "JwtConfiguration": {"Issuer": jwt.issuer, "Audience": jwt.audience}}}),
        );
    }
    let routes = plan::api_routes(ctx.manifest, config);
    for (key, auth, from) in routes {
        let id = format!("Route{}", camel(&key.replace('$', "Default").replace(['{', '}', '+'], "")));
        let mut props = json!({"ApiId": reference("HttpApi"), "RouteKey": key, "Target": sub("integrations/${Integration}")});
        let mut res = json!({"Type": "AWS::ApiGatewayV2::Route"});
        match (auth, &config.api.jwt) {
            (Some(scopes), Some(_)) => {
                props["AuthorizationType"] = json!("JWT");
                props["AuthorizerId"] = reference("JwtAuthorizer");
                if !scopes.is_empty() {
                    props["AuthorizationScopes"] = json!(scopes);
                }
            }
            (None, _) => {
                props["AuthorizationType"] = json!("NONE");
                res["Metadata"] = skip(&[("CKV_AWS_309", PUBLIC_ROUTE)]);
            }
            (Some(_), None) => {
                props["AuthorizationType"] = json!("NONE");
                res["Metadata"] = skip(&[("CKV_AWS_309", FUNCTION_AUTH)]);
            }
        }
        res["Properties"] = props;
        r.insert_from(id, &from, res);
    }
    r.insert("Stage".into(), json!({"Type": "AWS::ApiGatewayV2::Stage",
        "Properties": {"ApiId": reference("HttpApi"), "StageName": "$default", "AutoDeploy": true,
            "DefaultRouteSettings": {"ThrottlingRateLimit": config.api.throttle_rate, "ThrottlingBurstLimit": config.api.throttle_burst},
            "AccessLogSettings": {"DestinationArn": get_att("AccessLogGroup", "Arn"),
                "Format": ACCESS_LOG_FORMAT}}}));
    r.insert("ApiPermission".into(), json!({"Type": "AWS::Lambda::Permission",
        "Properties": {"Action": "lambda:InvokeFunction", "FunctionName": reference("LiveAlias"), "Principal": "apigateway.amazonaws.com",
            "SourceArn": sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*")}}));
}

fn failover(ctx: &Ctx<'_>, domain: &crate::config::DomainConfig, r: &mut Resources) {
    let regional = domain.regional_name(ctx.region);
    let cert = &domain.certificates[ctx.region];
    for (id, name) in [("DomainName", domain.name.clone()), ("RegionalDomainName", regional.clone())] {
        r.insert(id.into(), json!({"Type": "AWS::ApiGatewayV2::DomainName",
            "Properties": {"DomainName": name, "DomainNameConfigurations": [{"CertificateArn": cert, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}]}}));
        r.insert(format!("{id}Mapping"), json!({"Type": "AWS::ApiGatewayV2::ApiMapping",
            "Properties": {"ApiId": reference("HttpApi"), "DomainName": reference(id), "Stage": reference("Stage")}}));
    }
    r.insert("RegionalRecord".into(), json!({"Type": "AWS::Route53::RecordSet",
        "Properties": {"HostedZoneId": domain.hosted_zone_id, "Name": format!("{regional}."), "Type": "A",
            "AliasTarget": {"DNSName": get_att("RegionalDomainName", "RegionalDomainName"),
                "HostedZoneId": get_att("RegionalDomainName", "RegionalHostedZoneId"), "EvaluateTargetHealth": false}}}));
    // lift::disaster probes /health/ready of each region; Route 53 probes the same URL.
    r.insert("HealthCheck".into(), json!({"Type": "AWS::Route53::HealthCheck",
        "Properties": {"HealthCheckConfig": {"Type": "HTTPS", "FullyQualifiedDomainName": regional, "Port": 443,
            "ResourcePath": "/health/ready", "RequestInterval": 10, "FailureThreshold": 3, "EnableSNI": true},
            "HealthCheckTags": [{"Key": "Name", "Value": format!("{}-{}", ctx.function, ctx.region)}]}}));
    // The record lift::disaster::Route53Failover names: CNAME, one set identifier per region.
    r.insert("FailoverRecord".into(), json!({"Type": "AWS::Route53::RecordSet",
        "Properties": {"HostedZoneId": domain.hosted_zone_id, "Name": format!("{}.", domain.name), "Type": "CNAME", "TTL": "60",
            "SetIdentifier": ctx.region, "Failover": if ctx.primary { "PRIMARY" } else { "SECONDARY" },
            "HealthCheckId": reference("HealthCheck"), "ResourceRecords": [regional]}}));
}

fn alarms(ctx: &Ctx<'_>, r: &mut Resources) {
    // CloudWatch notifies topics of the alarm's own region only.
    let actions: Vec<Value> = ctx.config.alarms.topic_in(ctx.region).iter().map(|t| json!(t)).collect();
    // Named as Terraform names them, so a rollout gate can find them by the service's prefix.
    let alarm = |name: &str, metric: &str, namespace: &str, dims: Value, threshold: u32, what: &str| {
        json!({"Type": "AWS::CloudWatch::Alarm",
            "Properties": {"AlarmName": plan::alarm_name(ctx.config, ctx.region, name),
                "AlarmDescription": plan::alarm_description(&ctx.function, name, what), "Namespace": namespace, "MetricName": metric,
                "Dimensions": dims, "Statistic": "Sum", "Period": 300, "EvaluationPeriods": 1, "Threshold": threshold,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
                "AlarmActions": actions, "OKActions": actions}})
    };
    let function = json!([{"Name": "FunctionName", "Value": reference("Function")}, {"Name": "Resource", "Value": sub("${Function}:live")}]);
    r.insert(
        "ErrorsAlarm".into(),
        alarm(
            "errors",
            "Errors",
            "AWS/Lambda",
            function.clone(),
            ctx.config.alarms.errors_threshold,
            "function errors",
        ),
    );
    r.insert(
        "ThrottlesAlarm".into(),
        alarm("throttles", "Throttles", "AWS/Lambda", function, 1, "invocations throttled"),
    );
    r.insert(
        "Api5xxAlarm".into(),
        alarm(
            "api_5xx",
            "5xx",
            "AWS/ApiGateway",
            json!([{"Name": "ApiId", "Value": reference("HttpApi")}]),
            ctx.config.alarms.api_5xx_threshold,
            "API answers 5xx",
        ),
    );
}
