//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Extensions;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::algorithm::Quota;
use super::service::Limiter;
use super::store::Verdict;
use super::{FailMode, LimiterUnavailable};
use crate::context::Context;

pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit): waits for the shared limit's
    /// decision, then runs the call and adds the `RateLimit-*` headers, or answers the
    /// refusal.
    pub struct ResponseFuture<S, B>
    where
        S: Service<http::Request<B>>,
    {
        #[pin]
        state: State<S, http::Request<B>, S::Future, S::Response>,
        limiter: Option<Arc<Limiter>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, R, F, Res> {
        Deciding { decision: BoxFuture<'static, Result<Verdict, LimiterUnavailable>>, service: Option<S>, request: Option<R> },
        Running { #[pin] future: F, quota: Option<Quota> },
        Answered { response: Option<Res> },
    }
}

impl<S: Service<http::Request<B>>, B> ResponseFuture<S, B> {
    pub(crate) fn deciding(
        decision: BoxFuture<'static, Result<Verdict, LimiterUnavailable>>,
        service: S,
        request: http::Request<B>,
        limiter: Arc<Limiter>,
    ) -> Self {
        Self {
            state: State::Deciding { decision, service: Some(service), request: Some(request) },
            limiter: Some(limiter),
        }
    }

    pub(crate) fn answered(response: S::Response) -> Self {
        Self { state: State::Answered { response: Some(response) }, limiter: None }
    }
}

impl<S: Service<http::Request<B>>, B> std::fmt::Debug for ResponseFuture<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// A refusal as a problem response, in the inner service's body type.
pub(crate) fn problem_response<ResB: From<Bytes>>(
    err: crate::Error,
    ext: &Extensions,
) -> http::Response<ResB> {
    let request_id = ext.get::<Context>().map(Context::request_id);
    err.render(request_id).map(|body| ResB::from(body.into_bytes()))
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>>,
    ResB: From<Bytes>,
{
    type Output = Result<http::Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Deciding { decision, service, request } => {
                    let verdict = futures_util::ready!(decision.as_mut().poll(cx));
                    let (Some(mut service), Some(request)) = (service.take(), request.take()) else {
                        panic!("rate limit future polled after completion");
                    };
                    let limit = this.limiter.as_ref().map(|l| l.shared.limit).unwrap_or_default();
                    let fail_mode = this.limiter.as_ref().map(|l| l.fail_mode).unwrap_or_default();
                    let quota = match verdict {
                        Ok(Verdict::Admitted(quota)) => quota,
                        Ok(Verdict::Refused(refused)) => {
                            let response = problem_response(refused.into(), request.extensions());
                            this.state.set(State::Answered { response: Some(response) });
                            continue;
                        }
                        Err(unavailable) if fail_mode == FailMode::Open => {
                            tracing::warn!(error = %unavailable, "rate limit not checked; failing open");
                            Quota { limit, remaining: None, reset: Default::default() }
                        }
                        Err(unavailable) => {
                            let response = problem_response(unavailable.into(), request.extensions());
                            this.state.set(State::Answered { response: Some(response) });
                            continue;
                        }
                    };
                    let future = service.call(request);
                    this.state.set(State::Running { future, quota: Some(quota) });
                }
                StateProj::Running { future, quota } => {
                    let mut response = futures_util::ready!(future.poll(cx))?;
                    if let Some(quota) = quota.take() {
                        quota.write(response.headers_mut());
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Answered { response } => {
                    let response = response.take().expect("rate limit future polled after completion");
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
