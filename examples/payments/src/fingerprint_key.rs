//! Where the key of card fingerprints comes from: the environment, or a Secrets Manager
//! secret fetched at init (what `lift-deploy` hands the function for `[secrets]
//! fingerprint_key`).

use std::time::Duration;

use lift::aws::ServiceEndpoint;
use lift::config::Env;
use lift::security::secrets::SecretsCache;

use crate::ConfigError;

/// The variable holding the key itself.
pub const KEY_VAR: &str = "PAYMENTS_FINGERPRINT_KEY";
/// The variable holding the ARN of a Secrets Manager secret with the key: `lift-deploy` sets
/// it from `[secrets] fingerprint_key` in `lift.toml`.
pub const SECRET_ARN_VAR: &str = "LIFT_SECRET_FINGERPRINT_KEY_ARN";
/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// How long fetching the secret may take, retries included: Lambda gives init 10 s.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The key of card fingerprints and of free-text masking, or the secret that holds it.
///
/// `Debug` never prints a key, only the secret's ARN.
///
/// # Examples
///
/// ```
/// # async fn demo() -> Result<(), payments::ConfigError> {
/// use payments::FingerprintKey;
///
/// let key = FingerprintKey::Value(b"0123456789abcdef".to_vec());
/// assert_eq!(format!("{key:?}"), "Value([redacted])");
/// assert_eq!(key.load().await?, b"0123456789abcdef");
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum FingerprintKey {
    /// The key itself (`PAYMENTS_FINGERPRINT_KEY`).
    Value(Vec<u8>),
    /// The ARN of a Secrets Manager secret holding the key (`LIFT_SECRET_FINGERPRINT_KEY_ARN`),
    /// fetched by [`FingerprintKey::load`].
    Secret(String),
}

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value([redacted])"),
            Self::Secret(arn) => f.debug_tuple("Secret").field(arn).finish(),
        }
    }
}

impl FingerprintKey {
    /// `PAYMENTS_FINGERPRINT_KEY` (at least [`MIN_KEY_LEN`] bytes), else the secret named by
    /// `LIFT_SECRET_FINGERPRINT_KEY_ARN`; neither is an error. Messages never quote a value.
    pub(crate) fn from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match (var(KEY_VAR), var(SECRET_ARN_VAR)) {
            (Some(key), _) if key.len() < MIN_KEY_LEN => {
                Err(ConfigError(format!("{KEY_VAR} must be at least {MIN_KEY_LEN} bytes")))
            }
            (Some(key), _) => Ok(Self::Value(key.into_bytes())),
            (None, Some(arn)) if arn.starts_with("arn:") && arn.contains(":secretsmanager:") => {
                Ok(Self::Secret(arn))
            }
            // Not quoted: a key pasted into the wrong variable would end up in the log.
            (None, Some(_)) => Err(ConfigError(format!("{SECRET_ARN_VAR} must be a Secrets Manager ARN"))),
            (None, None) => Err(ConfigError(format!(
                "{KEY_VAR} is not set, nor {SECRET_ARN_VAR} (a Secrets Manager secret holding the key)"
            ))),
        }
    }

    /// The key: the value itself, or the secret fetched now from Secrets Manager at
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER` (else AWS's endpoint in the secret's region),
    /// with the function's credentials.
    ///
    /// # Errors
    /// [`ConfigError`] naming the ARN when the secret is missing, unreachable or shorter
    /// than [`MIN_KEY_LEN`] bytes; never with the value.
    pub async fn load(&self) -> Result<Vec<u8>, ConfigError> {
        self.load_with_env_vars(lift::config::process_env).await
    }

    /// Like [`load`](Self::load), reading the endpoint and region through `lookup`.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub async fn load_with_env_vars(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<u8>, ConfigError> {
        let arn = match self {
            Self::Value(key) => return Ok(key.clone()),
            Self::Secret(arn) => arn,
        };
        let env = Env::from_lookup(lookup);
        // Secrets Manager serves a secret only in its own region: a secondary region's
        // function asks the secret's region, not its own.
        let region = arn.split(':').nth(3).filter(|r| !r.is_empty()).map(str::to_owned);
        let env = Env::from_lookup(|name| match name {
            "AWS_REGION" => region.clone().or_else(|| env.get(name)),
            _ => env.get(name),
        });
        let endpoint = ServiceEndpoint::from_env(&env, "SECRETS_MANAGER")
            .map_err(|e| ConfigError(format!("the fingerprint key's secret {arn}: {}", e.reason())))?;
        let sdk = endpoint.sdk_config(FETCH_TIMEOUT, aws_config::retry::RetryConfig::standard());
        self.load_with(aws_sdk_secretsmanager::Client::new(&sdk)).await
    }

    /// Like [`load`](Self::load), through a Secrets Manager client the caller configured.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub async fn load_with(&self, client: aws_sdk_secretsmanager::Client) -> Result<Vec<u8>, ConfigError> {
        let arn = match self {
            Self::Value(key) => return Ok(key.clone()),
            Self::Secret(arn) => arn,
        };
        // SecretsError names the secret id (the ARN) and the AWS error code, never a value.
        let failed = |e: lift::security::secrets::SecretsError| {
            ConfigError(format!("the fingerprint key ({SECRET_ARN_VAR}): {e}"))
        };
        // Fetched once: the key must not change under running instances, or the same card
        // would get two fingerprints.
        let secrets = SecretsCache::builder().prefetch([arn.as_str()]).build(client).await.map_err(failed)?;
        let key = secrets.get_bytes(arn).await.map_err(failed)?;
        if key.expose().len() < MIN_KEY_LEN {
            return Err(ConfigError(format!(
                "the fingerprint key ({SECRET_ARN_VAR}): secret {arn} must hold at least {MIN_KEY_LEN} bytes"
            )));
        }
        Ok(key.expose().to_vec())
    }
}
