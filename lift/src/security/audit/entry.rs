//! Audit entries, their canonical encoding, the per-tenant hash chain and its verification.

use std::fmt;

use sha2::{Digest, Sha256};

/// The hash an empty chain starts from.
pub const GENESIS: [u8; 32] = [0; 32];

/// The most bytes of its detail an entry keeps ([`AuditEntry::clipped`]).
pub const MAX_DETAIL_BYTES: usize = 32 * 1024;
/// The most bytes of its resource an entry keeps ([`AuditEntry::clipped`]).
pub const MAX_RESOURCE_BYTES: usize = 4 * 1024;
/// The most bytes an entry keeps of each other text field (tenant, actor, issuer, action,
/// source, request id, each data class) ([`AuditEntry::clipped`]).
pub const MAX_FIELD_BYTES: usize = 1024;
/// The most data classes an entry keeps ([`AuditEntry::clipped`]).
pub const MAX_DATA_CLASSES: usize = 64;

/// How the audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It did what was asked.
    Success,
    /// It failed (a 5xx, an error).
    Failure,
    /// It was refused (401, 403, 451, a blocked request).
    Denied,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }

    /// The outcome an HTTP status stands for.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 | 429 | 451 => Self::Denied,
            s if s >= 500 => Self::Failure,
            s if s >= 400 => Self::Denied,
            _ => Self::Success,
        }
    }
}

/// One audited action: who did what to which resource, for which tenant, from where, when,
/// how it ended, and which classes of data it touched.
///
/// # Examples
///
/// ```
/// use lift::security::audit::{AuditEntry, Outcome};
///
/// let entry = AuditEntry::new("acme", "user-1", "payments.read", "payment/pay_1", Outcome::Success)
///     .from_where("203.0.113.7")
///     .data_classes(["pci.pan_last4", "pii.name"])
///     .request_id("req-1");
/// assert_eq!(entry.tenant, "acme");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The tenant whose chain the entry joins.
    pub tenant: String,
    /// Who: the principal's subject (or `anonymous`).
    pub actor: String,
    /// Who vouched for the actor: the issuer of its token (`iss`), when it had one. A
    /// subject is unique within its issuer only, so with several issuers the actor is one
    /// person only together with this (HIPAA's unique user identification).
    pub issuer: Option<String>,
    /// What: a verb such as `payments.refund` or `GET /payments/:id`.
    pub action: String,
    /// On what: the resource, e.g. `payment/pay_123`.
    pub resource: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// From where: the client address, as the edge saw it.
    pub source: String,
    /// The request that did it.
    pub request_id: String,
    /// The data classes touched (sorted, no duplicates).
    pub data_classes: Vec<String>,
    /// Free-form details (already scrubbed by the caller: never raw card numbers or PHI).
    pub detail: String,
    /// Whether the answer was an idempotent replay (`Idempotent-Replayed: true`): the
    /// stored response of an earlier attempt under the same key, given without running the
    /// handler. The attempt was checked as any other; the action it names ran only once.
    pub replayed: bool,
}

