//! Behavioural detectors over counters shared in DynamoDB: bursts of failed authentication
//! per IP and per user, and principals touching many tenants.

use std::net::IpAddr;
use std::time::Duration;

use super::error::{InvalidConfig, StoreUnavailable};
use super::finding::{Finding, FindingKind, Location, Severity};
use super::store::{now_ms, ThreatStore};

/// Where a counter stands after one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// The count in the current window, this event included.
    pub count: u64,
    /// The threshold.
    pub threshold: u64,
}

impl Signal {
    /// Whether the count has reached the threshold.
    pub fn tripped(self) -> bool {
        self.count >= self.threshold
    }

    /// Whether this event is the one that reached the threshold (exactly one event per
    /// window is, however many instances count concurrently: the `ADD` is atomic).
    pub fn just_tripped(self) -> bool {
        self.count == self.threshold
    }
}

/// Counts failed authentication per IP and per user, and distinct tenants per principal,
/// in fixed windows, in a [`ThreatStore`]: every Lambda instance sees the same counts. The
/// threat layer names a principal by issuer and subject
/// ([`Principal::qualified_subject`](crate::Principal::qualified_subject)) when it has an
/// issuer, so two issuers' users of one name are counted apart.
///
/// Defaults: 10 failures per IP and 5 per user in 5 minutes; 3 tenants per principal in
/// an hour.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(store: lift::security::threat::ThreatStore) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use lift::security::threat::BehaviourMonitor;
///
/// let monitor = BehaviourMonitor::new(store)
///     .auth_failures_per_ip(20)
///     .auth_window(Duration::from_secs(60))
///     .validate()?;
/// let (ip, user) = monitor.auth_failed(Some("198.51.100.7".parse()?), Some("alice")).await?;
/// if ip.is_some_and(|s| s.tripped()) { /* block the IP */ }
/// # let _ = user; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BehaviourMonitor {
    store: ThreatStore,
    per_ip: u64,
    per_user: u64,
    auth_window: Duration,
    tenants: u64,
    tenant_window: Duration,
}

impl BehaviourMonitor {
    /// A monitor with the default thresholds.
    pub fn new(store: ThreatStore) -> Self {
        Self {
            store,
            per_ip: 10,
            per_user: 5,
            auth_window: Duration::from_secs(300),
            tenants: 3,
            tenant_window: Duration::from_secs(3600),
        }
    }

    /// Failed authentications from one IP in a window that trip the detector.
    pub fn auth_failures_per_ip(mut self, threshold: u64) -> Self {
        self.per_ip = threshold;
        self
    }

    /// Failed authentications for one user in a window that trip the detector.
    pub fn auth_failures_per_user(mut self, threshold: u64) -> Self {
        self.per_user = threshold;
        self
    }

    /// The window failed authentications are counted in.
    pub fn auth_window(mut self, window: Duration) -> Self {
        self.auth_window = window;
        self
    }

    /// Distinct tenants one principal may touch in a window; one more trips the detector.
    pub fn tenants_per_principal(mut self, tenants: u64) -> Self {
        self.tenants = tenants;
        self
    }

    /// The window tenants are counted in.
    pub fn tenant_window(mut self, window: Duration) -> Self {
        self.tenant_window = window;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`InvalidConfig`] for a zero threshold or a window under a second.
    pub fn validate(self) -> Result<Self, InvalidConfig> {
        if self.per_ip == 0 || self.per_user == 0 || self.tenants == 0 {
            return Err(InvalidConfig::new("threat", "behaviour thresholds must be at least 1"));
        }
        if self.auth_window.as_secs() == 0 || self.tenant_window.as_secs() == 0 {
            return Err(InvalidConfig::new("threat", "behaviour windows must be at least one second"));
        }
        Ok(self)
    }

    /// The store.
    pub fn store(&self) -> &ThreatStore {
        &self.store
    }

    /// Records one failed authentication; returns the IP's and the user's signals.
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails.
    pub async fn auth_failed(
        &self,
        ip: Option<IpAddr>,
        user: Option<&str>,
    ) -> Result<(Option<Signal>, Option<Signal>), StoreUnavailable> {
        let (window, expires_at) = window(self.auth_window);
        let by_ip = async {
            match ip {
                Some(ip) => {
                    let count =
                        self.store.increment(format!("AUTHFAIL#ip#{ip}#{window}"), expires_at).await?;
                    Ok(Some(Signal { count, threshold: self.per_ip }))
                }
                None => Ok(None),
            }
        };
        let by_user = async {
            match user {
                Some(user) => {
                    let count =
                        self.store.increment(format!("AUTHFAIL#user#{user}#{window}"), expires_at).await?;
                    Ok(Some(Signal { count, threshold: self.per_user }))
                }
                None => Ok(None),
            }
        };
        let (ip, user) = futures_util::future::join(by_ip, by_user).await;
        Ok((ip?, user?))
    }

    /// Records that `principal` touched `tenant`; the signal counts distinct tenants, and
    /// trips past the allowed number.
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails.
    pub async fn tenant_touched(&self, principal: &str, tenant: &str) -> Result<Signal, StoreUnavailable> {
        let (window, expires_at) = window(self.tenant_window);
        let count =
            self.store.add_member(format!("TENANTS#{principal}#{window}"), tenant, expires_at).await?;
        Ok(Signal { count: count as u64, threshold: self.tenants + 1 })
    }
}

/// The current window's start (epoch seconds) and when its counter may expire (after the
/// window, with a minute to spare).
fn window(length: Duration) -> (u64, u64) {
    let secs = length.as_secs().max(1);
    let now = now_ms() / 1000;
    let start = now - now % secs;
    (start, start + secs + 60)
}

/// The finding a tripped signal stands for.
pub(crate) fn finding(kind: FindingKind, rule: &'static str) -> Finding {
    Finding::new(kind, Location::Behaviour, Severity::High, rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_trip_at_the_threshold_and_once() {
        let s = |count| Signal { count, threshold: 3 };
        assert!(!s(2).tripped() && s(3).tripped() && s(4).tripped());
        assert!(s(3).just_tripped() && !s(4).just_tripped());
    }

    #[test]
    fn windows_are_aligned() {
        let (start, expires) = window(Duration::from_secs(300));
        assert_eq!(start % 300, 0);
        assert_eq!(expires, start + 360);
    }
}
