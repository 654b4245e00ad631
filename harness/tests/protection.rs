//! `lift::security::protection` against real parts: the token vault on DynamoDB Local,
//! envelope encryption against the mocked KMS (real AES-256-GCM, context bound).

use lift::security::protection::detect::luhn_valid;
use lift::security::protection::{
    DataClass, DataKeyCache, Envelope, HashKey, HttpKmsClient, MaskStrategy, Policy, ProtectionError,
    TokenVault,
};
use lift::{Context, Principal};
use lift_harness::aws::AwsMocks;
use lift_harness::dynamodb::DynamoDbLocal;

fn envelope(mocks: &AwsMocks) -> Envelope {
    Envelope::new(HttpKmsClient::new(&mocks.kms.uri()).expect("kms client"), "alias/lift-default")
}

async fn vault(mocks: &AwsMocks) -> TokenVault {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let table = local.create_table(&lift::store::tables::tokens()).await.expect("create the table");
    TokenVault::new(
        local.client().await,
        table,
        HashKey::new(*b"vault key: thirty-two bytes long"),
        envelope(mocks),
    )
}

fn ctx(tenant: &str, roles: &[&str]) -> Context {
    let mut ctx = Context::new("req-1");
    ctx.set_principal(Principal::new("user-1", tenant).with_roles(roles.iter().copied()));
    ctx
}

#[tokio::test]
async fn tokens_are_deterministic_per_tenant_format_preserving_and_fail_luhn() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let vault = vault(&mocks).await;
    let pan = "4111111111111111";
    let a1 = vault.tokenize("tenant-a", pan).await.expect("tokenize");
    let a2 = vault.tokenize("tenant-a", "4111 1111 1111 1111").await.expect("tokenize again");
    let b = vault.tokenize("tenant-b", pan).await.expect("tokenize other tenant");
    assert_eq!(a1, a2, "same PAN, same tenant, same token");
    assert_ne!(a1, b, "different tenants, different tokens");
    for token in [&a1, &b] {
        assert_eq!(token.len(), pan.len());
        assert!(token.ends_with("1111"));
        assert!(token.bytes().all(|c| c.is_ascii_digit()));
        assert!(!luhn_valid(token.as_bytes()), "token {token} must fail Luhn");
    }
    let amex = vault.tokenize("tenant-a", "378282246310005").await.expect("amex");
    assert_eq!(amex.len(), 15);
    assert!(amex.ends_with("0005") && !luhn_valid(amex.as_bytes()));
    assert!(matches!(vault.tokenize("tenant-a", "4111111111111112").await, Err(ProtectionError::NotAPan)));
}

#[tokio::test]
async fn detokenize_needs_the_role_and_stays_in_the_tenant() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let vault = vault(&mocks).await;
    let token = vault.tokenize("tenant-a", "5555555555554444").await.expect("tokenize");
    let refused = vault.detokenize(&ctx("tenant-a", &["payments:read"]), &token).await;
    assert!(matches!(refused, Err(ProtectionError::NotPermitted { ref role }) if role == "pan:detokenize"));
    assert!(matches!(
        vault.detokenize(&Context::new("r"), &token).await,
        Err(ProtectionError::NotPermitted { .. })
    ));
    let pan = vault.detokenize(&ctx("tenant-a", &["pan:detokenize"]), &token).await.expect("detokenize");
    assert_eq!(pan, "5555555555554444");
    // Another tenant's principal, even with the role, cannot reach the token.
    let other = vault.detokenize(&ctx("tenant-b", &["pan:detokenize"]), &token).await;
    assert!(matches!(other, Err(ProtectionError::TokenNotFound)));
    // A configured role replaces the default.
    let custom = vault.clone().detokenize_role("vault:reveal");
    assert!(custom.detokenize(&ctx("tenant-a", &["pan:detokenize"]), &token).await.is_err());
    assert_eq!(
        custom.detokenize(&ctx("tenant-a", &["vault:reveal"]), &token).await.expect("custom role"),
        pan
    );
}

#[tokio::test]
async fn tokenize_json_replaces_pans_with_tokens() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let vault = vault(&mocks).await;
    let policy = Policy::new(HashKey::new(*b"mask key: thirty-two bytes long!"))
        .strategy(DataClass::Pan, MaskStrategy::Tokenize);
    let mut doc = serde_json::json!({ "card": { "number": "4111111111111111" }, "memo": "paid with 4111 1111 1111 1111" });
    vault.tokenize_json("tenant-a", &mut doc, &policy).await.expect("tokenize json");
    let token = vault.tokenize("tenant-a", "4111111111111111").await.expect("token");
    assert_eq!(doc["card"]["number"], token);
    assert_eq!(doc["memo"], format!("paid with {token}"));
}

#[tokio::test]
async fn envelope_round_trip_binds_tenant_and_detects_tampering() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let env = envelope(&mocks);
    let plaintext = b"patient 42: diagnosis confidential";
    let ct = env.encrypt("tenant-a", plaintext).await.expect("encrypt");
    assert_eq!(&ct[..2], b"v1");
    assert_eq!(env.decrypt("tenant-a", &ct).await.expect("decrypt"), plaintext);
    // A fresh envelope (no cached keys) decrypts through KMS too.
    assert_eq!(envelope(&mocks).decrypt("tenant-a", &ct).await.expect("decrypt via kms"), plaintext);
    // Wrong tenant: KMS refuses the context and the AAD differs.
    assert!(matches!(envelope(&mocks).decrypt("tenant-b", &ct).await, Err(ProtectionError::Decrypt)));
    assert!(matches!(env.decrypt("tenant-b", &ct).await, Err(ProtectionError::Decrypt)));
    // Any changed byte, in the body, nonce or key blob, fails.
    for i in [ct.len() - 1, ct.len() - 20, 6] {
        let mut tampered = ct.clone();
        tampered[i] ^= 0x01;
        assert!(env.decrypt("tenant-a", &tampered).await.is_err(), "byte {i} changed");
    }
    assert!(matches!(env.decrypt("tenant-a", b"v2xx").await, Err(ProtectionError::Format)));
    assert!(matches!(env.decrypt("tenant-a", &ct[..10]).await, Err(ProtectionError::Format)));
}

#[tokio::test]
async fn data_key_cache_hits_do_not_call_kms() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let env =
        envelope(&mocks).cache(DataKeyCache { max_age: std::time::Duration::from_secs(60), max_uses: 3 });
    for _ in 0..3 {
        env.encrypt("tenant-a", b"x").await.expect("encrypt");
    }
    assert_eq!(mocks.kms.calls_to("GenerateDataKey").len(), 1, "three uses, one data key");
    env.encrypt("tenant-a", b"x").await.expect("encrypt");
    assert_eq!(mocks.kms.calls_to("GenerateDataKey").len(), 2, "max uses reached: a new key");
    env.encrypt("tenant-b", b"x").await.expect("encrypt");
    assert_eq!(mocks.kms.calls_to("GenerateDataKey").len(), 3, "a key per tenant");
    let call = &mocks.kms.calls_to("GenerateDataKey")[2];
    assert_eq!(call.body["EncryptionContext"], serde_json::json!({ "tenant": "tenant-b" }));
}
