//! Routes: handlers, per-route layers, and what a handler may return.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http::StatusCode;
use serde::Serialize;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};

use crate::body::{json_response, Json, Request, Response};
use crate::context::Context;
use crate::error::Error;
use crate::BoxError;

use super::describe::Requirement;

/// What a handler or layer may answer with.
pub trait IntoResponse {
    /// Converts into a response.
    fn into_response(self) -> Response;

    /// Converts into a response for the request with this id; errors carry the id.
    fn into_response_for(self, request_id: Option<&str>) -> Response
    where
        Self: Sized,
    {
        let _ = request_id;
        self.into_response()
    }
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.render(None)
    }

    fn into_response_for(self, request_id: Option<&str>) -> Response {
        self.render(request_id)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut res = Response::default();
        *res.status_mut() = self;
        res
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self.0)
    }
}

impl<T: Serialize> IntoResponse for (StatusCode, Json<T>) {
    fn into_response(self) -> Response {
        json_response(self.0, &self.1 .0)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }

    fn into_response_for(self, request_id: Option<&str>) -> Response {
        match self {
            Ok(ok) => ok.into_response_for(request_id),
            Err(err) => err.into_response_for(request_id),
        }
    }
}

/// A type-erased, cloneable service that answers every request (errors are responses).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// async fn slow(_req: lift::Request) -> lift::Response { lift::Response::default() }
/// let route = lift::app::Route::from_handler(slow).layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(1)));
/// let app = lift::App::new().get("/slow", route);
/// ```
#[derive(Clone)]
pub struct Route {
    service: BoxCloneSyncService<Request, Response, Infallible>,
    // The role and scope checks wrapped around this route, outermost first, for
    // [`App::routes`](crate::App::routes). `None` when there are none, so the per-request
    // clone of an app's service costs nothing extra.
    requirements: Option<Arc<[Requirement]>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Route")
    }
}

impl Route {
    /// Wraps a service that never fails.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        Self { service: BoxCloneSyncService::new(service), requirements: None }
    }

    /// The role and scope requirements wrapped around this route, outermost first.
    pub(crate) fn requirements(&self) -> &[Requirement] {
        self.requirements.as_deref().unwrap_or_default()
    }

    /// A route from an async handler.
    pub fn from_handler<H, Fut, R>(handler: H) -> Self
    where
        H: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        Self::new(tower::service_fn(move |req: Request| {
            let request_id = Context::of(&req).map(Context::shared_request_id);
            let fut = handler(req);
            async move { Ok::<_, Infallible>(fut.await.into_response_for(request_id.as_deref())) }
        }))
    }

    /// Wraps the route in a tower layer. The layer's errors become problem responses:
    /// a [`lift::Error`](crate::Error) as it is, tower's `Elapsed` as 504, `Overloaded` as 503,
    /// anything else as 500.
    pub fn layer<L>(self, layer: L) -> Route
    where
        L: Layer<Route> + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<BoxError> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        let mut requirements: Vec<Requirement> = required_by(&layer).into_iter().collect();
        requirements.extend_from_slice(self.requirements());
        let mut route = Route::new(Layered { inner: layer.layer(self), failed: None });
        if !requirements.is_empty() {
            route.requirements = Some(requirements.into());
        }
        route
    }
}

/// The requirement a layer enforces, when it is a role or scope check.
pub(crate) fn required_by<L: 'static>(layer: &L) -> Option<Requirement> {
    #[cfg(feature = "auth")]
    if let Some(require) =
        (layer as &dyn std::any::Any).downcast_ref::<crate::middleware::auth::RequireLayer>()
    {
        return Some(require.requirement());
    }
    let _ = layer;
    None
}

/// A layer's service with its errors rendered as problem responses, as [`Route::layer`]
/// and [`App::layer`](crate::App::layer) mount it.
///
/// It is called in place: the app clones its service once per request where the request
/// enters, and each layer runs on that clone. An error from the layer's `poll_ready` (a
/// closed buffer, say) is kept and becomes the answer of the call that follows, since a
/// route never fails.
struct Layered<S> {
    inner: S,
    failed: Option<BoxError>,
}

impl<S> std::fmt::Debug for Layered<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layered").field("failed", &self.failed.is_some()).finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for Layered<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), failed: None }
    }
}

impl<S> Service<Request> for Layered<S>
where
    S: Service<Request>,
    S::Response: IntoResponse,
    S::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = LayeredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        if self.failed.is_none() {
            if let Err(err) = std::task::ready!(self.inner.poll_ready(cx)) {
                self.failed = Some(err.into());
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let request_id = Context::of(&req).map(Context::shared_request_id);
        match self.failed.take() {
            Some(err) => LayeredFuture {
                state: State::Failed { response: Some(Error::from_boxed(err).render(request_id.as_deref())) },
            },
            None => LayeredFuture { state: State::Called { inner: self.inner.call(req), request_id } },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Layered`] service.
    struct LayeredFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The layer's future, and the request id its error answer carries.
        Called { #[pin] inner: F, request_id: Option<Arc<str>> },
        // The answer to a call after `poll_ready` failed.
        Failed { response: Option<Response> },
    }
}

impl<F> std::fmt::Debug for LayeredFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayeredFuture")
    }
}

impl<F, R, E> Future for LayeredFuture<F>
where
    F: Future<Output = Result<R, E>>,
    R: IntoResponse,
    E: Into<BoxError>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { inner, request_id } => {
                Poll::Ready(Ok(match std::task::ready!(inner.poll(cx)) {
                    Ok(res) => res.into_response(),
                    Err(err) => Error::from_boxed(err.into()).render(request_id.as_deref()),
                }))
            }
            StateProj::Failed { response } => {
                Poll::Ready(Ok(response.take().expect("a layered route's future polled after completion")))
            }
        }
    }
}

impl Service<Request> for Route {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.service.call(req)
    }
}

/// Anything that can serve a route: an async handler `Fn(Request) -> impl Future`, or a [`Route`].
pub trait IntoRoute {
    /// Converts into a route.
    fn into_route(self) -> Route;
}

impl IntoRoute for Route {
    fn into_route(self) -> Route {
        self
    }
}

impl<H, Fut, R> IntoRoute for H
where
    H: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn into_route(self) -> Route {
        Route::from_handler(self)
    }
}
