//! Crypto-shredding (`lift::security::protection::SubjectKeys`) on DynamoDB Local with the
//! mocked KMS: one key per subject that every writer agrees on, erasure that makes every
//! copy of a ciphertext unreadable, and the caveats the docs state (a copy of the key table
//! undoes erasures; another process's cache outlives them up to its TTL).

use std::time::Duration;

use lift::security::protection::{sealed_subject, AwsKmsClient, ProtectionError, SubjectKeys};
use lift_harness::aws::{KmsMock, DEFAULT_KEY_ALIAS};
use lift_harness::dynamodb::DynamoDbLocal;

/// The region of the KMS mock and of the clients that call it.
const KMS_REGION: &str = "eu-west-1";

struct Env {
    client: aws_sdk_dynamodb::Client,
    table: String,
    kms: KmsMock,
}

async fn env() -> Env {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let table = ddb.create_table(&lift::store::tables::subject_keys()).await.expect("the subject key table");
    let kms = KmsMock::start(KMS_REGION).await;
    // The SDK client signs every call; the mock refuses any that is not.
    kms.require_signature(true);
    Env { client: ddb.client().await, table, kms }
}

impl Env {
    /// A store of its own (its own cache), as another process would have.
    fn keys(&self, cache_ttl: Duration) -> SubjectKeys {
        SubjectKeys::builder()
            .client(self.client.clone())
            .table(&self.table)
            .kms(AwsKmsClient::endpoint(&self.kms.uri(), KMS_REGION).expect("kms client"), DEFAULT_KEY_ALIAS)
            .cache_ttl(cache_ttl)
            .build()
            .expect("a valid configuration")
    }

    async fn items(&self) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let out = self.client.scan().table_name(&self.table).consistent_read(true).send().await.unwrap();
        out.items().to_vec()
    }
}

