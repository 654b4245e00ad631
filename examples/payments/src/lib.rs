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
pub mod routes;
pub mod store;

pub use routes::{app, Payments, DEV_TENANT_HEADER};
pub use store::{table_def, PaymentStore, StoreError};

/// Configuration from the environment.
#[derive(Clone)]
pub struct Config {
    /// The payments table (`PAYMENTS_TABLE`, else `LIFT_TABLE_PAYMENTS`/`LIFT_TABLE_PREFIX`).
    pub table: String,
    /// The key for card fingerprints (`PAYMENTS_FINGERPRINT_KEY`).
    pub fingerprint_key: Vec<u8>,
    /// DEVELOPMENT ONLY (`LIFT_DEV_TENANT_HEADER_INSECURE=1`): take the tenant from a header.
    pub dev_tenant_header_insecure: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("fingerprint_key", &"[redacted]")
            .field("dev_tenant_header_insecure", &self.dev_tenant_header_insecure)
            .finish()
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("missing or invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let table = std::env::var("PAYMENTS_TABLE").unwrap_or_else(|_| table_def().resolve_name());
        let fingerprint_key = std::env::var("PAYMENTS_FINGERPRINT_KEY")
            .map_err(|_| ConfigError("PAYMENTS_FINGERPRINT_KEY is not set".into()))?
            .into_bytes();
        if fingerprint_key.len() < 16 {
            return Err(ConfigError("PAYMENTS_FINGERPRINT_KEY must be at least 16 bytes".into()));
        }
        let dev_tenant_header_insecure =
            matches!(std::env::var("LIFT_DEV_TENANT_HEADER_INSECURE").as_deref(), Ok("1" | "true"));
        Ok(Self { table, fingerprint_key, dev_tenant_header_insecure })
    }
}
