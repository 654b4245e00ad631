//! Shared by the lift-deploy tests: a small service that uses every feature synthesis knows.
#![allow(dead_code, unreachable_pub)]

use lift::event::{EventRouter, EventRule};
use lift::middleware::auth::{require_all_scopes, require_any_role, require_scope};
use lift::store::{IndexDef, KeyAttribute, StreamView, TableDef};
use lift::{App, Request, Response, RouteGroup};
use lift_deploy::rollout::{BoxFuture, MetricSource, SloGate};
use lift_deploy::{DeployConfig, Manifest, TableAccess};
use lift_monitoring::emf::EmfDocument;
use lift_monitoring::slo::SloFile;

async fn h(_: Request) -> Response {
    Response::default()
}

/// An orders service: public health, scoped reads and writes, an admin group needing all
/// of two scopes and a role, and every kind of event source.
pub fn app() -> App {
    let events = EventRouter::new()
        .on_sqs(|_| async { Ok(()) })
        .on_event(EventRule::new(serde_json::json!({"source": ["billing"]})).unwrap(), |_| async { Ok(()) })
        .on_schedule("nightly-settlement", |_| async { Ok(()) })
        // The physical name, as stream records carry it: the prefix is `orders-`.
        .on_dynamodb_table("orders-orders", |_| async { Ok(()) });
    App::new()
        .get("/health/ready", h)
        .group(RouteGroup::new("/orders").get("/", h).get("/:id", h).layer(require_scope("orders:read")))
        .group(RouteGroup::new("/orders").post("/", h).layer(require_scope("orders:write")))
        .group(
            RouteGroup::new("/admin")
                .get("/files/*rest", h)
                .layer(require_all_scopes(["admin:read", "admin:audit"]))
                .layer(require_any_role(["admin"])),
        )
        .events(events)
}

/// The orders table: a sort key, an index and a stream.
pub fn orders() -> TableDef {
    TableDef::new("orders", KeyAttribute::string("pk"))
        .with_sort_key(KeyAttribute::string("sk"))
        .with_index(IndexDef {
            name: "by_customer".into(),
            partition_key: KeyAttribute::string("customer"),
            sort_key: Some(KeyAttribute::number("created")),
        })
        .with_stream(StreamView::NewAndOldImages)
}

pub fn manifest() -> Manifest {
    Manifest::from_app(&app())
        .table(orders(), TableAccess::read_write())
        .table(lift::store::tables::idempotency(), TableAccess::idempotency())
}

pub const CONFIG: &str = r#"
[service]
name = "orders"
regions = ["eu-west-1"]

[function]
code = "s3://orders-artifacts/orders-1.0.0.zip"

[api.jwt]
issuer = "https://id.example.com"
audience = ["orders"]

[events]
sqs_queues = ["arn:aws:sqs:eu-west-1:111122223333:orders-jobs"]

[events.schedules]
nightly-settlement = "cron(0 2 * * ? *)"
"#;

pub fn config() -> DeployConfig {
    DeployConfig::from_toml(CONFIG).unwrap()
}

/// [`CONFIG`] without `[events]`: for Apps that handle no queue or schedule.
pub fn config_without_events() -> DeployConfig {
    DeployConfig::from_toml(CONFIG.split("[events]").next().unwrap()).unwrap()
}

/// The orders service in two regions, `us-east-1` primary and `eu-west-1` secondary,
/// with an alarm topic, a replica of its secret and of its envelope key in each.
pub const MULTI_CONFIG: &str = r#"
[service]
name = "orders"
regions = ["us-east-1", "eu-west-1"]

[function]
code = "s3://orders-artifacts/orders-1.0.0.zip"

[secrets.signing_key]
us-east-1 = "arn:aws:secretsmanager:us-east-1:111122223333:secret:orders/signing-key-AbCdEf"
eu-west-1 = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/signing-key-AbCdEf"

[kms.data_keys]
us-east-1 = "arn:aws:kms:us-east-1:111122223333:key/mrk-1"
eu-west-1 = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1"

[kms.envelope_key]
us-east-1 = "arn:aws:kms:us-east-1:111122223333:key/mrk-2"
eu-west-1 = "arn:aws:kms:eu-west-1:111122223333:key/mrk-2"

[alarms.topics]
us-east-1 = "arn:aws:sns:us-east-1:111122223333:orders-oncall"
eu-west-1 = "arn:aws:sns:eu-west-1:111122223333:orders-oncall"

[domain]
name = "api.orders.example.com"
hosted_zone_id = "Z1"

[domain.certificates]
us-east-1 = "arn:aws:acm:us-east-1:111122223333:certificate/a"
eu-west-1 = "arn:aws:acm:eu-west-1:111122223333:certificate/b"

[events]
sqs_queues = ["arn:aws:sqs:us-east-1:111122223333:orders-jobs"]

[events.schedules]
nightly-settlement = "cron(0 2 * * ? *)"
"#;

/// [`MULTI_CONFIG`]'s secret in `region`.
pub fn secret_in(region: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:111122223333:secret:orders/signing-key-AbCdEf")
}

/// [`MULTI_CONFIG`]'s envelope key in `region`.
pub fn envelope_key_in(region: &str) -> String {
    format!("arn:aws:kms:{region}:111122223333:key/mrk-2")
}

/// A metric source with no documents: for gates judged directly (`SloGate::judge`) or never
/// read (a rollout refused before it starts).
pub struct NoSource;

impl MetricSource for NoSource {
    fn documents<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: i64,
    ) -> BoxFuture<'a, Result<Vec<EmfDocument>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// The SLO gate over one service-wide 99.9% availability SLO, at its defaults (20 requests
/// at least, 14.4, z = 2.576), reading [`NoSource`].
pub fn availability_gate() -> SloGate {
    let file = SloFile::parse(
        r#"
[service]
name = "payments"
namespace = "Payments"

[[slo]]
name = "availability"
kind = "availability"
objective = 99.9
"#,
    )
    .unwrap();
    SloGate::new(file, std::sync::Arc::new(NoSource))
}
