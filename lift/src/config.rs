//! Configuration shared by every layer: the one error a builder returns for settings that
//! cannot work ([`InvalidConfig`]), and the one reader of the environment ([`Env`]) behind
//! every `from_env()` and `from_env_vars(lookup)`.

use std::borrow::Cow;
use std::fmt;

/// A configuration that cannot work, from a builder's `build()` or a `from_env()`: which
/// component refused it and why.
///
/// Every layer's builder returns this one type (re-exported as `InvalidConfig` in each
/// middleware module), so a service collects them with `?` into one error.
///
/// # Examples
///
/// ```
/// use lift::middleware::bulkhead::BulkheadLayer;
///
/// let err: lift::config::InvalidConfig = BulkheadLayer::builder().build().unwrap_err();
/// assert_eq!(err.component(), "bulkhead");
/// assert_eq!(err.to_string(), "invalid bulkhead configuration: set a global or a per-tenant limit");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    component: &'static str,
    reason: Cow<'static, str>,
}

impl InvalidConfig {
    /// A refusal by `component` (`"bulkhead"`, `"rate limit"`), with why, in lowercase and
    /// without secrets (a variable's name, not its value).
    pub fn new(component: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self { component, reason: reason.into() }
    }

    /// The component whose configuration was refused.
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} configuration: {}", self.component, self.reason)
    }
}

impl std::error::Error for InvalidConfig {}

/// The process environment's value of `name`: the one place Lift calls `std::env::var`
/// for its settings. Pass it where a `from_env_vars` lookup is wanted.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The system CA bundle files, as the distributions' CA tooling writes them
/// (`update-ca-certificates`, `update-ca-trust`): Debian and Ubuntu, Amazon Linux, Fedora and
/// RHEL, openSUSE, Alpine.
pub const SYSTEM_CA_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The bundle [`prefer_system_ca_bundle`] would point TLS clients at: none when
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` is already set (the operator chose), else the first
/// of [`SYSTEM_CA_BUNDLES`] that `exists`.
///
/// # Examples
///
/// ```
/// use lift::config::{system_ca_bundle, Env};
///
/// let unset = Env::from_lookup(|_| None);
/// let debian = |path: &str| path == "/etc/ssl/certs/ca-certificates.crt";
/// assert_eq!(system_ca_bundle(&unset, debian), Some("/etc/ssl/certs/ca-certificates.crt"));
/// let chosen = Env::from_lookup(|name| (name == "SSL_CERT_DIR").then(|| "/opt/ca".to_owned()));
/// assert_eq!(system_ca_bundle(&chosen, debian), None);
/// ```
pub fn system_ca_bundle(env: &Env<'_>, exists: impl Fn(&str) -> bool) -> Option<&'static str> {
    if env.get("SSL_CERT_FILE").is_some() || env.get("SSL_CERT_DIR").is_some() {
        return None;
    }
    SYSTEM_CA_BUNDLES.into_iter().find(|path| exists(path))
}

/// Makes the https clients of the process (the AWS SDK's and Lift's, through
/// `rustls-native-certs`) read the system's CA bundle file alone, by setting `SSL_CERT_FILE`
/// when neither it nor `SSL_CERT_DIR` is set. Returns the bundle chosen.
///
/// Without it, `rustls-native-certs` reads the bundle and then every file of the hashed
/// certificate directory, which holds the same roots: on a Debian-like host about 290 files
/// opened and 290 certificates parsed, measured at 2.2–2.5 ms of a Lambda function's init
/// at 256 MB. A root added to the directory without the system's tool that rebuilds the
/// bundle is then not trusted; set `SSL_CERT_DIR` to read a directory too.
///
/// Call it first in `main`, before an async runtime starts threads: it sets a variable of
/// the process.
pub fn prefer_system_ca_bundle() -> Option<&'static str> {
    let bundle = system_ca_bundle(&Env::process(), |path| std::path::Path::new(path).is_file())?;
    std::env::set_var("SSL_CERT_FILE", bundle);
    Some(bundle)
}

