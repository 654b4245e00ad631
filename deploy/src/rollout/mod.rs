//! Progressive delivery: shift a Lambda alias to a new version step by step (all at once,
//! canary, linear, blue/green), read gates between steps, and roll back automatically when
//! one fails or a step runs over its time.
//!
//! It drives the real Lambda API (`PublishVersion`, `GetAlias`, `UpdateAlias` with
//! `RoutingConfig`, `GetFunctionConfiguration`, `Invoke`) through `aws-sdk-lambda`, so the
//! same code runs against AWS and against the harness's local Lambda runtime
//! (`AWS_ENDPOINT_URL_LAMBDA`). Every step, gate reading and decision goes to a DynamoDB
//! record ([`Record`]) with conditional writes: two rollouts of one function cannot both
//! run, and a rollout that was interrupted (its lease ran out) is rolled back, or resumed,
//! by the next run ([`Recovery`]: a resume that would not carry on the same version by the
//! same steps is refused). Traffic is never left split except by a rollout holding the
//! lease, or one told not to roll back ([`Rollout::auto_rollback`]); an error after an
//! alias update that moves traffic was sent, answered or not, rolls back first. A rollout
//! with no gate is refused unless allowed ([`Rollout::allow_no_gates`]): nothing would
//! judge the new version before it takes all traffic.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo(lambda: aws_sdk_lambda::Client, dynamodb: aws_sdk_dynamodb::Client) -> Result<(), lift_deploy::rollout::RolloutError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use lift_deploy::rollout::{HealthGate, Record, Rollout, Strategy, Target};
//!
//! let outcome = Rollout::new(lambda, Record::new(dynamodb, "lift-deployments"), "payments", "live")
//!     .target(Target::Publish)
//!     .strategy(Strategy::Canary { percent: 10.0, interval: Duration::from_secs(30) })
//!     .gate(Arc::new(HealthGate::new("/health/ready")))
//!     .run()
//!     .await?;
//! println!("{:?} in {:?}", outcome.status, outcome.total);
//! # Ok(()) }
//! ```

pub mod cli;
mod gate;
mod record;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::AliasRoutingConfiguration;
use serde::Serialize;

pub use gate::{
    AlarmGate, AlarmSource, AlarmState, BoxFuture, CommandGate, Gate, GateContext, HealthGate, MetricSource,
    Reading, SloGate, Verdict,
};
pub use record::{table_def, Head, Record, Status, StoredEvent, TABLE};

use gate::sdk_error;
use record::{lease_until, now_ms};

/// The unpublished version.
const LATEST: &str = "$LATEST";

/// Why a rollout could not run, or stopped without a decision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// Another run holds the function.
    #[error("a rollout of {function} is in progress (deployment {deployment}, held by {owner})")]
    InProgress {
        /// The function.
        function: String,
        /// The deployment in progress.
        deployment: String,
        /// Who holds it.
        owner: String,
    },
    /// Another run took the function over: this one stops without touching traffic.
    #[error("the lease on {function} (deployment {deployment}) was taken over by another run")]
    LeaseLost {
        /// The function.
        function: String,
        /// The deployment.
        deployment: String,
    },
    /// The alias is split between two versions, and no rollout is in progress.
    #[error("alias {alias} of {function} routes {weight} of traffic to version {version} with no rollout in progress; point it at one version first")]
    Split {
        /// The function.
        function: String,
        /// The alias.
        alias: String,
        /// The additional version.
        version: String,
        /// Its weight.
        weight: f64,
    },
    /// A setting is invalid.
    #[error("invalid rollout: {0}")]
    Invalid(String),
    /// The Lambda API refused or failed.
    #[error("lambda {operation} failed: {detail}")]
    Lambda {
        /// The operation.
        operation: &'static str,
        /// Its error code and message.
        detail: String,
    },
    /// Asked to resume an interrupted rollout that this run would not carry on as it was
    /// (another strategy, `$LATEST` changed since it was published, or its alias moved since
    /// it was interrupted): nothing was touched.
    #[error("cannot resume deployment {deployment} of {function}: {reason}; run it again with the same version and strategy, or without resuming to roll it back")]
    CannotResume {
        /// The function.
        function: String,
        /// The interrupted deployment.
        deployment: String,
        /// Why.
        reason: String,
    },
    /// A run stopped by `error` could not put traffic back: the alias may still be split.
    #[error("{error}; rolling {function} back failed too, so traffic may still be split: {rollback}")]
    RollbackFailed {
        /// The function.
        function: String,
        /// What stopped the run.
        error: Box<RolloutError>,
        /// What stopped the rollback.
        rollback: Box<RolloutError>,
    },
    /// The deployment record could not be read or written.
    #[error("deployment record: {context}: {detail}")]
    Record {
        /// What was being done.
        context: String,
        /// The error.
        detail: String,
    },
}

impl RolloutError {
    fn record<E: std::fmt::Display>(context: &str, err: &E) -> Self {
        // The SDK's Display is the error kind alone; its source chain names the cause.
        Self::Record { context: context.to_owned(), detail: err.to_string() }
    }
}

/// How traffic moves to the new version.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Everything at once, then the final bake.
    AllAtOnce,
    /// `percent` for `interval`, then everything.
    Canary {
        /// The canary's share, in percent.
        percent: f64,
        /// How long the canary bakes.
        interval: Duration,
    },
    /// `percent` more every `interval` until everything.
    Linear {
        /// The share added each step, in percent.
        percent: f64,
        /// How long each step bakes.
        interval: Duration,
    },
    /// A test stage with no traffic (the gates read the new version directly), then the
    /// switch. Gates that read the new version's traffic ([`Gate::needs_traffic`], as
    /// [`SloGate`] and [`AlarmGate`]) are not read in the test stage, so a rollout whose
    /// every gate does is refused.
    BlueGreen {
        /// How long the test stage lasts.
        test: Duration,
    },
}

/// One step: the new version's weight, and how long it bakes there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    /// 0 to 1.
    pub weight: f64,
    /// How long the gates watch before the next step.
    pub bake: Duration,
}

