//! What a service provides for the compliance suites to drive it.

use std::sync::{Arc, RwLock};

use lift::app::App;
use lift::middleware::logging::MemoryWriter;
use lift::store::TableDef;

/// A service the compliance suites drive: its tables, the scopes its callers need, and
/// its [`App`] over DynamoDB Local.
///
/// The suites wrap the app in Lift's audit, compliance and threat middleware, add a small
/// health-records route, and authenticate each request's tenant with [`scopes`](Self::scopes).
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
    /// The service's tables, created fresh for each scenario. The steps about stored
    /// payments scan the first.
    fn tables(&self) -> Vec<TableDef>;

    /// The scopes the suites' callers are granted.
    fn scopes(&self) -> Vec<String>;

    /// The service, over the scenario's DynamoDB client and tables.
    fn app(&self, env: &TargetEnv) -> App;
}

/// What a scenario gives the service it builds.
#[derive(Debug, Clone)]
pub struct TargetEnv {
    /// A client of DynamoDB Local.
    pub client: aws_sdk_dynamodb::Client,
    /// The physical names of [`ComplianceTarget::tables`], in the same order.
    pub tables: Vec<String>,
    /// The log sink the suites read (what the service writes to its log ends up here).
    pub logs: MemoryWriter,
}

static TARGET: RwLock<Option<Arc<dyn ComplianceTarget>>> = RwLock::new(None);

pub(crate) fn set(target: Arc<dyn ComplianceTarget>) {
    *TARGET.write().expect("target lock") = Some(target);
}

pub(crate) fn get() -> Arc<dyn ComplianceTarget> {
    TARGET.read().expect("target lock").clone().expect("compliance::run sets the target first")
}
