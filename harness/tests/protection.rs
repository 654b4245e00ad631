//! `lift::security::protection` against real parts: the token vault on DynamoDB Local,
//! envelope encryption against the mocked KMS (real AES-256-GCM, context bound).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use lift::security::protection::detect::luhn_valid;
use lift::security::protection::{
    AwsKmsClient, DataClass, DataKeyCache, Envelope, HashKey, KmsClient, MaskStrategy, Policy,
    ProtectionError, TokenVault,
};
use lift::{Context, Principal};
use lift_harness::aws::AwsMocks;
use lift_harness::dynamodb::DynamoDbLocal;

/// Envelope encryption through the SDK client against the KMS mock, which refuses any call
/// not SigV4-signed for `kms`.
fn envelope(mocks: &AwsMocks) -> Envelope {
    mocks.kms.require_signature(true);
    Envelope::new(
        AwsKmsClient::endpoint(&mocks.kms.uri(), mocks.region()).expect("kms client"),
        "alias/lift-default",
    )
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

/// The vault item of `token` in `tenant`, and the card-number lookup item that names it.
async fn vault_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    token: &str,
) -> (HashMap<String, AttributeValue>, HashMap<String, AttributeValue>) {
    let items = client.scan().table_name(table).send().await.expect("scan").items.unwrap_or_default();
    let pk = |i: &HashMap<String, AttributeValue>| i["pk"].as_s().cloned().unwrap_or_default();
    let token_item =
        items.iter().find(|i| pk(i) == format!("TOKEN#{tenant}#{token}")).expect("token item").clone();
    let lookup = items
        .iter()
        .find(|i| {
            pk(i).starts_with(&format!("PANHASH#{tenant}#"))
                && i.get("token").and_then(|t| t.as_s().ok()) == Some(&token.to_owned())
        })
        .expect("lookup item")
        .clone();
    (token_item, lookup)
}

/// A vault on a table of its own, with a client to that table, for tests that write it as an
/// attacker would.
async fn vault_with_table(mocks: &AwsMocks) -> (TokenVault, aws_sdk_dynamodb::Client, String) {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let table = local.create_table(&lift::store::tables::tokens()).await.expect("create the table");
    let client = local.client().await;
    let vault = TokenVault::new(
        client.clone(),
        table.clone(),
        HashKey::new(*b"vault key: thirty-two bytes long"),
        envelope(mocks),
    );
    (vault, client, table)
}

/// An attacker who can write the vault table but holds no key: they tokenize their own card
/// as a customer of the same tenant, then copy its ciphertext into a victim's token item
/// (refunds to the victim's token would reach their card), or point the victim's card's
/// lookup item at their token. Both are refused, and the untouched tokens still work.
#[tokio::test]
async fn a_vault_item_rewritten_to_another_card_is_refused() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let (vault, client, table) = vault_with_table(&mocks).await;
    let (victim_pan, attacker_pan) = ("4111111111111111", "5555555555554444");
    let victim = vault.tokenize("tenant-a", victim_pan).await.expect("tokenize");
    let attacker = vault.tokenize("tenant-a", attacker_pan).await.expect("tokenize");
    let reveal = ctx("tenant-a", &["pan:detokenize"]);
    assert_eq!(vault.detokenize(&reveal, &victim).await.expect("detokenize"), victim_pan);

    let (mut victim_item, mut victim_lookup) = vault_items(&client, &table, "tenant-a", &victim).await;
    let (attacker_item, _) = vault_items(&client, &table, "tenant-a", &attacker).await;
    // The attacker's ciphertext (and its hash) under the victim's token.
    let original = victim_item.clone();
    for attribute in ["pan", "pan_hash"] {
        victim_item.insert(attribute.to_owned(), attacker_item[attribute].clone());
    }
    client.put_item().table_name(&table).set_item(Some(victim_item)).send().await.expect("rewrite");
    let swapped = vault.detokenize(&reveal, &victim).await;
    assert!(matches!(swapped, Err(ProtectionError::Tampered)), "the victim's token revealed {swapped:?}");
    assert_eq!(vault.detokenize(&reveal, &attacker).await.expect("detokenize"), attacker_pan);
    client.put_item().table_name(&table).set_item(Some(original)).send().await.expect("restore");
    assert_eq!(vault.detokenize(&reveal, &victim).await.expect("detokenize"), victim_pan);

    // The victim's card's lookup item pointed at the attacker's token: charging the card by
    // its token would charge the attacker's.
    victim_lookup.insert("token".to_owned(), AttributeValue::S(attacker.clone()));
    client.put_item().table_name(&table).set_item(Some(victim_lookup)).send().await.expect("rewrite");
    let redirected = vault.tokenize("tenant-a", victim_pan).await;
    assert!(matches!(redirected, Err(ProtectionError::Tampered)), "tokenize answered {redirected:?}");
    assert_eq!(vault.tokenize("tenant-a", attacker_pan).await.expect("tokenize"), attacker);

    // A vault under another hash key derives other tokens: it refuses the old ones rather
    // than reveal them unchecked.
    let rekeyed = TokenVault::new(
        client.clone(),
        table.clone(),
        HashKey::new(*b"another key, also 32 bytes long!"),
        envelope(&mocks),
    );
    assert!(matches!(rekeyed.detokenize(&reveal, &attacker).await, Err(ProtectionError::Tampered)));
}

