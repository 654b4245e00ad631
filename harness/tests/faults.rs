//! Fault injection against real sockets, a real DynamoDB Local and a real SDK client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use lift::store::{KeyAttribute, TableDef};
use lift_harness::dynamodb::{client_for, DynamoDbLocal};
use lift_harness::faults::{AwsFaultProxy, Direction, DynamoDbFault, FaultProxy, ProcessFault, Toxic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that echoes every byte back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// An upstream that sends `size` bytes to each connection, then closes it.
async fn source_server(size: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let _ = stream.write_all(&vec![7u8; size]).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

async fn proxy_to(addr: SocketAddr) -> FaultProxy {
    FaultProxy::start(&addr.to_string()).await.unwrap()
}

/// Sends `msg` and reads the echo; returns the round trip time.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> Duration {
    let began = Instant::now();
    stream.write_all(msg).await.unwrap();
    let mut got = vec![0; msg.len()];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, msg);
    began.elapsed()
}

#[tokio::test]
async fn latency_adds_at_least_the_set_delay_with_jitter_on_top() {
    let proxy = proxy_to(echo_server().await).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let bare = round_trip(&mut stream, b"ping").await;
    assert!(bare < Duration::from_millis(150), "bare round trip {bare:?}");

    proxy.set(Toxic::latency(Duration::from_millis(200)).jitter(Duration::from_millis(50)));
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let rtt = round_trip(&mut stream, b"ping").await;
        assert!(rtt >= Duration::from_millis(200), "latency toxic not applied: {rtt:?}");
        slowest = slowest.max(rtt);
    }
    assert!(slowest < Duration::from_millis(200 + 50 + 300), "too slow: {slowest:?}");

    // Both directions: the delay applies twice.
    proxy.set(Toxic::latency(Duration::from_millis(150)).direction(Direction::Upstream));
    let rtt = round_trip(&mut stream, b"ping").await;
    assert!(rtt >= Duration::from_millis(300), "upstream + downstream latency: {rtt:?}");

    proxy.clear();
    assert!(round_trip(&mut stream, b"ping").await < Duration::from_millis(150));
}

#[tokio::test]
async fn blackhole_stalls_an_existing_connection_until_cleared() {
    let proxy = proxy_to(echo_server().await).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut stream, b"before").await;

    proxy.set(Toxic::blackhole());
    stream.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 4];
    let stalled = tokio::time::timeout(Duration::from_millis(700), stream.read_exact(&mut buf)).await;
    assert!(stalled.is_err(), "data passed a blackhole");

    // New connections are accepted and held too.
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    fresh.write_all(b"new!").await.unwrap();
    let mut fresh_buf = [0u8; 4];
    assert!(tokio::time::timeout(Duration::from_millis(300), fresh.read_exact(&mut fresh_buf))
        .await
        .is_err());

    // Healed: the held bytes arrive, like TCP retransmitting after a route comes back.
    proxy.clear();
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"held");
    tokio::time::timeout(Duration::from_secs(2), fresh.read_exact(&mut fresh_buf)).await.unwrap().unwrap();
    assert_eq!(&fresh_buf, b"new!");
}

#[tokio::test]
async fn reset_breaks_existing_and_new_connections() {
    let proxy = proxy_to(echo_server().await).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut stream, b"ok").await;

    proxy.set(Toxic::reset());
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await.expect("no reset");
    let err = read.expect_err("an idle pooled connection must be reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(2), fresh.read(&mut buf)).await.expect("no reset");
    assert!(matches!(read, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset), "{read:?}");
    assert!(proxy.stats().resets >= 2, "{:?}", proxy.stats());

    proxy.clear();
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut again, b"back").await;
}

