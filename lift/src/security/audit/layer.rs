//! One audit entry per request, flushed at the end of it.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::entry::{AuditEntry, Outcome};
use super::trail::AuditTrail;
use crate::context::{client_ip, CommittedAnswer, Context, MatchedRoute};

/// What a handler says about its request for the audit entry: the action, the resource and
/// the data classes it touched. Found in the request's extensions under an [`AuditLayer`].
///
/// # Examples
///
/// ```
/// use lift::security::audit::AuditHandle;
///
/// async fn get_record(req: lift::Request) -> lift::Response {
///     if let Some(audit) = AuditHandle::of(&req) {
///         audit.action("records.read").resource("record/r-1").data_class("phi");
///     }
///     lift::Response::default()
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct AuditHandle(Arc<Mutex<Notes>>);

#[derive(Debug, Default)]
struct Notes {
    action: Option<String>,
    resource: Option<String>,
    data_classes: Vec<String>,
    detail: Option<String>,
}

impl AuditHandle {
    /// The handle of a request, if an [`AuditLayer`] is mounted.
    pub fn of<B>(req: &Request<B>) -> Option<&AuditHandle> {
        req.extensions().get::<AuditHandle>()
    }

    fn with(&self, f: impl FnOnce(&mut Notes)) -> &Self {
        if let Ok(mut notes) = self.0.lock() {
            f(&mut notes);
        }
        self
    }

    /// Names the action (default: `METHOD route`).
    pub fn action(&self, action: impl Into<String>) -> &Self {
        self.with(|n| n.action = Some(action.into()))
    }

    /// Names the resource (default: the path, decoded, with card numbers, SSNs and secrets
    /// redacted).
    pub fn resource(&self, resource: impl Into<String>) -> &Self {
        self.with(|n| n.resource = Some(resource.into()))
    }

    /// Adds a data class the request touched (`phi`, `pci`, `pii`...).
    pub fn data_class(&self, class: impl Into<String>) -> &Self {
        self.with(|n| n.data_classes.push(class.into()))
    }

    /// Sets details (scrubbed: never raw card numbers or health data).
    pub fn detail(&self, detail: impl Into<String>) -> &Self {
        self.with(|n| n.detail = Some(detail.into()))
    }

    /// The data classes named so far (for an idempotency record to name them again on its
    /// replays, whose handler does not run).
    #[cfg_attr(not(feature = "idempotency"), allow(dead_code))]
    pub(crate) fn data_classes(&self) -> Vec<String> {
        self.0.lock().map(|n| n.data_classes.clone()).unwrap_or_default()
    }
}

/// The entry recorded for a request, in its response's extensions (for the compliance
/// middleware and for tests): the entry as it was sealed, [clipped](AuditEntry::clipped)
/// to the field limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audited(pub AuditEntry);

/// Whether a request's audit entry was durably stored before its response, in the
/// response's extensions next to [`Audited`]. Only [`Stored`](Self::Stored) is evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AuditStorage {
    /// The flush that holds the entry succeeded before the response.
    Stored,
    /// The flush failed and the layer was configured to degrade: the request got its
    /// answer, the entry waits in the buffer for a later flush.
    Degraded,
    /// The flush failed on an audit-critical route: the request was answered 503. Also
    /// the mark of a request refused before its handler ran, the trail being at its
    /// ceiling (no [`Audited`] then: no entry was made).
    Refused,
}

/// What [`AuditLayer`] does when the entry of a request cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFlushFailure {
    /// Answer `503 audit unavailable` (`application/problem+json`): the default, since an
    /// answer whose audit entry does not exist is no evidence.
    #[default]
    Refuse,
    /// Answer anyway; the entry stays buffered, the response carries
    /// [`AuditStorage::Degraded`] and a compliance report says so.
    Degrade,
}