impl Strategy {
    /// Parses `all-at-once`, `canary:10%:30s`, `linear:25%:1m` or `blue-green:30s`.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let percent = |p: &str| -> Result<f64, String> {
            let value: f64 = p
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("strategy {text:?}: {p:?} is not a percentage"))?;
            if value > 0.0 && value < 100.0 {
                Ok(value)
            } else {
                Err(format!("strategy {text:?}: the share must be above 0% and below 100%"))
            }
        };
        let duration = |d: &str| parse_duration(d).map_err(|e| format!("strategy {text:?}: {e}"));
        match parts.as_slice() {
            ["all-at-once"] => Ok(Self::AllAtOnce),
            ["canary", p, t] => Ok(Self::Canary { percent: percent(p)?, interval: duration(t)? }),
            ["linear", p, t] => Ok(Self::Linear { percent: percent(p)?, interval: duration(t)? }),
            ["blue-green", t] => Ok(Self::BlueGreen { test: duration(t)? }),
            _ => Err(format!(
                "unknown strategy {text:?}: all-at-once, canary:<percent>:<interval>, linear:<percent>:<interval> or blue-green:<test>"
            )),
        }
    }

    /// Whether `other` moves traffic by the same shares, so a step index means the same
    /// weight in both (how long each step bakes may differ).
    pub fn same_steps(&self, other: &Strategy) -> bool {
        let weights = |s: &Strategy| s.steps(Duration::ZERO).iter().map(|s| s.weight).collect::<Vec<_>>();
        weights(self) == weights(other)
    }

    /// The steps, ending at weight 1 with `final_bake`.
    pub fn steps(&self, final_bake: Duration) -> Vec<Step> {
        let last = Step { weight: 1.0, bake: final_bake };
        match *self {
            Self::AllAtOnce => vec![last],
            Self::Canary { percent, interval } => {
                vec![Step { weight: percent / 100.0, bake: interval }, last]
            }
            Self::Linear { percent, interval } => {
                let mut steps = Vec::new();
                let mut share = percent;
                while share < 100.0 - 1e-9 {
                    steps.push(Step { weight: share / 100.0, bake: interval });
                    share += percent;
                }
                steps.push(last);
                steps
            }
            Self::BlueGreen { test } => vec![Step { weight: 0.0, bake: test }, last],
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AllAtOnce => f.write_str("all-at-once"),
            Self::Canary { percent, interval } => write!(f, "canary:{percent}%:{}s", interval.as_secs_f64()),
            Self::Linear { percent, interval } => write!(f, "linear:{percent}%:{}s", interval.as_secs_f64()),
            Self::BlueGreen { test } => write!(f, "blue-green:{}s", test.as_secs_f64()),
        }
    }
}

/// `250ms`, `30s`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len()));
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration (250ms, 30s, 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?} is not a duration (250ms, 30s, 2m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a duration"))
}

/// Which version a rollout deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An already published version.
    Version(String),
    /// Publish `$LATEST` as a new version first.
    Publish,
}

/// What to do with a rollout found interrupted (its lease ran out while in progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Put the alias back on the previous version (the default).
    RollBack,
    /// Carry on from the recorded step, when this run deploys the same version (another
    /// version rolls the interrupted one back, as [`Recovery::RollBack`]). A run that would
    /// not carry it on as it was is refused with [`RolloutError::CannotResume`], traffic and
    /// record untouched: another strategy (other shares; the bake may differ), a record
    /// written before strategies were kept (its step cannot be read), an alias that no
    /// longer shows the deployment (someone pointed it at another version, as a hotfix, or
    /// at another weight, since it was interrupted), or [`Target::Publish`] when `$LATEST`
    /// no longer has the code and settings of the interrupted version.
    Resume,
}

/// One thing a rollout did or read, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutEvent {
    /// Milliseconds since the run started.
    pub after_ms: u64,
    /// `started`, `published`, `shift`, `gate`, `pre_traffic`, `post_traffic`,
    /// `rolled_back`, `halted`, `succeeded`, `recovered`.
    pub kind: String,
    /// The details.
    pub detail: serde_json::Value,
}

/// How a rollout ended.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutOutcome {
    /// The deployment's id.
    pub deployment: String,
    /// The function.
    pub function: String,
    /// The alias.
    pub alias: String,
    /// The version traffic came from.
    pub from_version: String,
    /// The version deployed.
    pub to_version: String,
    /// Succeeded, rolled back or halted.
    pub status: Status,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// When the new version first got traffic, since the run started.
    pub first_traffic_after: Option<Duration>,
    /// When a gate failed (or a step ran over), since the run started.
    pub detected_after: Option<Duration>,
    /// When traffic was back on the previous version, since the run started.
    pub rolled_back_after: Option<Duration>,
    /// The whole run.
    pub total: Duration,
    /// What this run did first with an interrupted rollout it found, if it found one.
    pub recovered: Option<String>,
    /// Every step, reading and decision.
    pub events: Vec<RolloutEvent>,
}

type Observer = Arc<dyn Fn(&RolloutEvent) + Send + Sync>;

/// A rollout of one function's alias to a new version.
#[derive(Clone)]
pub struct Rollout {
    lambda: aws_sdk_lambda::Client,
    record: Record,
    function: String,
    alias: String,
    target: Target,
    strategy: Strategy,
    final_bake: Duration,
    poll: Duration,
    step_timeout: Duration,
    lease: Duration,
    auto_rollback: bool,
    failures_to_fail: u32,
    recovery: Recovery,
    allow_no_gates: bool,
    gates: Vec<Arc<dyn Gate>>,
    pre_traffic: Vec<Arc<dyn Gate>>,
    post_traffic: Vec<Arc<dyn Gate>>,
    owner: String,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollout")
            .field("function", &self.function)
            .field("alias", &self.alias)
            .field("target", &self.target)
            .field("strategy", &self.strategy)
            .field("auto_rollback", &self.auto_rollback)
            .finish_non_exhaustive()
    }
}

/// The run that is going on: its head, its clock and its events.
struct Run {
    head: Head,
    started: Instant,
    events: Vec<RolloutEvent>,
    first_traffic: Option<(Duration, i64)>,
    detected: Option<Duration>,
    rolled_back: Option<Duration>,
    recovered: Option<String>,
}

impl Rollout {
    /// A rollout of `function`'s `alias`: publishes `$LATEST` and shifts all at once unless
    /// told otherwise; polls gates every second; a step's calls and readings get 30 s; the
    /// lease lasts 15 s and is renewed at every write; rolls back automatically.
    pub fn new(
        lambda: aws_sdk_lambda::Client,
        record: Record,
        function: impl Into<String>,
        alias: impl Into<String>,
    ) -> Self {
        Self {
            lambda,
            record,
            function: function.into(),
            alias: alias.into(),
            target: Target::Publish,
            strategy: Strategy::AllAtOnce,
            final_bake: Duration::ZERO,
            poll: Duration::from_secs(1),
            step_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(15),
            auto_rollback: true,
            failures_to_fail: 1,
            recovery: Recovery::RollBack,
            allow_no_gates: false,
            gates: Vec::new(),
            pre_traffic: Vec::new(),
            post_traffic: Vec::new(),
            owner: format!("{}-{}", hostname(), uuid_like()),
            observer: None,
        }
    }

