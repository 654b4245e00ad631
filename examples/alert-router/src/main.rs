//! The alert router on Lambda (`AWS_LAMBDA_RUNTIME_API` set), or its API on a local port
//! (`LIFT_LOCAL_ADDR`, default 127.0.0.1:3000).

use alert_router::{Config, Function};
use lift::middleware::logging::tracing_subscriber::fmt::MakeWriter;
use lift::middleware::logging::tracing_subscriber::{self, layer::SubscriberExt as _};
use lift::middleware::logging::{LogConfig, LogConfigError};

/// The process's log subscriber: Lift's JSON lines, with bearer tokens, webhook and API
/// secrets, card numbers and the like scrubbed before a line is written (an alarm's
/// description is free text, and a channel's error may echo its URL). The level comes from
/// `LIFT_LOG_LEVEL`, else `AWS_LAMBDA_LOG_LEVEL` (default info); see [`LogConfig`].
fn log_subscriber<W>(writer: W) -> Result<impl tracing::Subscriber + Send + Sync, LogConfigError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer = LogConfig::from_env().writer(writer).build()?;
    Ok(tracing_subscriber::registry().with(layer))
}

#[tokio::main]
async fn main() -> Result<(), lift::BoxError> {
    // Never tracing_subscriber's own formatter: it writes tokens and secrets as they are.
    tracing::subscriber::set_global_default(log_subscriber(std::io::stdout)?)?;
    let config = Config::from_env()?;
    // aws-config reads AWS_REGION, credentials, AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SNS.
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let env = lift::config::Env::process();
    if matches!(env.get("ALERT_ROUTER_CREATE_TABLES").as_deref(), Some("1" | "true"))
        && alert_router::table_def().create_if_missing(&client, &config.table).await?
    {
        tracing::info!(table = %config.table, "created the table");
    }
    let router = config.router(client, Some(sns))?;
    let function = Function::new(router.clone(), config.stack()?);
    if env.get("AWS_LAMBDA_RUNTIME_API").is_some() {
        let handler =
            lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
                let function = function.clone();
                async move {
                    function.invoke_with(event.payload, lift::context::Invocation::from(&event.context)).await
                }
            });
        lambda_runtime::run(handler).await
    } else {
        let addr = lift::app::default_local_addr();
        tracing::info!(%addr, table = %config.table, "serving the alert API locally");
        alert_router::routes::mount(router, config.stack()?).serve_local(addr).await.map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use lift::middleware::logging::MemoryWriter;

    use super::*;

    /// What main installs scrubs what a plain JSON formatter would write as it is.
    #[test]
    fn the_production_subscriber_writes_scrubbed_json() {
        let logs = MemoryWriter::new();
        let subscriber = log_subscriber(logs.clone()).expect("the environment's log settings are valid");
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(
                api_key = "pd-routing-93f1",
                "delivery failed; Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJl"
            );
        });
        let text = logs.contents();
        for leak in ["pd-routing-93f1", "eyJhbGciOiJIUzI1NiJ9"] {
            assert!(!text.contains(leak), "{leak} in the logs: {text}");
        }
        let line: serde_json::Value = serde_json::from_str(&logs.lines()[0]).expect("one JSON object a line");
        assert_eq!(line["api_key"], "[REDACTED:secret]");
    }
}
