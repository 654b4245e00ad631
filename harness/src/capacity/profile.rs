//! The capacity profile file: the traffic and limits to plan for, and how to run and drive
//! the function that is measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use lift_monitoring::capacity::{Limits, TrafficProfile};
use serde::Deserialize;

use super::deployed::Deployed;

/// A capacity profile (TOML), e.g. `scenarios/capacity_payments.toml`:
///
/// - `[traffic]`: [`TrafficProfile`] (peak, growth, months, percentile, `[traffic.mix]`);
/// - `deploy`: the service's `lift.toml` (relative to the profile): the plan takes its
///   reserved concurrency and API throttle rate as limits, and the run its memory and
///   timeout, so that the plan is of the function as it is deployed; a value this file also
///   sets must agree with it;
/// - `[limits]`: [`Limits`] (account and reserved concurrency, per-partition units, the API
///   throttle);
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
    /// The service's `lift.toml`, relative to the profile file.
    #[serde(default)]
    pub deploy: Option<PathBuf>,
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
    /// Parses and checks a profile (`deploy` relative to the working directory).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Self::parse_in(text, Path::new(""))
    }

    /// Reads, parses and checks a profile file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::parse_in(&text, dir).with_context(|| format!("{}", path.display()))
    }

    fn parse_in(text: &str, dir: &Path) -> anyhow::Result<Self> {
        let mut profile: Self = toml::from_str(text)?;
        if let Some(deploy) = &profile.deploy {
            let deployed = Deployed::load(dir, deploy, text)?;
            profile.take_deployed(&deployed)?;
        }
        profile.check()?;
        Ok(profile)
    }

    /// Takes the deployed memory, timeout, reserved concurrency and API throttle; a value
    /// the profile as written sets must be the deployed one.
    fn take_deployed(&mut self, deployed: &Deployed) -> anyhow::Result<()> {
        deployed.take_function(&mut self.function.memory_mb, &mut self.function.timeout_secs)?;
        let reserved = Some(deployed.config.function.reserved_concurrency);
        deployed.take("limits.reserved_concurrency", &mut self.limits.reserved_concurrency, reserved)?;
        let rate = Some(f64::from(deployed.config.api.throttle_rate));
        deployed.take("limits.api_rate_rps", &mut self.limits.api_rate_rps, rate)
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

    fn payments_profile() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/profiles/capacity_payments.toml")
    }

    #[test]
    fn the_example_profile_parses() {
        let p = CapacityProfile::load(&payments_profile()).unwrap();
        assert!(p.routes.iter().any(|r| r.from.as_deref() == Some("create")));
    }

    /// The payments plan is of payments as `examples/payments/lift.toml` deploys it: its
    /// memory, timeout, reserved concurrency and the API stage's throttle.
    #[test]
    fn the_payments_profile_plans_against_what_is_deployed() {
        let p = CapacityProfile::load(&payments_profile()).unwrap();
        let text = include_str!("../../../examples/payments/lift.toml");
        let deployed = lift_deploy::DeployConfig::from_toml(text).unwrap();
        assert_eq!(p.function.memory_mb, deployed.function.memory_mb);
        assert_eq!(p.function.timeout_secs, u64::from(deployed.function.timeout_seconds));
        assert_eq!(p.limits.reserved_concurrency, Some(deployed.function.reserved_concurrency));
        assert_eq!(p.limits.api_rate_rps, Some(f64::from(deployed.api.throttle_rate)));
        // At the profile's peak the stage's throttle refuses requests today.
        let mut m = lift_monitoring::capacity::Measurements::default();
        for route in p.traffic.mix.keys() {
            m.route(route.clone(), vec![20.0; 5]);
        }
        let plan = lift_monitoring::capacity::plan(&p.traffic, &p.limits, &m).unwrap();
        assert!(p.traffic.peak_rps > f64::from(deployed.api.throttle_rate));
        assert_eq!(plan.request_limits[0].month, Some(0), "{plan}");
    }

    #[test]
    fn a_value_that_disagrees_with_the_deployment_is_refused() {
        let dir = crate::capacity::deployed::test_dir("capacity-deploy", "memory_mb = 1024\n");
        let with = |extra: &str| {
            let text = BASE
                .replace("[traffic]", "deploy = \"lift.toml\"\n[traffic]")
                .replace("bin = \"x\"", &format!("bin = \"x\"\n{extra}"));
            std::fs::write(dir.join("p.toml"), text).unwrap();
            CapacityProfile::load(&dir.join("p.toml"))
        };
        let taken = with("").unwrap();
        assert_eq!((taken.function.memory_mb, taken.limits.reserved_concurrency), (1024, Some(100)));
        let err = format!("{:#}", with("memory_mb = 256").unwrap_err());
        assert!(err.contains("function.memory_mb: 256 here") && err.contains("1024"), "{err}");
        assert!(with("memory_mb = 1024").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
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
