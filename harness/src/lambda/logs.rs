//! What CloudWatch Logs would hold for a function: each sandbox's output line by line, the
//! `START`, `END` and `REPORT` lines Lambda writes, and the EMF documents picked out of the
//! output as metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One line of a function's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The function.
    pub function: String,
    /// The sandbox's log stream.
    pub stream: String,
    /// The text, without its newline.
    pub message: String,
}

impl LogLine {
    /// The function version that wrote the line, from the `[N]` of its log stream
    /// (`2024/05/01/[3]8f1c...`); `None` for a line outside any sandbox's stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift_harness::lambda::LogLine;
    ///
    /// let line = LogLine { function: "f".into(), stream: "2024/05/01/[3]8f1c".into(), message: "hi".into() };
    /// assert_eq!(line.version(), Some("3"));
    /// ```
    pub fn version(&self) -> Option<&str> {
        stream_version(&self.stream)
    }
}

/// The version in a log stream name (`YYYY/MM/DD/[version]id`).
pub(crate) fn stream_version(stream: &str) -> Option<&str> {
    let (_, rest) = stream.split_once('[')?;
    rest.split_once(']').map(|(version, _)| version)
}

/// One invocation's `REPORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The request id.
    pub request_id: String,
    /// From the event handed over to the answer (or the kill).
    pub duration: Duration,
    /// What is billed, in whole milliseconds: the duration rounded up, plus the init phase
    /// on a cold start (Lambda bills the init of OS-only runtimes).
    pub billed_ms: u64,
    /// The configured memory size.
    pub memory_size_mb: u32,
    /// The sandbox's measured peak memory, in MB.
    pub max_memory_used_mb: u64,
    /// The init phase, on cold starts only.
    pub init_duration: Option<Duration>,
    /// `timeout` or `error` when the invocation failed in the sandbox.
    pub status: Option<String>,
    /// The error type, when it failed.
    pub error_type: Option<String>,
}

impl Report {
    /// The `REPORT` line as Lambda prints it.
    pub fn line(&self) -> String {
        let mut line = format!(
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
            self.request_id,
            ms(self.duration),
            self.billed_ms,
            self.memory_size_mb,
            self.max_memory_used_mb
        );
        if let Some(init) = self.init_duration {
            line.push_str(&format!("Init Duration: {:.2} ms\t", ms(init)));
        }
        if let Some(status) = &self.status {
            line.push_str(&format!("Status: {status}\t"));
        }
        if let Some(error_type) = &self.error_type {
            line.push_str(&format!("Error Type: {error_type}\t"));
        }
        line
    }

    /// Billed milliseconds: the duration rounded up to 1 ms, plus the init phase.
    pub fn billed(duration: Duration, init: Option<Duration>) -> u64 {
        let total = duration + init.unwrap_or_default();
        (total.as_micros().div_ceil(1000) as u64).max(1)
    }
}

/// Milliseconds with fractions.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One metric value from an EMF document.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfMetric {
    /// The function whose output held it.
    pub function: String,
    /// The CloudWatch namespace.
    pub namespace: String,
    /// The metric name.
    pub name: String,
    /// The value (each value of an array value is its own entry).
    pub value: f64,
    /// The unit, when declared.
    pub unit: Option<String>,
    /// The dimension names and their values in the document.
    pub dimensions: Vec<(String, String)>,
}

/// Picks the metrics out of one line when it is an EMF document (a JSON object with
/// `_aws.CloudWatchMetrics`); anything else gives none.
pub fn emf_metrics(function: &str, line: &str) -> Vec<EmfMetric> {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') || !trimmed.contains("CloudWatchMetrics") {
        return Vec::new();
    }
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(trimmed) else { return Vec::new() };
    let Some(directives) = doc["_aws"]["CloudWatchMetrics"].as_array() else { return Vec::new() };
    let mut out = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().unwrap_or_default().to_owned();
        let dimensions: Vec<(String, String)> = directive["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|set| set.as_array())
            .flatten()
            .filter_map(|d| d.as_str())
            .map(|d| (d.to_owned(), doc[d].as_str().map(str::to_owned).unwrap_or_else(|| doc[d].to_string())))
            .collect();
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            let Some(name) = metric["Name"].as_str() else { continue };
            let unit = metric["Unit"].as_str().map(str::to_owned);
            let values: Vec<f64> = match &doc[name] {
                serde_json::Value::Array(values) => values.iter().filter_map(|v| v.as_f64()).collect(),
                v => v.as_f64().into_iter().collect(),
            };
            for value in values {
                out.push(EmfMetric {
                    function: function.to_owned(),
                    namespace: namespace.clone(),
                    name: name.to_owned(),
                    value,
                    unit: unit.clone(),
                    dimensions: dimensions.clone(),
                });
            }
        }
    }
    out
}

/// Where every sandbox's output, Lambda's own lines and the EMF metrics collect.
#[derive(Debug, Clone, Default)]
pub struct LogSink {
    inner: Arc<Mutex<SinkState>>,
    echo: bool,
}

