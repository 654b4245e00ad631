//! The audit trail: a bounded in-memory buffer, flushed to DynamoDB in per-tenant hash
//! chains with conditional writes.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tokio::sync::Semaphore;

use super::checkpoint::{self, Checkpoint, CheckpointKey};
use super::entry::{hex, unhex, verify_chain, AuditEntry, ChainBreak, Outcome, SealedEntry, GENESIS};

/// Entries the buffer holds before `try_append` refuses and `append` waits.
pub const DEFAULT_CAPACITY: usize = 1024;
/// How long [`AuditTrail::append`] waits for room in a full buffer before it buffers the
/// entry over the capacity.
pub const DEFAULT_APPEND_WAIT: Duration = Duration::from_secs(1);
/// The default [ceiling](AuditTrailBuilder::max_buffered), as a multiple of the capacity:
/// entries held while the store does not take them, past which the trail refuses new ones.
pub const DEFAULT_CEILING_FACTOR: usize = 4;
/// The action of the entry that stands, in its chain, for an entry DynamoDB refused to
/// store (see [`AuditTrail`]).
pub const UNSTORED_ACTION: &str = "audit.unstored";
/// The error codes with which DynamoDB refuses an item itself: sending it again can never
/// succeed.
const REJECTED: &[&str] = &["ValidationException"];
/// How long entries are kept (DynamoDB TTL): about seven years, as PCI-DSS and HIPAA
/// records commonly require. Set it per deployment.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 366 * 24 * 3600);
/// How often a flush re-reads a chain's head and reseals after losing a race for a seq.
const MAX_RACES: usize = 16;
/// How far the verifier's clock may be behind the writer's before an entry that should
/// still live is called deleted.
const CLOCK_SKEW_SECS: u64 = 300;

/// Why the trail could not take, store or prove entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The buffer is full: flush, or use [`AuditTrail::append`] to wait for room.
    #[error("the audit buffer is full ({capacity} entries)")]
    Full {
        /// The capacity.
        capacity: usize,
    },
    /// The buffer holds its [ceiling](AuditTrailBuilder::max_buffered) of entries the
    /// store has not taken yet: no entry can be kept until a flush stores some.
    #[error("the audit buffer is at its ceiling ({max_buffered} entries not stored yet)")]
    Saturated {
        /// The ceiling.
        max_buffered: usize,
    },
    /// DynamoDB did not take or give the entries; nothing buffered was dropped.
    #[error("the audit store is unavailable: {0}")]
    Unavailable(String),
    /// The stored chain of a tenant is broken.
    #[error("the audit chain of tenant {tenant} is broken: {broken}")]
    Broken {
        /// The tenant.
        tenant: String,
        /// Where and how.
        broken: ChainBreak,
    },
    /// The configuration is incomplete.
    #[error("invalid audit configuration: {0}")]
    Config(&'static str),
}

/// What [`AuditTrail::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// The first seq stored: above 1 when older entries expired (TTL).
    pub first_seq: u64,
    /// The head: the last seq and its hash.
    pub head: (u64, [u8; 32]),
    /// Signed checkpoints checked (0 when the trail has no checkpoint key: then the chain
    /// is only self-consistent, and deletions at either end or a re-hashed rewrite pass).
    pub checkpoints: u64,
    /// The newest checkpoint, to keep outside the tables (a report, another account) and
    /// pass to [`AuditTrail::verify_against`] later.
    pub latest_checkpoint: Option<Checkpoint>,
}

/// A query over one tenant's entries.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// The tenant (required).
    pub tenant: String,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries at or after this time (ms since the epoch).
    pub from_ms: Option<u64>,
    /// Only entries at or before this time (ms since the epoch).
    pub to_ms: Option<u64>,
}

impl AuditQuery {
    /// Every entry of a tenant.
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Self { tenant: tenant.into(), ..Self::default() }
    }

    /// Only entries by this actor.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Only entries of this action.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only entries in `[from_ms, to_ms]`.
    pub fn between(mut self, from_ms: u64, to_ms: u64) -> Self {
        self.from_ms = Some(from_ms);
        self.to_ms = Some(to_ms);
        self
    }
}

/// Builds an [`AuditTrail`].
#[derive(Debug, Default)]
pub struct AuditTrailBuilder {
    client: Option<Client>,
    table: Option<String>,
    capacity: Option<usize>,
    max_buffered: Option<usize>,
    security_headroom: Option<usize>,
    append_wait: Option<Duration>,
    retention: Option<Duration>,
    checkpoint_key: Option<CheckpointKey>,
    checkpoint_table: Option<String>,
    checkpoint_every: Option<Duration>,
    env_error: Option<AuditError>,
}

impl AuditTrailBuilder {
    /// A builder with the settings of the process environment
    /// ([`CHECKPOINT_INTERVAL_ENV`](super::CHECKPOINT_INTERVAL_ENV)); the builder's own
    /// methods win over it, and a bad value fails [`build`](Self::build).
    pub fn from_env() -> Self {
        Self::from_env_vars(crate::config::process_env)
    }