impl AuditEntry {
    /// An entry stamped with the current time.
    pub fn new(
        tenant: impl Into<String>,
        actor: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            actor: actor.into(),
            issuer: None,
            action: action.into(),
            resource: resource.into(),
            outcome,
            at_ms: now_ms(),
            source: String::new(),
            request_id: String::new(),
            data_classes: Vec::new(),
            detail: String::new(),
            replayed: false,
        }
    }

    /// Sets the issuer that vouched for the actor.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets where the request came from.
    pub fn from_where(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = id.into();
        self
    }

    /// Sets the data classes touched.
    pub fn data_classes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, classes: I) -> Self {
        self.data_classes = classes.into_iter().map(Into::into).collect();
        self.data_classes.sort();
        self.data_classes.dedup();
        self
    }

    /// Sets the details.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Marks the entry as the record of an idempotent replay.
    pub fn replayed(mut self, replayed: bool) -> Self {
        self.replayed = replayed;
        self
    }

    /// Sets the time (for imports and tests).
    pub fn at(mut self, at_ms: u64) -> Self {
        self.at_ms = at_ms;
        self
    }

    /// The entry with every field that a caller or a client can make large cut to its
    /// limit, so that it fits one DynamoDB item (400 KB, attribute names included) with
    /// room to spare: the detail to [`MAX_DETAIL_BYTES`], the resource to
    /// [`MAX_RESOURCE_BYTES`], every other text field to [`MAX_FIELD_BYTES`], the data
    /// classes to [`MAX_DATA_CLASSES`]. A cut field keeps its first bytes (ending on a
    /// character boundary) followed by `…[clipped N bytes]`, N being the bytes left out, and
    /// the whole stays within the limit; a cut list of data classes keeps its first ones and
    /// ends with the class `…[clipped N classes]`. An entry within the limits, and so an
    /// entry clipped before, is returned unchanged.
    ///
    /// [`AuditTrail`](super::AuditTrail) clips every entry when it is appended, before it is
    /// sealed: the stored entry is the hashed one, and the chain verifies.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::security::audit::{AuditEntry, Outcome, MAX_DETAIL_BYTES};
    ///
    /// let entry = AuditEntry::new("acme", "user-1", "threat.incident", "ip/203.0.113.7", Outcome::Denied)
    ///     .detail("x".repeat(MAX_DETAIL_BYTES + 10))
    ///     .clipped();
    /// assert!(entry.detail.ends_with("…[clipped 34 bytes]"));
    /// assert!(entry.detail.len() <= MAX_DETAIL_BYTES);
    /// ```
    pub fn clipped(mut self) -> Self {
        clip(&mut self.tenant, MAX_FIELD_BYTES);
        clip(&mut self.actor, MAX_FIELD_BYTES);
        if let Some(issuer) = &mut self.issuer {
            clip(issuer, MAX_FIELD_BYTES);
        }
        clip(&mut self.action, MAX_FIELD_BYTES);
        clip(&mut self.resource, MAX_RESOURCE_BYTES);
        clip(&mut self.source, MAX_FIELD_BYTES);
        clip(&mut self.request_id, MAX_FIELD_BYTES);
        clip(&mut self.detail, MAX_DETAIL_BYTES);
        if self.data_classes.len() > MAX_DATA_CLASSES
            || self.data_classes.iter().any(|c| c.len() > MAX_FIELD_BYTES)
        {
            // One place is kept for the mark.
            let kept = if self.data_classes.len() > MAX_DATA_CLASSES {
                MAX_DATA_CLASSES - 1
            } else {
                MAX_DATA_CLASSES
            };
            let left_out = self.data_classes.len().saturating_sub(kept);
            self.data_classes.truncate(kept);
            for class in &mut self.data_classes {
                clip(class, MAX_FIELD_BYTES);
            }
            self.data_classes.sort();
            self.data_classes.dedup();
            if left_out > 0 {
                self.data_classes.push(format!("…[clipped {left_out} classes]"));
            }
        }
        self
    }
}

/// Cuts `text` to at most `limit` bytes, its first ones (on a character boundary) and the
/// mark of the cut.
fn clip(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    // The mark is longest when it counts every byte of the text.
    let longest_mark = format!("…[clipped {} bytes]", text.len()).len();
    let mut end = limit.saturating_sub(longest_mark);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let left_out = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("…[clipped {left_out} bytes]"));
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// An entry in its chain: its place, the hash before it, and its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    /// The position in the tenant's chain, from 1.
    pub seq: u64,
    /// The entry.
    pub entry: AuditEntry,
    /// The hash of the entry before (GENESIS for the first).
    pub prev_hash: [u8; 32],
    /// SHA-256 over `prev_hash` and the canonical encoding of `seq` and the entry.
    pub hash: [u8; 32],
}

impl SealedEntry {
    /// Seals `entry` as number `seq` after `prev_hash`.
    pub fn seal(seq: u64, entry: AuditEntry, prev_hash: [u8; 32]) -> Self {
        let hash = chain_hash(&prev_hash, seq, &entry);
        Self { seq, entry, prev_hash, hash }
    }

    /// Whether the stored hash is the hash of what is stored.
    pub fn is_intact(&self) -> bool {
        chain_hash(&self.prev_hash, self.seq, &self.entry) == self.hash
    }
}

