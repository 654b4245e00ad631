//! The router: alarm changes in, notifications out, exactly one per step.
//!
//! # Steps, and why each is sent once
//!
//! A *group* (a route and the values of its `group_by` labels) fires when its first alarm
//! does and resolves when its last clears; each firing is an *episode*. An episode has
//! steps, one per receiver: `notify-NN` (escalation level NN), `ack`, `resolve`. A step is
//! stored before it is sent:
//!
//! 1. **claim**: create the step item if it does not exist (`attribute_not_exists`), or take
//!    over one whose last sender gave up (`failed`) or whose lease ran out (a sender that
//!    crashed or hung). Of any number of instances and redeliveries, one wins the claim;
//!    the others see the condition fail and send nothing.
//! 2. **send**, with retries and exponential backoff within the invocation.
//! 3. **record**: `delivered`; or `failed` (only by the claimer), which the next tick
//!    claims again. Nothing is lost: a step is done only once recorded `delivered`.
//!
//! A sender that dies between 2 and 3 leaves the step `claimed`; after the lease
//! (`delivery.lease`) a tick claims and sends it again. That is the one window where a
//! receiver can get a step twice, which is why every request carries the step id as its
//! idempotency key (and PagerDuty's `dedup_key` folds repeats into one incident). Claiming
//! *after* sending would instead let two racing instances both send; never recording
//! would lose a step whose sender died. Steps are driven on every alarm change of the
//! group and on every schedule tick, so a due step waits at most one tick interval.
//!
//! # Which groups an alarm leaves
//!
//! An alarm records each group it joins on its own item before joining it, and its OK
//! leaves those groups (plus the ones routing gives it now), dropping each from the record
//! only once it has left. Routing alone would miss a group when a route was added, removed
//! or edited since the alarm fired, or the alarm's labels changed: that group would stay
//! open, escalate, and never send its resolution. Route ids do not depend on a route's
//! place in the tree ([`crate::config`]), so a group keeps its route across deploys; one
//! whose route is gone falls to the root.
//!
//! # What holds a step back
//!
//! - a silence in force that mutes every firing alert of the group;
//! - an inhibition: every firing alert of the group is muted by another firing alert (a
//!   `region-down` alert mutes the route alerts of its region);
//! - escalation: level `n + 1` waits until `fired_at + after`, and also until level `n`
//!   has been sent for as long as the two levels' `after`s are apart (so `after` itself
//!   for level 2); and not at all once the episode is acknowledged. Without a mute the
//!   two agree; after a silence or an inhibition that outlasted the deadlines, level 1
//!   goes out at the next tick and level 2 a full `after` later, never in the same tick.
//!   Level `n` counts as sent when it was delivered, or when it was first tried if it
//!   is still failing (a receiver that is down must not hold back the next level).
//!
//! A muted group's steps are not created, so a tick after the silence ends (or the
//! inhibiting alert clears) notifies. A resolution goes to the receivers whose trigger may
//! have gone out (claimed or delivered); an acknowledgement likewise. A resolution that has
//! not gone out is retried even after the group fires again in a new episode, so the earlier
//! episode's incident (PagerDuty's `<group>-<episode>`) is closed; it lists the alerts that
//! episode ended with, kept when the next one opened. An acknowledgement names
//! its episode; one for an episode that is over changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::alarm::{self, AlarmChange, AlarmError, AlarmState};
use crate::channel::{Action, AlertView, Notification, Sender};
use crate::config::{Matcher, Route, RouterConfig};
use crate::labels::{is_window_alarm, labels, Labels};
use crate::store::{AlertStore, Group, Recorded, Silence, Step, StepStatus, StoreError};