#[derive(Debug, Default)]
struct SinkState {
    lines: Vec<LogLine>,
    /// Function, log stream, report.
    reports: Vec<(String, String, Report)>,
    metrics: Vec<EmfMetric>,
}

impl LogSink {
    /// A sink that also prints each line to stderr (for `lambda serve`) or not (for tests).
    pub fn new(echo: bool) -> Self {
        Self { inner: Arc::default(), echo }
    }

    /// Records a line of `function`'s log, and its metrics when it is an EMF document.
    pub fn push(&self, function: &str, stream: &str, message: String) {
        if self.echo {
            eprintln!("[{function}] {message}");
        }
        let metrics = emf_metrics(function, &message);
        let mut state = self.inner.lock().expect("not poisoned");
        state.metrics.extend(metrics);
        state.lines.push(LogLine { function: function.to_owned(), stream: stream.to_owned(), message });
    }

    /// Records a `REPORT` (and prints its line into the log).
    pub fn report(&self, function: &str, stream: &str, report: Report) {
        self.push(function, stream, report.line());
        let entry = (function.to_owned(), stream.to_owned(), report);
        self.inner.lock().expect("not poisoned").reports.push(entry);
    }

    /// `function`'s log so far.
    pub fn lines(&self, function: &str) -> Vec<LogLine> {
        let state = self.inner.lock().expect("not poisoned");
        state.lines.iter().filter(|l| l.function == function).cloned().collect()
    }

    /// `function`'s reports so far.
    pub fn reports(&self, function: &str) -> Vec<Report> {
        let state = self.inner.lock().expect("not poisoned");
        state.reports.iter().filter(|(f, _, _)| f == function).map(|(_, _, r)| r.clone()).collect()
    }

    /// The reports of `function`'s `version` so far.
    pub fn reports_of(&self, function: &str, version: &str) -> Vec<Report> {
        let state = self.inner.lock().expect("not poisoned");
        state
            .reports
            .iter()
            .filter(|(f, stream, _)| f == function && stream_version(stream) == Some(version))
            .map(|(_, _, r)| r.clone())
            .collect()
    }

    /// Every metric so far.
    pub fn metrics(&self) -> Vec<EmfMetric> {
        self.inner.lock().expect("not poisoned").metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_has_lambdas_fields_and_init_only_when_cold() {
        let mut report = Report {
            request_id: "r-1".into(),
            duration: Duration::from_micros(12_345),
            billed_ms: Report::billed(Duration::from_micros(12_345), None),
            memory_size_mb: 512,
            max_memory_used_mb: 20,
            init_duration: None,
            status: None,
            error_type: None,
        };
        assert_eq!(report.billed_ms, 13);
        assert_eq!(
            report.line(),
            "REPORT RequestId: r-1\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB\tMax Memory Used: 20 MB\t"
        );
        assert!(!report.line().contains("Init Duration"));
        report.init_duration = Some(Duration::from_micros(40_500));
        assert!(report.line().contains("Init Duration: 40.50 ms\t"), "{}", report.line());
        assert_eq!(Report::billed(Duration::from_micros(12_345), report.init_duration), 53);
    }

    #[test]
    fn the_version_comes_from_the_stream_name() {
        assert_eq!(stream_version("2024/05/01/[$LATEST]abc"), Some("$LATEST"));
        assert_eq!(stream_version("2024/05/01/[12]abc"), Some("12"));
        assert_eq!(stream_version(""), None);
        let sink = LogSink::new(false);
        let report = |id: &str| Report {
            request_id: id.into(),
            duration: Duration::ZERO,
            billed_ms: 1,
            memory_size_mb: 128,
            max_memory_used_mb: 1,
            init_duration: None,
            status: None,
            error_type: None,
        };
        sink.report("f", "2024/05/01/[1]a", report("one"));
        sink.report("f", "2024/05/01/[2]b", report("two"));
        assert_eq!(sink.reports("f").len(), 2);
        assert_eq!(sink.reports_of("f", "2")[0].request_id, "two");
        assert_eq!(sink.lines("f")[0].version(), Some("1"));
    }

    #[test]
    fn emf_documents_become_metrics_and_other_lines_do_not() {
        let line = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"Lift","Dimensions":[["service"]],"Metrics":[{"Name":"latency","Unit":"Milliseconds"},{"Name":"count"}]}]},"service":"payments","latency":[1.5,2.5],"count":3}"#;
        let metrics = emf_metrics("payments", line);
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics[0].name, "latency");
        assert_eq!(metrics[0].value, 1.5);
        assert_eq!(metrics[0].unit.as_deref(), Some("Milliseconds"));
        assert_eq!(metrics[0].dimensions, vec![("service".to_owned(), "payments".to_owned())]);
        assert_eq!(metrics[2].value, 3.0);
        assert!(emf_metrics("f", r#"{"level":"INFO","message":"CloudWatchMetrics mentioned"}"#).is_empty());
        assert!(emf_metrics("f", "not json").is_empty());
        assert!(emf_metrics("f", "{ broken CloudWatchMetrics").is_empty());
    }
}
