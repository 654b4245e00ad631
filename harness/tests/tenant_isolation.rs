//! `lift::tenant::TenantTable` on real DynamoDB Local: for generated tenants and ids, an
//! item written by tenant A is never returned to, changed by or deleted by tenant B through
//! any helper.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use lift::tenant::{ItemKey, TenantError, TenantId, TenantTable, TENANT_ATTRIBUTE};
use lift::{Context, Principal};
use lift_harness::dynamodb::DynamoDbLocal;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn tenant(t: &str) -> TenantId {
    let mut ctx = Context::new("req");
    ctx.set_principal(Principal::new("user", t));
    TenantId::from_context(&ctx).expect("generated tenants are valid")
}

fn item(data: &str) -> lift::tenant::Item {
    [("data".to_owned(), AttributeValue::S(data.to_owned()))].into()
}

fn data(item: &lift::tenant::Item) -> &str {
    item["data"].as_s().expect("data is a string")
}

async fn local() -> Arc<DynamoDbLocal> {
    DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}\n{err:?}"))
}

async fn table() -> (TenantTable, aws_sdk_dynamodb::Client) {
    let ddb = local().await;
    let name = ddb.create_table(&TenantTable::table_def("tenant-items")).await.expect("create the table");
    let client = ddb.client().await;
    (TenantTable::new(client.clone(), name).with_sort_key("sk"), client)
}

/// What one generated case does and checks.
async fn isolation_case(table: &TenantTable, a: &str, b: &str, id: &str, sort: &str) {
    let (ta, tb) = (tenant(a), tenant(b));
    let key = ItemKey::new(id).with_sort(sort);
    table.put(&ta, &key, item("a's secret")).await.unwrap();

    // B reaches nothing of A's through any helper.
    assert!(table.get(&tb, &key).await.unwrap().is_none(), "get leaked {a}'s item to {b}");
    assert!(table.query(&tb, id, 100).await.unwrap().is_empty(), "query leaked {a}'s item to {b}");
    assert!(matches!(table.update(&tb, &key, item("b was here")).await, Err(TenantError::NotFound)));
    assert!(table.delete(&tb, &key).await.unwrap().is_none(), "delete reached {a}'s item");
    // B's own item under the same ids is another item.
    table.put_new(&tb, &key, item("b's own")).await.unwrap();
    assert_eq!(data(&table.get(&tb, &key).await.unwrap().unwrap()), "b's own");

    // A's item is untouched, and A sees only it.
    let mine = table.get(&ta, &key).await.unwrap().expect("a still has its item");
    assert_eq!(data(&mine), "a's secret");
    assert!(
        !mine.contains_key(TENANT_ATTRIBUTE) && !mine.contains_key("pk"),
        "managed attributes are hidden"
    );
    let listed = table.query(&ta, id, 100).await.unwrap();
    assert_eq!(listed.iter().map(data).collect::<Vec<_>>(), ["a's secret"]);

    // A's own helpers still work on it.
    assert!(matches!(table.put_new(&ta, &key, item("again")).await, Err(TenantError::AlreadyExists)));
    let updated = table.update(&ta, &key, item("a's update")).await.unwrap();
    assert_eq!(data(&updated), "a's update");
    assert_eq!(data(&table.delete(&ta, &key).await.unwrap().unwrap()), "a's update");
    assert!(table.get(&ta, &key).await.unwrap().is_none());
    assert_eq!(data(&table.get(&tb, &key).await.unwrap().unwrap()), "b's own", "deleting a's item left b's");
}

#[test]
fn an_item_of_one_tenant_is_never_served_to_another() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (table, client) = rt.block_on(table());
    // A handful of cases: each is about a dozen DynamoDB calls.
    let mut runner = TestRunner::new(Config { cases: 8, failure_persistence: None, ..Config::default() });
    let tenants = "[a-z0-9][a-z0-9_.:-]{0,11}";
    let ids = "[A-Za-z0-9_.:é-]{1,16}";
    let sorts = "[A-Za-z0-9_.#-]{1,16}";
    runner
        .run(&(tenants, tenants, ids, sorts), |(a, b, id, sort)| {
            prop_assume!(a != b);
            rt.block_on(isolation_case(&table, &a, &b, &id, &sort));
            Ok(())
        })
        .unwrap();

    // Every item left is under its own tenant's prefix.
    let scan = rt.block_on(client.scan().table_name(table.table()).send()).unwrap();
    for item in scan.items() {
        let owner = item[TENANT_ATTRIBUTE].as_s().unwrap();
        let pk = item["pk"].as_s().unwrap();
        assert_eq!(lift::tenant::split_partition_key(pk).map(|(t, _)| t), Some(owner.as_str()), "{pk}");
    }
}

#[tokio::test]
async fn an_item_written_around_the_helpers_is_not_served_to_the_key_owner() {
    let (table, client) = table().await;
    // A raw write puts globex's item under acme's key: the helpers refuse to hand it out.
    client
        .put_item()
        .table_name(table.table())
        .item("pk", AttributeValue::S("TENANT#acme#p1".into()))
        .item("sk", AttributeValue::S("s".into()))
        .item(TENANT_ATTRIBUTE, AttributeValue::S("globex".into()))
        .item("data", AttributeValue::S("globex's".into()))
        .send()
        .await
        .unwrap();
    let acme = tenant("acme");
    let key = ItemKey::new("p1").with_sort("s");
    assert!(table.get(&acme, &key).await.unwrap().is_none());
    assert!(table.query(&acme, "p1", 10).await.unwrap().is_empty());
    assert!(matches!(table.update(&acme, &key, item("x")).await, Err(TenantError::NotFound)));
    assert!(matches!(table.put(&acme, &key, item("x")).await, Err(TenantError::NotFound)));
    assert!(table.delete(&acme, &key).await.unwrap().is_none());
}

#[tokio::test]
async fn hostile_ids_and_reserved_attributes_are_refused_before_dynamodb() {
    let (table, _client) = table().await;
    let acme = tenant("acme");
    for id in ["globex#p1", "#", "", "x#TENANT#globex#p1"] {
        let key = ItemKey::new(id).with_sort("s");
        assert!(matches!(table.get(&acme, &key).await, Err(TenantError::InvalidId { .. })), "{id:?}");
        assert!(matches!(table.put(&acme, &key, item("x")).await, Err(TenantError::InvalidId { .. })));
        assert!(matches!(table.query(&acme, id, 10).await, Err(TenantError::InvalidId { .. })));
    }
    let key = ItemKey::new("p1").with_sort("s");
    for reserved in ["pk", "sk", TENANT_ATTRIBUTE] {
        let sneaky: lift::tenant::Item = [(reserved.to_owned(), AttributeValue::S("globex".into()))].into();
        assert!(matches!(
            table.put(&acme, &key, sneaky.clone()).await,
            Err(TenantError::ReservedAttribute(_))
        ));
        assert!(matches!(table.update(&acme, &key, sneaky).await, Err(TenantError::ReservedAttribute(_))));
    }
}
