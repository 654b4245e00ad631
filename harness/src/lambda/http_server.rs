//! One small HTTP/1 server loop shared by the Runtime API, the Invoke API and the HTTP API
//! front: whole bodies in, whole bodies out.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request with its whole body read.
pub(crate) type Req = http::Request<Bytes>;
/// A response with a whole body.
pub(crate) type Resp = http::Response<Full<Bytes>>;

/// Bodies above this are refused before they are read (more than any Lambda payload).
const READ_LIMIT: usize = 16 * 1024 * 1024;

/// Serves `handler` on `listener` until the returned task is aborted.
pub(crate) fn serve<H, F>(listener: TcpListener, handler: H) -> JoinHandle<()>
where
    H: Fn(Req) -> F + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let resp = match Limited::new(body, READ_LIMIT).collect().await {
                            Ok(body) => handler(http::Request::from_parts(parts, body.to_bytes())).await,
                            Err(_) => json(413, &serde_json::json!({"message": "request body too large"})),
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Binds `addr` (port 0 for any free port).
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// A JSON response.
pub(crate) fn json(status: u16, body: &serde_json::Value) -> Resp {
    bytes(status, "application/json", Bytes::from(body.to_string()))
}

/// A response with `content_type`.
pub(crate) fn bytes(status: u16, content_type: &str, body: Bytes) -> Resp {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body))
        .expect("a valid response")
}
