//! `lift::security::secrets` against the mocked Secrets Manager: prefetch, cache hits,
//! TTL expiry and rotation, stale values while throttled (bounded) but never once the secret
//! is gone or access to it is denied, one call per backoff while calls fail, and values that
//! never reach an error message or a log line.
//!
//! Time moves with tokio's clock (`pause`, `advance`, `resume`): the cache measures ages
//! with `tokio::time::Instant`, while the HTTP calls to the mock run in real time.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use lift::security::secrets::{SecretString, SecretsCache, SecretsError};
use lift_harness::aws::{Fault, SecretsManagerMock};

const GET: &str = "GetSecretValue";

async fn mock() -> SecretsManagerMock {
    let mock = SecretsManagerMock::start("us-east-1").await;
    mock.put_secret("db", "db-password-1");
    mock.put_secret("fingerprint-key", "fp-key-0123456789");
    mock
}

/// An SDK client for the mock: its endpoint, static credentials, a region, and no SDK
/// retries (so each `get` is one call and the counts below are exact).
fn client(mock: &SecretsManagerMock) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(mock.uri())
        .credentials_provider(Credentials::new("test", "test", None, None, "lift-harness"))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// Moves tokio's clock forward; the runtime keeps real time for I/O afterwards.
async fn advance(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn prefetch_then_cache_hits_make_no_calls() {
    let mock = mock().await;
    let cache = SecretsCache::builder()
        .prefetch(["db", "fingerprint-key"])
        .ttl(Duration::from_secs(300))
        .build(client(&mock))
        .await
        .unwrap();
    assert_eq!(mock.calls_to(GET).len(), 2, "both secrets fetched at init");
    for _ in 0..5 {
        assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1");
        assert_eq!(cache.get("fingerprint-key").await.unwrap().expose(), "fp-key-0123456789");
    }
    assert_eq!(mock.calls_to(GET).len(), 2, "hits never call");
}

#[tokio::test]
async fn a_missing_prefetched_secret_fails_the_build() {
    let mock = mock().await;
    let err = SecretsCache::builder().prefetch(["db", "nope"]).build(client(&mock)).await.unwrap_err();
    assert_eq!(err, SecretsError::NotFound { id: "nope".into() });
}

#[tokio::test]
async fn concurrent_misses_make_one_call() {
    let mock = mock().await;
    let cache = SecretsCache::builder().build(client(&mock)).await.unwrap();
    let gets: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("db").await.unwrap().expose().to_owned() })
        })
        .collect();
    for get in gets {
        assert_eq!(get.await.unwrap(), "db-password-1");
    }
    assert_eq!(mock.calls_to(GET).len(), 1);
}

#[tokio::test]
async fn expiry_refetches_and_sees_the_rotated_value() {
    let mock = mock().await;
    let cache = SecretsCache::builder().ttl(Duration::from_secs(60)).build(client(&mock)).await.unwrap();
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1");
    mock.rotate_secret("db", "db-password-2").unwrap();

    advance(Duration::from_secs(59)).await;
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1", "still fresh");
    assert_eq!(mock.calls_to(GET).len(), 1);

    advance(Duration::from_secs(2)).await;
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-2", "expired: refetched");
    assert_eq!(mock.calls_to(GET).len(), 2);
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-2");
    assert_eq!(mock.calls_to(GET).len(), 2);

    mock.rotate_secret("db", "db-password-3").unwrap();
    cache.refresh("db").await.unwrap();
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-3", "refresh forces a fetch");
}

