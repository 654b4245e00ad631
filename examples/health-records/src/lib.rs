//! A multi-tenant health-records API (HIPAA) on Lift, backed by DynamoDB.
//!
//! Patients, encounters and observations, with every PHI field sealed under the patient's
//! own key ([`store`]), read through minimum necessary ([`access`]): a clinician sees the
//! clinical fields, billing the identifiers and codes, a patient their own record only.
//! Staff outside their role can break the glass with a stated reason (audited, alerted);
//! a patient lists who read their record ([`routes`], HIPAA 164.528); entries expire by
//! class and a record is erased where retention allows it (crypto-shredding).
//!
//! # Quick start
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use health_records::{mount, Config, HealthRecords, StackParts};
//!
//! let config = Config::from_env()?;
//! let records = config.records(client.clone())?;
//! let parts = StackParts { dynamodb: Some(client), audit: records.audit.clone(), ..Default::default() };
//! let stack = config.stack(parts, lift::middleware::metrics::StdoutSink)?;
//! let app = mount(records, stack);
//! # let _ = app; Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod access;
pub mod model;
pub mod routes;
pub mod store;
#[cfg(feature = "harness")]
pub mod workload;

use std::time::Duration;

use lift::middleware::metrics::{MetricsBuilder, MetricsSink};
use lift::middleware::xray::XrayBuilder;
use lift::security::compliance::ComplianceRecorder;
use lift::security::threat::{Playbook, ThreatLayer, WebhookAlert};

pub use routes::{
    jwt_layer, mount, service, Disclosure, DisclosureScope, HealthRecords, READ_SCOPE, REALM, WRITE_SCOPE,
};
pub use store::{table_def, PhiCipher, RecordStore, Retention, StoreError};

/// The audience tokens must carry unless `HEALTH_JWT_AUDIENCE` says otherwise.
pub const DEFAULT_AUDIENCE: &str = "health-records";
/// Requests of one tenant that run at once unless `HEALTH_TENANT_CONCURRENCY` says otherwise.
pub const DEFAULT_TENANT_CONCURRENCY: usize = 32;
/// Requests per tenant per minute unless `HEALTH_RATE_LIMIT` says otherwise.
pub const DEFAULT_RATE_LIMIT: u32 = 600;
/// The longest a request may take unless `HEALTH_TIMEOUT_MS` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The CloudWatch namespace unless `HEALTH_METRICS_NAMESPACE` (or lift's variables) name another.
pub const DEFAULT_METRICS_NAMESPACE: &str = "HealthRecords";

/// Configuration from the environment.
#[derive(Clone)]
pub struct Config {
    /// The records table (`HEALTH_TABLE`, else `LIFT_TABLE_HEALTH_RECORDS`/`LIFT_TABLE_PREFIX`).
    pub table: String,
    /// The token issuer (`HEALTH_JWT_ISSUER`, else `LIFT_JWT_ISSUER`): required.
    pub jwt_issuer: String,
    /// The issuer's JWK set (`HEALTH_JWKS_URL`, else `LIFT_JWKS_URL`): required.
    pub jwks_url: String,
    /// The audience tokens must name (`HEALTH_JWT_AUDIENCE`, else `health-records`).
    pub jwt_audience: String,
    /// The KMS key that wraps the patients' keys (`HEALTH_KMS_KEY_ID`, else
    /// `LIFT_KMS_KEY_ID`): required, PHI is never stored in clear.
    pub kms_key_id: String,
    /// The patients' key table (`HEALTH_SUBJECT_KEYS_TABLE`, else lift's `subject_keys`
    /// name). Keep it out of backups: see [`lift::store::tables::subject_keys`].
    pub subject_keys_table: String,
    /// The idempotency table (`HEALTH_IDEMPOTENCY_TABLE`, else lift's).
    pub idempotency_table: String,
    /// The audit table (`HEALTH_AUDIT_TABLE`, else lift's): the accounting of disclosures
    /// reads it.
    pub audit_table: String,
    /// The rate limit table (`HEALTH_RATE_LIMIT_TABLE`, else lift's).
    pub rate_limit_table: String,
    /// Requests of one tenant at once (`HEALTH_TENANT_CONCURRENCY`).
    pub tenant_concurrency: usize,
    /// Requests per tenant per minute, shared through DynamoDB (`HEALTH_RATE_LIMIT`; 0 is off).
    pub rate_limit: u32,
    /// The longest a request may take (`HEALTH_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Retention per class (`HEALTH_RETENTION_{DEMOGRAPHICS,ENCOUNTERS,OBSERVATIONS}_DAYS`).
    pub retention: Retention,
    /// Where break-glass alerts go (`HEALTH_BREAK_GLASS_WEBHOOK`, else `LIFT_THREAT_WEBHOOK`);
    /// without one they are audited and logged only.
    pub break_glass_webhook: Option<String>,
    /// CloudWatch EMF metrics.
    pub metrics: MetricsBuilder,
    /// X-Ray.
    pub xray: XrayBuilder,
    /// Threat detection (`LIFT_THREAT_*`).
    pub threat: ThreatLayer,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwks_url", &self.jwks_url)
            .field("jwt_audience", &self.jwt_audience)
            .field("kms_key_id", &self.kms_key_id)
            .field("subject_keys_table", &self.subject_keys_table)
            .field("idempotency_table", &self.idempotency_table)
            .field("audit_table", &self.audit_table)
            .field("rate_limit_table", &self.rate_limit_table)
            .field("tenant_concurrency", &self.tenant_concurrency)
            .field("rate_limit", &self.rate_limit)
            .field("timeout", &self.timeout)
            .field("retention", &self.retention)
            .field("break_glass_webhook", &self.break_glass_webhook)
            .finish_non_exhaustive()
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("missing or invalid configuration: {0}")]
pub struct ConfigError(String);

