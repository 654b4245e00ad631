//! Signed checkpoints: the anchor of each tenant's chain, kept apart from the entries.
//!
//! Modelled on CloudTrail's log file integrity validation (signed, chained digests). At
//! every flush that advances a tenant's chain, the trail writes a checkpoint: the chain's
//! head (`seq`, hash, the head entry's time), the time of the first entry it covers, the
//! time, and the digest, seq and head time of the checkpoint before it, signed with HMAC-SHA256 under a key the writer holds and
//! the tables do not ([`CheckpointKey`]). Checkpoints live in their own table
//! ([`tables::audit_checkpoints`](crate::store::tables::audit_checkpoints)), written with
//! `attribute_not_exists`, and expire with the entry they certify.
//!
//! Someone with write access to both tables but not to the key can delete or rewrite
//! entries and checkpoints, but not sign new ones. So a verifier names a deleted tail (a
//! live checkpoint certifies an entry past the last one stored), a deleted prefix (a live
//! checkpoint, or a checkpoint's signed predecessor, certifies an entry before the first
//! one stored, or an entry it covers is gone before the first it covers expired), a
//! deleted chain, a rewritten chain (a certified head whose hash no longer
//! matches) and a forged checkpoint (a bad signature or a broken checkpoint chain).
//! Besides the checkpoints of flushes, a trail built with
//! [`checkpoint_every`](super::AuditTrailBuilder::checkpoint_every) (or
//! `LIFT_AUDIT_CHECKPOINT_INTERVAL_MS`) writes a heartbeat: a checkpoint of every tenant it
//! has written, at least that often, even when the chain did not advance (same `seq`, a new
//! time). [`AuditTrail::spawn_heartbeat`](super::AuditTrail::spawn_heartbeat) runs them on a
//! timer; every flush also writes the ones that are due (a Lambda function's background
//! tasks only run during invocations). The newest checkpoint's time then says how fresh
//! the certified head is.
//!
//! Deleting the newest entries *together with* the newest checkpoints leaves an older,
//! valid state: only a checkpoint kept outside the tables reveals that, which is what
//! [`AuditTrail::verify_against`](super::AuditTrail::verify_against) takes.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::entry::{hex, unhex, GENESIS};

/// The HMAC-SHA256 key that signs checkpoints: held by the writer (and the auditor that
/// verifies), never stored in the tables.
///
/// # Examples
///
/// ```
/// use lift::security::audit::CheckpointKey;
///
/// let key = CheckpointKey::new([7u8; 32]).unwrap();
/// assert!(CheckpointKey::new([7u8; 16]).is_err(), "shorter than 32 bytes");
/// # let _ = key;
/// ```
#[derive(Clone)]
pub struct CheckpointKey(Hmac<Sha256>);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey([redacted])")
    }
}

/// The KMS encryption context of a checkpoint key's data key.
#[cfg(feature = "protection")]
const KMS_CONTEXT: [(&str, &str); 1] = [("purpose", "lift-audit-checkpoint")];

impl CheckpointKey {
    /// A key from at least 32 bytes of secret material.
    ///
    /// # Errors
    /// [`AuditError::Config`](super::AuditError::Config) for shorter material.
    pub fn new(material: impl AsRef<[u8]>) -> Result<Self, super::AuditError> {
        let material = material.as_ref();
        if material.len() < 32 {
            return Err(super::AuditError::Config("a checkpoint key needs at least 32 bytes"));
        }
        Hmac::<Sha256>::new_from_slice(material)
            .map(Self)
            .map_err(|_| super::AuditError::Config("the checkpoint key is not usable"))
    }

