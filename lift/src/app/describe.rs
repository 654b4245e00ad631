//! What an [`App`](super::App) serves, read without running it: its routes, the roles and
//! scopes each requires, and the event sources it handles. Deployment tools (`lift-deploy`)
//! build infrastructure from this, so the template and the code cannot drift apart.

use http::Method;

/// Whether a [`Requirement`] is about roles or scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequirementKind {
    /// Roles of the principal.
    Role,
    /// OAuth scopes of the principal.
    Scope,
}

/// A role or scope requirement on a route, as a
/// [`RequireLayer`](crate::middleware::auth::RequireLayer) enforces it.
///
/// # Examples
///
/// ```
/// use lift::app::{Requirement, RequirementKind};
/// let r = Requirement { kind: RequirementKind::Scope, all: false, names: vec!["payments:read".into()] };
/// assert_eq!(r.to_string(), "scope payments:read");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    /// Roles or scopes.
    pub kind: RequirementKind,
    /// `true`: every name is required; `false`: any one of them is enough.
    pub all: bool,
    /// The role or scope names, as registered.
    pub names: Vec<String>,
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            RequirementKind::Role => "role",
            RequirementKind::Scope => "scope",
        };
        let join = if self.all { " and " } else { " or " };
        write!(f, "{kind} {}", self.names.join(join))
    }
}

/// One route of an app: method, path pattern and what a caller must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern as registered, with `:name` parameters and a trailing `*rest`.
    pub path: String,
    /// Every requirement on the route, outermost first: the app-wide ones
    /// ([`App::layer`](super::App::layer)), then the group's and the route's own. A request
    /// must satisfy all of them.
    pub requirements: Vec<Requirement>,
}

/// A non-HTTP event source an app handles (see [`EventRouter`](crate::event::EventRouter)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// SQS messages, of one queue (name or ARN) or of any queue (`None`).
    Sqs {
        /// The queue name or ARN, if the handler is for one queue.
        queue: Option<String>,
    },
    /// EventBridge events matching a pattern.
    EventBridge {
        /// The event pattern, as JSON.
        pattern: serde_json::Value,
    },
    /// Firings of a scheduled rule (its name or ARN).
    Schedule {
        /// The rule name or ARN.
        rule: String,
    },
    /// DynamoDB Streams records, of one table or of any table (`None`).
    DynamoDbStream {
        /// The table name, if the handler is for one table.
        table: Option<String>,
    },
}

impl EventSource {
    /// Whether Lambda invokes the function asynchronously for this source (EventBridge and
    /// schedules), so failures go to an on-failure destination rather than back to a poller.
    pub fn is_async(&self) -> bool {
        matches!(self, Self::EventBridge { .. } | Self::Schedule { .. })
    }
}

