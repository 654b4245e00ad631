//! Scaling: an invocation goes to an idle warm sandbox or starts a new one (a cold start);
//! reserved concurrency turns the excess into throttles; idle sandboxes are frozen, and
//! reaped after a while. Asynchronous invocations are validated, accepted, and retried when
//! they fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;

use super::control::{Route, Versions};
use super::function::Function;
use super::logs::{LogLine, LogSink, Report};
use super::runtime_api::{NextInvocation, Received, RuntimeEvent};
use super::sandbox::{Exit, Sandbox, SpawnError};
use super::{EmfMetric, ASYNC_REQUEST_LIMIT_BYTES, MAX_RESPONSE_BYTES, REQUEST_LIMIT_BYTES};

/// Extra context of one invocation, as the Invoke API carries it.
#[derive(Debug, Clone, Default)]
pub struct InvokeOptions {
    /// The client context (JSON), handed to the runtime as `Lambda-Runtime-Client-Context`.
    pub client_context: Option<String>,
    /// The Cognito identity (JSON), handed over as `Lambda-Runtime-Cognito-Identity`.
    pub cognito_identity: Option<String>,
    /// The X-Ray trace header; a new one when absent.
    pub trace_id: Option<String>,
    /// The request id; a new one when absent (the retries of an asynchronous invocation
    /// carry the id of its first attempt).
    pub request_id: Option<String>,
}

/// The answer to an invocation that reached the function.
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    /// The request id.
    pub request_id: String,
    /// The function's answer, or the error document when it failed.
    pub payload: Bytes,
    /// `Unhandled` when the invocation failed (`X-Amz-Function-Error`).
    pub function_error: Option<String>,
    /// The invocation's `REPORT` as of its answer. On Lambda the invocation runs on until the
    /// runtime asks for its next one, so the `REPORT` in the log, written then, may have a
    /// longer duration, a timeout status (a runtime that answered but never asked again) or
    /// an exit error: read [`LocalLambda::reports`] after [`LocalLambda::settle`] for that.
    pub report: Report,
    /// Whether this invocation started a new sandbox.
    pub cold_start: bool,
    /// The sandbox that ran it.
    pub sandbox_id: String,
    /// Time the CFS quota held the sandbox back during this invocation.
    pub cpu_throttled: Duration,
    /// The version that ran it (`X-Amz-Executed-Version`): `$LATEST`, or the published
    /// version a version qualifier or an alias chose.
    pub executed_version: String,
}

impl InvokeResponse {
    /// The `errorType` of a failed invocation.
    pub fn error_type(&self) -> Option<String> {
        self.function_error.as_ref()?;
        let doc: serde_json::Value = serde_json::from_slice(&self.payload).ok()?;
        doc["errorType"].as_str().map(str::to_owned)
    }

    /// The payload as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// An invocation Lambda refuses before it reaches the function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No function by that name.
    #[error("function not found: {0}")]
    ResourceNotFound(String),
    /// The payload is not JSON.
    #[error("could not parse request body into json: {0}")]
    InvalidRequestContent(String),
    /// The payload is at or over the limit: 6 MiB ([`REQUEST_LIMIT_BYTES`]) for a synchronous
    /// invocation, 1 MiB ([`ASYNC_REQUEST_LIMIT_BYTES`]) for an asynchronous one.
    #[error("request payload of {size} bytes is over the limit of {limit}")]
    RequestTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The size it must stay under.
        limit: usize,
    },
    /// Reserved concurrency is exhausted.
    #[error("rate exceeded")]
    TooManyRequests,
}

impl InvokeError {
    /// The HTTP status the Invoke API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::ResourceNotFound(_) => 404,
            Self::InvalidRequestContent(_) => 400,
            Self::RequestTooLarge { .. } => 413,
            Self::TooManyRequests => 429,
        }
    }

    /// The error code (`x-amzn-ErrorType`).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::InvalidRequestContent(_) => "InvalidRequestContentException",
            Self::RequestTooLarge { .. } => "RequestTooLargeException",
            Self::TooManyRequests => "TooManyRequestsException",
        }
    }

    /// The body, as Lambda's REST-JSON protocol spells it.
    pub fn body(&self) -> serde_json::Value {
        match self {
            Self::ResourceNotFound(arn) => {
                json!({"Type": "User", "message": format!("Function not found: {arn}")})
            }
            Self::InvalidRequestContent(detail) => {
                json!({"Type": "User", "message": format!("Could not parse request body into json: {detail}")})
            }
            Self::RequestTooLarge { limit, .. } => json!({
                "Type": "User",
                "message": format!("Request must be smaller than {limit} bytes for the InvokeFunction operation")
            }),
            Self::TooManyRequests => json!({
                "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                "Type": "User",
                "message": "Rate Exceeded."
            }),
        }
    }
}

