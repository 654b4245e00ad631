//! Role and scope checks: [`RequireLayer`] and its service [`Require`].
//!
//! They read the [`Principal`](crate::Principal) that authentication put in the
//! [`Context`]: none → 401; present but lacking what the rule asks → 403 with a problem
//! naming what is required (never what the caller has).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{header, HeaderValue, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::context::{Context, Principal};
use crate::error::Error;
use crate::BoxError;

/// The problem type of a request refused for a missing role or scope.
pub const FORBIDDEN_TYPE: &str = "https://lift.dev/problems/insufficient-permissions";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Role,
    Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    Any,
    All,
}

/// What a principal must hold.
#[derive(Debug, PartialEq, Eq)]
struct Rule {
    kind: Kind,
    quantifier: Quantifier,
    names: Vec<String>,
}

impl Rule {
    fn new<I: IntoIterator<Item = S>, S: Into<String>>(kind: Kind, quantifier: Quantifier, names: I) -> Self {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        assert!(!names.is_empty(), "a role or scope requirement needs at least one name");
        Self { kind, quantifier, names }
    }

    fn allows(&self, principal: &Principal) -> bool {
        let holds = |name: &String| match self.kind {
            Kind::Role => principal.has_role(name),
            Kind::Scope => principal.has_scope(name),
        };
        match self.quantifier {
            Quantifier::Any => self.names.iter().any(holds),
            Quantifier::All => self.names.iter().all(holds),
        }
    }

    /// The refusal for an authenticated principal: names what is required only.
    fn forbidden(&self) -> Error {
        let what = match self.kind {
            Kind::Role => "role",
            Kind::Scope => "scope",
        };
        let list = self.names.join(", ");
        let detail = match (self.quantifier, self.names.len()) {
            (_, 1) => format!("the {what} {list} is required"),
            (Quantifier::Any, _) => format!("one of the {what}s {list} is required"),
            (Quantifier::All, _) => format!("the {what}s {list} are required"),
        };
        let err =
            Error::new(StatusCode::FORBIDDEN).with_type(FORBIDDEN_TYPE, "Forbidden").with_detail(detail);
        if self.kind == Kind::Scope {
            // RFC 6750 §3.1: tell an OAuth client which scope to ask for.
            let challenge =
                format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", self.names.join(" "));
            if let Ok(value) = HeaderValue::try_from(challenge) {
                return err.with_header(header::WWW_AUTHENTICATE, value);
            }
        }
        err
    }
}

/// Requires a role or scope of the authenticated principal.
///
/// Use it on a route ([`Route::layer`](crate::app::Route::layer)), a group
/// ([`RouteGroup::layer`](crate::RouteGroup::layer)) or any tower stack, inside the
/// authentication layer.
///
/// # Examples
///
/// ```
/// use lift::middleware::auth::{require_any_role, require_scope};
/// use lift::{RouteGroup, Request, Response};
///
/// async fn refund(_req: Request) -> Response { Response::default() }
/// let admin = RouteGroup::new("/admin")
///     .post("/refunds", refund)
///     .layer(require_scope("payments:write"))
///     .layer(require_any_role(["admin", "support"]));
/// ```
#[derive(Clone)]
pub struct RequireLayer {
    rule: Arc<Rule>,
}

impl fmt::Debug for RequireLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireLayer").field("rule", &self.rule).finish()
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Require<S> {
        Require { inner, rule: self.rule.clone() }
    }
}

impl RequireLayer {
    /// What this layer requires, as [`App::routes`](crate::App::routes) lists it.
    pub fn requirement(&self) -> crate::app::Requirement {
        crate::app::Requirement {
            kind: match self.rule.kind {
                Kind::Role => crate::app::RequirementKind::Role,
                Kind::Scope => crate::app::RequirementKind::Scope,
            },
            all: self.rule.quantifier == Quantifier::All,
            names: self.rule.names.clone(),
        }
    }
}

fn layer(rule: Rule) -> RequireLayer {
    RequireLayer { rule: Arc::new(rule) }
}

/// Requires the role.
pub fn require_role(role: impl Into<String>) -> RequireLayer {
    layer(Rule::new(Kind::Role, Quantifier::Any, [role.into()]))
}

/// Requires at least one of the roles.
///
/// # Panics
/// When `roles` is empty.
pub fn require_any_role<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> RequireLayer {
    layer(Rule::new(Kind::Role, Quantifier::Any, roles))
}

/// Requires every one of the roles.
///
/// # Panics
/// When `roles` is empty.
pub fn require_all_roles<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> RequireLayer {
    layer(Rule::new(Kind::Role, Quantifier::All, roles))
}

