//! KMS mock: `GenerateDataKey`, `Encrypt` and `Decrypt` over AWS JSON 1.1, with real
//! AES-256-GCM under a random master key per mock key.
//!
//! A ciphertext blob is `LKM1 | id length (1 byte) | key id | nonce (12) | sealed`, where
//! `sealed` is AES-256-GCM over the plaintext with, as associated data, the blob header
//! followed by the encryption context as a JSON object with sorted keys. Changing any
//! byte of the blob or any pair of the context makes decryption fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::{json, Value};
use wiremock::{Request, ResponseTemplate};

use super::endpoint::{endpoint_methods, signed_endpoint_methods, Endpoint, Service};
use super::fault::{lock, AwsError};
use super::{wire, MockError, ACCOUNT_ID};

/// Alias of the key every KMS mock starts with.
pub const DEFAULT_KEY_ALIAS: &str = "alias/lift-default";

const MAGIC: &[u8; 4] = b"LKM1";
const NONCE_LEN: usize = 12;
const MAX_PLAINTEXT: usize = 4096;

/// An encryption context: string pairs bound to a ciphertext.
pub type EncryptionContext = BTreeMap<String, String>;

/// A mocked KMS endpoint.
#[derive(Debug)]
pub struct KmsMock {
    endpoint: Endpoint,
    keys: Arc<KeyRing>,
    default_key: KmsKey,
}

endpoint_methods!(KmsMock);
signed_endpoint_methods!(KmsMock);

/// A key of the KMS mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    /// Key id (a UUID, unless created with an explicit id).
    pub id: String,
    /// Key ARN, `arn:aws:kms:<region>:000000000000:key/<id>`.
    pub arn: String,
    /// Alias, `alias/<name>`, if the key has one.
    pub alias: Option<String>,
}

struct MasterKey {
    key: KmsKey,
    material: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("key", &self.key).finish()
    }
}

#[derive(Debug)]
struct KeyRing {
    region: String,
    keys: Mutex<Vec<MasterKey>>,
}

impl KmsMock {
    /// Starts a KMS mock for `region` holding one key, aliased [`DEFAULT_KEY_ALIAS`].
    pub async fn start(region: &str) -> Self {
        let keys = Arc::new(KeyRing { region: region.to_owned(), keys: Mutex::default() });
        let default_key = keys.insert(DEFAULT_KEY_ALIAS);
        let endpoint = Endpoint::start(keys.clone()).await;
        Self { endpoint, keys, default_key }
    }

    /// Creates a key with a random master key: `alias/<name>` gets a UUID id and that
    /// alias, anything else is taken as the key id.
    pub fn create_key(&self, alias_or_id: &str) -> Result<KmsKey, MockError> {
        if alias_or_id.is_empty() || alias_or_id.len() > 255 {
            return Err(MockError::InvalidKeyId(alias_or_id.to_owned()));
        }
        if self.keys.find(alias_or_id).is_some() {
            return Err(MockError::KeyExists(alias_or_id.to_owned()));
        }
        Ok(self.keys.insert(alias_or_id))
    }

    /// The key every mock starts with, aliased [`DEFAULT_KEY_ALIAS`].
    pub fn default_key(&self) -> KmsKey {
        self.default_key.clone()
    }

    /// The key that `id` names: a key id, key ARN, alias or alias ARN.
    pub fn key(&self, id: &str) -> Option<KmsKey> {
        self.keys.find(id)
    }

    /// Encrypts `plaintext` under key `key_id` as `Encrypt` does, returning the blob.
    pub fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, MockError> {
        let guard = lock(&self.keys.keys);
        let master = find(&guard, key_id, &self.keys.region)
            .ok_or_else(|| MockError::UnknownKey(key_id.to_owned()))?;
        Ok(seal(master, plaintext, context))
    }

    /// Decrypts a blob as `Decrypt` does, for checking what a service stored.
    pub fn decrypt(&self, blob: &[u8], context: &EncryptionContext) -> Result<(KmsKey, Vec<u8>), MockError> {
        self.keys.open(blob, context).map_err(|_| MockError::InvalidCiphertext)
    }
}

impl KeyRing {
    fn key_arn(&self, id: &str) -> String {
        format!("arn:aws:kms:{}:{ACCOUNT_ID}:key/{id}", self.region)
    }

    fn find(&self, id: &str) -> Option<KmsKey> {
        find(&lock(&self.keys), id, &self.region).map(|m| m.key.clone())
    }

