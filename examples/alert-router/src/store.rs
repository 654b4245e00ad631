//! The router's state in DynamoDB: one table (`pk`/`sk`, TTL `expires_at`).
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `ALARM` | fingerprint | the alarm's last state, `changed_at` (ms), labels, `groups` (a string set: the groups it joined and has not left), `groups_complete` (true once `groups` is known to hold every group it is in; items from before `groups` existed lack it) |
//! | `GROUP` | group id | `route`, `group_labels`, `members` (fingerprint → labels), `last_members`, `ended` (episode → the `last_members` it ended with, until settled), `episode`, `open`, `fired_at`, `acked_episode`, `acked_by`, `settled` |
//! | `STEP#<group>` | `<episode>#<step>#<receiver>` | one notification: `status` (`claimed` / `failed` / `delivered`), `token`, `lease_until`, `attempts`, `created_at`, `claimed_at`, `delivered_at`, `last_error` |
//! | `SILENCE` | silence id | matchers, `starts_at`, `ends_at`, `created_by`, `comment` |
//!
//! Every change is a conditional write, so repeats and races settle in DynamoDB:
//!
//! - an alarm change is applied only if it is newer than the stored one, or the same
//!   change again (a redelivery carries on where an interrupted one stopped);
//! - an alarm records a group in its `groups` before it joins the group, and drops it
//!   only after it left, so a group it is in is always in its set (adding and dropping a
//!   set element are safe to repeat);
//! - a group opens an episode only if it is not open (`open <> true`), and closes only if
//!   it is open and has no members left;
//! - a step is claimed by creating it (`attribute_not_exists`), or by taking over one that
//!   `failed` or whose sender's lease ran out; only its claimer may mark it failed.
//!
//! A join or a leave is a transaction on a `GROUP` item with a check on an `ALARM` item;
//! while it runs, DynamoDB refuses other writes to either item with a conflict. Every write
//! to those two kinds of item is tried again then ([`ConflictRetry`]). `STEP#` and
//! `SILENCE` items are in no transaction, and meet no conflict.
//!
//! The `ALARM`, `GROUP` and `SILENCE` partitions are read whole (the tick reads open
//! groups, inhibition reads firing alarms): fine for the thousands of alarms of a
//! service, not for millions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use lift::store::{KeyAttribute, TableDef};

use crate::config::Matcher;
use crate::labels::Labels;

/// The router's table.
///
/// # Examples
///
/// ```
/// let def = alert_router::table_def();
/// assert_eq!(def.resolve_name(), "alert-router");
/// ```
pub fn table_def() -> TableDef {
    TableDef::new("alert-router", KeyAttribute::string("pk"))
        .with_sort_key(KeyAttribute::string("sk"))
        .with_ttl("expires_at")
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB refused or failed the call (the error code only).
    #[error("dynamodb {operation} failed ({code})")]
    Dynamo {
        /// The operation.
        operation: &'static str,
        /// The error code, or `unreachable`.
        code: String,
    },
    /// A write met a transaction running on its item at every try ([`ConflictRetry`]):
    /// nothing of it was written.
    #[error("dynamodb {operation} conflicted with a transaction on its item at each of {attempts} tries")]
    Conflict {
        /// The operation.
        operation: &'static str,
        /// The tries made.
        attempts: u32,
    },
    /// A stored item is not what this version writes.
    #[error("a stored item is corrupt ({0})")]
    Corrupt(&'static str),
}

fn failed<E: ProvideErrorMetadata, R>(operation: &'static str, err: &SdkError<E, R>) -> StoreError {
    StoreError::Dynamo { operation, code: err.code().unwrap_or("unreachable").to_owned() }
}

/// The outcome of an update whose condition may refuse it harmlessly (a repeat, or another
/// sender first): done either way; any other error is the store's.
fn done_unless_refused<T, E: ProvideErrorMetadata, R>(
    out: Result<T, SdkError<E, R>>,
) -> Result<(), StoreError> {
    match out {
        Ok(_) => Ok(()),
        Err(err) if is_condition_failure(&err) => Ok(()),
        Err(err) => Err(failed("UpdateItem", &err)),
    }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

type TransactError<R> =
    SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>;

/// Why each item of a cancelled transaction was refused, in the order the items were
/// given (`None`, `ConditionalCheckFailed`, `TransactionConflict`, ...); `None` when the
/// transaction was not cancelled. The one reader of `CancellationReasons`.
fn cancellation_reasons<R>(err: &TransactError<R>) -> Option<Vec<String>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error()
    else {
        return None;
    };
    let reasons = cancelled.cancellation_reasons();
    Some(if reasons.is_empty() {
        // Without reasons, the message lists them: "... [ConditionalCheckFailed, None]".
        let message = cancelled.message().unwrap_or_default();
        let list = message.rsplit_once('[').map_or("", |(_, rest)| rest.trim_end_matches(']'));
        list.split(',').map(|code| code.trim().to_owned()).collect()
    } else {
        reasons.iter().map(|r| r.code().unwrap_or("None").to_owned()).collect()
    })
}

/// Which items of a cancelled transaction failed their condition, in the order they were
/// given; `None` when the transaction was not cancelled on a condition (a conflict, a
/// throttle, an unreachable table), which is the store's error.
fn failed_conditions<R>(err: &TransactError<R>) -> Option<Vec<bool>> {
    let failed: Vec<bool> =
        cancellation_reasons(err)?.iter().map(|c| c == "ConditionalCheckFailed").collect();
    failed.contains(&true).then_some(failed)
}

/// An error DynamoDB answers when a write meets a transaction running on one of its
/// items: the write did nothing, and another try may pass.
trait Conflicting {
    fn is_conflict(&self) -> bool;
}

impl<R> Conflicting for SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R> {
    fn is_conflict(&self) -> bool {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        matches!(self.as_service_error(), Some(UpdateItemError::TransactionConflictException(_)))
            || self.code() == Some("TransactionConflictException")
    }
}

impl<R> Conflicting for TransactError<R> {
    /// Cancelled for a conflict on one of its items and on no failed condition (a failed
    /// condition is the answer, whatever else happened).
    fn is_conflict(&self) -> bool {
        match cancellation_reasons(self) {
            Some(reasons) => {
                reasons.iter().any(|c| c == "TransactionConflict")
                    && !reasons.iter().any(|c| c == "ConditionalCheckFailed")
            }
            None => self.code() == Some("TransactionConflictException"),
        }
    }
}

/// How a write that met a transaction on its item is tried again: up to `attempts` tries
/// in all, the n-th retry after `n × backoff` and up to one `backoff` more of jitter, so
/// racing writers do not retry in step.
///
/// Alarms of one group firing or clearing at once, handled by concurrent invocations,
/// touch the same items: a join or a leave is a transaction (the group item, and a check
/// on the alarm item), and DynamoDB refuses any other write to those items while it runs
/// (`TransactionConflictException`, or a transaction cancelled with `TransactionConflict`).
/// The SDK does not retry that error. The default is 5 tries, 25 ms apart and more.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use alert_router::store::ConflictRetry;
///
/// let retry = ConflictRetry::new(NonZeroU32::new(3).unwrap(), Duration::from_millis(10));
/// assert_eq!(retry.attempts(), 3);
/// assert_eq!(ConflictRetry::default().attempts(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictRetry {
    attempts: std::num::NonZeroU32,
    backoff: std::time::Duration,
}