/// Records an [`AuditEntry`] for every request and flushes the trail when the response is
/// ready.
///
/// The entry: the tenant and actor from the [`Context`]'s principal (`anonymous` when
/// there is none, under the tenant `-`), the action `METHOD /route/:pattern` and the path
/// (decoded, card numbers, SSNs and secrets redacted) as resource unless the handler names
/// them ([`AuditHandle`]), the outcome from the status, the client IP ([`client_ip`]), the
/// request id, and whether the answer was an idempotent replay (`Idempotent-Replayed:
/// true`, [`AuditEntry::replayed`]). A replay's handler does not run: its entry has the
/// default action and resource, and the data classes the first attempt's handler named,
/// which the idempotency record keeps. Mount it inside authentication and outside
/// idempotency, so replays are audited too.
///
/// Every route is audit-critical by default: when the trail cannot store the entry, the
/// request is answered `503` with the problem type `audit-unavailable` (the handler's
/// answer is withheld, the entry stays buffered for the next flush). With
/// [`degrade`](Self::degrade) the request gets its answer instead, marked
/// [`AuditStorage::Degraded`]. When the buffer is full, the request waits for room, at
/// most the trail's append wait ([`AuditTrailBuilder::append_wait`](super::AuditTrailBuilder::append_wait)).
///
/// The entry's place in the buffer is taken ([`AuditTrail::reserve`]) before the handler
/// runs. When the trail holds its ceiling of entries not stored yet
/// ([`AuditTrailBuilder::max_buffered`](super::AuditTrailBuilder::max_buffered)), the request
/// is refused with the same `503`, in either mode, and the handler does not run, unless a
/// flush it tries first (when none is under way) stores what is held, which is how the
/// trail takes requests again once DynamoDB is back:
/// nothing is done, nor answered, without its entry held. Such a response carries
/// [`AuditStorage::Refused`] and no [`Audited`], since no entry was made.
///
/// The 503 of a failed flush comes after the handler ran: whatever it wrote stays written, and the entry
/// stays buffered for the next flush. An idempotency layer inside this one (where
/// [`lift::stack()`](crate::stack()) mounts it) has already stored the handler's answer, so
/// a client's retry with the same key replays the outcome instead of running the operation
/// twice. When the handler's answer was a success, the 503 also carries it as a
/// [`CommittedAnswer`], for an idempotency layer mounted outside to store instead. Without
/// idempotency, a retry runs the handler again.
///
/// # Examples
///
/// ```no_run
/// # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), lift::security::audit::AuditError> {
/// use lift::security::audit::{AuditLayer, AuditTrail};
///
/// let trail = AuditTrail::builder().client(client).table("audit").build()?;
/// let strict = AuditLayer::new(trail.clone());
/// let lenient = AuditLayer::new(trail).degrade();
/// # let _ = (strict, lenient); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuditLayer {
    trail: AuditTrail,
    on_failure: OnFlushFailure,
}

impl AuditLayer {
    /// A layer over a trail; every route is audit-critical.
    pub fn new(trail: AuditTrail) -> Self {
        Self { trail, on_failure: OnFlushFailure::Refuse }
    }

    /// Answers requests whose entry could not be stored (marked
    /// [`AuditStorage::Degraded`]) instead of refusing them with 503.
    pub fn degrade(self) -> Self {
        self.on_flush_failure(OnFlushFailure::Degrade)
    }

