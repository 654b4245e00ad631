//! Cost from measured usage: a versioned price table ([`PriceTable`]), what each route of a
//! service used per request as measured in a local Lambda runtime ([`RouteUsage`]), its
//! cost per million requests ([`CostBreakdown`]), and a monthly projection for a traffic
//! profile with volume tiers applied ([`TrafficProfile`], [`Projection`]).
//!
//! Nothing here measures: `lift-harness cost` measures (billed duration from `REPORT`
//! lines, DynamoDB consumed capacity, log bytes, EMF metrics, X-Ray traces) and hands the
//! figures to this module, which only does arithmetic, so it is testable by hand.
//!
//! # Examples
//!
//! ```
//! use lift_monitoring::cost::{Arch, PriceTable, RouteUsage, TrafficProfile};
//!
//! let usage = RouteUsage {
//!     route: "get".into(),
//!     invocations: 10,
//!     memory_mb: 1024,
//!     billed_ms: 100, // 10 ms each
//!     read_units: 5.0, // 0.5 RRU each
//!     ..RouteUsage::default()
//! };
//! let table = PriceTable::embedded();
//! let prices = table.region("us-east-1")?;
//! let per_million = usage.cost_per_million(prices, Arch::X86_64);
//! // 10^6 × 0.010 s × 1 GB × $0.0000166667
//! assert!((per_million.lambda_compute - 0.166667).abs() < 1e-9);
//! assert!((per_million.dynamodb_reads - 0.0625).abs() < 1e-12);
//!
//! let profile = TrafficProfile::parse(r#"
//!     region = "us-east-1"
//!     requests_per_month = 1e6
//!     [mix]
//!     get = 1
//! "#)?;
//! let projection = profile.project(&[usage], 0, &table)?;
//! assert!((projection.total - per_million.total).abs() < 1e-9 + projection.xray);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chart;
mod prices;
pub mod rightsize;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use chart::rightsize_html;
pub use prices::{
    Arch, CloudWatchPrices, DynamoDbPrices, HttpApiPrices, LambdaArchPrices, LambdaPrices, PriceError,
    PriceTable, RegionPrices, Tier, Tiered, XrayPrices, EMBEDDED,
};

/// Bytes in a GB as AWS bills data (2^30).
pub const BYTES_PER_GB: f64 = 1_073_741_824.0;

/// What one route used over `invocations` measured invocations (totals, not means).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteUsage {
    /// The route's name, e.g. `create`.
    pub route: String,
    /// Invocations measured.
    pub invocations: u64,
    /// The function's memory size in MB.
    pub memory_mb: u32,
    /// Billed duration, summed, in ms (from the `REPORT` lines).
    pub billed_ms: u64,
    /// Real duration, summed, in ms.
    pub duration_ms: f64,
    /// DynamoDB read request units consumed, summed.
    pub read_units: f64,
    /// DynamoDB write request units consumed, summed.
    pub write_units: f64,
    /// DynamoDB requests made.
    pub dynamodb_requests: u64,
    /// DynamoDB requests that failed without consuming capacity (errors other than a write
    /// refused on its condition, which DynamoDB charges and the units count), so not in the
    /// units.
    pub dynamodb_unreported: u64,
    /// KMS requests made (`GenerateDataKey`, `Decrypt`, `Encrypt`), summed. Not priced: the
    /// price table has no KMS prices.
    #[serde(default)]
    pub kms_requests: u64,
    /// Log bytes as CloudWatch Logs counts them (message bytes plus 26 per event), summed.
    pub log_bytes: u64,
    /// Log events written (lines).
    pub log_events: u64,
    /// EMF metric values emitted.
    pub emf_values: u64,
    /// X-Ray traces with a document sent to the daemon (every request sampled).
    pub traces: u64,
    /// X-Ray segment documents sent.
    pub segments: u64,
}

impl RouteUsage {
    fn per(&self, total: f64) -> f64 {
        if self.invocations == 0 {
            0.0
        } else {
            total / self.invocations as f64
        }
    }

    /// Mean billed milliseconds per invocation.
    pub fn billed_ms_per_request(&self) -> f64 {
        self.per(self.billed_ms as f64)
    }