/// The local Lambda service: functions, their sandboxes and their logs.
#[derive(Debug, Clone)]
pub struct LocalLambda {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    /// Each function's versions and aliases; the set of names is fixed at build time.
    pub(super) functions: HashMap<String, RwLock<Versions>>,
    sink: LogSink,
    idle_timeout: Duration,
    region: String,
    reaper: OnceLock<()>,
}

/// The sandboxes of one version of a function.
#[derive(Debug)]
pub(super) struct FunctionPool {
    pub(super) function: Function,
    state: Mutex<PoolState>,
    /// Sandboxes started; the configurations `$LATEST` goes through share one count.
    pub(super) cold_starts: Arc<AtomicU64>,
    /// Invocations running in any of the function's pools: reserved concurrency is the
    /// function's, whichever version runs.
    pub(super) busy: Arc<AtomicUsize>,
    /// An old configuration of `$LATEST`: its sandboxes finish what they run, then go.
    retired: AtomicBool,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<(Sandbox, Instant)>,
    live: usize,
}

/// Builds a [`LocalLambda`].
#[derive(Debug, Default)]
pub struct LocalLambdaBuilder {
    functions: Vec<Function>,
    idle_timeout: Option<Duration>,
    echo: bool,
}

impl LocalLambda {
    /// A builder.
    pub fn builder() -> LocalLambdaBuilder {
        LocalLambdaBuilder::default()
    }

    /// The function named `name`, as its `$LATEST` is configured now.
    pub fn function(&self, name: &str) -> Option<Function> {
        self.versions_of(name).map(|v| v.latest().function.clone())
    }

