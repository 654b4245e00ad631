//! lift's `DynamoDbCheck` against a real DynamoDB Local: a reachable table, a missing
//! table, and an endpoint that never answers.
//!
//! Needs lift's `health` feature (with `dynamodb`, which the harness enables).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lift::middleware::health::{Check, CheckStatus, DynamoDbCheck, HealthCheck, HealthChecks, Status};
use lift::store::{KeyAttribute, TableDef};
use lift_harness::dynamodb::{client_for, default_region, DynamoDbLocal};

async fn local() -> Arc<DynamoDbLocal> {
    DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}\n{err:?}"))
}

#[tokio::test]
async fn a_reachable_table_is_healthy() {
    let local = local().await;
    let table = local.create_table(&TableDef::new("health", KeyAttribute::string("pk"))).await.unwrap();
    let check = DynamoDbCheck::new(local.client().await, &table);
    assert_eq!(check.check().await, Ok(()));

    let checks = HealthChecks::builder().check(Check::critical("dynamodb", check)).build();
    let report = checks.report().await;
    assert_eq!(report.status, Status::Ok);
    assert_eq!(report.checks[0].status, CheckStatus::Ok);
    assert_eq!(checks.readiness().await.status, Status::Ok);
}

#[tokio::test]
async fn a_missing_table_fails_the_critical_check() {
    let local = local().await;
    let table = format!("missing-{}", uuid::Uuid::new_v4());
    let check = DynamoDbCheck::new(local.client().await, &table);
    let err = check.check().await.unwrap_err();
    assert!(err.contains("ResourceNotFoundException") && err.contains(&table), "{err}");
    assert!(!err.contains(local.endpoint()), "the endpoint stays out of the report: {err}");

    let checks = HealthChecks::builder().check(Check::critical("dynamodb", check)).build();
    let report = checks.report().await;
    assert_eq!(report.status, Status::Unhealthy);
    assert_eq!(report.status.http_status(), 503);
    assert_eq!(report.checks[0].status, CheckStatus::Failed);
}

#[tokio::test]
async fn an_endpoint_that_never_answers_fails_within_the_timeout() {
    // Accepts connections (in the backlog) and never answers: a blackholed dependency.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let client = client_for(&endpoint, &default_region());
    let check = DynamoDbCheck::new(client, "payments").timeout(Duration::from_millis(300));

    let start = Instant::now();
    let err = check.check().await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2), "bounded by the timeout: {:?}", start.elapsed());
    assert!(err.contains("timed out") || err.contains("dispatch failure"), "{err}");
    assert!(!err.contains("127.0.0.1"), "the endpoint stays out of the report: {err}");

    // As a non-critical check it degrades the service without making it unready.
    let checks = HealthChecks::builder().check(Check::non_critical("dynamodb", check)).build();
    let report = checks.report().await;
    assert_eq!(report.status, Status::Degraded);
    assert_eq!(checks.readiness().await.status, Status::Ok);
    drop(silent);
}
