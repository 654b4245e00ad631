//! The layer and its builder.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::service::Limiter;
use super::store::SharedLimit;
use super::{
    Algorithm, FailMode, InvalidConfig, LocalPrefilter, RateLimit, RateLimitKey, DEFAULT_IPV6_PREFIX,
};

/// The default time the shared limit may take before the fail mode applies.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// Applies [`RateLimit`] to services; every service it makes shares one limiter.
///
/// # Examples
///
/// ```
/// # async fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::middleware::rate_limit::InvalidConfig> {
/// use std::time::Duration;
/// use lift::middleware::rate_limit::{Algorithm, FailMode, RateLimitKey, RateLimitLayer};
///
/// let per_tenant = RateLimitLayer::builder()
///     .client(client)
///     .key(RateLimitKey::Tenant)
///     .limit(100)
///     .window(Duration::from_secs(60))
///     .algorithm(Algorithm::SlidingWindow)
///     .fail_mode(FailMode::Closed)
///     .build()?;
/// let app = lift::App::new().layer(per_tenant);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<Limiter>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.limiter;
        f.debug_struct("RateLimitLayer")
            .field("name", &l.shared.name)
            .field("table", &l.shared.table)
            .field("keys", &l.keys)
            .field("ipv6_prefix", &l.ipv6_prefix)
            .field("algorithm", &l.shared.algorithm)
            .field("limit", &l.shared.limit)
            .field("window", &l.shared.window)
            .field("fail_mode", &l.fail_mode)
            .field("prefilter", &l.prefilter.is_some())
            .finish()
    }
}

impl RateLimitLayer {
    /// A builder.
    pub fn builder() -> RateLimitBuilder {
        RateLimitBuilder::default()
    }

    /// Requests whose tenant or user key found no principal (the layer is mounted outside
    /// the JWT layer, or the route is exempt from it); they share the `-` bucket. The first
    /// one logs a warning.
    pub fn unscoped_requests(&self) -> u64 {
        self.limiter.unscoped.count()
    }

    /// The local pre-filter, if enabled.
    pub fn prefilter(&self) -> Option<&LocalPrefilter> {
        self.limiter.prefilter.as_ref()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::from_parts(inner, Arc::clone(&self.limiter))
    }
}

/// Configures a [`RateLimitLayer`].
///
/// Required: a DynamoDB client, at least one key, a limit and a window. Defaults: fixed
/// window, fail closed, the local pre-filter on, table
/// [`tables::rate_limits`](crate::store::tables::rate_limits)`().resolve_name()`, name
/// `lift`, store timeout 500 ms, IPv6 clients counted per /64.
///
/// [`RateLimitBuilder::from_env`] reads the same settings from the environment;
/// methods called afterwards win over it.
#[derive(Default)]
#[must_use]
pub struct RateLimitBuilder {
    client: Option<aws_sdk_dynamodb::Client>,
    table: Option<String>,
    name: Option<String>,
    keys: Vec<RateLimitKey>,
    env_keys: bool,
    ipv6_prefix: Option<u8>,
    limit: Option<u32>,
    window: Option<Duration>,
    algorithm: Algorithm,
    fail_mode: FailMode,
    prefilter: Option<bool>,
    prefilter_burst: Option<u32>,
    store_timeout: Option<Duration>,
}

impl std::fmt::Debug for RateLimitBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitBuilder")
            .field("table", &self.table)
            .field("keys", &self.keys)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("algorithm", &self.algorithm)
            .field("fail_mode", &self.fail_mode)
            .finish_non_exhaustive()
    }
}

