//! Any body in, Lift's buffered [`Body`] inside: what lets a layer that reads the whole
//! request (threat detection, compliance, residency, idempotency) take the body types of
//! axum and lambda_http as well as Lift's own.
//!
//! A layer generic over the body collects the request body once ([`buffer_request`]), runs
//! its logic on a [`lift::Request`](crate::Request), and calls the inner service through
//! [`Buffered`], which turns the body back into the caller's type and buffers the
//! response. The bounds are `http_body::Body + From<Vec<u8>>`: Lift's `Body`, axum's
//! `Body` and lambda_http's `Body` all have both (lambda_http's has no `From<Bytes>`).
//!
//! Collecting is bounded by a [`BodyLimit`] (6 MiB unless the request carries another one
//! in its extensions): these layers run under axum and lambda_http too, where nothing
//! else bounds what a tower layer buffers (axum's `DefaultBodyLimit` binds its extractors,
//! not layers). The limit is a request extension rather than a setting of each layer so
//! that one value, set once outside the stack, bounds every layer that buffers, the
//! idempotency and residency layers included.

// Residency (the `protection` feature) reads the body but not the response: on its own it
// uses only `buffer_request` and `into_body`.
#![cfg_attr(not(any(feature = "threat", feature = "compliance", feature = "idempotency")), allow(dead_code))]

use std::marker::PhantomData;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_service::Service;

use crate::body::{Body, Request, Response};
use crate::error::Error;
use crate::BoxError;

/// The most bytes of a request body that Lift's layers which read the whole body (threat
/// detection, compliance, residency, idempotency) collect: a larger body is answered
/// `413 Payload Too Large` (`application/problem+json`) before the layer does anything
/// else, so the inner service is not called and nothing is recorded or stored.
///
/// The default, [`BodyLimit::DEFAULT`], is 6 MiB: Lambda's limit for a synchronous
/// invocation's payload, so a function behind API Gateway or a function URL never sees
/// more. Mounted in axum or hyper, those layers are the only bound on what they buffer;
/// put another limit in the request extensions, outside those layers, to change it. Set it
/// where the service is built, never from the request: whoever sets it decides how much
/// memory one request may take.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "threat")]
/// # fn main() {
/// use axum::{routing::post, Extension, Router};
/// use lift::security::threat::ThreatLayer;
/// use lift::BodyLimit;
///
/// let app: Router = Router::new()
///     .route("/notes", post(|body: String| async move { body }))
///     .layer(ThreatLayer::new())
///     // Added last, so outermost: the threat layer sees the limit.
///     .layer(Extension(BodyLimit::new(256 * 1024)));
/// # let _ = app;
/// # }
/// # #[cfg(not(feature = "threat"))]
/// # fn main() {}
/// ```
///
/// In a `tower::ServiceBuilder` (lambda_http), insert it with
/// `.map_request(|mut req: lambda_http::Request| { req.extensions_mut().insert(BodyLimit::new(n)); req })`
/// before the layers that read the body. In Lift's [`App`](crate::App) the router puts
/// the app's own limit ([`App::body_limit`](crate::App::body_limit)) in every request that
/// carries none, so the layers admit what the app admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyLimit(usize);

impl BodyLimit {
    /// 6 MiB, Lambda's limit for a synchronous invocation's payload.
    pub const DEFAULT: BodyLimit = BodyLimit(6 * 1024 * 1024);

    /// A limit of `bytes`; a body of exactly that size is collected.
    pub const fn new(bytes: usize) -> Self {
        Self(bytes)
    }

    /// The limit in bytes.
    pub const fn bytes(self) -> usize {
        self.0
    }

    /// The limit in force for a request: its extension, else the default.
    fn of<B>(req: &http::Request<B>) -> Self {
        req.extensions().get::<BodyLimit>().copied().unwrap_or_default()
    }
}

