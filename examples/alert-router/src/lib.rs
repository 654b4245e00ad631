//! Routes CloudWatch alarm state changes to webhooks, Slack, PagerDuty and SNS, on Lift.
//!
//! Alarm changes arrive from EventBridge (`CloudWatch Alarm State Change`) or SNS (the
//! alarm's own notification JSON in `Records[].Sns.Message`); both give the same
//! [`alarm::AlarmChange`]. Labels come from the alarm-name convention of lift-monitoring
//! and the description ([`labels`]); a route tree ([`config`], a TOML file) picks the
//! receivers, groups alerts, inhibits and escalates; silences and acknowledgements come
//! through the HTTP API ([`routes`]); a schedule tick drives escalations and retries. The
//! state lives in DynamoDB ([`store`]), written conditionally so that every step is sent
//! once however often an event is delivered and however many instances race
//! ([`engine`] explains the claim-send-record protocol).
//!
//! # Quick start
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_dynamodb::Client, sns: aws_sdk_sns::Client) -> Result<(), lift::BoxError> {
//! use alert_router::{Config, Function};
//!
//! let config = Config::from_env()?;
//! let router = config.router(client, Some(sns))?;
//! let function = Function::new(router.clone(), config.stack()?);
//! let answer = function.invoke(serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})).await?;
//! # let _ = answer; Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod alarm;
pub mod channel;
pub mod config;
pub mod engine;
pub mod labels;
pub mod routes;
pub mod store;

use std::sync::Arc;

use lift::app::AppService;
use lift::context::Invocation;
use lift::event::{Dispatcher, EventKind, EventRouter};
use serde_json::Value;

pub use config::RouterConfig;
pub use engine::{AlertRouter, Clock, ManualClock, Report, RouterError, SystemClock};
pub use store::{table_def, AlertStore};

/// The audience tokens must carry unless `ALERT_ROUTER_JWT_AUDIENCE` says otherwise.
pub const DEFAULT_AUDIENCE: &str = "alert-router";

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("missing or invalid configuration: {0}")]
pub struct ConfigError(String);

/// Configuration from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The state table (`ALERT_ROUTER_TABLE`, else `LIFT_TABLE_ALERT_ROUTER`/`LIFT_TABLE_PREFIX`).
    pub table: String,
    /// The routing file, parsed (`ALERT_ROUTER_CONFIG`: its path; required). Receivers'
    /// URLs and keys come from the variables it names.
    pub routing: RouterConfig,
    /// The token issuer (`ALERT_ROUTER_JWT_ISSUER`, else `LIFT_JWT_ISSUER`): required.
    pub jwt_issuer: String,
    /// The issuer's JWK set (`ALERT_ROUTER_JWKS_URL`, else `LIFT_JWKS_URL`): required.
    pub jwks_url: String,
    /// The audience (`ALERT_ROUTER_JWT_AUDIENCE`, else `alert-router`).
    pub jwt_audience: String,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(lift::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), through `lookup` (tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = lift::config::Env::from_lookup(lookup);
        let var = |name: &str| env.get(name);
        let required = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| var(n))
                .ok_or_else(|| ConfigError(format!("{} (or {}) is not set", names[0], names[1])))
        };
        let path =
            var("ALERT_ROUTER_CONFIG").ok_or_else(|| ConfigError("ALERT_ROUTER_CONFIG is not set".into()))?;
        let routing = RouterConfig::load(&path, var).map_err(|e| ConfigError(e.to_string()))?;
        Ok(Self {
            table: var("ALERT_ROUTER_TABLE").unwrap_or_else(|| table_def().resolve_name()),
            routing,
            jwt_issuer: required(["ALERT_ROUTER_JWT_ISSUER", "LIFT_JWT_ISSUER"])?,
            jwks_url: required(["ALERT_ROUTER_JWKS_URL", "LIFT_JWKS_URL"])?,
            jwt_audience: var("ALERT_ROUTER_JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
        })
    }

    /// The router over the configured table, on the system clock.
    pub fn router(
        &self,
        client: aws_sdk_dynamodb::Client,
        sns: Option<aws_sdk_sns::Client>,
    ) -> Result<AlertRouter, ConfigError> {
        let sender = channel::Sender::new(self.routing.delivery.clone(), sns)
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(AlertRouter::new(
            AlertStore::new(client, &self.table),
            self.routing.clone(),
            sender,
            Arc::new(SystemClock),
        ))
    }

    /// The stack: request log outermost, then the JWT layer.
    pub fn stack(&self) -> Result<lift::Stack, ConfigError> {
        let issuer = lift::middleware::auth::Issuer::jwks(&self.jwt_issuer, &self.jwks_url)
            .audience(&self.jwt_audience);
        let jwt = routes::jwt_layer(issuer).map_err(|e| ConfigError(e.to_string()))?;
        lift::stack()
            .request_log(lift::middleware::logging::RequestLogLayer::new())
            .jwt(jwt)
            .build()
            .map_err(|e| ConfigError(e.to_string()))
    }
}

/// The Lambda function: HTTP events to the API, everything else to the router.
#[derive(Clone)]
pub struct Function {
    router: AlertRouter,
    http: Dispatcher<AppService>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("router", &self.router).finish_non_exhaustive()
    }
}

impl Function {
    /// The function over `router`, its API behind `stack`.
    pub fn new(router: AlertRouter, stack: lift::Stack) -> Self {
        let service = routes::mount(router.clone(), stack).into_service();
        Self { router, http: Dispatcher::new(Some(service), EventRouter::new()) }
    }

    /// Handles one Lambda payload: an API Gateway (or function URL) request, an SNS event,
    /// an EventBridge alarm change or a scheduled tick. An error makes Lambda retry the
    /// event (asynchronous sources), which is safe: every step is sent once.
    pub async fn invoke(&self, payload: Value) -> Result<Value, lift::BoxError> {
        let invocation = Invocation {
            request_id: uuid::Uuid::new_v4().to_string(),
            deadline: None,
            invoked_function_arn: None,
            xray_trace_id: None,
        };
        self.invoke_with(payload, invocation).await
    }

    /// Like [`invoke`](Self::invoke), with the Lambda invocation's details.
    pub async fn invoke_with(&self, payload: Value, invocation: Invocation) -> Result<Value, lift::BoxError> {
        if EventKind::detect(&payload).is_ok_and(EventKind::is_http) {
            return Ok(self.http.dispatch(payload, invocation).await?);
        }
        let report = self.router.handle_event(&payload).await?;
        Ok(serde_json::json!({
            "delivered": report.delivered.len(),
            "pending": report.pending.len(),
            "stale": report.stale,
        }))
    }
}
