//! Shared by the integration tests: synthetic EMF streams in lift's format.

#![allow(dead_code, unreachable_pub)]

use lift_monitoring::evaluator::{AlertState, Report, Transition};
use lift_monitoring::slo::SloFile;

/// 2026-01-01T00:00:00Z, a minute boundary.
pub const T0_MS: i64 = 1_767_225_600_000;

/// The start of minute `m` of a series.
pub fn minute(m: i64) -> i64 {
    T0_MS + m * 60_000
}

/// One request's EMF document as lift's metrics layer writes it: `Requests`, `Latency`,
/// `4xx`, `5xx`, published under each of `sets` (dimension keys), with `dims` values.
pub fn request_doc(
    ts_ms: i64,
    sets: &[&[&str]],
    dims: &[(&str, &str)],
    server_error: bool,
    latency_ms: f64,
) -> String {
    let sets: Vec<Vec<&str>> = sets.iter().map(|s| s.to_vec()).collect();
    let mut doc = serde_json::json!({
        "_aws": {
            "Timestamp": ts_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Payments",
                "Dimensions": sets,
                "Metrics": [
                    {"Name": "Requests", "Unit": "Count"},
                    {"Name": "Latency", "Unit": "Milliseconds"},
                    {"Name": "4xx", "Unit": "Count"},
                    {"Name": "5xx", "Unit": "Count"}
                ]
            }]
        },
        "Requests": 1.0,
        "Latency": latency_ms,
        "4xx": 0.0,
        "5xx": if server_error { 1.0 } else { 0.0 },
    });
    for (k, v) in dims {
        doc[*k] = serde_json::Value::from(*v);
    }
    doc.to_string()
}

/// `per_minute` requests in each minute of `minutes`, the first `errors(m)` of minute `m`
/// answered 5xx, spread 500 ms apart from the minute's start, service-wide (dimension set `[]`).
pub fn series(
    minutes: std::ops::RangeInclusive<i64>,
    per_minute: i64,
    errors: impl Fn(i64) -> i64,
) -> Vec<String> {
    let mut lines = Vec::new();
    for m in minutes {
        let bad = errors(m);
        for k in 0..per_minute {
            lines.push(request_doc(minute(m) + k * 500, &[&[]], &[], k < bad, 20.0));
        }
    }
    lines
}

/// An SLO file: `[service]` for namespace Payments, then `body`.
pub fn slo_file(body: &str) -> SloFile {
    SloFile::parse(&format!("[service]\nname = \"payments\"\nnamespace = \"Payments\"\n{body}")).unwrap()
}

/// Feeds the lines to a fresh evaluator in order and reports.
pub fn evaluate(file: SloFile, lines: &[String]) -> Report {
    let mut evaluator = lift_monitoring::evaluator::Evaluator::new(file);
    for line in lines {
        assert!(evaluator.observe_line(line).unwrap(), "not an EMF document: {line}");
    }
    evaluator.finish()
}

/// The transitions as (minute of the series, alert, state), for comparing with hand arithmetic.
pub fn timeline(transitions: &[Transition]) -> Vec<(i64, String, AlertState)> {
    transitions
        .iter()
        .map(|t| {
            assert_eq!((t.at_ms - T0_MS) % 60_000, 0, "transitions happen at minute boundaries");
            ((t.at_ms - T0_MS) / 60_000, t.alert.clone(), t.state)
        })
        .collect()
}

