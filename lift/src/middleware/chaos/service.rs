//! The service.

use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::switch::Failure;
use super::{ChaosSwitch, InjectedFault, ResponseFuture};
use crate::BoxError;

/// Injects the faults of its [`ChaosSwitch`] into the requests it passes to `S`; while the
/// switch is off it only forwards them.
#[derive(Debug, Clone)]
pub struct Chaos<S> {
    inner: S,
    switch: ChaosSwitch,
}

impl<S> Chaos<S> {
    /// Wraps `inner`, injecting what `switch` says.
    pub fn new(inner: S, switch: ChaosSwitch) -> Self {
        Self { inner, switch }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<http::Request<B>> for Chaos<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !self.switch.is_on() {
            return ResponseFuture::called(self.inner.call(req), None);
        }
        let draw = self.switch.draw();
        match draw.failure {
            None => ResponseFuture::called(self.inner.call(req), draw.delay),
            Some(Failure::Exception) => ResponseFuture::failed(InjectedFault.into(), draw.delay),
            Some(Failure::Status(status)) => ResponseFuture::failed(
                crate::Error::new(status)
                    .with_detail("fault injected by chaos")
                    .with_cause(InjectedFault)
                    .into(),
                draw.delay,
            ),
        }
    }
}
