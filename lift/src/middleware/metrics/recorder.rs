//! The per-invocation recorder and its EMF documents.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::MetricsError;
use super::unit::Unit;
use crate::json::push_json_str;

/// The most metrics one EMF document may declare.
pub const MAX_METRICS_PER_DOCUMENT: usize = 100;
/// The most values one metric may have in one EMF document.
pub const MAX_VALUES_PER_METRIC: usize = 100;
/// The most dimensions one dimension set may have.
pub const MAX_DIMENSIONS: usize = 30;

type Name = Cow<'static, str>;

#[derive(Debug, Clone)]
struct Metric {
    name: Name,
    unit: Unit,
    values: Values,
}

/// A metric's values: most metrics of a request have one, kept without an allocation.
#[derive(Debug, Clone)]
enum Values {
    One(f64),
    Many(Vec<f64>),
}

impl Values {
    fn as_slice(&self) -> &[f64] {
        match self {
            Values::One(value) => std::slice::from_ref(value),
            Values::Many(values) => values,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn push(&mut self, value: f64) {
        match self {
            Values::One(first) => *self = Values::Many(vec![*first, value]),
            Values::Many(values) => values.push(value),
        }
    }
}

/// Metrics a request usually records (the layer's four and a few of the handler's), so
/// the list is allocated once.
const TYPICAL_METRICS: usize = 8;

thread_local! {
    /// The buffer documents are written into before they go to the sink, kept between
    /// invocations so a flush does not allocate.
    static DOCUMENT: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
}

/// Buffers larger than this are not kept between invocations.
const KEPT_BUFFER: usize = 64 * 1024;

/// Metrics of one invocation, written as CloudWatch Embedded Metric Format documents.
///
/// A recorder has a namespace, dimension sets (lists of dimension keys, at most 30 each),
/// dimension values, extra properties, and metrics with a unit and one or more values.
/// [`to_documents`](Self::to_documents) splits the metrics so every document stays within
/// EMF's limits: at most 100 metrics, and at most 100 values per metric.
///
/// Dimension sets are written with the keys that have a value; a recorder without dimension
/// sets uses one set of all its dimensions.
///
/// # Examples
///
/// ```
/// use lift::middleware::metrics::{Metrics, Unit};
/// let mut m = Metrics::new("Payments")?.with_dimension_set(["Tenant"])?;
/// m.set_dimension("Tenant", "acme")?;
/// m.record("ChargeAmount", 12.5, Unit::None)?;
/// m.count("ChargesCreated")?;
/// let docs = m.to_documents(std::time::SystemTime::now());
/// let doc: serde_json::Value = serde_json::from_str(&docs[0]).unwrap();
/// assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Tenant");
/// assert_eq!((doc["Tenant"].as_str(), doc["ChargeAmount"].as_f64()), (Some("acme"), Some(12.5)));
/// # Ok::<(), lift::middleware::metrics::MetricsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: Arc<str>,
    /// Shared: a per-request recorder cloned from a template copies no key.
    dimension_sets: Arc<Vec<Vec<Name>>>,
    dimensions: Vec<(Name, String)>,
    properties: Vec<(Name, serde_json::Value)>,
    metrics: Vec<Metric>,
}

impl Metrics {
    /// An empty recorder for a namespace.
    ///
    /// # Errors
    /// [`MetricsError::InvalidNamespace`] unless it is 1–255 printable ASCII characters.
    pub fn new(namespace: impl Into<String>) -> Result<Self, MetricsError> {
        let namespace = namespace.into();
        let printable = namespace.bytes().all(|b| (0x20..0x7f).contains(&b));
        if namespace.is_empty() || namespace.len() > 255 || !printable {
            return Err(MetricsError::InvalidNamespace { namespace });
        }
        Ok(Self {
            namespace: namespace.into(),
            dimension_sets: Arc::new(Vec::new()),
            dimensions: Vec::new(),
            properties: Vec::new(),
            metrics: Vec::new(),
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Adds a dimension set, by value.
    ///
    /// # Errors
    /// [`MetricsError::TooManyDimensions`] over 30 keys; [`MetricsError::InvalidDimension`]
    /// for a key that is empty or over 255 characters.
    pub fn with_dimension_set<I, K>(mut self, keys: I) -> Result<Self, MetricsError>
    where
        I: IntoIterator<Item = K>,
        K: Into<Name>,
    {
        self.add_dimension_set(keys)?;
        Ok(self)
    }

    /// Adds a dimension set.
    ///
    /// # Errors
    /// As [`with_dimension_set`](Self::with_dimension_set).
    pub fn add_dimension_set<I, K>(&mut self, keys: I) -> Result<(), MetricsError>
    where
        I: IntoIterator<Item = K>,
        K: Into<Name>,
    {
        let mut set: Vec<Name> = Vec::new();
        for key in keys {
            let key = key.into();
            check_dimension_key(&key)?;
            if !set.contains(&key) {
                set.push(key);
            }
        }
        if set.len() > MAX_DIMENSIONS {
            return Err(MetricsError::TooManyDimensions { count: set.len() });
        }
        Arc::make_mut(&mut self.dimension_sets).push(set);
        Ok(())
    }

    /// Sets a dimension's value (1–1024 characters), replacing any earlier one.
    ///
    /// # Errors
    /// [`MetricsError::InvalidDimension`] for a bad key or value;
    /// [`MetricsError::TooManyDimensions`] past 30 distinct keys.
    pub fn set_dimension(
        &mut self,
        key: impl Into<Name>,
        value: impl Into<String>,
    ) -> Result<(), MetricsError> {
        let key = key.into();
        let value = value.into();
        check_dimension_key(&key)?;
        if value.is_empty() || char_len_over(&value, 1024) {
            return Err(MetricsError::InvalidDimension {
                key: key.into_owned(),
                reason: "value must be 1 to 1024 characters",
            });
        }
        let count = self.dimensions.len();
        match self.dimensions.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None if count >= MAX_DIMENSIONS => {
                return Err(MetricsError::TooManyDimensions { count: count + 1 })
            }
            None => self.dimensions.push((key, value)),
        }
        Ok(())
    }

    /// The value of a dimension, if set.
    pub fn dimension(&self, key: &str) -> Option<&str> {
        self.dimensions.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Adds a top-level property that is not a metric (a request id, for searching logs).
    pub fn set_property(&mut self, key: impl Into<Name>, value: impl Into<serde_json::Value>) {
        let key = key.into();
        let value = value.into();
        match self.properties.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.properties.push((key, value)),
        }
    }

    /// Records one value of a metric.
    ///
    /// # Errors
    /// [`MetricsError::InvalidMetricName`] for a name that is empty or over 255 characters,
    /// [`MetricsError::InvalidValue`] for NaN or infinity, and
    /// [`MetricsError::ConflictingUnit`] when the metric has another unit.
    pub fn record(&mut self, name: impl Into<Name>, value: f64, unit: Unit) -> Result<(), MetricsError> {
        let name = name.into();
        if name.is_empty() || char_len_over(&name, 255) {
            return Err(MetricsError::InvalidMetricName { name: name.into_owned() });
        }
        if !value.is_finite() {
            return Err(MetricsError::InvalidValue { name: name.into_owned() });
        }
        match self.metrics.iter_mut().find(|m| m.name == name) {
            Some(m) if m.unit != unit => {
                Err(MetricsError::ConflictingUnit { name: name.into_owned(), recorded: m.unit, given: unit })
            }
            Some(m) => {
                m.values.push(value);
                Ok(())
            }
            None => {
                if self.metrics.capacity() == 0 {
                    self.metrics.reserve(TYPICAL_METRICS);
                }
                self.metrics.push(Metric { name, unit, values: Values::One(value) });
                Ok(())
            }
        }
    }

    /// Records a count of one.
    ///
    /// # Errors
    /// As [`record`](Self::record).
    pub fn count(&mut self, name: impl Into<Name>) -> Result<(), MetricsError> {
        self.record(name, 1.0, Unit::Count)
    }

    /// Whether no metric was recorded.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The values recorded for a metric.
    pub fn values(&self, name: &str) -> Option<&[f64]> {
        self.metrics.iter().find(|m| m.name == name).map(|m| m.values.as_slice())
    }

    /// Removes every metric value, keeping namespace, dimensions and properties.
    pub fn clear_metrics(&mut self) {
        self.metrics.clear();
    }

    /// The EMF documents, one JSON object per string (no newline), split to stay within
    /// EMF's limits. None when nothing was recorded.
    pub fn to_documents(&self, timestamp: SystemTime) -> Vec<String> {
        let mut docs = Vec::new();
        self.write_documents(timestamp, |doc| docs.push(doc.to_owned()));
        docs
    }

    /// Hands each EMF document (as [`to_documents`](Self::to_documents) makes them) to
    /// `emit`, written into a buffer the thread reuses: a flush allocates nothing.
    pub fn write_documents(&self, timestamp: SystemTime, mut emit: impl FnMut(&str)) {
        if self.metrics.is_empty() {
            return;
        }
        let millis = timestamp.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
        // Taken out, not borrowed: `emit` may record metrics of its own.
        let mut doc = DOCUMENT.take();
        let fits = self.metrics.len() <= MAX_METRICS_PER_DOCUMENT
            && self.metrics.iter().all(|m| m.values.len() <= MAX_VALUES_PER_METRIC);
        if fits {
            doc.clear();
            self.push_document(&mut doc, millis, self.metrics.iter().map(|m| (m, m.values.as_slice())));
            emit(&doc);
        } else {
            let mut taken = vec![0usize; self.metrics.len()];
            loop {
                // The next ≤100 metrics with values left, and ≤100 values of each.
                let batch: Vec<(usize, usize, usize)> = (0..self.metrics.len())
                    .filter(|&i| taken[i] < self.metrics[i].values.len())
                    .take(MAX_METRICS_PER_DOCUMENT)
                    .map(|i| {
                        (i, taken[i], (taken[i] + MAX_VALUES_PER_METRIC).min(self.metrics[i].values.len()))
                    })
                    .collect();
                if batch.is_empty() {
                    break;
                }
                doc.clear();
                let values = batch.iter().map(|&(i, from, to)| {
                    let m = &self.metrics[i];
                    (m, &m.values.as_slice()[from..to])
                });
                self.push_document(&mut doc, millis, values);
                for &(i, _, to) in &batch {
                    taken[i] = to;
                }
                emit(&doc);
            }
        }
        if doc.capacity() <= KEPT_BUFFER {
            DOCUMENT.set(doc);
        }
    }

    /// One document: the `_aws` head declaring these metrics, the dimension values and
    /// properties, then each metric's values.
    fn push_document<'a>(
        &self,
        doc: &mut String,
        millis: u128,
        metrics: impl Iterator<Item = (&'a Metric, &'a [f64])> + Clone,
    ) {
        let _ = write!(doc, "{{\"_aws\":{{\"Timestamp\":{millis},\"CloudWatchMetrics\":[{{\"Namespace\":");
        push_json_str(doc, &self.namespace);
        doc.push_str(",\"Dimensions\":[");
        self.push_dimension_sets(doc);
        doc.push_str("],\"Metrics\":[");
        for (n, (metric, _)) in metrics.clone().enumerate() {
            doc.push_str(if n == 0 { "{\"Name\":" } else { ",{\"Name\":" });
            push_json_str(doc, &metric.name);
            doc.push_str(",\"Unit\":\"");
            doc.push_str(metric.unit.as_str());
            doc.push_str("\"}");
        }
        doc.push_str("]}]}");
        self.push_members(doc);
        for (metric, values) in metrics {
            doc.push(',');
            push_json_str(doc, &metric.name);
            doc.push(':');
            if let [one] = values {
                push_number(doc, *one);
            } else {
                doc.push('[');
                for (k, v) in values.iter().enumerate() {
                    if k > 0 {
                        doc.push(',');
                    }
                    push_number(doc, *v);
                }
                doc.push(']');
            }
        }
        doc.push('}');
    }

    /// The dimension sets, each reduced to the keys that have values, without repeats; a
    /// recorder without sets uses one set of all its dimensions.
    fn push_dimension_sets<'a>(&'a self, doc: &mut String) {
        fn push_set<'k>(doc: &mut String, first: bool, keys: impl Iterator<Item = &'k str>) {
            doc.push_str(if first { "[" } else { ",[" });
            for (k, key) in keys.enumerate() {
                if k > 0 {
                    doc.push(',');
                }
                push_json_str(doc, key);
            }
            doc.push(']');
        }
        if self.dimension_sets.is_empty() {
            push_set(doc, true, self.dimensions.iter().map(|(k, _)| k.as_ref()));
            return;
        }
        let present = |set: &'a [Name]| -> Present<'a> {
            set.iter().map(|k| k.as_ref()).filter(|k: &&str| self.dimension(k).is_some()).collect()
        };
        let mut written = 0;
        for (i, set) in self.dimension_sets.iter().enumerate() {
            let keys = present(set);
            if self.dimension_sets[..i].iter().any(|earlier| present(earlier) == keys) {
                continue;
            }
            push_set(doc, written == 0, keys.iter());
            written += 1;
        }
    }

