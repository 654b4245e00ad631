//! Configuration shared by every layer: the one error a builder returns for settings that
//! cannot work, [`InvalidConfig`].

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
}
