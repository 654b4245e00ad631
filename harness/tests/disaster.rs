//! Region outages against real DynamoDB Local: detection, failover of client-side routing
//! and of the Route 53 record (mock), and failback after recovery.
//!
//! The primary region runs on a DynamoDB Local of its own (killed and restarted like a
//! crashed node) or behind a fault proxy; the secondary on the shared instance. Times are
//! functional bounds from the issue (failover under 5 s with the default probe settings),
//! not performance assertions; the measured figures are printed (`--nocapture`).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lift::disaster::{
    ChangeAction, FailoverOrchestrator, FailoverPolicy, RegionConfig, RegionRouter, RegionSet, RegionStatus,
    ResourceRecordSet, Route53Client, Route53Error, Route53Failover, SwitchKind,
};
use lift::store::{KeyAttribute, TableDef};
use lift_harness::aws::{Fault, Route53Mock};
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::faults::{FaultProxy, Toxic};
use tokio::sync::watch;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PRIMARY: &str = "us-east-1";
const SECONDARY: &str = "eu-west-1";
const RECORD: &str = "api.example.com.";
const PRIMARY_TARGET: &str = "api.us-east-1.example.com";
const SECONDARY_TARGET: &str = "api.eu-west-1.example.com";
/// The bound for failover with the default probe settings.
const FAILOVER_BOUND: Duration = Duration::from_secs(5);

/// Waits until the watched value satisfies `pred`, or fails the test after `within`.
async fn until<T: Clone>(
    rx: &mut watch::Receiver<T>,
    within: Duration,
    what: &str,
    pred: impl FnMut(&T) -> bool,
) -> T {
    match tokio::time::timeout(within, rx.wait_for(pred)).await {
        Ok(Ok(value)) => value.clone(),
        Ok(Err(_)) => panic!("the sender of {what} is gone"),
        Err(_) => panic!("no {what} within {within:?}"),
    }
}

