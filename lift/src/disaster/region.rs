//! Regions: a primary and its ordered secondaries, each with its own DynamoDB clients.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::BehaviorVersion;

use super::env::{self, ProcessEnv, Vars};
use super::passive::{ObserverSlot, PassiveInterceptor, RequestObserver};
use super::ConfigError;

/// How one region is reached: its name, its DynamoDB endpoint and its service health URL.
///
/// Without a `dynamodb_endpoint` the region's clients use AWS's own endpoints and the
/// default credential chain; with one (DynamoDB Local, a fault proxy) they use it with the
/// static credentials `local`/`local`.
///
/// # Examples
///
/// ```
/// use lift::disaster::RegionConfig;
///
/// let region = RegionConfig::new("eu-west-1")
///     .dynamodb_endpoint("http://127.0.0.1:8001")
///     .health_url("http://127.0.0.1:3001/health/ready");
/// assert_eq!(region.name, "eu-west-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionConfig {
    /// The region name, e.g. `us-east-1`; also the SDK region of its clients.
    pub name: String,
    /// The DynamoDB (and DynamoDB Streams) endpoint; `None` for AWS's own.
    pub dynamodb_endpoint: Option<String>,
    /// The service's readiness URL in this region (`/health/ready`), probed with `GET`.
    pub health_url: Option<String>,
}

impl RegionConfig {
    /// A region reached through AWS's own endpoints, without a health URL.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), dynamodb_endpoint: None, health_url: None }
    }

    /// Sets the DynamoDB endpoint, e.g. `http://127.0.0.1:8000`.
    pub fn dynamodb_endpoint(mut self, url: impl Into<String>) -> Self {
        self.dynamodb_endpoint = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Sets the service readiness URL probed in this region.
    pub fn health_url(mut self, url: impl Into<String>) -> Self {
        self.health_url = Some(url.into());
        self
    }

    /// The region `name` completed from the environment: `LIFT_DYNAMODB_ENDPOINT_<REGION>` and
    /// `LIFT_HEALTH_URL_<REGION>` (`<REGION>` upper case with `_` for `-`, e.g. `EU_WEST_1`).
    pub fn from_env(name: &str) -> Self {
        Self::from_vars(&ProcessEnv, name)
    }

    fn from_vars(vars: &dyn Vars, name: &str) -> Self {
        let suffix = env::region_suffix(name);
        Self {
            name: name.to_owned(),
            dynamodb_endpoint: vars
                .get(&format!("LIFT_DYNAMODB_ENDPOINT_{suffix}"))
                .map(|e| e.trim_end_matches('/').to_owned()),
            health_url: vars.get(&format!("LIFT_HEALTH_URL_{suffix}")),
        }
    }
}

/// One configured region with its clients. Cloning is cheap (the clients share their
/// connection pools).
#[derive(Debug, Clone)]
pub struct Region {
    config: RegionConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    probe: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
}

impl Region {
    /// The region name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The DynamoDB client of this region.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    /// The DynamoDB client health probes use: the same endpoint and settings, without the
    /// passive-health interceptor, so probes never count as the region's requests.
    pub fn probe_dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.probe
    }

    /// The DynamoDB Streams client of this region (same endpoint as DynamoDB when one is set).
    pub fn streams(&self) -> &aws_sdk_dynamodbstreams::Client {
        &self.streams
    }

    /// The configured DynamoDB endpoint, if any.
    pub fn dynamodb_endpoint(&self) -> Option<&str> {
        self.config.dynamodb_endpoint.as_deref()
    }

    /// The configured readiness URL, if any.
    pub fn health_url(&self) -> Option<&str> {
        self.config.health_url.as_deref()
    }

    /// The configuration this region was built from.
    pub fn config(&self) -> &RegionConfig {
        &self.config
    }
}

/// A primary region and its secondaries, in failover order.
///
/// Index 0 is the primary. Build one with [`RegionSet::builder`] or [`RegionSet::from_env`];
/// cloning is cheap.
///
/// # Examples
///
/// ```
/// use lift::disaster::{RegionConfig, RegionSet};
///
/// let regions = RegionSet::builder()
///     .region(RegionConfig::new("us-east-1").dynamodb_endpoint("http://127.0.0.1:8000"))
///     .region(RegionConfig::new("eu-west-1").dynamodb_endpoint("http://127.0.0.1:8001"))
///     .build()?;
/// assert_eq!(regions.primary().name(), "us-east-1");
/// assert_eq!(regions.names(), ["us-east-1", "eu-west-1"]);
/// # Ok::<(), lift::disaster::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RegionSet {
    regions: Arc<[Region]>,
    pub(super) observer: ObserverSlot,
}

