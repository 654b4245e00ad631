//! The SLO file's alert rules as CloudWatch alarms: a CloudFormation template fragment.
//!
//! For each SLO and rule, three resources:
//!
//! - `<Id>Long` and `<Id>Short`, `AWS::CloudWatch::Alarm`s whose metric math computes the
//!   error ratio over one window (`Period` = the window, one evaluation period), in ALARM
//!   when it is above the rule's threshold, `TreatMissingData: notBreaching`:
//!   - availability: `bad / requests` with `bad` the `Sum` of `5xx` and `requests` the
//!     `Sum` of `Requests`;
//!   - latency: `(100 - good) / 100` with `good` the `PR(:threshold)` of `Latency` (the
//!     percentage of values at or below the threshold), `requests` its `SampleCount`;
//!   - the long window counts only with at least [`MIN_REQUESTS_PARAMETER`] requests in it
//!     (`IF(requests >= ${SloMinRequests}, bad / requests, 0)`, default
//!     [`DEFAULT_MIN_REQUESTS`]): at low traffic one error is a large ratio (one 5xx in 60
//!     requests is 1.7%, above the 1.44% a 99.9% SLO pages at), and a page on it is noise.
//!     The short window only confirms the burn is still going on, so it has no minimum:
//!     one there would keep a real outage of a quiet service from paging for longer;
//! - `<Id>`, an `AWS::CloudWatch::CompositeAlarm`, `ALARM(long) AND ALARM(short)`: the
//!   alert, with the actions (the `SloPageTopicArn` or `SloTicketTopicArn` parameter, when
//!   not empty) on ALARM and OK.
//!
//! And one for the service, when the file has a service-wide SLO
//! ([`SloFile::outage_slo`]): `<Service>Outage`, an `AWS::CloudWatch::Alarm` named
//! `<service>-outage` that pages on a total or partial outage the SLO alarms cannot see.
//! Those read the EMF metrics the function writes itself; an init failure, a crash, an
//! out-of-memory kill or a timeout writes none, and a window without data does not breach.
//! Over [`SloFile::outage_window`] (the shortest page window, 5 minutes by default) it
//! compares the function's `AWS/Lambda` `Invocations` (`Sum`, dimension `FunctionName` =
//! the [`FUNCTION_NAME_PARAMETER`] parameter, no default: a stack must say which function)
//! with the SLO's requests, and reads the percentage of invocations that counted no request,
//! `IF(invocations >= ${SloOutageMinInvocations}, 100 - 100 * FILL(requests, 0) / invocations, 0)`,
//! in ALARM above [`OUTAGE_PERCENT_PARAMETER`] (default [`DEFAULT_OUTAGE_PERCENT`]). No
//! invocations, no data: `TreatMissingData: notBreaching` keeps a service without traffic
//! quiet; invocations without EMF read 100. It carries the page actions itself and
//! `[severity=page kind=outage slo=<slo>]`. `AWS/Lambda` `Errors` are not added: a handled
//! error writes its EMF (a `5xx`) and would count twice, and the invocations that wrote
//! nothing are the failures the SLO cannot see.
//!
//! Descriptions end in a label block, `[key=value ...]`, the form the alert router reads
//! (`examples/alert-router`): an alert's holds its SLO's `route` and `tenant`, when the SLO
//! has them; a window alarm's holds [`WINDOW_LABEL`] (`[lift_window=long]`), marking it as
//! a part of an alert, not an alert. CloudWatch sends the state changes of every alarm to
//! EventBridge, whether its actions are enabled or not, so a router must tell them apart.
//!
//! The windows, thresholds and dimensions come from [`SloFile`], as the local
//! [`evaluator`](crate::evaluator)'s do. The fragment is a JSON object with `Parameters`,
//! `Conditions` and `Resources`, to merge into a template; [`template`] wraps it into a
//! whole one.
//!
//! # Examples
//!
//! ```
//! use lift_monitoring::{alarms, slo::SloFile};
//! let file = SloFile::parse(r#"
//!     [service]
//!     name = "payments"
//!     namespace = "Payments"
//!     [[slo]]
//!     name = "availability"
//!     kind = "availability"
//!     objective = 99.9
//! "#)?;
//! let fragment = alarms::fragment(&file);
//! let alert = &fragment["Resources"]["PaymentsAvailabilityPageFast"];
//! assert_eq!(alert["Type"], "AWS::CloudWatch::CompositeAlarm");
//! assert_eq!(fragment["Resources"]["PaymentsAvailabilityPageFastLong"]["Properties"]["Metrics"][0]["MetricStat"]["Period"], 3600);
//! # Ok::<(), lift_monitoring::slo::SloError>(())
//! ```

