//! `health-records-harness`: chaos drills and the HIPAA compliance suite of the
//! health-records example.
//!
//! ```sh
//! cargo run --release -p health-records --features harness --bin health-records-harness -- \
//!     compliance --features examples/health-records/features
//! cargo run --release -p health-records --features harness --bin health-records-harness -- \
//!     drill scenarios/ci_region_outage.toml
//! ```

use std::process::ExitCode;

use health_records::workload::{HealthRecordsCompliance, HealthRecordsWorkload};
use lift_harness::service_cli::ServiceCli;

#[tokio::main]
async fn main() -> ExitCode {
    ServiceCli::run(HealthRecordsWorkload::default(), HealthRecordsCompliance).await
}
