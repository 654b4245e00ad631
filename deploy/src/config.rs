//! The deployment file, `lift.toml`: what the code cannot say about its deployment.
//!
//! Every key but `service.name`, `service.regions` and `function.code` has a default a
//! careful operator would pick; see `deploy/README.md` for the full reference. A bad or
//! contradictory file is refused with an error naming the key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Error;

/// The retention periods CloudWatch Logs accepts, in days.
pub const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/// A whole deployment file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// `[service]`.
    pub service: ServiceConfig,
    /// `[function]`.
    pub function: FunctionConfig,
    /// `[api]`.
    #[serde(default)]
    pub api: ApiConfig,
    /// `[tables]`.
    #[serde(default)]
    pub tables: TablesConfig,
    /// `[secrets]`: name → Secrets Manager secret ARN, or (`[secrets.<name>]`) region →
    /// the ARN of that region's replica. Each region's function gets
    /// `LIFT_SECRET_<NAME>_ARN` and `secretsmanager:GetSecretValue` on exactly its own
    /// region's ARN ([`RegionalArn::in_region`]).
    #[serde(default)]
    pub secrets: BTreeMap<String, RegionalArn>,
    /// `[kms]`.
    #[serde(default)]
    pub kms: KmsConfig,
    /// `[logs]`.
    #[serde(default)]
    pub logs: LogsConfig,
    /// `[alarms]`.
    #[serde(default)]
    pub alarms: AlarmsConfig,
    /// `[events]`.
    #[serde(default)]
    pub events: EventsConfig,
    /// `[domain]`: a custom domain with Route 53 failover between the regions.
    pub domain: Option<DomainConfig>,
}

/// `[service]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service name: lower case letters, digits and `-`, at most 40 characters. It
    /// prefixes every physical name.
    pub name: String,
    /// The regions, primary first (one template per region).
    pub regions: Vec<String>,
}

/// `[function]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// The deployment package in S3: `s3://bucket/key.zip`, in every region's bucket of the
    /// same name.
    pub code: String,
    /// Memory in MB, 128 to 10240 (default 512).
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Timeout in seconds, 1 to 900 (default 10). Behind the HTTP API at most 29.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// `arm64` (default) or `x86_64`.
    #[serde(default = "default_architecture")]
    pub architecture: String,
    /// Reserved concurrency (default 100): a cap that keeps one function from starving
    /// the account, and a floor that others cannot take.
    #[serde(default = "default_concurrency")]
    pub reserved_concurrency: u32,
    /// Extra environment variables (names must not start with `AWS_` or `LIFT_`).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

fn default_memory() -> u32 {
    512
}
fn default_timeout() -> u32 {
    10
}
fn default_architecture() -> String {
    "arm64".into()
}
fn default_concurrency() -> u32 {
    100
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Add a `$default` catch-all route as well as the App's own (default false: unknown
    /// paths never reach the function).
    #[serde(default)]
    pub catch_all: bool,
    /// Throttling of the whole stage: steady requests per second (default 100).
    #[serde(default = "default_rate")]
    pub throttle_rate: u32,
    /// Throttling: burst (default 200).
    #[serde(default = "default_burst")]
    pub throttle_burst: u32,
    /// `[api.jwt]`: an API Gateway JWT authorizer on every route with a requirement.
    pub jwt: Option<JwtConfig>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { catch_all: false, throttle_rate: default_rate(), throttle_burst: default_burst(), jwt: None }
    }
}

fn default_rate() -> u32 {
    100
}
fn default_burst() -> u32 {
    200
}

/// `[api.jwt]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The issuer URL (`https://`).
    pub issuer: String,
    /// The accepted audiences (at least one).
    pub audience: Vec<String>,
    /// Where the function fetches the issuer's signing keys (`https://`); default
    /// [`JwtConfig::jwks_url`]'s OIDC/Cognito convention.
    #[serde(default)]
    pub jwks_url: Option<String>,
}

impl JwtConfig {
    /// The issuer's JWK set: `jwks_url`, else the issuer + `/.well-known/jwks.json`, where
    /// OIDC providers and Cognito user pools publish it.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = lift_deploy::DeployConfig::from_toml(
    ///     "[service]\nname = \"svc\"\nregions = [\"us-east-1\"]\n\
    ///      [function]\ncode = \"s3://b/k.zip\"\n\
    ///      [api.jwt]\nissuer = \"https://id.example.com/\"\naudience = [\"svc\"]\n",
    /// )?;
    /// let jwt = config.api.jwt.unwrap();
    /// assert_eq!(jwt.jwks_url(), "https://id.example.com/.well-known/jwks.json");
    /// # Ok::<(), lift_deploy::Error>(())
    /// ```
    pub fn jwks_url(&self) -> String {
        match &self.jwks_url {
            Some(url) => url.clone(),
            None => format!("{}/.well-known/jwks.json", self.issuer.trim_end_matches('/')),
        }
    }
}

