//! The backup signing key: HMAC-SHA256 over each manifest and each stream archive chunk
//! index, so that someone who can write the target but does not hold the key cannot change
//! a backup and have a restore accept it.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::BackupError;
use crate::disaster::ConfigError;

/// The variable [`BackupKey::from_env`] reads the key from.
pub const BACKUP_KEY_ENV: &str = "LIFT_BACKUP_KEY";

/// The only algorithm a [`Signature`] names today.
const ALGORITHM: &str = "HMAC-SHA256";

/// The HMAC-SHA256 key that signs and verifies backups: each manifest, and each index of
/// the stream archive. Keep it out of the backup target (in Secrets Manager, or the
/// environment of the job that backs up and restores): whoever holds it can sign a backup.
///
/// At least 32 bytes of secret material; its `Debug` never shows it, and neither does any
/// error.
///
/// # Examples
///
/// ```
/// use lift::disaster::backup::BackupKey;
///
/// let key = BackupKey::new([7u8; 32]).unwrap();
/// assert!(BackupKey::new([7u8; 16]).is_err(), "shorter than 32 bytes");
/// assert_eq!(format!("{key:?}"), format!("BackupKey {{ id: {:?}, .. }}", key.id()));
/// ```
#[derive(Clone)]
pub struct BackupKey {
    mac: Hmac<Sha256>,
    id: String,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The signature of a manifest or a chunk index, stored in it.
///
/// `key_id` only says which key signed (a fingerprint, [`BackupKey::id`]): a verifier
/// checks `mac` with its own key, whatever `key_id` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `HMAC-SHA256`.
    pub algorithm: String,
    /// The id of the key that signed.
    pub key_id: String,
    /// Lowercase hex HMAC-SHA256 of the signed payload.
    pub mac: String,
}

/// Why a manifest or a chunk index is not accepted as signed by the restore's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureProblem {
    /// It carries no signature: written before backups were signed, or the signature was
    /// removed. Restored only with [`allow_unsigned`](super::RestoreBuilder::allow_unsigned).
    #[error(
        "it has no signature (written before backups were signed, or the signature was removed); \
         restoring it needs allow_unsigned"
    )]
    Missing,
    /// Its signature does not match its contents under this key: it was changed after it was
    /// signed (or forged).
    #[error("its signature does not match its contents: it was changed after it was signed")]
    Mismatch,
    /// It names another key than the restore's.
    #[error("it says it was signed with key {signed_by}, not with this key ({key}): restore with the key that signed it")]
    OtherKey {
        /// The key id its signature names.
        signed_by: String,
        /// The restore's key id.
        key: String,
    },
    /// It is the manifest of another backup, copied over this one.
    #[error("it is the manifest of backup {names}, copied over this one")]
    OtherBackup {
        /// The backup it names.
        names: String,
    },
    /// It is signed, but the restore was given no key to verify it with.
    #[error("it is signed, but the restore has no backup key to verify it with")]
    NoKey,
}

impl BackupKey {
    /// A key from at least 32 bytes of secret material.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for shorter material.
    pub fn new(material: impl AsRef<[u8]>) -> Result<Self, BackupError> {
        let material = material.as_ref();
        if material.len() < 32 {
            return Err(ConfigError::invalid("backup key", "a backup key needs at least 32 bytes").into());
        }
        let mac = Hmac::<Sha256>::new_from_slice(material)
            .map_err(|_| ConfigError::invalid("backup key", "the key is not usable"))?;
        let mut key = Self { mac, id: String::new() };
        // A fingerprint that names the key without revealing it (an HMAC of a constant).
        key.id = hex::encode(&key.raw(&[b"lift-backup-key-id-v1"])[..8]);
        Ok(key)
    }