/// Requires the scope.
pub fn require_scope(scope: impl Into<String>) -> RequireLayer {
    layer(Rule::new(Kind::Scope, Quantifier::Any, [scope.into()]))
}

/// Requires at least one of the scopes.
///
/// # Panics
/// When `scopes` is empty.
pub fn require_any_scope<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> RequireLayer {
    layer(Rule::new(Kind::Scope, Quantifier::Any, scopes))
}

/// Requires every one of the scopes.
///
/// # Panics
/// When `scopes` is empty.
pub fn require_all_scopes<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> RequireLayer {
    layer(Rule::new(Kind::Scope, Quantifier::All, scopes))
}

/// The service of a [`RequireLayer`]: checks the principal, then calls the inner service.
#[derive(Clone)]
pub struct Require<S> {
    inner: S,
    rule: Arc<Rule>,
}

impl<S> fmt::Debug for Require<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Require").field("rule", &self.rule).finish_non_exhaustive()
    }
}

impl<S> Require<S> {
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

impl<S, B> Service<http::Request<B>> for Require<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = RequireFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match Context::of(&req).and_then(Context::principal) {
            Some(principal) if self.rule.allows(principal) => {
                RequireFuture { state: State::Allowed { future: self.inner.call(req) } }
            }
            Some(_) => RequireFuture { state: State::Denied { error: Some(self.rule.forbidden()) } },
            None => {
                let error = Error::unauthorized("Bearer").with_detail("authentication is required");
                RequireFuture { state: State::Denied { error: Some(error) } }
            }
        }
    }
}

pin_project! {
    /// The response future of [`Require`].
    pub struct RequireFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Allowed { #[pin] future: F },
        Denied { error: Option<Error> },
    }
}

impl<F> fmt::Debug for RequireFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequireFuture")
    }
}

impl<F, R, E> Future for RequireFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Allowed { future } => future.poll(cx).map_err(Into::into),
            StateProj::Denied { error } => {
                Poll::Ready(Err(error.take().map_or_else(|| "polled after completion".into(), Into::into)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn principal() -> Principal {
        Principal::new("u", "t").with_roles(["support"]).with_scopes(["payments:read", "payments:write"])
    }

    #[test]
    fn quantifiers() {
        let p = principal();
        assert!(Rule::new(Kind::Role, Quantifier::Any, ["admin", "support"]).allows(&p));
        assert!(!Rule::new(Kind::Role, Quantifier::All, ["admin", "support"]).allows(&p));
        assert!(Rule::new(Kind::Scope, Quantifier::All, ["payments:read", "payments:write"]).allows(&p));
        assert!(!Rule::new(Kind::Scope, Quantifier::Any, ["refunds:write"]).allows(&p));
    }

    #[test]
    #[should_panic(expected = "at least one name")]
    fn empty_lists_are_programming_errors() {
        let _ = require_any_role(Vec::<String>::new());
    }

    #[test]
    fn forbidden_names_the_requirement_not_the_holdings() {
        let err = Rule::new(Kind::Scope, Quantifier::All, ["a:write", "b:write"]).forbidden();
        assert_eq!(err.detail(), Some("the scopes a:write, b:write are required"));
        let res = err.into_response();
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\", scope=\"a:write b:write\""
        );
        let err = Rule::new(Kind::Role, Quantifier::Any, ["admin", "auditor"]).forbidden();
        assert_eq!(err.detail(), Some("one of the roles admin, auditor is required"));
    }

    #[tokio::test]
    async fn works_as_a_tower_layer() {
        let svc = tower::ServiceBuilder::new()
            .layer(require_role("support"))
            .layer(require_scope("payments:write"))
            .service_fn(|_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>("ok") });
        let mut req = http::Request::new(());
        let mut ctx = Context::new("r");
        ctx.set_principal(principal());
        req.extensions_mut().insert(ctx);
        assert_eq!(svc.clone().oneshot(req).await.unwrap(), "ok");
        let err = svc.clone().oneshot(http::Request::new(())).await.unwrap_err();
        assert_eq!(Error::from_boxed(err).status(), StatusCode::UNAUTHORIZED);
        let mut req = http::Request::new(());
        let mut ctx = Context::new("r");
        ctx.set_principal(Principal::new("u", "t").with_roles(["support"]));
        req.extensions_mut().insert(ctx);
        let err = svc.oneshot(req).await.unwrap_err();
        assert_eq!(Error::from_boxed(err).status(), StatusCode::FORBIDDEN);
    }
}
