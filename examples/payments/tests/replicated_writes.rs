//! Payments over two regions (two DynamoDB Local tables, us-east-1 behind a fault proxy)
//! with every write through `lift::disaster::ReplicatedWriter`, under random sequences of
//! creates, refunds and erasures cut by a blackhole of the primary at a random point:
//!
//! - sync: no acknowledged operation's effect is missing in the secondary, the new
//!   primary (the payment at the acknowledged version or newer, `refunded` at least the
//!   acknowledged refunds, erased customers without personal data);
//! - async: the RPO measured by the drill's check (`check_effects`) counts every write
//!   kind, matching what the secondary really lacks, and once the primary is back every
//!   kind has replicated.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{
    compare_versions, AckedWrite, Item, Region, RegionConfig, RegionSet, ReplicatedTable, ReplicatedWriter,
    Replicator, VERSION_ATTRIBUTE,
};
use lift::store::StreamView;
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::faults::{FaultProxy, Toxic};
use lift_harness::workload::check_effects;
use lift_harness::{Acked, Effect};
use payments::model::{CreatePayment, Customer};
use payments::PaymentStore;
use proptest::prelude::*;

const US: &str = "us-east-1";
const EU: &str = "eu-west-1";
const TENANT: &str = "acme";
const KEY: &[u8] = b"test-fingerprint-key-0123456789ab";

/// One runtime for every case: the shared DynamoDB Local's client lives on it.
static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
});

#[derive(Debug, Clone)]
enum Op {
    Create,
    /// A one-cent refund of the nth payment created (modulo).
    Refund(usize),
    /// The erasure of the nth payment's customer.
    Erase(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![3 => Just(Op::Create), 2 => (0usize..8).prop_map(Op::Refund), 1 => (0usize..8).prop_map(Op::Erase)]
}

struct Pair {
    regions: RegionSet,
    table: ReplicatedTable,
    proxy: FaultProxy,
}

async fn pair() -> Pair {
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let def = payments::table_def().with_stream(StreamView::NewAndOldImages);
    let (us_table, eu_table) = (ddb.create_table(&def).await.unwrap(), ddb.create_table(&def).await.unwrap());
    let proxy = FaultProxy::start(ddb.endpoint()).await.unwrap();
    let regions = RegionSet::builder()
        .region(RegionConfig::new(US).dynamodb_endpoint(proxy.endpoint()))
        .region(RegionConfig::new(EU).dynamodb_endpoint(ddb.endpoint()))
        .build()
        .unwrap();
    let table = ReplicatedTable::new(def).with_name_in(US, us_table).with_name_in(EU, eu_table);
    Pair { regions, table, proxy }
}

fn key(id: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("TENANT#{TENANT}"))),
        ("sk".to_owned(), AttributeValue::S(format!("PAYMENT#{id}"))),
    ])
}

fn store(region: &Region, table: &ReplicatedTable, writer: ReplicatedWriter) -> PaymentStore {
    PaymentStore::new(region.dynamodb().clone(), table.name_in(region.name()), KEY).with_writer(writer)
}

/// What the run acknowledged: effects for the check, and refunds per payment.
#[derive(Default)]
struct Run {
    acked: Vec<Acked>,
    refunds: HashMap<String, u64>,
    erased: Vec<String>,
    payments: Vec<(String, String)>,
}

