//! The Lambda Runtime API (version 2018-06-01) one sandbox talks to: `GET
//! /runtime/invocation/next` with Lambda's headers, `POST .../{id}/response`, `POST
//! .../{id}/error` and `POST /runtime/init/error`. What the runtime does arrives as
//! [`RuntimeEvent`]s, each stamped with when it arrived, on one channel, which the sandbox's
//! owner reads.
//!
//! As Lambda's Runtime API does, it holds one invocation at a time: an answer is taken once,
//! an answer after the invocation's deadline is refused (`410`, `InvokeTimeout`), a response
//! over the payload limit ends the invocation at once, and a `GET .../next` before the
//! current invocation is answered hands that invocation out again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::http_server::{self, BodyTooLarge, Req, Resp};
use super::MAX_RESPONSE_BYTES;

/// The API version in every path.
pub const VERSION: &str = "2018-06-01";

/// The headers `GET /runtime/invocation/next` answers with.
pub mod headers {
    /// The request id.
    pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
    /// The deadline, Unix time in milliseconds.
    pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
    /// The invoked function's ARN.
    pub const INVOKED_FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
    /// The X-Ray trace header.
    pub const TRACE_ID: &str = "lambda-runtime-trace-id";
    /// The client context (mobile SDK invocations), JSON.
    pub const CLIENT_CONTEXT: &str = "lambda-runtime-client-context";
    /// The Cognito identity (mobile SDK invocations), JSON.
    pub const COGNITO_IDENTITY: &str = "lambda-runtime-cognito-identity";
    /// The error type a runtime reports with `/error` and `/init/error`.
    pub const FUNCTION_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
}

/// One invocation handed to the runtime.
#[derive(Debug, Clone)]
pub struct NextInvocation {
    /// The request id.
    pub request_id: String,
    /// The deadline, Unix time in milliseconds.
    pub deadline_ms: u128,
    /// The same deadline on this machine's monotonic clock: answers that arrive after it are
    /// refused.
    pub deadline: Instant,
    /// The invoked function's ARN.
    pub invoked_function_arn: String,
    /// The X-Ray trace header.
    pub trace_id: String,
    /// The client context, when the caller gave one.
    pub client_context: Option<String>,
    /// The Cognito identity, when the caller gave one.
    pub cognito_identity: Option<String>,
    /// The event.
    pub payload: Bytes,
}

/// What the runtime did.
#[derive(Debug, Clone)]
pub enum RuntimeEvent {
    /// The runtime asked for its next invocation (the first time: init is done).
    Next,
    /// The runtime answered `request_id`.
    Response {
        /// The request id.
        request_id: String,
        /// The answer.
        body: Bytes,
    },
    /// The runtime's answer was over the 6 MB limit and was refused; the invocation is over.
    ResponseTooLarge {
        /// The request id.
        request_id: String,
        /// The size it tried to send; for a body too large to read whole, the bytes received
        /// before the read stopped.
        size: usize,
    },
    /// The runtime reported an error for `request_id`.
    Error {
        /// The request id.
        request_id: String,
        /// The `Lambda-Runtime-Function-Error-Type` header.
        error_type: Option<String>,
        /// The error document (`errorMessage`, `errorType`).
        body: Bytes,
    },
    /// The runtime reported that its init failed.
    InitError {
        /// The `Lambda-Runtime-Function-Error-Type` header.
        error_type: Option<String>,
        /// The error document.
        body: Bytes,
    },
}

/// A [`RuntimeEvent`] and when the Runtime API received it (for a post, once its body was
/// read).
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// What the runtime did.
    pub event: RuntimeEvent,
}

/// A running Runtime API for one sandbox.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    next_tx: mpsc::Sender<NextInvocation>,
    task: JoinHandle<()>,
}

struct State {
    next_rx: Mutex<mpsc::Receiver<NextInvocation>>,
    /// The invocation handed out and not yet answered.
    current: std::sync::Mutex<Option<NextInvocation>>,
    events: mpsc::UnboundedSender<Received>,
}