use serde_json::{json, Map, Value};

use crate::slo::{
    AlertRule, Severity, Slo, SloFile, SloKind, Window, LATENCY, OUTAGE_ALERT, REQUESTS, SERVER_ERRORS,
};

/// The parameter holding the SNS topic ARN pages are sent to (empty: no action).
pub const PAGE_TOPIC_PARAMETER: &str = "SloPageTopicArn";
/// The parameter holding the SNS topic ARN tickets are sent to (empty: no action).
pub const TICKET_TOPIC_PARAMETER: &str = "SloTicketTopicArn";
/// The parameter holding the fewest requests a long window needs for its ratio to count
/// (fewer: 0, no breach). The local [`evaluator`](crate::evaluator) applies the same rule
/// ([`Evaluator::with_min_requests`](crate::evaluator::Evaluator::with_min_requests)).
pub const MIN_REQUESTS_PARAMETER: &str = "SloMinRequests";
/// The default of [`MIN_REQUESTS_PARAMETER`]. From `1 / threshold` requests on, one error
/// alone cannot breach a rule: 200 (one error is 0.5%) covers both workbook page rules of a
/// 99.9% SLO (above 1.44% over 1h, above 0.6% over 6h). A stricter SLO needs more (99.99%:
/// 1,667 for its 6h page) or one error can page; a higher minimum keeps a quiet service's
/// outage from paging until its window holds that many requests.
pub const DEFAULT_MIN_REQUESTS: u32 = 200;
/// The parameter naming the Lambda function whose invocations the outage alarm counts (no
/// default: the stack deploying the function passes its name).
pub const FUNCTION_NAME_PARAMETER: &str = "SloFunctionName";
/// The parameter holding the fewest invocations in the outage window for the outage alarm
/// to read them (fewer: 0, no breach). The local [`evaluator`](crate::evaluator) applies the
/// same rule ([`Evaluator::with_outage_min_invocations`](crate::evaluator::Evaluator::with_outage_min_invocations)).
pub const OUTAGE_MIN_INVOCATIONS_PARAMETER: &str = "SloOutageMinInvocations";
/// The default of [`OUTAGE_MIN_INVOCATIONS_PARAMETER`]: one failed cold start alone does
/// not page, three failed invocations in five minutes do.
pub const DEFAULT_OUTAGE_MIN_INVOCATIONS: u32 = 3;
/// The parameter holding the percentage of invocations without a request above which the
/// outage alarm pages (the [`evaluator`](crate::evaluator)'s
/// [`with_outage_percent`](crate::evaluator::Evaluator::with_outage_percent)).
pub const OUTAGE_PERCENT_PARAMETER: &str = "SloOutagePercent";
/// The default of [`OUTAGE_PERCENT_PARAMETER`]: more than half of the invocations failed
/// before answering. Invocations that never write lift's EMF (a schedule, a queue without
/// the metrics layer) count as failed: raise it for a function that has them.
pub const DEFAULT_OUTAGE_PERCENT: u8 = 50;
/// The label in a window alarm's description (`[lift_window=long]`, `[lift_window=short]`):
/// the alarm is one window of an alert, not an alert.
pub const WINDOW_LABEL: &str = "lift_window";

fn topic(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Page => (PAGE_TOPIC_PARAMETER, "SloHasPageTopic"),
        Severity::Ticket => (TICKET_TOPIC_PARAMETER, "SloHasTicketTopic"),
    }
}

