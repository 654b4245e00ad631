//! A tamper-evident audit trail (feature `audit`).
//!
//! - **Entries** ([`AuditEntry`]) record who, tenant, action, resource, outcome, when, from
//!   where, the request, the data classes touched, and whether the answer was an
//!   idempotent replay.
//! - **Chains.** Each tenant has one hash chain: entry `n` stores SHA-256 over the hash of
//!   entry `n - 1` and a canonical, length-prefixed encoding of `n` and every field
//!   ([`chain_hash`]). [`verify_chain`] walks a chain and names the first entry that was
//!   changed, removed, inserted or reordered ([`ChainBreak`]).
//! - **The trail** ([`AuditTrail`]) buffers entries in memory (bounded, with backpressure
//!   that never waits longer than the [append wait](AuditTrailBuilder::append_wait)),
//!   up to a hard [ceiling](AuditTrailBuilder::max_buffered) while DynamoDB does not take
//!   them (by default [`DEFAULT_CEILING_FACTOR`] times the capacity): at the ceiling new
//!   entries are refused ([`AuditError::Saturated`]) and nothing held is dropped, while
//!   threat incidents and compliance violations still take a place in a bounded
//!   [headroom](AuditTrailBuilder::security_headroom) above it; once
//!   DynamoDB is back, a flush stores what is held in chain order, and entries are taken
//!   again. [`flush`](AuditTrail::flush) seals and writes them to DynamoDB with conditional
//!   writes, so an entry can never be overwritten; entries expire by TTL; they can be
//!   queried by tenant, actor, action and time range ([`AuditQuery`]), and a tenant's
//!   stored chain verified ([`AuditTrail::verify`]).
//! - **Bounded entries.** Every entry is [clipped](AuditEntry::clipped) when it is
//!   appended, before it is sealed: the detail, resource and other text fields a handler or
//!   a client can make large keep their first bytes up to documented limits
//!   ([`MAX_DETAIL_BYTES`], [`MAX_RESOURCE_BYTES`], [`MAX_FIELD_BYTES`],
//!   [`MAX_DATA_CLASSES`]) and say how much was cut (`…[clipped N bytes]`), so every entry
//!   fits one DynamoDB item (400 KB) and what is stored is what was hashed.
//! - **Refused entries.** An entry DynamoDB refuses anyway (`ValidationException`) is
//!   replaced, at the same place in its chain, by a stub with the action
//!   [`UNSTORED_ACTION`] that records its hash, size and the error: the chain stays
//!   continuous and verifiable, the loss is evidence, and the entries after it are stored.
//!   Stopping the trail instead would fail every later request of every tenant over one
//!   entry, and putting the entry back (as for errors of the store) would do the same
//!   while it waited; the stub loses nothing the chain could have held, since the refused
//!   entry was never stored.
//! - **The layer** ([`AuditLayer`]) records one entry per request and flushes at the end
//!   of it, which on Lambda is the end of the invocation (the process may freeze after
//!   it, so nothing waits for a timer). Handlers name the resource, action and data
//!   classes through the [`AuditHandle`] in the request's extensions. An entry that cannot
//!   be stored fails its request with `503 audit unavailable` unless the layer
//!   [degrades](AuditLayer::degrade); either way the response says what became of it
//!   ([`AuditStorage`]), and the compliance rules count only stored entries as evidence.
//!   The layer takes the entry's place in the buffer ([`AuditTrail::reserve`]) before the
//!   handler runs: at the ceiling, unless a flush it tries first makes room, the request
//!   is refused with that 503 before anything is done, in either mode, so no request is
//!   answered, nor acted on, without its entry held. A 503 for a flush that failed comes
//!   after the handler ran: its entry is held and stored by a later flush. The trail's
//!   own [`append`](AuditTrail::append), which other middleware calls after the fact,
//!   refuses at the ceiling with an error log.
//!
//! - **Checkpoints** ([`Checkpoint`], with a [`CheckpointKey`]): at every flush that
//!   advances a chain, a checkpoint of its head, chained to the one before and signed with
//!   HMAC-SHA256 under a key the tables do not hold (derived through KMS with
//!   [`CheckpointKey::generate_with_kms`]), is stored in a table of its own. [`AuditTrail::verify`]
//!   then names, from any process, a deleted tail, a deleted prefix (entries gone before
//!   their retention ran out), a deleted chain, a re-hashed rewrite and a forged
//!   checkpoint. Deleting the newest entries together with the newest checkpoints leaves
//!   an older valid state; [`Verified::latest_checkpoint`] kept elsewhere and passed to
//!   [`AuditTrail::verify_against`] reveals that too.
//!
//! Without a checkpoint key, a chain is only self-consistent: removing its newest or
//! oldest entries, or rewriting and re-hashing it, leaves a valid chain.

mod checkpoint;
mod entry;
mod layer;
mod trail;

pub use checkpoint::{Checkpoint, CheckpointKey, CHECKPOINT_INTERVAL_ENV};
pub use entry::{
    chain_hash, verify_chain, AuditEntry, ChainBreak, Outcome, SealedEntry, GENESIS, MAX_DATA_CLASSES,
    MAX_DETAIL_BYTES, MAX_FIELD_BYTES, MAX_RESOURCE_BYTES,
};
pub use layer::{
    AuditHandle, AuditLayer, AuditService, AuditStorage, Audited, OnFlushFailure, AUDIT_UNAVAILABLE,
};
pub use trail::{
    AuditError, AuditPlace, AuditQuery, AuditTrail, AuditTrailBuilder, Verified, DEFAULT_APPEND_WAIT,
    DEFAULT_CAPACITY, DEFAULT_CEILING_FACTOR, DEFAULT_RETENTION, UNSTORED_ACTION,
};
