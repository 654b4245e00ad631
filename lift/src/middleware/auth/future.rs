//! The response future of [`Jwt`](super::Jwt).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;

use crate::error::Error;
use crate::BoxError;

pin_project! {
    /// The inner service's future once the request is authenticated, the refusal when it
    /// is not, or both steps boxed when the issuer's keys had to be fetched first.
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Inner { #[pin] future: F },
        Fetching { future: BoxFuture<'static, Result<R, BoxError>> },
        Failed { error: Option<Error> },
    }
}

impl<F, R> ResponseFuture<F, R> {
    pub(crate) fn inner(future: F) -> Self {
        Self { state: State::Inner { future } }
    }

    pub(crate) fn boxed(future: impl Future<Output = Result<R, BoxError>> + Send + 'static) -> Self {
        Self { state: State::Fetching { future: Box::pin(future) } }
    }

    pub(crate) fn failed(error: Error) -> Self {
        Self { state: State::Failed { error: Some(error) } }
    }
}

impl<F, R, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx).map_err(Into::into),
            StateProj::Fetching { future } => future.as_mut().poll(cx),
            StateProj::Failed { error } => {
                Poll::Ready(Err(error.take().map_or_else(|| "polled after completion".into(), Into::into)))
            }
        }
    }
}

impl<F, R> std::fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}
