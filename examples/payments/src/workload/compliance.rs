//! Payments as the compliance suites' target.

use lift::app::App;
use lift::security::protection::{AwsKmsClient, SubjectKeys};
use lift::store::TableDef;
use lift::Request;
use lift_harness::compliance::{ComplianceTarget, TargetEnv};

use crate::{Config, PaymentStore, Payments, READ_SCOPE, WRITE_SCOPE};

/// The fingerprint key of the suites (test data only).
const FINGERPRINT_KEY: &[u8] = b"compliance-suite-fingerprint-key";

/// The payments service for `features/*.feature`, built as `main` builds it with a KMS key
/// configured: personal data encrypted under each customer's key (in the KMS mock), and
/// idempotent answers stored sealed under the same keys. The suites scan its three tables
/// (payments, idempotency records, customer keys).
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
    /// A deliberately broken handler: the service also logs the raw card number of every
    /// payment with `tracing::info!` (what a careless debugging line does). Lift's log layer
    /// would redact it in production's logs; the PCI suite judges what the handler wrote,
    /// and must fail against it.
    pub fn with_broken_pan_logging() -> Self {
        Self { broken_pan_logging: true }
    }
}

impl ComplianceTarget for PaymentsCompliance {
    fn tables(&self) -> Vec<TableDef> {
        vec![crate::table_def(), lift::store::tables::idempotency(), lift::store::tables::subject_keys()]
    }

    fn scopes(&self) -> Vec<String> {
        vec![READ_SCOPE.to_owned(), WRITE_SCOPE.to_owned()]
    }

    fn app(&self, env: &TargetEnv) -> App {
        // The configuration `main` reads, naming the scenario's tables; JWT is the suites'.
        let fingerprint_key = String::from_utf8_lossy(FINGERPRINT_KEY).into_owned();
        let config = Config::from_env_vars(|name| match name {
            "PAYMENTS_TABLE" => Some(env.tables[0].clone()),
            "PAYMENTS_IDEMPOTENCY_TABLE" => Some(env.tables[1].clone()),
            "PAYMENTS_SUBJECT_KEYS_TABLE" => Some(env.tables[2].clone()),
            "PAYMENTS_KMS_KEY_ID" => Some(lift_harness::aws::DEFAULT_KEY_ALIAS.to_owned()),
            crate::fingerprint_key::KEY_VAR => Some(fingerprint_key.clone()),
            "PAYMENTS_JWT_ISSUER" => Some("https://issuer.compliance.invalid".to_owned()),
            "PAYMENTS_JWKS_URL" => Some("https://issuer.compliance.invalid/jwks.json".to_owned()),
            _ => None,
        })
        .expect("the suites' payments configuration");
        // `Config::subject_keys` reaches KMS at the process's AWS endpoint; the suites' KMS
        // is the mock, so the keys are built here the same way, at its endpoint.
        let kms = AwsKmsClient::endpoint(&env.kms_endpoint, "eu-west-1").expect("the KMS mock's endpoint");
        let keys = SubjectKeys::builder()
            .client(env.client.clone())
            .table(&config.subject_keys_table)
            .kms(kms, lift_harness::aws::DEFAULT_KEY_ALIAS)
            .build()
            .expect("valid customer keys");
        let store = PaymentStore::new(env.client.clone(), config.table.clone(), FINGERPRINT_KEY)
            .with_subject_keys(keys.clone());
        let idempotency = config
            .idempotency_layer_sealed(env.client.clone(), keys, FINGERPRINT_KEY)
            .expect("the sealed idempotency layer");
        let app =
            crate::service(Payments { store, dev_tenant_header_insecure: false }, None, Some(idempotency));
        if !self.broken_pan_logging {
            return app;
        }
        app.layer(tower::util::MapRequestLayer::new(log_raw_pan))
    }
}

/// The broken handler's habit: the raw card number goes to the log.
fn log_raw_pan(req: Request) -> Request {
    let body: serde_json::Value = serde_json::from_slice(req.body().as_bytes()).unwrap_or_default();
    if let Some(pan) = body["card_number"].as_str() {
        lift::middleware::logging::tracing::info!("charging card {pan}");
    }
    req
}
