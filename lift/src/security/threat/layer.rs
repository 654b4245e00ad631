//! The layer and its builder.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::alert::WebhookAlert;
use super::behaviour::BehaviourMonitor;
use super::detect::Detectors;
use super::error::InvalidConfig;
use super::incident::Playbook;
use super::service::{Config, Threat};
use super::store::ThreatStore;
use crate::security::audit::AuditTrail;

/// The risk score at which requests are refused by default: one high-severity finding.
pub const DEFAULT_THRESHOLD: u8 = 70;

/// Applies [`Threat`] detection to services; every service it makes shares one
/// configuration.
///
/// # Examples
///
/// ```
/// use lift::security::threat::ThreatLayer;
///
/// // Detectors only: no blocklist, no behaviour counters, incidents are logged.
/// let app = lift::App::new().layer(ThreatLayer::new());
/// ```
///
/// ```no_run
/// # fn demo(client: aws_sdk_dynamodb::Client, trail: lift::security::audit::AuditTrail)
/// # -> Result<(), lift::security::threat::InvalidConfig> {
/// use std::time::Duration;
/// use lift::security::threat::{BehaviourMonitor, ThreatLayer, ThreatStore, WebhookAlert};
///
/// let store = ThreatStore::new(client);
/// let layer = ThreatLayer::builder()
///     .store(store.clone())
///     .behaviour(BehaviourMonitor::new(store).auth_failures_per_ip(20))
///     .audit(trail)
///     .alert(WebhookAlert::new("http://alerts.internal/threat")?)
///     .block_ip_for(Duration::from_secs(900))
///     .threshold(70)
///     .build()?;
/// let app = lift::App::new().layer(layer);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ThreatLayer {
    config: Arc<Config>,
}

impl Default for ThreatLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreatLayer {
    /// The detectors with the default threshold, nothing stored.
    pub fn new() -> Self {
        Self { config: Arc::new(ThreatBuilder::default().config()) }
    }

    /// A builder.
    pub fn builder() -> ThreatBuilder {
        ThreatBuilder::default()
    }
}

impl<S> Layer<S> for ThreatLayer {
    type Service = Threat<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Threat::from_parts(inner, Arc::clone(&self.config))
    }
}

/// Configures a [`ThreatLayer`].
///
/// Everything is optional. Without a [store](Self::store) there is no blocklist check and
/// no automatic block; without [behaviour](Self::behaviour) no counters; without an
/// [audit trail](Self::audit) or [alert](Self::alert) incidents are only logged.
///
/// [`ThreatBuilder::from_env`] reads settings from the environment; methods called
/// afterwards win over it.
#[derive(Debug, Default)]
#[must_use]
pub struct ThreatBuilder {
    detectors: Option<Detectors>,
    threshold: Option<u8>,
    store: Option<ThreatStore>,
    monitor: Option<BehaviourMonitor>,
    track_tenants: bool,
    /// Audit and alert actions; the IP and principal blocks are added at build (they need
    /// the store).
    playbook: Playbook,
    block_for: Option<Duration>,
    block_principal_for: Option<Duration>,
    webhook_url: Option<String>,
    /// PEM CA certificates for an https webhook behind a private CA.
    webhook_ca: Option<Vec<u8>>,
}

/// The old name of [`ThreatBuilder`].
#[deprecated(note = "renamed `ThreatBuilder`")]
pub type ThreatLayerBuilder = ThreatBuilder;

