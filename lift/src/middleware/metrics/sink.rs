//! Where EMF documents go.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// Receives EMF documents, one JSON object each.
///
/// # Examples
///
/// ```
/// use lift::middleware::metrics::MetricsSink;
/// #[derive(Debug)]
/// struct Discard;
/// impl MetricsSink for Discard {
///     fn emit(&self, _document: &str) {}
/// }
/// ```
pub trait MetricsSink: Send + Sync + 'static {
    /// Writes one document.
    fn emit(&self, document: &str);
}

/// Writes each document as one line on stdout, where Lambda hands it to CloudWatch Logs,
/// which extracts the metrics.
///
/// # Examples
///
/// ```
/// use lift::middleware::metrics::{MetricsSink, StdoutSink};
/// StdoutSink.emit(r#"{"_aws":{"Timestamp":0,"CloudWatchMetrics":[]}}"#);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutSink;

impl MetricsSink for StdoutSink {
    fn emit(&self, document: &str) {
        let mut line = Vec::with_capacity(document.len() + 1);
        line.extend_from_slice(document.as_bytes());
        line.push(b'\n');
        // One write of the whole line, so lines from concurrent requests never interleave.
        let _ = io::stdout().lock().write_all(&line);
    }
}

/// Keeps documents in memory; clones share them. For tests.
///
/// # Examples
///
/// ```
/// use lift::middleware::metrics::{MemorySink, MetricsSink};
/// let sink = MemorySink::new();
/// sink.emit("{}");
/// assert_eq!(sink.documents(), ["{}"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    docs: Arc<Mutex<Vec<String>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The documents so far.
    pub fn documents(&self) -> Vec<String> {
        self.docs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The documents so far, parsed.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.documents().iter().filter_map(|d| serde_json::from_str(d).ok()).collect()
    }

    /// Empties the sink.
    pub fn clear(&self) {
        self.docs.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

impl MetricsSink for MemorySink {
    fn emit(&self, document: &str) {
        self.docs.lock().unwrap_or_else(PoisonError::into_inner).push(document.to_owned());
    }
}
