//! Passive health, as Envoy's outlier detection does it: real requests mark a region
//! suspect, an immediate probe confirms; and per-operation timeouts that follow the latency
//! each region shows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::env::{self, Vars};
use super::ConfigError;

/// Why a request to a region counts against it. Answers that are the caller's business (a
/// failed condition, a validation error, an item not found) are not failures: the region
/// answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No answer within the request's (adaptive) timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The region answered with a server error (5xx).
    ServerError,
    /// The region throttled the request.
    Throttled,
}

impl FailureKind {
    /// The failure an AWS error code stands for, if it is one: throttling codes and
    /// DynamoDB's server errors. Other codes (a failed condition, validation) are answers.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::disaster::FailureKind;
    ///
    /// assert_eq!(FailureKind::from_error_code("ThrottlingException"), Some(FailureKind::Throttled));
    /// assert_eq!(FailureKind::from_error_code("InternalServerError"), Some(FailureKind::ServerError));
    /// assert_eq!(FailureKind::from_error_code("ConditionalCheckFailedException"), None);
    /// ```
    pub fn from_error_code(code: &str) -> Option<Self> {
        match code {
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "Throttling"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "LimitExceededException" => Some(Self::Throttled),
            "InternalServerError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException" => Some(Self::ServerError),
            _ => None,
        }
    }

    /// The failure an SDK error stands for: timeouts, dispatch failures (connections),
    /// unreadable responses, 5xx and throttling; `None` for a service answer such as a
    /// failed condition.
    pub fn from_sdk_error<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> Option<Self>
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
    {
        use aws_sdk_dynamodb::error::SdkError;
        match err {
            SdkError::TimeoutError(_) => Some(Self::Timeout),
            SdkError::DispatchFailure(_) => Some(Self::Connection),
            SdkError::ResponseError(_) => Some(Self::ServerError),
            SdkError::ServiceError(service) => service.err().code().and_then(Self::from_error_code),
            _ => None,
        }
    }

    /// A short name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::ServerError => "server_error",
            Self::Throttled => "throttled",
        }
    }
}

/// How an adaptive timeout follows latency: `multiplier` × the p99 of the last `window`
/// answered requests, never below `floor` nor above `ceiling`; `ceiling` until
/// `min_samples` answers are in.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveTimeoutConfig {
    /// The factor over the observed p99 (default 3).
    pub multiplier: f64,
    /// The least timeout (default 200 ms for requests, 100 ms for confirming probes).
    pub floor: Duration,
    /// The most (default 2 s for requests, 500 ms for confirming probes; a caller's own
    /// deadline caps it too).
    pub ceiling: Duration,
    /// Answers kept (default 256).
    pub window: usize,
    /// Answers needed before the timeout adapts (default 20).
    pub min_samples: usize,
    /// Samples older than this are forgotten (default 10 s) once `min_samples` answers are
    /// newer, so a slow spell long past (a cold start, a deploy) does not hold the timeout
    /// up. The newest `min_samples` always count, however old: an idle spell (no traffic to a
    /// region while another serves) keeps the estimate its last answers made, and a region
    /// that goes dark right after it still fails fast, not at the ceiling.
    pub max_age: Duration,
}

impl AdaptiveTimeoutConfig {
    /// `multiplier` × p99 within `floor..=ceiling`, over the last 256 answers.
    pub fn new(multiplier: f64, floor: Duration, ceiling: Duration) -> Self {
        Self { multiplier, floor, ceiling, window: 256, min_samples: 20, max_age: Duration::from_secs(10) }
    }

    fn validate(&self, setting: &'static str) -> Result<(), ConfigError> {
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ConfigError::invalid(setting, "the multiplier must be at least 1"));
        }
        if self.floor.is_zero() || self.floor > self.ceiling {
            return Err(ConfigError::invalid(setting, "the floor must be positive and at most the ceiling"));
        }
        if self.window == 0 || self.min_samples == 0 || self.min_samples > self.window {
            return Err(ConfigError::invalid(setting, "min_samples must be within 1..=window"));
        }
        if self.max_age.is_zero() {
            return Err(ConfigError::invalid(setting, "max_age must be positive"));
        }
        Ok(())
    }
}

/// How often (in answers) the p99 is worked out again.
const RECOMPUTE_EVERY: u64 = 8;

/// A timeout that follows observed latency: p99 × k within a floor and a ceiling.
///
/// Answered requests are samples at their latency, and a timed-out request is one at the
/// timeout it ran out of ([`RequestObserver::record`]): answers alone are censored at the
/// timeout, so when answers slow past it (SDK retries backing off from a throttle, a load
/// spike) the estimate would never grow and every slow answer would fail. With timeouts
/// counted, more than 1% of them raise the timeout k-fold per recomputation until they stop.
///
/// # Examples
///
/// ```
/// use lift::disaster::{AdaptiveTimeout, AdaptiveTimeoutConfig};
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// let timeout = AdaptiveTimeout::new(AdaptiveTimeoutConfig::new(3.0, ms(50), ms(1_000)));
/// assert_eq!(timeout.get(), ms(1_000), "the ceiling until there are samples");
/// for _ in 0..100 {
///     timeout.observe(ms(40));
/// }
/// assert_eq!(timeout.get(), ms(120), "3 × p99");
/// ```
#[derive(Debug)]
pub struct AdaptiveTimeout {
    config: AdaptiveTimeoutConfig,
    born: Instant,
    samples: Mutex<Samples>,
    current_nanos: AtomicU64,
}

