//! Errors of threat detection.

/// The threat store (DynamoDB) did not answer, or answered with something unexpected.
///
/// # Examples
///
/// ```
/// use lift::security::threat::StoreUnavailable;
///
/// let err = StoreUnavailable::new("timed out");
/// assert_eq!(err.to_string(), "threat store unavailable: timed out");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threat store unavailable: {0}")]
pub struct StoreUnavailable(pub String);

impl StoreUnavailable {
    /// An error with a description.
    pub fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}

/// A threat detection setting is not valid.
///
/// # Examples
///
/// ```
/// use lift::security::threat::WebhookAlert;
///
/// let err = WebhookAlert::new("ftp://alerts.example").unwrap_err();
/// assert!(err.to_string().starts_with("invalid threat configuration"));
/// ```
pub use crate::config::InvalidConfig;

/// The request was refused: its client or principal is blocked, or its risk score reached
/// the threshold. Lift renders it as 403.
///
/// # Examples
///
/// ```
/// use lift::security::threat::Refused;
///
/// assert_eq!(Refused::Blocked.to_string(), "client blocked");
/// assert_eq!(lift::Error::from(Refused::Threat).status(), 403);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The client IP or the principal is on the blocklist.
    #[error("client blocked")]
    Blocked,
    /// The request's risk score reached the threshold.
    #[error("request refused as a threat")]
    Threat,
}

impl From<Refused> for crate::Error {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Blocked => crate::Error::forbidden("access from this client is blocked")
                .with_type("https://lift.dev/problems/blocked", "Blocked"),
            Refused::Threat => crate::Error::forbidden("the request was refused")
                .with_type("https://lift.dev/problems/threat", "Request refused"),
        }
    }
}
