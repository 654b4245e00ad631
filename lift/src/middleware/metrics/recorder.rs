//! The per-invocation recorder and its EMF documents.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::MetricsError;
use super::unit::Unit;
use crate::middleware::logging::escape::push_json_str;

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
    values: Vec<f64>,
}

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
                self.metrics.push(Metric { name, unit, values: vec![value] });
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
        let millis = timestamp.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
        let head = self.document_head(millis);
        let mut docs = Vec::new();
        let mut taken = vec![0usize; self.metrics.len()];
        loop {
            // The next ≤100 metrics with values left, and ≤100 values of each.
            let batch: Vec<usize> = (0..self.metrics.len())
                .filter(|&i| taken[i] < self.metrics[i].values.len())
                .take(MAX_METRICS_PER_DOCUMENT)
                .collect();
            if batch.is_empty() {
                return docs;
            }
            let mut doc = head.clone();
            for (n, &i) in batch.iter().enumerate() {
                doc.push_str(if n == 0 { "{\"Name\":" } else { ",{\"Name\":" });
                push_json_str(&mut doc, &self.metrics[i].name);
                doc.push_str(",\"Unit\":\"");
                doc.push_str(self.metrics[i].unit.as_str());
                doc.push_str("\"}");
            }
            doc.push_str("]}]}");
            self.push_members(&mut doc);
            for &i in &batch {
                let m = &self.metrics[i];
                let end = (taken[i] + MAX_VALUES_PER_METRIC).min(m.values.len());
                let values = &m.values[taken[i]..end];
                taken[i] = end;
                doc.push(',');
                push_json_str(&mut doc, &m.name);
                doc.push(':');
                if let [one] = values {
                    let _ = write!(doc, "{one}");
                } else {
                    doc.push('[');
                    for (k, v) in values.iter().enumerate() {
                        let _ = write!(doc, "{}{v}", if k == 0 { "" } else { "," });
                    }
                    doc.push(']');
                }
            }
            doc.push('}');
            docs.push(doc);
        }
    }

    /// `{"_aws":{"Timestamp":..,"CloudWatchMetrics":[{"Namespace":..,"Dimensions":[..],"Metrics":[`
    fn document_head(&self, millis: u128) -> String {
        let mut head = String::with_capacity(256);
        let _ = write!(head, "{{\"_aws\":{{\"Timestamp\":{millis},\"CloudWatchMetrics\":[{{\"Namespace\":");
        push_json_str(&mut head, &self.namespace);
        head.push_str(",\"Dimensions\":[");
        for (n, set) in self.resolved_dimension_sets().iter().enumerate() {
            head.push_str(if n == 0 { "[" } else { ",[" });
            for (k, key) in set.iter().enumerate() {
                if k > 0 {
                    head.push(',');
                }
                push_json_str(&mut head, key);
            }
            head.push(']');
        }
        head.push_str("],\"Metrics\":[");
        head
    }

    /// Each set reduced to the keys that have values, without repeats.
    fn resolved_dimension_sets(&self) -> Vec<Vec<&str>> {
        if self.dimension_sets.is_empty() {
            return vec![self.dimensions.iter().map(|(k, _)| k.as_ref()).collect()];
        }
        let mut sets: Vec<Vec<&str>> = Vec::with_capacity(self.dimension_sets.len());
        for set in self.dimension_sets.iter() {
            let present: Vec<&str> =
                set.iter().map(|k| k.as_ref()).filter(|k| self.dimension(k).is_some()).collect();
            if !sets.contains(&present) {
                sets.push(present);
            }
        }
        sets
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
