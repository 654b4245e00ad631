//! What every handler sees about its invocation, carried in request extensions.
//!
//! The [`App`](crate::App) inserts a [`Context`] into every request before any layer runs:
//! the request id, the tenant and [`Principal`] (set by authentication middleware), the
//! region, and the deadline of the Lambda invocation. Path parameters are in [`PathParams`].
//! Request data lives here, never in process globals: Lambda may run several invocations
//! at once in one process.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// The header a request id is read from and echoed in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What the Lambda runtime says about the current invocation.
///
/// Event dispatch inserts it into request extensions; outside Lambda there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The Lambda request id.
    pub request_id: String,
    /// When Lambda will stop the invocation.
    pub deadline: Option<SystemTime>,
    /// The ARN the function was invoked with.
    pub invoked_function_arn: Option<String>,
    /// The X-Ray trace header of the invocation.
    pub xray_trace_id: Option<String>,
}

/// The answer a handler gave, kept when a layer between it and idempotency replaced it
/// with a failure after the handler's effects were written: the audit layer answers `503`
/// when it cannot store the entry of a request whose handler already ran.
///
/// The replacement carries this in its extensions. The idempotency layer stores the
/// committed answer instead of releasing its record, so the client's retry replays what
/// happened (a refund made once) instead of running the operation a second time.
///
/// # Examples
///
/// ```
/// use lift::context::CommittedAnswer;
/// let answer = CommittedAnswer::new(http::Response::new(lift::Body::from("done")));
/// let copy = answer.clone();
/// assert_eq!(copy.take().map(|r| r.status()), Some(http::StatusCode::OK));
/// assert!(answer.take().is_none(), "taken once");
/// ```
pub struct CommittedAnswer<B>(std::sync::Arc<std::sync::Mutex<Option<http::Response<B>>>>);

impl<B> CommittedAnswer<B> {
    /// Keeps `answer`.
    pub fn new(answer: http::Response<B>) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Some(answer))))
    }

    /// The answer, once: later calls (from any clone) get `None`.
    pub fn take(&self) -> Option<http::Response<B>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl<B> Clone for CommittedAnswer<B> {
    fn clone(&self) -> Self {
        Self(std::sync::Arc::clone(&self.0))
    }
}

impl<B> std::fmt::Debug for CommittedAnswer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommittedAnswer")
    }
}

/// Who is calling: set by authentication middleware.
///
/// A subject is unique only within its issuer: OpenID Connect makes `sub` "locally unique
/// ... within the Issuer", so two trusted issuers may each have a user `alice`. Anything
/// kept per caller must be kept by [`qualified_subject`](Self::qualified_subject), which
/// names the issuer too; Lift's idempotency records and per-user rate limits are.
///
/// # Examples
///
/// ```
/// let p = lift::Principal::new("user-1", "tenant-a").with_roles(["admin"]).with_scopes(["payments:write"]);
/// assert!(p.has_role("admin") && p.has_scope("payments:write") && !p.has_role("auditor"));
///
/// // The same subject from two issuers is two callers.
/// let ours = lift::Principal::new("alice", "acme").with_issuer("https://id.example.com");
/// let partner = lift::Principal::new("alice", "acme").with_issuer("https://partner.example.net");
/// assert_ne!(ours.qualified_subject(), partner.qualified_subject());
/// assert_eq!(ours.qualified_subject(), "22:https://id.example.com|alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The subject (user or client id), unique within its [`issuer`](Self::issuer) only.
    pub subject: String,
    /// Who vouched for the subject: the `iss` of the verified token. `None` for a principal
    /// made without one (tests, custom authentication); its subject then stands alone.
    pub issuer: Option<String>,
    /// The tenant the subject acts for.
    pub tenant: String,
    /// Roles granted to the subject.
    pub roles: BTreeSet<String>,
    /// OAuth scopes granted to the subject.
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// A principal with no roles or scopes.
    pub fn new(subject: impl Into<String>, tenant: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            issuer: None,
            tenant: tenant.into(),
            roles: BTreeSet::new(),
            scopes: BTreeSet::new(),
        }
    }

    /// Sets the issuer that vouched for the subject.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The caller across issuers: the issuer's length in bytes, the issuer and the subject
    /// (`22:https://id.example.com|alice`; without an issuer, `0:|alice`). The length comes
    /// first, so no issuer and subject can spell another pair's: a subject that contains `|`
    /// or looks like an issuer cannot pass for another issuer's user, and a principal
    /// without an issuer cannot pass for one with.
    pub fn qualified_subject(&self) -> String {
        let mut out = String::new();
        self.write_qualified_subject(&mut out);
        out
    }

    /// Appends [`qualified_subject`](Self::qualified_subject) to `out`, for keys built in
    /// one string.
    pub fn write_qualified_subject(&self, out: &mut String) {
        write_qualified(out, self.issuer.as_deref().unwrap_or_default(), &self.subject);
    }

    /// Adds roles.
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// Adds scopes.
    pub fn with_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Whether the principal has the role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// Whether the principal has the scope.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// The tenant of a request as authentication resolves it, shared by every copy of its
