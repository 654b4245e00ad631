//! What is stored: ciphertext bound to its tenant and record, expiry per class, and erasure
//! (crypto-shredding) only where retention allows it.

mod support;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use health_records::Retention;
use http::{Method, StatusCode};
use support::{env, env_with, item_text, patient_id, text, Caller, Env, CLINICIAN, OFFICER};

const NOTES: &str = "anxious about the biopsy result";

async fn seeded(env: &Env, tenant: &str) -> String {
    let id = patient_id();
    let patient = serde_json::json!({ "id": id, "name": "Mary Seacole", "date_of_birth": "1805-11-23" });
    assert_eq!(env.register(tenant, patient).await.status(), StatusCode::CREATED);
    let encounter = serde_json::json!({ "diagnoses": ["C50.911"], "notes": NOTES });
    assert_eq!(env.encounter(tenant, &id, encounter).await.status(), StatusCode::CREATED);
    id
}

#[tokio::test]
async fn stored_items_hold_identifiers_in_clear_and_phi_only_as_ciphertext() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    let items = env.scan(&env.table).await;
    assert_eq!(items.len(), 2);
    for item in &items {
        let text = item_text(item);
        for phi in ["Mary Seacole", "1805-11-23", "C50.911", NOTES] {
            assert!(!text.contains(phi), "{phi} stored in clear: {text}");
        }
        assert!(
            matches!(item.get("phi"), Some(AttributeValue::B(b)) if b.as_ref().starts_with(b"s1")),
            "{text}"
        );
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["created_at", "expires_at", "id", "kind", "patient_id", "phi", "pk", "sk", "tenant"]
        );
        assert_eq!(item["patient_id"], AttributeValue::S(id.clone()));
    }
    // The patient's key is wrapped by KMS with the tenant in the encryption context.
    let calls = env.kms.calls_to("GenerateDataKey");
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|c| c.body["EncryptionContext"]["tenant"] == "clinic"), "{:?}", calls[0].body);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_record_or_tenant_is_refused_not_disclosed() {
    let env = env().await;
    let a = seeded(&env, "clinic").await;
    let b = seeded(&env, "clinic").await;
    let items = env.scan(&env.table).await;
    let find = |patient: &str, sk: &str| {
        items
            .iter()
            .find(|i| {
                i["patient_id"] == AttributeValue::S(patient.to_owned())
                    && i["sk"] == AttributeValue::S(sk.to_owned())
            })
            .cloned()
            .unwrap()
    };
    // B's demographics overwritten by A's sealed ones (same patient subject is not enough:
    // the ciphertext is A's, sealed under A's key and naming A's record).
    let mut moved = find(&b, "PATIENT");
    moved.insert("phi".into(), find(&a, "PATIENT")["phi"].clone());
    env.client.put_item().table_name(&env.table).set_item(Some(moved)).send().await.unwrap();
    let res = env.read("clinic", CLINICIAN, &b, &[]).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!text(&res).contains("Mary"), "{}", text(&res));
    // A's encounter copied whole under another tenant: that tenant cannot open it.
    let mut copied = items
        .iter()
        .find(|i| {
            i["patient_id"] == AttributeValue::S(a.clone())
                && i["kind"] == AttributeValue::S("encounter".into())
        })
        .cloned()
        .unwrap();
    copied.insert("pk".into(), AttributeValue::S(health_records::store::record_pk("other-clinic", &a)));
    copied.insert("tenant".into(), AttributeValue::S("other-clinic".into()));
    env.client.put_item().table_name(&env.table).set_item(Some(copied)).send().await.unwrap();
    let res = env.read("other-clinic", CLINICIAN, &a, &[]).await;
    assert!(res.status().is_server_error() || res.status() == StatusCode::NOT_FOUND, "{}", res.status());
    assert!(!text(&res).contains(NOTES) && !text(&res).contains("C50"), "{}", text(&res));
}

#[tokio::test]
async fn each_class_expires_by_its_own_retention() {
    let retention = Retention {
        demographics: Duration::from_secs(86_400),
        encounters: Duration::from_secs(7 * 86_400),
        observations: Duration::from_secs(30 * 86_400),
    };
    let env = env_with(retention).await;
    let id = seeded(&env, "clinic").await;
    let observation = serde_json::json!({ "code": "2345-7", "value": "5.4", "unit": "mmol/L" });
    let uri = format!("/patients/{id}/observations");
    assert_eq!(
        env.send(Method::POST, &uri, Some(("clinic", CLINICIAN)), Some(observation), &[]).await.status(),
        StatusCode::CREATED
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for item in env.scan(&env.table).await {
        let kind = item["kind"].as_s().unwrap().clone();
        let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        let ttl = match kind.as_str() {
            "patient" => retention.demographics,
            "encounter" => retention.encounters,
            "observation" => retention.observations,
            other => panic!("unexpected kind {other}"),
        };
        let expected = now + ttl.as_secs();
        assert!(expires.abs_diff(expected) <= 60, "{kind}: expires {expires}, expected about {expected}");
    }
}

#[tokio::test]
async fn erasure_is_refused_while_clinical_entries_are_retained() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    let uri = format!("/patients/{id}");
    // Only a privacy officer may ask.
    assert_eq!(
        env.send(Method::DELETE, &uri, Some(("clinic", CLINICIAN)), None, &[]).await.status(),
        StatusCode::FORBIDDEN
    );
    let res = env.send(Method::DELETE, &uri, Some(("clinic", OFFICER)), None, &[]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "{}", text(&res));
    assert!(text(&res).contains("under retention until"), "{}", text(&res));
    assert_eq!(env.scan(&env.table).await.len(), 2, "nothing was erased");
    assert!(text(&env.read("clinic", CLINICIAN, &id, &[]).await).contains(NOTES));
}

