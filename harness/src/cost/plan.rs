//! A cost plan: the function to run (its bootstrap, memory and environment) and the HTTP
//! requests that make up each route, in order, with values captured from one answer for
//! the next request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lift_monitoring::cost::Arch;
use serde::Deserialize;

use crate::capacity::deployed::Deployed;

/// A plan file (`examples/payments/cost.toml` is one).
///
/// ```toml
/// iterations = 10                    # passes over the steps (after one warm-up pass)
/// deploy = "lift.toml"                # optional: the service's deployment file, see below
///
/// [function]
/// name = "payments"
/// bin = "{target_dir}/debug/payments" # {target_dir}: $CARGO_TARGET_DIR, else target
/// memory_mb = 256                     # default 128; with deploy, the deployed one
/// timeout_secs = 10                   # default 3; with deploy, the deployed one
///
/// [function.env]                      # placeholders: {run} (unique per run), {jwt_issuer},
/// PAYMENTS_TABLE = "{run}-payments"   # {jwks_url}; AWS_ENDPOINT_URL_DYNAMODB and
///                                     # AWS_XRAY_DAEMON_ADDRESS are set by the harness
/// [auth]                              # optional: an RS256 token from the mocked issuer
/// audience = "payments"
/// claims = { tenant_id = "acme", scope = "payments:read payments:write" }
///
/// [[step]]
/// route = "create"
/// method = "POST"
/// path = "/payments"
/// headers = { authorization = "Bearer {token}", idempotency-key = "{uuid}" }
/// body = '{"amount": 2500}'
/// expect_status = 201
/// capture = { payment = "/id" }       # JSON pointer into the answer; then {payment}
/// ```
///
/// With `deploy` (the service's `lift.toml`, relative to the plan, as `lift-deploy` reads
/// it), the run is of the function as deployed: it takes the deployed memory and timeout,
/// the report prices the deployed architecture, and when the deployment names a KMS
/// envelope key (`[kms] envelope_key`) the function gets `LIFT_KMS_KEY_ID` as lift-deploy
/// sets it, naming a key of the harness's KMS mock. A `memory_mb` or `timeout_secs` the
/// plan also sets must be the deployed one, or the plan is refused naming both.
///
/// # Examples
///
/// ```
/// use lift_harness::cost::Plan;
///
/// let plan = Plan::parse(r#"
///     [function]
///     name = "f"
///     bin = "target/debug/f"
///     [[step]]
///     route = "get"
///     method = "GET"
///     path = "/things/{id}"
/// "#)?;
/// assert_eq!(plan.routes(), vec!["get"]);
/// assert!(Plan::parse("[function]\nname = \"f\"\nbin = \"b\"").is_err(), "no steps");
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Passes over the steps to measure.
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// The service's `lift.toml`: relative to the plan file as written, joined to the
    /// plan's directory once read ([`Plan::from_path`]).
    #[serde(default)]
    pub deploy: Option<PathBuf>,
    /// The deployment `deploy` names, read.
    #[serde(skip)]
    deployment: Option<lift_deploy::DeployConfig>,
    /// The function.
    pub function: PlanFunction,
    /// A token from the harness's mocked JWKS issuer, as `{token}`.
    #[serde(default)]
    pub auth: Option<PlanAuth>,
    /// The requests, in order.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

fn default_iterations() -> usize {
    10
}

/// The function of a plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFunction {
    /// Its name.
    pub name: String,
    /// Its bootstrap binary.
    pub bin: String,
    /// Memory size in MB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Environment variables (with placeholders).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_memory() -> u32 {
    128
}

fn default_timeout() -> u64 {
    3
}

/// The token of a plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanAuth {
    /// The `aud` claim.
    pub audience: String,
    /// The `sub` claim.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Further claims.
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

fn default_subject() -> String {
    "cost-runner".to_owned()
}

/// One request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The route it is billed to.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// Path and query (with placeholders).
    pub path: String,
    /// Headers (with placeholders).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body (with placeholders).
    #[serde(default)]
    pub body: Option<String>,
    /// The status the answer must have (else the run reports a failure).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// Variables taken from the answer by JSON pointer.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

impl Plan {
    /// Parses and checks a plan (`deploy` relative to the working directory).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Self::parse_in(text, Path::new("")).map_err(|e| anyhow::anyhow!("invalid cost plan: {e:#}"))
    }

    /// Reads a plan file.
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read cost plan {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::parse_in(&text, dir)
            .map_err(|e| anyhow::anyhow!("{}: invalid cost plan: {e:#}", path.display()))
    }

    fn parse_in(text: &str, dir: &Path) -> anyhow::Result<Self> {
        let mut plan: Self = toml::from_str(text)?;
        if plan.steps.is_empty() {
            anyhow::bail!("no [[step]]");
        }
        for (i, step) in plan.steps.iter().enumerate() {
            if step.method.parse::<http::Method>().is_err() {
                anyhow::bail!("step[{i}].method {:?} is not an HTTP method", step.method);
            }
            if !step.path.starts_with('/') {
                anyhow::bail!("step[{i}].path must start with /");
            }
        }
        if let Some(deploy) = &plan.deploy {
            let deployed = Deployed::load(dir, deploy, text)?;
            deployed.take_function(&mut plan.function.memory_mb, &mut plan.function.timeout_secs)?;
            plan.deploy = Some(deployed.file().to_owned());
            plan.deployment = Some(deployed.config);
        }
        Ok(plan)
    }

    /// The deployment `deploy` names, if any.
    pub fn deployment(&self) -> Option<&lift_deploy::DeployConfig> {
        self.deployment.as_ref()
    }

    /// The architecture the deployment runs on, if the plan names one.
    pub fn deployed_arch(&self) -> anyhow::Result<Option<Arch>> {
        self.deployment.as_ref().map(arch_of).transpose()
    }

    /// The routes, in order of first appearance.
    pub fn routes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.steps {
            if !out.contains(&s.route.as_str()) {
                out.push(&s.route);
            }
        }
        out
    }

    /// The bootstrap's path, `{target_dir}` resolved.
    pub fn bin(&self) -> PathBuf {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
        PathBuf::from(self.function.bin.replace("{target_dir}", &target))
    }
}