/// The variable Lambda sets in every function's environment: where it is set, the code
/// runs on Lambda (or a faithful emulation of it) and serves real callers.
pub const LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

/// A source of settings by name, for code that takes `&dyn Vars` (the disaster module):
/// an [`Env`], or a map in tests.
#[cfg_attr(not(feature = "disaster"), allow(dead_code))]
pub(crate) trait Vars {
    /// The trimmed, non-empty value of `name`.
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self, name)
    }
}

/// Where settings are read from: the process environment, or a lookup function in tests.
/// Values are trimmed, and an empty value counts as unset.
///
/// # Examples
///
/// ```
/// use lift::config::Env;
///
/// let env = Env::from_lookup(|name| (name == "LIFT_RATE_LIMIT_LIMIT").then(|| " 50 ".to_owned()));
/// assert_eq!(env.get("LIFT_RATE_LIMIT_LIMIT").as_deref(), Some("50"));
/// assert_eq!(env.parse::<u32>("rate limit", "LIFT_RATE_LIMIT_LIMIT", "a number"), Ok(Some(50)));
/// assert_eq!(env.get("LIFT_RATE_LIMIT_NAME"), None);
/// ```
pub struct Env<'a> {
    lookup: Box<Lookup<'a>>,
}

/// A function from a variable's name to its raw value.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

impl Env<'static> {
    /// The process environment.
    pub fn process() -> Self {
        Self::from_lookup(process_env)
    }
}

