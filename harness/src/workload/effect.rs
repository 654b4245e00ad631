//! What an acknowledged operation must leave behind, and why an operation failed.

use std::time::Duration;

use lift::disaster::{AckedWrite, Item};

/// The effect an acknowledged operation must leave in every region once replication
/// settles.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Effect {
    /// A write (a create, a put): the item exists, at this version or a newer one.
    Written(AckedWrite),
    /// An update of an existing item: it exists, at this version or a newer one.
    Updated(AckedWrite),
    /// A delete (an erasure): the item is gone.
    Deleted(Item),
}

impl Effect {
    /// A write of the item with `key`, version unknown.
    pub fn written(key: Item) -> Self {
        Effect::Written(AckedWrite::new(key))
    }

    /// The item key.
    pub fn key(&self) -> &Item {
        match self {
            Effect::Written(w) | Effect::Updated(w) => &w.key,
            Effect::Deleted(key) => key,
        }
    }
}

/// An acknowledged operation: its kind, the region that acknowledged it and its effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Acked {
    /// The operation kind (`create`).
    pub op: &'static str,
    /// The region called.
    pub region: String,
    /// What it must leave.
    pub effect: Effect,
}

/// A failed operation: a short class for counting (`timeout`, `unavailable`, a DynamoDB
/// error code, ...) and the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct OpError {
    /// The class errors are counted by.
    pub class: String,
    /// What happened.
    pub message: String,
}

impl OpError {
    /// An error of `class`.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self { class: class.into(), message: message.into() }
    }

    /// No answer within the operation deadline.
    pub fn timeout(after: Duration) -> Self {
        Self::new("timeout", format!("no answer within {after:?}"))
    }
}
