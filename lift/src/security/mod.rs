//! Security services: secrets (Secrets Manager with a cache), data protection, and the
//! tamper-evident audit trail. Compliance rules and threat detection join this module later.

#[cfg(feature = "audit")]
#[cfg_attr(docsrs, doc(cfg(feature = "audit")))]
pub mod audit;
#[cfg(feature = "compliance")]
#[cfg_attr(docsrs, doc(cfg(feature = "compliance")))]
pub mod compliance;
#[cfg(feature = "protection")]
#[cfg_attr(docsrs, doc(cfg(feature = "protection")))]
pub mod protection;
#[cfg(feature = "secrets")]
#[cfg_attr(docsrs, doc(cfg(feature = "secrets")))]
pub mod secrets;
#[cfg(feature = "threat")]
#[cfg_attr(docsrs, doc(cfg(feature = "threat")))]
pub mod threat;
