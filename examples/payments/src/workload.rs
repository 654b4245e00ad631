//! The harness side of payments (feature `harness`): the drill [`PaymentsWorkload`] and
//! the compliance suites' [`PaymentsCompliance`] target.

mod compliance;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{AckedWrite, Item, Region, ReplicatedTable, ReplicatedWriter, RpoError};
use lift::store::TableDef;
use lift_harness::drill::Load;
use lift_harness::workload::{check_effects, key_id};
use lift_harness::{Acked, Call, Effect, EffectCheck, OpError, Workload};
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
    /// `PaymentStore::erase_customer` of the (one-payment) customer of a payment created
    /// earlier.
    Erase {
        /// The tenant.
        tenant: String,
        /// The payment id.
        id: String,
        /// Its customer.
        customer: String,
    },
}

/// Payments under a drill: creates, reads, refunds and erasures over `PaymentStore`, spread
/// over the scenario's tenants, every write through the drill's replicated writer
/// ([`Call::writer`]): sync mode to every healthy region, async mode for the stream.
///
/// Each acknowledged write must leave its effect in every region, checked by version (the
/// writer stamps a new `_version` on every write kind): a create, the payment
/// ([`Effect::Written`]); a refund, its own `REFUND#<payment>#<refund>` item, written in the
/// same transaction as the payment's totals ([`Effect::Written`], so the effect names the
/// refund), and the payment's `refunded` equal to the sum of its refund items; an
/// erasure, the payment at the erasure's version or newer ([`Effect::Updated`]: no later
/// write restores the customer's name, email or country). Reads leave nothing.
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
    /// Acknowledged creates, for later reads and refunds: tenant, payment id, customer id.
    created: Mutex<Vec<(String, String, String)>>,
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

    /// The store for `call`, writing through its replicated writer.
    fn store(&self, call: &Call<'_>) -> Result<(PaymentStore, ReplicatedWriter), OpError> {
        let writer = call.writer()?;
        let store = PaymentStore::new(call.dynamodb().clone(), call.table(), self.fingerprint_key.clone())
            .with_writer(writer.clone());
        Ok((store, writer))
    }
}