/// The CloudFormation fragment: `Parameters`, `Conditions` and `Resources`.
pub fn fragment(file: &SloFile) -> Value {
    let mut parameters = Map::new();
    let mut conditions = Map::new();
    let outage = file.outage_slo();
    for severity in [Severity::Page, Severity::Ticket] {
        let pages_outage = severity == Severity::Page && outage.is_some();
        if pages_outage || file.alerts().iter().any(|r| r.severity() == severity) {
            let (param, condition) = topic(severity);
            parameters.insert(
                param.to_owned(),
                json!({
                    "Type": "String",
                    "Default": "",
                    "Description": format!("SNS topic ARN for SLO {severity}s of {} (empty: none)", file.service().name()),
                }),
            );
            conditions
                .insert(condition.to_owned(), json!({"Fn::Not": [{"Fn::Equals": [{"Ref": param}, ""]}]}));
        }
    }
    let mut resources = Map::new();
    if !file.slos().is_empty() && !file.alerts().is_empty() {
        parameters.insert(
            MIN_REQUESTS_PARAMETER.to_owned(),
            json!({
                "Type": "Number",
                "Default": DEFAULT_MIN_REQUESTS,
                "MinValue": 1,
                "Description": "Fewest requests in an SLO alert's long window for its error ratio to count (fewer: no alert): one error among a few requests is noise, not a burn",
            }),
        );
    }
    for slo in file.slos() {
        for rule in file.alerts() {
            let id = slo.alarm_id(file.service(), rule);
            let name = slo.alarm_name(file.service(), rule);
            for (suffix, window) in [("Long", rule.long_window()), ("Short", rule.short_window())] {
                resources
                    .insert(format!("{id}{suffix}"), window_alarm(file, slo, rule, &name, suffix, window));
            }
            let (param, condition) = topic(rule.severity());
            let actions = json!({"Fn::If": [condition, [{"Ref": param}], {"Ref": "AWS::NoValue"}]});
            let mut description = format!(
                "{} SLO {} ({}): error ratio above {}x its budget over {} and {}",
                rule.severity(),
                slo.name(),
                objective_text(slo),
                rule.burn_rate(),
                rule.long_window(),
                rule.short_window()
            );
            if let Some(runbook) = slo.runbook() {
                description.push_str(&format!(". Runbook: {runbook}"));
            }
            description.push_str(&scope_labels(slo));
            resources.insert(
                id.clone(),
                json!({
                    "Type": "AWS::CloudWatch::CompositeAlarm",
                    "Properties": {
                        "AlarmName": name,
                        "AlarmDescription": description,
                        "AlarmRule": {"Fn::Sub": format!("ALARM(\"${{{id}Long.Arn}}\") AND ALARM(\"${{{id}Short.Arn}}\")")},
                        "ActionsEnabled": true,
                        "AlarmActions": actions,
                        "OKActions": actions,
                    }
                }),
            );
        }
    }
    if let Some(slo) = outage {
        for (name, parameter) in outage_parameters() {
            parameters.insert(name.to_owned(), parameter);
        }
        resources.insert(file.outage_alarm_id(), outage_alarm(file, slo));
    }
    json!({"Parameters": parameters, "Conditions": conditions, "Resources": resources})
}

fn outage_parameters() -> [(&'static str, Value); 3] {
    [
        (
            FUNCTION_NAME_PARAMETER,
            json!({
                "Type": "String",
                "MinLength": 1,
                "Description": "The Lambda function the SLOs' requests come from: the outage alarm pages when its invocations count no requests",
            }),
        ),
        (
            OUTAGE_MIN_INVOCATIONS_PARAMETER,
            json!({
                "Type": "Number",
                "Default": DEFAULT_OUTAGE_MIN_INVOCATIONS,
                "MinValue": 1,
                "Description": "Fewest invocations in the outage window for the outage alarm to read them (fewer: no alarm)",
            }),
        ),
        (
            OUTAGE_PERCENT_PARAMETER,
            json!({
                "Type": "Number",
                "Default": DEFAULT_OUTAGE_PERCENT,
                "MinValue": 0,
                "MaxValue": 100,
                "Description": "Percentage of invocations without a request (crashes, timeouts, init failures) above which the outage alarm pages",
            }),
        ),
    ]
}

/// The outage alarm (see the module's docs).
fn outage_alarm(file: &SloFile, slo: &Slo) -> Value {
    let window = file.outage_window();
    let service = file.service();
    let dimensions: Vec<Value> =
        slo.dimensions(service).into_iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect();
    let (metric, stat) = match slo.kind() {
        SloKind::Availability => (REQUESTS, "Sum"),
        SloKind::Latency => (LATENCY, "SampleCount"),
    };
    let (param, condition) = topic(Severity::Page);
    let actions = json!({"Fn::If": [condition, [{"Ref": param}], {"Ref": "AWS::NoValue"}]});
    let mut description = format!(
        "page {}: over {window}, more than {OUTAGE_PERCENT_PARAMETER} percent of the function's invocations \
         counted no request in SLO {} (crashes, timeouts, init failures: no EMF, so no SLO alarm sees them)",
        service.name(),
        slo.name()
    );
    if let Some(runbook) = slo.runbook() {
        description.push_str(&format!(". Runbook: {runbook}"));
    }
    description.push_str(&format!(" [severity=page kind={OUTAGE_ALERT} slo={}]", slo.name()));
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": file.outage_alarm_name(),
            "AlarmDescription": description,
            "Metrics": [
                {
                    "Id": "invocations",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/Lambda",
                            "MetricName": "Invocations",
                            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": FUNCTION_NAME_PARAMETER}}],
                        },
                        "Period": window.seconds(),
                        "Stat": "Sum",
                    },
                    "ReturnData": false,
                },
                {
                    "Id": "requests",
                    "MetricStat": {
                        "Metric": {"Namespace": service.namespace(), "MetricName": metric, "Dimensions": dimensions},
                        "Period": window.seconds(),
                        "Stat": stat,
                    },
                    "ReturnData": false,
                },
                {
                    "Id": "outage",
                    // No EMF at all is no `requests` data: FILL reads it as 0 requests.
                    "Expression": {"Fn::Sub": format!(
                        "IF(invocations >= ${{{OUTAGE_MIN_INVOCATIONS_PARAMETER}}}, 100 - 100 * FILL(requests, 0) / invocations, 0)"
                    )},
                    "Label": format!("percent of invocations without a request over {window}"),
                    "ReturnData": true,
                },
            ],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": {"Ref": OUTAGE_PERCENT_PARAMETER},
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            // No invocations, no data: a service without traffic has no outage.
            "TreatMissingData": "notBreaching",
            "ActionsEnabled": true,
            "AlarmActions": actions,
            "OKActions": actions,
        }
    })
}