#[derive(Debug, Default)]
struct Samples {
    /// (when, latency) in nanoseconds, when since `AdaptiveTimeout::born`.
    ring: Vec<(u64, u64)>,
    next: usize,
    seen: u64,
    /// The recent latencies, gathered anew at each recomputation (kept to reuse its room).
    scratch: Vec<u64>,
}

impl AdaptiveTimeout {
    /// A timeout at `config.ceiling` until samples come in.
    pub fn new(config: AdaptiveTimeoutConfig) -> Self {
        let ceiling = duration_nanos(config.ceiling);
        Self {
            samples: Mutex::new(Samples::default()),
            current_nanos: AtomicU64::new(ceiling),
            born: tokio::time::Instant::now().into_std(),
            config,
        }
    }

    /// The timeout now.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.current_nanos.load(Ordering::Relaxed))
    }

    /// Nanoseconds since `born`, on Tokio's clock (paused in tests).
    fn now_nanos(&self) -> u64 {
        duration_nanos(tokio::time::Instant::now().into_std().saturating_duration_since(self.born))
    }

    /// Adds the latency of one answered (or timed-out) request.
    pub fn observe(&self, latency: Duration) {
        self.observe_at(self.now_nanos(), latency);
    }

    /// [`observe`](Self::observe), at `now` nanoseconds since `born`.
    fn observe_at(&self, now: u64, latency: Duration) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let sample = (now, duration_nanos(latency));
        if s.ring.len() < self.config.window {
            s.ring.push(sample);
        } else {
            let next = s.next;
            s.ring[next] = sample;
        }
        s.next = (s.next + 1) % self.config.window;
        s.seen += 1;
        let len = s.ring.len();
        if len < self.config.min_samples || (s.seen % RECOMPUTE_EVERY != 0 && len != self.config.min_samples)
        {
            return;
        }
        // The newest `min_samples`, and any older one younger than `max_age`: newest first
        // (the ring holds them oldest first from `next`).
        let oldest = now.saturating_sub(duration_nanos(self.config.max_age));
        let Samples { ring, next, scratch: recent, .. } = &mut *s;
        recent.clear();
        recent.extend(
            (0..len)
                .map(|i| ring[(*next + len - 1 - i) % len])
                .enumerate()
                .filter(|&(i, (at, _))| i < self.config.min_samples || at >= oldest)
                .map(|(_, (_, latency))| latency),
        );
        // The nearest-rank p99: the rank-th smallest, found without sorting the rest.
        let rank = ((recent.len() as f64) * 0.99).ceil() as usize;
        let nth = rank.clamp(1, recent.len()) - 1;
        let (_, &mut p99, _) = recent.select_nth_unstable(nth);
        let timeout = Duration::from_nanos(p99)
            .mul_f64(self.config.multiplier)
            .clamp(self.config.floor, self.config.ceiling);
        drop(s);
        self.current_nanos.store(duration_nanos(timeout), Ordering::Relaxed);
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Passive detection settings ([`MonitorConfig::passive`](super::MonitorConfig::passive)).
///
/// A region whose requests fail `consecutive_failures` times in a row (timeouts, connection
/// failures, 5xx, throttling) is suspect, and its probes run at once under the confirming
/// timeout instead of waiting for the next round: a failing confirmation declares it
/// unhealthy on the spot, a passing one clears the suspicion. Requests alone never move
/// traffic, so noise that the probes do not see cannot cause a failover.
#[derive(Debug, Clone, PartialEq)]
pub struct PassiveConfig {
    /// Failed requests in a row that make a region suspect (default 3).
    pub consecutive_failures: u32,
    /// Per-operation request timeouts (default 3 × p99 within 200 ms..=2 s).
    pub request_timeout: AdaptiveTimeoutConfig,
    /// The confirming probe's timeout, over the probes' own latency (default 3 × p99 within
    /// 100..=500 ms over the last 64 rounds of the last minute, at least 10 of them; never
    /// above the monitor's probe timeout).
    pub confirm_timeout: AdaptiveTimeoutConfig,
    /// Probe rounds run side by side to confirm a suspicion; all must fail (default 2). One
    /// round alone would let a region that fails 2% of its calls be declared down by the
    /// 2% of confirmations that fail, once its requests make it suspect often enough.
    pub confirm_rounds: u32,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 3,
            request_timeout: AdaptiveTimeoutConfig::new(
                3.0,
                Duration::from_millis(200),
                Duration::from_secs(2),
            ),
            // Probes come once a round, not with every request: a longer memory, fewer samples.
            confirm_timeout: AdaptiveTimeoutConfig {
                window: 64,
                min_samples: 10,
                max_age: Duration::from_secs(60),
                ..AdaptiveTimeoutConfig::new(3.0, Duration::from_millis(100), Duration::from_millis(500))
            },
            confirm_rounds: 2,
        }
    }
}

