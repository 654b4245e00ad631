//! Checking the registered claims (`exp`, `nbf`, `iat`, `aud`) and mapping the rest to a
//! [`Principal`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::error::AuthError;
use super::issuer::Issuer;
use crate::context::Principal;

/// The verified claims of a token, put in request extensions next to the
/// [`Context`](crate::Context) for handlers that need a claim Lift does not map.
///
/// # Examples
///
/// ```
/// # use lift::{Request, Response, Error};
/// use lift::middleware::auth::Claims;
/// async fn handler(req: Request) -> Result<Response, Error> {
///     let email = req.extensions().get::<Claims>().and_then(|c| c.get("email")).and_then(|v| v.as_str());
///     # let _ = email;
///     Ok(Response::default())
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Claims(Map<String, Value>);

impl Claims {
    /// The value of a claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Seconds since the epoch as a number claim; fractions are allowed (RFC 7519 NumericDate).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(AuthError::Malformed),
        Some(_) => Err(AuthError::Malformed),
    }
}

/// Checks `exp` (required), `nbf` and `iat` against `now` with `skew` either way.
pub(crate) fn check_times(
    claims: &Map<String, Value>,
    now: SystemTime,
    skew: Duration,
) -> Result<(), AuthError> {
    let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let skew = skew.as_secs_f64();
    let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingExpiry)?;
    if now > exp + skew {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if now + skew < nbf {
            return Err(AuthError::NotYetValid);
        }
    }
    // A token issued in the future is as suspicious as one not valid yet.
    if let Some(iat) = numeric_date(claims, "iat")? {
        if now + skew < iat {
            return Err(AuthError::NotYetValid);
        }
    }
    Ok(())
}

/// Checks that `aud` (a string or an array of strings) names one of the issuer's audiences.
pub(crate) fn check_audience(claims: &Map<String, Value>, issuer: &Issuer) -> Result<(), AuthError> {
    if issuer.any_audience {
        return Ok(());
    }
    let accepted = |aud: &str| issuer.audiences.iter().any(|a| a == aud);
    let ok = match claims.get("aud") {
        Some(Value::String(aud)) => accepted(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::WrongAudience)
    }
}

/// Whether a tenant id from a token is one Lift will carry: 1 to 128 characters among
/// ASCII letters, digits and `-_.:@`, so it can never smuggle a key separator (`#`) or a
/// path into storage keys, logs or headers.
pub fn valid_tenant(tenant: &str) -> bool {
    (1..=128).contains(&tenant.len())
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
}

/// Strings from a claim that is either an array of strings or one space-separated string.
fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let (list, words) = match value {
        Some(Value::Array(items)) => (Some(items.iter().filter_map(Value::as_str)), None),
        Some(Value::String(s)) => (None, Some(s.split_ascii_whitespace())),
        _ => (None, None),
    };
    list.into_iter().flatten().chain(words.into_iter().flatten()).filter(|s| !s.is_empty())
}

/// Maps verified claims to a principal: `sub`, the tenant claim, roles, and scopes from
/// `scope` (space-separated) and `scp` (array or string).
pub(crate) fn principal(claims: &Map<String, Value>, issuer: &Issuer) -> Result<Principal, AuthError> {
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() && sub.len() <= 256 => sub.as_str(),
        _ => return Err(AuthError::MissingSubject),
    };
    let tenant = issuer
        .tenant_claims
        .iter()
        .find_map(|name| claims.get(name.as_str()))
        .and_then(Value::as_str)
        .filter(|t| valid_tenant(t))
        // An issuer bound to some tenants speaks for those alone.
        .filter(|t| issuer.tenants.as_ref().is_none_or(|allowed| allowed.iter().any(|a| a == t)))
        .ok_or(AuthError::InvalidTenant)?;
    let roles = issuer.role_claims.iter().flat_map(|name| strings(claims.get(name.as_str())));
    let scopes = strings(claims.get("scope")).chain(strings(claims.get("scp")));
    Ok(Principal::new(subject, tenant).with_issuer(&issuer.issuer).with_roles(roles).with_scopes(scopes))
}

