//! Replication between regions over real DynamoDB Streams (DynamoDB Local): changes flow
//! both ways without loops, older writes never win, lag is measured, synchronous writes
//! reach both regions before the acknowledgement, and RPO checks find lost writes.
//!
//! Two regions on the shared DynamoDB Local use tables of their own (the instance runs with
//! `-sharedDb`); outage tests put the second region on a dedicated instance they kill.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{
    AckedWrite, Item, LinkStats, Region, RegionConfig, RegionSet, ReplicatedTable, ReplicatedWriter,
    Replicator, RpoCheck, SyncWriter, Write, ORIGIN_ATTRIBUTE, VERSION_ATTRIBUTE,
};
use lift::store::{KeyAttribute, StreamView, TableDef};
use lift_harness::dynamodb::DynamoDbLocal;

const US: &str = "us-east-1";
const EU: &str = "eu-west-1";
/// Items carry their write time, so lag is measured to the millisecond.
const WRITTEN_AT: &str = "written_at_ms";

fn orders() -> TableDef {
    TableDef::new("orders", KeyAttribute::string("pk")).with_stream(StreamView::NewAndOldImages)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn item(pk: &str, version: u64, value: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        (VERSION_ATTRIBUTE.to_owned(), AttributeValue::N(version.to_string())),
        ("value".to_owned(), AttributeValue::S(value.to_owned())),
        (WRITTEN_AT.to_owned(), AttributeValue::N(now_ms().to_string())),
    ])
}

fn key(pk: &str) -> Item {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk.to_owned()))])
}

/// Two regions on `us`/`eu` endpoints, each with its own `orders` table.
async fn regions_and_table(
    us: &str,
    eu: &str,
    us_table: String,
    eu_table: String,
) -> (RegionSet, ReplicatedTable) {
    let regions = RegionSet::builder()
        .region(RegionConfig::new(US).dynamodb_endpoint(us))
        .region(RegionConfig::new(EU).dynamodb_endpoint(eu))
        .build()
        .unwrap();
    let table = ReplicatedTable::new(orders()).with_name_in(US, us_table).with_name_in(EU, eu_table);
    (regions, table)
}

async fn shared_pair() -> (RegionSet, ReplicatedTable) {
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let (us_table, eu_table) =
        (ddb.create_table(&orders()).await.unwrap(), ddb.create_table(&orders()).await.unwrap());
    regions_and_table(ddb.endpoint(), ddb.endpoint(), us_table, eu_table).await
}

