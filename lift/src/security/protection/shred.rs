//! Crypto-shredding: personal data encrypted under a data key per data subject, whose only
//! wrapped copy lives in one table, so that deleting that item erases every copy of the
//! data at once: in the tables, in records that expire later, in backups and exports.
//!
//! # Why not [`Envelope`](super::Envelope)
//!
//! An envelope `v1` ciphertext carries its KMS-wrapped data key, and KMS unwraps a blob
//! for as long as the master key lives: deleting anything else never makes it unreadable.
//! Here a ciphertext names its key (subject and a random key id) but does not carry it.
//! The wrapped key is in the subject-key table
//! ([`tables::subject_keys`](crate::store::tables::subject_keys)) only, one item per
//! tenant and subject:
//!
//! | attribute | |
//! |---|---|
//! | `pk` (S) | `SUBJECT#<tenant length>:<tenant>#<subject>` |
//! | `key_id` (S) | 32 hex digits, new per key: a subject erased and seen again gets a new key |
//! | `blob` (B) | the data key wrapped by KMS (`GenerateDataKey`, AES_256) |
//! | `created_at` (N) | epoch seconds |
//! | `expires_at` (N, optional) | set by whoever wants the key to end by retention; a key past it counts as erased |
//!
//! The first writer creates the key with a conditional put (`attribute_not_exists(pk)`,
//! or the item there is past its `expires_at` and waits for DynamoDB's TTL to delete it);
//! a writer that loses the race reads and uses the winner's key, so two writers always
//! agree on one key. [`SubjectKeys::erase`] deletes the item and this process's cached
//! copy; from then on [`SubjectKeys::decrypt`] answers `Ok(None)` for every ciphertext
//! under it, wherever that ciphertext is kept.
//!
//! A key id is 8 random bytes and 8 bytes of a SHA-256 hash of them, the tenant and the
//! subject. The hash is no secret: it lets [`SubjectKeys::decrypt`] tell a ciphertext
//! whose key is gone (erased: `Ok(None)`) from one read under the wrong tenant, with a
//! relabelled subject or a changed key id (an error), without the key. Keys made before
//! key ids carried the hash (all 16 bytes random) still open their ciphertexts while they
//! live; once such a key is erased, its ciphertexts answer an error, not `Ok(None)`.
//!
//! Ciphertext format `s1`: `b"s1" | key id (16) | subject length (u16 BE) | subject |
//! nonce (12) | AES-256-GCM ciphertext and tag`. The associated data is the header (up to
//! the nonce) and the tenant, so a ciphertext never opens as another tenant's or another
//! subject's. The KMS encryption context is the tenant, the purpose and the key id (not
//! the subject, which stays out of KMS's logs).
//!
//! # What it does not cover
//!
//! - **Backups of the subject-key table itself.** A backup or export of this table holds
//!   the wrapped keys, and KMS would unwrap them: restoring it un-erases everyone erased
//!   since. Exclude the table from backups (or give them their own short retention, and
//!   re-apply erasures after any restore), and do not stream it anywhere.
//! - **Other processes' caches.** A plaintext key is cached in process for
//!   [`SubjectKeysBuilder::cache_ttl`] (60 s by default); another instance that read the
//!   key before the erasure can decrypt until its cached copy ages out, and what it
//!   encrypts for that subject meanwhile is sealed under the erased key (unreadable at
//!   once). Set the TTL to zero where erasure must take effect everywhere at once.
//! - **Plaintext copies.** Data is only as erasable as it is encrypted: logs, metrics and
//!   anything written in clear are out of reach.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run(client: aws_sdk_dynamodb::Client) -> Result<(), lift::security::protection::ProtectionError> {
//! use lift::security::protection::{AwsKmsClient, SubjectKeys};
//!
//! let keys = SubjectKeys::builder()
//!     .client(client)
//!     .table("lift-subject-keys")
//!     .kms(AwsKmsClient::from_env()?, "alias/lift-default")
//!     .build()?;
//! let sealed = keys.encrypt("tenant-a", "cus_42", b"Ada Lovelace").await?;
//! assert_eq!(keys.decrypt("tenant-a", &sealed).await?.as_deref(), Some(&b"Ada Lovelace"[..]));
//! keys.erase("tenant-a", "cus_42").await?;
//! assert_eq!(keys.decrypt("tenant-a", &sealed).await?, None);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::envelope::{aad, seal_after_header, KmsClient};
use super::ProtectionError;

