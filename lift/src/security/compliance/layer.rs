//! The compliance middleware: sanitizes, checks each invocation, blocks critical
//! violations before the handler, records the rest.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http::header::HeaderName;
use http::Uri;
use tower_layer::Layer;
use tower_service::Service;

use super::report::ComplianceRecorder;
use super::rule::{
    Facts, InvocationRecord, Phase, RequestView, ResponseView, Rule, Severity, Transport, Verdict, Violation,
};
use crate::body::{Request, Response};
use crate::buffered::around;
use crate::context::Context;
use crate::security::audit::{AuditEntry, AuditStorage, AuditTrail, Audited, Outcome};
use crate::security::protection::detect::scan_text;
use crate::security::protection::DataClass;
use crate::{BoxError, Error};

/// Where the log lines of an invocation come from, for rules that read them.
pub trait LogTap: Send + Sync + 'static {
    /// A position to read from later.
    fn mark(&self) -> usize;
    /// The lines written since `mark`.
    fn since(&self, mark: usize) -> Vec<String>;
}

#[cfg(feature = "observability")]
impl LogTap for crate::middleware::logging::MemoryWriter {
    fn mark(&self) -> usize {
        self.lines().len()
    }
    fn since(&self, mark: usize) -> Vec<String> {
        self.lines().into_iter().skip(mark).collect()
    }
}

/// Headers that let a caller reroute a request behind a proxy; never honoured.
const ROUTING_OVERRIDES: [&str; 4] =
    ["x-original-url", "x-rewrite-url", "x-forwarded-host", "x-http-method-override"];

/// Query parameter names whose values must never travel in a URL.
const SECRET_PARAMS: [&str; 10] =
    ["card", "cardnumber", "pan", "cvv", "cvc", "ssn", "password", "token", "apikey", "secret"];

/// Checks every invocation against compliance rules.
///
/// Before the handler it sanitizes the request: routing-override headers
/// (`X-Original-URL`, `X-Rewrite-URL`, `X-Forwarded-Host`, `X-HTTP-Method-Override`) are
/// removed, and query values that are card numbers, SSNs or secrets, or whose names say so,
/// become `[REDACTED]` (they would otherwise reach access logs). Then the request-phase
/// rules run: a `Critical` violation answers the rule's status (403, 451...) as a problem
/// and the handler never runs. After the handler the invocation-phase rules run over the
/// request, the response, the log lines ([`LogTap`]) and the audit entry ([`Audited`]
/// in the response, put there by an inner [`AuditLayer`](crate::security::audit::AuditLayer)).
/// A `Critical` breach found in the answer itself by a rule that
/// [withholds answers](Rule::withholds_answer) (a card number, a verification code, a
/// secret, ePHI to no one) withholds it: the client gets the rule's status as a problem.
/// The breach counts as blocked when the answer was its only evidence, else as violated.
/// Every check goes to the [`ComplianceRecorder`]; with an [`AuditTrail`], every
/// violation is also an audit entry (`compliance.violation`).
#[derive(Clone)]
pub struct ComplianceLayer {
    shared: Arc<Shared>,
}

struct Shared {
    rules: Vec<Arc<dyn Rule>>,
    recorder: ComplianceRecorder,
    logs: Option<Arc<dyn LogTap>>,
    trail: Option<AuditTrail>,
}

impl std::fmt::Debug for ComplianceLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComplianceLayer").field("rules", &self.shared.rules.len()).finish_non_exhaustive()
    }
}

impl ComplianceLayer {
    /// The built-in rules of every framework ([`builtin`](super::builtin)), recording to
    /// `recorder`.
    pub fn new(recorder: ComplianceRecorder) -> Self {
        Self::with_rules(recorder, super::builtin())
    }

    /// Only these rules.
    pub fn with_rules(recorder: ComplianceRecorder, rules: Vec<Arc<dyn Rule>>) -> Self {
        recorder.register(&rules);
        Self { shared: Arc::new(Shared { rules, recorder, logs: None, trail: None }) }
    }

    /// Adds a custom rule.
    pub fn rule(self, rule: impl Rule) -> Self {
        let rule: Arc<dyn Rule> = Arc::new(rule);
        self.shared.recorder.register(std::slice::from_ref(&rule));
        self.map(|s| s.rules.push(rule))
    }

    /// Reads each invocation's log lines from `tap`.
    pub fn logs(self, tap: impl LogTap) -> Self {
        self.map(|s| s.logs = Some(Arc::new(tap)))
    }

    /// Records violations in the audit trail too.
    pub fn audit(self, trail: AuditTrail) -> Self {
        self.map(|s| s.trail = Some(trail))
    }

    fn map(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::try_unwrap(self.shared).unwrap_or_else(|arc| Shared {
            rules: arc.rules.clone(),
            recorder: arc.recorder.clone(),
            logs: arc.logs.clone(),
            trail: arc.trail.clone(),
        });
        f(&mut shared);
        Self { shared: Arc::new(shared) }
    }
}