    /// Mean GB-seconds per invocation (memory in GB, 1 GB = 1,024 MB, × billed seconds).
    pub fn gb_seconds_per_request(&self) -> f64 {
        f64::from(self.memory_mb) / 1024.0 * self.billed_ms_per_request() / 1000.0
    }

    /// Mean read request units per invocation.
    pub fn read_units_per_request(&self) -> f64 {
        self.per(self.read_units)
    }

    /// Mean write request units per invocation.
    pub fn write_units_per_request(&self) -> f64 {
        self.per(self.write_units)
    }

    /// Mean log bytes per invocation.
    pub fn log_bytes_per_request(&self) -> f64 {
        self.per(self.log_bytes as f64)
    }

    /// Mean KMS requests per invocation.
    pub fn kms_requests_per_request(&self) -> f64 {
        self.per(self.kms_requests as f64)
    }

    /// Traces recorded per invocation when every request is sampled.
    pub fn traces_per_request(&self) -> f64 {
        self.per(self.traces as f64)
    }

    /// What a million requests of this route cost at the first tier of every tiered price
    /// (the price at low volume; [`TrafficProfile::project`] applies the tiers). Custom
    /// metrics are billed per metric-month, not per request, so they are not in it.
    pub fn cost_per_million(&self, prices: &RegionPrices, arch: Arch) -> CostBreakdown {
        const M: f64 = 1e6;
        let lambda = prices.lambda.arch(arch);
        let mut c = CostBreakdown {
            lambda_compute: M * self.gb_seconds_per_request() * lambda.gb_second.first(),
            lambda_requests: lambda.requests_per_million,
            api_gateway: prices.api_gateway_http.requests_per_million.first(),
            dynamodb_reads: self.read_units_per_request() * prices.dynamodb.read_request_units_per_million,
            dynamodb_writes: self.write_units_per_request() * prices.dynamodb.write_request_units_per_million,
            logs: M * self.log_bytes_per_request() / BYTES_PER_GB * prices.cloudwatch.logs_ingestion_per_gb,
            xray: self.traces_per_request() * prices.xray.traces_recorded_per_million,
            total: 0.0,
        };
        c.total = c.sum();
        c
    }
}

/// A cost split by what is billed, in the price table's currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// Lambda duration (GB-seconds).
    pub lambda_compute: f64,
    /// Lambda requests.
    pub lambda_requests: f64,
    /// API Gateway HTTP API requests.
    pub api_gateway: f64,
    /// DynamoDB read request units.
    pub dynamodb_reads: f64,
    /// DynamoDB write request units.
    pub dynamodb_writes: f64,
    /// CloudWatch Logs ingestion.
    pub logs: f64,
    /// X-Ray traces recorded (every request sampled).
    pub xray: f64,
    /// The sum.
    pub total: f64,
}

impl CostBreakdown {
    fn sum(&self) -> f64 {
        self.lambda_compute
            + self.lambda_requests
            + self.api_gateway
            + self.dynamodb_reads
            + self.dynamodb_writes
            + self.logs
            + self.xray
    }
}

/// X-Ray's sampling rule: a reservoir of traces per second, then a share of the rest (the
/// default rule is 1 per second and 5 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XraySampling {
    /// Requests per second traced first.
    pub reservoir_per_second: f64,
    /// The share of the requests beyond the reservoir traced (0 to 1).
    pub rate: f64,
}

impl Default for XraySampling {
    fn default() -> Self {
        Self { reservoir_per_second: 1.0, rate: 0.05 }
    }
}

