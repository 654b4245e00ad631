//! DNS failover through the Route 53 API, for clients that resolve a name.
//!
//! [`Route53Client`] calls Route 53 through `aws-sdk-route53`: requests are signed (SigV4)
//! and go to AWS's endpoint, or to the one `AWS_ENDPOINT_URL_ROUTE_53` (or
//! [`Route53Failover::endpoint`]) names, such as the harness's mock in tests.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_route53::primitives::DateTimeFormat;
use aws_sdk_route53::types as sdk;

use super::env::{self, ProcessEnv, Vars};
use super::region::validate_url;
use super::{ConfigError, RegionSet, Route53Error};
use crate::aws::ServiceEndpoint;
use crate::config::Env;

/// The region Route 53 clients sign for when none is configured: Route 53 is global, and
/// AWS's partition signs its requests for `us-east-1`.
const GLOBAL_REGION: &str = "us-east-1";

/// The DNS record the orchestrator points at the active region on every switch.
///
/// # Examples
///
/// ```
/// use lift::disaster::Route53Failover;
///
/// let dns = Route53Failover::new("Z0LIFT", "api.example.com.")
///     .endpoint("http://127.0.0.1:4566")
///     .target("us-east-1", "api.us-east-1.example.com")
///     .target("eu-west-1", "api.eu-west-1.example.com");
/// let record = dns.record_for("eu-west-1").unwrap();
/// assert_eq!(record.values, ["api.eu-west-1.example.com"]);
/// assert_eq!(record.record_type, "CNAME");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route53Failover {
    /// The Route 53 endpoint; `None` reads `AWS_ENDPOINT_URL_ROUTE_53` (else
    /// `AWS_ENDPOINT_URL`, else AWS's own endpoint).
    pub endpoint: Option<String>,
    /// The hosted zone id, e.g. `Z0LIFT` (a `/hostedzone/` prefix is accepted).
    pub hosted_zone_id: String,
    /// The record name, e.g. `api.example.com.`.
    pub record_name: String,
    /// The record type (default `CNAME`).
    pub record_type: String,
    /// The record TTL in seconds (default 60).
    pub ttl: u32,
    /// The record value per region.
    pub targets: BTreeMap<String, String>,
    /// A set identifier, for a record that is one of a weighted or failover set.
    pub set_identifier: Option<String>,
    /// The longest a Route 53 request may take (default 5 s).
    pub timeout: Duration,
}

