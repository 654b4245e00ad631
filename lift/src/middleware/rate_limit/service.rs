//! The service.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tower_service::Service;

use super::future::{problem_response, ResponseFuture};
use super::key::{compound_key_with, is_unscoped, RateLimitKey};
use super::store::{SharedLimit, Verdict};
use super::{FailMode, LimiterUnavailable, LocalPrefilter};
use crate::unscoped::Unscoped;

/// Everything a [`RateLimitLayer`](super::RateLimitLayer) and its services share.
pub(crate) struct Limiter {
    pub(crate) keys: Vec<RateLimitKey>,
    /// The leading bits of an IPv6 client address that make its `Ip` key.
    pub(crate) ipv6_prefix: u8,
    pub(crate) prefilter: Option<LocalPrefilter>,
    pub(crate) shared: SharedLimit,
    pub(crate) fail_mode: FailMode,
    /// Requests whose tenant or user key found no principal.
    pub(crate) unscoped: Unscoped,
}

impl Limiter {
    /// Asks the shared limit, and remembers a refusal locally until the reported reset.
    async fn decide(self: Arc<Self>, key: String) -> Result<Verdict, LimiterUnavailable> {
        let verdict = self.shared.decide(&key).await?;
        if let (Verdict::Refused(refused), Some(prefilter)) = (&verdict, &self.prefilter) {
            prefilter.block(&key, refused.retry_after());
        }
        Ok(verdict)
    }
}

/// Limits requests per key against a limit shared through DynamoDB, behind a local
/// pre-filter; built by [`RateLimitLayer`](super::RateLimitLayer).
///
/// Refusals are answered here (429 or, failing closed, 503), as problem responses; the
/// inner service's errors pass through unchanged.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<Limiter>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> RateLimit<S> {
    pub(crate) fn from_parts(inner: S, limiter: Arc<Limiter>) -> Self {
        Self { inner, limiter }
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

impl<S, B, ResB> Service<http::Request<B>> for RateLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>> + Clone,
    ResB: From<Bytes>,
{
    type Response = http::Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (head, body) = req.into_parts();
        let key = compound_key_with(&self.limiter.keys, &head, self.limiter.ipv6_prefix);
        if is_unscoped(&self.limiter.keys, &head) {
            self.limiter.unscoped.note();
        }
        if let Some(prefilter) = &self.limiter.prefilter {
            if let Err(refused) = prefilter.check(&key) {
                return ResponseFuture::answered(problem_response(refused.into(), &head.extensions));
            }
        }
        let req = http::Request::from_parts(head, body);
        let decision: BoxFuture<'static, _> = Box::pin(Arc::clone(&self.limiter).decide(key));
        // Keep the service that `poll_ready` readied for the call after the decision.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::deciding(decision, ready, req, Arc::clone(&self.limiter))
    }
}
