//! The shared limit in DynamoDB: one conditional `UpdateItem` decides each request.
//!
//! The item layout is documented on the [module](super).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use tokio::sync::OnceCell;

use super::algorithm::Quota;
use super::{Algorithm, LimiterUnavailable, RateLimited};

/// Keys longer than this are hashed: a partition key holds at most 2048 bytes.
const MAX_KEY_LEN: usize = 256;
/// How many previous-window counts a process keeps at most: about 250 bytes each with a key
/// of 50 bytes, so some 4 MiB.
const PREVIOUS_MAX: usize = 16_384;
/// Tries of the token bucket's conditional updates under contention.
const BUCKET_ATTEMPTS: usize = 6;

/// The previous window's count per key: (window, count read once).
type PreviousWindows = HashMap<String, (u64, Arc<OnceCell<u64>>)>;

/// What the shared limit decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admitted(Quota),
    Refused(RateLimited),
}

pub(crate) struct SharedLimit {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    pub(crate) name: String,
    pub(crate) algorithm: Algorithm,
    pub(crate) limit: u32,
    pub(crate) window: Duration,
    pub(crate) timeout: Duration,
    /// The algorithm, limit and window in every item key (`tb:10/1000`): limiters that share
    /// a name and a table never share an item unless they count the same way.
    signature: String,
    previous: Mutex<PreviousWindows>,
}

