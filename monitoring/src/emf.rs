//! CloudWatch Embedded Metric Format documents, as lift's metrics layer writes them.
//!
//! A document is one JSON object per line: `_aws.Timestamp` (milliseconds since the epoch),
//! `_aws.CloudWatchMetrics[{Namespace, Dimensions: [[key, ...], ...], Metrics: [{Name, Unit}]}]`,
//! then the dimension values and each metric's value (a number or an array of numbers) at
//! the top level. CloudWatch publishes a declared metric once per declared dimension set,
//! and [`EmfDocument::values`] reads it the same way: only under a dimension set that is
//! exactly the one asked for.

use serde_json::{Map, Value};

/// A line that looks like an EMF document but is not one: it has the text `"_aws"` after
/// its first `{` but is not a JSON object, or its `_aws` is not EMF's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an EMF document: {0}")]
pub struct EmfError(String);

/// One metric directive of a document: a namespace, its dimension sets and metric names.
#[derive(Debug, Clone, PartialEq)]
struct Directive {
    namespace: String,
    dimension_sets: Vec<Vec<String>>,
    metrics: Vec<String>,
}

/// A parsed EMF document.
///
/// # Examples
///
/// ```
/// use lift_monitoring::emf::EmfDocument;
/// let line = r#"{"_aws":{"Timestamp":1767225600000,"CloudWatchMetrics":[{"Namespace":"Payments",
///   "Dimensions":[["Route"]],"Metrics":[{"Name":"Requests","Unit":"Count"}]}]},
///   "Route":"/payments","Requests":1}"#.replace('\n', "");
/// let doc = EmfDocument::parse(&line)?.expect("an EMF document");
/// let route = [("Route".to_owned(), "/payments".to_owned())];
/// assert_eq!(doc.values("Payments", &route, "Requests"), Some(vec![1.0]));
/// // Not published without dimensions, nor under another route.
/// assert_eq!(doc.values("Payments", &[], "Requests"), None);
/// # Ok::<(), lift_monitoring::emf::EmfError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EmfDocument {
    timestamp_ms: i64,
    directives: Vec<Directive>,
    members: Map<String, Value>,
}

impl EmfDocument {
    /// Parses one log line. A prefix before the first `{` is skipped, as `lift-harness
    /// lambda serve` (`[function] {...}`) and `aws logs tail` (`<time> <stream> {...}`)
    /// print one. `Ok(None)` when the line is not an EMF document: no `{` (a runtime's
    /// START/END/REPORT line, a text log line), a JSON object without `_aws` (a JSON log
    /// line), or text from the `{` on that is not JSON and does not contain `"_aws"`.
    ///
    /// # Errors
    /// [`EmfError`] when the text from the `{` on contains `"_aws"` but is not one JSON
    /// object (a truncated or joined document), or when its `_aws` is not EMF's, naming
    /// what is missing or malformed.
    pub fn parse(line: &str) -> Result<Option<Self>, EmfError> {
        let Some(start) = line.find('{') else { return Ok(None) };
        let line = line[start..].trim_end();
        let mut members = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(members)) => members,
            // Skipping a broken document would under-count its requests.
            Err(e) if line.contains("\"_aws\"") => {
                return Err(EmfError(format!("a line with \"_aws\" that is not a JSON object ({e})")))
            }
            _ => return Ok(None),
        };
        let Some(aws) = members.remove("_aws") else { return Ok(None) };
        let err = |what: &str| EmfError(what.to_owned());
        let timestamp_ms = aws
            .get("Timestamp")
            .and_then(|t| t.as_i64().or_else(|| t.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)))
            .ok_or_else(|| err("`_aws.Timestamp` is missing or not a number"))?;
        let list = aws
            .get("CloudWatchMetrics")
            .and_then(Value::as_array)
            .ok_or_else(|| err("`_aws.CloudWatchMetrics` is missing or not an array"))?;
        let mut directives = Vec::with_capacity(list.len());
        for d in list {
            let namespace = d
                .get("Namespace")
                .and_then(Value::as_str)
                .ok_or_else(|| err("a directive's `Namespace` is missing or not a string"))?
                .to_owned();
            let dimension_sets = d
                .get("Dimensions")
                .and_then(Value::as_array)
                .ok_or_else(|| err("a directive's `Dimensions` is missing or not an array"))?
                .iter()
                .map(|set| {
                    set.as_array()
                        .and_then(|keys| keys.iter().map(|k| k.as_str().map(str::to_owned)).collect())
                        .ok_or_else(|| err("a dimension set is not an array of strings"))
                })
                .collect::<Result<Vec<Vec<String>>, _>>()?;
            let metrics = d
                .get("Metrics")
                .and_then(Value::as_array)
                .ok_or_else(|| err("a directive's `Metrics` is missing or not an array"))?
                .iter()
                .map(|m| {
                    m.get("Name")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| err("a metric has no `Name`"))
                })
                .collect::<Result<Vec<String>, _>>()?;
            directives.push(Directive { namespace, dimension_sets, metrics });
        }
        Ok(Some(Self { timestamp_ms, directives, members }))
    }

    /// `_aws.Timestamp`: when the metrics were recorded, in milliseconds since the epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// The values of `metric` as CloudWatch would publish them under exactly the dimensions
    /// `dims` in `namespace`: the document must declare the metric in that namespace with a
    /// dimension set of exactly those keys (in any order), and carry those values. `None`
    /// when it does not, or when a value is not a finite number.
    pub fn values(&self, namespace: &str, dims: &[(String, String)], metric: &str) -> Option<Vec<f64>> {
        let declared = self.directives.iter().any(|d| {
            d.namespace == namespace
                && d.metrics.iter().any(|m| m == metric)
                && d.dimension_sets.iter().any(|set| same_keys(set, dims))
        });
        if !declared {
            return None;
        }
        let matches =
            dims.iter().all(|(k, v)| self.members.get(k).and_then(Value::as_str) == Some(v.as_str()));
        if !matches {
            return None;
        }
        let number = |v: &Value| v.as_f64().filter(|f| f.is_finite());
        match self.members.get(metric)? {
            Value::Array(values) => values.iter().map(number).collect(),
            value => number(value).map(|v| vec![v]),
        }
    }
}

