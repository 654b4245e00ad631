//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::retry::budget::Budget;
use tower_service::Service;

use super::copy::RequestCopy;
use super::layer::Policy;
use super::{ClassifyRetry, Retryable};

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    pub struct ResponseFuture<S, B, C, Bg>
    where
        S: Service<http::Request<B>>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        // The pristine request, for the next attempts.
        copy: Option<RequestCopy<B>>,
        // The request of the next attempt, rebuilt before waiting for it. Boxed, like the
        // timer, so the future stays small for the first attempt, which rarely needs them.
        next: Option<Box<http::Request<B>>>,
        policy: Arc<Policy<C, Bg>>,
        attempt: u32,
        idempotent: bool,
        deadline: Option<Instant>,
        // When the current attempt started; tracked only when there is a deadline.
        started: Option<Instant>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        Waiting { sleep: Pin<Box<Sleep>> },
        Readying,
    }
}

impl<S, B, C, Bg> ResponseFuture<S, B, C, Bg>
where
    S: Service<http::Request<B>>,
{
    pub(crate) fn new(
        future: S::Future,
        service: S,
        copy: Option<RequestCopy<B>>,
        policy: Arc<Policy<C, Bg>>,
        idempotent: bool,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            state: State::Calling { future },
            service,
            copy,
            next: None,
            policy,
            attempt: 1,
            idempotent,
            started: deadline.map(|_| Instant::now()),
            deadline,
        }
    }
}

impl<S, B, C, Bg> std::fmt::Debug for ResponseFuture<S, B, C, Bg>
where
    S: Service<http::Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("attempt", &self.attempt).finish_non_exhaustive()
    }
}

impl<S, B, C, Bg> Future for ResponseFuture<S, B, C, Bg>
where
    S: Service<http::Request<B>>,
    B: Clone,
    C: ClassifyRetry<S::Response, S::Error>,
    Bg: Budget,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    let policy = &**this.policy;
                    if *this.attempt >= policy.max_attempts {
                        return Poll::Ready(result);
                    }
                    let allowed = match policy.classify.classify(&result) {
                        Retryable::No => false,
                        Retryable::IfIdempotent => *this.idempotent,
                        Retryable::Yes => true,
                    };
                    if !allowed {
                        return Poll::Ready(result);
                    }
                    let delay = policy.backoff.delay(*this.attempt);
                    if let (Some(deadline), Some(started)) = (*this.deadline, *this.started) {
                        // Neither the wait nor an attempt as long as the last one may end
                        // past the deadline.
                        let now = Instant::now();
                        if now + delay + now.saturating_duration_since(started) > deadline {
                            return Poll::Ready(result);
                        }
                    }
                    if !policy.budget.withdraw() {
                        return Poll::Ready(result);
                    }
                    let Some(next) = this.copy.as_ref().and_then(RequestCopy::to_request) else {
                        return Poll::Ready(result);
                    };
                    *this.next = Some(Box::new(next));
                    policy.retries.fetch_add(1, Ordering::Relaxed);
                    if delay == Duration::ZERO {
                        this.state.set(State::Readying);
                    } else {
                        this.state.set(State::Waiting { sleep: Box::pin(tokio::time::sleep(delay)) });
                    }
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    if let Err(err) = ready!(this.service.poll_ready(cx)) {
                        return Poll::Ready(Err(err));
                    }
                    // The copy is only needed while attempts are left after this one.
                    if *this.attempt + 1 >= this.policy.max_attempts {
                        *this.copy = None;
                    }
                    let Some(request) = this.next.take() else {
                        unreachable!("a retry is only scheduled with its request rebuilt");
                    };
                    *this.attempt += 1;
                    *this.started = this.deadline.map(|_| Instant::now());
                    let future = this.service.call(*request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}