/// [`Context`] (see [`Context::resolved_tenant`]).
#[derive(Clone, Default)]
pub struct ResolvedTenant(std::sync::Arc<std::sync::Mutex<Resolved>>);

#[derive(Default)]
struct Resolved {
    tenant: Option<String>,
    /// The span whose `tenant` field is recorded when the tenant is set (the request log's),
    /// and any more (no allocation for the usual one).
    span: Option<tracing::Span>,
    more: Vec<tracing::Span>,
}

impl ResolvedTenant {
    /// The tenant, once a layer has set it.
    pub fn get(&self) -> Option<String> {
        self.lock().tenant.clone()
    }

    /// Records the tenant into `span`'s `tenant` field (declared, e.g. as
    /// `tracing::field::Empty`) once a layer sets it, or now if it is set: the request log,
    /// mounted before authentication, opens its span before the tenant is known, and every
    /// line logged after authentication still carries it.
    pub fn record_into(&self, span: tracing::Span) {
        let mut resolved = self.lock();
        match &resolved.tenant {
            Some(tenant) => {
                span.record("tenant", tenant.as_str());
            }
            None if resolved.span.is_none() => resolved.span = Some(span),
            None => resolved.more.push(span),
        }
    }

    fn set(&self, tenant: &str) {
        let mut resolved = self.lock();
        for span in resolved.span.iter().chain(&resolved.more) {
            span.record("tenant", tenant);
        }
        resolved.tenant = Some(tenant.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Resolved> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for ResolvedTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ResolvedTenant").field(&self.get()).finish()
    }
}

/// Two contexts compare by what they say, not by whether they share this handle.
impl PartialEq for ResolvedTenant {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ResolvedTenant {}

/// The per-request context every handler and layer can read.
///
/// # Examples
///
/// ```
/// let mut req = http::Request::new(lift::Body::empty());
/// req.extensions_mut().insert(lift::Context::new("req-1"));
/// assert_eq!(lift::Context::of(&req).unwrap().request_id(), "req-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    request_id: std::sync::Arc<str>,
    principal: Option<Principal>,
    tenant: Option<String>,
    region: Option<String>,
    deadline: Option<SystemTime>,
    trace_header: Option<String>,
    function_arn: Option<String>,
    resolved: Option<ResolvedTenant>,
}

impl Context {
    /// A context with the given request id and nothing else.
    pub fn new(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into().into(),
            principal: None,
            tenant: None,
            region: None,
            deadline: None,
            trace_header: None,
            function_arn: None,
            resolved: None,
        }
    }

    /// Builds the context of a request: the request id comes from the Lambda invocation,
    /// else a well-formed `X-Request-Id` header, else it is generated.
    pub fn from_parts(headers: &HeaderMap, invocation: Option<&Invocation>, region: Option<&str>) -> Self {
        let request_id = invocation
            .map(|i| i.request_id.clone())
            .filter(|id| valid_request_id(id))
            .or_else(|| {
                headers
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|id| valid_request_id(id))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let trace_header = invocation
            .and_then(|i| i.xray_trace_id.clone())
            .or_else(|| headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok()).map(str::to_owned));
        Self {
            request_id: request_id.into(),
            principal: None,
            tenant: None,
            region: region.map(str::to_owned),
            deadline: invocation.and_then(|i| i.deadline),
            trace_header,
            function_arn: invocation.and_then(|i| i.invoked_function_arn.clone()),
            resolved: None,
        }
    }

    /// The context of a request, if the App inserted one.
    pub fn of<B>(req: &http::Request<B>) -> Option<&Context> {
        req.extensions().get::<Context>()
    }