impl<'a> Env<'a> {
    /// Variables read through `lookup` (a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self { lookup: Box::new(lookup) }
    }

    /// The trimmed, non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// Whether the code runs on Lambda: [`LAMBDA_RUNTIME_API`] is set.
    pub fn on_lambda(&self) -> bool {
        self.get(LAMBDA_RUNTIME_API).is_some()
    }

    /// A development-only switch: `name` is on when `1` or `true` (any case). On Lambda
    /// ([`Env::on_lambda`]) a switch that is on is refused, so a function deployed with a
    /// development setting fails to start instead of serving with it.
    ///
    /// # Errors
    /// [`InvalidConfig`] of `component` when the switch is on on Lambda, or is neither a
    /// boolean nor unset.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::config::Env;
    ///
    /// let local = Env::from_lookup(|name| (name == "LIFT_DEV_TENANT_HEADER_INSECURE").then(|| "1".into()));
    /// assert_eq!(local.development_switch("payments", "LIFT_DEV_TENANT_HEADER_INSECURE"), Ok(true));
    ///
    /// let lambda = Env::from_lookup(|name| match name {
    ///     "LIFT_DEV_TENANT_HEADER_INSECURE" => Some("1".into()),
    ///     "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001".into()),
    ///     _ => None,
    /// });
    /// let err = lambda.development_switch("payments", "LIFT_DEV_TENANT_HEADER_INSECURE").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid payments configuration: LIFT_DEV_TENANT_HEADER_INSECURE is for development only and is refused on lambda"
    /// );
    /// ```
    pub fn development_switch(&self, component: &'static str, name: &str) -> Result<bool, InvalidConfig> {
        let on = match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(_) => return Err(InvalidConfig::new(component, format!("{name} must be true or false"))),
        };
        if on && self.on_lambda() {
            return Err(InvalidConfig::new(
                component,
                format!("{name} is for development only and is refused on lambda"),
            ));
        }
        Ok(on)
    }

    /// The value of `name` parsed as `T`; an unparsable value is an [`InvalidConfig`] of
    /// `component` saying `"{name} must be {expected}"` (never the value: it may be secret).
    pub fn parse<T: std::str::FromStr>(
        &self,
        component: &'static str,
        name: &str,
        expected: &str,
    ) -> Result<Option<T>, InvalidConfig> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| InvalidConfig::new(component, format!("{name} must be {expected}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> Env<'static> {
        Env::from_lookup(move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn a_development_switch_is_refused_on_lambda_only_when_on() {
        const SWITCH: &str = "LIFT_DEV_TENANT_HEADER_INSECURE";
        const LAMBDA: (&str, &str) = (LAMBDA_RUNTIME_API, "127.0.0.1:9001");
        assert_eq!(vars(&[(SWITCH, "TRUE")]).development_switch("payments", SWITCH), Ok(true));
        assert_eq!(vars(&[]).development_switch("payments", SWITCH), Ok(false));
        assert_eq!(
            vars(&[LAMBDA]).development_switch("payments", SWITCH),
            Ok(false),
            "off is fine on lambda"
        );
        assert_eq!(vars(&[LAMBDA, (SWITCH, "0")]).development_switch("payments", SWITCH), Ok(false));
        for on in ["1", "true", " True "] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([LAMBDA, (SWITCH, on)]));
            let err = vars(pairs).development_switch("payments", SWITCH).unwrap_err();
            assert_eq!(err.component(), "payments");
            assert!(err.reason().contains("refused on lambda"), "{err}");
        }
        // A value that is neither on nor off is refused rather than read as off.
        let typo = vars(&[LAMBDA, (SWITCH, "yes")]).development_switch("payments", SWITCH).unwrap_err();
        assert_eq!(typo.reason(), "LIFT_DEV_TENANT_HEADER_INSECURE must be true or false");
        assert!(!vars(&[(LAMBDA_RUNTIME_API, "  ")]).on_lambda(), "an empty value is unset");
    }

    #[test]
    fn the_ca_bundle_is_chosen_only_when_the_operator_chose_none() {
        let none = vars(&[]);
        assert_eq!(system_ca_bundle(&none, |_| false), None, "no bundle on the host: nothing set");
        let amazon_linux = |p: &str| p == "/etc/pki/tls/certs/ca-bundle.crt";
        assert_eq!(system_ca_bundle(&none, amazon_linux), Some("/etc/pki/tls/certs/ca-bundle.crt"));
        assert_eq!(system_ca_bundle(&none, |_| true), Some(SYSTEM_CA_BUNDLES[0]), "the first found wins");
        for set in [("SSL_CERT_FILE", "/opt/ca.pem"), ("SSL_CERT_DIR", "/opt/ca")] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([set]));
            assert_eq!(system_ca_bundle(&vars(pairs), |_| true), None, "{} is the operator's choice", set.0);
        }
        assert_eq!(system_ca_bundle(&vars(&[("SSL_CERT_FILE", " ")]), |_| true), Some(SYSTEM_CA_BUNDLES[0]));
    }

    #[test]
    fn names_the_component_and_the_reason() {
        let err = InvalidConfig::new("rate limit", format!("{} must be a number", "LIFT_RATE_LIMIT_LIMIT"));
        assert_eq!(
            err.to_string(),
            "invalid rate limit configuration: LIFT_RATE_LIMIT_LIMIT must be a number"
        );
        assert_eq!((err.component(), err.reason()), ("rate limit", "LIFT_RATE_LIMIT_LIMIT must be a number"));
        assert_ne!(err, InvalidConfig::new("bulkhead", "LIFT_RATE_LIMIT_LIMIT must be a number"));
    }

    #[test]
    fn env_trims_treats_empty_as_unset_and_never_echoes_a_bad_value() {
        let env = Env::from_lookup(|name| match name {
            "A" => Some("  7 ".to_owned()),
            "B" => Some("   ".to_owned()),
            "C" => Some("hunter2".to_owned()),
            _ => None,
        });
        assert_eq!(env.get("A").as_deref(), Some("7"));
        assert_eq!(env.get("B"), None);
        assert_eq!(env.parse::<u8>("x", "B", "a number"), Ok(None));
        let err = env.parse::<u8>("x", "C", "a number").unwrap_err();
        assert_eq!(err.to_string(), "invalid x configuration: C must be a number");
        assert!(!err.to_string().contains("hunter2"));
    }
}
