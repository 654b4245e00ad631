//! The HTTP API.
//!
//! | Method | Path | Scope | |
//! |---|---|---|---|
//! | POST | `/payments` | `payments:write` | create a payment |
//! | GET | `/payments` | `payments:read` | list the tenant's payments (`?limit=&cursor=`) |
//! | GET | `/payments/:id` | `payments:read` | get one |
//! | POST | `/payments/:id/refunds` | `payments:write` | refund part or all of it |
//! | DELETE | `/customers/:id` | `payments:write` | erase the customer's personal data (GDPR Art. 17) |
//!
//! Creates and refunds name the data class `pci` in their audit entries, erasures `pii`.
//!
//! Callers authenticate with a bearer JWT ([`service`], [`jwt_layer`]); the tenant is
//! the token's, never a header's. For local development only, [`Payments::dev_tenant_header_insecure`]
//! lets a request without a token name its tenant in `X-Lift-Dev-Tenant`.

use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};

use http::StatusCode;
use lift::app::Route;
use lift::middleware::auth::{require_scope, ConfigError, Issuer, JwtLayer};
use lift::middleware::idempotency::{IdempotencyLayer, IdempotentRequest};
use lift::{json_response, read_json, App, Context, Error, Principal, Request, Response, RouteGroup};

use crate::model::{valid_id, validate_amount, CreatePayment, CreateRefund, Invalid};
use crate::store::{PaymentStore, StoreError};

/// The header a development build may take the tenant from.
pub const DEV_TENANT_HEADER: &str = "x-lift-dev-tenant";
/// The scope needed to read payments.
pub const READ_SCOPE: &str = "payments:read";
/// The scope needed to create and refund payments.
pub const WRITE_SCOPE: &str = "payments:write";
/// The realm of the `WWW-Authenticate` challenges.
pub const REALM: &str = "payments";

/// What every handler needs.
#[derive(Debug, Clone)]
pub struct Payments {
    /// The store.
    pub store: PaymentStore,
    /// DEVELOPMENT ONLY: a request without a bearer token may name its tenant in the
    /// `X-Lift-Dev-Tenant` header, and acts for it with both payments scopes. Never enable
    /// this in production: any caller could act as any tenant. Requests with a token
    /// ignore the header.
    pub dev_tenant_header_insecure: bool,
}

/// The payments API without authentication in front: only the development tenant header
/// (when enabled) can authenticate a request. Services use [`service`].
pub fn app(payments: Payments) -> App {
    service(payments, None, None)
}

/// The payments API behind a JWT layer (see [`jwt_layer`]), without idempotency.
pub fn app_with_jwt(payments: Payments, jwt: JwtLayer) -> App {
    service(payments, Some(jwt), None)
}

/// The payments API behind only `jwt` (when given), the development tenant header (when
/// [`Payments::dev_tenant_header_insecure`] is on) and `idempotency` (when given): a
/// [`lift::stack()`] of those layers, [mounted](mount). Services use [`Config::stack`]
/// (the full recommended stack) and [`mount`].
///
/// [`Config::stack`]: crate::Config::stack
pub fn service(payments: Payments, jwt: Option<JwtLayer>, idempotency: Option<IdempotencyLayer>) -> App {
    let mut stack = lift::stack();
    if let Some(jwt) = jwt {
        stack = stack.jwt(jwt);
    }
    if payments.dev_tenant_header_insecure {
        stack = stack.authenticate(DevTenantLayer);
    }
    if let Some(idempotency) = idempotency {
        stack = stack.idempotency(idempotency);
    }
    match stack.build() {
        Ok(stack) => mount(payments, stack),
        // Only per-tenant layers without authentication are refused, and there are none.
        Err(err) => unreachable!("a stack without per-tenant layers builds: {err}"),
    }
}

