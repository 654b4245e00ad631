//! The traffic profile and the limits it is planned against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CapacityError;

/// The traffic to plan for: today's peak, its monthly growth, how far ahead to look, and
/// how the peak divides over routes.
///
/// In TOML (the `[traffic]` table of a capacity profile):
///
/// ```toml
/// peak_rps = 500.0                 # requests per second at today's peak, all routes
/// growth_percent_per_month = 10.0  # compound; -100 < growth means shrinking is allowed
/// months = 24                      # how far to project
/// percentile = 99.0                # the duration percentile concurrency is planned on
/// [mix]                            # route -> weight (normalised to shares)
/// create = 6
/// get = 3
/// ```
///
/// # Examples
///
/// ```
/// use lift_monitoring::capacity::TrafficProfile;
///
/// let profile = TrafficProfile::new(200.0).growth(10.0).months(12).route("create", 1.0);
/// assert!(profile.validate().is_ok());
/// assert_eq!(profile.share("create"), 1.0);
/// let bad = TrafficProfile::new(-1.0).route("create", 1.0);
/// assert_eq!(bad.validate().unwrap_err().to_string(), "traffic.peak_rps: must be a number >= 0, got -1");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficProfile {
    /// Requests per second at today's peak, over all routes.
    pub peak_rps: f64,
    /// Compound growth per month, in percent (10.0 = 10 %); above -100.
    #[serde(default)]
    pub growth_percent_per_month: f64,
    /// Months to project (0 = today only).
    #[serde(default = "default_months")]
    pub months: u32,
    /// The duration percentile concurrency is planned on (the mean is reported too).
    #[serde(default = "default_percentile")]
    pub percentile: f64,
    /// Route name → weight; shares are the weights over their sum.
    pub mix: BTreeMap<String, f64>,
}

fn default_months() -> u32 {
    24
}

fn default_percentile() -> f64 {
    99.0
}

/// The most months a projection may span (100 years).
pub const MAX_MONTHS: u32 = 1200;

impl TrafficProfile {
    /// A profile of `peak_rps`, no growth, 24 months, planned on p99, with no routes yet.
    pub fn new(peak_rps: f64) -> Self {
        Self {
            peak_rps,
            growth_percent_per_month: 0.0,
            months: default_months(),
            percentile: default_percentile(),
            mix: BTreeMap::new(),
        }
    }

    /// Sets the monthly growth in percent.
    pub fn growth(mut self, percent: f64) -> Self {
        self.growth_percent_per_month = percent;
        self
    }

    /// Sets the months to project.
    pub fn months(mut self, months: u32) -> Self {
        self.months = months;
        self
    }

    /// Sets the planning percentile (e.g. 99.0).
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.percentile = percentile;
        self
    }

    /// Adds a route with `weight` in the mix.
    pub fn route(mut self, name: impl Into<String>, weight: f64) -> Self {
        self.mix.insert(name.into(), weight);
        self
    }

    /// The share of the peak that goes to `route` (0 when it is not in the mix).
    pub fn share(&self, route: &str) -> f64 {
        let total: f64 = self.mix.values().sum();
        match self.mix.get(route) {
            Some(w) if total > 0.0 => w / total,
            _ => 0.0,
        }
    }

    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), CapacityError> {
        if !(self.peak_rps.is_finite() && self.peak_rps >= 0.0) {
            return Err(CapacityError::invalid("traffic.peak_rps", "a number >= 0", self.peak_rps));
        }
        let g = self.growth_percent_per_month;
        if !(g.is_finite() && g >= -100.0) {
            return Err(CapacityError::invalid(
                "traffic.growth_percent_per_month",
                "a percentage >= -100",
                g,
            ));
        }
        if self.months > MAX_MONTHS {
            return Err(CapacityError::invalid("traffic.months", "at most 1200", f64::from(self.months)));
        }
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return Err(CapacityError::invalid("traffic.percentile", "in (0, 100]", self.percentile));
        }
        if self.mix.is_empty() {
            return Err(CapacityError::Invalid {
                field: "traffic.mix".into(),
                message: "must name at least one route".into(),
            });
        }
        for (route, w) in &self.mix {
            if !(w.is_finite() && *w >= 0.0) {
                return Err(CapacityError::invalid(&format!("traffic.mix.{route}"), "a weight >= 0", *w));
            }
        }
        if self.mix.values().sum::<f64>() <= 0.0 {
            return Err(CapacityError::Invalid {
                field: "traffic.mix".into(),
                message: "the weights must not all be 0".into(),
            });
        }
        Ok(())
    }
}

