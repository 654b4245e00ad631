//! A multi-tenant payments API on Lift, backed by DynamoDB.
//!
//! It creates payments (card number, amount in minor units, ISO 4217 currency, customer),
//! reads and lists a tenant's payments, and refunds them. The card number is validated
//! (Luhn) and never stored: only its brand, last four digits and a keyed fingerprint are.
//! Tests, compliance suites, chaos drills and benches all drive this service.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod card;
pub mod currency;
pub mod fingerprint_key;
pub mod model;
pub mod privacy;
pub mod routes;
pub mod store;
#[cfg(feature = "harness")]
pub mod workload;

pub use fingerprint_key::FingerprintKey;
pub use routes::{
    app, app_with_jwt, jwt_layer, mount, service, Payments, DEV_TENANT_HEADER, READ_SCOPE, REALM, WRITE_SCOPE,
};
pub use store::{table_def, PaymentStore, StoreError};

/// What the service is, for `lift-deploy synth`: the routes of [`mount`] (with their scope
/// requirements) and every table the service uses, with the actions its code calls on each.
///
/// The App is built with an offline DynamoDB client: nothing is called.
#[cfg(feature = "deploy")]
pub fn manifest() -> lift_deploy::Manifest {
    use lift::store::tables;
    use lift_deploy::{Manifest, TableAccess};
    let sdk = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(sdk);
    let store = PaymentStore::new(client, table_def().name, vec![0; 32]);
    let payments = Payments { store, dev_tenant_header_insecure: false };
    let stack = match lift::stack().build() {
        Ok(stack) => stack,
        Err(err) => unreachable!("an empty stack builds: {err}"),
    };
    let app = mount(payments, stack);
    Manifest::from_app(&app)
        // Creates (transactions), refunds (updates), reads and lists.
        .table(
            table_def(),
            TableAccess::actions(["ConditionCheckItem", "GetItem", "PutItem", "Query", "UpdateItem"]),
        )
        .table(tables::idempotency(), TableAccess::idempotency())
        .table(tables::rate_limits(), TableAccess::rate_limits())
        .table(tables::audit(), TableAccess::audit())
        .table(tables::subject_keys(), TableAccess::subject_keys())
}

/// The audience payments tokens must carry unless `PAYMENTS_JWT_AUDIENCE` or
/// `LIFT_JWT_AUDIENCE` says otherwise.
pub const DEFAULT_AUDIENCE: &str = "payments";
/// How many requests of one tenant run at once unless `PAYMENTS_TENANT_CONCURRENCY` says
/// otherwise.
pub const DEFAULT_TENANT_CONCURRENCY: usize = 32;
/// Requests per tenant per window unless `PAYMENTS_RATE_LIMIT` says otherwise.
pub const DEFAULT_RATE_LIMIT: u32 = 600;
/// The rate limit's window unless `PAYMENTS_RATE_LIMIT_WINDOW_SECS` says otherwise.
pub const DEFAULT_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(60);
/// The longest a request may take unless `PAYMENTS_TIMEOUT_MS` says otherwise (the Lambda
/// deadline, minus a margin, cuts it shorter).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a tenant's open breaker refuses before it tries again, unless
/// `PAYMENTS_BREAKER_OPEN_SECS` says otherwise.
pub const DEFAULT_BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);
/// The CloudWatch namespace unless `PAYMENTS_METRICS_NAMESPACE`, `LIFT_METRICS_NAMESPACE` or
/// `POWERTOOLS_METRICS_NAMESPACE` names another.
pub const DEFAULT_METRICS_NAMESPACE: &str = "Payments";

use std::time::Duration;

use lift::middleware::metrics::{MetricsBuilder, MetricsSink};
use lift::middleware::xray::XrayBuilder;
use lift::security::compliance::ComplianceRecorder;
use lift::security::threat::ThreatLayer;

