//! Authentication and tenant isolation of the payments API: real JWTs from the harness's
//! mocked issuer (`JwksIssuer`), whose recorded calls show when keys are fetched.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use lift::middleware::auth::Issuer;
use lift_harness::aws::{Alg, Fault, GET_JWKS};
use payments::{Payments, DEV_TENANT_HEADER, READ_SCOPE, WRITE_SCOPE};
use support::{authorized, env, env_with, json, new_payment, ALL_SCOPES};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn a_token_for_tenant_a_cannot_reach_tenant_b_payments() {
    let env = env_with(false).await;
    let res = env.send(Method::POST, "/payments", "globex", Some(new_payment(4200, "USD"))).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = json(&res)["id"].as_str().unwrap().to_owned();

    let acme = env.token("acme", ALL_SCOPES);
    let res = env.call(authorized(Method::GET, &format!("/payments/{id}"), &acme, None)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = env.call(authorized(Method::GET, "/payments", &acme, None)).await;
    assert_eq!(json(&res)["payments"].as_array().unwrap().len(), 0);
    let refund = Some(serde_json::json!({"amount": 100}));
    let res = env.call(authorized(Method::POST, &format!("/payments/{id}/refunds"), &acme, refund)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        env.store.get("globex", &id).await.unwrap().refunded_amount,
        0,
        "globex's payment is untouched"
    );
}

#[tokio::test]
async fn a_tenant_header_is_ignored_when_a_jwt_is_present() {
    // The development header is on, and still cannot override a token's tenant.
    let env = env().await;
    let res = env.send(Method::POST, "/payments", "globex", Some(new_payment(700, "EUR"))).await;
    let globex_id = json(&res)["id"].as_str().unwrap().to_owned();

    let acme = env.token("acme", ALL_SCOPES);
    for header in [DEV_TENANT_HEADER, "x-tenant-id", "tenant-id"] {
        let mut req = authorized(Method::GET, &format!("/payments/{globex_id}"), &acme, None);
        req.headers_mut().insert(header, "globex".parse().unwrap());
        let res = env.call(req).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{header} must not select globex");
    }

    // A payment created with acme's token and a globex header belongs to acme.
    let mut req = authorized(Method::POST, "/payments", &acme, Some(new_payment(300, "EUR")));
    req.headers_mut().insert(DEV_TENANT_HEADER, "globex".parse().unwrap());
    let res = env.call(req).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = json(&res)["id"].as_str().unwrap().to_owned();
    assert!(env.store.get("acme", &id).await.is_ok());
    assert!(env.store.get("globex", &id).await.is_err());
}

#[tokio::test]
async fn a_missing_scope_is_403_naming_the_scope() {
    let env = env_with(false).await;
    let reader = env.token("acme", &[READ_SCOPE]);
    let res = env.call(authorized(Method::POST, "/payments", &reader, Some(new_payment(100, "USD")))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(&res)["detail"], "the scope payments:write is required");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(env.call(authorized(Method::GET, "/payments", &reader, None)).await.status(), StatusCode::OK);

    let writer = env.token("acme", &[WRITE_SCOPE]);
    let res = env.call(authorized(Method::POST, "/payments", &writer, Some(new_payment(100, "USD")))).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = json(&res)["id"].as_str().unwrap().to_owned();
    let res = env.call(authorized(Method::GET, &format!("/payments/{id}"), &writer, None)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(&res)["detail"], "the scope payments:read is required");
    let refund = Some(serde_json::json!({"amount": 1}));
    let res = env.call(authorized(Method::POST, &format!("/payments/{id}/refunds"), &reader, refund)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let none = env.token("acme", &[]);
    assert_eq!(
        env.call(authorized(Method::GET, "/payments", &none, None)).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn es256_tokens_and_key_rotation() {
    let env = env_with(false).await;
    let claims = env.claims("acme", ALL_SCOPES);
    let es = env.jwks.sign(&claims, Alg::Es256, None).unwrap();
    assert_eq!(env.call(authorized(Method::GET, "/payments", &es, None)).await.status(), StatusCode::OK);
    assert_eq!(env.jwks.calls_to(GET_JWKS).len(), 1);

    // The issuer rotates: tokens signed with the new keys are accepted after one refetch.
    env.jwks.rotate().unwrap();
    for alg in [Alg::Rs256, Alg::Es256] {
        let token = env.jwks.sign(&claims, alg, None).unwrap();
        assert_eq!(
            env.call(authorized(Method::GET, "/payments", &token, None)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(env.jwks.calls_to(GET_JWKS).len(), 2, "one refetch picked up both new keys");
}

#[tokio::test]
async fn unknown_kids_refetch_once_then_the_cooldown_holds() {
    let env = env_with(false).await;
    let claims = env.claims("acme", ALL_SCOPES);
    let ok = env.jwks.sign(&claims, Alg::Rs256, None).unwrap();
    assert_eq!(env.call(authorized(Method::GET, "/payments", &ok, None)).await.status(), StatusCode::OK);
    // Keys the issuer holds but does not publish: their kids are unknown to the app.
    let hidden = env.jwks.rotate().unwrap();
    for kid in &hidden {
        env.jwks.unpublish(kid).unwrap();
    }
    for (kid, alg) in hidden.iter().zip([Alg::Rs256, Alg::Es256]) {
        let token = env.jwks.sign(&claims, alg, Some(kid)).unwrap();
        let res = env.call(authorized(Method::GET, "/payments", &token, None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("signing key is unknown"));
    }
    assert_eq!(
        env.jwks.calls_to(GET_JWKS).len(),
        2,
        "the first unknown kid refetched once, the second waited"
    );
}

#[tokio::test]
async fn expired_foreign_and_unsigned_tokens_are_401() {
    let env = env_with(false).await;
    let mut claims = env.claims("acme", ALL_SCOPES);
    claims["exp"] = (now() - 3600).into();
    let expired = env.jwks.sign(&claims, Alg::Rs256, None).unwrap();
    let mut claims = env.claims("acme", ALL_SCOPES);
    claims["aud"] = "billing".into();
    let other_audience = env.jwks.sign(&claims, Alg::Rs256, None).unwrap();
    let valid = env.token("acme", ALL_SCOPES);
    let claims_part = valid.split('.').nth(1).unwrap();
    let unsigned = format!("eyJhbGciOiJub25lIn0.{claims_part}.");
    for (name, token) in [("expired", expired), ("audience", other_audience), ("none", unsigned)] {
        let res = env.call(authorized(Method::GET, "/payments", &token, None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"payments\", error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert!(!json(&res).to_string().contains(&token[token.len() - 20..]), "{name}: the token leaks");
    }
}

#[tokio::test]
async fn the_issuer_down_is_503_and_recovers() {
    let env = env_with(false).await;
    // No cooldown, so no failure backoff either: the next request fetches again at once.
    let issuer = Issuer::jwks(env.jwks.issuer(), env.jwks.jwks_url())
        .audience(support::AUDIENCE)
        .refetch_cooldown(Duration::ZERO);
    let payments = Payments { store: env.store.clone(), dev_tenant_header_insecure: false };
    let service =
        payments::app_with_jwt(payments, payments::jwt_layer(issuer, false).unwrap()).into_service();
    let call = |req| tower::ServiceExt::oneshot(service.clone(), req);

    env.jwks.fault(GET_JWKS, Fault::service_unavailable().times(1));
    let token = env.token("acme", ALL_SCOPES);
    let res = call(authorized(Method::GET, "/payments", &token, None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(json(&res)["detail"], "the token cannot be verified now; retry later");
    let res = call(authorized(Method::GET, "/payments", &token, None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(env.jwks.calls_to(GET_JWKS).len(), 2);
}