    /// As [`from_env`](Self::from_env), with variables read through `lookup`.
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let env = crate::config::Env::from_lookup(lookup);
        match checkpoint::interval_from(&env) {
            Ok(every) => Self { checkpoint_every: every, ..Self::default() },
            Err(err) => Self { env_error: Some(err), ..Self::default() },
        }
    }

    /// Also writes a checkpoint of every tenant this trail has written at least this often,
    /// even when its chain did not advance: a heartbeat that dates the certified head (see
    /// [`Checkpoint`]). Flushes write the ones due; [`AuditTrail::spawn_heartbeat`] writes
    /// them on a timer. Needs a [`checkpoint_key`](Self::checkpoint_key).
    pub fn checkpoint_every(mut self, interval: Duration) -> Self {
        self.checkpoint_every = Some(interval);
        self
    }

    /// Signs a checkpoint of each tenant's chain at every flush that advances it, and
    /// checks stored chains against them in [`AuditTrail::verify`] (see the
    /// [`Checkpoint`]). Without a key the chain is only
    /// self-consistent: deletions at either end and re-hashed rewrites go unseen.
    pub fn checkpoint_key(mut self, key: CheckpointKey) -> Self {
        self.checkpoint_key = Some(key);
        self
    }

    /// The checkpoint table (default:
    /// [`tables::audit_checkpoints`](crate::store::tables::audit_checkpoints)`().resolve_name()`).
    pub fn checkpoint_table(mut self, table: impl Into<String>) -> Self {
        self.checkpoint_table = Some(table.into());
        self
    }

    /// The DynamoDB client (required).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The table (default: [`tables::audit`](crate::store::tables::audit)`().resolve_name()`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// How many entries the buffer holds (default [`DEFAULT_CAPACITY`]).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The most entries the trail holds, buffered or with a [place](AuditTrail::reserve)
    /// taken, while the store does not take them (default [`DEFAULT_CEILING_FACTOR`] times
    /// the capacity): past the capacity, [`append`](AuditTrail::append) and
    /// [`reserve`](AuditTrail::reserve) buffer over it up to this ceiling, and at the ceiling
    /// they refuse at once ([`AuditError::Saturated`]), so memory stays bounded however long
    /// DynamoDB is unreachable or throttles. At least the capacity.
    pub fn max_buffered(mut self, max_buffered: usize) -> Self {
        self.max_buffered = Some(max_buffered);
        self
    }

    /// Places kept above the ceiling for security events (default a quarter of the
    /// ceiling, at least 1): threat incidents and compliance violations take their place with
    /// [`reserve_security_event`](AuditTrail::reserve_security_event), which refuses only at
    /// `max_buffered` plus this, so while DynamoDB is away and ordinary requests are refused
    /// at the ceiling, the attack or violation that comes next is still kept. An attacker who
    /// sets off incidents fills this headroom too, and then they are refused: memory stays
    /// bounded by `max_buffered + security_headroom`.
    pub fn security_headroom(mut self, headroom: usize) -> Self {
        self.security_headroom = Some(headroom);
        self
    }

    /// How long [`AuditTrail::append`] waits for room in a full buffer before it buffers
    /// the entry over the capacity (default [`DEFAULT_APPEND_WAIT`]).
    pub fn append_wait(mut self, wait: Duration) -> Self {
        self.append_wait = Some(wait);
        self
    }

    /// How long entries are kept (default [`DEFAULT_RETENTION`]).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Builds the trail.
    ///
    /// # Errors
    /// [`AuditError::Config`] without a client, with a zero capacity, or with a ceiling
    /// below the capacity.
    pub fn build(self) -> Result<AuditTrail, AuditError> {
        if let Some(err) = self.env_error {
            return Err(err);
        }
        let client = self.client.ok_or(AuditError::Config("a DynamoDB client is required"))?;
        if self.checkpoint_every.is_some_and(|every| every.is_zero()) {
            return Err(AuditError::Config("the checkpoint interval must be positive"));
        }
        if self.checkpoint_every.is_some() && self.checkpoint_key.is_none() {
            return Err(AuditError::Config("a checkpoint interval needs a checkpoint key"));
        }
        let capacity = self.capacity.unwrap_or(DEFAULT_CAPACITY);
        if capacity == 0 {
            return Err(AuditError::Config("the capacity must be at least 1"));
        }
        let max_buffered = self.max_buffered.unwrap_or(capacity.saturating_mul(DEFAULT_CEILING_FACTOR));
        if max_buffered < capacity {
            return Err(AuditError::Config("the ceiling (max_buffered) must be at least the capacity"));
        }
        Ok(AuditTrail {
            inner: Arc::new(Inner {
                client,
                table: self.table.unwrap_or_else(|| crate::store::tables::audit().resolve_name()),
                capacity,
                max_buffered,
                security_headroom: self.security_headroom.unwrap_or((max_buffered / 4).max(1)),
                held: AtomicUsize::new(0),
                append_wait: self.append_wait.unwrap_or(DEFAULT_APPEND_WAIT),
                retention: self.retention.unwrap_or(DEFAULT_RETENTION),
                buffer: Mutex::new(Vec::with_capacity(capacity)),
                room: Semaphore::new(capacity),
                heads: tokio::sync::Mutex::new(HashMap::new()),
                flushing: tokio::sync::Mutex::new(()),
                anchors: self.checkpoint_key.map(|key| Anchors {
                    key,
                    table: self
                        .checkpoint_table
                        .unwrap_or_else(|| crate::store::tables::audit_checkpoints().resolve_name()),
                    latest: tokio::sync::Mutex::new(HashMap::new()),
                    due: Mutex::new(BTreeSet::new()),
                    heartbeat: self.checkpoint_every.map(checkpoint::Heartbeat::new),
                    first_since: Mutex::new(HashMap::new()),
                }),
            }),
        })
    }
}

/// The tamper-evident audit trail of a service.
///
/// Appending only buffers the entry, [clipped](AuditEntry::clipped) so that it fits one
/// DynamoDB item (bounded: [`try_append`](Self::try_append) refuses when full,
/// [`append`](Self::append) and [`reserve`](Self::reserve) wait for room, up to the
/// [append wait](AuditTrailBuilder::append_wait), then hold the entry over the capacity up
/// to a hard [ceiling](AuditTrailBuilder::max_buffered), and refuse it there: memory stays
/// bounded however long DynamoDB is down, and what is held is never dropped). [`flush`](Self::flush), at the end of
/// each invocation and on shutdown, seals each tenant's entries into its hash chain and
/// writes them with `PutItem ... attribute_not_exists(pk)`, so no entry is ever
/// overwritten. Two instances appending to one tenant race for the next seq: the loser
/// re-reads the head and reseals, so the chain stays one line. When DynamoDB fails, the
/// unwritten entries go back to the buffer in order: nothing is lost.
///
/// When DynamoDB refuses an entry itself (`ValidationException`: an item it will never
/// take, however often it is sent), the entry is not put back, where it would fail every
/// later flush of every tenant. Its stub takes its place, at the same seq after the same
/// head: an entry with the action [`UNSTORED_ACTION`], the refused entry's tenant, time,
/// outcome, actor, issuer, source, request id, data classes, replay mark and resource, and
/// a detail naming its action, the hash it was sealed with and at which seq, the size of its
/// item and the error code (`entry not stored (ValidationException): hash <hex> at seq
/// <n>, <bytes> bytes, action <action>`). The stub is sealed and chained like any entry, so
/// the chain stays continuous and verifies, and the loss is itself on record, where the
/// hash lets the refused entry be checked should a copy turn up; the error is logged
/// too. Were the stub refused as well, a bare stub (tenant, time, outcome and the same
/// detail without the action) is stored instead; were that refused too, the refusal is
/// about the table (a wrong key schema, say), and the entry itself goes back to the buffer
/// as for any error of the store. Other errors (throttling, a missing table, denied access,
/// a 5xx) are about the store, not the entry: the entry goes back to the buffer for the
/// next flush, and its request gets the trail's unavailable answer.
///
/// Items: `pk = "AUDIT#<tenant>"`, `seq` (number, from 1), the entry's fields, `prev_hash`
/// and `hash` (hex), and `expires_at` for the TTL.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::security::audit::AuditError> {
/// use lift::security::audit::{AuditEntry, AuditQuery, AuditTrail, Outcome};
///
/// let trail = AuditTrail::builder().client(client).build()?;
/// trail.try_append(AuditEntry::new("acme", "user-1", "payments.read", "payment/pay_1", Outcome::Success))?;
/// trail.flush().await?;
/// let entries = trail.query(AuditQuery::tenant("acme").actor("user-1")).await?;
/// let verified = trail.verify("acme").await?;
/// assert_eq!(verified.entries as usize, entries.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuditTrail {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    table: String,
    capacity: usize,
    /// The ceiling of `held`.
    max_buffered: usize,
    /// Places above the ceiling only security events take.
    security_headroom: usize,
    /// Places taken: entries buffered and places reserved for entries to come.
    held: AtomicUsize,
    append_wait: Duration,
    retention: Duration,
    buffer: Mutex<Vec<Pending>>,
    /// One permit per free slot: taken on append, given back when the entry is stored.
    room: Semaphore,
    /// The head of each tenant's chain this trail knows.
    heads: tokio::sync::Mutex<HashMap<String, Head>>,
    /// One flush at a time, so entries keep their order.
    flushing: tokio::sync::Mutex<()>,
    anchors: Option<Anchors>,
}

