//! What is wrong with an SLO file.

use std::path::PathBuf;

/// An SLO file that cannot be used: unreadable, not valid TOML, or contradictory. Each
/// message names the key at fault (`slo[1].objective`, `alert[0].short_window`).
#[derive(Debug, thiserror::Error)]
pub enum SloError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, a missing or unknown key, or a value of the wrong type (the message
    /// is the TOML parser's, with the key and line).
    #[error("{file}: {source}")]
    Syntax {
        /// The file, or `<input>` for text.
        file: String,
        /// The parser's error.
        source: toml::de::Error,
    },
    /// A value that parses but cannot be right, or that contradicts another.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The file, or `<input>` for text.
        file: String,
        /// The key at fault, as a path: `slo[2].threshold_ms`.
        key: String,
        /// What is wrong, lowercase.
        message: String,
    },
}

impl SloError {
    /// The key at fault, for an [`Invalid`](Self::Invalid) file.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
