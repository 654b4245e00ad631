//! The by-value builder of the JSON log layer.

use std::io;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::error::LogConfigError;
use super::format::{JsonLogLayer, Settings};

/// What the environment said, read once by [`LogConfig::from_env`].
#[derive(Debug, Clone, Default)]
struct EnvValues {
    level: Option<(String, &'static str)>,
    sample_rate: Option<String>,
    function_name: Option<String>,
    function_version: Option<String>,
}

/// Configures the [`JsonLogLayer`]: level, debug sampling, function fields and writer.
///
/// Values set on the builder win over the environment, whatever the order of the calls.
///
/// | setting | environment | default |
/// | --- | --- | --- |
/// | [`level`](Self::level) | `LIFT_LOG_LEVEL`, else `AWS_LAMBDA_LOG_LEVEL` | `info` |
/// | [`sample_rate`](Self::sample_rate) | `LIFT_LOG_SAMPLE_RATE` | `0.0` |
/// | [`function_name`](Self::function_name) | `AWS_LAMBDA_FUNCTION_NAME` | none |
/// | [`function_version`](Self::function_version) | `AWS_LAMBDA_FUNCTION_VERSION` | none |
///
/// # Examples
///
/// ```
/// use lift::middleware::logging::{LogConfig, MemoryWriter};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let logs = MemoryWriter::new();
/// let layer = LogConfig::from_env()
///     .level(tracing::Level::WARN)
///     .function_name("payments-api")
///     .writer(logs.clone())
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || tracing::warn!(attempt = 2, "retrying"));
/// assert!(logs.lines()[0].contains(r#""function_name":"payments-api""#));
/// # Ok::<(), lift::middleware::logging::LogConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LogConfig<W = fn() -> io::Stdout> {
    level: Option<LevelFilter>,
    sample_rate: Option<f64>,
    function_name: Option<String>,
    function_version: Option<String>,
    env: EnvValues,
    writer: W,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LogConfig {
    /// Defaults only (level info, no sampling, no function fields, stdout); no environment.
    pub fn new() -> Self {
        Self {
            level: None,
            sample_rate: None,
            function_name: None,
            function_version: None,
            env: EnvValues::default(),
            writer: io::stdout,
        }
    }

    /// Defaults overridden by the process environment (see the table above).
    pub fn from_env() -> Self {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let level = non_empty("LIFT_LOG_LEVEL")
            .map(|v| (v, "LIFT_LOG_LEVEL"))
            .or_else(|| non_empty("AWS_LAMBDA_LOG_LEVEL").map(|v| (v, "AWS_LAMBDA_LOG_LEVEL")));
        let env = EnvValues {
            level,
            sample_rate: non_empty("LIFT_LOG_SAMPLE_RATE"),
            function_name: non_empty("AWS_LAMBDA_FUNCTION_NAME"),
            function_version: non_empty("AWS_LAMBDA_FUNCTION_VERSION"),
        };
        Self { env, ..Self::new() }
    }
}

impl<W> LogConfig<W> {
    /// The most verbose level written (sampled requests also get `debug`).
    pub fn level(mut self, level: impl Into<LevelFilter>) -> Self {
        self.level = Some(level.into());
        self
    }

