//! The harness side of payments (feature `harness`): the drill [`PaymentsWorkload`] and
//! the compliance suites' [`PaymentsCompliance`] target.

mod compliance;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::Item;
use lift::store::TableDef;
use lift_harness::drill::{Load, ReplicationMode};
use lift_harness::{Call, Effect, OpError, Workload};
use rand::Rng as _;

pub use compliance::PaymentsCompliance;

use crate::model::{CreatePayment, Customer, NewPayment};
use crate::{PaymentStore, StoreError};

/// The card every drill payment uses (a Visa test number).
const CARD: &str = "4111 1111 1111 1111";
/// What every drill payment is worth, in cents: room for many one-cent refunds.
const AMOUNT: u64 = 100_000;
/// The fingerprint key of drills (test data only).
const DRILL_FINGERPRINT_KEY: &[u8] = b"lift-drill-fingerprint-key";

/// A payments operation of a drill.
#[derive(Debug, Clone)]
pub enum Op {
    /// `PaymentStore::create`.
    Create {
        /// The tenant.
        tenant: String,
        /// The payment.
        payment: NewPayment,
    },
    /// `PaymentStore::get` of a payment created earlier.
    Get {
        /// The tenant.
        tenant: String,
        /// The payment id.
        id: String,
    },
    /// A one-cent `PaymentStore::refund` of a payment created earlier.
    Refund {
        /// The tenant.
        tenant: String,
        /// The payment id.
        id: String,
    },
}

/// Payments under a drill: creates, reads and refunds over `PaymentStore`, spread over
/// the scenario's tenants.
///
/// Each acknowledged create must leave its payment in every region. Reads leave nothing,
/// and refunds are not checked yet (their effect would be an update of `refundable`).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lift_harness::drill::DrillError> {
/// use lift_harness::drill::{Drill, Scenario};
/// use payments::workload::PaymentsWorkload;
///
/// let scenario = Scenario::load("scenarios/ci_region_outage.toml")?;
/// let report = Drill::new(scenario, PaymentsWorkload::default())?.run().await?;
/// assert!(report.passed);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PaymentsWorkload {
    fingerprint_key: Vec<u8>,
    /// Acknowledged creates, for later reads and refunds.
    created: Mutex<Vec<(String, String)>>,
}

impl Default for PaymentsWorkload {
    fn default() -> Self {
        Self::new(DRILL_FINGERPRINT_KEY)
    }
}

impl PaymentsWorkload {
    /// A workload whose payments carry card fingerprints keyed by `fingerprint_key`.
    pub fn new(fingerprint_key: impl Into<Vec<u8>>) -> Self {
        Self { fingerprint_key: fingerprint_key.into(), created: Mutex::new(Vec::new()) }
    }

    fn store(&self, call: &Call<'_>) -> PaymentStore {
        PaymentStore::new(call.dynamodb().clone(), call.table(), self.fingerprint_key.clone())
    }

    async fn create(&self, call: &Call<'_>, tenant: &str, payment: &NewPayment) -> Result<Effect, OpError> {
        let key = payment_key(tenant, &payment.id);
        if call.replication() == ReplicationMode::Sync {
            let item = payment_item(tenant, payment, &self.fingerprint_key);
            if let Some(acked) = call.put_in_healthy_regions(item).await {
                return acked.map(Effect::Written);
            }
        }
        // Async replication, or no other region healthy: the region called alone.
        self.store(call).create(tenant, payment.clone()).await.map_err(store_error)?;
        Ok(Effect::written(key))
    }
}

impl Workload for PaymentsWorkload {
    type Op = Op;

    fn name(&self) -> &str {
        "payments"
    }

    fn table(&self) -> TableDef {
        crate::table_def()
    }

    fn operations(&self) -> &[&'static str] {
        &["create", "get", "refund"]
    }

