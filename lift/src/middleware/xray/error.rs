//! Errors of the X-Ray layer.

use std::io;

/// The X-Ray layer cannot be built.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::{XrayBuilder, XrayError};
/// let err = XrayBuilder::new().daemon_address("not an address").build().unwrap_err();
/// assert!(matches!(err, XrayError::InvalidDaemonAddress { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XrayError {
    /// `AWS_XRAY_DAEMON_ADDRESS` (or the builder's address) is not `host:port` or
    /// `tcp:host:port udp:host:port`.
    #[error("invalid x-ray daemon address `{value}`")]
    InvalidDaemonAddress {
        /// The rejected value.
        value: String,
    },
    /// A sampling rate outside 0.0–1.0.
    #[error("invalid x-ray sampling rate `{value}`: expected a number from 0.0 to 1.0")]
    InvalidSamplingRate {
        /// The rejected value.
        value: f64,
    },
    /// The UDP socket could not be opened.
    #[error("cannot open the x-ray udp socket")]
    Socket(#[source] io::Error),
}
