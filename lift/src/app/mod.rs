//! The [`App`] builder: routes and layers into one `tower::Service`, run on Lambda or on a
//! local port.
//!
//! Routes match by method and path, with `:name` parameters and a trailing `*rest`
//! wildcard. An unknown path answers 404, a known path with another method 405 with
//! `Allow`, a body over the limit 413; every error is `application/problem+json`.
//! Layers are plain tower layers: [`App::layer`] wraps every route (and the 404/405
//! answers), [`RouteGroup::layer`] wraps the routes of a group, [`Route::layer`] one route.

mod describe;
mod route;
mod router;
#[cfg(feature = "audit")]
pub(crate) use router::percent_decode;
mod service;

#[cfg(feature = "lambda")]
mod lambda;
#[cfg(feature = "local")]
mod local;

pub use describe::{EventSource, Requirement, RequirementKind, RouteInfo};
#[cfg(feature = "local")]
pub use local::default_local_addr;
pub use route::{IntoResponse, IntoRoute, Route};
pub use service::AppService;

use std::sync::Arc;

use http::{Extensions, Method};
use tower::{Layer, Service};

use crate::body::Request;
use crate::event::EventRouter;
use crate::BoxError;

/// The default body limit: 1 MiB (API Gateway allows 10 MB, Lambda 6 MB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

type LayerFn = Box<dyn FnOnce(Route) -> Route + Send>;
type GroupLayerFn = Arc<dyn Fn(Route) -> Route + Send + Sync>;
type Extender = Arc<dyn Fn(&mut Extensions) + Send + Sync>;

/// Builds a Lift service from routes and layers.
///
/// # Examples
///
/// ```
/// use lift::{App, RouteGroup, Request, Response, Error};
/// use std::time::Duration;
///
/// async fn list(_req: Request) -> Result<Response, Error> { Ok(Response::default()) }
/// async fn get(req: Request) -> Result<Response, Error> {
///     let _id = lift::path_param(&req, "id").ok_or_else(Error::not_found)?;
///     Ok(Response::default())
/// }
///
/// let app = App::new()
///     .get("/payments", list)
///     .group(
///         RouteGroup::new("/admin")
///             .get("/payments/:id", get)
///             .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(2))),
///     )
///     .body_limit(64 * 1024);
/// let service = app.into_service();
/// ```
#[must_use]
pub struct App {
    routes: Vec<(Method, String, Route)>,
    layers: Vec<LayerFn>,
    // Role and scope checks among `layers`, outermost first (see `App::routes`).
    requirements: Vec<describe::Requirement>,
    extenders: Vec<Extender>,
    body_limit: Option<usize>,
    region: Option<String>,
    events: EventRouter,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.routes.iter().map(|(m, p, _)| format!("{m} {p}")).collect::<Vec<_>>())
            .field("layers", &self.layers.len())
            .field("body_limit", &self.body_limit)
            .field("region", &self.region)
            .finish()
    }
}

macro_rules! method_fns {
    ($($(#[$doc:meta])* $name:ident => $method:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(self, path: &str, route: impl IntoRoute) -> Self {
                self.route(Method::$method, path, route)
            }
        )*
    };
}

impl App {
    /// An empty app.
    pub fn new() -> Self {
        Self {
            routes: Vec::new(),
            layers: Vec::new(),
            requirements: Vec::new(),
            extenders: Vec::new(),
            body_limit: None,
            region: None,
            events: EventRouter::new(),
        }
    }

    /// Adds a route for a method and path pattern (`/payments/:id`).
    ///
    /// # Panics
    /// When the pattern is invalid or the method and pattern are already registered.
    pub fn route(mut self, method: Method, path: &str, route: impl IntoRoute) -> Self {
        assert!(path.starts_with('/'), "route {path} must start with '/'");
        self.routes.push((method, path.to_owned(), route.into_route()));
        self
    }

    method_fns! {
        /// Adds a GET route.
        get => GET,
        /// Adds a POST route.
        post => POST,
        /// Adds a PUT route.
        put => PUT,
        /// Adds a PATCH route.
        patch => PATCH,
        /// Adds a DELETE route.
        delete => DELETE,
    }

    /// Adds a group of routes under its prefix, each wrapped in the group's layers.
    pub fn group(mut self, group: RouteGroup) -> Self {
        for (method, path, route) in group.into_routes() {
            self.routes.push((method, path, route));
        }
        self
    }