/// An attacker who can write the vault table puts into a token item another value sealed
/// for the same tenant under the same KMS key (an SSN the service encrypted elsewhere):
/// detokenizing decrypts it, and refuses it without revealing it, since it derives no token.
#[tokio::test]
async fn a_token_item_holding_another_sealed_value_is_refused_unrevealed() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let (vault, client, table) = vault_with_table(&mocks).await;
    let pan = "4111111111111111";
    let token = vault.tokenize("tenant-a", pan).await.expect("tokenize");
    let reveal = ctx("tenant-a", &["pan:detokenize"]);
    let (mut item, _) = vault_items(&client, &table, "tenant-a", &token).await;
    // Values a service seals for the tenant: an SSN, and a 16-digit account number that is
    // no card (and derives no token either).
    for secret in ["123-45-6789", "1234567890123456"] {
        let sealed = envelope(&mocks).encrypt("tenant-a", secret.as_bytes()).await.expect("encrypt");
        item.insert("pan".to_owned(), AttributeValue::B(sealed.into()));
        client.put_item().table_name(&table).set_item(Some(item.clone())).send().await.expect("rewrite");
        let revealed = vault.detokenize(&reveal, &token).await;
        assert!(matches!(revealed, Err(ProtectionError::Tampered)), "{secret}: {revealed:?}");
        let shown = format!("{revealed:?} {}", revealed.as_ref().unwrap_err());
        assert!(!shown.contains(secret) && !shown.contains("6789"), "{shown}");
    }
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
async fn tokenize_json_keeps_tokens_in_fields_named_for_cards() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let vault = vault(&mocks).await;
    let policy = Policy::new(HashKey::new(*b"mask key: thirty-two bytes long!"))
        .strategy(DataClass::Pan, MaskStrategy::Tokenize);
    let pan = "5555555555554444";
    let mut doc = serde_json::json!({
        "card_number": pan, "pan": pan, "cc_number": 5555555555554444u64, "card": "5555 5555 5555 4444",
        "cardNumber": format!("{pan} exp 12/29"), "password": "hunter2",
    });
    vault.tokenize_json("tenant-a", &mut doc, &policy).await.expect("tokenize json");
    let token = vault.tokenize("tenant-a", pan).await.expect("token");
    for field in ["card_number", "pan", "cc_number", "card"] {
        assert_eq!(doc[field], token, "{field}: {doc}");
    }
    assert_eq!(doc["cardNumber"], format!("{token} exp 12/29"));
    // The rest of the document is masked as before.
    assert_eq!(doc["password"], "[REDACTED:password]");
    // The card on file comes back.
    let reveal = ctx("tenant-a", &["pan:detokenize"]);
    let stored = doc["card_number"].as_str().expect("a token");
    assert_eq!(vault.detokenize(&reveal, stored).await.expect("detokenize"), pan);
    // A card field holding no card number is still masked.
    let mut doc = serde_json::json!({ "card_number": "garbage" });
    vault.tokenize_json("tenant-a", &mut doc, &policy).await.expect("tokenize json");
    assert_eq!(doc["card_number"], "[REDACTED:pan]");
}

