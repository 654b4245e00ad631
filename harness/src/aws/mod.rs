//! Mocked AWS endpoints that speak the real wire protocols, so AWS SDKs and the `aws`
//! CLI can talk to them: Secrets Manager and KMS (AWS JSON 1.1), STS (awsQuery and
//! JSON 1.0), SNS (awsQuery), Route 53 (REST-XML) and a JWKS issuer.
//!
//! Each mock is a wiremock server on 127.0.0.1 and a free port. It records every call
//! ([`RecordedCall`]) and takes [`Fault`]s per operation: AWS error bodies, delays and
//! dropped connections. Servers stop when their mock is dropped.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), lift_harness::aws::MockError> {
//! use lift_harness::aws::{AwsMocks, Fault};
//!
//! let mocks = AwsMocks::start().await?;
//! mocks.secrets.put_secret("db-password", "hunter2");
//! mocks.secrets.fault("GetSecretValue", Fault::throttling().times(1));
//! for (name, value) in mocks.env_vars() {
//!     println!("export {name}={value}");
//! }
//! // ... run the code under test against the endpoints, then:
//! assert_eq!(mocks.secrets.calls_to("GetSecretValue").len(), 2);
//! # Ok(()) }
//! ```

mod endpoint;
mod fault;
mod jwks;
mod kms;
mod route53;
mod secrets;
mod sns;
mod sts;
mod wire;

pub use endpoint::{RecordedCall, SigV4Scope};
pub use fault::{AwsError, Fault, FaultKind, ANY_OPERATION};
pub use jwks::{Alg, JwksIssuer, GET_JWKS, GET_OPENID_CONFIGURATION, JWKS_PATH, OPENID_CONFIGURATION_PATH};
pub use kms::{EncryptionContext, KmsKey, KmsMock, DEFAULT_KEY_ALIAS};
pub use route53::{
    RecordChange, RecordSet, Route53Mock, CHANGE_RESOURCE_RECORD_SETS, GET_CHANGE, GET_HEALTH_CHECK_STATUS,
    LIST_RESOURCE_RECORD_SETS,
};
pub use secrets::{SecretVersion, SecretsManagerMock, AWSCURRENT, AWSPREVIOUS};
pub use sns::{PublishedMessage, SnsMock, MAX_MESSAGE_BYTES as SNS_MAX_MESSAGE_BYTES, PUBLISH};
pub use sts::{CallerIdentity, StsMock};

/// Account id the mocks put in ARNs and identities.
pub const ACCOUNT_ID: &str = "000000000000";
/// Region [`AwsMocks::start`] uses.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An error from setting up or driving a mock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// No secret has this name.
    #[error("unknown secret: {0}")]
    UnknownSecret(String),
    /// A KMS key or alias with this name exists already.
    #[error("kms key or alias already exists: {0}")]
    KeyExists(String),
    /// A KMS key id must be 1 to 255 bytes.
    #[error("invalid kms key id: {0:?}")]
    InvalidKeyId(String),
    /// No KMS key has this id, ARN or alias.
    #[error("unknown kms key: {0}")]
    UnknownKey(String),
    /// The ciphertext blob was altered, is not from this mock, or the context differs.
    #[error("invalid ciphertext or encryption context")]
    InvalidCiphertext,
    /// The JWKS issuer holds no key with this kid.
    #[error("unknown key id: {0}")]
    UnknownKid(String),
    /// The key with this kid signs with another algorithm.
    #[error("key {kid} does not sign {alg}")]
    AlgMismatch {
        /// The kid asked for.
        kid: String,
        /// The algorithm asked for.
        alg: Alg,
    },
    /// A shipped test key could not be loaded.
    #[error("invalid test key material")]
    KeyMaterial(#[source] jsonwebtoken::errors::Error),
    /// Signing a token failed.
    #[error("failed to sign the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Every mock, started together.
#[derive(Debug)]
pub struct AwsMocks {
    /// Secrets Manager.
    pub secrets: SecretsManagerMock,
    /// KMS.
    pub kms: KmsMock,
    /// STS.
    pub sts: StsMock,
    /// JWKS issuer.
    pub jwks: JwksIssuer,
    /// Route 53.
    pub route53: Route53Mock,
    region: String,
}

impl AwsMocks {
    /// Starts every mock, with ARNs in [`DEFAULT_REGION`].
    pub async fn start() -> Result<Self, MockError> {
        Self::start_in(DEFAULT_REGION).await
    }

    /// Starts every mock, with ARNs in `region`.
    pub async fn start_in(region: &str) -> Result<Self, MockError> {
        let (secrets, kms, sts, jwks, route53) = tokio::join!(
            SecretsManagerMock::start(region),
            KmsMock::start(region),
            StsMock::start(),
            JwksIssuer::start(),
            Route53Mock::start(),
        );
        Ok(Self { secrets, kms, sts, jwks: jwks?, route53, region: region.to_owned() })
    }

    /// The region the mocks put in ARNs.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Environment variables that point AWS SDKs, the `aws` CLI and Lift at the mocks.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", self.secrets.uri()),
            ("AWS_ENDPOINT_URL_KMS", self.kms.uri()),
            ("AWS_ENDPOINT_URL_STS", self.sts.uri()),
            ("AWS_ENDPOINT_URL_ROUTE_53", self.route53.uri()),
            ("LIFT_JWKS_URL", self.jwks.jwks_url()),
            ("LIFT_JWT_ISSUER", self.jwks.issuer()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Disarms every fault on every mock.
    pub fn clear_faults(&self) {
        self.secrets.clear_faults();
        self.kms.clear_faults();
        self.sts.clear_faults();
        self.jwks.clear_faults();
        self.route53.clear_faults();
    }
}
