//! Capacity planning: from measured durations, recorded DynamoDB accesses and a traffic
//! profile, when Lambda concurrency and DynamoDB partitions run out. Pure: no I/O here
//! (`lift-harness capacity` measures and calls [`plan`]).
//!
//! The model, each step hand-checkable:
//!
//! ```text
//! rate(route)         = peak_rps × weight(route) / Σ weights
//! concurrency(route)  = rate(route) × duration(route)       (Little's law, duration in s)
//!                       planned on the profile's percentile (p99 by default) and on the mean
//! concurrency         = Σ routes                            (the percentile sum is conservative:
//!                                                            not every route is at p99 at once)
//! units(key)          = Σ routes rate(route) × units recorded on key by route / invocations(route)
//!                       write: ceil(bytes / 1 KB) WCU; read: ceil(bytes / 4 KB) RCU, half if
//!                       eventually consistent; transactions double
//! demand(month m)     = demand(0) × (1 + growth / 100)^m
//! limit month         = first m in 0..=months with demand(m) >= limit, else "not within N months"
//! ```
//!
//! Partitions: the worst case is assumed, one partition per partition-key value, so a key
//! is hot when its own units per second reach the per-partition limit (1,000 WCU or
//! 3,000 RCU). DynamoDB's adaptive capacity and split-for-heat are **not modelled**: split
//! for heat can spread a hot partition key's items over partitions by sort key, but never
//! one item, and a key's writes that all land on one item (a counter, a chain head) stay
//! on one partition; so the plan errs on the side of flagging. Burst concurrency (the
//! per-minute scaling rate of a cold function) is not modelled either: the plan is for
//! sustained peak load.
//!
//! # Examples
//!
//! ```
//! use lift_monitoring::capacity::{plan, Access, AccessKind, Limits, Measurements, TrafficProfile};
//!
//! // 200 rps on one route measured at 250 ms: 200 × 0.25 = 50 concurrent.
//! let profile = TrafficProfile::new(200.0).growth(10.0).months(36).route("create", 1.0);
//! let mut measured = Measurements::default();
//! measured.route("create", vec![250.0; 4]);
//! // Every create writes one 1 KB item under the tenant's partition.
//! for _ in 0..4 {
//!     measured.accesses.push(Access::new("create", "payments", "TENANT#acme", AccessKind::Write, 900));
//! }
//! let report = plan(&profile, &Limits::default(), &measured)?;
//! assert!((report.concurrency.planned - 50.0).abs() < 1e-9);
//! // 50 × 1.1^m >= 1000 first at m = ceil(ln 20 / ln 1.1) = 32.
//! assert_eq!(report.concurrency.limits[0].month, Some(32));
//! // 200 WCU/s on one key: under 1,000 today, reached at ceil(ln 5 / ln 1.1) = 17.
//! let key = &report.keys[0];
//! assert!((key.wcu_per_s - 200.0).abs() < 1e-9 && !key.hot);
//! assert_eq!(key.write_limit_month, Some(17));
//! println!("{report}");
//! # Ok::<(), lift_monitoring::capacity::CapacityError>(())
//! ```

mod growth;
mod plan;
mod profile;
mod report;
mod units;

pub use growth::{month_reached, project};
pub use plan::{percentile, plan, Measurements, RouteMeasurement};
pub use profile::{Limits, TrafficProfile, MAX_MONTHS};
pub use report::{CapacityReport, ConcurrencyPlan, KeyCapacity, LimitReach, RouteCapacity};
pub use units::{Access, AccessKind, RCU_BYTES, WCU_BYTES};

/// Why a plan cannot be made: a field of the profile, the limits or the measurements that
/// cannot be right.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// A value that cannot be right; `field` is its path (`traffic.peak_rps`,
    /// `measurements.routes.create.durations_ms[3]`).
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault, as a path.
        field: String,
        /// What is wrong, lowercase.
        message: String,
    },
}

impl CapacityError {
    fn invalid(field: &str, wanted: &str, got: f64) -> Self {
        Self::Invalid { field: field.to_owned(), message: format!("must be {wanted}, got {got}") }
    }

    /// The field at fault.
    pub fn field(&self) -> &str {
        match self {
            Self::Invalid { field, .. } => field,
        }
    }
}