impl Default for ConflictRetry {
    fn default() -> Self {
        Self {
            attempts: std::num::NonZeroU32::new(5).unwrap_or(std::num::NonZeroU32::MIN),
            backoff: std::time::Duration::from_millis(25),
        }
    }
}

impl ConflictRetry {
    /// Up to `attempts` tries, `backoff` apart and more.
    pub fn new(attempts: std::num::NonZeroU32, backoff: std::time::Duration) -> Self {
        Self { attempts, backoff }
    }

    /// The tries, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts.get()
    }

    /// The wait before retry `retry` (1 for the first).
    fn delay(&self, retry: u32) -> std::time::Duration {
        // Spread by the clock's nanoseconds, so racing writers do not retry in step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
        let span = u64::try_from(self.backoff.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.backoff.saturating_mul(retry) + std::time::Duration::from_nanos(nanos % span)
    }

    /// Sends a write, and sends it again while DynamoDB refuses it for a transaction running
    /// on one of its items; returns its first other answer, for the caller to read, or
    /// [`StoreError::Conflict`] after the last try.
    ///
    /// Sending again after a conflict cannot apply a write twice: a refused write did
    /// nothing. Every write sent here is also safe to repeat after an answer was lost (the
    /// SDK sends a write again after a timeout or a 500, which DynamoDB may have carried
    /// out): each either sets what it set again, or its condition then refuses it and the
    /// caller takes the refusal as done ([`done_unless_refused`]), or, for an alarm change
    /// and an acknowledgement, its condition admits the same write again.
    async fn run<T, E, Fut>(
        &self,
        operation: &'static str,
        mut send: impl FnMut() -> Fut,
    ) -> Result<Result<T, E>, StoreError>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
        E: Conflicting,
    {
        let mut attempt = 1;
        loop {
            match send().await {
                Err(err) if err.is_conflict() => {
                    if attempt >= self.attempts() {
                        tracing::warn!(
                            operation,
                            attempts = attempt,
                            "a write kept meeting a transaction on its item"
                        );
                        return Err(StoreError::Conflict { operation, attempts: attempt });
                    }
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
                out => return Ok(out),
            }
        }
    }
}

/// A check that the alarm's stored change is still the one being applied: `state` at
/// `changed_at_ms`. A join or a leave made under it cannot undo a newer change of the alarm
/// that another delivery applied meanwhile.
fn still_current(
    table: &str,
    fingerprint: &str,
    state: &str,
    changed_at_ms: i64,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
        .table_name(table)
        .key("pk", s("ALARM"))
        .key("sk", s(fingerprint))
        .condition_expression("#state = :state AND changed_at = :t")
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":state", s(state))
        .expression_attribute_values(":t", n(changed_at_ms))
        .build()
        .map_err(|_| StoreError::Corrupt("condition check"))?;
    Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder().condition_check(check).build())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &HashMap<String, AttributeValue>, key: &str) -> Option<i64> {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn labels_of(text: &str) -> Result<Labels, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt("labels"))
}

