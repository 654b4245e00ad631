//! The HTTP API (API Gateway events, or a local port).
//!
//! | Method | Path | Scope | |
//! |---|---|---|---|
//! | POST | `/alerts/:id/ack?episode=N` | `alerts:write` | acknowledge episode `N` of a firing alert group: its escalation stops, its receivers are told |
//! | POST | `/silences` | `alerts:write` | create a silence: `{"matchers": ["service=\"payments\""], "duration": "2h", "comment": "..."}` (or `ends_at`, RFC 3339) |
//! | GET | `/silences` | `alerts:read` | the silences not yet ended |
//!
//! An acknowledgement names the episode it is for (`?episode=N`, or `{"episode": N}` as
//! the body), as the notifications' ack links do: a group that resolved and fired again
//! is a new episode, and an old message's link must not stop the new one's escalation.
//! One for an episode that is over answers 409 and changes nothing; one without an
//! episode answers 400.
//!
//! Callers authenticate with a bearer JWT; its subject is recorded as who acknowledged or
//! silenced. Errors are `application/problem+json` naming the field at fault; they never
//! carry a receiver's URL or key.

use http::StatusCode;
use lift::middleware::auth::require_scope;
use lift::{json_response, read_json, App, Context, Error, Request, Response, RouteGroup};
use serde_json::json;

use crate::engine::{AlertRouter, RouterError, SilenceRequest};

/// The scope needed to acknowledge and silence.
pub const WRITE_SCOPE: &str = "alerts:write";
/// The scope needed to list silences.
pub const READ_SCOPE: &str = "alerts:read";
/// The realm of the `WWW-Authenticate` challenges.
pub const REALM: &str = "alert-router";

/// The routes inside `stack`: each group behind its scope check.
pub fn mount(router: AlertRouter, stack: lift::Stack) -> App {
    let writes = RouteGroup::new("").post("/alerts/:id/ack", acknowledge).post("/silences", create_silence);
    let reads = RouteGroup::new("").get("/silences", list_silences);
    let app = App::new()
        .group(stack.guard(writes, require_scope(WRITE_SCOPE)))
        .group(stack.guard(reads, require_scope(READ_SCOPE)))
        .with_state(router);
    stack.apply(app)
}

/// The JWT layer for `issuer`.
pub fn jwt_layer(
    issuer: lift::middleware::auth::Issuer,
) -> Result<lift::middleware::auth::JwtLayer, lift::middleware::auth::ConfigError> {
    lift::middleware::auth::JwtLayer::builder().issuer(issuer).realm(REALM).build()
}

fn who(req: &Request) -> Result<String, Error> {
    Context::of(req)
        .and_then(Context::principal)
        .map(|p| p.subject.clone())
        .ok_or_else(|| Error::unauthorized("Bearer").with_detail("authentication is required"))
}

fn problem(err: RouterError) -> Error {
    match err {
        RouterError::NotFound => Error::not_found().with_detail("no alert group has this id"),
        RouterError::NotFiring => Error::conflict("the alert group is not firing"),
        err @ RouterError::EpisodeOver { .. } => Error::conflict(err.to_string()),
        RouterError::Invalid { field, problem } => Error::validation(field, problem),
        RouterError::Store(err) => {
            tracing::error!(error = %err, "the alert store failed");
            Error::service_unavailable(5)
        }
        other => Error::internal(other.to_string()),
    }
}

fn valid_group_id(id: &str) -> bool {
    id.len() == 20 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The body an acknowledgement may carry instead of `?episode=`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    episode: u64,
}

/// The episode an acknowledgement names: the query's `episode`, else the body's.
fn ack_episode(req: &Request) -> Result<u64, Error> {
    let query = req.uri().query().unwrap_or("");
    if let Some(value) = query.split('&').find_map(|pair| pair.strip_prefix("episode=")) {
        return match value.parse::<u64>() {
            Ok(episode) if episode > 0 => Ok(episode),
            _ => Err(Error::validation("episode", "a positive whole number")),
        };
    }
    if req.body().as_bytes().is_empty() {
        return Err(Error::validation("episode", "name the episode acknowledged (`?episode=N`)"));
    }
    let body: AckRequest = read_json(req)?;
    Ok(body.episode)
}

async fn acknowledge(req: Request) -> Result<Response, Error> {
    let by = who(&req)?;
    let router = lift::app::state::<AlertRouter>(&req)?;
    let id = lift::path_param(&req, "id").unwrap_or_default().to_owned();
    if !valid_group_id(&id) {
        return Err(Error::not_found().with_detail("no alert group has this id"));
    }
    let episode = ack_episode(&req)?;
    let report = router.acknowledge(&id, episode, &by).await.map_err(problem)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"group_id": id, "episode": episode, "acknowledged_by": by, "notified": report.delivered.len()}),
    ))
}

async fn create_silence(req: Request) -> Result<Response, Error> {
    let by = who(&req)?;
    let router = lift::app::state::<AlertRouter>(&req)?;
    let request: SilenceRequest = read_json(&req)?;
    let silence = router.silence(&request, &by).await.map_err(problem)?;
    Ok(json_response(StatusCode::CREATED, &silence_json(&silence)))
}

async fn list_silences(req: Request) -> Result<Response, Error> {
    let router = lift::app::state::<AlertRouter>(&req)?;
    let now = time::OffsetDateTime::now_utc();
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let silences = router.store().silences(now_ms).await.map_err(|e| problem(e.into()))?;
    let list: Vec<_> = silences.iter().map(silence_json).collect();
    Ok(json_response(StatusCode::OK, &json!({"silences": list})))
}

fn silence_json(s: &crate::store::Silence) -> serde_json::Value {
    json!({
        "id": s.id,
        "matchers": s.matchers,
        "starts_at_ms": s.starts_at_ms,
        "ends_at_ms": s.ends_at_ms,
        "created_by": s.created_by,
        "comment": s.comment,
    })
}
