//! Health records as the compliance suites' target (`examples/health-records/features`).

use lift::app::App;
use lift::security::protection::{AwsKmsClient, SubjectKeys};
use lift::security::threat::Playbook;
use lift::store::TableDef;
use lift_harness::compliance::{ComplianceTarget, TargetEnv};

use crate::access::CLINICIAN;
use crate::{HealthRecords, PhiCipher, RecordStore, READ_SCOPE, WRITE_SCOPE};

/// The health-records service for the HIPAA suite: its own routes, PHI sealed under the
/// patients' keys wrapped by the suites' KMS mock, break-glass incidents and the accounting
/// of disclosures on the scenario's audit trail. Callers are clinicians unless a step
/// grants other roles.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use health_records::workload::HealthRecordsCompliance;
///
/// let features = "examples/health-records/features".as_ref();
/// let run = lift_harness::compliance::run(HealthRecordsCompliance, features, "target/compliance".as_ref()).await?;
/// assert_eq!(run.failed, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthRecordsCompliance;

impl ComplianceTarget for HealthRecordsCompliance {
    fn tables(&self) -> Vec<TableDef> {
        vec![crate::table_def(), lift::store::tables::subject_keys()]
    }

    fn scopes(&self) -> Vec<String> {
        vec![READ_SCOPE.to_owned(), WRITE_SCOPE.to_owned()]
    }

    fn roles(&self) -> Vec<String> {
        vec![CLINICIAN.to_owned()]
    }

    fn serves_health_records(&self) -> bool {
        true
    }

    fn app(&self, env: &TargetEnv) -> App {
        let kms = AwsKmsClient::endpoint(&env.kms_endpoint, "eu-west-1").expect("the KMS mock's endpoint");
        let keys = SubjectKeys::builder()
            .client(env.client.clone())
            .table(&env.tables[1])
            .kms(kms, lift_harness::aws::DEFAULT_KEY_ALIAS)
            .build()
            .expect("valid subject keys");
        let store = RecordStore::new(env.client.clone(), env.tables[0].clone(), PhiCipher::Subject(keys));
        crate::service(HealthRecords {
            store,
            audit: Some(env.audit.clone()),
            break_glass: Playbook::new().audit(env.audit.clone()),
        })
    }
}
