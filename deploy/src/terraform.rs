//! Terraform JSON (`*.tf.json`): the same resources as the CloudFormation template, with
//! the `aws` provider. One configuration per region.
//!
//! Checks a resource skips carry their reason in Terraform's JSON comment key `//`, in
//! checkov's own syntax (`checkov:skip=<id>:<reason>`).

use serde_json::{json, Map, Value};

use crate::config::DeployConfig;
use crate::manifest::{EventSourceSpec, Manifest, TableSpec};
use crate::plan::{self, snake, Res};
use crate::Error;

const ARN_PREFIX: &str = "arn:${data.aws_partition.current.partition}";

fn skips(checks: &[(&str, &str)]) -> Value {
    json!(checks.iter().map(|(id, why)| format!("checkov:skip={id}:{why}")).collect::<Vec<_>>().join(" | "))
}

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

    fn table_arn(&self, table: &str) -> String {
        format!(
            "{ARN_PREFIX}:dynamodb:{}:${{data.aws_caller_identity.current.account_id}}:table/{}",
            self.region,
            self.table_name(table)
        )
    }

    fn data_key(&self) -> String {
        match self.config.kms.data_keys.get(self.region) {
            Some(arn) => arn.clone(),
            None => "${aws_kms_key.data.arn}".into(),
        }
    }

    fn resolve(&self, res: &Res) -> String {
        match res {
            Res::Table(t) => self.table_arn(t),
            Res::Index(t, i) => format!("{}/index/{i}", self.table_arn(t)),
            Res::Stream(t) if self.primary => format!("${{aws_dynamodb_table.{}.stream_arn}}", snake(t)),
            Res::Stream(t) => format!("{}/stream/*", self.table_arn(t)),
            Res::Dlq => "${aws_sqs_queue.dead_letters.arn}".into(),
            Res::LogGroup => "${aws_cloudwatch_log_group.function.arn}:*".into(),
            Res::DataKey => self.data_key(),
            Res::Arn(a) => a.clone(),
            Res::Any => "*".into(),
        }
    }
}

/// A configuration's resources by type and name, each `<type>.<name>` given once (see
/// [`plan::Names`]).
#[derive(Default)]
struct Resources {
    map: Map<String, Value>,
    names: plan::Names,
}

/// A resource lift-deploy always makes, under a fixed name.
fn add(resources: &mut Resources, kind: &str, name: &str, body: Value) {
    add_from(resources, kind, name, &format!("the synthesized {kind}.{name}"), body);
}

/// A resource named after a part of the App or the file (`from`, e.g. `route GET /orders/:id`).
fn add_from(resources: &mut Resources, kind: &str, name: &str, from: &str, body: Value) {
    if resources.names.claim(&format!("{kind}.{name}"), from) {
        let entry = resources.map.entry(kind.to_owned()).or_insert_with(|| json!({}));
        entry[name] = body;
    }
}

fn attributes(t: &TableSpec) -> Value {
    let mut seen: Vec<(String, String)> = Vec::new();
    let keys = std::iter::once(&t.partition_key)
        .chain(t.sort_key.iter())
        .chain(t.indexes.iter().flat_map(|i| std::iter::once(&i.partition_key).chain(i.sort_key.iter())));
    for k in keys {
        if !seen.iter().any(|s| s.0 == k.0) {
            seen.push(k.clone());
        }
    }
    Value::Array(seen.into_iter().map(|(name, kind)| json!({"name": name, "type": kind})).collect())
}

fn table(ctx: &Ctx<'_>, t: &TableSpec) -> Value {
    let multi = ctx.config.service.regions.len() > 1;
    let mut body = json!({
        "name": ctx.table_name(&t.name),
        "billing_mode": "PAY_PER_REQUEST",
        "hash_key": t.partition_key.0,
        "attribute": attributes(t),
        "deletion_protection_enabled": true,
        "point_in_time_recovery": {"enabled": t.backups},
        "server_side_encryption": {"enabled": true, "kms_key_arn": ctx.data_key()},
        "lifecycle": {"prevent_destroy": true},
    });
    if let Some(sk) = &t.sort_key {
        body["range_key"] = json!(sk.0);
    }
    if let Some(attr) = &t.ttl_attribute {
        body["ttl"] = json!({"attribute_name": attr, "enabled": true});
    }
    if !t.indexes.is_empty() {
        body["global_secondary_index"] = Value::Array(
            t.indexes
                .iter()
                .map(|i| {
                    let mut gsi =
                        json!({"name": i.name, "hash_key": i.partition_key.0, "projection_type": "ALL"});
                    if let Some(sk) = &i.sort_key {
                        gsi["range_key"] = json!(sk.0);
                    }
                    gsi
                })
                .collect(),
        );
    }
    let view = if multi { Some("NEW_AND_OLD_IMAGES") } else { t.stream.as_deref() };
    if let Some(view) = view {
        body["stream_enabled"] = json!(true);
        body["stream_view_type"] = json!(view);
    }
    if multi {
        body["replica"] = Value::Array(
            ctx.config
                .service
                .regions
                .iter()
                .filter(|r| r.as_str() != ctx.region)
                .map(|r| {
                    json!({"region_name": r, "kms_key_arn": ctx.config.kms.data_keys[r],
                           "point_in_time_recovery": t.backups, "propagate_tags": true})
                })
                .collect(),
        );
    }
    if !t.backups {
        body["//"] = skips(&[("CKV_AWS_28", crate::cfn::NO_BACKUPS)]);
    }
    body
}

