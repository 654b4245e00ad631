//! AES-256-GCM envelope encryption with KMS data keys, bound to the tenant.
//!
//! Ciphertext format `v1`: `b"v1" | key blob length (u16 BE) | key blob | nonce (12) | ct`.
//! The tenant is in the KMS encryption context (`{"tenant": ...}`) and in the AAD, so a
//! ciphertext of one tenant never decrypts as another's.
//!
//! [`AwsKmsClient`] calls KMS through `aws-sdk-kms`: requests are signed (SigV4) and go to
//! AWS's own endpoint, or to the one `AWS_ENDPOINT_URL_KMS` names (the harness's mock in
//! tests), as with any AWS SDK.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use futures_util::future::BoxFuture;
use rand::RngCore;

use super::ProtectionError;
use crate::aws::ServiceEndpoint;
use crate::config::Env;

/// A plaintext data key and its KMS-encrypted blob.
#[derive(Clone)]
pub struct DataKey {
    /// The AES-256 key.
    pub plaintext: [u8; 32],
    /// The key encrypted by KMS.
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey").field("blob_len", &self.blob.len()).finish()
    }
}

/// The KMS operations envelope encryption needs.
pub trait KmsClient: Send + Sync + 'static {
    /// `GenerateDataKey` (AES_256) under `key_id` with the encryption context.
    fn generate_data_key<'a>(
        &'a self,
        key_id: &'a str,
        context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<DataKey, ProtectionError>>;

    /// `Decrypt` of a data key blob with the encryption context.
    fn decrypt<'a>(
        &'a self,
        blob: &'a [u8],
        context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<[u8; 32], ProtectionError>>;

    /// `Encrypt` of a small secret (at most 4 KiB) under `key_id` with the encryption
    /// context, returning the ciphertext blob. Clients that only wrap data keys may leave
    /// it out: the default refuses.
    fn encrypt<'a>(
        &'a self,
        key_id: &'a str,
        plaintext: &'a [u8],
        context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<Vec<u8>, ProtectionError>> {
        let _ = (key_id, plaintext, context);
        Box::pin(async { Err(ProtectionError::Kms("this kms client does not encrypt".into())) })
    }
}

/// How long one KMS operation may take by default, retries included.
pub const DEFAULT_KMS_TIMEOUT: Duration = Duration::from_secs(5);

/// KMS through `aws-sdk-kms`: signed requests, the SDK's standard retries (3 attempts with
/// backoff) and [`DEFAULT_KMS_TIMEOUT`] per operation.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), lift::security::protection::ProtectionError> {
/// use lift::security::protection::{AwsKmsClient, Envelope};
///
/// // AWS's endpoint for AWS_REGION, or AWS_ENDPOINT_URL_KMS when set.
/// let kms = AwsKmsClient::from_env()?;
/// let envelope = Envelope::new(kms, "alias/lift-default");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AwsKmsClient {
    client: aws_sdk_kms::Client,
}

impl AwsKmsClient {
    /// A client over an SDK client the caller configured.
    pub fn new(client: aws_sdk_kms::Client) -> Self {
        Self { client }
    }

    /// A client of KMS at `endpoint` (a local endpoint such as the harness's mock, or a
    /// specific AWS one) in `region`, with credentials from [`crate::aws::credentials_for`].
    ///
    /// # Errors
    /// [`ProtectionError::Config`] when `endpoint` is not an http(s) URL.
    pub fn endpoint(endpoint: &str, region: &str) -> Result<Self, ProtectionError> {
        let lookup = |name: &str| match name {
            "AWS_ENDPOINT_URL_KMS" => Some(endpoint.to_owned()),
            "AWS_REGION" => Some(region.to_owned()),
            _ => None,
        };
        Self::from_env_vars(lookup)
    }

    /// A client configured as the AWS SDKs are: `AWS_ENDPOINT_URL_KMS` (else
    /// `AWS_ENDPOINT_URL`, else AWS's own endpoint) and `AWS_REGION`; see
    /// [`ServiceEndpoint::from_env`].
    ///
    /// # Errors
    /// [`ProtectionError::Config`] for an endpoint that is not an http(s) URL, or AWS's own
    /// endpoint without a region.
    pub fn from_env() -> Result<Self, ProtectionError> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ProtectionError> {
        let endpoint = ServiceEndpoint::from_env(&Env::from_lookup(lookup), "KMS")
            .map_err(|e| ProtectionError::Config(e.reason().to_owned()))?;
        let sdk = endpoint.sdk_config(DEFAULT_KMS_TIMEOUT, aws_config::retry::RetryConfig::standard());
        Ok(Self::new(aws_sdk_kms::Client::new(&sdk)))
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_kms::Client {
        &self.client
    }
}

/// A KMS failure as a [`ProtectionError`]: the error code when KMS answered (never the
/// message, which may quote the request), else the transport error.
fn kms_error<E, R>(op: &str, err: SdkError<E, R>) -> ProtectionError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.code() {
        Some(code) => ProtectionError::Kms(format!("{op} failed: {code}")),
        None => ProtectionError::Kms(format!("{op}: {}", DisplayErrorContext(&err))),
    }
}