    /// The version to deploy.
    pub fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// How traffic moves.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How long the gates watch after the last shift, before the post-traffic hooks.
    pub fn final_bake(mut self, bake: Duration) -> Self {
        self.final_bake = bake;
        self
    }

    /// How often gates are read while a step bakes.
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// How long one alias update or one gate reading may take before the step fails.
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = timeout;
        self
    }

    /// How long the lease holds without a write; a run that stops writing for longer is
    /// taken for interrupted.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Whether a failed gate rolls back (default) or only halts where it is.
    pub fn auto_rollback(mut self, on: bool) -> Self {
        self.auto_rollback = on;
        self
    }

    /// How many failing readings of one gate in a row fail a step while it bakes (default
    /// 1). A failing reading at the end of a step, and a failing hook, always fail it.
    pub fn failures_to_fail(mut self, readings: u32) -> Self {
        self.failures_to_fail = readings.max(1);
        self
    }

    /// What to do with an interrupted rollout.
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// Lets the rollout run with no gate (default: refused). Such a rollout promotes the new
    /// version on the clock alone: each step ends when its bake runs out with nothing read,
    /// and only a failing hook, if there is one, can stop it. Use it only where something
    /// outside the rollout judges the version.
    pub fn allow_no_gates(mut self, allow: bool) -> Self {
        self.allow_no_gates = allow;
        self
    }

    /// A gate read between steps, and while each step bakes.
    pub fn gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gates.push(gate);
        self
    }

    /// A hook run once before any traffic moves, against the new version directly.
    pub fn pre_traffic(mut self, hook: Arc<dyn Gate>) -> Self {
        self.pre_traffic.push(hook);
        self
    }

    /// A hook run once after all traffic moved.
    pub fn post_traffic(mut self, hook: Arc<dyn Gate>) -> Self {
        self.post_traffic.push(hook);
        self
    }

    /// The name this run holds the lease under (default: host and a random suffix).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Called with every event as it happens (the CLI prints them).
    pub fn on_event(mut self, observer: impl Fn(&RolloutEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    fn validate(&self) -> Result<(), RolloutError> {
        if self.poll.is_zero() || self.lease < self.poll * 3 {
            return Err(RolloutError::Invalid(format!(
                "the lease ({:?}) must be at least three polls ({:?})",
                self.lease, self.poll
            )));
        }
        if self.step_timeout >= self.lease * 4 {
            return Err(RolloutError::Invalid(format!(
                "the step timeout ({:?}) must be under four leases ({:?})",
                self.step_timeout, self.lease
            )));
        }
        // Hooks run once, at the edges; without a gate no step is watched, and every step
        // "passes" when its time runs out.
        if self.gates.is_empty() && !self.allow_no_gates {
            return Err(RolloutError::Invalid(
                "no gate reads the new version, so it would be promoted on the clock alone; add a gate \
                 (HealthGate, SloGate, AlarmGate, CommandGate), or allow it with allow_no_gates(true)"
                    .into(),
            ));
        }
        // A test stage with no traffic is read only by gates that need none: with none of
        // those it would pass on zero readings.
        if matches!(self.strategy, Strategy::BlueGreen { .. })
            && !self.gates.is_empty()
            && self.gates.iter().all(|gate| gate.needs_traffic())
        {
            let names: Vec<&str> = self.gates.iter().map(|gate| gate.name()).collect();
            return Err(RolloutError::Invalid(format!(
                "blue/green's test stage sends the new version no traffic, and every gate ({}) reads \
                 its traffic, so the stage would pass unread; add a gate that reads the new version \
                 directly (HealthGate, CommandGate) or use another strategy",
                names.join(", ")
            )));
        }
        // A gate read over less than its window ends the step on a reading of the old version.
        for step in self.strategy.steps(self.final_bake) {
            for gate in &self.gates {
                let read = !(gate.needs_traffic() && step.weight == 0.0);
                if read && step.bake < gate.min_bake() {
                    return Err(RolloutError::Invalid(format!(
                        "gate {} needs a bake of at least {:?} to see the new version, and the step at \
                         {}% bakes {:?}; lengthen the step (or the final bake)",
                        gate.name(),
                        gate.min_bake(),
                        step.weight * 100.0,
                        step.bake
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs the rollout to its end: succeeded, rolled back or halted.
    ///
    /// # Errors
    /// [`RolloutError`] when it cannot start (another run holds the function, the alias
    /// is split, an API fails; [`RolloutError::Invalid`] for settings that would prove
    /// nothing: no gate unless [`Rollout::allow_no_gates`], blue/green with only gates that
    /// need traffic, or a step that bakes for less than a gate it reads needs,
    /// [`Gate::min_bake`]) or loses its lease. After it has shifted traffic, an API
    /// or record failure rolls back first, then reports the error.
    pub async fn run(&self) -> Result<RolloutOutcome, RolloutError> {
        self.validate()?;
        let started = Instant::now();
        let mut recovered = None;
        let mut resume = None;
        if let Some(head) =
            self.bounded("reading the deployment record", self.record.head(&self.function)).await?
        {
            if head.status == Status::InProgress {
                if head.lease_until_ms > now_ms() {
                    return Err(RolloutError::InProgress {
                        function: self.function.clone(),
                        deployment: head.deployment,
                        owner: head.owner,
                    });
                }
                let same_target = matches!(&self.target, Target::Version(v) if *v == head.to_version)
                    || self.target == Target::Publish;
                if self.recovery == Recovery::Resume && same_target && head.alias == self.alias {
                    // Asked to carry on: only what was interrupted, or nothing at all.
                    self.check_resumable(&head).await?;
                    resume = Some(head);
                } else {
                    recovered = Some(self.roll_back_interrupted(head, started).await?);
                }
            }
        }
        let mut run = match resume {
            Some(old) => {
                let mut head = old.clone();
                head.owner = self.owner.clone();
                // The same sequence: the next event follows the last one the old owner wrote.
                head.seq = old.seq;
                head.lease_until_ms = lease_until(self.lease);
                self.bounded("taking over the function", self.record.claim(&head, Some(&old))).await?;
                let mut run = Run {
                    head,
                    started,
                    events: Vec::new(),
                    first_traffic: None,
                    detected: None,
                    rolled_back: None,
                    recovered: Some(format!("resumed deployment {} at step {}", old.deployment, old.step)),
                };
                if old.weight > 0.0 {
                    run.first_traffic = Some((Duration::ZERO, now_ms()));
                }
                self.emit(
                    &mut run,
                    "recovered",
                    serde_json::json!({"resumed": old.deployment, "step": old.step}),
                )
                .await?;
                run
            }
            None => match self.start(started, recovered).await? {
                Ok(run) => run,
                Err(outcome) => return Ok(*outcome),
            },
        };
        match self.drive(&mut run).await {
            Ok(()) => Ok(self.outcome(run)),
            Err(err @ RolloutError::LeaseLost { .. }) => Err(err),
            Err(err) => {
                // Whatever failed, traffic does not stay split: back to the previous version.
                // The head's weight is set only once an update was answered, so a sent one
                // counts too; the rollback reads the alias and changes nothing if nothing moved.
                if self.auto_rollback && (run.head.weight > 0.0 || run.head.traffic_sent) {
                    match self.fail(&mut run, format!("stopped by an error: {err}")).await {
                        Ok(()) => {}
                        // Another run holds the function now: its traffic is left to it.
                        Err(lost @ RolloutError::LeaseLost { .. }) => return Err(lost),
                        // Traffic is back; only the record's last event is missing, and the
                        // next run finds the deployment interrupted and closes it.
                        Err(_) if run.rolled_back.is_some() => {}
                        Err(rollback) => {
                            return Err(RolloutError::RollbackFailed {
                                function: self.function.clone(),
                                error: Box::new(err),
                                rollback: Box::new(rollback),
                            })
                        }
                    }
                }
                Err(err)
            }
        }
    }

    /// Refuses to resume `old` unless this run would take the same steps (its strategy is
    /// recorded, and moves traffic by the same shares) to the same version (with
    /// [`Target::Publish`], `$LATEST` still has the recorded version's code and settings),
    /// from an alias still as the deployment left it.
    async fn check_resumable(&self, old: &Head) -> Result<(), RolloutError> {
        let refuse = |reason: String| RolloutError::CannotResume {
            function: self.function.clone(),
            deployment: old.deployment.clone(),
            reason,
        };
        let recorded = old.strategy.as_deref().map(|text| (text, Strategy::parse(text)));
        match recorded {
            None => {
                return Err(refuse(
                    "its record predates recorded strategies, so its step cannot be read".into(),
                ))
            }
            Some((text, Err(_))) => {
                return Err(refuse(format!("its recorded strategy {text:?} is not one this version reads")))
            }
            Some((text, Ok(strategy))) if !strategy.same_steps(&self.strategy) => {
                return Err(refuse(format!("it ran {text}, not {}", self.strategy)))
            }
            Some((_, Ok(strategy))) => {
                // An alias moved since the run stopped (an operator's hotfix, a manual
                // rollback, another weight) is someone else's decision: carrying on would
                // move traffic over it.
                let alias = self.get_alias_of(&old.alias).await?;
                alias_shows(old, &strategy.steps(Duration::ZERO), &alias).map_err(refuse)?;
            }
        }
        if self.target == Target::Publish {
            let latest = self.publication(LATEST).await?;
            let recorded = self.publication(&old.to_version).await?;
            if latest != recorded {
                return Err(refuse(format!(
                    "$LATEST no longer has the code and settings of version {}, which it was deploying",
                    old.to_version
                )));
            }
        }
        Ok(())
    }

    /// What publishing `qualifier` makes a version of: its code and the settings a version
    /// keeps, as `GetFunctionConfiguration` reports them.
    async fn publication(&self, qualifier: &str) -> Result<String, RolloutError> {
        let out = self
            .lambda
            .get_function_configuration()
            .function_name(&self.function)
            .qualifier(qualifier)
            .send();
        let config = match tokio::time::timeout(self.step_timeout, out).await {
            Ok(Ok(config)) => config,
            Ok(Err(err)) => {
                return Err(RolloutError::Lambda {
                    operation: "GetFunctionConfiguration",
                    detail: sdk_error(&err),
                })
            }
            Err(_) => {
                return Err(RolloutError::Lambda {
                    operation: "GetFunctionConfiguration",
                    detail: format!("no answer within the step timeout of {:?}", self.step_timeout),
                })
            }
        };
        let variables: std::collections::BTreeMap<_, _> =
            config.environment().and_then(|e| e.variables()).into_iter().flatten().collect();
        let layers: Vec<_> = config.layers().iter().map(|l| l.arn()).collect();
        Ok(format!(
            "{:?}",
            (
                config.code_sha256(),
                config.runtime(),
                config.handler(),
                config.memory_size(),
                config.timeout(),
                variables,
                layers,
                config.architectures(),
                config.tracing_config().and_then(|t| t.mode()),
                config.ephemeral_storage().map(|e| e.size()),
            )
        ))
    }

    /// Claims the function and resolves both versions; `Err(outcome)` when there is nothing
    /// to deploy.
    async fn start(
        &self,
        started: Instant,
        recovered: Option<String>,
    ) -> Result<Result<Run, Box<RolloutOutcome>>, RolloutError> {
        let alias = self.get_alias().await?;
        if let Some((version, weight)) = alias.split {
            return Err(RolloutError::Split {
                function: self.function.clone(),
                alias: self.alias.clone(),
                version,
                weight,
            });
        }
        let mut events = Vec::new();
        let to_version = match &self.target {
            Target::Version(v) => v.clone(),
            Target::Publish => {
                let out = self
                    .lambda
                    .publish_version()
                    .function_name(&self.function)
                    .description("lift-deploy rollout")
                    .send()
                    .await
                    .map_err(|e| RolloutError::Lambda {
                        operation: "PublishVersion",
                        detail: sdk_error(&e),
                    })?;
                let version = out.version().unwrap_or_default().to_owned();
                events.push(RolloutEvent {
                    after_ms: started.elapsed().as_millis() as u64,
                    kind: "published".into(),
                    detail: serde_json::json!({"version": version}),
                });
                version
            }
        };
        if to_version == LATEST || to_version.is_empty() {
            return Err(RolloutError::Invalid(
                "an alias with traffic shifting needs a published version".into(),
            ));
        }
        let mut head = Head {
            function: self.function.clone(),
            deployment: format!("d-{}", uuid_like()),
            status: Status::InProgress,
            alias: self.alias.clone(),
            from_version: alias.version.clone(),
            to_version: to_version.clone(),
            strategy: Some(self.strategy.to_string()),
            step: 0,
            weight: 0.0,
            seq: 0,
            owner: self.owner.clone(),
            lease_until_ms: lease_until(self.lease),
            reason: None,
            traffic_sent: false,
        };
        if to_version == alias.version {
            return Ok(Err(Box::new(RolloutOutcome {
                deployment: String::new(),
                function: self.function.clone(),
                alias: self.alias.clone(),
                from_version: alias.version,
                to_version,
                status: Status::Succeeded,
                reason: Some("already live".into()),
                first_traffic_after: None,
                detected_after: None,
                rolled_back_after: None,
                total: started.elapsed(),
                recovered,
                events,
            })));
        }
        self.bounded("claiming the function", self.record.claim(&head, None)).await?;
        // Read again now that no other rollout can move the alias: one that ended between
        // the first read and the claim moved it, and rolling back to what the first read saw
        // would undo that rollout.
        let claimed = self.get_alias().await?;
        let moved = claimed.version != alias.version || claimed.split.is_some();
        head.from_version = claimed.version.clone();
        let mut run =
            Run { head, started, events, first_traffic: None, detected: None, rolled_back: None, recovered };
        if moved {
            if let Some((version, weight)) = claimed.split {
                let reason =
                    format!("the alias was split before any traffic moved (version {version} at {weight})");
                run.head.status = Status::Halted;
                run.head.reason = Some(reason.clone());
                self.emit(&mut run, "halted", serde_json::json!({"reason": reason, "weight": 0.0})).await?;
                return Err(RolloutError::Split {
                    function: self.function.clone(),
                    alias: self.alias.clone(),
                    version,
                    weight,
                });
            }
            if claimed.version == to_version {
                run.head.status = Status::Succeeded;
                run.head.reason = Some("already live".into());
                self.emit(&mut run, "succeeded", serde_json::json!({"version": to_version})).await?;
                return Ok(Err(Box::new(self.outcome(run))));
            }
        }
        let detail = serde_json::json!({
            "from": run.head.from_version,
            "to": run.head.to_version,
            "strategy": self.strategy.to_string(),
            "auto_rollback": self.auto_rollback,
        });
        self.emit(&mut run, "started", detail).await?;
        Ok(Ok(run))
    }

    /// The steps, the gates and the hooks, from the run's recorded step on.
    async fn drive(&self, run: &mut Run) -> Result<(), RolloutError> {
        let steps = self.strategy.steps(self.final_bake);
        if run.head.step == 0 && run.head.weight == 0.0 {
            // Before any traffic: the version exists and is active, then the pre-traffic hooks.
            if let Some(reason) = self.version_not_ready(&run.head.to_version).await {
                return self.fail(run, reason).await;
            }
            if let Some(reason) = self.hooks(run, &self.pre_traffic, "pre_traffic").await? {
                return self.fail(run, reason).await;
            }
        }
        let first = (run.head.step as usize).min(steps.len().saturating_sub(1));
        for (index, step) in steps.iter().enumerate().skip(first) {
            self.shift(run, index, step.weight).await?;
            if let Some(reason) = self.bake(run, step).await? {
                return self.fail(run, reason).await;
            }
        }
        if let Some(reason) = self.hooks(run, &self.post_traffic, "post_traffic").await? {
            return self.fail(run, reason).await;
        }
        run.head.status = Status::Succeeded;
        let written = self.emit(run, "succeeded", serde_json::json!({"version": run.head.to_version})).await;
        if written.is_err() {
            // Not recorded: what follows (a rollback) writes the deployment as in progress.
            run.head.status = Status::InProgress;
        }
        written
    }

    /// Runs hooks once each, in order: the reason to stop at the first that does not pass.
    async fn hooks(
        &self,
        run: &mut Run,
        hooks: &[Arc<dyn Gate>],
        kind: &str,
    ) -> Result<Option<String>, RolloutError> {
        for hook in hooks {
            let reading = self.read(hook.as_ref(), run).await;
            self.emit(run, kind, serde_json::json!({"hook": hook.name(), "reading": reading})).await?;
            if reading.verdict != Verdict::Pass {
                let when = kind.replace('_', "-");
                return Ok(Some(format!("{when} hook {}: {}", hook.name(), reading.detail)));
            }
        }
        Ok(None)
    }

    /// Watches the gates for a step's bake: the reason to stop, if one fails.
    async fn bake(&self, run: &mut Run, step: &Step) -> Result<Option<String>, RolloutError> {
        let until = Instant::now() + step.bake;
        // Failing readings in a row, per gate: one transient failure need not end a rollout
        // when `failures_to_fail` says so, but a failure at the end of a step always does.
        let mut streaks = vec![0u32; self.gates.len()];
        loop {
            let last = Instant::now() >= until;
            let mut readings = Vec::new();
            let mut failed = None;
            let mut no_data = None;
            for (i, gate) in self.gates.iter().enumerate() {
                if gate.needs_traffic() && run.head.weight == 0.0 {
                    continue;
                }
                let reading = self.read(gate.as_ref(), run).await;
                match reading.verdict {
                    Verdict::Fail => {
                        streaks[i] += 1;
                        if (streaks[i] >= self.failures_to_fail || last) && failed.is_none() {
                            failed = Some(format!("gate {}: {}", gate.name(), reading.detail));
                        }
                    }
                    Verdict::NoData => {
                        streaks[i] = 0;
                        if no_data.is_none() {
                            no_data = Some(format!(
                                "gate {} had no evidence by the end of the step: {}",
                                gate.name(),
                                reading.detail
                            ));
                        }
                    }
                    Verdict::Pass => streaks[i] = 0,
                }
                readings.push(serde_json::json!({"gate": gate.name(), "reading": reading}));
            }
            if !readings.is_empty() {
                self.emit(run, "gate", serde_json::json!({"weight": run.head.weight, "readings": readings}))
                    .await?;
            } else {
                self.renew(run).await?;
            }
            if failed.is_some() {
                return Ok(failed);
            }
            if last {
                return Ok(no_data);
            }
            let wait = self.poll.min(until.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads one gate, failing it when it takes longer than the step timeout.
    async fn read(&self, gate: &dyn Gate, run: &Run) -> Reading {
        let ctx = GateContext {
            function: self.function.clone(),
            alias: self.alias.clone(),
            from_version: run.head.from_version.clone(),
            to_version: run.head.to_version.clone(),
            weight: run.head.weight,
            traffic_since_ms: run.first_traffic.map(|(_, ms)| ms),
            lambda: self.lambda.clone(),
        };
        match tokio::time::timeout(self.step_timeout, gate.check(&ctx)).await {
            Ok(reading) => reading,
            Err(_) => Reading::fail(format!("no reading within the step timeout of {:?}", self.step_timeout)),
        }
    }

    /// Moves the alias to `weight` of the new version.
    async fn shift(&self, run: &mut Run, index: usize, weight: f64) -> Result<(), RolloutError> {
        let (primary, routing) = if weight >= 1.0 {
            (run.head.to_version.clone(), None)
        } else if weight > 0.0 {
            (run.head.from_version.clone(), Some((run.head.to_version.clone(), weight)))
        } else {
            (run.head.from_version.clone(), None)
        };
        let update = async {
            let current = self.get_alias().await?;
            // The lease is renewed between the read and the write: a run that lost it (stalled
            // while another took over) learns it here, before it moves traffic, not from the
            // event written after. The same write records that traffic is about to move.
            if weight > 0.0 {
                run.head.traffic_sent = true;
            }
            self.renew(run).await?;
            self.update_alias_of(&self.alias, &primary, routing, current.revision.as_deref()).await
        };
        match tokio::time::timeout(self.step_timeout, update).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(RolloutError::Lambda {
                    operation: "UpdateAlias",
                    detail: format!("no answer within the step timeout of {:?}", self.step_timeout),
                })
            }
        }
        run.head.step = index as u32;
        run.head.weight = weight;
        if weight > 0.0 && run.first_traffic.is_none() {
            run.first_traffic = Some((run.started.elapsed(), now_ms()));
        }
        self.emit(run, "shift", serde_json::json!({"step": index, "weight": weight, "primary": primary}))
            .await
    }

    /// Stops the run: back to the previous version, or halted where it is.
    async fn fail(&self, run: &mut Run, reason: String) -> Result<(), RolloutError> {
        run.detected.get_or_insert(run.started.elapsed());
        run.head.reason = Some(reason.clone());
        if !self.auto_rollback {
            run.head.status = Status::Halted;
            return self
                .emit(run, "halted", serde_json::json!({"reason": reason, "weight": run.head.weight}))
                .await;
        }
        // The lease first: a run that lost it (its record writes stalled past the lease, and
        // another run took the deployment over and may have resumed it) leaves traffic to the
        // new owner. A record that does not answer does not hold the rollback back.
        if let Err(lost @ RolloutError::LeaseLost { .. }) = self.renew(run).await {
            return Err(lost);
        }
        let from = run.head.from_version.clone();
        match tokio::time::timeout(self.step_timeout, self.restore(&self.alias, &from)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(RolloutError::Lambda {
                    operation: "UpdateAlias",
                    detail: format!(
                        "rolling back: no answer within the step timeout of {:?}",
                        self.step_timeout
                    ),
                })
            }
        }
        run.rolled_back = Some(run.started.elapsed());
        run.head.status = Status::RolledBack;
        run.head.weight = 0.0;
        self.emit(run, "rolled_back", serde_json::json!({"reason": reason, "version": from})).await
    }

    /// Takes over an interrupted rollout and puts its alias back on its previous version.
    async fn roll_back_interrupted(&self, old: Head, started: Instant) -> Result<String, RolloutError> {
        let mut head = old.clone();
        head.owner = self.owner.clone();
        head.seq = old.seq;
        head.lease_until_ms = lease_until(self.lease);
        self.bounded("taking over the function", self.record.claim(&head, Some(&old))).await?;
        let mut left_on = old.from_version.clone();
        let reason = if old.traffic_sent {
            // Only traffic the deployment still has is its to take back: an alias moved on
            // to another version meanwhile (a hotfix) is someone else's decision.
            let alias = self.get_alias_of(&old.alias).await?;
            let serves_it = alias.version == old.to_version
                || alias.split.as_ref().is_some_and(|(version, _)| *version == old.to_version);
            let already_back = alias.version == old.from_version && alias.split.is_none();
            if serves_it || already_back {
                self.restore(&old.alias, &old.from_version).await?;
                format!(
                    "deployment {} of version {} was interrupted at {:.0}% (lease ran out); rolled back to version {}",
                    old.deployment,
                    old.to_version,
                    old.weight * 100.0,
                    old.from_version
                )
            } else {
                left_on = alias.version.clone();
                let split = alias
                    .split
                    .map(|(version, weight)| format!(" ({:.0}% to version {version})", weight * 100.0))
                    .unwrap_or_default();
                format!(
                    "deployment {} of version {} was interrupted (lease ran out), and alias {} no longer \
                     routes to version {}: it is on version {}{split}, left as it is",
                    old.deployment, old.to_version, old.alias, old.to_version, alias.version
                )
            }
        } else {
            // It never sent traffic anywhere, so the alias is not its to put back: another
            // rollout or a person may have moved it since.
            format!(
                "deployment {} of version {} was interrupted before it moved any traffic (lease ran out); alias left as it was",
                old.deployment, old.to_version
            )
        };
        let mut run = Run {
            head,
            started,
            events: Vec::new(),
            first_traffic: None,
            detected: None,
            rolled_back: None,
            recovered: None,
        };
        run.head.status = Status::RolledBack;
        run.head.weight = 0.0;
        run.head.reason = Some(reason.clone());
        self.emit(&mut run, "rolled_back", serde_json::json!({"reason": reason, "version": left_on})).await?;
        Ok(reason)
    }

    async fn version_not_ready(&self, version: &str) -> Option<String> {
        let out =
            self.lambda.get_function_configuration().function_name(&self.function).qualifier(version).send();
        match tokio::time::timeout(self.step_timeout, out).await {
            Err(_) => Some(format!("version {version} not readable within {:?}", self.step_timeout)),
            Ok(Err(err)) => Some(format!("version {version}: {}", sdk_error(&err))),
            Ok(Ok(config)) => match config.state().map(|s| s.as_str().to_owned()) {
                Some(state) if state != "Active" => Some(format!("version {version} is {state}, not Active")),
                _ => None,
            },
        }
    }

    /// Writes an event (and renews the lease), and tells the observer.
    async fn emit(&self, run: &mut Run, kind: &str, detail: serde_json::Value) -> Result<(), RolloutError> {
        self.write(run, "writing a deployment event", kind, &detail).await?;
        let event = RolloutEvent {
            after_ms: run.started.elapsed().as_millis() as u64,
            kind: kind.to_owned(),
            detail,
        };
        if let Some(observer) = &self.observer {
            observer(&event);
        }
        run.events.push(event);
        Ok(())
    }

    /// Renews the lease with a `heartbeat` event when nothing else was written.
    async fn renew(&self, run: &mut Run) -> Result<(), RolloutError> {
        self.write(run, "renewing the lease", "heartbeat", &serde_json::Value::Null).await
    }

    /// Appends one event at the sequence after the last write known to have landed.
    ///
    /// The head's sequence moves on only once a write is known to have landed: one that
    /// failed without landing (a throttle, a cancelled transaction, a request that never
    /// arrived) leaves it, so the next write still meets its condition. One whose answer was
    /// lost may have landed all the same; the next write then fails its condition, and the
    /// head read again decides: still this run's deployment and owner means the write that
    /// moved it on was this run's own, so the sequence follows it and the write goes once
    /// more, without writing the lost one again. Anything else is another run's. The write
    /// that records success is not followed by another, so when it fails unanswered the head
    /// is read at once: this run's deployment and owner, moved on and succeeded, means it
    /// landed.
    async fn write(
        &self,
        run: &mut Run,
        context: &str,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<(), RolloutError> {
        run.head.lease_until_ms = lease_until(self.lease);
        let mut resynced = false;
        loop {
            let landed = run.head.seq;
            run.head.seq = landed + 1;
            let result = self.bounded(context, self.record.append(&run.head, kind, detail.clone())).await;
            if result.is_err() {
                run.head.seq = landed;
            }
            match result {
                Err(lost @ RolloutError::LeaseLost { .. }) if !resynced => {
                    let read = self.bounded(context, self.record.head(&self.function)).await;
                    match read {
                        Ok(Some(head))
                            if head.deployment == run.head.deployment
                                && head.owner == run.head.owner
                                && head.seq > landed =>
                        {
                            run.head.seq = head.seq;
                            resynced = true;
                        }
                        // Another owner, or a head that cannot be read: the condition failing
                        // is the only fact, and traffic is left to whoever holds it.
                        _ => return Err(lost),
                    }
                }
                // The write that records success, unanswered: it may have landed, and a run
                // that took that for a failure would roll back a deployment its record says
                // succeeded. The head read once decides, by the same rule as above.
                Err(unanswered @ RolloutError::Record { .. }) if run.head.status == Status::Succeeded => {
                    let read = self.bounded(context, self.record.head(&self.function)).await;
                    return match read {
                        Ok(Some(head))
                            if head.deployment == run.head.deployment
                                && head.owner == run.head.owner
                                && head.seq > landed
                                && head.status == Status::Succeeded =>
                        {
                            run.head.seq = head.seq;
                            Ok(())
                        }
                        _ => Err(unanswered),
                    };
                }
                other => return other,
            }
        }
    }

    /// A record operation, failed when DynamoDB does not answer within the step timeout: a
    /// record that hangs must not hold traffic where it is.
    async fn bounded<T>(
        &self,
        context: &str,
        op: impl std::future::Future<Output = Result<T, RolloutError>>,
    ) -> Result<T, RolloutError> {
        match tokio::time::timeout(self.step_timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(RolloutError::Record {
                context: context.to_owned(),
                detail: format!("no answer within the step timeout of {:?}", self.step_timeout),
            }),
        }
    }

    fn outcome(&self, run: Run) -> RolloutOutcome {
        RolloutOutcome {
            deployment: run.head.deployment,
            function: self.function.clone(),
            alias: self.alias.clone(),
            from_version: run.head.from_version,
            to_version: run.head.to_version,
            status: run.head.status,
            reason: run.head.reason,
            first_traffic_after: run.first_traffic.map(|(after, _)| after),
            detected_after: run.detected,
            rolled_back_after: run.rolled_back,
            total: run.started.elapsed(),
            recovered: run.recovered,
            events: run.events,
        }
    }

    async fn get_alias(&self) -> Result<AliasState, RolloutError> {
        self.get_alias_of(&self.alias).await
    }

    async fn get_alias_of(&self, alias: &str) -> Result<AliasState, RolloutError> {
        let out = self
            .lambda
            .get_alias()
            .function_name(&self.function)
            .name(alias)
            .send()
            .await
            .map_err(|e| RolloutError::Lambda { operation: "GetAlias", detail: sdk_error(&e) })?;
        let split = out
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .and_then(|w| w.iter().find(|(_, weight)| **weight > 0.0))
            .map(|(v, w)| (v.clone(), *w));
        Ok(AliasState {
            version: out.function_version().unwrap_or_default().to_owned(),
            split,
            revision: out.revision_id().map(str::to_owned),
        })
    }

    /// Puts `alias` back on `version` with no routing config, as read now: an alias already
    /// there is left alone, so a rollback after an update that never landed changes nothing.
    async fn restore(&self, alias: &str, version: &str) -> Result<(), RolloutError> {
        let current = self.get_alias_of(alias).await?;
        if current.version == version && current.split.is_none() {
            return Ok(());
        }
        self.update_alias_of(alias, version, None, current.revision.as_deref()).await
    }

    async fn update_alias_of(
        &self,
        alias: &str,
        primary: &str,
        routing: Option<(String, f64)>,
        revision: Option<&str>,
    ) -> Result<(), RolloutError> {
        // No additional version is an empty map, which is how UpdateAlias clears a split.
        let weights: HashMap<String, f64> = routing.into_iter().collect();
        let config =
            AliasRoutingConfiguration::builder().set_additional_version_weights(Some(weights)).build();
        self.lambda
            .update_alias()
            .function_name(&self.function)
            .name(alias)
            .function_version(primary)
            .routing_config(config)
            .set_revision_id(revision.map(str::to_owned))
            .send()
            .await
            .map_err(|e| RolloutError::Lambda { operation: "UpdateAlias", detail: sdk_error(&e) })?;
        Ok(())
    }
}

/// An alias as read.
struct AliasState {
    version: String,
    split: Option<(String, f64)>,
    revision: Option<String>,
}

/// Whether `alias` is as the interrupted deployment `old`, moving by `steps`, may have left
/// it: at its recorded weight of the new version, or, once it sent traffic, at the weight of
/// the step in progress or the next one (an update that landed while its answer, or the
/// event after it, did not). Anything else was moved by someone else: the reason it was.
fn alias_shows(old: &Head, steps: &[Step], alias: &AliasState) -> Result<(), String> {
    let weight = match &alias.split {
        None if alias.version == old.to_version => Some(1.0),
        None if alias.version == old.from_version => Some(0.0),
        Some((version, weight)) if alias.version == old.from_version && *version == old.to_version => {
            Some(*weight)
        }
        _ => None,
    };
    let step = old.step as usize;
    let mut expected = vec![old.weight];
    if old.traffic_sent {
        // The step in progress not recorded yet (its weight above the recorded one): only it
        // is one update further; recorded, the next one is.
        let ahead = if steps.get(step).is_some_and(|s| old.weight < s.weight) { 1 } else { 2 };
        expected.extend(steps.iter().skip(step).take(ahead).map(|s| s.weight));
    }
    if weight.is_some_and(|w| expected.iter().any(|e| (w - e).abs() < 1e-9)) {
        return Ok(());
    }
    let now = match &alias.split {
        Some((version, weight)) => {
            format!("version {} with {:.0}% to version {version}", alias.version, weight * 100.0)
        }
        None => format!("version {}", alias.version),
    };
    Err(format!(
        "alias {} was moved since it was interrupted: it is on {now}, where its record has {:.0}% \
         on version {} (from version {}); it is left to whoever moved it",
        old.alias,
        old.weight * 100.0,
        old.to_version,
        old.from_version
    ))
}

fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lift-deploy".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_and_end_at_everything() {
        let canary = Strategy::parse("canary:10%:30s").unwrap();
        assert_eq!(canary, Strategy::Canary { percent: 10.0, interval: Duration::from_secs(30) });
        let steps = canary.steps(Duration::from_secs(5));
        assert_eq!(steps.iter().map(|s| s.weight).collect::<Vec<_>>(), vec![0.1, 1.0]);
        assert_eq!(steps[1].bake, Duration::from_secs(5));
        let linear = Strategy::parse("linear:25%:1m").unwrap().steps(Duration::ZERO);
        assert_eq!(linear.iter().map(|s| s.weight).collect::<Vec<_>>(), vec![0.25, 0.5, 0.75, 1.0]);
        assert!(linear[..3].iter().all(|s| s.bake == Duration::from_secs(60)));
        let thirds = Strategy::parse("linear:33%:1s").unwrap().steps(Duration::ZERO);
        assert_eq!(thirds.len(), 4, "33, 66, 99, then everything: {thirds:?}");
        assert_eq!(Strategy::parse("blue-green:250ms").unwrap().steps(Duration::ZERO)[0].weight, 0.0);
        assert_eq!(Strategy::parse("all-at-once").unwrap().steps(Duration::ZERO).len(), 1);
        for bad in
            ["canary:0%:1s", "canary:100%:1s", "canary:ten:1s", "linear:10%", "canary:10%:5h", "rolling"]
        {
            assert!(Strategy::parse(bad).is_err(), "{bad} is refused");
        }
        assert_eq!(Strategy::parse(&canary.to_string()).unwrap(), canary, "Display round-trips");
    }

    fn interrupted_at(step: u32, weight: f64, traffic_sent: bool) -> Head {
        Head {
            function: "payments".into(),
            deployment: "d-1".into(),
            status: Status::InProgress,
            alias: "live".into(),
            from_version: "1".into(),
            to_version: "2".into(),
            strategy: Some("linear:25%:1s".into()),
            step,
            weight,
            seq: 4,
            owner: "gone".into(),
            lease_until_ms: 0,
            reason: None,
            traffic_sent,
        }
    }

    fn alias(version: &str, split: Option<(&str, f64)>) -> AliasState {
        AliasState { version: version.into(), split: split.map(|(v, w)| (v.into(), w)), revision: None }
    }

    #[test]
    fn a_resume_accepts_only_an_alias_the_deployment_could_have_left() {
        let steps = Strategy::parse("linear:25%:1s").unwrap().steps(Duration::ZERO);
        let at_half = interrupted_at(1, 0.5, true);
        // As recorded, or one update further (landed, its answer or event lost).
        assert!(alias_shows(&at_half, &steps, &alias("1", Some(("2", 0.5)))).is_ok());
        assert!(alias_shows(&at_half, &steps, &alias("1", Some(("2", 0.75)))).is_ok());
        // The first shift sent, not yet recorded.
        let sent = interrupted_at(0, 0.0, true);
        assert!(alias_shows(&sent, &steps, &alias("1", Some(("2", 0.25)))).is_ok());
        assert!(alias_shows(&sent, &steps, &alias("1", None)).is_ok());
        // Two updates further than the record (50% by hand at step 0): someone else's.
        assert!(alias_shows(&sent, &steps, &alias("1", Some(("2", 0.5)))).is_err());
        // Nothing sent: the alias can only be where it was.
        let idle = interrupted_at(0, 0.0, false);
        assert!(alias_shows(&idle, &steps, &alias("1", None)).is_ok());
        assert!(alias_shows(&idle, &steps, &alias("1", Some(("2", 0.25)))).is_err());
        // Last step sent: everything on the new version.
        let last = interrupted_at(2, 0.75, true);
        assert!(alias_shows(&last, &steps, &alias("2", None)).is_ok());
        // Someone else's: a hotfix, a hotfix canary, another weight, a manual rollback.
        for (moved, split) in [
            ("3", None),
            ("3", Some(("2", 0.5))),
            ("1", Some(("3", 0.5))),
            ("1", Some(("2", 0.05))),
            ("1", None),
            ("2", Some(("1", 0.5))),
        ] {
            let reason = alias_shows(&at_half, &steps, &alias(moved, split)).unwrap_err();
            assert!(reason.contains("alias live was moved"), "{moved} {split:?}: {reason}");
        }
    }

    #[test]
    fn same_steps_compares_shares_not_bakes() {
        let parse = |text| Strategy::parse(text).unwrap();
        assert!(parse("canary:40%:60s").same_steps(&parse("canary:40%:100ms")), "a shorter bake resumes");
        assert!(!parse("canary:40%:60s").same_steps(&parse("canary:10%:60s")));
        assert!(!parse("linear:10%:1s").same_steps(&parse("all-at-once")), "step 0 would be 100%");
        assert!(!parse("blue-green:1s").same_steps(&parse("all-at-once")));
    }
}