    /// `name`'s versions and aliases, for reading.
    fn versions_of(&self, name: &str) -> Option<std::sync::RwLockReadGuard<'_, Versions>> {
        self.inner.functions.get(name).map(|v| v.read().expect("not poisoned"))
    }

    /// Every pool of `name`: `$LATEST`, the published versions, retired configurations.
    fn pools(&self, name: &str) -> Vec<Arc<FunctionPool>> {
        self.versions_of(name).map(|v| v.pools()).unwrap_or_default()
    }

    /// The region in ARNs of functions that do not exist.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// Every function's name.
    pub fn function_names(&self) -> Vec<String> {
        self.inner.functions.keys().cloned().collect()
    }

    /// Invokes `name` synchronously (`RequestResponse`). `name` may carry a qualifier, as
    /// Lambda's `FunctionName` does: `payments`, `payments:$LATEST`, `payments:3`,
    /// `payments:live` (an alias, routed by its weights) or the ARN forms of these.
    pub async fn invoke(&self, name: &str, payload: impl Into<Bytes>) -> Result<InvokeResponse, InvokeError> {
        self.invoke_with(name, payload, InvokeOptions::default()).await
    }

    /// Invokes `name` with client context, identity or trace header.
    pub async fn invoke_with(
        &self,
        name: &str,
        payload: impl Into<Bytes>,
        options: InvokeOptions,
    ) -> Result<InvokeResponse, InvokeError> {
        let route = self.route(name)?;
        let payload = checked_payload(payload.into(), REQUEST_LIMIT_BYTES)?;
        self.run(route, payload, options).await
    }

    /// Invokes `name` asynchronously (`Event`), as Lambda does: the event is checked first
    /// (the function exists, the payload is JSON and under [`ASYNC_REQUEST_LIMIT_BYTES`]), and
    /// only an event that passes is accepted; it then runs on a task of its own. An attempt
    /// that fails (a function error, a timeout, a crash, a throttle) is run again up to the
    /// function's [`max_retry_attempts`](super::FunctionBuilder::max_retry_attempts), after its
    /// [`retry_delay`](super::FunctionBuilder::retry_delay) and then twice that, under the same
    /// request id, which this returns. No client context is passed on: Lambda passes it to
    /// synchronous invocations only.
    ///
    /// Not modelled: the event age limit, throttles retried apart from the attempts,
    /// destinations and dead-letter queues (an event whose attempts all fail is dropped).
    pub fn invoke_async(
        &self,
        name: &str,
        payload: impl Into<Bytes>,
        options: InvokeOptions,
    ) -> Result<String, InvokeError> {
        let route = self.route(name)?;
        let payload = checked_payload(payload.into(), ASYNC_REQUEST_LIMIT_BYTES)?;
        let request_id = options.request_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let options = InvokeOptions { client_context: None, request_id: Some(request_id.clone()), ..options };
        let (retries, delay) = (route.pool.function.max_retry_attempts, route.pool.function.retry_delay);
        // Weak between attempts, so a service dropped while a retry waits is not kept alive.
        let weak = Arc::downgrade(&self.inner);
        let name = name.to_owned();
        let mut first = Some((self.clone(), route));
        tokio::spawn(async move {
            for attempt in 0..=retries {
                let (lambda, route) = match first.take() {
                    Some(first) => first,
                    None => {
                        tokio::time::sleep(delay * attempt).await;
                        let Some(inner) = weak.upgrade() else { return };
                        let lambda = LocalLambda { inner };
                        let Ok(route) = lambda.route(&name) else { return };
                        (lambda, route)
                    }
                };
                match lambda.run(route, payload.clone(), options.clone()).await {
                    Ok(out) if out.function_error.is_none() => return,
                    _ => {}
                }
            }
        });
        Ok(request_id)
    }

    /// Runs one invocation that passed the checks.
    async fn run(
        &self,
        Route { pool, invoked_arn }: Route,
        payload: Bytes,
        options: InvokeOptions,
    ) -> Result<InvokeResponse, InvokeError> {
        self.start_reaper();
        // On a task of its own, so a caller that goes away (a closed connection, a timeout in
        // front) neither kills the sandbox mid-invocation nor loses count of it.
        let sink = self.inner.sink.clone();
        let task = tokio::spawn(async move { pool.invoke(payload, options, invoked_arn, &sink).await });
        task.await.expect("an invocation task does not panic")
    }

    /// `name`'s log so far: its sandboxes' output and Lambda's own lines, of every version
    /// (one log group per function, as in CloudWatch; [`LogLine::version`] tells them apart).
    pub fn logs(&self, name: &str) -> Vec<LogLine> {
        self.inner.sink.lines(name)
    }

    /// `name`'s whole log: waits for its busy sandboxes to end their invocations (each until
    /// its deadline at most), kills its sandboxes and waits until everything they printed has
    /// been read into the log. A check that something is *not* in the log needs this: output
    /// reaches the log through pipes, after the answer that [`LocalLambda::invoke`] returns,
    /// while [`LocalLambda::logs`] shows only what has been read so far. The next invocation of
    /// `name` cold-starts.
    ///
    /// # Panics
    /// When a sandbox is still busy past its deadline and the time its kill may take (a
    /// log read then could miss what it prints, and an absence check would pass on it).
    pub async fn drained_logs(&self, name: &str) -> Vec<LogLine> {
        let pools = self.pools(name);
        let longest = pools.iter().map(|p| p.function.timeout).max().unwrap_or_default();
        // The deadline, then the kill's wait for the output pumps (up to 2 s) and a margin.
        let settled = self.settle(name, longest + Duration::from_secs(4)).await;
        assert!(settled, "{name} still has a busy sandbox past its deadline: its log cannot be drained");
        for pool in pools {
            pool.reap(Duration::ZERO).await;
        }
        self.logs(name)
    }

    /// `name`'s reports so far, of every version.
    pub fn reports(&self, name: &str) -> Vec<Report> {
        self.inner.sink.reports(name)
    }

    /// The reports of `name`'s `version` (`$LATEST`, `1`, ...) so far.
    pub fn reports_of(&self, name: &str, version: &str) -> Vec<Report> {
        self.inner.sink.reports_of(name, version)
    }

    /// Every EMF metric the functions have printed so far.
    pub fn metrics(&self) -> Vec<EmfMetric> {
        self.inner.sink.metrics()
    }

    /// How many sandboxes `name` has started, all versions together.
    pub fn cold_starts(&self, name: &str) -> u64 {
        let Some(versions) = self.versions_of(name) else { return 0 };
        versions.current_pools().map(|p| p.cold_starts.load(Ordering::SeqCst)).sum()
    }

    /// How many sandboxes `name`'s `version` (`$LATEST`, `1`, ...) has started.
    pub fn cold_starts_of(&self, name: &str, version: &str) -> u64 {
        let Some(versions) = self.versions_of(name) else { return 0 };
        let pool = versions.current_pools().find(|p| p.function.version == version);
        pool.map(|p| p.cold_starts.load(Ordering::SeqCst)).unwrap_or(0)
    }

    /// How many of `name`'s sandboxes are alive (busy or idle), all versions together.
    pub fn sandboxes(&self, name: &str) -> usize {
        self.pools(name).iter().map(|p| p.state.lock().expect("not poisoned").live).sum()
    }

    /// How many of `name`'s sandboxes are idle, all versions together.
    pub fn idle_sandboxes(&self, name: &str) -> usize {
        self.pools(name).iter().map(|p| p.state.lock().expect("not poisoned").idle.len()).sum()
    }

    /// Waits until none of `name`'s sandboxes is busy (each answered and asked for its next
    /// invocation, so it is idle and frozen), or `limit` passes; returns whether it settled.
    pub async fn settle(&self, name: &str, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self.sandboxes(name) == self.idle_sandboxes(name) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Kills every idle sandbox of every version (the next invocation of each cold-starts).
    pub async fn reset(&self) {
        for pool in self.inner.all_pools() {
            pool.reap(Duration::ZERO).await;
        }
    }

    fn start_reaper(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        self.inner.reaper.get_or_init(|| {
            let every =
                (self.inner.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(inner) = weak.upgrade() else { return };
                    for pool in inner.all_pools() {
                        pool.reap(inner.idle_timeout).await;
                    }
                    for versions in inner.functions.values() {
                        versions.write().expect("not poisoned").forget_retired();
                    }
                }
            });
        });
    }
}

