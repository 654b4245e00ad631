//! The capacity profile file: the traffic and limits to plan for, and how to run and drive
//! the function that is measured.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use lift_monitoring::capacity::{Limits, TrafficProfile};
use serde::Deserialize;

/// A capacity profile (TOML), e.g. `scenarios/capacity_payments.toml`:
///
/// - `[traffic]`: [`TrafficProfile`] (peak, growth, months, percentile, `[traffic.mix]`);
/// - `[limits]`: [`Limits`] (account and reserved concurrency, per-partition units);
/// - `[function]`: the bootstrap binary, memory, timeout and environment; in the
///   environment's values `{dynamodb}` is the recording proxy's endpoint, `{jwt_issuer}` and
///   `{jwks_url}` the mocked issuer's, `{run}` a suffix unique to the run;
/// - `[auth]`: the token every request carries (audience, tenant claim, extra claims);
/// - `[tenants]`: how many tenants send traffic and, optionally, the hot tenant's share;
/// - `[[route]]`: each route's request, by the name the mix weighs.
///
/// # Examples
///
/// ```
/// use lift_harness::capacity::CapacityProfile;
///
/// let profile = CapacityProfile::parse(r#"
///     [traffic]
///     peak_rps = 100.0
///     [traffic.mix]
///     hello = 1
///     [function]
///     bin = "lambda-hello"
///     [[route]]
///     name = "hello"
///     method = "GET"
///     path = "/"
/// "#)?;
/// assert_eq!(profile.routes[0].name, "hello");
/// assert_eq!(profile.tenants.count, 1);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityProfile {
    /// The traffic to plan for.
    pub traffic: TrafficProfile,
    /// The limits to plan against.
    #[serde(default)]
    pub limits: Limits,
    /// The function measured.
    pub function: FunctionSpec,
    /// The token of every request.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// Who sends the traffic.
    #[serde(default)]
    pub tenants: TenantSpec,
    /// The routes.
    #[serde(rename = "route")]
    pub routes: Vec<RouteSpec>,
}

/// The function to run in the local Lambda runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// A path, or a binary name looked up in the cargo target dir.
    pub bin: String,
    /// Memory size in MB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Environment variables, with placeholders (see [`CapacityProfile`]).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_memory() -> u32 {
    256
}

fn default_timeout() -> u64 {
    10
}

/// The bearer token every request carries, signed by the harness's mocked JWKS issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// The `aud` claim.
    pub audience: String,
    /// The claim that names the tenant.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// More claims (e.g. `scope`).
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

fn default_tenant_claim() -> String {
    "tenant_id".into()
}

/// The tenants traffic comes from: `count` of them, `{prefix}0` .. `{prefix}{count-1}`,
/// evenly, or with `hot_share` of the requests from `{prefix}0` and the rest spread evenly
/// over the others.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSpec {
    /// How many tenants.
    pub count: u32,
    /// Their names' prefix.
    pub prefix: String,
    /// The hot tenant's share of requests (0..=1), if any.
    pub hot_share: Option<f64>,
}

impl Default for TenantSpec {
    fn default() -> Self {
        Self { count: 1, prefix: "tenant-".into(), hot_share: None }
    }
}

/// One route's request. In `path`, `body` and header values, `{uuid}` is a new UUID per
/// request and `{id}` the captured value of an earlier answer of the route `from`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The name the mix weighs.
    pub name: String,
    /// The HTTP method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The body, if any.
    #[serde(default)]
    pub body: Option<String>,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The status a successful request answers (any 2xx when absent).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// The top-level field of this route's JSON answers to remember for `{id}` in others.
    #[serde(default)]
    pub capture: Option<String>,
    /// The route whose captured values fill `{id}`; the request then comes from the tenant
    /// that made the value.
    #[serde(default)]
    pub from: Option<String>,
}

impl CapacityProfile {
    /// Parses and checks a profile.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let profile: Self = toml::from_str(text)?;
        profile.check()?;
        Ok(profile)
    }

    /// Reads, parses and checks a profile file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Checks what the model does not: routes against the mix, tenants, captures.
    pub fn check(&self) -> anyhow::Result<()> {
        self.traffic.validate()?;
        self.limits.validate()?;
        for (i, r) in self.routes.iter().enumerate() {
            if self.routes[..i].iter().any(|o| o.name == r.name) {
                bail!("route[{i}].name: {:?} appears twice", r.name);
            }
            if r.method.parse::<http::Method>().is_err() {
                bail!("route[{i}].method: {:?} is not an HTTP method", r.method);
            }
            if let Some(from) = &r.from {
                let source = self.routes[..i].iter().find(|o| &o.name == from);
                if source.is_none_or(|s| s.capture.is_none()) {
                    bail!("route[{i}].from: {from:?} must be an earlier route with a capture");
                }
            } else if r.path.contains("{id}") || r.body.as_deref().is_some_and(|b| b.contains("{id}")) {
                bail!("route[{i}]: uses {{id}} without from");
            }
        }
        for route in self.traffic.mix.keys() {
            if !self.routes.iter().any(|r| &r.name == route) {
                bail!("traffic.mix.{route}: no [[route]] of that name");
            }
        }
        if self.tenants.count == 0 {
            bail!("tenants.count: must be at least 1");
        }
        if let Some(s) = self.tenants.hot_share {
            if !(0.0..=1.0).contains(&s) {
                bail!("tenants.hot_share: must be in [0, 1], got {s}");
            }
            if self.tenants.count < 2 && s < 1.0 {
                bail!("tenants.hot_share: needs tenants.count >= 2");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [traffic]
        peak_rps = 10.0
        [traffic.mix]
        a = 1
        [function]
        bin = "x"
        [[route]]
        name = "a"
        method = "POST"
        path = "/a"
        capture = "id"
    "#;

    #[test]
    fn the_example_profile_parses() {
        let text = include_str!("../../../monitoring/profiles/capacity_payments.toml");
        let p = CapacityProfile::parse(text).unwrap();
        assert!(p.routes.iter().any(|r| r.from.as_deref() == Some("create")));
    }

    #[test]
    fn mistakes_name_their_key() {
        let err =
            |extra: &str| format!("{:#}", CapacityProfile::parse(&format!("{BASE}{extra}")).unwrap_err());
        assert!(err("[tenants]\ncount = 0\n").contains("tenants.count"));
        assert!(err("[tenants]\ncount = 3\nhot_share = 1.5\n").contains("tenants.hot_share"));
        assert!(err("[[route]]\nname = \"b\"\nmethod = \"GET\"\npath = \"/b/{id}\"\n").contains("route[1]"));
        assert!(err("[[route]]\nname = \"b\"\nmethod = \"GET\"\npath = \"/b\"\nfrom = \"zz\"\n")
            .contains("route[1].from"));
        let no_route = BASE.replace("a = 1", "a = 1\nb = 1");
        assert!(format!("{:#}", CapacityProfile::parse(&no_route).unwrap_err()).contains("traffic.mix.b"));
        let negative = BASE.replace("peak_rps = 10.0", "peak_rps = -3.0");
        assert!(format!("{:#}", CapacityProfile::parse(&negative).unwrap_err()).contains("traffic.peak_rps"));
        assert!(err("[tenants]\nbogus = 1\n").contains("bogus"));
    }
}
