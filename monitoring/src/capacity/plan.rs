//! The measurements a plan is made from, and the plan itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::growth::{month_reached, project};
use super::report::{CapacityReport, ConcurrencyPlan, KeyCapacity, LimitReach, RouteCapacity};
use super::{Access, CapacityError, Limits, TrafficProfile};

/// What one route's measured invocations gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteMeasurement {
    /// Requests sent (the divisor of the route's recorded accesses).
    pub invocations: u64,
    /// Each invocation's duration from its `REPORT` line, in milliseconds.
    pub durations_ms: Vec<f64>,
}

/// Measured durations per route and the DynamoDB accesses recorded while measuring.
///
/// # Examples
///
/// ```
/// use lift_monitoring::capacity::Measurements;
/// let mut m = Measurements::default();
/// m.route("get", vec![10.0, 20.0]);
/// assert_eq!(m.routes["get"].invocations, 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// Where the figures come from (the binary, the runtime, the run's settings).
    #[serde(default)]
    pub source: String,
    /// Per route.
    pub routes: BTreeMap<String, RouteMeasurement>,
    /// Every access of a partition key recorded during the run.
    #[serde(default)]
    pub accesses: Vec<Access>,
}

impl Measurements {
    /// Adds a route measured by `durations_ms.len()` invocations.
    pub fn route(&mut self, name: impl Into<String>, durations_ms: Vec<f64>) -> &mut Self {
        let invocations = durations_ms.len() as u64;
        self.routes.insert(name.into(), RouteMeasurement { invocations, durations_ms });
        self
    }

    fn validate(&self, profile: &TrafficProfile) -> Result<(), CapacityError> {
        for (route, weight) in &profile.mix {
            if *weight > 0.0 && !self.routes.contains_key(route) {
                return Err(CapacityError::Invalid {
                    field: format!("measurements.routes.{route}"),
                    message: "the mix weighs this route but nothing measured it".into(),
                });
            }
        }
        for (route, m) in &self.routes {
            if m.durations_ms.is_empty() || m.invocations == 0 {
                return Err(CapacityError::Invalid {
                    field: format!("measurements.routes.{route}.durations_ms"),
                    message: "no durations measured".into(),
                });
            }
            if let Some((i, d)) =
                m.durations_ms.iter().enumerate().find(|(_, d)| !(d.is_finite() && **d > 0.0))
            {
                return Err(CapacityError::invalid(
                    &format!("measurements.routes.{route}.durations_ms[{i}]"),
                    "a duration > 0 ms",
                    *d,
                ));
            }
        }
        if let Some((i, a)) =
            self.accesses.iter().enumerate().find(|(_, a)| !self.routes.contains_key(&a.route))
        {
            return Err(CapacityError::Invalid {
                field: format!("measurements.accesses[{i}].route"),
                message: format!("route {:?} has no measured invocations", a.route),
            });
        }
        Ok(())
    }
}

