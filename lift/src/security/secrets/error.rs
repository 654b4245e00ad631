//! Errors of the secrets cache. None of them ever carries a secret value.

use std::fmt;

/// Why a secret could not be served.
///
/// Messages name the secret id and the AWS error code, never a value: the SDK's own
/// error (which may hold a raw response) is not kept.
///
/// # Examples
///
/// ```
/// use lift::security::secrets::SecretsError;
///
/// let err = SecretsError::NotFound { id: "db".into() };
/// assert_eq!(err.to_string(), "secret db not found");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretsError {
    /// Secrets Manager has no such secret (or no current version).
    NotFound {
        /// The secret id.
        id: String,
    },
    /// The call failed (throttled, denied, unreachable) and no usable cached value exists.
    Fetch {
        /// The secret id.
        id: String,
        /// The AWS error code or the kind of failure.
        reason: String,
    },
    /// The secret holds bytes where a string was asked for.
    NotText {
        /// The secret id.
        id: String,
    },
    /// The secret version holds neither a string nor bytes.
    Empty {
        /// The secret id.
        id: String,
    },
    /// The cache configuration cannot work.
    InvalidConfig(&'static str),
}

impl SecretsError {
    /// The secret the error is about, if any.
    pub fn secret_id(&self) -> Option<&str> {
        match self {
            Self::NotFound { id } | Self::Fetch { id, .. } | Self::NotText { id } | Self::Empty { id } => {
                Some(id)
            }
            Self::InvalidConfig(_) => None,
        }
    }
}

impl fmt::Display for SecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { id } => write!(f, "secret {id} not found"),
            Self::Fetch { id, reason } => write!(f, "failed to fetch secret {id}: {reason}"),
            Self::NotText { id } => write!(f, "secret {id} is binary, not a string"),
            Self::Empty { id } => write!(f, "secret {id} has no value"),
            Self::InvalidConfig(reason) => write!(f, "invalid secrets cache configuration: {reason}"),
        }
    }
}

impl std::error::Error for SecretsError {}
