//! The capacity report: JSON (serde) and a terminal table (`Display`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Limits, Measurements, TrafficProfile};

/// One route's rate, measured durations and concurrency at today's peak.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteCapacity {
    /// The route.
    pub route: String,
    /// Its share of the peak.
    pub share: f64,
    /// Its requests per second at today's peak.
    pub rate_rps: f64,
    /// Invocations measured.
    pub invocations: u64,
    /// Mean duration, ms.
    pub mean_ms: f64,
    /// Median duration, ms.
    pub p50_ms: f64,
    /// The planning percentile's duration, ms.
    pub planning_ms: f64,
    /// Longest duration, ms.
    pub max_ms: f64,
    /// `rate_rps × mean_ms / 1000`.
    pub concurrency_mean: f64,
    /// `rate_rps × planning_ms / 1000`.
    pub concurrency_planned: f64,
}

/// When a limit is reached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitReach {
    /// Which limit.
    pub limit: String,
    /// Its value.
    pub value: f64,
    /// The first month the demand is at or above it (0 = today); `None`: not within the
    /// profile's months.
    pub month: Option<u32>,
    /// The demand projected to the last month.
    pub at_horizon: f64,
}

/// Lambda concurrency at today's peak and when it runs out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencyPlan {
    /// The planning percentile.
    pub percentile: f64,
    /// Σ routes `rate × mean duration`.
    pub mean: f64,
    /// Σ routes `rate × percentile duration`: what the limits are checked against.
    pub planned: f64,
    /// The month the mean concurrency reaches the tightest limit (reserved, else account).
    pub mean_limit_month: Option<u32>,
    /// The reserved concurrency (when set), then the account limit.
    pub limits: Vec<LimitReach>,
}

/// One partition key's load at today's peak, assuming it is one partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyCapacity {
    /// The table.
    pub table: String,
    /// The partition key's value.
    pub key: String,
    /// Accesses per second at today's peak.
    pub accesses_per_s: f64,
    /// Write units per second at today's peak.
    pub wcu_per_s: f64,
    /// Read units per second at today's peak.
    pub rcu_per_s: f64,
    /// `wcu_per_s` over the per-partition write limit.
    pub wcu_utilisation: f64,
    /// `rcu_per_s` over the per-partition read limit.
    pub rcu_utilisation: f64,
    /// At or above a per-partition limit today.
    pub hot: bool,
    /// The month its writes reach the per-partition limit.
    pub write_limit_month: Option<u32>,
    /// The month its reads reach the per-partition limit.
    pub read_limit_month: Option<u32>,
}

impl KeyCapacity {
    /// The larger of its write and read utilisation.
    pub fn utilisation(&self) -> f64 {
        self.wcu_utilisation.max(self.rcu_utilisation)
    }

    /// The first month either limit is reached.
    pub fn limit_month(&self) -> Option<u32> {
        match (self.write_limit_month, self.read_limit_month) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The whole plan: inputs, per-route concurrency, limit months and per-key partition load.
///
/// Serialises to JSON with serde; `Display` prints it as tables (the ten busiest keys).
///
/// # Examples
///
/// ```
/// use lift_monitoring::capacity::{plan, Limits, Measurements, TrafficProfile};
///
/// let mut m = Measurements::default();
/// m.route("get", vec![20.0, 30.0]);
/// let report = plan(&TrafficProfile::new(100.0).route("get", 1.0), &Limits::default(), &m)?;
/// let json = serde_json::to_value(&report).unwrap();
/// assert_eq!(json["routes"][0]["route"], "get");
/// assert!(report.to_string().contains("account concurrency"));
/// # Ok::<(), lift_monitoring::capacity::CapacityError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// The traffic profile planned for.
    pub profile: TrafficProfile,
    /// The limits planned against.
    pub limits: Limits,
    /// Per route.
    pub routes: Vec<RouteCapacity>,
    /// Lambda concurrency.
    pub concurrency: ConcurrencyPlan,
    /// Limits on requests per second in front of the function (the API stage's throttle),
    /// against the peak rate.
    #[serde(default)]
    pub request_limits: Vec<LimitReach>,
    /// Per partition key, busiest first.
    pub keys: Vec<KeyCapacity>,
    /// `table key` of every hot key.
    pub hot_keys: Vec<String>,
    /// What the plan was made from.
    pub measurements: Measurements,
}

/// Keys shown in the table (the JSON has all).
const SHOWN_KEYS: usize = 10;

impl CapacityReport {
    fn when(&self, month: Option<u32>) -> String {
        match month {
            Some(0) => "now".into(),
            Some(m) => format!("month {m}"),
            None => format!("not within {} months", self.profile.months),
        }
    }