/// `p` (0..=100) of `values` by nearest rank: the smallest value at or above `p` % of them.
///
/// # Examples
///
/// ```
/// use lift_monitoring::capacity::percentile;
/// let v: Vec<f64> = (1..=100).map(f64::from).collect();
/// assert_eq!(percentile(&v, 99.0), 99.0);
/// assert_eq!(percentile(&v, 50.0), 50.0);
/// assert_eq!(percentile(&[3.0, 1.0, 2.0], 100.0), 3.0);
/// ```
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Makes the plan: concurrency per route and in total, per-key DynamoDB units, and the month
/// each limit is reached. See the [module docs](super) for the formulas.
///
/// # Errors
///
/// [`CapacityError::Invalid`] naming the field when the profile, the limits or the
/// measurements cannot be right (a negative rate, growth below -100 %, a zero duration, a
/// route in the mix that nothing measured).
pub fn plan(
    profile: &TrafficProfile,
    limits: &Limits,
    measured: &Measurements,
) -> Result<CapacityReport, CapacityError> {
    profile.validate()?;
    limits.validate()?;
    measured.validate(profile)?;
    let (g, months) = (profile.growth_percent_per_month, profile.months);

    let mut routes = Vec::new();
    for (name, m) in &measured.routes {
        let share = profile.share(name);
        let rate = profile.peak_rps * share;
        let (mean_ms, planning_ms) = (mean(&m.durations_ms), percentile(&m.durations_ms, profile.percentile));
        routes.push(RouteCapacity {
            route: name.clone(),
            share,
            rate_rps: rate,
            invocations: m.invocations,
            mean_ms,
            p50_ms: percentile(&m.durations_ms, 50.0),
            planning_ms,
            max_ms: percentile(&m.durations_ms, 100.0),
            concurrency_mean: rate * mean_ms / 1000.0,
            concurrency_planned: rate * planning_ms / 1000.0,
        });
    }
    let planned: f64 = routes.iter().map(|r| r.concurrency_planned).sum();
    let mean_total: f64 = routes.iter().map(|r| r.concurrency_mean).sum();
    let reach = |name: String, limit: f64, now: f64| LimitReach {
        month: month_reached(now, g, limit, months),
        limit: name,
        value: limit,
        at_horizon: project(now, g, months),
    };
    let mut concurrency_limits = Vec::new();
    if let Some(r) = limits.reserved_concurrency {
        concurrency_limits.push(reach("reserved concurrency".into(), f64::from(r), planned));
    }
    concurrency_limits.push(reach(
        "account concurrency".into(),
        f64::from(limits.account_concurrency),
        planned,
    ));
    let concurrency = ConcurrencyPlan {
        percentile: profile.percentile,
        mean: mean_total,
        planned,
        mean_limit_month: month_reached(
            mean_total,
            g,
            f64::from(limits.reserved_concurrency.unwrap_or(limits.account_concurrency)),
            months,
        ),
        limits: concurrency_limits,
    };

    // Per (table, key): units and accesses per second at today's peak.
    let mut keys: BTreeMap<(String, String), KeyCapacity> = BTreeMap::new();
    for a in &measured.accesses {
        let per_request =
            profile.peak_rps * profile.share(&a.route) / measured.routes[&a.route].invocations as f64;
        let k = keys.entry((a.table.clone(), a.key.clone())).or_insert_with(|| KeyCapacity {
            table: a.table.clone(),
            key: a.key.clone(),
            ..KeyCapacity::default()
        });
        k.accesses_per_s += per_request;
        if a.is_write() {
            k.wcu_per_s += per_request * a.units();
        } else {
            k.rcu_per_s += per_request * a.units();
        }
    }
    let mut keys: Vec<KeyCapacity> = keys
        .into_values()
        .map(|mut k| {
            k.wcu_utilisation = k.wcu_per_s / limits.partition_wcu;
            k.rcu_utilisation = k.rcu_per_s / limits.partition_rcu;
            k.hot = k.wcu_per_s >= limits.partition_wcu || k.rcu_per_s >= limits.partition_rcu;
            k.write_limit_month = month_reached(k.wcu_per_s, g, limits.partition_wcu, months);
            k.read_limit_month = month_reached(k.rcu_per_s, g, limits.partition_rcu, months);
            k
        })
        .collect();
    keys.sort_by(|a, b| b.utilisation().total_cmp(&a.utilisation()).then_with(|| a.key.cmp(&b.key)));
    let hot_keys = keys.iter().filter(|k| k.hot).map(|k| format!("{} {}", k.table, k.key)).collect();
    // Requests above the API stage's throttle are refused before the function sees them.
    let request_limits = limits
        .api_rate_rps
        .map(|rate| reach("API throttle rate".into(), rate, profile.peak_rps))
        .into_iter()
        .collect();
    Ok(CapacityReport {
        profile: profile.clone(),
        limits: limits.clone(),
        routes,
        concurrency,
        request_limits,
        keys,
        hot_keys,
        measurements: measured.clone(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::capacity::AccessKind;

    fn one_route(rps: f64, ms: f64) -> (TrafficProfile, Measurements) {
        let profile = TrafficProfile::new(rps).route("r", 1.0);
        let mut m = Measurements::default();
        m.route("r", vec![ms; 10]);
        (profile, m)
    }

    #[test]
    fn the_api_throttle_is_a_limit_on_the_peak_rate() {
        // 500 rps against a 100 rps stage: refused today. 50 rps growing 10 %/month passes
        // 100 in month 8 (50 × 1.1^8 = 107.2; 1.1^7 = 97.4).
        let (p, m) = one_route(500.0, 10.0);
        let r = plan(&p, &Limits::default().api_rate(100.0), &m).unwrap();
        assert_eq!(r.request_limits.len(), 1);
        assert_eq!(
            (r.request_limits[0].limit.as_str(), r.request_limits[0].month),
            ("API throttle rate", Some(0))
        );
        assert!(r.to_string().contains("API throttle rate"), "{r}");
        let p = TrafficProfile::new(50.0).growth(10.0).months(24).route("r", 1.0);
        let r = plan(&p, &Limits::default().api_rate(100.0), &m).unwrap();
        assert_eq!(r.request_limits[0].month, Some(8));
        // Without a stage, no such limit.
        assert!(plan(&p, &Limits::default(), &m).unwrap().request_limits.is_empty());
    }

    #[test]
    fn littles_law_by_hand() {
        // 200 rps × 0.25 s = 50 concurrent.
        let (p, m) = one_route(200.0, 250.0);
        let r = plan(&p, &Limits::default(), &m).unwrap();
        assert!((r.concurrency.planned - 50.0).abs() < 1e-9);
        assert!((r.concurrency.mean - 50.0).abs() < 1e-9);
    }

    #[test]
    fn the_percentile_and_the_mean_are_both_planned() {
        // 100 durations 1..=100 ms; 1,000 rps: p99 = 99 ms -> 99; mean 50.5 ms -> 50.5.
        let p = TrafficProfile::new(1000.0).route("r", 1.0);
        let mut m = Measurements::default();
        m.route("r", (1..=100).map(f64::from).collect());
        let r = plan(&p, &Limits::default(), &m).unwrap();
        assert!((r.concurrency.planned - 99.0).abs() < 1e-9, "{}", r.concurrency.planned);
        assert!((r.concurrency.mean - 50.5).abs() < 1e-9);
        let r = plan(&p.clone().percentile(50.0), &Limits::default(), &m).unwrap();
        assert!((r.concurrency.planned - 50.0).abs() < 1e-9);
    }

    #[test]
    fn the_mix_splits_the_rate_over_routes() {
        // 1,000 rps: 750 to a 100 ms route (75) and 250 to a 40 ms route (10) = 85.
        let p = TrafficProfile::new(1000.0).route("a", 3.0).route("b", 1.0);
        let mut m = Measurements::default();
        m.route("a", vec![100.0; 5]).route("b", vec![40.0; 5]);
        let r = plan(&p, &Limits::default(), &m).unwrap();
        assert!((r.concurrency.planned - 85.0).abs() < 1e-9);
    }

    #[test]
    fn growth_from_500_at_10_percent_reaches_1000_in_month_8() {
        // 500 rps × 1 s = 500; ln(1000/500)/ln(1.1) = 7.27 -> month 8.
        let (p, m) = one_route(500.0, 1000.0);
        let r = plan(&p.growth(10.0).months(24), &Limits::default(), &m).unwrap();
        let account = r.concurrency.limits.iter().find(|l| l.limit == "account concurrency").unwrap();
        assert_eq!(account.month, Some((2f64.ln() / 1.1f64.ln()).ceil() as u32));
        assert_eq!(account.month, Some(8));
        // Reserved 600: 600/500 = 1.2, ln 1.2 / ln 1.1 = 1.91 -> month 2.
        let (p, m) = one_route(500.0, 1000.0);
        let r = plan(&p.growth(10.0), &Limits::default().reserved_concurrency(600), &m).unwrap();
        assert_eq!(r.concurrency.limits[0].limit, "reserved concurrency");
        assert_eq!(r.concurrency.limits[0].month, Some(2));
        // Not within 7 months.
        let (p, m) = one_route(500.0, 1000.0);
        let r = plan(&p.growth(10.0).months(7), &Limits::default(), &m).unwrap();
        assert_eq!(r.concurrency.limits[0].month, None);
        assert!(r.to_string().contains("not within 7 months"), "{r}");
    }

    #[test]
    fn a_hot_key_is_flagged_by_its_share_times_the_peak() {
        // 4,000 rps; 10 requests measured; 3 of them wrote 1 WCU on TENANT#hot, 7 on others.
        // TENANT#hot: 4000 × 3/10 × 1 = 1,200 WCU/s >= 1,000: hot. Each other: 400.
        let p = TrafficProfile::new(4000.0).growth(10.0).route("create", 1.0);
        let mut m = Measurements::default();
        m.route("create", vec![10.0; 10]);
        for i in 0..10 {
            let key = if i < 3 { "TENANT#hot".to_owned() } else { format!("TENANT#t{i}") };
            m.accesses.push(Access::new("create", "payments", key, AccessKind::Write, 500));
        }
        let r = plan(&p, &Limits::default(), &m).unwrap();
        assert_eq!(r.hot_keys, vec!["payments TENANT#hot".to_owned()]);
        let hot = &r.keys[0];
        assert!((hot.wcu_per_s - 1200.0).abs() < 1e-9);
        assert_eq!(hot.write_limit_month, Some(0));
        let cold = &r.keys[1];
        assert!((cold.wcu_per_s - 400.0).abs() < 1e-9 && !cold.hot);
        // 400 × 1.1^m >= 1000: ln 2.5 / ln 1.1 = 9.61 -> month 10.
        assert_eq!(cold.write_limit_month, Some(10));
        // Reads: 3,000 RCU. 4000 × 1 consistent read of 9 KB (3 RCU) per request = 12,000.
        let mut m2 = Measurements::default();
        m2.route("create", vec![10.0; 1]);
        m2.accesses.push(Access::new("create", "t", "k", AccessKind::ConsistentRead, 9000));
        let r = plan(&p, &Limits::default(), &m2).unwrap();
        assert!((r.keys[0].rcu_per_s - 12000.0).abs() < 1e-9 && r.keys[0].hot);
    }

    #[test]
    fn bad_measurements_name_the_field() {
        let (p, mut m) = one_route(10.0, 0.0);
        let e = plan(&p, &Limits::default(), &m).unwrap_err();
        assert_eq!(e.field(), "measurements.routes.r.durations_ms[0]");
        assert!(e.to_string().contains("must be a duration > 0 ms, got 0"), "{e}");
        m.route("r", vec![5.0, -1.0]);
        assert_eq!(
            plan(&p, &Limits::default(), &m).unwrap_err().field(),
            "measurements.routes.r.durations_ms[1]"
        );
        m.route("r", vec![]);
        assert_eq!(
            plan(&p, &Limits::default(), &m).unwrap_err().field(),
            "measurements.routes.r.durations_ms"
        );
        let p2 = p.clone().route("other", 1.0);
        m.route("r", vec![5.0]);
        assert_eq!(plan(&p2, &Limits::default(), &m).unwrap_err().field(), "measurements.routes.other");
        m.accesses.push(Access::new("ghost", "t", "k", AccessKind::Write, 1));
        assert_eq!(plan(&p, &Limits::default(), &m).unwrap_err().field(), "measurements.accesses[0].route");
        // Profile and limits errors come through plan too.
        let (p, m) = one_route(-1.0, 5.0);
        assert_eq!(plan(&p, &Limits::default(), &m).unwrap_err().field(), "traffic.peak_rps");
        let (p, m) = one_route(1.0, 5.0);
        assert_eq!(
            plan(&p.growth(-150.0), &Limits::default(), &m).unwrap_err().field(),
            "traffic.growth_percent_per_month"
        );
    }

    proptest! {
        #[test]
        fn concurrency_is_linear_in_rate(rate in 0.0f64..10_000.0, k in 0.0f64..20.0, ms in 0.1f64..30_000.0) {
            let (p, m) = one_route(rate, ms);
            let (pk, _) = one_route(rate * k, ms);
            let one = plan(&p, &Limits::default(), &m).unwrap().concurrency.planned;
            let scaled = plan(&pk, &Limits::default(), &m).unwrap().concurrency.planned;
            prop_assert!((scaled - k * one).abs() <= 1e-9 * (1.0 + scaled.abs()), "{scaled} vs {k} × {one}");
            prop_assert!((one - rate * ms / 1000.0).abs() <= 1e-9 * (1.0 + one));
        }

        #[test]
        fn the_limit_month_is_monotone_in_growth(
            rate in 1.0f64..2000.0, ms in 1.0f64..2000.0, slow in -99.0f64..100.0, extra in 0.0f64..100.0,
        ) {
            let (p, m) = one_route(rate, ms);
            let at = |g: f64| plan(&p.clone().growth(g).months(120), &Limits::default(), &m).unwrap().concurrency.limits[0].month;
            match (at(slow), at(slow + extra)) {
                (Some(a), Some(b)) => prop_assert!(b <= a),
                (Some(_), None) => prop_assert!(false, "faster growth never reached the limit"),
                _ => {}
            }
        }
    }
}
