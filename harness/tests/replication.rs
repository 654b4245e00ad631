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
    AckedWrite, Item, LinkStats, Region, RegionConfig, RegionSet, ReplicatedTable, Replicator, RpoCheck,
    SyncWriter, ORIGIN_ATTRIBUTE, VERSION_ATTRIBUTE,
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
