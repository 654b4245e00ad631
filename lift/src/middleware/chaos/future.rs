//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::BoxError;

pin_project! {
    /// The response future of [`Chaos`](super::Chaos): the inner call, or the injected
    /// failure, held for the injected latency.
    pub struct ResponseFuture<F, T> {
        #[pin]
        kind: Kind<F, T>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, T> {
        Called { #[pin] future: F, delay: Option<Duration> },
        Held { #[pin] sleep: Sleep, result: Option<Result<T, BoxError>> },
        Failed { error: Option<BoxError> },
    }
}

impl<F, T> ResponseFuture<F, T> {
    pub(crate) fn called(future: F, delay: Option<Duration>) -> Self {
        Self { kind: Kind::Called { future, delay } }
    }

    pub(crate) fn failed(error: BoxError, delay: Option<Duration>) -> Self {
        match delay {
            Some(delay) => {
                Self { kind: Kind::Held { sleep: tokio::time::sleep(delay), result: Some(Err(error)) } }
            }
            None => Self { kind: Kind::Failed { error: Some(error) } },
        }
    }
}

impl<F, T> std::fmt::Debug for ResponseFuture<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Called { future, delay } => {
                    let result = ready!(future.poll(cx)).map_err(Into::into);
                    match delay.take() {
                        None => return Poll::Ready(result),
                        Some(delay) => {
                            kind.set(Kind::Held { sleep: tokio::time::sleep(delay), result: Some(result) })
                        }
                    }
                }
                KindProj::Held { sleep, result } => {
                    ready!(sleep.poll(cx));
                    return Poll::Ready(result.take().expect("polled after completion"));
                }
                KindProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            }
        }
    }
}
