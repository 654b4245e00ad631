//! The price table: public on-demand list prices per region, versioned, with the date they
//! were read.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The table shipped with the crate (`monitoring/prices/aws-2026-12.toml`).
pub const EMBEDDED: &str = include_str!("../../prices/aws-2026-12.toml");

/// A price table could not be read, or has no prices for what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The file could not be read.
    #[error("cannot read price table {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid price table.
    #[error("invalid price table {origin}: {message}")]
    Invalid {
        /// The file, or `embedded`.
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The table has no prices for this region.
    #[error("no prices for region {region:?} in price table {version} (it has: {known})")]
    UnknownRegion {
        /// The region asked for.
        region: String,
        /// The table's version.
        version: String,
        /// The regions it has, comma-separated.
        known: String,
    },
}

/// Lambda's two instruction set architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86_64.
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// arm64 (Graviton).
    Arm64,
}

impl std::str::FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "x86" | "amd64" => Ok(Self::X86_64),
            "arm64" | "aarch64" | "arm" => Ok(Self::Arm64),
            other => Err(format!("unknown architecture {other:?} (x86_64 or arm64)")),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        })
    }
}

/// One tier of a tiered price: the price per unit up to a cumulative monthly quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Where the tier ends (cumulative quantity per month); `None` for the last tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<f64>,
    /// The price per unit in this tier.
    pub price: f64,
}

/// A price that falls with volume: tiers in order, the last one open-ended.
///
/// # Examples
///
/// ```
/// use lift_monitoring::cost::{Tier, Tiered};
///
/// let t = Tiered::new(vec![Tier { up_to: Some(10.0), price: 2.0 }, Tier { up_to: None, price: 1.0 }]);
/// assert_eq!(t.cost(4.0), 8.0);
/// assert_eq!(t.cost(15.0), 25.0); // 10 × 2 + 5 × 1
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tiered(pub Vec<Tier>);

impl Tiered {
    /// Tiers as given (checked when a table is loaded).
    pub fn new(tiers: Vec<Tier>) -> Self {
        Self(tiers)
    }

    /// A single price for every quantity.
    pub fn flat(price: f64) -> Self {
        Self(vec![Tier { up_to: None, price }])
    }

    /// The price of the first unit (the first tier's).
    pub fn first(&self) -> f64 {
        self.0.first().map_or(0.0, |t| t.price)
    }

    /// What `quantity` units cost in a month, each tier's units at its price.
    pub fn cost(&self, quantity: f64) -> f64 {
        let mut total = 0.0;
        let mut below = 0.0;
        for tier in &self.0 {
            let end = tier.up_to.unwrap_or(f64::INFINITY);
            if quantity <= below {
                break;
            }
            total += (quantity.min(end) - below) * tier.price;
            below = end;
        }
        total
    }

    fn check(&self, key: &str) -> Result<(), String> {
        let Some(last) = self.0.last() else { return Err(format!("{key}: no tiers")) };
        if last.up_to.is_some() {
            return Err(format!("{key}: the last tier must have no up_to"));
        }
        let mut below = 0.0;
        for (i, tier) in self.0.iter().enumerate() {
            if !(tier.price.is_finite() && tier.price >= 0.0) {
                return Err(format!("{key}[{i}].price must be a non-negative number"));
            }
            if i + 1 < self.0.len() {
                match tier.up_to {
                    Some(end) if end > below => below = end,
                    _ => return Err(format!("{key}[{i}].up_to must be set and above the tier before")),
                }
            }
        }
        Ok(())
    }
}

/// Lambda's prices for one architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaArchPrices {
    /// Per million invocations.
    pub requests_per_million: f64,
    /// Per GB-second of billed duration, by monthly GB-seconds.
    pub gb_second: Tiered,
}

/// Lambda's prices in a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaPrices {
    /// x86_64.
    pub x86_64: LambdaArchPrices,
    /// arm64.
    pub arm64: LambdaArchPrices,
}

impl LambdaPrices {
    /// The prices of `arch`.
    pub fn arch(&self, arch: Arch) -> &LambdaArchPrices {
        match arch {
            Arch::X86_64 => &self.x86_64,
            Arch::Arm64 => &self.arm64,
        }
    }
}

/// API Gateway HTTP API prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpApiPrices {
    /// Per million requests; tiers bounded by requests per month.
    pub requests_per_million: Tiered,
}

/// DynamoDB on-demand prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbPrices {
    /// Per million read request units.
    pub read_request_units_per_million: f64,
    /// Per million write request units.
    pub write_request_units_per_million: f64,
    /// Per GB-month of table storage.
    pub storage_gb_month: f64,
}

/// CloudWatch prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchPrices {
    /// Per GB of log events ingested (EMF documents are log events too).
    pub logs_ingestion_per_gb: f64,
    /// Per custom metric-month, by metrics per month.
    pub metrics: Tiered,
}

/// X-Ray prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XrayPrices {
    /// Per million traces recorded.
    pub traces_recorded_per_million: f64,
}

/// Every price of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPrices {
    /// Lambda.
    pub lambda: LambdaPrices,
    /// API Gateway HTTP API.
    pub api_gateway_http: HttpApiPrices,
    /// DynamoDB on-demand.
    pub dynamodb: DynamoDbPrices,
    /// CloudWatch Logs and metrics.
    pub cloudwatch: CloudWatchPrices,
    /// X-Ray.
    pub xray: XrayPrices,
}

