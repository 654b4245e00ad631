//! What both output formats share: names, route keys and the least-privilege policy.

use std::collections::BTreeMap;

use crate::config::DeployConfig;
use crate::manifest::{EventSourceSpec, Manifest, RouteSpec, TableSpec};
use crate::Error;

/// The names given out in one output and what made each: a name made twice is refused,
/// naming both makers, rather than one resource silently replacing the other.
#[derive(Debug, Default)]
pub(crate) struct Names {
    made_by: BTreeMap<String, String>,
    clash: Option<Error>,
}

impl Names {
    /// Records that `from` makes `name`; false (and the first clash kept) when it is taken.
    pub(crate) fn claim(&mut self, name: &str, from: &str) -> bool {
        match self.made_by.get(name) {
            Some(first) => {
                if self.clash.is_none() {
                    self.clash = Some(Error::SameName {
                        name: name.to_owned(),
                        first: first.clone(),
                        second: from.to_owned(),
                    });
                }
                false
            }
            None => {
                self.made_by.insert(name.to_owned(), from.to_owned());
                true
            }
        }
    }

    /// The first clash, if any.
    pub(crate) fn check(self) -> Result<(), Error> {
        self.clash.map_or(Ok(()), Err)
    }
}

/// The CloudWatch name of a basic alarm (`errors`, `throttles`, `api_5xx`) in `region`:
/// `payments-us-east-1-errors`. Both formats use it, and it starts with the service name
/// as lift-monitoring's SLO alarms do, so one `--alarm-name-prefix <service>-` finds all.
pub(crate) fn alarm_name(config: &DeployConfig, region: &str, alarm: &str) -> String {
    format!("{}-{region}-{alarm}", config.service.name)
}

/// Who is told when the basic alarm `alarm` fires: function errors and API 5xx are
/// users' requests failing now, a page; throttles are capacity, a ticket.
pub(crate) fn alarm_severity(alarm: &str) -> &'static str {
    match alarm {
        "errors" | "api_5xx" => "page",
        _ => "ticket",
    }
}

/// The description of the basic alarm `alarm` (`what` it counts), ending in the label block
/// the alert router reads (`[severity=page]`, see `examples/alert-router/src/labels.rs`):
/// without one the router takes an alarm for a ticket.
pub(crate) fn alarm_description(function: &str, alarm: &str, what: &str) -> String {
    format!("{function}: {what} [severity={}]", alarm_severity(alarm))
}

/// Claims the policy statement ids each table gives (`TableOrders`), in every region: a
/// secondary region has no table resources to clash, but two tables whose names differ only
/// in punctuation would still give its policy one statement id twice.
pub(crate) fn claim_table_statements(names: &mut Names, manifest: &Manifest) {
    for t in &manifest.tables {
        names.claim(&format!("Table{} (policy statement)", camel(&t.name)), &format!("table {}", t.name));
    }
}

/// What made a route, as the App wrote it: `route GET /orders/:id`.
pub(crate) fn route_source(route: &RouteSpec) -> String {
    format!("route {} {}", route.method, route.path)
}

