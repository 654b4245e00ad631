//! Frameworks, rules and what one invocation looks like to them.

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};

use crate::security::audit::{AuditEntry, AuditStorage};
use crate::security::protection::detect::scan_text;
use crate::security::protection::DataClass;

/// A compliance framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Framework {
    /// AICPA SOC 2 trust services criteria.
    Soc2,
    /// PCI DSS v4.
    PciDss,
    /// The HIPAA Security Rule (45 CFR 164 subpart C).
    Hipaa,
    /// The EU General Data Protection Regulation.
    Gdpr,
}

impl Framework {
    /// Every framework, in report order.
    pub const ALL: [Framework; 4] = [Framework::PciDss, Framework::Hipaa, Framework::Soc2, Framework::Gdpr];

    /// The name used in rule ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Soc2 => "SOC2",
            Self::PciDss => "PCI-DSS",
            Self::Hipaa => "HIPAA",
            Self::Gdpr => "GDPR",
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How bad a violation is. `Critical` ones found before the handler block the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Severity {
    /// Worth a look.
    Low,
    /// A weakness.
    Medium,
    /// A breach of the requirement.
    High,
    /// A breach that must not reach the handler (or the client).
    Critical,
}

/// When a rule can judge: on the request alone (before the handler), or on the whole
/// invocation (after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before the handler: the request and its context.
    Request,
    /// After the handler: request, response, log lines and audit entries.
    Invocation,
}

/// How a request reached the service, as far as the service can prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum Transport {
    /// Over TLS: an API Gateway or Function URL event (they only take HTTPS), or an edge
    /// that said `X-Forwarded-Proto: https`.
    Tls,
    /// Over plain HTTP, as the edge reports it (`X-Forwarded-Proto: http`).
    Plain,
    /// Nothing says: a local server without `X-Forwarded-Proto`. Unknown is not TLS.
    #[default]
    Unknown,
}

/// The request as rules see it.
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The query string (after sanitizing).
    pub query: Option<String>,
    /// The headers (after sanitizing).
    pub headers: HeaderMap,
    /// The body.
    pub body: bytes::Bytes,
    /// The request id.
    pub request_id: String,
    /// The tenant, if authenticated.
    pub tenant: Option<String>,
    /// The principal's subject, if authenticated.
    pub subject: Option<String>,
    /// The region the function runs in.
    pub region: Option<String>,
    /// The transport the event source proves ([`Transport::Unknown`] when it proves none;
    /// then `X-Forwarded-Proto` decides, see [`InvocationRecord::transport`]).
    pub transport: Transport,
}

/// The response as rules see it.
#[derive(Debug, Clone, Default)]
pub struct ResponseView {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: bytes::Bytes,
}

/// One invocation: what a rule checks.
#[derive(Debug, Clone, Default)]
pub struct InvocationRecord {
    /// The request.
    pub request: RequestView,
    /// The response (none before the handler ran).
    pub response: Option<ResponseView>,
    /// The log lines the invocation wrote.
    pub logs: Vec<String>,
    /// The audit entries the invocation recorded.
    pub audit: Vec<AuditEntry>,
    /// Whether the audit entry was durably stored before the response (none: no audit
    /// layer said).
    pub audit_storage: Option<AuditStorage>,
}

impl InvocationRecord {
    /// How the request arrived: what the event source proves, else what the edge says in
    /// `X-Forwarded-Proto`, else [`Transport::Unknown`].
    pub fn transport(&self) -> Transport {
        if self.request.transport != Transport::Unknown {
            return self.request.transport;
        }
        match self.request.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
            Some(proto) if proto.trim().eq_ignore_ascii_case("https") => Transport::Tls,
            Some(_) => Transport::Plain,
            None => Transport::Unknown,
        }
    }

    /// Whether the invocation's audit entries were durably stored before the response.
    /// An entry that was only attached (the flush failed) is no evidence.
    pub fn audit_stored(&self) -> bool {
        !self.audit.is_empty() && self.audit_storage == Some(AuditStorage::Stored)
    }
}

fn json(body: &[u8]) -> Option<serde_json::Value> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    matches!(first, b'{' | b'[').then(|| serde_json::from_slice(body).ok()).flatten()
}

fn classes(text: &[u8]) -> Vec<DataClass> {
    let text = String::from_utf8_lossy(text);
    let mut classes: Vec<DataClass> = scan_text(&text).into_iter().map(|m| m.class).collect();
    classes.sort_by_key(|c| *c as u8);
    classes.dedup();
    classes
}

