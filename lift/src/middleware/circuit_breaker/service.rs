//! The service.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::key::{Global, KeyFn};
use super::registry::{Breakers, Registry};
use super::{ClassifyFailure, ResponseFuture, ServerErrors};
use crate::BoxError;

/// Rejects calls with a [`lift::Error`](crate::Error) carrying
/// [`CircuitOpen`](super::CircuitOpen) while the breaker of their key is
/// open; built by [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use lift::middleware::circuit_breaker::{CircuitBreakerLayer, CircuitOpen};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let layer = CircuitBreakerLayer::builder().minimum_calls(1).build().unwrap();
/// let failing = layer.layer(service_fn(|_req: http::Request<()>| async {
///     Err::<http::Response<()>, _>("downstream down")
/// }));
/// assert!(failing.clone().oneshot(http::Request::new(())).await.is_err());
/// let err = failing.oneshot(http::Request::new(())).await.unwrap_err();
/// assert!(lift::Error::find::<CircuitOpen>(&*err).is_some());
/// # }
/// ```
pub struct CircuitBreaker<S, F = Global, K = (), C = ServerErrors> {
    inner: S,
    key: F,
    classify: C,
    registry: Arc<Registry<K>>,
}

impl<S: Clone, F: Clone, K, C: Clone> Clone for CircuitBreaker<S, F, K, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key: self.key.clone(),
            classify: self.classify.clone(),
            registry: Arc::clone(&self.registry),
        }
    }
}

impl<S: std::fmt::Debug, F, K, C> std::fmt::Debug for CircuitBreaker<S, F, K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner` in a new breaker with the default configuration (see
    /// [`CircuitBreakerBuilder`](super::CircuitBreakerBuilder)).
    pub fn new(inner: S) -> Self {
        let layer = super::CircuitBreakerLayer::builder().build().expect("the defaults are valid");
        tower_layer::Layer::layer(&layer, inner)
    }
}

impl<S, F, K, C> CircuitBreaker<S, F, K, C> {
    pub(crate) fn from_parts(inner: S, key: F, classify: C, registry: Arc<Registry<K>>) -> Self {
        Self { inner, key, classify, registry }
    }

    /// A read handle on the breakers, for metrics.
    pub fn breakers(&self) -> Breakers<K> {
        Breakers::new(Arc::clone(&self.registry))
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, F, C> Service<http::Request<B>> for CircuitBreaker<S, F, F::Key, C>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    F: KeyFn<B>,
    C: ClassifyFailure<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, F::Key, C>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let key = self.key.key(&req);
        if self.key.is_unscoped(&key) {
            self.registry.unscoped.note();
        }
        match self.registry.breaker(&key, F::CONSTANT).admit() {
            Ok(permit) => ResponseFuture::called(self.inner.call(req), permit, self.classify.clone()),
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}