impl ThreatBuilder {
    /// A builder seeded from the environment:
    ///
    /// | Variable | |
    /// |---|---|
    /// | `LIFT_THREAT_THRESHOLD` | the blocking score, 1 to 100 |
    /// | `LIFT_THREAT_WEBHOOK_URL` | the alert webhook (`https://`, or `http://` inside the VPC) |
    /// | `LIFT_THREAT_WEBHOOK_CA_FILE` | a PEM file of CA certificates the https webhook is also trusted with |
    /// | `LIFT_THREAT_BLOCK_SECS` | how long an incident blocks the client IP (needs a store) |
    /// | `LIFT_THREAT_BLOCK_PRINCIPAL_SECS` | how long an incident blocks its principal, that issuer's subject alone (needs a store) |
    /// | `LIFT_THREAT_MAX_BODY_BYTES` | the body size limit |
    /// | `LIFT_THREAT_MAX_DEPTH` | the JSON depth limit |
    ///
    /// # Errors
    /// [`InvalidConfig`] when a variable is not a number.
    pub fn from_env() -> Result<Self, InvalidConfig> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidConfig> {
        let env = crate::config::Env::from_lookup(lookup);
        let num = |name: &str| env.parse::<u64>("threat", name, "a number");
        let mut builder = Self::default();
        if let Some(t) = num("LIFT_THREAT_THRESHOLD")? {
            builder.threshold = Some(u8::try_from(t).unwrap_or(u8::MAX));
        }
        builder.webhook_url = env.get("LIFT_THREAT_WEBHOOK_URL");
        if let Some(path) = env.get("LIFT_THREAT_WEBHOOK_CA_FILE") {
            let pem = std::fs::read(&path)
                .map_err(|_| InvalidConfig::new("threat", "LIFT_THREAT_WEBHOOK_CA_FILE cannot be read"))?;
            builder.webhook_ca = Some(pem);
        }
        builder.block_for = num("LIFT_THREAT_BLOCK_SECS")?.map(Duration::from_secs);
        builder.block_principal_for = num("LIFT_THREAT_BLOCK_PRINCIPAL_SECS")?.map(Duration::from_secs);
        let mut detectors = Detectors::new();
        if let Some(bytes) = num("LIFT_THREAT_MAX_BODY_BYTES")? {
            detectors = detectors.max_body_bytes(bytes as usize);
        }
        if let Some(depth) = num("LIFT_THREAT_MAX_DEPTH")? {
            detectors = detectors.max_depth(depth as usize);
        }
        builder.detectors = Some(detectors);
        Ok(builder)
    }

    /// The request detectors (default [`Detectors::new`]).
    pub fn detectors(mut self, detectors: Detectors) -> Self {
        self.detectors = Some(detectors);
        self
    }

