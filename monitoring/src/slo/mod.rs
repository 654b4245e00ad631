//! SLOs as code: the SLO file, its validation, error budgets and burn-rate alert rules.
//!
//! An SLO file (TOML) names the service's EMF namespace, its SLOs and, optionally, the
//! alert rules; without `[[alert]]` the SRE workbook's defaults apply
//! ([`AlertRule::workbook_defaults`]). Every number the alarms and the local evaluator use
//! (error budget, thresholds, windows) is computed here, once:
//!
//! ```text
//! error budget  = 1 - objective / 100                 (a fraction of requests)
//! burn rate     = error ratio over a window / error budget
//! threshold     = burn_rate x error budget            (the error ratio an alert trips at)
//! alert fires  <=> ratio(long_window) > threshold AND ratio(short_window) > threshold
//! ```
//!
//! # Examples
//!
//! ```
//! use lift_monitoring::slo::SloFile;
//! let file = SloFile::parse(r#"
//!     [service]
//!     name = "payments"
//!     namespace = "Payments"
//!
//!     [[slo]]
//!     name = "availability"
//!     kind = "availability"
//!     objective = 99.9
//! "#)?;
//! let slo = &file.slos()[0];
//! assert_eq!(file.alerts().len(), 3); // page 14.4x 1h/5m, page 6x 6h/30m, ticket 1x 3d/6h
//! assert!((file.alerts()[0].threshold(slo) - 0.0144).abs() < 1e-9);
//! # Ok::<(), lift_monitoring::slo::SloError>(())
//! ```

mod error;
pub(crate) mod file;
mod window;

pub use error::SloError;
pub use file::{
    AlertRule, Scope, Service, Severity, Slo, SloFile, SloKind, LATENCY, OUTAGE_ALERT, REQUESTS, ROUTE,
    SERVER_ERRORS, TENANT,
};
pub use window::Window;
