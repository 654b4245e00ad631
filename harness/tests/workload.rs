//! The default check after settle, on DynamoDB Local: each acknowledged effect is read
//! back, per key the last effect wins, and what a region misses is named per operation.

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{AckedWrite, RegionConfig, RegionSet, ReplicatedTable, VERSION_ATTRIBUTE};
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::workload::check_effects;
use lift_harness::{Acked, Effect, Workload};
use support::{key, Notes};

fn acked(op: &'static str, effect: Effect) -> Acked {
    Acked { op, region: "local".into(), effect }
}

#[tokio::test]
async fn writes_updates_and_deletes_are_checked_per_operation() {
    let ddb = DynamoDbLocal::shared().await.unwrap();
    let def = Notes::default().table();
    let name = ddb.create_table(&def).await.unwrap();
    let client = ddb.client().await;
    let regions = RegionSet::builder()
        .region(RegionConfig::new("local").dynamodb_endpoint(ddb.endpoint()))
        .build()
        .unwrap();
    let table = ReplicatedTable::new(def).with_name_in("local", name.clone());
    let put = |id: &'static str, version: i64| {
        let mut item = key(id);
        item.insert(VERSION_ATTRIBUTE.into(), AttributeValue::N(version.to_string()));
        client.put_item().table_name(&name).set_item(Some(item)).send()
    };
    put("held", 1).await.unwrap();
    put("old", 1).await.unwrap();
    put("undeleted", 1).await.unwrap();
    put("recreated", 1).await.unwrap();

    let versioned =
        |id: &str, v: i64| AckedWrite::new(key(id)).with_version(AttributeValue::N(v.to_string()));
    let effects = vec![
        acked("put", Effect::written(key("held"))),
        acked("put", Effect::written(key("never-written"))),
        acked("put", Effect::written(key("old"))),
        acked("update", Effect::Updated(versioned("old", 2))),
        acked("put", Effect::written(key("gone"))),
        acked("delete", Effect::Deleted(key("gone"))),
        acked("delete", Effect::Deleted(key("undeleted"))),
        acked("delete", Effect::Deleted(key("recreated"))),
        acked("put", Effect::written(key("recreated"))),
    ];
    let region = regions.by_name("local").unwrap();
    let check = check_effects(region, &table, &effects).await.unwrap();
    let put_check = &check.by_op["put"];
    assert_eq!(put_check.missing, vec![key("never-written")], "{check:?}");
    assert!(put_check.stale.is_empty(), "held and the re-created item are there: {check:?}");
    assert_eq!(check.by_op["update"].stale, vec![key("old")], "version 1 is older than the acknowledged 2");
    assert_eq!(check.by_op["delete"].stale, vec![key("undeleted")], "a deleted item still held");
    assert_eq!(check.by_op["delete"].checked, 2, "gone and undeleted; recreated ends as a put");
    assert_eq!(check.lost(), 3);
    assert_eq!(check.examples(10).len(), 3);

    // Once the region catches up, nothing is lost.
    put("never-written", 1).await.unwrap();
    put("old", 2).await.unwrap();
    client.delete_item().table_name(&name).set_key(Some(key("undeleted"))).send().await.unwrap();
    let check = check_effects(region, &table, &effects).await.unwrap();
    assert_eq!(check.lost(), 0, "{check:?}");
}

/// Two items whose key values join alike with `/` (`a/b` + `c`, `a` + `b/c`) are checked
/// apart: a delete acknowledged for one does not stand in for a write acknowledged for the
/// other, so the write lost from the table is named.
#[tokio::test]
async fn keys_that_read_alike_are_checked_apart() {
    use lift::store::{KeyAttribute, TableDef};
    let ddb = DynamoDbLocal::shared().await.unwrap();
    let def =
        TableDef::new("composite", KeyAttribute::string("pk")).with_sort_key(KeyAttribute::string("sk"));
    let name = ddb.create_table(&def).await.unwrap();
    let regions = RegionSet::builder()
        .region(RegionConfig::new("local").dynamodb_endpoint(ddb.endpoint()))
        .build()
        .unwrap();
    let table = ReplicatedTable::new(def).with_name_in("local", name);
    let key = |pk: &str, sk: &str| -> lift::disaster::Item {
        [("pk".to_owned(), AttributeValue::S(pk.into())), ("sk".to_owned(), AttributeValue::S(sk.into()))]
            .into()
    };
    // The write of a/b + c was acknowledged and never reached the table; a + b/c was deleted.
    let effects = vec![
        acked("put", Effect::written(key("a/b", "c"))),
        acked("delete", Effect::Deleted(key("a", "b/c"))),
    ];
    let check = check_effects(regions.by_name("local").unwrap(), &table, &effects).await.unwrap();
    assert_eq!(check.by_op["put"].missing, vec![key("a/b", "c")], "{check:?}");
    assert_eq!((check.by_op["put"].checked, check.by_op["delete"].checked), (1, 1), "{check:?}");
    assert_eq!(check.lost(), 1);
}