    /// The dimension values and properties at the top level.
    fn push_members(&self, doc: &mut String) {
        for (key, value) in &self.dimensions {
            doc.push(',');
            push_json_str(doc, key);
            doc.push(':');
            push_json_str(doc, value);
        }
        for (key, value) in &self.properties {
            let taken = self.dimension(key).is_some() || self.metrics.iter().any(|m| m.name == *key);
            if !taken && key != "_aws" {
                doc.push(',');
                push_json_str(doc, key);
                doc.push(':');
                doc.push_str(&value.to_string());
            }
        }
    }
}

/// The keys of a dimension set that have values: at most 30, kept on the stack.
#[derive(PartialEq)]
struct Present<'a> {
    keys: [&'a str; MAX_DIMENSIONS],
    len: usize,
}

impl<'a> Present<'a> {
    fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.keys[..self.len].iter().copied()
    }
}

impl<'a> FromIterator<&'a str> for Present<'a> {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut present = Present { keys: [""; MAX_DIMENSIONS], len: 0 };
        for key in iter.into_iter().take(MAX_DIMENSIONS) {
            present.keys[present.len] = key;
            present.len += 1;
        }
        present
    }
}

/// A finite value as a JSON number; whole numbers as integers, without float formatting.
fn push_number(doc: &mut String, value: f64) {
    // Below 2^53 every whole f64 is exact as an i64.
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        let _ = write!(doc, "{}", value as i64);
    } else {
        let _ = write!(doc, "{value}");
    }
}

