//! Fetching a JWK set over HTTP(S) with hyper-util's client and rustls.

use std::sync::Arc;
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
    client: HttpsClient,
}

impl HttpFetch {
    /// A client; `native_roots` loads the system's CA roots (needed for https URLs only).
    pub(crate) fn new(native_roots: bool) -> Result<Arc<Self>, ConfigError> {
        // ring is named explicitly: with several rustls providers in the dependency graph
        // there is no process default to fall back on.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Tls(e.to_string()))?;
        let tls = if native_roots {
            use hyper_rustls::ConfigBuilderExt;
            builder.with_native_roots().map_err(|e| ConfigError::Tls(e.to_string()))?.with_no_client_auth()
        } else {
            builder.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Arc::new(Self { client }))
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
                    .client
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
