//! A function's configuration: its bootstrap binary, memory size, timeout, environment,
//! execution role credentials, reserved concurrency and the retries of asynchronous
//! invocations, validated as Lambda validates them.

use std::path::PathBuf;
use std::time::Duration;

/// A function as deployed: name, bootstrap binary and configuration.
///
/// # Examples
///
/// ```
/// use lift_harness::lambda::Function;
///
/// let f = Function::builder("payments", "target/debug/payments").memory_mb(512).timeout_secs(10).build()?;
/// assert_eq!(f.memory_mb(), 512);
/// assert!(Function::builder("payments", "x").memory_mb(64).build().is_err());
/// # Ok::<(), lift_harness::lambda::FunctionConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Function {
    pub(crate) name: String,
    pub(crate) bin: PathBuf,
    pub(crate) memory_mb: u32,
    pub(crate) timeout: Duration,
    pub(crate) init_timeout: Duration,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) credentials: Credentials,
    pub(crate) reserved_concurrency: Option<u32>,
    pub(crate) region: String,
    pub(crate) account: String,
    pub(crate) freeze: bool,
    pub(crate) active_tracing: bool,
    pub(crate) version: String,
    pub(crate) max_retry_attempts: u32,
    pub(crate) retry_delay: Duration,
}

/// A configuration Lambda would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionConfigError {
    /// Names are 1 to 64 letters, digits, hyphens and underscores.
    #[error("function name must be 1-64 letters, digits, hyphens or underscores, not {0:?}")]
    Name(String),
    /// Memory is 128 to 10,240 MB.
    #[error("memory size must be between 128 and 10240 MB, not {0}")]
    Memory(u32),
    /// The timeout is 1 to 900 seconds.
    #[error("timeout must be between 1 and 900 seconds, not {0:?}")]
    Timeout(Duration),
    /// Reserved environment variables cannot be set by the user.
    #[error("environment variable {0} is reserved by lambda")]
    ReservedVariable(String),
    /// The environment variables, measured as Lambda measures them (the bytes of their JSON
    /// object, keys and values), are over 4 KB (4,096 bytes).
    #[error("environment variables take {0} bytes as json, over lambda's limit of 4096")]
    EnvironmentTooLarge(usize),
    /// An asynchronous invocation is retried 0 to 2 times (`MaximumRetryAttempts`).
    #[error("maximum retry attempts must be between 0 and 2, not {0}")]
    RetryAttempts(u32),
}

/// Builds a [`Function`]; [`FunctionBuilder::build`] validates it.
#[derive(Debug, Clone)]
pub struct FunctionBuilder {
    function: Function,
}

/// The version name of the unpublished, mutable configuration.
pub(crate) const LATEST: &str = "$LATEST";

/// Variables Lambda sets itself and refuses from the user: its list of reserved runtime
/// environment variables. `TZ`, `LANG`, `PATH` and `LD_LIBRARY_PATH` are set too but not
/// reserved: a function may change them.
const RESERVED: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The most bytes a function's environment variables may take: Lambda's 4 KB, measured over
/// the JSON object of the variables (`{"KEY":"value",...}`, keys and values with their quotes,
/// colons and commas), the string Lambda's refusal quotes as "String measured".
pub(crate) const ENV_LIMIT_BYTES: usize = 4096;

/// The execution role's credentials a sandbox gets as `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. The secret parts stay out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
}