    /// The share of requests (0.0–1.0) whose `debug` events are written too.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = Some(rate);
        self
    }

    /// The `function_name` field of every line.
    pub fn function_name(mut self, name: impl Into<String>) -> Self {
        self.function_name = Some(name.into());
        self
    }

    /// The `function_version` field of every line.
    pub fn function_version(mut self, version: impl Into<String>) -> Self {
        self.function_version = Some(version.into());
        self
    }

    /// Where lines go: any [`MakeWriter`] (default: stdout).
    pub fn writer<W2>(self, writer: W2) -> LogConfig<W2>
    where
        W2: for<'a> MakeWriter<'a> + 'static,
    {
        LogConfig {
            level: self.level,
            sample_rate: self.sample_rate,
            function_name: self.function_name,
            function_version: self.function_version,
            env: self.env,
            writer,
        }
    }

    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    /// [`LogConfigError`] for a level or sample rate that cannot be used.
    pub fn build(self) -> Result<JsonLogLayer<W>, LogConfigError>
    where
        W: for<'a> MakeWriter<'a> + 'static,
    {
        let level = match (self.level, &self.env.level) {
            (Some(level), _) => level,
            (None, Some((value, origin))) => parse_level(value, origin)?,
            (None, None) => LevelFilter::INFO,
        };
        let sample_rate = match (self.sample_rate, &self.env.sample_rate) {
            (Some(rate), _) => check_rate(rate, || rate.to_string())?,
            (None, Some(value)) => {
                let rate = value.trim().parse::<f64>().map_err(|_| rate_error(value))?;
                check_rate(rate, || value.clone())?
            }
            (None, None) => 0.0,
        };
        let settings = Settings {
            level,
            sample_rate,
            function_name: self.function_name.or(self.env.function_name),
            function_version: self.function_version.or(self.env.function_version),
        };
        Ok(JsonLogLayer::new(settings, self.writer))
    }

    /// Builds the layer and installs it, over a `tracing_subscriber::Registry`, as the
    /// process-wide default subscriber.
    ///
    /// # Errors
    /// [`LogConfigError`] for bad settings, or when a global subscriber is already set.
    pub fn init(self) -> Result<(), LogConfigError>
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        let layer = self.build()?;
        tracing_subscriber::registry().with(layer).try_init().map_err(|_| LogConfigError::AlreadyInitialized)
    }
}

fn parse_level(value: &str, origin: &'static str) -> Result<LevelFilter, LogConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(LevelFilter::TRACE),
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        // Lambda's advanced logging controls also know FATAL.
        "error" | "fatal" | "critical" => Ok(LevelFilter::ERROR),
        "off" => Ok(LevelFilter::OFF),
        _ => Err(LogConfigError::InvalidLevel { value: value.to_owned(), origin }),
    }
}

fn rate_error(value: &str) -> LogConfigError {
    LogConfigError::InvalidSampleRate { value: value.to_owned() }
}

fn check_rate(rate: f64, shown: impl FnOnce() -> String) -> Result<f64, LogConfigError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(rate_error(&shown()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn environment_fills_what_the_builder_leaves_unset() {
        let vars = env(&[
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("LIFT_LOG_SAMPLE_RATE", "0.25"),
            ("AWS_LAMBDA_FUNCTION_NAME", "fn-a"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
        ]);
        let s = LogConfig::from_env_vars(&vars).build().unwrap().settings().clone();
        assert_eq!((s.level, s.sample_rate), (LevelFilter::DEBUG, 0.25));
        assert_eq!((s.function_name.as_deref(), s.function_version.as_deref()), (Some("fn-a"), Some("7")));
        let s = LogConfig::from_env_vars(&vars)
            .level(tracing::Level::ERROR)
            .function_name("fn-b")
            .build()
            .unwrap();
        assert_eq!(s.settings().level, LevelFilter::ERROR);
        assert_eq!(s.settings().function_name.as_deref(), Some("fn-b"));
    }

    #[test]
    fn lift_level_wins_over_lambda_level() {
        let vars = env(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("LIFT_LOG_LEVEL", "warn")]);
        assert_eq!(LogConfig::from_env_vars(vars).build().unwrap().settings().level, LevelFilter::WARN);
    }

    #[test]
    fn bad_values_are_errors() {
        let err = LogConfig::from_env_vars(env(&[("LIFT_LOG_LEVEL", "loud")])).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid log level `loud` from LIFT_LOG_LEVEL: expected trace, debug, info, warn or error"
        );
        let err = LogConfig::from_env_vars(env(&[("LIFT_LOG_SAMPLE_RATE", "half")])).build().unwrap_err();
        assert!(matches!(err, LogConfigError::InvalidSampleRate { .. }));
        assert!(LogConfig::new().sample_rate(-0.1).build().is_err());
        assert!(LogConfig::new().sample_rate(f64::NAN).build().is_err());
    }
}