/// SHA-256 over the previous hash and a canonical encoding: every field in a fixed order,
/// each as its byte length (u64, big endian) then its bytes, so no two different entries
/// encode alike. The fields added later come last, each only when set and after a field
/// naming it: the issuer, when there is one, then `replayed` when the entry records a
/// replay. An entry without them encodes as entries did before they were recorded, so
/// chains written then verify unchanged, and no entry with one encodes like one without.
pub fn chain_hash(prev_hash: &[u8; 32], seq: u64, entry: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(seq.to_be_bytes());
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(entry.tenant.as_bytes());
    field(entry.actor.as_bytes());
    field(entry.action.as_bytes());
    field(entry.resource.as_bytes());
    field(entry.outcome.as_str().as_bytes());
    field(&entry.at_ms.to_be_bytes());
    field(entry.source.as_bytes());
    field(entry.request_id.as_bytes());
    field(&(entry.data_classes.len() as u64).to_be_bytes());
    for class in &entry.data_classes {
        field(class.as_bytes());
    }
    field(entry.detail.as_bytes());
    if let Some(issuer) = &entry.issuer {
        field(b"issuer");
        field(issuer.as_bytes());
    }
    if entry.replayed {
        field(b"replayed");
        field(b"true");
    }
    h.finalize().into()
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry at `seq` is not what was sealed (its content, its hash, or both changed).
    Changed {
        /// The changed entry.
        seq: u64,
    },
    /// The entry that should be at `seq` is missing.
    Removed {
        /// The first missing position.
        seq: u64,
    },
    /// An entry that was never part of the chain sits at `seq`.
    Inserted {
        /// Where the foreign entry sits.
        seq: u64,
    },
    /// The entry numbered `seq` is out of its place.
    Reordered {
        /// The entry found out of order.
        seq: u64,
    },
    /// A signed checkpoint certifies entry `seq`, past the last one stored: the newest
    /// entries were deleted.
    MissingTail {
        /// The certified entry that is gone.
        seq: u64,
    },
    /// Entries up to `seq` are gone though their retention has not run out: the oldest
    /// entries were deleted.
    DeletedPrefix {
        /// The newest entry that should still be stored.
        seq: u64,
    },
    /// Signed checkpoints certify entries up to `seq`, and no entry is stored.
    DeletedChain {
        /// The newest certified entry.
        seq: u64,
    },
    /// Entry `seq` does not hash to what a signed checkpoint certified: the chain was
    /// rewritten and re-hashed.
    Rewritten {
        /// The certified entry whose hash changed.
        seq: u64,
    },
    /// Checkpoint `number` is not signed by the key, is not a checkpoint, or does not link
    /// to the one before it.
    ForgedCheckpoint {
        /// The checkpoint's number.
        number: u64,
    },
}

impl ChainBreak {
    /// The position named (a checkpoint's number for [`ChainBreak::ForgedCheckpoint`]).
    pub fn seq(self) -> u64 {
        match self {
            Self::Changed { seq }
            | Self::Removed { seq }
            | Self::Inserted { seq }
            | Self::Reordered { seq }
            | Self::MissingTail { seq }
            | Self::DeletedPrefix { seq }
            | Self::DeletedChain { seq }
            | Self::Rewritten { seq } => seq,
            Self::ForgedCheckpoint { number } => number,
        }
    }
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Changed { seq } => write!(f, "entry {seq} was changed"),
            Self::Removed { seq } => write!(f, "entry {seq} was removed"),
            Self::Inserted { seq } => write!(f, "an entry was inserted at {seq}"),
            Self::Reordered { seq } => write!(f, "entry {seq} is out of order"),
            Self::MissingTail { seq } => write!(f, "the entries up to {seq} were removed from the end"),
            Self::DeletedPrefix { seq } => {
                write!(f, "the entries up to {seq} were removed before their retention ran out")
            }
            Self::DeletedChain { seq } => write!(f, "the whole chain (certified up to {seq}) was removed"),
            Self::Rewritten { seq } => write!(f, "entry {seq} no longer matches its signed checkpoint"),
            Self::ForgedCheckpoint { number } => {
                write!(f, "checkpoint {number} is forged or out of its chain")
            }
        }
    }
}

impl std::error::Error for ChainBreak {}

