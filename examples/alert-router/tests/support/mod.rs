//! Shared set-up for the alert-router tests: a fresh table on real DynamoDB Local per test,
//! webhook, Slack and PagerDuty endpoints on one wiremock server, the harness's SNS mock
//! (signatures required) driven by the real aws-sdk-sns client, a JWKS issuer for the API,
//! and a manual clock.

#![allow(dead_code)]

pub(crate) mod conflicts;

use std::sync::Arc;

use alert_router::channel::Sender;
use alert_router::{AlertRouter, AlertStore, Function, ManualClock, RouterConfig};
use lift_harness::aws::{Alg, JwksIssuer, SnsMock};
use lift_harness::dynamodb::DynamoDbLocal;
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) const EB_ALARM: &str = include_str!("../fixtures/eventbridge-alarm.json");
pub(crate) const EB_OK: &str = include_str!("../fixtures/eventbridge-ok.json");
pub(crate) const SNS_ALARM: &str = include_str!("../fixtures/sns-alarm.json");
pub(crate) const SCHEDULED: &str = include_str!("../fixtures/scheduled-event.json");

/// When the fixture alarm fired.
pub(crate) const T0: OffsetDateTime = datetime!(2026-12-03 10:00:00 UTC);
pub(crate) const SNS_REGION: &str = "eu-west-1";
/// The PagerDuty routing key: it must never show up in logs, errors or the table.
pub(crate) const PD_KEY: &str = "R0UT1NG-KEY-DO-NOT-LEAK-7f3a";
/// The Slack path carries a token, like a real incoming-webhook URL.
pub(crate) const SLACK_PATH: &str = "/services/T000/B000/XOXB-SECRET-TOKEN";
pub(crate) const HOOK_PATH: &str = "/hook";
pub(crate) const PD_PATH: &str = "/pd/v2/enqueue";

pub(crate) const ROUTING: &str = r#"
[labels]
services = ["payments", "health-records"]

[delivery]
attempts = 3
backoff = "20ms"
max_backoff = "80ms"
timeout = "5s"
lease = "60s"

[[receivers]]
name = "team-webhook"
kind = "webhook"
url_env = "HOOK_URL"

[[receivers]]
name = "team-slack"
kind = "slack"
url_env = "SLACK_URL"

[[receivers]]
name = "oncall"
kind = "pagerduty"
url_env = "PD_URL"
routing_key_env = "PD_KEY"

[[receivers]]
name = "secondary"
kind = "sns"
topic_arn_env = "PAGES_TOPIC"

[route]
receiver = "team-webhook"
group_by = ["service", "region", "alertname"]
runbook = "https://runbooks.example.com/{service}/{alertname}"

[[route.routes]]
matchers = ['severity="page"']
receiver = "oncall"
continue = true
escalation = [{ after = "15m", receiver = "secondary" }]

[[route.routes]]
matchers = ['severity="page"']
receiver = "team-slack"

[[inhibit]]
source = ['kind="region-down"']
target = ['route=~".+"']
equal = ["region"]
"#;

/// One router over a new table, and everything it talks to.
pub(crate) struct Env {
    pub(crate) router: AlertRouter,
    pub(crate) function: Function,
    pub(crate) clock: ManualClock,
    pub(crate) hooks: MockServer,
    pub(crate) sns: SnsMock,
    pub(crate) topic: String,
    pub(crate) jwks: JwksIssuer,
    pub(crate) ddb: Arc<DynamoDbLocal>,
    pub(crate) table: String,
    pub(crate) config: RouterConfig,
}

/// Every channel endpoint answering 200 (PagerDuty 202).
pub(crate) async fn env() -> Env {
    let hooks = MockServer::start().await;
    answer(&hooks, 200).await;
    env_with(hooks).await
}

/// Mounts `status` for every channel path (after whatever is mounted already).
pub(crate) async fn answer(hooks: &MockServer, status: u16) {
    for p in [HOOK_PATH, SLACK_PATH] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(status))
            .mount(hooks)
            .await;
    }
    let pd = if status == 200 { 202 } else { status };
    Mock::given(method("POST"))
        .and(path(PD_PATH))
        .respond_with(
            ResponseTemplate::new(pd)
                .set_body_json(json!({"status": "success", "message": "Event processed"})),
        )
        .mount(hooks)
        .await;
}