/// One invocation as rules see it: the record, and what is derived from it (parsed JSON,
/// the classes of sensitive values in each text), worked out once per check however many
/// rules ask. It dereferences to the [`InvocationRecord`].
pub struct Facts<'a> {
    record: &'a InvocationRecord,
    request_json: OnceCell<Option<serde_json::Value>>,
    response_json: OnceCell<Option<serde_json::Value>>,
    request_classes: OnceCell<Vec<DataClass>>,
    response_classes: OnceCell<Vec<DataClass>>,
    log_classes: OnceCell<Vec<Vec<DataClass>>>,
    audit_classes: OnceCell<Vec<Vec<DataClass>>>,
}

impl fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Facts").field("record", self.record).finish_non_exhaustive()
    }
}

impl std::ops::Deref for Facts<'_> {
    type Target = InvocationRecord;

    fn deref(&self) -> &InvocationRecord {
        self.record
    }
}

impl<'a> Facts<'a> {
    /// The facts of a record.
    pub fn new(record: &'a InvocationRecord) -> Self {
        Self {
            record,
            request_json: OnceCell::new(),
            response_json: OnceCell::new(),
            request_classes: OnceCell::new(),
            response_classes: OnceCell::new(),
            log_classes: OnceCell::new(),
            audit_classes: OnceCell::new(),
        }
    }

    /// The record.
    pub fn record(&self) -> &'a InvocationRecord {
        self.record
    }

    /// The request body as JSON, if it is JSON.
    pub fn request_json(&self) -> Option<&serde_json::Value> {
        self.request_json.get_or_init(|| json(&self.record.request.body)).as_ref()
    }

    /// The response body as JSON, if there is a response and it is JSON.
    pub fn response_json(&self) -> Option<&serde_json::Value> {
        self.response_json.get_or_init(|| self.record.response.as_ref().and_then(|r| json(&r.body))).as_ref()
    }

    /// The classes of sensitive values in the request body.
    pub fn request_classes(&self) -> &[DataClass] {
        self.request_classes.get_or_init(|| classes(&self.record.request.body))
    }

    /// The classes of sensitive values in the response body.
    pub fn response_classes(&self) -> &[DataClass] {
        self.response_classes
            .get_or_init(|| self.record.response.as_ref().map(|r| classes(&r.body)).unwrap_or_default())
    }

    /// The classes of sensitive values in each log line.
    pub fn log_classes(&self) -> &[Vec<DataClass>] {
        self.log_classes.get_or_init(|| self.record.logs.iter().map(|l| classes(l.as_bytes())).collect())
    }

    /// The classes of sensitive values in each audit entry's action, resource and details
    /// (a resource that defaulted to a path can carry what the caller put in the path).
    pub fn audit_classes(&self) -> &[Vec<DataClass>] {
        self.audit_classes.get_or_init(|| {
            self.record
                .audit
                .iter()
                .map(|e| classes(format!("{}\n{}\n{}", e.action, e.resource, e.detail).as_bytes()))
                .collect()
        })
    }
}

/// A breach of a rule found in one invocation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The rule's id, citing its requirement (e.g. `PCI-DSS 3.4`).
    pub rule: String,
    /// The framework.
    pub framework: Framework,
    /// How bad.
    pub severity: Severity,
    /// What was found and where, without the sensitive value itself.
    pub detail: String,
}

/// What a rule found in one invocation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    /// The rule's precondition is absent (no card data for a card rule...): the invocation
    /// is no evidence either way.
    NotApplicable,
    /// The rule applied and held.
    Held,
    /// The rule applied and was broken: what was found, without the sensitive value.
    Violated(String),
    /// The rule applied but the invocation cannot prove it held (no transport known, no
    /// region set): never counted as held.
    Unknown(String),
}

impl Verdict {
    /// Whether the rule applied.
    pub fn applied(&self) -> bool {
        !matches!(self, Self::NotApplicable)
    }
}