impl Route53Failover {
    /// A `CNAME` with a 60 s TTL in `hosted_zone_id`, without targets yet.
    pub fn new(hosted_zone_id: impl Into<String>, record_name: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            hosted_zone_id: hosted_zone_id.into(),
            record_name: record_name.into(),
            record_type: "CNAME".into(),
            ttl: 60,
            targets: BTreeMap::new(),
            set_identifier: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// Sets the Route 53 endpoint.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets the record type (`CNAME`, `A`, `AAAA`, ...).
    pub fn record_type(mut self, record_type: impl Into<String>) -> Self {
        self.record_type = record_type.into();
        self
    }

    /// Sets the record TTL in seconds.
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the record value while `region` is active.
    pub fn target(mut self, region: impl Into<String>, value: impl Into<String>) -> Self {
        self.targets.insert(region.into(), value.into());
        self
    }

    /// Sets the record's set identifier.
    pub fn set_identifier(mut self, id: impl Into<String>) -> Self {
        self.set_identifier = Some(id.into());
        self
    }

    /// Sets the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The record from `LIFT_ROUTE53_HOSTED_ZONE_ID`, `LIFT_ROUTE53_RECORD_NAME`,
    /// `LIFT_ROUTE53_RECORD_TYPE`, `LIFT_ROUTE53_TTL` and `LIFT_ROUTE53_TARGET_<REGION>` for each
    /// region of `regions`; `None` when no hosted zone is set.
    pub fn from_env(regions: &RegionSet) -> Result<Option<Self>, ConfigError> {
        Self::from_vars(&ProcessEnv, regions)
    }

    fn from_vars(vars: &dyn Vars, regions: &RegionSet) -> Result<Option<Self>, ConfigError> {
        let Some(zone) = vars.get("LIFT_ROUTE53_HOSTED_ZONE_ID") else {
            return Ok(None);
        };
        let name = vars
            .get("LIFT_ROUTE53_RECORD_NAME")
            .ok_or_else(|| ConfigError::MissingEnv("LIFT_ROUTE53_RECORD_NAME".into()))?;
        let mut dns = Self::new(zone, name);
        if let Some(t) = vars.get("LIFT_ROUTE53_RECORD_TYPE") {
            dns.record_type = t;
        }
        if let Some(ttl) = env::count(vars, "LIFT_ROUTE53_TTL")? {
            dns.ttl = ttl;
        }
        for region in regions {
            if let Some(value) =
                vars.get(&format!("LIFT_ROUTE53_TARGET_{}", env::region_suffix(region.name())))
            {
                dns = dns.target(region.name(), value);
            }
        }
        Ok(Some(dns))
    }

    /// Checks the record against `regions` (a target for each) and returns a client for the
    /// endpoint.
    pub fn client(&self, regions: &RegionSet) -> Result<Route53Client, ConfigError> {
        if zone_id(&self.hosted_zone_id).is_empty() {
            return Err(ConfigError::invalid("hosted_zone_id", "must not be empty"));
        }
        if self.record_name.is_empty() || self.record_type.is_empty() {
            return Err(ConfigError::invalid("record_name", "name and type must not be empty"));
        }
        if let Some(missing) = regions.iter().find(|r| !self.targets.contains_key(r.name())) {
            return Err(ConfigError::invalid(
                "targets",
                format!("no record value for region {}", missing.name()),
            ));
        }
        let client = match &self.endpoint {
            Some(endpoint) => Route53Client::new(endpoint)?,
            None => Route53Client::from_env()?,
        };
        Ok(client.timeout(self.timeout))
    }

    /// The record set that sends traffic to `region`.
    pub fn record_for(&self, region: &str) -> Option<ResourceRecordSet> {
        let value = self.targets.get(region)?;
        Some(ResourceRecordSet {
            name: self.record_name.clone(),
            record_type: self.record_type.clone(),
            ttl: Some(self.ttl),
            values: vec![value.clone()],
            set_identifier: self.set_identifier.clone(),
        })
    }

    /// The hosted zone id without a `/hostedzone/` prefix.
    pub fn zone_id(&self) -> &str {
        zone_id(&self.hosted_zone_id)
    }
}

fn zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// A Route 53 resource record set (simple or with a set identifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecordSet {
    /// The record name, e.g. `api.example.com.`.
    pub name: String,
    /// The type, e.g. `CNAME`.
    pub record_type: String,
    /// The TTL in seconds.
    pub ttl: Option<u32>,
    /// The values.
    pub values: Vec<String>,
    /// The set identifier, if any.
    pub set_identifier: Option<String>,
}

/// What a change does to a record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// Create; fails if it exists.
    Create,
    /// Delete; fails if it does not exist.
    Delete,
    /// Create or replace.
    Upsert,
}

/// The state of a submitted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeInfo {
    /// The change id, e.g. `C2682N5HXP0BZ4` (without `/change/`).
    pub id: String,
    /// `PENDING` or `INSYNC`.
    pub status: String,
    /// When Route 53 accepted the change (ISO 8601), if it said.
    pub submitted_at: Option<String>,
}

/// A Route 53 client through `aws-sdk-route53`: change record sets, follow a change, list
/// record sets.
///
/// SDK retries are off: the orchestrator records every attempt and updates the record again
/// on the next switch, so an error is reported as it happened.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use lift::disaster::{ResourceRecordSet, Route53Client};
///
/// // AWS_ENDPOINT_URL_ROUTE_53 when set, else Route 53 itself.
/// let route53 = Route53Client::from_env()?;
/// let record = ResourceRecordSet {
///     name: "api.example.com.".into(),
///     record_type: "CNAME".into(),
///     ttl: Some(60),
///     values: vec!["api.eu-west-1.example.com".into()],
///     set_identifier: None,
/// };
/// let change = route53.upsert("Z0LIFT", &record, Some("fail over to eu-west-1")).await?;
/// println!("{} is {}", change.id, change.status);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Route53Client {
    client: aws_sdk_route53::Client,
    timeout: Duration,
}

impl Route53Client {
    /// A client of the Route 53 API at `endpoint` (`http` or `https`), with a 5 s timeout.
    pub fn new(endpoint: &str) -> Result<Self, ConfigError> {
        validate_url("route53 endpoint", endpoint, &["http", "https"])?;
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        Ok(Self::with_endpoint(ServiceEndpoint::new(Some(endpoint), GLOBAL_REGION)))
    }

