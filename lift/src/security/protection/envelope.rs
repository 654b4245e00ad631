//! AES-256-GCM envelope encryption with KMS data keys, bound to the tenant.
//!
//! Ciphertext format `v1`: `b"v1" | key blob length (u16 BE) | key blob | nonce (12) | ct`.
//! The tenant is in the KMS encryption context (`{"tenant": ...}`) and in the AAD, so a
//! ciphertext of one tenant never decrypts as another's.
//!
//! The HTTP client ([`HttpKmsClient`]) speaks AWS JSON 1.1 to a local endpoint (the
//! harness's mock, `AWS_ENDPOINT_URL_KMS`) and does **not** sign requests: real AWS KMS
//! needs SigV4, which is not done here; implement [`KmsClient`] over `aws-sdk-kms` there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::RngCore;
use serde_json::{json, Value};

use super::ProtectionError;

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
}

/// KMS over HTTP (AWS JSON 1.1, `X-Amz-Target: TrentService.*`), unsigned: for local
/// endpoints only (real AWS needs SigV4, not implemented).
#[derive(Clone)]
pub struct HttpKmsClient {
    endpoint: http::Uri,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for HttpKmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpKmsClient").field("endpoint", &self.endpoint).finish()
    }
}

impl HttpKmsClient {
    /// A client for the endpoint.
    pub fn new(endpoint: &str) -> Result<Self, ProtectionError> {
        let endpoint =
            endpoint.parse().map_err(|_| ProtectionError::Config(format!("bad KMS endpoint {endpoint}")))?;
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Ok(Self { endpoint, client })
    }

    /// A client for `AWS_ENDPOINT_URL_KMS`.
    pub fn from_env() -> Result<Self, ProtectionError> {
        let url = std::env::var("AWS_ENDPOINT_URL_KMS")
            .map_err(|_| ProtectionError::Config("AWS_ENDPOINT_URL_KMS is not set".into()))?;
        Self::new(&url)
    }

    async fn call(&self, op: &str, body: Value) -> Result<Value, ProtectionError> {
        let kms = |reason: String| ProtectionError::Kms(reason);
        let req = http::Request::post(self.endpoint.clone())
            .header("x-amz-target", format!("TrentService.{op}"))
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| kms(e.to_string()))?;
        let res = tokio::time::timeout(Duration::from_secs(5), self.client.request(req))
            .await
            .map_err(|_| kms(format!("{op} timed out")))?
            .map_err(|e| kms(format!("{op}: {e}")))?;
        let status = res.status();
        let bytes = Limited::new(res.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| kms(format!("{op}: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| kms(format!("{op}: invalid JSON")))?;
        if !status.is_success() {
            let kind = value.get("__type").and_then(Value::as_str).unwrap_or("unknown").to_owned();
            return Err(kms(format!("{op} failed: {kind}")));
        }
        Ok(value)
    }
}

fn context_json(context: &[(&str, &str)]) -> Value {
    Value::Object(context.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect())
}

fn b64_field(value: &Value, field: &str) -> Result<Vec<u8>, ProtectionError> {
    let text = value
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ProtectionError::Kms(format!("no {field}")))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ProtectionError::Kms(format!("bad {field}")))
}

fn key32(bytes: Vec<u8>) -> Result<[u8; 32], ProtectionError> {
    bytes.try_into().map_err(|_| ProtectionError::Kms("data key is not 32 bytes".into()))
}

impl KmsClient for HttpKmsClient {
    fn generate_data_key<'a>(
        &'a self,
        key_id: &'a str,
        context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<DataKey, ProtectionError>> {
        Box::pin(async move {
            let body =
                json!({ "KeyId": key_id, "KeySpec": "AES_256", "EncryptionContext": context_json(context) });
            let res = self.call("GenerateDataKey", body).await?;
            Ok(DataKey {
                plaintext: key32(b64_field(&res, "Plaintext")?)?,
                blob: b64_field(&res, "CiphertextBlob")?,
            })
        })
    }

    fn decrypt<'a>(
        &'a self,
        blob: &'a [u8],
        context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<[u8; 32], ProtectionError>> {
        Box::pin(async move {
            let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
            let body = json!({ "CiphertextBlob": b64, "EncryptionContext": context_json(context) });
            let res = self.call("Decrypt", body).await?;
            key32(b64_field(&res, "Plaintext")?)
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
/// use lift::security::protection::{Envelope, HttpKmsClient};
/// let envelope = Envelope::new(HttpKmsClient::from_env()?, "alias/lift-default");
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