/// `[tables]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesConfig {
    /// The prefix of physical table names (default `<service>-`); the function gets it as
    /// `LIFT_TABLE_PREFIX`, which [`lift::store::TableDef::resolve_name`] reads.
    pub prefix: Option<String>,
}

/// `[kms]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsConfig {
    /// Customer-managed keys per region for tables, logs, the queue and the function's
    /// environment. Without it a single-region template creates one (rotation on); a
    /// multi-region one needs a key for every region (replicas are encrypted in theirs).
    #[serde(default)]
    pub data_keys: BTreeMap<String, String>,
    /// The key lift's envelope encryption and subject keys use (`LIFT_KMS_KEY_ID`): the
    /// function may encrypt, decrypt and generate data keys with it, nothing else. One ARN
    /// in the service's region, or (`[kms.envelope_key]`) region → that region's replica of
    /// one multi-region key.
    pub envelope_key: Option<RegionalArn>,
}

/// An ARN from the file that each region's function uses at run time: one ARN, or one per
/// region (`[secrets.<name>]` with `us-east-1 = "..."`, `eu-west-1 = "..."`).
///
/// A service in several regions names each region's own replica: a function that reached
/// into another region would stop cold-starting when that region goes dark, the very event
/// the second region exists for. Validation also refuses entries that are not replicas of
/// one secret or key (another account, name, suffix or key id than the primary region's),
/// which would otherwise fail only at failover.
///
/// # Examples
///
/// ```
/// let config = lift_deploy::DeployConfig::from_toml(r#"
///     [service]
///     name = "svc"
///     regions = ["us-east-1"]
///     [function]
///     code = "s3://b/k.zip"
///     [secrets]
///     key = "arn:aws:secretsmanager:us-east-1:1:secret:key-AbCdEf"
/// "#)?;
/// let arn = config.secrets["key"].in_region("us-east-1");
/// assert_eq!(arn, Some("arn:aws:secretsmanager:us-east-1:1:secret:key-AbCdEf"));
/// # Ok::<(), lift_deploy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionalArn {
    /// One ARN (`name = "arn:..."`): for a service in one region.
    One(String),
    /// Region → the ARN of that region's replica.
    PerRegion(BTreeMap<String, String>),
}

impl RegionalArn {
    /// The ARN the stack of `region` uses: its entry, or the one ARN (which validation
    /// allows for a single-region service only).
    pub fn in_region(&self, region: &str) -> Option<&str> {
        match self {
            Self::One(arn) => Some(arn),
            Self::PerRegion(arns) => arns.get(region).map(String::as_str),
        }
    }
}

impl<'de> Deserialize<'de> for RegionalArn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RegionalArn;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an ARN, or a table of region = ARN")
            }

            fn visit_str<E: serde::de::Error>(self, arn: &str) -> Result<RegionalArn, E> {
                Ok(RegionalArn::One(arn.to_owned()))
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<RegionalArn, M::Error> {
                let arns = Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RegionalArn::PerRegion(arns))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `[logs]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Retention in days, one of CloudWatch's values (default 365: a year, as PCI DSS
    /// 10.5.1 asks).
    #[serde(default = "default_retention")]
    pub retention_days: u32,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self { retention_days: default_retention() }
    }
}

fn default_retention() -> u32 {
    365
}

/// `[alarms]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsConfig {
    /// Create the basic alarms (function errors and throttles, API 5xx); default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where alarms notify: an SNS topic ARN in one of the service's regions. CloudWatch
    /// notifies topics of the alarm's own region only, so it serves that region's alarms.
    /// Without a topic the alarms still change state (rollout gates read them), and
    /// [`DeployConfig::warnings`] says that they notify no one.
    pub topic: Option<String>,
    /// `[alarms.topics]`: a topic per region (region → SNS topic ARN in that region), for a
    /// service in several regions; instead of `topic`.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// Function errors in 5 minutes that raise the alarm (default 5, at least 1).
    #[serde(default = "default_errors")]
    pub errors_threshold: u32,
    /// API 5xx answers in 5 minutes that raise the alarm (default 10, at least 1).
    #[serde(default = "default_5xx")]
    pub api_5xx_threshold: u32,
}

impl AlarmsConfig {
    /// The topic the alarms of `region` notify, if any: its entry in `topics`, or `topic`
    /// when that topic is in `region`.
    pub fn topic_in(&self, region: &str) -> Option<&str> {
        match self.topics.get(region) {
            Some(arn) => Some(arn),
            None => self.topic.as_deref().filter(|arn| arn_region(arn) == Some(region)),
        }
    }
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            topic: None,
            topics: BTreeMap::new(),
            errors_threshold: default_errors(),
            api_5xx_threshold: default_5xx(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_errors() -> u32 {
    5
}
fn default_5xx() -> u32 {
    10
}

/// `[events]`: where the App's non-HTTP sources come from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// The SQS queue ARNs the function polls (needed when the App handles SQS).
    #[serde(default)]
    pub sqs_queues: Vec<String>,
    /// Schedule expression per scheduled rule the App handles, e.g.
    /// `nightly-settlement = "cron(0 2 * * ? *)"`.
    #[serde(default)]
    pub schedules: BTreeMap<String, String>,
}

/// `[domain]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// The name clients use, e.g. `api.example.com`. Each region also serves
    /// `api.<region>.example.com` (the first label, then the region), which Route 53's
    /// health checks probe at `/health/ready`.
    pub name: String,
    /// The Route 53 hosted zone id of the domain.
    pub hosted_zone_id: String,
    /// The ACM certificate per region, covering both names.
    pub certificates: BTreeMap<String, String>,
}

impl DomainConfig {
    /// The regional name of `region`: `api.example.com` → `api.us-east-1.example.com`.
    pub fn regional_name(&self, region: &str) -> String {
        match self.name.split_once('.') {
            Some((first, rest)) => format!("{first}.{region}.{rest}"),
            None => format!("{}.{region}", self.name),
        }
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::Config { key: key.to_owned(), reason: reason.into() }
}

fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// The region field of an ARN (`arn:aws:sns:us-east-1:...` → `us-east-1`).
fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3)
}