const VERSION: &[u8; 2] = b"s1";
const KEY_ID_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The longest subject accepted (it is part of a partition key and of every ciphertext).
pub const MAX_SUBJECT_LEN: usize = 512;
/// Plaintext keys cached at most per process (bounded memory).
const MAX_CACHED_KEYS: usize = 4096;
/// How long a plaintext key is reused without reading its item again, by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// A plaintext subject key, its id and when it was read.
#[derive(Clone, Copy)]
struct SubjectKey {
    id: [u8; KEY_ID_LEN],
    key: [u8; 32],
    read_at: Instant,
}

/// The keys this process read, and how many erasures it has made: a key read before an
/// erasure that ended meanwhile is not kept (see [`SubjectKeys::erase`]).
#[derive(Default)]
struct Cache {
    keys: HashMap<(String, String), SubjectKey>,
    erasures: u64,
}

/// Per-subject data keys in DynamoDB, wrapped by KMS, for crypto-shredding (see the
/// [module docs](self)).
#[derive(Clone)]
pub struct SubjectKeys {
    client: aws_sdk_dynamodb::Client,
    table: String,
    kms: Arc<dyn KmsClient>,
    kms_key_id: String,
    cache_ttl: Duration,
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKeys")
            .field("table", &self.table)
            .field("kms_key_id", &self.kms_key_id)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

/// Configures [`SubjectKeys`]: a DynamoDB client and a KMS client and key are required;
/// the table defaults to [`tables::subject_keys`](crate::store::tables::subject_keys)`().resolve_name()`.
#[derive(Default)]
#[must_use]
pub struct SubjectKeysBuilder {
    client: Option<aws_sdk_dynamodb::Client>,
    table: Option<String>,
    kms: Option<(Arc<dyn KmsClient>, String)>,
    cache_ttl: Option<Duration>,
}

impl std::fmt::Debug for SubjectKeysBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKeysBuilder").field("table", &self.table).finish_non_exhaustive()
    }
}

impl SubjectKeysBuilder {
    /// The DynamoDB client.
    pub fn client(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The physical name of the subject-key table.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// The KMS client and the master key (id, ARN or alias) that wraps subject keys.
    pub fn kms(mut self, kms: impl KmsClient, key_id: impl Into<String>) -> Self {
        self.kms = Some((Arc::new(kms), key_id.into()));
        self
    }

    /// How long a plaintext key is reused in this process before its item is read again
    /// (default 60 s; zero reads the table on every call). It bounds how long another
    /// process can still decrypt after an erasure.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<SubjectKeys, ProtectionError> {
        let client = self.client.ok_or_else(|| ProtectionError::Config("set a dynamodb client".into()))?;
        let (kms, kms_key_id) =
            self.kms.ok_or_else(|| ProtectionError::Config("set a kms client and key".into()))?;
        if kms_key_id.trim().is_empty() {
            return Err(ProtectionError::Config("the kms key id is empty".into()));
        }
        let table = self.table.unwrap_or_else(|| crate::store::tables::subject_keys().resolve_name());
        if table.trim().is_empty() {
            return Err(ProtectionError::Config("the subject key table name is empty".into()));
        }
        Ok(SubjectKeys {
            client,
            table,
            kms,
            kms_key_id,
            cache_ttl: self.cache_ttl.unwrap_or(DEFAULT_CACHE_TTL),
            cache: Arc::default(),
        })
    }
}