/// A readiness endpoint answering `status`.
async fn readiness(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health/ready"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

fn ready_url(server: &MockServer) -> String {
    format!("{}/health/ready", server.uri())
}

/// The Route 53 mock with a zone, and the failover record pointing into it.
async fn dns() -> (Route53Mock, String, Route53Failover) {
    let mock = Route53Mock::start().await;
    // Every call must be SigV4-signed for route53, as Route 53 requires.
    mock.require_signature(true);
    let zone = mock.create_hosted_zone("example.com.");
    let record = Route53Failover::new(&zone, RECORD)
        .endpoint(mock.uri())
        .target(PRIMARY, PRIMARY_TARGET)
        .target(SECONDARY, SECONDARY_TARGET);
    (mock, zone, record)
}

/// A write through the router: it goes to whichever region is active.
async fn put(router: &RegionRouter, table: &str, pk: &str) -> Result<(), String> {
    router
        .dynamodb()
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(pk.to_owned()))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| format!("{err:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_moves_traffic_and_dns_within_five_seconds_and_traffic_returns_after_recovery() {
    let primary = DynamoDbLocal::dedicated().await.expect("a dedicated dynamodb local for the primary");
    let secondary = DynamoDbLocal::shared().await.expect("the shared dynamodb local for the secondary");
    let def = TableDef::new("disaster", KeyAttribute::string("pk"));
    let table = primary.create_table(&def).await.unwrap();
    def.create_table(&secondary.client().await, &table).send().await.unwrap();
    let (ready_primary, ready_secondary) = (readiness(200).await, readiness(200).await);
    let (route53, zone, record) = dns().await;

    let regions = RegionSet::builder()
        .region(
            RegionConfig::new(PRIMARY)
                .dynamodb_endpoint(primary.endpoint())
                .health_url(ready_url(&ready_primary)),
        )
        .region(
            RegionConfig::new(SECONDARY)
                .dynamodb_endpoint(secondary.endpoint())
                .health_url(ready_url(&ready_secondary)),
        )
        .build()
        .unwrap();
    let failback_after = Duration::from_secs(3);
    let orchestrator = FailoverOrchestrator::builder(regions)
        .policy(FailoverPolicy::default().failback_after(failback_after).min_dwell(Duration::from_secs(2)))
        .route53(record)
        .start()
        .unwrap();
    let mut health = orchestrator.health();
    until(&mut health, Duration::from_secs(10), "healthy regions", |h| {
        h.regions.iter().all(RegionStatus::is_healthy)
    })
    .await;
    let router = orchestrator.router().clone();
    put(&router, &table, "before").await.expect("the primary serves");

    // The primary's DynamoDB crashes.
    let mut moves = router.subscribe();
    let outage = Instant::now();
    primary.kill().unwrap();
    until(&mut moves, Duration::from_secs(15), "failover", |active| *active == 1).await;
    let moved_after = outage.elapsed();
    assert_eq!(router.active().name(), SECONDARY);
    assert!(moved_after < FAILOVER_BOUND, "traffic moved {moved_after:?} after the crash");
    put(&router, &table, "during").await.expect("the router sends calls to the live secondary");

    let mut records = orchestrator.subscribe();
    let failover =
        until(&mut records, Duration::from_secs(1), "failover record", |r| !r.is_empty()).await[0].clone();
    assert_eq!(failover.kind, SwitchKind::FailOver);
    assert_eq!((failover.from.as_str(), failover.to.as_str()), (PRIMARY, SECONDARY));
    // A round in flight at the crash fails too: the streak may start up to one probe
    // timeout before it, never earlier.
    assert!(
        failover.fault_detected_at + Duration::from_millis(500) >= outage,
        "the streak starts at the crash"
    );
    assert!(
        failover.time_to_detect >= Duration::from_millis(1900),
        "three failing rounds a second apart, not one: {:?}",
        failover.time_to_detect
    );
    assert!(failover.traffic_moved_at >= failover.declared_down_at);

    // Route 53 was told.
    let after_dns = until(&mut records, Duration::from_secs(10), "route 53 answer", |r| {
        r.first().is_some_and(|r| r.dns.is_some())
    })
    .await;
    let dns_update = after_dns[0].dns.clone().unwrap();
    let change = dns_update.result.expect("route 53 accepted the upsert");
    assert_eq!(change.status, "PENDING");
    let calls = route53.calls_to("ChangeResourceRecordSets");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, http::Method::POST);
    // The SDK's REST-XML request: the zone in the path, signed for route53 in us-east-1.
    assert_eq!(calls[0].path, format!("/2013-04-01/hostedzone/{zone}/rrset"));
    let scope = calls[0].sigv4().expect("a SigV4-signed request");
    assert_eq!((scope.service.as_str(), scope.region.as_str()), ("route53", "us-east-1"));
    assert!(std::str::from_utf8(&calls[0].raw_body).unwrap().contains("<Action>UPSERT</Action>"));
    let changes = route53.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, "UPSERT");
    assert_eq!(changes[0].change_id, change.id);
    assert_eq!(changes[0].record_set.values, [SECONDARY_TARGET]);
    assert_eq!(route53.record(&zone, RECORD, "CNAME").unwrap().values, [SECONDARY_TARGET]);

    // The primary comes back: traffic returns once it has passed every probe for 3 s.
    primary.restart().await.unwrap();
    let restarted = Instant::now();
    until(&mut moves, Duration::from_secs(20), "failback", |active| *active == 0).await;
    let back_after = restarted.elapsed();
    let failback =
        until(&mut records, Duration::from_secs(1), "failback record", |r| r.len() == 2).await[1].clone();
    assert_eq!(failback.kind, SwitchKind::FailBack);
    assert_eq!((failback.from.as_str(), failback.to.as_str()), (SECONDARY, PRIMARY));
    assert!(
        failback.time_to_failover >= failback_after,
        "failback {:?} after the first passing round",
        failback.time_to_failover
    );
    let after_dns = until(&mut records, Duration::from_secs(10), "route 53 answer for the failback", |r| {
        r.get(1).is_some_and(|r| r.dns.is_some())
    })
    .await;
    assert!(after_dns[1].dns.as_ref().unwrap().result.is_ok());
    assert_eq!(route53.record(&zone, RECORD, "CNAME").unwrap().values, [PRIMARY_TARGET]);
    put(&router, &table, "after").await.expect("the primary serves again");

    println!(
        "crash -> traffic moved: {moved_after:?} (time to detect {:?}, first failing probe -> moved {:?}, \
         route 53 answered {:?} after the move); restart -> failback: {back_after:?}",
        failover.time_to_detect,
        failover.time_to_failover,
        dns_update.at - failover.traffic_moved_at,
    );
    assert_eq!(orchestrator.records().len(), 2, "no flapping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_primary_times_out_into_failover_and_a_failed_dns_update_is_recorded() {
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let proxy = FaultProxy::start(ddb.endpoint()).await.unwrap();
    let (route53, zone, record) = dns().await;
    route53.fault("ChangeResourceRecordSets", Fault::throttling());

    let regions = RegionSet::builder()
        .region(RegionConfig::new(PRIMARY).dynamodb_endpoint(proxy.endpoint()))
        .region(RegionConfig::new(SECONDARY).dynamodb_endpoint(ddb.endpoint()))
        .build()
        .unwrap();
    let orchestrator = FailoverOrchestrator::builder(regions).route53(record).start().unwrap();
    let mut health = orchestrator.health();
    until(&mut health, Duration::from_secs(10), "healthy regions", |h| {
        h.regions.iter().all(RegionStatus::is_healthy)
    })
    .await;

    // Packets vanish: every probe hangs until its 500 ms timeout.
    let mut moves = orchestrator.router().subscribe();
    let outage = Instant::now();
    proxy.set(Toxic::blackhole());
    until(&mut moves, Duration::from_secs(15), "failover", |active| *active == 1).await;
    let moved_after = outage.elapsed();
    assert!(moved_after < FAILOVER_BOUND, "traffic moved {moved_after:?} after the blackhole");
    let status = orchestrator.health().borrow().get(PRIMARY).cloned().unwrap();
    assert_eq!(status.last_error.as_deref(), Some("probe timed out after 500ms"));

    let mut records = orchestrator.subscribe();
    let records = until(&mut records, Duration::from_secs(10), "route 53 answer", |r| {
        r.first().is_some_and(|r| r.dns.is_some())
    })
    .await;
    let failover = &records[0];
    match &failover.dns.as_ref().unwrap().result {
        Err(Route53Error::Api { status: 400, code, .. }) => assert_eq!(code, "ThrottlingException"),
        other => panic!("expected the throttling error, got {other:?}"),
    }
    assert!(route53.record(&zone, RECORD, "CNAME").is_none(), "a throttled change changes nothing");
    assert_eq!(orchestrator.router().active().name(), SECONDARY, "client-side routing does not wait for DNS");
    println!(
        "blackhole -> traffic moved: {moved_after:?} (time to detect {:?}, first failing probe -> moved {:?})",
        failover.time_to_detect, failover.time_to_failover
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_whose_service_is_not_ready_is_failed_over() {
    let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
    let (ready_primary, ready_secondary) = (readiness(200).await, readiness(200).await);
    let regions = RegionSet::builder()
        .region(
            RegionConfig::new(PRIMARY)
                .dynamodb_endpoint(ddb.endpoint())
                .health_url(ready_url(&ready_primary)),
        )
        .region(
            RegionConfig::new(SECONDARY)
                .dynamodb_endpoint(ddb.endpoint())
                .health_url(ready_url(&ready_secondary)),
        )
        .build()
        .unwrap();
    let orchestrator = FailoverOrchestrator::builder(regions).start().unwrap();
    let mut health = orchestrator.health();
    until(&mut health, Duration::from_secs(10), "healthy regions", |h| {
        h.regions.iter().all(RegionStatus::is_healthy)
    })
    .await;

    // DynamoDB is fine; the service in the primary region stops being ready.
    ready_primary.reset().await;
    Mock::given(method("GET"))
        .and(path("/health/ready"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&ready_primary)
        .await;
    let mut moves = orchestrator.router().subscribe();
    let outage = Instant::now();
    until(&mut moves, Duration::from_secs(15), "failover", |active| *active == 1).await;
    assert!(outage.elapsed() < FAILOVER_BOUND, "took {:?}", outage.elapsed());
    let status = orchestrator.health().borrow().get(PRIMARY).cloned().unwrap();
    let error = status.last_error.unwrap_or_default();
    assert!(error.starts_with("unhealthy: http: ") && error.contains("503"), "{error}");
    assert_eq!(orchestrator.records()[0].dns, None, "no route 53 record configured");
}

#[tokio::test]
async fn the_route53_client_and_mock_speak_rest_xml() {
    let (route53, zone, _) = dns().await;
    let client = Route53Client::new(&route53.uri()).unwrap();
    let record = ResourceRecordSet {
        name: "db.example.com.".into(),
        record_type: "CNAME".into(),
        ttl: Some(30),
        values: vec!["db.us-east-1.example.com".into()],
        set_identifier: None,
    };

    let created = client
        .change_resource_record_sets(&zone, &[(ChangeAction::Create, record.clone())], Some("create"))
        .await
        .unwrap();
    assert_eq!(created.status, "PENDING");
    route53.set_pending_polls(1);
    assert_eq!(client.get_change(&created.id).await.unwrap().status, "PENDING");
    assert_eq!(client.get_change(&created.id).await.unwrap().status, "INSYNC");

    // Route 53's own rules: no second CREATE, no DELETE of what is not there, atomic batches.
    let again =
        client.change_resource_record_sets(&zone, &[(ChangeAction::Create, record.clone())], None).await;
    assert!(
        matches!(again, Err(Route53Error::Api { status: 400, ref code, .. }) if code == "InvalidChangeBatch"),
        "{again:?}"
    );
    let other = ResourceRecordSet { name: "other.example.com.".into(), ..record.clone() };
    let batch = [(ChangeAction::Upsert, record.clone()), (ChangeAction::Delete, other)];
    assert!(client.change_resource_record_sets(&zone, &batch, None).await.is_err());
    assert_eq!(route53.changes().len(), 1, "the failed batch applied nothing");

    let moved = ResourceRecordSet { values: vec!["db.eu-west-1.example.com".into()], ..record.clone() };
    client.upsert(&zone, &moved, None).await.unwrap();
    let listed = client.list_resource_record_sets(&zone).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.record_type.as_str()).collect::<Vec<_>>(), ["CNAME", "NS", "SOA"]);
    assert_eq!(listed[0], moved);

    let missing = client.upsert("ZNOSUCHZONE", &moved, None).await.unwrap_err();
    assert!(
        matches!(missing, Route53Error::Api { status: 404, ref code, .. } if code == "NoSuchHostedZone"),
        "{missing}"
    );
    route53.fault("GetChange", Fault::drop_connection().times(1));
    assert!(matches!(client.get_change(&created.id).await, Err(Route53Error::Http(_))));
    assert_eq!(route53.calls_to("ListResourceRecordSets").len(), 1);
    // No SDK retry hides an error: the dropped call was made once.
    assert_eq!(route53.calls_to("GetChange").len(), 3);

    // Every call was signed for route53; an unsigned one is refused as Route 53 does.
    for call in route53.calls() {
        let scope = call.sigv4().unwrap_or_else(|| panic!("{} unsigned", call.operation));
        assert_eq!(scope.service, "route53", "{}", call.operation);
    }
    let unsigned = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>()
        .get(format!("{}/2013-04-01/hostedzone/{zone}/rrset", route53.uri()).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
}

#[tokio::test]
async fn a_route53_change_that_outlasts_the_timeout_is_reported_as_timed_out() {
    let (route53, zone, _) = dns().await;
    let client = Route53Client::new(&route53.uri()).unwrap().timeout(Duration::from_millis(200));
    route53.fault("ChangeResourceRecordSets", Fault::delay(Duration::from_secs(3)).times(1));
    let record = ResourceRecordSet {
        name: "db.example.com.".into(),
        record_type: "CNAME".into(),
        ttl: Some(30),
        values: vec!["db.us-east-1.example.com".into()],
        set_identifier: None,
    };
    let err = client.upsert(&zone, &record, None).await.unwrap_err();
    assert_eq!(err, Route53Error::TimedOut(Duration::from_millis(200)));
}

#[tokio::test]
async fn the_route53_client_finds_its_endpoint_in_aws_endpoint_url_route_53() {
    let (route53, zone, _) = dns().await;
    let uri = route53.uri();
    let client =
        Route53Client::from_env_vars(|name| (name == "AWS_ENDPOINT_URL_ROUTE_53").then(|| uri.clone()))
            .expect("a client from the environment");
    let listed = client.list_resource_record_sets(&zone).await.expect("the mock answers a signed call");
    assert_eq!(listed.iter().map(|r| r.record_type.as_str()).collect::<Vec<_>>(), ["NS", "SOA"]);
    let call = &route53.calls_to("ListResourceRecordSets")[0];
    let scope = call.sigv4().expect("signed");
    assert_eq!((scope.service.as_str(), scope.region.as_str()), ("route53", "us-east-1"));
}

#[tokio::test]
async fn the_route53_mock_answers_get_health_check_status_as_the_sdk_reads_it() {
    let (route53, _, _) = dns().await;
    let client = Route53Client::new(&route53.uri()).unwrap();
    route53.set_health_check("hc-primary", false);
    let out = client.sdk().get_health_check_status().health_check_id("hc-primary").send().await.unwrap();
    let observations = out.health_check_observations();
    assert_eq!(observations.len(), 3, "one observation per checker region");
    for observation in observations {
        let report = observation.status_report().expect("a status report");
        assert!(report.status().unwrap_or_default().starts_with("Failure"), "{report:?}");
        assert!(report.checked_time().is_some());
    }
    route53.set_health_check("hc-primary", true);
    let out = client.sdk().get_health_check_status().health_check_id("hc-primary").send().await.unwrap();
    let status = out.health_check_observations()[0].status_report().and_then(|r| r.status());
    assert!(status.unwrap_or_default().starts_with("Success"), "{status:?}");
    let missing = client.sdk().get_health_check_status().health_check_id("nope").send().await.unwrap_err();
    assert!(missing.into_service_error().is_no_such_health_check());
    let call = &route53.calls_to(lift_harness::aws::GET_HEALTH_CHECK_STATUS)[0];
    assert_eq!(call.path, "/2013-04-01/healthcheck/hc-primary/status");
    assert_eq!(call.sigv4().expect("signed").service, "route53");
}
