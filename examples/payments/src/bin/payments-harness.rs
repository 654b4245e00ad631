//! `payments-harness`: chaos drills and compliance suites of the payments example.
//!
//! ```sh
//! cargo run --release -p payments --features harness --bin payments-harness -- drill scenarios/region_outage.toml
//! cargo run --release -p payments --features harness --bin payments-harness -- compliance
//! ```

use std::process::ExitCode;

use lift_harness::service_cli::ServiceCli;
use payments::workload::{PaymentsCompliance, PaymentsWorkload};

#[tokio::main]
async fn main() -> ExitCode {
    ServiceCli::run(PaymentsWorkload::default(), PaymentsCompliance::default()).await
}
