//! AWS configuration shared by lift's clients and the harness: where a service is reached
//! ([`ServiceEndpoint`], read as the AWS SDKs read `AWS_ENDPOINT_URL_<SERVICE>` and
//! `AWS_REGION`), and the credentials for an endpoint ([`credentials_for`]): static ones for
//! local endpoints (DynamoDB Local, the mocks), the default AWS chain for real AWS.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::config::{Credentials, Region};

use crate::config::{Env, InvalidConfig};

/// Where one AWS service is reached: an endpoint (`None`: AWS's own for the region) and a
/// region.
///
/// # Examples
///
/// ```
/// use lift::aws::ServiceEndpoint;
/// use lift::config::Env;
///
/// let env = Env::from_lookup(|name| match name {
///     "AWS_ENDPOINT_URL_KMS" => Some("http://127.0.0.1:4566".to_owned()),
///     "AWS_REGION" => Some("eu-west-1".to_owned()),
///     _ => None,
/// });
/// let kms = ServiceEndpoint::from_env(&env, "KMS")?;
/// assert_eq!(kms.url.as_deref(), Some("http://127.0.0.1:4566"));
/// assert_eq!(kms.region, "eu-west-1");
/// # Ok::<(), lift::config::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// The endpoint URL; `None` for AWS's own endpoint of the region.
    pub url: Option<String>,
    /// The region requests are signed for.
    pub region: String,
}

/// The region of a client whose endpoint is local and no region is set: local endpoints
/// accept any.
const LOCAL_DEFAULT_REGION: &str = "us-east-1";

impl ServiceEndpoint {
    /// A service at `url` (a local endpoint, or a specific AWS one) in `region`.
    pub fn new(url: Option<String>, region: impl Into<String>) -> Self {
        Self { url, region: region.into() }
    }

    /// The endpoint as the AWS SDKs and CLI configure it: `AWS_ENDPOINT_URL_<SERVICE>`
    /// (`service` as the SDKs spell it: `KMS`, `ROUTE_53`), else `AWS_ENDPOINT_URL`, neither
    /// when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true; the region from `AWS_REGION`,
    /// else `AWS_DEFAULT_REGION`, else `us-east-1` for a local endpoint.
    ///
    /// # Errors
    /// [`InvalidConfig`] when the endpoint is not an http(s) URL, or AWS's own endpoint is
    /// used without a region.
    pub fn from_env(env: &Env<'_>, service: &str) -> Result<Self, InvalidConfig> {
        let ignore = matches!(
            env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").map(|v| v.to_ascii_lowercase()).as_deref(),
            Some("true" | "1")
        );
        let variable = format!("AWS_ENDPOINT_URL_{service}");
        let url = match ignore {
            true => None,
            false => env.get(&variable).or_else(|| env.get("AWS_ENDPOINT_URL")),
        };
        if let Some(url) = &url {
            let scheme = url.parse::<http::Uri>().ok().and_then(|u| {
                u.host().filter(|h| !h.is_empty())?;
                u.scheme_str().map(str::to_owned)
            });
            if !matches!(scheme.as_deref(), Some("http" | "https")) {
                return Err(InvalidConfig::new("aws", format!("{variable} must be an http or https url")));
            }
        }
        let region = match (env.get("AWS_REGION").or_else(|| env.get("AWS_DEFAULT_REGION")), &url) {
            (Some(region), _) => region,
            (None, Some(url)) if !is_aws_endpoint(url) => LOCAL_DEFAULT_REGION.to_owned(),
            (None, _) => return Err(InvalidConfig::new("aws", "set AWS_REGION for AWS's own endpoints")),
        };
        Ok(Self { url, region })
    }

    /// The SDK configuration of a client of this service: region, endpoint, credentials
    /// from [`credentials_for`], each operation (retries included) bounded by
    /// `operation_timeout`, and `retry`.
    pub fn sdk_config(&self, operation_timeout: Duration, retry: RetryConfig) -> SdkConfig {
        let region = Region::new(self.region.clone());
        let mut config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region.clone())
            .credentials_provider(credentials_for(self.url.as_deref(), region))
            .timeout_config(TimeoutConfig::builder().operation_timeout(operation_timeout).build())
            .retry_config(retry);
        if let Some(url) = &self.url {
            config = config.endpoint_url(url);
        }
        config.build()
    }
}

