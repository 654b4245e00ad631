//! Matching a request to a route by path and method.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http::Method;
use tower::{Service, ServiceExt};

use super::route::Route;
use crate::body::{Body, Request, Response};
use crate::context::{Context, MatchedRoute, PathParams};
use crate::error::Error;

/// One path pattern and the routes for each of its methods.
struct Entry {
    pattern: String,
    /// The pattern as the router reports it in [`MatchedRoute`].
    matched: MatchedRoute,
    param_names: Vec<String>,
    methods: Vec<(Method, Route)>,
}

/// The routing table, shared by every clone of the service.
pub(crate) struct Table {
    matcher: matchit::Router<usize>,
    entries: Vec<Entry>,
    body_limit: usize,
}

impl Table {
    /// Builds the table.
    ///
    /// # Panics
    /// On an invalid or conflicting pattern, or the same method and pattern twice: these are
    /// programming errors found at start-up.
    pub(crate) fn build(routes: Vec<(Method, String, Route)>, body_limit: usize) -> Self {
        let mut matcher = matchit::Router::new();
        let mut entries: Vec<Entry> = Vec::new();
        for (method, pattern, route) in routes {
            let index = match entries.iter().position(|e| e.pattern == pattern) {
                Some(i) => i,
                None => {
                    let (translated, param_names) = translate(&pattern);
                    if let Err(err) = matcher.insert(translated, entries.len()) {
                        panic!("invalid route {pattern}: {err}");
                    }
                    entries.push(Entry {
                        matched: MatchedRoute(pattern.as_str().into()),
                        pattern: pattern.clone(),
                        param_names,
                        methods: Vec::new(),
                    });
                    entries.len() - 1
                }
            };
            let entry = &mut entries[index];
            assert!(
                !entry.methods.iter().any(|(m, _)| *m == method),
                "route {method} {pattern} is registered twice"
            );
            entry.methods.push((method, route));
        }
        Self { matcher, entries, body_limit }
    }
}

/// Turns `/payments/:id/*rest` into matchit's `/payments/{id}/{*rest}`.
fn translate(pattern: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let segments: Vec<String> = pattern
        .split('/')
        .map(|seg| {
            if let Some(name) = seg.strip_prefix(':') {
                names.push(name.to_owned());
                format!("{{{name}}}")
            } else if let Some(name) = seg.strip_prefix('*') {
                names.push(name.to_owned());
                format!("{{*{name}}}")
            } else {
                seg.replace('{', "{{").replace('}', "}}")
            }
        })
        .collect();
    (segments.join("/"), names)
}

/// Decodes `%XX` escapes; a value that does not decode to UTF-8 stays as it was.
pub(crate) fn percent_decode(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_owned();
    }
    String::from_utf8(crate::hex::percent_decode_bytes(raw)).unwrap_or_else(|_| raw.to_owned())
}

/// The service that dispatches to routes: 404 for an unknown path, 405 with `Allow` for a
/// known path and another method, 413 for a body over the limit.
#[derive(Clone)]
pub(crate) struct Router {
    table: Arc<Table>,
}

impl Router {
    pub(crate) fn new(table: Table) -> Self {
        Self { table: Arc::new(table) }
    }
}

impl Service<Request> for Router {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let request_id = Context::of(&req).map(Context::shared_request_id);
        let fail = move |err: Error| -> Self::Future {
            Box::pin(async move { Ok(err.render(request_id.as_deref())) })
        };
        let table = &self.table;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if req.body().len() > table.body_limit || declared.is_some_and(|n| n > table.body_limit as u64) {
            return fail(Error::payload_too_large(table.body_limit));
        }
        // The layers that read the body whole bound it by the app's limit, not their own
        // default: a body the app admits is one they admit.
        #[cfg(any(
            feature = "threat",
            feature = "compliance",
            feature = "protection",
            feature = "idempotency"
        ))]
        if req.extensions().get::<crate::BodyLimit>().is_none() {
            req.extensions_mut().insert(crate::BodyLimit::new(table.body_limit));
        }
        let matched = match table.matcher.at(req.uri().path()) {
            Ok(m) => m,
            Err(_) => return fail(Error::not_found()),
        };
        let entry = &table.entries[*matched.value];
        let route = entry
            .methods
            .iter()
            .find(|(m, _)| *m == req.method())
            .or_else(|| {
                // HEAD is GET without a body.
                (req.method() == Method::HEAD)
                    .then(|| entry.methods.iter().find(|(m, _)| *m == Method::GET))
                    .flatten()
            })
            .map(|(_, route)| route.clone());
        let Some(route) = route else {
            let mut allowed: Vec<Method> = entry.methods.iter().map(|(m, _)| m.clone()).collect();
            if allowed.contains(&Method::GET) && !allowed.contains(&Method::HEAD) {
                allowed.push(Method::HEAD);
            }
            return fail(Error::method_not_allowed(&allowed));
        };
        let params = entry
            .param_names
            .iter()
            .filter_map(|name| matched.params.get(name).map(|v| (name.clone(), percent_decode(v))))
            .collect();
        req.extensions_mut().insert(PathParams(params));
        let matched = entry.matched.clone();
        // A request that panics leaves the metrics layer no response to read its route from.
        #[cfg(feature = "observability")]
        if let Some(metrics) = crate::middleware::metrics::MetricsHandle::of(&req) {
            metrics.note_route(&matched);
        }
        req.extensions_mut().insert(matched.clone());
        let is_head = req.method() == Method::HEAD;
        Box::pin(async move {
            let mut res = route.oneshot(req).await?;
            if is_head {
                *res.body_mut() = Body::empty();
            }
            // For layers outside the router, which saw the request before it matched.
            res.extensions_mut().insert(matched);
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_params_and_wildcards() {
        assert_eq!(translate("/payments/:id"), ("/payments/{id}".to_owned(), vec!["id".to_owned()]));
        assert_eq!(
            translate("/files/:tenant/*path"),
            ("/files/{tenant}/{*path}".to_owned(), vec!["tenant".to_owned(), "path".to_owned()])
        );
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%ff"), "%ff");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }

    proptest::proptest! {
        #[test]
        fn percent_decode_never_panics(s in ".*") {
            let _ = percent_decode(&s);
        }
    }
}