fn char_len_over(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().count() > max
}

fn check_dimension_key(key: &str) -> Result<(), MetricsError> {
    if key.is_empty() || char_len_over(key, 255) {
        return Err(MetricsError::InvalidDimension {
            key: key.to_owned(),
            reason: "key must be 1 to 255 characters",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(docs: &[String]) -> Vec<Value> {
        docs.iter().map(|d| serde_json::from_str(d).expect("valid JSON")).collect()
    }

    #[test]
    fn document_shape() {
        let mut m = Metrics::new("Lift/Test").unwrap().with_dimension_set(["Tenant", "Route"]).unwrap();
        m.set_dimension("Tenant", "t-1").unwrap();
        m.set_dimension("Route", "/payments/:id").unwrap();
        m.set_property("request_id", "r-1");
        m.record("Latency", 12.0, Unit::Milliseconds).unwrap();
        m.record("Latency", 14.5, Unit::Milliseconds).unwrap();
        m.count("Requests").unwrap();
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let docs = parse(&m.to_documents(at));
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Lift/Test");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Tenant", "Route"]]));
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([{"Name": "Latency", "Unit": "Milliseconds"}, {"Name": "Requests", "Unit": "Count"}])
        );
        let latency: Vec<f64> = d["Latency"].as_array().unwrap().iter().filter_map(Value::as_f64).collect();
        assert_eq!(latency, [12.0, 14.5]);
        assert_eq!(d["Requests"], 1.0);
        assert_eq!(
            (&d["Tenant"], &d["Route"], &d["request_id"]),
            (&"t-1".into(), &"/payments/:id".into(), &"r-1".into())
        );
    }

    #[test]
    fn missing_dimension_values_shrink_the_set() {
        let mut m = Metrics::new("N").unwrap().with_dimension_set(["Tenant", "Route"]).unwrap();
        m.set_dimension("Tenant", "t").unwrap();
        m.count("Requests").unwrap();
        let d = &parse(&m.to_documents(SystemTime::now()))[0];
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Tenant"]]));
        let mut none = Metrics::new("N").unwrap();
        none.count("Requests").unwrap();
        let d = &parse(&none.to_documents(SystemTime::now()))[0];
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([[]]));
    }

    #[test]
    fn more_than_100_metrics_split_into_documents() {
        let mut m = Metrics::new("N").unwrap();
        for i in 0..101 {
            m.count(format!("M{i}")).unwrap();
        }
        let docs = parse(&m.to_documents(SystemTime::now()));
        assert_eq!(docs.len(), 2);
        let declared = |d: &Value| d["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len();
        assert_eq!((declared(&docs[0]), declared(&docs[1])), (100, 1));
        assert_eq!(docs[1]["M100"], 1.0);
        assert!(docs[1].get("M0").is_none());
    }

    #[test]
    fn more_than_100_values_split_into_documents() {
        let mut m = Metrics::new("N").unwrap();
        for i in 0..101 {
            m.record("Latency", f64::from(i), Unit::Milliseconds).unwrap();
        }
        m.count("Requests").unwrap();
        let docs = parse(&m.to_documents(SystemTime::now()));
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["Latency"].as_array().unwrap().len(), 100);
        assert_eq!(docs[1]["Latency"], 100.0);
        assert_eq!(docs[0]["Requests"], 1.0);
        assert!(docs[1].get("Requests").is_none(), "a metric's values are not repeated");
    }

    #[test]
    fn documents_written_from_inside_emit_are_whole() {
        // The buffer is the thread's: a sink that flushes another recorder while it is
        // handed a document must not see either document cut or mixed.
        let mut outer = Metrics::new("Outer").unwrap();
        outer.record("Latency", 1.25, Unit::Milliseconds).unwrap();
        let mut inner = Metrics::new("Inner").unwrap();
        inner.count("Requests").unwrap();
        let mut seen = Vec::new();
        outer.write_documents(SystemTime::now(), |doc| {
            inner.write_documents(SystemTime::now(), |nested| seen.push(nested.to_owned()));
            seen.push(doc.to_owned());
        });
        let docs = parse(&seen);
        assert_eq!(docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Inner");
        assert_eq!(docs[1]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Outer");
        assert_eq!((docs[0]["Requests"].as_f64(), docs[1]["Latency"].as_f64()), (Some(1.0), Some(1.25)));
        // A later, smaller document reuses the buffer without leftovers.
        let again = inner.to_documents(SystemTime::now());
        assert_eq!(parse(&again)[0]["Requests"], 1.0);
        assert!(!again[0].contains("Latency"));
    }

    #[test]
    fn numbers_keep_their_value() {
        let mut m = Metrics::new("N").unwrap();
        for v in [0.0, -3.0, 12.5, 1e-7, 123_456_789_012.0, 9_007_199_254_740_993.0, -0.5] {
            m.record("V", v, Unit::None).unwrap();
        }
        let d = &parse(&m.to_documents(SystemTime::now()))[0];
        let values: Vec<f64> = d["V"].as_array().unwrap().iter().filter_map(Value::as_f64).collect();
        assert_eq!(values, [0.0, -3.0, 12.5, 1e-7, 123_456_789_012.0, 9_007_199_254_740_993.0, -0.5]);
    }

    #[test]
    fn limits_are_refused() {
        let keys: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
        let err = Metrics::new("N").unwrap().with_dimension_set(keys.clone()).unwrap_err();
        assert_eq!(err, MetricsError::TooManyDimensions { count: 31 });
        assert!(Metrics::new("N").unwrap().with_dimension_set(keys[..30].to_vec()).is_ok());
        let mut m = Metrics::new("N").unwrap();
        assert!(matches!(m.record("", 1.0, Unit::Count), Err(MetricsError::InvalidMetricName { .. })));
        assert!(matches!(
            m.record("x".repeat(256), 1.0, Unit::Count),
            Err(MetricsError::InvalidMetricName { .. })
        ));
        assert!(m.record("é".repeat(255), 1.0, Unit::Count).is_ok(), "255 characters, more bytes");
        assert!(matches!(m.record("n", f64::NAN, Unit::Count), Err(MetricsError::InvalidValue { .. })));
        m.count("c").unwrap();
        assert!(matches!(m.record("c", 1.0, Unit::Seconds), Err(MetricsError::ConflictingUnit { .. })));
        for i in 0..30 {
            m.set_dimension(format!("K{i}"), "v").unwrap();
        }
        assert!(matches!(m.set_dimension("K30", "v"), Err(MetricsError::TooManyDimensions { .. })));
        assert!(Metrics::new("").is_err() && Metrics::new("x".repeat(256)).is_err());
    }
}
