//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::limit::Ticket;
use super::Overloaded;
use crate::middleware::timeout::Elapsed;
use crate::BoxError;

pin_project! {
    /// The response future of [`LoadShed`](super::LoadShed): feeds the request's latency
    /// to the limit when it ends, and holds the request's place until it is dropped, as
    /// tower's `ConcurrencyLimit` holds its permit.
    ///
    /// The clock is read only for a call that waits: a response ready at its first poll
    /// never waited on anything and is sampled as fast, without reading the clock (two
    /// clock reads were most of the layer's cost on the happy path). A call that is pending
    /// at its first poll is timed from that poll to its end: its latency leaves out the
    /// work its first poll did before it first waited. Polled again after its end, it is
    /// not sampled again. Dropped before its end (cancelled), the request is counted out
    /// without a sample.
    ///
    /// Counting out at the drop, not at the end, keeps the ticket out of the way of the
    /// response: taking it out at the end made the compiler copy the response three more
    /// times (callgrind: 163 instructions a call over tower's `LoadShed`, now 92).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Admitted {
            #[pin]
            future: F,
            place: Place,
        },
        Shed,
    }
}

/// An admitted request's place: its ticket (counted out when dropped) and its clock.
struct Place {
    ticket: Ticket,
    clock: Clock,
}

/// Where the latency of a request stands.
#[derive(Clone, Copy)]
enum Clock {
    /// A critical request, or one already sampled: not sampled (again).
    Unsampled,
    /// Not polled yet, or ready at its first poll: no clock read.
    NotWaited,
    /// Pending at a poll: timed from the first pending poll.
    WaitingSince(Instant),
}

impl Place {
    /// Feeds how the call ended to the limit, once; a critical one is not sampled. The
    /// ticket stays: the request is counted out when the future is dropped.
    #[inline(always)]
    fn end(&mut self, timed_out: bool) {
        let latency = match self.clock {
            Clock::NotWaited => Duration::ZERO,
            Clock::WaitingSince(start) => start.elapsed(),
            Clock::Unsampled => return,
        };
        self.clock = Clock::Unsampled;
        self.ticket.sample(latency, timed_out);
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn admitted(future: F, ticket: Ticket, sampled: bool) -> Self {
        let clock = if sampled { Clock::NotWaited } else { Clock::Unsampled };
        Self { state: State::Admitted { future, place: Place { ticket, clock } } }
    }

    #[inline]
    pub(crate) fn shed() -> Self {
        Self { state: State::Shed }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("shed", &matches!(self.state, State::Shed))
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let StateProj::Admitted { future, place } = self.project().state.project() else {
            return Poll::Ready(Err(Box::new(Overloaded::new())));
        };
        match future.poll(cx) {
            Poll::Pending => {
                if let Clock::NotWaited = place.clock {
                    place.clock = Clock::WaitingSince(Instant::now());
                }
                Poll::Pending
            }
            Poll::Ready(Ok(response)) => {
                place.end(false);
                Poll::Ready(Ok(response))
            }
            Poll::Ready(Err(err)) => {
                let err: BoxError = err.into();
                place.end(err.is::<Elapsed>());
                Poll::Ready(Err(err))
            }
        }
    }
}
