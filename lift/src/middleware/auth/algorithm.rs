//! The signing algorithms an issuer may be allowed to use.

use std::fmt;
use std::str::FromStr;

/// A JWS signing algorithm Lift verifies.
///
/// `none` is not one of them, and never will be: an unsigned token is always refused.
///
/// # Examples
///
/// ```
/// use lift::middleware::auth::Algorithm;
/// assert_eq!("RS256".parse::<Algorithm>().unwrap(), Algorithm::Rs256);
/// assert!("none".parse::<Algorithm>().is_err());
/// assert_eq!(Algorithm::EdDsa.to_string(), "EdDSA");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256; keys from a JWKS (`kty` `RSA`, 2048 bits or more).
    Rs256,
    /// ECDSA on P-256 with SHA-256; keys from a JWKS (`kty` `EC`, `crv` `P-256`).
    Es256,
    /// EdDSA on Ed25519; keys from a JWKS (`kty` `OKP`, `crv` `Ed25519`).
    EdDsa,
    /// HMAC with SHA-256; the secret comes from configuration, never from a JWKS.
    Hs256,
}

impl Algorithm {
    /// The JOSE name: `RS256`, `ES256`, `EdDSA` or `HS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
        }
    }

    /// Whether the key is a shared secret rather than a public key.
    pub fn is_symmetric(self) -> bool {
        self == Algorithm::Hs256
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of the algorithms Lift verifies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported jwt algorithm {0:?}")]
pub struct UnsupportedAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim() {
            "RS256" => Ok(Algorithm::Rs256),
            "ES256" => Ok(Algorithm::Es256),
            "EdDSA" => Ok(Algorithm::EdDsa),
            "HS256" => Ok(Algorithm::Hs256),
            other => Err(UnsupportedAlgorithm(other.to_owned())),
        }
    }
}
