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

    /// The SigV4 credential scope of the call's `Authorization` header, if it is signed
    /// (`AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ...`).
    pub fn sigv4(&self) -> Option<SigV4Scope> {
        SigV4Scope::parse(self.header("authorization")?)
    }
}

/// Who signed a request and for what, from a SigV4 `Authorization` header.
///
/// The signature itself is not checked (the mocks accept any credentials); this tells that a
/// client signed, for which service and region, and over which headers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SigV4Scope {
    /// The access key id.
    pub access_key_id: String,
    /// The date, `YYYYMMDD`.
    pub date: String,
    /// The region signed for.
    pub region: String,
    /// The service signed for (`kms`, `route53`, ...).
    pub service: String,
    /// The signed header names, lower case.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

impl SigV4Scope {
    /// Parses an `Authorization` header value; `None` unless it is a complete SigV4 one.
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',').map(str::trim) {
            match part.split_once('=')? {
                ("Credential", v) => credential = Some(v),
                ("SignedHeaders", v) => signed_headers = Some(v),
                ("Signature", v) => signature = Some(v),
                _ => {}
            }
        }
        let fields: Vec<&str> = credential?.split('/').collect();
        let [key, date, region, service, "aws4_request"] = fields.as_slice() else { return None };
        let signature = signature?;
        let is_hex = signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit());
        if key.is_empty() || date.len() != 8 || region.is_empty() || service.is_empty() || !is_hex {
            return None;
        }
        Some(Self {
            access_key_id: (*key).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            signed_headers: signed_headers?.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
        })
    }
}

/// A mocked service: answers operations and renders errors in its own protocol.
pub(crate) trait Service: Send + Sync + 'static {
    /// The service name requests are signed for (SigV4 credential scope), e.g. `kms`;
    /// empty for endpoints that are not AWS services (the JWKS issuer).
    fn signing_name(&self) -> &'static str {
        ""
    }

    /// The operation a request calls.
    fn operation(&self, request: &Request) -> String {
        wire::operation(request)
    }

    /// The normal answer to `operation`.
    fn handle(&self, operation: &str, request: &Request) -> ResponseTemplate;

    /// `error` rendered as this service sends errors for `request`.
    fn error(&self, request: &Request, error: &AwsError) -> ResponseTemplate;
}

#[derive(Debug)]
struct Shared {
    /// The SigV4 service name of the mocked service.
    signing_name: &'static str,
    /// Whether calls not signed for the service are refused.
    require_signature: std::sync::atomic::AtomicBool,
    calls: Mutex<Vec<RecordedCall>>,
    faults: FaultBook,
}

impl Shared {
    /// Why the call is refused for its signature, when signatures are required: AWS's
    /// answers to an unsigned request and to one signed for another service.
    fn signature_error(&self, request: &Request) -> Option<AwsError> {
        if !self.require_signature.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let header = request.headers.get("authorization").and_then(|v| v.to_str().ok());
        match header.map(SigV4Scope::parse) {
            None => Some(AwsError::new(
                403,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )),
            Some(Some(scope)) if scope.service == self.signing_name => None,
            Some(_) => Some(AwsError::new(
                403,
                "InvalidSignatureException",
                format!("Credential should be scoped to correct service: '{}'.", self.signing_name),
            )),
        }
    }

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
        let shared = Arc::new(Shared {
            signing_name: service.signing_name(),
            require_signature: Default::default(),
            calls: Mutex::default(),
            faults: FaultBook::default(),
        });

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

    pub(crate) fn require_signature(&self, required: bool) {
        self.shared.require_signature.store(required, std::sync::atomic::Ordering::Relaxed);
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
        if let Some(error) = self.shared.signature_error(request) {
            self.shared.record(operation, request, None);
            return self.service.error(request, &error);
        }
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

/// Gives the mock of an AWS service (whose calls are SigV4-signed) `require_signature`.
macro_rules! signed_endpoint_methods {
    ($mock:ty) => {
        impl $mock {
            /// Refuses calls not signed with SigV4 for this service with AWS's error codes
            /// (`MissingAuthenticationTokenException`, `InvalidSignatureException`, 403), so
            /// a test proves every call of a client was signed. Off by default.
            pub fn require_signature(&self, required: bool) {
                self.endpoint.require_signature(required)
            }
        }
    };
}

pub(crate) use signed_endpoint_methods;
