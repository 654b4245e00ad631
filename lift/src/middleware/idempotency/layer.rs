//! The layer and its builder.

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderName, Method};
use tower_layer::Layer;

use super::record::RecordStore;
use super::service::{Config, Unrouted};
use super::{Idempotency, InvalidConfig, KeySource, ResponseCipher};

/// How long completed records are replayed by default: 24 hours.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long an in-progress lock lasts when the request has no deadline (outside Lambda).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest response body stored for replay (a DynamoDB item holds at most 400 KB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Applies [`Idempotency`] to services; every service it makes shares one record table.
///
/// It belongs per route, innermost, just outside the handler (see the
/// [module docs](super)): [`lift::stack()`](crate::stack()) puts it there.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "auth")]
/// # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use lift::middleware::auth::require_scope;
/// use lift::middleware::idempotency::IdempotencyLayer;
/// use lift::{App, Request, Response, RouteGroup};
///
/// async fn create(_req: Request) -> Response { Response::default() }
///
/// let layer = IdempotencyLayer::builder()
///     .client(client)
///     .ttl(Duration::from_secs(24 * 3600))
///     .require_key(true)
///     .build()?;
/// // Per route, inside the scope check and the stack's other per-route layers.
/// let stack = lift::stack().idempotency(layer).build()?;
/// let payments = stack.guard(RouteGroup::new("/payments").post("/", create), require_scope("payments:write"));
/// let app = stack.apply(App::new().group(payments));
/// # let _ = app; Ok(()) }
/// ```
#[derive(Clone)]
pub struct IdempotencyLayer {
    pub(super) config: Arc<Config>,
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("IdempotencyLayer")
            .field("table", &c.store.table)
            .field("key_source", &c.key_source)
            .field("methods", &c.methods)
            .field("ttl", &c.ttl)
            .finish_non_exhaustive()
    }
}

impl IdempotencyLayer {
    /// A builder.
    pub fn builder() -> IdempotencyBuilder {
        IdempotencyBuilder::default()
    }

    /// How many keyed requests reached the layer without the router's
    /// [`MatchedRoute`](crate::MatchedRoute): mounted app-wide rather than per route. The
    /// first one logs a warning. Such a record names its route by the method alone.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::middleware::idempotency::InvalidConfig> {
    /// use lift::middleware::idempotency::IdempotencyLayer;
    ///
    /// let layer = IdempotencyLayer::builder().client(client).build()?;
    /// assert_eq!(layer.unrouted_requests(), 0);
    /// # Ok(()) }
    /// ```
    pub fn unrouted_requests(&self) -> u64 {
        self.config.unrouted.count()
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::from_parts(inner, Arc::clone(&self.config))
    }
}

/// Configures an [`IdempotencyLayer`].
///
/// Required: a DynamoDB client. Defaults: table
/// [`tables::idempotency`](crate::store::tables::idempotency)`().resolve_name()`, key
/// from the `Idempotency-Key` header, POST and PATCH only, requests without a key pass
/// through, completed records kept 24 h, locks without a deadline 60 s, replayed headers
/// `Content-Type`, `Content-Language` and `Location`, responses up to 256 KiB.
///
/// [`IdempotencyBuilder::from_env`] reads settings from the environment; methods called
/// afterwards win over it.
#[derive(Default)]
#[must_use]
pub struct IdempotencyBuilder {
    client: Option<aws_sdk_dynamodb::Client>,
    table: Option<String>,
    key_source: Option<KeySource>,
    methods: Option<Vec<Method>>,
    ttl: Option<Duration>,
    lock_timeout: Option<Duration>,
    replay_headers: Vec<HeaderName>,
    require_key: Option<bool>,
    allow_anonymous: bool,
    max_response_bytes: Option<usize>,
    cipher: Option<Arc<dyn ResponseCipher>>,
    payload_key: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for IdempotencyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyBuilder")
            .field("table", &self.table)
            .field("key_source", &self.key_source)
            .field("methods", &self.methods)
            .field("ttl", &self.ttl)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("cipher", &self.cipher.is_some())
            .field("payload_key", &self.payload_key.is_some())
            .finish_non_exhaustive()
    }
}