    /// Wraps the whole app (every route, and the 404/405/413 answers) in a tower layer.
    /// The last layer added is the outermost.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Send + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<BoxError> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        if let Some(requirement) = route::required_by(&layer) {
            // The last layer added is the outermost.
            self.requirements.insert(0, requirement);
        }
        self.layers.push(Box::new(move |route: Route| route.layer(layer)));
        self
    }

    /// Makes a value available to every handler through request extensions
    /// (read it with [`state`]).
    pub fn with_state<T: Clone + Send + Sync + 'static>(mut self, state: T) -> Self {
        self.extenders.push(Arc::new(move |ext: &mut Extensions| {
            ext.insert(state.clone());
        }));
        self
    }

    /// Sets the request body limit in bytes (default: `LIFT_BODY_LIMIT`, else 1 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// Sets the region put in every [`Context`](crate::Context) (default: `AWS_REGION`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Adds handlers for the non-HTTP event sources (SQS, EventBridge, schedules, streams).
    pub fn events(mut self, events: EventRouter) -> Self {
        self.events = events;
        self
    }

    /// Splits off the event router, leaving the HTTP app.
    #[cfg_attr(not(feature = "lambda"), allow(dead_code))]
    pub(crate) fn take_events(&mut self) -> EventRouter {
        std::mem::take(&mut self.events)
    }

    /// Builds the service.
    ///
    /// # Panics
    /// When two routes conflict (see [`App::route`]).
    pub fn into_service(self) -> AppService {
        let body_limit = self
            .body_limit
            .or_else(|| crate::config::Env::process().get("LIFT_BODY_LIMIT").and_then(|v| v.parse().ok()))
            .unwrap_or(DEFAULT_BODY_LIMIT);
        let region = self.region.or_else(|| crate::config::Env::process().get("AWS_REGION"));
        let table = router::Table::build(self.routes, body_limit);
        let mut route = Route::new(router::Router::new(table));
        for layer in self.layers {
            route = layer(route);
        }
        AppService::new(route, region, self.extenders)
    }
}

/// Routes under a common prefix that share layers.
///
/// # Examples
///
/// ```
/// # use lift::{RouteGroup, Request, Response};
/// async fn h(_: Request) -> Response { Response::default() }
/// let admin = RouteGroup::new("/admin").get("/users", h).delete("/users/:id", h);
/// ```
#[must_use]
pub struct RouteGroup {
    prefix: String,
    routes: Vec<(Method, String, Route)>,
    layers: Vec<GroupLayerFn>,
}

impl std::fmt::Debug for RouteGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteGroup")
            .field("prefix", &self.prefix)
            .field("routes", &self.routes.len())
            .finish()
    }
}

impl RouteGroup {
    /// A group under a prefix such as `/admin` (`""` for none).
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.trim_end_matches('/').to_owned(), routes: Vec::new(), layers: Vec::new() }
    }

    /// Adds a route relative to the prefix.
    pub fn route(mut self, method: Method, path: &str, route: impl IntoRoute) -> Self {
        assert!(path.starts_with('/'), "route {path} must start with '/'");
        self.routes.push((method, path.to_owned(), route.into_route()));
        self
    }

    method_fns! {
        /// Adds a GET route.
        get => GET,
        /// Adds a POST route.
        post => POST,
        /// Adds a PUT route.
        put => PUT,
        /// Adds a PATCH route.
        patch => PATCH,
        /// Adds a DELETE route.
        delete => DELETE,
    }

    /// Wraps every route of the group in a tower layer.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<BoxError> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.layers.push(Arc::new(move |route: Route| route.layer(layer.clone())));
        self
    }

    fn into_routes(self) -> Vec<(Method, String, Route)> {
        let RouteGroup { prefix, routes, layers } = self;
        routes
            .into_iter()
            .map(|(method, path, mut route)| {
                for layer in &layers {
                    route = layer(route);
                }
                let full = if path == "/" && !prefix.is_empty() {
                    prefix.clone()
                } else {
                    format!("{prefix}{path}")
                };
                (method, full, route)
            })
            .collect()
    }
}

/// Reads a value added with [`App::with_state`]; 500 when the app has none.
pub fn state<T: Clone + Send + Sync + 'static>(req: &Request) -> Result<&T, crate::Error> {
    req.extensions()
        .get::<T>()
        .ok_or_else(|| crate::Error::internal(format!("no state of type {}", std::any::type_name::<T>())))
}