    /// The mutable context of a request, for middleware that sets the principal.
    pub fn of_mut<B>(req: &mut http::Request<B>) -> Option<&mut Context> {
        req.extensions_mut().get_mut::<Context>()
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The request id, shared: a reference count, not a copy (for layers that keep it past
    /// the request, to name it in an error).
    pub fn shared_request_id(&self) -> std::sync::Arc<str> {
        std::sync::Arc::clone(&self.request_id)
    }

    /// The authenticated principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Sets the principal; the tenant follows the principal's.
    pub fn set_principal(&mut self, principal: Principal) {
        if let Some(resolved) = &self.resolved {
            resolved.set(&principal.tenant);
        }
        self.tenant = Some(principal.tenant.clone());
        self.principal = Some(principal);
    }

    /// The tenant of the request: the principal's, or one set by trusted middleware.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Sets the tenant without a principal (only trusted middleware should).
    pub fn set_tenant(&mut self, tenant: impl Into<String>) {
        let tenant = tenant.into();
        if let Some(resolved) = &self.resolved {
            resolved.set(&tenant);
        }
        self.tenant = Some(tenant);
    }

    /// The tenant as it is once authentication has run, for layers mounted outside it.
    ///
    /// Metrics and the request log come before JWT in the recommended order, so the
    /// context they see has no tenant yet. The handle is shared by every copy of this
    /// context: read it when the answer comes back.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut outer = lift::Context::new("req-1");
    /// let resolved = outer.resolved_tenant();
    /// let mut inner = outer.clone(); // what the request carries past the outer layer
    /// inner.set_principal(lift::Principal::new("alice", "acme"));
    /// assert_eq!((outer.tenant(), resolved.get().as_deref()), (None, Some("acme")));
    /// ```
    /// The handle is made on first use (no allocation for requests nobody asks about),
    /// holding the tenant already set, if any.
    pub fn resolved_tenant(&mut self) -> ResolvedTenant {
        let tenant = self.tenant.clone();
        self.resolved
            .get_or_insert_with(|| {
                let resolved = ResolvedTenant::default();
                if let Some(tenant) = &tenant {
                    resolved.set(tenant);
                }
                resolved
            })
            .clone()
    }

    /// The AWS region the function runs in.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// When the invocation ends, if running on Lambda.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.deadline
    }

    /// Sets the deadline.
    pub fn set_deadline(&mut self, deadline: SystemTime) {
        self.deadline = Some(deadline);
    }

    /// Time left until the deadline (zero once passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
    }

    /// The X-Ray trace header of the request, if any.
    pub fn trace_header(&self) -> Option<&str> {
        self.trace_header.as_deref()
    }

    /// The ARN the function was invoked with, if running on Lambda.
    pub fn function_arn(&self) -> Option<&str> {
        self.function_arn.as_deref()
    }
}

/// Request ids we echo must be short and plain: they end up in headers and logs.
fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Path parameters captured by the route, e.g. `id` in `/payments/:id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(pub(crate) Vec<(String, String)>);

impl PathParams {
    /// The value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// All parameters in route order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The route pattern that matched, e.g. `/payments/:id` (for metrics and logs).
///
/// The router puts it in the request's extensions and in the response's, so layers outside
/// the router (`App::layer`) find it on the way out. Cloning it is a reference count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRoute(pub std::sync::Arc<str>);

impl MatchedRoute {
    /// The pattern.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A path parameter of the request.
///
/// # Examples
///
/// ```
/// # use lift::{App, Request, Response, Error};
/// async fn get_payment(req: Request) -> Result<Response, Error> {
///     let id = lift::path_param(&req, "id").ok_or_else(Error::not_found)?;
///     Ok(lift::json_response(http::StatusCode::OK, &serde_json::json!({ "id": id })))
/// }
/// let app = App::new().get("/payments/:id", get_payment);
/// ```
pub fn path_param<'a, B>(req: &'a http::Request<B>, name: &str) -> Option<&'a str> {
    req.extensions().get::<PathParams>().and_then(|p| p.get(name))
}

/// The client address, inserted by a trusted part of the stack (the server that accepted
/// the connection, or a proxy-aware layer that knows which hop to trust).
///
/// # Examples
///
/// ```
/// use lift::ClientIp;
///
/// let mut req = http::Request::new(lift::Body::empty());
/// req.extensions_mut().insert(ClientIp("203.0.113.7".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub std::net::IpAddr);

/// The address a client is counted or blocked by: an IPv4 address as it is (also when
/// mapped into IPv6), an IPv6 address cut to its first `ipv6_prefix` bits (at most 128):
/// a client is given a whole /64, and one of its addresses alone names little.
#[cfg(any(feature = "rate-limit", feature = "threat"))]
pub(crate) fn ip_prefix(ip: std::net::IpAddr, ipv6_prefix: u8) -> std::net::IpAddr {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX.checked_shl(128 - u32::from(ipv6_prefix.min(128))).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

/// The client IP of a request, from a source the client cannot forge.
///
/// In order: API Gateway's `requestContext` (HTTP API `http.sourceIp`, REST API
/// `identity.sourceIp`) when running on Lambda, a [`ClientIp`] extension, a `std::net::SocketAddr`
/// extension (the connection's peer, as a server inserts it). `X-Forwarded-For` is never
/// read: behind API Gateway the source IP is already resolved, and elsewhere only the
/// deployment knows which hop to trust (insert a [`ClientIp`] then).
///
/// # Examples
///
/// ```
/// use lift::{client_ip, ClientIp};
///
/// let mut req = http::Request::builder()
///     .header("x-forwarded-for", "198.51.100.1")
///     .body(())
///     .unwrap();
/// assert_eq!(client_ip(&req.clone().into_parts().0), None);
/// req.extensions_mut().insert(ClientIp("203.0.113.7".parse().unwrap()));
/// assert_eq!(client_ip(&req.into_parts().0), Some("203.0.113.7".parse().unwrap()));
/// ```
pub fn client_ip(head: &http::request::Parts) -> Option<std::net::IpAddr> {
    #[cfg(feature = "lambda")]
    if let Some(ip) = lambda_source_ip(head) {
        return Some(ip);
    }
    if let Some(ClientIp(ip)) = head.extensions.get::<ClientIp>() {
        return Some(*ip);
    }
    head.extensions.get::<std::net::SocketAddr>().map(std::net::SocketAddr::ip)
}

#[cfg(feature = "lambda")]
fn lambda_source_ip(head: &http::request::Parts) -> Option<std::net::IpAddr> {
    use lambda_http::request::RequestContext;
    let source = match head.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.as_deref(),
        // ALB puts the client only in X-Forwarded-For: trust it through a ClientIp layer.
        _ => None,
    };
    source.and_then(|s| s.parse().ok())
}