    /// A new key derived through KMS: a data key generated under `key_id`, returned with
    /// its encrypted blob. Keep the blob in the service's configuration and load the key
    /// with [`CheckpointKey::from_kms_blob`]; the plaintext never leaves the process.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`](super::AuditError::Unavailable) when KMS fails.
    #[cfg(feature = "protection")]
    pub async fn generate_with_kms(
        kms: &dyn crate::security::protection::KmsClient,
        key_id: &str,
    ) -> Result<(Self, Vec<u8>), super::AuditError> {
        let key = kms
            .generate_data_key(key_id, &KMS_CONTEXT)
            .await
            .map_err(|e| super::AuditError::Unavailable(format!("kms: {e}")))?;
        Ok((Self::new(key.plaintext)?, key.blob))
    }

    /// The key whose KMS-encrypted blob [`CheckpointKey::generate_with_kms`] returned,
    /// decrypted by KMS.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`](super::AuditError::Unavailable) when KMS refuses or fails.
    #[cfg(feature = "protection")]
    pub async fn from_kms_blob(
        kms: &dyn crate::security::protection::KmsClient,
        blob: &[u8],
    ) -> Result<Self, super::AuditError> {
        let plaintext = kms
            .decrypt(blob, &KMS_CONTEXT)
            .await
            .map_err(|e| super::AuditError::Unavailable(format!("kms: {e}")))?;
        Self::new(plaintext)
    }

    fn sign(&self, payload: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }

    fn verifies(&self, payload: &[u8], signature: &[u8; 32]) -> bool {
        let mut mac = self.0.clone();
        mac.update(payload);
        mac.verify_slice(signature).is_ok()
    }
}

/// One signed checkpoint of a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The tenant.
    pub tenant: String,
    /// Its place among the tenant's checkpoints, from 1.
    pub number: u64,
    /// The seq of the chain's head it certifies.
    pub seq: u64,
    /// The head's hash.
    pub head: [u8; 32],
    /// The head entry's time (ms since the epoch): the checkpoint expires with it.
    pub head_at_ms: u64,
    /// When it was written (ms since the epoch).
    pub at_ms: u64,
    /// The digest of the checkpoint before (GENESIS for the first).
    pub prev_digest: [u8; 32],
    /// The seq the checkpoint before certified (0 for the first).
    pub prev_seq: u64,
    /// The head time of the checkpoint before (0 for the first).
    pub prev_head_at_ms: u64,
    /// The time of the first entry after the checkpoint before (seq `prev_seq + 1`): every
    /// entry this checkpoint covers lives at least until that one expires.
    pub from_at_ms: u64,
    /// HMAC-SHA256 of the canonical payload.
    pub signature: [u8; 32],
}

