//! AWS credentials for an endpoint, shared by lift's clients and the harness: static
//! credentials for local endpoints (DynamoDB Local, the mocks), the default AWS chain for
//! real AWS.

use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::config::{Credentials, Region};

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

    #[tokio::test]
    async fn local_endpoints_get_the_static_credentials() {
        let provider = credentials_for(Some("http://127.0.0.1:8000"), Region::new("us-east-1"));
        let creds = provider.provide_credentials().await.unwrap();
        assert_eq!((creds.access_key_id(), creds.secret_access_key()), ("local", "local"));
    }
}