/// Configuration from the environment.
#[derive(Clone)]
pub struct Config {
    /// The payments table (`PAYMENTS_TABLE`, else `LIFT_TABLE_PAYMENTS`/`LIFT_TABLE_PREFIX`).
    pub table: String,
    /// The key for card fingerprints (`PAYMENTS_FINGERPRINT_KEY`), or the Secrets Manager
    /// secret holding it (`LIFT_SECRET_FINGERPRINT_KEY_ARN`, as `lift-deploy` sets it):
    /// [`FingerprintKey::load`] fetches it at init.
    pub fingerprint_key: FingerprintKey,
    /// The token issuer (`PAYMENTS_JWT_ISSUER`, else `LIFT_JWT_ISSUER`).
    pub jwt_issuer: Option<String>,
    /// The issuer's JWK set (`PAYMENTS_JWKS_URL`, else `LIFT_JWKS_URL`).
    pub jwks_url: Option<String>,
    /// The audiences tokens may name, comma-separated (`PAYMENTS_JWT_AUDIENCE`, else
    /// `LIFT_JWT_AUDIENCE` as `lift-deploy` sets it from `[api.jwt]`, else `payments`).
    pub jwt_audience: String,
    /// DEVELOPMENT ONLY (`LIFT_DEV_TENANT_HEADER_INSECURE=1`): take the tenant from a header
    /// on requests without a token. Refused on Lambda (`AWS_LAMBDA_RUNTIME_API` set): the
    /// configuration fails to load.
    pub dev_tenant_header_insecure: bool,
    /// The idempotency table (`PAYMENTS_IDEMPOTENCY_TABLE`, else `LIFT_TABLE_IDEMPOTENCY`/
    /// `LIFT_TABLE_PREFIX`, else `lift-idempotency`).
    pub idempotency_table: String,
    /// Whether creates and refunds must carry an `Idempotency-Key`
    /// (`PAYMENTS_IDEMPOTENCY_KEY_REQUIRED`, default true): without one, a client's retry
    /// after a lost response would charge twice.
    pub idempotency_key_required: bool,
    /// The subject-key table of crypto-shredding (`PAYMENTS_SUBJECT_KEYS_TABLE`, else
    /// `LIFT_TABLE_LIFT_SUBJECT_KEYS`/`LIFT_TABLE_PREFIX`, else `lift-subject-keys`). Keep
    /// it out of backups: see [`lift::store::tables::subject_keys`].
    pub subject_keys_table: String,
    /// The KMS key that wraps customer keys (`PAYMENTS_KMS_KEY_ID`, else `LIFT_KMS_KEY_ID`).
    /// Without one, personal data is stored in clear and erasure cannot reach backups.
    pub kms_key_id: Option<String>,
    /// Requests of one tenant that run at once; more wait, then get 503
    /// (`PAYMENTS_TENANT_CONCURRENCY`).
    pub tenant_concurrency: usize,
    /// Requests per tenant per [`rate_limit_window`](Self::rate_limit_window), shared by every
    /// instance through DynamoDB (`PAYMENTS_RATE_LIMIT`; 0 turns the limit off).
    pub rate_limit: u32,
    /// The rate limit's window (`PAYMENTS_RATE_LIMIT_WINDOW_SECS`).
    pub rate_limit_window: Duration,
    /// The rate limit table (`PAYMENTS_RATE_LIMIT_TABLE`, else `LIFT_TABLE_RATE_LIMITS`/
    /// `LIFT_TABLE_PREFIX`, else `lift-rate-limits`).
    pub rate_limit_table: String,
    /// The longest a request may take (`PAYMENTS_TIMEOUT_MS`).
    pub timeout: Duration,
    /// How long a tenant's open breaker refuses (`PAYMENTS_BREAKER_OPEN_SECS`).
    pub breaker_open_for: Duration,
    /// The audit table (`PAYMENTS_AUDIT_TABLE`, else `LIFT_TABLE_AUDIT`/`LIFT_TABLE_PREFIX`,
    /// else `lift-audit`).
    pub audit_table: String,
    /// CloudWatch EMF metrics: the namespace (`PAYMENTS_METRICS_NAMESPACE`, else lift's
    /// variables, else `Payments`) and the function name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub metrics: MetricsBuilder,
    /// X-Ray: the daemon (`AWS_XRAY_DAEMON_ADDRESS`) and names (`AWS_XRAY_TRACING_NAME`,
    /// `AWS_LAMBDA_FUNCTION_NAME`).
    pub xray: XrayBuilder,
    /// Threat detection (`LIFT_THREAT_*`, see [`lift::security::threat::ThreatBuilder::from_env`]).
    pub threat: ThreatLayer,
    /// Fault injection (`LIFT_CHAOS_*`, see [`lift::middleware::chaos`]); only in builds with
    /// the `chaos` feature, and off unless `LIFT_CHAOS_ENABLED=true`.
    #[cfg(feature = "chaos")]
    pub chaos: lift::middleware::chaos::ChaosLayer,
}