impl SharedLimit {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: aws_sdk_dynamodb::Client,
        table: String,
        name: String,
        algorithm: Algorithm,
        limit: u32,
        window: Duration,
        timeout: Duration,
    ) -> Self {
        let signature = signature(algorithm, limit, window);
        Self { client, table, name, algorithm, limit, window, timeout, signature, previous: Mutex::default() }
    }

    /// The partition key of `key`'s window starting at `start` (epoch ms).
    fn window_item(&self, key: &str, start: u64) -> String {
        format!("{}#{key}#{}#{start}", self.name, self.signature)
    }

    /// Decides one request of `key`, within the store timeout.
    pub(crate) async fn decide(&self, key: &str) -> Result<Verdict, LimiterUnavailable> {
        let key = storage_key(key);
        let decision = async {
            match self.algorithm {
                Algorithm::FixedWindow => self.window_decide(&key, false).await,
                Algorithm::SlidingWindow => self.window_decide(&key, true).await,
                Algorithm::TokenBucket => self.bucket_decide(&key).await,
            }
        };
        match tokio::time::timeout(self.timeout, decision).await {
            Ok(verdict) => verdict,
            Err(_) => Err(LimiterUnavailable::new("dynamodb did not answer in time")),
        }
    }

    async fn window_decide(&self, key: &str, sliding: bool) -> Result<Verdict, LimiterUnavailable> {
        let window_ms = self.window.as_millis().max(1) as u64;
        let now = now_micros() / 1000;
        let start = now - now % window_ms;
        let elapsed = now - start;
        let end = start + window_ms;
        let limit = u64::from(self.limit);
        // The weighted share of the previous window still inside the sliding window, rounded
        // up so the estimate never under-counts.
        let carried = if sliding {
            let previous = self.previous_count(key, start - window_ms.min(start)).await?;
            (previous * (window_ms - elapsed)).div_ceil(window_ms)
        } else {
            0
        };
        let threshold = limit.saturating_sub(carried);
        let until_end = Duration::from_millis(end - now);
        if threshold == 0 {
            let retry = self.sliding_retry(key, start, now, 0).await?;
            return Ok(Verdict::Refused(RateLimited::new(self.limit, retry, until_end)));
        }
        // Expire after the next window too: the sliding window reads this one as its previous.
        let expires_at = (end + window_ms) / 1000 + 60;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.window_item(key, start)))
            .update_expression("ADD #count :one SET #exp = :exp")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":limit", number(threshold))
            .expression_attribute_values(":exp", number(expires_at))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let count = out.attributes().and_then(|a| read_number(a.get("count"))).unwrap_or(threshold);
                Ok(Verdict::Admitted(Quota {
                    limit: self.limit,
                    remaining: Some(threshold.saturating_sub(count).min(limit) as u32),
                    reset: until_end,
                }))
            }
            Err(SdkError::ServiceError(err)) if err.err().is_conditional_check_failed_exception() => {
                let retry = if sliding {
                    let count = match err.err() {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                            ccf,
                        ) => ccf.item().and_then(|i| read_number(i.get("count"))).unwrap_or(threshold),
                        _ => threshold,
                    };
                    self.sliding_retry(key, start, now, count).await?
                } else {
                    until_end
                };
                Ok(Verdict::Refused(RateLimited::new(self.limit, retry, until_end)))
            }
            Err(err) => Err(unavailable(&err)),
        }
    }

    /// When the sliding estimate admits one more request, given `count` in the current
    /// window: the previous window's weight shrinks as time passes.
    async fn sliding_retry(
        &self,
        key: &str,
        start: u64,
        now: u64,
        count: u64,
    ) -> Result<Duration, LimiterUnavailable> {
        let window_ms = self.window.as_millis().max(1) as u64;
        let limit = u64::from(self.limit);
        let previous = self.previous_count(key, start - window_ms.min(start)).await?;
        let at = match (limit.checked_sub(count + 1), previous) {
            (Some(room), p) if p > 0 => window_ms - (room * window_ms / p).min(window_ms),
            _ => window_ms,
        };
        Ok(Duration::from_millis((start + at).saturating_sub(now).max(1)))
    }

    /// The final count of the previous window, read once per key and window per process.
    async fn previous_count(&self, key: &str, previous_start: u64) -> Result<u64, LimiterUnavailable> {
        let pk = self.window_item(key, previous_start);
        let cell = {
            let mut cache = self.previous.lock().unwrap_or_else(|e| e.into_inner());
            previous_cell(&mut cache, pk.clone(), previous_start)
        };
        let count = cell
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(pk))
                    .consistent_read(true)
                    .projection_expression("#count")
                    .expression_attribute_names("#count", "count")
                    .send()
                    .await
                    .map_err(|e| unavailable(&e))?;
                Ok::<_, LimiterUnavailable>(out.item().and_then(|i| read_number(i.get("count"))).unwrap_or(0))
            })
            .await?;
        Ok(*count)
    }

    async fn bucket_decide(&self, key: &str) -> Result<Verdict, LimiterUnavailable> {
        let limit = u64::from(self.limit);
        let t = (self.window.as_micros() as u64 / limit).max(1);
        let tau = t * limit;
        let pk = AttributeValue::S(format!("{}#{key}#{}", self.name, self.signature));
        for _ in 0..BUCKET_ATTEMPTS {
            let now = now_micros();
            let max = now + tau - t;
            let expires_at = number((now + tau) / 1_000_000 + 60);
            let take = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", pk.clone())
                .update_expression("SET #tat = #tat + :t, #exp = :exp")
                .condition_expression("#tat BETWEEN :now AND :max")
                .expression_attribute_names("#tat", "tat")
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_values(":t", number(t))
                .expression_attribute_values(":now", number(now))
                .expression_attribute_values(":max", number(max))
                .expression_attribute_values(":exp", expires_at.clone())
                .return_values(ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let old_tat = match take {
                Ok(out) => {
                    let tat = out.attributes().and_then(|a| read_number(a.get("tat"))).unwrap_or(now + t);
                    return Ok(Verdict::Admitted(self.bucket_quota(now, tat, t, tau)));
                }
                Err(SdkError::ServiceError(err)) if err.err().is_conditional_check_failed_exception() => {
                    match err.err() {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                            ccf,
                        ) => ccf.item().and_then(|i| read_number(i.get("tat"))),
                        _ => None,
                    }
                }
                Err(err) => return Err(unavailable(&err)),
            };
            match old_tat {
                Some(tat) if tat > max => {
                    let retry = Duration::from_micros(tat - max);
                    let reset = Duration::from_micros(tat - now);
                    return Ok(Verdict::Refused(RateLimited::new(self.limit, retry, reset)));
                }
                // Another request moved it between our clock read and the update: try again.
                Some(tat) if tat >= now => continue,
                // A full bucket (or none yet): restart it with this request's token taken.
                _ => {}
            }
            let restart = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", pk.clone())
                .update_expression("SET #tat = :tat, #exp = :exp")
                .condition_expression("attribute_not_exists(#tat) OR #tat < :now")
                .expression_attribute_names("#tat", "tat")
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_values(":tat", number(now + t))
                .expression_attribute_values(":now", number(now))
                .expression_attribute_values(":exp", expires_at)
                .send()
                .await;
            match restart {
                Ok(_) => return Ok(Verdict::Admitted(self.bucket_quota(now, now + t, t, tau))),
                Err(SdkError::ServiceError(err)) if err.err().is_conditional_check_failed_exception() => {
                    continue
                }
                Err(err) => return Err(unavailable(&err)),
            }
        }
        // Only reached under heavy contention on a bucket that is full or nearly so, or on a
        // DynamoDB that does not return the item of a failed condition: refuse for one token.
        Ok(Verdict::Refused(RateLimited::new(self.limit, Duration::from_micros(t), Duration::from_micros(t))))
    }

    fn bucket_quota(&self, now: u64, tat: u64, t: u64, tau: u64) -> Quota {
        Quota {
            limit: self.limit,
            remaining: Some(((now + tau).saturating_sub(tat) / t).min(u64::from(self.limit)) as u32),
            reset: Duration::from_micros(tat.saturating_sub(now)),
        }
    }
}

