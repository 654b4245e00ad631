//! Checking the registered claims (`exp`, `nbf`, `iat`, `aud`), the token's kind (`typ`,
//! `token_use`) and client when the issuer asks for them, and mapping the rest to a
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

/// Checks the JOSE header's `typ` when the issuer requires one.
pub(crate) fn check_type(typ: Option<&Value>, issuer: &Issuer) -> Result<(), AuthError> {
    let Some(required) = issuer.typ.as_deref() else {
        return Ok(());
    };
    match typ {
        Some(Value::String(typ)) if media_type(typ).eq_ignore_ascii_case(media_type(required)) => Ok(()),
        _ => Err(AuthError::WrongType),
    }
}

/// A `typ` value as RFC 7515 (4.1.9) compares it: `at+jwt` and `application/at+jwt` are
/// one type; case is ignored by the caller.
pub(crate) fn media_type(typ: &str) -> &str {
    let typ = typ.trim();
    match typ.get(.."application/".len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ["application/".len()..],
        _ => typ,
    }
}

/// Checks `token_use` when the issuer requires one: a token without the claim is refused.
pub(crate) fn check_token_use(claims: &Map<String, Value>, issuer: &Issuer) -> Result<(), AuthError> {
    match issuer.token_use.as_deref() {
        None => Ok(()),
        Some(required) if claims.get("token_use").and_then(Value::as_str) == Some(required) => Ok(()),
        Some(_) => Err(AuthError::WrongTokenUse),
    }
}

/// Checks the client when the issuer lists its clients: `client_id` when the token has one
/// (access tokens), else `aud` (ID tokens name their client there).
pub(crate) fn check_client(claims: &Map<String, Value>, issuer: &Issuer) -> Result<(), AuthError> {
    let Some(allowed) = issuer.client_ids.as_deref() else {
        return Ok(());
    };
    let listed = |client: &str| allowed.iter().any(|a| a == client);
    let ok = match (claims.get("client_id"), claims.get("aud")) {
        // A token that names its client is judged by that name alone, whatever its `aud`.
        (Some(client), _) => client.as_str().is_some_and(listed),
        (None, Some(Value::String(aud))) => listed(aud),
        (None, Some(Value::Array(auds))) => auds.iter().filter_map(Value::as_str).any(listed),
        (None, _) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::WrongClient)
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
    fn typ_is_compared_as_a_media_type() {
        let i = issuer().typ("at+jwt");
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"] {
            assert_eq!(check_type(Some(&json!(ok)), &i), Ok(()), "{ok}");
        }
        for bad in [json!("JWT"), json!("application/jwt"), json!("at+jwt2"), json!(["at+jwt"]), json!(1)] {
            assert_eq!(check_type(Some(&bad), &i), Err(AuthError::WrongType), "{bad}");
        }
        assert_eq!(check_type(None, &i), Err(AuthError::WrongType));
        let prefixed = issuer().typ("application/at+jwt");
        assert_eq!(check_type(Some(&json!("at+jwt")), &prefixed), Ok(()));
        assert_eq!(check_type(None, &issuer()), Ok(()), "not required by default");
        assert_eq!(check_type(Some(&json!(7)), &issuer()), Ok(()));
    }

    #[test]
    fn token_use_must_match_when_required() {
        let i = issuer().token_use("access");
        assert_eq!(check_token_use(&map(json!({"token_use": "access"})), &i), Ok(()));
        for bad in
            [json!({"token_use": "id"}), json!({"token_use": "Access"}), json!({}), json!({"token_use": 1})]
        {
            assert_eq!(check_token_use(&map(bad.clone()), &i), Err(AuthError::WrongTokenUse), "{bad}");
        }
        assert_eq!(check_token_use(&map(json!({"token_use": "id"})), &issuer()), Ok(()), "not by default");
    }

    #[test]
    fn the_client_is_client_id_else_aud() {
        let i = issuer().client_ids(["a", "b"]);
        let check = |claims: Value| check_client(&map(claims), &i);
        assert_eq!(check(json!({"client_id": "a"})), Ok(()));
        assert_eq!(check(json!({"aud": "b"})), Ok(()));
        assert_eq!(check(json!({"aud": ["x", "b"]})), Ok(()));
        assert_eq!(check(json!({"client_id": "c"})), Err(AuthError::WrongClient));
        assert_eq!(check(json!({"client_id": "c", "aud": "a"})), Err(AuthError::WrongClient));
        assert_eq!(check(json!({"client_id": ["a"]})), Err(AuthError::WrongClient));
        assert_eq!(check(json!({"aud": ["x"]})), Err(AuthError::WrongClient));
        assert_eq!(check(json!({})), Err(AuthError::WrongClient));
        assert_eq!(check_client(&map(json!({"client_id": "c"})), &issuer()), Ok(()), "any by default");
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
