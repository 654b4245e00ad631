//! `lift::middleware::rate_limit` against a real DynamoDB Local: exact admission under
//! concurrency for every algorithm, independent keys, IPv6 clients counted by prefix, HEAD
//! counted as GET, limiters of one name kept apart, headers, failing open and closed, and
//! the local pre-filter answering without a round trip.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use lift::middleware::rate_limit::{Algorithm, FailMode, RateLimitKey, RateLimitLayer};
use lift::{Body, Context, Request, Response};
use lift_harness::dynamodb::DynamoDbLocal;
use tower::{Layer, Service, ServiceExt};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// DynamoDB Local on a loaded CI machine is far slower than DynamoDB: a test must not
/// see the fail mode because of it.
const STORE_TIMEOUT: Duration = Duration::from_secs(20);

/// Counts the operations a DynamoDB client starts (retries of one operation count once).
#[derive(Debug, Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "count-calls"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A fresh rate-limit table, and a client on it that counts its calls.
async fn table() -> (aws_sdk_dynamodb::Client, String, Calls) {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let table = local.create_table(&lift::store::tables::rate_limits()).await.expect("create the table");
    let calls = Calls::default();
    let base = local.client().await;
    let client =
        aws_sdk_dynamodb::Client::from_conf(base.config().to_builder().interceptor(calls.clone()).build());
    (client, table, calls)
}

/// A client for a port nothing listens on.
async fn dead_client() -> (aws_sdk_dynamodb::Client, Calls) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = lift_harness::dynamodb::client_for(&format!("http://127.0.0.1:{port}"), "us-east-1");
    let calls = Calls::default();
    (
        aws_sdk_dynamodb::Client::from_conf(base.config().to_builder().interceptor(calls.clone()).build()),
        calls,
    )
}

fn request(tenant: &str) -> Request {
    let mut req = http::Request::builder().method("POST").uri("/payments").body(Body::empty()).unwrap();
    let mut ctx = Context::new("req-1");
    ctx.set_tenant(tenant);
    req.extensions_mut().insert(ctx);
    req
}

/// The limiter over a handler that counts the requests it serves.
fn limited(
    layer: &RateLimitLayer,
) -> (
    impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static,
    Arc<AtomicUsize>,
) {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let handler = tower::service_fn(move |_req: Request| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok::<_, Infallible>(Response::new(Body::from("ok"))))
    });
    (layer.layer(handler), served)
}

fn builder(
    client: aws_sdk_dynamodb::Client,
    table: &str,
    algorithm: Algorithm,
    limit: u32,
) -> RateLimitLayer {
    RateLimitLayer::builder()
        .client(client)
        .table(table)
        .key(RateLimitKey::Tenant)
        .limit(limit)
        .window(DAY)
        .algorithm(algorithm)
        .store_timeout(STORE_TIMEOUT)
        .build()
        .unwrap()
}