#[tokio::test]
async fn throttled_refreshes_serve_the_stale_value_for_a_bounded_time() {
    let mock = mock().await;
    let cache = SecretsCache::builder()
        .ttl(Duration::from_secs(60))
        .max_staleness(Duration::from_secs(120))
        .retry_backoff(Duration::from_secs(10))
        .build(client(&mock))
        .await
        .unwrap();
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1");

    mock.fault(GET, Fault::throttling());
    advance(Duration::from_secs(61)).await;
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1", "stale value served");
    assert_eq!(mock.calls_to(GET).len(), 2, "the refresh was tried");
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1");
    assert_eq!(mock.calls_to(GET).len(), 2, "no call during the backoff");

    advance(Duration::from_secs(11)).await;
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1");
    assert_eq!(mock.calls_to(GET).len(), 3, "tried again after the backoff");

    // Past TTL + max staleness the old value is no longer served.
    advance(Duration::from_secs(120)).await;
    let err = cache.get("db").await.unwrap_err();
    assert_eq!(err, SecretsError::Fetch { id: "db".into(), reason: "ThrottlingException".into() });

    mock.clear_faults();
    mock.rotate_secret("db", "db-password-2").unwrap();
    advance(Duration::from_secs(11)).await;
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-2", "recovers once the service answers");
}

#[tokio::test]
async fn throttled_with_nothing_cached_is_an_error_naming_the_secret() {
    let mock = mock().await;
    let cache = SecretsCache::builder().build(client(&mock)).await.unwrap();
    mock.fault(GET, Fault::throttling());
    let err = cache.get("db").await.unwrap_err();
    assert_eq!(err.secret_id(), Some("db"));
    assert_eq!(err.to_string(), "failed to fetch secret db: ThrottlingException");
    let err = cache.get("fingerprint-key").await.unwrap_err();
    assert_eq!(err.to_string(), "failed to fetch secret fingerprint-key: ThrottlingException");
}

/// With nothing cached, a failed call is remembered for the backoff: the callers queued
/// behind it, and those after it, get its error without calling again.
#[tokio::test]
async fn failing_calls_with_nothing_cached_are_made_once_per_backoff() {
    let mock = mock().await;
    let cache =
        SecretsCache::builder().retry_backoff(Duration::from_secs(10)).build(client(&mock)).await.unwrap();
    mock.fault(GET, Fault::throttling());
    let gets: Vec<_> = (0..5)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("db").await.map(|v| v.expose().to_owned()) })
        })
        .collect();
    let throttled = SecretsError::Fetch { id: "db".into(), reason: "ThrottlingException".into() };
    for get in gets {
        let err = get.await.unwrap().unwrap_err();
        assert_eq!(err, throttled);
        assert!(!format!("{err} {err:?}").contains("db-password-1"));
    }
    assert_eq!(mock.calls_to(GET).len(), 1, "one call for all five callers");

    advance(Duration::from_secs(9)).await;
    assert_eq!(cache.get("db").await.unwrap_err(), throttled);
    assert_eq!(mock.calls_to(GET).len(), 1, "no call within the backoff");

    mock.clear_faults();
    advance(Duration::from_secs(2)).await;
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1", "called again after the backoff");
    assert_eq!(mock.calls_to(GET).len(), 2);
}

/// Not found and access denied (and a secret marked for deletion, which AWS answers with
/// `InvalidRequestException`) mean the secret is gone or no longer ours: the cached value is
/// not served, stale or not.
#[tokio::test]
async fn a_deleted_or_revoked_secret_is_never_served_from_the_cache() {
    let answers = [
        ("ResourceNotFoundException", "Secrets Manager can't find the specified secret."),
        ("AccessDeniedException", "User is not authorized to perform: secretsmanager:GetSecretValue"),
        ("InvalidRequestException", "You can't perform this operation on the secret because it was deleted."),
    ];
    for (code, message) in answers {
        let mock = mock().await;
        let cache = SecretsCache::builder()
            .ttl(Duration::from_secs(60))
            .max_staleness(Duration::from_secs(600))
            .retry_backoff(Duration::from_secs(10))
            .build(client(&mock))
            .await
            .unwrap();
        assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1");

        mock.fault(GET, Fault::aws_error(400, code, message));
        advance(Duration::from_secs(61)).await;
        let err = cache.get("db").await.unwrap_err();
        let expected = match code {
            "ResourceNotFoundException" => SecretsError::NotFound { id: "db".into() },
            _ => SecretsError::Fetch { id: "db".into(), reason: code.into() },
        };
        assert_eq!(err, expected, "{code}: past the TTL, no stale value");
        assert!(!format!("{err} {err:?}").contains("db-password-1"), "{code}");
        assert_eq!(cache.get("db").await.unwrap_err(), expected, "{code}: within the backoff");
        assert_eq!(mock.calls_to(GET).len(), 2, "{code}: no call within the backoff");

        // Learnt by a forced refresh while the value is still fresh: not served either.
        mock.clear_faults();
        advance(Duration::from_secs(11)).await;
        assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1", "{code}: readable again");
        mock.fault(GET, Fault::aws_error(400, code, message));
        assert_eq!(cache.refresh("db").await.unwrap_err(), expected);
        assert_eq!(cache.get("db").await.unwrap_err(), expected, "{code}: the fresh value was dropped");
    }
}