/// A compliance rule: an id that cites its requirement, a framework, a severity, when it
/// applies to an invocation, and a check over one invocation.
///
/// Implement it for custom rules, or build one from a closure with [`rule`] (and say when
/// it applies with [`FnRule::applies_when`]).
pub trait Rule: Send + Sync + 'static {
    /// The id, citing the requirement: `PCI-DSS 3.4`, `HIPAA 164.312(b)`, `GDPR Art. 44`.
    fn id(&self) -> &str;
    /// The framework.
    fn framework(&self) -> Framework;
    /// What the requirement asks, in a line.
    fn title(&self) -> &str;
    /// How bad a breach is.
    fn severity(&self) -> Severity;
    /// When it can judge.
    fn phase(&self) -> Phase;
    /// `Some(detail)` when the invocation breaks the rule.
    fn check(&self, facts: &Facts<'_>) -> Option<String>;
    /// Whether the rule applies to the invocation: only then does it count as checked.
    /// The default applies to every invocation.
    fn applies(&self, facts: &Facts<'_>) -> bool {
        let _ = facts;
        true
    }
    /// The verdict over one invocation: [`Verdict::NotApplicable`] unless it
    /// [`applies`](Self::applies), else held or violated by [`check`](Self::check). Rules
    /// that can be undecidable (no transport, no region) override it to say
    /// [`Verdict::Unknown`].
    fn judge(&self, facts: &Facts<'_>) -> Verdict {
        if !self.applies(facts) {
            return Verdict::NotApplicable;
        }
        self.check(facts).map_or(Verdict::Held, Verdict::Violated)
    }
    /// The status a request blocked by this rule gets (403 unless the rule says otherwise,
    /// e.g. 451 for a data-residency rule).
    fn block_status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }
    /// Whether a critical breach found in the answer itself withholds the answer: the client
    /// gets [`block_status`](Self::block_status) as a problem instead of what would leak.
    /// For rules about what an answer carries (a card number, a verification code, a
    /// secret, ePHI to no one); not for rules about what else happened (a log line, a
    /// missing audit entry), which withholding the answer would not undo. The default: no.
    fn withholds_answer(&self) -> bool {
        false
    }
}

/// A rule from a closure.
///
/// # Examples
///
/// ```
/// use lift::security::compliance::{rule, Facts, Framework, Phase, Severity};
///
/// let no_debug = rule("SOC2 CC8.1", Framework::Soc2, Severity::Medium, Phase::Request,
///     "no debug switches in production requests",
///     |r: &Facts<'_>| r.request.headers.contains_key("x-debug").then(|| "x-debug header".to_owned()));
/// assert_eq!(no_debug.id(), "SOC2 CC8.1");
/// ```
pub fn rule(
    id: impl Into<String>,
    framework: Framework,
    severity: Severity,
    phase: Phase,
    title: impl Into<String>,
    check: impl Fn(&Facts<'_>) -> Option<String> + Send + Sync + 'static,
) -> FnRule {
    FnRule {
        id: id.into(),
        framework,
        severity,
        phase,
        title: title.into(),
        block: StatusCode::FORBIDDEN,
        check: Arc::new(check),
        applies: None,
    }
}

/// The check of a [`FnRule`].
pub type CheckFn = Arc<dyn Fn(&Facts<'_>) -> Option<String> + Send + Sync>;

/// When a [`FnRule`] applies.
pub type AppliesFn = Arc<dyn Fn(&Facts<'_>) -> bool + Send + Sync>;

/// A rule made by [`rule`].
#[derive(Clone)]
pub struct FnRule {
    id: String,
    framework: Framework,
    severity: Severity,
    phase: Phase,
    title: String,
    block: StatusCode,
    check: CheckFn,
    applies: Option<AppliesFn>,
}

impl fmt::Debug for FnRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnRule")
            .field("id", &self.id)
            .field("severity", &self.severity)
            .finish_non_exhaustive()
    }
}

impl FnRule {
    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The status a request blocked by this rule gets (default 403).
    pub fn block_with(mut self, status: StatusCode) -> Self {
        self.block = status;
        self
    }

    /// Says when the rule applies (default: to every invocation); on the others it is not
    /// counted as checked.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::security::compliance::{rule, Facts, Framework, Phase, Severity};
    ///
    /// let refunds_audited = rule("SOC2 CC7.3", Framework::Soc2, Severity::High, Phase::Invocation,
    ///     "refunds leave an audit entry",
    ///     |r: &Facts<'_>| (!r.audit_stored()).then(|| "refund without a stored audit entry".to_owned()))
    ///     .applies_when(|r: &Facts<'_>| r.request.path.ends_with("/refunds"));
    /// # let _ = refunds_audited;
    /// ```
    pub fn applies_when(mut self, applies: impl Fn(&Facts<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.applies = Some(Arc::new(applies));
        self
    }
}

impl Rule for FnRule {
    fn id(&self) -> &str {
        &self.id
    }
    fn framework(&self) -> Framework {
        self.framework
    }
    fn title(&self) -> &str {
        &self.title
    }
    fn severity(&self) -> Severity {
        self.severity
    }
    fn phase(&self) -> Phase {
        self.phase
    }
    fn check(&self, facts: &Facts<'_>) -> Option<String> {
        (self.check)(facts)
    }
    fn applies(&self, facts: &Facts<'_>) -> bool {
        self.applies.as_ref().is_none_or(|applies| applies(facts))
    }
    fn block_status(&self) -> StatusCode {
        self.block
    }
}
