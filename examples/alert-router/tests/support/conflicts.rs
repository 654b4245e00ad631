//! A proxy in front of DynamoDB Local that answers chosen requests the way DynamoDB answers
//! a write that meets a transaction running on its item, and forwards everything else.
//! DynamoDB Local runs one request at a time, so a write there never meets a transaction.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// How the proxy answers a request a rule picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Not forwarded: 400 `TransactionConflictException`, DynamoDB's answer to a plain write.
    Conflict,
    /// Not forwarded: 400 `TransactionCanceledException` with the reasons
    /// `[None, TransactionConflict]`, DynamoDB's answer to a two-item transaction.
    Cancelled,
    /// Forwarded and carried out, then answered 500 `InternalServerError`: a lost answer,
    /// which the SDK sends again.
    Lost,
}

impl Answer {
    fn response(self) -> Response<Full<Bytes>> {
        let (status, body) = match self {
            Answer::Conflict => (
                400,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item"}"#,
            ),
            Answer::Cancelled => (
                400,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#,
            ),
            Answer::Lost => (
                500,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#,
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-requestid", uuid::Uuid::new_v4().to_string())
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("a response")
    }
}

#[derive(Debug)]
struct Rule {
    operation: String,
    contains: String,
    left: u32,
    answer: Answer,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// Every request: its operation and body.
    seen: Vec<(String, String)>,
    /// Requests a rule answered.
    answered: u32,
}

/// The proxy; it stops when dropped.
pub(crate) struct ConflictProxy {
    endpoint: String,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for ConflictProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl ConflictProxy {
    /// A proxy on a free local port in front of `upstream` (`http://127.0.0.1:<port>`).
    pub(crate) async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        let state = Arc::new(Mutex::new(State::default()));
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let (upstream, shared) = (upstream.trim_end_matches('/').to_owned(), state.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, state, client) = (upstream.clone(), shared.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, upstream.clone(), state.clone(), client.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { endpoint, state, accept }
    }

    /// `http://127.0.0.1:<port>`, for SDK clients.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Answers the next `count` requests of `operation` whose body contains `contains` as
    /// `answer` says.
    pub(crate) fn answer(&self, operation: &str, contains: &str, count: u32, answer: Answer) {
        self.state.lock().unwrap().rules.push(Rule {
            operation: operation.to_owned(),
            contains: contains.to_owned(),
            left: count,
            answer,
        });
    }

    /// The requests of `operation` seen so far whose body contains `contains`.
    pub(crate) fn seen(&self, operation: &str, contains: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.seen.iter().filter(|(op, body)| op == operation && body.contains(contains)).count()
    }

    /// The requests a rule answered so far.
    pub(crate) fn answered(&self) -> u32 {
        self.state.lock().unwrap().answered
    }
}

async fn handle(
    req: Request<Incoming>,
    upstream: String,
    state: Arc<Mutex<State>>,
    client: Client<HttpConnector, Full<Bytes>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit_once('.'))
        .map_or(String::new(), |(_, op)| op.to_owned());
    let text = String::from_utf8_lossy(&body).into_owned();
    let answer = {
        let mut state = state.lock().unwrap();
        state.seen.push((operation.clone(), text.clone()));
        let rule = state
            .rules
            .iter_mut()
            .find(|r| r.left > 0 && r.operation == operation && text.contains(&r.contains));
        let answer = rule.map(|r| {
            r.left -= 1;
            r.answer
        });
        state.answered += u32::from(answer.is_some());
        answer
    };
    if let Some(answer @ (Answer::Conflict | Answer::Cancelled)) = answer {
        return Ok(answer.response());
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = Request::builder().method(parts.method).uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != "host" {
            forward = forward.header(name, value);
        }
    }
    let forward = forward.body(Full::new(body)).expect("a request");
    let Ok(out) = client.request(forward).await else {
        return Ok(Response::builder().status(502).body(Full::new(Bytes::new())).expect("a response"));
    };
    if answer == Some(Answer::Lost) {
        return Ok(Answer::Lost.response());
    }
    let (parts, body) = out.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Ok(Response::from_parts(parts, Full::new(body)))
}
