//! The service: blocklist, detectors, score, playbook.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::behaviour::{finding, BehaviourMonitor};
use super::detect::Detectors;
use super::error::Refused;
use super::finding::{FindingKind, ThreatAssessment};
use super::future::ResponseFuture;
use super::incident::{Incident, Playbook};
use super::store::{BlockTarget, ThreatStore, TokenRef};
use crate::body::{Request, Response};
use crate::buffered::around;
use crate::context::{client_ip, Context};
use crate::BoxError;

/// Everything a [`ThreatLayer`](super::ThreatLayer) and its services share.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) detectors: Detectors,
    pub(crate) threshold: u8,
    pub(crate) store: Option<ThreatStore>,
    pub(crate) monitor: Option<BehaviourMonitor>,
    pub(crate) track_tenants: bool,
    pub(crate) playbook: Playbook,
}

/// A failed login, reported by a handler in its response's extensions so the
/// behavioural detector counts failures per user as well as per IP.
///
/// # Examples
///
/// ```
/// use lift::security::threat::FailedLogin;
///
/// let mut res = lift::Error::unauthorized("Bearer").into_response();
/// res.extensions_mut().insert(FailedLogin("alice@example.com".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedLogin(pub String);

/// Refuses blocked clients and requests whose risk score reaches the threshold, runs the
/// incident playbook for them, and passes the rest on with their [`ThreatAssessment`];
/// built by [`ThreatLayer`](super::ThreatLayer).
#[derive(Clone)]
pub struct Threat<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Threat<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threat")
            .field("inner", &self.inner)
            .field("threshold", &self.config.threshold)
            .finish()
    }
}

impl<S> Threat<S> {
    pub(crate) fn from_parts(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResB> Service<http::Request<B>> for Threat<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + From<Vec<u8>> + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResB: http_body::Body + From<Vec<u8>> + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Into<BoxError>,
{
    type Response = http::Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error, ResB>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let config = Arc::clone(&self.config);
        around(&mut self.inner, req, move |inner, req| run(config, inner, req))
    }
}

async fn run<S>(config: Arc<Config>, mut inner: S, req: Request) -> Result<Response, S::Error>
where
    S: Service<Request, Response = Response>,
{
    let (parts, body) = req.into_parts();
    let ip = client_ip(&parts);
    let mut req = Request::from_parts(parts, body);
    let ctx = Context::of(&req);
    let request_id = ctx.map(|c| c.request_id().to_owned());
    let principal = ctx.and_then(Context::principal);
    // What is counted per caller is counted per issuer and subject: another issuer's user of
    // the same name must not add to this one's tenants or failures, nor trip them for it.
    // Only a monitor counts: without one, no name is built.
    let caller = config.monitor.as_ref().and(principal).map(|p| {
        if p.issuer.is_some() {
            p.qualified_subject()
        } else {
            p.subject.clone()
        }
    });
    let tenant = ctx.and_then(Context::tenant).map(str::to_owned);

    if let Some(store) = &config.store {
        if Box::pin(is_blocked(store, ip, principal, &presented_tokens(&req))).await {
            return Ok(crate::Error::from(Refused::Blocked).render(request_id.as_deref()));
        }
    }

    let mut assessment = config.detectors.inspect(&req);
    if let (Some(monitor), true, Some(caller), Some(tenant)) =
        (&config.monitor, config.track_tenants, &caller, &tenant)
    {
        match Box::pin(monitor.tenant_touched(caller, tenant)).await {
            Ok(signal) if signal.tripped() => {
                assessment.extend([finding(FindingKind::TenantHopping, "too many tenants in a window")])
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "tenant access not counted"),
        }
    }
    if assessment.score() >= config.threshold {
        // Boxed here and below: rare paths that would otherwise bloat every request's future.
        Box::pin(config.playbook.run(Incident::capture(&req, ip, assessment))).await;
        return Ok(crate::Error::from(Refused::Threat).render(request_id.as_deref()));
    }

    let Some(monitor) = &config.monitor else {
        req.extensions_mut().insert(assessment);
        return inner.call(req).await;
    };
    // Kept for the incident, should the response turn out to be one failure too many.
    let snapshot = Incident::capture(&req, ip, ThreatAssessment::default());
    req.extensions_mut().insert(assessment);
    let res = inner.call(req).await?;
    if res.status() == http::StatusCode::UNAUTHORIZED {
        let user = res.extensions().get::<FailedLogin>().map(|f| f.0.as_str()).or(caller.as_deref());
        match Box::pin(monitor.auth_failed(ip, user)).await {
            Ok((by_ip, by_user)) => {
                let mut burst = ThreatAssessment::default();
                if by_ip.is_some_and(|s| s.just_tripped()) {
                    burst.extend([finding(FindingKind::AuthFailureBurst, "failed logins per ip")]);
                }
                if by_user.is_some_and(|s| s.just_tripped()) {
                    burst.extend([finding(FindingKind::AuthFailureBurst, "failed logins per user")]);
                }
                if !burst.is_clean() {
                    let mut incident = snapshot;
                    incident.score = burst.score();
                    incident.findings = burst.findings().to_vec();
                    // Failures for one user come from anywhere: they block no IP, or an
                    // attacker failing N-1 times as a victim's user name would have the
                    // victim's own next failure block the victim's IP.
                    let block_ip = by_ip.is_some_and(|s| s.just_tripped());
                    Box::pin(config.playbook.run_blocking(incident, block_ip)).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "failed authentication not counted"),
        }
    }
    Ok(res)
}

/// The request's token as [`ThreatStore::revoke`] names it: the SHA-256 of the bearer token,
/// and its `jti` when the JWT layer verified it ([`Claims`](crate::middleware::auth::Claims)).
fn presented_tokens(req: &Request) -> Vec<TokenRef> {
    let mut tokens = Vec::with_capacity(2);
    if let Some(raw) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| token.trim())
    {
        tokens.push(TokenRef::token(raw));
    }
    #[cfg(feature = "auth")]
    if let Some(jti) = req
        .extensions()
        .get::<crate::middleware::auth::Claims>()
        .and_then(|c| c.get("jti"))
        .and_then(serde_json::Value::as_str)
    {
        tokens.push(TokenRef::jti(jti));
    }
    tokens
}

/// Whether the IP, the subject (from any issuer) or the caller (this issuer's subject) is
/// blocked, or the request's token revoked, in one read. Fails open: a blocklist that
/// cannot be read is logged, and the detectors still run.
async fn is_blocked(
    store: &ThreatStore,
    ip: Option<IpAddr>,
    principal: Option<&crate::Principal>,
    tokens: &[TokenRef],
) -> bool {
    let mut targets = Vec::with_capacity(3);
    targets.extend(ip.map(BlockTarget::Ip));
    if let Some(p) = principal {
        targets.push(BlockTarget::Principal(p.subject.clone()));
        targets.push(BlockTarget::of(p));
    }
    match store.any_blocked_or_revoked(&targets, tokens).await {
        Ok(blocked) => blocked,
        Err(err) => {
            tracing::warn!(error = %err, "blocklist not read");
            false
        }
    }
}