/// Walks a tenant's chain in stored order, from its first entry (seq 1, after GENESIS) or
/// from `start` (the seq and hash a previous verification ended on), and names the first
/// entry that was changed, removed, inserted or reordered.
///
/// Checks per entry, in order: its seq is the next one (a higher seq means entries were
/// removed, a lower one that it was moved or added); its hash covers its content; it links
/// to the entry before it. A link that fails on an intact entry means the entry before was
/// rewritten with a fresh hash, or an entry was slipped in before it.
///
/// # Examples
///
/// ```
/// use lift::security::audit::{verify_chain, AuditEntry, ChainBreak, Outcome, SealedEntry, GENESIS};
///
/// let mut chain = Vec::new();
/// let mut prev = GENESIS;
/// for seq in 1..=3 {
///     let e = AuditEntry::new("acme", "u", "payments.read", format!("payment/{seq}"), Outcome::Success);
///     let sealed = SealedEntry::seal(seq, e, prev);
///     prev = sealed.hash;
///     chain.push(sealed);
/// }
/// assert_eq!(verify_chain(&chain, None), Ok(()));
/// chain[1].entry.actor = "mallory".into();
/// assert_eq!(verify_chain(&chain, None), Err(ChainBreak::Changed { seq: 2 }));
/// ```
pub fn verify_chain(entries: &[SealedEntry], start: Option<(u64, [u8; 32])>) -> Result<(), ChainBreak> {
    let (mut expected, mut running) = match start {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS),
    };
    for (i, e) in entries.iter().enumerate() {
        if e.seq > expected {
            // The expected entry is further on (moved) or nowhere (removed).
            let later = entries[i + 1..].iter().any(|l| l.seq == expected);
            return Err(if later {
                ChainBreak::Reordered { seq: expected }
            } else {
                ChainBreak::Removed { seq: expected }
            });
        }
        if e.seq < expected {
            // A number already used: an intact entry linking past its predecessor, which
            // carries the same number, means the predecessor was slipped in.
            let slipped_in =
                i >= 2 && entries[i - 1].seq == e.seq && e.is_intact() && e.prev_hash == entries[i - 2].hash;
            let used = entries[..i].iter().any(|p| p.seq == e.seq);
            return Err(if slipped_in || used {
                ChainBreak::Inserted { seq: e.seq }
            } else {
                ChainBreak::Reordered { seq: e.seq }
            });
        }
        if !e.is_intact() {
            return Err(ChainBreak::Changed { seq: e.seq });
        }
        if e.prev_hash != running {
            // The entry is intact but does not follow the one before: that one was
            // rewritten (its hash recomputed) or slipped in. An entry that links to the
            // one before the previous means the previous was inserted.
            return Err(match i.checked_sub(2).map(|j| entries[j].hash) {
                Some(before) if before == e.prev_hash => ChainBreak::Inserted { seq: entries[i - 1].seq },
                _ if i == 0 => ChainBreak::Changed { seq: e.seq },
                _ => ChainBreak::Changed { seq: entries[i - 1].seq },
            });
        }
        running = e.hash;
        expected += 1;
    }
    Ok(())
}