/// A versioned price table: prices per region, the date they were read, where from.
///
/// The shipped table is a snapshot of AWS's public list prices (see [`EMBEDDED`]); load a
/// newer one with [`PriceTable::from_path`].
///
/// # Examples
///
/// ```
/// use lift_monitoring::cost::{Arch, PriceTable};
///
/// let table = PriceTable::embedded();
/// assert_eq!(table.version, "aws-2026-12");
/// let prices = table.region("eu-west-1")?;
/// assert!(prices.lambda.arch(Arch::Arm64).gb_second.first() < prices.lambda.arch(Arch::X86_64).gb_second.first());
/// assert!(table.region("mars-north-1").unwrap_err().to_string().contains("mars-north-1"));
/// # Ok::<(), lift_monitoring::cost::PriceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// The table's version, e.g. `aws-2026-12`.
    pub version: String,
    /// The date the prices were read (YYYY-MM-DD).
    pub read_on: String,
    /// The currency (USD).
    pub currency: String,
    /// Where the prices come from.
    pub source: String,
    /// Prices by region code.
    pub regions: BTreeMap<String, RegionPrices>,
}

impl PriceTable {
    /// The table shipped with the crate.
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED, "embedded").expect("the embedded price table is valid")
    }

    /// Reads a table from a TOML file.
    pub fn from_path(path: &Path) -> Result<Self, PriceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PriceError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a table; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PriceError> {
        let invalid = |message: String| PriceError::Invalid { origin: origin.to_owned(), message };
        let table: Self = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if table.regions.is_empty() {
            return Err(invalid("no [regions.*]".into()));
        }
        for (name, r) in &table.regions {
            let key = |k: &str| format!("regions.{name}.{k}");
            r.lambda.x86_64.gb_second.check(&key("lambda.x86_64.gb_second")).map_err(invalid)?;
            r.lambda.arm64.gb_second.check(&key("lambda.arm64.gb_second")).map_err(invalid)?;
            r.api_gateway_http
                .requests_per_million
                .check(&key("api_gateway_http.requests_per_million"))
                .map_err(invalid)?;
            r.cloudwatch.metrics.check(&key("cloudwatch.metrics")).map_err(invalid)?;
            let flat = [
                ("lambda.x86_64.requests_per_million", r.lambda.x86_64.requests_per_million),
                ("lambda.arm64.requests_per_million", r.lambda.arm64.requests_per_million),
                ("dynamodb.read_request_units_per_million", r.dynamodb.read_request_units_per_million),
                ("dynamodb.write_request_units_per_million", r.dynamodb.write_request_units_per_million),
                ("dynamodb.storage_gb_month", r.dynamodb.storage_gb_month),
                ("cloudwatch.logs_ingestion_per_gb", r.cloudwatch.logs_ingestion_per_gb),
                ("xray.traces_recorded_per_million", r.xray.traces_recorded_per_million),
            ];
            if let Some((k, _)) = flat.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
                return Err(invalid(format!("{} must be a non-negative number", key(k))));
            }
        }
        Ok(table)
    }

    /// The prices of `region`, or an error naming it and the regions the table has.
    pub fn region(&self, region: &str) -> Result<&RegionPrices, PriceError> {
        self.regions.get(region).ok_or_else(|| PriceError::UnknownRegion {
            region: region.to_owned(),
            version: self.version.clone(),
            known: self.regions.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_covers_the_four_regions_with_lambdas_tiers() {
        let t = PriceTable::embedded();
        for r in ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"] {
            let p = t.region(r).unwrap();
            assert_eq!(p.lambda.x86_64.gb_second.0.len(), 3, "{r}");
            assert_eq!(p.lambda.x86_64.gb_second.0[0].up_to, Some(6e9));
            assert_eq!(p.lambda.x86_64.gb_second.0[1].up_to, Some(15e9));
            assert_eq!(p.api_gateway_http.requests_per_million.0[0].up_to, Some(300e6));
        }
        assert_eq!(t.read_on, "2026-12-03");
    }

    #[test]
    fn an_unknown_region_is_named_with_the_known_ones() {
        let err = PriceTable::embedded().region("ap-south-9").unwrap_err().to_string();
        assert!(err.contains("\"ap-south-9\""), "{err}");
        assert!(err.contains("us-east-1") && err.contains("aws-2026-12"), "{err}");
    }

    #[test]
    fn bad_tables_are_refused_naming_the_key() {
        let bad = EMBEDDED.replacen("{ price = 0.0000133334 }", "{ up_to = 1e9, price = 0.0000133334 }", 1);
        let err = PriceTable::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(err.contains("regions.") && err.contains("the last tier must have no up_to"), "{err}");
        let negative =
            EMBEDDED.replacen("traces_recorded_per_million = 5.00", "traces_recorded_per_million = -1", 1);
        let err = PriceTable::parse(&negative, "t.toml").unwrap_err().to_string();
        assert!(err.contains("xray.traces_recorded_per_million"), "{err}");
        let typo = EMBEDDED.replacen("storage_gb_month", "storage_gb_mont", 1);
        assert!(PriceTable::parse(&typo, "t.toml").unwrap_err().to_string().contains("storage_gb_mont"));
    }

    #[test]
    fn tiers_split_the_quantity_at_their_bounds() {
        let t = Tiered::new(vec![
            Tier { up_to: Some(6.0), price: 3.0 },
            Tier { up_to: Some(15.0), price: 2.0 },
            Tier { up_to: None, price: 1.0 },
        ]);
        assert_eq!(t.cost(0.0), 0.0);
        assert_eq!(t.cost(6.0), 18.0);
        assert_eq!(t.cost(10.0), 18.0 + 8.0);
        assert_eq!(t.cost(20.0), 18.0 + 18.0 + 5.0);
    }
}