fn context_map(context: &[(&str, &str)]) -> HashMap<String, String> {
    context.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn key32(bytes: Option<Blob>, op: &str) -> Result<[u8; 32], ProtectionError> {
    let bytes = bytes.ok_or_else(|| ProtectionError::Kms(format!("{op}: no plaintext")))?;
    bytes.into_inner().try_into().map_err(|_| ProtectionError::Kms("data key is not 32 bytes".into()))
}

impl KmsClient for AwsKmsClient {
    fn generate_data_key<'a>(
        &'a self,
        key_id: &'a str,
        context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<DataKey, ProtectionError>> {
        Box::pin(async move {
            let op = "GenerateDataKey";
            let out = self
                .client
                .generate_data_key()
                .key_id(key_id)
                .key_spec(DataKeySpec::Aes256)
                .set_encryption_context(Some(context_map(context)))
                .send()
                .await
                .map_err(|e| kms_error(op, e))?;
            let blob = out.ciphertext_blob.ok_or_else(|| ProtectionError::Kms(format!("{op}: no blob")))?;
            Ok(DataKey { plaintext: key32(out.plaintext, op)?, blob: blob.into_inner() })
        })
    }

    fn decrypt<'a>(
        &'a self,
        blob: &'a [u8],
        context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<[u8; 32], ProtectionError>> {
        Box::pin(async move {
            let out = self
                .client
                .decrypt()
                .ciphertext_blob(Blob::new(blob))
                .set_encryption_context(Some(context_map(context)))
                .send()
                .await
                .map_err(|e| kms_error("Decrypt", e))?;
            key32(out.plaintext, "Decrypt")
        })
    }

    fn encrypt<'a>(
        &'a self,
        key_id: &'a str,
        plaintext: &'a [u8],
        context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<Vec<u8>, ProtectionError>> {
        Box::pin(async move {
            let out = self
                .client
                .encrypt()
                .key_id(key_id)
                .plaintext(Blob::new(plaintext))
                .set_encryption_context(Some(context_map(context)))
                .send()
                .await
                .map_err(|e| kms_error("Encrypt", e))?;
            let blob = out.ciphertext_blob.ok_or_else(|| ProtectionError::Kms("Encrypt: no blob".into()))?;
            Ok(blob.into_inner())
        })
    }
}

/// Bounds on how long and how often a data key is reused.
#[derive(Debug, Clone, Copy)]
pub struct DataKeyCache {
    /// The longest a data key is used for.
    pub max_age: Duration,
    /// The most messages a data key encrypts.
    pub max_uses: u64,
}

impl Default for DataKeyCache {
    /// Five minutes or 10 000 messages, whichever comes first.
    fn default() -> Self {
        Self { max_age: Duration::from_secs(300), max_uses: 10_000 }
    }
}

struct Cached {
    key: DataKey,
    born: Instant,
    uses: u64,
}

/// Envelope encryption: AES-256-GCM under cached KMS data keys, one per tenant.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), lift::security::protection::ProtectionError> {
/// use lift::security::protection::{AwsKmsClient, Envelope};
/// let envelope = Envelope::new(AwsKmsClient::from_env()?, "alias/lift-default");
/// let ct = envelope.encrypt("tenant-a", b"4111111111111111").await?;
/// assert_eq!(envelope.decrypt("tenant-a", &ct).await?, b"4111111111111111");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Envelope {
    kms: Arc<dyn KmsClient>,
    key_id: String,
    cache: DataKeyCache,
    encrypt_keys: Arc<Mutex<HashMap<String, Cached>>>,
    decrypt_keys: Arc<Mutex<HashMap<Vec<u8>, OpenedKey>>>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope").field("key_id", &self.key_id).field("cache", &self.cache).finish()
    }
}

/// A decrypted data key: its tenant, the key and when it was decrypted.
type OpenedKey = (String, [u8; 32], Instant);

const VERSION: &[u8; 2] = b"v1";
const NONCE_LEN: usize = 12;
/// Decrypted data keys kept at most (bounded memory).
const MAX_DECRYPT_KEYS: usize = 1024;

pub(crate) fn aad(tenant: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + tenant.len() + 16);
    aad.extend_from_slice(header);
    aad.extend_from_slice(b"|tenant=");
    aad.extend_from_slice(tenant.as_bytes());
    aad
}