/// The credentials for `endpoint` (`None`: the SDK's default endpoint, i.e. AWS).
///
/// Local endpoints get the static credentials `local`/`local`: DynamoDB Local does not
/// check them, and using the same ones everywhere keeps every client on the same database.
/// An endpoint on `amazonaws.com` (or none) gets the default AWS credential chain
/// (environment, profile, web identity, ECS, IMDS), built on first use.
///
/// # Examples
///
/// ```
/// use aws_sdk_dynamodb::config::Region;
///
/// let local = lift::aws::credentials_for(Some("http://127.0.0.1:8000"), Region::new("us-east-1"));
/// # let _ = local;
/// ```
pub fn credentials_for(endpoint: Option<&str>, region: Region) -> SharedCredentialsProvider {
    match endpoint {
        Some(url) if !is_aws_endpoint(url) => {
            SharedCredentialsProvider::new(Credentials::new("local", "local", None, None, "lift-static"))
        }
        _ => SharedCredentialsProvider::new(LazyDefaultChain { region, chain: tokio::sync::OnceCell::new() }),
    }
}

/// Whether an endpoint is a real AWS one (`*.amazonaws.com`, `*.amazonaws.com.cn`), which
/// needs real credentials.
pub fn is_aws_endpoint(endpoint: &str) -> bool {
    endpoint
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_ascii_lowercase))
        .is_some_and(|host| host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
}

/// The default AWS credential chain, built on first use: building it is async, and the
/// client builders that take it are not.
#[derive(Debug)]
struct LazyDefaultChain {
    region: Region,
    chain: tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
}

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| {
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(self.region.clone())
                        .build()
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_amazonaws_hosts_get_the_aws_chain() {
        assert!(is_aws_endpoint("https://dynamodb.eu-west-1.amazonaws.com"));
        assert!(is_aws_endpoint("https://dynamodb.cn-north-1.amazonaws.com.cn/"));
        assert!(is_aws_endpoint("https://dynamodb.us-east-1.amazonaws.com:443"));
        assert!(!is_aws_endpoint("http://127.0.0.1:8000"));
        assert!(!is_aws_endpoint("http://localhost:8000"));
        assert!(!is_aws_endpoint("http://amazonaws.com.evil.test:8000"));
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> Env<'static> {
        Env::from_lookup(move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn a_service_endpoint_is_read_as_the_sdks_read_it() {
        let both = env(&[("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:1"), ("AWS_ENDPOINT_URL", "http://x:2")]);
        assert_eq!(
            ServiceEndpoint::from_env(&both, "KMS").unwrap(),
            ServiceEndpoint::new(Some("http://127.0.0.1:1".into()), "us-east-1"),
            "the service's own variable wins; a local endpoint needs no region"
        );
        let general = ServiceEndpoint::from_env(&both, "ROUTE_53").unwrap();
        assert_eq!(general.url.as_deref(), Some("http://x:2"));
        let ignored = env(&[
            ("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:1"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        assert_eq!(
            ServiceEndpoint::from_env(&ignored, "KMS").unwrap(),
            ServiceEndpoint::new(None, "eu-west-1")
        );
        let real = ServiceEndpoint::from_env(&env(&[]), "KMS").unwrap_err();
        assert_eq!(real.to_string(), "invalid aws configuration: set AWS_REGION for AWS's own endpoints");
        let bad =
            ServiceEndpoint::from_env(&env(&[("AWS_ENDPOINT_URL_KMS", "ftp://h/")]), "KMS").unwrap_err();
        assert!(bad.reason().contains("AWS_ENDPOINT_URL_KMS"), "{bad}");
        let aws = env(&[("AWS_ENDPOINT_URL_KMS", "https://kms.eu-west-1.amazonaws.com")]);
        assert!(ServiceEndpoint::from_env(&aws, "KMS").is_err(), "a real endpoint needs a region");
    }

    #[tokio::test]
    async fn local_endpoints_get_the_static_credentials() {
        let provider = credentials_for(Some("http://127.0.0.1:8000"), Region::new("us-east-1"));
        let creds = provider.provide_credentials().await.unwrap();
        assert_eq!((creds.access_key_id(), creds.secret_access_key()), ("local", "local"));
    }
}
