//! The cache and its builder.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use tokio::time::Instant;

use super::value::SecretValue;
use super::{SecretBytes, SecretString, SecretsError};

/// How long a value is served before it is fetched again, by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// How long past its TTL a value may still be served while refreshes fail, by default.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(15 * 60);
/// How long a failed fetch keeps the cache from calling again, by default.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// A Secrets Manager client with a TTL cache, shared by every invocation of the process.
///
/// - a value is fetched once, then served from memory for the TTL;
/// - after the TTL the next [`get`](SecretsCache::get) fetches it again (one call for
///   all concurrent callers of the same secret) and so picks up rotations;
/// - if that refresh fails for a reason that may pass (throttled, unreachable, a 5xx), the
///   last value is served with a warning for up to `max_staleness` past its TTL; past that
///   bound, or with nothing cached, `get` fails;
/// - if Secrets Manager answers that the secret is gone or no longer readable
///   (`ResourceNotFoundException`, `AccessDeniedException`, `InvalidRequestException` for
///   a secret marked for deletion, `DecryptionFailure` for a KMS key that is disabled or
///   no longer usable), the cached value is dropped and never served again: `get` fails
///   until a fetch succeeds;
/// - every failed fetch, with or without a cached value, keeps the cache from calling again
///   for `retry_backoff`: meanwhile callers get the stale value (when allowed above) or the
///   same error, so a failing secret costs one call per backoff, not one per caller.
///
/// Ages are measured with `tokio::time::Instant`, so tests can move time with tokio's
/// clock. Values are never logged; errors carry the secret id, never a value.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(client: aws_sdk_secretsmanager::Client) -> Result<(), lift::security::secrets::SecretsError> {
/// use std::time::Duration;
/// use lift::security::secrets::SecretsCache;
///
/// let secrets = SecretsCache::builder()
///     .prefetch(["db", "fingerprint-key"])
///     .ttl(Duration::from_secs(300))
///     .build(client)
///     .await?;
/// let password = secrets.get("db").await?;
/// connect(password.expose());
/// # Ok(()) }
/// # fn connect(_: &str) {}
/// ```
#[derive(Clone)]
pub struct SecretsCache {
    inner: Arc<Inner>,
}

struct Inner {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    max_staleness: Duration,
    retry_backoff: Duration,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    state: RwLock<State>,
    /// Held while fetching, so concurrent callers of one secret make one call.
    refresh: tokio::sync::Mutex<()>,
}

/// What is known of one secret: the last value fetched, and the last fetch that failed
/// since (kept even with no value, so callers within the backoff do not call again).
#[derive(Clone, Default)]
struct State {
    entry: Option<Entry>,
    failure: Option<Failure>,
}

#[derive(Clone)]
struct Entry {
    value: SecretValue,
    fetched_at: Instant,
}

#[derive(Clone)]
struct Failure {
    error: SecretsError,
    at: Instant,
}

/// What a caller gets without calling Secrets Manager, if anything.
enum Cached {
    Serve(SecretValue),
    Fail(SecretsError),
    Fetch,
}

impl std::fmt::Debug for SecretsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> =
            self.inner.slots.read().map(|s| s.keys().cloned().collect()).unwrap_or_default();
        f.debug_struct("SecretsCache")
            .field("ttl", &self.inner.ttl)
            .field("max_staleness", &self.inner.max_staleness)
            .field("cached", &ids)
            .finish()
    }
}

impl SecretsCache {
    /// A builder.
    pub fn builder() -> SecretsCacheBuilder {
        SecretsCacheBuilder::default()
    }

    /// A secret string, from the cache while fresh.
    pub async fn get(&self, id: &str) -> Result<SecretString, SecretsError> {
        match self.value(id).await? {
            SecretValue::Text(text) => Ok(text),
            SecretValue::Binary(_) => Err(SecretsError::NotText { id: id.to_owned() }),
        }
    }

    /// A secret's bytes: `SecretBinary`, or the UTF-8 of `SecretString`.
    pub async fn get_bytes(&self, id: &str) -> Result<SecretBytes, SecretsError> {
        Ok(match self.value(id).await? {
            SecretValue::Text(text) => SecretBytes::new(text.expose().as_bytes()),
            SecretValue::Binary(bytes) => bytes,
        })
    }

    /// Fetches a secret now, whatever its age or a recent failure (after a known rotation,
    /// say). A failure is recorded as one by [`get`](Self::get) is.
    pub async fn refresh(&self, id: &str) -> Result<(), SecretsError> {
        let slot = self.slot(id);
        let _fetching = slot.refresh.lock().await;
        self.fetch_into(id, &slot).await.map(drop)
    }