fn same_keys(set: &[String], dims: &[(String, String)]) -> bool {
    set.len() == dims.len()
        && dims.iter().all(|(k, _)| set.contains(k))
        && set.iter().all(|k| dims.iter().any(|(d, _)| d == k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_are_not_emf_are_skipped_and_broken_emf_is_an_error() {
        for line in ["", "START RequestId: 1 Version: $LATEST", "{\"level\":\"INFO\"}", "[1,2]", "{not json"]
        {
            assert_eq!(EmfDocument::parse(line), Ok(None), "{line}");
        }
        let no_timestamp = r#"{"_aws":{"CloudWatchMetrics":[]}}"#;
        assert!(EmfDocument::parse(no_timestamp).unwrap_err().to_string().contains("_aws.Timestamp"));
        let bad_set = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[1]],"Metrics":[]}]}}"#;
        assert!(EmfDocument::parse(bad_set).unwrap_err().to_string().contains("dimension set"));
    }

    #[test]
    fn a_truncated_or_joined_document_is_an_error_and_other_text_is_skipped() {
        let doc = r#"{"_aws":{"Timestamp":7,"CloudWatchMetrics":[]},"Requests":1}"#;
        for line in [&doc[..30], &format!("[payments] {}", &doc[..doc.len() - 1]), &format!("{doc}{doc}")] {
            let err = EmfDocument::parse(line).unwrap_err().to_string();
            assert!(err.contains("\"_aws\"") && err.contains("not a JSON object"), "{line}: {err}");
        }
        for line in [
            "REPORT RequestId: 1 Duration: 2.00 ms Billed Duration: 2 ms",
            "panicked at src/main.rs: no \"_aws\" key",
            "{\"level\":\"INFO\",\"message\":\"read {\\\"_aws\\\": ...}\"}",
            "{\"level\":\"INFO\",\"mess",
        ] {
            assert_eq!(EmfDocument::parse(line), Ok(None), "{line}");
        }
    }

    #[test]
    fn a_prefix_before_the_document_is_skipped() {
        let doc = r#"{"_aws":{"Timestamp":7,"CloudWatchMetrics":[]}}"#;
        for line in
            [format!("[payments] {doc}"), format!("2026-01-01T00:00:00.000Z 2026/01/01/[$LATEST]abc {doc}")]
        {
            assert_eq!(EmfDocument::parse(&line).unwrap().map(|d| d.timestamp_ms()), Some(7), "{line}");
        }
        assert_eq!(EmfDocument::parse("[payments] {\"level\":\"INFO\"}"), Ok(None));
    }

    #[test]
    fn values_need_the_exact_dimension_set_and_its_values() {
        let line = r#"{"_aws":{"Timestamp":5,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Tenant","Route"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"}]}]},"Tenant":"t1","Route":"/r","Latency":[1,2.5]}"#;
        let doc = EmfDocument::parse(line).unwrap().unwrap();
        let d = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
        };
        assert_eq!(
            doc.values("N", &d(&[("Route", "/r"), ("Tenant", "t1")]), "Latency"),
            Some(vec![1.0, 2.5])
        );
        assert_eq!(doc.values("N", &d(&[("Route", "/r"), ("Tenant", "t2")]), "Latency"), None);
        assert_eq!(doc.values("N", &d(&[("Route", "/r")]), "Latency"), None);
        assert_eq!(doc.values("Other", &d(&[("Route", "/r"), ("Tenant", "t1")]), "Latency"), None);
        assert_eq!(doc.values("N", &d(&[("Route", "/r"), ("Tenant", "t1")]), "Requests"), None);
    }
}