    /// A client configured as the AWS SDKs are: `AWS_ENDPOINT_URL_ROUTE_53`, else
    /// `AWS_ENDPOINT_URL`, else Route 53's own endpoint; see [`ServiceEndpoint::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::from_lookup(lookup);
        // Route 53 is global: without a configured region, sign as AWS's partition does.
        let with_region = Env::from_lookup(|name| match name {
            "AWS_REGION" => env
                .get("AWS_REGION")
                .or_else(|| env.get("AWS_DEFAULT_REGION"))
                .or_else(|| Some(GLOBAL_REGION.into())),
            other => env.get(other),
        });
        let endpoint = ServiceEndpoint::from_env(&with_region, "ROUTE_53")
            .map_err(|e| ConfigError::invalid("route53 endpoint", e.reason().to_owned()))?;
        Ok(Self::with_endpoint(endpoint))
    }

    /// A client over an SDK client the caller configured (its own retries and timeouts).
    pub fn from_sdk(client: aws_sdk_route53::Client) -> Self {
        let timeout = client.config().timeout_config().and_then(|t| t.operation_timeout());
        Self { client, timeout: timeout.unwrap_or(DEFAULT_TIMEOUT) }
    }

    fn with_endpoint(endpoint: ServiceEndpoint) -> Self {
        let sdk = endpoint.sdk_config(DEFAULT_TIMEOUT, aws_config::retry::RetryConfig::disabled());
        Self { client: aws_sdk_route53::Client::new(&sdk), timeout: DEFAULT_TIMEOUT }
    }

    /// Sets the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder().operation_timeout(timeout).build();
        let config = self.client.config().to_builder().timeout_config(timeouts).build();
        self.client = aws_sdk_route53::Client::from_conf(config);
        self.timeout = timeout;
        self
    }

    /// Creates or replaces `record` in `zone`.
    pub async fn upsert(
        &self,
        zone: &str,
        record: &ResourceRecordSet,
        comment: Option<&str>,
    ) -> Result<ChangeInfo, Route53Error> {
        self.change_resource_record_sets(zone, &[(ChangeAction::Upsert, record.clone())], comment).await
    }

    /// `ChangeResourceRecordSets`: applies `changes` to `zone` as one batch.
    pub async fn change_resource_record_sets(
        &self,
        zone: &str,
        changes: &[(ChangeAction, ResourceRecordSet)],
        comment: Option<&str>,
    ) -> Result<ChangeInfo, Route53Error> {
        let batch = change_batch(changes, comment)?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id(zone))
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        change_info(out.change_info())
    }

    /// `GetChange`: the state of a change.
    pub async fn get_change(&self, id: &str) -> Result<ChangeInfo, Route53Error> {
        let id = id.trim_start_matches("/change/");
        let out = self.client.get_change().id(id).send().await.map_err(|e| self.error(e))?;
        change_info(out.change_info())
    }

    /// `ListResourceRecordSets`: the record sets of `zone` (first page).
    pub async fn list_resource_record_sets(
        &self,
        zone: &str,
    ) -> Result<Vec<ResourceRecordSet>, Route53Error> {
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(zone_id(zone))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.resource_record_sets().iter().map(record_set).collect())
    }

    /// The SDK client.
    pub fn sdk(&self) -> &aws_sdk_route53::Client {
        &self.client
    }

    fn error<E>(&self, err: SdkError<E, aws_sdk_route53::config::http::HttpResponse>) -> Route53Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match &err {
            SdkError::ServiceError(context) => Route53Error::Api {
                status: context.raw().status().as_u16(),
                code: err.code().unwrap_or("Unknown").to_owned(),
                message: err.message().unwrap_or_default().to_owned(),
            },
            SdkError::TimeoutError(_) => Route53Error::TimedOut(self.timeout),
            SdkError::ResponseError(_) => {
                Route53Error::InvalidResponse(DisplayErrorContext(&err).to_string())
            }
            _ => Route53Error::Http(DisplayErrorContext(&err).to_string()),
        }
    }
}

/// How long a Route 53 request may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