#[tokio::test]
async fn bandwidth_limit_slows_a_megabyte_accordingly() {
    const MB: usize = 1024 * 1024;
    let proxy = proxy_to(source_server(MB).await).await;
    let fetch = || async {
        let began = Instant::now();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut got = Vec::with_capacity(MB);
        stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), MB);
        began.elapsed()
    };
    let bare = fetch().await;
    assert!(bare < Duration::from_millis(500), "unlimited transfer took {bare:?}");

    proxy.set(Toxic::bandwidth(512 * 1024));
    let limited = fetch().await;
    // 1 MiB at 512 KiB/s is two seconds.
    assert!(limited >= Duration::from_millis(1800), "limited transfer took only {limited:?}");
    assert!(limited < Duration::from_secs(4), "limited transfer took {limited:?}");
    assert_eq!(proxy.stats().bytes_downstream, 2 * MB as u64);
}

#[tokio::test]
async fn timeout_closes_connections_after_the_set_time() {
    let proxy = proxy_to(echo_server().await).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut stream, b"ok").await;
    let began = Instant::now();
    proxy.set(Toxic::timeout(Duration::from_millis(300)));
    stream.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await.unwrap().unwrap();
    let elapsed = began.elapsed();
    assert_eq!(n, 0, "data passed a timeout toxic");
    assert!(elapsed >= Duration::from_millis(280), "closed after {elapsed:?}");
    assert!(proxy.stats().timeouts >= 1);
}

#[tokio::test]
async fn probability_zero_never_applies_and_one_always_does() {
    let proxy = proxy_to(echo_server().await).await;
    proxy.set(Toxic::blackhole().probability(0.0));
    for _ in 0..10 {
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let rtt = tokio::time::timeout(Duration::from_secs(1), round_trip(&mut stream, b"p0")).await;
        assert!(rtt.is_ok(), "probability 0 applied");
    }
    proxy.set(Toxic::blackhole().probability(1.0));
    for _ in 0..10 {
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let rtt = tokio::time::timeout(Duration::from_millis(200), round_trip(&mut stream, b"p1")).await;
        assert!(rtt.is_err(), "probability 1 did not apply");
    }
    // In between, some connections pass and some do not.
    proxy.clear();
    proxy.set(Toxic::blackhole().probability(0.5));
    let mut held = 0;
    for _ in 0..40 {
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        if tokio::time::timeout(Duration::from_millis(150), round_trip(&mut stream, b"ph")).await.is_err() {
            held += 1;
        }
    }
    assert!((5..=35).contains(&held), "{held} of 40 held at probability 0.5");
}

fn table_def() -> TableDef {
    TableDef::new("faults", KeyAttribute::string("pk"))
}

/// A client on `endpoint` without SDK retries and with a short timeout.
fn bare_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let client = client_for(endpoint, "us-east-1");
    let config = client
        .config()
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().operation_timeout(Duration::from_secs(2)).build())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn put(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> Result<(), (Option<String>, u16)> {
    client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(pk.into()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            (e.code().map(str::to_owned), status)
        })
}

