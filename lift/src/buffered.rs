//! Any body in, Lift's buffered [`Body`] inside: what lets a layer that reads the whole
//! request (threat detection, compliance, residency, idempotency) take the body types of
//! axum and lambda_http as well as Lift's own.
//!
//! A layer generic over the body collects the request body once ([`buffer_request`]), runs
//! its logic on a [`lift::Request`](crate::Request), and calls the inner service through
//! [`Buffered`], which turns the body back into the caller's type and buffers the
//! response. The bounds are `http_body::Body + From<Vec<u8>>`: Lift's `Body`, axum's
//! `Body` and lambda_http's `Body` all have both (lambda_http's has no `From<Bytes>`).

// Residency (the `protection` feature) reads the body but not the response: on its own it
// uses only `buffer_request` and `into_body`.
#![cfg_attr(not(any(feature = "threat", feature = "compliance", feature = "idempotency")), allow(dead_code))]

use std::marker::PhantomData;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http_body_util::BodyExt;
use tower_service::Service;

use crate::body::{Body, Request, Response};
use crate::error::Error;
use crate::BoxError;

/// Collects a request body; a body that fails to arrive is answered 400.
pub(crate) async fn buffer_request<B>(req: http::Request<B>) -> Result<Request, Response>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    match body.collect().await {
        Ok(collected) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Err(err) => {
            let err: BoxError = err.into();
            tracing::warn!(error = %err, "request body not read");
            let request_id =
                crate::Context::of(&http::Request::from_parts(parts, ())).map(|c| c.request_id().to_owned());
            Err(Error::bad_request("the request body could not be read").render(request_id.as_deref()))
        }
    }
}

/// Collects a response body; a body that fails is answered 500 (the cause is logged, never
/// sent).
pub(crate) async fn buffer_response<B>(res: http::Response<B>) -> Response
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = res.into_parts();
    match body.collect().await {
        Ok(collected) => Response::from_parts(parts, Body::from(collected.to_bytes())),
        Err(err) => Error::internal(err).render(None),
    }
}

/// Lift's body into the caller's body type.
pub(crate) fn into_body<B: From<Vec<u8>>>(body: Body) -> B {
    B::from(Vec::from(body.into_bytes()))
}

/// Takes the readied inner service (leaving a clone in its place), buffers the request,
/// runs `logic` on it with the inner service seen through [`Buffered`], and turns the
/// answer's body back into the caller's type. A body that cannot be read is answered 400.
pub(crate) fn around<S, B, ResB, E, F, Fut>(
    inner: &mut S,
    req: http::Request<B>,
    logic: F,
) -> BoxFuture<'static, Result<http::Response<ResB>, E>>
where
    S: Clone + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResB: From<Vec<u8>>,
    F: FnOnce(Buffered<S, B>, Request) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Response, E>> + Send,
{
    let clone = inner.clone();
    let inner = Buffered::new(std::mem::replace(inner, clone));
    Box::pin(async move {
        let res = match buffer_request(req).await {
            Ok(req) => logic(inner, req).await?,
            Err(refused) => refused,
        };
        Ok(res.map(into_body))
    })
}

/// An inner service of any body type, seen as a service of Lift's [`Request`] and
/// [`Response`].
#[derive(Debug, Clone)]
pub(crate) struct Buffered<S, B> {
    inner: S,
    _body: PhantomData<fn(B)>,
}

impl<S, B> Buffered<S, B> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner, _body: PhantomData }
    }
}

impl<S, B, ResB> Service<Request> for Buffered<S, B>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: From<Vec<u8>>,
    ResB: http_body::Body + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let future = self.inner.call(req.map(into_body));
        Box::pin(async move {
            let res = future.await?;
            Ok(buffer_response(res).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    #[tokio::test]
    async fn bodies_cross_both_ways_unchanged() {
        let req = http::Request::post("/p")
            .body(http_body_util::Full::new(bytes::Bytes::from("{\"a\":1}")))
            .unwrap();
        let req = buffer_request(req).await.unwrap();
        assert_eq!(req.body().as_bytes(), b"{\"a\":1}");
        let echo = tower::service_fn(|req: http::Request<Vec<u8>>| async move {
            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                req.into_body(),
            ))))
        });
        let res = Buffered::new(echo).oneshot(req).await.unwrap();
        assert_eq!(res.body().as_bytes(), b"{\"a\":1}");
    }

    #[tokio::test]
    async fn a_failing_request_body_is_a_400_without_the_cause() {
        let body = http_body_util::StreamBody::new(futures_util::stream::once(async {
            Err::<http_body::Frame<bytes::Bytes>, _>(std::io::Error::other("socket reset by 10.0.0.7"))
        }));
        let res = buffer_request(http::Request::post("/p").body(body).unwrap()).await.unwrap_err();
        assert_eq!(res.status(), 400);
        assert!(!String::from_utf8_lossy(res.body().as_bytes()).contains("10.0.0.7"));
    }
}
