//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use super::state::{Breaker, Permit};
use super::{CircuitOpen, ClassifyFailure};
use crate::BoxError;

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker): records the
    /// outcome in the breaker when the call ends.
    pub struct ResponseFuture<F, K, C> {
        #[pin]
        kind: Kind<F>,
        permit: Option<Permit<K>>,
        classify: Option<C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Rejected { error: Option<CircuitOpen> },
    }
}

impl<F, K, C> ResponseFuture<F, K, C> {
    pub(crate) fn called(future: F, permit: Permit<K>, classify: C) -> Self {
        Self { kind: Kind::Called { future }, permit: Some(permit), classify: Some(classify) }
    }

    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        Self { kind: Kind::Rejected { error: Some(error) }, permit: None, classify: None }
    }
}

impl<F, K, C> std::fmt::Debug for ResponseFuture<F, K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, K, C, T, E> Future for ResponseFuture<F, K, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: ClassifyFailure<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Rejected { error } => {
                let open = error.take().unwrap_or_else(|| CircuitOpen::new(Default::default()));
                Poll::Ready(Err(crate::Error::from(open).into()))
            }
            KindProj::Called { future } => {
                let result = ready!(future.poll(cx));
                if let (Some(permit), Some(classify)) = (this.permit.take(), this.classify.as_ref()) {
                    Breaker::complete(permit, classify.is_failure(&result));
                }
                Poll::Ready(result.map_err(Into::into))
            }
        }
    }
}