impl IdempotencyBuilder {
    /// A builder seeded from the environment:
    ///
    /// | Variable | |
    /// |---|---|
    /// | `LIFT_IDEMPOTENCY_TTL_SECS` | how long completed records are replayed |
    /// | `LIFT_IDEMPOTENCY_HEADER` | the key header |
    /// | `LIFT_IDEMPOTENCY_JSON_FIELDS` | comma-separated JSON pointers to key on instead |
    /// | `LIFT_IDEMPOTENCY_METHODS` | comma-separated methods (default `POST,PATCH`) |
    /// | `LIFT_IDEMPOTENCY_REQUIRE_KEY` | `true` to refuse requests without a key |
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::middleware::idempotency::InvalidConfig> {
    /// use lift::middleware::idempotency::IdempotencyBuilder;
    ///
    /// let layer = IdempotencyBuilder::from_env()?.client(client).build()?;
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Result<Self, InvalidConfig> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidConfig> {
        let env = crate::config::Env::from_lookup(lookup);
        let var = |name: &str| env.get(name);
        let mut builder = Self::default();
        if let Some(secs) = var("LIFT_IDEMPOTENCY_TTL_SECS") {
            let secs = secs.parse().map_err(|_| {
                InvalidConfig::new("idempotency", "LIFT_IDEMPOTENCY_TTL_SECS must be a number")
            })?;
            builder.ttl = Some(Duration::from_secs(secs));
        }
        if let Some(name) = var("LIFT_IDEMPOTENCY_HEADER") {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                InvalidConfig::new("idempotency", "LIFT_IDEMPOTENCY_HEADER is not a header name")
            })?;
            builder.key_source = Some(KeySource::Header(name));
        }
        if let Some(fields) = var("LIFT_IDEMPOTENCY_JSON_FIELDS") {
            builder.key_source = Some(KeySource::json_fields(fields.split(',').map(str::trim)));
        }
        if let Some(methods) = var("LIFT_IDEMPOTENCY_METHODS") {
            let parsed: Result<Vec<_>, _> =
                methods.split(',').map(|m| Method::from_bytes(m.trim().as_bytes())).collect();
            builder.methods = Some(parsed.map_err(|_| {
                InvalidConfig::new("idempotency", "LIFT_IDEMPOTENCY_METHODS must list HTTP methods")
            })?);
        }
        if let Some(flag) = var("LIFT_IDEMPOTENCY_REQUIRE_KEY") {
            builder.require_key = Some(matches!(flag.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        }
        Ok(builder)
    }

    /// The DynamoDB client.
    pub fn client(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The physical table name.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// Where the key comes from (default: the `Idempotency-Key` header).
    pub fn key_source(mut self, source: KeySource) -> Self {
        self.key_source = Some(source);
        self
    }

    /// The methods made idempotent (default: POST and PATCH); others pass through.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = Some(methods.into_iter().collect());
        self
    }

    /// How long a completed record is replayed (default 24 h).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How long an in-progress lock lasts when the request has no deadline (default 60 s).
    /// On Lambda the lock ends at the invocation's deadline instead.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Adds a response header to store and replay (besides `Content-Type`,
    /// `Content-Language` and `Location`).
    pub fn replay_header(mut self, name: HeaderName) -> Self {
        self.replay_headers.push(name);
        self
    }

    /// Whether a request without a key is refused with 400 (default: it passes through).
    pub fn require_key(mut self, required: bool) -> Self {
        self.require_key = Some(required);
        self
    }

    /// Whether requests without an authenticated principal are made idempotent, in one
    /// scope per trusted tenant (default: refused with 401, since records are scoped to
    /// the principal and the layer belongs inside authentication). Only for services whose
    /// callers are never authenticated: every anonymous caller then shares the keys.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// Seals stored response bodies with `cipher` (for answers that carry personal data:
    /// with a data key per subject, erasing the subject makes its stored answers
    /// unreadable, and their replay answers 410).
    pub fn response_cipher(mut self, cipher: impl ResponseCipher) -> Self {
        self.cipher = Some(Arc::new(cipher));
        self
    }

    /// Keys the digest of each request's body and query that a repeat must match: the record
    /// holds `k:` and an HMAC-SHA256 under `key` instead of a plain SHA-256.
    ///
    /// Set it when bodies carry cardholder or other guessable sensitive data: a plain digest
    /// of a body whose card number the rest of the record narrows to a few billion
    /// candidates is reversed in hours on one GPU (PCI DSS 3.5.1.1 asks for keyed hashes).
    /// Records written before the key was set are still matched by their plain digest, so
    /// turning it on does not refuse the retries in flight. At least 16 bytes.
    pub fn payload_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.payload_key = Some(Arc::from(key.as_ref()));
        self
    }

