//! Alerts to a webhook: one JSON POST per incident.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::error::InvalidConfig;
use super::incident::Incident;

/// How long an alert may take by default.
pub const DEFAULT_ALERT_TIMEOUT: Duration = Duration::from_secs(2);

/// Posts each incident as JSON to a webhook (plain `http`: a collector in the VPC, or a
/// local relay to a chat or paging service).
///
/// An alert that fails or times out is logged; it never fails the request.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lift::security::threat::WebhookAlert;
///
/// let alert = WebhookAlert::new("http://alerts.internal:8080/hooks/threat")?
///     .timeout(Duration::from_millis(500));
/// # Ok::<(), lift::security::threat::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct WebhookAlert {
    url: http::Uri,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl WebhookAlert {
    /// An alert to `url` (`http://` only).
    ///
    /// # Errors
    /// [`InvalidConfig`] when the URL is not an absolute `http` URL.
    pub fn new(url: &str) -> Result<Self, InvalidConfig> {
        let uri: http::Uri =
            url.parse().map_err(|_| InvalidConfig::new("threat", "the webhook url is not a url"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(InvalidConfig::new("threat", "the webhook url must be an absolute http:// url"));
        }
        Ok(Self {
            url: uri,
            timeout: DEFAULT_ALERT_TIMEOUT,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
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
        let body = match serde_json::to_vec(incident) {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!(error = %err, "threat alert not serialized");
                return false;
            }
        };
        let request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else { return false };
        let call = async {
            let response = self.client.request(request).await.map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(WebhookAlert::new("http://127.0.0.1:9/x").is_ok());
        assert!(WebhookAlert::new("https://alerts.example/x").is_err());
        assert!(WebhookAlert::new("/relative").is_err());
    }
}
