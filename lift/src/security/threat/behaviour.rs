//! Behavioural detectors over counters shared in DynamoDB: bursts of failed authentication
//! per IP and per user, and principals touching many tenants.

use std::net::IpAddr;
use std::time::Duration;

use super::error::{InvalidConfig, StoreUnavailable};
use super::finding::{Finding, FindingKind, Location, Severity};
use super::store::{now_ms, Count, ThreatStore};

/// Where a counter stands after one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// The count in the current window, this event included.
    pub count: u64,
    /// The threshold.
    pub threshold: u64,
    /// Whether this event is the one that tripped the counter: the first whose count was at
    /// or past the threshold to claim the trip in the store. A count that skips the
    /// threshold (the event that reached it failed to be counted, or its answer was lost)
    /// still trips, on the next event.
    pub crossed: bool,
}

impl Signal {
    /// Whether the count has reached the threshold.
    pub fn tripped(self) -> bool {
        self.count >= self.threshold
    }

    /// Whether this event is the one that tripped the counter (exactly one event per window
    /// is, however many instances count concurrently: the claim is a conditional write).
    pub fn just_tripped(self) -> bool {
        self.crossed
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
    /// The two are counted apart: a counter that cannot be updated is logged and its
    /// signal is `None`, and the other still counts and trips. A user name of any length
    /// is counted (a long one by its hash, within DynamoDB's key size limit).
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails for every counter asked for.
    pub async fn auth_failed(
        &self,
        ip: Option<IpAddr>,
        user: Option<&str>,
    ) -> Result<(Option<Signal>, Option<Signal>), StoreUnavailable> {
        let (window, expires_at) = window(self.auth_window);
        let by_ip = async {
            match ip {
                Some(ip) => {
                    // Counted over the range one block covers (an IPv6 client's /64): a
                    // client that takes a new address for every attempt counts as one.
                    let pk = match super::store::blocked_range(ip) {
                        IpAddr::V6(v6) => format!("AUTHFAIL#ip#{v6}/64#{window}"),
                        v4 => format!("AUTHFAIL#ip#{v4}#{window}"),
                    };
                    self.count(pk, self.per_ip, expires_at).await.map(Some)
                }
                None => Ok(None),
            }
        };
        let by_user = async {
            match user {
                Some(user) => {
                    let pk = format!("AUTHFAIL#user#{}#{window}", key_part(user));
                    self.count(pk, self.per_user, expires_at).await.map(Some)
                }
                None => Ok(None),
            }
        };
        match futures_util::future::join(by_ip, by_user).await {
            (Err(err), Err(_)) => Err(err),
            (Err(err), Ok(None)) | (Ok(None), Err(err)) => Err(err),
            (ip, user) => {
                let ip = ip.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "failed authentication not counted for the ip");
                    None
                });
                let user = user.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "failed authentication not counted for the user");
                    None
                });
                Ok((ip, user))
            }
        }
    }

    /// Counts one event in `pk` and claims the trip when the count is at or past the
    /// threshold and no event has claimed it yet.
    async fn count(&self, pk: String, threshold: u64, expires_at: u64) -> Result<Signal, StoreUnavailable> {
        let counted = self.store.increment(pk.clone(), expires_at).await?;
        Ok(self.signal(pk, counted, threshold).await)
    }

    /// The signal of a counter after one more event, claiming its trip when the count is
    /// at or past the threshold and no event has claimed it yet.
    async fn signal(&self, pk: String, counted: Count, threshold: u64) -> Signal {
        // Crossing, not equality: the event that made the count reach the threshold may
        // have failed after its `ADD`, or two events may have landed at once, and the count
        // then passes the threshold unseen.
        let crossed = counted.count >= threshold
            && !counted.claimed
            && self.store.claim_trip(pk).await.unwrap_or_else(|err| {
                // Counted all the same: `tripped` holds, and the next event claims the trip.
                tracing::warn!(error = %err, "threat counter trip not claimed");
                false
            });
        Signal { count: counted.count, threshold, crossed }
    }

    /// Records that `principal` touched `tenant`; the signal counts distinct tenants, and
    /// trips past the allowed number: on crossing it, as the failed-authentication
    /// counters do, so a count that skips the threshold (two tenants added at once, or an
    /// update whose answer was lost) still trips, once.
    ///
    /// # Errors
    /// [`StoreUnavailable`] when DynamoDB fails to count the tenant.
    pub async fn tenant_touched(&self, principal: &str, tenant: &str) -> Result<Signal, StoreUnavailable> {
        let (window, expires_at) = window(self.tenant_window);
        let pk = format!("TENANTS#{}#{window}", key_part(principal));
        let counted = self.store.add_member(pk.clone(), tenant, expires_at).await?;
        Ok(self.signal(pk, counted, self.tenants + 1).await)
    }
}

/// Longest name written into a counter's key as it is; DynamoDB refuses partition keys
/// over 2048 bytes, and a client chooses the user name a failed login reports.
const MAX_KEY_NAME: usize = 128;

/// A user or principal name as a counter's key holds it: itself when short, else
/// `sha256:` and the hex SHA-256 of it (a long name cannot fail the update, and is still
/// counted as itself).
fn key_part(name: &str) -> std::borrow::Cow<'_, str> {
    use sha2::{Digest, Sha256};
    if name.len() <= MAX_KEY_NAME && !name.starts_with("sha256:") {
        return name.into();
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut out = String::from("sha256:");
    out.extend(digest.iter().map(|b| format!("{b:02x}")));
    out.into()
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
        let s = |count, crossed| Signal { count, threshold: 3, crossed };
        assert!(!s(2, false).tripped() && s(3, true).tripped() && s(4, false).tripped());
        assert!(s(3, true).just_tripped() && !s(4, false).just_tripped());
        // A count that skipped the threshold trips on the event that claims it.
        assert!(s(4, true).just_tripped());
    }

    #[test]
    fn long_names_are_counted_by_their_hash() {
        assert_eq!(key_part("alice"), "alice");
        let long = "a".repeat(3000);
        let key = key_part(&long);
        assert!(key.starts_with("sha256:") && key.len() == 7 + 64, "{key}");
        assert_eq!(key, key_part(&long), "the same name, the same counter");
        assert_ne!(key_part(&key), key, "a name cannot pose as another's hash");
    }

    #[test]
    fn windows_are_aligned() {
        let (start, expires) = window(Duration::from_secs(300));
        assert_eq!(start % 300, 0);
        assert_eq!(expires, start + 360);
    }
}