/// A traffic profile to project a month of cost for.
///
/// In TOML (`lift-harness cost --profile FILE`):
///
/// ```toml
/// region = "eu-west-1"            # a region of the price table
/// deploy = "lift.toml"            # optional, see below
/// arch = "arm64"                  # x86_64 (default) or arm64
/// requests_per_second = 50        # or requests_per_month = 1.3e8 (exactly one of them)
/// hours_per_month = 730           # default 730, as AWS's calculator
/// storage_gb = 20                 # DynamoDB table storage (default 0)
/// [mix]                           # relative weights per measured route
/// create = 3
/// get = 6
/// refund = 1
/// [xray]                          # default: 1 per second + 5 %
/// reservoir_per_second = 1
/// rate = 0.05
/// ```
///
/// `deploy` names the service's `lift.toml` (relative to the profile): `lift-harness cost`
/// then prices the architecture it deploys (`function.architecture`, arm64 by default) and
/// refuses an `arch` here that differs, naming both. This crate does not read deployment
/// files: [`TrafficProfile::parse`] keeps the path as written and `arch` as the profile
/// sets it.
///
/// # Examples
///
/// ```
/// use lift_monitoring::cost::TrafficProfile;
///
/// let p = TrafficProfile::parse("region = \"us-east-1\"\nrequests_per_second = 10\n[mix]\nget = 1")?;
/// assert_eq!(p.requests_per_month()?, 10.0 * 3600.0 * 730.0);
/// assert!(TrafficProfile::parse("region = \"us-east-1\"\n[mix]\nget = 1")?.requests_per_month().is_err());
/// # Ok::<(), lift_monitoring::cost::ProfileError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficProfile {
    /// The region whose prices apply.
    pub region: String,
    /// The service's `lift.toml`, relative to the profile (read by `lift-harness cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<std::path::PathBuf>,
    /// The architecture whose Lambda prices apply.
    #[serde(default)]
    pub arch: Arch,
    /// Average requests per second over the month.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Requests per month.
    #[serde(default)]
    pub requests_per_month: Option<f64>,
    /// Hours in a month.
    #[serde(default = "default_hours")]
    pub hours_per_month: f64,
    /// DynamoDB storage in GB.
    #[serde(default)]
    pub storage_gb: f64,
    /// Relative weight of each route.
    pub mix: BTreeMap<String, f64>,
    /// X-Ray's sampling rule.
    #[serde(default)]
    pub xray: XraySampling,
}

fn default_hours() -> f64 {
    730.0
}

/// A traffic profile that cannot be projected.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read traffic profile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The profile is invalid.
    #[error("invalid traffic profile: {0}")]
    Invalid(String),
    /// The region has no prices.
    #[error(transparent)]
    Price(#[from] PriceError),
}

