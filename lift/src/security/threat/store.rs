//! The blocklist, token revocations and behaviour counters, in one DynamoDB table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use sha2::{Digest, Sha256};

use super::error::StoreUnavailable;

/// Who a block applies to.
///
/// A JWT's subject is unique only within its issuer: [`Caller`](Self::Caller) blocks one
/// issuer's user and leaves another issuer's user of the same name alone;
/// [`Principal`](Self::Principal) blocks a subject whoever vouched for it.
///
/// # Examples
///
/// ```
/// use lift::security::threat::BlockTarget;
///
/// let partners_alice = BlockTarget::caller("https://partner.example", "alice");
/// assert_ne!(partners_alice, BlockTarget::caller("https://id.example.com", "alice"));
/// let every_alice = BlockTarget::Principal("alice".into());
/// # let _ = every_alice;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlockTarget {
    /// A client IP; an IPv6 address stands for its /64 (one client's network).
    Ip(IpAddr),
    /// A subject, from any issuer (and principals without one).
    Principal(String),
    /// One issuer's subject: a principal with this issuer and this subject.
    Caller {
        /// The issuer that vouched for the subject (the token's `iss`); empty for a
        /// principal without an issuer.
        issuer: String,
        /// The subject (the token's `sub`).
        subject: String,
    },
}

impl BlockTarget {
    /// One issuer's subject.
    pub fn caller(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self::Caller { issuer: issuer.into(), subject: subject.into() }
    }

    /// This principal alone: its issuer's subject (an empty issuer when it has none).
    pub fn of(principal: &crate::Principal) -> Self {
        Self::caller(principal.issuer.as_deref().unwrap_or_default(), principal.subject.as_str())
    }

    fn key(&self) -> String {
        match self {
            Self::Ip(ip) => match blocked_range(*ip) {
                IpAddr::V4(v4) => format!("BLOCK#ip#{v4}"),
                IpAddr::V6(v6) => format!("BLOCK#ip#{v6}/64"),
            },
            Self::Principal(subject) => format!("BLOCK#principal#{subject}"),
            // Qualified as `Principal::qualified_subject` is: the issuer's length first, so
            // no issuer and subject spell another pair's key.
            Self::Caller { issuer, subject } => {
                let mut key = String::from("BLOCK#caller#");
                crate::context::write_qualified(&mut key, issuer, subject);
                key
            }
        }
    }
}

/// The addresses one IP block covers, by their first address: an IPv4 address alone (an
/// IPv4-mapped IPv6 address is that IPv4 address), an IPv6 address's /64, the smallest
/// network a client is given: blocking one /128 of it blocks nothing, the client takes
/// the next address.
pub(crate) fn blocked_range(ip: IpAddr) -> IpAddr {
    crate::context::ip_prefix(ip, 64)
}

/// Which token a revocation names: its `jti` claim, or, for tokens without one, the SHA-256
/// of the whole token (the token itself is never stored).
///
/// # Examples
///
/// ```
/// use lift::security::threat::TokenRef;
///
/// let by_hash = TokenRef::token("eyJhbGciOi...");
/// assert_ne!(by_hash, TokenRef::jti("a1b2"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenRef {
    /// The `jti` claim.
    Jti(String),
    /// The SHA-256 (hex) of the raw token.
    Sha256(String),
}

impl TokenRef {
    /// A token named by its `jti`.
    pub fn jti(jti: impl Into<String>) -> Self {
        Self::Jti(jti.into())
    }

    /// A token named by the SHA-256 of its raw text.
    pub fn token(raw: &str) -> Self {
        let digest = Sha256::digest(raw.as_bytes());
        Self::Sha256(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn key(&self) -> String {
        match self {
            Self::Jti(jti) => format!("REVOKED#jti#{jti}"),
            Self::Sha256(hash) => format!("REVOKED#sha256#{hash}"),
        }
    }
}

/// The blocklist, token revocations and behaviour counters of a service, in the
/// [`blocklist`](crate::store::tables::blocklist) table.
///
/// Items by partition key prefix: `BLOCK#ip#<ipv4>` and `BLOCK#ip#<ipv6 /64>/64`, `BLOCK#principal#<subject>` and
/// `BLOCK#caller#<issuer length>:<issuer>|<subject>` (blocks),
/// `REVOKED#jti#<jti>` and `REVOKED#sha256#<hash>` (revoked tokens),
/// `AUTHFAIL#ip#<ip>#<window>`, `AUTHFAIL#user#<user>#<window>` and
/// `TENANTS#<subject>#<window>` (counters). Every item has `expires_at` (epoch seconds,
/// the TTL) and lookups check `until_ms` themselves: DynamoDB deletes expired items lazily,
/// up to days late.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::security::threat::StoreUnavailable> {
/// use std::time::Duration;
/// use lift::security::threat::{BlockTarget, ThreatStore};
///
/// let store = ThreatStore::new(client);
/// let ip = BlockTarget::Ip("198.51.100.7".parse().unwrap());
/// store.block(&ip, Duration::from_secs(900), "sql injection").await?;
/// assert!(store.blocked_until(&ip).await?.is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ThreatStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl ThreatStore {
    /// A store in the table named by
    /// [`tables::blocklist`](crate::store::tables::blocklist)`().resolve_name()`.
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        Self { client, table: crate::store::tables::blocklist().resolve_name() }
    }