impl RegionSet {
    /// Has every region's DynamoDB client report its attempts to `observer` (the monitor's,
    /// attached when a [`HealthMonitor`](super::HealthMonitor) starts over this set); the
    /// last one attached wins. Gives the slot back, for `passive::detach_observer`.
    pub(crate) fn attach_observer(&self, observer: RequestObserver) -> ObserverSlot {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(observer);
        self.observer.clone()
    }

    /// A builder with no regions and the default client timeouts.
    pub fn builder() -> RegionSetBuilder {
        RegionSetBuilder::default()
    }

    /// The regions named in `LIFT_REGIONS` (comma separated, primary first), each completed by
    /// [`RegionConfig::from_env`]; client timeouts from `LIFT_DYNAMODB_CONNECT_TIMEOUT_MS` and
    /// `LIFT_DYNAMODB_OPERATION_TIMEOUT_MS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder_from_vars(&ProcessEnv)?.build()
    }

    fn builder_from_vars(vars: &dyn Vars) -> Result<RegionSetBuilder, ConfigError> {
        let list = vars.get("LIFT_REGIONS").ok_or_else(|| ConfigError::MissingEnv("LIFT_REGIONS".into()))?;
        let mut builder = RegionSet::builder();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            builder = builder.region(RegionConfig::from_vars(vars, name));
        }
        if let Some(timeout) = env::millis(vars, "LIFT_DYNAMODB_CONNECT_TIMEOUT_MS")? {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = env::millis(vars, "LIFT_DYNAMODB_OPERATION_TIMEOUT_MS")? {
            builder = builder.operation_timeout(timeout);
        }
        Ok(builder)
    }

    /// The primary region.
    pub fn primary(&self) -> &Region {
        &self.regions[0]
    }

    /// The secondaries, in failover order.
    pub fn secondaries(&self) -> &[Region] {
        &self.regions[1..]
    }

    /// The region at `index` (0 is the primary).
    pub fn get(&self, index: usize) -> Option<&Region> {
        self.regions.get(index)
    }

    /// The region called `name`.
    pub fn by_name(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name() == name)
    }

    /// The index of the region called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.name() == name)
    }

    /// Every region, primary first.
    pub fn iter(&self) -> std::slice::Iter<'_, Region> {
        self.regions.iter()
    }

    /// The region names, primary first.
    pub fn names(&self) -> Vec<&str> {
        self.regions.iter().map(Region::name).collect()
    }

    /// How many regions there are (at least one).
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Always false: a set has a primary.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}

impl<'a> IntoIterator for &'a RegionSet {
    type Item = &'a Region;
    type IntoIter = std::slice::Iter<'a, Region>;

    fn into_iter(self) -> Self::IntoIter {
        self.regions.iter()
    }
}

/// Builds a [`RegionSet`]: regions in failover order (the first is the primary) and the
/// timeouts of their DynamoDB clients.
#[derive(Debug, Clone)]
pub struct RegionSetBuilder {
    regions: Vec<RegionConfig>,
    connect_timeout: Duration,
    operation_timeout: Duration,
}

impl Default for RegionSetBuilder {
    fn default() -> Self {
        Self {
            regions: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(5),
        }
    }
}

impl RegionSetBuilder {
    /// Adds a region; the first one added is the primary.
    pub fn region(mut self, region: RegionConfig) -> Self {
        self.regions.push(region);
        self
    }

    /// How long a client waits for a TCP connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one client operation may take, retries included (default 5 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Validates the configuration and builds a client pair per region (no network calls).
    pub fn build(self) -> Result<RegionSet, ConfigError> {
        if self.regions.is_empty() {
            return Err(ConfigError::NoRegions);
        }
        for (setting, value) in
            [("connect_timeout", self.connect_timeout), ("operation_timeout", self.operation_timeout)]
        {
            if value.is_zero() {
                return Err(ConfigError::invalid(setting, "must be greater than zero"));
            }
        }
        let mut regions = Vec::with_capacity(self.regions.len());
        let observer = ObserverSlot::default();
        for (i, config) in self.regions.iter().enumerate() {
            validate_name(&config.name)?;
            if self.regions[..i].iter().any(|r| r.name == config.name) {
                return Err(ConfigError::DuplicateRegion(config.name.clone()));
            }
            if let Some(url) = &config.dynamodb_endpoint {
                validate_url("dynamodb_endpoint", url, &["http", "https"])?;
            }
            if let Some(url) = &config.health_url {
                // The probe speaks plain HTTP; an https check needs a custom `Probe`.
                validate_url("health_url", url, &["http"])?;
            }
            regions.push(self.clients(config.clone(), &observer));
        }
        Ok(RegionSet { regions: regions.into(), observer })
    }