impl Inner {
    /// Every pool of every function.
    fn all_pools(&self) -> Vec<Arc<FunctionPool>> {
        self.functions.values().flat_map(|v| v.read().expect("not poisoned").pools()).collect()
    }
}

impl LocalLambdaBuilder {
    /// Adds a function.
    pub fn function(mut self, function: Function) -> Self {
        self.functions.push(function);
        self
    }

    /// How long a sandbox may stay idle before it is reaped (default 5 minutes).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Also print every log line to stderr.
    pub fn echo_logs(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// Builds the service; two functions with one name are refused.
    pub fn build(self) -> Result<LocalLambda, super::FunctionConfigError> {
        let mut functions = HashMap::new();
        let region =
            self.functions.first().map(|f| f.region.clone()).unwrap_or_else(crate::dynamodb::default_region);
        for function in self.functions {
            let name = function.name.clone();
            if functions.insert(name.clone(), RwLock::new(Versions::new(function))).is_some() {
                return Err(super::FunctionConfigError::Name(format!("{name} (twice)")));
            }
        }
        Ok(LocalLambda {
            inner: Arc::new(Inner {
                functions,
                sink: LogSink::new(self.echo),
                idle_timeout: self.idle_timeout.unwrap_or(Duration::from_secs(300)),
                region,
                reaper: OnceLock::new(),
            }),
        })
    }
}

/// An answered invocation whose invoke phase runs on until the runtime's next `/next`.
#[derive(Debug)]
struct Invoked {
    /// When it started, which its duration runs from.
    started: Instant,
    /// Its REPORT as of the answer.
    report: Report,
}

/// What ended an invocation inside the sandbox.
#[derive(Debug)]
enum Ended {
    Answer(Bytes),
    FunctionError(Bytes),
    /// An error Lambda itself reports: (errorType, message after `Error: `).
    Lambda(&'static str, String),
}

impl FunctionPool {
    /// An empty pool for `function`, counting into `cold_starts` and the function's `busy`.
    pub(super) fn new(function: Function, cold_starts: Arc<AtomicU64>, busy: Arc<AtomicUsize>) -> Self {
        Self { function, state: Mutex::default(), cold_starts, busy, retired: AtomicBool::new(false) }
    }

    /// Whether a sandbox is still alive in this pool (busy or idle).
    pub(super) fn is_empty(&self) -> bool {
        self.state.lock().expect("not poisoned").live == 0
    }

