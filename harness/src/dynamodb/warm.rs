//! Warming a cold DynamoDB Local before work that measures latency.
//!
//! A JVM that has just started runs DynamoDB Local's code interpreted until its compilers
//! have seen enough of it: on the 2-core reference machine its first thousands of operations
//! took tens to hundreds of milliseconds where a warm one answers in a few. A drill that puts
//! 40 requests a second through such a JVM at once falls behind and does not recover: each
//! waiting request holds a Lambda sandbox, each new sandbox is a cold start with connections
//! of its own, and the old version never meets its SLOs (the good deployment drill failed 7
//! times in 10 on a fresh JVM, and passed on one that earlier tests had warmed).
//!
//! [`DynamoDbLocal::warm_up`] measures instead of waiting a fixed time: it makes the writes
//! and reads a Lift service makes (a conditional counter update on one hot item, as the rate
//! limiter does; conditional puts of new items, as the audit trail does; queries) from a few
//! concurrent workers, in batches, until a batch's median operation answers within the
//! target, or the medians stop falling (a busy host may never reach the target), or the time
//! limit is spent. On a JVM that is already warm that is the first batch.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lift::store::{KeyAttribute, TableDef};

use super::{DynamoDbError, DynamoDbLocal};

/// Batches in a row without a median 10% below the best before them, after which the
/// medians count as settled.
const SETTLE_BATCHES: usize = 3;
/// Workers making operations at once.
const WORKERS: usize = 8;
/// Rounds (a counter update, a put, a query) each worker makes per batch.
const ROUNDS: usize = 8;

/// When a warm-up stops.
#[derive(Debug, Clone, Copy)]
pub struct WarmTarget {
    /// Warm once a batch's median operation takes at most this long.
    pub median: Duration,
    /// Stop after this long even when not warm (the work that follows measures on a cold
    /// JVM, and [`WarmUp::outcome`] says so).
    pub limit: Duration,
}

impl WarmTarget {
    /// A median of 10 ms within 30 s, or `LIFT_DYNAMODB_WARM_MEDIAN_MS` and
    /// `LIFT_DYNAMODB_WARM_LIMIT_SECS`.
    ///
    /// # Errors
    /// [`DynamoDbError::Config`] naming a variable that is not a whole number.
    pub fn from_env() -> Result<Self, DynamoDbError> {
        Ok(Self {
            median: super::millis_from_env("LIFT_DYNAMODB_WARM_MEDIAN_MS", 10)?,
            limit: super::secs_from_env("LIFT_DYNAMODB_WARM_LIMIT_SECS", 30)?,
        })
    }
}

/// What a warm-up did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WarmUp {
    /// Operations made.
    pub operations: usize,
    /// How long it took, seconds.
    pub secs: f64,
    /// Each batch's median operation, in milliseconds, in order.
    pub batch_medians_ms: Vec<f64>,
    /// Why it stopped.
    pub outcome: WarmOutcome,
}

/// Why a warm-up stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmOutcome {
    /// A batch's median met the target.
    Warm,
    /// The medians stopped falling short of the target.
    Settled,
    /// The time limit passed while they were still falling.
    Limit,
}

impl std::fmt::Display for WarmUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let medians: Vec<String> = self.batch_medians_ms.iter().map(|m| format!("{m:.1}")).collect();
        write!(
            f,
            "{} after {} operations in {:.1} s (batch medians {} ms)",
            match self.outcome {
                WarmOutcome::Warm => "warm",
                WarmOutcome::Settled => "settled above the target",
                WarmOutcome::Limit => "still getting faster at the time limit",
            },
            self.operations,
            self.secs,
            medians.join(", ")
        )
    }
}