impl State {
    fn send(&self, at: Instant, event: RuntimeEvent) {
        let _ = self.events.send(Received { at, event });
    }
}

/// Why an answer for a request id was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// No invocation with that id waits for an answer.
    InvalidRequestId,
    /// It came after the invocation's deadline.
    TimedOut,
}

impl RuntimeApi {
    /// Starts the API on a free local port; what the runtime does arrives on the returned
    /// channel.
    pub async fn start() -> std::io::Result<(Self, mpsc::UnboundedReceiver<Received>)> {
        let (listener, addr) = http_server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let (next_tx, next_rx) = mpsc::channel(1);
        let (events, events_rx) = mpsc::unbounded_channel();
        let state =
            Arc::new(State { next_rx: Mutex::new(next_rx), current: std::sync::Mutex::new(None), events });
        let task = http_server::serve_oversized(listener, move |req| route(state.clone(), req));
        Ok((Self { addr, next_tx, task }, events_rx))
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Hands `invocation` to the runtime's pending (or next) `GET .../next`.
    pub async fn dispatch(&self, invocation: NextInvocation) -> bool {
        self.next_tx.send(invocation).await.is_ok()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn route(state: Arc<State>, req: Req) -> Resp {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(&format!("/{VERSION}/runtime/")) else {
        return not_found();
    };
    let error_type =
        req.headers().get(headers::FUNCTION_ERROR_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let too_large = req.extensions().get::<BodyTooLarge>().copied();
    match (req.method().as_str(), rest) {
        ("GET", "invocation/next") => next(&state, at).await,
        ("POST", "init/error") if too_large.is_some() => entity_too_large(),
        ("POST", "init/error") => {
            state.send(at, RuntimeEvent::InitError { error_type, body: req.into_body() });
            accepted()
        }
        ("POST", rest) if rest.starts_with("invocation/") => {
            let mut parts = rest["invocation/".len()..].splitn(2, '/');
            let (Some(id), Some(kind)) = (parts.next(), parts.next()) else { return not_found() };
            if kind != "response" && kind != "error" {
                return not_found();
            }
            // An error document past the read limit is refused and the invocation keeps
            // waiting: what Lambda does with one that large is not modelled.
            if kind == "error" && too_large.is_some() {
                return entity_too_large();
            }
            let request_id = match take_current(&state.current, id, at) {
                Ok(invocation) => invocation.request_id,
                Err(Refused::InvalidRequestId) => return invalid_request_id(),
                Err(Refused::TimedOut) => return invoke_timeout(),
            };
            let body = req.into_body();
            if kind == "error" {
                state.send(at, RuntimeEvent::Error { request_id, error_type, body });
                return accepted();
            }
            let size = too_large.map_or(body.len(), |t| t.read);
            if size > MAX_RESPONSE_BYTES {
                state.send(at, RuntimeEvent::ResponseTooLarge { request_id, size });
                return entity_too_large();
            }
            state.send(at, RuntimeEvent::Response { request_id, body });
            accepted()
        }
        _ => not_found(),
    }
}

/// Takes the invocation `id` answers, under one hold of the lock, so that of two answers to
/// one invocation only one is taken. An answer after the deadline disarms the invocation too:
/// it is over, and a later answer is for no invocation.
fn take_current(
    current: &std::sync::Mutex<Option<NextInvocation>>,
    id: &str,
    at: Instant,
) -> Result<NextInvocation, Refused> {
    let mut current = current.lock().expect("not poisoned");
    match current.take() {
        Some(invocation) if invocation.request_id == id => {
            if at > invocation.deadline {
                Err(Refused::TimedOut)
            } else {
                Ok(invocation)
            }
        }
        other => {
            *current = other;
            Err(Refused::InvalidRequestId)
        }
    }
}

async fn next(state: &State, at: Instant) -> Resp {
    // A runtime that asks again before it answers is handed the same invocation, as Lambda's
    // Runtime API does (RAPID's running state takes `next` and renders the current event).
    let pending = state.current.lock().expect("not poisoned").clone();
    if let Some(inv) = pending.filter(|inv| at <= inv.deadline) {
        return invocation_response(inv);
    }
    state.send(at, RuntimeEvent::Next);
    let mut rx = state.next_rx.lock().await;
    let Some(inv) = rx.recv().await else {
        return http_server::json(
            410,
            &serde_json::json!({"errorMessage": "sandbox shut down", "errorType": "Gone"}),
        );
    };
    *state.current.lock().expect("not poisoned") = Some(inv.clone());
    invocation_response(inv)
}

/// `GET .../next`'s answer: the event, with Lambda's headers.
fn invocation_response(inv: NextInvocation) -> Resp {
    let mut resp = http_server::bytes(200, "application/json", inv.payload);
    let h = resp.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(headers::REQUEST_ID, &inv.request_id);
    put(headers::DEADLINE_MS, &inv.deadline_ms.to_string());
    put(headers::INVOKED_FUNCTION_ARN, &inv.invoked_function_arn);
    put(headers::TRACE_ID, &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        put(headers::CLIENT_CONTEXT, cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        put(headers::COGNITO_IDENTITY, ci);
    }
    resp
}

fn invalid_request_id() -> Resp {
    http_server::json(
        400,
        &serde_json::json!({"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}),
    )
}

/// Lambda's answer to a response or error that comes after the invocation timed out.
fn invoke_timeout() -> Resp {
    http_server::json(
        410,
        &serde_json::json!({"errorMessage": "Invoke timeout", "errorType": "InvokeTimeout"}),
    )
}

fn entity_too_large() -> Resp {
    http_server::json(
        413,
        &serde_json::json!({
            "errorMessage": format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
            "errorType": "RequestEntityTooLarge",
        }),
    )
}

fn accepted() -> Resp {
    http_server::json(202, &serde_json::json!({"status": "OK"}))
}

fn not_found() -> Resp {
    http_server::json(404, &serde_json::json!({"errorMessage": "not found", "errorType": "NotFound"}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A Runtime API's state whose current invocation is `r`, due at `deadline`; its events.
    fn armed(deadline: Instant) -> (Arc<State>, mpsc::UnboundedReceiver<Received>) {
        let (_next_tx, next_rx) = mpsc::channel(1);
        let (events, events_rx) = mpsc::unbounded_channel();
        let invocation = NextInvocation {
            request_id: "r".into(),
            deadline_ms: 0,
            deadline,
            invoked_function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            trace_id: String::new(),
            client_context: None,
            cognito_identity: None,
            payload: Bytes::from_static(br#"{"n":1}"#),
        };
        let state =
            State { next_rx: Mutex::new(next_rx), current: std::sync::Mutex::new(Some(invocation)), events };
        (Arc::new(state), events_rx)
    }

    fn request(method: &str, path: &str, body: &'static [u8]) -> Req {
        http::Request::builder()
            .method(method)
            .uri(format!("/{VERSION}/runtime/{path}"))
            .body(Bytes::from_static(body))
            .unwrap()
    }

    /// The status and the JSON body of `resp`.
    async fn read(resp: Resp) -> (u16, serde_json::Value) {
        use http_body_util::BodyExt;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    fn events(rx: &mut mpsc::UnboundedReceiver<Received>) -> Vec<RuntimeEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|r| r.event).collect()
    }

    #[test]
    fn two_answers_to_one_invocation_are_taken_once() {
        // Two threads post at once, round after round, on a multi-thread runtime: the two
        // answers race for the one invocation, and exactly one may be taken each round. The
        // window a check and a clear under two holds of the lock leave is a few instructions
        // wide, so it takes many rounds to hit.
        const ROUNDS: usize = 100_000;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        let (state, rx) = armed(deadline);
        let invocation = state.current.lock().unwrap().clone();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let barrier = Arc::new(std::sync::Barrier::new(2));
        // The start of each round is spun on, not slept on: a thread woken from sleep starts
        // microseconds after the one that woke it, and the two posts would not overlap.
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let posters: Vec<_> = (0..2)
            .map(|_| {
                let (state, rx, barrier, arrived) =
                    (state.clone(), rx.clone(), barrier.clone(), arrived.clone());
                let (invocation, handle) = (invocation.clone(), runtime.handle().clone());
                std::thread::spawn(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    let mut rounds = Vec::with_capacity(ROUNDS);
                    for round in 0..ROUNDS {
                        let req = request("POST", "invocation/r/response", b"{}");
                        arrived.fetch_add(1, SeqCst);
                        let mut spins = 0u32;
                        while arrived.load(SeqCst) < 2 * (round + 1) {
                            spins += 1;
                            if spins % 1024 == 0 {
                                std::thread::yield_now();
                            }
                            std::hint::spin_loop();
                        }
                        let accepted = handle.block_on(route(state.clone(), req)).status() == 202;
                        // One of the two counts the events and arms the invocation again.
                        let counted = barrier.wait().is_leader().then(|| {
                            *state.current.lock().unwrap() = invocation.clone();
                            events(&mut rx.lock().unwrap()).len()
                        });
                        barrier.wait();
                        rounds.push((accepted, counted));
                    }
                    rounds
                })
            })
            .collect();
        let rounds: Vec<_> = posters.into_iter().map(|p| p.join().unwrap()).collect();
        for (round, (a, b)) in rounds[0].iter().zip(&rounds[1]).enumerate() {
            let accepted = usize::from(a.0) + usize::from(b.0);
            assert_eq!((accepted, a.1.or(b.1)), (1, Some(1)), "round {round}: both answers were taken");
        }
    }

    #[tokio::test]
    async fn an_answer_after_the_deadline_is_refused_as_lambda_refuses_it_and_disarms_the_id() {
        for kind in ["response", "error"] {
            let (state, mut rx) = armed(Instant::now() - Duration::from_millis(1));
            let late = request("POST", &format!("invocation/r/{kind}"), b"{}");
            let (status, body) = read(route(state.clone(), late).await).await;
            assert_eq!(status, 410, "{kind}");
            assert_eq!(
                body,
                serde_json::json!({"errorMessage": "Invoke timeout", "errorType": "InvokeTimeout"})
            );
            let again = request("POST", "invocation/r/response", b"{}");
            assert_eq!(read(route(state, again).await).await.0, 400, "{kind}: the id is disarmed");
            assert!(events(&mut rx).is_empty(), "{kind}: a refused answer reaches no one");
        }
    }

    #[tokio::test]
    async fn a_response_past_the_read_limit_ends_the_invocation_and_disarms_the_id() {
        let (state, mut rx) = armed(Instant::now() + Duration::from_secs(60));
        let mut big = request("POST", "invocation/r/response", b"");
        big.extensions_mut().insert(BodyTooLarge { read: 17_000_000 });
        let (status, body) = read(route(state.clone(), big).await).await;
        assert_eq!((status, body["errorType"].as_str()), (413, Some("RequestEntityTooLarge")));
        let small = request("POST", "invocation/r/response", b"{}");
        assert_eq!(read(route(state, small).await).await.0, 400);
        let events = events(&mut rx);
        assert!(
            matches!(&events[..], [RuntimeEvent::ResponseTooLarge { request_id, size: 17_000_000 }] if request_id == "r"),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn asking_for_the_next_invocation_before_answering_gets_the_same_one_again() {
        let (state, mut rx) = armed(Instant::now() + Duration::from_secs(60));
        let resp = route(state.clone(), request("GET", "invocation/next", b"")).await;
        assert_eq!(resp.headers()[headers::REQUEST_ID], "r");
        let (status, body) = read(resp).await;
        assert_eq!((status, body), (200, serde_json::json!({"n": 1})));
        assert!(events(&mut rx).is_empty(), "no new invocation is asked for");
        let answer = request("POST", "invocation/r/response", b"{}");
        assert_eq!(read(route(state, answer).await).await.0, 202);
    }
}