/// The version the writer stamped on its last acknowledged write of `key`.
fn acked(writer: &ReplicatedWriter, key: Item) -> AckedWrite {
    let version = writer.acks().into_iter().rev().find(|ack| ack.keys.contains(&key)).map(|ack| ack.version);
    let acked = AckedWrite::new(key);
    match version {
        Some(version) => acked.with_version(version),
        None => acked,
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
        &["create", "get", "refund", "erase"]
    }

    fn default_mix(&self) -> BTreeMap<String, u32> {
        [("create", 6), ("get", 3), ("refund", 2), ("erase", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// [`check_effects`] (every effect at its acknowledged version or newer: each
    /// acknowledged refund's own item is there), and beyond the version, from one read of
    /// each tenant's partition: each payment with acknowledged refunds holds, in `refunded`,
    /// the sum of the refund items it has there, else its acknowledged refunds count as stale
    /// (a newer version of the payment made from a copy without a refund replaced it, last
    /// writer wins, while the refund's item stayed); and each erased payment holds none of
    /// the customer's data, else it counts as a stale erasure (a newer write made from a copy
    /// the erasure had not reached brought it back).
    async fn check<'a>(
        &'a self,
        region: &'a Region,
        table: &'a ReplicatedTable,
        acked: &'a [Acked],
    ) -> Result<EffectCheck, RpoError> {
        let mut check = check_effects(region, table, acked).await?;
        let tenants: BTreeSet<&str> = acked
            .iter()
            .filter_map(|a| a.effect.key().get("pk"))
            .filter_map(|pk| pk.as_s().ok())
            .map(String::as_str)
            .collect();
        let mut held: HashMap<(String, String), Item> = HashMap::new();
        for pk in tenants {
            for item in partition(region, table, pk).await? {
                if let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) {
                    held.insert((pk.to_owned(), sk.clone()), item);
                }
            }
        }
        let counted = |check: &EffectCheck, key: &Item| {
            check.by_op.values().any(|c| c.missing.contains(key) || c.stale.contains(key))
        };
        // An erasure is held only while the payment holds none of what it removed: a newer
        // write made from a copy that still had the customer's data (a refund in a region
        // the erasure had not reached) passes the version check and brings the data back.
        let mut erased: HashMap<String, Item> = HashMap::new();
        for a in acked.iter().filter(|a| a.op == "erase") {
            let key = a.effect.key();
            erased.entry(key_id(key)).or_insert_with(|| key.clone());
        }
        for key in erased.into_values() {
            let restored =
                held_at(&held, &key).is_some_and(|item| ERASED.iter().any(|a| item.contains_key(*a)));
            if restored && !counted(&check, &key) {
                check.by_op.entry("erase".into()).or_default().stale.push(key);
            }
        }
        // What each payment's refund items there add up to, by the payment's key.
        let mut refund_items: HashMap<(String, String), u64> = HashMap::new();
        for ((pk, sk), item) in &held {
            if let Some(payment) = payment_of_refund_sk(sk) {
                // An amount that does not read adds nothing, and the totals disagree.
                let amount =
                    item.get("amount").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
                *refund_items.entry((pk.clone(), payment)).or_default() += amount.unwrap_or(0);
            }
        }
        // The acknowledged refunds of each payment, by the payment's key.
        let mut refunds: BTreeMap<(String, String), Vec<Item>> = BTreeMap::new();
        for a in acked.iter().filter(|a| a.op == "refund") {
            let key = a.effect.key();
            if let Some(payment) = payment_of_refund(key) {
                refunds.entry(payment).or_default().push(key.clone());
            }
        }
        for ((pk, payment_sk), refund_keys) in refunds {
            let refunded = held.get(&(pk.clone(), payment_sk.clone())).map(|payment| {
                payment.get("refunded").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok())
            });
            let items = refund_items.get(&(pk, payment_sk)).copied().unwrap_or(0);
            // A payment that is gone, or whose total is not its refund items', does not
            // hold its refunds, whichever of them it lost.
            if refunded != Some(Some(items)) {
                for key in refund_keys {
                    if !counted(&check, &key) {
                        check.by_op.entry("refund".into()).or_default().stale.push(key);
                    }
                }
            }
        }
        Ok(check)
    }

    fn check_mix(&self, mix: &BTreeMap<String, u32>) -> Result<(), String> {
        match mix.get("create") {
            Some(n) if *n > 0 => Ok(()),
            _ => Err("create must be positive: reads, refunds and erasures need payments".into()),
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
            ("get", Some((tenant, id, _))) => Op::Get { tenant, id },
            ("refund", Some((tenant, id, _))) => Op::Refund { tenant, id },
            ("erase", Some((tenant, id, customer))) => Op::Erase { tenant, id, customer },
            // Nothing to read or refund yet: a create.
            _ => Op::Create { tenant, payment: new_payment() },
        }
    }

    fn kind(&self, op: &Op) -> &'static str {
        match op {
            Op::Create { .. } => "create",
            Op::Get { .. } => "get",
            Op::Refund { .. } => "refund",
            Op::Erase { .. } => "erase",
        }
    }

    async fn execute<'a>(&'a self, op: &'a Op, call: &'a Call<'a>) -> Result<Option<Effect>, OpError> {
        match op {
            Op::Get { tenant, id } => {
                // Reads go to the region called; they leave nothing.
                PaymentStore::new(call.dynamodb().clone(), call.table(), self.fingerprint_key.clone())
                    .get(tenant, id)
                    .await
                    .map_err(store_error)?;
                Ok(None)
            }
            Op::Refund { tenant, id } => {
                let (store, writer) = self.store(call)?;
                let refund = store.refund(tenant, id, 1, Some("drill".into())).await.map_err(store_error)?;
                Ok(Some(Effect::Written(acked(&writer, refund_key(tenant, id, &refund.id)))))
            }
            Op::Erase { tenant, id, customer } => {
                let (store, writer) = self.store(call)?;
                let erased = store.erase_customer(tenant, customer).await.map_err(store_error)?;
                if erased == 0 {
                    // The payment was acknowledged but is not in this region (async
                    // replication behind a failover): the customer's data is still there
                    // and comes back with the payment. Counted, not acknowledged.
                    return Err(OpError::new(
                        "nothing_erased",
                        "the customer's payment is not in this region",
                    ));
                }
                Ok(Some(Effect::Updated(acked(&writer, payment_key(tenant, id)))))
            }
            Op::Create { tenant, payment } => {
                let (store, writer) = self.store(call)?;
                store.create(tenant, payment.clone()).await.map_err(store_error)?;
                let effect = Effect::Written(acked(&writer, payment_key(tenant, &payment.id)));
                self.created.lock().expect("created lock").push((
                    tenant.clone(),
                    payment.id.clone(),
                    payment.customer.id.clone(),
                ));
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
        // The region called may hold it; another did not take it. Which one failed is for
        // the writer's own per-region accounting, not this operation's outcome.
        StoreError::NotReplicated(message) => OpError::new("sync_incomplete", message),
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
        // One customer per payment, with (fake) personal data for erasures to remove.
        customer: Customer {
            id: format!("c_{}", uuid::Uuid::new_v4().simple()),
            name: Some("Drill Customer".into()),
            email: Some("drill@example.com".into()),
            country: Some("US".into()),
        },
        description: Some("chaos drill".into()),
    }
    .validate()
    .expect("the drill's payment is valid")
}

