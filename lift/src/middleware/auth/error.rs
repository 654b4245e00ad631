//! Why a token was refused, why a configuration was refused, and why keys could not be
//! fetched.
//!
//! Messages are fixed texts: none of them ever contains the token or any part of it, so
//! they are safe in logs, in problem bodies and in `WWW-Authenticate`.

use http::{header, HeaderValue, StatusCode};

use crate::error::Error;

/// Why a request was not authenticated.
///
/// Every variant but [`AuthError::KeysUnavailable`] answers 401 with an RFC 6750
/// challenge; that one answers 503, because the caller did nothing wrong.
///
/// # Examples
///
/// ```
/// use lift::middleware::auth::AuthError;
/// let res = AuthError::Expired.into_error("payments").into_response();
/// assert_eq!(res.status(), 401);
/// assert_eq!(
///     res.headers()["www-authenticate"],
///     r#"Bearer realm="payments", error="invalid_token", error_description="the token has expired""#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no bearer token.
    #[error("a bearer token is required")]
    MissingToken,
    /// The token is longer than the configured maximum.
    #[error("the token is larger than {limit} bytes")]
    TooLarge {
        /// The maximum, in bytes.
        limit: usize,
    },
    /// The token is not three base64url parts with a JSON header and claims.
    #[error("the token is malformed")]
    Malformed,
    /// The header names `none`, an algorithm outside the issuer's allow-list, or one the
    /// signing key cannot be used with (e.g. HS256 with an RSA key).
    #[error("the token's algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The header marks an extension critical (`crit`) that Lift does not implement.
    #[error("the token uses an unsupported critical header")]
    UnsupportedCritical,
    /// No configured issuer matches the token's `iss`.
    #[error("the token's issuer is not trusted")]
    UntrustedIssuer,
    /// The issuer publishes no key with the token's `kid`.
    #[error("the token's signing key is unknown")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// The token has no `exp` claim.
    #[error("the token has no expiry")]
    MissingExpiry,
    /// `exp` has passed (beyond the clock skew).
    #[error("the token has expired")]
    Expired,
    /// `nbf` (or `iat`) is in the future (beyond the clock skew).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The token's `aud` names none of the configured audiences.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// The header's `typ` is not the one the issuer requires
    /// ([`Issuer::typ`](super::Issuer::typ)).
    #[error("the token's type is not accepted")]
    WrongType,
    /// The `token_use` claim is missing or not the one the issuer requires
    /// ([`Issuer::token_use`](super::Issuer::token_use)).
    #[error("the token's use is not accepted")]
    WrongTokenUse,
    /// The token was issued to a client the issuer does not list
    /// ([`Issuer::client_ids`](super::Issuer::client_ids)).
    #[error("the token was issued to a client that is not accepted")]
    WrongClient,
    /// The token has no usable `sub`.
    #[error("the token has no subject")]
    MissingSubject,
    /// The token has no tenant claim, or its value is not a valid tenant id.
    #[error("the token has no valid tenant")]
    InvalidTenant,
    /// The issuer's keys could not be fetched and none are cached.
    #[error("the signing keys of the token's issuer are unavailable")]
    KeysUnavailable(#[source] FetchError),
}

impl AuthError {
    /// The HTTP status this error answers with: 503 for unavailable keys, else 401.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The problem response for this error, with the RFC 6750 challenge for `realm`.
    ///
    /// `realm` should be a plain token (letters, digits, `-_.:/`); anything else is
    /// dropped from the challenge.
    pub fn into_error(self, realm: &str) -> Error {
        let realm: String = realm.chars().filter(|c| realm_char(*c)).collect();
        match self {
            AuthError::KeysUnavailable(_) => Error::service_unavailable(1)
                .with_detail("the token cannot be verified now; retry later")
                .with_source(self),
            AuthError::MissingToken => {
                let challenge = format!("Bearer realm=\"{realm}\"");
                Error::new(StatusCode::UNAUTHORIZED)
                    .with_type(INVALID_TOKEN_TYPE, "Unauthorized")
                    .with_detail(self.to_string())
                    .with_header(header::WWW_AUTHENTICATE, header_value(challenge))
            }
            _ => {
                let challenge = format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{self}\""
                );
                Error::new(StatusCode::UNAUTHORIZED)
                    .with_type(INVALID_TOKEN_TYPE, "Unauthorized")
                    .with_detail(self.to_string())
                    .with_header(header::WWW_AUTHENTICATE, header_value(challenge))
            }
        }
    }
}

/// The problem type of a refused token.
pub const INVALID_TOKEN_TYPE: &str = "https://lift.dev/problems/invalid-token";

pub(crate) fn realm_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | ' ')
}