fn change_batch(
    changes: &[(ChangeAction, ResourceRecordSet)],
    comment: Option<&str>,
) -> Result<sdk::ChangeBatch, Route53Error> {
    let invalid = |e: aws_sdk_route53::error::BuildError| Route53Error::Http(e.to_string());
    let mut batch = sdk::ChangeBatch::builder().set_comment(comment.map(str::to_owned));
    for (action, record) in changes {
        let action = match action {
            ChangeAction::Create => sdk::ChangeAction::Create,
            ChangeAction::Delete => sdk::ChangeAction::Delete,
            ChangeAction::Upsert => sdk::ChangeAction::Upsert,
        };
        let mut set = sdk::ResourceRecordSet::builder()
            .name(&record.name)
            .r#type(sdk::RrType::from(record.record_type.as_str()))
            .set_set_identifier(record.set_identifier.clone())
            .set_ttl(record.ttl.map(i64::from));
        for value in &record.values {
            set = set.resource_records(sdk::ResourceRecord::builder().value(value).build().map_err(invalid)?);
        }
        let change = sdk::Change::builder()
            .action(action)
            .resource_record_set(set.build().map_err(invalid)?)
            .build()
            .map_err(invalid)?;
        batch = batch.changes(change);
    }
    batch.build().map_err(invalid)
}

fn change_info(info: Option<&sdk::ChangeInfo>) -> Result<ChangeInfo, Route53Error> {
    let info = info.ok_or_else(|| Route53Error::InvalidResponse("no ChangeInfo element".into()))?;
    if info.id().is_empty() {
        return Err(Route53Error::InvalidResponse("no change id".into()));
    }
    Ok(ChangeInfo {
        id: info.id().trim_start_matches("/change/").to_owned(),
        status: info.status().as_str().to_owned(),
        submitted_at: info.submitted_at().fmt(DateTimeFormat::DateTime).ok(),
    })
}

fn record_set(set: &sdk::ResourceRecordSet) -> ResourceRecordSet {
    ResourceRecordSet {
        name: set.name().to_owned(),
        record_type: set.r#type().as_str().to_owned(),
        ttl: set.ttl().and_then(|t| u32::try_from(t).ok()),
        values: set.resource_records().iter().map(|r| r.value().to_owned()).collect(),
        set_identifier: set.set_identifier().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_batches_and_answers_convert_both_ways() {
        let record = ResourceRecordSet {
            name: "api.example.com.".into(),
            record_type: "CNAME".into(),
            ttl: Some(60),
            values: vec!["a&b.example.com".into()],
            set_identifier: Some("primary".into()),
        };
        let batch =
            change_batch(&[(ChangeAction::Upsert, record.clone())], Some("lift: us-east-1 -> eu-west-1"))
                .unwrap();
        assert_eq!(batch.comment(), Some("lift: us-east-1 -> eu-west-1"));
        assert_eq!(batch.changes()[0].action(), &sdk::ChangeAction::Upsert);
        assert_eq!(record_set(batch.changes()[0].resource_record_set().unwrap()), record);

        let info = sdk::ChangeInfo::builder()
            .id("/change/C1")
            .status(sdk::ChangeStatus::Pending)
            .submitted_at(aws_sdk_route53::primitives::DateTime::from_secs(1_704_067_200))
            .build()
            .unwrap();
        let info = change_info(Some(&info)).unwrap();
        assert_eq!((info.id.as_str(), info.status.as_str()), ("C1", "PENDING"));
        assert_eq!(info.submitted_at.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert!(matches!(change_info(None), Err(Route53Error::InvalidResponse(_))));
    }

    #[test]
    fn an_endpoint_must_be_http_or_https() {
        assert!(Route53Client::new("https://route53.amazonaws.com").is_ok());
        assert!(Route53Client::new("http://127.0.0.1:1").is_ok());
        assert!(matches!(Route53Client::new("ftp://h"), Err(ConfigError::InvalidUrl { .. })));
        let bad = Route53Client::from_env_vars(|n| (n == "AWS_ENDPOINT_URL_ROUTE_53").then(|| "nope".into()));
        assert!(bad.is_err());
        assert!(Route53Client::from_env_vars(|_| None).is_ok(), "route 53 is global: no region needed");
    }

    #[test]
    fn every_region_needs_a_target() {
        let regions = RegionSet::builder()
            .region(super::super::RegionConfig::new("us-east-1"))
            .region(super::super::RegionConfig::new("eu-west-1"))
            .build()
            .unwrap();
        let dns = Route53Failover::new("Z1", "api.example.com.")
            .endpoint("http://127.0.0.1:1")
            .target("us-east-1", "a.example.com");
        assert!(matches!(dns.client(&regions).unwrap_err(), ConfigError::Invalid { setting: "targets", .. }));
        assert!(dns.target("eu-west-1", "b.example.com").client(&regions).is_ok());
    }
}