/// Runs `ops` through `writer_for(region)`, blackholing us-east-1 before op `cut` and
/// failing over to eu-west-1 (writes there alone) after the op that meets the blackhole.
async fn run(p: &Pair, ops: &[Op], cut: usize, writer_for: impl Fn(&str) -> ReplicatedWriter) -> Run {
    let mut out = Run::default();
    let mut active = US;
    for (i, op) in ops.iter().enumerate() {
        if i == cut {
            p.proxy.set(Toxic::blackhole());
        }
        let region = p.regions.by_name(active).unwrap();
        let writer = writer_for(active);
        let store = store(region, &p.table, writer.clone());
        let attempt = async {
            match op {
                Op::Create => {
                    let id = format!("pay_{}", uuid::Uuid::new_v4().simple());
                    let customer = format!("c_{}", uuid::Uuid::new_v4().simple());
                    let new = CreatePayment {
                        id: Some(id.clone()),
                        card_number: "4111 1111 1111 1111".into(),
                        amount: 1_000,
                        currency: "USD".into(),
                        customer: Customer {
                            id: customer.clone(),
                            name: Some("Jane Roe".into()),
                            email: Some("jane@example.com".into()),
                            country: Some("FR".into()),
                        },
                        description: None,
                    }
                    .validate()
                    .unwrap();
                    store.create(TENANT, new).await.ok().map(|_| ("create", id, Some(customer)))
                }
                Op::Refund(n) if !out.payments.is_empty() => {
                    let (id, _) = out.payments[n % out.payments.len()].clone();
                    store.refund(TENANT, &id, 1, None).await.ok().map(|_| ("refund", id, None))
                }
                Op::Erase(n) if !out.payments.is_empty() => {
                    let (id, customer) = out.payments[n % out.payments.len()].clone();
                    // After an async failover the payment may not have reached this
                    // region yet: the erasure then finds nothing to erase (0), which is
                    // no acknowledged effect (the drill counts it as `nothing_erased`).
                    match store.erase_customer(TENANT, &customer).await {
                        Ok(n) if n > 0 => Some(("erase", id, None)),
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        let done = tokio::time::timeout(Duration::from_secs(2), attempt).await.ok().flatten();
        if i >= cut {
            active = EU;
        }
        let Some((kind, id, customer)) = done else { continue };
        let version = writer.acks().into_iter().rev().find(|a| a.keys.contains(&key(&id))).map(|a| a.version);
        let write = AckedWrite::new(key(&id));
        let write = match version {
            Some(v) => write.with_version(v),
            None => panic!("{kind} of {id} acknowledged without a version"),
        };
        let effect = if kind == "create" { Effect::Written(write) } else { Effect::Updated(write) };
        out.acked.push(Acked { op: kind, region: region.name().to_owned(), effect });
        match (kind, customer) {
            ("create", Some(customer)) => out.payments.push((id, customer)),
            ("refund", _) => *out.refunds.entry(id).or_default() += 1,
            ("erase", _) => out.erased.push(id),
            _ => {}
        }
    }
    out
}

async fn item(region: &Region, table: &ReplicatedTable, id: &str) -> Option<Item> {
    region
        .dynamodb()
        .get_item()
        .table_name(table.name_in(region.name()))
        .set_key(Some(key(id)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn number(item: &Item, attr: &str) -> u64 {
    item[attr].as_n().unwrap().parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sync_mode_loses_no_acknowledged_create_refund_or_erasure(
        ops in proptest::collection::vec(op(), 3..10),
        cut in 0usize..10,
    ) {
        RT.block_on(async {
            let p = pair().await;
            let run = run(&p, &ops, cut, |active| {
                let builder = if active == US {
                    ReplicatedWriter::sync(p.regions.clone(), p.table.clone())
                } else {
                    // After the failover, eu-west-1 writes alone (us-east-1 is dark).
                    ReplicatedWriter::async_(p.regions.clone(), p.table.clone()).targets([EU])
                };
                builder.timeout(Duration::from_millis(500)).record_acks().build().unwrap()
            }).await;
            let eu = p.regions.by_name(EU).unwrap();
            let check = check_effects(eu, &p.table, &run.acked).await.unwrap();
            assert_eq!(check.lost(), 0, "acknowledged effects lost in the new primary: {check:?}");
            // Beyond the version: the totals hold every acknowledged refund, erasures hold.
            for (id, refunds) in &run.refunds {
                let held = item(eu, &p.table, id).await.expect("refunded payment");
                assert!(number(&held, "refunded") >= *refunds, "{id}: {held:?}");
                assert_eq!(number(&held, "refunded") + number(&held, "refundable"), 1_000);
            }
            for id in &run.erased {
                let held = item(eu, &p.table, id).await.expect("erased payment");
                assert!(!held.contains_key("customer_name") && !held.contains_key("customer_email"), "{id}");
            }
            p.proxy.clear();
        });
    }

    #[test]
    fn async_mode_rpo_counts_every_write_kind_and_every_kind_replicates(
        ops in proptest::collection::vec(op(), 3..10),
        cut in 0usize..10,
    ) {
        RT.block_on(async {
            let p = pair().await;
            let replicator = Replicator::builder(p.regions.clone())
                .table(p.table.clone())
                .poll_interval(Duration::from_millis(100))
                .start()
                .await
                .unwrap();
            let run = run(&p, &ops, cut, |active| {
                ReplicatedWriter::async_(p.regions.clone(), p.table.clone())
                    .targets([active])
                    .timeout(Duration::from_millis(500))
                    .record_acks()
                    .build()
                    .unwrap()
            }).await;
            // Stop replication to measure one state (a request in flight may still land).
            drop(replicator);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let eu = p.regions.by_name(EU).unwrap();
            let measured = check_effects(eu, &p.table, &run.acked).await.unwrap();
            // The oracle: per payment, the last acknowledged effect and its version, read back.
            let mut last: HashMap<String, (&str, AttributeValue)> = HashMap::new();
            for a in &run.acked {
                let (Effect::Written(w) | Effect::Updated(w)) = &a.effect else { unreachable!() };
                let id = w.key["sk"].as_s().unwrap().trim_start_matches("PAYMENT#").to_owned();
                let newer = last.get(&id).is_none_or(|(_, v)| {
                    compare_versions(w.version.as_ref().unwrap(), v) == Some(std::cmp::Ordering::Greater)
                });
                if newer {
                    last.insert(id, (a.op, w.version.clone().unwrap()));
                } else {
                    last.get_mut(&id).unwrap().0 = a.op;
                }
            }
            let mut expected: HashMap<&str, u64> = HashMap::new();
            for (id, (kind, version)) in &last {
                let held = item(eu, &p.table, id).await;
                let behind = held.as_ref().is_none_or(|i| {
                    compare_versions(&i[VERSION_ATTRIBUTE], version) == Some(std::cmp::Ordering::Less)
                });
                if behind {
                    *expected.entry(kind).or_default() += 1;
                }
            }
            for (kind, c) in &measured.by_op {
                assert_eq!(c.lost(), expected.get(kind.as_str()).copied().unwrap_or(0), "{kind}: {measured:?}");
            }
            assert_eq!(measured.lost(), expected.values().sum::<u64>(), "{measured:?} vs {expected:?}");
            // The primary returns, replication restarts from the streams' start: every
            // kind reaches eu-west-1.
            p.proxy.clear();
            let replicator = Replicator::builder(p.regions.clone())
                .table(p.table.clone())
                .poll_interval(Duration::from_millis(100))
                .start()
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let now = check_effects(eu, &p.table, &run.acked).await.unwrap();
                if now.lost() == 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "not replicated after the heal: {now:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            drop(replicator);
        });
    }
}

/// The version says a region holds a refund's write or a newer one; it cannot say that a
/// newer write kept the refund. Payments' own check reads `refunded` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_that_lost_a_refund_is_caught_by_the_payments_check() {
    use lift_harness::Workload as _;
    let p = pair().await;
    let (us, eu) = (p.regions.by_name(US).unwrap(), p.regions.by_name(EU).unwrap());
    let writer = ReplicatedWriter::sync(p.regions.clone(), p.table.clone()).record_acks().build().unwrap();
    let store = store(us, &p.table, writer.clone());
    let new = CreatePayment {
        id: Some("pay_lww".into()),
        card_number: "4111 1111 1111 1111".into(),
        amount: 1_000,
        currency: "USD".into(),
        customer: Customer { id: "c_lww".into(), name: None, email: None, country: None },
        description: None,
    }
    .validate()
    .unwrap();
    store.create(TENANT, new).await.unwrap();
    let mut acked = Vec::new();
    let mut refunds = Vec::new();
    for _ in 0..2 {
        let refund = store.refund(TENANT, "pay_lww", 1, None).await.unwrap();
        let version = writer.acks().last().unwrap().version.clone();
        // As the payments workload names a refund: its own item, written in the payment's
        // transaction at the same version.
        let refund_key = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("TENANT#{TENANT}"))),
            ("sk".to_owned(), AttributeValue::S(format!("REFUND#pay_lww#{}", refund.id))),
        ]);
        refunds.push(refund_key.clone());
        acked.push(Acked {
            op: "refund",
            region: US.into(),
            effect: Effect::Written(AckedWrite::new(refund_key).with_version(version)),
        });
    }
    let workload = payments::workload::PaymentsWorkload::default();
    for region in [us, eu] {
        assert_eq!(workload.check(region, &p.table, &acked).await.unwrap().lost(), 0, "{}", region.name());
    }
    // eu-west-1 now holds a newer version written over a copy that had one refund only.
    let mut lost_one = item(eu, &p.table, "pay_lww").await.unwrap();
    lost_one.insert("refunded".into(), AttributeValue::N("1".into()));
    lost_one.insert("refundable".into(), AttributeValue::N("999".into()));
    lost_one.insert(VERSION_ATTRIBUTE.into(), AttributeValue::N(u64::MAX.to_string()));
    eu.dynamodb().put_item().table_name(p.table.name_in(EU)).set_item(Some(lost_one)).send().await.unwrap();
    let by_version = check_effects(eu, &p.table, &acked).await.unwrap();
    assert_eq!(by_version.lost(), 0, "the version alone does not see it");
    let check = workload.check(eu, &p.table, &acked).await.unwrap();
    // The totals no longer add up: which refund was lost cannot be told, so both count.
    assert_eq!(check.by_op["refund"].stale, refunds, "{check:?}");
    assert_eq!(workload.check(us, &p.table, &acked).await.unwrap().lost(), 0);
}

/// An acknowledged erasure overwritten by a newer write made from a copy that still had
/// the customer's data (a refund in a region the erasure had not reached) passes the
/// version check; payments' own check names it: the data is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_overwritten_from_a_stale_copy_is_caught_by_the_payments_check() {
    use lift_harness::Workload as _;
    let p = pair().await;
    let (us, eu) = (p.regions.by_name(US).unwrap(), p.regions.by_name(EU).unwrap());
    let writer = ReplicatedWriter::sync(p.regions.clone(), p.table.clone()).record_acks().build().unwrap();
    let store = store(us, &p.table, writer.clone());
    let new = CreatePayment {
        id: Some("pay_erased".into()),
        card_number: "4111 1111 1111 1111".into(),
        amount: 1_000,
        currency: "USD".into(),
        customer: Customer {
            id: "c_erased".into(),
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            country: Some("GB".into()),
        },
        description: None,
    }
    .validate()
    .unwrap();
    store.create(TENANT, new).await.unwrap();
    let before_erasure = item(eu, &p.table, "pay_erased").await.unwrap();
    assert!(before_erasure.contains_key("customer_name"));
    assert_eq!(store.erase_customer(TENANT, "c_erased").await.unwrap(), 1);
    let version = writer.acks().last().unwrap().version.clone();
    let acked = vec![Acked {
        op: "erase",
        region: US.into(),
        effect: Effect::Updated(AckedWrite::new(key("pay_erased")).with_version(version)),
    }];
    let workload = payments::workload::PaymentsWorkload::default();
    for region in [us, eu] {
        assert_eq!(workload.check(region, &p.table, &acked).await.unwrap().lost(), 0, "{}", region.name());
    }
    // eu-west-1 now holds a newer version written over the copy from before the erasure.
    let mut restored = before_erasure;
    restored.insert(VERSION_ATTRIBUTE.into(), AttributeValue::N(u64::MAX.to_string()));
    eu.dynamodb().put_item().table_name(p.table.name_in(EU)).set_item(Some(restored)).send().await.unwrap();
    assert_eq!(
        check_effects(eu, &p.table, &acked).await.unwrap().lost(),
        0,
        "the version alone does not see it"
    );
    let check = workload.check(eu, &p.table, &acked).await.unwrap();
    assert_eq!(check.by_op["erase"].stale, [key("pay_erased")], "{check:?}");
    assert_eq!(workload.check(us, &p.table, &acked).await.unwrap().lost(), 0);
}

/// Refunds racing on one payment: each is a transaction on the payment item, and a racing
/// write cancels it (a transaction conflict, or the replicated writer's version condition)
/// though enough is left. None of them may be refused as an over-refund, and every one
/// acknowledged is counted; a refund larger than what is left still is one. Through the
/// sync writer over two regions, a refund whose image reached eu-west-1 after a newer one
/// is held there all the same: it is acknowledged, and both regions hold every refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_racing_on_one_payment_are_all_taken_and_none_called_an_over_refund() {
    let p = pair().await;
    let (us, eu) = (p.regions.by_name(US).unwrap(), p.regions.by_name(EU).unwrap());
    // The writer's version condition is where a race cancels a refund.
    let one_target = ReplicatedWriter::async_(p.regions.clone(), p.table.clone()).build().unwrap();
    let sync = ReplicatedWriter::sync(p.regions.clone(), p.table.clone()).build().unwrap();
    let plain = PaymentStore::new(us.dynamodb().clone(), p.table.name_in(US), KEY);
    let stores = [
        ("plain", plain, false),
        ("through the replicated writer", store(us, &p.table, one_target), false),
        ("through the sync writer over two regions", store(us, &p.table, sync), true),
    ];
    for (label, store, both_regions) in stores {
        let id = create_payment(&store, "pay_race").await;
        let mut taken = 0;
        for _round in 0..4 {
            let racing: Vec<_> = (0..12)
                .map(|_| {
                    let (store, id) = (store.clone(), id.clone());
                    tokio::spawn(async move { store.refund(TENANT, &id, 1, None).await })
                })
                .collect();
            for refund in racing {
                match refund.await.unwrap() {
                    Ok(_) => taken += 1,
                    Err(payments::StoreError::Unavailable(code)) => {
                        assert_eq!(code, "TransactionConflict", "{label}: retry later, never lost")
                    }
                    Err(err) => panic!("{label}: a refund with 1,000 left was refused: {err}"),
                }
            }
        }
        assert!(taken > 0, "{label}");
        let payment = store.get(TENANT, &id).await.unwrap();
        assert_eq!(payment.refunded_amount, taken, "{label}: every acknowledged refund is counted");
        if both_regions {
            let held = item(eu, &p.table, &id).await.expect("the payment in eu-west-1");
            assert_eq!(number(&held, "refunded"), taken, "{label}: eu-west-1 holds every refund");
            assert_eq!(refund_items(us, &p.table, &id).await, taken, "{label}: us-east-1's refund items");
            assert_eq!(refund_items(eu, &p.table, &id).await, taken, "{label}: eu-west-1's refund items");
        }
        match store.refund(TENANT, &id, 1_000, None).await {
            Err(payments::StoreError::OverRefund { refundable }) => {
                assert_eq!(refundable, 1_000 - taken, "{label}")
            }
            other => panic!("{label}: {other:?}"),
        }
    }
}

