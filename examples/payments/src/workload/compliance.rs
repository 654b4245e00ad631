//! Payments as the compliance suites' target.

use lift::app::App;
use lift::middleware::logging::tracing_subscriber::fmt::MakeWriter as _;
use lift::middleware::logging::MemoryWriter;
use lift::store::TableDef;
use lift::Request;
use lift_harness::compliance::{ComplianceTarget, TargetEnv};

use crate::{PaymentStore, Payments, READ_SCOPE, WRITE_SCOPE};

/// The fingerprint key of the suites (test data only).
const FINGERPRINT_KEY: &[u8] = b"compliance-suite-fingerprint-key";

/// The payments service for `features/*.feature`.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use payments::workload::PaymentsCompliance;
///
/// let run = lift_harness::compliance::run(PaymentsCompliance::default(), "features".as_ref(), "target/compliance".as_ref()).await?;
/// assert_eq!(run.failed, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PaymentsCompliance {
    broken_pan_logging: bool,
}

impl PaymentsCompliance {
    /// A deliberately broken handler: the service also writes the raw card number of
    /// every payment to its log (what a careless `println!` does). The PCI suite must
    /// fail against it.
    pub fn with_broken_pan_logging() -> Self {
        Self { broken_pan_logging: true }
    }
}

impl ComplianceTarget for PaymentsCompliance {
    fn tables(&self) -> Vec<TableDef> {
        vec![crate::table_def()]
    }

    fn scopes(&self) -> Vec<String> {
        vec![READ_SCOPE.to_owned(), WRITE_SCOPE.to_owned()]
    }

    fn app(&self, env: &TargetEnv) -> App {
        let store = PaymentStore::new(env.client.clone(), env.tables[0].clone(), FINGERPRINT_KEY);
        let app = crate::service(Payments { store, dev_tenant_header_insecure: false }, None, None);
        if !self.broken_pan_logging {
            return app;
        }
        let logs = env.logs.clone();
        app.layer(tower::util::MapRequestLayer::new(move |req: Request| log_raw_pan(&logs, req)))
    }
}

/// The broken handler's habit: the raw card number goes to the log.
fn log_raw_pan(logs: &MemoryWriter, req: Request) -> Request {
    let body: serde_json::Value = serde_json::from_slice(req.body().as_bytes()).unwrap_or_default();
    if let Some(pan) = body["card_number"].as_str() {
        use std::io::Write as _;
        let _ = writeln!(logs.make_writer(), "charging card {pan}");
    }
    req
}
