//! Alerts to a webhook: one JSON POST per incident, over https (rustls) or plain http.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

use super::error::InvalidConfig;
use super::incident::Incident;

/// How long an alert may take by default.
pub const DEFAULT_ALERT_TIMEOUT: Duration = Duration::from_secs(2);

/// Posts each incident as JSON to a webhook.
///
/// `https://` URLs are verified with rustls against the system's CA roots plus any
/// [`root_certificates_pem`](Self::root_certificates_pem) (a private CA). Plain `http://`
/// stays accepted, as before https was: it is meant for a collector inside the VPC or a
/// local relay to a chat or paging service, never for a webhook across the internet, since
/// an incident names the client IP, the tenant and what was detected.
///
/// An alert that fails or times out is logged; it never fails the request.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::security::threat::WebhookAlert;
///
/// let alert = WebhookAlert::new("https://alerts.example.com/hooks/threat")?
///     .timeout(Duration::from_millis(500));
/// let relay = WebhookAlert::new("http://alerts.internal:8080/hooks/threat")?;
/// # Ok::<(), lift::security::threat::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct WebhookAlert {
    url: http::Uri,
    timeout: Duration,
    extra_roots: Vec<CertificateDer<'static>>,
    /// Built at the first alert, so a function that never alerts never reads the system's
    /// CA roots (a cold-start cost); shared by the clones of this alert.
    client: Arc<OnceLock<WebhookClient>>,
}

type WebhookClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

impl WebhookAlert {
    /// An alert to `url`, an absolute `https://` or `http://` URL.
    ///
    /// # Errors
    /// [`InvalidConfig`] when the URL is not an absolute `https` or `http` URL, or TLS cannot
    /// be set up.
    pub fn new(url: &str) -> Result<Self, InvalidConfig> {
        let uri: http::Uri =
            url.parse().map_err(|_| InvalidConfig::new("threat", "the webhook url is not a url"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(InvalidConfig::new(
                "threat",
                "the webhook url must be an absolute https:// or http:// url",
            ));
        }
        Ok(Self {
            url: uri,
            timeout: DEFAULT_ALERT_TIMEOUT,
            extra_roots: Vec::new(),
            client: Arc::new(OnceLock::new()),
        })
    }

    /// Also trusts the CA certificates in `pem` (one or more `CERTIFICATE` blocks) for
    /// `https` webhooks, besides the system's roots: for a webhook behind a private CA.
    ///
    /// # Errors
    /// [`InvalidConfig`] when `pem` holds no certificate or one rustls cannot use.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, InvalidConfig> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| InvalidConfig::new("threat", "the webhook ca is not valid pem"))?;
        if certs.is_empty() {
            return Err(InvalidConfig::new("threat", "the webhook ca holds no certificate"));
        }
        crate::tls::roots(false, &certs)
            .map_err(|_| InvalidConfig::new("threat", "the webhook ca is not a usable certificate"))?;
        self.extra_roots.extend(certs);
        self.client = Arc::new(OnceLock::new());
        Ok(self)
    }

    /// How long an alert may take (default [`DEFAULT_ALERT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The webhook URL.
    pub fn url(&self) -> &http::Uri {
        &self.url
    }

    /// Posts the incident; returns whether the webhook answered 2xx in time. Failures are
    /// logged, never returned.
    pub async fn send(&self, incident: &Incident) -> bool {
        // The bounded snapshot, as the audit trail stores it.
        let body = incident.to_json().into_bytes();
        let request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else { return false };
        let client = match self.client.get() {
            Some(client) => client,
            None => match client(&self.extra_roots) {
                Ok(built) => self.client.get_or_init(|| built),
                Err(err) => {
                    tracing::warn!(error = %err, url = %self.url, "threat alert not sent");
                    return false;
                }
            },
        };
        let call = async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            // Read the body so the connection can be reused.
            let _ = response.into_body().collect().await;
            Ok::<_, String>(status)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(status)) if status.is_success() => true,
            Ok(Ok(status)) => {
                tracing::warn!(status = status.as_u16(), url = %self.url, "threat alert refused");
                false
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, url = %self.url, "threat alert not sent");
                false
            }
            Err(_) => {
                tracing::warn!(url = %self.url, timeout_ms = self.timeout.as_millis() as u64, "threat alert timed out");
                false
            }
        }
    }
}