    /// The same store in another table.
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Blocks a client IP or principal for `duration` (a later block replaces an earlier one).
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails.
    pub async fn block(
        &self,
        target: &BlockTarget,
        duration: Duration,
        reason: &str,
    ) -> Result<(), StoreUnavailable> {
        self.put_until(target.key(), duration, reason).await
    }

    /// Lifts a block.
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails.
    pub async fn unblock(&self, target: &BlockTarget) -> Result<(), StoreUnavailable> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(target.key()))
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// When a block on the target ends, if it is blocked now.
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails.
    pub async fn blocked_until(&self, target: &BlockTarget) -> Result<Option<SystemTime>, StoreUnavailable> {
        self.live_until(target.key()).await
    }

    /// Whether any of `targets` is blocked now: one strongly consistent `BatchGetItem`, so
    /// a request's IP, subject and caller cost one round trip. Keys DynamoDB leaves
    /// unprocessed are asked for once more; still unprocessed, the read fails. The layer
    /// calls this on every request: its role needs `dynamodb:BatchGetItem` on the table (a
    /// refused read fails open, logged).
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails or leaves keys unread.
    pub async fn any_blocked(&self, targets: &[BlockTarget]) -> Result<bool, StoreUnavailable> {
        self.any_blocked_or_revoked(targets, &[]).await
    }

    /// Whether any of `targets` is blocked or any of `tokens` revoked, in the same read as
    /// [`any_blocked`](Self::any_blocked): the layer's check of every request.
    ///
    /// # Errors
    /// As [`any_blocked`](Self::any_blocked).
    pub async fn any_blocked_or_revoked(
        &self,
        targets: &[BlockTarget],
        tokens: &[TokenRef],
    ) -> Result<bool, StoreUnavailable> {
        let mut keys: Vec<String> =
            targets.iter().map(BlockTarget::key).chain(tokens.iter().map(TokenRef::key)).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut pending: Vec<HashMap<String, AttributeValue>> =
            keys.into_iter().map(|pk| HashMap::from([("pk".to_owned(), AttributeValue::S(pk))])).collect();
        let now = now_ms();
        for _ in 0..2 {
            if pending.is_empty() {
                return Ok(false);
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .projection_expression("until_ms")
                .build()
                .map_err(|e| StoreUnavailable::new(e.to_string()))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            let found =
                out.responses().and_then(|r| r.get(&self.table)).map(Vec::as_slice).unwrap_or_default();
            if found.iter().any(|item| number(item, "until_ms").is_some_and(|ms| ms > now)) {
                return Ok(true);
            }
            pending = crate::store::unprocessed_keys(out.unprocessed_keys, &self.table);
        }
        if pending.is_empty() {
            return Ok(false);
        }
        Err(StoreUnavailable::new(format!("{} blocklist keys left unread", pending.len())))
    }

    /// Revokes a token until `expires_at` (its `exp`: after that it is refused anyway).
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails.
    pub async fn revoke(&self, token: &TokenRef, expires_at: SystemTime) -> Result<(), StoreUnavailable> {
        let left = expires_at.duration_since(SystemTime::now()).unwrap_or_default();
        self.put_until(token.key(), left, "revoked").await
    }

    /// Whether a token is revoked (and not yet past the expiry it was revoked with).
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails.
    pub async fn is_revoked(&self, token: &TokenRef) -> Result<bool, StoreUnavailable> {
        Ok(self.live_until(token.key()).await?.is_some())
    }

    async fn put_until(&self, pk: String, duration: Duration, reason: &str) -> Result<(), StoreUnavailable> {
        let until_ms = now_ms() + duration.as_millis() as u64;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk))
            .item("until_ms", AttributeValue::N(until_ms.to_string()))
            .item("expires_at", AttributeValue::N(until_ms.div_ceil(1000).to_string()))
            .item("reason", AttributeValue::S(reason.to_owned()))
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn live_until(&self, pk: String) -> Result<Option<SystemTime>, StoreUnavailable> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let until = out.item().and_then(|item| number(item, "until_ms"));
        Ok(until.filter(|&ms| ms > now_ms()).map(|ms| UNIX_EPOCH + Duration::from_millis(ms)))
    }

    /// Adds one to the counter `pk` (atomic `ADD`), which expires at `expires_at` (epoch
    /// seconds); returns the count after this one, and whether its trip was claimed.
    pub(crate) async fn increment(&self, pk: String, expires_at: u64) -> Result<Count, StoreUnavailable> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .update_expression("ADD #count :one SET expires_at = :exp")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let attributes = out.attributes();
        let count = attributes
            .and_then(|a| number(a, "count"))
            .ok_or_else(|| StoreUnavailable::new("the counter update returned no count"))?;
        Ok(Count { count, claimed: attributes.is_some_and(|a| a.contains_key("tripped")) })
    }

    /// Marks the counter or set `pk` as tripped; returns whether this call did (exactly one
    /// call per counter does, however many instances race: the write is conditional).
    pub(crate) async fn claim_trip(&self, pk: String) -> Result<bool, StoreUnavailable> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .update_expression("SET tripped = :yes")
            // The counter or set must still exist: a claim never creates an item.
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(tripped)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(err) => Err(unavailable(&err)),
        }
    }

    /// Adds `member` to the string set `pk` (atomic `ADD`); returns the set's size after,
    /// and whether its trip was claimed ([`ThreatStore::claim_trip`]).
    pub(crate) async fn add_member(
        &self,
        pk: String,
        member: &str,
        expires_at: u64,
    ) -> Result<Count, StoreUnavailable> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .update_expression("ADD members :member SET expires_at = :exp")
            .expression_attribute_values(":member", AttributeValue::Ss(vec![member.to_owned()]))
            .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let attributes = out.attributes();
        let count = attributes
            .and_then(|a| a.get("members"))
            .and_then(|m| m.as_ss().ok())
            .map(|m| m.len() as u64)
            .ok_or_else(|| StoreUnavailable::new("the set update returned no members"))?;
        Ok(Count { count, claimed: attributes.is_some_and(|a| a.contains_key("tripped")) })
    }
}

