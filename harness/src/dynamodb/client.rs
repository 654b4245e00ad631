//! DynamoDB clients for an endpoint: static local credentials, or the AWS chain for AWS
//! (lift's [`credentials_for`](lift::aws::credentials_for)).

use aws_sdk_dynamodb::config::{BehaviorVersion, Builder, Region};
use aws_sdk_dynamodb::Client;

/// The region for local clients: `AWS_REGION`, else `us-east-1`.
pub fn default_region() -> String {
    lift::config::Env::process().get("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned())
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
        .endpoint_url(endpoint)
        .credentials_provider(lift::aws::credentials_for(Some(endpoint), region));
    Client::from_conf(builder.build())
}