fn store_err<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> ProtectionError {
    ProtectionError::KeyStore(match err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch failure".to_owned(),
        _ => "request failed".to_owned(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; KEY_ID_LEN]> {
    let bytes = text.as_bytes();
    if bytes.len() != KEY_ID_LEN * 2 {
        return None;
    }
    let mut out = [0u8; KEY_ID_LEN];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = crate::hex::digit(pair[0])? << 4 | crate::hex::digit(pair[1])?;
    }
    Some(out)
}

/// The random half of a key id.
const KEY_ID_RANDOM: usize = KEY_ID_LEN / 2;

/// The hash half of a key id for its random half, a tenant and a subject.
fn key_id_binding(random: &[u8], tenant: &str, subject: &str) -> [u8; KEY_ID_LEN - KEY_ID_RANDOM] {
    let mut hash = Sha256::new();
    hash.update(b"lift subject key id");
    for part in [random, tenant.as_bytes(), subject.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let mut out = [0u8; KEY_ID_LEN - KEY_ID_RANDOM];
    out.copy_from_slice(&hash.finalize()[..KEY_ID_LEN - KEY_ID_RANDOM]);
    out
}

/// A new key id for a subject of a tenant.
fn new_key_id(tenant: &str, subject: &str) -> [u8; KEY_ID_LEN] {
    let mut id = [0u8; KEY_ID_LEN];
    rand::thread_rng().fill_bytes(&mut id[..KEY_ID_RANDOM]);
    let binding = key_id_binding(&id[..KEY_ID_RANDOM], tenant, subject);
    id[KEY_ID_RANDOM..].copy_from_slice(&binding);
    id
}

/// Whether `id` was made by [`new_key_id`] for this tenant and subject.
fn key_id_binds(id: &[u8; KEY_ID_LEN], tenant: &str, subject: &str) -> bool {
    key_id_binding(&id[..KEY_ID_RANDOM], tenant, subject) == id[KEY_ID_RANDOM..]
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The partition key of a subject's key: the tenant length-prefixed, so no two
/// (tenant, subject) pairs share one.
fn pk(tenant: &str, subject: &str) -> String {
    format!("SUBJECT#{}:{tenant}#{subject}", tenant.len())
}

fn check_subject(subject: &str) -> Result<(), ProtectionError> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN {
        return Err(ProtectionError::Config(format!("a subject must be 1 to {MAX_SUBJECT_LEN} bytes")));
    }
    Ok(())
}

/// The parts of an `s1` ciphertext.
struct Sealed<'a> {
    key_id: [u8; KEY_ID_LEN],
    subject: &'a str,
    header: &'a [u8],
    nonce: &'a [u8],
    ct: &'a [u8],
}

fn split(sealed: &[u8]) -> Result<Sealed<'_>, ProtectionError> {
    let fixed = 2 + KEY_ID_LEN + 2;
    if sealed.len() < fixed || &sealed[..2] != VERSION {
        return Err(ProtectionError::Format);
    }
    let mut key_id = [0u8; KEY_ID_LEN];
    key_id.copy_from_slice(&sealed[2..2 + KEY_ID_LEN]);
    let len = usize::from(u16::from_be_bytes([sealed[fixed - 2], sealed[fixed - 1]]));
    let header_end = fixed + len;
    if sealed.len() < header_end + NONCE_LEN + TAG_LEN {
        return Err(ProtectionError::Format);
    }
    let subject = std::str::from_utf8(&sealed[fixed..header_end]).map_err(|_| ProtectionError::Format)?;
    Ok(Sealed {
        key_id,
        subject,
        header: &sealed[..header_end],
        nonce: &sealed[header_end..header_end + NONCE_LEN],
        ct: &sealed[header_end + NONCE_LEN..],
    })
}

/// The subject an `s1` ciphertext is sealed for; `None` when it is not one.
///
/// # Examples
///
/// ```
/// assert_eq!(lift::security::protection::sealed_subject(b"plain text"), None);
/// ```
pub fn sealed_subject(sealed: &[u8]) -> Option<&str> {
    split(sealed).ok().map(|s| s.subject)
}

impl SubjectKeys {
    /// A builder.
    pub fn builder() -> SubjectKeysBuilder {
        SubjectKeysBuilder::default()
    }

