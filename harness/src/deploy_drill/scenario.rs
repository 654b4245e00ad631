//! A deployment drill's scenario file (`scenarios/deploy_*.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::drill::parse_duration;

/// A deployment drill: a function, the variables that make its new version, the load
/// through the HTTP API front, the rollout and the assertions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployScenario {
    /// The scenario's name, in reports.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// The function, as version 1 runs it.
    pub function: FunctionSpec,
    /// What differs in the new version.
    #[serde(default)]
    pub new_version: NewVersion,
    /// The identity the load's tokens carry.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// The load.
    pub load: DeployLoad,
    /// The rollout.
    pub deploy: DeploySpec,
    /// What must hold.
    pub assertions: DeployAssertions,
    /// The directory the file was read from (relative paths in it are resolved there).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The function under deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// Its name (default: the workload's).
    #[serde(default)]
    pub name: Option<String>,
    /// The bootstrap binary; `LIFT_DRILL_BOOTSTRAP` overrides it.
    pub bootstrap: String,
    /// Memory, MB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// The invocation timeout.
    #[serde(default = "default_timeout", with = "humantime_like")]
    pub timeout: Duration,
    /// Its variables. `{dynamodb}`, `{jwt_issuer}` and `{jwks_url}` are replaced by
    /// the drill's; each table's name is in `LIFT_TABLE_<NAME>`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The new version: the same code with these variables added (a chaos build reads
/// `LIFT_CHAOS_*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// Variables set on `$LATEST` before the rollout publishes it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The identity in the load's tokens, signed by the drill's JWKS issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// The tenant.
    pub tenant: String,
    /// The claim the tenant goes in.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// The scopes (`scope` claim).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The audience.
    pub audience: String,
}

/// Load through the HTTP API front on the alias.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployLoad {
    /// Requests per second.
    pub rate: u32,
    /// A client's timeout.
    #[serde(default = "default_client_timeout", with = "humantime_like")]
    pub timeout: Duration,
    /// Load on the old version before the rollout starts.
    #[serde(default, with = "humantime_like")]
    pub warmup: Duration,
    /// Load after the rollout ends.
    #[serde(default, with = "humantime_like")]
    pub cooldown: Duration,
    /// The requests, drawn by weight. `{token}` in a header is the drill's bearer token.
    #[serde(rename = "request")]
    pub requests: Vec<RequestSpec>,
}

/// One kind of request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// The method.
    #[serde(default = "default_method")]
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body.
    #[serde(default)]
    pub body: Option<String>,
    /// Its share of the load.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// The rollout, as `lift-deploy rollout` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// `canary:20%:10s`, `linear:…`, `all-at-once`, `blue-green:…`.
    pub strategy: String,
    /// The alias (default `live`).
    #[serde(default = "default_alias")]
    pub alias: String,
    /// Gates watch this long after the last shift.
    #[serde(default, with = "humantime_like")]
    pub final_bake: Duration,
    /// How often gates are read.
    #[serde(default = "default_poll", with = "humantime_like")]
    pub poll: Duration,
    /// How long a call or reading may take.
    #[serde(default = "default_step_timeout", with = "humantime_like")]
    pub step_timeout: Duration,
    /// The record's lease.
    #[serde(default = "default_lease", with = "humantime_like")]
    pub lease: Duration,
    /// Failing readings of one gate in a row that fail a step while it bakes.
    #[serde(default = "one")]
    pub failures_to_fail: u32,
    /// Roll back when a gate fails (the drill that proves the drill can fail turns it off).
    #[serde(default = "yes")]
    pub auto_rollback: bool,
    /// The readiness path read through the new version, before traffic and while it bakes.
    #[serde(default)]
    pub health: Option<String>,
    /// The SLO file whose burn rates gate the steps (relative to the scenario file).
    #[serde(default)]
    pub slo: Option<String>,
    /// The burn rate that fails the SLO gate.
    #[serde(default = "default_burn")]
    pub max_burn: f64,
    /// The fewest requests an SLO verdict is drawn from. A pass takes more whatever this
    /// says (455 clean requests on a 99.9% SLO at 14.4: see `SloGate::requests_to_pass`), so
    /// a drill expected to promote must send the new version that many by the end of its
    /// first step with traffic.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
}

/// What the drill must show.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployAssertions {
    /// `promoted` or `rolled_back`.
    pub outcome: String,
    /// From the new version's first traffic to the failed gate (rolled-back drills).
    #[serde(default)]
    pub max_detect_secs: Option<f64>,
    /// From the failed gate to traffic back on the old version.
    #[serde(default)]
    pub max_rollback_secs: Option<f64>,
    /// Requests the new version served (gate invocations not counted).
    #[serde(default)]
    pub max_new_version_requests: Option<u64>,
    /// Client requests that failed (5xx or no answer).
    #[serde(default)]
    pub max_client_errors: Option<u64>,
    /// The rollout, start to end.
    #[serde(default)]
    pub max_total_secs: Option<f64>,
    /// Requests the load must have made, so a drill whose load did not run cannot pass.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
}

