//! The Lift harness: real DynamoDB Local, mocked AWS endpoints, compliance suites, chaos
//! drills and overhead budgets, on one machine.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ddb = lift_harness::dynamodb::DynamoDbLocal::shared().await?;
//! let table = ddb.create_table(&lift::store::tables::audit()).await?;
//! println!("{} at {}", table, ddb.endpoint());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod aws;
pub mod backup;
/// Overhead budgets: criterion's results against `benches/budgets.toml`, and `lift-harness budget`.
pub mod budget;
pub mod capacity;
pub mod compliance;
pub mod cost;
pub mod deploy_drill;
pub mod drill;
pub mod dynamodb;
pub mod faults;
pub mod lambda;
pub mod service_cli;
/// `lift-harness up`.
pub mod up;
pub mod workload;

pub use workload::{Acked, Call, Effect, EffectCheck, OpError, Workload};
