//! Errors of the metrics recorder.

use super::unit::Unit;

/// A metric, dimension or setting that CloudWatch would reject.
///
/// # Examples
///
/// ```
/// use lift::middleware::metrics::{Metrics, MetricsError, Unit};
/// let mut m = Metrics::new("Payments")?;
/// let err = m.record("", 1.0, Unit::Count).unwrap_err();
/// assert!(matches!(err, MetricsError::InvalidMetricName { .. }));
/// assert_eq!(err.to_string(), "invalid metric name ``: must be 1 to 255 characters");
/// # Ok::<(), MetricsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A metric name that is empty or longer than 255 characters.
    #[error("invalid metric name `{name}`: must be 1 to 255 characters")]
    InvalidMetricName {
        /// The rejected name.
        name: String,
    },
    /// A dimension set (or a recorder's dimensions) over the EMF limit of 30.
    #[error("too many dimensions: {count}, at most 30 are allowed")]
    TooManyDimensions {
        /// How many there would be.
        count: usize,
    },
    /// A dimension key (1–255 characters) or value (1–1024 characters) out of bounds.
    #[error("invalid dimension `{key}`: {reason}")]
    InvalidDimension {
        /// The key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A namespace that is empty, longer than 255 characters or not printable ASCII.
    #[error("invalid metrics namespace `{namespace}`: must be 1 to 255 printable ascii characters")]
    InvalidNamespace {
        /// The rejected namespace.
        namespace: String,
    },
    /// No namespace was configured.
    #[error("no metrics namespace: set LIFT_METRICS_NAMESPACE or call namespace()")]
    MissingNamespace,
    /// NaN or infinity.
    #[error("metric `{name}` value is not a finite number")]
    InvalidValue {
        /// The metric.
        name: String,
    },
    /// A metric recorded earlier with another unit.
    #[error("metric `{name}` was recorded in {recorded:?}, not {given:?}")]
    ConflictingUnit {
        /// The metric.
        name: String,
        /// The unit it has.
        recorded: Unit,
        /// The unit given now.
        given: Unit,
    },
    /// The request's metrics were already flushed.
    #[error("metric `{name}` was recorded after the request's metrics were flushed")]
    AlreadyFlushed {
        /// The metric.
        name: String,
    },
}