/// The head of a chain: seq, hash, and the head entry's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    seq: u64,
    hash: [u8; 32],
    at_ms: u64,
}

const EMPTY: Head = Head { seq: 0, hash: GENESIS, at_ms: 0 };

/// An entry waiting to be stored, with the id that lets a retry find it.
#[derive(Debug, Clone)]
struct Pending {
    entry: AuditEntry,
    /// Stored beside the entry (outside its hash): a retry after an answer that was lost
    /// reads the seq it tried and, finding its own id there, does not seal it again.
    write_id: String,
    /// The seqs of puts whose outcome is unknown: any of them may still land (a write
    /// DynamoDB applies after its client gave up), so none is forgotten until the entry is
    /// stored.
    attempted: Vec<u64>,
    /// Whether the entry holds a slot of the buffer (a permit of `room`); an entry that
    /// `append` buffered over the capacity holds none.
    slot: bool,
    /// When DynamoDB refused the entry and `entry` is now the stub standing for it: what
    /// the stub records of the refused one.
    refused: Option<Refused>,
}

/// What the stub of a refused entry records of it.
#[derive(Debug, Clone)]
struct Refused {
    /// The entry's hash as it was sealed, at `seq`.
    hash: [u8; 32],
    seq: u64,
    /// The size of its item, as DynamoDB counts it (attribute names and values).
    bytes: usize,
    /// DynamoDB's error code.
    code: String,
    /// Whether the stub was refused too, and the bare stub stands for it now.
    bare: bool,
    /// The refused entry, kept until its stub is stored: when even the bare stub is refused,
    /// the refusal is about the table, not the entry, and the entry goes back to the buffer.
    original: AuditEntry,
}

/// Checkpoint signing: the key, the table, the newest checkpoint of each tenant this
/// trail knows, and the tenants whose chain advanced since their last checkpoint.
struct Anchors {
    key: CheckpointKey,
    table: String,
    latest: tokio::sync::Mutex<HashMap<String, Checkpoint>>,
    due: Mutex<BTreeSet<String>>,
    /// The heartbeat, when configured.
    heartbeat: Option<checkpoint::Heartbeat>,
    /// Per tenant, the first entry this trail stored after its newest checkpoint: seq,
    /// `prev_hash` and time, so the next checkpoint needs not read it back.
    first_since: Mutex<HashMap<String, FirstEntry>>,
}

/// An entry's seq, `prev_hash` and time.
type FirstEntry = (u64, [u8; 32], u64);

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("table", &self.inner.table)
            .field("capacity", &self.inner.capacity)
            .field("max_buffered", &self.inner.max_buffered)
            .field("security_headroom", &self.inner.security_headroom)
            .field("pending", &self.pending())
            .finish()
    }
}

/// A place in an [`AuditTrail`]'s buffer, taken with [`AuditTrail::reserve`] before the
/// action its entry will record; [`fill`](Self::fill) buffers the entry there. Dropped
/// unfilled (the action was not taken), the place is given back.
#[must_use = "a place is given back when dropped: fill it with the entry"]
pub struct AuditPlace {
    inner: Arc<Inner>,
    /// Whether the place is a slot of the capacity (a permit of `room`).
    slot: bool,
    filled: bool,
}

impl AuditPlace {
    /// Buffers `entry`, [clipped](AuditEntry::clipped), in this place.
    pub fn fill(mut self, entry: AuditEntry) {
        self.filled = true;
        push(&self.inner, Pending::new(entry, self.slot));
    }
}

impl Drop for AuditPlace {
    fn drop(&mut self) {
        if !self.filled {
            self.inner.held.fetch_sub(1, Ordering::SeqCst);
            if self.slot {
                self.inner.room.add_permits(1);
            }
        }
    }
}

impl std::fmt::Debug for AuditPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditPlace").field("slot", &self.slot).field("filled", &self.filled).finish()
    }
}

/// Runs a flush as a task of its own and waits for it: a caller dropped meanwhile (a
/// timeout layer outside the audit layer cancels the request's future at its deadline) no
/// longer cancels the flush, which takes every entry out of the buffer while it stores them.
async fn to_the_end<F>(flush: F) -> Result<usize, AuditError>
where
    F: std::future::Future<Output = Result<usize, AuditError>> + Send + 'static,
{
    match tokio::spawn(flush).await {
        Ok(result) => result,
        Err(err) => Err(AuditError::Unavailable(format!("the flush task ended early: {err}"))),
    }
}

fn push(inner: &Inner, entry: Pending) {
    match inner.buffer.lock() {
        Ok(mut buffer) => buffer.push(entry),
        Err(poisoned) => poisoned.into_inner().push(entry),
    }
}