/// A whole template holding only the fragment (for a stack of its own, and for cfn-lint).
pub fn template(file: &SloFile) -> Value {
    let mut template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("SLO burn-rate alarms of {}", file.service().name()),
    });
    if let (Value::Object(t), Value::Object(f)) = (&mut template, fragment(file)) {
        t.extend(f);
    }
    template
}

/// ` [route=/payments tenant=acme]`, or nothing for an SLO of the whole service. The
/// values have no whitespace and no `]` ([`SloFile`] validates it), so the block parses.
fn scope_labels(slo: &Slo) -> String {
    let scope = slo.scope();
    let pairs: Vec<String> = [("route", &scope.route), ("tenant", &scope.tenant)]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={v}")))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!(" [{}]", pairs.join(" "))
    }
}

fn objective_text(slo: &Slo) -> String {
    match (slo.kind(), slo.threshold_ms()) {
        (SloKind::Latency, Some(t)) => format!("{}% of requests within {t} ms", slo.objective()),
        _ => format!("{}% of requests not 5xx", slo.objective()),
    }
}

fn window_alarm(
    file: &SloFile,
    slo: &Slo,
    rule: &AlertRule,
    name: &str,
    suffix: &str,
    window: Window,
) -> Value {
    let dimensions: Vec<Value> =
        slo.dimensions(file.service()).into_iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect();
    let stat = |id: &str, metric: &str, stat: String| {
        json!({
            "Id": id,
            "MetricStat": {
                "Metric": {"Namespace": file.service().namespace(), "MetricName": metric, "Dimensions": dimensions},
                "Period": window.seconds(),
                "Stat": stat,
            },
            "ReturnData": false,
        })
    };
    let long = suffix == "Long";
    // The long window's ratio counts from the minimum number of requests on (see the
    // module's docs); below it the alarm reads 0, which never breaches.
    let expression = |ratio: &str| {
        if long {
            json!({"Fn::Sub": format!("IF(requests >= ${{{MIN_REQUESTS_PARAMETER}}}, {ratio}, 0)")})
        } else {
            json!(ratio)
        }
    };
    let below = if long { format!(", 0 under {MIN_REQUESTS_PARAMETER} requests") } else { String::new() };
    let metrics = match (slo.kind(), slo.threshold_ms()) {
        (SloKind::Latency, Some(t)) => {
            let mut metrics = vec![stat("good", LATENCY, format!("PR(:{t})"))];
            if long {
                metrics.push(stat("requests", LATENCY, "SampleCount".to_owned()));
            }
            metrics.push(json!({"Id": "ratio", "Expression": expression("(100 - good) / 100"), "Label": format!("latency above {t} ms, ratio over {window}{below}"), "ReturnData": true}));
            metrics
        }
        _ => vec![
            stat("bad", SERVER_ERRORS, "Sum".to_owned()),
            stat("requests", REQUESTS, "Sum".to_owned()),
            json!({"Id": "ratio", "Expression": expression("bad / requests"), "Label": format!("5xx ratio over {window}{below}"), "ReturnData": true}),
        ],
    };
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": format!("{name}-{}", suffix.to_ascii_lowercase()),
            "AlarmDescription": format!(
                "SLO {} error ratio over {window} above {}x its budget (part of {name}) [{WINDOW_LABEL}={}]",
                slo.name(),
                rule.burn_rate(),
                suffix.to_ascii_lowercase()
            ),
            "Metrics": metrics,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": rule.threshold(slo),
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "TreatMissingData": "notBreaching",
            "ActionsEnabled": false,
        }
    })
}