    /// A key from a secret's text (an environment variable, a file, a Secrets Manager
    /// `SecretString`): its UTF-8 bytes with surrounding whitespace trimmed, at least 32.
    /// `openssl rand -hex 32` makes one.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the trimmed text is shorter than 32 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::disaster::backup::BackupKey;
    ///
    /// let key = BackupKey::from_secret("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n")?;
    /// # let _ = key;
    /// # Ok::<(), lift::disaster::backup::BackupError>(())
    /// ```
    pub fn from_secret(text: &str) -> Result<Self, BackupError> {
        Self::new(text.trim().as_bytes())
    }

    /// The key in [`BACKUP_KEY_ENV`] (`LIFT_BACKUP_KEY`), read as [`from_secret`](Self::from_secret).
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] when it is unset or empty, [`ConfigError::Invalid`] when
    /// it is shorter than 32 bytes (the message never holds the value).
    pub fn from_env() -> Result<Self, BackupError> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::disaster::backup::BackupKey;
    ///
    /// let err = BackupKey::from_env_vars(|_| None).unwrap_err();
    /// assert_eq!(err.to_string(), "LIFT_BACKUP_KEY is not set");
    /// let key = BackupKey::from_env_vars(|_| Some("k".repeat(32)))?;
    /// # let _ = key;
    /// # Ok::<(), lift::disaster::backup::BackupError>(())
    /// ```
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BackupError> {
        let env = crate::config::Env::from_lookup(lookup);
        let text =
            env.get(BACKUP_KEY_ENV).ok_or_else(|| ConfigError::MissingEnv(BACKUP_KEY_ENV.to_owned()))?;
        Self::from_secret(&text).map_err(|_| {
            ConfigError::invalid("backup key", format!("{BACKUP_KEY_ENV} must hold at least 32 bytes")).into()
        })
    }

    /// The key's id: a fingerprint stored with each signature, so a restore with another key
    /// says so. It reveals nothing of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of the parts, each length-prefixed so parts cannot run together.
    fn raw(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.over(parts).finalize().into_bytes().into()
    }

    /// The MAC state after the parts, each length-prefixed.
    fn over(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// Signs `body` as a `domain` thing named `name` (a backup id, a chunk's name).
    pub(crate) fn sign(&self, domain: &str, name: &str, body: &[u8]) -> Signature {
        Signature {
            algorithm: ALGORITHM.to_owned(),
            key_id: self.id.clone(),
            mac: hex::encode(self.raw(&[domain.as_bytes(), name.as_bytes(), body])),
        }
    }

    /// Whether `signature` is this key's over `body` as a `domain` thing named `name`. The
    /// comparison takes the same time wherever the bytes differ.
    pub(crate) fn verify(
        &self,
        domain: &str,
        name: &str,
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureProblem> {
        if signature.key_id != self.id {
            return Err(SignatureProblem::OtherKey {
                signed_by: signature.key_id.clone(),
                key: self.id.clone(),
            });
        }
        let Ok(mac_bytes) = hex::decode(&signature.mac) else { return Err(SignatureProblem::Mismatch) };
        if signature.algorithm != ALGORITHM {
            return Err(SignatureProblem::Mismatch);
        }
        self.over(&[domain.as_bytes(), name.as_bytes(), body])
            .verify_slice(&mac_bytes)
            .map_err(|_| SignatureProblem::Mismatch)
    }
}

/// Verifies the signature of a thing that may carry none: `Ok(true)` when `key` signed it,
/// `Ok(false)` when it is unsigned and unsigned things are allowed, else the problem.
pub(crate) fn check(
    key: Option<&BackupKey>,
    allow_unsigned: bool,
    signature: Option<&Signature>,
    verify: impl FnOnce(&BackupKey, &Signature) -> Result<(), SignatureProblem>,
) -> Result<bool, SignatureProblem> {
    match (signature, key) {
        (None, _) if allow_unsigned => Ok(false),
        (None, _) => Err(SignatureProblem::Missing),
        (Some(_), None) => Err(SignatureProblem::NoKey),
        (Some(signature), Some(key)) => verify(key, signature).map(|()| true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> BackupKey {
        BackupKey::new([byte; 32]).unwrap()
    }

    #[test]
    fn a_key_shorter_than_32_bytes_is_refused_without_showing_it() {
        let err = BackupKey::new(b"short but secret").unwrap_err().to_string();
        assert_eq!(err, "invalid backup key: a backup key needs at least 32 bytes");
        let secret = "s3cr3t-s3cr3t-s3cr3t";
        let err = BackupKey::from_env_vars(|_| Some(secret.to_owned())).unwrap_err().to_string();
        assert!(err.contains("LIFT_BACKUP_KEY must hold at least 32 bytes"), "{err}");
        assert!(!err.contains(secret), "{err}");
        assert!(BackupKey::new([0u8; 32]).is_ok());
        assert_eq!(
            BackupKey::from_env_vars(|_| Some("   ".into())).unwrap_err().to_string(),
            "LIFT_BACKUP_KEY is not set"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = "a backup key of at least thirty-two bytes";
        let key = BackupKey::from_secret(secret).unwrap();
        let text = format!("{key:?} {key:#?}");
        assert!(!text.contains(secret) && !text.contains(&hex::encode(secret)), "{text}");
        assert!(text.contains(key.id()), "{text}");
    }

    #[test]
    fn the_secret_text_is_trimmed_and_its_bytes_are_the_key() {
        let a = BackupKey::from_secret(&"k".repeat(40)).unwrap();
        let b = BackupKey::from_secret(&format!(" {}\n", "k".repeat(40))).unwrap();
        let c = BackupKey::from_env_vars(|name| (name == BACKUP_KEY_ENV).then(|| "k".repeat(40))).unwrap();
        assert_eq!((a.id(), b.id()), (c.id(), c.id()));
        assert_ne!(a.id(), key(1).id());
    }

    #[test]
    fn a_signature_verifies_only_under_its_key_domain_name_and_body() {
        let k = key(1);
        let s = k.sign("d", "name", b"body");
        assert_eq!(k.verify("d", "name", b"body", &s), Ok(()));
        assert_eq!(k.verify("d", "name", b"bodY", &s), Err(SignatureProblem::Mismatch));
        assert_eq!(k.verify("d", "other", b"body", &s), Err(SignatureProblem::Mismatch));
        assert_eq!(k.verify("e", "name", b"body", &s), Err(SignatureProblem::Mismatch));
        // The parts are length-prefixed: moving bytes between them changes the MAC.
        assert_eq!(k.verify("d", "nameb", b"ody", &s), Err(SignatureProblem::Mismatch));
        let other = key(2);
        assert!(matches!(other.verify("d", "name", b"body", &s), Err(SignatureProblem::OtherKey { .. })));
        // A forged key id does not help: the MAC is still checked with the verifier's key.
        let forged = Signature { key_id: other.id().to_owned(), ..s.clone() };
        assert_eq!(other.verify("d", "name", b"body", &forged), Err(SignatureProblem::Mismatch));
        let garbage = Signature { mac: "zz".into(), ..s.clone() };
        assert_eq!(k.verify("d", "name", b"body", &garbage), Err(SignatureProblem::Mismatch));
        let algorithm = Signature { algorithm: "none".into(), ..s };
        assert_eq!(k.verify("d", "name", b"body", &algorithm), Err(SignatureProblem::Mismatch));
    }

    #[test]
    fn an_unsigned_thing_passes_only_when_allowed() {
        let k = key(1);
        let s = k.sign("d", "n", b"b");
        let verify = |key: &BackupKey, sig: &Signature| key.verify("d", "n", b"b", sig);
        assert_eq!(check(Some(&k), false, None, verify), Err(SignatureProblem::Missing));
        assert_eq!(check(Some(&k), true, None, verify), Ok(false));
        assert_eq!(check(None, true, None, verify), Ok(false));
        assert_eq!(check(Some(&k), false, Some(&s), verify), Ok(true));
        assert_eq!(check(None, true, Some(&s), verify), Err(SignatureProblem::NoKey));
    }
}