/// Lowercase hex of a hash.
pub(crate) fn hex(hash: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in hash {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Parses 64 hex digits.
pub(crate) fn unhex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(n: u64) -> Vec<SealedEntry> {
        let mut out = Vec::new();
        let mut prev = GENESIS;
        for seq in 1..=n {
            let e = AuditEntry::new(
                "acme",
                format!("user-{}", seq % 3),
                "payments.read",
                format!("payment/{seq}"),
                Outcome::Success,
            )
            .at(1_700_000_000_000 + seq)
            .from_where("203.0.113.7")
            .request_id(format!("req-{seq}"))
            .data_classes(["pci.pan_last4"]);
            let e = if seq % 2 == 0 { e.issuer("https://id.example.com") } else { e };
            let e = e.replayed(seq % 3 == 0);
            let sealed = SealedEntry::seal(seq, e, prev);
            prev = sealed.hash;
            out.push(sealed);
        }
        out
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify_chain(&chain(10), None), Ok(()));
        assert_eq!(verify_chain(&[], None), Ok(()));
        let c = chain(10);
        assert_eq!(verify_chain(&c[5..], Some((5, c[4].hash))), Ok(()));
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let c = chain(6);
        // Changed, hash left alone.
        let mut t = c.clone();
        t[2].entry.resource = "payment/other".into();
        assert_eq!(verify_chain(&t, None), Err(ChainBreak::Changed { seq: 3 }));
        // Changed, hash recomputed to cover the change: the next link names it.
        let mut t = c.clone();
        t[2].entry.outcome = Outcome::Denied;
        t[2] = SealedEntry::seal(3, t[2].entry.clone(), t[2].prev_hash);
        assert_eq!(verify_chain(&t, None), Err(ChainBreak::Changed { seq: 3 }));
        // Removed.
        let mut t = c.clone();
        t.remove(3);
        assert_eq!(verify_chain(&t, None), Err(ChainBreak::Removed { seq: 4 }));
        // Reordered.
        let mut t = c.clone();
        t.swap(1, 2);
        assert_eq!(verify_chain(&t, None), Err(ChainBreak::Reordered { seq: 2 }));
        let mut t = c.clone();
        let moved = t.remove(1);
        t.push(moved);
        assert_eq!(verify_chain(&t, None), Err(ChainBreak::Reordered { seq: 2 }));
        // Inserted, well linked after entry 2 and renumbered to fit.
        let mut t = c.clone();
        let forged = AuditEntry::new("acme", "mallory", "payments.refund", "payment/1", Outcome::Success);
        t.insert(2, SealedEntry::seal(3, forged, t[1].hash));
        assert_eq!(verify_chain(&t, None), Err(ChainBreak::Inserted { seq: 3 }));
    }

    #[test]
    fn hex_round_trips() {
        let h = chain(1)[0].hash;
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex("zz"), None);
    }

    /// The hash of the entry in the test below, computed outside this code from the encoding
    /// entries had before the issuer was recorded.
    const OLD_HASH: &str = "08c91155208bc930dd27fdca63ef5a2e256d15227ffa591221257ab15a57776b";

    /// An entry without an issuer hashes as entries did before the issuer was recorded, so
    /// old chains still verify; with one,
    /// the hash differs, and moving text between the detail and the issuer changes it too.
    #[test]
    fn the_issuer_leaves_old_hashes_alone_and_is_bound_when_present() {
        let old = AuditEntry::new("acme", "user-1", "payments.read", "payment/1", Outcome::Success)
            .at(1_700_000_000_001)
            .from_where("203.0.113.7")
            .request_id("req-1")
            .data_classes(["pci.pan_last4"]);
        assert_eq!(hex(&chain_hash(&GENESIS, 1, &old)), OLD_HASH);
        let with = old.clone().issuer("https://id.example.com");
        assert_ne!(chain_hash(&GENESIS, 1, &with), chain_hash(&GENESIS, 1, &old));
        let other = old.clone().issuer("https://partner.example.net");
        assert_ne!(chain_hash(&GENESIS, 1, &with), chain_hash(&GENESIS, 1, &other));
        // The detail cannot spell the issuer's fields.
        let mut spelled = old.clone();
        spelled.detail.push_str("\0\0\0\0\0\0\0\x06issuer");
        assert_ne!(chain_hash(&GENESIS, 1, &spelled), chain_hash(&GENESIS, 1, &old.issuer("")));
    }

    /// A replay's entry hashes apart from the same entry of a first attempt, with or without
    /// an issuer, and an entry that is not one hashes as entries always have.
    #[test]
    fn the_replay_mark_leaves_old_hashes_alone_and_is_bound_when_set() {
        let old = AuditEntry::new("acme", "user-1", "payments.read", "payment/1", Outcome::Success)
            .at(1_700_000_000_001)
            .from_where("203.0.113.7")
            .request_id("req-1")
            .data_classes(["pci.pan_last4"]);
        assert_eq!(hex(&chain_hash(&GENESIS, 1, &old.clone().replayed(false))), OLD_HASH);
        let replay = old.clone().replayed(true);
        assert_ne!(chain_hash(&GENESIS, 1, &replay), chain_hash(&GENESIS, 1, &old));
        let issued = old.clone().issuer("https://id.example.com");
        let issued_replay = issued.clone().replayed(true);
        assert_ne!(chain_hash(&GENESIS, 1, &issued_replay), chain_hash(&GENESIS, 1, &issued));
        assert_ne!(chain_hash(&GENESIS, 1, &issued_replay), chain_hash(&GENESIS, 1, &replay));
        // Neither an issuer nor the detail can spell the mark.
        let spelled = old.clone().issuer("replayed");
        assert_ne!(chain_hash(&GENESIS, 1, &spelled), chain_hash(&GENESIS, 1, &replay));
        let mut spelled = old.clone();
        spelled.detail.push_str("\0\0\0\0\0\0\0\x08replayed\0\0\0\0\0\0\0\x04true");
        assert_ne!(chain_hash(&GENESIS, 1, &spelled), chain_hash(&GENESIS, 1, &replay));
    }

    #[test]
    fn clipping_cuts_large_fields_on_char_boundaries_and_says_how_much() {
        let small = chain(1)[0].entry.clone();
        assert_eq!(small.clone().clipped(), small, "an entry within the limits is unchanged");
        let mark = |n: usize| format!("…[clipped {n} bytes]");
        // A two-byte character straddles the cut: the cut moves before it.
        let kept = MAX_DETAIL_BYTES - mark(600_000).len();
        let detail = format!("{}é{}", "a".repeat(kept - 1), "b".repeat(600_000 - kept - 1));
        let classes: Vec<String> = (0..MAX_DATA_CLASSES + 3).map(|i| format!("class.{i:03}")).collect();
        let big = AuditEntry { resource: "r".repeat(MAX_RESOURCE_BYTES * 2), ..small.clone() }
            .detail(detail.clone())
            .data_classes(classes)
            .issuer("i".repeat(MAX_FIELD_BYTES + 1));
        let clipped = big.clipped();
        assert_eq!(clipped.detail, format!("{}{}", &detail[..kept - 1], mark(detail.len() - kept + 1)));
        assert!(clipped.detail.len() <= MAX_DETAIL_BYTES);
        assert!(clipped.resource.len() <= MAX_RESOURCE_BYTES);
        assert!(clipped.resource.starts_with("rrr") && clipped.resource.ends_with(" bytes]"));
        let issuer = clipped.issuer.clone().unwrap();
        assert!(issuer.len() <= MAX_FIELD_BYTES && issuer.contains("…[clipped "), "{issuer}");
        assert_eq!(clipped.data_classes.len(), MAX_DATA_CLASSES);
        assert_eq!(clipped.data_classes.last().map(String::as_str), Some("…[clipped 4 classes]"));
        // Clipping again changes nothing, and the clipped entry seals and verifies.
        assert_eq!(clipped.clone().clipped(), clipped);
        let sealed = SealedEntry::seal(1, clipped, GENESIS);
        assert_eq!(verify_chain(&[sealed], None), Ok(()));
    }

    fn field_change() -> impl Strategy<Value = (usize, usize, String)> {
        (0usize..8, 0usize..14, "[a-z0-9]{1,8}")
    }

    proptest! {
        /// Any single change to any stored field of any entry is detected, and the break
        /// names that entry (or, for a seq change, the place it breaks).
        #[test]
        fn any_single_change_to_a_stored_entry_is_detected((index, field, value) in field_change()) {
            let original = chain(8);
            let mut t = original.clone();
            let e = &mut t[index];
            match field {
                0 => e.entry.tenant.push_str(&value),
                1 => e.entry.actor.push_str(&value),
                2 => e.entry.action.push_str(&value),
                3 => e.entry.resource.push_str(&value),
                4 => e.entry.outcome = if e.entry.outcome == Outcome::Success { Outcome::Denied } else { Outcome::Success },
                5 => e.entry.at_ms += 1 + value.len() as u64,
                6 => e.entry.source.push_str(&value),
                7 => e.entry.request_id.push_str(&value),
                8 => e.entry.data_classes.push(value.clone()),
                9 => e.entry.detail.push_str(&value),
                10 => match &mut e.entry.issuer {
                    Some(issuer) => issuer.push_str(&value),
                    None => e.entry.issuer = Some(value.clone()),
                },
                11 => e.entry.issuer = match e.entry.issuer { Some(_) => None, None => Some(value.clone()) },
                12 => e.entry.replayed = !e.entry.replayed,
                _ => e.hash[value.len() % 32] ^= 1,
            }
            prop_assert_ne!(&t, &original);
            let broken = verify_chain(&t, None);
            prop_assert_eq!(broken, Err(ChainBreak::Changed { seq: index as u64 + 1 }));
        }
    }
}