    /// Takes the pool out of service: its idle sandboxes are killed now, its busy ones once
    /// they have answered.
    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        let idle: Vec<(Sandbox, Instant)> = {
            let mut state = self.state.lock().expect("not poisoned");
            let idle: Vec<_> = state.idle.drain(..).collect();
            state.live -= idle.len();
            idle
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    for (mut sandbox, _) in idle {
                        sandbox.kill().await;
                    }
                });
            }
            // Dropping a sandbox kills its process group too.
            Err(_) => drop(idle),
        }
    }

    async fn invoke(
        self: &Arc<Self>,
        payload: Bytes,
        options: InvokeOptions,
        invoked_arn: String,
        sink: &LogSink,
    ) -> Result<InvokeResponse, InvokeError> {
        let f = &self.function;
        let warm = {
            let mut state = self.state.lock().expect("not poisoned");
            let limit = f.reserved_concurrency.map_or(usize::MAX, |r| r as usize);
            if self
                .busy
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| (b < limit).then_some(b + 1))
                .is_err()
            {
                return Err(InvokeError::TooManyRequests);
            }
            match state.idle.pop() {
                Some((sandbox, _)) => Some(sandbox),
                None => {
                    state.live += 1;
                    None
                }
            }
        };
        let request_id = options.request_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let cold_start = warm.is_none();
        let (mut sandbox, init_duration) = match warm {
            Some(sandbox) => (sandbox, None),
            None => {
                self.cold_starts.fetch_add(1, Ordering::SeqCst);
                match self.init(sink).await {
                    Ok(started) => started,
                    Err((stream, ended, init)) => {
                        let (response, report) =
                            self.finish(sink, &stream, &request_id, "", ended, Duration::ZERO, init, 0, true);
                        self.close(sink, &stream, report);
                        self.release(None);
                        return Ok(response);
                    }
                }
            }
        };

        sink.push(&f.name, &sandbox.stream, format!("START RequestId: {request_id} Version: {}", f.version));
        // Thawed after START, as Lambda logs it: what the thaw lets run belongs to this invocation.
        sandbox.thaw().await;
        let started = Instant::now();
        let deadline = started + f.timeout;
        let throttled_before = sandbox.cpu_throttled();
        let deadline_ms =
            (SystemTime::now() + f.timeout).duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let invocation = NextInvocation {
            request_id: request_id.clone(),
            deadline_ms,
            deadline,
            invoked_function_arn: invoked_arn,
            trace_id: options.trace_id.unwrap_or_else(|| new_trace_id(f.active_tracing)),
            client_context: options.client_context,
            cognito_identity: options.cognito_identity,
            payload,
        };
        let (ended, ended_at) = if sandbox.api.dispatch(invocation).await {
            self.await_answer(&mut sandbox, &request_id, deadline).await
        } else {
            let ended =
                Ended::Lambda("Runtime.ExitError", "Runtime exited without providing a reason".to_owned());
            (ended, Instant::now())
        };
        let duration = ended_at.saturating_duration_since(started);
        let cpu_throttled = sandbox.cpu_throttled().saturating_sub(throttled_before);
        let max_memory = sandbox.max_memory_used_mb();
        let keep = !matches!(ended, Ended::Lambda(..)) && sandbox.exited().is_none();
        let stream = sandbox.stream.clone();
        let sandbox_id = sandbox.id.clone();
        // An answered invocation is not over: its invoke phase runs on until the runtime asks
        // for the next one, and `park` writes its END and REPORT then.
        let (mut response, report) = self.finish(
            sink,
            &stream,
            &request_id,
            &sandbox_id,
            ended,
            duration,
            init_duration,
            max_memory,
            cold_start,
        );
        response.cpu_throttled = cpu_throttled;
        if keep {
            let pool = self.clone();
            let invocation = Invoked { started, report };
            let sink = sink.clone();
            tokio::spawn(async move { pool.park(sandbox, deadline, invocation, &sink).await });
        } else {
            self.close(sink, &stream, report);
            sandbox.kill().await;
            self.release(None);
        }
        Ok(response)
    }

    /// Starts a sandbox and waits for its init phase to end (its first `/next`).
    async fn init(
        &self,
        sink: &LogSink,
    ) -> Result<(Sandbox, Option<Duration>), (String, Ended, Option<Duration>)> {
        let f = &self.function;
        let mut sandbox = match Sandbox::spawn(f, sink).await {
            Ok(sandbox) => sandbox,
            Err(SpawnError::InvalidEntrypoint(path)) => {
                let message = format!("Couldn't find valid bootstrap(s): [{}]", path.display());
                return Err((String::new(), Ended::Lambda("Runtime.InvalidEntrypoint", message), None));
            }
            Err(SpawnError::Io(err)) => {
                return Err((String::new(), Ended::Lambda("Runtime.Unknown", err.to_string()), None));
            }
        };
        let init_deadline = sandbox.started + f.init_timeout;
        let mut exit = sandbox.exit.clone();
        let outcome = loop {
            tokio::select! {
                event = sandbox.events.recv() => match event.map(|r| r.event) {
                    Some(RuntimeEvent::Next) => break Ok(()),
                    Some(RuntimeEvent::InitError { error_type, body }) => break Err(init_error(error_type, body)),
                    Some(_) => continue,
                    None => break Err(Ended::Lambda("Runtime.ExitError", "Runtime exited without providing a reason".into())),
                },
                e = wait_exit(&mut exit) => break Err(exit_error(e)),
                _ = tokio::time::sleep_until(init_deadline.into()) => {
                    let secs = f.init_timeout.as_secs_f64();
                    break Err(Ended::Lambda("Sandbox.Timedout", format!("Task timed out after {secs:.2} seconds")));
                }
            }
        };
        let init = sandbox.started.elapsed();
        match outcome {
            Ok(()) => Ok((sandbox, Some(init))),
            Err(ended) => {
                let stream = sandbox.stream.clone();
                sink.push(
                    &f.name,
                    &stream,
                    format!(
                        "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\tStatus: error",
                        super::logs::ms(init)
                    ),
                );
                sandbox.kill().await;
                Err((stream, ended, Some(init)))
            }
        }
    }

    /// Waits for the runtime's answer to `request_id`: what ended the invocation, and when (the
    /// answer's arrival, the deadline for a timeout), which the REPORT's duration runs to.
    async fn await_answer(
        &self,
        sandbox: &mut Sandbox,
        request_id: &str,
        deadline: Instant,
    ) -> (Ended, Instant) {
        let mut exit = sandbox.exit.clone();
        match wait_for_answer(&mut sandbox.events, &mut exit, request_id, deadline).await {
            Waited::Answered(ended, at) => (ended, at),
            Waited::Exited(exit) => (exit_error(exit), Instant::now()),
            Waited::TimedOut => {
                // The sandbox dies at its deadline, before anything is answered.
                sandbox.kill().await;
                let secs = self.function.timeout.as_secs_f64();
                (
                    Ended::Lambda("Sandbox.Timedout", format!("Task timed out after {secs:.2} seconds")),
                    deadline,
                )
            }
        }
    }

    /// The answer to an invocation that `ended` so, and its REPORT as of now, which
    /// [`FunctionPool::close`] writes when the invocation is over. An error Lambda itself
    /// reports is logged here.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        sink: &LogSink,
        stream: &str,
        request_id: &str,
        sandbox_id: &str,
        ended: Ended,
        duration: Duration,
        init_duration: Option<Duration>,
        max_memory_used_mb: u64,
        cold_start: bool,
    ) -> (InvokeResponse, Report) {
        let f = &self.function;
        let (payload, function_error, status, error_type) = match ended {
            Ended::Answer(body) => (body, None, None, None),
            Ended::FunctionError(body) => {
                let error_type = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|d| d["errorType"].as_str().map(str::to_owned));
                (body, Some("Unhandled".to_owned()), None, error_type)
            }
            Ended::Lambda(error_type, message) => {
                let message = format!("RequestId: {request_id} Error: {message}");
                sink.push(&f.name, stream, format!("{message}\n{error_type}"));
                let doc = json!({"errorType": error_type, "errorMessage": message});
                let status = if error_type == "Sandbox.Timedout" { "timeout" } else { "error" };
                (
                    Bytes::from(doc.to_string()),
                    Some("Unhandled".to_owned()),
                    Some(status.to_owned()),
                    Some(error_type.to_owned()),
                )
            }
        };
        let report = Report {
            request_id: request_id.to_owned(),
            duration,
            billed_ms: Report::billed(duration, init_duration),
            memory_size_mb: f.memory_mb,
            max_memory_used_mb,
            init_duration,
            status: status.clone(),
            error_type: if status.is_some() { error_type } else { None },
        };
        let response = InvokeResponse {
            request_id: request_id.to_owned(),
            payload,
            function_error,
            report: report.clone(),
            cold_start,
            sandbox_id: sandbox_id.to_owned(),
            cpu_throttled: Duration::ZERO,
            executed_version: f.version.clone(),
        };
        (response, report)
    }

    /// Ends an invocation in the log: its END and its REPORT.
    fn close(&self, sink: &LogSink, stream: &str, report: Report) {
        let name = &self.function.name;
        sink.push(name, stream, format!("END RequestId: {}", report.request_id));
        sink.report(name, stream, report);
    }

    /// Waits for the runtime to ask for its next invocation, which ends the answered
    /// invocation (its END and REPORT, the duration running to the ask, as Lambda's invoke
    /// phase does), then freezes the sandbox and makes it available again. A runtime that has
    /// not asked by the deadline has timed out, as on Lambda, and one that exits first has
    /// failed: either way the REPORT says so and the sandbox is killed.
    async fn park(&self, mut sandbox: Sandbox, deadline: Instant, invocation: Invoked, sink: &LogSink) {
        let Invoked { started, mut report } = invocation;
        let mut exit = sandbox.exit.clone();
        let polled = loop {
            tokio::select! {
                biased;
                event = sandbox.events.recv() => match event {
                    Some(Received { at, event: RuntimeEvent::Next }) if at <= deadline => break Ok(at),
                    Some(Received { event: RuntimeEvent::Next, .. }) => break Err(None),
                    Some(_) => continue,
                    None => break Err(Some(exit_error(None))),
                },
                e = wait_exit(&mut exit) => break Err(Some(exit_error(e))),
                _ = tokio::time::sleep_until(deadline.into()) => break Err(None),
            }
        };
        let ended = match polled {
            Ok(at) => Ok(at),
            Err(Some(ended)) => Err((ended, Instant::now())),
            Err(None) => {
                let secs = self.function.timeout.as_secs_f64();
                Err((
                    Ended::Lambda("Sandbox.Timedout", format!("Task timed out after {secs:.2} seconds")),
                    deadline,
                ))
            }
        };
        let stream = sandbox.stream.clone();
        let polled = match ended {
            Ok(at) => {
                report.duration = at.saturating_duration_since(started);
                report.max_memory_used_mb = sandbox.max_memory_used_mb();
                true
            }
            Err((ended, at)) => {
                if let Ended::Lambda(error_type, message) = ended {
                    let request_id = &report.request_id;
                    sink.push(
                        &self.function.name,
                        &stream,
                        format!("RequestId: {request_id} Error: {message}\n{error_type}"),
                    );
                    let status = if error_type == "Sandbox.Timedout" { "timeout" } else { "error" };
                    report.status = Some(status.to_owned());
                    report.error_type = Some(error_type.to_owned());
                }
                report.duration = at.saturating_duration_since(started);
                report.max_memory_used_mb = sandbox.max_memory_used_mb();
                sandbox.kill().await;
                false
            }
        };
        report.billed_ms = Report::billed(report.duration, report.init_duration);
        // Before the sandbox counts as idle: once `settle` returns, the REPORT is there.
        self.close(sink, &stream, report);
        if !polled || self.retired.load(Ordering::SeqCst) {
            sandbox.kill().await;
            self.release(None);
            return;
        }
        if self.function.freeze {
            if let Err(err) = sandbox.freeze().await {
                // A sandbox that may still run is not parked as frozen: it would run on while
                // idle, which Lambda never lets a function do.
                tracing::warn!(sandbox = %sandbox.id, error = %err, "a sandbox could not be frozen; killed instead of parked");
                sandbox.kill().await;
                self.release(None);
                return;
            }
        }
        self.release(Some(sandbox));
    }

    /// Ends a busy sandbox's invocation: returns it to the idle list, or counts one fewer
    /// when it is gone.
    fn release(&self, sandbox: Option<Sandbox>) {
        let stale = {
            let mut state = self.state.lock().expect("not poisoned");
            self.busy.fetch_sub(1, Ordering::SeqCst);
            match sandbox {
                Some(sandbox) if !self.retired.load(Ordering::SeqCst) => {
                    state.idle.push((sandbox, Instant::now()));
                    None
                }
                other => {
                    state.live = state.live.saturating_sub(1);
                    other
                }
            }
        };
        // A sandbox of a retired configuration is killed (dropped) rather than kept.
        drop(stale);
    }

    /// Kills sandboxes idle for longer than `idle`.
    async fn reap(&self, idle: Duration) {
        let expired: Vec<Sandbox> = {
            let mut state = self.state.lock().expect("not poisoned");
            let now = Instant::now();
            let (old, keep): (Vec<_>, Vec<_>) = state.idle.drain(..).partition(|(_, at)| now - *at >= idle);
            state.idle = keep;
            state.live -= old.len();
            old.into_iter().map(|(s, _)| s).collect()
        };
        for mut sandbox in expired {
            sandbox.kill().await;
        }
    }
}