    fn insert(&self, alias_or_id: &str) -> KmsKey {
        let (id, alias) = match alias_or_id.starts_with("alias/") {
            true => (uuid::Uuid::new_v4().to_string(), Some(alias_or_id.to_owned())),
            false => (alias_or_id.to_owned(), None),
        };
        let key = KmsKey { arn: self.key_arn(&id), id, alias };
        let mut material = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut material);
        let master = MasterKey { key: key.clone(), material };
        lock(&self.keys).push(master);
        key
    }

    fn open(&self, blob: &[u8], context: &EncryptionContext) -> Result<(KmsKey, Vec<u8>), AwsError> {
        let parts = split_blob(blob).ok_or_else(invalid_ciphertext)?;
        let keys = lock(&self.keys);
        let master = keys.iter().find(|m| m.key.id == parts.key_id).ok_or_else(invalid_ciphertext)?;
        let aad = associated_data(parts.header, context);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&master.material));
        let payload = Payload { msg: parts.sealed, aad: &aad };
        let plaintext =
            cipher.decrypt(Nonce::from_slice(parts.nonce), payload).map_err(|_| invalid_ciphertext())?;
        Ok((master.key.clone(), plaintext))
    }

    fn generate_data_key(&self, body: &Value, with_plaintext: bool) -> Result<Value, AwsError> {
        let length = match (body.get("KeySpec"), body.get("NumberOfBytes")) {
            (Some(spec), None) => match spec.as_str() {
                Some("AES_256") => 32,
                Some("AES_128") => 16,
                _ => {
                    return Err(wire::validation(format!(
                        "1 validation error detected: Value '{spec}' at 'keySpec' failed to \
                         satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
                    )))
                }
            },
            (None, Some(n)) => match n.as_u64() {
                Some(n @ 1..=1024) => n as usize,
                _ => {
                    return Err(wire::validation(format!(
                        "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to \
                         satisfy constraint: Member must have value between 1 and 1024"
                    )))
                }
            },
            _ => return Err(wire::validation("Please specify either number of bytes or key spec.")),
        };
        let mut data_key = vec![0u8; length];
        rand::thread_rng().fill_bytes(&mut data_key);
        let mut answer = self.encrypt_op(body, &data_key)?;
        // GenerateDataKey answers without the EncryptionAlgorithm that Encrypt reports.
        if let Some(fields) = answer.as_object_mut() {
            fields.remove("EncryptionAlgorithm");
        }
        if with_plaintext {
            answer["Plaintext"] = json!(b64(&data_key));
        }
        Ok(answer)
    }

    fn encrypt_op(&self, body: &Value, plaintext: &[u8]) -> Result<Value, AwsError> {
        let key_id = required_text(body, "KeyId", "keyId")?;
        let context = encryption_context(body)?;
        let keys = lock(&self.keys);
        let master = find(&keys, key_id, &self.region).ok_or_else(|| {
            let message = match key_id.starts_with("alias/") || key_id.contains(":alias/") {
                true => format!("Alias {key_id} is not found."),
                false => format!("Key '{}' does not exist", self.key_arn(key_id)),
            };
            AwsError::new(400, "NotFoundException", message)
        })?;
        let blob = seal(master, plaintext, &context);
        Ok(json!({
            "CiphertextBlob": b64(&blob),
            "KeyId": master.key.arn,
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }))
    }

    fn encrypt(&self, body: &Value) -> Result<Value, AwsError> {
        let plaintext = blob_field(body, "Plaintext", "plaintext")?;
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(wire::validation(
                "1 validation error detected: Value at 'plaintext' failed to satisfy \
                 constraint: Member must have length between 1 and 4096",
            ));
        }
        self.encrypt_op(body, &plaintext)
    }

    fn decrypt(&self, body: &Value) -> Result<Value, AwsError> {
        let blob = blob_field(body, "CiphertextBlob", "ciphertextBlob")?;
        let context = encryption_context(body)?;
        let (key, plaintext) = self.open(&blob, &context)?;
        if let Some(asked) = body.get("KeyId").and_then(Value::as_str) {
            if self.find(asked).map(|k| k.id) != Some(key.id.clone()) {
                return Err(AwsError::new(
                    400,
                    "IncorrectKeyException",
                    "The key ID in the request does not identify a CMK that can perform this \
                     operation.",
                ));
            }
        }
        Ok(json!({
            "KeyId": key.arn,
            "Plaintext": b64(&plaintext),
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }))
    }
}

/// The key that `id` names: key id, key ARN, alias name or alias ARN.
fn find<'a>(keys: &'a [MasterKey], id: &str, region: &str) -> Option<&'a MasterKey> {
    let alias_arn_prefix = format!("arn:aws:kms:{region}:{ACCOUNT_ID}:");
    let alias = id.strip_prefix(&alias_arn_prefix).unwrap_or(id);
    keys.iter().find(|m| m.key.id == id || m.key.arn == id || m.key.alias.as_deref() == Some(alias))
}

fn seal(master: &MasterKey, plaintext: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let id = master.key.id.as_bytes();
    let mut blob = Vec::with_capacity(MAGIC.len() + 1 + id.len() + NONCE_LEN + plaintext.len() + 16);
    blob.extend_from_slice(MAGIC);
    // create_key keeps ids within 255 bytes.
    blob.push(id.len() as u8);
    blob.extend_from_slice(id);
    let header_len = blob.len();
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let aad = associated_data(&blob, context);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&master.material));
    let payload = Payload { msg: plaintext, aad: &aad };
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), payload)
        .expect("aes-gcm encrypts any input below its size limit");
    debug_assert_eq!(header_len, blob.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    blob
}