impl<S> Layer<S> for ComplianceLayer {
    type Service = Compliance<S>;

    fn layer(&self, inner: S) -> Compliance<S> {
        Compliance { inner, shared: Arc::clone(&self.shared) }
    }
}

/// The service made by [`ComplianceLayer`].
#[derive(Clone)]
pub struct Compliance<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for Compliance<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compliance").finish_non_exhaustive()
    }
}

/// Runs the rules of one phase: the violations found.
pub fn check(rules: &[Arc<dyn Rule>], phase: Phase, record: &InvocationRecord) -> Vec<Violation> {
    judge(rules, phase, record)
        .into_iter()
        .filter_map(|(r, verdict)| match verdict {
            Verdict::Violated(detail) => Some(violation(&*r, detail)),
            _ => None,
        })
        .collect()
}

/// Runs the rules of one phase: every rule of the phase with its verdict (including
/// [`Verdict::NotApplicable`]).
pub fn judge(
    rules: &[Arc<dyn Rule>],
    phase: Phase,
    record: &InvocationRecord,
) -> Vec<(Arc<dyn Rule>, Verdict)> {
    let facts = Facts::new(record);
    rules.iter().filter(|r| r.phase() == phase).map(|r| (Arc::clone(r), r.judge(&facts))).collect()
}

fn violation(rule: &dyn Rule, detail: String) -> Violation {
    Violation { rule: rule.id().to_owned(), framework: rule.framework(), severity: rule.severity(), detail }
}

/// The rule whose critical breach is in the answer itself, when one withholds answers
/// ([`Rule::withholds_answer`]), and whether the answer was the breach's only evidence. The
/// record is judged again with the answer alone (no log lines, no audit entries), and
/// without the answer, only when such a rule was breached.
fn withheld_by(
    verdicts: &[(Arc<dyn Rule>, Verdict)],
    record: &InvocationRecord,
) -> Option<(Arc<dyn Rule>, bool)> {
    let breached = |rule: &Arc<dyn Rule>, record: &InvocationRecord| {
        matches!(rule.judge(&Facts::new(record)), Verdict::Violated(_))
    };
    verdicts.iter().find_map(|(rule, verdict)| {
        if !(matches!(verdict, Verdict::Violated(_))
            && rule.severity() == Severity::Critical
            && rule.withholds_answer())
        {
            return None;
        }
        let answer_only =
            InvocationRecord { logs: Vec::new(), audit: Vec::new(), audit_storage: None, ..record.clone() };
        if !breached(rule, &answer_only) {
            return None;
        }
        let without_answer = InvocationRecord { response: None, ..record.clone() };
        Some((Arc::clone(rule), !breached(rule, &without_answer)))
    })
}

fn violations_of(verdicts: &[(Arc<dyn Rule>, Verdict)]) -> Vec<Violation> {
    verdicts
        .iter()
        .filter_map(|(r, v)| match v {
            Verdict::Violated(detail) => Some(violation(&**r, detail.clone())),
            _ => None,
        })
        .collect()
}

impl<S, B, ResB> Service<http::Request<B>> for Compliance<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + From<Vec<u8>> + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResB: http_body::Body + From<Vec<u8>> + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Into<BoxError>,
{
    type Response = http::Response<ResB>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<http::Response<ResB>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        around(&mut self.inner, req, move |mut inner, req| guard(&mut inner, shared, req))
    }
}