impl DynamoDbLocal {
    /// Makes a Lift service's kinds of operations on a table of its own until a batch's
    /// median answers within `target.median`, the medians settle above it, or
    /// `target.limit` has passed.
    ///
    /// From 8 workers at once, each batch is 8 rounds of a conditional update of one hot
    /// counter (as the rate limiter makes), a conditional put of a new item (as the audit
    /// trail makes) and a query. The medians settle when 3 batches in a row come no more
    /// than 10% below the best before them. A fresh JVM that answers slowly at the full rate
    /// of a drill falls behind and may never catch up; one warmed this way did not.
    ///
    /// # Errors
    /// When the table cannot be created or an operation fails, a failed condition included
    /// (none can fail on a table of the warm-up's own).
    pub async fn warm_up(&self, target: WarmTarget) -> Result<WarmUp, DynamoDbError> {
        let def = TableDef::new("lift-warm-up", KeyAttribute::string("pk"))
            .with_sort_key(KeyAttribute::string("sk"));
        let table = self.create_table(&def).await?;
        let client = self.client().await;
        let began = Instant::now();
        let mut report =
            WarmUp { operations: 0, secs: 0.0, batch_medians_ms: Vec::new(), outcome: WarmOutcome::Limit };
        for batch in 0usize.. {
            let mut workers = tokio::task::JoinSet::new();
            for worker in 0..WORKERS {
                let (client, table) = (client.clone(), table.clone());
                workers.spawn(async move { rounds(&client, &table, batch, worker).await });
            }
            let mut took = Vec::with_capacity(WORKERS * ROUNDS * 3);
            while let Some(joined) = workers.join_next().await {
                took.extend(joined.expect("a warm-up worker does not panic")?);
            }
            report.operations += took.len();
            let median = crate::budget::median(&took);
            report.batch_medians_ms.push(median);
            if median <= target.median.as_secs_f64() * 1e3 {
                report.outcome = WarmOutcome::Warm;
                break;
            }
            if settled(&report.batch_medians_ms) {
                report.outcome = WarmOutcome::Settled;
                break;
            }
            if began.elapsed() >= target.limit {
                break;
            }
        }
        report.secs = began.elapsed().as_secs_f64();
        tracing::info!(%report, "dynamodb local warm-up");
        Ok(report)
    }
}

/// Whether the last [`SETTLE_BATCHES`] medians all failed to come 10% below the best one
/// before them.
fn settled(medians: &[f64]) -> bool {
    let Some(split) = medians.len().checked_sub(SETTLE_BATCHES).filter(|&s| s > 0) else {
        return false;
    };
    let best_before = medians[..split].iter().copied().fold(f64::INFINITY, f64::min);
    medians[split..].iter().all(|&m| m > best_before * 0.9)
}

/// The error of a failed `operation`.
fn request<E>(operation: &'static str) -> impl Fn(E) -> DynamoDbError
where
    aws_sdk_dynamodb::Error: From<E>,
{
    move |e| DynamoDbError::Request { operation, source: Box::new(aws_sdk_dynamodb::Error::from(e)) }
}

/// One worker's rounds of a batch: how long each operation took, in milliseconds.
async fn rounds(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    batch: usize,
    worker: usize,
) -> Result<Vec<f64>, DynamoDbError> {
    let s = |v: String| AttributeValue::S(v);
    let mut took = Vec::with_capacity(ROUNDS * 3);
    for round in 0..ROUNDS {
        let at = Instant::now();
        client
            .update_item()
            .table_name(table)
            .key("pk", s("counter".into()))
            .key("sk", s("hot".into()))
            .update_expression("ADD n :one")
            .condition_expression("attribute_not_exists(n) OR n >= :zero")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await
            .map_err(request("UpdateItem"))?;
        took.push(at.elapsed().as_secs_f64() * 1e3);
        let at = Instant::now();
        client
            .put_item()
            .table_name(table)
            .item("pk", s(format!("worker#{worker}")))
            .item("sk", s(format!("{batch:08}#{round:04}")))
            .item("body", s("x".repeat(256)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(request("PutItem"))?;
        took.push(at.elapsed().as_secs_f64() * 1e3);
        let at = Instant::now();
        client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("worker#{worker}")))
            .scan_index_forward(false)
            .limit(10)
            .send()
            .await
            .map_err(request("Query"))?;
        took.push(at.elapsed().as_secs_f64() * 1e3);
    }
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_settle_only_after_batches_that_stop_falling() {
        // Still falling by more than 10% a batch: not settled, however slow.
        assert!(!settled(&[30.0, 25.0, 20.0, 15.0, 12.0]));
        // Too few batches to tell.
        assert!(!settled(&[12.0, 12.0, 12.0]));
        // Three batches none of which beat 11.0 by 10%: settled.
        assert!(settled(&[20.0, 11.0, 10.5, 12.0, 10.0]));
        // A batch 10% below the best before it is progress: one more round.
        assert!(!settled(&[20.0, 11.0, 10.5, 9.8, 12.0]));
        // A noisy spike then a return to the best is not progress.
        assert!(settled(&[9.0, 30.0, 9.5, 9.0]));
    }

    #[test]
    fn a_target_that_is_no_whole_number_is_refused_by_name() {
        let err = super::super::parse_whole(
            "LIFT_DYNAMODB_WARM_MEDIAN_MS",
            Some("10ms".into()),
            10,
            Duration::from_millis,
            "expected whole milliseconds",
        )
        .unwrap_err();
        assert!(err.to_string().contains("LIFT_DYNAMODB_WARM_MEDIAN_MS"), "{err}");
        let unset = super::super::parse_whole("X", None, 10, Duration::from_millis, "");
        assert_eq!(unset.unwrap(), Duration::from_millis(10));
    }
}
