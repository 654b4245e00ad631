//! One small HTTP/1 server loop shared by the Runtime API, the Invoke API and the HTTP API
//! front: whole bodies in, whole bodies out.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
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

/// Marks a request whose body went past the read limit: it reaches a handler that asked for
/// such requests ([`serve_oversized`]) with its headers and an empty body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyTooLarge {
    /// The bytes received before the read stopped, more than the limit.
    pub(crate) read: usize,
}

/// Serves `handler` on `listener` until the returned task is aborted; a body past the read
/// limit is answered 413 without reaching `handler`.
pub(crate) fn serve<H, F>(listener: TcpListener, handler: H) -> JoinHandle<()>
where
    H: Fn(Req) -> F + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    serve_with(listener, handler, false)
}

/// [`serve`], except that a request whose body goes past the read limit reaches `handler`
/// too, marked with [`BodyTooLarge`]: for a server whose answer to it means more than the
/// status (the Runtime API ends the invocation it was for).
pub(crate) fn serve_oversized<H, F>(listener: TcpListener, handler: H) -> JoinHandle<()>
where
    H: Fn(Req) -> F + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    serve_with(listener, handler, true)
}

fn serve_with<H, F>(listener: TcpListener, handler: H, oversized_to_handler: bool) -> JoinHandle<()>
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
                        let (mut parts, body) = req.into_parts();
                        let resp = match read_body(body, READ_LIMIT).await {
                            Ok(body) => handler(http::Request::from_parts(parts, body)).await,
                            Err(Unread::TooLarge(read)) if oversized_to_handler => {
                                parts.extensions.insert(BodyTooLarge { read });
                                handler(http::Request::from_parts(parts, Bytes::new())).await
                            }
                            Err(Unread::TooLarge(_)) => {
                                json(413, &serde_json::json!({"message": "request body too large"}))
                            }
                            Err(Unread::Broken) => json(
                                400,
                                &serde_json::json!({"message": "the request body could not be read"}),
                            ),
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

/// Why a body was not read whole.
enum Unread {
    /// It went past the limit after this many bytes.
    TooLarge(usize),
    /// The connection failed mid-body.
    Broken,
}

/// Reads `body` whole, stopping as soon as it goes past `limit` bytes.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, Unread> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| Unread::Broken)?.into_data() else { continue };
        if buf.len() + data.len() > limit {
            return Err(Unread::TooLarge(buf.len() + data.len()));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
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