/// The architecture `config` deploys.
pub(crate) fn arch_of(config: &lift_deploy::DeployConfig) -> anyhow::Result<Arch> {
    config.function.architecture.parse::<Arch>().map_err(anyhow::Error::msg)
}

/// Replaces `{name}` by its value; `{uuid}` by a new UUID each time. Unknown names are an
/// error naming them.
pub(crate) fn fill(template: &str, vars: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_name {
            // JSON braces and the like stay as they are.
            out.push('{');
            rest = after;
            continue;
        }
        match (name, vars.get(name)) {
            ("uuid", _) => out.push_str(&uuid::Uuid::new_v4().to_string()),
            (_, Some(value)) => out.push_str(value),
            (_, None) => anyhow::bail!("unknown placeholder {{{name}}} in {template:?}"),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_json_braces_kept() {
        let vars: BTreeMap<String, String> = [("id".to_owned(), "p-1".to_owned())].into();
        assert_eq!(fill("/payments/{id}/refunds", &vars).unwrap(), "/payments/p-1/refunds");
        assert_eq!(fill(r#"{"amount": 10}"#, &vars).unwrap(), r#"{"amount": 10}"#);
        let a = fill("{uuid}", &vars).unwrap();
        assert_eq!(a.len(), 36);
        assert_ne!(a, fill("{uuid}", &vars).unwrap());
        let err = fill("/x/{missing}", &vars).unwrap_err().to_string();
        assert!(err.contains("{missing}"), "{err}");
    }

    #[test]
    fn bad_plans_are_refused_naming_the_step() {
        let base = "[function]\nname = \"f\"\nbin = \"b\"\n[[step]]\nroute = \"r\"\n";
        assert!(Plan::parse(&format!("{base}method = \"GET\"\npath = \"/x\"")).is_ok());
        let err = Plan::parse(&format!("{base}method = \"G ET\"\npath = \"/x\"")).unwrap_err().to_string();
        assert!(err.contains("step[0].method"), "{err}");
        let err = Plan::parse(&format!("{base}method = \"GET\"\npath = \"x\"")).unwrap_err().to_string();
        assert!(err.contains("step[0].path"), "{err}");
        let err = Plan::parse(&format!("{base}method = \"GET\"\npath = \"/x\"\nbogus = 1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    /// The payments plan measures payments as `examples/payments/lift.toml` deploys it.
    #[test]
    fn the_payments_plan_measures_what_is_deployed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/payments");
        let plan = Plan::from_path(&dir.join("cost.toml")).unwrap();
        let deployed = lift_deploy::DeployConfig::from_path(&dir.join("lift.toml")).unwrap();
        assert_eq!(plan.function.memory_mb, deployed.function.memory_mb);
        assert_eq!(plan.function.timeout_secs, u64::from(deployed.function.timeout_seconds));
        assert_eq!(plan.deployed_arch().unwrap(), Some(Arch::Arm64));
        assert!(plan.deployment().unwrap().kms.envelope_key.is_some());
    }

    #[test]
    fn a_plan_value_that_disagrees_with_the_deployment_is_refused() {
        let dir = crate::capacity::deployed::test_dir(
            "cost-plan-deploy",
            "memory_mb = 1024\narchitecture = \"x86_64\"\n",
        );
        let with = |extra: &str| {
            let text = format!(
                "deploy = \"lift.toml\"\n[function]\nname = \"f\"\nbin = \"b\"\n{extra}\n[[step]]\nroute = \"r\"\nmethod = \"GET\"\npath = \"/\"\n"
            );
            std::fs::write(dir.join("cost.toml"), text).unwrap();
            Plan::from_path(&dir.join("cost.toml"))
        };
        let taken = with("").unwrap();
        assert_eq!((taken.function.memory_mb, taken.function.timeout_secs), (1024, 10));
        assert_eq!(taken.deployed_arch().unwrap(), Some(Arch::X86_64));
        let err = with("memory_mb = 256").unwrap_err().to_string();
        assert!(err.contains("function.memory_mb: 256 here") && err.contains("deploys 1024"), "{err}");
        let err = with("timeout_secs = 3").unwrap_err().to_string();
        assert!(err.contains("function.timeout_secs: 3 here") && err.contains("deploys 10"), "{err}");
        assert!(with("memory_mb = 1024").is_ok());
        std::fs::write(dir.join("lift.toml"), "[service]\nname = \"x\"\n").unwrap();
        let err = with("").unwrap_err().to_string();
        assert!(err.contains("deploy: ") && err.contains("lift.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
