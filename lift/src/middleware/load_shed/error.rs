//! Errors of the load shedder.

pub use crate::config::InvalidConfig;