    async fn value(&self, id: &str) -> Result<SecretValue, SecretsError> {
        let slot = self.slot(id);
        match self.cached(&slot) {
            Cached::Serve(value) => return Ok(value),
            Cached::Fail(err) => return Err(err),
            Cached::Fetch => {}
        }
        let _fetching = slot.refresh.lock().await;
        // Another caller may have refreshed it, or just failed to, while we waited.
        match self.cached(&slot) {
            Cached::Serve(value) => return Ok(value),
            Cached::Fail(err) => return Err(err),
            Cached::Fetch => {}
        }
        match self.fetch_into(id, &slot).await {
            Ok(value) => Ok(value),
            Err(err) => match self.stale(&slot.current()) {
                Some(value) => {
                    tracing::warn!(secret_id = id, error = %err, "secret refresh failed; serving the cached value");
                    Ok(value)
                }
                None => Err(err),
            },
        }
    }

    /// Calls Secrets Manager and records the outcome: the value, or the failure (and, for a
    /// secret that is gone or no longer readable, no value any more).
    async fn fetch_into(&self, id: &str, slot: &Slot) -> Result<SecretValue, SecretsError> {
        let outcome = self.fetch(id).await;
        let mut state = slot.state.write().unwrap_or_else(|e| e.into_inner());
        match &outcome {
            Ok(value) => {
                *state = State {
                    entry: Some(Entry { value: value.clone(), fetched_at: Instant::now() }),
                    failure: None,
                };
            }
            Err(error) => {
                if revoked(error) {
                    state.entry = None;
                }
                state.failure = Some(Failure { error: error.clone(), at: Instant::now() });
            }
        }
        outcome
    }

    /// What the cache answers without a call: a fresh value; while the last fetch failed
    /// less than the backoff ago, the stale value if it may be served, else that failure's
    /// error; otherwise nothing (fetch).
    fn cached(&self, slot: &Slot) -> Cached {
        let state = slot.current();
        if let Some(entry) = &state.entry {
            if entry.fetched_at.elapsed() < self.inner.ttl {
                return Cached::Serve(entry.value.clone());
            }
        }
        match &state.failure {
            Some(failure) if failure.at.elapsed() < self.inner.retry_backoff => match self.stale(&state) {
                Some(value) => Cached::Serve(value),
                None => Cached::Fail(failure.error.clone()),
            },
            _ => Cached::Fetch,
        }
    }

    /// The cached value while it is inside TTL + max staleness, when the last failure (if
    /// any) allows a stale value at all.
    fn stale(&self, state: &State) -> Option<SecretValue> {
        if state.failure.as_ref().is_some_and(|f| revoked(&f.error)) {
            return None;
        }
        let entry = state.entry.as_ref()?;
        (entry.fetched_at.elapsed() < self.inner.ttl + self.inner.max_staleness).then(|| entry.value.clone())
    }

    fn slot(&self, id: &str) -> Arc<Slot> {
        if let Some(slot) = self.inner.slots.read().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Arc::clone(slot);
        }
        let mut slots = self.inner.slots.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(slots.entry(id.to_owned()).or_default())
    }

    async fn fetch(&self, id: &str) -> Result<SecretValue, SecretsError> {
        let out = self
            .inner
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|err| fetch_error(id, &err))?;
        if let Some(text) = out.secret_string() {
            return Ok(SecretValue::Text(SecretString::new(text)));
        }
        if let Some(bytes) = out.secret_binary() {
            return Ok(SecretValue::Binary(SecretBytes::new(bytes.as_ref())));
        }
        Err(SecretsError::Empty { id: id.to_owned() })
    }
}