/// The router with the channels on `hooks`.
pub(crate) async fn env_with(hooks: MockServer) -> Env {
    env_routed(hooks, ROUTING).await
}

/// The router with the channels on `hooks`, routing by `routing` (a variant of [`ROUTING`]).
pub(crate) async fn env_routed(hooks: MockServer, routing: &str) -> Env {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    // The tests' clock stands on 2026-12-03, while DynamoDB Local deletes items whose TTL
    // attribute the real clock has passed (within seconds): a silence's `expires_at`, a day
    // after it ends on the tests' clock, would vanish mid-test. The table under test has no TTL.
    let mut def = alert_router::table_def();
    def.ttl_attribute = None;
    let table = ddb.create_table(&def).await.expect("the router's table");
    let sns = SnsMock::start(SNS_REGION).await;
    sns.require_signature(true);
    let topic = sns.create_topic("pages-secondary");
    let jwks = JwksIssuer::start().await.expect("the JWKS issuer");
    let config = parse_routing(routing, &hooks, &topic);
    let clock = ManualClock::new(T0);
    let router = router_on(&ddb, &table, &config, &sns, &clock).await;
    let stack = lift::stack()
        .jwt(
            alert_router::routes::jwt_layer(
                lift::middleware::auth::Issuer::jwks(jwks.issuer(), jwks.jwks_url())
                    .audience(alert_router::DEFAULT_AUDIENCE),
            )
            .expect("the JWT layer"),
        )
        .build()
        .expect("the stack");
    let function = Function::new(router.clone(), stack);
    Env { router, function, clock, hooks, sns, topic, jwks, ddb, table, config }
}

/// `routing` parsed, its receivers on `hooks` and the SNS `topic`.
fn parse_routing(routing: &str, hooks: &MockServer, topic: &str) -> RouterConfig {
    let vars = [
        ("HOOK_URL", format!("{}{HOOK_PATH}", hooks.uri())),
        ("SLACK_URL", format!("{}{SLACK_PATH}", hooks.uri())),
        ("PD_URL", format!("{}/pd", hooks.uri())),
        ("PD_KEY", PD_KEY.to_owned()),
        ("PAGES_TOPIC", topic.to_owned()),
    ];
    RouterConfig::parse(routing, |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
        .expect("a valid routing file")
}

/// A router with its own DynamoDB and SNS clients over the same table (another instance).
pub(crate) async fn router_on(
    ddb: &DynamoDbLocal,
    table: &str,
    config: &RouterConfig,
    sns: &SnsMock,
    clock: &ManualClock,
) -> AlertRouter {
    router_over(AlertStore::new(ddb.client().await, table), config, sns, clock)
}

/// A router over `store`, with its own SNS client.
pub(crate) fn router_over(
    store: AlertStore,
    config: &RouterConfig,
    sns: &SnsMock,
    clock: &ManualClock,
) -> AlertRouter {
    let sns_config = aws_sdk_sns::config::Builder::new()
        .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
        .region(aws_sdk_sns::config::Region::new(SNS_REGION))
        .endpoint_url(sns.uri())
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "AKIDALERTROUTER",
            "secret",
            None,
            None,
            "test",
        ))
        .build();
    let sender = Sender::new(config.delivery.clone(), Some(aws_sdk_sns::Client::from_conf(sns_config)))
        .expect("a sender");
    AlertRouter::new(store, config.clone(), sender, Arc::new(clock.clone()))
}

impl Env {
    /// Another instance over the same table, endpoints and clock.
    pub(crate) async fn another_instance(&self) -> AlertRouter {
        router_on(&self.ddb, &self.table, &self.config, &self.sns, &self.clock).await
    }

    /// Another instance over `store` (the same table through another client), with the
    /// same endpoints and clock.
    pub(crate) fn instance_over(&self, store: AlertStore) -> AlertRouter {
        router_over(store, &self.config, &self.sns, &self.clock)
    }