pub(crate) fn config(
    manifest: &Manifest,
    config: &DeployConfig,
    region: &str,
    extra: &Map<String, Value>,
) -> Result<Value, Error> {
    let primary = region == config.primary();
    let ctx = Ctx { manifest, config, region, primary, function: config.service.name.clone() };
    let mut r = Resources::default();
    plan::claim_table_statements(&mut r.names, manifest);
    if !config.kms.data_keys.contains_key(region) {
        add(
            &mut r,
            "aws_kms_key",
            "data",
            json!({
                "description": format!("{}: tables, logs, dead letters and environment", config.service.name),
                "enable_key_rotation": true,
                "policy": serde_json::to_string(&json!({"Version": "2012-10-17", "Statement": [
                    {"Sid": "AccountAdministers", "Effect": "Allow",
                     "Principal": {"AWS": format!("{ARN_PREFIX}:iam::${{data.aws_caller_identity.current.account_id}}:root")},
                     "Action": "kms:*", "Resource": "*"},
                    {"Sid": "LogsEncrypt", "Effect": "Allow", "Principal": {"Service": format!("logs.{region}.amazonaws.com")},
                     "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:Describe*"],
                     "Resource": "*",
                     "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                         format!("{ARN_PREFIX}:logs:{region}:${{data.aws_caller_identity.current.account_id}}:log-group:*")}}}
                ]})).expect("a policy serializes"),
                // Kept as CloudFormation retains it: the tables, logs and queue are under it.
                "lifecycle": {"prevent_destroy": true},
            }),
        );
    }
    if primary {
        for t in &manifest.tables {
            add_from(
                &mut r,
                "aws_dynamodb_table",
                &snake(&t.name),
                &format!("table {}", t.name),
                table(&ctx, t),
            );
        }
    }
    for (name, group) in [
        ("function", format!("/aws/lambda/{}", ctx.function)),
        ("access", format!("/aws/apigateway/{}", ctx.function)),
    ] {
        // Kept as CloudFormation retains them: a year of logs outlives a stack.
        add(
            &mut r,
            "aws_cloudwatch_log_group",
            name,
            json!({"name": group,
            "retention_in_days": config.logs.retention_days, "kms_key_id": ctx.data_key(),
            "lifecycle": {"prevent_destroy": true}}),
        );
    }
    add(
        &mut r,
        "aws_sqs_queue",
        "dead_letters",
        json!({"name": format!("{}-dead-letters", ctx.function),
        "message_retention_seconds": 1_209_600, "kms_master_key_id": ctx.data_key()}),
    );
    let statements: Vec<Value> = plan::policy(manifest, config, region)
        .iter()
        .map(|s| {
            json!({"Sid": s.sid, "Effect": "Allow", "Action": s.actions,
                "Resource": s.resources.iter().map(|r| ctx.resolve(r)).collect::<Vec<_>>()})
        })
        .collect();
    let reasons: Vec<String> = plan::policy(manifest, config, region)
        .iter()
        .filter_map(|s| s.wildcard_reason.map(|why| format!("{}: {why}", s.sid)))
        .collect();
    add(
        &mut r,
        "aws_iam_role",
        "function",
        json!({
            "name": format!("{}-{region}-function", ctx.function),
            "assume_role_policy": serde_json::to_string(&json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})).expect("serializes"),
        }),
    );
    add(
        &mut r,
        "aws_iam_role_policy",
        "function",
        json!({
            "//": format!("wildcard resources: {}", reasons.join("; ")),
            "name": "function", "role": "${aws_iam_role.function.id}",
            "policy": serde_json::to_string(&json!({"Version": "2012-10-17", "Statement": statements})).expect("serializes"),
        }),
    );
    let (bucket, key) = config.code();
    let mut env = Map::new();
    for (k, v) in crate::cfn::environment_vars(config, region) {
        env.insert(k, json!(v));
    }
    add(
        &mut r,
        "aws_lambda_function",
        "function",
        json!({
            "//": skips(&[
                ("CKV_AWS_117", crate::cfn::NO_VPC),
                ("CKV_AWS_272", "the package is built and uploaded by the service's own pipeline; code signing is a separate, opt-in control"),
            ]),
            "function_name": ctx.function,
            "runtime": "provided.al2023",
            "handler": "bootstrap",
            "architectures": [config.function.architecture],
            "memory_size": config.function.memory_mb,
            "timeout": config.function.timeout_seconds,
            "reserved_concurrent_executions": config.function.reserved_concurrency,
            "role": "${aws_iam_role.function.arn}",
            "s3_bucket": bucket,
            "s3_key": key,
            "publish": true,
            "tracing_config": {"mode": "Active"},
            "dead_letter_config": {"target_arn": "${aws_sqs_queue.dead_letters.arn}"},
            "kms_key_arn": ctx.data_key(),
            "logging_config": {"log_format": "JSON", "log_group": "${aws_cloudwatch_log_group.function.name}"},
            "environment": {"variables": env},
            "depends_on": ["aws_iam_role_policy.function"],
        }),
    );
    // `publish` makes each change a new version, the candidate a rollout shifts to; `live`
    // points at the first one only. Terraform leaves its version and split to
    // `lift-deploy rollout` after that: an apply would otherwise move all traffic at once
    // with no gate, or undo a canary split or a rollback.
    add(
        &mut r,
        "aws_lambda_alias",
        "live",
        json!({"name": "live", "function_name": "${aws_lambda_function.function.function_name}",
        "description": crate::cfn::LIVE_ALIAS_DESCRIPTION,
        "function_version": "${aws_lambda_function.function.version}",
        "lifecycle": {"ignore_changes": ["function_version", "routing_config"]}}),
    );
    if manifest
        .event_sources
        .iter()
        .any(|s| matches!(s, EventSourceSpec::EventBridge { .. } | EventSourceSpec::Schedule { .. }))
    {
        add(
            &mut r,
            "aws_lambda_function_event_invoke_config",
            "live",
            json!({
            "function_name": "${aws_lambda_function.function.function_name}", "qualifier": "live", "maximum_retry_attempts": 2,
            "destination_config": {"on_failure": {"destination": "${aws_sqs_queue.dead_letters.arn}"}},
            "depends_on": ["aws_lambda_alias.live"]}),
        );
    }
    if primary {
        events(&ctx, &mut r);
    }
    api(&ctx, &mut r);
    if let Some(domain) = &config.domain {
        let regional = domain.regional_name(region);
        let cert = &domain.certificates[region];
        for (name, host) in [("global", domain.name.clone()), ("regional", regional.clone())] {
            add(
                &mut r,
                "aws_apigatewayv2_domain_name",
                name,
                json!({"domain_name": host,
                "domain_name_configuration": {"certificate_arn": cert, "endpoint_type": "REGIONAL", "security_policy": "TLS_1_2"}}),
            );
            add(
                &mut r,
                "aws_apigatewayv2_api_mapping",
                name,
                json!({"api_id": "${aws_apigatewayv2_api.http.id}",
                "domain_name": format!("${{aws_apigatewayv2_domain_name.{name}.id}}"), "stage": "${aws_apigatewayv2_stage.default.id}"}),
            );
        }
        add(
            &mut r,
            "aws_route53_record",
            "regional",
            json!({"zone_id": domain.hosted_zone_id, "name": regional, "type": "A",
            "alias": {"name": "${aws_apigatewayv2_domain_name.regional.domain_name_configuration[0].target_domain_name}",
                "zone_id": "${aws_apigatewayv2_domain_name.regional.domain_name_configuration[0].hosted_zone_id}",
                "evaluate_target_health": false}}),
        );
        add(
            &mut r,
            "aws_route53_health_check",
            "regional",
            json!({"type": "HTTPS", "fqdn": regional, "port": 443,
            "resource_path": "/health/ready", "request_interval": 10, "failure_threshold": 3, "enable_sni": true,
            "tags": {"Name": format!("{}-{region}", ctx.function)}}),
        );
        add(
            &mut r,
            "aws_route53_record",
            "failover",
            json!({"zone_id": domain.hosted_zone_id, "name": domain.name, "type": "CNAME",
            "ttl": 60, "set_identifier": region, "records": [regional],
            "failover_routing_policy": {"type": if primary { "PRIMARY" } else { "SECONDARY" }},
            "health_check_id": "${aws_route53_health_check.regional.id}"}),
        );
    }
    if config.alarms.enabled {
        // CloudWatch notifies topics of the alarm's own region only.
        let actions: Vec<&str> = config.alarms.topic_in(region).into_iter().collect();
        let fdims = json!({"FunctionName": "${aws_lambda_function.function.function_name}", "Resource": "${aws_lambda_function.function.function_name}:live"});
        for (name, metric, ns, dims, threshold, what) in [
            (
                "errors",
                "Errors",
                "AWS/Lambda",
                fdims.clone(),
                config.alarms.errors_threshold,
                "function errors",
            ),
            ("throttles", "Throttles", "AWS/Lambda", fdims, 1, "invocations throttled"),
            (
                "api_5xx",
                "5xx",
                "AWS/ApiGateway",
                json!({"ApiId": "${aws_apigatewayv2_api.http.id}"}),
                config.alarms.api_5xx_threshold,
                "API answers 5xx",
            ),
        ] {
            add(
                &mut r,
                "aws_cloudwatch_metric_alarm",
                name,
                json!({"alarm_name": plan::alarm_name(config, region, name),
                "alarm_description": plan::alarm_description(&ctx.function, name, what), "namespace": ns, "metric_name": metric, "dimensions": dims,
                "statistic": "Sum", "period": 300, "evaluation_periods": 1, "threshold": threshold,
                "comparison_operator": "GreaterThanOrEqualToThreshold", "treat_missing_data": "notBreaching",
                "alarm_actions": actions, "ok_actions": actions}),
            );
        }
    }
    r.names.check()?;
    let mut r = r.map;
    for (kind, body) in extra {
        let Some(items) = body.as_object() else { return Err(Error::Extra(kind.clone())) };
        for (name, item) in items {
            let entry = r.entry(kind.clone()).or_insert_with(|| json!({}));
            if entry.get(name).is_some() {
                return Err(Error::Extra(format!("{kind}.{name}")));
            }
            entry[name] = item.clone();
        }
    }
    Ok(json!({
        "//": format!("{} in {region} ({}), synthesized by lift-deploy from the App", config.service.name,
            if primary { "primary" } else { "secondary" }),
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": ">= 5.40"}}},
        "provider": {"aws": {"region": region}},
        "data": {"aws_partition": {"current": {}}, "aws_caller_identity": {"current": {}}},
        "resource": r,
        "output": {"api_endpoint": {"value": "${aws_apigatewayv2_api.http.api_endpoint}"},
                   "live_alias": {"value": "${aws_lambda_alias.live.arn}"},
                   "candidate_version": {"value": "${aws_lambda_function.function.version}",
                       "description": "the version this apply published: `lift-deploy rollout --version <it>` moves live to it"}},
    }))
}