impl TrafficProfile {
    /// Parses a TOML profile. A month of no hours, or of negative hours or storage, is
    /// refused, naming the field: it would give infinite rates (every request traced) or a
    /// negative cost.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let profile: Self = toml::from_str(text).map_err(|e| ProfileError::Invalid(e.to_string()))?;
        if !(profile.hours_per_month.is_finite() && profile.hours_per_month > 0.0) {
            return Err(ProfileError::Invalid(format!(
                "hours_per_month must be a positive number, not {}",
                profile.hours_per_month
            )));
        }
        if !(profile.storage_gb.is_finite() && profile.storage_gb >= 0.0) {
            return Err(ProfileError::Invalid(format!(
                "storage_gb must be a non-negative number, not {}",
                profile.storage_gb
            )));
        }
        Ok(profile)
    }

    /// Reads a TOML profile.
    pub fn from_path(path: &std::path::Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// Requests in a month, from whichever of the two rates is set.
    pub fn requests_per_month(&self) -> Result<f64, ProfileError> {
        let n = match (self.requests_per_second, self.requests_per_month) {
            (Some(rps), None) => rps * 3600.0 * self.hours_per_month,
            (None, Some(n)) => n,
            _ => {
                return Err(ProfileError::Invalid(
                    "set exactly one of requests_per_second and requests_per_month".into(),
                ))
            }
        };
        if !(n.is_finite() && n >= 0.0) {
            return Err(ProfileError::Invalid(format!("requests must be a non-negative number, not {n}")));
        }
        Ok(n)
    }

    /// Projects a month of cost: the month's requests split over the routes by the mix,
    /// each with its measured usage per request, every tiered price applied to the month's
    /// total (Lambda GB-seconds, API Gateway requests, custom metrics), X-Ray traces after
    /// the sampling rule, plus `metric_series` custom metrics (distinct namespace, name and
    /// dimension values seen) for the whole month and `storage_gb` of table storage.
    pub fn project(
        &self,
        usage: &[RouteUsage],
        metric_series: u64,
        table: &PriceTable,
    ) -> Result<Projection, ProfileError> {
        let prices = table.region(&self.region)?;
        let requests = self.requests_per_month()?;
        let weight: f64 = self.mix.values().sum();
        if let Some((route, w)) = self.mix.iter().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
            return Err(ProfileError::Invalid(format!("mix.{route} must be a non-negative number, not {w}")));
        }
        if weight <= 0.0 {
            return Err(ProfileError::Invalid("mix: give at least one route a weight above 0".into()));
        }
        let mut routes = Vec::new();
        let (mut gb_seconds, mut rru, mut wru, mut log_bytes, mut traces_per_request) =
            (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut kms_requests = 0.0;
        for (route, w) in &self.mix {
            let Some(u) = usage.iter().find(|u| &u.route == route) else {
                let known: Vec<&str> = usage.iter().map(|u| u.route.as_str()).collect();
                return Err(ProfileError::Invalid(format!(
                    "mix.{route}: no measured route by that name (measured: {})",
                    known.join(", ")
                )));
            };
            let n = requests * w / weight;
            gb_seconds += n * u.gb_seconds_per_request();
            rru += n * u.read_units_per_request();
            wru += n * u.write_units_per_request();
            log_bytes += n * u.log_bytes_per_request();
            kms_requests += n * u.kms_requests_per_request();
            traces_per_request += w / weight * u.traces_per_request();
            routes.push((route.clone(), n));
        }
        let seconds = self.hours_per_month * 3600.0;
        let rps = requests / seconds;
        let sampled = (seconds
            * (rps.min(self.xray.reservoir_per_second)
                + self.xray.rate * (rps - self.xray.reservoir_per_second).max(0.0)))
        .min(requests);
        let traces = sampled * traces_per_request;
        let lambda = prices.lambda.arch(self.arch);
        let mut p = Projection {
            region: self.region.clone(),
            arch: self.arch,
            price_table: table.version.clone(),
            requests,
            routes,
            gb_seconds,
            read_units: rru,
            write_units: wru,
            log_gb: log_bytes / BYTES_PER_GB,
            kms_requests,
            traces,
            metric_series,
            lambda_compute: lambda.gb_second.cost(gb_seconds),
            lambda_requests: requests / 1e6 * lambda.requests_per_million,
            api_gateway: prices.api_gateway_http.requests_per_million.cost(requests) / 1e6,
            dynamodb_reads: rru / 1e6 * prices.dynamodb.read_request_units_per_million,
            dynamodb_writes: wru / 1e6 * prices.dynamodb.write_request_units_per_million,
            dynamodb_storage: self.storage_gb * prices.dynamodb.storage_gb_month,
            logs: log_bytes / BYTES_PER_GB * prices.cloudwatch.logs_ingestion_per_gb,
            metrics: prices.cloudwatch.metrics.cost(metric_series as f64),
            xray: traces / 1e6 * prices.xray.traces_recorded_per_million,
            total: 0.0,
        };
        p.total = p.lambda_compute
            + p.lambda_requests
            + p.api_gateway
            + p.dynamodb_reads
            + p.dynamodb_writes
            + p.dynamodb_storage
            + p.logs
            + p.metrics
            + p.xray;
        Ok(p)
    }
}