/// 8 tasks × 25 requests of one tenant; returns (admitted, refused) and checks every answer.
async fn storm(layer: &RateLimitLayer, tenant: &str) -> (usize, usize) {
    let (svc, served) = limited(layer);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            let tenant = tenant.to_owned();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    let res = svc.clone().oneshot(request(&tenant)).await.unwrap();
                    if res.status() == StatusCode::TOO_MANY_REQUESTS {
                        assert!(res.headers().contains_key("retry-after"), "{res:?}");
                        assert_eq!(res.headers()["ratelimit-remaining"], "0");
                    }
                    statuses.push(res.status());
                }
                statuses
            })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for task in tasks {
        for status in task.await.unwrap() {
            match status {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => refused += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!(served.load(Ordering::SeqCst), admitted, "only admitted requests reach the handler");
    (admitted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fixed_window_admits_exactly_the_limit_under_concurrency() {
    let (client, table, _) = table().await;
    let layer = builder(client, &table, Algorithm::FixedWindow, 50);
    assert_eq!(storm(&layer, "acme").await, (50, 150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_bucket_admits_exactly_its_capacity_under_concurrency() {
    // One token per 1728 s: no refill during the test.
    let (client, table, _) = table().await;
    let layer = builder(client, &table, Algorithm::TokenBucket, 50);
    assert_eq!(storm(&layer, "acme").await, (50, 150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_bucket_without_prefilter_is_still_exact() {
    // Every request reaches DynamoDB: the conditional updates alone keep the count.
    let (client, table, calls) = table().await;
    let layer = RateLimitLayer::builder()
        .client(client)
        .table(&table)
        .key(RateLimitKey::Tenant)
        .limit(50)
        .window(DAY)
        .algorithm(Algorithm::TokenBucket)
        .without_prefilter()
        .store_timeout(STORE_TIMEOUT)
        .build()
        .unwrap();
    assert_eq!(storm(&layer, "acme").await, (50, 150));
    // One call per request, plus a few restarts of the empty bucket by the first
    // concurrent requests: a refusal costs one call, not a read and a retry loop.
    assert!((200..240).contains(&calls.get()), "{} calls", calls.get());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sliding_window_counts_the_weighted_previous_window() {
    let (client, table, _) = table().await;
    // A fresh key has no previous window: exactly the limit.
    let layer = builder(client.clone(), &table, Algorithm::SlidingWindow, 50);
    assert_eq!(storm(&layer, "fresh").await, (50, 150));

    // 40 requests in the previous window weigh 40 × (the share of it still in the
    // sliding window): the current window admits the rest of the limit, never more.
    let window_ms = DAY.as_millis() as u64;
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let before = now_ms();
    let start = before - before % window_ms;
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(format!("lift#t:busy#sw:50/{window_ms}#{}", start - window_ms)))
        .item("count", AttributeValue::N("40".into()))
        .send()
        .await
        .unwrap();
    let bound = |at: u64| 50 - (40 * (window_ms - (at - start))).div_ceil(window_ms) as usize;
    let low = bound(before);
    let (admitted, refused) = storm(&layer, "busy").await;
    let high = bound(now_ms());
    assert!((low..=high).contains(&admitted), "admitted {admitted}, bound {low}..={high}");
    assert!(admitted < 50, "the previous window must count");
    assert_eq!(admitted + refused, 200);
}

#[tokio::test]
async fn separate_keys_are_independent() {
    let (client, table, _) = table().await;
    let layer = builder(client, &table, Algorithm::FixedWindow, 3);
    let (svc, _) = limited(&layer);
    for tenant in ["a", "b"] {
        let statuses: Vec<u16> = futures_statuses(&svc, tenant, 5).await;
        assert_eq!(statuses, [200, 200, 200, 429, 429], "tenant {tenant}");
    }
}

/// A per-user limit through the layer and DynamoDB: a partner issuer's `alice` draining her
/// bucket leaves our `alice` hers, and text moved between issuer and subject makes another
/// user.
#[tokio::test]
async fn a_user_is_limited_per_issuer_and_subject() {
    let (client, table, _) = table().await;
    let layer = RateLimitLayer::builder()
        .client(client)
        .table(&table)
        .key(RateLimitKey::User)
        .limit(2)
        .window(DAY)
        .store_timeout(STORE_TIMEOUT)
        .build()
        .unwrap();
    let (svc, _) = limited(&layer);
    let as_user = |issuer: &str, subject: &str| {
        let mut req = http::Request::builder().method("POST").uri("/payments").body(Body::empty()).unwrap();
        let mut ctx = Context::new("req-1");
        ctx.set_tenant("acme");
        ctx.set_principal(lift::Principal::new(subject, "acme").with_issuer(issuer));
        req.extensions_mut().insert(ctx);
        req
    };
    let statuses = |issuer: &'static str, subject: &'static str, n: usize| {
        let svc = svc.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(svc.clone().oneshot(as_user(issuer, subject)).await.unwrap().status().as_u16());
            }
            out
        }
    };
    let (ours, partner) = ("https://id.example.com", "https://id.partner.example");
    assert_eq!(statuses(partner, "alice", 3).await, [200, 200, 429], "the partner's alice, drained");
    assert_eq!(statuses(ours, "alice", 3).await, [200, 200, 429], "our alice has her own bucket");
    // Joined naively with `|`, (`…partner.example`, `x|alice`) and (`…partner.example|x`,
    // `alice`) would share a bucket.
    assert_eq!(statuses(partner, "x|alice", 3).await, [200, 200, 429]);
    assert_eq!(
        statuses("https://id.partner.example|x", "alice", 1).await,
        [200],
        "a look-alike is another user"
    );
}

/// A route-keyed limiter on the whole App runs before routing, so it sees no matched
/// route: `/payments/1` and `/payments/2` must share a bucket, not get one each (a client
/// walking ids would never be limited, and would fill the table with keys).
#[tokio::test]
async fn an_app_wide_route_key_gives_no_bucket_per_path() {
    async fn payment(_req: Request) -> Response {
        Response::new(Body::from("ok"))
    }
    let (client, table, _) = table().await;
    let layer = RateLimitLayer::builder()
        .client(client)
        .table(&table)
        .key(RateLimitKey::Route)
        .limit(1)
        .window(DAY)
        .store_timeout(STORE_TIMEOUT)
        .build()
        .unwrap();
    let app = lift::App::new().get("/payments/:id", payment).layer(layer).into_service();
    let get = |path: &str| http::Request::get(path).body(Body::empty()).unwrap();
    assert_eq!(app.clone().oneshot(get("/payments/1")).await.unwrap().status(), StatusCode::OK);
    let second = app.clone().oneshot(get("/payments/2")).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS, "another id is the same route");
}

/// One client with an IPv6 /64 could otherwise take a fresh address, and so a fresh bucket
/// (and a fresh item and pre-filter entry), for every request.
#[tokio::test]
async fn ipv6_clients_are_limited_by_prefix_and_mapped_ipv4_as_ipv4() {
    let (client, table, _) = table().await;
    let per_ip = |prefix: Option<u8>| {
        let builder = RateLimitLayer::builder()
            .client(client.clone())
            .table(&table)
            .key(RateLimitKey::Ip)
            .limit(2)
            .window(DAY)
            .store_timeout(STORE_TIMEOUT);
        match prefix {
            Some(len) => builder.ipv6_prefix(len),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let statuses = |layer: RateLimitLayer, ips: &'static [&'static str]| async move {
        let (svc, _) = limited(&layer);
        let mut out = Vec::new();
        for ip in ips {
            let mut req =
                http::Request::builder().method("POST").uri("/payments").body(Body::empty()).unwrap();
            req.extensions_mut().insert(lift::ClientIp(ip.parse().unwrap()));
            out.push(svc.clone().oneshot(req).await.unwrap().status().as_u16());
        }
        out
    };
    let by_64 = per_ip(None);
    assert_eq!(
        statuses(by_64.clone(), &["2001:db8::1", "2001:db8::2", "2001:db8::3"]).await,
        [200, 200, 429],
        "one /64, one bucket"
    );
    assert_eq!(statuses(by_64.clone(), &["2001:db8:0:1::1"]).await, [200], "another /64");
    assert_eq!(
        statuses(by_64, &["::ffff:192.0.2.1", "192.0.2.1", "::ffff:192.0.2.1", "192.0.2.2"]).await,
        [200, 200, 429, 200],
        "an IPv4-mapped address is its IPv4 address; IPv4 counts per address"
    );
    assert_eq!(
        statuses(per_ip(Some(48)), &["2001:db8:1::1", "2001:db8:1:1::1", "2001:db8:1:ffff::1"]).await,
        [200, 200, 429],
        "a configured /48"
    );
}

/// The router answers HEAD with the GET route's handler: a HEAD bucket of its own would
/// double a route's GET limit.
#[tokio::test]
async fn head_counts_against_the_get_route() {
    async fn payment(_req: Request) -> Response {
        Response::new(Body::from("ok"))
    }
    let (client, table, _) = table().await;
    let layer = RateLimitLayer::builder()
        .client(client)
        .table(&table)
        .key(RateLimitKey::Route)
        .limit(2)
        .window(DAY)
        .store_timeout(STORE_TIMEOUT)
        .build()
        .unwrap();
    let app = lift::App::new()
        .get("/payments/:id", lift::app::Route::from_handler(payment).layer(layer))
        .into_service();
    let mut statuses = Vec::new();
    for method in [http::Method::GET, http::Method::HEAD, http::Method::GET] {
        let req = http::Request::builder().method(method).uri("/payments/1").body(Body::empty()).unwrap();
        statuses.push(app.clone().oneshot(req).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
}

/// Two token buckets per tenant, both on the default name: each must keep its own item.
/// Sharing `lift#t:acme#tb`, the hourly bucket's arrival time (36 s a token) ran far ahead
/// of the per-minute bucket's, which then refused the second request.
#[tokio::test]
async fn limiters_of_one_name_keep_their_own_items() {
    let (client, table, _) = table().await;
    let bucket = |limit: u32, window: Duration| {
        RateLimitLayer::builder()
            .client(client.clone())
            .table(&table)
            .key(RateLimitKey::Tenant)
            .limit(limit)
            .window(window)
            .algorithm(Algorithm::TokenBucket)
            .store_timeout(STORE_TIMEOUT)
            .build()
            .unwrap()
    };
    // A minute rather than a second for the short bucket: four requests through DynamoDB
    // Local on a loaded machine may take longer than a 3/s bucket's refill of one token.
    let short = bucket(3, Duration::from_secs(60));
    let long = bucket(100, Duration::from_secs(3600));
    let (handler, served) = limited(&long);
    let svc = short.layer(handler);
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let res = svc.clone().oneshot(request("acme")).await.unwrap();
        statuses.push(res.status().as_u16());
        last = Some(res);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(last.unwrap().headers()["ratelimit-limit"], "3", "refused by the short bucket");
    assert_eq!(served.load(Ordering::SeqCst), 3);
}

async fn futures_statuses<S>(svc: &S, tenant: &str, n: usize) -> Vec<u16>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(svc.clone().oneshot(request(tenant)).await.unwrap().status().as_u16());
    }
    out
}

#[tokio::test]
async fn responses_carry_the_ratelimit_headers() {
    let (client, table, _) = table().await;
    for algorithm in [Algorithm::FixedWindow, Algorithm::SlidingWindow, Algorithm::TokenBucket] {
        let layer = builder(client.clone(), &table, algorithm, 2);
        let (svc, _) = limited(&layer);
        let tenant = format!("{algorithm:?}");
        let first = svc.clone().oneshot(request(&tenant)).await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(first.headers()["ratelimit-limit"], "2", "{algorithm:?}");
        assert_eq!(first.headers()["ratelimit-remaining"], "1", "{algorithm:?}");
        let reset: u64 = first.headers()["ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset > 0 && reset <= DAY.as_secs(), "{algorithm:?}: reset {reset}");
        let second = svc.clone().oneshot(request(&tenant)).await.unwrap();
        assert_eq!(second.headers()["ratelimit-remaining"], "0", "{algorithm:?}");

        let refused = svc.clone().oneshot(request(&tenant)).await.unwrap();
        assert_eq!(refused.status(), 429, "{algorithm:?}");
        assert_eq!(refused.headers()["content-type"], "application/problem+json");
        let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1 && retry <= DAY.as_secs(), "{algorithm:?}: retry-after {retry}");
        assert_eq!(refused.headers()["ratelimit-limit"], "2");
        assert_eq!(refused.headers()["ratelimit-remaining"], "0");
        assert!(refused.headers().contains_key("ratelimit-reset"));
    }
}

#[tokio::test]
async fn dynamodb_down_fails_open_or_closed_as_configured() {
    let (client, _) = dead_client().await;
    let layer = |mode| {
        RateLimitLayer::builder()
            .client(client.clone())
            .table("unreachable")
            .key(RateLimitKey::Tenant)
            .limit(10)
            .window(DAY)
            .fail_mode(mode)
            .store_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };

    let (open, served) = limited(&layer(FailMode::Open));
    let res = open.oneshot(request("acme")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(served.load(Ordering::SeqCst), 1);
    assert_eq!(res.headers()["ratelimit-limit"], "10");
    assert!(!res.headers().contains_key("ratelimit-remaining"), "nothing is known about the remaining quota");

    let (closed, served) = limited(&layer(FailMode::Closed));
    let res = closed.oneshot(request("acme")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(served.load(Ordering::SeqCst), 0);

    // The default is closed.
    let default = RateLimitLayer::builder()
        .client(client.clone())
        .key(RateLimitKey::Tenant)
        .limit(1)
        .window(DAY)
        .build()
        .unwrap();
    let (svc, _) = limited(&default);
    assert_eq!(svc.oneshot(request("acme")).await.unwrap().status(), 503);
}

#[tokio::test]
async fn the_gcra_prefilter_refuses_without_a_dynamodb_call() {
    let (client, table, calls) = table().await;
    let layer = builder(client.clone(), &table, Algorithm::TokenBucket, 5);
    let (svc, _) = limited(&layer);
    let statuses = futures_statuses(&svc, "acme", 20).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    // The first request restarts the empty bucket (two calls), the next four take a token
    // each; the other fifteen are refused in-process by the GCRA.
    assert_eq!(calls.get(), 6, "{statuses:?}");

    // The same without the pre-filter: every request is a round trip.
    let (client, table, calls) = self::table().await;
    let bare = RateLimitLayer::builder()
        .client(client)
        .table(&table)
        .key(RateLimitKey::Tenant)
        .limit(5)
        .window(DAY)
        .algorithm(Algorithm::TokenBucket)
        .without_prefilter()
        .store_timeout(STORE_TIMEOUT)
        .build()
        .unwrap();
    let (svc, _) = limited(&bare);
    let statuses = futures_statuses(&svc, "acme", 20).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    assert!(calls.get() >= 20, "{} calls", calls.get());
}

#[tokio::test]
async fn a_refusal_from_dynamodb_is_remembered_until_the_reset() {
    let (client, table, calls) = table().await;
    let layer = builder(client, &table, Algorithm::FixedWindow, 5);
    let (svc, _) = limited(&layer);
    let statuses = futures_statuses(&svc, "acme", 20).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    // Five admissions and the one refusal that reported the window's end; the GCRA alone
    // (burst 10 for windows) would have let four more through to DynamoDB.
    assert_eq!(calls.get(), 6, "{statuses:?}");
}

#[tokio::test]
async fn the_prefilter_stops_calls_to_a_dead_dynamodb_too() {
    // Failing open, the GCRA still bounds what one instance lets through.
    let (client, calls) = dead_client().await;
    let layer = RateLimitLayer::builder()
        .client(client)
        .table("unreachable")
        .key(RateLimitKey::Tenant)
        .limit(3)
        .window(DAY)
        .algorithm(Algorithm::TokenBucket)
        .fail_mode(FailMode::Open)
        .build()
        .unwrap();
    let (svc, served) = limited(&layer);
    let statuses = futures_statuses(&svc, "acme", 6).await;
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    assert_eq!(served.load(Ordering::SeqCst), 3);
    assert_eq!(calls.get(), 3);
}