fn labels_text(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

/// A group: the unit that is notified, escalated, acknowledged and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its id (the alert id of the API).
    pub id: String,
    /// The route that formed it.
    pub route: String,
    /// Its labels (the route's `group_by`).
    pub group_labels: Labels,
    /// Its firing alarms: fingerprint → labels.
    pub members: BTreeMap<String, Labels>,
    /// Firings so far; steps belong to one.
    pub episode: u64,
    /// Whether it fires.
    pub open: bool,
    /// When the episode fired (ms since the epoch).
    pub fired_at_ms: i64,
    /// The last alerts it had (kept through the resolution, for the resolve notification).
    pub last_members: BTreeMap<String, Labels>,
    /// The last alerts of each earlier episode not yet settled (its `last_members` when
    /// the next one opened), for a resolution still to go out.
    pub ended: BTreeMap<u64, BTreeMap<String, Labels>>,
    /// Who acknowledged this episode, if someone did.
    pub acked_by: Option<String>,
    /// Every episode up to this one has all its steps done.
    pub settled: u64,
}

/// A step's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    /// Claimed; its sender is at it until `lease_until` (ms).
    Claimed {
        /// When another may take it over.
        lease_until_ms: i64,
    },
    /// The last sender gave up; the next tick retries.
    Failed,
    /// Delivered.
    Delivered,
}

/// A stored step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where it stands.
    pub status: StepStatus,
    /// When it was first claimed, so first tried (ms since the epoch).
    pub created_at_ms: i64,
    /// When it was recorded delivered.
    pub delivered_at_ms: Option<i64>,
}

impl Step {
    /// When it went out: its delivery, else its first try (a receiver that is down must
    /// not hold back the next escalation level).
    pub fn sent_at_ms(&self) -> i64 {
        self.delivered_at_ms.unwrap_or(self.created_at_ms)
    }
}

/// A claim on a step, held by one sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claimer's token.
    pub token: String,
    /// Tries so far, this one included.
    pub attempts: u64,
}

/// A silence: alerts matching every matcher are not notified between `starts_at` and `ends_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// The matchers, as written (`service="payments"`).
    pub matchers: Vec<String>,
    /// Start, ms since the epoch.
    pub starts_at_ms: i64,
    /// End (exclusive), ms since the epoch.
    pub ends_at_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Whether it is in force at `now_ms` and mutes `labels`.
    pub fn mutes(&self, labels: &Labels, now_ms: i64) -> bool {
        self.starts_at_ms <= now_ms
            && now_ms < self.ends_at_ms
            && self.matchers.iter().all(|m| Matcher::parse(m).is_ok_and(|m| m.matches(labels)))
    }
}

/// The groups an alarm is in, as its item recorded them before a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships {
    /// The groups it joined and has not left.
    pub groups: BTreeSet<String>,
    /// Whether `groups` holds every group the alarm is in. False for an item written
    /// before the router recorded memberships: such an alarm may be in groups that only a
    /// search of the groups finds ([`AlertStore::groups_with_member`]).
    pub complete: bool,
}

/// The outcome of recording an alarm change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// New, or the same change again: go on. The alarm's memberships as they stood.
    Applied(Memberships),
    /// Older than the stored state: dropped.
    Stale,
}

/// The router's table.
#[derive(Debug, Clone)]
pub struct AlertStore {
    client: Client,
    table: String,
    retry: ConflictRetry,
}