/// The payments routes inside `stack` (see [`Config::stack`](crate::Config::stack)), from
/// the inside out:
///
/// 1. the routes;
/// 2. the stack's per-route layers, on every route group: compliance, audit, threat
///    detection, then innermost idempotency (on POST: create and refund; a retried create or
///    refund with the same `Idempotency-Key` replays the first answer instead of charging
///    again, after the outer layers checked and audited the retry). They run
///    *after* authentication and the route's scope check, so a caller who may not create or
///    refund never reaches an idempotency record, and records are scoped to the
///    authenticated principal (tenant and subject);
/// 3. the scope requirement of each route group (`payments:write`, `payments:read`);
/// 4. [`ClassificationLayer`](crate::privacy::ClassificationLayer): sensitive values where
///    they must not be are refused with 422 (never echoed, never stored), for
///    authenticated callers only;
/// 5. the stack's app-wide layers: the timeout, the per-tenant rate limit, breaker and
///    bulkhead, the development tenant header, JWT, then X-Ray, metrics and the request log
///    outermost.
pub fn mount(payments: Payments, stack: lift::Stack) -> App {
    let writes = RouteGroup::new("/payments").post("/", create_payment).post("/:id/refunds", refund_payment);
    let erasure = RouteGroup::new("/customers").delete("/:id", erase_customer);
    let reads = RouteGroup::new("/payments").get("/", list_payments).get("/:id", get_payment);
    let app = App::new()
        .group(stack.guard(writes, require_scope(WRITE_SCOPE)))
        .group(stack.guard(erasure, require_scope(WRITE_SCOPE)))
        .group(stack.guard(reads, require_scope(READ_SCOPE)))
        .with_state(payments)
        // Inside authentication, outside the routes' scope checks and idempotency:
        // refusals go to authenticated callers only and never reach the idempotency records.
        .layer(crate::privacy::ClassificationLayer);
    stack.apply(app)
}

/// The JWT layer for the payments API: tokens from `issuer`, realm `payments`, `/health*`
/// exempt, the development tenant header removed from authenticated requests. With
/// `dev_tenant_header_insecure`, a request without an `Authorization` header but with the
/// development header passes on to the development tenant check.
pub fn jwt_layer(issuer: Issuer, dev_tenant_header_insecure: bool) -> Result<JwtLayer, ConfigError> {
    let mut builder = JwtLayer::builder()
        .issuer(issuer)
        .realm(REALM)
        .exempt_path("/health*")
        .strip_header(DEV_TENANT_HEADER);
    if dev_tenant_header_insecure {
        builder = builder.exempt(|head| {
            !head.headers.contains_key(http::header::AUTHORIZATION)
                && head.headers.contains_key(DEV_TENANT_HEADER)
        });
    }
    builder.build()
}

/// DEVELOPMENT ONLY: authenticates a request without a principal from the
/// `X-Lift-Dev-Tenant` header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DevTenantLayer;

impl tower::Layer<Route> for DevTenantLayer {
    type Service = DevTenant;

    fn layer(&self, inner: Route) -> DevTenant {
        DevTenant(inner)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DevTenant(Route);

/// Sets a development principal from the header unless a real one is there already.
fn dev_principal(req: &mut Request) -> Result<(), Error> {
    match Context::of(req) {
        Some(ctx) if ctx.principal().is_none() => {}
        _ => return Ok(()),
    }
    let Some(value) = req.headers().get(DEV_TENANT_HEADER) else { return Ok(()) };
    let tenant = value.to_str().ok().filter(|t| valid_id(t) && lift::middleware::auth::valid_tenant(t));
    let Some(tenant) = tenant.map(str::to_owned) else {
        return Err(Error::bad_request("the tenant header is not a valid tenant id"));
    };
    let principal = Principal::new("dev", tenant).with_scopes([READ_SCOPE, WRITE_SCOPE]);
    if let Some(ctx) = Context::of_mut(req) {
        ctx.set_principal(principal);
    }
    Ok(())
}

impl tower::Service<Request> for DevTenant {
    type Response = Response;
    type Error = Infallible;
    type Future = <Route as tower::Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match dev_principal(&mut req) {
            Ok(()) => self.0.call(req),
            Err(err) => {
                let request_id = Context::of(&req).map(|c| c.request_id().to_owned());
                Box::pin(std::future::ready(Ok(err.render(request_id.as_deref()))))
            }
        }
    }
}

fn invalid(err: Invalid) -> Error {
    Error::validation(err.field, err.detail)
}

fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::Duplicate => Error::conflict("a payment with this id already exists"),
        StoreError::KeyReused => {
            Error::unprocessable("this idempotency key was used for another request; use a new key")
        }
        StoreError::NotFound => Error::not_found().with_detail("payment not found"),
        StoreError::OverRefund { refundable } => {
            Error::unprocessable(format!("the refund exceeds the refundable amount of {refundable}"))
        }
        err @ (StoreError::Unavailable(_) | StoreError::NotReplicated(_)) => Error::service_unavailable(1)
            .with_detail("the payments store is busy; retry later")
            .with_source(err),
        other => Error::internal(other),
    }
}

/// The caller's tenant: the authenticated principal's, never a header's.
fn tenant(req: &Request) -> Result<String, Error> {
    Context::of(req)
        .and_then(Context::principal)
        .map(|p| p.tenant.clone())
        .ok_or_else(|| Error::unauthorized("Bearer").with_detail("authentication is required"))
}

