//! Fetching a JWK set over HTTP(S) with hyper-util's client and rustls.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::error::{ConfigError, FetchError};

/// The largest JWK set Lift reads (a JWKS is a few KiB).
pub(crate) const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Something that fetches the bytes at a URL: the HTTP client, or a fake in unit tests.
pub(crate) trait Fetch: Send + Sync + 'static {
    fn fetch<'a>(&'a self, url: &'a http::Uri, timeout: Duration)
        -> BoxFuture<'a, Result<Bytes, FetchError>>;
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The HTTP(S) client shared by every issuer of a verifier.
pub(crate) struct HttpFetch {
    native_roots: bool,
    /// Built at the first fetch, so the system's CA roots are read when a key set is first
    /// needed, not during a Lambda function's init.
    client: OnceLock<HttpsClient>,
}

impl HttpFetch {
    /// A client; `native_roots` trusts the system's CA roots (needed for https URLs only).
    pub(crate) fn new(native_roots: bool) -> Result<Arc<Self>, ConfigError> {
        Ok(Arc::new(Self { native_roots, client: OnceLock::new() }))
    }

    fn client(&self) -> Result<&HttpsClient, FetchError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let tls = crate::tls::roots(self.native_roots, &[])
            .and_then(crate::tls::client_config)
            .map_err(|e| FetchError::Transport { url: "(tls set-up)".to_owned(), reason: e.to_string() })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(self.client.get_or_init(|| Client::builder(TokioExecutor::new()).build(connector)))
    }
}

impl Fetch for HttpFetch {
    fn fetch<'a>(
        &'a self,
        url: &'a http::Uri,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Bytes, FetchError>> {
        Box::pin(async move {
            let name = || url.to_string();
            let request = http::Request::get(url.clone())
                .header(http::header::ACCEPT, "application/json")
                .header(http::header::USER_AGENT, concat!("lift/", env!("CARGO_PKG_VERSION")))
                .body(Empty::<Bytes>::new())
                .map_err(|e| FetchError::Transport { url: name(), reason: e.to_string() })?;
            let exchange = async {
                let response = self
                    .client()?
                    .request(request)
                    .await
                    .map_err(|e| FetchError::Transport { url: name(), reason: error_chain(&e) })?;
                if response.status() != http::StatusCode::OK {
                    return Err(FetchError::Status { url: name(), status: response.status().as_u16() });
                }
                let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                    .collect()
                    .await
                    .map_err(|_| FetchError::Invalid { url: name() })?;
                Ok(body.to_bytes())
            };
            tokio::time::timeout(timeout, exchange).await.map_err(|_| FetchError::Timeout { url: name() })?
        })
    }
}

/// The error and its sources in one line: hyper's top-level message alone says little.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
