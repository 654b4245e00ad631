//! The service.

use std::borrow::Cow;
use std::task::{Context as TaskContext, Poll};

use http::Method;
use tower_service::Service;

use super::endpoint::{answer, response, Endpoint};
use super::{HealthChecks, ResponseFuture};

/// Answers `GET`/`HEAD` on `/health`, `/health/live` and `/health/ready` and passes every
/// other request to the inner service; built by [`HealthLayer`](super::HealthLayer).
///
/// Works over any `http` service whose response body can be made from a `String`
/// (`lift::Body`, `axum::body::Body`, `lambda_http::Body`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use lift::middleware::health::{Health, HealthChecks};
/// use tower::{service_fn, ServiceExt};
///
/// let app = service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("app")))
/// });
/// let svc = Health::new(app, HealthChecks::builder().build());
/// let live = http::Request::get("/health/live").body(()).unwrap();
/// assert_eq!(svc.clone().oneshot(live).await.unwrap().status(), 200);
/// let other = http::Request::get("/payments").body(()).unwrap();
/// assert_eq!(svc.oneshot(other).await.unwrap().body(), "app");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Health<S> {
    inner: S,
    checks: HealthChecks,
    base: Cow<'static, str>,
}

impl<S> Health<S> {
    /// Wraps `inner`, answering the endpoints under `/health`.
    pub fn new(inner: S, checks: HealthChecks) -> Self {
        Self::from_parts(inner, checks, Cow::Borrowed("/health"))
    }

    pub(crate) fn from_parts(inner: S, checks: HealthChecks, base: Cow<'static, str>) -> Self {
        Self { inner, checks, base }
    }

    /// The checks.
    pub fn checks(&self) -> &HealthChecks {
        &self.checks
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

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Health<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: From<String> + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let Some(endpoint) = Endpoint::of(&self.base, req.method(), req.uri().path()) else {
            return ResponseFuture::inner(self.inner.call(req));
        };
        let head = req.method() == Method::HEAD;
        let checks = self.checks.clone();
        ResponseFuture::health(Box::pin(async move {
            let (status, body) = answer(&checks, endpoint).await;
            response(status, body, head)
        }))
    }
}