impl super::App {
    /// The app's routes in registration order, with the roles and scopes each requires.
    ///
    /// Requirements are read from the [`RequireLayer`](crate::middleware::auth::RequireLayer)s
    /// added with [`Route::layer`](super::Route::layer), [`RouteGroup::layer`](super::RouteGroup::layer)
    /// and [`App::layer`](super::App::layer); other layers are not listed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "auth")] {
    /// use lift::{App, RouteGroup, Request, Response};
    /// use lift::middleware::auth::require_scope;
    /// async fn h(_: Request) -> Response { Response::default() }
    /// let app = App::new()
    ///     .get("/health", h)
    ///     .group(RouteGroup::new("/payments").post("/", h).layer(require_scope("payments:write")));
    /// let routes = app.routes();
    /// assert_eq!(routes[1].path, "/payments");
    /// assert_eq!(routes[1].requirements[0].names, ["payments:write"]);
    /// assert!(routes[0].requirements.is_empty());
    /// # }
    /// ```
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.routes
            .iter()
            .map(|(method, path, route)| RouteInfo {
                method: method.clone(),
                path: path.clone(),
                requirements: self.requirements.iter().chain(route.requirements()).cloned().collect(),
            })
            .collect()
    }

    /// The non-HTTP event sources the app handles, by source then registration order.
    pub fn event_sources(&self) -> Vec<EventSource> {
        let events = &self.events;
        let sqs = events.sqs.iter().map(|r| EventSource::Sqs { queue: r.queue.clone() });
        let rules =
            events.rules.iter().map(|r| EventSource::EventBridge { pattern: r.rule.pattern().clone() });
        let schedules = events.schedules.iter().map(|s| EventSource::Schedule { rule: s.rule.clone() });
        let streams = events.streams.iter().map(|s| EventSource::DynamoDbStream { table: s.table.clone() });
        sqs.chain(rules).chain(schedules).chain(streams).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventRouter;
    use crate::{App, Request, Response, RouteGroup};

    async fn h(_: Request) -> Response {
        Response::default()
    }

    #[test]
    fn routes_keep_registration_order_and_group_prefixes() {
        let app = App::new()
            .get("/health", h)
            .group(RouteGroup::new("/payments").post("/", h).get("/:id", h))
            .delete("/customers/:id", h);
        let listed: Vec<_> = app.routes().into_iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        assert_eq!(listed, ["GET /health", "POST /payments", "GET /payments/:id", "DELETE /customers/:id"]);
        assert!(app.routes().iter().all(|r| r.requirements.is_empty()));
    }

    #[test]
    fn event_sources_are_listed_by_kind() {
        let events = EventRouter::new()
            .on_dynamodb_table("orders", |_| async { Ok(()) })
            .on_schedule("nightly", |_| async { Ok(()) })
            .on_sqs_queue("jobs", |_| async { Ok(()) });
        let app = App::new().events(events);
        let sources = app.event_sources();
        assert_eq!(
            sources,
            [
                EventSource::Sqs { queue: Some("jobs".into()) },
                EventSource::Schedule { rule: "nightly".into() },
                EventSource::DynamoDbStream { table: Some("orders".into()) },
            ]
        );
        assert_eq!(sources.iter().filter(|s| s.is_async()).count(), 1);
        assert!(App::new().event_sources().is_empty());
    }

    #[cfg(feature = "auth")]
    #[test]
    fn requirements_come_from_route_group_and_app_layers() {
        use crate::middleware::auth::{require_all_scopes, require_any_role, require_scope};
        let app = App::new()
            .get("/health", h)
            .group(
                RouteGroup::new("/admin")
                    .post(
                        "/refunds",
                        crate::app::Route::from_handler(h).layer(require_scope("refunds:write")),
                    )
                    .get("/users", h)
                    // Other layers between requirements are not listed and do not hide them.
                    .layer(tower::timeout::TimeoutLayer::new(std::time::Duration::from_secs(1)))
                    .layer(require_any_role(["admin", "support"])),
            )
            .layer(require_all_scopes(["api", "v2"]));
        let routes = app.routes();
        let app_wide =
            Requirement { kind: RequirementKind::Scope, all: true, names: vec!["api".into(), "v2".into()] };
        let roles = Requirement {
            kind: RequirementKind::Role,
            all: false,
            names: vec!["admin".into(), "support".into()],
        };
        let refunds =
            Requirement { kind: RequirementKind::Scope, all: false, names: vec!["refunds:write".into()] };
        assert_eq!(routes[0].requirements, std::slice::from_ref(&app_wide));
        // Outermost first: app, then the group's role check, then the route's own scope.
        assert_eq!(routes[1].requirements, [app_wide.clone(), roles.clone(), refunds]);
        assert_eq!(routes[2].requirements, [app_wide, roles]);
        assert_eq!(routes[1].requirements[1].to_string(), "role admin or support");
    }

    #[cfg(feature = "auth")]
    #[tokio::test]
    async fn a_listed_route_still_enforces_its_requirement() {
        // Introspection must not replace enforcement: the listed scope is the one checked.
        use crate::middleware::auth::require_scope;
        use tower::ServiceExt;
        let app = App::new().group(RouteGroup::new("/p").get("/", h).layer(require_scope("p:read")));
        assert_eq!(app.routes()[0].requirements[0].names, ["p:read"]);
        let res =
            app.into_service().oneshot(http::Request::get("/p").body(crate::Body::empty()).unwrap()).await;
        assert_eq!(res.unwrap().status(), http::StatusCode::UNAUTHORIZED);
    }
}