#[tokio::test]
async fn erasure_makes_every_copy_unreadable_and_spares_other_subjects() {
    let env = env().await;
    let keys = env.keys(Duration::from_secs(60));
    let ada = keys.encrypt("acme", "cus_ada", b"Ada Lovelace, 078-05-1120").await.unwrap();
    let ada_again = keys.encrypt("acme", "cus_ada", b"ada@example.com").await.unwrap();
    let bob = keys.encrypt("acme", "cus_bob", b"Bob").await.unwrap();
    // A backup: bytes copied elsewhere before the erasure.
    let backup = ada.clone();
    assert_eq!(sealed_subject(&ada), Some("cus_ada"));
    assert!(!String::from_utf8_lossy(&ada).contains("078-05-1120"));
    assert_eq!(keys.decrypt("acme", &ada).await.unwrap().as_deref(), Some(&b"Ada Lovelace, 078-05-1120"[..]));
    assert_eq!(env.items().await.len(), 2, "one key per subject, reused");
    // No copy of the key travels in the ciphertext: the wrapped key is in the table only.
    let blob = env.items().await.into_iter().find_map(|i| i.get("blob").cloned()).unwrap();
    let blob = blob.as_b().unwrap().as_ref().to_vec();
    assert!(!ada.windows(blob.len()).any(|w| w == blob.as_slice()));

    assert!(keys.erase("acme", "cus_ada").await.unwrap());
    assert!(!keys.erase("acme", "cus_ada").await.unwrap(), "nothing left to erase");
    for sealed in [&ada, &ada_again, &backup] {
        assert_eq!(keys.decrypt("acme", sealed).await.unwrap(), None);
        assert_eq!(env.keys(Duration::ZERO).decrypt("acme", sealed).await.unwrap(), None, "another process");
    }
    assert_eq!(keys.decrypt("acme", &bob).await.unwrap().as_deref(), Some(&b"Bob"[..]));

    // Seen again after the erasure, the subject gets a new key; old data stays erased.
    let new = keys.encrypt("acme", "cus_ada", b"new").await.unwrap();
    assert_eq!(keys.decrypt("acme", &new).await.unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(keys.decrypt("acme", &backup).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_writers_agree_on_one_key() {
    let env = std::sync::Arc::new(env().await);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let env = env.clone();
            tokio::spawn(async move {
                // Separate stores: no shared cache, as on separate Lambda instances.
                let keys = env.keys(Duration::from_secs(60));
                keys.encrypt("acme", "cus_race", format!("writer {i}").as_bytes()).await.unwrap()
            })
        })
        .collect();
    let mut sealed = Vec::new();
    for task in tasks {
        sealed.push(task.await.unwrap());
    }
    assert_eq!(env.items().await.len(), 1, "one key item");
    let reader = env.keys(Duration::ZERO);
    for (i, s) in sealed.iter().enumerate() {
        let plain = reader.decrypt("acme", s).await.unwrap().expect("every writer used the stored key");
        assert_eq!(plain, format!("writer {i}").into_bytes());
    }
}

#[tokio::test]
async fn ciphertexts_are_bound_to_tenant_subject_and_bytes() {
    let env = env().await;
    let keys = env.keys(Duration::from_secs(60));
    let sealed = keys.encrypt("acme", "cus_1", b"secret").await.unwrap();
    keys.encrypt("globex", "cus_1", b"theirs").await.unwrap();
    // Another tenant, with a subject of the same name or without: a mistake, not an erasure.
    assert!(matches!(keys.decrypt("globex", &sealed).await, Err(ProtectionError::Decrypt)));
    assert!(matches!(keys.decrypt("initech", &sealed).await, Err(ProtectionError::Decrypt)));
    assert!(matches!(
        env.keys(Duration::ZERO).decrypt("globex", &sealed).await,
        Err(ProtectionError::Decrypt)
    ));
    // A changed key id names no key of this subject: an error too.
    for byte in [2, 2 + 15] {
        let mut changed = sealed.clone();
        changed[byte] ^= 1;
        assert!(matches!(keys.decrypt("acme", &changed).await, Err(ProtectionError::Decrypt)), "byte {byte}");
    }
    let mut changed = sealed.clone();
    *changed.last_mut().unwrap() ^= 1;
    assert!(matches!(keys.decrypt("acme", &changed).await, Err(ProtectionError::Decrypt)));
    assert!(matches!(keys.decrypt("acme", b"v1 not ours").await, Err(ProtectionError::Format)));
    // The subject named in the header is authenticated: relabelling it fails.
    keys.encrypt("acme", "cus_2", b"x").await.unwrap();
    let mut relabelled = sealed.clone();
    let at = relabelled.windows(5).position(|w| w == b"cus_1").unwrap();
    relabelled[at + 4] = b'2';
    assert!(matches!(keys.decrypt("acme", &relabelled).await, Err(ProtectionError::Decrypt)));
    relabelled[at + 4] = b'9';
    assert!(
        matches!(keys.decrypt("acme", &relabelled).await, Err(ProtectionError::Decrypt)),
        "no such subject"
    );
    // The intact ciphertext still opens.
    assert_eq!(keys.decrypt("acme", &sealed).await.unwrap().as_deref(), Some(&b"secret"[..]));
}

#[tokio::test]
async fn the_stated_caveats_hold() {
    let env = env().await;
    let writer = env.keys(Duration::ZERO);
    let sealed = writer.encrypt("acme", "cus_1", b"Ada").await.unwrap();
    // Another process that read the key keeps it for its cache TTL after an erasure ...
    let cached = env.keys(Duration::from_secs(3600));
    assert!(cached.decrypt("acme", &sealed).await.unwrap().is_some());
    let saved = env.items().await.pop().unwrap();
    writer.erase("acme", "cus_1").await.unwrap();
    assert!(cached.decrypt("acme", &sealed).await.unwrap().is_some(), "a cached key outlives the erasure");
    assert_eq!(writer.decrypt("acme", &sealed).await.unwrap(), None);
    // ... and a restored copy of the key table brings the subject back: the table must be
    // kept out of backups.
    env.client.put_item().table_name(&env.table).set_item(Some(saved)).send().await.unwrap();
    assert!(writer.decrypt("acme", &sealed).await.unwrap().is_some());
}

#[tokio::test]
async fn a_key_past_its_expiry_counts_as_erased_and_bad_configs_are_refused() {
    let env = env().await;
    let keys = env.keys(Duration::ZERO);
    let sealed = keys.encrypt("acme", "cus_1", b"Ada").await.unwrap();
    let pk = env.items().await[0]["pk"].clone();
    env.client
        .update_item()
        .table_name(&env.table)
        .key("pk", pk)
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(keys.decrypt("acme", &sealed).await.unwrap(), None);
    // The expired item is still there (DynamoDB's TTL deletes it days later): a writer
    // replaces it with a new key, and the old data stays erased.
    assert_eq!(env.items().await.len(), 1);
    let new = keys.encrypt("acme", "cus_1", b"new").await.expect("a new key over the expired one");
    assert_eq!(keys.decrypt("acme", &new).await.unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(keys.decrypt("acme", &sealed).await.unwrap(), None);
    assert!(!env.items().await[0].contains_key("expires_at"), "the new key has no expiry");
    assert!(SubjectKeys::builder().client(env.client.clone()).build().is_err(), "no kms");
    let no_client = SubjectKeys::builder()
        .kms(AwsKmsClient::endpoint(&env.kms.uri(), KMS_REGION).unwrap(), "alias/x")
        .build();
    assert!(no_client.is_err());
    assert!(keys.encrypt("acme", "", b"x").await.is_err(), "an empty subject");
}