/// Names, in the request's audit entry, the class of data its route touches: the audit
/// trail says which requests handled cardholder data (`pci`, PCI DSS 10.2.1) or a person's
/// data (`pii`, GDPR Art. 17 and 30), whatever the request's outcome.
fn audit_class(req: &Request, class: &str) {
    if let Some(audit) = lift::security::audit::AuditHandle::of(req) {
        audit.data_class(class);
    }
}

async fn create_payment(req: Request) -> Result<Response, Error> {
    audit_class(&req, "pci");
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req)?;
    let body: CreatePayment = read_json(&req)?;
    // Without an id of the caller's, one derived from the idempotency key: a retry that runs
    // again after the first attempt's answer was lost meets its own payment, not a second.
    let derived =
        body.id.is_none().then(|| IdempotentRequest::of(&req).map(|i| format!("pay_{}", &i.id()[..32])));
    let mut new = body.validate().map_err(invalid)?;
    if let Some(Some(id)) = &derived {
        new.id = id.clone();
    }
    let (id, amount, currency, customer, last4) = (
        new.id.clone(),
        new.amount,
        new.currency.clone(),
        new.customer.id.clone(),
        new.card.last4().to_owned(),
    );
    let payment = match payments.store.create(&tenant, new).await {
        Ok(payment) => payment,
        Err(StoreError::Duplicate) if matches!(derived, Some(Some(_))) => {
            let stored = payments.store.get(&tenant, &id).await.map_err(store_error)?;
            let same = stored.amount == amount
                && stored.currency == currency
                && stored.customer.id == customer
                && stored.card.last4 == last4;
            if !same {
                return Err(store_error(StoreError::KeyReused));
            }
            stored
        }
        Err(err) => return Err(store_error(err)),
    };
    let mut res = json_response(StatusCode::CREATED, &payment);
    if let Ok(location) = http::HeaderValue::from_str(&format!("/payments/{}", payment.id)) {
        res.headers_mut().insert(http::header::LOCATION, location);
    }
    Ok(res)
}

async fn get_payment(req: Request) -> Result<Response, Error> {
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req)?;
    let id = lift::path_param(&req, "id").unwrap_or_default();
    if !valid_id(id) {
        return Err(Error::not_found().with_detail("payment not found"));
    }
    let payment = payments.store.get(&tenant, id).await.map_err(store_error)?;
    Ok(json_response(StatusCode::OK, &payment))
}

async fn list_payments(req: Request) -> Result<Response, Error> {
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req)?;
    let mut limit = 20;
    let mut cursor = None;
    for (key, value) in req.uri().query().unwrap_or("").split('&').filter_map(|kv| kv.split_once('=')) {
        match key {
            "limit" => {
                limit = value
                    .parse::<i32>()
                    .ok()
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| Error::validation("limit", "limit must be between 1 and 100"))?;
            }
            "cursor" if valid_id(value) => cursor = Some(value.to_owned()),
            "cursor" => return Err(Error::validation("cursor", "the cursor is not valid")),
            _ => {}
        }
    }
    let page = payments.store.list(&tenant, limit, cursor.as_deref()).await.map_err(store_error)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "payments": page.payments, "next_cursor": page.next }),
    ))
}

/// `DELETE /customers/:id`: erases the customer's personal data from the tenant's payments.
async fn erase_customer(req: Request) -> Result<Response, Error> {
    audit_class(&req, "pii");
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req)?;
    let id = lift::path_param(&req, "id").unwrap_or_default().to_owned();
    if !valid_id(&id) {
        return Err(Error::not_found().with_detail("customer not found"));
    }
    let erased = payments.store.erase_customer(&tenant, &id).await.map_err(store_error)?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "customer_id": id, "payments_erased": erased })))
}

async fn refund_payment(req: Request) -> Result<Response, Error> {
    audit_class(&req, "pci");
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req)?;
    let id = lift::path_param(&req, "id").unwrap_or_default().to_owned();
    if !valid_id(&id) {
        return Err(Error::not_found().with_detail("payment not found"));
    }
    let body: CreateRefund = read_json(&req)?;
    let amount = validate_amount("amount", body.amount).map_err(invalid)?;
    if body.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(Error::validation("reason", "the reason must be at most 500 characters"));
    }
    let refund = match IdempotentRequest::of(&req) {
        // The same refund id for every retry under the key (see `PaymentStore::refund_as`).
        Some(idem) => {
            let refund_id = format!("re_{}", &idem.id()[..32]);
            payments.store.refund_as(&tenant, &id, &refund_id, amount, body.reason).await
        }
        None => payments.store.refund(&tenant, &id, amount, body.reason).await,
    }
    .map_err(store_error)?;
    Ok(json_response(StatusCode::CREATED, &refund))
}