impl RateLimitBuilder {
    /// A builder seeded from the environment:
    ///
    /// | Variable | |
    /// |---|---|
    /// | `LIFT_RATE_LIMIT_LIMIT` | requests per window |
    /// | `LIFT_RATE_LIMIT_WINDOW_SECS` | window length |
    /// | `LIFT_RATE_LIMIT_ALGORITHM` | `fixed-window`, `sliding-window` or `token-bucket` |
    /// | `LIFT_RATE_LIMIT_KEY` | comma-separated `tenant`, `user`, `ip`, `route` |
    /// | `LIFT_RATE_LIMIT_IPV6_PREFIX` | the IPv6 prefix length an `ip` key counts by |
    /// | `LIFT_RATE_LIMIT_FAIL` | `open` or `closed` |
    /// | `LIFT_RATE_LIMIT_NAME` | the limiter's name in its item keys |
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::middleware::rate_limit::InvalidConfig> {
    /// use lift::middleware::rate_limit::{RateLimitBuilder, RateLimitKey};
    ///
    /// let layer = RateLimitBuilder::from_env()?.client(client).key(RateLimitKey::Ip).limit(10).window(std::time::Duration::from_secs(1)).build()?;
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Result<Self, InvalidConfig> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidConfig> {
        let mut builder = Self::default();
        let env = crate::config::Env::from_lookup(lookup);
        let var = |name: &str| env.get(name);
        if let Some(limit) = var("LIFT_RATE_LIMIT_LIMIT") {
            builder.limit =
                Some(limit.parse().map_err(|_| {
                    InvalidConfig::new("rate limit", "LIFT_RATE_LIMIT_LIMIT must be a number")
                })?);
        }
        if let Some(secs) = var("LIFT_RATE_LIMIT_WINDOW_SECS") {
            let secs: f64 = secs.parse().map_err(|_| {
                InvalidConfig::new("rate limit", "LIFT_RATE_LIMIT_WINDOW_SECS must be a number")
            })?;
            builder.window = Some(Duration::try_from_secs_f64(secs).map_err(|_| {
                InvalidConfig::new("rate limit", "LIFT_RATE_LIMIT_WINDOW_SECS must be positive")
            })?);
        }
        if let Some(name) = var("LIFT_RATE_LIMIT_ALGORITHM") {
            builder.algorithm = Algorithm::parse(&name).ok_or_else(|| {
                InvalidConfig::new(
                    "rate limit",
                    "LIFT_RATE_LIMIT_ALGORITHM must be fixed-window, sliding-window or token-bucket",
                )
            })?;
        }
        if let Some(keys) = var("LIFT_RATE_LIMIT_KEY") {
            for name in keys.split(',') {
                builder.env_keys = true;
                builder.keys.push(RateLimitKey::parse(name).ok_or_else(|| {
                    InvalidConfig::new(
                        "rate limit",
                        "LIFT_RATE_LIMIT_KEY must list tenant, user, ip or route",
                    )
                })?);
            }
        }
        if let Some(len) = var("LIFT_RATE_LIMIT_IPV6_PREFIX") {
            builder.ipv6_prefix = Some(len.parse().map_err(|_| {
                InvalidConfig::new("rate limit", "LIFT_RATE_LIMIT_IPV6_PREFIX must be a number from 1 to 128")
            })?);
        }
        if let Some(mode) = var("LIFT_RATE_LIMIT_FAIL") {
            builder.fail_mode = FailMode::parse(&mode).ok_or_else(|| {
                InvalidConfig::new("rate limit", "LIFT_RATE_LIMIT_FAIL must be open or closed")
            })?;
        }
        builder.name = var("LIFT_RATE_LIMIT_NAME");
        Ok(builder)
    }

    /// The DynamoDB client of the shared limit.
    pub fn client(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The physical table name.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// The limiter's name, the first part of its item keys. Item keys also name the
    /// algorithm, limit and window, so layers that differ in those never share an item;
    /// layers alike in all three but meant to count apart on one table (the same tenant
    /// limit on two groups of routes, say) need different names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a part to the key (`.key(Tenant).key(Route)`: per tenant and route).
    /// The first call replaces keys read from the environment.
    pub fn key(mut self, key: RateLimitKey) -> Self {
        if std::mem::take(&mut self.env_keys) {
            self.keys.clear();
        }
        self.keys.push(key);
        self
    }

    /// Replaces the key parts.
    pub fn keys(mut self, keys: impl IntoIterator<Item = RateLimitKey>) -> Self {
        self.env_keys = false;
        self.keys = keys.into_iter().collect();
        self
    }

    /// How many leading bits of an IPv6 client address make its bucket under
    /// [`RateLimitKey::Ip`], from 1 to 128 (default [`DEFAULT_IPV6_PREFIX`], 64). 128
    /// counts each address, which a client holding a whole prefix escapes by changing
    /// address; 48 or 56 counts a whole site. IPv4 clients always count per address.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::middleware::rate_limit::InvalidConfig> {
    /// use lift::middleware::rate_limit::{RateLimitKey, RateLimitLayer};
    ///
    /// let per_site = RateLimitLayer::builder()
    ///     .client(client)
    ///     .key(RateLimitKey::Ip)
    ///     .ipv6_prefix(56)
    ///     .limit(100)
    ///     .window(std::time::Duration::from_secs(60))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn ipv6_prefix(mut self, len: u8) -> Self {
        self.ipv6_prefix = Some(len);
        self
    }

    /// Requests per window (for the token bucket: its capacity).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The window (for the token bucket: the time to refill it completely).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// The algorithm (default: fixed window).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// What to do when DynamoDB cannot answer (default: closed).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Turns the local pre-filter off: every request then costs a DynamoDB call.
    pub fn without_prefilter(mut self) -> Self {
        self.prefilter = Some(false);
        self
    }

    /// Sizes the local pre-filter's burst explicitly. Below the default (see
    /// [`LocalPrefilter`]) it may refuse requests the shared limit would admit.
    pub fn prefilter_burst(mut self, burst: u32) -> Self {
        self.prefilter = Some(true);
        self.prefilter_burst = Some(burst);
        self
    }

    /// How long DynamoDB may take before the fail mode applies (default 500 ms).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = Some(timeout);
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<RateLimitLayer, InvalidConfig> {
        let client = self.client.ok_or_else(|| InvalidConfig::new("rate limit", "set a dynamodb client"))?;
        if self.keys.is_empty() {
            return Err(InvalidConfig::new("rate limit", "set at least one key"));
        }
        let limit = self
            .limit
            .filter(|l| *l > 0)
            .ok_or_else(|| InvalidConfig::new("rate limit", "set a limit of at least 1"))?;
        let window = self
            .window
            .filter(|w| *w >= Duration::from_millis(1))
            .ok_or_else(|| InvalidConfig::new("rate limit", "set a window of at least 1 ms"))?;
        let ipv6_prefix = self
            .ipv6_prefix
            .map_or(Some(DEFAULT_IPV6_PREFIX), |len| (1..=128).contains(&len).then_some(len))
            .ok_or_else(|| InvalidConfig::new("rate limit", "the ipv6 prefix must be from 1 to 128 bits"))?;
        let name = self.name.unwrap_or_else(|| "lift".to_owned());
        if name.is_empty() || name.contains('#') {
            return Err(InvalidConfig::new("rate limit", "the name must be non-empty and without `#`"));
        }
        let prefilter = match (self.prefilter.unwrap_or(true), self.prefilter_burst) {
            (false, _) => None,
            (true, Some(burst)) => Some(LocalPrefilter::new(limit, burst, window)?),
            (true, None) => Some(LocalPrefilter::for_algorithm(self.algorithm, limit, window)?),
        };
        let table = self.table.unwrap_or_else(|| crate::store::tables::rate_limits().resolve_name());
        let timeout = self.store_timeout.unwrap_or(DEFAULT_STORE_TIMEOUT);
        let shared = SharedLimit::new(client, table, name, self.algorithm, limit, window, timeout);
        Ok(RateLimitLayer {
            limiter: Arc::new(Limiter {
                keys: self.keys,
                ipv6_prefix,
                prefilter,
                shared,
                fail_mode: self.fail_mode,
                unscoped: crate::unscoped::Unscoped::new("rate limit"),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn from_env_vars_reads_through_the_shared_reader() {
        let builder = RateLimitBuilder::from_env_vars(vars(&[
            ("LIFT_RATE_LIMIT_LIMIT", " 50 "),
            ("LIFT_RATE_LIMIT_WINDOW_SECS", "60"),
            ("LIFT_RATE_LIMIT_KEY", "tenant,route"),
            ("LIFT_RATE_LIMIT_NAME", "   "),
            ("LIFT_RATE_LIMIT_IPV6_PREFIX", "56"),
        ]))
        .unwrap();
        assert_eq!(builder.ipv6_prefix, Some(56));
        assert_eq!(builder.limit, Some(50), "values are trimmed");
        assert_eq!(builder.window, Some(Duration::from_secs(60)));
        assert_eq!(builder.keys.len(), 2);
        assert_eq!(builder.name, None, "a blank value counts as unset");
        // Explicit settings win over the environment.
        let builder = builder.limit(7).key(RateLimitKey::Ip);
        assert_eq!((builder.limit, builder.keys.len()), (Some(7), 1));
    }

    #[test]
    fn the_ipv6_prefix_is_checked_at_build() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let build = |len: Option<u8>| {
            let builder = RateLimitLayer::builder()
                .client(client.clone())
                .table("t")
                .key(RateLimitKey::Ip)
                .limit(1)
                .window(Duration::from_secs(1));
            match len {
                Some(len) => builder.ipv6_prefix(len),
                None => builder,
            }
            .build()
            .map(|l| l.limiter.ipv6_prefix)
        };
        assert_eq!(build(None).unwrap(), DEFAULT_IPV6_PREFIX);
        assert_eq!(build(Some(128)).unwrap(), 128);
        assert_eq!(build(Some(1)).unwrap(), 1);
        for bad in [0, 129] {
            let err = build(Some(bad)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid rate limit configuration: the ipv6 prefix must be from 1 to 128 bits"
            );
        }
        let err =
            RateLimitBuilder::from_env_vars(vars(&[("LIFT_RATE_LIMIT_IPV6_PREFIX", "/64")])).unwrap_err();
        assert!(err.to_string().contains("LIFT_RATE_LIMIT_IPV6_PREFIX"), "{err}");
    }

    #[test]
    fn a_bad_variable_is_one_invalid_config_naming_it_not_its_value() {
        let err = RateLimitBuilder::from_env_vars(vars(&[("LIFT_RATE_LIMIT_LIMIT", "s3cr3t")])).unwrap_err();
        assert_eq!(err.component(), "rate limit");
        assert_eq!(
            err.to_string(),
            "invalid rate limit configuration: LIFT_RATE_LIMIT_LIMIT must be a number"
        );
    }
}