    /// The risk score at which a request is refused, 1 to 100 (default [`DEFAULT_THRESHOLD`]).
    pub fn threshold(mut self, threshold: u8) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// The blocklist: blocked IPs and principals are refused before anything else runs.
    pub fn store(mut self, store: ThreatStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Behaviour counters: 401 responses count as failed authentication per IP and per
    /// user ([`FailedLogin`](super::FailedLogin) names the user); the request that trips a
    /// threshold raises an incident.
    pub fn behaviour(mut self, monitor: BehaviourMonitor) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Counts the distinct tenants each principal touches (one DynamoDB update per
    /// authenticated request; needs [`behaviour`](Self::behaviour)); past the limit, the
    /// request scores a high finding.
    pub fn track_tenants(mut self, track: bool) -> Self {
        self.track_tenants = track;
        self
    }

    /// Writes every incident's snapshot to the audit trail.
    pub fn audit(mut self, trail: AuditTrail) -> Self {
        self.playbook = self.playbook.audit(trail);
        self
    }

    /// Alerts a webhook on every incident.
    pub fn alert(mut self, alert: WebhookAlert) -> Self {
        self.playbook = self.playbook.alert(alert);
        self
    }

    /// Blocks the client IP of every incident for `duration` (needs a [store](Self::store)),
    /// an IPv6 client's whole /64. A burst of failed logins for one user blocks no IP: those
    /// come from anywhere, and the IP of the failure that tripped may be the user's own.
    pub fn block_ip_for(mut self, duration: Duration) -> Self {
        self.block_for = Some(duration);
        self
    }

    /// Blocks the principal of every incident for `duration` (needs a [store](Self::store)):
    /// that issuer's subject alone ([`BlockTarget::of`](super::BlockTarget::of)), so an
    /// attack made under another issuer's user of the same name does not lock this one out.
    pub fn block_principal_for(mut self, duration: Duration) -> Self {
        self.block_principal_for = Some(duration);
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// [`InvalidConfig`] for a threshold outside 1..=100, automatic blocks or tenant
    /// tracking without what they need, or a bad webhook URL from the environment.
    pub fn build(mut self) -> Result<ThreatLayer, InvalidConfig> {
        if !(1..=100).contains(&self.threshold.unwrap_or(DEFAULT_THRESHOLD)) {
            return Err(InvalidConfig::new("threat", "the threshold must be between 1 and 100"));
        }
        if self.block_for.is_some() && self.store.is_none() {
            return Err(InvalidConfig::new("threat", "blocking ips needs a store"));
        }
        if self.block_principal_for.is_some() && self.store.is_none() {
            return Err(InvalidConfig::new("threat", "blocking principals needs a store"));
        }
        if self.track_tenants && self.monitor.is_none() {
            return Err(InvalidConfig::new("threat", "tracking tenants needs a behaviour monitor"));
        }
        if !self.playbook.has_alert() {
            if let Some(url) = self.webhook_url.take() {
                let mut alert = WebhookAlert::new(&url)?;
                if let Some(pem) = self.webhook_ca.take() {
                    alert = alert.root_certificates_pem(&pem)?;
                }
                self.playbook = self.playbook.alert(alert);
            }
        }
        if let Some(monitor) = self.monitor.take() {
            self.monitor = Some(monitor.validate()?);
        }
        Ok(ThreatLayer { config: Arc::new(self.config()) })
    }

    fn config(self) -> Config {
        let mut playbook = self.playbook;
        if let (Some(store), Some(duration)) = (&self.store, self.block_for) {
            playbook = playbook.block_ip(store.clone(), duration);
        }
        if let (Some(store), Some(duration)) = (&self.store, self.block_principal_for) {
            playbook = playbook.block_principal(store.clone(), duration);
        }
        Config {
            detectors: self.detectors.unwrap_or_default(),
            threshold: self.threshold.unwrap_or(DEFAULT_THRESHOLD),
            store: self.store,
            monitor: self.monitor,
            track_tenants: self.track_tenants,
            playbook,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_vars(pairs: &[(&str, String)]) -> Result<ThreatLayer, InvalidConfig> {
        ThreatBuilder::from_env_vars(|name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()))?
            .build()
    }

    #[test]
    fn an_https_webhook_and_its_ca_come_from_the_environment() {
        let url = ("LIFT_THREAT_WEBHOOK_URL", "https://alerts.example/threat".to_owned());
        assert!(from_vars(std::slice::from_ref(&url)).is_ok(), "https needs no ca beyond the system's");
        let missing = ("LIFT_THREAT_WEBHOOK_CA_FILE", "/nonexistent/lift-ca.pem".to_owned());
        let err = from_vars(&[url.clone(), missing]).unwrap_err();
        assert_eq!(err.reason(), "LIFT_THREAT_WEBHOOK_CA_FILE cannot be read");

        let dir = std::env::temp_dir();
        let ca = dir.join(format!("lift-threat-ca-{}.pem", uuid::Uuid::new_v4()));
        let cert = rcgen::generate_simple_self_signed(vec!["alerts.internal".to_owned()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let not_pem = dir.join(format!("lift-threat-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let with_ca = from_vars(&[url.clone(), ("LIFT_THREAT_WEBHOOK_CA_FILE", ca.display().to_string())]);
        let with_junk = from_vars(&[url, ("LIFT_THREAT_WEBHOOK_CA_FILE", not_pem.display().to_string())]);
        let _ = (std::fs::remove_file(&ca), std::fs::remove_file(&not_pem));
        assert!(with_ca.is_ok());
        assert_eq!(with_junk.unwrap_err().reason(), "the webhook ca holds no certificate");
        let ftp = ("LIFT_THREAT_WEBHOOK_URL", "ftp://alerts.example/threat".to_owned());
        assert!(from_vars(&[ftp]).is_err());
    }
}