pub(crate) fn into_claims(map: Map<String, Value>) -> Claims {
    Claims(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn issuer() -> Issuer {
        Issuer::hs256("i", vec![0; 32]).audience("api").audience("other")
    }

    #[test]
    fn times_respect_the_skew() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let skew = Duration::from_secs(60);
        assert_eq!(check_times(&map(json!({})), now, skew), Err(AuthError::MissingExpiry));
        assert_eq!(check_times(&map(json!({"exp": "soon"})), now, skew), Err(AuthError::Malformed));
        assert_eq!(check_times(&map(json!({"exp": 999_950})), now, skew), Ok(()));
        assert_eq!(check_times(&map(json!({"exp": 999_939})), now, skew), Err(AuthError::Expired));
        assert_eq!(check_times(&map(json!({"exp": 2e6, "nbf": 1_000_059})), now, skew), Ok(()));
        assert_eq!(
            check_times(&map(json!({"exp": 2e6, "nbf": 1_000_061})), now, skew),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(
            check_times(&map(json!({"exp": 2e6, "iat": 1_000_100})), now, skew),
            Err(AuthError::NotYetValid)
        );
    }

    #[test]
    fn audience_as_string_or_array() {
        let i = issuer();
        assert!(check_audience(&map(json!({"aud": "api"})), &i).is_ok());
        assert!(check_audience(&map(json!({"aud": ["x", "other"]})), &i).is_ok());
        assert_eq!(check_audience(&map(json!({"aud": "x"})), &i), Err(AuthError::WrongAudience));
        assert_eq!(check_audience(&map(json!({})), &i), Err(AuthError::WrongAudience));
        assert!(check_audience(&map(json!({})), &i.any_audience()).is_ok());
    }

    #[test]
    fn maps_cognito_and_oauth_claims() {
        let claims = map(json!({
            "sub": "u-1",
            "custom:tenant_id": "acme",
            "cognito:groups": ["admin"],
            "roles": "auditor",
            "scope": "payments:read payments:write",
            "scp": ["profile"],
        }));
        let p = principal(&claims, &issuer()).unwrap();
        assert_eq!((p.subject.as_str(), p.tenant.as_str()), ("u-1", "acme"));
        assert_eq!(p.issuer.as_deref(), Some("i"), "the principal names its issuer");
        assert!(p.has_role("admin") && p.has_role("auditor"));
        assert!(p.has_scope("payments:read") && p.has_scope("payments:write") && p.has_scope("profile"));
    }

    #[test]
    fn refuses_missing_subject_and_bad_tenants() {
        let i = issuer();
        assert_eq!(principal(&map(json!({"tenant_id": "a"})), &i), Err(AuthError::MissingSubject));
        for bad in [json!("a#b"), json!(""), json!(7), json!("x".repeat(129)), json!("a/b")] {
            let claims = map(json!({"sub": "u", "tenant_id": bad}));
            assert_eq!(principal(&claims, &i), Err(AuthError::InvalidTenant));
        }
        let custom = i.tenant_claims(["org"]);
        let claims = map(json!({"sub": "u", "tenant_id": "a", "org": "b"}));
        assert_eq!(principal(&claims, &custom).unwrap().tenant, "b");
    }

    #[test]
    fn an_issuer_bound_to_tenants_speaks_for_those_alone() {
        let bound = issuer().tenants(["globex", "initech"]);
        let of = |tenant: &str| map(json!({"sub": "u", "tenant_id": tenant}));
        assert_eq!(principal(&of("acme"), &bound), Err(AuthError::InvalidTenant));
        assert_eq!(principal(&of("globex"), &bound).unwrap().tenant, "globex");
        assert_eq!(principal(&of("initech"), &bound).unwrap().tenant, "initech");
        // Unbound, as before: any tenant.
        assert_eq!(principal(&of("acme"), &issuer()).unwrap().tenant, "acme");
        assert!(issuer().tenants(Vec::<String>::new()).validate().is_err());
    }
}
