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
/// How many previous-window counts a process keeps before sweeping old windows.
const PREVIOUS_SWEEP_AT: usize = 4096;
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
        Self { client, table, name, algorithm, limit, window, timeout, previous: Mutex::default() }
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
            .key("pk", AttributeValue::S(format!("{}#{key}#{start}", self.name)))
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
        let pk = format!("{}#{key}#{previous_start}", self.name);
        let cell = {
            let mut cache = self.previous.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= PREVIOUS_SWEEP_AT {
                cache.retain(|_, (start, _)| *start >= previous_start);
            }
            cache.entry(pk.clone()).or_insert_with(|| (previous_start, Arc::new(OnceCell::new()))).1.clone()
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
        let pk = AttributeValue::S(format!("{}#{key}#tb", self.name));
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

    #[test]
    fn long_keys_are_hashed_short_ones_kept() {
        assert_eq!(storage_key("t:acme"), "t:acme");
        let long = "f:".to_owned() + &"x".repeat(300);
        let stored = storage_key(&long);
        assert!(stored.starts_with("h:") && stored.len() == 66);
        assert_ne!(storage_key(&(long.clone() + "y")), stored);
    }
}
