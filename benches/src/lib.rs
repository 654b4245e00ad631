//! Shared pieces of Lift's benches: the bare no-op service every middleware is measured
//! against, and a realistic request.
//!
//! Convention: a bench file measures each middleware in its own criterion group named after
//! the middleware (the key in `budgets.toml`), with two functions: `bare` (the no-op service
//! alone) and `layer` (the middleware over the same no-op service), in the same run.
#![warn(missing_docs)]

use std::convert::Infallible;

use lift::{Body, Request, Response};

/// The no-op inner service: answers 200 with an empty body, at once.
pub fn noop() -> impl tower::Service<
    Request,
    Response = Response,
    Error = Infallible,
    Future = std::future::Ready<Result<Response, Infallible>>,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_req: Request| std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty()))))
}

/// A GET request with a small set of realistic headers.
pub fn get_request() -> Request {
    http::Request::builder()
        .method("GET")
        .uri("/payments/pay_123")
        .header("host", "api.example.com")
        .header("user-agent", "lift-bench/1.0")
        .header("x-request-id", "bench-request-1")
        .header(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .body(Body::empty())
        .expect("valid request")
}