/// Checks the request, calls the inner service and checks the invocation.
fn guard<S>(
    inner: &mut S,
    shared: Arc<Shared>,
    mut req: Request,
) -> BoxFuture<'static, Result<Response, BoxError>>
where
    S: Service<Request, Response = Response>,
    S::Error: Into<BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    sanitize(&mut req);
    let mut record = InvocationRecord { request: view(&req), ..InvocationRecord::default() };
    let verdicts = judge(&shared.rules, Phase::Request, &record);
    let violations = violations_of(&verdicts);
    let blocking = violations.iter().find(|v| v.severity == Severity::Critical).cloned();
    let request_id = record.request.request_id.clone();
    shared.recorder.record(&verdicts, &request_id, blocking.is_some());
    if let Some(block) = blocking {
        let status = shared
            .rules
            .iter()
            .find(|r| r.id() == block.rule)
            .map_or(http::StatusCode::FORBIDDEN, |r| r.block_status());
        let res = Error::new(status)
            .with_detail(format!("refused by compliance rule {}: {}", block.rule, block.detail))
            .render(Some(&request_id));
        return Box::pin(async move {
            report_violations(&shared, &record, &violations).await;
            Ok(res)
        });
    }
    let mark = shared.logs.as_ref().map(|t| t.mark());
    let future = inner.call(req);
    Box::pin(async move {
        let res = future.await.map_err(Into::into)?;
        record.response = Some(ResponseView {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.body().clone().into_bytes(),
        });
        if let (Some(tap), Some(mark)) = (&shared.logs, mark) {
            record.logs = tap.since(mark);
        }
        if let Some(Audited(entry)) = res.extensions().get::<Audited>() {
            record.audit.push(entry.clone());
        }
        record.audit_storage = res.extensions().get::<AuditStorage>().copied();
        if let Some(storage) = record.audit_storage {
            shared.recorder.record_audit(storage);
        }
        let verdicts = judge(&shared.rules, Phase::Invocation, &record);
        let violations = violations_of(&verdicts);
        let withheld = withheld_by(&verdicts, &record);
        match &withheld {
            // Blocked: the answer was the breach's only evidence, and it never left.
            Some((rule, true)) => {
                let (this, rest): (Vec<_>, Vec<_>) =
                    verdicts.iter().cloned().partition(|(r, _)| Arc::ptr_eq(r, rule));
                shared.recorder.record(&this, &request_id, true);
                shared.recorder.record(&rest, &request_id, false);
            }
            // Withheld or not, a breach with evidence elsewhere (a log line, an audit entry)
            // happened.
            _ => shared.recorder.record(&verdicts, &request_id, false),
        }
        report_violations(&shared, &record, &violations).await;
        if let Some((rule, _)) = withheld {
            let detail = violations.iter().find(|v| v.rule == rule.id()).map_or("", |v| v.detail.as_str());
            return Ok(Error::new(rule.block_status())
                .with_detail(format!("the answer was withheld by compliance rule {}: {detail}", rule.id()))
                .render(Some(&request_id)));
        }
        Ok(res)
    })
}

async fn report_violations(shared: &Shared, record: &InvocationRecord, violations: &[Violation]) {
    for v in violations {
        tracing::warn!(rule = %v.rule, severity = ?v.severity, request_id = %record.request.request_id, detail = %v.detail, "compliance violation");
    }
    let Some(trail) = &shared.trail else { return };
    if violations.is_empty() {
        return;
    }
    for v in violations {
        let entry = AuditEntry::new(
            record.request.tenant.clone().unwrap_or_else(|| "-".to_owned()),
            record.request.subject.clone().unwrap_or_else(|| "anonymous".to_owned()),
            "compliance.violation",
            v.rule.clone(),
            Outcome::Denied,
        )
        .request_id(record.request.request_id.clone())
        .detail(v.detail.clone());
        // Kept past the trail's ceiling, in its security headroom; refused, and said so,
        // only once that is taken too.
        match trail.reserve_security_event().await {
            Ok(place) => place.fill(entry),
            Err(err) => {
                tracing::error!(error = %err, rule = %v.rule, "compliance violation not recorded in the audit trail")
            }
        }
    }
    if let Err(err) = trail.flush().await {
        tracing::error!(error = %err, "compliance violations not stored in the audit trail yet");
    }
}

fn view(req: &Request) -> RequestView {
    let ctx = Context::of(req);
    let principal = ctx.and_then(Context::principal);
    RequestView {
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        headers: req.headers().clone(),
        body: req.body().clone().into_bytes(),
        request_id: ctx.map(|c| c.request_id().to_owned()).unwrap_or_default(),
        tenant: principal
            .map(|p| p.tenant.clone())
            .or_else(|| ctx.and_then(Context::tenant).map(str::to_owned)),
        subject: principal.map(|p| p.subject.clone()),
        region: ctx.and_then(Context::region).map(str::to_owned),
        transport: proven_transport(req),
    }
}

/// What the event source proves about the transport: API Gateway (REST and HTTP APIs)
/// and Function URLs only take HTTPS. Anything else proves nothing by itself.
fn proven_transport(req: &Request) -> Transport {
    #[cfg(feature = "lambda")]
    {
        use lambda_http::request::RequestContext;
        if let Some(RequestContext::ApiGatewayV1(_) | RequestContext::ApiGatewayV2(_)) =
            req.extensions().get::<RequestContext>()
        {
            return Transport::Tls;
        }
    }
    let _ = req;
    Transport::Unknown
}

/// Removes routing-override headers and redacts sensitive query values.
pub fn sanitize(req: &mut Request) {
    for name in ROUTING_OVERRIDES {
        req.headers_mut().remove(HeaderName::from_static(name));
    }
    let Some(query) = req.uri().query() else { return };
    let mut changed = false;
    let cleaned: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let normal: String =
                name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
            let decoded = value.replace("%20", " ").replace('+', " ").replace("%2D", "-").replace("%2d", "-");
            let sensitive = SECRET_PARAMS.contains(&normal.as_str())
                || scan_text(&decoded)
                    .iter()
                    .any(|m| matches!(m.class, DataClass::Pan | DataClass::Ssn | DataClass::Secret));
            if sensitive && !value.is_empty() {
                changed = true;
                format!("{name}=%5BREDACTED%5D")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    if !changed {
        return;
    }
    let path_and_query = format!("{}?{}", req.uri().path(), cleaned.join("&"));
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}
