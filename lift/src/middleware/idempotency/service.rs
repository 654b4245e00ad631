//! The service.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, Method, StatusCode};
use tower_service::Service;

use super::key::{payload_hash, record_key, tenant_of, KeySource};
use super::record::{now_secs, Existing, Lock, NewRecord, RecordStore};
use super::{IdempotencyUnavailable, InvalidKey, KeyInUse, PayloadMismatch, ResponseFuture};
use crate::body::{Request, Response};
use crate::context::Context;

/// The header that marks a replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Everything an [`IdempotencyLayer`](super::IdempotencyLayer) and its services share.
pub(crate) struct Config {
    pub(crate) store: RecordStore,
    pub(crate) key_source: KeySource,
    pub(crate) methods: Vec<Method>,
    pub(crate) ttl: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) replay_headers: Vec<HeaderName>,
    pub(crate) require_key: bool,
    pub(crate) max_response_bytes: usize,
}

/// Makes POST and PATCH requests idempotent by key: the first request runs, repeats get
/// its stored response; built by [`IdempotencyLayer`](super::IdempotencyLayer).
///
/// Refusals (409, 422, 400, 503) are answered here as problem responses; the inner
/// service's errors pass through unchanged (after the record is removed).
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

impl<S> Service<Request> for Idempotency<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if !self.config.methods.contains(req.method()) {
            return Box::pin(self.inner.call(req));
        }
        // Keep the service that `poll_ready` readied for the call after the lock.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(run(Arc::clone(&self.config), inner, req))
    }
}

async fn run<S>(config: Arc<Config>, mut inner: S, req: Request) -> Result<Response, S::Error>
where
    S: Service<Request, Response = Response>,
{
    let request_id = Context::of(&req).map(|c| c.request_id().to_owned());
    let answer = |err: crate::Error| Ok(err.render(request_id.as_deref()));
    let key = match config.key_source.extract(&req) {
        Ok(Some(key)) => key,
        Ok(None) if config.require_key => return answer(InvalidKey::missing().into()),
        Ok(None) => return inner.call(req).await,
        Err(detail) => return answer(InvalidKey::malformed(detail).into()),
    };
    let tenant = tenant_of(&req);
    let path = req.uri().path();
    let route = format!("{} {path}", req.method());
    let pk = record_key(&tenant, req.method(), path, &key);
    let hash = payload_hash(req.body().as_bytes());
    let lock_id = uuid::Uuid::new_v4().to_string();
    let record = NewRecord {
        pk: &pk,
        tenant: &tenant,
        route: &route,
        payload_hash: &hash,
        lock_id: &lock_id,
        expires_at: lock_expiry(&req, config.lock_timeout),
    };
    match config.store.lock(&record).await {
        Ok(Lock::Acquired) => {}
        Ok(Lock::Held(existing)) if existing.payload_hash() != hash => return answer(PayloadMismatch.into()),
        Ok(Lock::Held(Existing::InProgress { .. })) => return answer(KeyInUse.into()),
        Ok(Lock::Held(Existing::Completed { mut response, .. })) => {
            response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            return Ok(response);
        }
        Err(failure) => {
            tracing::warn!(error = %failure, "idempotency lock not taken");
            return answer(IdempotencyUnavailable::new(failure.0).into());
        }
    }
    let result = inner.call(req).await;
    let keep = match &result {
        Ok(res) if res.body().len() > config.max_response_bytes => {
            tracing::warn!(
                bytes = res.body().len(),
                "response too large to store; idempotency record removed"
            );
            None
        }
        Ok(res) if keeps(res.status()) => Some(res),
        _ => None,
    };
    match keep {
        Some(res) => {
            let expires_at = now_secs() + config.ttl.as_secs().max(1);
            match config.store.complete(&pk, &lock_id, res, &config.replay_headers, expires_at).await {
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

/// Whether a response is the outcome to replay: not a server failure, and not a
/// "come back later" (429), after which the client must be able to retry for real.
fn keeps(status: StatusCode) -> bool {
    !status.is_server_error() && status != StatusCode::TOO_MANY_REQUESTS
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

    #[test]
    fn server_failures_and_429_are_not_kept() {
        assert!(keeps(StatusCode::CREATED) && keeps(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(!keeps(StatusCode::INTERNAL_SERVER_ERROR) && !keeps(StatusCode::TOO_MANY_REQUESTS));
    }
}
