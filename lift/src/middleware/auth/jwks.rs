//! An issuer's JWK set: parsed into verification keys, cached with a TTL, refetched when a
//! token names an unknown `kid` (at most once per cooldown), served stale while the issuer
//! is unreachable, but never longer than the max staleness past the TTL.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use tokio::time::Instant;

use super::algorithm::Algorithm;
use super::error::{AuthError, FetchError};
use super::fetch::Fetch;

/// A key that verifies one algorithm, decided by the key itself (its `kty`, `crv` and
/// `alg`, or the configured secret), never by a token.
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    material: Material,
}

enum Material {
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
    EcP256(UnparsedPublicKey<Vec<u8>>),
    Ed25519(UnparsedPublicKey<Vec<u8>>),
    Hmac(ring::hmac::Key),
}

impl VerifyKey {
    /// The key for an HS256 secret from configuration.
    pub(crate) fn hs256(secret: &[u8]) -> Self {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        Self { kid: None, alg: Algorithm::Hs256, material: Material::Hmac(key) }
    }

    /// Whether `signature` (the raw bytes) signs `message` under this key's algorithm.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Rsa(key) => key.verify(&sig::RSA_PKCS1_2048_8192_SHA256, message, signature).is_ok(),
            Material::EcP256(key) | Material::Ed25519(key) => key.verify(message, signature).is_ok(),
            // Constant-time comparison.
            Material::Hmac(key) => ring::hmac::verify(key, message, signature).is_ok(),
        }
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

fn b64(value: Option<&String>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value?.trim_end_matches('=')).ok()
}

impl RawJwk {
    /// The key, if it is a signature key Lift can use for an allowed algorithm. Symmetric
    /// (`oct`) keys are never taken from a JWKS.
    fn into_key(self, allowed: &[Algorithm]) -> Option<VerifyKey> {
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        if self.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|o| o == "verify")) {
            return None;
        }
        let (alg, material) = match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => {
                let (n, e) = (b64(self.n.as_ref())?, b64(self.e.as_ref())?);
                let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
                let e: Vec<u8> = e.into_iter().skip_while(|b| *b == 0).collect();
                // Below 2048 bits an RSA key is breakable; refuse it rather than trust it.
                if n.len() * 8 < 2048 || e.is_empty() {
                    return None;
                }
                (Algorithm::Rs256, Material::Rsa(RsaPublicKeyComponents { n, e }))
            }
            ("EC", Some("P-256")) => {
                let (x, y) = (b64(self.x.as_ref())?, b64(self.y.as_ref())?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let point = [&[0x04][..], &x, &y].concat();
                (
                    Algorithm::Es256,
                    Material::EcP256(UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)),
                )
            }
            ("OKP", Some("Ed25519")) => {
                let x = b64(self.x.as_ref())?;
                if x.len() != 32 {
                    return None;
                }
                (Algorithm::EdDsa, Material::Ed25519(UnparsedPublicKey::new(&sig::ED25519, x)))
            }
            _ => return None,
        };
        if self.alg.as_deref().is_some_and(|a| a != alg.as_str()) || !allowed.contains(&alg) {
            return None;
        }
        Some(VerifyKey { kid: self.kid, alg, material })
    }
}

/// Parses a JWK set, keeping the keys Lift can use for the allowed algorithms and
/// skipping the others (an issuer may publish encryption keys or newer key types).
pub(crate) fn parse_key_set(bytes: &[u8], allowed: &[Algorithm]) -> Option<Vec<Arc<VerifyKey>>> {
    let set: RawSet = serde_json::from_slice(bytes).ok()?;
    let keys = set
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<RawJwk>(value).ok())
        .filter_map(|jwk| jwk.into_key(allowed))
        .map(Arc::new)
        .collect();
    Some(keys)
}

