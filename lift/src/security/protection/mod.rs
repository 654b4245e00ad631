//! Data protection: classification, value detectors, masking, PAN tokenization,
//! AES-256-GCM envelope encryption with KMS data keys, crypto-shredding with per-subject
//! keys ([`SubjectKeys`]), data residency and retention.
//!
//! # Quick start
//!
//! ```
//! use lift::security::protection::{classify_json, mask_json, HashKey, Level, Policy};
//! let mut body = serde_json::json!({
//!     "amount": 1250,
//!     "card": { "number": "4111 1111 1111 1111", "holder": "Ada Lovelace" },
//!     "customer": { "email": "ada@example.com", "ssn": "123-45-6789" },
//! });
//! assert_eq!(classify_json(&body).level, Level::Restricted);
//! mask_json(&mut body, &Policy::new(HashKey::new(*b"an example key of thirty-two b!!")));
//! assert_eq!(body["card"]["number"], "************1111");
//! assert_eq!(body["customer"]["ssn"], "[REDACTED:ssn]");
//! ```

mod classify;
pub mod detect;
mod envelope;
mod mask;
mod region;
mod retention;
mod shred;
mod vault;

pub use classify::{classify_json, Classification, Classifier, DataClass, Finding, Level};
pub use envelope::{seal, AwsKmsClient, DataKey, DataKeyCache, Envelope, KmsClient, DEFAULT_KMS_TIMEOUT};
pub use mask::{apply, mask_json, mask_spans, HashKey, MaskStrategy, Policy};
pub use region::{Residency, ResidencyLayer, ResidencyRules, RESIDENCY_PROBLEM};
pub use retention::RetentionPolicy;
pub use shred::{sealed_subject, SubjectKeys, SubjectKeysBuilder, DEFAULT_CACHE_TTL, MAX_SUBJECT_LEN};
pub use vault::{TokenVault, DETOKENIZE_ROLE};

/// What can go wrong protecting data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectionError {
    /// Bad configuration.
    #[error("protection misconfigured: {0}")]
    Config(String),
    /// KMS failed or answered something unexpected.
    #[error("kms error: {0}")]
    Kms(String),
    /// Encryption failed.
    #[error("encryption failed")]
    Encrypt,
    /// Decryption failed: wrong tenant, changed bytes or an unknown key.
    #[error("decryption failed")]
    Decrypt,
    /// The ciphertext is not in a known format.
    #[error("ciphertext format not recognised")]
    Format,
    /// The principal lacks the role to detokenize.
    #[error("detokenize requires role {role}")]
    NotPermitted {
        /// The role required.
        role: String,
    },
    /// No such token in the tenant's vault.
    #[error("token not found")]
    TokenNotFound,
    /// The value to tokenize is not a card number.
    #[error("value is not a card number")]
    NotAPan,
    /// A vault item does not match the card number it holds: a token item whose card number
    /// does not derive its token (a ciphertext copied from another token's item), or a
    /// card number's lookup item naming a token that card number does not derive.
    #[error("token vault item does not match its card number")]
    Tampered,
    /// DynamoDB failed.
    #[error("token vault error: {0}")]
    Store(String),
    /// The subject-key table failed (crypto-shredding, [`SubjectKeys`]).
    #[error("subject key store error: {0}")]
    KeyStore(String),
}

impl From<ProtectionError> for crate::Error {
    fn from(err: ProtectionError) -> Self {
        match err {
            ProtectionError::NotPermitted { .. } => {
                crate::Error::forbidden("not permitted to reveal card numbers")
            }
            ProtectionError::TokenNotFound => crate::Error::not_found(),
            ProtectionError::NotAPan => crate::Error::validation("pan", "not a card number"),
            other => crate::Error::internal(other),
        }
    }
}
