//! One mocked endpoint: a wiremock server that records every call and applies faults.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use super::fault::{lock, AwsError, Fault, FaultBook, FaultKind};
use super::wire;

/// A call a mock received, as it arrived on the wire.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedCall {
    /// Operation name, from `X-Amz-Target`, the query `Action`, or the mock's own routes.
    pub operation: String,
    /// HTTP method.
    pub method: http::Method,
    /// Request path.
    pub path: String,
    /// Request headers.
    pub headers: http::HeaderMap,
    /// Body parsed as JSON; a form body becomes an object of strings; `Null` otherwise.
    pub body: Value,
    /// Body bytes as received.
    pub raw_body: Vec<u8>,
    /// When the call arrived.
    pub at: SystemTime,
    /// The fault the call was answered with, if any.
    pub fault: Option<FaultKind>,
}

impl RecordedCall {
    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A mocked service: answers operations and renders errors in its own protocol.
pub(crate) trait Service: Send + Sync + 'static {
    /// The operation a request calls.
    fn operation(&self, request: &Request) -> String {
        wire::operation(request)
    }

    /// The normal answer to `operation`.
    fn handle(&self, operation: &str, request: &Request) -> ResponseTemplate;

    /// `error` rendered as this service sends errors for `request`.
    fn error(&self, request: &Request, error: &AwsError) -> ResponseTemplate;
}

#[derive(Debug, Default)]
struct Shared {
    calls: Mutex<Vec<RecordedCall>>,
    faults: FaultBook,
}

impl Shared {
    fn record(&self, operation: String, request: &Request, fault: Option<FaultKind>) {
        let call = RecordedCall {
            operation,
            method: request.method.clone(),
            path: request.url.path().to_owned(),
            headers: request.headers.clone(),
            body: wire::body_value(request),
            raw_body: request.body.clone(),
            at: SystemTime::now(),
            fault,
        };
        lock(&self.calls).push(call);
    }
}

/// A running wiremock server with call recording and faults; stops when dropped.
#[derive(Debug)]
pub(crate) struct Endpoint {
    server: MockServer,
    shared: Arc<Shared>,
}

impl Endpoint {
    /// Starts a server on 127.0.0.1 and a free port that answers through `service`.
    pub(crate) async fn start<S: Service>(service: Arc<S>) -> Self {
        let server = MockServer::builder().disable_request_recording().start().await;
        let shared = Arc::new(Shared::default());

        // wiremock serves with hyper 1: a responder that returns an error makes hyper
        // close the connection without writing a response, which is the dropped
        // connection clients must survive. Matching and responding run under one lock
        // in wiremock, so the armed drop cannot be taken by another request in between.
        let drop_armed = DropArmed { service: service.clone(), shared: shared.clone() };
        let (drop_service, drop_shared) = (service.clone(), shared.clone());
        Mock::given(drop_armed)
            .respond_with_err(move |request: &Request| {
                let operation = drop_service.operation(request);
                drop_shared.faults.take(&operation, true);
                drop_shared.record(operation, request, Some(FaultKind::DropConnection));
                std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault: drop")
            })
            .with_priority(1)
            .mount(&server)
            .await;

        let responder = Responder { service, shared: shared.clone() };
        Mock::given(wiremock::matchers::any()).respond_with(responder).with_priority(2).mount(&server).await;
        Self { server, shared }
    }

    /// Base URL, `http://127.0.0.1:<port>`.
    pub(crate) fn uri(&self) -> String {
        self.server.uri()
    }

    pub(crate) fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.shared.calls).clone()
    }

    pub(crate) fn calls_to(&self, operation: &str) -> Vec<RecordedCall> {
        let calls = lock(&self.shared.calls);
        calls.iter().filter(|c| c.operation == operation).cloned().collect()
    }

    pub(crate) fn clear_calls(&self) {
        lock(&self.shared.calls).clear();
    }

    pub(crate) fn fault(&self, operation: &str, fault: Fault) {
        self.shared.faults.arm(operation, fault);
    }

    pub(crate) fn clear_faults(&self) {
        self.shared.faults.clear();
    }
}

struct DropArmed<S> {
    service: Arc<S>,
    shared: Arc<Shared>,
}

impl<S: Service> Match for DropArmed<S> {
    fn matches(&self, request: &Request) -> bool {
        let operation = self.service.operation(request);
        self.shared.faults.next_drops(&operation)
    }
}

struct Responder<S> {
    service: Arc<S>,
    shared: Arc<Shared>,
}

impl<S: Service> wiremock::Respond for Responder<S> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let operation = self.service.operation(request);
        let fault = self.shared.faults.take(&operation, false).map(|f| f.kind().clone());
        let response = match &fault {
            Some(FaultKind::AwsError(error)) => self.service.error(request, error),
            Some(FaultKind::Delay(delay)) => self.service.handle(&operation, request).set_delay(*delay),
            Some(FaultKind::DropConnection) | None => self.service.handle(&operation, request),
        };
        self.shared.record(operation, request, fault);
        response
    }
}

/// Gives a mock type the call-recording and fault methods of its [`Endpoint`] field.
macro_rules! endpoint_methods {
    ($mock:ty) => {
        impl $mock {
            /// Base URL of the endpoint, `http://127.0.0.1:<port>`.
            pub fn uri(&self) -> String {
                self.endpoint.uri()
            }

            /// Every call received so far, in arrival order.
            pub fn calls(&self) -> Vec<$crate::aws::RecordedCall> {
                self.endpoint.calls()
            }

            /// The calls received so far to `operation` (e.g. `"GetSecretValue"`).
            pub fn calls_to(&self, operation: &str) -> Vec<$crate::aws::RecordedCall> {
                self.endpoint.calls_to(operation)
            }

            /// Forgets the calls recorded so far.
            pub fn clear_calls(&self) {
                self.endpoint.clear_calls()
            }

            /// Arms `fault` on `operation` (or on every operation with `"*"`).
            pub fn fault(&self, operation: &str, fault: $crate::aws::Fault) {
                self.endpoint.fault(operation, fault)
            }

            /// Disarms every fault.
            pub fn clear_faults(&self) {
                self.endpoint.clear_faults()
            }
        }
    };
}

pub(crate) use endpoint_methods;