impl Credentials {
    /// The static credentials every local endpoint (DynamoDB Local, the mocks) accepts.
    fn placeholder() -> Self {
        Self { access_key_id: "local".to_owned(), secret_access_key: "local".to_owned(), session_token: None }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Function {
    /// A builder for a function named `name` whose bootstrap is `bin`: 128 MB, 3 seconds, as
    /// Lambda's defaults.
    pub fn builder(name: impl Into<String>, bin: impl Into<PathBuf>) -> FunctionBuilder {
        FunctionBuilder {
            function: Function {
                name: name.into(),
                bin: bin.into(),
                memory_mb: 128,
                timeout: Duration::from_secs(3),
                init_timeout: Duration::from_secs(10),
                env: Vec::new(),
                credentials: Credentials::placeholder(),
                reserved_concurrency: None,
                region: crate::dynamodb::default_region(),
                account: "000000000000".to_owned(),
                freeze: true,
                active_tracing: false,
                version: LATEST.to_owned(),
                max_retry_attempts: 2,
                retry_delay: Duration::from_secs(60),
            },
        }
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bootstrap binary.
    pub fn bin(&self) -> &std::path::Path {
        &self.bin
    }

    /// The memory size in MB.
    pub fn memory_mb(&self) -> u32 {
        self.memory_mb
    }

    /// The invocation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The user environment variables.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// How many times a failed asynchronous invocation is retried (`MaximumRetryAttempts`).
    pub fn max_retry_attempts(&self) -> u32 {
        self.max_retry_attempts
    }

    /// The version this configuration belongs to: `$LATEST`, or a published `1`, `2`, ...
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The function's ARN, as Lambda spells it for `$LATEST`.
    pub fn arn(&self) -> String {
        format!("arn:aws:lambda:{}:{}:function:{}", self.region, self.account, self.name)
    }

    /// The ARN qualified by a version or an alias (`...:function:payments:live`).
    ///
    /// # Examples
    ///
    /// ```
    /// use lift_harness::lambda::Function;
    ///
    /// let f = Function::builder("payments", "bootstrap").region("eu-west-1").build()?;
    /// assert_eq!(f.qualified_arn("3"), "arn:aws:lambda:eu-west-1:000000000000:function:payments:3");
    /// # Ok::<(), lift_harness::lambda::FunctionConfigError>(())
    /// ```
    pub fn qualified_arn(&self, qualifier: &str) -> String {
        format!("{}:{qualifier}", self.arn())
    }

    /// The CFS quota (per 100 ms period) this memory size buys: 1,769 MB is one vCPU.
    pub fn cpu_quota_us(&self, period_us: u64) -> u64 {
        (period_us * u64::from(self.memory_mb) / u64::from(super::MB_PER_VCPU)).max(1000)
    }
}

impl FunctionBuilder {
    /// The memory size in MB (128 to 10,240); also the sandbox's memory limit and CPU share.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.function.memory_mb = mb;
        self
    }

    /// The invocation timeout in whole seconds (1 to 900).
    pub fn timeout_secs(mut self, secs: u64) -> Self {
        self.function.timeout = Duration::from_secs(secs);
        self
    }

    /// The bound on the init phase (Lambda's is 10 seconds).
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.function.init_timeout = timeout;
        self
    }

    /// A user environment variable. [`build`](Self::build) refuses one Lambda reserves
    /// (`AWS_REGION`, the credentials, `AWS_LAMBDA_*`, ...) and variables over 4 KB in all
    /// (measured as Lambda does, over their JSON object).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.function.env.push((key.into(), value.into()));
        self
    }

    /// The execution role's credentials, handed to the sandbox as `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and, when given, `AWS_SESSION_TOKEN`. Without them the sandbox
    /// gets the placeholders `local`/`local`, which every local endpoint accepts; never the
    /// credentials of the process running the harness, which the function's role would not
    /// have on Lambda.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift_harness::lambda::Function;
    ///
    /// let f = Function::builder("payments", "bootstrap")
    ///     .credentials("ASIAEXAMPLE", "role-secret", Some("role-session-token".to_owned()))
    ///     .build()?;
    /// assert!(!format!("{f:?}").contains("role-secret"));
    /// # Ok::<(), lift_harness::lambda::FunctionConfigError>(())
    /// ```
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.function.credentials = Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        };
        self
    }

    /// Reserved concurrency: at most this many invocations at once, the rest throttled.
    pub fn reserved_concurrency(mut self, n: u32) -> Self {
        self.function.reserved_concurrency = Some(n);
        self
    }

    /// The region in the ARN and `AWS_REGION` (default: `AWS_REGION`, else `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.function.region = region.into();
        self
    }

    /// Whether idle sandboxes are frozen (on by default, as Lambda does; off only to show
    /// what the freeze prevents).
    pub fn freeze(mut self, on: bool) -> Self {
        self.function.freeze = on;
        self
    }

    /// X-Ray active tracing: every invocation's trace header says `Sampled=1` (off by
    /// default: `Sampled=0`, as a function without active tracing sees it). Lambda would
    /// sample 1 request per second and 5 % of the rest; here every request is traced, so
    /// what the function sends per traced request can be counted.
    pub fn active_tracing(mut self, on: bool) -> Self {
        self.function.active_tracing = on;
        self
    }

    /// How many times a failed asynchronous invocation is run again, 0 to 2
    /// (`MaximumRetryAttempts`; Lambda's default is 2).
    pub fn max_retry_attempts(mut self, n: u32) -> Self {
        self.function.max_retry_attempts = n;
        self
    }

    /// The wait before the first retry of a failed asynchronous invocation; the second waits
    /// twice as long. Lambda waits one minute, then two (the default here too); tests
    /// shorten it.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.function.retry_delay = delay;
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<Function, FunctionConfigError> {
        let f = self.function;
        f.validate()?;
        Ok(f)
    }
}

