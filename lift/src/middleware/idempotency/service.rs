//! The service.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, Method, StatusCode};
use tower_service::Service;

use super::key::{keyed_payload_hash, payload_hash, record_key, IdempotentRequest, KeySource, Scope};
use super::record::{now_secs, Existing, Lock, NewRecord, RecordStore, StoredBody};
use super::{
    IdempotencyUnavailable, InvalidKey, KeyInUse, PayloadMismatch, PrincipalRequired, ResponseCipher,
    ResponseErased, ResponseFuture,
};
use crate::body::{Body, Request, Response};
use crate::buffered::around;
use crate::context::{CommittedAnswer, Context};
use crate::BoxError;

/// The header that marks a replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The header that marks a replay without the body: the request was completed, and its
/// response was larger than the layer stores
/// ([`max_response_bytes`](super::IdempotencyBuilder::max_response_bytes)).
pub const IDEMPOTENT_RESPONSE_OMITTED: HeaderName = HeaderName::from_static("idempotent-response-omitted");

/// Everything an [`IdempotencyLayer`](super::IdempotencyLayer) and its services share.
pub(crate) struct Config {
    pub(crate) store: RecordStore,
    pub(crate) key_source: KeySource,
    pub(crate) methods: Vec<Method>,
    pub(crate) ttl: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) replay_headers: Vec<HeaderName>,
    pub(crate) require_key: bool,
    pub(crate) allow_anonymous: bool,
    pub(crate) max_response_bytes: usize,
    pub(crate) cipher: Option<Arc<dyn ResponseCipher>>,
    pub(crate) payload_key: Option<Arc<[u8]>>,
    pub(crate) unrouted: Unrouted,
}

/// The keyed requests one layer saw without the router's [`MatchedRoute`]: it warns at the
/// first and counts them all.
///
/// [`MatchedRoute`]: crate::context::MatchedRoute
#[derive(Debug, Default)]
pub(crate) struct Unrouted {
    count: AtomicU64,
    warned: AtomicBool,
}

impl Unrouted {
    /// Records a request without a matched route; the first one logs a warning.
    fn note(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "a keyed request reached the idempotency layer without a matched route: the layer \
                 is most likely mounted app-wide; mount it per route, innermost (see \
                 lift::middleware for the order), or its records name their route by the method alone"
            );
        }
    }

    /// How many requests came without a matched route.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Makes POST and PATCH requests idempotent by key: the first request runs, repeats get
