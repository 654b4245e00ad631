//! Errors of the retry layer.

pub use crate::config::InvalidConfig;
