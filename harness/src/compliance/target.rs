//! What a service provides for the compliance suites to drive it.

use std::sync::{Arc, RwLock};

use lift::app::App;
use lift::middleware::logging::MemoryWriter;
use lift::store::TableDef;

/// A service the compliance suites drive: its tables, the scopes its callers need, and
/// its [`App`] over DynamoDB Local.
///
/// The suites wrap the app in Lift's audit, compliance and threat middleware, add a small
/// health-records route unless the service [serves its own](Self::serves_health_records),
/// and authenticate each request's tenant with [`scopes`](Self::scopes),
/// as [`assembly`](Self::assembly) says (by default: every layer, the scenario's region).
///
/// # Examples
///
/// ```
/// use lift::store::{KeyAttribute, TableDef};
/// use lift_harness::compliance::{ComplianceTarget, TargetEnv};
///
/// struct Hello;
///
/// impl ComplianceTarget for Hello {
///     fn tables(&self) -> Vec<TableDef> {
///         vec![TableDef::new("hello", KeyAttribute::string("pk"))]
///     }
///     fn scopes(&self) -> Vec<String> {
///         vec!["hello:read".into()]
///     }
///     fn app(&self, _env: &TargetEnv) -> lift::app::App {
///         lift::app::App::new()
///     }
/// }
/// ```
pub trait ComplianceTarget: Send + Sync + 'static {
    /// The service's tables, created fresh for each scenario. The steps about a tenant's
    /// stored payments read the first; the scans for text or card numbers in clear read
    /// them all.
    fn tables(&self) -> Vec<TableDef>;

    /// The scopes the suites' callers are granted.
    fn scopes(&self) -> Vec<String>;

    /// The service, over the scenario's DynamoDB client and tables.
    fn app(&self, env: &TargetEnv) -> App;

    /// The roles the suites' callers hold unless a step grants others (none by default).
    fn roles(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether the service serves `/patients/:id/records` itself (a health-records
    /// service). When it does not, the suites add their small health-records route, so
    /// the HIPAA steps have records to store and read.
    fn serves_health_records(&self) -> bool {
        false
    }

    /// How the service is assembled around its app: by default with every layer the
    /// suites add, in the scenario's region. A service built otherwise says so here, and
    /// the suites run it as built (the must-fail features use this to show that a service
    /// missing a layer fails them).
    fn assembly(&self) -> Assembly {
        Assembly::default()
    }
}

/// How a [`ComplianceTarget`] is assembled around its [`App`]: which of the suites'
/// layers wrap it, which routes its JWT layer lets through without a token, and whether
/// it pins its own region instead of running in the scenario's.
///
/// # Examples
///
/// ```
/// use lift_harness::compliance::Assembly;
///
/// // A service whose author forgot the audit layer and opened its payments route.
/// let assembly = Assembly::default().without_audit().public_path("/payments*");
/// assert!(!assembly.audit);
/// assert_eq!(assembly.public_paths, ["/payments*"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembly {
    /// Whether Lift's `AuditLayer` wraps the app.
    pub audit: bool,
    /// Whether Lift's `ComplianceLayer` (the rules, and their blocking) wraps the app.
    pub compliance: bool,
    /// Paths the JWT layer lets through without a token, besides `/health*` (a trailing
    /// `*` matches the path itself and every path below it, as `JwtLayer::exempt_path`
    /// reads it).
    pub public_paths: Vec<String>,
    /// A region the service sets on its app itself, whatever region the scenario runs it in.
    pub pinned_region: Option<String>,
}

impl Default for Assembly {
    fn default() -> Self {
        Self { audit: true, compliance: true, public_paths: Vec::new(), pinned_region: None }
    }
}

impl Assembly {
    /// Built without the audit layer.
    pub fn without_audit(mut self) -> Self {
        self.audit = false;
        self
    }

    /// Built without the compliance layer.
    pub fn without_compliance(mut self) -> Self {
        self.compliance = false;
        self
    }

    /// The JWT layer also lets `pattern` through without a token.
    pub fn public_path(mut self, pattern: impl Into<String>) -> Self {
        self.public_paths.push(pattern.into());
        self
    }

    /// The app sets its region to `region` itself.
    pub fn pinned_region(mut self, region: impl Into<String>) -> Self {
        self.pinned_region = Some(region.into());
        self
    }
}

/// What a scenario gives the service it builds.
#[derive(Debug, Clone)]
pub struct TargetEnv {
    /// A client of DynamoDB Local.
    pub client: aws_sdk_dynamodb::Client,
    /// The physical names of [`ComplianceTarget::tables`], in the same order.
    pub tables: Vec<String>,
    /// The log sink the suites read: every `tracing` event of the process lands here as the
    /// service wrote it, fields in clear (JSON per line), before any redaction.
    pub logs: MemoryWriter,
    /// The scenario's audit trail, the one the suites' audit layer writes (a service that
    /// reads its own trail, e.g. an accounting of disclosures, reads this one).
    pub audit: lift::security::audit::AuditTrail,
    /// The suites' KMS mock (region `eu-west-1`, default key
    /// [`DEFAULT_KEY_ALIAS`](crate::aws::DEFAULT_KEY_ALIAS)), for a service that encrypts.
    pub kms_endpoint: String,
}

static TARGET: RwLock<Option<Arc<dyn ComplianceTarget>>> = RwLock::new(None);

pub(crate) fn set(target: Arc<dyn ComplianceTarget>) {
    *TARGET.write().expect("target lock") = Some(target);
}

pub(crate) fn get() -> Arc<dyn ComplianceTarget> {
    TARGET.read().expect("target lock").clone().expect("compliance::run sets the target first")
}