/// What the recommended stack needs besides the configuration ([`Config::stack`]).
#[derive(Debug, Default)]
pub struct StackParts {
    /// DynamoDB for the per-tenant rate limit and the audit trail. Without it neither is
    /// mounted: only the in-process layers (the benches measure those).
    pub dynamodb: Option<aws_sdk_dynamodb::Client>,
    /// The idempotency layer ([`Config::idempotency_layer`] or
    /// [`Config::idempotency_layer_sealed`]), on the create and refund routes.
    pub idempotency: Option<lift::middleware::idempotency::IdempotencyLayer>,
    /// Where the compliance checks of every invocation are recorded.
    pub compliance: ComplianceRecorder,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("fingerprint_key", &self.fingerprint_key)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwks_url", &self.jwks_url)
            .field("jwt_audience", &self.jwt_audience)
            .field("dev_tenant_header_insecure", &self.dev_tenant_header_insecure)
            .field("idempotency_table", &self.idempotency_table)
            .field("idempotency_key_required", &self.idempotency_key_required)
            .field("subject_keys_table", &self.subject_keys_table)
            .field("kms_key_id", &self.kms_key_id)
            .field("tenant_concurrency", &self.tenant_concurrency)
            .field("rate_limit", &self.rate_limit)
            .field("rate_limit_window", &self.rate_limit_window)
            .field("rate_limit_table", &self.rate_limit_table)
            .field("timeout", &self.timeout)
            .field("breaker_open_for", &self.breaker_open_for)
            .field("audit_table", &self.audit_table)
            .field("metrics", &self.metrics)
            .field("xray", &self.xray)
            .finish_non_exhaustive()
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("missing or invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the configuration from the environment. A JWT issuer and JWKS URL are
    /// required unless the development tenant header is on; so is the fingerprint key or
    /// the ARN of the secret holding it, which [`FingerprintKey::load`] then fetches (this
    /// reads variables only and calls nothing).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(lift::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (tests,
    /// benches), through lift's one environment reader ([`lift::config::Env`]).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = lift::config::Env::from_lookup(lookup);
        Self::from_vars(|name| env.get(name))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = var("PAYMENTS_TABLE").unwrap_or_else(|| table_def().resolve_name());
        let fingerprint_key = FingerprintKey::from_vars(&var)?;
        // Refused on Lambda: there, any caller could act as any tenant.
        let dev_tenant_header_insecure = lift::config::Env::from_lookup(&var)
            .development_switch("payments", "LIFT_DEV_TENANT_HEADER_INSECURE")
            .map_err(|e| ConfigError(e.to_string()))?;
        let jwt_issuer = var("PAYMENTS_JWT_ISSUER").or_else(|| var("LIFT_JWT_ISSUER"));
        let jwks_url = var("PAYMENTS_JWKS_URL").or_else(|| var("LIFT_JWKS_URL"));
        let jwt_audience = var("PAYMENTS_JWT_AUDIENCE")
            .or_else(|| var("LIFT_JWT_AUDIENCE"))
            .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
        match (&jwt_issuer, &jwks_url) {
            (Some(_), Some(_)) => {}
            (None, None) if dev_tenant_header_insecure => {}
            (None, _) => {
                return Err(ConfigError("PAYMENTS_JWT_ISSUER (or LIFT_JWT_ISSUER) is not set".into()));
            }
            (_, None) => return Err(ConfigError("PAYMENTS_JWKS_URL (or LIFT_JWKS_URL) is not set".into())),
        }
        let idempotency_table = var("PAYMENTS_IDEMPOTENCY_TABLE")
            .unwrap_or_else(|| lift::store::tables::idempotency().resolve_name());
        let idempotency_key_required = match var("PAYMENTS_IDEMPOTENCY_KEY_REQUIRED").as_deref() {
            None | Some("1" | "true") => true,
            Some("0" | "false") => false,
            Some(other) => {
                return Err(ConfigError(format!(
                    "PAYMENTS_IDEMPOTENCY_KEY_REQUIRED must be true or false, not {other:?}"
                )))
            }
        };
        let subject_keys_table = var("PAYMENTS_SUBJECT_KEYS_TABLE")
            .unwrap_or_else(|| lift::store::tables::subject_keys().resolve_name());
        let kms_key_id = var("PAYMENTS_KMS_KEY_ID").or_else(|| var("LIFT_KMS_KEY_ID"));
        let number = |name: &str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .map(|v| v.parse().map_err(|_| ConfigError(format!("{name} must be a whole number"))))
                .transpose()
        };
        let tenant_concurrency = match number("PAYMENTS_TENANT_CONCURRENCY")? {
            None => DEFAULT_TENANT_CONCURRENCY,
            Some(0) => return Err(ConfigError("PAYMENTS_TENANT_CONCURRENCY must be at least 1".into())),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let rate_limit = number("PAYMENTS_RATE_LIMIT")?
            .map_or(DEFAULT_RATE_LIMIT, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let rate_limit_window = match number("PAYMENTS_RATE_LIMIT_WINDOW_SECS")? {
            None => DEFAULT_RATE_LIMIT_WINDOW,
            Some(0) => return Err(ConfigError("PAYMENTS_RATE_LIMIT_WINDOW_SECS must be at least 1".into())),
            Some(secs) => Duration::from_secs(secs),
        };
        let timeout = match number("PAYMENTS_TIMEOUT_MS")? {
            None => DEFAULT_TIMEOUT,
            Some(0) => return Err(ConfigError("PAYMENTS_TIMEOUT_MS must be at least 1".into())),
            Some(ms) => Duration::from_millis(ms),
        };
        let breaker_open_for =
            number("PAYMENTS_BREAKER_OPEN_SECS")?.map_or(DEFAULT_BREAKER_OPEN_FOR, Duration::from_secs);
        let rate_limit_table = var("PAYMENTS_RATE_LIMIT_TABLE")
            .unwrap_or_else(|| lift::store::tables::rate_limits().resolve_name());
        let audit_table =
            var("PAYMENTS_AUDIT_TABLE").unwrap_or_else(|| lift::store::tables::audit().resolve_name());
        let namespace = var("PAYMENTS_METRICS_NAMESPACE")
            .or_else(|| var("LIFT_METRICS_NAMESPACE"))
            .or_else(|| var("POWERTOOLS_METRICS_NAMESPACE"))
            .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned());
        // The dimension sets the SLOs in monitoring/slo/payments.toml read: per tenant and
        // route, per route and service-wide (CloudWatch keeps one metric per set, and an
        // alarm reads exactly one; `lift-monitoring slo check` lists them).
        use lift::middleware::metrics::{ROUTE, TENANT};
        let metrics = MetricsBuilder::from_env_vars(&var)
            .namespace(namespace)
            .dimension_set([ROUTE, TENANT])
            .dimension_set([ROUTE])
            .dimension_set(Vec::<String>::new());
        let xray = XrayBuilder::from_env_vars(&var);
        let threat = lift::security::threat::ThreatBuilder::from_env_vars(&var)
            .and_then(lift::security::threat::ThreatBuilder::build)
            .map_err(|e| ConfigError(e.to_string()))?;
        #[cfg(feature = "chaos")]
        let chaos = lift::middleware::chaos::ChaosBuilder::from_env_vars(&var)
            .and_then(lift::middleware::chaos::ChaosBuilder::build)
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(Self {
            table,
            fingerprint_key,
            jwt_issuer,
            jwks_url,
            jwt_audience,
            dev_tenant_header_insecure,
            idempotency_table,
            idempotency_key_required,
            subject_keys_table,
            kms_key_id,
            tenant_concurrency,
            rate_limit,
            rate_limit_window,
            rate_limit_table,
            timeout,
            breaker_open_for,
            audit_table,
            metrics,
            xray,
            threat,
            #[cfg(feature = "chaos")]
            chaos,
        })
    }