impl Envelope {
    /// Envelope encryption under the KMS key `key_id`, with the default cache bounds.
    pub fn new(kms: impl KmsClient, key_id: impl Into<String>) -> Self {
        Self {
            kms: Arc::new(kms),
            key_id: key_id.into(),
            cache: DataKeyCache::default(),
            encrypt_keys: Arc::default(),
            decrypt_keys: Arc::default(),
        }
    }

    /// Sets the data key cache bounds.
    pub fn cache(mut self, cache: DataKeyCache) -> Self {
        self.cache = cache;
        self
    }

    async fn data_key(&self, tenant: &str) -> Result<DataKey, ProtectionError> {
        {
            let mut keys = self.encrypt_keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = keys.get_mut(tenant) {
                if c.born.elapsed() < self.cache.max_age && c.uses < self.cache.max_uses {
                    c.uses += 1;
                    return Ok(c.key.clone());
                }
                keys.remove(tenant);
            }
        }
        let key = self.kms.generate_data_key(&self.key_id, &[("tenant", tenant)]).await?;
        let mut keys = self.encrypt_keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.insert(tenant.to_owned(), Cached { key: key.clone(), born: Instant::now(), uses: 1 });
        Ok(key)
    }

    /// Encrypts for a tenant (`v1` format).
    pub async fn encrypt(&self, tenant: &str, plaintext: &[u8]) -> Result<Vec<u8>, ProtectionError> {
        let key = self.data_key(tenant).await?;
        seal(&key, tenant, plaintext)
    }

    /// Decrypts a tenant's ciphertext; fails for another tenant or any changed byte.
    pub async fn decrypt(&self, tenant: &str, ciphertext: &[u8]) -> Result<Vec<u8>, ProtectionError> {
        let (blob, nonce, ct, header) = split(ciphertext)?;
        let cached = {
            let keys = self.decrypt_keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.get(blob)
                .filter(|(t, _, born)| t == tenant && born.elapsed() < self.cache.max_age)
                .map(|(_, k, _)| *k)
        };
        let key = match cached {
            Some(k) => k,
            None => {
                let k = self
                    .kms
                    .decrypt(blob, &[("tenant", tenant)])
                    .await
                    .map_err(|_| ProtectionError::Decrypt)?;
                let mut keys = self.decrypt_keys.lock().unwrap_or_else(|e| e.into_inner());
                if keys.len() >= MAX_DECRYPT_KEYS {
                    keys.clear();
                }
                keys.insert(blob.to_vec(), (tenant.to_owned(), k, Instant::now()));
                k
            }
        };
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        let aad = aad(tenant, header);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| ProtectionError::Decrypt)
    }
}

/// Seals with a data key in the `v1` format (public for benches and custom key sources).
pub fn seal(key: &DataKey, tenant: &str, plaintext: &[u8]) -> Result<Vec<u8>, ProtectionError> {
    let blob_len =
        u16::try_from(key.blob.len()).map_err(|_| ProtectionError::Kms("key blob too long".into()))?;
    let mut out = Vec::with_capacity(4 + key.blob.len() + NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(VERSION);
    out.extend_from_slice(&blob_len.to_be_bytes());
    out.extend_from_slice(&key.blob);
    seal_after_header(out, &key.plaintext, tenant, plaintext)
}

/// Appends a fresh nonce and the AES-256-GCM ciphertext of `plaintext` to `out`, whose
/// bytes so far are the format's header; the header and the tenant are the additional
/// data, so neither can be changed or swapped without the tag failing.
pub(crate) fn seal_after_header(
    mut out: Vec<u8>,
    key: &[u8; 32],
    tenant: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, ProtectionError> {
    let header_len = out.len();
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    out.extend_from_slice(&nonce);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let aad = aad(tenant, &out[..header_len]);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
        .map_err(|_| ProtectionError::Encrypt)?;
    out.extend_from_slice(&ct);
    Ok(out)
}

type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a [u8]);

fn split(ct: &[u8]) -> Result<Parts<'_>, ProtectionError> {
    if ct.len() < 4 || &ct[..2] != VERSION {
        return Err(ProtectionError::Format);
    }
    let blob_len = usize::from(u16::from_be_bytes([ct[2], ct[3]]));
    let header_end = 4 + blob_len;
    if ct.len() < header_end + NONCE_LEN + 16 {
        return Err(ProtectionError::Format);
    }
    let nonce_end = header_end + NONCE_LEN;
    Ok((&ct[4..header_end], &ct[header_end..nonce_end], &ct[nonce_end..], &ct[..header_end]))
}