/// What an erasure removes from a payment (`PaymentStore::erase_customer`).
const ERASED: [&str; 4] = ["customer_name", "customer_email", "customer_country", "description"];

/// Every item of the partition `pk` as `region` holds it now (one tenant's payments and
/// refunds), read consistently.
async fn partition(region: &Region, table: &ReplicatedTable, pk: &str) -> Result<Vec<Item>, RpoError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = region
            .dynamodb()
            .query()
            .table_name(table.name_in(region.name()))
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .set_exclusive_start_key(start.take())
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RpoError::Request {
                operation: "Query",
                region: region.name().to_owned(),
                message: e.to_string(),
            })?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

/// The item with `key` among those read.
fn held_at<'h>(held: &'h HashMap<(String, String), Item>, key: &Item) -> Option<&'h Item> {
    let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
    held.get(&(text("pk")?, text("sk")?))
}

/// The key of a payment item, as `PaymentStore` lays it out.
fn payment_key(tenant: &str, id: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("TENANT#{tenant}"))),
        ("sk".to_owned(), AttributeValue::S(format!("PAYMENT#{id}"))),
    ])
}

/// The key of a refund item, as `PaymentStore` lays it out.
fn refund_key(tenant: &str, payment: &str, refund: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("TENANT#{tenant}"))),
        ("sk".to_owned(), AttributeValue::S(format!("REFUND#{payment}#{refund}"))),
    ])
}

/// The partition and sort key of the payment a refund item's key names.
fn payment_of_refund(key: &Item) -> Option<(String, String)> {
    let pk = key.get("pk")?.as_s().ok()?;
    Some((pk.clone(), payment_of_refund_sk(key.get("sk")?.as_s().ok()?)?))
}

/// The sort key of the payment a refund's sort key (`REFUND#<payment>#<refund>`) names.
fn payment_of_refund_sk(sk: &str) -> Option<String> {
    let (payment, _refund) = sk.strip_prefix("REFUND#")?.rsplit_once('#')?;
    Some(format!("PAYMENT#{payment}"))
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
    fn a_write_another_region_refused_is_not_the_region_called_failing() {
        let err = store_error(StoreError::NotReplicated("eu-west-1 refused".into()));
        assert_eq!(err.class, "sync_incomplete", "the drill's passive detection skips this class");
        assert_eq!(
            store_error(StoreError::Unavailable("ThrottlingException".into())).class,
            "ThrottlingException"
        );
    }

    #[test]
    fn reads_and_refunds_wait_for_a_create() {
        let w = PaymentsWorkload::default();
        assert!(matches!(w.next("get", &load()), Op::Create { .. }), "nothing to read yet");
        assert!(matches!(w.next("refund", &load()), Op::Create { .. }), "nothing to refund yet");
        assert!(matches!(w.next("erase", &load()), Op::Create { .. }), "nothing to erase yet");
        w.created.lock().unwrap().push(("drill-t0".into(), "pay_1".into(), "c_1".into()));
        assert!(matches!(w.next("get", &load()), Op::Get { ref id, .. } if id == "pay_1"));
        assert!(matches!(w.next("refund", &load()), Op::Refund { .. }));
        assert!(matches!(w.next("erase", &load()), Op::Erase { ref customer, .. } if customer == "c_1"));
        assert_eq!(w.kind(&w.next("create", &load())), "create");
    }

    #[test]
    fn a_refund_key_names_its_payment() {
        let key = refund_key("drill-t1", "pay_1", "re_2");
        assert_eq!(key["sk"], AttributeValue::S("REFUND#pay_1#re_2".into()));
        assert_eq!(payment_of_refund(&key), Some(("TENANT#drill-t1".into(), "PAYMENT#pay_1".into())));
        assert_eq!(payment_key("drill-t1", "pay_1")["sk"], AttributeValue::S("PAYMENT#pay_1".into()));
        assert_eq!(payment_of_refund_sk("PAYMENT#pay_1"), None);
    }

    #[test]
    fn a_mix_without_creates_is_refused() {
        let w = PaymentsWorkload::default();
        assert!(w.check_mix(&w.default_mix()).is_ok());
        let reads: BTreeMap<String, u32> = [("get".to_owned(), 1)].into_iter().collect();
        assert!(w.check_mix(&reads).unwrap_err().contains("create must be positive"));
    }
}