impl Function {
    /// Checks the limits Lambda enforces on a configuration.
    pub(crate) fn validate(&self) -> Result<(), FunctionConfigError> {
        let f = self;
        let name_ok = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(FunctionConfigError::Name(f.name.clone()));
        }
        if !(128..=10_240).contains(&f.memory_mb) {
            return Err(FunctionConfigError::Memory(f.memory_mb));
        }
        let whole_seconds = f.timeout.subsec_nanos() == 0;
        if !whole_seconds || f.timeout < Duration::from_secs(1) || f.timeout > Duration::from_secs(900) {
            return Err(FunctionConfigError::Timeout(f.timeout));
        }
        if let Some((key, _)) = f.env.iter().find(|(k, _)| RESERVED.contains(&k.as_str())) {
            return Err(FunctionConfigError::ReservedVariable(key.clone()));
        }
        let size = env_json_bytes(&f.env);
        if size > ENV_LIMIT_BYTES {
            return Err(FunctionConfigError::EnvironmentTooLarge(size));
        }
        if f.max_retry_attempts > 2 {
            return Err(FunctionConfigError::RetryAttempts(f.max_retry_attempts));
        }
        Ok(())
    }
}

/// The size of `env` as Lambda measures it: its JSON object, a key set twice counted once
/// (the later value wins, as in the sandbox).
fn env_json_bytes(env: &[(String, String)]) -> usize {
    let object: serde_json::Map<String, serde_json::Value> =
        env.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    serde_json::Value::Object(object).to_string().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_limits_are_enforced_at_build_time() {
        assert!(Function::builder("ok_name-1", "b").build().is_ok());
        assert!(matches!(Function::builder("bad name", "b").build(), Err(FunctionConfigError::Name(_))));
        assert!(matches!(Function::builder("", "b").build(), Err(FunctionConfigError::Name(_))));
        let memory = Function::builder("f", "b").memory_mb(10_241).build();
        assert_eq!(memory.unwrap_err(), FunctionConfigError::Memory(10_241));
        assert!(Function::builder("f", "b").timeout_secs(0).build().is_err());
        assert!(Function::builder("f", "b").timeout_secs(901).build().is_err());
        let reserved = Function::builder("f", "b").env("AWS_LAMBDA_RUNTIME_API", "x").build();
        assert_eq!(
            reserved.unwrap_err(),
            FunctionConfigError::ReservedVariable("AWS_LAMBDA_RUNTIME_API".into())
        );
        for key in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            let reserved = Function::builder("f", "b").env("USER_VAR", "x").env(key, "x").build();
            assert_eq!(reserved.unwrap_err(), FunctionConfigError::ReservedVariable(key.into()));
        }
        assert!(Function::builder("f", "b").env("TZ", "Europe/Paris").env("LANG", "C").build().is_ok());
        assert_eq!(Function::builder("f", "b").build().unwrap().max_retry_attempts(), 2);
        assert!(Function::builder("f", "b").max_retry_attempts(0).build().is_ok());
        let retries = Function::builder("f", "b").max_retry_attempts(3).build();
        assert_eq!(retries.unwrap_err(), FunctionConfigError::RetryAttempts(3));
    }

    #[test]
    fn environment_variables_over_4_kb_as_json_are_refused() {
        // `{"BIG":"..."}` takes 10 bytes besides the value.
        let sized = |value_len: usize| Function::builder("f", "b").env("BIG", "x".repeat(value_len)).build();
        assert!(sized(ENV_LIMIT_BYTES - 10).is_ok());
        assert_eq!(sized(ENV_LIMIT_BYTES - 9).unwrap_err(), FunctionConfigError::EnvironmentTooLarge(4097));
        // Keys count too: 64 variables of 60-byte values fit by their values alone (3,840
        // bytes), not with their keys.
        let many =
            (0..64).fold(Function::builder("f", "b"), |b, i| b.env(format!("KEY_{i:02}"), "v".repeat(60)));
        assert!(
            matches!(many.build(), Err(FunctionConfigError::EnvironmentTooLarge(n)) if n > ENV_LIMIT_BYTES)
        );
        // The JSON's escapes count: 2,045 quotes take 4,090 bytes escaped.
        let quoted = Function::builder("f", "b").env("Q", "\"".repeat(2045)).build();
        assert_eq!(quoted.unwrap_err(), FunctionConfigError::EnvironmentTooLarge(4098));
    }

    #[test]
    fn the_secret_credentials_stay_out_of_debug_output() {
        let f =
            Function::builder("f", "b").credentials("AKID", "s3cr3t", Some("t0ken".into())).build().unwrap();
        let shown = format!("{f:?}");
        assert!(shown.contains("AKID") && !shown.contains("s3cr3t") && !shown.contains("t0ken"), "{shown}");
        let default = Function::builder("f", "b").build().unwrap();
        assert_eq!(default.credentials, Credentials::placeholder());
    }

    #[test]
    fn cpu_quota_is_proportional_to_memory() {
        let full = Function::builder("f", "b").memory_mb(1769).build().unwrap();
        let half = Function::builder("f", "b").memory_mb(884).build().unwrap();
        assert_eq!(full.cpu_quota_us(100_000), 100_000);
        assert_eq!(half.cpu_quota_us(100_000), 49_971);
        let max = Function::builder("f", "b").memory_mb(10_240).build().unwrap();
        assert_eq!(max.cpu_quota_us(100_000), 578_858);
    }
}