/// Where the router reads the time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told (tests, replays).
///
/// # Examples
///
/// ```
/// use alert_router::engine::{Clock, ManualClock};
/// let clock = ManualClock::new(time::macros::datetime!(2026-12-03 10:00 UTC));
/// clock.advance(std::time::Duration::from_secs(60));
/// assert_eq!(clock.now(), time::macros::datetime!(2026-12-03 10:01 UTC));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Sets the time.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }

    /// Moves the time forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What went wrong handling an event or a request.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The event is not a usable alarm change (nothing was written).
    #[error(transparent)]
    Alarm(#[from] AlarmError),
    /// The state could not be read or written: the event should be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event is none the router handles.
    #[error("unsupported event: {0}")]
    Unsupported(&'static str),
    /// No such alert group.
    #[error("no alert group has this id")]
    NotFound,
    /// The group does not fire now.
    #[error("the alert group is not firing")]
    NotFiring,
    /// An acknowledgement names an episode that is over; the group fires in a later one.
    #[error("episode {episode} of the alert group is over; it fires in episode {current}")]
    EpisodeOver {
        /// The episode acknowledged.
        episode: u64,
        /// The episode that fires.
        current: u64,
    },
    /// A request field is invalid.
    #[error("`{field}`: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// What an event or tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Steps delivered (their ids).
    pub delivered: Vec<String>,
    /// Steps that failed every try and wait for the next tick.
    pub pending: Vec<String>,
    /// Alarm changes dropped as older than the stored state.
    pub stale: usize,
    /// Groups looked at.
    pub groups: usize,
}

impl Report {
    fn merge(&mut self, other: Report) {
        self.delivered.extend(other.delivered);
        self.pending.extend(other.pending);
        self.stale += other.stale;
        self.groups += other.groups;
    }
}

/// A silence to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// Matchers (`service="payments"`), all of which an alert must match.
    pub matchers: Vec<String>,
    /// How long from now (`2h`); or give `ends_at`.
    pub duration: Option<String>,
    /// When it ends (RFC 3339); or give `duration`.
    pub ends_at: Option<String>,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// The longest a silence may last.
pub const MAX_SILENCE: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// The alert router.
#[derive(Clone)]
pub struct AlertRouter {
    inner: Arc<Inner>,
}

struct Inner {
    store: AlertStore,
    config: RouterConfig,
    sender: Sender,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for AlertRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertRouter")
            .field("table", &self.inner.store.table())
            .field("receivers", &self.inner.config.receivers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A step that is due: which episode, its key, and what it sends to whom.
struct Due {
    episode: u64,
    key: String,
    action: Action,
    level: u32,
    receiver: String,
}

/// The id of the group of `labels` on `route`.
pub fn group_id(route: &Route, labels: &Labels) -> String {
    let mut text = route.id.clone();
    for name in &route.group_by {
        text.push('\n');
        text.push_str(name);
        text.push('=');
        text.push_str(labels.get(name).map_or("", String::as_str));
    }
    hex::encode(&Sha256::digest(text)[..10])
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "page" | "critical" => 3,
        "ticket" | "warning" => 1,
        _ => 2,
    }
}

impl AlertRouter {
    /// A router over `store`, routing by `config`, sending through `sender`, reading `clock`.
    pub fn new(store: AlertStore, config: RouterConfig, sender: Sender, clock: Arc<dyn Clock>) -> Self {
        Self { inner: Arc::new(Inner { store, config, sender, clock }) }
    }

    /// The store.
    pub fn store(&self) -> &AlertStore {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.inner.config
    }

    fn now_ms(&self) -> i64 {
        millis(self.inner.clock.now())
    }

    /// Handles a non-HTTP event: an SNS event of alarm notifications, an EventBridge
    /// `CloudWatch Alarm State Change`, or a scheduled event (a tick).
    ///
    /// A malformed event is an error before anything is written.
    pub async fn handle_event(&self, payload: &Value) -> Result<Report, RouterError> {
        if alarm::is_sns_event(payload) {
            let changes = alarm::from_sns_event(payload)?;
            let mut report = Report::default();
            for change in &changes {
                report.merge(self.on_alarm(change).await?);
            }
            return Ok(report);
        }
        match payload.get("detail-type").and_then(Value::as_str) {
            Some(alarm::DETAIL_TYPE) => self.on_alarm(&AlarmChange::from_eventbridge(payload)?).await,
            Some("Scheduled Event")
                if payload.get("source").and_then(Value::as_str) == Some("aws.events") =>
            {
                self.tick().await
            }
            _ => Err(RouterError::Unsupported(
                "expected an SNS alarm notification, a CloudWatch Alarm State Change or a Scheduled Event",
            )),
        }
    }

    /// Applies one alarm change and drives the groups it belongs to.
    pub async fn on_alarm(&self, change: &AlarmChange) -> Result<Report, RouterError> {
        let state = match change.state {
            // No verdict is no change: the groups keep their state until ALARM or OK.
            AlarmState::InsufficientData => return Ok(Report::default()),
            state => state,
        };
        let labels = labels(change, &self.inner.config.services);
        if is_window_alarm(&labels) {
            // Beside each alert, lift-monitoring makes one alarm per window; CloudWatch sends
            // their changes to EventBridge too. One window alone is no alert.
            tracing::debug!(alarm = %change.name, "a window alarm of a lift-monitoring alert was ignored");
            return Ok(Report::default());
        }
        let fingerprint = change.fingerprint();
        let store = &self.inner.store;
        let recorded =
            store.record_alarm(&fingerprint, state.as_str(), millis(change.changed_at), &labels).await?;
        let Recorded::Applied(memberships) = recorded else {
            tracing::info!(alarm = %change.name, "an alarm change older than the stored state was dropped");
            return Ok(Report { stale: 1, ..Report::default() });
        };
        let mut report = Report::default();
        if state == AlarmState::Alarm {
            for route in self.inner.config.routes_for(&labels) {
                let group = group_id(route, &labels);
                let group_labels: Labels = route
                    .group_by
                    .iter()
                    .filter_map(|l| labels.get(l).map(|v| (l.clone(), v.clone())))
                    .collect();
                // Recorded first: a crash between the two leaves a group the OK still leaves.
                store.add_membership(&fingerprint, &group, memberships.complete).await?;
                let at = millis(change.changed_at);
                let joined = store
                    .join_group(&group, &route.id, &group_labels, &fingerprint, &labels, at, self.now_ms())
                    .await?;
                let Some(joined) = joined else {
                    // A newer change of the alarm was applied meanwhile (its OK may have
                    // left already): this ALARM is stale now and joins nothing.
                    tracing::info!(alarm = %change.name, "an alarm change overtaken by a newer one joined no group");
                    return Ok(Report { stale: report.stale + 1, ..report });
                };
                // The group as the join left it: no second read.
                report.merge(self.drive_group(joined).await?);
            }
            return Ok(report);
        }
        // The OK leaves the groups the alarm joined, not the ones routing gives it now: a
        // route added or removed since, or labels the alarm's description changed, would
        // miss them. Routing still counts for what the alarm's item does not record.
        let mut groups = memberships.groups.clone();
        groups
            .extend(self.inner.config.routes_for(&labels).into_iter().map(|route| group_id(route, &labels)));
        if !memberships.complete {
            groups.extend(store.groups_with_member(&fingerprint).await?);
        }
        let at = millis(change.changed_at);
        for group in &groups {
            if !store.leave_group(group, &fingerprint, at).await? {
                // A newer ALARM was applied meanwhile: the alarm stays in its groups, and the
                // groups stay open. Its own OK will leave them.
                tracing::info!(alarm = %change.name, "an OK overtaken by a newer alarm change left no group");
                return Ok(Report { stale: report.stale + 1, ..report });
            }
            report.merge(self.drive(group).await?);
            // Dropped only once left (and driven): a retry of this OK finds what is left to do.
            if memberships.groups.contains(group) {
                store.remove_membership(&fingerprint, group, at).await?;
            }
        }
        if !memberships.complete {
            store.mark_memberships_complete(&fingerprint).await?;
        }
        Ok(report)
    }

    /// A schedule tick: drives every group that fires or has steps left (escalations that
    /// came due, steps that failed, leases that ran out, silences that ended).
    pub async fn tick(&self) -> Result<Report, RouterError> {
        let mut report = Report::default();
        for group in self.inner.store.unsettled_groups().await? {
            report.merge(self.drive(&group.id).await?);
        }
        Ok(report)
    }

    /// Acknowledges `episode` of a firing group: stops its escalation and tells the
    /// receivers notified. An acknowledgement of an episode that is over (the group
    /// resolved, or fires again in a later episode) changes nothing and is
    /// [`RouterError::EpisodeOver`]: whoever acknowledged has not seen the current one.
    pub async fn acknowledge(&self, group: &str, episode: u64, by: &str) -> Result<Report, RouterError> {
        match self.inner.store.acknowledge(group, episode, by).await? {
            // The group as the acknowledgement left it: no second read.
            Some(acked) => self.drive_group(acked).await,
            None => match self.inner.store.group(group).await? {
                Some(g) if g.open && g.episode < episode => Err(RouterError::Invalid {
                    field: "episode",
                    problem: format!("the alert group fires in episode {}", g.episode),
                }),
                Some(g) if g.open => Err(RouterError::EpisodeOver { episode, current: g.episode }),
                Some(_) => Err(RouterError::NotFiring),
                None => Err(RouterError::NotFound),
            },
        }
    }

    /// Creates a silence from now until its end.
    pub async fn silence(&self, request: &SilenceRequest, created_by: &str) -> Result<Silence, RouterError> {
        let now = self.inner.clock.now();
        if request.matchers.is_empty() {
            return Err(RouterError::Invalid {
                field: "matchers",
                problem: "at least one matcher is needed".into(),
            });
        }
        for m in &request.matchers {
            Matcher::parse(m).map_err(|e| RouterError::Invalid { field: "matchers", problem: e.0 })?;
        }
        let ends = match (&request.duration, &request.ends_at) {
            (Some(d), None) => {
                let d = crate::config::parse_duration(d).ok_or_else(|| RouterError::Invalid {
                    field: "duration",
                    problem: "not a duration like 30m or 2h".into(),
                })?;
                now + d
            }
            (None, Some(at)) => alarm::timestamp(at, "ends_at").map_err(|_| RouterError::Invalid {
                field: "ends_at",
                problem: "not an RFC 3339 time".into(),
            })?,
            _ => {
                return Err(RouterError::Invalid {
                    field: "duration",
                    problem: "give one of duration and ends_at".into(),
                })
            }
        };
        if ends <= now || ends - now > MAX_SILENCE {
            return Err(RouterError::Invalid {
                field: "ends_at",
                problem: "must be in the next 30 days".into(),
            });
        }
        if request.comment.len() > 1024 {
            return Err(RouterError::Invalid { field: "comment", problem: "at most 1024 bytes".into() });
        }
        let silence = Silence {
            id: uuid::Uuid::new_v4().simple().to_string(),
            matchers: request.matchers.clone(),
            starts_at_ms: millis(now),
            ends_at_ms: millis(ends),
            created_by: created_by.to_owned(),
            comment: request.comment.clone(),
        };
        self.inner.store.put_silence(&silence).await?;
        Ok(silence)
    }

    async fn muted(&self, group: &Group, now_ms: i64) -> Result<bool, RouterError> {
        if group.members.is_empty() {
            return Ok(false);
        }
        let silences = self.inner.store.silences(now_ms).await?;
        let silenced = group.members.values().all(|l| silences.iter().any(|s| s.mutes(l, now_ms)));
        if silenced {
            tracing::info!(group = %group.id, "silenced");
            return Ok(true);
        }
        if self.inner.config.inhibit.is_empty() {
            return Ok(false);
        }
        let firing = self.inner.store.firing_alarms().await?;
        let inhibited = group.members.values().all(|l| self.inner.config.inhibited(l, &firing));
        if inhibited {
            tracing::info!(group = %group.id, "inhibited");
        }
        Ok(inhibited)
    }

    /// Sends what is due for a group: its current episode's steps, and the resolutions of
    /// earlier episodes that did not go out yet.
    async fn drive(&self, id: &str) -> Result<Report, RouterError> {
        match self.inner.store.group(id).await? {
            Some(group) => self.drive_group(group).await,
            None => Ok(Report { groups: 1, ..Report::default() }),
        }
    }

    /// Like [`drive`](Self::drive), with the group as a write just returned it.
    async fn drive_group(&self, group: Group) -> Result<Report, RouterError> {
        let store = &self.inner.store;
        let mut report = Report { groups: 1, ..Report::default() };
        if group.episode == 0 {
            return Ok(report);
        }
        let config = &self.inner.config;
        // A route removed (or changed without an `id`) since the group formed: the root,
        // which takes every alert, takes the group. Its resolution does not need the route:
        // it goes to the receivers the episode's steps reached.
        let route = config.route(&group.route).unwrap_or_else(|| {
            tracing::warn!(group = %group.id, route = %group.route, "the group's route is gone from the configuration; the root takes it");
            &config.route
        });
        let steps = store.steps(&group.id, group.settled + 1).await?;
        let now = self.now_ms();
        let mut episodes: BTreeSet<u64> = steps.keys().map(|(e, _)| *e).collect();
        episodes.insert(group.episode);
        let mut due: Vec<Due> = Vec::new();
        for &episode in &episodes {
            let of_episode: BTreeMap<&str, &Step> = steps
                .range((episode, String::new())..)
                .take_while(|((e, _), _)| *e == episode)
                .map(|((_, k), s)| (k.as_str(), s))
                .collect();
            // Receivers a trigger may have reached: they get the acknowledgement and resolution.
            let reached: BTreeSet<&str> = of_episode
                .iter()
                .filter(|(key, step)| key.starts_with("notify-") && step.status != StepStatus::Failed)
                .filter_map(|(key, _)| key.split_once('#').map(|(_, receiver)| receiver))
                .collect();
            let step = |key: String, action, level, receiver: &str| Due {
                episode,
                key,
                action,
                level,
                receiver: receiver.to_owned(),
            };
            if episode < group.episode || !group.open {
                // A resolution that failed is retried even after the group fired again: the
                // earlier episode's incident must not stay open.
                for receiver in &reached {
                    due.push(step(format!("resolve#{receiver}"), Action::Resolve, 0, receiver));
                }
                continue;
            }
            if !self.muted(&group, now).await? {
                let levels = route.levels();
                for (i, level) in levels.iter().enumerate() {
                    let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    if i > 0 {
                        if group.acked_by.is_some() {
                            break;
                        }
                        // Level n + 1 keeps its distance from level n as actually sent, so
                        // a mute that outlasts the deadlines does not page two levels at once.
                        let previous = &levels[i - 1];
                        let key = format!("notify-{:02}#{}", i, previous.receiver);
                        let Some(sent) = of_episode.get(key.as_str()) else { break };
                        let gap = level.after.saturating_sub(previous.after);
                        if now < sent.sent_at_ms().saturating_add(duration_ms(gap)) {
                            break;
                        }
                    }
                    if now < group.fired_at_ms.saturating_add(duration_ms(level.after)) {
                        break;
                    }
                    due.push(step(
                        format!("notify-{number:02}#{}", level.receiver),
                        Action::Trigger,
                        number,
                        &level.receiver,
                    ));
                }
            }
            if group.acked_by.is_some() {
                for receiver in &reached {
                    due.push(step(format!("ack#{receiver}"), Action::Acknowledge, 0, receiver));
                }
            }
        }
        // The first episode with a step not done: the ones before it are settled.
        let mut unsettled: Option<u64> = None;
        for step in &due {
            let (episode, key, receiver) = (step.episode, &step.key, &step.receiver);
            if steps.get(&(episode, key.clone())).is_some_and(|s| s.status == StepStatus::Delivered) {
                continue;
            }
            let step_id = format!("{}/{episode}/{key}", group.id);
            // The lease runs from the claim: the steps sent before this one took their time.
            let Some(claim) = store
                .claim(&group.id, episode, key, self.now_ms(), duration_ms(config.delivery.lease))
                .await?
            else {
                // Another sender holds it (or just delivered it).
                unsettled = Some(unsettled.map_or(episode, |u| u.min(episode)));
                continue;
            };
            let notification = self.notification(&group, route, step, step_id.clone());
            let Some(channel) = config.receivers.get(receiver) else {
                // Only a configuration change between deploys gets here; said at every tick,
                // since the step waits, unsent, until the receiver is configured again.
                tracing::error!(group = %group.id, step = %step_id, receiver = %receiver, "a step's receiver is not configured: it cannot be sent");
                store.release_failed(&group.id, episode, key, &claim, "unknown receiver").await?;
                report.pending.push(step_id);
                unsettled = Some(unsettled.map_or(episode, |u| u.min(episode)));
                continue;
            };
            match self.inner.sender.deliver(channel, &notification).await {
                Ok(()) => {
                    store.delivered(&group.id, episode, key, self.now_ms()).await?;
                    tracing::info!(step = %step_id, receiver = %receiver, attempts = claim.attempts, "notified");
                    report.delivered.push(step_id);
                }
                Err(err) => {
                    store.release_failed(&group.id, episode, key, &claim, &err.problem).await?;
                    tracing::warn!(step = %step_id, error = %err, "a step stays pending for the next tick");
                    report.pending.push(step_id);
                    unsettled = Some(unsettled.map_or(episode, |u| u.min(episode)));
                }
            }
        }
        // An open episode is never settled; the ones before it are once their steps are done.
        let last_done = if group.open { group.episode - 1 } else { group.episode };
        let settled = unsettled.map_or(last_done, |u| last_done.min(u - 1));
        if settled > group.settled {
            store.settle(&group, settled).await?;
        }
        Ok(report)
    }

    fn notification(&self, group: &Group, route: &Route, due: &Due, step_id: String) -> Notification {
        let (action, level, receiver) = (due.action, due.level, due.receiver.as_str());
        let none = BTreeMap::new();
        let members = if due.episode < group.episode {
            // An earlier episode's resolution: its own alerts, not the episode firing now.
            group.ended.get(&due.episode).unwrap_or(&none)
        } else if group.members.is_empty() {
            &group.last_members
        } else {
            &group.members
        };
        let alerts: Vec<AlertView> = members.values().map(|l| AlertView { labels: l.clone() }).collect();
        let severity = alerts
            .iter()
            .filter_map(|a| a.labels.get("severity"))
            .max_by_key(|s| severity_rank(s))
            .cloned()
            .unwrap_or_else(|| crate::labels::DEFAULT_SEVERITY.to_owned());
        let first = alerts.first().map(|a| a.labels.clone()).unwrap_or_default();
        let summary = match alerts.len() {
            1 => format!(
                "{} in {}",
                first.get("alertname").map_or("", String::as_str),
                first.get("region").map_or("", String::as_str)
            ),
            n => {
                let labels: Vec<String> =
                    group.group_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{n} alerts of {}", labels.join(" "))
            }
        };
        let runbook = route
            .runbook_for(&first)
            .or_else(|| self.inner.config.route.runbook_for(&first))
            .unwrap_or_default();
        Notification {
            step_id,
            action,
            level,
            receiver: receiver.to_owned(),
            group_id: group.id.clone(),
            episode: due.episode,
            route: group.route.clone(),
            group_labels: group.group_labels.clone(),
            alerts,
            severity,
            summary,
            runbook,
            acknowledged_by: if action == Action::Acknowledge { group.acked_by.clone() } else { None },
        }
    }
}
