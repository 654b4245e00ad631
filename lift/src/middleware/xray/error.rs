//! Errors of the X-Ray layer.

use std::io;

/// A trace header the strict parser rejects.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::{TraceHeader, TraceHeaderError};
/// let err = "Sampled=1".parse::<TraceHeader>().unwrap_err();
/// assert_eq!(err, TraceHeaderError::MissingRoot);
/// assert_eq!(err.to_string(), "trace header has no root");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceHeaderError {
    /// No `Root=` part.
    #[error("trace header has no root")]
    MissingRoot,
    /// A root that is not `1-` + 8 hex + `-` + 24 hex.
    #[error("trace header root is not a valid trace id")]
    InvalidRoot,
    /// A parent that is not 16 hex digits.
    #[error("trace header parent is not a valid segment id")]
    InvalidParent,
    /// `Sampled` other than `0`, `1` or `?`.
    #[error("trace header sampling decision is not 0, 1 or ?")]
    InvalidSampled,
    /// A key given twice.
    #[error("trace header repeats the key `{0}`")]
    DuplicateKey(String),
    /// A part that is not `key=value` with a plain key and printable value.
    #[error("trace header is malformed")]
    Malformed,
    /// Longer than any real trace header.
    #[error("trace header is too long")]
    TooLong,
}

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