#[tokio::test]
async fn erasure_past_retention_shreds_every_copy() {
    let retention =
        Retention { encounters: Duration::ZERO, observations: Duration::ZERO, ..Retention::default() };
    let env = env_with(retention).await;
    let id = seeded(&env, "clinic").await;
    let kept = env.scan(&env.table).await; // a backup taken before the erasure
    assert_eq!(kept.len(), 2, "the copy holds the patient and the encounter");
    let res =
        env.send(Method::DELETE, &format!("/patients/{id}"), Some(("clinic", OFFICER)), None, &[]).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    assert_eq!(support::json(&res)["items_erased"], 2);
    assert!(env.scan(&env.table).await.is_empty());
    assert_eq!(env.read("clinic", CLINICIAN, &id, &[]).await.status(), StatusCode::NOT_FOUND);
    // The copy kept elsewhere no longer opens: its key is gone (another process's keys, no cache).
    let keys = support::keys(&env.client, &env.keys_table, &env.kms, false);
    for item in kept {
        let sealed = item["phi"].as_b().unwrap().as_ref().to_vec();
        assert_eq!(keys.decrypt("clinic", &sealed).await.unwrap(), None, "an erased record still opens");
    }
    // The patient's own disclosures stay in the audit trail (HIPAA keeps those six years).
    assert!(env.audit("clinic").await.iter().any(|e| e.action == "records.erase"));
    let res = env
        .send(
            Method::GET,
            &format!("/patients/{id}/records"),
            Some(("clinic", Caller::Patient(&id))),
            None,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// KMS whose `Decrypt` answers are held, once armed, until the test lets one go: a key read
/// still under way.
#[derive(Clone)]
struct HeldKms {
    inner: std::sync::Arc<lift::security::protection::AwsKmsClient>,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reached: std::sync::Arc<tokio::sync::Notify>,
    release: std::sync::Arc<tokio::sync::Semaphore>,
}

type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl lift::security::protection::KmsClient for HeldKms {
    fn generate_data_key<'a>(
        &'a self,
        key_id: &'a str,
        context: &'a [(&'a str, &'a str)],
    ) -> Pending<'a, Result<lift::security::protection::DataKey, lift::security::protection::ProtectionError>>
    {
        self.inner.generate_data_key(key_id, context)
    }

    fn decrypt<'a>(
        &'a self,
        blob: &'a [u8],
        context: &'a [(&'a str, &'a str)],
    ) -> Pending<'a, Result<[u8; 32], lift::security::protection::ProtectionError>> {
        Box::pin(async move {
            let key = self.inner.decrypt(blob, context).await;
            if self.armed.load(std::sync::atomic::Ordering::SeqCst) {
                self.reached.notify_one();
                self.release.acquire().await.expect("open").forget();
            }
            key
        })
    }
}

/// An erasure while this process is reading the subject's key: the read, answered after
/// the erasure, must not leave the erased key in the cache, or this process would open the
/// subject's data for another minute after `erase` returned.
#[tokio::test]
async fn a_key_read_while_its_subject_is_erased_is_not_cached() {
    use lift::security::protection::{AwsKmsClient, SubjectKeys};

    let env = env().await;
    let writer = support::keys(&env.client, &env.keys_table, &env.kms, false);
    let sealed = writer.encrypt("clinic", "p-race", b"Mary Seacole").await.unwrap();
    let kms = HeldKms {
        inner: std::sync::Arc::new(
            AwsKmsClient::endpoint(&env.kms.uri(), support::KMS_REGION).expect("kms client"),
        ),
        armed: Default::default(),
        reached: Default::default(),
        release: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
    };
    let keys = std::sync::Arc::new(
        SubjectKeys::builder()
            .client(env.client.clone())
            .table(&env.keys_table)
            .kms(kms.clone(), lift_harness::aws::DEFAULT_KEY_ALIAS)
            .build()
            .unwrap(),
    );
    kms.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let reading = tokio::spawn({
        let (keys, sealed) = (keys.clone(), sealed.clone());
        async move { keys.decrypt("clinic", &sealed).await }
    });
    kms.reached.notified().await; // the key item was read and KMS answered; not cached yet
    assert!(keys.erase("clinic", "p-race").await.unwrap(), "there was a key to erase");
    kms.armed.store(false, std::sync::atomic::Ordering::SeqCst);
    kms.release.add_permits(1);
    let _in_flight = reading.await.unwrap().unwrap(); // began before the erasure
    assert_eq!(keys.decrypt("clinic", &sealed).await.unwrap(), None, "the erased key was cached");
    // Keys read with no erasure under way are cached as before: one KMS call, then none.
    let other = writer.encrypt("clinic", "p-other", b"Florence").await.unwrap();
    assert_eq!(keys.decrypt("clinic", &other).await.unwrap().as_deref(), Some(&b"Florence"[..]));
    kms.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let cached = tokio::time::timeout(Duration::from_secs(5), keys.decrypt("clinic", &other)).await;
    assert!(cached.is_ok_and(|d| d.unwrap().is_some()), "a cached key needs no KMS call");
}