impl Slot {
    fn current(&self) -> State {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Whether a failure says the secret is gone or no longer readable by this function, rather
/// than that the service could not answer now: after one of these no cached value is
/// served, however fresh, so a deleted or revoked secret stops working at the next fetch.
///
/// `InvalidRequestException` is what `GetSecretValue` answers for a secret marked for
/// deletion (during its recovery window); `DecryptionFailure`, for a KMS key that is
/// disabled or that the function may no longer use.
fn revoked(err: &SecretsError) -> bool {
    match err {
        SecretsError::NotFound { .. } | SecretsError::Empty { .. } => true,
        SecretsError::Fetch { reason, .. } => {
            matches!(
                reason.as_str(),
                "AccessDeniedException" | "InvalidRequestException" | "DecryptionFailure"
            )
        }
        SecretsError::NotText { .. } | SecretsError::InvalidConfig(_) => false,
    }
}

/// The error of a failed call: the AWS code or the kind of failure, never the SDK error
/// itself (a response error holds the raw response, which could hold the value).
fn fetch_error<E: ProvideErrorMetadata, R>(id: &str, err: &SdkError<E, R>) -> SecretsError {
    let id = id.to_owned();
    match err {
        SdkError::ServiceError(e) if e.err().code() == Some("ResourceNotFoundException") => {
            SecretsError::NotFound { id }
        }
        SdkError::ServiceError(e) => {
            SecretsError::Fetch { id, reason: e.err().code().unwrap_or("service error").to_owned() }
        }
        SdkError::TimeoutError(_) => SecretsError::Fetch { id, reason: "timeout".into() },
        SdkError::DispatchFailure(_) => SecretsError::Fetch { id, reason: "dispatch failure".into() },
        SdkError::ResponseError(_) => SecretsError::Fetch { id, reason: "unreadable response".into() },
        _ => SecretsError::Fetch { id, reason: "request not sent".into() },
    }
}

/// Configures a [`SecretsCache`]. Defaults: TTL 5 min, max staleness 15 min, retry
/// backoff 5 s, nothing prefetched.
///
/// [`SecretsCacheBuilder::from_env`] reads settings from the environment; methods called
/// afterwards win over it.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SecretsCacheBuilder {
    prefetch: Vec<String>,
    ttl: Option<Duration>,
    max_staleness: Option<Duration>,
    retry_backoff: Option<Duration>,
}

impl SecretsCacheBuilder {
    /// A builder seeded from `LIFT_SECRETS_TTL_SECS`, `LIFT_SECRETS_MAX_STALENESS_SECS` and
    /// `LIFT_SECRETS_PREFETCH` (comma-separated secret ids).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = lift::security::secrets::SecretsCacheBuilder::from_env().unwrap();
    /// # let _ = builder;
    /// ```
    pub fn from_env() -> Result<Self, SecretsError> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecretsError> {
        let env = crate::config::Env::from_lookup(lookup);
        let var = |name: &str| env.get(name);
        let secs = |name: &str, msg: &'static str| -> Result<Option<Duration>, SecretsError> {
            var(name)
                .map(|v| v.parse().map(Duration::from_secs).map_err(|_| SecretsError::InvalidConfig(msg)))
                .transpose()
        };
        Ok(Self {
            ttl: secs("LIFT_SECRETS_TTL_SECS", "LIFT_SECRETS_TTL_SECS must be a number")?,
            max_staleness: secs(
                "LIFT_SECRETS_MAX_STALENESS_SECS",
                "LIFT_SECRETS_MAX_STALENESS_SECS must be a number",
            )?,
            prefetch: var("LIFT_SECRETS_PREFETCH")
                .map(|ids| {
                    ids.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
                })
                .unwrap_or_default(),
            retry_backoff: None,
        })
    }

    /// Secrets to fetch while building: the build fails if one cannot be fetched, so a
    /// function with a missing secret fails at init, not on its first request.
    pub fn prefetch<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.prefetch.extend(ids.into_iter().map(Into::into));
        self
    }

    /// How long a value is served before it is fetched again.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How long past its TTL a value may be served while refreshes fail.
    pub fn max_staleness(mut self, staleness: Duration) -> Self {
        self.max_staleness = Some(staleness);
        self
    }

    /// How long a failed fetch keeps the cache from calling again: meanwhile callers get the
    /// stale value where one may be served, else the failure's error.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = Some(backoff);
        self
    }

    /// Builds the cache over `client` and fetches the prefetched secrets, concurrently.
    pub async fn build(self, client: aws_sdk_secretsmanager::Client) -> Result<SecretsCache, SecretsError> {
        let ttl = self.ttl.unwrap_or(DEFAULT_TTL);
        if ttl.is_zero() {
            return Err(SecretsError::InvalidConfig("the ttl must be positive"));
        }
        let cache = SecretsCache {
            inner: Arc::new(Inner {
                client,
                ttl,
                max_staleness: self.max_staleness.unwrap_or(DEFAULT_MAX_STALENESS),
                retry_backoff: self.retry_backoff.unwrap_or(DEFAULT_RETRY_BACKOFF),
                slots: RwLock::default(),
            }),
        };
        futures_util::future::try_join_all(self.prefetch.iter().map(|id| cache.refresh(id))).await?;
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(reason: &str) -> SecretsError {
        SecretsError::Fetch { id: "db".into(), reason: reason.into() }
    }

    #[test]
    fn only_answers_that_the_secret_is_gone_or_unreadable_forbid_stale_values() {
        for gone in [
            SecretsError::NotFound { id: "db".into() },
            SecretsError::Empty { id: "db".into() },
            fetch("AccessDeniedException"),
            fetch("InvalidRequestException"),
            fetch("DecryptionFailure"),
        ] {
            assert!(revoked(&gone), "{gone}");
        }
        for passing in [
            fetch("ThrottlingException"),
            fetch("InternalServiceError"),
            fetch("ServiceUnavailable"),
            fetch("timeout"),
            fetch("dispatch failure"),
            fetch("unreadable response"),
        ] {
            assert!(!revoked(&passing), "{passing}");
        }
    }
}