impl AuditTrail {
    /// A builder.
    pub fn builder() -> AuditTrailBuilder {
        AuditTrailBuilder::default()
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// Entries buffered, not yet stored.
    pub fn pending(&self) -> usize {
        self.inner.buffer.lock().map(|b| b.len()).unwrap_or_default()
    }

    /// Buffers an entry, [clipped](AuditEntry::clipped), or refuses at once when the buffer
    /// is full.
    ///
    /// # Errors
    /// [`AuditError::Full`]; [`AuditError::Saturated`] when entries buffered over the
    /// capacity fill the [ceiling](AuditTrailBuilder::max_buffered).
    pub fn try_append(&self, entry: AuditEntry) -> Result<(), AuditError> {
        // As `try_reserve` and `fill`, without the place's own reference to the trail (two
        // atomic operations a request on the hot path).
        self.take_slot()?;
        push(&self.inner, Pending::new(entry, true));
        Ok(())
    }

    /// Takes a place for one entry at once, as [`try_append`](Self::try_append) would.
    ///
    /// # Errors
    /// As [`try_append`](Self::try_append).
    pub fn try_reserve(&self) -> Result<AuditPlace, AuditError> {
        self.take_slot()?;
        Ok(AuditPlace { inner: self.inner.clone(), slot: true, filled: false })
    }

    /// A slot of the capacity and a place under the ceiling, both at once or neither.
    fn take_slot(&self) -> Result<(), AuditError> {
        let permit =
            self.inner.room.try_acquire().map_err(|_| AuditError::Full { capacity: self.inner.capacity })?;
        if !self.take_place(self.inner.max_buffered) {
            return Err(AuditError::Saturated { max_buffered: self.inner.max_buffered });
        }
        permit.forget();
        Ok(())
    }

    /// Takes a place in the buffer for an entry to come, before the action it will record:
    /// waits for room while the buffer is full (backpressure), but never longer than the
    /// [append wait](AuditTrailBuilder::append_wait), then takes a place over the capacity
    /// (and logs an error), up to the [ceiling](AuditTrailBuilder::max_buffered). At the
    /// ceiling it refuses at once: the store has not taken that many entries, and waiting
    /// would only hold the request. The place is kept until [filled](AuditPlace::fill),
    /// and given back when dropped unfilled.
    ///
    /// # Errors
    /// [`AuditError::Saturated`]: nothing may be done that this trail must record.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(trail: lift::security::audit::AuditTrail) -> Result<(), lift::security::audit::AuditError> {
    /// use lift::security::audit::{AuditEntry, Outcome};
    ///
    /// let place = trail.reserve().await?; // refused: do not act
    /// // ... act ...
    /// place.fill(AuditEntry::new("acme", "user-1", "payments.refund", "payment/pay_1", Outcome::Success));
    /// trail.flush().await?;
    /// # Ok(()) }
    /// ```
    pub async fn reserve(&self) -> Result<AuditPlace, AuditError> {
        self.reserve_under(self.inner.max_buffered).await
    }

    /// Takes a place for a security event (a threat incident, a compliance violation) as
    /// [`reserve`](Self::reserve) does, but refuses only past the ceiling plus the
    /// [security headroom](AuditTrailBuilder::security_headroom): at the ceiling, where
    /// ordinary requests are refused, the event is still kept for the store's return.
    ///
    /// # Errors
    /// [`AuditError::Saturated`] (naming the ceiling plus the headroom) when the headroom is
    /// taken too.
    pub async fn reserve_security_event(&self) -> Result<AuditPlace, AuditError> {
        self.reserve_under(self.inner.max_buffered.saturating_add(self.inner.security_headroom)).await
    }

    async fn reserve_under(&self, ceiling: usize) -> Result<AuditPlace, AuditError> {
        let saturated = || AuditError::Saturated { max_buffered: ceiling };
        if self.inner.held.load(Ordering::SeqCst) >= ceiling {
            return Err(saturated());
        }
        // Room at once, the common case, without the timer (and its clock read) of the wait.
        let slot = match self.inner.room.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => match tokio::time::timeout(self.inner.append_wait, self.inner.room.acquire()).await {
                Ok(Ok(permit)) => Some(permit),
                _ => None,
            },
        };
        if !self.take_place(ceiling) {
            return Err(saturated());
        }
        let slot = match slot {
            Some(permit) => {
                permit.forget();
                true
            }
            None => {
                tracing::error!(
                    capacity = self.inner.capacity,
                    max_buffered = self.inner.max_buffered,
                    pending = self.pending(),
                    "the audit buffer stayed full: buffering the entry over its capacity"
                );
                false
            }
        };
        Ok(AuditPlace { inner: self.inner.clone(), slot, filled: false })
    }

    /// Buffers an entry, [clipped](AuditEntry::clipped), in a place taken as
    /// [`reserve`](Self::reserve) takes it: waiting for room at most the
    /// [append wait](AuditTrailBuilder::append_wait), then over the capacity, up to the
    /// [ceiling](AuditTrailBuilder::max_buffered). At the ceiling it first tries to store
    /// what is held (a flush, unless one is under way), and when that fails the entry is
    /// refused and the refusal logged as an error: memory stays bounded while the store is
    /// down. A
    /// caller that must not act without its entry takes its place with
    /// [`reserve`](Self::reserve) before acting, as [`AuditLayer`](super::AuditLayer) does.
    pub async fn append(&self, entry: AuditEntry) {
        match self.reserve_or_flush().await {
            Ok(place) => place.fill(entry),
            Err(err) => tracing::error!(
                error = %err,
                action = %entry.action,
                "audit entry refused: the buffer is at its ceiling"
            ),
        }
    }

    /// Counts one more place taken, unless `ceiling` is reached.
    fn take_place(&self, ceiling: usize) -> bool {
        // One atomic operation when there is room: a place taken past the ceiling by a
        // racing request is given back at once, so no more than the ceiling stay taken.
        if self.inner.held.fetch_add(1, Ordering::SeqCst) < ceiling {
            return true;
        }
        self.inner.held.fetch_sub(1, Ordering::SeqCst);
        false
    }

    /// Seals and stores every buffered entry; returns how many were stored (a refused
    /// entry's stub counts as one).
    ///
    /// # Errors
    /// [`AuditError::Unavailable`] when DynamoDB fails; the entries not stored are back in
    /// the buffer, in order, for the next flush.
    pub async fn flush(&self) -> Result<usize, AuditError> {
        let trail = self.clone();
        to_the_end(async move {
            let _one = trail.inner.flushing.lock().await;
            trail.flush_locked().await
        })
        .await
    }

    /// Takes a place as [`reserve`](Self::reserve) does; at the ceiling, first tries to
    /// store what is held, unless a flush is already under way, and takes a place if that
    /// made room. Nothing else flushes a trail whose every new entry is refused: this is
    /// how it takes entries again once DynamoDB is back.
    pub(super) async fn reserve_or_flush(&self) -> Result<AuditPlace, AuditError> {
        match self.reserve().await {
            Err(AuditError::Saturated { .. }) => {
                // A flush under way is the same attempt: waiting for it would queue every
                // refused request behind a store that does not answer.
                let trail = self.clone();
                let flushed = to_the_end(async move {
                    match trail.inner.flushing.try_lock() {
                        Ok(_one) => trail.flush_locked().await,
                        Err(_) => Ok(0),
                    }
                })
                .await;
                if let Err(err) = flushed {
                    tracing::warn!(error = %err, "the audit buffer is at its ceiling and the store still fails");
                }
                self.reserve().await
            }
            other => other,
        }
    }