/// Appends `subject` qualified by `issuer` (empty for none) to `out`, as
/// [`Principal::qualified_subject`] spells it.
pub(crate) fn write_qualified(out: &mut String, issuer: &str, subject: &str) {
    use std::fmt::Write as _;
    let _ = write!(out, "{}:{issuer}|{subject}", issuer.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn request_id_prefers_lambda_then_header_then_generated() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("from-header"));
        let inv = Invocation {
            request_id: "lambda-1".into(),
            deadline: None,
            invoked_function_arn: None,
            xray_trace_id: None,
        };
        assert_eq!(Context::from_parts(&headers, Some(&inv), None).request_id(), "lambda-1");
        assert_eq!(Context::from_parts(&headers, None, None).request_id(), "from-header");
        let generated = Context::from_parts(&HeaderMap::new(), None, None);
        assert!(uuid::Uuid::parse_str(generated.request_id()).is_ok());
    }

    #[test]
    fn hostile_request_id_is_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("a b<script>"));
        let ctx = Context::from_parts(&headers, None, None);
        assert_ne!(ctx.request_id(), "a b<script>");
        let long = "x".repeat(129);
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&long).unwrap());
        assert_ne!(Context::from_parts(&headers, None, None).request_id(), long);
    }

    #[test]
    fn principal_sets_tenant_and_remaining_saturates() {
        let mut ctx = Context::new("r");
        ctx.set_principal(Principal::new("u", "t-1"));
        assert_eq!(ctx.tenant(), Some("t-1"));
        ctx.set_deadline(SystemTime::now() - Duration::from_secs(1));
        assert_eq!(ctx.remaining(), Some(Duration::ZERO));
    }

    proptest::proptest! {
        /// Two (issuer, subject) pairs have the same qualified subject only when they are the
        /// same pair: whatever `|`, `:` or digits either holds, and with no issuer as the empty
        /// one. A scheme without the length (`issuer|subject`) fails: `("a|b", "c")` and
        /// `("a", "b|c")` spell the same.
        #[test]
        fn qualified_subjects_never_collide(
            a in (proptest::option::of("[a-c|:0-9]{0,6}"), "[a-c|:0-9]{0,6}"),
            b in (proptest::option::of("[a-c|:0-9]{0,6}"), "[a-c|:0-9]{0,6}"),
        ) {
            let principal = |(issuer, subject): &(Option<String>, String)| {
                let p = Principal::new(subject.as_str(), "t");
                match issuer {
                    Some(issuer) => p.with_issuer(issuer.as_str()),
                    None => p,
                }
            };
            let same = a.0.as_deref().unwrap_or_default() == b.0.as_deref().unwrap_or_default() && a.1 == b.1;
            proptest::prop_assert_eq!(principal(&a).qualified_subject() == principal(&b).qualified_subject(), same);
        }

        /// The pairs random ones rarely hit: a `|` (or any text) moved from the end of the
        /// issuer to the start of the subject, the spelling a naive `issuer|subject` shares.
        #[test]
        fn text_moved_across_the_join_changes_the_qualified_subject(
            x in "[a-c|:0-9]{0,4}", y in "[a-c|:0-9]{0,4}", z in "[a-c|:0-9]{0,4}",
        ) {
            let issuer_has_it = Principal::new(z.as_str(), "t").with_issuer(format!("{x}|{y}"));
            let subject_has_it = Principal::new(format!("{y}|{z}"), "t").with_issuer(x.as_str());
            proptest::prop_assert_ne!(issuer_has_it.qualified_subject(), subject_has_it.qualified_subject());
        }
    }
}