    /// The recommended stack ([`lift::stack()`]) as payments mounts it, each layer configured
    /// from this configuration; [`mount`] puts the routes inside it. From the outside in:
    ///
    /// - the request log, CloudWatch EMF metrics (to `metrics_sink`) and X-Ray;
    /// - JWT, when an issuer is configured, then the development tenant header when it is
    ///   on (so the per-tenant layers see a development tenant too);
    /// - per tenant: a bulkhead ([`tenant_concurrency`](Self::tenant_concurrency)), a circuit
    ///   breaker, a rate limit shared through DynamoDB ([`rate_limit`](Self::rate_limit)), then
    ///   the deadline-aware timeout;
    /// - with the `chaos` feature, fault injection ([`Config::chaos`]);
    /// - per route, after the route's scope check: the compliance rules of every framework
    ///   (recorded to `parts.compliance`, violations audited too), the audit trail, threat
    ///   detection, and innermost idempotency (creates and refunds), so a replay is checked
    ///   and audited like a first attempt.
    ///
    /// # Errors
    /// [`ConfigError`] when a layer refuses its settings.
    pub fn stack(
        &self,
        parts: StackParts,
        metrics_sink: impl MetricsSink,
    ) -> Result<lift::Stack, ConfigError> {
        use lift::middleware::bulkhead::BulkheadLayer;
        use lift::middleware::circuit_breaker::CircuitBreakerLayer;
        use lift::middleware::rate_limit::{RateLimitBuilder, RateLimitKey};
        use lift::security::audit::{AuditLayer, AuditTrail};
        use lift::security::compliance::ComplianceLayer;

        let invalid = |e: &dyn std::error::Error| ConfigError(e.to_string());
        let mut stack = lift::stack()
            .request_log(lift::middleware::logging::RequestLogLayer::new())
            .metrics(self.metrics.clone().sink(metrics_sink).build().map_err(|e| invalid(&e))?)
            .xray(self.xray.clone().build().map_err(|e| invalid(&e))?)
            .tenant_bulkhead(
                BulkheadLayer::builder()
                    .per_tenant(self.tenant_concurrency)
                    .build()
                    .map_err(|e| invalid(&e))?,
            )
            .tenant_breaker(
                CircuitBreakerLayer::per_tenant()
                    .open_for(self.breaker_open_for)
                    .build()
                    .map_err(|e| invalid(&e))?,
            )
            .timeout(lift::middleware::timeout::TimeoutLayer::new(self.timeout))
            .threat(self.threat.clone());
        #[cfg(feature = "chaos")]
        {
            stack = stack.chaos(self.chaos.clone());
        }
        if let Some(jwt) = self.jwt_layer()? {
            stack = stack.jwt(jwt);
        }
        if self.dev_tenant_header_insecure {
            stack = stack.authenticate(routes::DevTenantLayer);
        }
        if let Some(idempotency) = parts.idempotency {
            stack = stack.idempotency(idempotency);
        }
        let mut compliance = ComplianceLayer::new(parts.compliance);
        if let Some(client) = parts.dynamodb {
            if self.rate_limit > 0 {
                let limit = RateLimitBuilder::default()
                    .client(client.clone())
                    .table(&self.rate_limit_table)
                    .name("payments")
                    .key(RateLimitKey::Tenant)
                    .limit(self.rate_limit)
                    .window(self.rate_limit_window)
                    .build()
                    .map_err(|e| invalid(&e))?;
                stack = stack.rate_limit(limit);
            }
            let trail = AuditTrail::builder()
                .client(client)
                .table(&self.audit_table)
                .build()
                .map_err(|e| invalid(&e))?;
            compliance = compliance.audit(trail.clone());
            stack = stack.audit(AuditLayer::new(trail));
        }
        stack.compliance(compliance).build().map_err(|e| invalid(&e))
    }

