//! Health probes: one cheap check of one dependency of a region.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use super::region::{validate_url, Region};
use super::{ConfigError, ProbeError};

/// The future a [`Probe`] returns.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProbeError>> + Send + 'a>>;

/// One health check of a region, run by the [`HealthMonitor`](super::HealthMonitor) every
/// probe interval under the probe timeout.
///
/// Implement it to check something the built-in probes do not (an https endpoint, a queue).
///
/// # Examples
///
/// ```
/// use lift::disaster::{Probe, ProbeError, ProbeFuture};
///
/// #[derive(Debug)]
/// struct AlwaysUp;
///
/// impl Probe for AlwaysUp {
///     fn name(&self) -> &str {
///         "always-up"
///     }
///     fn check(&self) -> ProbeFuture<'_> {
///         Box::pin(async { Ok::<(), ProbeError>(()) })
///     }
/// }
/// ```
pub trait Probe: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and [`RegionStatus::last_error`](super::RegionStatus::last_error).
    fn name(&self) -> &str;

    /// Runs the check once. The monitor bounds it with its timeout.
    fn check(&self) -> ProbeFuture<'_>;
}

/// Checks that DynamoDB answers in a region: `ListTables` with a limit of 1, no retries.
#[derive(Debug, Clone)]
pub struct DynamoDbProbe {
    client: aws_sdk_dynamodb::Client,
}

impl DynamoDbProbe {
    /// A probe over `client`, with the client's retries turned off: the monitor's thresholds
    /// decide what a failure means, not the SDK's backoff.
    pub fn new(client: &aws_sdk_dynamodb::Client) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        Self { client: aws_sdk_dynamodb::Client::from_conf(config) }
    }
}

impl Probe for DynamoDbProbe {
    fn name(&self) -> &str {
        "dynamodb"
    }

    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            use aws_sdk_dynamodb::error::SdkError;
            match self.client.list_tables().limit(1).send().await {
                Ok(_) => Ok(()),
                Err(err @ SdkError::ServiceError(_)) => {
                    Err(ProbeError::Unhealthy(super::error::sdk_message(&err)))
                }
                Err(err) => Err(ProbeError::Unreachable(super::error::sdk_message(&err))),
            }
        })
    }
}

/// Checks a service readiness URL: `GET`, and `200 OK` is healthy.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    url: http::Uri,
    client: HttpClient<HttpConnector, Empty<Bytes>>,
}

impl HttpProbe {
    /// A probe of `url` (plain `http`).
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let url = validate_url("health_url", url, &["http"])?;
        let client = HttpClient::builder(TokioExecutor::new()).build_http();
        Ok(Self { url, client })
    }
}

impl Probe for HttpProbe {
    fn name(&self) -> &str {
        "http"
    }

    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let request = http::Request::get(self.url.clone())
                .body(Empty::new())
                .map_err(|err| ProbeError::Unreachable(err.to_string()))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| ProbeError::Unreachable(super::error::sdk_message(&err)))?;
            let status = response.status();
            // Read the body so the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            if status == http::StatusCode::OK {
                Ok(())
            } else {
                Err(ProbeError::Unhealthy(format!("{} answered {status}", self.url)))
            }
        })
    }
}

/// The probes the monitor runs for `region` by default: DynamoDB, and the readiness URL
/// when one is configured.
pub fn default_probes(region: &Region) -> Vec<Arc<dyn Probe>> {
    let mut probes: Vec<Arc<dyn Probe>> = vec![Arc::new(DynamoDbProbe::new(region.probe_dynamodb()))];
    if let Some(url) = region.health_url() {
        // RegionSet validated the URL already.
        if let Ok(probe) = HttpProbe::new(url) {
            probes.push(Arc::new(probe));
        }
    }
    probes
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-route HTTP server answering every request with `status`.
    async fn serve(status: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = socket.read(&mut buf).await;
                    let response =
                        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/health/ready")
    }

    #[tokio::test]
    async fn http_probe_wants_200() {
        assert_eq!(HttpProbe::new(&serve("200 OK").await).unwrap().check().await, Ok(()));
        let err = HttpProbe::new(&serve("503 Service Unavailable").await).unwrap().check().await.unwrap_err();
        assert!(matches!(&err, ProbeError::Unhealthy(m) if m.contains("503")), "{err}");
    }

    #[tokio::test]
    async fn http_probe_reports_a_closed_port_as_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health/ready", listener.local_addr().unwrap());
        drop(listener);
        let err = HttpProbe::new(&url).unwrap().check().await.unwrap_err();
        assert!(matches!(err, ProbeError::Unreachable(_)), "{err}");
    }

    #[tokio::test]
    async fn dynamodb_probe_reports_a_closed_port_as_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let regions = super::super::RegionSet::builder()
            .region(super::super::RegionConfig::new("us-east-1").dynamodb_endpoint(endpoint))
            .build()
            .unwrap();
        let err = DynamoDbProbe::new(regions.primary().dynamodb()).check().await.unwrap_err();
        assert!(matches!(err, ProbeError::Unreachable(_)), "{err}");
    }
}