    /// What to do when an entry cannot be stored.
    pub fn on_flush_failure(mut self, on_failure: OnFlushFailure) -> Self {
        self.on_failure = on_failure;
        self
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> AuditService<S> {
        AuditService { inner, trail: self.trail.clone(), on_failure: self.on_failure }
    }
}

/// The service made by [`AuditLayer`].
#[derive(Debug, Clone)]
pub struct AuditService<S> {
    inner: S,
    trail: AuditTrail,
    on_failure: OnFlushFailure,
}

/// The problem type of a request refused because its audit entry could not be stored.
pub const AUDIT_UNAVAILABLE: &str = "https://lift.dev/problems/audit-unavailable";

impl<S, B, ResBody> Service<Request<B>> for AuditService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: From<Vec<u8>> + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let handle = AuditHandle::default();
        req.extensions_mut().insert(handle.clone());
        let ctx = Context::of(&req);
        let principal = ctx.and_then(Context::principal);
        let tenant =
            principal.map(|p| p.tenant.clone()).or_else(|| ctx.and_then(Context::tenant).map(str::to_owned));
        let actor = principal.map_or_else(|| "anonymous".to_owned(), |p| p.subject.clone());
        let issuer = principal.and_then(|p| p.issuer.clone());
        let request_id = ctx.map(|c| c.request_id().to_owned()).unwrap_or_default();
        let method = req.method().clone();
        // The path, decoded and scrubbed: a card number, an SSN or an email address sent as a
        // path segment (`/payments/4111%201111%201111%201111`, `/users/ada%40example.com`) is
        // never written to the trail, which cannot be cleaned afterwards (nor a subject erased
        // from it) without breaking its chain.
        let path = audit_path(req.uri().path());
        // The router names the route on the request (a layer inside it, as `Stack::audit`
        // mounts this one, sees no `MatchedRoute` on the response) and on the response (for
        // a layer outside it).
        let route_of_request = req.extensions().get::<MatchedRoute>().map(|r| r.as_str().to_owned());
        let (head, body) = req.into_parts();
        let source = client_ip(&head).map(|ip| ip.to_string()).unwrap_or_default();
        let req = Request::from_parts(head, body);
        let trail = self.trail.clone();
        let on_failure = self.on_failure;
        // The service polled ready goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            // The entry's place before the handler: at the ceiling nothing is done.
            let place = match trail.reserve_or_flush().await {
                Ok(place) => place,
                Err(err) => {
                    tracing::error!(error = %err, "audit trail saturated: request refused before its handler");
                    let mut refused = unavailable(&request_id);
                    refused.extensions_mut().insert(AuditStorage::Refused);
                    return Ok(refused);
                }
            };
            let result = inner.call(req).await;
            let (outcome, route, replayed) = match &result {
                Ok(res) => (
                    Outcome::from_status(res.status().as_u16()),
                    route_of_request
                        .or_else(|| res.extensions().get::<MatchedRoute>().map(|r| r.as_str().to_owned())),
                    is_replay(res),
                ),
                Err(_) => (Outcome::Failure, route_of_request, false),
            };
            let notes = std::mem::take(&mut *handle.0.lock().unwrap_or_else(|p| p.into_inner()));
            let entry = AuditEntry::new(
                tenant.unwrap_or_else(|| "-".to_owned()),
                actor,
                notes.action.unwrap_or_else(|| format!("{method} {}", route.as_deref().unwrap_or(&path))),
                notes.resource.unwrap_or(path),
                outcome,
            )
            .from_where(source)
            .request_id(request_id)
            .data_classes(notes.data_classes)
            .detail(notes.detail.unwrap_or_default())
            .replayed(replayed);
            let entry = match issuer {
                Some(issuer) => entry.issuer(issuer),
                None => entry,
            };
            // What is sealed and stored is the clipped entry: `Audited` says so too.
            let entry = entry.clipped();
            let request_id = entry.request_id.clone();
            place.fill(entry.clone());
            let storage = match trail.flush().await {
                Ok(_) => AuditStorage::Stored,
                Err(err) => {
                    tracing::error!(error = %err, pending = trail.pending(), "audit entries not stored yet");
                    match on_failure {
                        OnFlushFailure::Degrade => AuditStorage::Degraded,
                        OnFlushFailure::Refuse => AuditStorage::Refused,
                    }
                }
            };
            let mut res = match (result, storage) {
                (Ok(answer), AuditStorage::Refused) => {
                    let ran = answer.status().is_success() || answer.status().is_redirection();
                    let mut refused = unavailable(&request_id);
                    if ran {
                        // The handler's effects are written: an idempotency layer mounted
                        // outside stores this answer, so a retry replays it instead of
                        // running again (one inside has stored it already).
                        refused.extensions_mut().insert(CommittedAnswer::new(answer));
                    }
                    refused
                }
                (Ok(res), _) => res,
                (Err(err), _) => return Err(err),
            };
            res.extensions_mut().insert(Audited(entry));
            res.extensions_mut().insert(storage);
            Ok(res)
        })
    }
}

/// The header an idempotency layer puts on a replayed answer
/// (`lift::middleware::idempotency::IDEMPOTENT_REPLAYED`, named here too since the audit
/// trail is built without that feature as well).
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Whether the answer is an idempotent replay: the stored response of an earlier attempt,
/// which the handler did not produce this time.
fn is_replay<B>(res: &Response<B>) -> bool {
    res.headers().get(IDEMPOTENT_REPLAYED).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

/// How often a path segment is percent-decoded, at most, before it is scrubbed; a segment
/// still encoded after that is replaced whole ([`UNDECODED`]).
const MAX_DECODES: usize = 8;

/// What stands for a path segment encoded more often than [`MAX_DECODES`].
const UNDECODED: &str = "[REDACTED:encoded]";

/// A request's path as its entry's resource: split into segments first (so an encoded `/`,
/// `%2F` or `%252F`, keeps a card number's digit groups in one segment), each segment
/// decoded until nothing more decodes (a double-encoded `%2540` is an `@` all the same),
/// then scrubbed ([`crate::scrub::scrub_path`]): card numbers, SSNs, secrets and email
/// addresses never reach the trail, however often they were encoded.
fn audit_path(raw: &str) -> String {
    // Nothing encoded, the common case: the segments are as sent, scrubbed as they are.
    if !raw.contains('%') {
        return crate::scrub::scrub_path(raw).into_owned();
    }
    let mut out = String::with_capacity(raw.len());
    for (i, segment) in raw.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let Some(text) = fully_decoded(segment) else {
            out.push_str(UNDECODED);
            continue;
        };
        // Encoded once more, so that the scrubber reads the decoded text as one segment.
        let first = crate::scrub::scrub_path(&one_segment(&text)).into_owned();
        let scrubbed = crate::app::percent_decode(&first);
        if !scrubbed.contains('/') {
            out.push_str(&first);
            continue;
        }
        // An encoded `/` between digit groups separates them as a space does: read so too.
        match crate::scrub::scrub_path(&one_segment(&scrubbed.replace('/', " "))) {
            Cow::Owned(second) => out.push_str(&second),
            Cow::Borrowed(_) => out.push_str(&first),
        }
    }
    out
}