/// The key for a token's `kid`; a token without one matches a set of exactly one key.
fn find(keys: &[Arc<VerifyKey>], kid: Option<&str>) -> Option<Arc<VerifyKey>> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned(),
        None if keys.len() == 1 => keys.first().cloned(),
        None => None,
    }
}

#[derive(Default)]
struct State {
    keys: Vec<Arc<VerifyKey>>,
    fetched_at: Option<Instant>,
    /// The last fetch after which a token's `kid` was still unknown.
    last_refetch: Option<Instant>,
    failed_at: Option<Instant>,
    last_error: Option<FetchError>,
    /// Counts completed fetch attempts, so waiters can tell one happened while they waited.
    generation: u64,
}

/// What a lookup in the cache found.
pub(crate) enum Lookup {
    /// The key to verify with.
    Found(Arc<VerifyKey>),
    /// The cache cannot answer without fetching.
    Fetch,
    /// No such key, and no fetch allowed now.
    Unknown,
    /// No usable keys (none, or past the max staleness), and the last fetch failed.
    Unavailable(FetchError),
}

/// The cached JWK set of one issuer.
pub(crate) struct JwksCache {
    url: http::Uri,
    ttl: Duration,
    /// TTL + max staleness: how long after a successful fetch its keys may be used at all.
    usable_for: Duration,
    cooldown: Duration,
    timeout: Duration,
    allowed: Vec<Algorithm>,
    fetcher: Arc<dyn Fetch>,
    state: RwLock<State>,
    fetching: tokio::sync::Mutex<()>,
}