async fn put(region: &Region, table: &ReplicatedTable, item: Item) {
    region
        .dynamodb()
        .put_item()
        .table_name(table.name_in(region.name()))
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn get(region: &Region, table: &ReplicatedTable, pk: &str) -> Option<Item> {
    region
        .dynamodb()
        .get_item()
        .table_name(table.name_in(region.name()))
        .set_key(Some(key(pk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn text<'a>(item: &'a Item, attr: &str) -> &'a str {
    match item.get(attr) {
        Some(AttributeValue::S(s) | AttributeValue::N(s)) => s,
        _ => "",
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or fails the test after `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn link(replicator: &Replicator, source: &str, target: &str) -> LinkStats {
    replicator.link_stats().into_iter().find(|l| l.source == source && l.target == target).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_one_region_appear_in_the_other_without_loops_and_with_measured_lag() {
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .poll_interval(Duration::from_millis(100))
        .lag_attribute(WRITTEN_AT)
        .start()
        .await
        .unwrap();

    let started = Instant::now();
    for i in 0..5 {
        put(&us, &table, item(&format!("order-{i}"), 1, "from us")).await;
    }
    put(&eu, &table, item("order-eu", 1, "from eu")).await;
    for i in 0..5 {
        let pk = format!("order-{i}");
        eventually(Duration::from_secs(15), "us -> eu", || get(&eu, &table, &pk)).await;
    }
    let copy = eventually(Duration::from_secs(15), "eu -> us", || get(&us, &table, "order-eu")).await;
    let all_across = started.elapsed();
    assert_eq!(text(&copy, "value"), "from eu");
    assert_eq!(text(&copy, ORIGIN_ATTRIBUTE), EU, "replicated writes are marked");
    let local = get(&us, &table, "order-0").await.unwrap();
    assert!(!local.contains_key(ORIGIN_ATTRIBUTE), "local writes are not");

    // Updates and deletes follow.
    put(&us, &table, item("order-0", 2, "updated in us")).await;
    us.dynamodb()
        .delete_item()
        .table_name(table.name_in(US))
        .set_key(Some(key("order-1")))
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(15), "the update", || async {
        get(&eu, &table, "order-0").await.filter(|i| text(i, VERSION_ATTRIBUTE) == "2")
    })
    .await;
    eventually(Duration::from_secs(15), "the delete", || async {
        get(&eu, &table, "order-1").await.is_none().then_some(())
    })
    .await;

    // No loops: each region's stream shows the replicated writes, which go no further. The
    // replicated delete comes back as a no-op delete of a missing item, and stops there.
    eventually(Duration::from_secs(15), "replicated writes seen and skipped", || async {
        let back = link(&replicator, EU, US).stats;
        let forth = link(&replicator, US, EU).stats;
        (back.skipped_replicated >= 6 && back.applied >= 2 && forth.skipped_replicated >= 1).then_some(())
    })
    .await;
    let (forth, back) = (link(&replicator, US, EU).stats, link(&replicator, EU, US).stats);
    assert_eq!((forth.applied, forth.skipped_replicated, forth.superseded), (7, 1, 0), "{forth:?}");
    assert_eq!((back.applied, back.skipped_replicated, back.superseded), (2, 6, 0), "{back:?}");

    let stats = replicator.stats();
    let (last, max) = (stats.last_lag.expect("lag measured"), stats.max_lag.expect("max lag measured"));
    assert!(last <= max && max < Duration::from_secs(10), "{stats:?}");
    println!(
        "6 writes across in {all_across:?}; lag: last {last:?}, max {max:?}; applied {}, skipped (replicated) {}",
        stats.applied, stats.skipped_replicated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_write_never_overwrites_a_newer_one_and_ties_go_to_the_first_region_name() {
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    // Concurrent writes in both regions before replication runs.
    put(&us, &table, item("k-older", 3, "old, from us")).await;
    put(&eu, &table, item("k-older", 5, "new, from eu")).await;
    put(&us, &table, item("k-tie", 7, "tie, from us")).await;
    put(&eu, &table, item("k-tie", 7, "tie, from eu")).await;
    put(&us, &table, item("k-newer", 9, "new, from us")).await;
    put(&eu, &table, item("k-newer", 8, "old, from eu")).await;

    let replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .poll_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(15), "every conflict resolved", || async {
        let stats = replicator.stats();
        (stats.applied + stats.superseded >= 6).then_some(())
    })
    .await;

    for (pk, winner) in [("k-older", "new, from eu"), ("k-tie", "tie, from eu"), ("k-newer", "new, from us")]
    {
        for region in [&us, &eu] {
            let held = get(region, &table, pk).await.unwrap();
            assert_eq!(text(&held, "value"), winner, "{pk} in {}", region.name());
        }
    }
    let stats = replicator.stats();
    assert_eq!((stats.applied, stats.superseded), (3, 3), "{stats:?}");
}

/// Two different puts of one version are never both acknowledged: the second is refused
/// where the first is held, so no two regions can end holding one each under the same
/// version (which no replication repairs: both carry the same origin). The same put sent
/// again (an attempt whose answer was lost) is acknowledged, and a newer version replaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_puts_of_one_version_are_never_both_acknowledged() {
    let (regions, table) = shared_pair().await;
    let writer = SyncWriter::builder(regions.clone(), table.clone()).build().unwrap();
    let x = item("pay-tie", 5, "x");
    writer.put(x.clone()).await.unwrap();
    let err = writer.put(item("pay-tie", 5, "y")).await.unwrap_err();
    assert!(err.acknowledged.is_empty(), "{err}");
    for region in [US, EU] {
        let held = get(regions.by_name(region).unwrap(), &table, "pay-tie").await.unwrap();
        assert_eq!(held["value"], AttributeValue::S("x".into()), "{region}");
    }
    let again = writer.put(x).await.unwrap();
    assert_eq!(again.acknowledged, [US, EU], "the same put again holds");
    writer.put(item("pay-tie", 6, "z")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_writes_are_in_both_regions_when_acknowledged_and_rpo_checks_find_lost_writes() {
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let writer = SyncWriter::builder(regions.clone(), table.clone()).build().unwrap();

    // No replicator runs: whatever is in eu got there through the synchronous write.
    let mut acked = Vec::new();
    for i in 0..3 {
        let pk = format!("pay-{i}");
        let ack = writer.put(item(&pk, 1, "sync")).await.unwrap();
        assert_eq!(ack.acknowledged, [US, EU]);
        for region in [&us, &eu] {
            let held = get(region, &table, &pk).await.expect("held before the ack");
            assert_eq!(held.get(VERSION_ATTRIBUTE), ack.version.as_ref());
        }
        acked.push(AckedWrite::new(ack.key).with_version(ack.version.unwrap()));
    }
    // A version the writer stamps itself.
    let mut unversioned = item("pay-stamped", 0, "sync");
    unversioned.remove(VERSION_ATTRIBUTE);
    let ack = writer.put(unversioned).await.unwrap();
    assert!(matches!(ack.version, Some(AttributeValue::N(_))));

    // An acknowledged write only the primary took (asynchronous), and one whose newer
    // version never reached eu.
    put(&us, &table, item("pay-async", 1, "primary only")).await;
    acked.push(AckedWrite::new(key("pay-async")));
    let newer = writer.put(item("pay-updated", 4, "v4")).await.unwrap();
    put(&eu, &table, item("pay-updated", 3, "v3")).await;
    acked.push(AckedWrite::new(newer.key.clone()).with_version(newer.version.clone().unwrap()));

    let report = RpoCheck::new(&eu, &table).check(&acked).await.unwrap();
    assert_eq!(report.region, EU);
    assert_eq!(report.checked, 5);
    assert_eq!(report.missing, [key("pay-async")]);
    assert_eq!(report.stale, [key("pay-updated")]);
    assert_eq!(report.lost(), 2);
    let primary = RpoCheck::new(&us, &table).check(&acked).await.unwrap();
    assert!(primary.is_zero(), "{primary:?}");
}

/// us-east-1 on a new orders table, reached through a fault proxy (eu-west-1 is not used).
async fn us_behind_proxy() -> (lift_harness::faults::AwsFaultProxy, Region, ReplicatedTable) {
    use lift_harness::faults::AwsFaultProxy;
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let us_table = ddb.create_table(&orders()).await.unwrap();
    let proxy = AwsFaultProxy::start(ddb.endpoint()).await.unwrap();
    let (regions, table) =
        regions_and_table(&proxy.endpoint(), ddb.endpoint(), us_table, "orders-eu-unused".into()).await;
    let us = regions.by_name(US).unwrap().clone();
    (proxy, us, table)
}

/// DynamoDB may answer a batch with its keys handed back unprocessed, with a 200. The RPO
/// check asks again, backing off, and when they stay unread it fails: a key it never read is
/// counted neither held nor lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpo_check_asks_again_for_keys_left_unprocessed_and_never_guesses() {
    use lift::disaster::RpoError;
    let (proxy, us, table) = us_behind_proxy().await;
    put(&us, &table, item("pay-held", 1, "v1")).await;
    let acked = [AckedWrite::new(key("pay-held")).with_version(n(1)), AckedWrite::new(key("pay-lost"))];

    proxy.leave_unprocessed("BatchGetItem", 3);
    let report = RpoCheck::new(&us, &table).check(&acked).await.unwrap();
    assert_eq!((report.checked, report.missing.clone(), report.stale.len()), (2, vec![key("pay-lost")], 0));
    assert_eq!(proxy.stats("BatchGetItem").injected, 3, "asked again after each");

    proxy.leave_unprocessed("BatchGetItem", 100);
    let err = RpoCheck::new(&us, &table).check(&acked).await.unwrap_err();
    assert!(matches!(&err, RpoError::Unprocessed { remaining: 2, .. }), "{err:?}");
}

/// DynamoDB may also read part of a batch and hand the rest back. What each answer read is
/// kept: a check that kept only its last answer would count writes read at the first as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpo_check_keeps_what_every_partial_answer_read() {
    let (proxy, us, table) = us_behind_proxy().await;
    let mut acked = Vec::new();
    for pk in ["pay-a", "pay-b", "pay-c", "pay-d"] {
        put(&us, &table, item(pk, 2, "v2")).await;
        acked.push(AckedWrite::new(key(pk)).with_version(n(2)));
    }
    acked.insert(2, AckedWrite::new(key("pay-lost")));
    // 5 keys: 3 read and 2 handed back; of those, 1 read and 1 handed back; then the last.
    proxy.hand_back_part("BatchGetItem", 2);
    let report = RpoCheck::new(&us, &table).check(&acked).await.unwrap();
    assert_eq!(proxy.stats("BatchGetItem").injected, 2);
    assert_eq!((report.checked, report.missing.clone(), report.stale.len()), (5, vec![key("pay-lost")], 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_region_fails_synchronous_writes_and_catches_up_from_the_stream_when_it_returns() {
    let shared = DynamoDbLocal::shared().await.expect("dynamodb local");
    let dedicated = DynamoDbLocal::dedicated().await.expect("a dedicated dynamodb local");
    let (us_table, eu_table) =
        (shared.create_table(&orders()).await.unwrap(), dedicated.create_table(&orders()).await.unwrap());
    let (regions, table) =
        regions_and_table(shared.endpoint(), &dedicated.endpoint(), us_table, eu_table).await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .poll_interval(Duration::from_millis(100))
        .lag_attribute(WRITTEN_AT)
        .start()
        .await
        .unwrap();
    let writer = SyncWriter::builder(regions.clone(), table.clone()).build().unwrap();
    writer.put(item("before", 1, "both up")).await.unwrap();

    dedicated.kill().unwrap();
    let attempt = Instant::now();
    let err = writer.put(item("during", 1, "eu is down")).await.unwrap_err();
    let failed_after = attempt.elapsed();
    assert_eq!(err.acknowledged, [US]);
    assert_eq!(err.failures.len(), 1);
    assert_eq!(err.failures[0].region, EU);
    assert_eq!(err.to_string(), "write acknowledged by 1 of 2 regions");
    assert!(get(&us, &table, "during").await.is_some(), "the region that acknowledged keeps the write");
    put(&us, &table, item("async-during", 1, "eu is down")).await;
    eventually(Duration::from_secs(15), "the link to eu failing", || async {
        (link(&replicator, US, EU).stats.errors > 0).then_some(())
    })
    .await;

    // eu returns with its data; the stream of us is applied from where it stopped.
    dedicated.restart().await.unwrap();
    let back = Instant::now();
    for pk in ["before", "during", "async-during"] {
        eventually(Duration::from_secs(20), pk, || get(&eu, &table, pk)).await;
    }
    let caught_up = back.elapsed();
    let stats = link(&replicator, US, EU).stats;
    println!(
        "sync write with eu down failed after {failed_after:?} ({}); eu caught up {caught_up:?} after its restart; \
         max lag {:?}, {} errors while it was down",
        err.failures[0].reason, stats.max_lag, stats.errors
    );
}

// Every write kind through `ReplicatedWriter`: sync and async.

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn version_of(item: &Item) -> u128 {
    text(item, VERSION_ATTRIBUTE).parse().expect("a numeric version")
}

/// A payment-like item: a total the updates move.
fn account(pk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("refunded".to_owned(), n(0)),
        ("refundable".to_owned(), n(100)),
        ("name".to_owned(), AttributeValue::S("Jane Roe".into())),
    ])
}

fn refund(pk: &str, amount: u64) -> Write {
    Write::update(key(pk), "SET #r = #r + :a, refundable = refundable - :a")
        .when("refundable >= :a")
        .name("#r", "refunded")
        .value(":a", n(amount))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_writes_of_every_kind_are_in_both_regions_with_one_new_version_before_the_ack() {
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    // No replicator: whatever eu holds came through the synchronous write.
    let writer = ReplicatedWriter::sync(regions.clone(), table.clone()).build().unwrap();

    let created = writer.write(Write::put(account("acct-1")).when("attribute_not_exists(pk)")).await.unwrap();
    assert_eq!(created.acknowledged, [US, EU]);
    let duplicate =
        writer.write(Write::put(account("acct-1")).when("attribute_not_exists(pk)")).await.unwrap_err();
    assert!(duplicate.is_rejected(), "{duplicate:?}");
    assert!(!duplicate.is_superseded(), "the caller's condition, not a newer version: {duplicate:?}");

    let refunded = writer.write(refund("acct-1", 30)).await.unwrap();
    assert_eq!(refunded.acknowledged, [US, EU]);
    let erased = writer.write(Write::update(key("acct-1"), "REMOVE #n").name("#n", "name")).await.unwrap();
    let mut versions = Vec::new();
    for region in [&us, &eu] {
        let held = get(region, &table, "acct-1").await.unwrap();
        assert_eq!((text(&held, "refunded"), text(&held, "refundable")), ("30", "70"), "{}", region.name());
        assert!(!held.contains_key("name"), "the erasure is in {}", region.name());
        assert_eq!(held.get(VERSION_ATTRIBUTE), Some(&erased.version), "one version in every region");
        assert_eq!(text(&held, ORIGIN_ATTRIBUTE), US, "the writing region is the origin");
        versions.push(version_of(&held));
    }
    let as_u128 = |v: &AttributeValue| v.as_n().unwrap().parse::<u128>().unwrap();
    assert!(as_u128(&created.version) < as_u128(&refunded.version));
    assert!(as_u128(&refunded.version) < as_u128(&erased.version), "every write kind stamps a newer version");

    // A refund larger than what is left is refused (by the writing region, which judges an
    // update's condition) and changes nothing anywhere.
    let over = writer.write(refund("acct-1", 71)).await.unwrap_err();
    assert!(over.is_rejected() && over.condition_failed == [US], "{over:?}");
    assert!(!over.is_superseded(), "{over:?}");
    for region in [&us, &eu] {
        assert_eq!(
            get(region, &table, "acct-1").await.unwrap().get(VERSION_ATTRIBUTE),
            Some(&erased.version)
        );
    }

    // A write never replaces a newer version, even one a clock ahead of ours stamped.
    let mut future = get(&eu, &table, "acct-1").await.unwrap();
    future.insert(VERSION_ATTRIBUTE.into(), n(u64::MAX / 2));
    put(&eu, &table, future).await;
    let behind = writer.write(refund("acct-1", 1)).await.unwrap_err();
    assert_eq!(behind.acknowledged, [US]);
    assert_eq!(behind.condition_failed, [EU]);
    assert_eq!(behind.superseded, [EU]);
    assert!(!behind.is_rejected() && !behind.is_superseded(), "a write one region holds is not a rejection");
    // The same clock ahead in the writing region: nothing written, and the caller can tell
    // a newer version from its own condition, for one item and in a transaction.
    let mut future = get(&us, &table, "acct-1").await.unwrap();
    future.insert(VERSION_ATTRIBUTE.into(), n(u64::MAX / 2));
    put(&us, &table, future).await;
    let lost = writer.write(refund("acct-1", 1)).await.unwrap_err();
    assert!(lost.is_superseded() && lost.superseded == [US], "{lost:?}");
    let lost = writer.transact(vec![Write::put(account("acct-4")), refund("acct-1", 1)]).await.unwrap_err();
    assert!(lost.is_superseded(), "{lost:?}");
    assert!(get(&us, &table, "acct-4").await.is_none(), "nothing of the transaction");
    let own =
        writer.transact(vec![Write::put(account("acct-4")), refund("acct-1", 1_000)]).await.unwrap_err();
    assert!(own.is_superseded(), "a newer version refused it too: {own:?}");

    // Transactions: both items or neither, in each region.
    let pair = writer
        .transact(vec![refund("acct-2", 1), Write::put(account("refund-of-acct-2"))])
        .await
        .unwrap_err();
    assert!(pair.is_rejected() && !pair.is_superseded(), "no acct-2 to refund: {pair:?}");
    for region in [&us, &eu] {
        assert!(get(region, &table, "refund-of-acct-2").await.is_none(), "nothing of a refused transaction");
    }

    // Deletes.
    let deleted = writer.delete(key("acct-1")).await;
    assert!(deleted.is_err(), "eu holds a newer version than our clock: the delete must not win there");
    writer.write(Write::put(account("acct-3"))).await.unwrap();
    writer.delete(key("acct-3")).await.unwrap();
    for region in [&us, &eu] {
        assert!(get(region, &table, "acct-3").await.is_none(), "deleted in {}", region.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_update_leaves_one_item_in_every_region_even_one_that_missed_a_write() {
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let writer = ReplicatedWriter::sync(regions.clone(), table.clone()).build().unwrap();
    writer.write(Write::put(account("acct-s"))).await.unwrap();
    // eu misses a refund (it was cut off, and replication has not caught up yet).
    let us_only = ReplicatedWriter::async_(regions.clone(), table.clone()).targets([US]).build().unwrap();
    us_only.write(refund("acct-s", 10)).await.unwrap();
    assert_eq!(text(&get(&eu, &table, "acct-s").await.unwrap(), "refunded"), "0");
    // The next refund, synchronous: computed once, in us; eu receives the same item, the
    // missed refund included, under the same version.
    let ack = writer.write(refund("acct-s", 5)).await.unwrap();
    assert_eq!(ack.acknowledged, [US, EU]);
    let (in_us, in_eu) =
        (get(&us, &table, "acct-s").await.unwrap(), get(&eu, &table, "acct-s").await.unwrap());
    assert_eq!((text(&in_us, "refunded"), text(&in_us, "refundable")), ("15", "85"));
    assert_eq!(in_us, in_eu, "the regions diverge under one version");
    assert_eq!(in_eu.get(VERSION_ATTRIBUTE), Some(&ack.version));
    // A transaction with an update does the same for every item it writes.
    us_only.write(refund("acct-s", 1)).await.unwrap();
    writer.transact(vec![refund("acct-s", 2), Write::put(account("refund-of-acct-s"))]).await.unwrap();
    let (in_us, in_eu) =
        (get(&us, &table, "acct-s").await.unwrap(), get(&eu, &table, "acct-s").await.unwrap());
    assert_eq!(text(&in_us, "refunded"), "18");
    assert_eq!(in_us, in_eu);
    assert_eq!(get(&us, &table, "refund-of-acct-s").await, get(&eu, &table, "refund-of-acct-s").await);
    assert!(get(&eu, &table, "refund-of-acct-s").await.is_some());
}

/// Sync updates racing on one item: each is applied in us and its item sent to eu, where a
/// racing write's image can land first (newer than ours, or the same item read back twice)
/// and ours is refused. Every one must still be acknowledged by both regions (it is held
/// there), both regions end with one item, and a transaction's other item reaches eu even
/// when the item it raced on was refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_sync_updates_on_one_item_are_each_held_by_both_regions() {
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let writer = ReplicatedWriter::sync(regions.clone(), table.clone()).build().unwrap();
    // A second writer (another instance of the service) racing the first.
    let other = ReplicatedWriter::sync(regions.clone(), table.clone()).build().unwrap();
    writer.write(Write::put(account("acct-race"))).await.unwrap();
    let mut taken = 0;
    for round in 0..3 {
        let mut racing = tokio::task::JoinSet::new();
        for i in 0..12 {
            let w = if i % 2 == 0 { writer.clone() } else { other.clone() };
            racing.spawn(async move {
                // Two updates racing in us itself: one is refused there on the version
                // condition, nothing is written anywhere, and the service tries again.
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let result = if i % 3 == 0 {
                        let child = Write::put(account(&format!("child-{round}-{i}")));
                        w.transact(vec![refund("acct-race", 1), child]).await
                    } else {
                        w.write(refund("acct-race", 1)).await
                    };
                    match result {
                        Err(err) if err.is_superseded() && err.superseded == [US] && attempt < 50 => {
                            tokio::time::sleep(Duration::from_millis(attempt)).await
                        }
                        result => return (i, attempt, result),
                    }
                }
            });
        }
        for (i, attempts, result) in racing.join_all().await {
            let ack =
                result.unwrap_or_else(|err| panic!("round {round}, write {i}, attempt {attempts}: {err:?}"));
            assert_eq!(ack.acknowledged, [US, EU], "round {round}, write {i}");
            taken += 1;
        }
    }
    assert_eq!(taken, 36, "every racing write taken");
    let (in_us, in_eu) =
        (get(&us, &table, "acct-race").await.unwrap(), get(&eu, &table, "acct-race").await.unwrap());
    assert_eq!(text(&in_us, "refunded"), taken.to_string(), "every acknowledged refund counted once");
    assert_eq!(in_us, in_eu, "one item in both regions");
    for round in 0..3 {
        for i in (0..12).step_by(3) {
            let child = format!("child-{round}-{i}");
            assert_eq!(get(&us, &table, &child).await, get(&eu, &table, &child).await, "{child}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_write_of_any_kind_to_an_unreachable_region_says_which_regions_hold_it() {
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let us_table = ddb.create_table(&orders()).await.unwrap();
    // Nothing listens on port 9 of localhost: eu refuses every connection.
    let (regions, table) =
        regions_and_table(ddb.endpoint(), "http://127.0.0.1:9", us_table, "orders-eu".into()).await;
    let us = regions.by_name(US).unwrap().clone();
    let writer = ReplicatedWriter::sync(regions.clone(), table.clone())
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    for write in [Write::put(account("p-1")), refund("p-1", 5), Write::delete(key("p-1"))] {
        let kind = write.kind();
        let err = writer.write(write).await.unwrap_err();
        assert_eq!(err.kind, kind);
        assert_eq!(err.acknowledged, [US], "{kind}: {err:?}");
        assert_eq!(err.failures.len(), 1);
        assert_eq!(err.failures[0].region, EU);
        assert!(!err.is_rejected());
        assert_eq!(err.to_string(), format!("{kind} acknowledged by 1 of 2 regions"));
    }
    assert!(get(&us, &table, "p-1").await.is_none(), "the region that acknowledged keeps each write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writes_of_every_kind_replicate_and_an_update_after_failover_flows_back() {
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .poll_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let in_us = ReplicatedWriter::async_(regions.clone(), table.clone()).targets([US]).build().unwrap();
    let in_eu = ReplicatedWriter::async_(regions.clone(), table.clone()).targets([EU]).build().unwrap();
    assert_eq!(in_us.targets(), [US]);

    // Put, update and delete in us reach eu.
    in_us.put(account("a-1")).await.unwrap();
    in_us.put(account("a-2")).await.unwrap();
    let update = in_us.write(refund("a-1", 10)).await.unwrap();
    in_us.delete(key("a-2")).await.unwrap();
    eventually(Duration::from_secs(15), "the update in eu", || async {
        get(&eu, &table, "a-1").await.filter(|i| i.get(VERSION_ATTRIBUTE) == Some(&update.version))
    })
    .await;
    eventually(Duration::from_secs(15), "the delete in eu", || async {
        get(&eu, &table, "a-2").await.is_none().then_some(())
    })
    .await;
    assert_eq!(text(&get(&eu, &table, "a-1").await.unwrap(), "refunded"), "10");

    // Failover: the item was born in us; a refund and an erasure made in eu come back.
    let refund_in_eu = in_eu.write(refund("a-1", 5)).await.unwrap();
    let held = get(&eu, &table, "a-1").await.unwrap();
    assert_eq!(text(&held, ORIGIN_ATTRIBUTE), EU, "the update is marked as written in eu");
    let back = eventually(Duration::from_secs(15), "the refund made in eu, in us", || async {
        get(&us, &table, "a-1").await.filter(|i| i.get(VERSION_ATTRIBUTE) == Some(&refund_in_eu.version))
    })
    .await;
    assert_eq!((text(&back, "refunded"), text(&back, "refundable")), ("15", "85"));
    let erased = in_eu.write(Write::update(key("a-1"), "REMOVE #n").name("#n", "name")).await.unwrap();
    let back = eventually(Duration::from_secs(15), "the erasure made in eu, in us", || async {
        get(&us, &table, "a-1").await.filter(|i| i.get(VERSION_ATTRIBUTE) == Some(&erased.version))
    })
    .await;
    assert!(!back.contains_key("name"));

    // No loop: us's copy of eu's writes goes back to eu only as an exact version eu holds,
    // which is skipped; eu's item keeps eu's version.
    eventually(Duration::from_secs(15), "eu's writes seen back in us's stream and skipped", || async {
        (link(&replicator, US, EU).stats.skipped_replicated >= 2).then_some(())
    })
    .await;
    let eu_item = get(&eu, &table, "a-1").await.unwrap();
    assert_eq!(eu_item.get(VERSION_ATTRIBUTE), Some(&erased.version));
    assert_eq!(link(&replicator, US, EU).stats.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_write_from_another_origin_is_forwarded_but_never_an_older_or_equal_one() {
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    // us holds version 5 of k; eu's stream then carries a change written in a third region
    // (origin ap-south-1) at version 7, and one at version 3.
    let mut current = item("k", 5, "us v5");
    current.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S(US.into()));
    put(&us, &table, current).await;
    put(&us, &table, item("old", 5, "us v5")).await;
    let _replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .poll_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut newer = item("k", 7, "third region v7");
    newer.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S("ap-south-1".into()));
    put(&eu, &table, newer).await;
    let mut older = item("old", 3, "third region v3");
    older.insert(ORIGIN_ATTRIBUTE.into(), AttributeValue::S("ap-south-1".into()));
    put(&eu, &table, older).await;
    let k = eventually(Duration::from_secs(15), "the newer change from another origin", || async {
        get(&us, &table, "k").await.filter(|i| text(i, VERSION_ATTRIBUTE) == "7")
    })
    .await;
    assert_eq!(text(&k, "value"), "third region v7");
    assert_eq!(text(&k, ORIGIN_ATTRIBUTE), "ap-south-1", "the writing region stays the origin");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(text(&get(&us, &table, "old").await.unwrap(), VERSION_ATTRIBUTE), "5", "an older one is not");
}

/// A fixed pseudo-random permutation (xorshift), so the interleaving is shuffled but the
/// test reproducible.
fn shuffled<T>(mut items: Vec<T>, mut seed: u64) -> Vec<T> {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_applied_concurrently_ends_with_each_items_newest_version_and_never_an_older_one() {
    const KEYS: usize = 40;
    const VERSIONS: u64 = 4;
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    // Before replication runs, us writes four versions of each of 40 items, the items
    // interleaved in a shuffled order, and deletes every seventh item after its last
    // version; eu holds a newer local version (100) of every fifth item. The whole backlog
    // reaches the link at once, so it is applied concurrently across items.
    let pk = |i: usize| format!("backlog-{i:02}");
    let mut next_version = vec![1u64; KEYS];
    let order = shuffled((0..KEYS).flat_map(|i| std::iter::repeat_n(i, VERSIONS as usize)).collect(), 0x5eed);
    for i in order {
        let version = next_version[i];
        next_version[i] += 1;
        put(&us, &table, item(&pk(i), version, &format!("us v{version}"))).await;
        if version == VERSIONS && i % 7 == 0 {
            us.dynamodb()
                .delete_item()
                .table_name(table.name_in(US))
                .set_key(Some(key(&pk(i))))
                .send()
                .await
                .unwrap();
        }
    }
    let newer_in_eu: Vec<usize> = (0..KEYS).filter(|i| i % 5 == 0).collect();
    for &i in &newer_in_eu {
        put(&eu, &table, item(&pk(i), 100, "eu v100")).await;
    }
    let expected = |i: usize| -> Option<&'static str> {
        if i % 5 == 0 {
            Some("eu v100")
        } else if i % 7 == 0 {
            None
        } else {
            Some("us v4")
        }
    };

    let replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .poll_interval(Duration::from_millis(100))
        .apply_concurrency(8)
        .start()
        .await
        .unwrap();
    for region in [&us, &eu] {
        for i in 0..KEYS {
            let want = expected(i);
            eventually(Duration::from_secs(30), &format!("{} in {}", pk(i), region.name()), || async {
                let held = get(region, &table, &pk(i)).await;
                (held.as_ref().map(|item| text(item, "value")) == want).then_some(())
            })
            .await;
        }
    }
    // Settled is settled: a late or reordered change would show up here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for region in [&us, &eu] {
        for i in 0..KEYS {
            let held = get(region, &table, &pk(i)).await;
            assert_eq!(
                held.as_ref().map(|item| text(item, "value")),
                expected(i),
                "{} in {}",
                pk(i),
                region.name()
            );
        }
    }
    let forth = link(&replicator, US, EU).stats;
    assert_eq!(forth.errors, 0, "{forth:?}");
    // Every us version of an item eu holds newer was refused by the version condition.
    assert!(forth.superseded >= newer_in_eu.len() as u64 * VERSIONS, "{forth:?}");
    println!("backlog of {KEYS} items x {VERSIONS} versions: {forth:?}");
}

// Answers lost after the write: the SDK sends the request again, and DynamoDB refuses it on
// the version the first attempt stored.

/// Two regions on the shared DynamoDB Local, us-east-1 reached through a fault proxy.
async fn pair_with_us_behind_proxy() -> (lift_harness::faults::AwsFaultProxy, RegionSet, ReplicatedTable) {
    use lift_harness::faults::AwsFaultProxy;
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let (us_table, eu_table) =
        (ddb.create_table(&orders()).await.unwrap(), ddb.create_table(&orders()).await.unwrap());
    let proxy = AwsFaultProxy::start(ddb.endpoint()).await.unwrap();
    let (regions, table) = regions_and_table(&proxy.endpoint(), ddb.endpoint(), us_table, eu_table).await;
    (proxy, regions, table)
}

/// A write whose answer us-east-1 lost (committed, then answered with a 500 the SDK
/// retries) is acknowledged by both regions and held by both at its version: never
/// reported as rejected (nothing written) while us holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_write_whose_answer_was_lost_is_held_by_both_regions_and_never_rejected() {
    use lift_harness::faults::DynamoDbFault::InternalServerError;
    let (proxy, regions, table) = pair_with_us_behind_proxy().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    // No replicator: whatever eu holds came through the synchronous write. Room for the
    // SDK's backoff between attempts (up to 1 s, then 2 s).
    let writer = ReplicatedWriter::sync(regions.clone(), table.clone())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let cases: [(&str, &str, Vec<Write>); 3] = [
        ("PutItem", "lost-put", vec![Write::put(account("lost-put")).when("attribute_not_exists(pk)")]),
        ("UpdateItem", "lost-put", vec![refund("lost-put", 5)]),
        (
            "TransactWriteItems",
            "lost-put",
            vec![refund("lost-put", 7), Write::put(account("refund-of-lost-put"))],
        ),
    ];
    for (operation, pk, writes) in cases {
        proxy.lose_answers(operation, InternalServerError, 1);
        let result = if writes.len() == 1 {
            writer.write(writes.into_iter().next().unwrap()).await
        } else {
            writer.transact(writes).await
        };
        assert_eq!(proxy.stats(operation).injected, 1, "{operation}: the answer was lost");
        let held = get(&us, &table, pk).await;
        let ack = match result {
            Ok(ack) => ack,
            Err(err) => {
                assert!(!err.is_rejected(), "{operation}: rejected while us holds it: {err:?}, us: {held:?}");
                panic!("{operation}: not acknowledged: {err:?}");
            }
        };
        assert_eq!(ack.acknowledged, [US, EU], "{operation}");
        for region in [&us, &eu] {
            let held = get(region, &table, pk).await.unwrap();
            assert_eq!(held.get(VERSION_ATTRIBUTE), Some(&ack.version), "{operation} in {}", region.name());
        }
    }
    for region in [&us, &eu] {
        let held = get(region, &table, "lost-put").await.unwrap();
        assert_eq!((text(&held, "refunded"), text(&held, "refundable")), ("12", "88"), "{}", region.name());
        assert!(get(region, &table, "refund-of-lost-put").await.is_some(), "{}", region.name());
    }
    // A transaction's answer lost twice: the retries meet the stored version each time.
    proxy.lose_answers("TransactWriteItems", InternalServerError, 2);
    let ack =
        writer.transact(vec![refund("lost-put", 1), Write::put(account("second-refund"))]).await.unwrap();
    assert_eq!(ack.acknowledged, [US, EU]);
    assert_eq!(get(&eu, &table, "lost-put").await.unwrap().get(VERSION_ATTRIBUTE), Some(&ack.version));
}

/// With `StartPosition::Latest`, a link whose first changes fail to apply (the target
/// refuses every write) resumes at the first change it did not apply, not at the stream's
/// end: once the target is back, it holds every change made since the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_link_that_fails_before_its_first_change_is_applied_skips_nothing() {
    use lift::disaster::StartPosition;
    use lift_harness::faults::{AwsFaultProxy, DynamoDbFault::InternalServerError};
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let (us_table, eu_table) =
        (ddb.create_table(&orders()).await.unwrap(), ddb.create_table(&orders()).await.unwrap());
    // eu-west-1, the target, behind a proxy that fails its writes.
    let proxy = AwsFaultProxy::start(ddb.endpoint()).await.unwrap();
    let (regions, table) = regions_and_table(ddb.endpoint(), &proxy.endpoint(), us_table, eu_table).await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .start_position(StartPosition::Latest)
        .poll_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    // The links run: the one from eu reads eu's stream (the one from us started with it).
    eventually(Duration::from_secs(15), "the links reading their streams", || async {
        (proxy.stats("DynamoDBStreams_20120810.GetRecords").forwarded > 1).then_some(())
    })
    .await;
    proxy.inject("PutItem", InternalServerError, 1.0);
    put(&us, &table, item("during-1", 1, "eu refuses writes")).await;
    eventually(Duration::from_secs(15), "the link to eu failing", || async {
        (link(&replicator, US, EU).stats.errors > 0).then_some(())
    })
    .await;
    put(&us, &table, item("during-2", 1, "eu still refuses writes")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.clear();
    put(&us, &table, item("after", 1, "eu is back")).await;
    for pk in ["after", "during-1", "during-2"] {
        eventually(Duration::from_secs(15), pk, || get(&eu, &table, pk)).await;
    }
}

/// The same when the source's stream fails before the link has read a change (GetRecords
/// answered with 500s): what was written meanwhile is read once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_link_whose_stream_reads_fail_before_its_first_change_skips_nothing() {
    use lift::disaster::StartPosition;
    use lift_harness::faults::{AwsFaultProxy, DynamoDbFault::InternalServerError};
    const GET_RECORDS: &str = "DynamoDBStreams_20120810.GetRecords";
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let (us_table, eu_table) =
        (ddb.create_table(&orders()).await.unwrap(), ddb.create_table(&orders()).await.unwrap());
    // us-east-1, the source, behind a proxy that fails its stream reads.
    let proxy = AwsFaultProxy::start(ddb.endpoint()).await.unwrap();
    let (regions, table) = regions_and_table(&proxy.endpoint(), ddb.endpoint(), us_table, eu_table).await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .start_position(StartPosition::Latest)
        .poll_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    // The link reads its (empty) stream, then the reads fail.
    eventually(Duration::from_secs(15), "the link reading us's stream", || async {
        (proxy.stats(GET_RECORDS).forwarded > 0).then_some(())
    })
    .await;
    proxy.inject(GET_RECORDS, InternalServerError, 1.0);
    put(&us, &table, item("unread", 1, "written while the stream fails")).await;
    eventually(Duration::from_secs(15), "the link from us failing", || async {
        (link(&replicator, US, EU).stats.errors > 0).then_some(())
    })
    .await;
    proxy.clear();
    eventually(Duration::from_secs(15), "the change written while the stream failed", || {
        get(&eu, &table, "unread")
    })
    .await;
}

/// Log lines of this test binary at warning level and above. Global, not per test:
/// `tracing` caches per call site whether anyone listens.
fn warnings() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
        logs
    })
}

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_owned).collect()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A raw `UpdateItem` on `pk` in `region`: no new version, the origin left as it was.
async fn raw_update(region: &Region, table: &ReplicatedTable, pk: &str, name: &str) {
    region
        .dynamodb()
        .update_item()
        .table_name(table.name_in(region.name()))
        .set_key(Some(key(pk)))
        .update_expression("SET #n = :n")
        .expression_attribute_names("#n", "name")
        .expression_attribute_values(":n", AttributeValue::S(name.to_owned()))
        .send()
        .await
        .unwrap();
}

/// A change written around the writer keeps the item's version, so nothing orders it
/// against the other region's copy: it is counted as unversioned and logged once per link
/// (table and key, never the values), neither dropped as superseded nor taken for an echo
/// (a raw update in eu on an item born in us keeps us as its origin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_a_new_version_is_counted_and_logged_never_dropped_in_silence() {
    let logs = warnings();
    let (regions, table) = shared_pair().await;
    let (us, eu) = (regions.by_name(US).unwrap().clone(), regions.by_name(EU).unwrap().clone());
    let replicator = Replicator::builder(regions.clone())
        .table(table.clone())
        .poll_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let writer = ReplicatedWriter::async_(regions.clone(), table.clone()).targets([US]).build().unwrap();
    let mut versions = Vec::new();
    for pk in ["raw-1", "raw-2"] {
        let ack = writer.put(account(pk)).await.unwrap();
        eventually(Duration::from_secs(15), pk, || async {
            get(&eu, &table, pk).await.filter(|i| i.get(VERSION_ATTRIBUTE) == Some(&ack.version))
        })
        .await;
        versions.push(ack.version);
    }
    // eu's stream carries the replicated puts back: echoes, skipped.
    eventually(Duration::from_secs(15), "the echoes", || async {
        (link(&replicator, EU, US).stats.skipped_replicated == 2).then_some(())
    })
    .await;

    raw_update(&us, &table, "raw-1", "Raw Write One").await;
    raw_update(&us, &table, "raw-2", "Raw Write Two").await;
    raw_update(&eu, &table, "raw-1", "Raw Write Three").await;
    eventually(Duration::from_secs(15), "the raw updates counted", || async {
        let (forth, back) = (link(&replicator, US, EU).stats, link(&replicator, EU, US).stats);
        (forth.unversioned == 2 && back.unversioned == 1).then_some(())
    })
    .await;
    let (forth, back) = (link(&replicator, US, EU).stats, link(&replicator, EU, US).stats);
    assert_eq!((forth.applied, forth.superseded, forth.skipped_replicated), (2, 0, 0), "{forth:?}");
    assert_eq!((back.applied, back.superseded, back.skipped_replicated), (0, 0, 2), "not an echo: {back:?}");
    assert_eq!(replicator.stats().unversioned, 3);
    // Not replicated: each region keeps its own copy under the one version.
    assert_eq!(text(&get(&eu, &table, "raw-2").await.unwrap(), "name"), "Jane Roe");
    assert_eq!(get(&us, &table, "raw-2").await.unwrap().get(VERSION_ATTRIBUTE), Some(&versions[1]));

    let warned: Vec<String> = logs.lines().into_iter().filter(|l| l.contains("raw-")).collect();
    assert_eq!(warned.len(), 2, "one warning per link: {warned:#?}");
    for line in &warned {
        assert!(line.contains("WARN") && line.contains("orders"), "the table: {line}");
        assert!(!line.contains("Raw Write") && !line.contains("Jane Roe"), "no values: {line}");
    }
    assert!(warned.iter().any(|l| l.contains("raw-1") && l.contains("eu-west-1")));
}
