//! Secrets from AWS Secrets Manager, cached, and values that never print.
//!
//! [`SecretsCache`] fetches secrets with `GetSecretValue`, prefetches the ones a function
//! needs at init, serves them from memory for a TTL, refreshes them on expiry (so
//! rotations are picked up), and while a refresh fails for a passing reason (throttled,
//! unreachable, 5xx) serves the last value for a bounded time with a warning; a secret
//! that is gone or no longer readable (not found, access denied) is never served from the
//! cache again. A failed fetch is remembered for a backoff, so callers meanwhile make no
//! further calls. Values come back as [`SecretString`] / [`SecretBytes`],
//! whose `Debug` and `Display` print `[REDACTED]`; only `expose()` yields the value.
//! Errors ([`SecretsError`]) name the secret id, never a value.
//!
//! Point the SDK client at another endpoint (a mock, LocalStack) the usual way:
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, or `endpoint_url` on its config.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_secretsmanager::Client) -> Result<(), lift::security::secrets::SecretsError> {
//! use lift::security::secrets::SecretsCache;
//!
//! let secrets = SecretsCache::builder()
//!     .prefetch(["fingerprint-key"])
//!     .build(client)
//!     .await?;
//! let key = secrets.get("fingerprint-key").await?;
//! tracing::info!(%key, "loaded"); // logs `key=[REDACTED]`
//! # Ok(()) }
//! ```

mod cache;
mod error;
mod value;

pub use cache::{
    SecretsCache, SecretsCacheBuilder, DEFAULT_MAX_STALENESS, DEFAULT_RETRY_BACKOFF, DEFAULT_TTL,
};
pub use error::SecretsError;
pub use value::{SecretBytes, SecretString};
