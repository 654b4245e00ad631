//! The metrics layer and its by-value builder.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tower_layer::Layer;

use super::error::MetricsError;
use super::recorder::Metrics;
use super::service::MetricsService;
use super::sink::{MetricsSink, StdoutSink};

/// The request count metric (Count, 1 per request).
pub const REQUESTS: &str = "Requests";
/// The latency metric (Milliseconds), from the call to the ready response.
pub const LATENCY: &str = "Latency";
/// 1 when the response is a 4xx, else 0 (Count): its average is the client error rate.
pub const CLIENT_ERRORS: &str = "4xx";
/// 1 when the response is a 5xx or the service failed, else 0 (Count).
pub const SERVER_ERRORS: &str = "5xx";
/// 1 in the cold start's own document (Count).
pub const COLD_START: &str = "ColdStart";
/// The tenant dimension, from [`lift::Context::tenant`](crate::Context::tenant).
pub const TENANT: &str = "Tenant";
/// The route dimension, from [`lift::MatchedRoute`](crate::MatchedRoute).
pub const ROUTE: &str = "Route";
/// The function name dimension of the cold start document.
pub const FUNCTION_NAME: &str = "FunctionName";

/// Configures the [`MetricsLayer`]. Values set on the builder win over the environment.
///
/// | setting | environment | default |
/// | --- | --- | --- |
/// | [`namespace`](Self::namespace) | `LIFT_METRICS_NAMESPACE`, else `POWERTOOLS_METRICS_NAMESPACE` | required |
/// | [`function_name`](Self::function_name) | `AWS_LAMBDA_FUNCTION_NAME` | none |
/// | [`dimension_set`](Self::dimension_set) | | `[Tenant, Route]` |
/// | [`sink`](Self::sink) | | [`StdoutSink`] |
///
/// # Examples
///
/// ```
/// use lift::middleware::metrics::{MemorySink, MetricsBuilder, ROUTE, TENANT};
/// let layer = MetricsBuilder::from_env()
///     .namespace("Payments")
///     .dimension_set([TENANT, ROUTE])
///     .dimension_set([ROUTE])
///     .default_dimension("Service", "payments-api")
///     .sink(MemorySink::new())
///     .build()?;
/// let app = lift::App::new().layer(layer);
/// # Ok::<(), lift::middleware::metrics::MetricsError>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct MetricsBuilder {
    namespace: Option<String>,
    function_name: Option<String>,
    env_namespace: Option<String>,
    env_function_name: Option<String>,
    dimension_sets: Vec<Vec<String>>,
    default_dimensions: Vec<(String, String)>,
    sink: Option<Arc<dyn MetricsSink>>,
}

impl fmt::Debug for MetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBuilder")
            .field("namespace", &self.namespace.as_ref().or(self.env_namespace.as_ref()))
            .field("dimension_sets", &self.dimension_sets)
            .finish_non_exhaustive()
    }
}

/// The old name of [`MetricsBuilder`].
#[deprecated(note = "renamed `MetricsBuilder`; start from `MetricsLayer::builder()`")]
pub type MetricsConfig = MetricsBuilder;

impl MetricsBuilder {
    /// Defaults only; no environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defaults overridden by the process environment (see the table above).
    pub fn from_env() -> Self {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        Self {
            env_namespace: get("LIFT_METRICS_NAMESPACE").or_else(|| get("POWERTOOLS_METRICS_NAMESPACE")),
            env_function_name: get("AWS_LAMBDA_FUNCTION_NAME"),
            ..Self::default()
        }
    }

    /// The CloudWatch namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The function name for the cold start document.
    pub fn function_name(mut self, name: impl Into<String>) -> Self {
        self.function_name = Some(name.into());
        self
    }

    /// Adds a dimension set for every request's metrics (the first call replaces the
    /// default `[Tenant, Route]`).
    pub fn dimension_set<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.dimension_sets.push(keys.into_iter().map(Into::into).collect());
        self
    }

    /// A dimension every request's metrics carry (add it to a dimension set to use it).
    pub fn default_dimension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.default_dimensions.push((key.into(), value.into()));
        self
    }

    /// Where documents go (default: stdout, one per line).
    pub fn sink(mut self, sink: impl MetricsSink) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    /// [`MetricsError::MissingNamespace`], and any limit a dimension set or the namespace
    /// breaks (over 30 dimensions in a set, say).
    pub fn build(self) -> Result<MetricsLayer, MetricsError> {
        let namespace = self.namespace.or(self.env_namespace).ok_or(MetricsError::MissingNamespace)?;
        let mut template = Metrics::new(namespace.clone())?;
        let sets = if self.dimension_sets.is_empty() {
            vec![vec![TENANT.to_owned(), ROUTE.to_owned()]]
        } else {
            self.dimension_sets
        };
        for set in sets {
            template.add_dimension_set(set)?;
        }
        for (key, value) in self.default_dimensions {
            template.set_dimension(key, value)?;
        }
        let mut cold = Metrics::new(namespace)?;
        if let Some(name) = self.function_name.or(self.env_function_name) {
            cold.add_dimension_set([FUNCTION_NAME])?;
            cold.set_dimension(FUNCTION_NAME, name)?;
        }
        cold.count(COLD_START)?;
        Ok(MetricsLayer {
            shared: Arc::new(Shared {
                template,
                cold_start: cold,
                sink: self.sink.unwrap_or_else(|| Arc::new(StdoutSink)),
                cold: AtomicBool::new(true),
            }),
        })
    }
}

/// State shared by every clone of the layer and its services.
pub(crate) struct Shared {
    /// What every request's recorder starts from.
    pub(crate) template: Metrics,
    /// The cold start document's recorder.
    pub(crate) cold_start: Metrics,
    pub(crate) sink: Arc<dyn MetricsSink>,
    cold: AtomicBool,
}

impl Shared {
    /// True for the first request only.
    pub(crate) fn take_cold_start(&self) -> bool {
        self.cold.load(Ordering::Relaxed) && self.cold.swap(false, Ordering::AcqRel)
    }
}

/// Records CloudWatch EMF metrics per request and flushes them when the response is ready.
///
/// For each request it puts a fresh [`MetricsHandle`](super::MetricsHandle) in the request
/// extensions (handlers add their own metrics there), then, when the inner future
/// completes, records [`REQUESTS`], [`LATENCY`], [`CLIENT_ERRORS`] and [`SERVER_ERRORS`]
/// dimensioned by [`TENANT`] and [`ROUTE`], and writes the documents to the sink. The first
/// request also writes the [`COLD_START`] document. Nothing runs on a timer: Lambda freezes
/// the process between invocations.
///
/// The tenant is read from [`lift::Context`](crate::Context) when the request arrives or,
/// mounted outside authentication as the recommended order has it, when the answer comes
/// back ([`Context::resolved_tenant`](crate::Context::resolved_tenant)); and
/// the route from [`lift::MatchedRoute`](crate::MatchedRoute) in the request or, failing
/// that, the response extensions; handlers and inner middleware can set either through
/// the handle.
///
/// # Examples
///
/// ```
/// let layer = lift::middleware::metrics::MetricsLayer::builder().namespace("Payments").build()?;
/// let app = lift::App::new().layer(layer);
/// # Ok::<(), lift::middleware::metrics::MetricsError>(())
/// ```
#[derive(Clone)]
pub struct MetricsLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer").field("namespace", &self.shared.template.namespace()).finish()
    }
}

impl MetricsLayer {
    /// A builder that reads the environment: `MetricsBuilder::from_env()`.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::from_env()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService::new(inner, Arc::clone(&self.shared))
    }
}
