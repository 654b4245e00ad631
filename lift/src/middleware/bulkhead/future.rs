//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::compartments::Permits;
use super::BulkheadFull;
use crate::BoxError;

pin_project! {
    /// The response future of [`Bulkhead`](super::Bulkhead): waits for permits if it must,
    /// then runs the call and frees the permits when the call ends or the future is dropped.
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R, S::Future>,
        permits: Option<Permits>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, R, F> {
        // Boxed: the request and a service kept for the wait would make every response
        // future, and so every call on the happy path, carry and move them.
        Waiting { waiting: Box<Waiting<S, R>> },
        Running { #[pin] future: F },
        Rejected { error: Option<BulkheadFull> },
    }
}

/// A call waiting for its permits, with the readied service and the request to call it with.
struct Waiting<S, R> {
    acquire: BoxFuture<'static, Result<Permits, BulkheadFull>>,
    service: Option<S>,
    request: Option<R>,
}

impl<S: Service<R>, R> ResponseFuture<S, R> {
    #[inline]
    pub(crate) fn running(future: S::Future, permits: Permits) -> Self {
        Self { state: State::Running { future }, permits: Some(permits) }
    }

    pub(crate) fn waiting(
        acquire: BoxFuture<'static, Result<Permits, BulkheadFull>>,
        service: S,
        request: R,
    ) -> Self {
        Self {
            state: State::Waiting {
                waiting: Box::new(Waiting { acquire, service: Some(service), request: Some(request) }),
            },
            permits: None,
        }
    }

    pub(crate) fn rejected(error: BulkheadFull) -> Self {
        Self { state: State::Rejected { error: Some(error) }, permits: None }
    }
}

impl<S: Service<R>, R> std::fmt::Debug for ResponseFuture<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("permits", &self.permits.is_some()).finish_non_exhaustive()
    }
}

impl<S, R> Future for ResponseFuture<S, R>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting { waiting } => {
                    let Waiting { acquire, service, request } = &mut **waiting;
                    let permits = match acquire.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(full)) => return Poll::Ready(Err(full.into())),
                        Poll::Ready(Ok(permits)) => permits,
                    };
                    let (Some(mut service), Some(request)) = (service.take(), request.take()) else {
                        return Poll::Ready(Err("bulkhead future polled after completion".into()));
                    };
                    *this.permits = Some(permits);
                    let future = service.call(request);
                    this.state.set(State::Running { future });
                }
                StateProj::Running { future } => {
                    let result = futures_util::ready!(future.poll(cx));
                    // Free the slots as soon as the call ends, not when the future is dropped.
                    this.permits.take();
                    return Poll::Ready(result.map_err(Into::into));
                }
                StateProj::Rejected { error } => {
                    let error = error
                        .take()
                        .unwrap_or(BulkheadFull::new(super::Compartment::Global, Default::default()));
                    return Poll::Ready(Err(crate::Error::from(error).into()));
                }
            }
        }
    }
}