/// `lift-idempotency` → `LiftIdempotency`.
pub(crate) fn camel(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// `lift-idempotency` → `lift_idempotency` (Terraform names).
pub(crate) fn snake(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// lift's path syntax to API Gateway's: `:id` → `{id}`, `*rest` → `{rest+}`.
/// The API's routes, sorted: each route's key, its authorization and where it comes from,
/// and the `$default` catch-all when `api.catch_all` asks for it. CloudFormation and
/// Terraform make one route resource of each.
pub(crate) fn api_routes(
    manifest: &Manifest,
    config: &DeployConfig,
) -> Vec<(String, Option<Vec<String>>, String)> {
    let mut routes: Vec<_> = manifest
        .routes
        .iter()
        .map(|route| (route_key(route), route_auth(route), route_source(route)))
        .collect();
    if config.api.catch_all {
        routes.push(("$default".into(), Some(Vec::new()), "api.catch_all".into()));
    }
    routes.sort();
    routes
}

pub(crate) fn route_key(route: &RouteSpec) -> String {
    let path: Vec<String> = route
        .path
        .split('/')
        .map(|seg| {
            if let Some(name) = seg.strip_prefix(':') {
                format!("{{{name}}}")
            } else if let Some(name) = seg.strip_prefix('*') {
                format!("{{{name}+}}")
            } else {
                seg.to_owned()
            }
        })
        .collect();
    format!("{} {}", route.method, path.join("/"))
}

/// How API Gateway guards a route: `None` for a public route, otherwise the scopes its
/// JWT authorizer checks (any one of them; empty: a valid token is enough). Roles and
/// scopes that must all hold are left to the function, which enforces every requirement
/// anyway: the authorizer only turns bad tokens away early.
pub(crate) fn route_auth(route: &RouteSpec) -> Option<Vec<String>> {
    if route.requirements.is_empty() {
        return None;
    }
    let scopes: Vec<&crate::manifest::RequirementSpec> =
        route.requirements.iter().filter(|r| r.kind == "scope").collect();
    match scopes.as_slice() {
        [one] if !one.all || one.names.len() == 1 => Some(one.names.clone()),
        _ => Some(Vec::new()),
    }
}

/// A resource in a policy, resolved by each format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Res {
    /// A table by logical name.
    Table(String),
    /// An index of a table.
    Index(String, String),
    /// The stream of a table in this region.
    Stream(String),
    /// The dead-letter queue.
    Dlq,
    /// The function's log group.
    LogGroup,
    /// The data key of this region.
    DataKey,
    /// A literal ARN from the deployment file.
    Arn(String),
    /// Every resource: only where AWS offers nothing narrower.
    Any,
}

/// One policy statement.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) sid: String,
    pub(crate) actions: Vec<String>,
    pub(crate) resources: Vec<Res>,
    /// Why the resource is `*`, written into the template.
    pub(crate) wildcard_reason: Option<&'static str>,
}

fn statement(sid: &str, actions: &[&str], resources: Vec<Res>) -> Statement {
    Statement {
        sid: sid.to_owned(),
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        resources,
        wildcard_reason: None,
    }
}

/// Whether a stream handler's table name (logical, or physical as it appears in the
/// records' ARNs) names `table`.
pub(crate) fn names_table(handler: &str, table: &TableSpec, prefix: &str) -> bool {
    handler == table.name || handler.strip_prefix(prefix) == Some(table.name.as_str())
}

/// The tables whose streams the function reads.
pub(crate) fn streamed_tables<'a>(manifest: &'a Manifest, prefix: &str) -> Vec<&'a TableSpec> {
    let mut out = Vec::new();
    for source in &manifest.event_sources {
        if let EventSourceSpec::DynamodbStream { table } = source {
            for t in &manifest.tables {
                let wanted = table.as_ref().is_none_or(|name| names_table(name, t, prefix));
                if wanted && t.stream.is_some() && !out.iter().any(|o: &&TableSpec| o.name == t.name) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// The secrets the function of `region` reads: name → that region's ARN.
pub(crate) fn secrets_in<'a>(config: &'a DeployConfig, region: &str) -> Vec<(&'a str, &'a str)> {
    config.secrets.iter().filter_map(|(name, arn)| Some((name.as_str(), arn.in_region(region)?))).collect()
}

/// The envelope key of `region`, if any.
pub(crate) fn envelope_key_in<'a>(config: &'a DeployConfig, region: &str) -> Option<&'a str> {
    config.kms.envelope_key.as_ref().and_then(|key| key.in_region(region))
}