/// A month of cost for a traffic profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The region priced.
    pub region: String,
    /// The architecture priced.
    pub arch: Arch,
    /// The price table's version.
    pub price_table: String,
    /// Requests in the month.
    pub requests: f64,
    /// Requests per route.
    pub routes: Vec<(String, f64)>,
    /// Lambda GB-seconds.
    pub gb_seconds: f64,
    /// DynamoDB read request units.
    pub read_units: f64,
    /// DynamoDB write request units.
    pub write_units: f64,
    /// Log GB ingested.
    pub log_gb: f64,
    /// KMS requests (counted, not priced: the price table has no KMS prices).
    #[serde(default)]
    pub kms_requests: f64,
    /// X-Ray traces recorded.
    pub traces: f64,
    /// Custom metrics (metric-months).
    pub metric_series: u64,
    /// Lambda duration, tiered.
    pub lambda_compute: f64,
    /// Lambda requests.
    pub lambda_requests: f64,
    /// API Gateway HTTP API requests, tiered.
    pub api_gateway: f64,
    /// DynamoDB reads.
    pub dynamodb_reads: f64,
    /// DynamoDB writes.
    pub dynamodb_writes: f64,
    /// DynamoDB storage.
    pub dynamodb_storage: f64,
    /// CloudWatch Logs ingestion.
    pub logs: f64,
    /// Custom metrics, tiered.
    pub metrics: f64,
    /// X-Ray traces recorded.
    pub xray: f64,
    /// The sum.
    pub total: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(route: &str, memory_mb: u32, billed_ms_each: u64) -> RouteUsage {
        RouteUsage {
            route: route.into(),
            invocations: 4,
            memory_mb,
            billed_ms: 4 * billed_ms_each,
            read_units: 2.0,
            write_units: 8.0,
            log_bytes: 4 * 2048,
            traces: 4,
            ..RouteUsage::default()
        }
    }

    #[test]
    fn cost_per_million_is_the_hand_arithmetic() {
        let table = PriceTable::embedded();
        let p = table.region("us-east-1").unwrap();
        let c = usage("create", 512, 20).cost_per_million(p, Arch::X86_64);
        // 0.5 GB × 0.020 s = 0.01 GB-s per request; a million of them at $0.0000166667.
        assert!((c.lambda_compute - 1e4 * 0.0000166667).abs() < 1e-9, "{c:?}");
        assert_eq!(c.lambda_requests, 0.20);
        assert_eq!(c.api_gateway, 1.00);
        assert!((c.dynamodb_reads - 0.5 * 0.125).abs() < 1e-12);
        assert!((c.dynamodb_writes - 2.0 * 0.625).abs() < 1e-12);
        assert!((c.logs - 1e6 * 2048.0 / BYTES_PER_GB * 0.50).abs() < 1e-9);
        assert_eq!(c.xray, 5.0);
        let sum = c.lambda_compute + 0.20 + 1.00 + 0.0625 + 1.25 + c.logs + 5.0;
        assert!((c.total - sum).abs() < 1e-9);
    }

    #[test]
    fn arm64_costs_less_than_x86_for_the_same_usage() {
        let table = PriceTable::embedded();
        for region in table.regions.keys() {
            let p = table.region(region).unwrap();
            let u = usage("get", 1024, 35);
            let x86 = u.cost_per_million(p, Arch::X86_64);
            let arm = u.cost_per_million(p, Arch::Arm64);
            assert!(arm.lambda_compute < x86.lambda_compute, "{region}");
            assert!(arm.total < x86.total, "{region}");
        }
    }

    #[test]
    fn a_projection_crossing_lambdas_first_tier_prices_each_side_at_its_own_price() {
        // 10 GB-s per request (10,240 MB × 1,000 ms), 1e9 requests: 1e10 GB-s, i.e. 6e9 at
        // the first tier and 4e9 at the second.
        let table = PriceTable::embedded();
        let u = RouteUsage {
            route: "batch".into(),
            invocations: 1,
            memory_mb: 10_240,
            billed_ms: 1000,
            ..RouteUsage::default()
        };
        let profile = TrafficProfile {
            region: "us-east-1".into(),
            deploy: None,
            arch: Arch::X86_64,
            requests_per_second: None,
            requests_per_month: Some(1e9),
            hours_per_month: 730.0,
            storage_gb: 0.0,
            mix: [("batch".to_owned(), 1.0)].into(),
            xray: XraySampling::default(),
        };
        let p = profile.project(std::slice::from_ref(&u), 0, &table).unwrap();
        assert_eq!(p.gb_seconds, 1e10);
        let hand = 6e9 * 0.0000166667 + 4e9 * 0.000015; // 100,000.20 + 60,000 = 160,000.20
        assert!((p.lambda_compute - hand).abs() < 1e-3, "{} vs {hand}", p.lambda_compute);
        assert!((p.lambda_compute - 160_000.2).abs() < 1e-3);
        // Not the flat first-tier price over everything:
        assert!(p.lambda_compute < 1e10 * 0.0000166667 - 1000.0);
        // API Gateway: 300 M at $1.00, 700 M at $0.90 = 300 + 630.
        assert!((p.api_gateway - 930.0).abs() < 1e-6, "{}", p.api_gateway);
        // Beyond 15e9 GB-s (2e9 requests = 2e10 GB-s): 6e9, 9e9 and 5e9 at the three prices.
        let twice = TrafficProfile { requests_per_month: Some(2e9), ..profile.clone() };
        let p2 = twice.project(std::slice::from_ref(&u), 0, &table).unwrap();
        let hand2 = 6e9 * 0.0000166667 + 9e9 * 0.000015 + 5e9 * 0.0000133334;
        assert!((p2.lambda_compute - hand2).abs() < 1e-3, "{} vs {hand2}", p2.lambda_compute);
        // arm64's tiers are at 7.5e9 and 18.75e9 GB-s.
        let arm = TrafficProfile { arch: Arch::Arm64, ..profile }.project(&[u], 0, &table).unwrap();
        let hand_arm = 7.5e9 * 0.0000133334 + 2.5e9 * 0.0000120001;
        assert!((arm.lambda_compute - hand_arm).abs() < 1e-3, "{} vs {hand_arm}", arm.lambda_compute);
    }

    #[test]
    fn projection_splits_by_the_mix_and_samples_traces() {
        let table = PriceTable::embedded();
        let routes = [usage("create", 256, 40), usage("get", 256, 10)];
        let profile = TrafficProfile::parse(
            "region = \"eu-west-1\"\nrequests_per_second = 11\n[mix]\ncreate = 1\nget = 3",
        )
        .unwrap();
        let p = profile.project(&routes, 12, &table).unwrap();
        let month = 11.0 * 3600.0 * 730.0;
        assert_eq!(p.requests, month);
        assert_eq!(p.routes, vec![("create".into(), month / 4.0), ("get".into(), month * 3.0 / 4.0)]);
        let gbs = month / 4.0 * 0.25 * 0.040 + month * 0.75 * 0.25 * 0.010;
        assert!((p.gb_seconds - gbs).abs() < 1e-6 * gbs);
        // 1 per second + 5 % of the other 10 per second.
        let traced = 3600.0 * 730.0 * (1.0 + 0.05 * 10.0);
        assert!((p.traces - traced).abs() < 1e-6 * traced, "{} vs {traced}", p.traces);
        assert!((p.metrics - 12.0 * 0.30).abs() < 1e-12);
        // KMS requests are counted by the mix, and priced at nothing (no KMS prices).
        let mut with_kms = routes.clone();
        with_kms[0].kms_requests = 4; // one per create
        let k = profile.project(&with_kms, 12, &table).unwrap();
        assert_eq!((p.kms_requests, k.kms_requests), (0.0, month / 4.0));
        assert_eq!(k.total, p.total);
    }

    #[test]
    fn bad_profiles_are_refused_naming_what_is_wrong() {
        let table = PriceTable::embedded();
        let routes = [usage("get", 128, 5)];
        let unknown_route =
            TrafficProfile::parse("region = \"us-east-1\"\nrequests_per_month = 5\n[mix]\nrefund = 1")
                .unwrap();
        let err = unknown_route.project(&routes, 0, &table).unwrap_err().to_string();
        assert!(err.contains("mix.refund") && err.contains("get"), "{err}");
        let region =
            TrafficProfile::parse("region = \"moon-1\"\nrequests_per_month = 5\n[mix]\nget = 1").unwrap();
        assert!(region.project(&routes, 0, &table).unwrap_err().to_string().contains("\"moon-1\""));
        let both = TrafficProfile::parse(
            "region = \"us-east-1\"\nrequests_per_month = 5\nrequests_per_second = 1\n[mix]\nget = 1",
        )
        .unwrap();
        assert!(both.project(&routes, 0, &table).unwrap_err().to_string().contains("exactly one"));
        assert!(TrafficProfile::parse("region = \"us-east-1\"\nrps = 1\n[mix]\nget = 1")
            .unwrap_err()
            .to_string()
            .contains("rps"));
        // A month of no hours makes the rate infinite (every request traced); negative hours or
        // storage make negative costs.
        for (field, value) in [
            ("hours_per_month", "0"),
            ("hours_per_month", "-730"),
            ("storage_gb", "-20"),
            ("storage_gb", "nan"),
        ] {
            let text =
                format!("region = \"us-east-1\"\nrequests_per_month = 5\n{field} = {value}\n[mix]\nget = 1");
            let err = TrafficProfile::parse(&text).unwrap_err().to_string();
            assert!(err.contains(field), "{field} = {value}: {err}");
        }
    }
}