    fn default_mix(&self) -> BTreeMap<String, u32> {
        [("create", 6), ("get", 3), ("refund", 1)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn check_mix(&self, mix: &BTreeMap<String, u32>) -> Result<(), String> {
        match mix.get("create") {
            Some(n) if *n > 0 => Ok(()),
            _ => Err("create must be positive: reads and refunds need payments".into()),
        }
    }

    fn next(&self, kind: &'static str, load: &Load) -> Op {
        let mut rng = rand::thread_rng();
        let existing = {
            let created = self.created.lock().expect("created lock");
            (!created.is_empty()).then(|| created[rng.gen_range(0..created.len())].clone())
        };
        let tenant = format!("drill-t{}", rng.gen_range(0..load.tenants.max(1)));
        match (kind, existing) {
            ("get", Some((tenant, id))) => Op::Get { tenant, id },
            ("refund", Some((tenant, id))) => Op::Refund { tenant, id },
            // Nothing to read or refund yet: a create.
            _ => Op::Create { tenant, payment: new_payment() },
        }
    }

    fn kind(&self, op: &Op) -> &'static str {
        match op {
            Op::Create { .. } => "create",
            Op::Get { .. } => "get",
            Op::Refund { .. } => "refund",
        }
    }

    async fn execute<'a>(&'a self, op: &'a Op, call: &'a Call<'a>) -> Result<Option<Effect>, OpError> {
        match op {
            Op::Get { tenant, id } => {
                self.store(call).get(tenant, id).await.map_err(store_error)?;
                Ok(None)
            }
            Op::Refund { tenant, id } => {
                let store = self.store(call);
                store.refund(tenant, id, 1, Some("drill".into())).await.map_err(store_error)?;
                Ok(None)
            }
            Op::Create { tenant, payment } => {
                let effect = self.create(call, tenant, payment).await?;
                self.created.lock().expect("created lock").push((tenant.clone(), payment.id.clone()));
                Ok(Some(effect))
            }
        }
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

/// The key of a payment item, as `PaymentStore` lays it out.
fn payment_key(tenant: &str, id: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("TENANT#{tenant}"))),
        ("sk".to_owned(), AttributeValue::S(format!("PAYMENT#{id}"))),
    ])
}

/// The item `PaymentStore::create` writes, for the synchronous writer (which takes items).
/// Its layout must match `store.rs`: every drill `get` reads it back through
/// `PaymentStore::get`, so a mismatch shows up as errors.
fn payment_item(tenant: &str, p: &NewPayment, fingerprint_key: &[u8]) -> Item {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load() -> Load {
        Load {
            rate: 1.0,
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            concurrency: 1,
            tenants: 2,
            mix: Default::default(),
            warmup: Duration::ZERO,
        }
    }

    #[test]
    fn dates_format_as_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3661); // 2024-02-29
        assert_eq!(rfc3339(t), "2024-02-29T01:01:01Z");
    }

    #[test]
    fn reads_and_refunds_wait_for_a_create() {
        let w = PaymentsWorkload::default();
        assert!(matches!(w.next("get", &load()), Op::Create { .. }), "nothing to read yet");
        assert!(matches!(w.next("refund", &load()), Op::Create { .. }), "nothing to refund yet");
        w.created.lock().unwrap().push(("drill-t0".into(), "pay_1".into()));
        assert!(matches!(w.next("get", &load()), Op::Get { ref id, .. } if id == "pay_1"));
        assert!(matches!(w.next("refund", &load()), Op::Refund { .. }));
        assert_eq!(w.kind(&w.next("create", &load())), "create");
    }

    #[test]
    fn a_mix_without_creates_is_refused() {
        let w = PaymentsWorkload::default();
        assert!(w.check_mix(&w.default_mix()).is_ok());
        let reads: BTreeMap<String, u32> = [("get".to_owned(), 1)].into_iter().collect();
        assert!(w.check_mix(&reads).unwrap_err().contains("create must be positive"));
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