/// `payload` as Lambda takes it: under `limit` bytes and JSON (all whitespace is `{}`).
fn checked_payload(payload: Bytes, limit: usize) -> Result<Bytes, InvokeError> {
    if payload.len() >= limit {
        return Err(InvokeError::RequestTooLarge { size: payload.len(), limit });
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"{}"));
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
        Ok(_) => Ok(payload),
        Err(err) => Err(InvokeError::InvalidRequestContent(err.to_string())),
    }
}

/// How the wait for an invocation's answer ended.
#[derive(Debug)]
enum Waited {
    /// The runtime answered by the deadline (a response, an error, a response too large),
    /// at this instant.
    Answered(Ended, Instant),
    /// The process ended first, this way (`None` if that is unknown).
    Exited(Option<Exit>),
    /// The deadline passed first.
    TimedOut,
}

/// Waits on `events` for the answer to `request_id`, until `deadline` or the end of the
/// process. An answer counts only if it arrived by the deadline: the deadline is polled
/// first, and an answer stamped after it is a timeout however the branches are polled.
async fn wait_for_answer(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Received>,
    exit: &mut tokio::sync::watch::Receiver<Option<Exit>>,
    request_id: &str,
    deadline: Instant,
) -> Waited {
    loop {
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline.into()) => {
                // An answer that arrived in time may still be queued behind the timer.
                while let Ok(received) = events.try_recv() {
                    if let Some(ended) = answer(received.event, request_id) {
                        if received.at <= deadline {
                            return Waited::Answered(ended, received.at);
                        }
                    }
                }
                return Waited::TimedOut;
            }
            received = events.recv() => match received {
                Some(Received { at, event }) => match answer(event, request_id) {
                    Some(_) if at > deadline => return Waited::TimedOut,
                    Some(ended) => return Waited::Answered(ended, at),
                    None => continue,
                },
                None => return Waited::Exited(None),
            },
            // After the events: a runtime that answered and then exited has answered.
            e = wait_exit(exit) => return Waited::Exited(e),
        }
    }
}

