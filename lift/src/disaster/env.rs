//! Reading settings from the environment: explicit values win, variables fill the rest.

use std::time::Duration;

use super::ConfigError;

pub(crate) use crate::config::Vars;

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessEnv;

impl Vars for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        crate::config::Env::process().get(name)
    }
}

#[cfg(test)]
impl Vars for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }
}

/// The suffix of per-region variables: `eu-west-1` → `EU_WEST_1`.
pub(crate) fn region_suffix(region: &str) -> String {
    region.to_ascii_uppercase().replace('-', "_")
}

fn invalid(var: &str, value: String, reason: &str) -> ConfigError {
    ConfigError::Env { var: var.to_owned(), value, reason: reason.to_owned() }
}

/// A whole number of milliseconds.
pub(crate) fn millis(vars: &dyn Vars, var: &str) -> Result<Option<Duration>, ConfigError> {
    vars.get(var)
        .map(|v| {
            v.parse().map(Duration::from_millis).map_err(|_| invalid(var, v, "expected whole milliseconds"))
        })
        .transpose()
}

/// A whole number of seconds.
pub(crate) fn secs(vars: &dyn Vars, var: &str) -> Result<Option<Duration>, ConfigError> {
    vars.get(var)
        .map(|v| v.parse().map(Duration::from_secs).map_err(|_| invalid(var, v, "expected whole seconds")))
        .transpose()
}

/// A positive whole number.
pub(crate) fn count(vars: &dyn Vars, var: &str) -> Result<Option<u32>, ConfigError> {
    vars.get(var)
        .map(|v| match v.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(var, v, "expected a whole number of at least 1")),
        })
        .transpose()
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
pub(crate) fn flag(vars: &dyn Vars, var: &str) -> Result<Option<bool>, ConfigError> {
    vars.get(var)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(var, v, "expected true or false")),
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn values_parse_or_say_what_was_expected() {
        let vars: HashMap<&str, &str> =
            [("A", "250"), ("B", "x"), ("C", "0"), ("D", " off "), ("E", "")].into_iter().collect();
        assert_eq!(millis(&vars, "A").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(secs(&vars, "A").unwrap(), Some(Duration::from_secs(250)));
        assert_eq!(millis(&vars, "E").unwrap(), None);
        assert_eq!(
            millis(&vars, "B").unwrap_err().to_string(),
            "invalid B=\"x\": expected whole milliseconds"
        );
        assert!(count(&vars, "C").is_err());
        assert_eq!(flag(&vars, "D").unwrap(), Some(false));
        assert_eq!(region_suffix("eu-west-1"), "EU_WEST_1");
    }
}
