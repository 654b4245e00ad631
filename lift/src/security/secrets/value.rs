//! Secret values that do not print.

use std::fmt;
use std::sync::Arc;

/// A secret string: `Debug` and `Display` print `[REDACTED]`, the value comes out only
/// through [`SecretString::expose`].
///
/// Cloning is cheap (the value is shared) and never copies the secret into a log line by
/// accident: `format!("{secret}")`, `{:?}` and `tracing` fields all see `[REDACTED]`.
///
/// # Examples
///
/// ```
/// use lift::security::secrets::SecretString;
///
/// let secret = SecretString::new("hunter2");
/// assert_eq!(format!("{secret} {secret:?}"), "[REDACTED] [REDACTED]");
/// assert_eq!(secret.expose(), "hunter2");
/// ```
#[derive(Clone)]
pub struct SecretString(Arc<str>);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value. Call it where the secret is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A binary secret (`SecretBinary`), redacted like [`SecretString`].
///
/// # Examples
///
/// ```
/// use lift::security::secrets::SecretBytes;
///
/// let key = SecretBytes::new(vec![1u8, 2, 3]);
/// assert_eq!(format!("{key:?}"), "[REDACTED]");
/// assert_eq!(key.expose(), &[1, 2, 3]);
/// ```
#[derive(Clone)]
pub struct SecretBytes(Arc<[u8]>);

impl SecretBytes {
    /// Wraps a value.
    pub fn new(value: impl Into<Arc<[u8]>>) -> Self {
        Self(value.into())
    }

    /// The value. Call it where the secret is used, never to log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// What Secrets Manager holds for a version: a string or bytes.
#[derive(Clone, Debug)]
pub(crate) enum SecretValue {
    Text(SecretString),
    Binary(SecretBytes),
}