impl PassiveConfig {
    /// Sets the failed requests in a row that make a region suspect.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
        self
    }

    /// Sets the request timeouts' settings.
    pub fn request_timeout(mut self, config: AdaptiveTimeoutConfig) -> Self {
        self.request_timeout = config;
        self
    }

    /// Sets the probe rounds run side by side to confirm a suspicion (all must fail).
    pub fn confirm_rounds(mut self, rounds: u32) -> Self {
        self.confirm_rounds = rounds;
        self
    }

    /// Sets the confirming probe's timeout settings.
    pub fn confirm_timeout(mut self, config: AdaptiveTimeoutConfig) -> Self {
        self.confirm_timeout = config;
        self
    }

    /// Checks that the settings can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.consecutive_failures == 0 {
            return Err(ConfigError::invalid("consecutive_failures", "must be at least 1"));
        }
        if self.confirm_rounds == 0 {
            return Err(ConfigError::invalid("confirm_rounds", "must be at least 1"));
        }
        self.request_timeout.validate("request_timeout")?;
        self.confirm_timeout.validate("confirm_timeout")
    }

    /// `LIFT_FAILOVER_DETECTION` (`passive`, the default, or `probe`), then
    /// `LIFT_PASSIVE_CONSECUTIVE_FAILURES`, `LIFT_ADAPTIVE_TIMEOUT_MULTIPLIER`,
    /// `LIFT_ADAPTIVE_TIMEOUT_FLOOR_MS`, `LIFT_ADAPTIVE_TIMEOUT_CEILING_MS` and
    /// `LIFT_CONFIRM_TIMEOUT_FLOOR_MS` over the defaults; `None` in probe mode.
    pub(crate) fn from_vars(vars: &dyn Vars) -> Result<Option<Self>, ConfigError> {
        match vars.get("LIFT_FAILOVER_DETECTION").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("passive") => {}
            Some("probe") => return Ok(None),
            Some(other) => {
                return Err(ConfigError::Env {
                    var: "LIFT_FAILOVER_DETECTION".into(),
                    value: other.into(),
                    reason: "expected passive or probe".into(),
                })
            }
        }
        let mut config = Self::default();
        if let Some(n) = env::count(vars, "LIFT_PASSIVE_CONSECUTIVE_FAILURES")? {
            config.consecutive_failures = n;
        }
        if let Some(v) = vars.get("LIFT_ADAPTIVE_TIMEOUT_MULTIPLIER") {
            config.request_timeout.multiplier = v.parse().map_err(|_| ConfigError::Env {
                var: "LIFT_ADAPTIVE_TIMEOUT_MULTIPLIER".into(),
                value: v.clone(),
                reason: "expected a number".into(),
            })?;
            config.confirm_timeout.multiplier = config.request_timeout.multiplier;
        }
        if let Some(v) = env::millis(vars, "LIFT_ADAPTIVE_TIMEOUT_FLOOR_MS")? {
            config.request_timeout.floor = v;
        }
        if let Some(v) = env::millis(vars, "LIFT_ADAPTIVE_TIMEOUT_CEILING_MS")? {
            config.request_timeout.ceiling = v;
        }
        if let Some(v) = env::millis(vars, "LIFT_CONFIRM_TIMEOUT_FLOOR_MS")? {
            config.confirm_timeout.floor = v;
        }
        config.validate()?;
        Ok(Some(config))
    }
}

/// What a region's requests have shown, shared by the [`RequestObserver`] and the region's
/// probe task.
#[derive(Debug)]
pub(crate) struct PassiveRegion {
    name: String,
    failures: AtomicU32,
    streak_start: Mutex<Option<Instant>>,
    last_failure: Mutex<Option<FailureKind>>,
    suspected: AtomicBool,
    pub(crate) suspect: Notify,
    timeouts: RwLock<HashMap<String, AdaptiveTimeout>>,
    pub(crate) probe_latency: AdaptiveTimeout,
}

/// What a suspicion rests on, for the confirming probe's verdict.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Suspicion {
    pub(crate) failures: u32,
    pub(crate) since: Option<Instant>,
    pub(crate) last: Option<FailureKind>,
}

impl PassiveRegion {
    fn new(name: &str, config: &PassiveConfig) -> Self {
        Self {
            name: name.to_owned(),
            failures: AtomicU32::new(0),
            streak_start: Mutex::new(None),
            last_failure: Mutex::new(None),
            suspected: AtomicBool::new(false),
            suspect: Notify::new(),
            timeouts: RwLock::new(HashMap::new()),
            probe_latency: AdaptiveTimeout::new(config.confirm_timeout.clone()),
        }
    }

    /// Takes the suspicion (the probe task is about to confirm it) and starts a new streak.
    pub(crate) fn take_suspicion(&self) -> Suspicion {
        let failures = self.failures.swap(0, Ordering::AcqRel);
        let since = self.streak_start.lock().unwrap_or_else(|p| p.into_inner()).take();
        let last = *self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        self.suspected.store(false, Ordering::Release);
        Suspicion { failures, since, last }
    }
}

