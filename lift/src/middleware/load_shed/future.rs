//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::{AdaptiveLimit, Overloaded};
use crate::middleware::timeout::Elapsed;
use crate::BoxError;

pin_project! {
    /// The response future of [`LoadShed`](super::LoadShed): counts the request out and
    /// feeds its latency to the limit when it ends.
    ///
    /// The clock is read only for a call that waits: a response ready at its first poll
    /// never waited on anything and is sampled as fast, without reading the clock (two
    /// clock reads were most of the layer's cost on the happy path). A call that is pending
    /// at its first poll is timed from that poll to its end: its latency leaves out the
    /// work its first poll did before it first waited.
    pub struct ResponseFuture<F> {
        #[pin]
        future: Option<F>,
        guard: Option<InFlight>,
    }
}

/// One admitted request; dropping it without a sample (cancellation) just counts it out.
struct InFlight {
    limit: Arc<AdaptiveLimit>,
    clock: Clock,
    sampled: bool,
}

/// Where the latency of a request stands.
#[derive(Clone, Copy)]
enum Clock {
    /// A critical request: never sampled.
    Unsampled,
    /// Not polled yet, or ready at its first poll: no clock read.
    NotWaited,
    /// Pending at a poll: timed from the first pending poll.
    WaitingSince(Instant),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.sampled {
            self.limit.release();
        }
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn admitted(future: F, limit: Arc<AdaptiveLimit>, sampled: bool) -> Self {
        let clock = if sampled { Clock::NotWaited } else { Clock::Unsampled };
        Self { future: Some(future), guard: Some(InFlight { limit, clock, sampled: false }) }
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

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            return Poll::Ready(Err(Box::new(Overloaded::new())));
        };
        let result = match future.poll(cx) {
            Poll::Ready(result) => result.map_err(Into::into),
            Poll::Pending => {
                if let Some(guard) = this.guard.as_mut().filter(|g| matches!(g.clock, Clock::NotWaited)) {
                    guard.clock = Clock::WaitingSince(Instant::now());
                }
                return Poll::Pending;
            }
        };
        if let Some(mut guard) = this.guard.take() {
            let latency = match guard.clock {
                Clock::Unsampled => None,
                Clock::NotWaited => Some(Duration::ZERO),
                Clock::WaitingSince(start) => Some(start.elapsed()),
            };
            if let Some(latency) = latency {
                let timed_out = matches!(&result, Err(e) if e.is::<Elapsed>());
                // `sample` counts the request out itself.
                guard.limit.sample(latency, timed_out);
                guard.sampled = true;
            }
        }
        Poll::Ready(result)
    }
}
