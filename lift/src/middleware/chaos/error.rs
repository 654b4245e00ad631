//! The errors chaos injects.

use std::fmt;

/// The failure a handler "raised" under an injected exception; Lift renders it as a 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InjectedFault;

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault injected by chaos")
    }
}

impl std::error::Error for InjectedFault {}

/// A downstream call refused because its host is on the chaos denylist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedHost {
    host: String,
}

impl DeniedHost {
    pub(crate) fn new(host: impl Into<String>) -> Self {
        Self { host: host.into() }
    }

    /// The host that was refused.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for DeniedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host {} is on the chaos denylist", self.host)
    }
}

impl std::error::Error for DeniedHost {}