impl Checkpoint {
    /// The canonical, length-prefixed encoding that is signed.
    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        field(b"lift-audit-checkpoint-v1");
        field(self.tenant.as_bytes());
        field(&self.number.to_be_bytes());
        field(&self.seq.to_be_bytes());
        field(&self.head);
        field(&self.head_at_ms.to_be_bytes());
        field(&self.at_ms.to_be_bytes());
        field(&self.prev_digest);
        field(&self.prev_seq.to_be_bytes());
        field(&self.prev_head_at_ms.to_be_bytes());
        field(&self.from_at_ms.to_be_bytes());
        out
    }

    /// SHA-256 over the payload and the signature: what the next checkpoint links to.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.payload());
        h.update(self.signature);
        h.finalize().into()
    }

    /// Whether `key` signed it.
    pub fn is_signed_by(&self, key: &CheckpointKey) -> bool {
        key.verifies(&self.payload(), &self.signature)
    }

    /// The next checkpoint after `prev` (none: the first), signed with `key`: `head` is
    /// (seq, hash, time) of the chain's head, `from_at_ms` the time of the first entry
    /// after `prev`'s head.
    pub(crate) fn next(
        key: &CheckpointKey,
        tenant: &str,
        prev: Option<&Checkpoint>,
        head: (u64, [u8; 32], u64),
        from_at_ms: u64,
        at_ms: u64,
    ) -> Self {
        let mut c = Checkpoint {
            tenant: tenant.to_owned(),
            number: prev.map_or(1, |p| p.number + 1),
            seq: head.0,
            head: head.1,
            head_at_ms: head.2,
            at_ms,
            prev_digest: prev.map_or(GENESIS, Checkpoint::digest),
            prev_seq: prev.map_or(0, |p| p.seq),
            prev_head_at_ms: prev.map_or(0, |p| p.head_at_ms),
            from_at_ms,
            signature: [0; 32],
        };
        c.signature = key.sign(&c.payload());
        c
    }

    pub(crate) fn item(&self, retention_secs: u64) -> HashMap<String, AttributeValue> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: u64| AttributeValue::N(v.to_string());
        HashMap::from([
            ("pk".to_owned(), s(&pk(&self.tenant))),
            ("number".to_owned(), n(self.number)),
            ("tenant".to_owned(), s(&self.tenant)),
            ("seq".to_owned(), n(self.seq)),
            ("head".to_owned(), s(&hex(&self.head))),
            ("head_at_ms".to_owned(), n(self.head_at_ms)),
            ("at_ms".to_owned(), n(self.at_ms)),
            ("prev_digest".to_owned(), s(&hex(&self.prev_digest))),
            ("prev_seq".to_owned(), n(self.prev_seq)),
            ("prev_head_at_ms".to_owned(), n(self.prev_head_at_ms)),
            ("from_at_ms".to_owned(), n(self.from_at_ms)),
            ("signature".to_owned(), s(&hex(&self.signature))),
            ("expires_at".to_owned(), n(self.head_at_ms / 1000 + retention_secs)),
        ])
    }

    /// A stored checkpoint; `None` for an item that is not one (missing or mistyped
    /// attributes), which the verifier names as forged.
    pub(crate) fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
        let n = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
        Some(Self {
            tenant: s("tenant")?.clone(),
            number: n("number")?,
            seq: n("seq")?,
            head: unhex(s("head")?)?,
            head_at_ms: n("head_at_ms")?,
            at_ms: n("at_ms")?,
            prev_digest: unhex(s("prev_digest")?)?,
            prev_seq: n("prev_seq")?,
            prev_head_at_ms: n("prev_head_at_ms")?,
            from_at_ms: n("from_at_ms")?,
            signature: unhex(s("signature")?)?,
        })
    }
}

/// The environment variable of the heartbeat interval, in whole milliseconds.
pub const CHECKPOINT_INTERVAL_ENV: &str = "LIFT_AUDIT_CHECKPOINT_INTERVAL_MS";

/// The heartbeat interval from the environment: `None` when unset.
pub(crate) fn interval_from(env: &crate::config::Env<'_>) -> Result<Option<Duration>, super::AuditError> {
    match env.get(CHECKPOINT_INTERVAL_ENV) {
        None => Ok(None),
        Some(v) => {
            v.parse::<u64>().ok().filter(|ms| *ms > 0).map(|ms| Some(Duration::from_millis(ms))).ok_or(
                super::AuditError::Config(
                    "LIFT_AUDIT_CHECKPOINT_INTERVAL_MS must be a positive whole number of milliseconds",
                ),
            )
        }
    }
}

/// When each tenant's chain was last certified by this trail, on tokio's clock: which
/// tenants a heartbeat is due for.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    pub(crate) every: Duration,
    certified: std::sync::Mutex<HashMap<String, tokio::time::Instant>>,
}

impl Heartbeat {
    pub(crate) fn new(every: Duration) -> Self {
        Self { every, certified: std::sync::Mutex::default() }
    }

    /// Notes that `tenant`'s chain was certified now.
    pub(crate) fn certified(&self, tenant: &str) {
        self.certified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), tokio::time::Instant::now());
    }

    /// Of `tenants`, those not certified for at least the interval (or never, by this trail).
    pub(crate) fn due<'t>(&self, tenants: impl IntoIterator<Item = &'t String>) -> Vec<String> {
        let certified = self.certified.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        tenants
            .into_iter()
            .filter(|t| certified.get(*t).is_none_or(|at| now.duration_since(*at) >= self.every))
            .cloned()
            .collect()
    }
}

