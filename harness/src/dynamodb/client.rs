//! DynamoDB clients for an endpoint: static local credentials, or the AWS chain for AWS.

use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_dynamodb::config::{BehaviorVersion, Builder, Credentials, Region};
use aws_sdk_dynamodb::Client;

/// The region for local clients: `AWS_REGION`, else `us-east-1`.
pub fn default_region() -> String {
    std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned())
}

/// A DynamoDB client for `endpoint` in `region`.
///
/// Local endpoints get the static credentials `local`/`local`: DynamoDB Local does not check
/// them, and using the same ones everywhere keeps every client on the same database. An
/// endpoint on `amazonaws.com` gets the default AWS credential chain (environment, profile,
/// web identity, ECS, IMDS), resolved on first use.
///
/// # Examples
///
/// ```no_run
/// let client = lift_harness::dynamodb::client_for("http://127.0.0.1:8000", "us-east-1");
/// # drop(client);
/// ```
pub fn client_for(endpoint: &str, region: &str) -> Client {
    let region = Region::new(region.to_owned());
    let builder = Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(region.clone())
        .endpoint_url(endpoint);
    let builder = if is_aws(endpoint) {
        builder.credentials_provider(AwsChain { region, chain: tokio::sync::OnceCell::new() })
    } else {
        builder.credentials_provider(Credentials::new("local", "local", None, None, "lift-harness"))
    };
    Client::from_conf(builder.build())
}

/// Whether the endpoint is a real AWS endpoint, which needs real credentials.
fn is_aws(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once(':').map_or(authority, |(host, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            host
        } else {
            authority
        }
    });
    let host = host.to_ascii_lowercase();
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// The default AWS credential chain, built on first use: building it is async, and
/// [`client_for`] is not.
#[derive(Debug)]
struct AwsChain {
    region: Region,
    chain: tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
}

impl ProvideCredentials for AwsChain {
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
        assert!(is_aws("https://dynamodb.eu-west-1.amazonaws.com"));
        assert!(is_aws("https://dynamodb.cn-north-1.amazonaws.com.cn/"));
        assert!(is_aws("https://dynamodb.us-east-1.amazonaws.com:443"));
        assert!(!is_aws("http://127.0.0.1:8000"));
        assert!(!is_aws("http://localhost:8000"));
        assert!(!is_aws("http://amazonaws.com.evil.test:8000"));
    }
}
