//! The alert router on Lambda (`AWS_LAMBDA_RUNTIME_API` set), or its API on a local port
//! (`LIFT_LOCAL_ADDR`, default 127.0.0.1:3000).

use alert_router::{Config, Function};

#[tokio::main]
async fn main() -> Result<(), lift::BoxError> {
    // Lift's JSON lines, with tokens and secrets scrubbed before a line is written (never
    // tracing_subscriber's own formatter, which writes them as they are); the level comes from
    // LIFT_LOG_LEVEL, else AWS_LAMBDA_LOG_LEVEL (default info).
    lift::middleware::logging::LogConfig::from_env().init()?;
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
