//! A cost plan: the function to run (its bootstrap, memory and environment) and the HTTP
//! requests that make up each route, in order, with values captured from one answer for
//! the next request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A plan file (`examples/payments/cost.toml` is one).
///
/// ```toml
/// iterations = 10                    # passes over the steps (after one warm-up pass)
///
/// [function]
/// name = "payments"
/// bin = "{target_dir}/debug/payments" # {target_dir}: $CARGO_TARGET_DIR, else target
/// memory_mb = 256
/// timeout_secs = 10
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
    /// Parses and checks a plan.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let plan: Self = toml::from_str(text).map_err(|e| anyhow::anyhow!("invalid cost plan: {e}"))?;
        if plan.steps.is_empty() {
            anyhow::bail!("invalid cost plan: no [[step]]");
        }
        for (i, step) in plan.steps.iter().enumerate() {
            if step.method.parse::<http::Method>().is_err() {
                anyhow::bail!("invalid cost plan: step[{i}].method {:?} is not an HTTP method", step.method);
            }
            if !step.path.starts_with('/') {
                anyhow::bail!("invalid cost plan: step[{i}].path must start with /");
            }
        }
        Ok(plan)
    }

    /// Reads a plan file.
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read cost plan {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
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
}