#[tokio::test]
async fn the_aws_proxy_answers_chosen_operations_with_dynamodb_errors_at_the_set_rate() {
    let ddb = DynamoDbLocal::shared().await.unwrap();
    let table = ddb.create_table(&table_def()).await.unwrap();
    let proxy = AwsFaultProxy::start_seeded(ddb.endpoint(), 7).await.unwrap();
    let client = bare_client(&proxy.endpoint());

    // Every PutItem is refused with DynamoDB's own error; reads pass.
    proxy.inject("PutItem", DynamoDbFault::ProvisionedThroughputExceeded, 1.0);
    let err = client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("a".into()))
        .send()
        .await
        .expect_err("put must be throttled");
    let service = err.as_service_error().expect("a service error, parsed by the SDK");
    assert!(service.is_provisioned_throughput_exceeded_exception(), "{service:?}");
    assert!(service.message().unwrap().contains("provisioned throughput"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    let request_id = err.raw_response().unwrap().headers().get("x-amzn-requestid").unwrap().to_owned();
    assert_eq!(request_id.len(), 52);
    let get = client.get_item().table_name(&table).key("pk", AttributeValue::S("a".into())).send().await;
    assert!(get.unwrap().item().is_none(), "the refused put must not have reached DynamoDB");
    assert_eq!(proxy.stats("PutItem").injected, 1);
    assert_eq!(proxy.stats("GetItem").forwarded, 1);

    for (fault, code, status) in [
        (DynamoDbFault::Throttling, "ThrottlingException", 400),
        (DynamoDbFault::InternalServerError, "InternalServerError", 500),
        (DynamoDbFault::ServiceUnavailable, "ServiceUnavailable", 503),
    ] {
        proxy.inject("DynamoDB_20120810.PutItem", fault, 1.0);
        assert_eq!(put(&client, &table, "x").await, Err((Some(code.to_owned()), status)));
    }

    // At a rate of 0.3, about 30% of 300 puts fail, and the counts agree with the client.
    proxy.inject("PutItem", DynamoDbFault::ProvisionedThroughputExceeded, 0.3);
    let before = proxy.stats("PutItem");
    let mut failed = 0u64;
    for i in 0..300 {
        match put(&client, &table, &format!("r{i}")).await {
            Ok(()) => {}
            Err((Some(code), 400)) if code == "ProvisionedThroughputExceededException" => failed += 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    let after = proxy.stats("PutItem");
    assert_eq!(after.injected - before.injected, failed);
    assert_eq!(after.forwarded - before.forwarded, 300 - failed);
    assert!((60..=120).contains(&failed), "{failed} of 300 injected at rate 0.3");

    // The SDK's own retries see the errors too: three attempts, three injections.
    proxy.inject("PutItem", DynamoDbFault::Throttling, 1.0);
    let retrying = client_for(&proxy.endpoint(), "us-east-1");
    let retrying = aws_sdk_dynamodb::Client::from_conf(
        retrying
            .config()
            .to_builder()
            .retry_config(
                RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(10)),
            )
            .build(),
    );
    let before = proxy.stats("PutItem").injected;
    assert!(put(&retrying, &table, "retried").await.is_err());
    assert_eq!(proxy.stats("PutItem").injected - before, 3);

    proxy.clear();
    put(&client, &table, "after").await.unwrap();
}

#[tokio::test]
async fn a_dedicated_dynamodb_local_can_be_paused_killed_and_restarted_with_its_data() {
    let ddb = DynamoDbLocal::dedicated().await.unwrap();
    let shared = DynamoDbLocal::shared().await.unwrap();
    assert_ne!(ddb.endpoint(), shared.endpoint(), "dedicated must not be the shared JVM");
    let port = ddb.port();
    let table = ddb.create_table(&table_def()).await.unwrap();
    let client = bare_client(&ddb.endpoint());
    put(&client, &table, "kept").await.unwrap();
    let get = |client: aws_sdk_dynamodb::Client| {
        let table = table.clone();
        async move {
            client.get_item().table_name(&table).key("pk", AttributeValue::S("kept".into())).send().await
        }
    };

    ProcessFault::Pause.inject(&ddb).unwrap();
    assert!(ddb.is_paused());
    let began = Instant::now();
    let err = get(client.clone()).await.expect_err("a paused node must not answer");
    assert!(matches!(err, aws_sdk_dynamodb::error::SdkError::TimeoutError(_)), "{err:?}");
    assert!(began.elapsed() >= Duration::from_millis(1900));
    ProcessFault::Pause.heal(&ddb).await.unwrap();
    assert!(get(client.clone()).await.unwrap().item().is_some());

    let pid = ddb.pid().unwrap();
    ProcessFault::Kill.inject(&ddb).unwrap();
    assert!(!ddb.is_running());
    let err = get(client.clone()).await.expect_err("a killed node must not answer");
    // Refused (or, for a pooled connection, closed under the request): never an answer.
    assert!(
        matches!(
            err,
            aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)
                | aws_sdk_dynamodb::error::SdkError::ResponseError(_)
        ),
        "{err:?}"
    );

    ProcessFault::Kill.heal(&ddb).await.unwrap();
    assert_eq!(ddb.port(), port, "restart keeps the port");
    assert_ne!(ddb.pid().unwrap(), pid);
    let item = get(bare_client(&ddb.endpoint())).await.unwrap();
    assert!(item.item().is_some(), "data on disk survives kill and restart");
}
