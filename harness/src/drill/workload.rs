//! The drill's operations over `examples/payments`, run through Lift's failover client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{
    AckedWrite, HealthSnapshot, HealthState, Item, Region, RegionRouter, RegionSet, ReplicatedTable,
    SyncWriter,
};
use payments::model::{CreatePayment, Customer, NewPayment};
use payments::{PaymentStore, StoreError};
use rand::Rng as _;

use super::metrics::OpKind;
use super::scenario::{Mix, ReplicationMode};

/// The attribute of heartbeat items that carries their write time (epoch ms), for
/// replication lag. Payment items do not carry it: refunds update them later, and their
/// lag would then count from the create.
pub(crate) const LAG_ATTRIBUTE: &str = "drill_ts_ms";
/// The card every drill payment uses (a Visa test number).
const CARD: &str = "4111 1111 1111 1111";
/// What every drill payment is worth, in cents: room for many one-cent refunds.
const AMOUNT: u64 = 100_000;

/// An operation to run.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Create { tenant: String, payment: NewPayment },
    Get { tenant: String, id: String },
    Refund { tenant: String, id: String },
}

impl Op {
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Create { .. } => OpKind::Create,
            Op::Get { .. } => OpKind::Get,
            Op::Refund { .. } => OpKind::Refund,
        }
    }
}

/// A failed operation: a short class for counting, and the message.
#[derive(Debug, Clone)]
pub(crate) struct OpError {
    pub(crate) class: String,
    pub(crate) message: String,
}

impl OpError {
    fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self { class: class.into(), message: message.into() }
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Self::new("timeout", format!("no answer within {after:?}"))
    }
}

fn store_error(err: StoreError) -> OpError {
    match err {
        StoreError::Unavailable(code) => {
            // The code when DynamoDB answered, else a transport failure.
            let class = if code.chars().all(|c| c.is_ascii_alphanumeric()) {
                code.clone()
            } else {
                "unavailable".into()
            };
            OpError::new(class, code)
        }
        StoreError::NotFound => OpError::new("not_found", "payment not found"),
        StoreError::Duplicate => OpError::new("duplicate", "payment exists"),
        StoreError::OverRefund { refundable } => {
            OpError::new("over_refund", format!("refundable {refundable}"))
        }
        other => OpError::new("other", other.to_string()),
    }
}

/// Chooses operations by the mix over the payments created so far.
#[derive(Debug)]
pub(crate) struct Workload {
    mix: Mix,
    tenants: usize,
    created: Mutex<Vec<(String, String)>>,
}

impl Workload {
    pub(crate) fn new(mix: Mix, tenants: usize) -> Self {
        Self { mix, tenants, created: Mutex::new(Vec::new()) }
    }

    /// The next operation: by weight, and a create while nothing exists to read or refund.
    pub(crate) fn next(&self) -> Op {
        let mut rng = rand::thread_rng();
        let total = self.mix.create + self.mix.get + self.mix.refund;
        let pick = rng.gen_range(0..total.max(1));
        let existing = {
            let created = self.created.lock().expect("created lock");
            (!created.is_empty()).then(|| created[rng.gen_range(0..created.len())].clone())
        };
        let tenant = format!("drill-t{}", rng.gen_range(0..self.tenants));
        match existing {
            Some((tenant, id)) if pick >= self.mix.create && pick < self.mix.create + self.mix.get => {
                Op::Get { tenant, id }
            }
            Some((tenant, id)) if pick >= self.mix.create + self.mix.get => Op::Refund { tenant, id },
            _ => Op::Create { tenant, payment: new_payment() },
        }
    }

    /// Remembers an acknowledged create for later reads and refunds.
    pub(crate) fn created(&self, tenant: &str, id: &str) {
        self.created.lock().expect("created lock").push((tenant.to_owned(), id.to_owned()));
    }
}

fn new_payment() -> NewPayment {
    CreatePayment {
        id: Some(format!("pay_{}", uuid::Uuid::new_v4().simple())),
        card_number: CARD.into(),
        amount: AMOUNT,
        currency: "USD".into(),
        customer: Customer { id: "c_drill".into(), name: None, email: None, country: None },
        description: Some("chaos drill".into()),
    }
    .validate()
    .expect("the drill's payment is valid")
}

/// The key of a payment item, as `payments::PaymentStore` lays it out.
pub(crate) fn payment_key(tenant: &str, id: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("TENANT#{tenant}"))),
        ("sk".to_owned(), AttributeValue::S(format!("PAYMENT#{id}"))),
    ])
}

/// The item `PaymentStore::create` writes, for the synchronous writer (which takes items).
/// Its layout must match `payments::store`: every drill `get` reads it back through
/// `PaymentStore::get`, so a mismatch shows up as errors.
pub(crate) fn payment_item(tenant: &str, p: &NewPayment, fingerprint_key: &[u8]) -> Item {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());
    let mut item = payment_key(tenant, &p.id);
    for (name, value) in [
        ("id", s(&p.id)),
        ("tenant", s(tenant)),
        ("amount", n(p.amount)),
        ("refunded", n(0)),
        ("refundable", n(p.amount)),
        ("currency", s(&p.currency)),
        ("card_brand", s(p.card.brand())),
        ("card_last4", s(p.card.last4())),
        ("card_fingerprint", s(&p.card.fingerprint(fingerprint_key))),
        ("customer_id", s(&p.customer.id)),
        ("created_at", s(&rfc3339(SystemTime::now()))),
    ] {
        item.insert(name.to_owned(), value);
    }
    if let Some(description) = &p.description {
        item.insert("description".into(), s(description));
    }
    item
}

