//! Security services: secrets (Secrets Manager with a cache). Compliance, audit,
//! protection and threat detection join this module later.

#[cfg(feature = "protection")]
pub mod protection;
#[cfg(feature = "secrets")]
pub mod secrets;