/// The resource field of an ARN (`arn:aws:kms:us-east-1:1:key/a` → `key/a`).
fn arn_resource(arn: &str) -> Option<&str> {
    arn.splitn(6, ':').nth(5)
}

/// How a service in several regions gets a secret into each of them.
const REPLICATE_SECRET: &str =
    "replicate the secret to every region of the service (Secrets Manager keeps a replica of the same name in each)";
/// How it gets the envelope key into each of them.
const REPLICATE_KEY: &str =
    "make the key a multi-region key (key/mrk-...) and replicate it to every region of the service";

/// A setting whose per-region ARNs must name replicas of one thing: what each region's
/// function reads must be what the others read (a secret) or decrypt (a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replicated {
    /// `secrets.<name>`: a Secrets Manager secret.
    Secret,
    /// `kms.envelope_key`: a KMS key.
    Key,
}

/// The fields of an ARN a replica shares with its primary: all but the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplicaArn<'a> {
    partition: &'a str,
    account: &'a str,
    /// `secret:<name>-<suffix>`, `key/<id>` or `alias/<name>`.
    resource: &'a str,
}

impl Replicated {
    fn service(self) -> &'static str {
        match self {
            Self::Secret => "secretsmanager",
            Self::Key => "kms",
        }
    }

    fn replicate(self) -> &'static str {
        match self {
            Self::Secret => REPLICATE_SECRET,
            Self::Key => REPLICATE_KEY,
        }
    }

    /// Parses `value` as an ARN of this kind, or refuses it under `key`.
    fn parse<'a>(self, key: &str, value: &'a str) -> Result<ReplicaArn<'a>, Error> {
        arn_of(key, value, self.service())?;
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let arn = ReplicaArn { partition: parts[1], account: parts[4], resource: parts[5] };
        let expected = match self {
            Self::Secret => "arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters> (the full ARN, with the suffix Secrets Manager adds to the name)",
            Self::Key => "arn:<partition>:kms:<region>:<account>:key/<key id> or ...:alias/<alias name>",
        };
        let well_formed = !arn.partition.is_empty()
            && !arn.account.is_empty()
            && arn.account.chars().all(|c| c.is_ascii_digit())
            && match self {
                Self::Secret => {
                    arn.resource.strip_prefix("secret:").and_then(|r| r.rsplit_once('-')).is_some_and(
                        |(name, suffix)| {
                            !name.is_empty()
                                && suffix.len() == 6
                                && suffix.chars().all(|c| c.is_ascii_alphanumeric())
                        },
                    )
                }
                Self::Key => ["key/", "alias/"]
                    .iter()
                    .any(|p| arn.resource.strip_prefix(p).is_some_and(|rest| !rest.is_empty())),
            };
        if well_formed {
            Ok(arn)
        } else {
            Err(invalid(key, format!("expected {expected}, got {value:?}")))
        }
    }

    /// Refuses `other`, the ARN listed for `region`, unless it names a replica of `first`,
    /// the primary's.
    fn check_same(
        self,
        key: &str,
        (primary, first): (&str, ReplicaArn<'_>),
        (region, other): (&str, ReplicaArn<'_>),
    ) -> Result<(), Error> {
        let what = match self {
            Self::Secret => "secret",
            Self::Key => "key",
        };
        let two = |reason: String| {
            Err(invalid(key, format!("{reason}; {}, and name its replica in each region", self.replicate())))
        };
        if first.partition != other.partition {
            return two(format!(
                "{primary} names a {what} in partition {} and {region} one in {}: replicas stay in their primary's partition, so these are two {what}s",
                first.partition, other.partition
            ));
        }
        if first.account != other.account {
            return two(format!(
                "{primary} names a {what} of account {} and {region} one of account {}: replicas stay in their primary's account, so these are two {what}s",
                first.account, other.account
            ));
        }
        match self {
            Self::Secret if first.resource != other.resource => {
                let (name, _) = first.resource.rsplit_once('-').unwrap_or_default();
                let (other_name, _) = other.resource.rsplit_once('-').unwrap_or_default();
                let why = if name == other_name {
                    "the same name with another suffix is another secret (a secret deleted and created again gets a new suffix)"
                } else {
                    "a replica keeps its primary's name and suffix"
                };
                two(format!(
                    "{primary} names {} and {region} {}: {why}, so after a failover {region} would read another value than {primary} does",
                    first.resource, other.resource
                ))
            }
            // Subject keys wrapped in one region reach the others through the global table:
            // only a replica of the same multi-region key unwraps them there.
            Self::Key if first.resource != other.resource => two(format!(
                "{primary} names {} and {region} {}: what one region encrypts, another decrypts (subject keys replicate with the global table), so every region needs a replica of the same key/mrk-...",
                first.resource, other.resource
            )),
            Self::Key if !first.resource.starts_with("key/mrk-") => two(format!(
                "{primary} and {region} both name {}, a single-region key: it exists in one region only, and only a multi-region key (key/mrk-...) has replicas that decrypt what another region encrypted",
                first.resource
            )),
            _ => Ok(()),
        }
    }
}

/// Refuses `value` unless it is one ARN of `service`. Every ARN of the file ends up in
/// the function's policy or names one resource: IAM reads `*` and `?` in a resource as
/// wildcards, so `...:key/*` would grant every key of the account (and a secret's name
/// with `*` every matching secret), against the one-ARN-per-statement rule that leaves
/// `*` to X-Ray and ListStreams only.
fn arn_of(key: &str, value: &str, service: &str) -> Result<(), Error> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    if !(parts.len() == 6 && parts[0] == "arn" && parts[2] == service && !parts[5].is_empty()) {
        return Err(invalid(
            key,
            format!("expected an {service} ARN (arn:aws:{service}:...), got {value:?}"),
        ));
    }
    if value.contains(['*', '?']) {
        return Err(invalid(
            key,
            format!(
                "{value:?} has a wildcard ('*' or '?'): IAM would grant every {service} resource it matches; name one resource's full ARN"
            ),
        ));
    }
    Ok(())
}

