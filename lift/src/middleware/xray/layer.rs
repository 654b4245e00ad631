//! The X-Ray layer and its by-value builder.

use std::sync::Arc;

use tower_layer::Layer;

use super::emitter::{parse_daemon_address, Emitter, DEFAULT_DAEMON_ADDRESS};
use super::error::XrayError;
use super::sampling::{IdGenerator, Sampler, SamplingRule};
use super::service::Xray;

/// Configures the [`XrayLayer`]. Values set on the builder win over the environment.
///
/// | setting | environment | default |
/// | --- | --- | --- |
/// | [`daemon_address`](Self::daemon_address) | `AWS_XRAY_DAEMON_ADDRESS` | `127.0.0.1:2000` |
/// | [`service_name`](Self::service_name) | `AWS_XRAY_TRACING_NAME`, else `AWS_LAMBDA_FUNCTION_NAME` | `lift` |
/// | [`lambda`](Self::lambda) | true when `AWS_LAMBDA_FUNCTION_NAME` is set | false |
/// | [`sampling_rule`](Self::sampling_rule) | | 1/s + 5 % |
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::{SamplingRule, XrayBuilder};
/// let layer = XrayBuilder::from_env()
///     .service_name("payments-api")
///     .daemon_address("127.0.0.1:2000")
///     .sampling_rule(SamplingRule::new(2, 0.1))
///     .build()?;
/// let app = lift::App::new().layer(layer);
/// # Ok::<(), lift::middleware::xray::XrayError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct XrayBuilder {
    daemon_address: Option<String>,
    service_name: Option<String>,
    lambda: Option<bool>,
    rule: Option<SamplingRule>,
    env_daemon_address: Option<String>,
    env_tracing_name: Option<String>,
    env_function_name: Option<String>,
}

/// The old name of [`XrayBuilder`].
#[deprecated(note = "renamed `XrayBuilder`; start from `XrayLayer::builder()`")]
pub type XrayConfig = XrayBuilder;

impl XrayBuilder {
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
            env_daemon_address: get("AWS_XRAY_DAEMON_ADDRESS"),
            env_tracing_name: get("AWS_XRAY_TRACING_NAME"),
            env_function_name: get("AWS_LAMBDA_FUNCTION_NAME"),
            ..Self::default()
        }
    }

    /// Where the daemon listens: `host:port` or `tcp:host:port udp:host:port`.
    pub fn daemon_address(mut self, address: impl Into<String>) -> Self {
        self.daemon_address = Some(address.into());
        self
    }

    /// The name of the handler's segment.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// On Lambda the service owns the request's segment (its id is the trace header's
    /// `Parent`), so the handler is sent as a subsegment of it, as the X-Ray SDKs do.
    pub fn lambda(mut self, on_lambda: bool) -> Self {
        self.lambda = Some(on_lambda);
        self
    }

    /// The local rule for requests that arrive without a decision (`Sampled` absent or `?`).
    pub fn sampling_rule(mut self, rule: SamplingRule) -> Self {
        self.rule = Some(rule);
        self
    }

    /// Validates the settings and opens the UDP socket.
    ///
    /// # Errors
    /// [`XrayError`] for a bad daemon address or rate, or when the socket cannot be opened.
    pub fn build(self) -> Result<XrayLayer, XrayError> {
        let address = self.daemon_address.or(self.env_daemon_address);
        let daemon = parse_daemon_address(address.as_deref().unwrap_or(DEFAULT_DAEMON_ADDRESS))?;
        let rule = self.rule.unwrap_or_default();
        if !(0.0..=1.0).contains(&rule.fixed_rate) {
            return Err(XrayError::InvalidSamplingRate { value: rule.fixed_rate });
        }
        let lambda = self.lambda.unwrap_or(self.env_function_name.is_some());
        let name = self
            .service_name
            .or(self.env_tracing_name)
            .or(self.env_function_name)
            .unwrap_or_else(|| "lift".to_owned());
        let emitter = Emitter::connect(daemon).map_err(XrayError::Socket)?;
        Ok(XrayLayer {
            shared: Arc::new(Shared {
                name,
                lambda,
                sampler: Sampler::new(rule),
                ids: Arc::new(IdGenerator::new()),
                emitter,
            }),
        })
    }
}

/// State shared by every clone of the layer and its services.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) lambda: bool,
    pub(crate) sampler: Sampler,
    pub(crate) ids: Arc<IdGenerator>,
    pub(crate) emitter: Emitter,
}

/// Traces each request with X-Ray: reads and answers the `X-Amzn-Trace-Id` header, puts an
/// [`XrayHandle`](super::XrayHandle) in the request, and sends the segment to the daemon
/// when the response is ready. Built by [`XrayBuilder`].
///
/// # Examples
///
/// ```
/// let layer = lift::middleware::xray::XrayLayer::from_env()?;
/// let app = lift::App::new().layer(layer);
/// # Ok::<(), lift::middleware::xray::XrayError>(())
/// ```
#[derive(Debug, Clone)]
pub struct XrayLayer {
    shared: Arc<Shared>,
}

impl XrayLayer {
    /// A builder seeded from the environment: `XrayBuilder::from_env()` (settings made on
    /// it win over the environment).
    ///
    /// # Examples
    ///
    /// ```
    /// let layer = lift::middleware::xray::XrayLayer::builder().service_name("payments-api").build()?;
    /// # Ok::<(), lift::middleware::xray::XrayError>(())
    /// ```
    pub fn builder() -> XrayBuilder {
        XrayBuilder::from_env()
    }

    /// `XrayBuilder::from_env().build()`.
    ///
    /// # Errors
    /// See [`XrayBuilder::build`].
    pub fn from_env() -> Result<Self, XrayError> {
        XrayBuilder::from_env().build()
    }

    /// The address documents are sent to.
    pub fn daemon_address(&self) -> std::net::SocketAddr {
        self.shared.emitter.daemon()
    }

    /// How many datagrams could not be sent (the socket buffer was full, or the daemon
    /// refused them).
    pub fn dropped_datagrams(&self) -> u64 {
        self.shared.emitter.dropped()
    }
}

impl<S> Layer<S> for XrayLayer {
    type Service = Xray<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Xray::new(inner, Arc::clone(&self.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_wins_over_environment() {
        let env = |key: &str| match key {
            "AWS_XRAY_DAEMON_ADDRESS" => Some("127.0.0.1:2999".to_owned()),
            "AWS_LAMBDA_FUNCTION_NAME" => Some("fn-a".to_owned()),
            _ => None,
        };
        let layer = XrayBuilder::from_env_vars(env).build().unwrap();
        assert_eq!(layer.daemon_address().port(), 2999);
        assert!(layer.shared.lambda);
        assert_eq!(layer.shared.name, "fn-a");
        let layer =
            XrayBuilder::from_env_vars(env).daemon_address("127.0.0.1:3001").lambda(false).build().unwrap();
        assert_eq!(layer.daemon_address().port(), 3001);
        assert!(!layer.shared.lambda);
        assert!(XrayBuilder::new().sampling_rule(SamplingRule::new(1, 2.0)).build().is_err());
    }
}