/// The refund items of payment `id` that `region` holds.
async fn refund_items(region: &Region, table: &ReplicatedTable, id: &str) -> u64 {
    region
        .dynamodb()
        .query()
        .table_name(table.name_in(region.name()))
        .key_condition_expression("pk = :pk AND begins_with(sk, :sk)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{TENANT}")))
        .expression_attribute_values(":sk", AttributeValue::S(format!("REFUND#{id}#")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count() as u64
}

/// A refund cancelled on every attempt though enough is left (here the stored payment
/// carries a version a clock far ahead of ours stamped, so the writer's version condition
/// refuses each one): after its attempts it answers "try again later", never an
/// over-refund, and nothing of it is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_cancelled_on_every_attempt_is_retry_later_and_writes_nothing() {
    let p = pair().await;
    let us = p.regions.by_name(US).unwrap();
    let writer = ReplicatedWriter::async_(p.regions.clone(), p.table.clone()).build().unwrap();
    let store = store(us, &p.table, writer);
    let id = create_payment(&store, "pay_ahead").await;
    let mut ahead = item(us, &p.table, &id).await.unwrap();
    ahead.insert(VERSION_ATTRIBUTE.into(), AttributeValue::N((u64::MAX / 2).to_string()));
    us.dynamodb()
        .put_item()
        .table_name(p.table.name_in(US))
        .set_item(Some(ahead.clone()))
        .send()
        .await
        .unwrap();

    match store.refund(TENANT, &id, 5, None).await {
        Err(payments::StoreError::Unavailable(code)) => assert_eq!(code, "TransactionConflict"),
        other => panic!("a refund with 1,000 left: {other:?}"),
    }
    assert_eq!(item(us, &p.table, &id).await.unwrap(), ahead, "the payment is untouched");
    assert_eq!(refund_items(us, &p.table, &id).await, 0, "no refund item");
    // A refund larger than what is left is still an over-refund, at the first attempt.
    match store.refund(TENANT, &id, 1_001, None).await {
        Err(payments::StoreError::OverRefund { refundable }) => assert_eq!(refundable, 1_000),
        other => panic!("{other:?}"),
    }
}

/// Creates a payment of 1,000 with a new id starting with `prefix`, and returns the id.
async fn create_payment(store: &PaymentStore, prefix: &str) -> String {
    let id = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let new = CreatePayment {
        id: Some(id.clone()),
        card_number: "4111 1111 1111 1111".into(),
        amount: 1_000,
        currency: "USD".into(),
        customer: Customer { id: format!("c_{id}"), name: None, email: None, country: None },
        description: None,
    }
    .validate()
    .unwrap();
    store.create(TENANT, new).await.unwrap();
    id
}
