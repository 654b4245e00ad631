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