    /// The largest response body stored (default 256 KiB).
    ///
    /// A larger successful response is not stored, yet its record completes all the same:
    /// the operation ran, and a retry must not run it again. A retry under the key gets the
    /// original status and `Location` with an empty body, `Idempotent-Replayed: true` and
    /// [`Idempotent-Response-Omitted: true`](super::IDEMPOTENT_RESPONSE_OMITTED); the client
    /// reads the result through the resource itself.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<IdempotencyLayer, InvalidConfig> {
        let client = self.client.ok_or_else(|| InvalidConfig::new("idempotency", "set a dynamodb client"))?;
        let ttl = self.ttl.unwrap_or(DEFAULT_TTL);
        if ttl < Duration::from_secs(1) {
            return Err(InvalidConfig::new("idempotency", "the ttl must be at least 1 s"));
        }
        let lock_timeout = self.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT);
        if lock_timeout < Duration::from_secs(1) {
            return Err(InvalidConfig::new("idempotency", "the lock timeout must be at least 1 s"));
        }
        let methods = self.methods.unwrap_or_else(|| vec![Method::POST, Method::PATCH]);
        if methods.is_empty() {
            return Err(InvalidConfig::new("idempotency", "list at least one method"));
        }
        let key_source = self.key_source.unwrap_or_default();
        if matches!(&key_source, KeySource::JsonFields(f) if f.is_empty() || f.iter().any(|p| !p.starts_with('/')))
        {
            return Err(InvalidConfig::new(
                "idempotency",
                "json fields must be non-empty JSON pointers such as /customer/id",
            ));
        }
        let max_response_bytes = self.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if max_response_bytes > 350 * 1024 {
            return Err(InvalidConfig::new(
                "idempotency",
                "responses above 350 KiB do not fit in a DynamoDB item",
            ));
        }
        let mut replay_headers = vec![header::CONTENT_TYPE, header::CONTENT_LANGUAGE, header::LOCATION];
        for name in self.replay_headers {
            if name == header::SET_COOKIE || name == header::AUTHORIZATION {
                return Err(InvalidConfig::new(
                    "idempotency",
                    "credentials and cookies are never stored for replay",
                ));
            }
            if !replay_headers.contains(&name) {
                replay_headers.push(name);
            }
        }
        if self.payload_key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(InvalidConfig::new("idempotency", "the payload key must be at least 16 bytes"));
        }
        let table = self.table.unwrap_or_else(|| crate::store::tables::idempotency().resolve_name());
        Ok(IdempotencyLayer {
            config: Arc::new(Config {
                store: RecordStore { client, table },
                key_source,
                methods,
                ttl,
                lock_timeout,
                replay_headers,
                require_key: self.require_key.unwrap_or(false),
                allow_anonymous: self.allow_anonymous,
                max_response_bytes,
                cipher: self.cipher,
                payload_key: self.payload_key,
                unrouted: Unrouted::default(),
            }),
        })
    }
}