/// A pseudonymised email joins records within its tenant and with no other tenant's: the
/// same address hashes alike twice in one tenant and apart in another, under one policy.
#[tokio::test]
async fn tokenize_json_hashes_emails_apart_in_each_tenant() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let vault = vault(&mocks).await;
    let policy = Policy::new(HashKey::new(*b"mask key: thirty-two bytes long!"))
        .strategy(DataClass::Pan, MaskStrategy::Tokenize);
    assert_eq!(policy.strategy_for(DataClass::Email), MaskStrategy::KeyedHash);
    let email = fake::Fake::fake::<String>(&fake::faker::internet::en::SafeEmail());
    let masked = |doc: &serde_json::Value| doc["email"].as_str().expect("a hash").to_owned();
    let mut docs = Vec::new();
    for tenant in ["tenant-a", "tenant-a", "tenant-b"] {
        let mut doc = serde_json::json!({ "email": email });
        vault.tokenize_json(tenant, &mut doc, &policy).await.expect("tokenize json");
        docs.push(masked(&doc));
    }
    assert_eq!(docs[0], docs[1], "joinable within a tenant");
    assert_ne!(docs[0], docs[2], "not across tenants");
    assert!(docs.iter().all(|h| h.len() == 64 && !h.contains(&email)), "{docs:?}");
    // The policy's own hash, outside any tenant, is neither tenant's.
    let untenanted = policy.mask_value(DataClass::Email, &email);
    assert!(untenanted != docs[0] && untenanted != docs[2]);
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

#[tokio::test]
async fn every_kms_call_is_a_signed_sdk_call_in_the_json_1_1_protocol() {
    let mocks = AwsMocks::start().await.expect("mocks");
    let env = envelope(&mocks);
    let ct = env.encrypt("tenant-a", b"4111111111111111").await.expect("encrypt");
    envelope(&mocks).decrypt("tenant-a", &ct).await.expect("decrypt through kms");
    let calls = mocks.kms.calls();
    let operations: Vec<_> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(operations, ["GenerateDataKey", "Decrypt"]);
    for call in &calls {
        let scope =
            call.sigv4().unwrap_or_else(|| panic!("{} is not signed: {:?}", call.operation, call.headers));
        assert_eq!((scope.service.as_str(), scope.region.as_str()), ("kms", mocks.region()));
        assert_eq!(scope.access_key_id, "local", "local endpoints get the static credentials");
        assert!(scope.signed_headers.iter().any(|h| h == "x-amz-target"), "{:?}", scope.signed_headers);
        assert_eq!(call.header("content-type"), Some("application/x-amz-json-1.1"));
        assert_eq!(call.header("x-amz-target"), Some(format!("TrentService.{}", call.operation).as_str()));
    }
    // Blobs travel base64-encoded, and the data key never does in the request.
    assert_eq!(calls[0].body["KeySpec"], "AES_256");
    let blob = calls[1].body["CiphertextBlob"].as_str().expect("a base64 blob");
    assert!(base64_decodes(blob), "{blob}");
}

