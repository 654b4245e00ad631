//! The built app as one `tower::Service`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http::{Extensions, HeaderValue};
use tower::{Service, ServiceExt};

use super::route::Route;
use crate::body::{Request, Response};
use crate::context::{Context, Invocation, REQUEST_ID_HEADER};

/// The service an [`App`](super::App) builds: it inserts the [`Context`] and the app's
/// state into each request, runs the layers and routes, and echoes `X-Request-Id`.
///
/// It never fails: every error is already a problem response.
#[derive(Clone)]
pub struct AppService {
    inner: Arc<Inner>,
}

struct Inner {
    route: Route,
    region: Option<String>,
    extenders: Vec<super::Extender>,
}

impl std::fmt::Debug for AppService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppService").field("region", &self.inner.region).finish()
    }
}

impl AppService {
    pub(super) fn new(route: Route, region: Option<String>, extenders: Vec<super::Extender>) -> Self {
        Self { inner: Arc::new(Inner { route, region, extenders }) }
    }

    fn prepare(&self, req: &mut Request) {
        let ctx = Context::from_parts(
            req.headers(),
            req.extensions().get::<Invocation>(),
            self.inner.region.as_deref(),
        );
        let ext: &mut Extensions = req.extensions_mut();
        for extend in &self.inner.extenders {
            extend(ext);
        }
        ext.insert(ctx);
    }
}

impl Service<Request> for AppService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        self.prepare(&mut req);
        let request_id = Context::of(&req).map(Context::shared_request_id).unwrap_or_default();
        let route = self.inner.route.clone();
        Box::pin(async move {
            let mut res = route.oneshot(req).await?;
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                res.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            Ok(res)
        })
    }
}
