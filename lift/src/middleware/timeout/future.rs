//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::Elapsed;
use crate::BoxError;

pin_project! {
    /// The response future of [`Timeout`](super::Timeout).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        // Created on the first pending poll: most responses never need a timer.
        #[pin]
        sleep: Option<Sleep>,
        deadline: Instant,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, deadline: Instant) -> Self {
        Self { inner: Some(inner), sleep: None, deadline }
    }

    pub(crate) fn elapsed() -> Self {
        Self { inner: None, sleep: None, deadline: Instant::now() }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Elapsed::new().into()));
        };
        if let Poll::Ready(result) = inner.poll(cx) {
            this.inner.set(None);
            return Poll::Ready(result.map_err(Into::into));
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        let fired = this.sleep.as_pin_mut().is_some_and(|sleep| sleep.poll(cx).is_ready());
        if fired {
            // Drop the work now, not when the caller drops this future.
            this.inner.set(None);
            return Poll::Ready(Err(Elapsed::new().into()));
        }
        Poll::Pending
    }
}