/// The parts of a ciphertext blob.
struct BlobParts<'a> {
    header: &'a [u8],
    key_id: &'a str,
    nonce: &'a [u8],
    sealed: &'a [u8],
}

/// Splits a blob into header, key id, nonce and sealed bytes.
fn split_blob(blob: &[u8]) -> Option<BlobParts<'_>> {
    let rest = blob.strip_prefix(MAGIC.as_slice())?;
    let (&id_len, rest) = rest.split_first()?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN + 16 {
        return None;
    }
    let (key_id, rest) = rest.split_at(id_len);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    Some(BlobParts {
        header: &blob[..MAGIC.len() + 1 + id_len],
        key_id: std::str::from_utf8(key_id).ok()?,
        nonce,
        sealed,
    })
}

fn associated_data(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend(serde_json::to_vec(context).unwrap_or_default());
    aad
}

fn invalid_ciphertext() -> AwsError {
    AwsError::new(400, "InvalidCiphertextException", "")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn required_text<'a>(body: &'a Value, key: &str, member: &str) -> Result<&'a str, AwsError> {
    body.get(key).and_then(Value::as_str).ok_or_else(|| {
        wire::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy \
             constraint: Member must not be null"
        ))
    })
}

fn blob_field(body: &Value, key: &str, member: &str) -> Result<Vec<u8>, AwsError> {
    let text = required_text(body, key, member)?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| wire::serialization(format!("{key} is not valid base64")))
}

fn encryption_context(body: &Value) -> Result<EncryptionContext, AwsError> {
    match body.get("EncryptionContext") {
        None | Some(Value::Null) => Ok(EncryptionContext::new()),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|_| wire::serialization("EncryptionContext must be a map of strings to strings")),
    }
}

impl Service for KeyRing {
    fn signing_name(&self) -> &'static str {
        "kms"
    }

    fn handle(&self, operation: &str, request: &Request) -> ResponseTemplate {
        let body = serde_json::from_slice::<Value>(&request.body);
        let result = match (wire::target(request), body) {
            (Some(("TrentService", _)), Err(_)) => {
                Err(wire::serialization("the request body is not valid JSON"))
            }
            (Some(("TrentService", _)), Ok(body)) => match operation {
                "GenerateDataKey" => self.generate_data_key(&body, true),
                "GenerateDataKeyWithoutPlaintext" => self.generate_data_key(&body, false),
                "Encrypt" => self.encrypt(&body),
                "Decrypt" => self.decrypt(&body),
                _ => Err(wire::unknown_operation()),
            },
            _ => Err(wire::unknown_operation()),
        };
        match result {
            Ok(body) => wire::json_ok(wire::JSON_1_1, &body),
            Err(error) => self.error(request, &error),
        }
    }

    fn error(&self, _request: &Request, error: &AwsError) -> ResponseTemplate {
        wire::json_error(wire::JSON_1_1, "message", error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        let ring = KeyRing { region: "us-east-1".into(), keys: Mutex::default() };
        let key = KmsKey { id: "k1".into(), arn: ring.key_arn("k1"), alias: Some("alias/a".into()) };
        lock(&ring.keys).push(MasterKey { key, material: [7; 32] });
        ring
    }

    #[test]
    fn blob_round_trips_and_binds_context_and_bytes() {
        let ring = ring();
        let context: EncryptionContext = [("tenant".to_owned(), "t1".to_owned())].into();
        let master_blob = {
            let keys = lock(&ring.keys);
            seal(&keys[0], b"secret", &context)
        };
        let (key, plaintext) = ring.open(&master_blob, &context).unwrap();
        assert_eq!((key.id.as_str(), plaintext.as_slice()), ("k1", &b"secret"[..]));
        assert!(ring.open(&master_blob, &EncryptionContext::new()).is_err());
        for i in 0..master_blob.len() {
            let mut tampered = master_blob.clone();
            tampered[i] ^= 1;
            assert!(ring.open(&tampered, &context).is_err(), "byte {i}");
        }
        assert!(ring.open(&master_blob[..10], &context).is_err());
    }

    #[test]
    fn keys_are_found_by_id_arn_alias_and_alias_arn() {
        let ring = ring();
        for id in [
            "k1",
            "arn:aws:kms:us-east-1:000000000000:key/k1",
            "alias/a",
            "arn:aws:kms:us-east-1:000000000000:alias/a",
        ] {
            assert_eq!(ring.find(id).map(|k| k.id), Some("k1".to_owned()), "{id}");
        }
        assert!(ring.find("alias/b").is_none());
    }
}
