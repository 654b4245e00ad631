//! The service.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Headers;

/// Adds security headers to every response; built by
/// [`SecurityHeadersLayer`](super::SecurityHeadersLayer).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use lift::middleware::security_headers::SecurityHeadersLayer;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let svc = SecurityHeadersLayer::new().layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }));
/// let res = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(res.headers()["x-content-type-options"], "nosniff");
/// assert_eq!(res.headers()["cache-control"], "no-store");
/// # }
/// ```
#[derive(Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    headers: Arc<Headers>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for SecurityHeaders<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityHeaders").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> SecurityHeaders<S> {
    pub(crate) fn from_parts(inner: S, headers: Arc<Headers>) -> Self {
        Self { inner, headers }
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

impl<S, B, ResB> Service<http::Request<B>> for SecurityHeaders<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>>,
{
    type Response = http::Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (head, body) = req.into_parts();
        let no_store = self.headers.sensitive.as_ref().is_some_and(|sensitive| sensitive(&head));
        let future = self.inner.call(http::Request::from_parts(head, body));
        ResponseFuture::new(future, Arc::clone(&self.headers), no_store)
    }
}