fn api(ctx: &Ctx<'_>, r: &mut Resources) {
    let config = ctx.config;
    add(
        r,
        "aws_apigatewayv2_api",
        "http",
        json!({"name": ctx.function, "protocol_type": "HTTP",
        "disable_execute_api_endpoint": config.domain.is_some()}),
    );
    add(
        r,
        "aws_apigatewayv2_integration",
        "live",
        json!({"api_id": "${aws_apigatewayv2_api.http.id}",
        "integration_type": "AWS_PROXY", "integration_uri": "${aws_lambda_alias.live.arn}", "payload_format_version": "2.0",
        "timeout_milliseconds": (config.function.timeout_seconds * 1000 + 500).min(30_000)}),
    );
    if let Some(jwt) = &config.api.jwt {
        add(
            r,
            "aws_apigatewayv2_authorizer",
            "jwt",
            json!({"api_id": "${aws_apigatewayv2_api.http.id}",
            "authorizer_type": "JWT", "name": "jwt", "identity_sources": ["$request.header.Authorization"],
            "jwt_configuration": {"issuer": jwt.issuer, "audience": jwt.audience}}),
        );
    }
    let routes = plan::api_routes(ctx.manifest, config);
    for (key, auth, from) in routes {
        let name = snake(&key.replace('$', "default").replace(['{', '}', '+'], ""))
            .trim_matches('_')
            .replace("__", "_");
        let mut body = json!({"api_id": "${aws_apigatewayv2_api.http.id}", "route_key": key,
            "target": "integrations/${aws_apigatewayv2_integration.live.id}"});
        match (auth, &config.api.jwt) {
            (Some(scopes), Some(_)) => {
                body["authorization_type"] = json!("JWT");
                body["authorizer_id"] = json!("${aws_apigatewayv2_authorizer.jwt.id}");
                if !scopes.is_empty() {
                    body["authorization_scopes"] = json!(scopes);
                }
            }
            (None, _) => {
                body["authorization_type"] = json!("NONE");
                body["//"] = skips(&[("CKV_AWS_309", crate::cfn::PUBLIC_ROUTE)]);
            }
            (Some(_), None) => {
                body["authorization_type"] = json!("NONE");
                body["//"] = skips(&[("CKV_AWS_309", crate::cfn::FUNCTION_AUTH)]);
            }
        }
        add_from(r, "aws_apigatewayv2_route", &name, &from, body);
    }
    add(
        r,
        "aws_apigatewayv2_stage",
        "default",
        json!({"api_id": "${aws_apigatewayv2_api.http.id}", "name": "$default",
        "auto_deploy": true,
        "default_route_settings": {"throttling_rate_limit": config.api.throttle_rate, "throttling_burst_limit": config.api.throttle_burst},
        "access_log_settings": {"destination_arn": "${aws_cloudwatch_log_group.access.arn}", "format": crate::cfn::ACCESS_LOG_FORMAT}}),
    );
    add(
        r,
        "aws_lambda_permission",
        "api",
        json!({"action": "lambda:InvokeFunction",
        "function_name": "${aws_lambda_function.function.function_name}", "qualifier": "live",
        "principal": "apigateway.amazonaws.com", "source_arn": "${aws_apigatewayv2_api.http.execution_arn}/*"}),
    );
}