impl Default for BodyLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Collects a request body up to the request's [`BodyLimit`]: a larger body is answered
/// 413, one that fails to arrive 400.
pub(crate) async fn buffer_request<B>(req: http::Request<B>) -> Result<Request, Response>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let limit = BodyLimit::of(&req).bytes();
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // A body that says it is too large is refused before a byte of it is read.
    let too_large = |n: u64| n > limit as u64;
    if declared.is_some_and(too_large) || too_large(body.size_hint().lower()) {
        return Err(too_large_response(parts, limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Err(err) if err.is::<LengthLimitError>() => Err(too_large_response(parts, limit)),
        Err(err) => {
            tracing::warn!(error = %err, "request body not read");
            Err(refusal(parts, Error::bad_request("the request body could not be read")))
        }
    }
}

fn too_large_response(parts: http::request::Parts, limit: usize) -> Response {
    tracing::info!(limit, "request body over the limit refused");
    refusal(parts, Error::payload_too_large(limit))
}

/// A refusal as problem+json, with the request id when the request has a context.
fn refusal(parts: http::request::Parts, err: Error) -> Response {
    let request_id =
        crate::Context::of(&http::Request::from_parts(parts, ())).map(|c| c.request_id().to_owned());
    err.render(request_id.as_deref())
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
/// answer's body back into the caller's type. A body over the request's [`BodyLimit`] is
/// answered 413 and one that cannot be read 400, without calling `logic`.
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

    fn post<B>(body: B, limit: Option<usize>) -> http::Request<B> {
        let mut req = http::Request::post("/p").body(body).unwrap();
        if let Some(limit) = limit {
            req.extensions_mut().insert(BodyLimit::new(limit));
        }
        req
    }

    /// A body of `len` bytes in chunks of 1 KiB, with no size known in advance.
    fn streamed(len: usize) -> impl http_body::Body<Data = bytes::Bytes, Error = Infallible> {
        let chunks = (0..len).step_by(1024).map(move |at| {
            Ok::<_, Infallible>(http_body::Frame::data(bytes::Bytes::from(vec![b'x'; (len - at).min(1024)])))
        });
        http_body_util::StreamBody::new(futures_util::stream::iter(chunks.collect::<Vec<_>>()))
    }

    #[track_caller]
    fn assert_too_large(res: &Response, limit: usize) {
        assert_eq!(res.status(), 413);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let text = String::from_utf8_lossy(res.body().as_bytes()).into_owned();
        assert!(text.contains(&format!("the request body is larger than {limit} bytes")), "{text}");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_a_413_at_the_limit_pass() {
        let full = |n: usize| http_body_util::Full::new(bytes::Bytes::from(vec![b'x'; n]));
        assert_eq!(buffer_request(post(full(100), Some(100))).await.unwrap().body().len(), 100);
        assert_too_large(&buffer_request(post(full(101), Some(100))).await.unwrap_err(), 100);
        // Without a size hint the body is read up to the limit, then refused.
        assert_eq!(buffer_request(post(streamed(4096), Some(4096))).await.unwrap().body().len(), 4096);
        assert_too_large(&buffer_request(post(streamed(4097), Some(4096))).await.unwrap_err(), 4096);
        assert_too_large(&buffer_request(post(streamed(1 << 20), Some(4096))).await.unwrap_err(), 4096);
        // A declared length over the limit is refused before the body is read.
        let mut lying = post(streamed(10), Some(100));
        lying.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("101"));
        assert_too_large(&buffer_request(lying).await.unwrap_err(), 100);
        // And a declared length under the limit does not let a longer body through.
        let mut short = post(streamed(2048), Some(1024));
        short.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("10"));
        assert_too_large(&buffer_request(short).await.unwrap_err(), 1024);
    }

    #[tokio::test]
    async fn the_default_limit_is_6_mib() {
        let limit = 6 * 1024 * 1024;
        assert_eq!(BodyLimit::default().bytes(), limit);
        assert_eq!(buffer_request(post(streamed(limit), None)).await.unwrap().body().len(), limit);
        assert_too_large(&buffer_request(post(streamed(limit + 1), None)).await.unwrap_err(), limit);
    }

    #[tokio::test]
    async fn around_refuses_before_the_logic_runs() {
        let echo = tower::service_fn(|req: http::Request<Vec<u8>>| async move {
            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                req.into_body(),
            ))))
        });
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = ran.clone();
        let mut inner = echo;
        let res: http::Response<Vec<u8>> =
            around(&mut inner, post(streamed(2048), Some(1024)), move |_, req| {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                async move { Ok::<_, Infallible>(Response::new(req.into_body())) }
            })
            .await
            .unwrap();
        assert_eq!(res.status(), 413);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "the logic never ran");
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