/// `text` as one path segment: `%` and `/` encoded.
fn one_segment(text: &str) -> String {
    text.replace('%', "%25").replace('/', "%2F")
}

/// `segment` decoded until it no longer changes, or `None` after [`MAX_DECODES`] rounds.
fn fully_decoded(segment: &str) -> Option<String> {
    let mut text = segment.to_owned();
    for _ in 0..=MAX_DECODES {
        let next = crate::app::percent_decode(&text);
        if next == text {
            return Some(text);
        }
        text = next;
    }
    None
}

/// `503 audit unavailable` as problem+json, in the service's body type.
fn unavailable<B: From<Vec<u8>>>(request_id: &str) -> Response<B> {
    let res = crate::Error::service_unavailable(1)
        .with_type(AUDIT_UNAVAILABLE, "Audit unavailable")
        .with_detail("the audit trail could not store this request's entry; retry later")
        .render((!request_id.is_empty()).then_some(request_id));
    let (parts, body) = res.into_parts();
    Response::from_parts(parts, B::from(body.into_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    /// A trail whose store is a port nothing listens on: flushes fail at once.
    fn unreachable_trail() -> AuditTrail {
        let client = crate::test_support::unreachable_dynamodb();
        AuditTrail::builder().client(client).table("audit").build().unwrap()
    }

    /// A replayed answer gets an entry like any other, marked as a replay.
    #[tokio::test]
    async fn an_idempotent_replay_is_audited_and_marked() {
        let trail = unreachable_trail();
        let svc = AuditLayer::new(trail.clone()).degrade().layer(tower::service_fn(
            |req: crate::Request| async move {
                let mut res = crate::Response::new(crate::Body::from("{}"));
                *res.status_mut() = http::StatusCode::CREATED;
                if let Some(replayed) = req.headers().get("x-replayed") {
                    res.headers_mut().insert(IDEMPOTENT_REPLAYED, replayed.clone());
                }
                Ok::<_, std::convert::Infallible>(res)
            },
        ));
        let call = |replayed: Option<&'static str>| {
            let mut req = http::Request::post("/payments").body(crate::Body::empty()).unwrap();
            if let Some(value) = replayed {
                req.headers_mut().insert("x-replayed", http::HeaderValue::from_static(value));
            }
            svc.clone().oneshot(req)
        };
        for (header, marked) in
            [(None, false), (Some("true"), true), (Some("TRUE"), true), (Some("false"), false)]
        {
            let res = call(header).await.unwrap();
            let Audited(entry) = res.extensions().get::<Audited>().expect("an entry").clone();
            assert_eq!((entry.replayed, entry.outcome), (marked, Outcome::Success), "{header:?}");
        }
        assert_eq!(trail.pending(), 4, "every attempt has its entry");
    }

    /// However often a segment was encoded, the resource holds no address or card number;
    /// an encoded `/` does not split a card number's digit groups into segments.
    #[test]
    fn the_resource_is_decoded_to_the_end_then_scrubbed() {
        for (raw, resource) in [
            ("/users/ada%40example.com", "/users/[REDACTED:email]"),
            ("/users/ada%2540example.com", "/users/[REDACTED:email]"),
            ("/users/ada%25252540example.com/cards", "/users/[REDACTED:email]/cards"),
            ("/payments/4111%25201111%25201111%25201111", "/payments/[REDACTED:pan]"),
            ("/payments/pay_7f3a/refunds", "/payments/pay_7f3a/refunds"),
            // Nothing encoded: scrubbed as sent.
            ("/payments/4111111111111111/refunds", "/payments/[REDACTED:pan]/refunds"),
            ("/users/ada@example.com", "/users/[REDACTED:email]"),
            ("/files/100%25%2Fdone", "/files/100%25%2Fdone"),
        ] {
            assert_eq!(audit_path(raw), resource, "{raw}");
        }
        for raw in [
            "/payments/4111%2F1111%2F1111%2F1111",
            "/payments/4111%252F1111%252F1111%252F1111",
            "/payments/4111111111111111%252Frefunds",
        ] {
            let resource = audit_path(raw);
            assert!(!resource.contains("1111"), "{raw}: {resource}");
        }
        // `@` encoded MAX_DECODES times decodes; once more, the segment is replaced whole.
        let encoded = |times: usize| format!("/users/ada%{}40example.com", "25".repeat(times - 1));
        assert_eq!(audit_path(&encoded(MAX_DECODES)), "/users/[REDACTED:email]");
        assert_eq!(audit_path(&encoded(MAX_DECODES + 1)), format!("/users/{UNDECODED}"));
    }

    #[cfg(feature = "idempotency")]
    #[test]
    fn the_replay_header_is_the_idempotency_layers() {
        assert_eq!(IDEMPOTENT_REPLAYED, crate::middleware::idempotency::IDEMPOTENT_REPLAYED.as_str());
    }
}