    fn clients(&self, config: RegionConfig, observer: &ObserverSlot) -> Region {
        let sdk_region = aws_sdk_dynamodb::config::Region::new(config.name.clone());
        let endpoint = config.dynamodb_endpoint.clone();
        let credentials = crate::aws::credentials_for(endpoint.as_deref(), sdk_region.clone());
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_timeout(self.operation_timeout)
            .build();

        let mut ddb = aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(sdk_region.clone())
            .credentials_provider(credentials.clone())
            .timeout_config(timeouts.clone());
        if let Some(url) = &endpoint {
            ddb = ddb.endpoint_url(url);
        }
        let mut streams = aws_sdk_dynamodbstreams::config::Builder::new()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(sdk_region)
            .credentials_provider(credentials)
            .timeout_config(timeouts);
        if let Some(url) = &endpoint {
            streams = streams.endpoint_url(url);
        }
        let probe = aws_sdk_dynamodb::Client::from_conf(ddb.clone().build());
        let passive = PassiveInterceptor { region: config.name.clone(), slot: observer.clone() };
        Region {
            config,
            dynamodb: aws_sdk_dynamodb::Client::from_conf(ddb.interceptor(passive).build()),
            probe,
            streams: aws_sdk_dynamodbstreams::Client::from_conf(streams.build()),
        }
    }
}

fn validate_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidRegionName(name.to_owned()))
    }
}

/// Checks that `url` parses and has one of `schemes` and a host.
pub(crate) fn validate_url(
    setting: &'static str,
    url: &str,
    schemes: &[&str],
) -> Result<http::Uri, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidUrl { setting, url: url.to_owned(), reason };
    let uri: http::Uri = url.parse().map_err(|err: http::uri::InvalidUri| invalid(err.to_string()))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if !schemes.contains(&scheme) {
        return Err(invalid(format!("expected a {} url", schemes.join(" or "))));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_environment_lists_regions_primary_first_with_their_endpoints() {
        let vars: HashMap<&str, &str> = [
            ("LIFT_REGIONS", "us-east-1, eu-west-1"),
            ("LIFT_DYNAMODB_ENDPOINT_US_EAST_1", "http://127.0.0.1:8000/"),
            ("LIFT_HEALTH_URL_EU_WEST_1", "http://127.0.0.1:3001/health/ready"),
        ]
        .into_iter()
        .collect();
        let set = RegionSet::builder_from_vars(&vars).unwrap().build().unwrap();
        assert_eq!(set.names(), ["us-east-1", "eu-west-1"]);
        assert_eq!(set.primary().dynamodb_endpoint(), Some("http://127.0.0.1:8000"));
        assert_eq!(set.secondaries()[0].dynamodb_endpoint(), None);
        assert_eq!(set.secondaries()[0].health_url(), Some("http://127.0.0.1:3001/health/ready"));
        assert_eq!(set.index_of("eu-west-1"), Some(1));

        let empty: HashMap<&str, &str> = HashMap::new();
        assert_eq!(
            RegionSet::builder_from_vars(&empty).unwrap_err(),
            ConfigError::MissingEnv("LIFT_REGIONS".into())
        );
    }

    #[test]
    fn bad_configurations_fail_at_build() {
        assert_eq!(RegionSet::builder().build().unwrap_err(), ConfigError::NoRegions);
        let dup = RegionSet::builder().region(RegionConfig::new("a")).region(RegionConfig::new("a")).build();
        assert_eq!(dup.unwrap_err(), ConfigError::DuplicateRegion("a".into()));
        let bad_name = RegionSet::builder().region(RegionConfig::new("US East")).build();
        assert!(matches!(bad_name.unwrap_err(), ConfigError::InvalidRegionName(_)));
        let bad_url =
            RegionSet::builder().region(RegionConfig::new("a").dynamodb_endpoint("127.0.0.1:8000")).build();
        assert!(matches!(bad_url.unwrap_err(), ConfigError::InvalidUrl { setting: "dynamodb_endpoint", .. }));
        let https_health = RegionSet::builder()
            .region(RegionConfig::new("a").health_url("https://example.com/health/ready"))
            .build();
        assert!(matches!(https_health.unwrap_err(), ConfigError::InvalidUrl { setting: "health_url", .. }));
        let zero =
            RegionSet::builder().region(RegionConfig::new("a")).connect_timeout(Duration::ZERO).build();
        assert!(matches!(zero.unwrap_err(), ConfigError::Invalid { setting: "connect_timeout", .. }));
    }

    #[test]
    fn only_amazonaws_hosts_use_the_default_chain() {
        assert!(crate::aws::is_aws_endpoint("https://dynamodb.eu-west-1.amazonaws.com"));
        assert!(!crate::aws::is_aws_endpoint("http://127.0.0.1:8000"));
        assert!(!crate::aws::is_aws_endpoint("http://amazonaws.com.evil.test:8000"));
    }
}