/// Runs `tick` every `every` (the first after one interval) until it returns `false`.
pub(crate) fn spawn_ticker<F, Fut>(every: Duration, mut tick: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            if !tick().await {
                return;
            }
        }
    })
}

/// The partition key of a tenant's checkpoints.
pub(crate) fn pk(tenant: &str) -> String {
    format!("CKPT#{tenant}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> CheckpointKey {
        CheckpointKey::new([b; 32]).unwrap()
    }

    #[test]
    fn checkpoints_are_signed_chained_and_any_change_breaks_the_signature() {
        let k = key(1);
        let first = Checkpoint::next(&k, "acme", None, (5, [9; 32], 1_000), 900, 2_000);
        let second = Checkpoint::next(&k, "acme", Some(&first), (9, [8; 32], 3_000), 2_500, 4_000);
        assert!(first.is_signed_by(&k) && second.is_signed_by(&k));
        assert!(!first.is_signed_by(&key(2)), "another key");
        assert_eq!((second.number, second.prev_digest, second.prev_seq), (2, first.digest(), 5));
        assert_eq!(second.prev_head_at_ms, 1_000);
        let edits: [fn(&mut Checkpoint); 10] = [
            |c| c.tenant.push('x'),
            |c| c.number += 1,
            |c| c.seq -= 1,
            |c| c.head[0] ^= 1,
            |c| c.head_at_ms -= 1,
            |c| c.at_ms += 1,
            |c| c.prev_digest[31] ^= 1,
            |c| c.prev_seq += 1,
            |c| c.prev_head_at_ms = 0,
            |c| c.from_at_ms = 0,
        ];
        for edit in edits {
            let mut forged = second.clone();
            edit(&mut forged);
            assert!(!forged.is_signed_by(&k), "{forged:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_is_due_once_the_interval_passed_since_the_last_certification() {
        let beat = Heartbeat::new(Duration::from_secs(60));
        let tenants = ["acme".to_owned(), "globex".to_owned()];
        assert_eq!(beat.due(&tenants), tenants, "never certified by this trail");
        beat.certified("acme");
        beat.certified("globex");
        assert!(beat.due(&tenants).is_empty());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(beat.due(&tenants).is_empty(), "not yet");
        beat.certified("globex");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(beat.due(&tenants), ["acme"], "globex was certified again a second ago");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(beat.due(&tenants), tenants);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ticker_ticks_every_interval_until_told_to_stop() {
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = ticks.clone();
        let handle = spawn_ticker(Duration::from_secs(10), move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move { n < 3 }
        });
        let count = || ticks.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(count(), 0, "the first tick comes after one interval");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(count(), 1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(count(), 2);
        handle.await.unwrap();
        assert_eq!(count(), 3, "it stops when the tick says so");
    }

    #[test]
    fn the_interval_comes_from_the_environment_and_a_bad_one_is_refused() {
        let env = |v: &'static str| {
            crate::config::Env::from_lookup(move |name| {
                (name == CHECKPOINT_INTERVAL_ENV).then(|| v.to_owned())
            })
        };
        assert_eq!(interval_from(&env("60000")).unwrap(), Some(Duration::from_secs(60)));
        assert_eq!(interval_from(&env(" ")).unwrap(), None);
        for bad in ["0", "-5", "1m", "s3cr3t"] {
            let err = interval_from(&env(bad)).unwrap_err().to_string();
            assert!(err.contains(CHECKPOINT_INTERVAL_ENV) && !err.contains(bad), "{err}");
        }
    }

    #[test]
    fn items_round_trip() {
        let c = Checkpoint::next(&key(3), "t", None, (1, [1; 32], 10_000), 10_000, 11_000);
        let item = c.item(3600);
        assert_eq!(Checkpoint::from_item(&item), Some(c));
        assert_eq!(item["expires_at"].as_n().unwrap(), "3610");
        let mut broken = item.clone();
        broken.remove("signature");
        assert_eq!(Checkpoint::from_item(&broken), None);
    }
}