    /// The physical table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn cached(&self, tenant: &str, subject: &str) -> Option<SubjectKey> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .keys
            .get(&(tenant.to_owned(), subject.to_owned()))
            .filter(|k| k.read_at.elapsed() < self.cache_ttl)
            .copied()
    }

    /// How many erasures this process has made: taken before a key is read or created, and
    /// given to [`remember`](Self::remember).
    fn erasures(&self) -> u64 {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).erasures
    }

    /// Caches `key`, unless an erasure ended since `erasures_before` was taken: a key read
    /// or created while a subject was being erased may be that subject's erased key, and
    /// cached it would open the subject's data after `erase` returned. Skipping costs the
    /// other subjects read meanwhile one more KMS call.
    fn remember(&self, tenant: &str, subject: &str, key: SubjectKey, erasures_before: u64) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.erasures != erasures_before {
            return;
        }
        if cache.keys.len() >= MAX_CACHED_KEYS {
            cache.keys.retain(|_, k| k.read_at.elapsed() < self.cache_ttl);
            if cache.keys.len() >= MAX_CACHED_KEYS {
                cache.keys.clear();
            }
        }
        cache.keys.insert((tenant.to_owned(), subject.to_owned()), key);
    }

    /// Drops the subject's cached key; `erased`: its key item is gone, so a key read or
    /// created before now is not cached afterwards.
    fn forget(&self, tenant: &str, subject: &str, erased: bool) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.keys.remove(&(tenant.to_owned(), subject.to_owned()));
        if erased {
            cache.erasures += 1;
        }
    }

    fn kms_context<'a>(tenant: &'a str, key_id: &'a str) -> [(&'a str, &'a str); 3] {
        [("tenant", tenant), ("purpose", "subject-key"), ("key_id", key_id)]
    }

    /// Reads and unwraps the subject's key; `None` when there is none (never created,
    /// erased, or past its `expires_at`).
    async fn read(&self, tenant: &str, subject: &str) -> Result<Option<SubjectKey>, ProtectionError> {
        let erasures = self.erasures();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk(tenant, subject)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err(&e))?;
        let Some(item) = out.item() else { return Ok(None) };
        let expired = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|at| at < now_secs());
        if expired {
            return Ok(None);
        }
        let key_id_hex = item.get("key_id").and_then(|v| v.as_s().ok()).ok_or(ProtectionError::Format)?;
        let id = unhex(key_id_hex).ok_or(ProtectionError::Format)?;
        let blob = item.get("blob").and_then(|v| v.as_b().ok()).ok_or(ProtectionError::Format)?;
        let key = self.kms.decrypt(blob.as_ref(), &Self::kms_context(tenant, key_id_hex)).await?;
        let key = SubjectKey { id, key, read_at: Instant::now() };
        self.remember(tenant, subject, key, erasures);
        Ok(Some(key))
    }

    /// The subject's key, created if it has none: the first conditional put wins.
    async fn key_for_writing(&self, tenant: &str, subject: &str) -> Result<SubjectKey, ProtectionError> {
        if let Some(key) = self.cached(tenant, subject) {
            return Ok(key);
        }
        if let Some(key) = self.read(tenant, subject).await? {
            return Ok(key);
        }
        let id = new_key_id(tenant, subject);
        let id_hex = hex(&id);
        let data_key =
            self.kms.generate_data_key(&self.kms_key_id, &Self::kms_context(tenant, &id_hex)).await?;
        let erasures = self.erasures();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk(tenant, subject)))
            .item("key_id", AttributeValue::S(id_hex))
            .item("blob", AttributeValue::B(Blob::new(data_key.blob.clone())))
            .item("created_at", AttributeValue::N(now_secs().to_string()))
            // An expired item counts as erased (see `read`) but stays until the TTL sweep
            // deletes it, up to days later: replace it rather than fail until then.
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now_secs().to_string()))
            .send()
            .await;
        match put {
            Ok(_) => {
                let key = SubjectKey { id, key: data_key.plaintext, read_at: Instant::now() };
                self.remember(tenant, subject, key, erasures);
                Ok(key)
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                // Another writer created it first: use theirs, so both agree on one key.
                self.read(tenant, subject)
                    .await?
                    .ok_or_else(|| ProtectionError::KeyStore("the subject key vanished while created".into()))
            }
            Err(err) => Err(store_err(&err)),
        }
    }

    /// Encrypts `plaintext` for a subject of a tenant, creating the subject's key on
    /// first use.
    pub async fn encrypt(
        &self,
        tenant: &str,
        subject: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ProtectionError> {
        check_subject(subject)?;
        let key = self.key_for_writing(tenant, subject).await?;
        let subject_len = u16::try_from(subject.len()).map_err(|_| ProtectionError::Encrypt)?;
        let mut out =
            Vec::with_capacity(4 + KEY_ID_LEN + subject.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&subject_len.to_be_bytes());
        out.extend_from_slice(subject.as_bytes());
        seal_after_header(out, &key.key, tenant, plaintext)
    }

    /// Decrypts a tenant's `s1` ciphertext: `Ok(None)` when its subject's key was erased
    /// (or replaced after an erasure, or is past its `expires_at`);
    /// [`ProtectionError::Decrypt`] when the bytes were changed, the subject relabelled or
    /// they belong to another tenant; [`ProtectionError::Format`] when they are not `s1`.
    pub async fn decrypt(&self, tenant: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>, ProtectionError> {
        let parts = split(sealed)?;
        let key = match self.cached(tenant, parts.subject).filter(|k| k.id == parts.key_id) {
            Some(key) => key,
            None => match self.read(tenant, parts.subject).await? {
                Some(key) if key.id == parts.key_id => key,
                // Absent, expired, or a newer key made after an erasure: erased, if the key
                // id was made for this tenant and subject; a mistake otherwise.
                _ if key_id_binds(&parts.key_id, tenant, parts.subject) => return Ok(None),
                _ => return Err(ProtectionError::Decrypt),
            },
        };
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.key));
        let aad = aad(tenant, parts.header);
        cipher
            .decrypt(Nonce::from_slice(parts.nonce), Payload { msg: parts.ct, aad: &aad })
            .map(Some)
            .map_err(|_| ProtectionError::Decrypt)
    }

    /// Erases a subject: deletes its key item and this process's cached copy, after which
    /// no ciphertext under it decrypts in this process, nor in any other that has not
    /// cached the key (see "Other processes' caches" above). A read of the key that was
    /// under way meanwhile does not cache it afterwards. Returns whether there was a key.
    pub async fn erase(&self, tenant: &str, subject: &str) -> Result<bool, ProtectionError> {
        check_subject(subject)?;
        self.forget(tenant, subject, false);
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk(tenant, subject)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_err(&e))?;
        // A read or write racing the erasure may have cached the key again meanwhile, and one
        // still under way must not cache it later.
        self.forget(tenant, subject, true);
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_of_different_pairs_differ() {
        assert_ne!(pk("ab", "c#d"), pk("ab#c", "d"));
        assert_ne!(pk("a", "b"), pk("b", "a"));
    }

    #[test]
    fn key_ids_bind_their_tenant_and_subject() {
        let id = new_key_id("acme", "cus_1");
        assert!(key_id_binds(&id, "acme", "cus_1"));
        assert_ne!(id, new_key_id("acme", "cus_1"), "random per key");
        assert!(!key_id_binds(&id, "globex", "cus_1"));
        assert!(!key_id_binds(&id, "acme", "cus_2"));
        assert!(!key_id_binds(&id, "acm", "ecus_1"), "parts cannot run together");
        for byte in [0, KEY_ID_LEN - 1] {
            let mut changed = id;
            changed[byte] ^= 1;
            assert!(!key_id_binds(&changed, "acme", "cus_1"), "byte {byte} changed");
        }
    }

    #[test]
    fn key_ids_round_trip_through_hex() {
        let id = [0x01, 0xab, 0xff, 0, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 0xfe];
        assert_eq!(unhex(&hex(&id)), Some(id));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(32)), None);
    }

    #[test]
    fn truncated_or_foreign_ciphertexts_are_format_errors() {
        assert!(matches!(split(b"v1abc"), Err(ProtectionError::Format)));
        let mut sealed = b"s1".to_vec();
        sealed.extend_from_slice(&[0u8; KEY_ID_LEN]);
        sealed.extend_from_slice(&5u16.to_be_bytes());
        sealed.extend_from_slice(b"cus_1");
        assert!(matches!(split(&sealed), Err(ProtectionError::Format)), "no nonce nor tag");
        sealed.extend_from_slice(&[0u8; NONCE_LEN + TAG_LEN]);
        assert_eq!(sealed_subject(&sealed), Some("cus_1"));
        sealed[2 + KEY_ID_LEN + 1] = 200;
        assert!(matches!(split(&sealed), Err(ProtectionError::Format)), "a length past the end");
    }
}
