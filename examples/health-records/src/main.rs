//! The health-records service: on Lambda when the Lambda runtime API is present, otherwise
//! on a local port (`LIFT_LOCAL_ADDR`, default 127.0.0.1:3000).

use health_records::{mount, Config, StackParts};
use lift::middleware::logging::tracing_subscriber::fmt::MakeWriter;
use lift::middleware::logging::tracing_subscriber::{self, layer::SubscriberExt as _};
use lift::middleware::logging::{LogConfig, LogConfigError};

/// The process's log subscriber: Lift's JSON lines (CloudWatch field names, request, tenant
/// and trace ids on every line), with card numbers, SSNs, IBANs, bearer tokens, JWTs, AWS
/// keys and secret-named values scrubbed before a line is written. The level comes from
/// `LIFT_LOG_LEVEL`, else `AWS_LAMBDA_LOG_LEVEL` (default info), debug sampling from
/// `LIFT_LOG_SAMPLE_RATE` (see [`LogConfig`]).
fn log_subscriber<W>(writer: W) -> Result<impl tracing::Subscriber + Send + Sync, LogConfigError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer = LogConfig::from_env().writer(writer).build()?;
    Ok(tracing_subscriber::registry().with(layer))
}

#[tokio::main]
async fn main() -> Result<(), lift::BoxError> {
    // Never tracing_subscriber's own formatter: it writes card numbers and tokens as they are.
    tracing::subscriber::set_global_default(log_subscriber(std::io::stdout)?)?;
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

#[cfg(test)]
mod tests {
    use lift::middleware::logging::MemoryWriter;

    use super::*;

    #[test]
    fn the_production_subscriber_writes_scrubbed_json() {
        let logs = MemoryWriter::new();
        let subscriber = log_subscriber(logs.clone()).expect("the environment's log settings are valid");
        tracing::subscriber::with_default(subscriber, || {
            // Error level: written whatever level the environment asks for.
            tracing::error!(
                card = "4111 1111 1111 1111",
                api_key = "k-live-93f1",
                "record of patient with SSN 078-05-1120 read; Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJl"
            );
        });
        let text = logs.contents();
        for leak in ["4111", "078-05-1120", "k-live-93f1", "eyJhbGciOiJIUzI1NiJ9"] {
            assert!(!text.contains(leak), "{leak} in the logs: {text}");
        }
        let line: serde_json::Value = serde_json::from_str(&logs.lines()[0]).expect("one JSON object a line");
        assert_eq!((line["level"].as_str(), line["card"].as_str()), (Some("ERROR"), Some("[REDACTED:pan]")));
        assert_eq!(line["api_key"], "[REDACTED:secret]");
    }
}
