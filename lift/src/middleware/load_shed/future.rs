//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::{AdaptiveLimit, Overloaded};
use crate::middleware::timeout::Elapsed;
use crate::BoxError;

pin_project! {
    /// The response future of [`LoadShed`](super::LoadShed): counts the request out and
    /// feeds its latency to the limit when it ends.
    pub struct ResponseFuture<F> {
        #[pin]
        future: Option<F>,
        guard: Option<InFlight>,
    }
}

/// One admitted request; dropping it without a sample (cancellation) just counts it out.
struct InFlight {
    limit: Arc<AdaptiveLimit>,
    // `None` for critical requests, which are not sampled.
    start: Option<Instant>,
    sampled: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.sampled {
            self.limit.release();
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn admitted(future: F, limit: Arc<AdaptiveLimit>, sampled: bool) -> Self {
        let start = sampled.then(Instant::now);
        Self { future: Some(future), guard: Some(InFlight { limit, start, sampled: false }) }
    }

    pub(crate) fn shed() -> Self {
        Self { future: None, guard: None }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("shed", &self.future.is_none()).finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            return Poll::Ready(Err(Box::new(Overloaded::new())));
        };
        let result = ready!(future.poll(cx)).map_err(Into::into);
        if let Some(mut guard) = this.guard.take() {
            if let Some(start) = guard.start {
                let timed_out = matches!(&result, Err(e) if e.is::<Elapsed>());
                // `sample` counts the request out itself.
                guard.limit.sample(start.elapsed(), timed_out);
                guard.sampled = true;
            }
        }
        Poll::Ready(result)
    }
}