/// CloudWatch metric math as far as the alarms use it: numbers, metric ids, `+ - * /`,
/// parentheses, `>=` (1 or 0), `IF(condition, then, else)` and `FILL(metric, value)`, on
/// single values. A metric missing from `values` has no data, `NaN` here: it stays missing
/// through arithmetic, comparisons and `IF` (as a datapoint CloudWatch cannot compute), and
/// `FILL` replaces it.
pub fn metric_math(expression: &str, values: &[(&str, f64)]) -> f64 {
    let mut tokens = Vec::new();
    let chars: Vec<char> = expression.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect::<String>());
        } else if c == '>' && chars.get(i + 1) == Some(&'=') {
            tokens.push(">=".to_owned());
            i += 2;
        } else {
            tokens.push(c.to_string());
            i += 1;
        }
    }
    struct Parser<'a> {
        tokens: Vec<String>,
        at: usize,
        values: &'a [(&'a str, f64)],
    }
    impl Parser<'_> {
        fn next(&mut self) -> String {
            self.at += 1;
            self.tokens.get(self.at - 1).cloned().unwrap_or_else(|| panic!("expression ends early"))
        }
        fn peek(&self) -> Option<&str> {
            self.tokens.get(self.at).map(String::as_str)
        }
        fn expect(&mut self, token: &str) {
            assert_eq!(self.next(), token);
        }
        fn comparison(&mut self) -> f64 {
            let left = self.sum();
            if self.peek() == Some(">=") {
                self.next();
                let right = self.sum();
                if left.is_nan() || right.is_nan() {
                    return f64::NAN;
                }
                return f64::from(u8::from(left >= right));
            }
            left
        }
        fn sum(&mut self) -> f64 {
            let mut value = self.product();
            while let Some(op @ ("+" | "-")) = self.peek() {
                let plus = op == "+";
                self.next();
                let right = self.product();
                value = if plus { value + right } else { value - right };
            }
            value
        }
        fn product(&mut self) -> f64 {
            let mut value = self.atom();
            while let Some(op @ ("*" | "/")) = self.peek() {
                let times = op == "*";
                self.next();
                let right = self.atom();
                value = if times { value * right } else { value / right };
            }
            value
        }
        fn atom(&mut self) -> f64 {
            let token = self.next();
            match token.as_str() {
                "(" => {
                    let value = self.comparison();
                    self.expect(")");
                    value
                }
                "IF" => {
                    self.expect("(");
                    let condition = self.comparison();
                    self.expect(",");
                    let then = self.comparison();
                    self.expect(",");
                    let otherwise = self.comparison();
                    self.expect(")");
                    if condition.is_nan() {
                        f64::NAN
                    } else if condition != 0.0 {
                        then
                    } else {
                        otherwise
                    }
                }
                "FILL" => {
                    self.expect("(");
                    let value = self.comparison();
                    self.expect(",");
                    let fill = self.comparison();
                    self.expect(")");
                    if value.is_nan() {
                        fill
                    } else {
                        value
                    }
                }
                _ => token.parse().unwrap_or_else(|_| {
                    assert!(
                        token.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                        "unknown function or metric id {token}"
                    );
                    self.values.iter().find(|(id, _)| *id == token).map_or(f64::NAN, |(_, v)| *v)
                }),
            }
        }
    }
    let mut parser = Parser { tokens, at: 0, values };
    let value = parser.comparison();
    assert_eq!(parser.peek(), None, "{expression}: trailing tokens");
    value
}

/// What alarm `id` of `fragment` reads with its metrics at `values` (a metric left out has
/// no data), the stack's parameters at their defaults: `NaN` when it has no data.
pub fn alarm_value(fragment: &serde_json::Value, id: &str, values: &[(&str, f64)]) -> f64 {
    let metrics = fragment["Resources"][id]["Properties"]["Metrics"].as_array().unwrap();
    let returned = metrics.iter().find(|m| m["ReturnData"] == true).unwrap();
    let ids: Vec<&str> = metrics.iter().filter_map(|m| m["Id"].as_str()).collect();
    for (name, _) in values {
        assert!(ids.contains(name), "{id} has no metric {name}");
    }
    let expression = match &returned["Expression"] {
        serde_json::Value::String(e) => e.clone(),
        other => other["Fn::Sub"].as_str().unwrap_or_else(|| panic!("{id}: {other}")).to_owned(),
    };
    metric_math(&with_defaults(fragment, &expression), values)
}

/// `text` with every `${Parameter}` of `fragment` replaced by its default.
pub fn with_defaults(fragment: &serde_json::Value, text: &str) -> String {
    let mut text = text.to_owned();
    for (name, parameter) in fragment["Parameters"].as_object().unwrap() {
        let default = match &parameter["Default"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text = text.replace(&format!("${{{name}}}"), &default);
    }
    assert!(!text.contains("${"), "{text}");
    text
}

/// Alarm `id`'s threshold, a `Ref` to a parameter read at its default.
pub fn alarm_threshold(fragment: &serde_json::Value, id: &str) -> f64 {
    let threshold = &fragment["Resources"][id]["Properties"]["Threshold"];
    threshold.as_f64().unwrap_or_else(|| {
        let name = threshold["Ref"].as_str().unwrap_or_else(|| panic!("{id}: {threshold}"));
        fragment["Parameters"][name]["Default"].as_f64().unwrap_or_else(|| panic!("{name} has no default"))
    })
}

/// Whether alarm `id` is in ALARM with its metrics at `values`: above its threshold
/// (`GreaterThanThreshold`), and no data does not breach (`TreatMissingData: notBreaching`).
pub fn alarm_breaches(fragment: &serde_json::Value, id: &str, values: &[(&str, f64)]) -> bool {
    let p = &fragment["Resources"][id]["Properties"];
    assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{id}");
    assert_eq!(p["TreatMissingData"], "notBreaching", "{id}");
    let value = alarm_value(fragment, id, values);
    !value.is_nan() && value > alarm_threshold(fragment, id)
}