/// A counter (or a set's size) after one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count {
    /// The count, this event included.
    pub(crate) count: u64,
    /// Whether an event already claimed the counter's trip ([`ThreatStore::claim_trip`]).
    pub(crate) claimed: bool,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

fn unavailable<E: std::error::Error + 'static>(
    err: &aws_sdk_dynamodb::error::SdkError<E>,
) -> StoreUnavailable {
    StoreUnavailable(crate::error::error_chain(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_their_prefixes() {
        assert_eq!(BlockTarget::Ip("10.0.0.1".parse().unwrap()).key(), "BLOCK#ip#10.0.0.1");
        assert_eq!(BlockTarget::Ip("::ffff:10.0.0.1".parse().unwrap()).key(), "BLOCK#ip#10.0.0.1");
        // One IPv6 client holds a /64: the block covers it whole.
        let a = BlockTarget::Ip("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = BlockTarget::Ip("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap());
        assert_eq!(
            (a.key(), b.key()),
            ("BLOCK#ip#2001:db8:1:2::/64".to_owned(), "BLOCK#ip#2001:db8:1:2::/64".to_owned())
        );
        assert_ne!(a.key(), BlockTarget::Ip("2001:db8:1:3::1".parse().unwrap()).key());
        assert_eq!(BlockTarget::Principal("u-1".into()).key(), "BLOCK#principal#u-1");
        assert_eq!(
            BlockTarget::caller("https://id.example.com", "u-1").key(),
            "BLOCK#caller#22:https://id.example.com|u-1"
        );
        assert_eq!(TokenRef::jti("j1").key(), "REVOKED#jti#j1");
        let TokenRef::Sha256(hash) = TokenRef::token("abc") else { panic!("a hash") };
        assert_eq!(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_caller_is_blocked_as_its_principal_qualifies_it() {
        let principal = crate::Principal::new("alice", "acme").with_issuer("https://partner.example");
        let BlockTarget::Caller { issuer, subject } = BlockTarget::of(&principal) else { panic!("a caller") };
        assert_eq!((issuer.as_str(), subject.as_str()), ("https://partner.example", "alice"));
        assert_eq!(
            BlockTarget::of(&principal).key(),
            format!("BLOCK#caller#{}", principal.qualified_subject()),
            "one way to qualify a caller"
        );
        let no_issuer = crate::Principal::new("alice", "acme");
        assert_eq!(BlockTarget::of(&no_issuer), BlockTarget::caller("", "alice"));
        assert_eq!(
            BlockTarget::of(&no_issuer).key(),
            format!("BLOCK#caller#{}", no_issuer.qualified_subject())
        );
    }

    proptest::proptest! {
        /// Two callers share a block key only when issuer and subject are both the same,
        /// whatever `|`, `:` and digits they hold: a subject that spells another issuer's
        /// user cannot be blocked for it, nor lift its block.
        #[test]
        fn caller_keys_never_collide(
            a in ("[a-c|:0-9]{0,6}", "[a-c|:0-9]{0,6}"),
            b in ("[a-c|:0-9]{0,6}", "[a-c|:0-9]{0,6}"),
        ) {
            let key = |(issuer, subject): &(String, String)| BlockTarget::caller(issuer.as_str(), subject.as_str()).key();
            proptest::prop_assert_eq!(key(&a) == key(&b), a == b);
        }

        /// A subject moved across the join: `("a|b", "c")` and `("a", "b|c")` are two callers.
        #[test]
        fn text_moved_across_the_join_is_another_caller(
            left in "[a-c]{0,4}", middle in "[a-c|:0-9]{0,4}", right in "[a-c]{0,4}",
        ) {
            let one = BlockTarget::caller(format!("{left}|{middle}"), right.as_str()).key();
            let other = BlockTarget::caller(left.as_str(), format!("{middle}|{right}")).key();
            proptest::prop_assert_ne!(one, other);
        }
    }
}