/// The cell of the count at `pk`, added to `cache` when missing; a full cache first drops
/// the counts of older windows, and when those of `previous_start` alone fill half of it
/// (clients choosing fresh keys), drops them all. A dropped count costs a second read when
/// its key comes back, and reads the same: its window has passed. Keeping them would grow
/// the cache by an entry per fresh key for a whole window, and a sweep that frees nothing
/// would scan it for every new key.
fn previous_cell(cache: &mut PreviousWindows, pk: String, previous_start: u64) -> Arc<OnceCell<u64>> {
    if cache.len() >= PREVIOUS_MAX && !cache.contains_key(&pk) {
        cache.retain(|_, (start, _)| *start >= previous_start);
        if cache.len() >= PREVIOUS_MAX / 2 {
            cache.clear();
        }
    }
    cache.entry(pk).or_insert_with(|| (previous_start, Arc::new(OnceCell::new()))).1.clone()
}

/// `<algorithm>:<limit>/<window in ms>`, e.g. `fw:100/60000`, `sw:5/1000`, `tb:10/1000`; a
/// window with a fraction of a millisecond keeps it (`tb:3/1.5`), so no two windows meet.
fn signature(algorithm: Algorithm, limit: u32, window: Duration) -> String {
    let tag = match algorithm {
        Algorithm::FixedWindow => "fw",
        Algorithm::SlidingWindow => "sw",
        Algorithm::TokenBucket => "tb",
    };
    let fraction = window.as_nanos() % 1_000_000;
    let mut out = format!("{tag}:{limit}/{}", window.as_millis());
    if fraction > 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or_default()
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn read_number(value: Option<&AttributeValue>) -> Option<u64> {
    value.and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// The key as stored: as is when short, else its SHA-256 (a long custom key must not
/// overflow the partition key, and must not be truncated into another key).
fn storage_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() <= MAX_KEY_LEN {
        return key.into();
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(2 + 64);
    out.push_str("h:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out.into()
}

/// Why the store failed, without request data: the AWS error code or the kind of failure.
fn unavailable<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> LimiterUnavailable {
    let reason = match err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch failure".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        _ => "request not sent".to_owned(),
    };
    tracing::warn!(reason = %reason, "rate limit store failed");
    LimiterUnavailable::new(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two limiters on the default name must not write one item: a 10/s and a 1000/h token
    /// bucket sharing `lift#t:acme#tb` throttled the tenant far below both.
    #[test]
    fn item_keys_name_the_algorithm_limit_and_window() {
        let sig = signature;
        assert_eq!(sig(Algorithm::TokenBucket, 10, Duration::from_secs(1)), "tb:10/1000");
        assert_eq!(sig(Algorithm::TokenBucket, 1000, Duration::from_secs(3600)), "tb:1000/3600000");
        assert_eq!(sig(Algorithm::FixedWindow, 10, Duration::from_secs(1)), "fw:10/1000");
        assert_eq!(sig(Algorithm::SlidingWindow, 10, Duration::from_secs(1)), "sw:10/1000");
        assert_eq!(sig(Algorithm::TokenBucket, 3, Duration::from_micros(1500)), "tb:3/1.5");
        assert_eq!(sig(Algorithm::TokenBucket, 3, Duration::from_nanos(1_000_001)), "tb:3/1.000001");
    }

    /// A client choosing a fresh key per request must not grow the cache for a whole window.
    #[test]
    fn previous_counts_stay_bounded_under_fresh_keys() {
        let mut cache = PreviousWindows::new();
        for i in 0..3 * PREVIOUS_MAX {
            previous_cell(&mut cache, format!("lift#f:{i}#sw:1/1000#5000"), 5000);
            assert!(cache.len() <= PREVIOUS_MAX, "{} entries after {i} keys", cache.len());
        }
    }

    #[test]
    fn a_full_cache_drops_older_windows_first() {
        let mut cache = PreviousWindows::new();
        for i in 0..PREVIOUS_MAX - 10 {
            previous_cell(&mut cache, format!("k{i}#4000"), 4000);
        }
        let kept: Vec<_> = (0..10).map(|i| previous_cell(&mut cache, format!("k{i}#5000"), 5000)).collect();
        kept[0].set(7).unwrap();
        previous_cell(&mut cache, "fresh#5000".to_owned(), 5000);
        assert_eq!(cache.len(), 11, "the older window's counts went");
        let again = previous_cell(&mut cache, "k0#5000".to_owned(), 5000);
        assert_eq!(again.get(), Some(&7), "the current window's counts stayed");
    }

    #[test]
    fn long_keys_are_hashed_short_ones_kept() {
        assert_eq!(storage_key("t:acme"), "t:acme");
        let long = "f:".to_owned() + &"x".repeat(300);
        let stored = storage_key(&long);
        assert!(stored.starts_with("h:") && stored.len() == 66);
        assert_ne!(storage_key(&(long.clone() + "y")), stored);
    }
}