fn header_value(value: String) -> HeaderValue {
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// Why the JWKS of an issuer could not be fetched.
///
/// It names the issuer's JWKS URL (configuration, not a secret) but never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connecting or reading failed.
    #[error("fetching the jwks from {url} failed: {reason}")]
    Transport {
        /// The JWKS URL.
        url: String,
        /// What the client reported.
        reason: String,
    },
    /// The fetch took longer than the timeout.
    #[error("fetching the jwks from {url} timed out")]
    Timeout {
        /// The JWKS URL.
        url: String,
    },
    /// The issuer answered with another status than 200.
    #[error("the jwks endpoint {url} answered {status}")]
    Status {
        /// The JWKS URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body is not a JWK set (or is larger than the limit).
    #[error("the jwks from {url} is not a valid jwk set")]
    Invalid {
        /// The JWKS URL.
        url: String,
    },
}

/// Why a JWT configuration was refused at build time.
///
/// # Examples
///
/// ```
/// use lift::middleware::auth::{ConfigError, Issuer, JwtLayer};
/// let err = JwtLayer::builder()
///     .issuer(Issuer::jwks("https://id.example.com", "http://id.example.com/jwks.json").audience("api"))
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, ConfigError::InsecureJwksUrl(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No issuer was configured.
    #[error("at least one jwt issuer is required")]
    NoIssuer,
    /// An issuer's `iss` value is empty or configured twice.
    #[error("invalid or duplicate jwt issuer {0:?}")]
    InvalidIssuer(String),
    /// An issuer has no audience and was not explicitly allowed any.
    #[error("jwt issuer {0:?} needs an audience (or any_audience())")]
    MissingAudience(String),
    /// An issuer's allow-list is empty or mixes key kinds (HS256 with a JWKS, or a
    /// public-key algorithm with a secret).
    #[error("invalid algorithm allow-list for jwt issuer {0:?}")]
    InvalidAlgorithms(String),
    /// The HS256 secret is shorter than 32 bytes.
    #[error("the hs256 secret of jwt issuer {0:?} must be at least 32 bytes")]
    WeakSecret(String),
    /// The JWKS URL does not parse or has no host.
    #[error("invalid jwks url {0:?}")]
    InvalidJwksUrl(String),
    /// The JWKS URL is plain http to a host other than localhost.
    #[error("jwks url {0:?} must be https (plain http only for localhost or when explicitly allowed)")]
    InsecureJwksUrl(String),
    /// Several issuers are trusted and this one is neither bound to its tenants
    /// ([`Issuer::tenants`](super::Issuer::tenants)) nor declared to speak for any
    /// ([`Issuer::any_tenant`](super::Issuer::any_tenant)).
    #[error("jwt issuer {0:?} is trusted beside others: bind it to its tenants or declare any_tenant()")]
    UnboundIssuer(String),
    /// A duration or size is zero or out of range.
    #[error("invalid jwt setting: {0}")]
    InvalidSetting(&'static str),
    /// A required environment variable is missing or invalid.
    #[error("invalid jwt environment: {0}")]
    Env(String),
    /// The TLS roots for https JWKS URLs could not be loaded.
    #[error("could not load tls roots for jwks fetches: {0}")]
    Tls(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_quote_free() {
        let all = [
            AuthError::MissingToken,
            AuthError::TooLarge { limit: 8192 },
            AuthError::Malformed,
            AuthError::AlgorithmNotAllowed,
            AuthError::UnsupportedCritical,
            AuthError::UntrustedIssuer,
            AuthError::UnknownKey,
            AuthError::BadSignature,
            AuthError::MissingExpiry,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongAudience,
            AuthError::WrongType,
            AuthError::WrongTokenUse,
            AuthError::WrongClient,
            AuthError::MissingSubject,
            AuthError::InvalidTenant,
        ];
        for err in all {
            let text = err.to_string();
            assert!(!text.contains('"') && !text.contains('\\'), "{text}");
            assert_eq!(text, text.to_lowercase());
            let res = err.into_error("r").into_response();
            assert_eq!(res.status(), 401);
            assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }

    #[test]
    fn hostile_realm_cannot_break_the_challenge() {
        let res = AuthError::Expired.into_error("a\", error=\"x\r\n").into_response();
        let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer realm=\"a errorx\""), "{challenge}");
    }

    #[test]
    fn unavailable_keys_are_503_without_internals() {
        let err = AuthError::KeysUnavailable(FetchError::Timeout { url: "http://10.0.0.1/jwks".into() });
        let res = err.into_error("r").into_response();
        assert_eq!(res.status(), 503);
        let body = String::from_utf8(res.body().as_bytes().to_vec()).unwrap();
        assert!(!body.contains("10.0.0.1"), "{body}");
    }
}