/// What `event` ends, if it answers `request_id`.
fn answer(event: RuntimeEvent, request_id: &str) -> Option<Ended> {
    match event {
        RuntimeEvent::Response { request_id: id, body } if id == request_id => Some(Ended::Answer(body)),
        RuntimeEvent::Error { request_id: id, error_type, body } if id == request_id => {
            Some(Ended::FunctionError(error_document(error_type, body)))
        }
        RuntimeEvent::ResponseTooLarge { request_id: id, .. } if id == request_id => {
            let doc = json!({
                "errorMessage": format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
                "errorType": "Function.ResponseSizeTooLarge",
            });
            Some(Ended::FunctionError(Bytes::from(doc.to_string())))
        }
        _ => None,
    }
}

/// How the process ended, once it has (`None` if that is unknown).
async fn wait_exit(exit: &mut tokio::sync::watch::Receiver<Option<Exit>>) -> Option<Exit> {
    exit.wait_for(Option::is_some).await.ok().and_then(|e| *e)
}

/// The invocation's error when the process ended: out of memory or another exit.
fn exit_error(exit: Option<Exit>) -> Ended {
    let Some(exit) = exit else {
        return Ended::Lambda("Runtime.ExitError", "Runtime exited without providing a reason".into());
    };
    let message = format!("Runtime exited with error: {}", exit.describe());
    if exit.out_of_memory {
        Ended::Lambda("Runtime.OutOfMemory", message)
    } else {
        Ended::Lambda("Runtime.ExitError", message)
    }
}

