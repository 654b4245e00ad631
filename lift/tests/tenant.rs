//! Tenant isolation through the public API: a tenant only ever comes from an authenticated
//! principal, and no id can put a key under another tenant's prefix. (The DynamoDB-backed
//! isolation test is `harness/tests/tenant_isolation.rs`.)

use lift::tenant::{partition_key, split_partition_key, TenantError, TenantId, TENANT_PREFIX};
use lift::{Context, Principal};
use proptest::prelude::*;

fn tenant_of(t: &str) -> Result<TenantId, TenantError> {
    let mut ctx = Context::new("req");
    ctx.set_principal(Principal::new("user", t));
    TenantId::from_context(&ctx)
}

#[test]
fn a_tenant_needs_a_principal() {
    let mut ctx = Context::new("req");
    // A tenant set without a principal (e.g. copied from a header) is not enough.
    ctx.set_tenant("acme");
    assert!(matches!(TenantId::from_context(&ctx), Err(TenantError::NoPrincipal)));
    let req = http::Request::new(());
    assert!(matches!(TenantId::from_request(&req), Err(TenantError::NoPrincipal)));
    let err: lift::Error = TenantError::NoPrincipal.into();
    assert_eq!(err.status(), 401);
}

#[test]
fn separator_smuggling_is_refused() {
    let acme = tenant_of("acme").unwrap();
    for hostile in ["globex#pay_1", "#", "x#TENANT#globex#pay_1", "", "a\u{0}b"] {
        assert!(partition_key(&acme, hostile).is_err(), "{hostile:?}");
    }
    assert!(tenant_of("acme#globex").is_err());
    assert_eq!(split_partition_key("TENANT#acme#pay_1"), Some(("acme", "pay_1")));
    assert_eq!(split_partition_key("TENANT#acme#pay#1"), None);
    assert_eq!(split_partition_key("USER#acme#pay_1"), None);
}

proptest! {
    /// Two tenants never share a key, whatever ids they use.
    #[test]
    fn different_tenants_never_share_a_key(
        a in "[a-z0-9#]{1,6}", b in "[a-z0-9#]{1,6}", id_a in "[a-z0-9#]{1,8}", id_b in "[a-z0-9#]{1,8}",
    ) {
        prop_assume!(a != b);
        if let (Ok(ta), Ok(tb)) = (tenant_of(&a), tenant_of(&b)) {
            if let (Ok(ka), Ok(kb)) = (partition_key(&ta, &id_a), partition_key(&tb, &id_b)) {
                prop_assert_ne!(&ka, &kb);
                prop_assert_eq!(split_partition_key(&ka).map(|(t, _)| t), Some(a.as_str()));
                prop_assert_eq!(split_partition_key(&kb).map(|(t, _)| t), Some(b.as_str()));
            }
        }
    }

    /// Every accepted key starts with its own tenant's prefix and round-trips.
    #[test]
    fn keys_stay_under_their_prefix(t in "\\PC{1,10}", id in "\\PC{0,20}") {
        if let Ok(tenant) = tenant_of(&t) {
            if let Ok(key) = partition_key(&tenant, &id) {
                let prefix = format!("{TENANT_PREFIX}{t}#");
                prop_assert!(key.starts_with(&prefix));
                prop_assert_eq!(split_partition_key(&key), Some((t.as_str(), id.as_str())));
            }
        }
    }
}