/// its stored response; built by [`IdempotencyLayer`](super::IdempotencyLayer).
///
/// Refusals (401, 409, 410, 422, 400, 503) are answered here as problem responses; the
/// inner service's errors pass through unchanged (after the record is removed).
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> Idempotency<S> {
    pub(crate) fn from_parts(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResB> Service<http::Request<B>> for Idempotency<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + From<Vec<u8>> + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResB: http_body::Body + From<Vec<u8>> + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Into<BoxError>,
{
    type Response = http::Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error, ResB>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !self.config.methods.contains(req.method()) {
            return Box::pin(self.inner.call(req));
        }
        let config = Arc::clone(&self.config);
        around(&mut self.inner, req, move |inner, req| run(config, inner, req))
    }
}

async fn run<S>(config: Arc<Config>, mut inner: S, req: Request) -> Result<Response, S::Error>
where
    S: Service<Request, Response = Response>,
{
    let request_id = Context::of(&req).map(|c| c.request_id().to_owned());
    let answer = |err: crate::Error| Ok(err.render(request_id.as_deref()));
    let Some(scope) = Scope::of(&req, config.allow_anonymous) else {
        warn_unscoped();
        return answer(PrincipalRequired.into());
    };
    let key = match config.key_source.extract(&req) {
        Ok(Some(key)) => key,
        Ok(None) if config.require_key => return answer(InvalidKey::missing().into()),
        Ok(None) => return not_replayed(inner.call(req).await),
        Err(detail) => return answer(InvalidKey::malformed(detail).into()),
    };
    // For whoever reads the table: the route's pattern, never the path, whose ids (a
    // patient's, a customer's) the record would keep in the clear for its whole life.
    let route = match req.extensions().get::<crate::context::MatchedRoute>() {
        Some(matched) => format!("{} {}", req.method(), matched.as_str()),
        None => {
            config.unrouted.note();
            req.method().to_string()
        }
    };
    let pk = record_key(&scope, req.method(), req.uri().path(), &key);
    // The query is part of what the key promises: the same key and body with another
    // `?amount=` is another request.
    let hash = match &config.payload_key {
        Some(key) => keyed_payload_hash(key, req.uri().query(), req.body().as_bytes()),
        None => payload_hash(req.uri().query(), req.body().as_bytes()),
    };
    // A record from before the payload key was set holds the plain digest.
    let matches = |stored: &str| {
        stored == hash
            || (config.payload_key.is_some()
                && !stored.starts_with("k:")
                && stored == payload_hash(req.uri().query(), req.body().as_bytes()))
    };
    let lock_id = uuid::Uuid::new_v4().to_string();
    let record = NewRecord {
        pk: &pk,
        tenant: &scope.tenant,
        route: &route,
        payload_hash: &hash,
        lock_id: &lock_id,
        expires_at: lock_expiry(&req, config.lock_timeout),
    };
    match config.store.lock(&record).await {
        Ok(Lock::Acquired) => {}
        Ok(Lock::Held(existing)) if !matches(existing.payload_hash()) => {
            return answer(PayloadMismatch.into())
        }
        Ok(Lock::Held(Existing::InProgress { .. })) => return answer(KeyInUse.into()),
        Ok(Lock::Held(Existing::Completed { response, sealed, omitted, audit_classes, .. })) => {
            // The handler does not run: the audit entry of the replay names the data classes
            // it named, since the replayed answer holds the same data.
            #[cfg(feature = "audit")]
            if let Some(handle) = crate::security::audit::AuditHandle::of(&req) {
                for class in audit_classes {
                    handle.data_class(class);
                }
            }
            #[cfg(not(feature = "audit"))]
            let _ = audit_classes;
            return match replay(&config, &scope.tenant, response, sealed, omitted).await {
                Ok(response) => Ok(response),
                Err(err) => answer(err),
            };
        }
        Err(failure) => {
            tracing::warn!(error = %failure, "idempotency lock not taken");
            return answer(IdempotencyUnavailable::new(failure.0).into());
        }
    }
    let mut req = req;
    req.extensions_mut().insert(IdempotentRequest::new(&pk));
    // Copied before the handler consumes the request: the cipher reads it after.
    let parts = config.cipher.as_ref().map(|_| copy_request(&req));
    // The audit layer outside, if any: the record keeps the data classes the handler names.
    #[cfg(feature = "audit")]
    let audit = crate::security::audit::AuditHandle::of(&req).cloned();
    let result = not_replayed(inner.call(req).await);
    // A failure answered after the handler's effects were written (an audit entry that
    // could not be stored) carries the handler's own answer: that is the outcome to keep,
    // or a retry would run the operation a second time.
    let committed = match &result {
        Ok(res) if !keeps(res.status()) => {
            res.extensions().get::<CommittedAnswer<Body>>().and_then(CommittedAnswer::take)
        }
        _ => None,
    };
    let outcome = match &committed {
        Some(answer) => Some(answer),
        None => result.as_ref().ok(),
    };
    let keep = match outcome {
        Some(res) if keeps(res.status()) => Some(res),
        _ => None,
    };
    let stored = match (keep, &config.cipher, &parts) {
        // The operation ran: removing the record would let a retry run it again, so the
        // record completes without the body and its replay says the body was left out.
        (Some(res), _, _) if res.body().len() > config.max_response_bytes => {
            tracing::warn!(
                bytes = res.body().len(),
                "response too large to store; the record is kept without its body"
            );
            Some((res, StoredBody::Omitted))
        }
        (Some(res), Some(cipher), Some(head)) => match cipher.seal(head, res.body().as_bytes()).await {
            Ok(body) => Some((res, StoredBody::Sealed(body))),
            Err(err) => {
                // The operation ran: releasing the lock would let a retry run it again, so
                // the lock stays until it expires, as when the future is dropped.
                tracing::warn!(error = %err, "idempotent response not sealed; the lock stays until it expires");
                return result;
            }
        },
        (Some(res), _, _) => Some((res, StoredBody::Clear(res.body().as_bytes()))),
        (None, _, _) => None,
    };
    match stored {
        Some((res, body)) => {
            let expires_at = now_secs() + config.ttl.as_secs().max(1);
            #[cfg(feature = "audit")]
            let audit_classes = audit.map(|handle| handle.data_classes()).unwrap_or_default();
            #[cfg(not(feature = "audit"))]
            let audit_classes = Vec::new();
            let completion = config.store.complete(
                &pk,
                &lock_id,
                res,
                body,
                &config.replay_headers,
                &audit_classes,
                expires_at,
            );
            match completion.await {
                Ok(true) => {}
                Ok(false) => tracing::warn!("idempotency lock expired before the response was stored"),
                Err(failure) => tracing::warn!(error = %failure, "idempotent response not stored"),
            }
        }
        None => {
            if let Err(failure) = config.store.release(&pk, &lock_id).await {
                tracing::warn!(error = %failure, "idempotency record not removed; it expires with the lock");
            }
        }
    }
    result
}

/// The answer of a request that ran, without an `Idempotent-Replayed` header an inner
/// service set: only this layer says an answer is a replay, and the audit trail outside
/// records what it says.
fn not_replayed<E>(mut result: Result<Response, E>) -> Result<Response, E> {
    if let Ok(res) = &mut result {
        res.headers_mut().remove(IDEMPOTENT_REPLAYED);
    }
    result
}

/// Whether a response is the outcome to replay: a success or a redirection, the answers
/// of an operation that ran. A refusal (401, 403), a validation error, a conflict, a 429 or
/// a server failure changed nothing: storing it would let one caller's refusal answer
/// another's retry, so the record is removed and a retry runs for real.
fn keeps(status: StatusCode) -> bool {
    status.is_success() || status.is_redirection()
}

/// The stored response, opened when it was sealed, marked as replayed.
///
/// A response whose body was too large to store replays its status and `Location` with an
/// empty body and `Idempotent-Response-Omitted: true`: the request was done, and a retry
/// must not read the missing body as a failure and run it again under a new key.
async fn replay(
    config: &Config,
    tenant: &str,
    mut response: Response,
    sealed: bool,
    omitted: bool,
) -> Result<Response, crate::Error> {
    if omitted {
        // No body: headers describing one would describe nothing.
        response.headers_mut().remove(http::header::CONTENT_TYPE);
        response.headers_mut().remove(http::header::CONTENT_LANGUAGE);
        *response.body_mut() = crate::Body::empty();
        response.headers_mut().insert(IDEMPOTENT_RESPONSE_OMITTED, HeaderValue::from_static("true"));
    } else if sealed {
        let Some(cipher) = &config.cipher else {
            tracing::warn!("a sealed idempotency record, and no cipher to open it");
            return Err(IdempotencyUnavailable::new("sealed record without a cipher").into());
        };
        match cipher.open(tenant, response.body().as_bytes()).await {
            Ok(Some(body)) => *response.body_mut() = crate::Body::from(body),
            Ok(None) => return Err(ResponseErased.into()),
            Err(err) => {
                tracing::warn!(error = %err, "idempotent response not opened");
                return Err(IdempotencyUnavailable::new("the stored response cannot be opened").into());
            }
        }
    }
    response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

/// A copy of the request (head, body and context) for the cipher to read after the
/// handler has taken the request.
fn copy_request(req: &Request) -> Request {
    let mut head = http::Request::new(req.body().clone());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.headers_mut() = req.headers().clone();
    *head.extensions_mut() = req.extensions().clone();
    head
}

/// Says once per process that a request reached the layer unauthenticated: the layer is
/// most likely mounted outside authentication.
fn warn_unscoped() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "a request reached the idempotency layer without a principal and was refused: \
             mount it inside authentication and authorization, or allow anonymous requests"
        );
    });
}

