//! The audit trail: a bounded in-memory buffer, flushed to DynamoDB in per-tenant hash
//! chains with conditional writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tokio::sync::Semaphore;

use super::entry::{hex, unhex, verify_chain, AuditEntry, ChainBreak, Outcome, SealedEntry, GENESIS};

/// Entries the buffer holds before `try_append` refuses and `append` waits.
pub const DEFAULT_CAPACITY: usize = 1024;
/// How long entries are kept (DynamoDB TTL): about seven years, as PCI-DSS and HIPAA
/// records commonly require. Set it per deployment.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 366 * 24 * 3600);
/// How often a flush re-reads a chain's head and reseals after losing a race for a seq.
const MAX_RACES: usize = 16;

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
    /// The first seq stored: above 1 when older entries expired (TTL). Removing the oldest
    /// entries cannot be told from their expiry without an anchor kept elsewhere.
    pub first_seq: u64,
    /// The head: the last seq and its hash (keep it elsewhere to anchor the chain).
    pub head: (u64, [u8; 32]),
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
    retention: Option<Duration>,
}

impl AuditTrailBuilder {
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

    /// How long entries are kept (default [`DEFAULT_RETENTION`]).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Builds the trail.
    ///
    /// # Errors
    /// [`AuditError::Config`] without a client, or with a zero capacity.
    pub fn build(self) -> Result<AuditTrail, AuditError> {
        let client = self.client.ok_or(AuditError::Config("a DynamoDB client is required"))?;
        let capacity = self.capacity.unwrap_or(DEFAULT_CAPACITY);
        if capacity == 0 {
            return Err(AuditError::Config("the capacity must be at least 1"));
        }
        Ok(AuditTrail {
            inner: Arc::new(Inner {
                client,
                table: self.table.unwrap_or_else(|| crate::store::tables::audit().resolve_name()),
                capacity,
                retention: self.retention.unwrap_or(DEFAULT_RETENTION),
                buffer: Mutex::new(Vec::with_capacity(capacity)),
                room: Semaphore::new(capacity),
                heads: tokio::sync::Mutex::new(HashMap::new()),
                flushing: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

/// The tamper-evident audit trail of a service.
///
/// Appending only buffers the entry (bounded: [`try_append`](Self::try_append) refuses when
/// full, [`append`](Self::append) waits for room). [`flush`](Self::flush), at the end of
/// each invocation and on shutdown, seals each tenant's entries into its hash chain and
/// writes them with `PutItem ... attribute_not_exists(pk)`, so no entry is ever
/// overwritten. Two instances appending to one tenant race for the next seq: the loser
/// re-reads the head and reseals, so the chain stays one line. When DynamoDB fails, the
/// unwritten entries go back to the buffer in order: nothing is lost.
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
    retention: Duration,
    buffer: Mutex<Vec<AuditEntry>>,
    /// One permit per free slot: taken on append, given back when the entry is stored.
    room: Semaphore,
    /// The last (seq, hash) of each tenant's chain this trail knows.
    heads: tokio::sync::Mutex<HashMap<String, (u64, [u8; 32])>>,
    /// One flush at a time, so entries keep their order.
    flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("table", &self.inner.table)
            .field("capacity", &self.inner.capacity)
            .field("pending", &self.pending())
            .finish()
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

    /// Buffers an entry, or refuses at once when the buffer is full.
    ///
    /// # Errors
    /// [`AuditError::Full`].
    pub fn try_append(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let permit =
            self.inner.room.try_acquire().map_err(|_| AuditError::Full { capacity: self.inner.capacity })?;
        permit.forget();
        self.push(entry);
        Ok(())
    }

    /// Buffers an entry, waiting for room while the buffer is full (backpressure).
    pub async fn append(&self, entry: AuditEntry) {
        if let Ok(permit) = self.inner.room.acquire().await {
            permit.forget();
        }
        self.push(entry);
    }

    fn push(&self, entry: AuditEntry) {
        match self.inner.buffer.lock() {
            Ok(mut buffer) => buffer.push(entry),
            Err(poisoned) => poisoned.into_inner().push(entry),
        }
    }

    /// Seals and stores every buffered entry; returns how many were stored.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`] when DynamoDB fails; the entries not stored are back in
    /// the buffer, in order, for the next flush.
    pub async fn flush(&self) -> Result<usize, AuditError> {
        let _one = self.inner.flushing.lock().await;
        let taken = {
            let mut buffer = self.inner.buffer.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *buffer)
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let mut stored = 0;
        let mut remaining = taken.into_iter();
        let mut failure = None;
        for entry in remaining.by_ref() {
            match self.store(entry.clone()).await {
                Ok(()) => stored += 1,
                Err(err) => {
                    failure = Some((entry, err));
                    break;
                }
            }
        }
        self.inner.room.add_permits(stored);
        match failure {
            None => Ok(stored),
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
    /// another writer took the seq first.
    async fn store(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let mut heads = self.inner.heads.lock().await;
        for _ in 0..MAX_RACES {
            let head = match heads.get(&entry.tenant) {
                Some(head) => *head,
                None => self.load_head(&entry.tenant).await?,
            };
            let sealed = SealedEntry::seal(head.0 + 1, entry.clone(), head.1);
            let put = self
                .inner
                .client
                .put_item()
                .table_name(&self.inner.table)
                .set_item(Some(self.item(&sealed)))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match put {
                Ok(_) => {
                    heads.insert(entry.tenant.clone(), (sealed.seq, sealed.hash));
                    return Ok(());
                }
                Err(err)
                    if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    // Another writer has this seq: read the real head and try after it.
                    heads.remove(&entry.tenant);
                }
                Err(err) => return Err(AuditError::Unavailable(describe(&err))),
            }
        }
        Err(AuditError::Unavailable(format!(
            "lost the race for the next seq of {} {MAX_RACES} times",
            entry.tenant
        )))
    }

    async fn load_head(&self, tenant: &str) -> Result<(u64, [u8; 32]), AuditError> {
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
        match out.items().first() {
            None => Ok((0, GENESIS)),
            Some(item) => {
                let seq = number(item, "seq").unwrap_or_default();
                let hash = string(item, "hash").and_then(unhex);
                hash.map(|h| (seq, h)).ok_or(AuditError::Broken {
                    tenant: tenant.to_owned(),
                    broken: ChainBreak::Changed { seq },
                })
            }
        }
    }

    fn item(&self, sealed: &SealedEntry) -> HashMap<String, AttributeValue> {
        let e = &sealed.entry;
        let expires_at = e.at_ms / 1000 + self.inner.retention.as_secs();
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: u64| AttributeValue::N(v.to_string());
        HashMap::from([
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
        ])
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
    /// inserted or reordered. The chain starts at the first entry stored (older ones may
    /// have expired); a head this trail wrote itself must still be there.
    ///
    /// # Errors
    /// [`AuditError::Broken`], [`AuditError::Unavailable`].
    pub async fn verify(&self, tenant: &str) -> Result<Verified, AuditError> {
        let values = HashMap::from([(":pk".to_owned(), AttributeValue::S(pk(tenant)))]);
        let entries = self.read(tenant, None, values, None).await?;
        let broken = |broken| AuditError::Broken { tenant: tenant.to_owned(), broken };
        let start = entries.first().filter(|e| e.seq > 1).map(|e| (e.seq - 1, e.prev_hash));
        verify_chain(&entries, start).map_err(broken)?;
        let head = entries.last().map_or((0, GENESIS), |e| (e.seq, e.hash));
        if let Some(known) = self.inner.heads.lock().await.get(tenant) {
            if known.0 > head.0 {
                return Err(broken(ChainBreak::Removed { seq: head.0 + 1 }));
            }
        }
        Ok(Verified { entries: entries.len() as u64, first_seq: entries.first().map_or(0, |e| e.seq), head })
    }
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
    };
    Some(SealedEntry {
        seq: number(item, "seq")?,
        entry,
        prev_hash: unhex(string(item, "prev_hash")?)?,
        hash: unhex(string(item, "hash")?)?,
    })
}

fn describe<E: std::error::Error + 'static>(err: &aws_sdk_dynamodb::error::SdkError<E>) -> String {
    crate::error::error_chain(err)
}
