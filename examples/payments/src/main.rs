//! The payments service: on Lambda when the Lambda runtime API is present, otherwise on a
//! local port (`LIFT_LOCAL_ADDR`, default 127.0.0.1:3000).

use lift::middleware::health::{Check, DynamoDbCheck, HealthChecks, HealthLayer};
use payments::{mount, Config, PaymentStore, Payments, StackParts};

fn main() -> Result<(), lift::BoxError> {
    // Before any thread starts: TLS clients read the system's CA bundle once instead of the
    // bundle plus ~290 files of the same roots (2.2–2.5 ms of init at 256 MB).
    lift::config::prefer_system_ca_bundle();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> Result<(), lift::BoxError> {
    // Lift's JSON lines, with card numbers and tokens scrubbed before a line is written (never
    // tracing_subscriber's own formatter, which writes them as they are); the level comes from
    // LIFT_LOG_LEVEL, else AWS_LAMBDA_LOG_LEVEL (default info).
    lift::middleware::logging::LogConfig::from_env().init()?;
    // JWT (PAYMENTS_JWT_ISSUER/PAYMENTS_JWKS_URL, or LIFT_JWT_ISSUER/LIFT_JWKS_URL as
    // `lift-harness up` exports them and lift-deploy sets them from [api.jwt]) is required
    // unless the development header is on.
    let config = Config::from_env()?;
    if config.dev_tenant_header_insecure {
        tracing::warn!("LIFT_DEV_TENANT_HEADER_INSECURE is on: any caller can act as any tenant");
    }
    // aws-config reads AWS_REGION, credentials and AWS_ENDPOINT_URL_DYNAMODB.
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let env = lift::config::Env::process();
    if matches!(env.get("PAYMENTS_CREATE_TABLE").as_deref(), Some("1" | "true")) {
        let mut wanted = vec![
            (&config.table, payments::table_def()),
            (&config.idempotency_table, lift::store::tables::idempotency()),
            (&config.rate_limit_table, lift::store::tables::rate_limits()),
            (&config.audit_table, lift::store::tables::audit()),
        ];
        if config.kms_key_id.is_some() {
            wanted.push((&config.subject_keys_table, lift::store::tables::subject_keys()));
        }
        for (table, def) in wanted {
            if def.create_if_missing(&client, table).await? {
                tracing::info!(%table, "created a table");
            }
        }
    }
    // Creates and refunds are idempotent: a retry with the same Idempotency-Key replays the
    // first answer and never charges twice.
    // The key itself, or the secret lift-deploy named, fetched now: a missing or unreadable
    // secret fails the cold start with its ARN, not the first payment.
    let fingerprint_key = config.fingerprint_key.load().await?;
    let mut store = PaymentStore::new(client.clone(), config.table.clone(), fingerprint_key.clone());
    // Personal data is encrypted under each customer's key, so erasure reaches every copy.
    // Stored idempotent answers are sealed under the same keys.
    let idempotency = match config.subject_keys(client.clone())? {
        Some(keys) => {
            store = store.with_subject_keys(keys.clone());
            config.idempotency_layer_sealed(client.clone(), keys, &fingerprint_key)?
        }
        None => {
            tracing::warn!(
                "no PAYMENTS_KMS_KEY_ID: personal data is stored in clear and erasure cannot reach backups"
            );
            config.idempotency_layer(client.clone(), &fingerprint_key)?
        }
    };
    let payments = Payments { store, dev_tenant_header_insecure: config.dev_tenant_header_insecure };
    if config.jwt_issuer.is_none() {
        tracing::warn!("no JWT issuer configured: only the development tenant header authenticates");
    }
    // The recommended stack, configured from the environment (see `Config::stack`): logs,
    // EMF metrics to stdout, X-Ray, JWT, per-tenant bulkhead, breaker, rate limit and
    // timeout, then per route compliance, audit, threat detection and, innermost,
    // idempotency (so a replay is checked and audited like a first attempt).
    let health_client = client.clone();
    let parts = StackParts {
        dynamodb: Some(client),
        idempotency: Some(idempotency),
        compliance: lift::security::compliance::ComplianceRecorder::new(),
    };
    let stack = config.stack(parts, lift::middleware::metrics::StdoutSink)?;
    // Readiness (`/health/ready`: the table answers) outside every other layer, so probes
    // and a rollout's health gate are neither authenticated, rate limited nor counted.
    let health = HealthChecks::builder()
        .check(Check::critical("dynamodb", DynamoDbCheck::new(health_client, config.table.clone())))
        .build();
    let app = mount(payments, stack).layer(HealthLayer::new(health));
    if env.get("AWS_LAMBDA_RUNTIME_API").is_some() {
        app.run_lambda().await
    } else {
        let addr = lift::app::default_local_addr();
        tracing::info!(%addr, table = %config.table, "serving payments locally");
        app.serve_local(addr).await.map_err(Into::into)
    }
}