impl DeployConfig {
    /// Parses and checks a `lift.toml`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key: unknown keys, wrong types, out-of-range values and
    /// contradictions (a region without its key or certificate, a timeout API Gateway
    /// cannot wait for...).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = lift_deploy::DeployConfig::from_toml(r#"
    ///     [service]
    ///     name = "payments"
    ///     regions = ["us-east-1"]
    ///     [function]
    ///     code = "s3://artifacts/payments.zip"
    /// "#)?;
    /// assert_eq!(config.function.architecture, "arm64");
    /// assert_eq!(config.logs.retention_days, 365);
    /// # Ok::<(), lift_deploy::Error>(())
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let de = toml::Deserializer::new(text);
        let config: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let reason = inner.message().to_owned();
            Error::Config { key: if key == "." { "(top level)".into() } else { key }, reason }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and checks a `lift.toml` from disk.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Config`].
    pub fn from_path(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }

    /// The primary region.
    pub fn primary(&self) -> &str {
        &self.service.regions[0]
    }

    /// The physical table-name prefix.
    pub fn table_prefix(&self) -> String {
        self.tables.prefix.clone().unwrap_or_else(|| format!("{}-", self.service.name))
    }

    /// The code location: bucket and key.
    pub fn code(&self) -> (&str, &str) {
        let rest = self.function.code.trim_start_matches("s3://");
        rest.split_once('/').unwrap_or((rest, ""))
    }

    fn validate(&self) -> Result<(), Error> {
        let name = &self.service.name;
        if name.is_empty()
            || name.len() > 40
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || name.starts_with('-')
        {
            return Err(invalid("service.name", "use 1 to 40 lower case letters, digits and '-'"));
        }
        let regions = &self.service.regions;
        if regions.is_empty() {
            return Err(invalid("service.regions", "name at least one region (the primary first)"));
        }
        for (i, region) in regions.iter().enumerate() {
            if !valid_region(region) {
                return Err(invalid(
                    &format!("service.regions[{i}]"),
                    format!("{region:?} is not a region name"),
                ));
            }
            if regions[..i].contains(region) {
                return Err(invalid(&format!("service.regions[{i}]"), format!("{region} is listed twice")));
            }
        }
        let f = &self.function;
        match f.code.strip_prefix("s3://").and_then(|r| r.split_once('/')) {
            Some((bucket, key)) if !bucket.is_empty() && key.ends_with(".zip") => {}
            _ => return Err(invalid("function.code", "expected s3://<bucket>/<key>.zip")),
        }
        if !(128..=10240).contains(&f.memory_mb) {
            return Err(invalid("function.memory_mb", "must be between 128 and 10240"));
        }
        if !(1..=900).contains(&f.timeout_seconds) {
            return Err(invalid("function.timeout_seconds", "must be between 1 and 900"));
        }
        // API Gateway stops waiting after 29 s: a longer function timeout only hides failures.
        if f.timeout_seconds > 29 {
            return Err(invalid(
                "function.timeout_seconds",
                "the HTTP API waits at most 29 s for an answer; use at most 29",
            ));
        }
        if f.architecture != "arm64" && f.architecture != "x86_64" {
            return Err(invalid("function.architecture", "must be arm64 or x86_64"));
        }
        if f.reserved_concurrency == 0 {
            return Err(invalid("function.reserved_concurrency", "0 would throttle every invocation"));
        }
        for var in f.environment.keys() {
            if var.starts_with("AWS_") || var.starts_with("LIFT_") {
                return Err(invalid(
                    &format!("function.environment.{var}"),
                    "AWS_ and LIFT_ variables are set by Lambda and by synthesis",
                ));
            }
        }
        if self.api.throttle_rate == 0 || self.api.throttle_burst < self.api.throttle_rate {
            return Err(invalid(
                "api.throttle_burst",
                "the burst must be at least the rate, and the rate above 0",
            ));
        }
        if let Some(jwt) = &self.api.jwt {
            if !jwt.issuer.starts_with("https://") {
                return Err(invalid("api.jwt.issuer", "the issuer must be an https:// URL"));
            }
            if jwt.audience.is_empty() {
                return Err(invalid("api.jwt.audience", "name at least one audience"));
            }
            // The function gets them comma-joined (`LIFT_JWT_AUDIENCE`).
            if jwt.audience.iter().any(|a| a.is_empty() || a.contains(',')) {
                return Err(invalid("api.jwt.audience", "an audience is not empty and has no ','"));
            }
            // The function fetches signing keys from it: over plain http a network attacker
            // could hand it keys of their own and mint any token.
            if jwt.jwks_url.as_ref().is_some_and(|url| !url.starts_with("https://")) {
                return Err(invalid("api.jwt.jwks_url", "the JWK set must be an https:// URL"));
            }
        }
        for (name, arn) in &self.secrets {
            let key = format!("secrets.{name}");
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(&key, "secret names are letters, digits and '_'"));
            }
            self.validate_regional(&key, arn, Replicated::Secret)?;
        }
        for (region, arn) in &self.kms.data_keys {
            let key = format!("kms.data_keys.{region}");
            arn_of(&key, arn, "kms")?;
            if !regions.contains(region) {
                return Err(invalid(&key, format!("{region} is not in service.regions")));
            }
            if arn.split(':').nth(3) != Some(region.as_str()) {
                return Err(invalid(&key, format!("the key must be in {region}")));
            }
            // The function's policy grants its data key by the configured ARN (and CloudWatch
            // Logs and Lambda take a key ARN only): an alias ARN would grant the alias, not
            // the key that encrypts the table, logs and queue.
            if !arn_resource(arn).is_some_and(|r| r.starts_with("key/")) {
                return Err(invalid(
                    &key,
                    format!(
                        "name the key ARN (arn:aws:kms:{region}:<account>:key/<key id>): an IAM policy that names an alias ARN grants the alias, not its key"
                    ),
                ));
            }
        }
        if regions.len() > 1 {
            if let Some(missing) = regions.iter().find(|r| !self.kms.data_keys.contains_key(*r)) {
                return Err(invalid(
                    &format!("kms.data_keys.{missing}"),
                    "a multi-region service needs a customer-managed key in every region",
                ));
            }
        }
        if let Some(arn) = &self.kms.envelope_key {
            self.validate_envelope_key(arn)?;
        }
        if !LOG_RETENTION_DAYS.contains(&self.logs.retention_days) {
            return Err(invalid("logs.retention_days", format!("must be one of {LOG_RETENTION_DAYS:?}")));
        }
        self.validate_alarms()?;
        if let Some(prefix) = &self.tables.prefix {
            // Without a prefix the names, and so the function's rights, would be other services' tables.
            if prefix.is_empty() {
                return Err(invalid(
                    "tables.prefix",
                    "an empty prefix would give the function access to every unprefixed table of the account; leave the key out for the default <service>-",
                ));
            }
            if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                return Err(invalid(
                    "tables.prefix",
                    "table names allow letters, digits, '-', '_' and '.' only",
                ));
            }
        }
        for (i, arn) in self.events.sqs_queues.iter().enumerate() {
            let key = format!("events.sqs_queues[{i}]");
            arn_of(&key, arn, "sqs")?;
            // Lambda polls queues of its own region, and only the primary polls (see cfn::events).
            if arn_region(arn) != Some(self.primary()) {
                return Err(invalid(
                    &key,
                    format!("the queue must be in the primary region, {}", self.primary()),
                ));
            }
        }
        for (rule, expr) in &self.events.schedules {
            if !(expr.starts_with("rate(") || expr.starts_with("cron(")) || !expr.ends_with(')') {
                return Err(invalid(&format!("events.schedules.{rule}"), "expected rate(...) or cron(...)"));
            }
        }
        match &self.domain {
            Some(domain) => {
                if domain.name.split('.').count() < 3 || domain.name.ends_with('.') {
                    return Err(invalid("domain.name", "expected a name such as api.example.com"));
                }
                if domain.hosted_zone_id.is_empty() {
                    return Err(invalid("domain.hosted_zone_id", "must not be empty"));
                }
                // Route 53 failover records are a primary and a secondary.
                if regions.len() > 2 {
                    return Err(invalid(
                        "domain",
                        "Route 53 failover routes between two regions; list at most two in service.regions",
                    ));
                }
                for region in regions {
                    let key = format!("domain.certificates.{region}");
                    let arn = domain.certificates.get(region).ok_or_else(|| {
                        invalid(&key, "every region needs an ACM certificate for the custom domain")
                    })?;
                    arn_of(&key, arn, "acm")?;
                }
            }
            None if regions.len() > 1 => {
                return Err(invalid("domain", "a multi-region service needs [domain] for failover"));
            }
            None => {}
        }
        Ok(())
    }

    /// Checks an ARN the function uses at run time (`secrets.<name>`, `kms.envelope_key`):
    /// in a service of several regions, one per region, each in its region, and all of
    /// them replicas of one secret or key.
    fn validate_regional(&self, key: &str, value: &RegionalArn, kind: Replicated) -> Result<(), Error> {
        let regions = &self.service.regions;
        let service = kind.service();
        let replicate = kind.replicate();
        match value {
            RegionalArn::One(arn) => {
                kind.parse(key, arn)?;
                if regions.len() > 1 {
                    return Err(invalid(
                        key,
                        format!(
                            "one ARN would make every region's function depend on {} at run time, so its outage would stop the others too; {replicate} and name each region's replica ARN under [{key}] ({})",
                            arn_region(arn).unwrap_or_default(),
                            regions.iter().map(|r| format!("{r} = \"arn:aws:{service}:{r}:...\"")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            RegionalArn::PerRegion(arns) => {
                for (region, arn) in arns {
                    let key = format!("{key}.{region}");
                    kind.parse(&key, arn)?;
                    if !regions.contains(region) {
                        return Err(invalid(&key, format!("{region} is not in service.regions")));
                    }
                    if arn_region(arn) != Some(region.as_str()) {
                        return Err(invalid(&key, format!("the replica must be in {region}")));
                    }
                }
                if let Some(missing) = regions.iter().find(|r| !arns.contains_key(*r)) {
                    return Err(invalid(
                        &format!("{key}.{missing}"),
                        format!("every region of the service needs its own replica; {replicate}"),
                    ));
                }
                self.validate_replicas(key, arns, kind)?;
            }
        }
        Ok(())
    }

    /// Each region's entry names a replica of the primary's: a standby that read another
    /// secret, or could not decrypt what the primary encrypted, would fail only at failover.
    fn validate_replicas(
        &self,
        key: &str,
        arns: &BTreeMap<String, String>,
        kind: Replicated,
    ) -> Result<(), Error> {
        let [primary, others @ ..] = self.service.regions.as_slice() else { return Ok(()) };
        if others.is_empty() {
            return Ok(());
        }
        // Validation has checked every entry's form; `parse` cannot fail here.
        let parse = |region: &str| kind.parse(&format!("{key}.{region}"), &arns[region]);
        if kind == Replicated::Key {
            // A policy naming an alias ARN grants the alias, not its key, and which key an
            // alias points at in each region cannot be known from the file.
            if let Some(region) =
                self.service.regions.iter().find(|r| parse(r).is_ok_and(|a| a.resource.starts_with("alias/")))
            {
                return Err(invalid(
                    &format!("{key}.{region}"),
                    format!(
                        "an alias cannot be checked to name a replica of the other regions' key (each region's alias may point at any key there), and an IAM policy that names an alias ARN grants the alias, not its key; name the key ARN (arn:aws:kms:{region}:<account>:key/mrk-...) of each region's replica of one multi-region key"
                    ),
                ));
            }
        }
        let first = parse(primary)?;
        for region in others {
            kind.check_same(key, (primary, first), (region, parse(region)?))?;
        }
        Ok(())
    }

    /// The envelope key: as [`Self::validate_regional`], and KMS serves a key in its own
    /// region only.
    fn validate_envelope_key(&self, value: &RegionalArn) -> Result<(), Error> {
        const KEY: &str = "kms.envelope_key";
        self.validate_regional(KEY, value, Replicated::Key)?;
        match value {
            // The function's KMS client calls its own region, where a key of another is not found.
            RegionalArn::One(arn) if arn_region(arn) != Some(self.primary()) => Err(invalid(
                KEY,
                format!("KMS serves a key in its own region only: the key must be in {}", self.primary()),
            )),
            // The function's policy names the configured ARN: an alias ARN there grants the
            // alias, not its key, so every call with the key would be refused at run time.
            RegionalArn::One(arn) if arn_resource(arn).is_some_and(|r| r.starts_with("alias/")) => {
                Err(invalid(
                    KEY,
                    format!(
                        "an IAM policy that names an alias ARN grants the alias, not its key, and the function's policy names this ARN: name the key ARN (arn:aws:kms:{}:<account>:key/<key id>)",
                        self.primary()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    fn validate_alarms(&self) -> Result<(), Error> {
        let alarms = &self.alarms;
        let regions = &self.service.regions;
        if let Some(topic) = &alarms.topic {
            arn_of("alarms.topic", topic, "sns")?;
            if !alarms.topics.is_empty() {
                return Err(invalid("alarms.topics", "give either alarms.topic or alarms.topics, not both"));
            }
            let region = arn_region(topic).unwrap_or_default();
            if !regions.iter().any(|r| r == region) {
                return Err(invalid(
                    "alarms.topic",
                    format!(
                        "the topic is in {region}, where this service has no alarm: CloudWatch notifies topics of the alarm's own region only ({})",
                        regions.join(", ")
                    ),
                ));
            }
        }
        for (region, arn) in &alarms.topics {
            let key = format!("alarms.topics.{region}");
            arn_of(&key, arn, "sns")?;
            if !regions.contains(region) {
                return Err(invalid(&key, format!("{region} is not in service.regions")));
            }
            if arn_region(arn) != Some(region.as_str()) {
                return Err(invalid(&key, format!("CloudWatch notifies topics of the alarm's own region only: the topic must be in {region}")));
            }
        }
        // A threshold of 0 with "greater than or equal" is in ALARM on every period.
        if alarms.errors_threshold == 0 {
            return Err(invalid(
                "alarms.errors_threshold",
                "must be at least 1 (0 would always be in ALARM)",
            ));
        }
        if alarms.api_5xx_threshold == 0 {
            return Err(invalid(
                "alarms.api_5xx_threshold",
                "must be at least 1 (0 would always be in ALARM)",
            ));
        }
        Ok(())
    }

    /// What the file allows but an operator should know: alarms that notify no one, per
    /// region, and a secret fetched from another region than the service's (it works, but
    /// every cold start then depends on that region too). `lift-deploy synth` prints these.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = lift_deploy::DeployConfig::from_toml(r#"
    ///     [service]
    ///     name = "payments"
    ///     regions = ["us-east-1"]
    ///     [function]
    ///     code = "s3://artifacts/payments.zip"
    /// "#)?;
    /// assert!(config.warnings()[0].starts_with("alarms.topic:"));
    /// # Ok::<(), lift_deploy::Error>(())
    /// ```
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.alarms.enabled {
            let key = if self.service.regions.len() > 1 { "alarms.topics" } else { "alarms.topic" };
            out.extend(self.service.regions.iter().filter(|r| self.alarms.topic_in(r).is_none()).map(|r| {
                format!("{key}: the alarms in {r} notify no one (they still change state, which rollout gates read); name an SNS topic in {r}")
            }));
        }
        // Validation refuses one ARN in a service of several regions; here there is one region.
        let region = self.primary();
        for (name, arn) in &self.secrets {
            if let RegionalArn::One(arn) = arn {
                let home = arn_region(arn).unwrap_or_default();
                if home != region {
                    out.push(format!("secrets.{name}: the secret is in {home}, so every cold start in {region} depends on {home} too; replicate it to {region} and name that replica"));
                }
            }
        }
        out
    }

    /// Checks the file against what the App needs (its event sources).
    ///
    /// # Errors
    /// [`Error::Config`] naming the missing key.
    pub fn check_against(&self, manifest: &crate::Manifest) -> Result<(), Error> {
        use crate::manifest::EventSourceSpec;
        self.check_sources_are_handled(manifest)?;
        for source in &manifest.event_sources {
            match source {
                EventSourceSpec::Sqs { .. } if self.events.sqs_queues.is_empty() => {
                    return Err(invalid(
                        "events.sqs_queues",
                        "the App handles SQS messages; name the queue ARNs",
                    ));
                }
                EventSourceSpec::Schedule { rule } if !self.events.schedules.contains_key(rule) => {
                    return Err(invalid(
                        &format!("events.schedules.{rule}"),
                        format!(
                            "the App handles this schedule; give its expression (the file has {})",
                            names(self.events.schedules.keys())
                        ),
                    ));
                }
                EventSourceSpec::DynamodbStream { table: Some(table) } => {
                    let prefix = self.table_prefix();
                    match manifest.tables.iter().find(|t| crate::plan::names_table(table, t, &prefix)) {
                        Some(t) if t.stream.is_some() => {}
                        _ => {
                            return Err(Error::Manifest {
                                path: format!("event_sources (table {table})"),
                                reason: "the App handles a stream of a table without one".into(),
                            })
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `a, b` or `none`, for messages.
fn names<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let list: Vec<&str> = items.into_iter().map(String::as_str).collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

impl DeployConfig {
    /// Refuses what the file wires up and the App does not handle: a schedule the App has
    /// no handler for would fire into an error each time, a queue's messages would fail to
    /// the dead-letter queue. And a queue the App handles by name must be in the file.
    fn check_sources_are_handled(&self, manifest: &crate::Manifest) -> Result<(), Error> {
        use crate::manifest::EventSourceSpec;
        let rules: Vec<&String> = manifest
            .event_sources
            .iter()
            .filter_map(|s| match s {
                EventSourceSpec::Schedule { rule } => Some(rule),
                _ => None,
            })
            .collect();
        if let Some(rule) = self.events.schedules.keys().find(|r| !rules.contains(r)) {
            return Err(invalid(
                &format!("events.schedules.{rule}"),
                format!("the App handles no schedule {rule:?} (it handles {})", names(rules.iter().copied())),
            ));
        }
        let handled: Vec<&Option<String>> = manifest
            .event_sources
            .iter()
            .filter_map(|s| match s {
                EventSourceSpec::Sqs { queue } => Some(queue),
                _ => None,
            })
            .collect();
        let by_name: Vec<&String> = handled.iter().filter_map(|q| q.as_ref()).collect();
        let any_queue = handled.iter().any(|q| q.is_none());
        // The App names a queue by its name or its ARN.
        let matches = |arn: &str, handler: &str| handler == arn || arn.rsplit(':').next() == Some(handler);
        for (i, arn) in self.events.sqs_queues.iter().enumerate() {
            if handled.is_empty() {
                return Err(invalid(
                    &format!("events.sqs_queues[{i}]"),
                    format!("the App handles no SQS messages, so every message of {arn} would fail"),
                ));
            }
            if !any_queue && !by_name.iter().any(|h| matches(arn, h)) {
                return Err(invalid(
                    &format!("events.sqs_queues[{i}]"),
                    format!("the App handles queues {} only, not {arn}", names(by_name.iter().copied())),
                ));
            }
        }
        if let Some(missing) =
            by_name.iter().find(|h| !self.events.sqs_queues.iter().any(|arn| matches(arn, h)))
        {
            return Err(invalid(
                "events.sqs_queues",
                format!(
                    "the App handles queue {missing}; name its ARN (the file has {})",
                    names(self.events.sqs_queues.iter())
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[service]\nname = \"svc\"\nregions = [\"us-east-1\"]\n\
                        [function]\ncode = \"s3://artifacts/svc.zip\"\n";

    fn jwt(lines: &str) -> Result<DeployConfig, Error> {
        DeployConfig::from_toml(&format!("{BASE}[api.jwt]\n{lines}"))
    }

    fn refused_key(lines: &str) -> String {
        match jwt(lines) {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn the_jwk_set_defaults_to_the_issuers_well_known_url_and_must_be_https() {
        let default = jwt("issuer = \"https://id.example.com/\"\naudience = [\"a\"]\n").unwrap();
        assert_eq!(default.api.jwt.unwrap().jwks_url(), "https://id.example.com/.well-known/jwks.json");
        let own = jwt("issuer = \"https://id\"\naudience = [\"a\"]\njwks_url = \"https://keys/jwks.json\"\n")
            .unwrap();
        assert_eq!(own.api.jwt.unwrap().jwks_url(), "https://keys/jwks.json");
        assert_eq!(
            refused_key(
                "issuer = \"https://id\"\naudience = [\"a\"]\njwks_url = \"http://keys/jwks.json\"\n"
            ),
            "api.jwt.jwks_url"
        );
        // The function gets the audiences comma-joined.
        assert_eq!(refused_key("issuer = \"https://id\"\naudience = [\"a,b\"]\n"), "api.jwt.audience");
        assert_eq!(refused_key("issuer = \"https://id\"\naudience = [\"\"]\n"), "api.jwt.audience");
    }
}
