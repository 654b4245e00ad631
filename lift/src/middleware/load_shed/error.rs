//! Errors of the load shedder.

use std::fmt;

/// A load-shed configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    reason: &'static str,
}

impl InvalidConfig {
    pub(crate) const fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid load shedding configuration: {}", self.reason)
    }
}

impl std::error::Error for InvalidConfig {}