/// Throttling, server errors and a dropped connection may pass: past the TTL the cached
/// value is still served (inside the staleness bound).
#[tokio::test]
async fn passing_failures_past_the_ttl_still_serve_the_stale_value() {
    for fault in [
        Fault::throttling(),
        Fault::internal_failure(),
        Fault::service_unavailable(),
        Fault::drop_connection(),
    ] {
        let mock = mock().await;
        let cache = SecretsCache::builder()
            .ttl(Duration::from_secs(60))
            .max_staleness(Duration::from_secs(600))
            .build(client(&mock))
            .await
            .unwrap();
        assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1");
        mock.fault(GET, fault.clone());
        advance(Duration::from_secs(61)).await;
        assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1", "{fault:?}");
        assert_eq!(mock.calls_to(GET).len(), 2, "{fault:?}: the refresh was tried");
    }
}

#[tokio::test]
async fn binary_secrets_come_as_bytes() {
    let mock = mock().await;
    mock.put_secret_binary("signing-key", &[0, 1, 2, 255]);
    let cache = SecretsCache::builder().build(client(&mock)).await.unwrap();
    assert_eq!(cache.get_bytes("signing-key").await.unwrap().expose(), &[0, 1, 2, 255]);
    assert_eq!(
        cache.get("signing-key").await.unwrap_err(),
        SecretsError::NotText { id: "signing-key".into() }
    );
    assert_eq!(cache.get_bytes("db").await.unwrap().expose(), b"db-password-1");
}

/// Log lines written by `tracing`, captured for the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary. Global, not per test: `tracing` caches per call
/// site whether anyone listens, and a thread-local subscriber can miss events that another
/// test thread's call settled first.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
        logs
    })
}

#[tokio::test]
async fn values_never_reach_errors_or_logs() {
    let logs = logs();
    let mock = mock().await;
    let cache = SecretsCache::builder()
        .prefetch(["db"])
        .ttl(Duration::from_secs(60))
        .build(client(&mock))
        .await
        .unwrap();
    let value = cache.get("db").await.unwrap();
    tracing::info!(secret = %value, debug = ?value, "loaded");
    assert_eq!(format!("{value} {value:?}"), "[REDACTED] [REDACTED]");
    assert!(!format!("{cache:?}").contains("db-password-1"));

    // A stale value served while throttled logs a warning: with the id, not the value.
    mock.fault(GET, Fault::throttling());
    advance(Duration::from_secs(61)).await;
    assert_eq!(cache.get("db").await.unwrap().expose(), "db-password-1");
    let mut errors = Vec::new();
    for id in ["fingerprint-key", "missing"] {
        errors.push(cache.get(id).await.unwrap_err());
    }
    mock.clear_faults();
    // Past the backoff the throttled "missing" is asked for again, and is not found.
    advance(Duration::from_secs(6)).await;
    errors.push(cache.get("missing").await.unwrap_err());

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("serving the cached value") && logged.contains("db"), "{logged}");
    for secret in ["db-password-1", "fp-key-0123456789"] {
        assert!(!logged.contains(secret), "a value reached the logs: {logged}");
        for err in &errors {
            let text = format!("{err} {err:?}");
            assert!(!text.contains(secret), "a value reached an error: {text}");
        }
    }
    assert_eq!(errors[2], SecretsError::NotFound { id: "missing".into() });
    let _: SecretString = value;
}