/// When an in-progress lock frees itself: at the invocation's deadline (a crashed or
/// timed-out invocation cannot hold it longer), else after the lock timeout.
fn lock_expiry(req: &Request, lock_timeout: Duration) -> u64 {
    match Context::of(req).and_then(Context::deadline) {
        Some(deadline) => {
            let at = deadline.duration_since(UNIX_EPOCH).unwrap_or_default();
            at.as_secs() + u64::from(at.subsec_nanos() > 0)
        }
        None => now_secs() + lock_timeout.as_secs().max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn locks_end_at_the_deadline_rounded_up() {
        let mut req = http::Request::new(crate::Body::empty());
        let mut ctx = Context::new("r");
        let deadline = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        ctx.set_deadline(deadline);
        req.extensions_mut().insert(ctx);
        assert_eq!(lock_expiry(&req, Duration::from_secs(60)), 1_700_000_001);
        let bare = http::Request::new(crate::Body::empty());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!((now + 59..=now + 61).contains(&lock_expiry(&bare, Duration::from_secs(60))));
    }

    /// A DynamoDB client for a port nothing listens on: the lock fails at once (503).
    fn unreachable() -> aws_sdk_dynamodb::Client {
        crate::test_support::unreachable_dynamodb()
    }

    /// Mounted app-wide, the layer sees no matched route: it counts each keyed request and
    /// warns at the first, and keeps answering as before.
    #[tokio::test]
    async fn keyed_requests_without_a_matched_route_are_counted_and_warned_once() {
        use tower::{Layer as _, ServiceExt as _};

        let layer =
            super::super::IdempotencyLayer::builder().client(unreachable()).table("t").build().unwrap();
        let svc = layer.layer(tower::service_fn(|_req: Request| async {
            Ok::<_, std::convert::Infallible>(Response::default())
        }));
        let request = |key: Option<&str>, route: Option<&str>| {
            let mut b = http::Request::builder().method("POST").uri("/payments");
            if let Some(key) = key {
                b = b.header("idempotency-key", key);
            }
            let mut req = b.body(Body::from("{}")).unwrap();
            let mut ctx = Context::new("r");
            ctx.set_principal(crate::Principal::new("alice", "acme"));
            req.extensions_mut().insert(ctx);
            if let Some(route) = route {
                req.extensions_mut().insert(crate::context::MatchedRoute(route.into()));
            }
            req
        };
        assert_eq!(layer.unrouted_requests(), 0);
        assert!(!layer.config.unrouted.warned.load(Ordering::Relaxed));
        for _ in 0..2 {
            let res = svc.clone().oneshot(request(Some("k-1"), None)).await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is down: behaviour unchanged"
            );
        }
        assert_eq!(layer.unrouted_requests(), 2);
        assert!(layer.config.unrouted.warned.load(Ordering::Relaxed));
        svc.clone().oneshot(request(Some("k-1"), Some("/payments"))).await.unwrap();
        svc.clone().oneshot(request(None, None)).await.unwrap();
        assert_eq!(layer.unrouted_requests(), 2, "routed and unkeyed requests are not counted");
    }

    /// An inner service cannot have its answer taken for a replay: the audit trail marks
    /// replays from the header, so the layer removes one it did not set.
    #[tokio::test]
    async fn a_replay_header_from_inside_is_removed() {
        use tower::{Layer as _, ServiceExt as _};

        let layer =
            super::super::IdempotencyLayer::builder().client(unreachable()).table("t").build().unwrap();
        let svc = layer.layer(tower::service_fn(|_req: Request| async {
            let mut res = Response::default();
            res.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            Ok::<_, std::convert::Infallible>(res)
        }));
        let mut req = http::Request::post("/payments").body(Body::from("{}")).unwrap();
        let mut ctx = Context::new("r");
        ctx.set_principal(crate::Principal::new("alice", "acme"));
        req.extensions_mut().insert(ctx);
        req.extensions_mut().insert(crate::context::MatchedRoute("/payments".into()));
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(!res.headers().contains_key(IDEMPOTENT_REPLAYED), "{:?}", res.headers());
    }

    #[test]
    fn only_successes_and_redirections_are_kept() {
        for kept in [StatusCode::OK, StatusCode::CREATED, StatusCode::ACCEPTED, StatusCode::SEE_OTHER] {
            assert!(keeps(kept), "{kept}");
        }
        for refused in [
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(!keeps(refused), "{refused}");
        }
    }
}
