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
    /// The response future of [`LoadShed`](super::LoadShed): counts the request out and
    /// feeds its latency to the limit when it ends.
    ///
    /// The clock is read only for a call that waits: a response ready at its first poll
    /// never waited on anything and is sampled as fast, without reading the clock (two
    /// clock reads were most of the layer's cost on the happy path). A call that is pending
    /// at its first poll is timed from that poll to its end: its latency leaves out the
    /// work its first poll did before it first waited. Dropped before its end (cancelled),
    /// the request is counted out without a sample.
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
            // `None` once the request is counted out.
            ticket: Option<Ticket>,
            clock: Clock,
        },
        Shed,
    }
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

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn admitted(future: F, ticket: Ticket, sampled: bool) -> Self {
        let clock = if sampled { Clock::NotWaited } else { Clock::Unsampled };
        Self { state: State::Admitted { future, ticket: Some(ticket), clock } }
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
        let StateProj::Admitted { future, ticket, clock } = self.project().state.project() else {
            return Poll::Ready(Err(Box::new(Overloaded::new())));
        };
        let result = match future.poll(cx) {
            Poll::Ready(result) => result.map_err(Into::into),
            Poll::Pending => {
                if let Clock::NotWaited = clock {
                    *clock = Clock::WaitingSince(Instant::now());
                }
                return Poll::Pending;
            }
        };
        if let Some(ticket) = ticket.take() {
            let latency = match *clock {
                Clock::Unsampled => None,
                Clock::NotWaited => Some(Duration::ZERO),
                Clock::WaitingSince(start) => Some(start.elapsed()),
            };
            match latency {
                Some(latency) => ticket.sample(latency, matches!(&result, Err(e) if e.is::<Elapsed>())),
                None => drop(ticket),
            }
        }
        Poll::Ready(result)
    }
}