impl JwksCache {
    pub(crate) fn new(
        url: http::Uri,
        ttl: Duration,
        max_staleness: Duration,
        cooldown: Duration,
        timeout: Duration,
        allowed: Vec<Algorithm>,
        fetcher: Arc<dyn Fetch>,
    ) -> Self {
        Self {
            url,
            ttl,
            usable_for: ttl.saturating_add(max_staleness),
            cooldown,
            timeout,
            allowed,
            fetcher,
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// After a failed fetch, wait this long before the next (never longer than the cooldown).
    fn failure_backoff(&self) -> Duration {
        self.cooldown.min(Duration::from_secs(1))
    }

    /// When the cached keys were fetched, if they may be used at all at `now`: a set older
    /// than TTL + max staleness is never used, so a key the issuer removed stops verifying
    /// even while the issuer cannot be reached.
    fn usable_since(&self, st: &State, now: Instant) -> Option<Instant> {
        st.fetched_at.filter(|t| now.duration_since(*t) < self.usable_for)
    }

    /// Looks a key up without any I/O.
    pub(crate) fn lookup(&self, kid: Option<&str>) -> Lookup {
        self.lookup_after(kid, false)
    }

    /// Looks a key up; `fetched` right after a fetch was attempted for this call. A failure
    /// then counts as backing off however short the backoff is: with a zero cooldown there
    /// is none, and a stale key the bound still allows was refused as unknown (401) while
    /// the issuer was down.
    fn lookup_after(&self, kid: Option<&str>, fetched: bool) -> Lookup {
        let now = Instant::now();
        let st = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let backing_off =
            st.failed_at.is_some_and(|t| fetched || now.duration_since(t) < self.failure_backoff());
        let Some(fetched_at) = self.usable_since(&st, now) else {
            return match (&st.last_error, backing_off) {
                (Some(err), true) => Lookup::Unavailable(err.clone()),
                _ => Lookup::Fetch,
            };
        };
        let fresh = now.duration_since(fetched_at) < self.ttl;
        match find(&st.keys, kid) {
            // Stale keys keep working while the issuer cannot be reached, within the bound.
            Some(key) if fresh || backing_off => Lookup::Found(key),
            Some(_) => Lookup::Fetch,
            None if !fresh && !backing_off => Lookup::Fetch,
            None => {
                let cooled = st.last_refetch.is_none_or(|t| now.duration_since(t) >= self.cooldown);
                if cooled && !backing_off {
                    Lookup::Fetch
                } else {
                    Lookup::Unknown
                }
            }
        }
    }

    /// The key for `kid`, fetching the set when the cache says so (once per call).
    pub(crate) async fn resolve(&self, kid: Option<&str>) -> Result<Arc<VerifyKey>, AuthError> {
        match self.lookup(kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Unknown => return Err(AuthError::UnknownKey),
            Lookup::Unavailable(err) => return Err(AuthError::KeysUnavailable(err)),
            Lookup::Fetch => {}
        }
        self.refresh(kid).await;
        match self.lookup_after(kid, true) {
            Lookup::Found(key) => Ok(key),
            Lookup::Unavailable(err) => Err(AuthError::KeysUnavailable(err)),
            Lookup::Unknown | Lookup::Fetch => {
                let st = self.state.read().unwrap_or_else(PoisonError::into_inner);
                match (self.usable_since(&st, Instant::now()), &st.last_error) {
                    (None, Some(err)) => Err(AuthError::KeysUnavailable(err.clone())),
                    _ => Err(AuthError::UnknownKey),
                }
            }
        }
    }

    /// Fetches the set, unless another task completed a fetch while this one waited.
    async fn refresh(&self, kid: Option<&str>) {
        let seen = self.state.read().unwrap_or_else(PoisonError::into_inner).generation;
        let _single_flight = self.fetching.lock().await;
        if self.state.read().unwrap_or_else(PoisonError::into_inner).generation != seen {
            return;
        }
        let result = self.fetcher.fetch(&self.url, self.timeout).await.and_then(|bytes| {
            parse_key_set(&bytes, &self.allowed)
                .ok_or_else(|| FetchError::Invalid { url: self.url.to_string() })
        });
        let now = Instant::now();
        let mut st = self.state.write().unwrap_or_else(PoisonError::into_inner);
        st.generation += 1;
        match result {
            Ok(keys) => {
                tracing::debug!(jwks_url = %self.url, keys = keys.len(), "fetched jwks");
                if find(&keys, kid).is_none() {
                    st.last_refetch = Some(now);
                }
                st.keys = keys;
                st.fetched_at = Some(now);
                st.failed_at = None;
                st.last_error = None;
            }
            Err(err) => {
                tracing::warn!(error = %err, "jwks fetch failed");
                st.failed_at = Some(now);
                st.last_error = Some(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::future::BoxFuture;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A fake issuer: serves whatever set it holds, or fails, and counts fetches. With a
    /// latency, each fetch takes that long (on the paused clock), so concurrent callers
    /// all arrive while one fetch is in flight.
    #[derive(Default)]
    struct FakeIssuer {
        body: Mutex<Option<String>>,
        calls: AtomicUsize,
        latency: Duration,
    }

    impl Fetch for FakeIssuer {
        fn fetch<'a>(&'a self, url: &'a http::Uri, _t: Duration) -> BoxFuture<'a, Result<Bytes, FetchError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let body = self.body.lock().unwrap().clone();
            Box::pin(async move {
                if !self.latency.is_zero() {
                    tokio::time::sleep(self.latency).await;
                }
                body.map(Bytes::from).ok_or(FetchError::Status { url: url.to_string(), status: 500 })
            })
        }
    }

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn set(kids: &[&str]) -> String {
        let keys: Vec<_> = kids
            .iter()
            .map(|k| serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": X, "kid": k}))
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    fn cache(fake: &Arc<FakeIssuer>, ttl: u64, cooldown: u64) -> JwksCache {
        bounded_cache(fake, ttl, 3600, cooldown)
    }

    fn bounded_cache(fake: &Arc<FakeIssuer>, ttl: u64, max_staleness: u64, cooldown: u64) -> JwksCache {
        JwksCache::new(
            "http://127.0.0.1/jwks".parse().unwrap(),
            Duration::from_secs(ttl),
            Duration::from_secs(max_staleness),
            Duration::from_secs(cooldown),
            Duration::from_secs(1),
            vec![Algorithm::EdDsa],
            fake.clone(),
        )
    }

    fn calls(fake: &FakeIssuer) -> usize {
        fake.calls.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_kids_refetch_once_per_cooldown() {
        let fake = Arc::new(FakeIssuer::default());
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        let cache = cache(&fake, 600, 30);
        assert!(cache.resolve(Some("a")).await.is_ok());
        assert!(cache.resolve(Some("a")).await.is_ok());
        assert_eq!(calls(&fake), 1, "a cached key is not fetched again");
        assert_eq!(cache.resolve(Some("zz")).await.err(), Some(AuthError::UnknownKey));
        assert_eq!(calls(&fake), 2, "an unknown kid refetches once");
        for kid in ["x1", "x2", "x3"] {
            assert_eq!(cache.resolve(Some(kid)).await.err(), Some(AuthError::UnknownKey));
        }
        assert_eq!(calls(&fake), 2, "the cooldown holds further refetches");
        *fake.body.lock().unwrap() = Some(set(&["a", "b"]));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(cache.resolve(Some("b")).await.is_ok(), "a rotated key is found after the cooldown");
        assert_eq!(calls(&fake), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_expiry_refetches_and_stale_keys_survive_an_outage() {
        let fake = Arc::new(FakeIssuer::default());
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        let cache = cache(&fake, 60, 30);
        assert!(cache.resolve(Some("a")).await.is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        *fake.body.lock().unwrap() = None;
        assert!(cache.resolve(Some("a")).await.is_ok(), "stale key used while the issuer is down");
        assert_eq!(calls(&fake), 2);
        assert!(cache.resolve(Some("a")).await.is_ok());
        assert_eq!(calls(&fake), 2, "no refetch during the failure backoff");
        tokio::time::advance(Duration::from_secs(2)).await;
        *fake.body.lock().unwrap() = Some(set(&["b"]));
        assert_eq!(
            cache.resolve(Some("a")).await.err(),
            Some(AuthError::UnknownKey),
            "a removed key is gone"
        );
        assert_eq!(calls(&fake), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_keys_stop_verifying_past_the_max_staleness() {
        let fake = Arc::new(FakeIssuer::default());
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        let cache = bounded_cache(&fake, 60, 300, 30);
        assert!(cache.resolve(Some("a")).await.is_ok());
        *fake.body.lock().unwrap() = None;

        // Past the TTL, inside the bound: the stale key still verifies.
        tokio::time::advance(Duration::from_secs(60 + 299)).await;
        assert!(cache.resolve(Some("a")).await.is_ok(), "stale key used inside the bound");
        assert_eq!(calls(&fake), 2, "the refetch was tried");

        // Past the bound: no key, whether a refetch is due or the cache is backing off.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            matches!(cache.resolve(Some("a")).await, Err(AuthError::KeysUnavailable(_))),
            "a key past TTL + max staleness must not verify"
        );
        assert_eq!(calls(&fake), 3);
        assert!(matches!(cache.lookup(Some("a")), Lookup::Unavailable(_)), "nor from the cache alone");
        assert!(matches!(cache.resolve(Some("a")).await, Err(AuthError::KeysUnavailable(_))));
        assert!(matches!(cache.resolve(None).await, Err(AuthError::KeysUnavailable(_))));
        assert!(matches!(cache.resolve(Some("zz")).await, Err(AuthError::KeysUnavailable(_))));
        assert_eq!(calls(&fake), 3, "failures back off");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!matches!(cache.lookup(Some("a")), Lookup::Found(_)), "after the backoff: fetch, no key");

        // The issuer answers again: its keys are fresh again.
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        assert!(cache.resolve(Some("a")).await.is_ok(), "keys are fresh once the issuer answers");
        assert_eq!(calls(&fake), 4);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(matches!(cache.lookup(Some("a")), Lookup::Found(_)), "fresh for a whole TTL");
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_bound_without_a_failure_backoff_is_still_unavailable() {
        // A zero cooldown means no failure backoff: the answer must not fall through to an
        // "unknown key" 401, nor to the stale key.
        let fake = Arc::new(FakeIssuer::default());
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        let cache = bounded_cache(&fake, 60, 0, 0);
        assert!(cache.resolve(Some("a")).await.is_ok());
        *fake.body.lock().unwrap() = None;
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(cache.resolve(Some("a")).await, Err(AuthError::KeysUnavailable(_))));
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        assert!(cache.resolve(Some("a")).await.is_ok());
    }

    /// A zero cooldown (no failure backoff) must not change what the staleness bound
    /// promises: within it, a stale key keeps verifying while the issuer is down. It was
    /// refused as an unknown key (401) once the refetch failed.
    #[tokio::test(start_paused = true)]
    async fn within_the_bound_without_a_failure_backoff_the_stale_key_still_verifies() {
        let fake = Arc::new(FakeIssuer::default());
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        let cache = bounded_cache(&fake, 60, 3600, 0);
        assert!(cache.resolve(Some("a")).await.is_ok());
        *fake.body.lock().unwrap() = None;
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(cache.resolve(Some("a")).await.is_ok(), "stale and within the bound: still verifies");
        assert_eq!(calls(&fake), 2, "the stale set was refetched first");
        assert!(matches!(cache.resolve(Some("b")).await, Err(AuthError::UnknownKey)), "a kid the set lacks");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(
            matches!(cache.resolve(Some("a")).await, Err(AuthError::KeysUnavailable(_))),
            "past the bound"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_keys_and_issuer_down_is_unavailable_then_recovers() {
        let fake = Arc::new(FakeIssuer::default());
        let cache = cache(&fake, 60, 30);
        assert!(matches!(cache.resolve(Some("a")).await, Err(AuthError::KeysUnavailable(_))));
        assert!(matches!(cache.resolve(Some("a")).await, Err(AuthError::KeysUnavailable(_))));
        assert_eq!(calls(&fake), 1, "failures back off");
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(cache.resolve(Some("a")).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_fetch_once() {
        // The fetch sleeps, so every task misses and enters `refresh` while the first
        // fetch is still in flight: without the single flight, each would fetch.
        let fake = Arc::new(FakeIssuer { latency: Duration::from_millis(100), ..FakeIssuer::default() });
        *fake.body.lock().unwrap() = Some(set(&["a"]));
        let cache = Arc::new(cache(&fake, 60, 30));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.resolve(Some("a")).await.is_ok() })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap());
        }
        assert_eq!(calls(&fake), 1, "eight concurrent misses, one fetch");
    }

    #[test]
    fn key_set_parsing_skips_what_it_cannot_use() {
        let rsa_small = serde_json::json!({"kty": "RSA", "kid": "small", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 128]), "e": "AQAB"});
        let rsa_ok = serde_json::json!({"kty": "RSA", "kid": "rsa", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 256]), "e": "AQAB"});
        let rsa_enc = serde_json::json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 256]), "e": "AQAB"});
        let rsa_ps = serde_json::json!({"kty": "RSA", "kid": "ps", "alg": "PS256", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 256]), "e": "AQAB"});
        let oct = serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"});
        let ed = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "ed"});
        let junk = serde_json::json!({"kty": 7});
        let body =
            serde_json::json!({"keys": [rsa_small, rsa_ok, rsa_enc, rsa_ps, oct, ed, junk]}).to_string();
        let all = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa, Algorithm::Hs256];
        let keys = parse_key_set(body.as_bytes(), &all).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["rsa", "ed"]);
        let rs_only = parse_key_set(body.as_bytes(), &[Algorithm::Rs256]).unwrap();
        assert_eq!(rs_only.len(), 1);
        assert!(parse_key_set(b"not json", &all).is_none());
        assert!(find(&keys, None).is_none(), "no kid matches only a single-key set");
    }
}