/// The passive half of a [`HealthMonitor`](super::HealthMonitor): the failover client
/// reports each request's outcome here and asks it for each request's timeout.
///
/// Cheap to clone; every clone feeds the same monitor. In probe-only mode
/// ([`MonitorConfig::probe_only`](super::MonitorConfig::probe_only)) it records nothing
/// and [`timeout`](Self::timeout) returns the caller's default.
///
/// # Examples
///
/// ```no_run
/// # async fn run(orchestrator: lift::disaster::FailoverOrchestrator) {
/// use std::time::Duration;
///
/// let observer = orchestrator.observer();
/// let region = orchestrator.router().active().clone();
/// let timeout = observer.timeout(region.name(), "GetItem", Duration::from_secs(1));
/// let started = tokio::time::Instant::now().into_std();
/// let result = tokio::time::timeout(timeout, region.dynamodb().get_item().table_name("t").send()).await;
/// let outcome = match &result {
///     Err(_) => Err(lift::disaster::FailureKind::Timeout),
///     Ok(Err(err)) => lift::disaster::FailureKind::from_sdk_error(err).map_or(Ok(()), Err),
///     Ok(Ok(_)) => Ok(()),
/// };
/// observer.record(region.name(), "GetItem", started, outcome);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RequestObserver {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: Option<PassiveConfig>,
    regions: Vec<Arc<PassiveRegion>>,
}

impl RequestObserver {
    pub(crate) fn new<'a>(config: Option<PassiveConfig>, names: impl IntoIterator<Item = &'a str>) -> Self {
        let regions = match &config {
            Some(c) => names.into_iter().map(|n| Arc::new(PassiveRegion::new(n, c))).collect(),
            None => Vec::new(),
        };
        Self { inner: Arc::new(Shared { config, regions }) }
    }

    /// An observer that records nothing (probe-only detection).
    pub fn disabled() -> Self {
        Self::new(None, [])
    }

    /// Whether requests take part in detection.
    pub fn is_passive(&self) -> bool {
        self.inner.config.is_some()
    }

    pub(crate) fn region_state(&self, index: usize) -> Option<Arc<PassiveRegion>> {
        self.inner.regions.get(index).cloned()
    }

    fn region(&self, name: &str) -> Option<&PassiveRegion> {
        self.inner.regions.iter().find(|r| r.name == name).map(|r| &**r)
    }

    /// Runs `f` on `operation`'s timeout in `region`, made at its first use; `None` in
    /// probe-only mode.
    fn with_timer<R>(
        &self,
        region: &PassiveRegion,
        operation: &str,
        f: impl FnOnce(&AdaptiveTimeout) -> R,
    ) -> Option<R> {
        let config = self.inner.config.as_ref()?;
        if let Some(t) = region.timeouts.read().unwrap_or_else(|p| p.into_inner()).get(operation) {
            return Some(f(t));
        }
        let mut map = region.timeouts.write().unwrap_or_else(|p| p.into_inner());
        Some(f(map
            .entry(operation.to_owned())
            .or_insert_with(|| AdaptiveTimeout::new(config.request_timeout.clone()))))
    }

    /// The timeout for the next `operation` in `region`: the adaptive one, never above
    /// `default` (the caller's own deadline); `default` in probe-only mode or for a region
    /// it does not know.
    pub fn timeout(&self, region: &str, operation: &str, default: Duration) -> Duration {
        self.region(region)
            .and_then(|r| self.with_timer(r, operation, AdaptiveTimeout::get))
            .map_or(default, |t| t.min(default))
    }

    /// Records one request to `region` that started at `started` (a
    /// `tokio::time::Instant` turned std, so paused test clocks agree): `Ok(())` for an
    /// answer, `Err` for a failure (which counts towards a suspicion). An answer's latency
    /// and a timeout's elapsed time feed the operation's timeout.
    pub fn record(&self, region: &str, operation: &str, started: Instant, outcome: Result<(), FailureKind>) {
        let Some(state) = self.region(region) else {
            return;
        };
        if matches!(outcome, Ok(()) | Err(FailureKind::Timeout)) {
            let now = tokio::time::Instant::now().into_std();
            self.with_timer(state, operation, |timer| {
                let latency = now.saturating_duration_since(started);
                timer.observe_at(duration_nanos(now.saturating_duration_since(timer.born)), latency);
            });
        }
        self.streak(state, operation, started, outcome);
    }

    /// Records one SDK attempt's outcome (the region's [`PassiveInterceptor`]): it counts
    /// towards or resets the streak, without a latency sample.
    fn record_attempt(&self, region: &str, operation: &str, outcome: Result<(), FailureKind>) {
        if let Some(state) = self.region(region) {
            self.streak(state, operation, tokio::time::Instant::now().into_std(), outcome);
        }
    }

    fn streak(
        &self,
        state: &PassiveRegion,
        operation: &str,
        started: Instant,
        outcome: Result<(), FailureKind>,
    ) {
        let Some(config) = &self.inner.config else {
            return;
        };
        match outcome {
            Ok(()) => {
                if state.failures.load(Ordering::Relaxed) != 0 {
                    state.failures.store(0, Ordering::Relaxed);
                }
            }
            Err(kind) => {
                let before = state.failures.fetch_add(1, Ordering::AcqRel);
                {
                    let mut start = state.streak_start.lock().unwrap_or_else(|p| p.into_inner());
                    if before == 0 || start.is_none() {
                        *start = Some(started);
                    } else if let Some(s) = start.as_mut() {
                        *s = (*s).min(started);
                    }
                }
                *state.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(kind);
                if before + 1 >= config.consecutive_failures && !state.suspected.swap(true, Ordering::AcqRel)
                {
                    tracing::warn!(
                        region = %state.name,
                        operation,
                        failures = before + 1,
                        last = kind.name(),
                        "region suspect from its requests; confirming with a probe"
                    );
                    state.suspect.notify_one();
                }
            }
        }
    }

    /// Failed requests in a row in `region` since its last answer or confirmation.
    pub fn consecutive_failures(&self, region: &str) -> u32 {
        self.region(region).map_or(0, |r| r.failures.load(Ordering::Acquire))
    }
}