impl AlertStore {
    /// The store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), retry: ConflictRetry::default() }
    }

    /// The same store, trying a write that met a transaction on its item as `retry` says.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: aws_sdk_dynamodb::Client) {
    /// use std::num::NonZeroU32;
    /// use std::time::Duration;
    /// use alert_router::store::{AlertStore, ConflictRetry};
    ///
    /// let retry = ConflictRetry::new(NonZeroU32::new(8).unwrap(), Duration::from_millis(50));
    /// let store = AlertStore::new(client, "alert-router").with_conflict_retry(retry);
    /// # let _ = store; }
    /// ```
    pub fn with_conflict_retry(mut self, retry: ConflictRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Records an alarm's state if the change is newer than the stored one, or the same,
    /// and tells the groups the alarm is in (its item's `groups`, which this leaves alone).
    pub async fn record_alarm(
        &self,
        fingerprint: &str,
        state: &str,
        changed_at_ms: i64,
        labels: &Labels,
    ) -> Result<Recorded, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("ALARM"))
            .key("sk", s(fingerprint))
            .update_expression("SET #state = :state, changed_at = :t, labels = :labels")
            .condition_expression(
                "attribute_not_exists(pk) OR changed_at < :t OR (changed_at = :t AND #state = :state)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":t", n(changed_at_ms))
            .expression_attribute_values(":labels", s(labels_text(labels)))
            .return_values(ReturnValue::AllOld);
        // Sent again after a lost answer, the same change passes its condition again and
        // reads the item as the first send left it: a new alarm then reads as one whose
        // groups are not known to be complete, which costs its OK one search of the groups.
        match self.retry.run("UpdateItem", || update.clone().send()).await? {
            Ok(out) => Ok(Recorded::Applied(match out.attributes() {
                // A new alarm is in no group yet: its set is complete from the start.
                None => Memberships { groups: BTreeSet::new(), complete: true },
                Some(old) => Memberships {
                    groups: match old.get("groups") {
                        Some(AttributeValue::Ss(groups)) => groups.iter().cloned().collect(),
                        _ => BTreeSet::new(),
                    },
                    complete: matches!(old.get("groups_complete"), Some(AttributeValue::Bool(true))),
                },
            })),
            Err(err) if is_condition_failure(&err) => Ok(Recorded::Stale),
            Err(err) => Err(failed("UpdateItem", &err)),
        }
    }

    /// Records that the alarm is joining `group`; call it before [`join_group`](Self::join_group),
    /// so the alarm's OK finds the group whatever the routing or its labels are by then.
    /// `complete` marks the set as holding every group the alarm is in (the caller knows
    /// it did before). Safe to repeat.
    pub async fn add_membership(
        &self,
        fingerprint: &str,
        group: &str,
        complete: bool,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("ALARM"))
            .key("sk", s(fingerprint))
            .expression_attribute_names("#groups", "groups")
            .expression_attribute_values(":group", AttributeValue::Ss(vec![group.to_owned()]));
        update = if complete {
            update
                .update_expression("ADD #groups :group SET groups_complete = :true")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
        } else {
            update.update_expression("ADD #groups :group")
        };
        self.retry
            .run("UpdateItem", || update.clone().send())
            .await?
            .map_err(|e| failed("UpdateItem", &e))?;
        Ok(())
    }

    /// Drops `group` from the alarm's groups; call it after [`leave_group`](Self::leave_group),
    /// with the OK change (`changed_at_ms`) that left. Only while that OK is still the
    /// alarm's stored change: a newer ALARM may have added the group back, and its OK must
    /// find it. Safe to repeat.
    pub async fn remove_membership(
        &self,
        fingerprint: &str,
        group: &str,
        changed_at_ms: i64,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("ALARM"))
            .key("sk", s(fingerprint))
            .update_expression("DELETE #groups :group")
            .condition_expression("#state = :ok AND changed_at = :t")
            .expression_attribute_names("#groups", "groups")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":group", AttributeValue::Ss(vec![group.to_owned()]))
            .expression_attribute_values(":ok", s("OK"))
            .expression_attribute_values(":t", n(changed_at_ms));
        // No alarm item (so no set to drop it from), or a newer change of the alarm.
        done_unless_refused(self.retry.run("UpdateItem", || update.clone().send()).await?)
    }

    /// Marks the alarm's groups as complete: it has left every group a search found it in.
    pub async fn mark_memberships_complete(&self, fingerprint: &str) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("ALARM"))
            .key("sk", s(fingerprint))
            .update_expression("SET groups_complete = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        done_unless_refused(self.retry.run("UpdateItem", || update.clone().send()).await?)
    }

    /// The groups that have the alarm among their members: a read of every group, for
    /// alarms whose item does not record its groups (written before it did).
    pub async fn groups_with_member(&self, fingerprint: &str) -> Result<Vec<String>, StoreError> {
        let items = self.partition("GROUP", None).await?;
        Ok(items
            .iter()
            .filter(|i| matches!(i.get("members"), Some(AttributeValue::M(m)) if m.contains_key(fingerprint)))
            .filter_map(|i| get_s(i, "sk"))
            .collect())
    }

    /// The labels of every alarm now in `ALARM`.
    pub async fn firing_alarms(&self) -> Result<Vec<Labels>, StoreError> {
        let items = self.partition("ALARM", None).await?;
        items
            .iter()
            .filter(|i| get_s(i, "state").as_deref() == Some("ALARM"))
            .map(|i| labels_of(&get_s(i, "labels").unwrap_or_default()))
            .collect()
    }

    /// Adds a firing alarm to a group (creating it), then opens an episode unless one is open.
    /// Safe to repeat: the member is set again, the episode opens once. Opening keeps the
    /// alerts the episode before ended with (`ended`), as the next one replaces them.
    ///
    /// The member is added only while the alarm's stored change is still this ALARM
    /// (`changed_at_ms`): an OK applied meanwhile may have left the group already, and a
    /// join after it would keep an alert open for an alarm that cleared. Returns the group
    /// as the join left it, to drive without reading it again; `None` when the alarm did
    /// not join (a newer change of the alarm came first).
    #[allow(clippy::too_many_arguments)]
    pub async fn join_group(
        &self,
        group: &str,
        route: &str,
        group_labels: &Labels,
        fingerprint: &str,
        labels: &Labels,
        changed_at_ms: i64,
        now_ms: i64,
    ) -> Result<Option<Group>, StoreError> {
        let key = |b: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
            b.table_name(&self.table).key("pk", s("GROUP")).key("sk", s(group))
        };
        let create = key(self.client.update_item())
            .update_expression(
                "SET members = if_not_exists(members, :empty), ended = if_not_exists(ended, :empty), \
                 route = :route, group_labels = :gl",
            )
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":route", s(route))
            .expression_attribute_values(":gl", s(labels_text(group_labels)));
        self.retry
            .run("UpdateItem", || create.clone().send())
            .await?
            .map_err(|e| failed("UpdateItem", &e))?;
        let member = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key("pk", s("GROUP"))
            .key("sk", s(group))
            .update_expression("SET members.#fp = :labels")
            .expression_attribute_names("#fp", fingerprint)
            .expression_attribute_values(":labels", s(labels_text(labels)))
            .build()
            .map_err(|_| StoreError::Corrupt("group update"))?;
        let joined = self
            .member_transaction(still_current(&self.table, fingerprint, "ALARM", changed_at_ms)?, member)
            .await?;
        match joined {
            Ok(_) => {}
            Err(err) if failed_conditions(&err).is_some() => return Ok(None),
            Err(err) => return Err(failed("TransactWriteItems", &err)),
        }
        // Read, not taken from an earlier answer: a transaction returns no item, and what
        // the group was before the member went in may be stale by now (its last member
        // left and closed it meanwhile, and only an open here keeps this alarm's alert
        // open). From here on it cannot close while this alarm is a member.
        let current = self.group(group).await?.ok_or(StoreError::Corrupt("group"))?;
        if current.open {
            return Ok(Some(current));
        }
        // The episode is named, so that the one before keeps its alerts under its number.
        let mut open = key(self.client.update_item())
            .condition_expression(
                "(attribute_not_exists(#open) OR #open = :false) AND (attribute_not_exists(episode) OR episode = :episode)",
            )
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":episode", n(current.episode))
            .expression_attribute_values(":next", n(current.episode + 1))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew);
        open = if current.episode == 0 {
            open.update_expression(
                "SET episode = :next, #open = :true, fired_at = :now, last_members = members REMOVE acked_by",
            )
        } else {
            open.update_expression(
                "SET episode = :next, #open = :true, fired_at = :now, last_members = members, \
                 ended.#ended = last_members REMOVE acked_by",
            )
            .expression_attribute_names("#ended", current.episode.to_string())
        };
        match self.retry.run("UpdateItem", || open.clone().send()).await? {
            Ok(out) => out.attributes().map(group_of).transpose(),
            // Another sender opened it (or this open's answer was lost and the SDK's resend
            // found it open): the member is in, and no episode closes while it is.
            Err(err) if is_condition_failure(&err) => {
                self.group(group).await?.ok_or(StoreError::Corrupt("group")).map(Some)
            }
            Err(err) => Err(failed("UpdateItem", &err)),
        }
    }

    /// Removes a cleared alarm from a group, and closes the episode when none is left.
    ///
    /// The member is removed only while the alarm's stored change is still this OK
    /// (`changed_at_ms`): a newer ALARM applied meanwhile keeps it in, and the group open.
    /// Returns whether the OK still held (`false`: a newer change of the alarm came first,
    /// and nothing was changed). Safe to repeat.
    pub async fn leave_group(
        &self,
        group: &str,
        fingerprint: &str,
        changed_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let member = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key("pk", s("GROUP"))
            .key("sk", s(group))
            .update_expression("SET last_members = members REMOVE members.#fp")
            .condition_expression("attribute_exists(members.#fp)")
            .expression_attribute_names("#fp", fingerprint)
            .build()
            .map_err(|_| StoreError::Corrupt("group update"))?;
        let removed = self
            .member_transaction(still_current(&self.table, fingerprint, "OK", changed_at_ms)?, member)
            .await?;
        match removed {
            Ok(_) => {}
            Err(err) => match failed_conditions(&err) {
                Some(failed) if failed.first() == Some(&true) => return Ok(false),
                // Gone already (a repeat): still close below, in case the first try stopped here.
                Some(_) => {}
                None => return Err(failed("TransactWriteItems", &err)),
            },
        }
        let close = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("GROUP"))
            .key("sk", s(group))
            .update_expression("SET #open = :false")
            .condition_expression("#open = :true AND size(members) = :zero")
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":zero", n(0));
        done_unless_refused(self.retry.run("UpdateItem", || close.clone().send()).await?)?;
        Ok(true)
    }

    /// A member's write with the check on its alarm's change, in one transaction, tried
    /// again while it conflicts ([`ConflictRetry`]); its last answer.
    async fn member_transaction(
        &self,
        check: aws_sdk_dynamodb::types::TransactWriteItem,
        member: aws_sdk_dynamodb::types::Update,
    ) -> Result<
        Result<
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
            TransactError<aws_sdk_dynamodb::config::http::HttpResponse>,
        >,
        StoreError,
    > {
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(check)
            .transact_items(aws_sdk_dynamodb::types::TransactWriteItem::builder().update(member).build());
        self.retry.run("TransactWriteItems", || transaction.clone().send()).await
    }

    /// A group, read consistently.
    pub async fn group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("GROUP"))
            .key("sk", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("GetItem", &e))?;
        out.item().map(group_of).transpose()
    }

    /// Every group that fires or has an episode not yet settled.
    pub async fn unsettled_groups(&self) -> Result<Vec<Group>, StoreError> {
        let items = self.partition("GROUP", None).await?;
        let groups = items.iter().map(group_of).collect::<Result<Vec<_>, _>>()?;
        Ok(groups.into_iter().filter(|g| g.episode > 0 && (g.open || g.settled < g.episode)).collect())
    }

    /// Marks the episodes up to `episode` settled (every step of each done): `episode`
    /// must be an earlier one, or the last if the group no longer fires. The mark only
    /// moves forward. The alerts kept for the settled episodes in `ended` are dropped.
    pub async fn settle(&self, group: &Group, episode: u64) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("GROUP"))
            .key("sk", s(&group.id))
            .condition_expression(
                "(attribute_not_exists(settled) OR settled < :e) AND (episode > :e OR (episode = :e AND #open = :false))",
            )
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":e", n(episode))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        let mut expression = "SET settled = :e".to_owned();
        let done: Vec<&u64> = group.ended.keys().filter(|e| **e <= episode).collect();
        for (i, e) in done.iter().enumerate() {
            expression.push_str(if i == 0 { " REMOVE " } else { ", " });
            expression.push_str(&format!("ended.#e{i}"));
            update = update.expression_attribute_names(format!("#e{i}"), e.to_string());
        }
        let update = update.update_expression(expression);
        // Sent again after a lost answer, the mark is there already: refused, and done.
        done_unless_refused(self.retry.run("UpdateItem", || update.clone().send()).await?)
    }

    /// Acknowledges `episode` of the group if it is the episode that fires now. `None`
    /// when the group does not fire, or fires in another episode.
    pub async fn acknowledge(
        &self,
        group: &str,
        episode: u64,
        by: &str,
    ) -> Result<Option<Group>, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("GROUP"))
            .key("sk", s(group))
            .update_expression("SET acked_by = if_not_exists(acked_by, :by)")
            .condition_expression("#open = :true AND episode = :episode")
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":episode", n(episode))
            .expression_attribute_values(":by", s(by))
            .return_values(ReturnValue::AllNew);
        // Sent again after a lost answer, the episode still fires and the first
        // acknowledger is kept: the same answer.
        match self.retry.run("UpdateItem", || update.clone().send()).await? {
            Ok(out) => out.attributes().map(group_of).transpose(),
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(failed("UpdateItem", &err)),
        }
    }

    /// The steps of a group's episodes from `from_episode` on: (episode, step key) → step.
    pub async fn steps(
        &self,
        group: &str,
        from_episode: u64,
    ) -> Result<BTreeMap<(u64, String), Step>, StoreError> {
        let items = self.partition(&format!("STEP#{group}"), Some(&format!("{from_episode:010}#"))).await?;
        let mut out = BTreeMap::new();
        for item in items {
            let sk = get_s(&item, "sk").ok_or(StoreError::Corrupt("step key"))?;
            let (episode, key) = sk
                .split_once('#')
                .and_then(|(e, k)| Some((e.parse::<u64>().ok()?, k.to_owned())))
                .ok_or(StoreError::Corrupt("step key"))?;
            let status = match get_s(&item, "status").as_deref() {
                Some("claimed") => {
                    StepStatus::Claimed { lease_until_ms: get_n(&item, "lease_until").unwrap_or(0) }
                }
                Some("failed") => StepStatus::Failed,
                Some("delivered") => StepStatus::Delivered,
                _ => return Err(StoreError::Corrupt("step status")),
            };
            // Items written before `created_at` existed: their last claim is the best guess.
            let created_at_ms =
                get_n(&item, "created_at").or_else(|| get_n(&item, "claimed_at")).unwrap_or(0);
            let delivered_at_ms = get_n(&item, "delivered_at");
            out.insert((episode, key), Step { status, created_at_ms, delivered_at_ms });
        }
        Ok(out)
    }

    /// Claims a step: creates it, or takes over one that failed or whose lease ran out.
    /// `None` when another sender holds it or it was delivered.
    pub async fn claim(
        &self,
        group: &str,
        episode: u64,
        step: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let sk = format!("{episode:010}#{step}");
        let created = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("STEP#{group}")))
            .item("sk", s(&sk))
            .item("status", s("claimed"))
            .item("token", s(&token))
            .item("lease_until", n(now_ms + lease_ms))
            .item("attempts", n(1))
            .item("claimed_at", n(now_ms))
            .item("created_at", n(now_ms))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match created {
            Ok(_) => return Ok(Some(Claim { token, attempts: 1 })),
            Err(err) if is_condition_failure(&err) => {}
            Err(err) => return Err(failed("PutItem", &err)),
        }
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("STEP#{group}")))
            .key("sk", s(&sk))
            .update_expression("SET #status = :claimed, #token = :token, lease_until = :lease, claimed_at = :now ADD attempts :one")
            .condition_expression("#status = :failed OR (#status = :claimed AND lease_until <= :now)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":claimed", s("claimed"))
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":lease", n(now_ms + lease_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match taken {
            Ok(out) => {
                let attempts = out.attributes().and_then(|a| get_n(a, "attempts")).unwrap_or(0);
                Ok(Some(Claim { token, attempts: u64::try_from(attempts).unwrap_or(0) }))
            }
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(failed("UpdateItem", &err)),
        }
    }

    /// Records a delivery (whoever holds the claim now: the message went out).
    pub async fn delivered(
        &self,
        group: &str,
        episode: u64,
        step: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("STEP#{group}")))
            .key("sk", s(format!("{episode:010}#{step}")))
            .update_expression("SET #status = :delivered, delivered_at = :now REMOVE last_error")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":delivered", s("delivered"))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await
            .map_err(|e| failed("UpdateItem", &e))?;
        Ok(())
    }

    /// Gives a claimed step back as failed (only its claimer may), with the error class.
    pub async fn release_failed(
        &self,
        group: &str,
        episode: u64,
        step: &str,
        claim: &Claim,
        problem: &str,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("STEP#{group}")))
            .key("sk", s(format!("{episode:010}#{step}")))
            .update_expression("SET #status = :failed, last_error = :problem")
            .condition_expression("#token = :token AND #status = :claimed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":claimed", s("claimed"))
            .expression_attribute_values(":token", s(&claim.token))
            .expression_attribute_values(":problem", s(problem))
            .send()
            .await;
        done_unless_refused(out)
    }

    /// Stores a silence; it expires from the table a day after it ends.
    pub async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let matchers = silence.matchers.iter().map(|m| s(m.as_str())).collect();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("SILENCE"))
            .item("sk", s(&silence.id))
            .item("matchers", AttributeValue::L(matchers))
            .item("starts_at", n(silence.starts_at_ms))
            .item("ends_at", n(silence.ends_at_ms))
            .item("created_by", s(&silence.created_by))
            .item("comment", s(&silence.comment))
            .item("expires_at", n(silence.ends_at_ms / 1000 + 86_400))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| failed("PutItem", &e))?;
        Ok(())
    }

    /// Silences not yet ended at `now_ms`.
    pub async fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        let items = self.partition("SILENCE", None).await?;
        let mut out = Vec::new();
        for item in items {
            let matchers = match item.get("matchers") {
                Some(AttributeValue::L(list)) => list.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
                _ => return Err(StoreError::Corrupt("silence matchers")),
            };
            let silence = Silence {
                id: get_s(&item, "sk").unwrap_or_default(),
                matchers,
                starts_at_ms: get_n(&item, "starts_at").ok_or(StoreError::Corrupt("silence start"))?,
                ends_at_ms: get_n(&item, "ends_at").ok_or(StoreError::Corrupt("silence end"))?,
                created_by: get_s(&item, "created_by").unwrap_or_default(),
                comment: get_s(&item, "comment").unwrap_or_default(),
            };
            if silence.ends_at_ms > now_ms {
                out.push(silence);
            }
        }
        Ok(out)
    }

    /// The items of `pk`, every one, or those whose sort key is `from` or after it.
    async fn partition(
        &self,
        pk: &str,
        from: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            query = match from {
                Some(from) => query
                    .key_condition_expression("pk = :pk AND sk >= :from")
                    .expression_attribute_values(":from", s(from)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let out = query.send().await.map_err(|e| failed("Query", &e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }
}

fn members_of(
    item: &HashMap<String, AttributeValue>,
    key: &str,
) -> Result<BTreeMap<String, Labels>, StoreError> {
    item.get(key).map_or(Ok(BTreeMap::new()), members)
}

fn members(value: &AttributeValue) -> Result<BTreeMap<String, Labels>, StoreError> {
    match value {
        AttributeValue::M(map) => map
            .iter()
            .map(|(fp, v)| Ok((fp.clone(), labels_of(v.as_s().map_err(|_| StoreError::Corrupt("member"))?)?)))
            .collect(),
        _ => Err(StoreError::Corrupt("members")),
    }
}

fn ended_of(
    item: &HashMap<String, AttributeValue>,
) -> Result<BTreeMap<u64, BTreeMap<String, Labels>>, StoreError> {
    match item.get("ended") {
        None => Ok(BTreeMap::new()),
        Some(AttributeValue::M(map)) => map
            .iter()
            .map(|(episode, alerts)| {
                Ok((episode.parse().map_err(|_| StoreError::Corrupt("ended episode"))?, members(alerts)?))
            })
            .collect(),
        Some(_) => Err(StoreError::Corrupt("ended")),
    }
}

fn group_of(item: &HashMap<String, AttributeValue>) -> Result<Group, StoreError> {
    let count = |key: &str| u64::try_from(get_n(item, key).unwrap_or(0)).unwrap_or(0);
    Ok(Group {
        id: get_s(item, "sk").ok_or(StoreError::Corrupt("group key"))?,
        route: get_s(item, "route").ok_or(StoreError::Corrupt("group route"))?,
        group_labels: labels_of(&get_s(item, "group_labels").unwrap_or_else(|| "{}".into()))?,
        members: members_of(item, "members")?,
        last_members: members_of(item, "last_members")?,
        ended: ended_of(item)?,
        episode: count("episode"),
        open: matches!(item.get("open"), Some(AttributeValue::Bool(true))),
        fired_at_ms: get_n(item, "fired_at").unwrap_or(0),
        acked_by: get_s(item, "acked_by"),
        settled: count("settled"),
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
    use aws_sdk_dynamodb::types::error::{TransactionCanceledException, TransactionConflictException};
    use aws_sdk_dynamodb::types::CancellationReason;

    use super::*;

    fn update_conflict() -> SdkError<UpdateItemError, ()> {
        let meta = ErrorMetadata::builder().code("TransactionConflictException").build();
        let err = TransactionConflictException::builder()
            .message("Transaction is ongoing for the item")
            .meta(meta)
            .build();
        SdkError::service_error(UpdateItemError::TransactionConflictException(err), ())
    }

    fn cancelled(codes: &[&str], with_reasons: bool) -> TransactError<()> {
        let message = format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        );
        let mut err = TransactionCanceledException::builder().message(message);
        if with_reasons {
            for code in codes {
                err = err.cancellation_reasons(CancellationReason::builder().code(*code).build());
            }
        }
        SdkError::service_error(TransactWriteItemsError::TransactionCanceledException(err.build()), ())
    }

    fn retry(attempts: u32) -> ConflictRetry {
        ConflictRetry::new(NonZeroU32::new(attempts).unwrap(), Duration::ZERO)
    }

    #[test]
    fn cancellation_reasons_read_alike_from_the_list_and_from_the_message() {
        for with_reasons in [true, false] {
            let err = cancelled(&["None", "ConditionalCheckFailed"], with_reasons);
            assert_eq!(cancellation_reasons(&err).unwrap(), ["None", "ConditionalCheckFailed"]);
            assert_eq!(failed_conditions(&err), Some(vec![false, true]), "{with_reasons}");
            assert!(!err.is_conflict(), "a failed condition is the answer");
            let err = cancelled(&["None", "TransactionConflict"], with_reasons);
            assert_eq!(failed_conditions(&err), None, "{with_reasons}");
            assert!(err.is_conflict(), "{with_reasons}");
            let err = cancelled(&["ConditionalCheckFailed", "TransactionConflict"], with_reasons);
            assert_eq!(failed_conditions(&err), Some(vec![true, false]), "{with_reasons}");
            assert!(!err.is_conflict(), "a failed condition wins over a conflict: {with_reasons}");
        }
        let throttled: TransactError<()> = SdkError::service_error(
            TransactWriteItemsError::generic(ErrorMetadata::builder().code("ThrottlingException").build()),
            (),
        );
        assert_eq!(cancellation_reasons(&throttled), None);
        assert!(!throttled.is_conflict());
    }

    #[tokio::test]
    async fn a_write_conflicting_fewer_times_than_the_bound_is_sent_until_it_passes() {
        let mut sent = 0;
        let out = retry(3)
            .run("UpdateItem", || {
                sent += 1;
                let answer =
                    if sent < 3 { Err(update_conflict()) } else { Ok(UpdateItemOutput::builder().build()) };
                std::future::ready(answer)
            })
            .await;
        assert!(matches!(out, Ok(Ok(_))), "{out:?}");
        assert_eq!(sent, 3);
    }

    #[tokio::test]
    async fn a_write_conflicting_at_every_try_gives_up_after_the_bound() {
        let mut sent = 0;
        let out = retry(4)
            .run("UpdateItem", || {
                sent += 1;
                std::future::ready(Err::<UpdateItemOutput, _>(update_conflict()))
            })
            .await;
        assert_eq!(sent, 4);
        let err = out.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { operation: "UpdateItem", attempts: 4 }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "dynamodb UpdateItem conflicted with a transaction on its item at each of 4 tries"
        );
    }

    #[tokio::test]
    async fn other_answers_are_the_callers_at_the_first_try() {
        let mut sent = 0;
        let out = retry(5)
            .run("TransactWriteItems", || {
                sent += 1;
                std::future::ready(Err::<(), _>(cancelled(&["ConditionalCheckFailed", "None"], true)))
            })
            .await;
        assert_eq!(sent, 1);
        assert!(matches!(out, Ok(Err(ref e)) if failed_conditions(e).is_some()), "{out:?}");
    }

    #[test]
    fn the_delay_grows_with_each_retry_and_its_jitter_stays_under_one_backoff() {
        let retry = ConflictRetry::new(NonZeroU32::new(5).unwrap(), Duration::from_millis(25));
        for n in 1..5 {
            let delay = retry.delay(n);
            assert!(delay >= Duration::from_millis(25 * u64::from(n)), "{delay:?}");
            assert!(delay < Duration::from_millis(25 * u64::from(n + 1)), "{delay:?}");
        }
        assert_eq!(ConflictRetry::new(NonZeroU32::MIN, Duration::ZERO).delay(1), Duration::ZERO);
    }
}
