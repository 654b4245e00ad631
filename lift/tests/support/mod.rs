//! Helpers shared by lift's integration tests of the middleware: requests, a controllable
//! inner service (tower-test's mock), log capture, an X-Ray daemon socket, EMF sinks.
//! Each test file takes what it needs with `use support::*;`.
#![allow(dead_code, unused_imports)]

#[cfg(feature = "observability")]
mod observability;
#[cfg(feature = "resilience")]
mod resilience;

#[cfg(feature = "observability")]
pub(crate) use observability::*;
#[cfg(feature = "resilience")]
pub(crate) use resilience::*;
