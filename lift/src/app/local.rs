//! Serving the app on a local TCP port for development.

use std::future::Future;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::{App, AppService};
use crate::body::{Body, Response};
use crate::error::Error;

impl App {
    /// Serves the app on a local address until the process ends (development only: plain
    /// HTTP/1.1, no TLS).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// lift::App::new().serve_local("127.0.0.1:3000".parse().unwrap()).await
    /// # }
    /// ```
    pub async fn serve_local(self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        self.serve_listener(listener, std::future::pending()).await
    }

    /// Serves the app on a bound listener until `shutdown` completes.
    pub async fn serve_listener(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let service = self.into_service();
        tokio::pin!(shutdown);
        loop {
            let (stream, _peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut shutdown => return Ok(()),
            };
            let service = service.clone();
            tokio::spawn(async move {
                let hyper_service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let service = service.clone();
                    async move { Ok::<_, std::convert::Infallible>(serve_one(service, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_service);
                if let Err(err) = conn.await {
                    tracing::debug!(error = %err, "local connection ended with an error");
                }
            });
        }
    }
}

async fn serve_one(service: AppService, req: hyper::Request<Incoming>) -> Response {
    let limit = local_body_limit();
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Error::payload_too_large(limit).into_response(),
    };
    let req = http::Request::from_parts(parts, Body::from(bytes));
    match service.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// The transport-level cap while reading a local body; the app's own limit applies after.
fn local_body_limit() -> usize {
    crate::config::Env::process()
        .get("LIFT_LOCAL_MAX_BODY")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10 * 1024 * 1024)
}

/// The address `App::serve_local` binds by default: `LIFT_LOCAL_ADDR`, else 127.0.0.1:3000.
pub fn default_local_addr() -> SocketAddr {
    crate::config::Env::process()
        .get("LIFT_LOCAL_ADDR")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)))
}