fn default_memory() -> u32 {
    256
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_client_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_tenant_claim() -> String {
    "tenant_id".into()
}
fn default_method() -> String {
    "GET".into()
}
fn default_weight() -> u32 {
    1
}
fn default_alias() -> String {
    "live".into()
}
fn default_poll() -> Duration {
    Duration::from_millis(500)
}
fn default_step_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_lease() -> Duration {
    Duration::from_secs(15)
}
fn default_burn() -> f64 {
    14.4
}
fn default_min_requests() -> u64 {
    20
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

mod humantime_like {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::drill::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl DeployScenario {
    /// Whether a scenario file's text is a deployment drill (it has a `[deploy]` table).
    pub fn is_deploy_drill(text: &str) -> bool {
        toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("deploy"))
    }

    /// Parses and checks a scenario; unknown keys are refused by name.
    ///
    /// # Errors
    /// A message naming the key that is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let de = toml::Deserializer::new(text);
        let scenario: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner().message())
        })?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Reads and parses a scenario file.
    ///
    /// # Errors
    /// When the file cannot be read or is invalid.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut scenario = Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        scenario.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(scenario)
    }

    fn check(&self) -> Result<(), String> {
        lift_deploy::rollout::Strategy::parse(&self.deploy.strategy)
            .map_err(|e| format!("deploy.strategy: {e}"))?;
        if !matches!(self.assertions.outcome.as_str(), "promoted" | "rolled_back") {
            return Err(format!(
                "assertions.outcome: {:?} is neither \"promoted\" nor \"rolled_back\"",
                self.assertions.outcome
            ));
        }
        if self.load.rate == 0 {
            return Err("load.rate: must be above 0".into());
        }
        if self.load.requests.is_empty() || self.load.requests.iter().all(|r| r.weight == 0) {
            return Err("load.request: at least one request with a weight above 0".into());
        }
        for (i, r) in self.load.requests.iter().enumerate() {
            if http::Method::from_bytes(r.method.as_bytes()).is_err() {
                return Err(format!("load.request[{i}].method: {:?} is not an HTTP method", r.method));
            }
            if !r.path.starts_with('/') {
                return Err(format!("load.request[{i}].path: {:?} does not start with /", r.path));
            }
        }
        if self.deploy.health.is_none() && self.deploy.slo.is_none() {
            return Err("deploy: a drill with no gate (health or slo) proves nothing".into());
        }
        if self.deploy.max_burn <= 0.0 {
            return Err("deploy.max_burn: must be above 0".into());
        }
        Ok(())
    }

    /// A duration from the file's text form, for tests.
    pub fn duration(text: &str) -> Duration {
        parse_duration(text).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "d"
        [function]
        bootstrap = "target/debug/payments"
        [load]
        rate = 10
        [[load.request]]
        path = "/payments"
        [deploy]
        strategy = "canary:20%:5s"
        health = "/health/ready"
        [assertions]
        outcome = "rolled_back"
    "#;

    #[test]
    fn a_minimal_scenario_parses_with_defaults() {
        let s = DeployScenario::parse(MINIMAL).unwrap();
        assert_eq!(s.deploy.alias, "live");
        assert!(s.deploy.auto_rollback);
        assert_eq!(s.function.memory_mb, 256);
        assert!(DeployScenario::is_deploy_drill(MINIMAL));
    }

    #[test]
    fn typos_and_contradictions_are_refused_by_name() {
        let typo = MINIMAL.replace("health =", "helth =");
        assert!(DeployScenario::parse(&typo).unwrap_err().contains("helth"), "unknown keys are named");
        let outcome = MINIMAL.replace("\"rolled_back\"", "\"rolledback\"");
        assert!(DeployScenario::parse(&outcome).unwrap_err().contains("assertions.outcome"));
        let strategy = MINIMAL.replace("canary:20%:5s", "canary:20%");
        assert!(DeployScenario::parse(&strategy).unwrap_err().contains("deploy.strategy"));
        let no_gate = MINIMAL.replace("health = \"/health/ready\"", "");
        assert!(DeployScenario::parse(&no_gate).unwrap_err().contains("no gate"));
        let method = MINIMAL.replace("path = \"/payments\"", "path = \"/payments\"\nmethod = \"G T\"");
        assert!(DeployScenario::parse(&method).unwrap_err().contains("method"));
    }
}