/// The function's policy in `region`: each used feature's actions on exact resources, the
/// secrets and keys of that region only.
///
/// Queues are polled from the primary region only, as every non-HTTP source is: a
/// second region would run each job and message twice against the one global table. So
/// only the primary's policy names the queues.
pub(crate) fn policy(manifest: &Manifest, config: &DeployConfig, region: &str) -> Vec<Statement> {
    let primary = region == config.primary();
    let mut out =
        vec![statement("Logs", &["logs:CreateLogStream", "logs:PutLogEvents"], vec![Res::LogGroup])];
    let mut xray = statement("XRay", &["xray:PutTelemetryRecords", "xray:PutTraceSegments"], vec![Res::Any]);
    xray.wildcard_reason = Some("X-Ray trace segments and telemetry have no resource-level permissions");
    out.push(xray);
    for table in &manifest.tables {
        let actions: Vec<String> = table.actions.iter().map(|a| format!("dynamodb:{a}")).collect();
        out.push(Statement {
            sid: format!("Table{}", camel(&table.name)),
            actions,
            resources: vec![Res::Table(table.name.clone())],
            wildcard_reason: None,
        });
        if table.actions.iter().any(|a| a == "Query") && !table.indexes.is_empty() {
            out.push(statement(
                &format!("Index{}", camel(&table.name)),
                &["dynamodb:Query"],
                table.indexes.iter().map(|i| Res::Index(table.name.clone(), i.name.clone())).collect(),
            ));
        }
    }
    for table in streamed_tables(manifest, &config.table_prefix()) {
        out.push(statement(
            &format!("Stream{}", camel(&table.name)),
            &["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            vec![Res::Stream(table.name.clone())],
        ));
    }
    if manifest.event_sources.iter().any(|s| matches!(s, EventSourceSpec::DynamodbStream { .. })) {
        let mut list = statement("ListStreams", &["dynamodb:ListStreams"], vec![Res::Any]);
        list.wildcard_reason = Some("dynamodb:ListStreams has no resource-level permissions");
        out.push(list);
    }
    if primary && !config.events.sqs_queues.is_empty() {
        out.push(statement(
            "Queues",
            &[
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ],
            config.events.sqs_queues.iter().map(|q| Res::Arn(q.clone())).collect(),
        ));
    }
    out.push(statement("DeadLetters", &["sqs:SendMessage"], vec![Res::Dlq]));
    // The queue and the environment are encrypted under the data key.
    out.push(statement("DataKey", &["kms:Decrypt", "kms:GenerateDataKey"], vec![Res::DataKey]));
    if let Some(key) = envelope_key_in(config, region) {
        out.push(statement(
            "EnvelopeKey",
            &["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            vec![Res::Arn(key.to_owned())],
        ));
    }
    let secrets = secrets_in(config, region);
    if !secrets.is_empty() {
        out.push(statement(
            "Secrets",
            &["secretsmanager:GetSecretValue"],
            secrets.into_iter().map(|(_, arn)| Res::Arn(arn.to_owned())).collect(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::RequirementSpec;

    fn route(method: &str, path: &str, reqs: Vec<RequirementSpec>) -> RouteSpec {
        RouteSpec { method: method.into(), path: path.into(), requirements: reqs }
    }

    #[test]
    fn route_keys_use_api_gateway_syntax() {
        assert_eq!(route_key(&route("POST", "/payments/:id/refunds", vec![])), "POST /payments/{id}/refunds");
        assert_eq!(route_key(&route("GET", "/files/*rest", vec![])), "GET /files/{rest+}");
        assert_eq!(camel("lift-audit-checkpoints"), "LiftAuditCheckpoints");
        assert_eq!(snake("lift-audit"), "lift_audit");
    }

    #[test]
    fn only_any_of_scopes_go_to_the_authorizer() {
        let scope = |all, names: &[&str]| RequirementSpec {
            kind: "scope".into(),
            all,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        };
        assert_eq!(route_auth(&route("GET", "/", vec![])), None);
        assert_eq!(
            route_auth(&route("GET", "/", vec![scope(false, &["a", "b"])])),
            Some(vec!["a".into(), "b".into()])
        );
        // API Gateway would accept a token with either scope: leave "all of" to the function.
        assert_eq!(route_auth(&route("GET", "/", vec![scope(true, &["a", "b"])])), Some(vec![]));
        let role = RequirementSpec { kind: "role".into(), all: false, names: vec!["admin".into()] };
        assert_eq!(route_auth(&route("GET", "/", vec![role])), Some(vec![]));
    }
}