/// What the stack needs besides the configuration ([`Config::stack`]).
#[derive(Debug, Default)]
pub struct StackParts {
    /// DynamoDB for the rate limit and idempotency. Without it neither is mounted.
    pub dynamodb: Option<aws_sdk_dynamodb::Client>,
    /// The audit trail (the one [`HealthRecords::audit`] reads and the break-glass
    /// playbook writes: one trail per table, so one chain). Without it no audit layer.
    pub audit: Option<lift::security::audit::AuditTrail>,
    /// Where the compliance checks of every invocation are recorded.
    pub compliance: ComplianceRecorder,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(lift::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), through `lookup` (tests), through lift's one
    /// environment reader.
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = lift::config::Env::from_lookup(lookup);
        Self::from_vars(|name| env.get(name))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| var(n))
                .ok_or_else(|| ConfigError(format!("{} (or {}) is not set", names[0], names[1])))
        };
        let jwt_issuer = required(["HEALTH_JWT_ISSUER", "LIFT_JWT_ISSUER"])?;
        let jwks_url = required(["HEALTH_JWKS_URL", "LIFT_JWKS_URL"])?;
        let kms_key_id = required(["HEALTH_KMS_KEY_ID", "LIFT_KMS_KEY_ID"])?;
        let number = |name: &str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .map(|v| v.parse().map_err(|_| ConfigError(format!("{name} must be a whole number"))))
                .transpose()
        };
        let tenant_concurrency = match number("HEALTH_TENANT_CONCURRENCY")? {
            None => DEFAULT_TENANT_CONCURRENCY,
            Some(0) => return Err(ConfigError("HEALTH_TENANT_CONCURRENCY must be at least 1".into())),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let rate_limit =
            number("HEALTH_RATE_LIMIT")?.map_or(DEFAULT_RATE_LIMIT, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let timeout = match number("HEALTH_TIMEOUT_MS")? {
            None => DEFAULT_TIMEOUT,
            Some(0) => return Err(ConfigError("HEALTH_TIMEOUT_MS must be at least 1".into())),
            Some(ms) => Duration::from_millis(ms),
        };
        let days = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            Ok(number(name)?.map_or(default, |d| Duration::from_secs(d * 86_400)))
        };
        let defaults = Retention::default();
        let retention = Retention {
            demographics: days("HEALTH_RETENTION_DEMOGRAPHICS_DAYS", defaults.demographics)?,
            encounters: days("HEALTH_RETENTION_ENCOUNTERS_DAYS", defaults.encounters)?,
            observations: days("HEALTH_RETENTION_OBSERVATIONS_DAYS", defaults.observations)?,
        };
        let break_glass_webhook = var("HEALTH_BREAK_GLASS_WEBHOOK").or_else(|| var("LIFT_THREAT_WEBHOOK"));
        if let Some(url) = &break_glass_webhook {
            WebhookAlert::new(url).map_err(|e| ConfigError(format!("HEALTH_BREAK_GLASS_WEBHOOK: {e}")))?;
        }
        let namespace = var("HEALTH_METRICS_NAMESPACE")
            .or_else(|| var("LIFT_METRICS_NAMESPACE"))
            .or_else(|| var("POWERTOOLS_METRICS_NAMESPACE"))
            .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned());
        let threat = lift::security::threat::ThreatBuilder::from_env_vars(&var)
            .and_then(lift::security::threat::ThreatBuilder::build)
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(Self {
            table: var("HEALTH_TABLE").unwrap_or_else(|| table_def().resolve_name()),
            jwt_issuer,
            jwks_url,
            jwt_audience: var("HEALTH_JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            kms_key_id,
            subject_keys_table: var("HEALTH_SUBJECT_KEYS_TABLE")
                .unwrap_or_else(|| lift::store::tables::subject_keys().resolve_name()),
            idempotency_table: var("HEALTH_IDEMPOTENCY_TABLE")
                .unwrap_or_else(|| lift::store::tables::idempotency().resolve_name()),
            audit_table: var("HEALTH_AUDIT_TABLE")
                .unwrap_or_else(|| lift::store::tables::audit().resolve_name()),
            rate_limit_table: var("HEALTH_RATE_LIMIT_TABLE")
                .unwrap_or_else(|| lift::store::tables::rate_limits().resolve_name()),
            tenant_concurrency,
            rate_limit,
            timeout,
            retention,
            break_glass_webhook,
            metrics: MetricsBuilder::from_env_vars(&var).namespace(namespace),
            xray: XrayBuilder::from_env_vars(&var),
            threat,
        })
    }

    /// The audit trail over the configured table.
    pub fn audit_trail(
        &self,
        client: aws_sdk_dynamodb::Client,
    ) -> Result<lift::security::audit::AuditTrail, ConfigError> {
        lift::security::audit::AuditTrail::builder()
            .client(client)
            .table(&self.audit_table)
            .build()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The handlers' state: the store (PHI sealed under the patients' keys, wrapped by KMS
    /// through the AWS SDK, at `AWS_ENDPOINT_URL_KMS` when set), the audit trail the
    /// disclosures read, and the break-glass playbook (audit, and the webhook when set).
    pub fn records(&self, client: aws_sdk_dynamodb::Client) -> Result<HealthRecords, ConfigError> {
        let kms =
            lift::security::protection::AwsKmsClient::from_env().map_err(|e| ConfigError(e.to_string()))?;
        let keys = lift::security::protection::SubjectKeys::builder()
            .client(client.clone())
            .table(&self.subject_keys_table)
            .kms(kms, &self.kms_key_id)
            .build()
            .map_err(|e| ConfigError(e.to_string()))?;
        let store = RecordStore::new(client.clone(), &self.table, PhiCipher::Subject(keys))
            .with_retention(self.retention);
        let trail = self.audit_trail(client)?;
        let mut break_glass = Playbook::new().audit(trail.clone());
        if let Some(url) = &self.break_glass_webhook {
            break_glass = break_glass.alert(WebhookAlert::new(url).map_err(|e| ConfigError(e.to_string()))?);
        }
        Ok(HealthRecords { store, audit: Some(trail), break_glass })
    }

    /// The JWT layer for the configured issuer and audience.
    pub fn jwt_layer(&self) -> Result<lift::middleware::auth::JwtLayer, ConfigError> {
        let issuer = lift::middleware::auth::Issuer::jwks(&self.jwt_issuer, &self.jwks_url)
            .audience(&self.jwt_audience);
        jwt_layer(issuer).map_err(|e| ConfigError(e.to_string()))
    }

    /// The recommended stack ([`lift::stack()`]) as the service mounts it: request log,
    /// metrics and X-Ray outermost; JWT; per tenant a bulkhead, a circuit breaker, a rate
    /// limit shared through DynamoDB and the timeout; per route (after the scope and role
    /// checks) the compliance rules, the audit trail, threat detection and, innermost,
    /// idempotency on POST.
    pub fn stack(
        &self,
        parts: StackParts,
        metrics_sink: impl MetricsSink,
    ) -> Result<lift::Stack, ConfigError> {
        use lift::middleware::bulkhead::BulkheadLayer;
        use lift::middleware::circuit_breaker::CircuitBreakerLayer;
        use lift::middleware::rate_limit::{RateLimitBuilder, RateLimitKey};
        use lift::security::audit::AuditLayer;
        use lift::security::compliance::ComplianceLayer;

        let invalid = |e: &dyn std::error::Error| ConfigError(e.to_string());
        let mut stack = lift::stack()
            .request_log(lift::middleware::logging::RequestLogLayer::new())
            .metrics(self.metrics.clone().sink(metrics_sink).build().map_err(|e| invalid(&e))?)
            .xray(self.xray.clone().build().map_err(|e| invalid(&e))?)
            .jwt(self.jwt_layer()?)
            .tenant_bulkhead(
                BulkheadLayer::builder()
                    .per_tenant(self.tenant_concurrency)
                    .build()
                    .map_err(|e| invalid(&e))?,
            )
            .tenant_breaker(CircuitBreakerLayer::per_tenant().build().map_err(|e| invalid(&e))?)
            .timeout(lift::middleware::timeout::TimeoutLayer::new(self.timeout))
            .threat(self.threat.clone());
        let mut compliance = ComplianceLayer::new(parts.compliance);
        if let Some(client) = parts.dynamodb {
            if self.rate_limit > 0 {
                let limit = RateLimitBuilder::default()
                    .client(client.clone())
                    .table(&self.rate_limit_table)
                    .name("health-records")
                    .key(RateLimitKey::Tenant)
                    .limit(self.rate_limit)
                    .window(Duration::from_secs(60))
                    .build()
                    .map_err(|e| invalid(&e))?;
                stack = stack.rate_limit(limit);
            }
            let idempotency = lift::middleware::idempotency::IdempotencyLayer::builder()
                .client(client.clone())
                .table(&self.idempotency_table)
                .methods([http::Method::POST])
                .require_key(true)
                .build()
                .map_err(|e| invalid(&e))?;
            stack = stack.idempotency(idempotency);
        }
        if let Some(trail) = parts.audit {
            compliance = compliance.audit(trail.clone());
            stack = stack.audit(AuditLayer::new(trail));
        }
        stack.compliance(compliance).build().map_err(|e| invalid(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| set.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    const BASE: [(&str, &str); 3] = [
        ("LIFT_JWT_ISSUER", "http://127.0.0.1:1"),
        ("LIFT_JWKS_URL", "http://127.0.0.1:1/jwks"),
        ("LIFT_KMS_KEY_ID", "alias/lift"),
    ];

    #[test]
    fn jwt_and_a_kms_key_are_required() {
        assert!(Config::from_vars(vars(&BASE)).is_ok());
        for missing in 0..BASE.len() {
            let set: Vec<_> =
                BASE.iter().enumerate().filter(|(i, _)| *i != missing).map(|(_, v)| *v).collect();
            let err = Config::from_vars(vars(&set)).unwrap_err().to_string();
            assert!(err.contains("is not set"), "{err}");
        }
    }

    #[test]
    fn health_variables_win_and_retention_is_per_class() {
        let mut set = BASE.to_vec();
        set.extend([
            ("HEALTH_KMS_KEY_ID", "alias/health"),
            ("HEALTH_RETENTION_ENCOUNTERS_DAYS", "2"),
            ("HEALTH_BREAK_GLASS_WEBHOOK", "https://alerts.example.com/glass"),
        ]);
        let config = Config::from_vars(vars(&set)).unwrap();
        assert_eq!(config.kms_key_id, "alias/health");
        assert_eq!(config.retention.encounters, Duration::from_secs(2 * 86_400));
        assert_eq!(config.retention.observations, Retention::default().observations);
        assert_eq!(config.jwt_audience, DEFAULT_AUDIENCE);
        set.push(("HEALTH_RETENTION_OBSERVATIONS_DAYS", "ten"));
        assert!(Config::from_vars(vars(&set)).is_err());
        let mut bad = BASE.to_vec();
        bad.push(("HEALTH_BREAK_GLASS_WEBHOOK", "ftp://nope"));
        assert!(Config::from_vars(vars(&bad)).is_err());
    }
}