/// Where a region's SDK client reports its attempts: the [`RequestObserver`] of the monitor
/// watching the [`RegionSet`](super::RegionSet), once one is attached.
pub(crate) type ObserverSlot = Arc<RwLock<Option<RequestObserver>>>;

/// Empties `slot` if it still holds `observer` (the monitor that attached it has stopped);
/// an observer attached after it stays.
pub(crate) fn detach_observer(slot: &ObserverSlot, observer: &RequestObserver) {
    let mut slot = slot.write().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_some_and(|attached| Arc::ptr_eq(&attached.inner, &observer.inner)) {
        *slot = None;
    }
}

/// An SDK interceptor on each region's DynamoDB client: every attempt that got an answer
/// (or failed to connect) counts for the region it went to, throttled and 5xx attempts the
/// SDK retries included, so a throttling region is suspect before the SDK's backoff ends.
/// Probes use a client without it.
#[derive(Debug, Clone)]
pub(crate) struct PassiveInterceptor {
    pub(crate) region: String,
    pub(crate) slot: ObserverSlot,
}

use aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

impl Intercept for PassiveInterceptor {
    fn name(&self) -> &'static str {
        "LiftPassiveHealth"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let slot = self.slot.read().unwrap_or_else(|p| p.into_inner());
        let Some(observer) = slot.as_ref().filter(|o| o.is_passive()) else {
            return Ok(());
        };
        let outcome = match (context.response(), context.output_or_error()) {
            (Some(response), _) => attempt_verdict(response.status().as_u16(), response.body().bytes()),
            (None, Some(Err(err))) if err.is_timeout_error() => Err(FailureKind::Timeout),
            (None, Some(Err(err))) if err.is_connector_error() => Err(FailureKind::Connection),
            _ => return Ok(()),
        };
        observer.record_attempt(&self.region, "attempt", outcome);
        Ok(())
    }
}

/// An answered attempt: 5xx is a server error, 429 is throttling, a 400 whose error code
/// ([`FailureKind::from_error_code`]) is a throttling one is throttling; anything else is an
/// answer.
fn attempt_verdict(status: u16, body: Option<&[u8]>) -> Result<(), FailureKind> {
    match status {
        500.. => Err(FailureKind::ServerError),
        429 => Err(FailureKind::Throttled),
        400 => body.and_then(error_code).and_then(FailureKind::from_error_code).map_or(Ok(()), Err),
        _ => Ok(()),
    }
}