    /// The customer keys personal data is encrypted under, when a KMS key is configured:
    /// KMS through the AWS SDK, at `AWS_ENDPOINT_URL_KMS` when set, else AWS's endpoint for
    /// `AWS_REGION` ([`lift::security::protection::AwsKmsClient::from_env`]).
    pub fn subject_keys(
        &self,
        client: aws_sdk_dynamodb::Client,
    ) -> Result<Option<lift::security::protection::SubjectKeys>, ConfigError> {
        let Some(key_id) = &self.kms_key_id else { return Ok(None) };
        let kms =
            lift::security::protection::AwsKmsClient::from_env().map_err(|e| ConfigError(e.to_string()))?;
        lift::security::protection::SubjectKeys::builder()
            .client(client)
            .table(&self.subject_keys_table)
            .kms(kms, key_id)
            .build()
            .map(Some)
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The JWT layer for the configured issuer; `None` when none is configured (only in
    /// development, with the tenant header on).
    pub fn jwt_layer(&self) -> Result<Option<lift::middleware::auth::JwtLayer>, ConfigError> {
        let (Some(issuer), Some(url)) = (&self.jwt_issuer, &self.jwks_url) else {
            return Ok(None);
        };
        let mut issuer = lift::middleware::auth::Issuer::jwks(issuer, url);
        for audience in self.jwt_audience.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            issuer = issuer.audience(audience);
        }
        jwt_layer(issuer, self.dev_tenant_header_insecure).map(Some).map_err(|e| ConfigError(e.to_string()))
    }

    /// The idempotency layer over the configured table: `Idempotency-Key` on POST (create
    /// and refund), required unless configured otherwise. Stored answers are in clear; use
    /// [`Config::idempotency_layer_sealed`] where they carry personal data.
    pub fn idempotency_layer(
        &self,
        client: aws_sdk_dynamodb::Client,
        fingerprint_key: &[u8],
    ) -> Result<lift::middleware::idempotency::IdempotencyLayer, ConfigError> {
        self.idempotency_builder(client, fingerprint_key).build().map_err(|e| ConfigError(e.to_string()))
    }

    /// [`Config::idempotency_layer`] with stored answers sealed under the key of the
    /// customer they name ([`privacy::ResponseSealer`]), so erasing the customer erases
    /// them too, before their TTL and in every backup.
    pub fn idempotency_layer_sealed(
        &self,
        client: aws_sdk_dynamodb::Client,
        keys: lift::security::protection::SubjectKeys,
        fingerprint_key: &[u8],
    ) -> Result<lift::middleware::idempotency::IdempotencyLayer, ConfigError> {
        self.idempotency_builder(client, fingerprint_key)
            .response_cipher(privacy::ResponseSealer::new(keys))
            .build()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The records' digests of request bodies (which carry card numbers) are keyed with a
    /// key derived from the fingerprint key ([`idempotency_payload_key`]).
    fn idempotency_builder(
        &self,
        client: aws_sdk_dynamodb::Client,
        fingerprint_key: &[u8],
    ) -> lift::middleware::idempotency::IdempotencyBuilder {
        lift::middleware::idempotency::IdempotencyLayer::builder()
            .client(client)
            .table(&self.idempotency_table)
            .methods([http::Method::POST])
            .require_key(self.idempotency_key_required)
            .payload_key(idempotency_payload_key(fingerprint_key))
    }
}

/// The key of the idempotency records' body digests: HMAC-SHA256 of a fixed label under the
/// fingerprint key, so the one secret serves both without either use revealing the other's.
pub fn idempotency_payload_key(fingerprint_key: &[u8]) -> [u8; 32] {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(fingerprint_key)
        .expect("HMAC takes any key length");
    mac.update(b"payments idempotency payload digest v1");
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| set.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    const KEY: (&str, &str) = ("PAYMENTS_FINGERPRINT_KEY", "0123456789abcdef0123");

    #[test]
    fn jwt_is_required_unless_the_dev_header_is_on() {
        assert!(Config::from_vars(vars(&[KEY])).is_err());
        let dev = Config::from_vars(vars(&[KEY, ("LIFT_DEV_TENANT_HEADER_INSECURE", "1")])).unwrap();
        assert!(dev.jwt_layer().unwrap().is_none());
        let only_issuer = [KEY, ("LIFT_JWT_ISSUER", "http://127.0.0.1:1")];
        assert!(Config::from_vars(vars(&only_issuer)).is_err());
    }

    #[test]
    fn the_dev_header_is_refused_on_lambda() {
        let lambda = ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        let jwt = [("LIFT_JWT_ISSUER", "http://127.0.0.1:1"), ("LIFT_JWKS_URL", "http://127.0.0.1:1/jwks")];
        let err =
            Config::from_vars(vars(&[KEY, lambda, ("LIFT_DEV_TENANT_HEADER_INSECURE", "1")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing or invalid configuration: invalid payments configuration: \
             LIFT_DEV_TENANT_HEADER_INSECURE is for development only and is refused on lambda"
        );
        // Even with a JWT issuer configured: the header would still let any caller in.
        let with_jwt = [KEY, lambda, jwt[0], jwt[1], ("LIFT_DEV_TENANT_HEADER_INSECURE", "true")];
        assert!(Config::from_vars(vars(&with_jwt)).is_err());
        // On Lambda without the header, and off Lambda with it, the configuration loads.
        let config = Config::from_vars(vars(&[KEY, lambda, jwt[0], jwt[1]])).unwrap();
        assert!(!config.dev_tenant_header_insecure);
        assert!(Config::from_vars(vars(&[KEY, ("LIFT_DEV_TENANT_HEADER_INSECURE", "1")])).is_ok());
    }

    #[test]
    fn payments_variables_win_over_lift_ones() {
        let set = [
            KEY,
            ("LIFT_JWT_ISSUER", "http://127.0.0.1:1"),
            ("LIFT_JWKS_URL", "http://127.0.0.1:1/jwks"),
            ("PAYMENTS_JWT_ISSUER", "https://id.example.com"),
            ("PAYMENTS_JWKS_URL", "https://id.example.com/jwks"),
        ];
        let config = Config::from_vars(vars(&set)).unwrap();
        assert_eq!(config.jwt_issuer.as_deref(), Some("https://id.example.com"));
        assert_eq!(config.jwks_url.as_deref(), Some("https://id.example.com/jwks"));
        assert_eq!(config.jwt_audience, DEFAULT_AUDIENCE);
        let lift_only =
            [KEY, ("LIFT_JWT_ISSUER", "http://127.0.0.1:1"), ("LIFT_JWKS_URL", "http://127.0.0.1:1/jwks")];
        let config = Config::from_vars(vars(&lift_only)).unwrap();
        assert!(config.jwt_layer().unwrap().is_some());
    }

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:payments/fingerprint-key-AbCdEf";

    #[test]
    fn the_fingerprint_key_comes_from_the_environment_or_a_secret_arn() {
        let dev = ("LIFT_DEV_TENANT_HEADER_INSECURE", "1");
        let from_secret = Config::from_vars(vars(&[dev, ("LIFT_SECRET_FINGERPRINT_KEY_ARN", ARN)])).unwrap();
        assert_eq!(from_secret.fingerprint_key, FingerprintKey::Secret(ARN.into()));
        // The key itself wins over the secret, and never prints.
        let both = Config::from_vars(vars(&[KEY, dev, ("LIFT_SECRET_FINGERPRINT_KEY_ARN", ARN)])).unwrap();
        assert_eq!(both.fingerprint_key, FingerprintKey::Value(KEY.1.as_bytes().to_vec()));
        assert!(!format!("{both:?}").contains(KEY.1), "{both:?}");
        let neither = Config::from_vars(vars(&[dev])).unwrap_err().to_string();
        assert_eq!(
            neither,
            "missing or invalid configuration: PAYMENTS_FINGERPRINT_KEY is not set, nor \
             LIFT_SECRET_FINGERPRINT_KEY_ARN (a Secrets Manager secret holding the key)"
        );
        // A key pasted where the ARN goes is refused without being quoted.
        let pasted = "0123456789abcdef-not-an-arn";
        let err = Config::from_vars(vars(&[dev, ("LIFT_SECRET_FINGERPRINT_KEY_ARN", pasted)])).unwrap_err();
        assert!(!err.to_string().contains(pasted), "{err}");
        let short = Config::from_vars(vars(&[dev, ("PAYMENTS_FINGERPRINT_KEY", "short")])).unwrap_err();
        assert!(!short.to_string().contains("short"), "{short}");
    }

    #[test]
    fn the_audience_falls_back_to_lift_jwt_audience() {
        let jwt = [
            KEY,
            ("LIFT_JWT_ISSUER", "https://id.example.com"),
            ("LIFT_JWKS_URL", "https://id.example.com/jwks"),
        ];
        let lift = [jwt[0], jwt[1], jwt[2], ("LIFT_JWT_AUDIENCE", "payments,ledger")];
        let config = Config::from_vars(vars(&lift)).unwrap();
        assert_eq!(config.jwt_audience, "payments,ledger");
        assert!(config.jwt_layer().unwrap().is_some());
        let both = [
            jwt[0],
            jwt[1],
            jwt[2],
            ("LIFT_JWT_AUDIENCE", "ledger"),
            ("PAYMENTS_JWT_AUDIENCE", "payments-v2"),
        ];
        assert_eq!(Config::from_vars(vars(&both)).unwrap().jwt_audience, "payments-v2");
        assert_eq!(Config::from_vars(vars(&jwt)).unwrap().jwt_audience, DEFAULT_AUDIENCE);
        // Only commas: no audience at all, which the JWT layer refuses.
        let none = [jwt[0], jwt[1], jwt[2], ("LIFT_JWT_AUDIENCE", ",")];
        assert!(Config::from_vars(vars(&none)).unwrap().jwt_layer().is_err());
    }

    #[test]
    fn idempotency_keys_are_required_unless_turned_off() {
        let dev = [KEY, ("LIFT_DEV_TENANT_HEADER_INSECURE", "1")];
        let config = Config::from_vars(vars(&dev)).unwrap();
        assert!(config.idempotency_key_required);
        let off =
            [KEY, ("LIFT_DEV_TENANT_HEADER_INSECURE", "1"), ("PAYMENTS_IDEMPOTENCY_KEY_REQUIRED", "false")];
        assert!(!Config::from_vars(vars(&off)).unwrap().idempotency_key_required);
        let bad =
            [KEY, ("LIFT_DEV_TENANT_HEADER_INSECURE", "1"), ("PAYMENTS_IDEMPOTENCY_KEY_REQUIRED", "maybe")];
        assert!(Config::from_vars(vars(&bad)).is_err());
        let table =
            [KEY, ("LIFT_DEV_TENANT_HEADER_INSECURE", "1"), ("PAYMENTS_IDEMPOTENCY_TABLE", "idem-prod")];
        assert_eq!(Config::from_vars(vars(&table)).unwrap().idempotency_table, "idem-prod");
    }

    #[test]
    fn a_kms_key_turns_on_customer_keys() {
        let dev = [KEY, ("LIFT_DEV_TENANT_HEADER_INSECURE", "1")];
        let config = Config::from_vars(vars(&dev)).unwrap();
        assert_eq!(config.kms_key_id, None);
        assert_eq!(config.subject_keys_table, lift::store::tables::subject_keys().resolve_name());
        let set = [
            KEY,
            ("LIFT_DEV_TENANT_HEADER_INSECURE", "1"),
            ("LIFT_KMS_KEY_ID", "alias/lift"),
            ("PAYMENTS_KMS_KEY_ID", "alias/payments"),
            ("PAYMENTS_SUBJECT_KEYS_TABLE", "keys-prod"),
        ];
        let config = Config::from_vars(vars(&set)).unwrap();
        assert_eq!(config.kms_key_id.as_deref(), Some("alias/payments"));
        assert_eq!(config.subject_keys_table, "keys-prod");
    }
}
