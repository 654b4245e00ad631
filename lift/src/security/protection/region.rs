//! Data residency: data tagged with a residency is processed only in allowed regions.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http::StatusCode;
use tower_layer::Layer;
use tower_service::Service;

use crate::buffered::{buffer_request, into_body};
use crate::{Context, Error, Request};

/// Allowed regions per residency tag.
///
/// # Examples
///
/// ```
/// use lift::security::protection::ResidencyRules;
/// let rules = ResidencyRules::new().allow("eu", ["eu-west-1", "eu-central-1"]);
/// assert!(rules.permits("eu", "eu-west-1"));
/// assert!(!rules.permits("eu", "us-east-1"));
/// assert!(rules.permits("global", "us-east-1")); // no rule: unrestricted
/// ```
#[derive(Debug, Clone, Default)]
pub struct ResidencyRules {
    rules: HashMap<String, Vec<String>>,
}

impl ResidencyRules {
    /// No rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows a residency in the regions.
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(mut self, residency: &str, regions: I) -> Self {
        self.rules.entry(residency.to_owned()).or_default().extend(regions.into_iter().map(Into::into));
        self
    }

    /// Whether data of the residency may be processed in the region (a residency without
    /// a rule is unrestricted).
    pub fn permits(&self, residency: &str, region: &str) -> bool {
        self.rules.get(residency).is_none_or(|allowed| allowed.iter().any(|r| r == region))
    }

    /// Whether the residency has a rule.
    pub fn restricts(&self, residency: &str) -> bool {
        self.rules.contains_key(residency)
    }
}

/// The problem type of a residency violation.
pub const RESIDENCY_PROBLEM: &str = "https://lift.dev/problems/data-residency";

#[derive(Debug, Clone)]
struct Shared {
    rules: ResidencyRules,
    tenants: HashMap<String, String>,
    body_field: Option<String>,
}

/// Refuses requests whose data may not be processed in this region with **451**.
///
/// The residency comes from the tenant's configuration, else a top-level body field
/// (`data_residency` by default). The region is [`Context::region`]; a restricted
/// residency with no known region is refused too (fail closed).
///
/// # Examples
///
/// ```
/// use lift::security::protection::{ResidencyLayer, ResidencyRules};
/// let layer = ResidencyLayer::new(ResidencyRules::new().allow("eu", ["eu-west-1"]))
///     .tenant("acme-eu", "eu");
/// # let _ = lift::App::new().layer(layer);
/// ```
#[derive(Debug, Clone)]
pub struct ResidencyLayer {
    shared: Arc<Shared>,
}

impl ResidencyLayer {
    /// A layer with the rules, reading the body field `data_residency`.
    pub fn new(rules: ResidencyRules) -> Self {
        Self {
            shared: Arc::new(Shared {
                rules,
                tenants: HashMap::new(),
                body_field: Some("data_residency".into()),
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// Sets a tenant's residency.
    pub fn tenant(mut self, tenant: &str, residency: &str) -> Self {
        self.shared_mut().tenants.insert(tenant.to_owned(), residency.to_owned());
        self
    }

    /// Sets the body field read for the residency (`None`: never read the body).
    pub fn body_field(mut self, field: Option<&str>) -> Self {
        self.shared_mut().body_field = field.map(str::to_owned);
        self
    }
}

impl<S> Layer<S> for ResidencyLayer {
    type Service = Residency<S>;

    fn layer(&self, inner: S) -> Residency<S> {
        Residency { inner, shared: self.shared.clone() }
    }
}

/// The service of [`ResidencyLayer`].
#[derive(Debug, Clone)]
pub struct Residency<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Residency<S> {
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

impl Shared {
    fn residency(&self, req: &Request) -> Option<String> {
        let ctx = Context::of(req);
        if let Some(r) = ctx.and_then(Context::tenant).and_then(|t| self.tenants.get(t)) {
            return Some(r.clone());
        }
        let field = self.body_field.as_deref()?;
        let body = req.body().as_bytes();
        if body.is_empty() {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        value.get(field)?.as_str().map(str::to_owned)
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        let Some(residency) = self.residency(req) else { return Ok(()) };
        if !self.rules.restricts(&residency) {
            return Ok(());
        }
        let region = Context::of(req).and_then(Context::region);
        match region {
            Some(region) if self.rules.permits(&residency, region) => Ok(()),
            _ => Err(Error::new(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS)
                .with_type(RESIDENCY_PROBLEM, "Data residency violation")
                .with_detail(format!(
                    "data with residency '{residency}' may not be processed in this region"
                ))),
        }
    }
}

impl<S, B, ResB> Service<http::Request<B>> for Residency<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + From<Vec<u8>> + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::BoxError>,
    ResB: From<Vec<u8>> + Send + 'static,
{
    type Response = http::Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Keep the service that `poll_ready` readied for the call after the body is read.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let req = match buffer_request(req).await {
                Ok(req) => req,
                Err(refused) => return Ok(refused.map(into_body)),
            };
            match shared.check(&req) {
                // The inner service gets the caller's body type back; its response is not read.
                Ok(()) => inner.call(req.map(into_body)).await,
                Err(err) => {
                    let request_id = Context::of(&req).map(|c| c.request_id().to_owned());
                    Ok(err.render(request_id.as_deref()).map(into_body))
                }
            }
        })
    }
}
