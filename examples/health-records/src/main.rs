//! The health-records service: on Lambda when the Lambda runtime API is present, otherwise
//! on a local port (`LIFT_LOCAL_ADDR`, default 127.0.0.1:3000).

use health_records::{mount, Config, StackParts};

#[tokio::main]
async fn main() -> Result<(), lift::BoxError> {
    // Lift's JSON lines, with card numbers and tokens scrubbed before a line is written (never
    // tracing_subscriber's own formatter, which writes them as they are); the level comes from
    // LIFT_LOG_LEVEL, else AWS_LAMBDA_LOG_LEVEL (default info).
    lift::middleware::logging::LogConfig::from_env().init()?;
    // JWT issuer, JWKS URL and a KMS key are required: PHI is never stored in clear.
    let config = Config::from_env()?;
    // aws-config reads AWS_REGION, credentials and AWS_ENDPOINT_URL_DYNAMODB.
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let env = lift::config::Env::process();
    if matches!(env.get("HEALTH_CREATE_TABLES").as_deref(), Some("1" | "true")) {
        use lift::store::tables;
        let wanted = [
            (&config.table, health_records::table_def()),
            (&config.subject_keys_table, tables::subject_keys()),
            (&config.idempotency_table, tables::idempotency()),
            (&config.rate_limit_table, tables::rate_limits()),
            (&config.audit_table, tables::audit()),
        ];
        for (name, def) in wanted {
            if def.create_if_missing(&client, name).await? {
                tracing::info!(table = %name, "created a table");
            }
        }
    }
    let records = config.records(client.clone())?;
    let parts = StackParts {
        dynamodb: Some(client),
        audit: records.audit.clone(),
        compliance: lift::security::compliance::ComplianceRecorder::new(),
    };
    let stack = config.stack(parts, lift::middleware::metrics::StdoutSink)?;
    let app = mount(records, stack);
    if env.get("AWS_LAMBDA_RUNTIME_API").is_some() {
        app.run_lambda().await
    } else {
        let addr = lift::app::default_local_addr();
        tracing::info!(%addr, table = %config.table, "serving health records locally");
        app.serve_local(addr).await.map_err(Into::into)
    }
}