    /// Another instance over the same table, endpoints and clock, routing by `routing`:
    /// the router after a deploy that changed the routing file.
    pub(crate) async fn redeployed(&self, routing: &str) -> AlertRouter {
        let config = parse_routing(routing, &self.hooks, &self.topic);
        router_on(&self.ddb, &self.table, &config, &self.sns, &self.clock).await
    }

    /// The JSON bodies POSTed to `p`.
    pub(crate) async fn posted(&self, p: &str) -> Vec<Value> {
        self.hooks
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == p)
            .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
            .collect()
    }

    /// PagerDuty events with this action.
    pub(crate) async fn pagerduty(&self, action: &str) -> Vec<Value> {
        self.posted(PD_PATH).await.into_iter().filter(|e| e["event_action"] == action).collect()
    }

    /// A tick at `at`, as the schedule delivers it.
    pub(crate) async fn tick_at(&self, at: OffsetDateTime) -> Value {
        self.clock.set(at);
        self.function.invoke(fixture(SCHEDULED)).await.expect("a tick")
    }

    /// A tick at `at`, handled by `router` (another instance, or a redeployed one).
    pub(crate) async fn tick_with(&self, router: &AlertRouter, at: OffsetDateTime) -> alert_router::Report {
        self.clock.set(at);
        router.handle_event(&fixture(SCHEDULED)).await.expect("a tick")
    }

    /// A signed token with `scope`.
    pub(crate) fn token(&self, subject: &str, scope: &str) -> String {
        let mut claims = self.jwks.claims(subject, alert_router::DEFAULT_AUDIENCE);
        claims["tenant_id"] = "ops".into();
        claims["scope"] = scope.into();
        self.jwks.sign(&claims, Alg::Rs256, None).expect("sign")
    }

    /// An API Gateway HTTP API (payload 2.0) request through the function.
    pub(crate) async fn api(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut headers = json!({"content-type": "application/json", "x-forwarded-proto": "https"});
        if let Some(token) = token {
            headers["authorization"] = format!("Bearer {token}").into();
        }
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "alerts", "domainName": "alerts.example.com",
                "domainPrefix": "alerts",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
                "requestId": "req-1", "routeKey": "$default", "stage": "$default",
                "time": "03/Dec/2026:10:00:00 +0000", "timeEpoch": 1_796_292_000_000_i64
            },
            "body": body.map(|b| b.to_string()),
            "isBase64Encoded": false
        });
        let answer = self.function.invoke(event).await.expect("an HTTP answer");
        let status = answer["statusCode"].as_u64().expect("a status") as u16;
        let body = answer["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
        (status, body)
    }

    /// Every item of the table, as text.
    pub(crate) async fn table_text(&self) -> (usize, String) {
        let out = self
            .ddb
            .client()
            .await
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan");
        (out.items().len(), format!("{:?}", out.items()))
    }
}

/// The fixture alarm in `state` again, changed at `at` (RFC 3339).
pub(crate) fn fixture_at(state: &str, at: &str) -> Value {
    let mut event = fixture(EB_ALARM);
    event["detail"]["state"]["value"] = state.into();
    event["detail"]["state"]["timestamp"] = at.into();
    event
}

/// The group id a PagerDuty event names (its `dedup_key` is `<group>-<episode>`).
pub(crate) fn group_of(event: &Value) -> String {
    let key = event["dedup_key"].as_str().expect("a dedup_key");
    key.rsplit_once('-').expect("<group>-<episode>").0.to_owned()
}

pub(crate) fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("a JSON fixture")
}

/// The EventBridge fixture, renamed, in another region, with another description, state and time.
pub(crate) fn alarm(name: &str, region: &str, description: &str, state: &str, at: &str) -> Value {
    let mut event = fixture(EB_ALARM);
    event["region"] = region.into();
    event["detail"]["alarmName"] = name.into();
    event["detail"]["configuration"]["description"] = description.into();
    event["detail"]["state"]["value"] = state.into();
    event["detail"]["state"]["timestamp"] = at.into();
    event
}
