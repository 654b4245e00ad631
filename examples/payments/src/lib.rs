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
pub mod model;
pub mod privacy;
pub mod routes;
pub mod store;
#[cfg(feature = "harness")]
pub mod workload;

pub use routes::{
    app, app_with_jwt, jwt_layer, service, Payments, DEV_TENANT_HEADER, READ_SCOPE, REALM, WRITE_SCOPE,
};
pub use store::{table_def, PaymentStore, StoreError};

/// The audience payments tokens must carry unless `PAYMENTS_JWT_AUDIENCE` says otherwise.
pub const DEFAULT_AUDIENCE: &str = "payments";

/// Configuration from the environment.
#[derive(Clone)]
pub struct Config {
    /// The payments table (`PAYMENTS_TABLE`, else `LIFT_TABLE_PAYMENTS`/`LIFT_TABLE_PREFIX`).
    pub table: String,
    /// The key for card fingerprints (`PAYMENTS_FINGERPRINT_KEY`).
    pub fingerprint_key: Vec<u8>,
    /// The token issuer (`PAYMENTS_JWT_ISSUER`, else `LIFT_JWT_ISSUER`).
    pub jwt_issuer: Option<String>,
    /// The issuer's JWK set (`PAYMENTS_JWKS_URL`, else `LIFT_JWKS_URL`).
    pub jwks_url: Option<String>,
    /// The audience tokens must name (`PAYMENTS_JWT_AUDIENCE`, else `payments`).
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
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("fingerprint_key", &"[redacted]")
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwks_url", &self.jwks_url)
            .field("jwt_audience", &self.jwt_audience)
            .field("dev_tenant_header_insecure", &self.dev_tenant_header_insecure)
            .field("idempotency_table", &self.idempotency_table)
            .field("idempotency_key_required", &self.idempotency_key_required)
            .field("subject_keys_table", &self.subject_keys_table)
            .field("kms_key_id", &self.kms_key_id)
            .finish()
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("missing or invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the configuration from the environment. A JWT issuer and JWKS URL are
    /// required unless the development tenant header is on.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = var("PAYMENTS_TABLE").unwrap_or_else(|| table_def().resolve_name());
        let fingerprint_key = var("PAYMENTS_FINGERPRINT_KEY")
            .ok_or_else(|| ConfigError("PAYMENTS_FINGERPRINT_KEY is not set".into()))?
            .into_bytes();
        if fingerprint_key.len() < 16 {
            return Err(ConfigError("PAYMENTS_FINGERPRINT_KEY must be at least 16 bytes".into()));
        }
        // Refused on Lambda: there, any caller could act as any tenant.
        let dev_tenant_header_insecure = lift::config::Env::from_lookup(&var)
            .development_switch("payments", "LIFT_DEV_TENANT_HEADER_INSECURE")
            .map_err(|e| ConfigError(e.to_string()))?;
        let jwt_issuer = var("PAYMENTS_JWT_ISSUER").or_else(|| var("LIFT_JWT_ISSUER"));
        let jwks_url = var("PAYMENTS_JWKS_URL").or_else(|| var("LIFT_JWKS_URL"));
        let jwt_audience = var("PAYMENTS_JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
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
        })
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
        let issuer = lift::middleware::auth::Issuer::jwks(issuer, url).audience(&self.jwt_audience);
        jwt_layer(issuer, self.dev_tenant_header_insecure).map(Some).map_err(|e| ConfigError(e.to_string()))
    }

    /// The idempotency layer over the configured table: `Idempotency-Key` on POST (create
    /// and refund), required unless configured otherwise. Stored answers are in clear; use
    /// [`Config::idempotency_layer_sealed`] where they carry personal data.
    pub fn idempotency_layer(
        &self,
        client: aws_sdk_dynamodb::Client,
    ) -> Result<lift::middleware::idempotency::IdempotencyLayer, ConfigError> {
        self.idempotency_builder(client).build().map_err(|e| ConfigError(e.to_string()))
    }

    /// [`Config::idempotency_layer`] with stored answers sealed under the key of the
    /// customer they name ([`privacy::ResponseSealer`]), so erasing the customer erases
    /// them too, before their TTL and in every backup.
    pub fn idempotency_layer_sealed(
        &self,
        client: aws_sdk_dynamodb::Client,
        keys: lift::security::protection::SubjectKeys,
    ) -> Result<lift::middleware::idempotency::IdempotencyLayer, ConfigError> {
        self.idempotency_builder(client)
            .response_cipher(privacy::ResponseSealer::new(keys))
            .build()
            .map_err(|e| ConfigError(e.to_string()))
    }

    fn idempotency_builder(
        &self,
        client: aws_sdk_dynamodb::Client,
    ) -> lift::middleware::idempotency::IdempotencyBuilder {
        lift::middleware::idempotency::IdempotencyLayer::builder()
            .client(client)
            .table(&self.idempotency_table)
            .methods([http::Method::POST])
            .require_key(self.idempotency_key_required)
    }
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
