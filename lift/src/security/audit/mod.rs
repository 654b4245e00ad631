//! A tamper-evident audit trail (feature `audit`).
//!
//! - **Entries** ([`AuditEntry`]) record who, tenant, action, resource, outcome, when, from
//!   where, the request, and the data classes touched.
//! - **Chains.** Each tenant has one hash chain: entry `n` stores SHA-256 over the hash of
//!   entry `n - 1` and a canonical, length-prefixed encoding of `n` and every field
//!   ([`chain_hash`]). [`verify_chain`] walks a chain and names the first entry that was
//!   changed, removed, inserted or reordered ([`ChainBreak`]).
//! - **The trail** ([`AuditTrail`]) buffers entries in memory (bounded, with backpressure),
//!   and [`flush`](AuditTrail::flush) seals and writes them to DynamoDB with conditional
//!   writes, so an entry can never be overwritten; entries expire by TTL; they can be
//!   queried by tenant, actor, action and time range ([`AuditQuery`]), and a tenant's
//!   stored chain verified ([`AuditTrail::verify`]).
//! - **The layer** ([`AuditLayer`]) records one entry per request and flushes at the end
//!   of it, which on Lambda is the end of the invocation (the process may freeze after
//!   it, so nothing waits for a timer). Handlers name the resource, action and data
//!   classes through the [`AuditHandle`] in the request's extensions.
//!
//! Removing the newest or the oldest entries of a chain leaves a shorter valid chain: the
//! trail notices a head it wrote itself going missing, and [`Verified::head`] is the value
//! to anchor elsewhere (a log line, another account) to make truncation evident too.

mod entry;
mod layer;
mod trail;

pub use entry::{chain_hash, verify_chain, AuditEntry, ChainBreak, Outcome, SealedEntry, GENESIS};
pub use layer::{AuditHandle, AuditLayer, AuditService, Audited};
pub use trail::{
    AuditError, AuditQuery, AuditTrail, AuditTrailBuilder, Verified, DEFAULT_CAPACITY, DEFAULT_RETENTION,
};