/// The error a runtime reported for an invocation, as an `errorMessage`/`errorType` document.
fn error_document(error_type: Option<String>, body: Bytes) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(doc) if doc.get("errorMessage").is_some() || doc.get("errorType").is_some() => body,
        _ => {
            let message = String::from_utf8_lossy(&body).into_owned();
            let doc = json!({"errorMessage": message, "errorType": error_type.unwrap_or_else(|| "Unhandled".into())});
            Bytes::from(doc.to_string())
        }
    }
}

/// The runtime's init error, answered to the invocation that was waiting for it.
fn init_error(error_type: Option<String>, body: Bytes) -> Ended {
    Ended::FunctionError(error_document(error_type.or_else(|| Some("Runtime.InitError".into())), body))
}

/// A new X-Ray trace header, sampled or not.
fn new_trace_id(sampled: bool) -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let parent = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("Root=1-{secs:08x}-{};Parent={parent};Sampled={}", &id[..24], u8::from(sampled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_errors_speak_lambdas_rest_json() {
        let throttle = InvokeError::TooManyRequests;
        assert_eq!(throttle.status(), 429);
        assert_eq!(throttle.error_type(), "TooManyRequestsException");
        assert_eq!(throttle.body()["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded");
        let missing =
            InvokeError::ResourceNotFound("arn:aws:lambda:us-east-1:000000000000:function:nope".into());
        assert_eq!(missing.status(), 404);
        assert_eq!(
            missing.body()["message"],
            "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"
        );
        assert_eq!(InvokeError::InvalidRequestContent("x".into()).status(), 400);
    }

    #[test]
    fn a_plain_error_body_becomes_an_error_document() {
        let doc: serde_json::Value = serde_json::from_slice(&error_document(
            Some("Runtime.InitError".into()),
            Bytes::from_static(b"boom"),
        ))
        .unwrap();
        assert_eq!(doc, json!({"errorMessage": "boom", "errorType": "Runtime.InitError"}));
        let already = Bytes::from_static(br#"{"errorType":"E","errorMessage":"m"}"#);
        assert_eq!(error_document(None, already.clone()), already);
    }

    /// An answer to `r` that arrived at `at`, queued, and a process that has not ended.
    fn queued_answer(
        at: Instant,
    ) -> (
        tokio::sync::mpsc::UnboundedReceiver<Received>,
        tokio::sync::watch::Sender<Option<Exit>>,
        tokio::sync::watch::Receiver<Option<Exit>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let event = RuntimeEvent::Response { request_id: "r".into(), body: Bytes::from_static(b"{}") };
        tx.send(Received { at, event }).unwrap();
        let (exit_tx, exit) = tokio::sync::watch::channel(None);
        (rx, exit_tx, exit)
    }

    #[tokio::test]
    async fn an_answer_stamped_after_the_deadline_is_a_timeout_every_time() {
        for round in 0..100 {
            // Both ready at once: the deadline has passed and the late answer is queued.
            let deadline = Instant::now() - Duration::from_millis(5);
            let (mut events, _exit_tx, mut exit) = queued_answer(deadline + Duration::from_millis(1));
            let waited = wait_for_answer(&mut events, &mut exit, "r", deadline).await;
            assert!(matches!(waited, Waited::TimedOut), "round {round}: {waited:?}");
        }
        // The timer has not fired yet, but the answer's stamp is past the deadline.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut events, _exit_tx, mut exit) = queued_answer(deadline + Duration::from_millis(1));
        let waited = wait_for_answer(&mut events, &mut exit, "r", deadline).await;
        assert!(matches!(waited, Waited::TimedOut), "{waited:?}");
    }

    #[tokio::test]
    async fn an_answer_that_arrived_in_time_counts_even_when_the_deadline_is_polled_first() {
        for round in 0..100 {
            let deadline = Instant::now() - Duration::from_millis(5);
            let at = deadline - Duration::from_millis(1);
            let (mut events, _exit_tx, mut exit) = queued_answer(at);
            let waited = wait_for_answer(&mut events, &mut exit, "r", deadline).await;
            assert!(
                matches!(waited, Waited::Answered(Ended::Answer(_), answered) if answered == at),
                "round {round}: {waited:?}"
            );
        }
    }

    #[test]
    fn trace_ids_have_xrays_shape() {
        let t = new_trace_id(false);
        assert!(t.ends_with(";Sampled=0"), "{t}");
        assert!(new_trace_id(true).ends_with(";Sampled=1"));
        assert!(t.starts_with("Root=1-"), "{t}");
        let root = t.split(';').next().unwrap();
        assert_eq!(root.len(), "Root=1-".len() + 8 + 1 + 24, "{t}");
    }
}