/// The webhook client: https verified against the system's roots and `extra_roots`
/// (rustls with ring, named explicitly as the JWKS client does), and plain http.
fn client(extra_roots: &[CertificateDer<'static>]) -> Result<WebhookClient, InvalidConfig> {
    let roots = crate::tls::roots(true, extra_roots)
        .map_err(|_| InvalidConfig::new("threat", "the webhook ca is not a usable certificate"))?;
    let tls =
        crate::tls::client_config(roots).map_err(|_| InvalidConfig::new("threat", "tls cannot be set up"))?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_http_urls_are_accepted_and_nothing_else() {
        assert!(WebhookAlert::new("http://127.0.0.1:9/x").is_ok());
        assert!(WebhookAlert::new("https://alerts.example/x").is_ok());
        assert!(WebhookAlert::new("/relative").is_err());
        assert!(WebhookAlert::new("ftp://alerts.example/x").is_err());
        assert!(WebhookAlert::new("https:///x").is_err());
    }

    /// A webhook over TLS on 127.0.0.1 with a fresh self-signed certificate: its URL, the
    /// certificate as PEM, and the bodies it received.
    async fn tls_webhook() -> (String, String, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key.into())
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends the handshake here.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service =
                        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            async move {
                                let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec());
                                let _ = tx.send(body.unwrap_or_default());
                                Ok::<_, std::convert::Infallible>(http::Response::new(
                                    Full::new(Bytes::new()),
                                ))
                            }
                        });
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        (format!("https://127.0.0.1:{port}/hooks/threat"), certified.cert.pem(), rx)
    }

    fn incident() -> Incident {
        let req = http::Request::post("/pay").header("user-agent", "sqlmap/1.7").body(()).unwrap();
        Incident::capture(&req, "203.0.113.9".parse().ok(), Default::default())
    }

    #[tokio::test]
    async fn an_https_webhook_is_sent_over_tls_to_a_server_the_configured_ca_vouches_for() {
        let (url, ca, mut received) = tls_webhook().await;
        let alert = WebhookAlert::new(&url).unwrap().root_certificates_pem(ca.as_bytes()).unwrap();
        assert!(alert.send(&incident()).await, "the webhook answered 2xx over tls");
        let body: serde_json::Value = serde_json::from_slice(&received.recv().await.unwrap()).unwrap();
        assert_eq!(body["client_ip"], "203.0.113.9");
        assert_eq!(body["path"], "/pay");
    }

    #[tokio::test]
    async fn an_https_webhook_with_an_untrusted_certificate_gets_nothing() {
        let (url, _, mut received) = tls_webhook().await;
        assert!(!WebhookAlert::new(&url).unwrap().send(&incident()).await, "self-signed, not trusted");
        // A CA that is not the server's does not help either.
        let (_, other_ca, _) = tls_webhook().await;
        let other = WebhookAlert::new(&url).unwrap().root_certificates_pem(other_ca.as_bytes()).unwrap();
        assert!(!other.send(&incident()).await);
        // The same server over plain http is not https: the TLS listener sends nothing back.
        let plain = WebhookAlert::new(&url.replace("https://", "http://")).unwrap();
        assert!(!plain.timeout(Duration::from_millis(500)).send(&incident()).await);
        assert!(received.try_recv().is_err(), "no incident reached the server");
    }

    #[test]
    fn a_ca_must_be_pem_certificates() {
        let alert = WebhookAlert::new("https://alerts.example/x").unwrap();
        let err = alert.clone().root_certificates_pem(b"not pem").unwrap_err();
        assert_eq!(err.reason(), "the webhook ca holds no certificate");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(alert.root_certificates_pem(garbage).is_err(), "a certificate rustls cannot parse");
    }
}