    /// One line per limit: its value, when it is reached, the demand at the horizon.
    fn limit_lines(&self, f: &mut fmt::Formatter<'_>, limits: &[LimitReach]) -> fmt::Result {
        for l in limits {
            writeln!(
                f,
                "  {:<22} {:>8} reached {:<22} ({:.1} at month {})",
                l.limit,
                l.value,
                self.when(l.month),
                l.at_horizon,
                self.profile.months
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for CapacityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.profile;
        let pct = p.percentile;
        writeln!(
            f,
            "capacity plan: {} rps at peak, {:+}%/month for {} months; concurrency planned on p{pct} (mean also shown)",
            p.peak_rps, p.growth_percent_per_month, p.months
        )?;
        if !self.measurements.source.is_empty() {
            writeln!(f, "measured: {}", self.measurements.source)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<16} {:>6} {:>9} {:>5} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
            "route",
            "share",
            "rps",
            "n",
            "mean ms",
            "p50 ms",
            format!("p{pct} ms"),
            "max ms",
            "conc mean",
            format!("conc p{pct}")
        )?;
        for r in &self.routes {
            writeln!(
                f,
                "{:<16} {:>5.1}% {:>9.1} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>10.2}",
                r.route,
                r.share * 100.0,
                r.rate_rps,
                r.invocations,
                r.mean_ms,
                r.p50_ms,
                r.planning_ms,
                r.max_ms,
                r.concurrency_mean,
                r.concurrency_planned
            )?;
        }
        let c = &self.concurrency;
        writeln!(f, "{:<16} {:>6} {:>9.1} {:>56.2} {:>10.2}", "total", "", p.peak_rps, c.mean, c.planned)?;
        writeln!(f)?;
        writeln!(f, "Lambda concurrency (p{pct}: {:.2} today)", c.planned)?;
        self.limit_lines(f, &c.limits)?;
        writeln!(
            f,
            "  on the mean ({:.2} today) the tightest limit is reached {}",
            c.mean,
            self.when(c.mean_limit_month)
        )?;
        writeln!(f)?;
        if !self.request_limits.is_empty() {
            writeln!(f, "Requests per second ({} at peak today)", p.peak_rps)?;
            self.limit_lines(f, &self.request_limits)?;
            writeln!(f)?;
        }
        writeln!(
            f,
            "DynamoDB partitions (one partition per partition key, the worst case; limits {} WCU/s, {} RCU/s; adaptive capacity not modelled)",
            self.limits.partition_wcu, self.limits.partition_rcu
        )?;
        writeln!(
            f,
            "  {:<20} {:<40} {:>10} {:>10} {:>6} {:<24}",
            "table", "key", "WCU/s", "RCU/s", "use", "limit reached"
        )?;
        for k in self.keys.iter().take(SHOWN_KEYS) {
            writeln!(
                f,
                "  {:<20} {:<40} {:>10.1} {:>10.1} {:>5.0}% {:<24}{}",
                k.table,
                k.key,
                k.wcu_per_s,
                k.rcu_per_s,
                k.utilisation() * 100.0,
                self.when(k.limit_month()),
                if k.hot { " HOT" } else { "" }
            )?;
        }
        if self.keys.len() > SHOWN_KEYS {
            writeln!(f, "  ... {} more keys in the JSON", self.keys.len() - SHOWN_KEYS)?;
        }
        if self.hot_keys.is_empty() {
            writeln!(f, "hot keys: none at today's peak")
        } else {
            writeln!(f, "hot keys: {}", self.hot_keys.join(", "))
        }
    }
}
