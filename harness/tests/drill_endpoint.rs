//! Drills against a DynamoDB Local that outlives them (`LIFT_DYNAMODB_ENDPOINT`'s) delete
//! their tables from it on every path: after a drill that ends in an error, and after a
//! start-up where one region failed once another had made its table.
//!
//! The only test of its binary: it sets environment variables, which no other test thread
//! may read meanwhile.

mod support;

use std::collections::BTreeSet;

use lift_harness::drill::{Drill, DynamoDbSpec, RegionSpec, Topology};
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::Workload;
use support::{short_failing_scenario, CheckFails, Notes};

/// The notes tables (`drill-notes-…`) on `client`'s endpoint, page by page.
async fn notes_tables(client: &aws_sdk_dynamodb::Client) -> BTreeSet<String> {
    let (mut tables, mut after) = (BTreeSet::new(), None);
    loop {
        let page = client.list_tables().set_exclusive_start_table_name(after).send().await.unwrap();
        tables.extend(page.table_names().iter().filter(|t| t.starts_with("drill-notes")).cloned());
        match page.last_evaluated_table_name() {
            Some(last) => after = Some(last.to_owned()),
            None => return tables,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_endpoint_that_outlives_them_failed_drills_delete_their_tables() {
    let shared = DynamoDbLocal::shared().await.unwrap();
    let client = shared.client().await;
    std::env::set_var("LIFT_DYNAMODB_ENDPOINT", shared.endpoint());
    let before = notes_tables(&client).await;

    // The drill ran its load (writes in both regions), then its read-back failed.
    let err = Drill::new(short_failing_scenario(), CheckFails::default()).unwrap().quiet(true).run().await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("the read-back broke"), "{err}");
    let left: Vec<_> = notes_tables(&client).await.difference(&before).cloned().collect();
    assert!(left.is_empty(), "the failed drill left its tables: {left:?}");

    // us-east-1 makes its table on the endpoint; eu-west-1's JVM of its own cannot start.
    std::env::set_var("LIFT_DYNAMODB_JAVA_OPTS", "-XX:+LiftNoSuchOption");
    let regions = [
        RegionSpec { name: "us-east-1".into(), ..Default::default() },
        RegionSpec { name: "eu-west-1".into(), dynamodb: DynamoDbSpec::Dedicated, ..Default::default() },
    ];
    let err = Topology::start(&regions, Notes::default().table()).await.unwrap_err();
    std::env::remove_var("LIFT_DYNAMODB_JAVA_OPTS");
    std::env::remove_var("LIFT_DYNAMODB_ENDPOINT");
    let chain: Vec<String> = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect();
    assert!(chain.iter().any(|e| e.contains("LiftNoSuchOption")), "{chain:?}");
    let left: Vec<_> = notes_tables(&client).await.difference(&before).cloned().collect();
    assert!(left.is_empty(), "the failed start-up left us-east-1's table: {left:?}");
}
