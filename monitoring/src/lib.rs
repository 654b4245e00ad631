//! SLOs as code for Lift services: error budgets and multi-window burn-rate alerts, as
//! CloudWatch alarms and as a local evaluator over EMF logs, from one SLO file.
//!
//! # Quick start
//!
//! ```
//! use lift_monitoring::{alarms, evaluator::Evaluator, slo::SloFile};
//!
//! let file = SloFile::parse(r#"
//!     [service]
//!     name = "payments"
//!     namespace = "Payments"
//!
//!     [[slo]]
//!     name = "create-latency"
//!     kind = "latency"
//!     route = "/payments"
//!     objective = 99.0
//!     threshold_ms = 300
//! "#)?;
//! // CloudWatch alarms, for lift-deploy's templates.
//! let fragment = alarms::fragment(&file);
//! assert!(fragment["Resources"].as_object().unwrap().len() > 0);
//! // The same rules over an EMF stream (a local runtime's logs, or in-process).
//! let mut evaluator = Evaluator::new(file);
//! evaluator.observe_line(r#"{"_aws":{"Timestamp":0,"CloudWatchMetrics":[{"Namespace":"Payments","Dimensions":[["Route"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"}]}]},"Route":"/payments","Latency":12.5}"#)?;
//! let report = evaluator.finish();
//! assert_eq!(report.slos[0].requests, 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The SLO file's format is documented in `monitoring/README.md`; [`slo`] validates it.
//!
//! [`capacity`] plans Lambda concurrency and DynamoDB partition load from measured
//! durations, recorded key accesses and a traffic profile (`lift-harness capacity` measures).
//! [`cost`] prices usage measured by `lift-harness cost` (a versioned table of AWS list
//! prices, cost per million requests per route, monthly projections with volume tiers) and
//! recommends memory sizes from `lift-harness rightsize` measurements.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod alarms;
pub mod capacity;
pub mod cost;
pub mod emf;
pub mod evaluator;
pub mod slo;
