//! HTTP events (API Gateway REST and HTTP APIs, function URLs, ALB) through a tower service.
//!
//! The event is parsed into lambda_http's `LambdaRequest` and converted by lambda_http
//! into an `http::Request`, which becomes a [`crate::Request`] carrying the
//! [`Invocation`] in its extensions. The service's response goes back in the JSON shape
//! of the event's origin. An event that looks like an HTTP event but does not parse is
//! answered with a 400 `application/problem+json` in that shape, never a function error.

mod request;
mod response;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use serde_json::Value;
use tower::{Service, ServiceExt};

use super::detect::EventKind;
use super::error::{EventError, HandlerPanic};
use crate::context::Invocation;
use crate::error::Error;
use crate::{Request, Response};

/// The response shape an HTTP event expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// API Gateway REST API (payload format 1.0).
    V1,
    /// API Gateway HTTP API or function URL (payload format 2.0).
    V2,
    /// Application Load Balancer.
    Alb,
}

impl Origin {
    fn of(kind: EventKind) -> Self {
        match kind {
            EventKind::ApiGatewayV1 => Self::V1,
            EventKind::Alb => Self::Alb,
            _ => Self::V2,
        }
    }
}

/// Runs an HTTP event through the service and returns the origin's response JSON.
pub(crate) async fn handle<S>(
    service: S,
    kind: EventKind,
    payload: Value,
    invocation: &Invocation,
) -> Result<Value, EventError>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send,
{
    let origin = Origin::of(kind);
    let request_id = invocation.request_id.as_str();
    let parsed = request::parse(origin, payload).and_then(|p| request::into_lift(p, invocation));
    let response = match parsed {
        Ok(req) => call(service, req, request_id).await,
        Err(detail) => {
            tracing::warn!(kind = %kind, detail = %detail, "malformed http event");
            Error::bad_request(detail)
                .with_type("https://lift.dev/problems/malformed-event", "Malformed event")
                .render(Some(request_id))
        }
    };
    response::into_origin(origin, response).await
}

/// Calls the service; a panic becomes a 500 problem response.
async fn call<S>(service: S, req: Request, request_id: &str) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send,
{
    match AssertUnwindSafe(service.oneshot(req)).catch_unwind().await {
        Ok(Ok(res)) => res,
        Ok(Err(never)) => match never {},
        Err(_) => Error::internal(HandlerPanic).render(Some(request_id)),
    }
}
