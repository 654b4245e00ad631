//! The Lambda Runtime API (version 2018-06-01) one sandbox talks to: `GET
//! /runtime/invocation/next` with Lambda's headers, `POST .../{id}/response`, `POST
//! .../{id}/error` and `POST /runtime/init/error`. What the runtime does arrives as
//! [`RuntimeEvent`]s on one channel, which the sandbox's owner reads.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::http_server::{self, Req, Resp};
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
    /// The runtime's answer was over the 6 MB limit and was refused.
    ResponseTooLarge {
        /// The request id.
        request_id: String,
        /// The size it tried to send.
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

/// A running Runtime API for one sandbox.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    next_tx: mpsc::Sender<NextInvocation>,
    task: JoinHandle<()>,
}

struct State {
    next_rx: Mutex<mpsc::Receiver<NextInvocation>>,
    current: std::sync::Mutex<Option<String>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
}

impl RuntimeApi {
    /// Starts the API on a free local port; what the runtime does arrives on the returned
    /// channel.
    pub async fn start() -> std::io::Result<(Self, mpsc::UnboundedReceiver<RuntimeEvent>)> {
        let (listener, addr) = http_server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let (next_tx, next_rx) = mpsc::channel(1);
        let (events, events_rx) = mpsc::unbounded_channel();
        let state =
            Arc::new(State { next_rx: Mutex::new(next_rx), current: std::sync::Mutex::new(None), events });
        let task = http_server::serve(listener, move |req| route(state.clone(), req));
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
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(&format!("/{VERSION}/runtime/")) else {
        return not_found();
    };
    let error_type =
        req.headers().get(headers::FUNCTION_ERROR_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match (req.method().as_str(), rest) {
        ("GET", "invocation/next") => next(&state).await,
        ("POST", "init/error") => {
            let _ = state.events.send(RuntimeEvent::InitError { error_type, body: req.into_body() });
            accepted()
        }
        ("POST", rest) if rest.starts_with("invocation/") => {
            let mut parts = rest["invocation/".len()..].splitn(2, '/');
            let (Some(id), Some(kind)) = (parts.next(), parts.next()) else { return not_found() };
            let current = state.current.lock().expect("not poisoned").clone();
            if current.as_deref() != Some(id) {
                return http_server::json(
                    400,
                    &serde_json::json!({"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}),
                );
            }
            let request_id = id.to_owned();
            match kind {
                "response" => {
                    let body = req.into_body();
                    if body.len() > MAX_RESPONSE_BYTES {
                        let size = body.len();
                        let _ = state.events.send(RuntimeEvent::ResponseTooLarge { request_id, size });
                        *state.current.lock().expect("not poisoned") = None;
                        return http_server::json(
                            413,
                            &serde_json::json!({
                                "errorMessage": format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
                                "errorType": "RequestEntityTooLarge",
                            }),
                        );
                    }
                    *state.current.lock().expect("not poisoned") = None;
                    let _ = state.events.send(RuntimeEvent::Response { request_id, body });
                    accepted()
                }
                "error" => {
                    *state.current.lock().expect("not poisoned") = None;
                    let _ = state.events.send(RuntimeEvent::Error {
                        request_id,
                        error_type,
                        body: req.into_body(),
                    });
                    accepted()
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

async fn next(state: &State) -> Resp {
    let _ = state.events.send(RuntimeEvent::Next);
    let mut rx = state.next_rx.lock().await;
    let Some(inv) = rx.recv().await else {
        return http_server::json(
            410,
            &serde_json::json!({"errorMessage": "sandbox shut down", "errorType": "Gone"}),
        );
    };
    *state.current.lock().expect("not poisoned") = Some(inv.request_id.clone());
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

fn accepted() -> Resp {
    http_server::json(202, &serde_json::json!({"status": "OK"}))
}

fn not_found() -> Resp {
    http_server::json(404, &serde_json::json!({"errorMessage": "not found", "errorType": "NotFound"}))
}
