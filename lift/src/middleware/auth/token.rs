//! Taking a compact JWS apart before any key is chosen: the bearer token from the
//! `Authorization` header, the header and claims as JSON, the signing input and signature.
//!
//! Nothing here trusts the token: the header only names a `kid` to look up and an `alg`
//! that must agree with the key; the claims only name the issuer whose keys to use.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::AuthError;

/// The JOSE header fields Lift looks at.
#[derive(Debug, Deserialize)]
pub(crate) struct JoseHeader {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    /// Kept as any JSON value: a `typ` that is not a string must not make every token of
    /// an issuer that does not ask for one malformed.
    #[serde(default)]
    pub(crate) typ: Option<Value>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// A token split into its parts, the claims parsed but not trusted.
#[derive(Debug)]
pub(crate) struct Parsed<'t> {
    pub(crate) header: JoseHeader,
    pub(crate) claims: Map<String, Value>,
    /// `base64url(header) "." base64url(claims)`: what the signature covers.
    pub(crate) signing_input: &'t str,
    pub(crate) signature: &'t str,
}

/// The bearer token of a request: `Ok(None)` when there is no `Authorization` header.
pub(crate) fn bearer(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    // The size is checked on the raw header, before anything is decoded.
    if value.len() > max_len + "Bearer ".len() {
        return Err(AuthError::TooLarge { limit: max_len });
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > max_len {
        return Err(AuthError::TooLarge { limit: max_len });
    }
    Ok(Some(token))
}

/// Splits and decodes a compact JWS.
pub(crate) fn parse(token: &str, max_len: usize) -> Result<Parsed<'_>, AuthError> {
    if token.len() > max_len {
        return Err(AuthError::TooLarge { limit: max_len });
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
    let (header_b64, claims_b64) = signing_input.split_once('.').ok_or(AuthError::Malformed)?;
    if claims_b64.contains('.') {
        return Err(AuthError::Malformed);
    }
    let header: JoseHeader = decode_json(header_b64)?;
    // `none` gets no further: there is no key to check it against, whatever the config.
    if header.alg.eq_ignore_ascii_case("none") || header.alg.is_empty() {
        return Err(AuthError::AlgorithmNotAllowed);
    }
    if header.crit.is_some() {
        return Err(AuthError::UnsupportedCritical);
    }
    if signature.is_empty() {
        return Err(AuthError::Malformed);
    }
    let claims: Map<String, Value> = decode_json(claims_b64)?;
    Ok(Parsed { header, claims, signing_input, signature })
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn parses_a_compact_jws() {
        let token = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256","kid":"k1"}"#), b64(r#"{"iss":"i"}"#));
        let parsed = parse(&token, 8192).unwrap();
        assert_eq!(parsed.header.alg, "RS256");
        assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.claims["iss"], "i");
        assert_eq!(parsed.signature, "c2ln");
        assert!(token.starts_with(parsed.signing_input));
    }

    #[test]
    fn refuses_none_crit_and_bad_shapes() {
        let claims = b64(r#"{"iss":"i"}"#);
        let none = format!("{}.{claims}.", b64(r#"{"alg":"none"}"#));
        assert_eq!(parse(&none, 8192).unwrap_err(), AuthError::AlgorithmNotAllowed);
        let none = format!("{}.{claims}.x", b64(r#"{"alg":"None"}"#));
        assert_eq!(parse(&none, 8192).unwrap_err(), AuthError::AlgorithmNotAllowed);
        let crit = format!("{}.{claims}.x", b64(r#"{"alg":"RS256","crit":["exp"]}"#));
        assert_eq!(parse(&crit, 8192).unwrap_err(), AuthError::UnsupportedCritical);
        for bad in ["", "a", "a.b", "a.b.c.d", "!!.??.x"] {
            assert_eq!(parse(bad, 8192).unwrap_err(), AuthError::Malformed, "{bad}");
        }
        assert_eq!(parse(&"a".repeat(20), 10).unwrap_err(), AuthError::TooLarge { limit: 10 });
    }

    #[test]
    fn bearer_extraction() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers, 100), Ok(None));
        headers.insert("authorization", HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&headers, 100), Ok(Some("abc")));
        headers.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers, 100), Err(AuthError::MissingToken));
        headers.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers, 100), Err(AuthError::MissingToken));
        let long = HeaderValue::from_str(&format!("Bearer {}", "x".repeat(200))).unwrap();
        headers.insert("authorization", long);
        assert_eq!(bearer(&headers, 100), Err(AuthError::TooLarge { limit: 100 }));
        headers.insert("authorization", HeaderValue::from_static("Bearer a"));
        headers.append("authorization", HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer(&headers, 100), Err(AuthError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = parse(&s, 8192);
        }
    }
}