/// The error code of an AWS JSON error body: `__type`, after any `namespace#` (the JSON 1.0
/// protocol DynamoDB speaks). Only the code is read, never the message, so a message that
/// happens to mention throttling does not make an answer a failure.
fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let after = &text[text.find("\"__type\"")? + "\"__type\"".len()..];
    let value = after.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let value = &value[..value.find('"')?];
    Some(value.rsplit('#').next().unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as Map;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_timeout_follows_p99_within_floor_and_ceiling() {
        let t = AdaptiveTimeout::new(AdaptiveTimeoutConfig::new(3.0, ms(100), ms(1_000)));
        for _ in 0..19 {
            t.observe(ms(10));
        }
        assert_eq!(t.get(), ms(1_000), "19 samples: still the ceiling");
        t.observe(ms(10));
        assert_eq!(t.get(), ms(100), "3 × 10 ms is under the floor");
        // One slow answer in a hundred is the p99's business; two in a hundred move it.
        for i in 0..256u64 {
            t.observe(if i % 50 == 0 { ms(80) } else { ms(20) });
        }
        assert_eq!(t.get(), ms(240));
        for _ in 0..256 {
            t.observe(ms(900));
        }
        assert_eq!(t.get(), ms(1_000), "the ceiling holds");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_spell_long_past_is_forgotten() {
        let t = AdaptiveTimeout::new(AdaptiveTimeoutConfig::new(3.0, ms(100), ms(2_000)));
        // A cold start: a hundred answers at 500 ms...
        for _ in 0..100 {
            t.observe(ms(500));
        }
        assert_eq!(t.get(), ms(1_500));
        // ...then 11 s of 10 ms answers, 40 of them: the cold start is out of the window by age
        // though well within it by count.
        tokio::time::sleep(ms(11_000)).await;
        for _ in 0..40 {
            t.observe(ms(10));
        }
        assert_eq!(t.get(), ms(100));
    }

    /// An idle spell (a region without traffic while another serves) keeps the estimate of
    /// the answers before it: a region that goes dark right after it still times out at that
    /// estimate, not at the ceiling. Answers after it replace the old ones one for one; once
    /// `min_samples` are in, the old ones, long past `max_age`, are forgotten.
    #[tokio::test(start_paused = true)]
    async fn an_idle_spell_keeps_the_estimate_until_newer_answers_replace_it() {
        let t = AdaptiveTimeout::new(AdaptiveTimeoutConfig::new(3.0, ms(100), ms(2_000)));
        for _ in 0..45 {
            t.observe(ms(50));
        }
        assert_eq!(t.get(), ms(150));
        tokio::time::sleep(ms(60_000)).await;
        assert_eq!(t.get(), ms(150), "a minute without traffic: the estimate before it stands");
        // The 48th answer works the p99 out again: 3 new ones at 10 ms and the 17 newest
        // before the idle spell at 50 ms. Counting only the last 10 s, 3 answers are fewer
        // than min_samples, and the timeout would be the ceiling.
        for _ in 0..3 {
            t.observe(ms(10));
        }
        assert_eq!(t.get(), ms(150), "the newest 20 count however old");
        for _ in 0..24 {
            t.observe(ms(10));
        }
        assert_eq!(t.get(), ms(100), "27 new answers: the old ones are forgotten (3 x 10 ms, at the floor)");
    }

    #[test]
    fn consecutive_failures_make_a_region_suspect_once_and_an_answer_resets_them() {
        let observer = RequestObserver::new(Some(PassiveConfig::default()), ["a", "b"]);
        let now = Instant::now();
        let fail = |kind| observer.record("a", "put", now, Err(kind));
        fail(FailureKind::Timeout);
        fail(FailureKind::Throttled);
        observer.record("a", "put", now, Ok(()));
        assert_eq!(observer.consecutive_failures("a"), 0);
        let state = observer.region_state(0).unwrap();
        assert!(!state.suspected.load(Ordering::Acquire));
        fail(FailureKind::Connection);
        fail(FailureKind::ServerError);
        assert!(!state.suspected.load(Ordering::Acquire), "two in a row are not three");
        fail(FailureKind::Timeout);
        assert!(state.suspected.load(Ordering::Acquire));
        fail(FailureKind::Timeout);
        let suspicion = state.take_suspicion();
        assert_eq!(suspicion.failures, 4);
        assert_eq!(suspicion.since, Some(now));
        assert_eq!(suspicion.last, Some(FailureKind::Timeout));
        assert_eq!(observer.consecutive_failures("a"), 0, "a confirmation starts a new streak");
        assert_eq!(observer.consecutive_failures("b"), 0, "b saw nothing");
        // Unknown regions and operations are harmless.
        observer.record("nowhere", "put", now, Err(FailureKind::Timeout));
        assert_eq!(observer.timeout("nowhere", "put", ms(700)), ms(700));
    }

    #[test]
    fn timeouts_that_keep_firing_raise_the_timeout_until_answers_fit() {
        let observer = RequestObserver::new(Some(PassiveConfig::default()), ["a"]);
        let ago = |n| Instant::now() - ms(n);
        for _ in 0..40 {
            observer.record("a", "get", ago(10), Ok(()));
        }
        assert_eq!(observer.timeout("a", "get", ms(5_000)), ms(200), "the floor");
        // Answers now take 400 ms (a throttle's backoff, a load spike): at 200 ms they all time
        // out. Counted at their timeout, they lift it; answers alone never would.
        let mut timed_out = 0;
        for _ in 0..64 {
            let timeout = observer.timeout("a", "get", ms(5_000));
            if timeout < ms(400) {
                timed_out += 1;
                observer.record("a", "get", ago(timeout.as_millis() as u64), Err(FailureKind::Timeout));
            } else {
                observer.record("a", "get", ago(400), Ok(()));
            }
        }
        let settled = observer.timeout("a", "get", ms(5_000));
        assert!(settled >= ms(1_200) && settled <= ms(2_000), "{settled:?}");
        assert!(timed_out <= 16, "two recomputations, not the whole run: {timed_out}");
    }

    #[test]
    fn probe_only_mode_records_nothing_and_keeps_the_callers_timeout() {
        let observer = RequestObserver::new(None, ["a"]);
        for _ in 0..10 {
            observer.record("a", "put", Instant::now(), Err(FailureKind::Timeout));
        }
        assert_eq!(observer.consecutive_failures("a"), 0);
        assert_eq!(observer.timeout("a", "put", ms(1_000)), ms(1_000));
        assert!(!observer.is_passive());
    }

    #[test]
    fn timeouts_are_per_operation_and_capped_by_the_callers_deadline() {
        let observer = RequestObserver::new(Some(PassiveConfig::default()), ["a"]);
        let before = Instant::now() - ms(100);
        for _ in 0..40 {
            observer.record("a", "get", before, Ok(()));
        }
        let get = observer.timeout("a", "get", ms(5_000));
        assert!(get >= ms(300) && get < ms(1_000), "3 × ~100 ms: {get:?}");
        assert_eq!(observer.timeout("a", "put", ms(5_000)), ms(2_000), "no put samples: the ceiling");
        assert_eq!(observer.timeout("a", "get", ms(250)), ms(250), "the caller's deadline wins");
    }

    const THROTTLED: (&str, &str) = (
        "400 Bad Request",
        r#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"slow down"}"#,
    );
    const ANSWERED: (&str, &str) = ("200 OK", "{}");

    /// A DynamoDB endpoint that answers every request with `(status, body)`.
    async fn endpoint((status, body): (&'static str, &'static str)) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn every_throttled_attempt_of_the_sdk_counts_and_probes_do_not() {
        use crate::disaster::{RegionConfig, RegionSet};
        let regions = RegionSet::builder()
            .region(RegionConfig::new("us-east-1").dynamodb_endpoint(endpoint(THROTTLED).await))
            .build()
            .unwrap();
        let observer = RequestObserver::new(Some(PassiveConfig::default()), ["us-east-1"]);
        regions.attach_observer(observer.clone());
        let region = regions.primary();
        let _ = region.probe_dynamodb().list_tables().send().await;
        assert_eq!(observer.consecutive_failures("us-east-1"), 0, "probes are not requests");
        let err = region.dynamodb().get_item().table_name("t").send().await.unwrap_err();
        assert_eq!(FailureKind::from_sdk_error(&err), Some(FailureKind::Throttled));
        // The SDK's standard retry makes three attempts; each was seen as it came back.
        assert_eq!(observer.consecutive_failures("us-east-1"), 3);
        let state = observer.region_state(0).unwrap();
        assert!(state.suspected.load(Ordering::Acquire), "three in a row: suspect");
    }

    #[tokio::test]
    async fn each_attempt_counts_for_the_region_it_went_to() {
        use crate::disaster::{RegionConfig, RegionSet};
        // eu-west-1 throttles, us-east-1 answers: a write to both (as the synchronous writer
        // makes) must count against eu-west-1 alone, and us-east-1's answers must not reset
        // eu-west-1's streak.
        let regions = RegionSet::builder()
            .region(RegionConfig::new("us-east-1").dynamodb_endpoint(endpoint(ANSWERED).await))
            .region(RegionConfig::new("eu-west-1").dynamodb_endpoint(endpoint(THROTTLED).await))
            .build()
            .unwrap();
        let observer = RequestObserver::new(
            Some(PassiveConfig::default().consecutive_failures(10)),
            ["us-east-1", "eu-west-1"],
        );
        regions.attach_observer(observer.clone());
        for region in &regions {
            let _ = region.dynamodb().get_item().table_name("t").send().await;
        }
        assert_eq!(observer.consecutive_failures("us-east-1"), 0);
        assert_eq!(observer.consecutive_failures("eu-west-1"), 3, "three throttled attempts");
        let _ = regions.primary().dynamodb().get_item().table_name("t").send().await;
        assert_eq!(observer.consecutive_failures("eu-west-1"), 3, "another region's answer resets nothing");
        // A second observer attached later takes over the clients; the first hears no more.
        let later = RequestObserver::new(Some(PassiveConfig::default()), ["us-east-1", "eu-west-1"]);
        regions.attach_observer(later.clone());
        let _ = regions.get(1).unwrap().dynamodb().get_item().table_name("t").send().await;
        assert_eq!(
            (observer.consecutive_failures("eu-west-1"), later.consecutive_failures("eu-west-1")),
            (3, 3)
        );
    }

    /// A stopped monitor's observer hears no more from the set's clients (its probe tasks
    /// are gone; nothing would act on it), and stopping it does not detach a monitor that
    /// attached after it. Without the detach, `heard_second` counts 6 at the end.
    #[tokio::test]
    async fn a_stopped_monitor_hears_nothing_and_a_later_one_stays_attached() {
        use crate::disaster::{HealthMonitor, MonitorConfig, RegionConfig, RegionSet};
        let regions = RegionSet::builder()
            .region(RegionConfig::new("us-east-1").dynamodb_endpoint(endpoint(THROTTLED).await))
            .build()
            .unwrap();
        // Ten in a row to suspect: a call's three attempts never start a confirming probe,
        // whose confirmation would start a new streak under the test.
        let config = MonitorConfig::default().passive(PassiveConfig::default().consecutive_failures(10));
        let call = || async {
            let _ = regions.primary().dynamodb().get_item().table_name("t").send().await;
        };
        let first = HealthMonitor::start(&regions, config.clone()).unwrap();
        let heard_first = first.observer();
        call().await;
        assert_eq!(heard_first.consecutive_failures("us-east-1"), 3, "attached: three attempts heard");

        let second = HealthMonitor::start(&regions, config).unwrap();
        let heard_second = second.observer();
        drop(first);
        call().await;
        assert_eq!(
            (heard_first.consecutive_failures("us-east-1"), heard_second.consecutive_failures("us-east-1")),
            (3, 3),
            "the later monitor took over, and stopping the earlier one left it attached"
        );

        second.stop();
        call().await;
        assert_eq!(heard_second.consecutive_failures("us-east-1"), 3, "a stopped monitor hears nothing");
    }

    /// The orchestrator's monitor is detached with the orchestrator: a set that outlives it
    /// (the service keeps its clients) reports to no one.
    #[tokio::test]
    async fn a_dropped_orchestrator_leaves_the_clients_reporting_to_no_one() {
        use crate::disaster::{FailoverOrchestrator, MonitorConfig, RegionConfig, RegionSet};
        let regions = RegionSet::builder()
            .region(RegionConfig::new("us-east-1").dynamodb_endpoint(endpoint(THROTTLED).await))
            .region(RegionConfig::new("eu-west-1").dynamodb_endpoint(endpoint(ANSWERED).await))
            .build()
            .unwrap();
        let orchestrator = FailoverOrchestrator::builder(regions.clone())
            .monitor(MonitorConfig::default().passive(PassiveConfig::default().consecutive_failures(10)))
            .start()
            .unwrap();
        let heard = orchestrator.observer();
        let _ = regions.primary().dynamodb().get_item().table_name("t").send().await;
        assert_eq!(heard.consecutive_failures("us-east-1"), 3);
        drop(orchestrator);
        assert!(regions.observer.read().unwrap().is_none(), "the slot is empty");
        let _ = regions.primary().dynamodb().get_item().table_name("t").send().await;
        assert_eq!(heard.consecutive_failures("us-east-1"), 3);
    }

    #[test]
    fn only_the_error_code_decides_never_the_message() {
        let body = |code: &str, message: &str| format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
        let answer = body(
            "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            "ThrottlingException and ProvisionedThroughputExceeded are not this",
        );
        assert_eq!(attempt_verdict(400, Some(answer.as_bytes())), Ok(()));
        let spaced = r#"{ "__type" : "com.amazonaws.dynamodb.v20120810#LimitExceededException" }"#;
        assert_eq!(attempt_verdict(400, Some(spaced.as_bytes())), Err(FailureKind::Throttled));
        let bare = body("RequestLimitExceeded", "");
        assert_eq!(attempt_verdict(400, Some(bare.as_bytes())), Err(FailureKind::Throttled));
        assert_eq!(attempt_verdict(400, Some(b"not json")), Ok(()));
        assert_eq!(attempt_verdict(400, None), Ok(()), "a body not held in memory is an answer");
        assert_eq!(attempt_verdict(429, None), Err(FailureKind::Throttled));
    }

    #[test]
    fn attempts_are_judged_by_status_and_code() {
        assert_eq!(attempt_verdict(200, Some(b"{}")), Ok(()));
        assert_eq!(attempt_verdict(500, None), Err(FailureKind::ServerError));
        assert_eq!(attempt_verdict(503, None), Err(FailureKind::ServerError));
        let throttled =
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}"#;
        assert_eq!(attempt_verdict(400, Some(throttled)), Err(FailureKind::Throttled));
        let condition = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#;
        assert_eq!(attempt_verdict(400, Some(condition)), Ok(()), "a failed condition is an answer");
    }

    #[test]
    fn codes_and_settings() {
        assert_eq!(
            FailureKind::from_error_code("ProvisionedThroughputExceededException"),
            Some(FailureKind::Throttled)
        );
        assert_eq!(FailureKind::from_error_code("ServiceUnavailable"), Some(FailureKind::ServerError));
        assert_eq!(FailureKind::from_error_code("ValidationException"), None);
        let vars: Map<&str, &str> = [
            ("LIFT_PASSIVE_CONSECUTIVE_FAILURES", "5"),
            ("LIFT_ADAPTIVE_TIMEOUT_MULTIPLIER", "4.5"),
            ("LIFT_ADAPTIVE_TIMEOUT_FLOOR_MS", "150"),
        ]
        .into_iter()
        .collect();
        let config = PassiveConfig::from_vars(&vars).unwrap().unwrap();
        assert_eq!(config.consecutive_failures, 5);
        assert_eq!(config.request_timeout.multiplier, 4.5);
        assert_eq!(config.request_timeout.floor, ms(150));
        let probe: Map<&str, &str> = [("LIFT_FAILOVER_DETECTION", "probe")].into_iter().collect();
        assert_eq!(PassiveConfig::from_vars(&probe).unwrap(), None);
        for (var, value) in [
            ("LIFT_FAILOVER_DETECTION", "psychic"),
            ("LIFT_ADAPTIVE_TIMEOUT_MULTIPLIER", "0.5"),
            ("LIFT_ADAPTIVE_TIMEOUT_FLOOR_MS", "5000"),
            ("LIFT_PASSIVE_CONSECUTIVE_FAILURES", "0"),
        ] {
            let bad: Map<&str, &str> = [(var, value)].into_iter().collect();
            assert!(PassiveConfig::from_vars(&bad).is_err(), "{var}={value}");
        }
    }
}