    /// [`flush`](Self::flush), the flush lock held. Run through [`to_the_end`]: dropped
    /// halfway, it would lose the entries it took from the buffer and never give back their
    /// places.
    async fn flush_locked(&self) -> Result<usize, AuditError> {
        let taken = {
            let mut buffer = self.inner.buffer.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *buffer)
        };
        let mut stored = 0;
        let mut freed = 0;
        let mut remaining = taken.into_iter();
        let mut failure = None;
        for mut pending in remaining.by_ref() {
            match self.store(&mut pending).await {
                Ok(()) => {
                    stored += 1;
                    freed += usize::from(pending.slot);
                }
                Err(err) => {
                    failure = Some((pending, err));
                    break;
                }
            }
        }
        self.inner.room.add_permits(freed);
        self.inner.held.fetch_sub(stored, Ordering::SeqCst);
        match failure {
            // The entries are stored: now their signed checkpoints.
            None => {
                self.checkpoint_due().await?;
                self.beat().await.map(|_| stored)
            }
            Some((entry, err)) => {
                let mut back = vec![entry];
                back.extend(remaining);
                let mut buffer = self.inner.buffer.lock().unwrap_or_else(|p| p.into_inner());
                back.append(&mut buffer);
                *buffer = back;
                Err(err)
            }
        }
    }

    /// Flushes what is left; call it when the process is shutting down.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn shutdown(&self) -> Result<usize, AuditError> {
        self.flush().await
    }

    /// Seals one entry after its tenant's head and writes it, rereading the head when
    /// another writer took the seq first. A put whose answer was lost (an error, or a
    /// condition failing on the SDK's own retry) is looked up by its write id first, so a
    /// stored entry is never sealed twice. An entry DynamoDB refuses as such is replaced, at
    /// the same seq, by its stub (see [`AuditTrail`]).
    async fn store(&self, pending: &mut Pending) -> Result<(), AuditError> {
        let tenant = pending.entry.tenant.clone();
        let mut heads = self.inner.heads.lock().await;
        for _ in 0..MAX_RACES {
            let head = match heads.get(&tenant) {
                Some(head) => *head,
                None => self.load_head(&tenant).await?,
            };
            // A put whose answer was lost may have landed, even after an earlier look found
            // nothing there (a write held on the way and applied late): any such seq the
            // chain has reached is read before this entry is sealed again after it.
            for seq in pending.attempted.clone() {
                if seq <= head.seq {
                    if let Some(found) = self.stored_as(pending, seq).await? {
                        self.advanced(&mut heads, &tenant, found);
                        return Ok(());
                    }
                }
            }
            let sealed = SealedEntry::seal(head.seq + 1, pending.entry.clone(), head.hash);
            let item = self.item(&sealed, &pending.write_id);
            let bytes = item_size(&item);
            // Recorded before the put is sent: whatever becomes of its answer (lost, or a
            // condition failing on the SDK's own retry and the look that follows failing
            // too), the seq is read for this entry's id before it is sealed again.
            if !pending.attempted.contains(&sealed.seq) {
                pending.attempted.push(sealed.seq);
            }
            let put = self
                .inner
                .client
                .put_item()
                .table_name(&self.inner.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            let mine = Head { seq: sealed.seq, hash: sealed.hash, at_ms: sealed.entry.at_ms };
            match put {
                Ok(_) => {
                    if let Some(anchors) = &self.inner.anchors {
                        let mut first = anchors.first_since.lock().unwrap_or_else(|p| p.into_inner());
                        first.entry(tenant.clone()).or_insert((
                            sealed.seq,
                            sealed.prev_hash,
                            sealed.entry.at_ms,
                        ));
                    }
                    self.advanced(&mut heads, &tenant, mine);
                    return Ok(());
                }
                Err(err)
                    if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    // Ours, written by an attempt whose answer was lost; else another
                    // writer has this seq: read the real head and try after it.
                    heads.remove(&tenant);
                    if let Some(head) = self.stored_as(pending, sealed.seq).await? {
                        self.advanced(&mut heads, &tenant, head);
                        return Ok(());
                    }
                }
                // DynamoDB refused the item itself, so nothing was written and no retry
                // would take it: its stub takes the same seq, after the same head.
                Err(err) if pending.refused.as_ref().is_none_or(|r| !r.bare) && rejected(&err).is_some() => {
                    let code = rejected(&err).unwrap_or_default().to_owned();
                    tracing::error!(
                        tenant = %tenant,
                        seq = sealed.seq,
                        hash = %hex(&sealed.hash),
                        bytes,
                        code = %code,
                        error = %describe(&err),
                        "DynamoDB refused an audit entry: storing its stub in its place"
                    );
                    let refused = match pending.refused.take() {
                        Some(first) => Refused { bare: true, ..first },
                        None => Refused {
                            hash: sealed.hash,
                            seq: sealed.seq,
                            bytes,
                            code,
                            bare: false,
                            original: pending.entry.clone(),
                        },
                    };
                    pending.entry = unstored(&pending.entry, &refused);
                    pending.refused = Some(refused);
                }
                // Even the bare stub (a tenant, a time and fixed text) was refused: the table
                // refuses items, whatever they hold. The entry itself waits for the next flush.
                Err(err) if rejected(&err).is_some() => {
                    if let Some(refused) = pending.refused.take() {
                        pending.entry = refused.original;
                    }
                    return Err(AuditError::Unavailable(describe(&err)));
                }
                Err(err) => {
                    heads.remove(&tenant);
                    return Err(AuditError::Unavailable(describe(&err)));
                }
            }
        }
        Err(AuditError::Unavailable(format!("lost the race for the next seq of {tenant} {MAX_RACES} times")))
    }

    fn advanced(&self, heads: &mut HashMap<String, Head>, tenant: &str, head: Head) {
        if heads.get(tenant).is_none_or(|known| known.seq < head.seq) {
            heads.insert(tenant.to_owned(), head);
        }
        if let Some(anchors) = &self.inner.anchors {
            anchors.due.lock().unwrap_or_else(|p| p.into_inner()).insert(tenant.to_owned());
        }
    }

    /// The entry at `seq` when it is this pending entry's own write.
    async fn stored_as(&self, pending: &Pending, seq: u64) -> Result<Option<Head>, AuditError> {
        let out = self
            .inner
            .client
            .get_item()
            .table_name(&self.inner.table)
            .key("pk", AttributeValue::S(pk(&pending.entry.tenant)))
            .key("seq", AttributeValue::N(seq.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AuditError::Unavailable(describe(&e)))?;
        let Some(item) = out.item() else { return Ok(None) };
        if string(item, "write_id") != Some(pending.write_id.as_str()) {
            return Ok(None);
        }
        let sealed = sealed_from(item).filter(SealedEntry::is_intact).ok_or_else(|| AuditError::Broken {
            tenant: pending.entry.tenant.clone(),
            broken: ChainBreak::Changed { seq },
        })?;
        Ok(Some(Head { seq, hash: sealed.hash, at_ms: sealed.entry.at_ms }))
    }

    /// Writes a signed checkpoint for every tenant whose chain advanced since its last.
    async fn checkpoint_due(&self) -> Result<(), AuditError> {
        let Some(anchors) = &self.inner.anchors else { return Ok(()) };
        let due: Vec<String> =
            anchors.due.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        for tenant in due {
            let head = self.inner.heads.lock().await.get(&tenant).copied();
            if let Some(head) = head {
                self.write_checkpoint(anchors, &tenant, head, false).await?;
            }
            anchors.due.lock().unwrap_or_else(|p| p.into_inner()).remove(&tenant);
        }
        Ok(())
    }

    /// Writes a heartbeat checkpoint for every tenant this trail has written whose chain
    /// was not certified for the [interval](AuditTrailBuilder::checkpoint_every), after the
    /// entries being flushed; returns how many tenants were certified. Without an interval
    /// it does nothing.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`] when DynamoDB fails; [`AuditError::Broken`] when the
    /// stored chain no longer links to the head this trail knows.
    pub async fn heartbeat(&self) -> Result<usize, AuditError> {
        let _one = self.inner.flushing.lock().await;
        self.beat().await
    }

    async fn beat(&self) -> Result<usize, AuditError> {
        let Some(anchors) = &self.inner.anchors else { return Ok(0) };
        let Some(beat) = &anchors.heartbeat else { return Ok(0) };
        let heads: Vec<(String, Head)> = {
            let heads = self.inner.heads.lock().await;
            let due = beat.due(heads.keys());
            due.into_iter().filter_map(|t| heads.get(&t).map(|h| (t, *h))).collect()
        };
        for (tenant, head) in &heads {
            self.write_checkpoint(anchors, tenant, *head, true).await?;
        }
        Ok(heads.len())
    }

    /// Runs [`heartbeat`](Self::heartbeat) every interval on a tokio task, until the
    /// trail (every clone of it) is dropped; `None` without an interval. A failed beat
    /// is logged and retried at the next tick.
    pub fn spawn_heartbeat(&self) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.inner.anchors.as_ref()?.heartbeat.as_ref()?.every;
        let trail = Arc::downgrade(&self.inner);
        Some(checkpoint::spawn_ticker(every, move || {
            let trail = trail.upgrade().map(|inner| AuditTrail { inner });
            async move {
                let Some(trail) = trail else { return false };
                if let Err(err) = trail.heartbeat().await {
                    tracing::warn!(error = %err, "audit checkpoint heartbeat failed");
                }
                true
            }
        }))
    }

    /// Signs and stores the next checkpoint of `tenant` at `head`, after the newest one
    /// stored (another writer may have added some).
    async fn write_checkpoint(
        &self,
        anchors: &Anchors,
        tenant: &str,
        head: Head,
        heartbeat: bool,
    ) -> Result<(), AuditError> {
        let mut latest = anchors.latest.lock().await;
        for _ in 0..MAX_RACES {
            let prev = match latest.get(tenant) {
                Some(c) => Some(c.clone()),
                None => self.latest_checkpoint(anchors, tenant).await?,
            };
            // Another writer certified a later head, or this one (a heartbeat re-dates it).
            if prev.as_ref().is_some_and(|p| p.seq > head.seq || (p.seq == head.seq && !heartbeat)) {
                if let Some(beat) = &anchors.heartbeat {
                    beat.certified(tenant);
                }
                return Ok(());
            }
            let (from_seq, link) = prev.as_ref().map_or((1, GENESIS), |p| (p.seq + 1, p.head));
            let own = anchors.first_since.lock().unwrap_or_else(|p| p.into_inner()).get(tenant).copied();
            let from_at_ms = match own {
                // No entry since the checkpoint before: it covers none.
                _ if prev.as_ref().is_some_and(|p| p.seq == head.seq) => head.at_ms,
                // This trail stored that entry, after that very head: its time is known.
                Some((seq, prev_hash, at_ms)) if seq == from_seq && prev_hash == link => at_ms,
                _ => self.first_after(tenant, prev.as_ref()).await?,
            };
            let head = (head.seq, head.hash, head.at_ms);
            let next = Checkpoint::next(&anchors.key, tenant, prev.as_ref(), head, from_at_ms, now_ms());
            let put = self
                .inner
                .client
                .put_item()
                .table_name(&anchors.table)
                .set_item(Some(next.item(self.inner.retention.as_secs())))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match put {
                Ok(_) => {
                    let certified = next.seq;
                    latest.insert(tenant.to_owned(), next);
                    let mut first = anchors.first_since.lock().unwrap_or_else(|p| p.into_inner());
                    if first.get(tenant).is_some_and(|(seq, ..)| *seq <= certified) {
                        first.remove(tenant);
                    }
                    drop(first);
                    if let Some(beat) = &anchors.heartbeat {
                        beat.certified(tenant);
                    }
                    return Ok(());
                }
                Err(err)
                    if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    latest.remove(tenant);
                }
                Err(err) => return Err(AuditError::Unavailable(describe(&err))),
            }
        }
        Err(AuditError::Unavailable(format!("lost the race for the next checkpoint of {tenant}")))
    }

    /// The time of the first entry after `prev`'s head, read back and checked to link to
    /// that signed head (or to GENESIS), so a checkpoint never certifies a forged time.
    async fn first_after(&self, tenant: &str, prev: Option<&Checkpoint>) -> Result<u64, AuditError> {
        let (seq, link) = prev.map_or((1, GENESIS), |p| (p.seq + 1, p.head));
        let out = self
            .inner
            .client
            .get_item()
            .table_name(&self.inner.table)
            .key("pk", AttributeValue::S(pk(tenant)))
            .key("seq", AttributeValue::N(seq.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AuditError::Unavailable(describe(&e)))?;
        let broken = |broken| AuditError::Broken { tenant: tenant.to_owned(), broken };
        let item = out.item().ok_or(broken(ChainBreak::Removed { seq }))?;
        let sealed = sealed_from(item).ok_or(broken(ChainBreak::Changed { seq }))?;
        if !sealed.is_intact() || sealed.prev_hash != link {
            return Err(broken(ChainBreak::Changed { seq }));
        }
        Ok(sealed.entry.at_ms)
    }

    async fn latest_checkpoint(
        &self,
        anchors: &Anchors,
        tenant: &str,
    ) -> Result<Option<Checkpoint>, AuditError> {
        let out = self
            .inner
            .client
            .query()
            .table_name(&anchors.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(checkpoint::pk(tenant)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AuditError::Unavailable(describe(&e)))?;
        match out.items().first() {
            None => Ok(None),
            Some(item) => self.trusted(anchors, tenant, item).map(Some),
        }
    }

    /// A stored checkpoint, if it is one and the key signed it.
    fn trusted(
        &self,
        anchors: &Anchors,
        tenant: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Checkpoint, AuditError> {
        let number = number(item, "number").unwrap_or_default();
        Checkpoint::from_item(item).filter(|c| c.tenant == tenant && c.is_signed_by(&anchors.key)).ok_or_else(
            || AuditError::Broken {
                tenant: tenant.to_owned(),
                broken: ChainBreak::ForgedCheckpoint { number },
            },
        )
    }

    /// The stored head of a tenant's chain. With checkpoints, the head must be the one the
    /// newest checkpoint certifies or one after it: a trail never extends a chain whose
    /// tail was cut or rewritten.
    async fn load_head(&self, tenant: &str) -> Result<Head, AuditError> {
        let out = self
            .inner
            .client
            .query()
            .table_name(&self.inner.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk(tenant)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AuditError::Unavailable(describe(&e)))?;
        let broken = |broken| AuditError::Broken { tenant: tenant.to_owned(), broken };
        let head = match out.items().first() {
            None => EMPTY,
            Some(item) => {
                let seq = number(item, "seq").unwrap_or_default();
                let sealed = sealed_from(item).ok_or(broken(ChainBreak::Changed { seq }))?;
                Head { seq, hash: sealed.hash, at_ms: sealed.entry.at_ms }
            }
        };
        if let Some(anchors) = &self.inner.anchors {
            if let Some(c) = self.latest_checkpoint(anchors, tenant).await? {
                if head.seq < c.seq {
                    return Err(broken(if head.seq == 0 {
                        ChainBreak::DeletedChain { seq: c.seq }
                    } else {
                        ChainBreak::MissingTail { seq: c.seq }
                    }));
                }
                if head.seq == c.seq && head.hash != c.head {
                    return Err(broken(ChainBreak::Rewritten { seq: c.seq }));
                }
                anchors.latest.lock().await.insert(tenant.to_owned(), c);
            }
        }
        Ok(head)
    }

    fn item(&self, sealed: &SealedEntry, write_id: &str) -> HashMap<String, AttributeValue> {
        let e = &sealed.entry;
        let expires_at = e.at_ms / 1000 + self.inner.retention.as_secs();
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: u64| AttributeValue::N(v.to_string());
        let mut item = HashMap::from([
            ("pk".to_owned(), s(&pk(&e.tenant))),
            ("seq".to_owned(), n(sealed.seq)),
            ("tenant".to_owned(), s(&e.tenant)),
            ("actor".to_owned(), s(&e.actor)),
            ("action".to_owned(), s(&e.action)),
            ("resource".to_owned(), s(&e.resource)),
            ("outcome".to_owned(), s(e.outcome.as_str())),
            ("at_ms".to_owned(), n(e.at_ms)),
            ("source".to_owned(), s(&e.source)),
            ("request_id".to_owned(), s(&e.request_id)),
            ("data_classes".to_owned(), AttributeValue::L(e.data_classes.iter().map(|c| s(c)).collect())),
            ("detail".to_owned(), s(&e.detail)),
            ("prev_hash".to_owned(), s(&hex(&sealed.prev_hash))),
            ("hash".to_owned(), s(&hex(&sealed.hash))),
            ("expires_at".to_owned(), n(expires_at)),
            ("write_id".to_owned(), s(write_id)),
        ]);
        if let Some(issuer) = &e.issuer {
            item.insert("issuer".to_owned(), s(issuer));
        }
        // Only when set, as the hash binds it: entries that are not replays keep the items
        // they have always had.
        if e.replayed {
            item.insert("replayed".to_owned(), AttributeValue::Bool(true));
        }
        item
    }

    /// A tenant's entries that match the query, oldest first.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`]; [`AuditError::Broken`] for an item that is not an
    /// entry (an attribute missing or of the wrong type).
    pub async fn query(&self, q: AuditQuery) -> Result<Vec<SealedEntry>, AuditError> {
        let mut filters = Vec::new();
        let mut values = HashMap::from([(":pk".to_owned(), AttributeValue::S(pk(&q.tenant)))]);
        if let Some(actor) = &q.actor {
            filters.push("actor = :actor");
            values.insert(":actor".into(), AttributeValue::S(actor.clone()));
        }
        if let Some(action) = &q.action {
            filters.push("#action = :action");
            values.insert(":action".into(), AttributeValue::S(action.clone()));
        }
        if let Some(from) = q.from_ms {
            filters.push("at_ms >= :from");
            values.insert(":from".into(), AttributeValue::N(from.to_string()));
        }
        if let Some(to) = q.to_ms {
            filters.push("at_ms <= :to");
            values.insert(":to".into(), AttributeValue::N(to.to_string()));
        }
        let filter = (!filters.is_empty()).then(|| filters.join(" AND "));
        let names = q.action.is_some().then(|| HashMap::from([("#action".to_owned(), "action".to_owned())]));
        self.read(&q.tenant, filter, values, names).await
    }

    async fn read(
        &self,
        tenant: &str,
        filter: Option<String>,
        values: HashMap<String, AttributeValue>,
        names: Option<HashMap<String, String>>,
    ) -> Result<Vec<SealedEntry>, AuditError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .inner
                .client
                .query()
                .table_name(&self.inner.table)
                .key_condition_expression("pk = :pk")
                .set_filter_expression(filter.clone())
                .set_expression_attribute_values(Some(values.clone()))
                .set_expression_attribute_names(names.clone())
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| AuditError::Unavailable(describe(&e)))?;
            for item in page.items() {
                let seq = number(item, "seq").unwrap_or_default();
                out.push(sealed_from(item).ok_or_else(|| AuditError::Broken {
                    tenant: tenant.to_owned(),
                    broken: ChainBreak::Changed { seq },
                })?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Walks a tenant's stored chain and names the first entry that was changed, removed,
    /// inserted or reordered; with a checkpoint key, also checks it against every signed
    /// checkpoint and names a deleted tail, a deleted prefix, a deleted chain, a rewrite
    /// and a forged checkpoint, from a fresh process as well as from the writer.
    ///
    /// # Errors
    /// [`AuditError::Broken`], [`AuditError::Unavailable`].
    pub async fn verify(&self, tenant: &str) -> Result<Verified, AuditError> {
        self.verify_inner(tenant, None).await
    }

    /// As [`verify`](Self::verify), and the stored chain must also hold `anchor`, a
    /// checkpoint kept outside the tables (from an earlier [`Verified`]): this names the
    /// deletion of the newest entries together with their checkpoints, which the tables
    /// alone cannot show.
    ///
    /// # Errors
    /// As [`verify`](Self::verify); [`ChainBreak::ForgedCheckpoint`] for an anchor the key
    /// did not sign, or when the stored checkpoint of the anchor's number is another one (a
    /// chain cut and grown again).
    pub async fn verify_against(&self, tenant: &str, anchor: &Checkpoint) -> Result<Verified, AuditError> {
        self.verify_inner(tenant, Some(anchor)).await
    }

    async fn verify_inner(&self, tenant: &str, anchor: Option<&Checkpoint>) -> Result<Verified, AuditError> {
        let values = HashMap::from([(":pk".to_owned(), AttributeValue::S(pk(tenant)))]);
        let entries = self.read(tenant, None, values, None).await?;
        let broken = |broken| AuditError::Broken { tenant: tenant.to_owned(), broken };
        let start = entries.first().filter(|e| e.seq > 1).map(|e| (e.seq - 1, e.prev_hash));
        verify_chain(&entries, start).map_err(broken)?;
        let head = entries.last().map_or((0, GENESIS), |e| (e.seq, e.hash));
        if let Some(known) = self.inner.heads.lock().await.get(tenant) {
            if known.seq > head.0 {
                return Err(broken(ChainBreak::Removed { seq: head.0 + 1 }));
            }
        }
        let mut checkpoints = match &self.inner.anchors {
            Some(anchors) => self.read_checkpoints(anchors, tenant).await?,
            None => Vec::new(),
        };
        if let (Some(anchor), Some(anchors)) = (anchor, &self.inner.anchors) {
            if anchor.tenant != tenant || !anchor.is_signed_by(&anchors.key) {
                return Err(broken(ChainBreak::ForgedCheckpoint { number: anchor.number }));
            }
            // A stored checkpoint of the anchor's number must be the anchor itself: after a
            // cut, a writer grows new checkpoints under the old numbers, each signed and
            // linked to the last one left. (A stored chain that stops below the anchor's
            // number is held to the anchor's head by `check_anchors`.)
            match checkpoints.iter().find(|c| c.number == anchor.number) {
                Some(stored) if stored.digest() != anchor.digest() => {
                    return Err(broken(ChainBreak::ForgedCheckpoint { number: anchor.number }));
                }
                Some(_) => {}
                None => checkpoints.push(anchor.clone()),
            }
        }
        check_anchors(&entries, &checkpoints, self.inner.retention.as_secs(), now_ms() / 1000)
            .map_err(broken)?;
        Ok(Verified {
            entries: entries.len() as u64,
            first_seq: entries.first().map_or(0, |e| e.seq),
            head,
            checkpoints: checkpoints.len() as u64,
            latest_checkpoint: checkpoints.iter().max_by_key(|c| c.number).cloned(),
        })
    }

    /// Every checkpoint of a tenant, oldest first, each signed and linked to the one
    /// before it (the oldest stored may follow expired ones).
    async fn read_checkpoints(&self, anchors: &Anchors, tenant: &str) -> Result<Vec<Checkpoint>, AuditError> {
        let mut out: Vec<Checkpoint> = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .inner
                .client
                .query()
                .table_name(&anchors.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(checkpoint::pk(tenant)))
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| AuditError::Unavailable(describe(&e)))?;
            for item in page.items() {
                let c = self.trusted(anchors, tenant, item)?;
                if let Some(prev) = out.last() {
                    if c.number != prev.number + 1 || c.prev_digest != prev.digest() || c.seq < prev.seq {
                        return Err(AuditError::Broken {
                            tenant: tenant.to_owned(),
                            broken: ChainBreak::ForgedCheckpoint { number: c.number },
                        });
                    }
                }
                out.push(c);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Checks a verified chain against signed checkpoints. A checkpoint certifies its head
/// entry until that entry's retention runs out; the oldest checkpoint stored also
/// certifies the head of the one before it (signed into it), so deleting old checkpoints
/// along with old entries shows too.
fn check_anchors(
    entries: &[SealedEntry],
    checkpoints: &[Checkpoint],
    retention_secs: u64,
    now_secs: u64,
) -> Result<(), ChainBreak> {
    let alive = |at_ms: u64| at_ms / 1000 + retention_secs > now_secs + CLOCK_SKEW_SECS;
    let first = entries.first().map(|e| e.seq);
    let last = entries.last().map_or(0, |e| e.seq);
    let mut certified: Vec<(u64, Option<[u8; 32]>, u64)> =
        checkpoints.iter().map(|c| (c.seq, Some(c.head), c.head_at_ms)).collect();
    if let Some(oldest) = checkpoints.iter().min_by_key(|c| c.number).filter(|c| c.number > 1) {
        if !checkpoints.iter().any(|c| c.number == oldest.number - 1) {
            certified.push((oldest.prev_seq, None, oldest.prev_head_at_ms));
        }
    }
    certified.sort_by_key(|c| std::cmp::Reverse(c.0));
    // Every entry a checkpoint covers lives at least as long as the first one it covers.
    for c in checkpoints.iter().filter(|c| alive(c.from_at_ms) && c.seq > c.prev_seq) {
        // No entry at all is named below, from the newest checkpoint.
        if let Some(first) = first.filter(|&f| f > c.prev_seq + 1) {
            return Err(ChainBreak::DeletedPrefix { seq: (first - 1).min(c.seq) });
        }
    }
    for (seq, hash, at_ms) in certified {
        if seq == 0 || !alive(at_ms) {
            continue;
        }
        let Some(first) = first else { return Err(ChainBreak::DeletedChain { seq }) };
        if seq > last {
            return Err(ChainBreak::MissingTail { seq });
        }
        if seq < first {
            return Err(ChainBreak::DeletedPrefix { seq });
        }
        let stored = entries.iter().find(|e| e.seq == seq).map(|e| e.hash);
        if hash.is_some() && stored != hash {
            return Err(ChainBreak::Rewritten { seq });
        }
    }
    Ok(())
}

impl Pending {
    /// A pending entry, clipped now so that the entry sealed and stored is this one.
    fn new(entry: AuditEntry, slot: bool) -> Self {
        Self {
            entry: entry.clipped(),
            write_id: uuid::Uuid::new_v4().to_string(),
            attempted: Vec::new(),
            slot,
            refused: None,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn pk(tenant: &str) -> String {
    format!("AUDIT#{tenant}")
}

fn string<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

fn sealed_from(item: &HashMap<String, AttributeValue>) -> Option<SealedEntry> {
    let entry = AuditEntry {
        tenant: string(item, "tenant")?.to_owned(),
        actor: string(item, "actor")?.to_owned(),
        issuer: string(item, "issuer").map(str::to_owned),
        action: string(item, "action")?.to_owned(),
        resource: string(item, "resource")?.to_owned(),
        outcome: Outcome::parse(string(item, "outcome")?)?,
        at_ms: number(item, "at_ms")?,
        source: string(item, "source")?.to_owned(),
        request_id: string(item, "request_id")?.to_owned(),
        data_classes: item
            .get("data_classes")?
            .as_l()
            .ok()?
            .iter()
            .map(|v| v.as_s().ok().cloned())
            .collect::<Option<Vec<_>>>()?,
        detail: string(item, "detail")?.to_owned(),
        replayed: match item.get("replayed") {
            None => false,
            Some(flag) => *flag.as_bool().ok()?,
        },
    };
    Some(SealedEntry {
        seq: number(item, "seq")?,
        entry,
        prev_hash: unhex(string(item, "prev_hash")?)?,
        hash: unhex(string(item, "hash")?)?,
    })
}

/// The code of an error with which DynamoDB refused the item itself.
fn rejected<E: ProvideErrorMetadata, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> Option<&str> {
    err.as_service_error().and_then(ProvideErrorMetadata::code).filter(|code| REJECTED.contains(code))
}

/// The stub that stands in a chain for an entry DynamoDB refused: the same tenant, time and
/// outcome, the action [`UNSTORED_ACTION`], and in its detail the refused entry's hash,
/// seq, size and the error code. It keeps the refused entry's actor, issuer, source,
/// request id, data classes, replay mark and resource, and names its action in the
/// detail; the bare stub, stored when the stub is refused too, keeps none of them.
fn unstored(entry: &AuditEntry, refused: &Refused) -> AuditEntry {
    let Refused { hash, seq, bytes, code, bare, .. } = refused;
    let mut detail = format!("entry not stored ({code}): hash {} at seq {seq}, {bytes} bytes", hex(hash));
    if *bare {
        return AuditEntry::new(entry.tenant.clone(), "", UNSTORED_ACTION, "", entry.outcome)
            .at(entry.at_ms)
            .detail(detail);
    }
    detail.push_str(&format!(", action {}", entry.action));
    AuditEntry { action: UNSTORED_ACTION.to_owned(), detail, ..entry.clone() }.clipped()
}

/// An item's size as DynamoDB counts it, about: attribute names and values, with the
/// overhead of lists.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len(),
            AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value(v)).sum::<usize>(),
            _ => 1,
        }
    }
    item.iter().map(|(name, v)| name.len() + value(v)).sum()
}

fn describe<E: std::error::Error + 'static>(err: &aws_sdk_dynamodb::error::SdkError<E>) -> String {
    crate::error::error_chain(err)
}