/// The limits planned against: Lambda concurrency and DynamoDB's per-partition throughput.
///
/// # Examples
///
/// ```
/// use lift_monitoring::capacity::Limits;
///
/// let limits = Limits::default().reserved_concurrency(200);
/// assert_eq!(limits.account_concurrency, 1000);
/// assert_eq!(limits.partition_wcu, 1000.0);
/// assert_eq!(limits.partition_rcu, 3000.0);
/// assert!(limits.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The account's concurrent executions in the region (AWS default 1,000; raised on request).
    pub account_concurrency: u32,
    /// The function's reserved concurrency, if set: its own ceiling.
    pub reserved_concurrency: Option<u32>,
    /// Write capacity units per second one partition serves (DynamoDB: 1,000).
    pub partition_wcu: f64,
    /// Read capacity units per second one partition serves (DynamoDB: 3,000).
    pub partition_rcu: f64,
    /// The API stage's steady throttle in requests per second, when the function is behind
    /// one (lift-deploy's `api.throttle_rate`): requests above it are refused with 429
    /// before they reach the function.
    pub api_rate_rps: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            account_concurrency: 1000,
            reserved_concurrency: None,
            partition_wcu: 1000.0,
            partition_rcu: 3000.0,
            api_rate_rps: None,
        }
    }
}

impl Limits {
    /// Sets the account concurrency limit.
    pub fn account_concurrency(mut self, limit: u32) -> Self {
        self.account_concurrency = limit;
        self
    }

    /// Sets the function's reserved concurrency.
    pub fn reserved_concurrency(mut self, reserved: u32) -> Self {
        self.reserved_concurrency = Some(reserved);
        self
    }

    /// Sets the API stage's steady throttle (requests per second).
    pub fn api_rate(mut self, rps: f64) -> Self {
        self.api_rate_rps = Some(rps);
        self
    }

    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), CapacityError> {
        if self.account_concurrency == 0 {
            return Err(CapacityError::invalid("limits.account_concurrency", "> 0", 0.0));
        }
        if let Some(r) = self.reserved_concurrency {
            if r == 0 || r > self.account_concurrency {
                return Err(CapacityError::invalid(
                    "limits.reserved_concurrency",
                    "> 0 and at most limits.account_concurrency",
                    f64::from(r),
                ));
            }
        }
        for (field, v) in
            [("limits.partition_wcu", self.partition_wcu), ("limits.partition_rcu", self.partition_rcu)]
        {
            if !(v.is_finite() && v > 0.0) {
                return Err(CapacityError::invalid(field, "a number > 0", v));
            }
        }
        if let Some(v) = self.api_rate_rps.filter(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(CapacityError::invalid("limits.api_rate_rps", "a number > 0", v));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> TrafficProfile {
        TrafficProfile::new(100.0).growth(5.0).route("a", 1.0)
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(TrafficProfile, &str)> = vec![
            (TrafficProfile { peak_rps: -5.0, ..ok() }, "traffic.peak_rps"),
            (TrafficProfile { peak_rps: f64::NAN, ..ok() }, "traffic.peak_rps"),
            (ok().growth(-100.5), "traffic.growth_percent_per_month"),
            (ok().months(1201), "traffic.months"),
            (ok().percentile(0.0), "traffic.percentile"),
            (ok().percentile(100.1), "traffic.percentile"),
            (TrafficProfile::new(1.0), "traffic.mix"),
            (ok().route("b", -1.0), "traffic.mix.b"),
            (TrafficProfile::new(1.0).route("a", 0.0), "traffic.mix"),
        ];
        for (profile, field) in cases {
            let err = profile.validate().unwrap_err();
            assert!(matches!(&err, CapacityError::Invalid { field: f, .. } if f == field), "{field}: {err}");
            assert!(err.to_string().starts_with(&format!("{field}: ")), "{err}");
        }
        // -100 % is allowed (the traffic stops), as is shrinking.
        assert!(ok().growth(-100.0).validate().is_ok());
        assert!(ok().growth(-20.0).validate().is_ok());
    }

    #[test]
    fn bad_limits_are_named() {
        let e = Limits::default().account_concurrency(0).validate().unwrap_err();
        assert!(e.to_string().starts_with("limits.account_concurrency: "), "{e}");
        let e = Limits::default().reserved_concurrency(1001).validate().unwrap_err();
        assert!(e.to_string().starts_with("limits.reserved_concurrency: "), "{e}");
        let e = Limits { partition_rcu: 0.0, ..Limits::default() }.validate().unwrap_err();
        assert!(e.to_string().starts_with("limits.partition_rcu: "), "{e}");
        let e = Limits::default().api_rate(0.0).validate().unwrap_err();
        assert!(e.to_string().starts_with("limits.api_rate_rps: "), "{e}");
    }

    #[test]
    fn shares_are_weights_over_their_sum() {
        let p = TrafficProfile::new(1.0).route("create", 6.0).route("get", 3.0).route("refund", 1.0);
        assert!((p.share("create") - 0.6).abs() < 1e-12);
        assert!((p.share("refund") - 0.1).abs() < 1e-12);
        assert_eq!(p.share("missing"), 0.0);
    }
}