/// The non-HTTP sources, in the primary region only (as `cfn::events`): in every region a
/// nightly job would run once per region, and a message or event be handled twice,
/// against one global table.
fn events(ctx: &Ctx<'_>, r: &mut Resources) {
    let config = ctx.config;
    for (i, queue) in config.events.sqs_queues.iter().enumerate() {
        add(
            r,
            "aws_lambda_event_source_mapping",
            &format!("queue_{i}"),
            json!({
            "function_name": "${aws_lambda_alias.live.arn}", "event_source_arn": queue, "batch_size": 10,
            "function_response_types": ["ReportBatchItemFailures"]}),
        );
    }
    for t in plan::streamed_tables(ctx.manifest, &config.table_prefix()) {
        add_from(
            r,
            "aws_lambda_event_source_mapping",
            &format!("{}_stream", snake(&t.name)),
            &format!("the stream of table {}", t.name),
            json!({
            "function_name": "${aws_lambda_alias.live.arn}",
            "event_source_arn": format!("${{aws_dynamodb_table.{}.stream_arn}}", snake(&t.name)),
            "starting_position": "TRIM_HORIZON", "bisect_batch_on_function_error": true, "maximum_retry_attempts": 5,
            "function_response_types": ["ReportBatchItemFailures"],
            "destination_config": {"on_failure": {"destination_arn": "${aws_sqs_queue.dead_letters.arn}"}}}),
        );
    }
    let mut n = 0;
    for source in &ctx.manifest.event_sources {
        let (name, from, mut body) = match source {
            EventSourceSpec::Schedule { rule } => (
                format!("schedule_{}", snake(rule)),
                format!("schedule {rule}"),
                json!({"name": format!("{}-{rule}", ctx.function), "schedule_expression": config.events.schedules[rule]}),
            ),
            EventSourceSpec::EventBridge { pattern } => {
                n += 1;
                (
                    format!("event_rule_{n}"),
                    format!("event rule {pattern}"),
                    json!({"event_pattern": serde_json::to_string(pattern).expect("serializes")}),
                )
            }
            _ => continue,
        };
        body["state"] = json!("ENABLED");
        add_from(r, "aws_cloudwatch_event_rule", &name, &from, body);
        add_from(
            r,
            "aws_cloudwatch_event_target",
            &name,
            &from,
            json!({"rule": format!("${{aws_cloudwatch_event_rule.{name}.name}}"),
            "target_id": "live", "arn": "${aws_lambda_alias.live.arn}"}),
        );
        add_from(
            r,
            "aws_lambda_permission",
            &name,
            &from,
            json!({"action": "lambda:InvokeFunction",
            "function_name": "${aws_lambda_function.function.function_name}", "qualifier": "live",
            "principal": "events.amazonaws.com", "source_arn": format!("${{aws_cloudwatch_event_rule.{name}.arn}}")}),
        );
    }
}