pub(crate) fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The failover client a drill drives: `lift::disaster`'s router (moved by the orchestrator)
/// for every call, and its synchronous writer for creates in sync mode.
#[derive(Debug)]
pub(crate) struct FailoverClient {
    pub(crate) router: RegionRouter,
    pub(crate) regions: RegionSet,
    pub(crate) table: ReplicatedTable,
    pub(crate) health: tokio::sync::watch::Receiver<HealthSnapshot>,
    pub(crate) mode: ReplicationMode,
    pub(crate) fingerprint_key: Vec<u8>,
    pub(crate) sync_timeout: Duration,
    /// Creates acknowledged by one region only, because no other region was healthy.
    pub(crate) degraded: AtomicU64,
}

/// A successful operation's result.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) acked: Option<AckedWrite>,
}

impl FailoverClient {
    fn store(&self, region: &Region) -> PaymentStore {
        PaymentStore::new(
            region.dynamodb().clone(),
            self.table.name_in(region.name()),
            self.fingerprint_key.clone(),
        )
    }

    /// Runs `op` on the active region; returns the region it went to and what happened.
    pub(crate) async fn execute(&self, op: &Op) -> (String, Result<Done, OpError>) {
        // One read of the router: the region named is the region called.
        let active = self.router.active().clone();
        let region = active.name().to_owned();
        let store = self.store(&active);
        let outcome = match op {
            Op::Get { tenant, id } => {
                store.get(tenant, id).await.map(|_| Done { acked: None }).map_err(store_error)
            }
            Op::Refund { tenant, id } => store
                .refund(tenant, id, 1, Some("drill".into()))
                .await
                .map(|_| Done { acked: None })
                .map_err(store_error),
            Op::Create { tenant, payment } => match self.mode {
                ReplicationMode::Async => store
                    .create(tenant, payment.clone())
                    .await
                    .map(|_| Done { acked: Some(AckedWrite::new(payment_key(tenant, &payment.id))) })
                    .map_err(store_error),
                ReplicationMode::Sync => self.create_sync(&active, tenant, payment).await,
            },
        };
        (region, outcome)
    }

    /// Writes to the active region and every other region the monitor does not hold
    /// unhealthy, acknowledging once all hold it. With no other region left, writes to the
    /// active one alone (counted as degraded).
    async fn create_sync(
        &self,
        region: &Region,
        tenant: &str,
        payment: &NewPayment,
    ) -> Result<Done, OpError> {
        let active = region.name();
        let health = self.health.borrow().clone();
        let mut targets = vec![active.to_owned()];
        targets.extend(
            self.regions
                .names()
                .into_iter()
                .filter(|name| *name != active && health.state(name) != HealthState::Unhealthy)
                .map(str::to_owned),
        );
        let item = payment_item(tenant, payment, &self.fingerprint_key);
        if targets.len() < 2 {
            self.degraded.fetch_add(1, Ordering::Relaxed);
            let store = self.store(region);
            return store
                .create(tenant, payment.clone())
                .await
                .map(|_| Done { acked: Some(AckedWrite::new(payment_key(tenant, &payment.id))) })
                .map_err(store_error);
        }
        let writer = SyncWriter::builder(self.regions.clone(), self.table.clone())
            .targets(targets)
            .timeout(self.sync_timeout)
            .build()
            .map_err(|e| OpError::new("config", e.to_string()))?;
        match writer.put(item).await {
            Ok(ack) => {
                let mut acked = AckedWrite::new(ack.key);
                if let Some(version) = ack.version {
                    acked = acked.with_version(version);
                }
                Ok(Done { acked: Some(acked) })
            }
            Err(err) => Err(OpError::new("sync_incomplete", err.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3661); // 2024-02-29
        assert_eq!(rfc3339(t), "2024-02-29T01:01:01Z");
    }

    #[test]
    fn the_mix_picks_creates_first_then_by_weight() {
        let w = Workload::new(Mix { create: 1, get: 1, refund: 1 }, 2);
        assert!(matches!(w.next(), Op::Create { .. }), "nothing to read yet");
        w.created("drill-t0", "pay_1");
        let kinds: Vec<OpKind> = (0..300).map(|_| w.next().kind()).collect();
        for kind in [OpKind::Create, OpKind::Get, OpKind::Refund] {
            let n = kinds.iter().filter(|k| **k == kind).count();
            assert!((50..=150).contains(&n), "{kind:?}: {n} of 300");
        }
    }

    #[test]
    fn items_carry_the_payment_layout() {
        let p = new_payment();
        let item = payment_item("acme", &p, b"0123456789abcdef");
        assert_eq!(item["pk"], AttributeValue::S("TENANT#acme".into()));
        assert_eq!(item["sk"], AttributeValue::S(format!("PAYMENT#{}", p.id)));
        assert_eq!(item["card_last4"], AttributeValue::S("1111".into()));
        assert!(!format!("{item:?}").contains("4111111111111111"), "no full card number stored");
    }
}