#[tokio::test]
async fn encrypt_goes_through_kms_and_only_kms_opens_it_with_the_same_context() {
    let mocks = AwsMocks::start().await.expect("mocks");
    mocks.kms.require_signature(true);
    let kms = AwsKmsClient::endpoint(&mocks.kms.uri(), mocks.region()).expect("kms client");
    let secret = b"checkpoint key material";
    let blob = kms.encrypt("alias/lift-default", secret, &[("purpose", "test")]).await.expect("encrypt");
    assert!(!blob.windows(secret.len()).any(|w| w == secret), "the blob is not the plaintext");
    let context = [("purpose".to_owned(), "test".to_owned())].into();
    let (key, opened) = mocks.kms.decrypt(&blob, &context).expect("the mock opens what it sealed");
    assert_eq!((key.alias.as_deref(), opened.as_slice()), (Some("alias/lift-default"), &secret[..]));
    assert!(mocks.kms.decrypt(&blob, &Default::default()).is_err(), "the context is bound");
    let unknown = kms.encrypt("alias/nope", secret, &[]).await.unwrap_err();
    assert_eq!(unknown.to_string(), "kms error: Encrypt failed: NotFoundException");
}

#[tokio::test]
async fn the_kms_mock_refuses_unsigned_and_wrongly_scoped_calls_when_asked() {
    let mocks = AwsMocks::start().await.expect("mocks");
    mocks.kms.require_signature(true);
    let http = post_encrypt(&mocks.kms.uri(), None).await;
    assert_eq!(http.0, 403);
    assert!(http.1.contains("MissingAuthenticationTokenException"), "{}", http.1);
    let for_s3 = "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/s3/aws4_request, \
                  SignedHeaders=host;x-amz-date, Signature=";
    let wrong = post_encrypt(&mocks.kms.uri(), Some(&format!("{for_s3}{}", "a".repeat(64)))).await;
    assert_eq!(wrong.0, 403);
    assert!(wrong.1.contains("InvalidSignatureException"), "{}", wrong.1);
    // The SDK client signs for kms, so it passes where those were refused.
    let envelope = Envelope::new(
        AwsKmsClient::endpoint(&mocks.kms.uri(), mocks.region()).expect("kms client"),
        "alias/lift-default",
    );
    assert!(envelope.encrypt("tenant-a", b"x").await.is_ok(), "the sdk signs for kms");
}

fn base64_decodes(text: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).is_ok_and(|b| !b.is_empty())
}

/// POSTs a KMS `Encrypt` to `uri` with an optional `Authorization` header; returns status
/// and body.
async fn post_encrypt(uri: &str, authorization: Option<&str>) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut request = http::Request::post(uri)
        .header("x-amz-target", "TrentService.Encrypt")
        .header("content-type", "application/x-amz-json-1.1");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let request = request.body(Full::new(bytes::Bytes::from_static(b"{}"))).expect("a request");
    let response = client.request(request).await.expect("the mock answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn kms_is_found_through_aws_endpoint_url_kms_and_a_throttled_call_is_retried_by_the_sdk() {
    let mocks = AwsMocks::start().await.expect("mocks");
    mocks.kms.require_signature(true);
    let vars = mocks.env_vars();
    // The variables `lift-harness up` exports; no AWS_REGION: a local endpoint needs none.
    let kms =
        AwsKmsClient::from_env_vars(|name| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()))
            .expect("kms from the environment");
    mocks.kms.fault("GenerateDataKey", lift_harness::aws::Fault::throttling().times(1));
    let envelope = Envelope::new(kms, "alias/lift-default");
    let ct = envelope.encrypt("tenant-a", b"x").await.expect("the sdk retries a throttled call");
    assert_eq!(envelope.decrypt("tenant-a", &ct).await.expect("decrypt"), b"x");
    let calls = mocks.kms.calls_to("GenerateDataKey");
    assert_eq!(calls.len(), 2, "one throttled, one retried");
    assert!(calls[0].fault.is_some() && calls[1].fault.is_none());
    assert_eq!(calls[1].sigv4().expect("signed").region, "us-east-1");
}
