//! The HTTP API.
//!
//! | Method | Path | |
//! |---|---|---|
//! | POST | `/payments` | create a payment |
//! | GET | `/payments` | list the tenant's payments (`?limit=&cursor=`) |
//! | GET | `/payments/:id` | get one |
//! | POST | `/payments/:id/refunds` | refund part or all of it |

use http::StatusCode;
use lift::{json_response, read_json, App, Context, Error, Request, Response};

use crate::model::{valid_id, validate_amount, CreatePayment, CreateRefund, Invalid};
use crate::store::{PaymentStore, StoreError};

/// The header a development build may take the tenant from.
pub const DEV_TENANT_HEADER: &str = "x-lift-dev-tenant";

/// What every handler needs.
#[derive(Debug, Clone)]
pub struct Payments {
    /// The store.
    pub store: PaymentStore,
    /// DEVELOPMENT ONLY: take the tenant from the `X-Lift-Dev-Tenant` header when no
    /// authenticated principal is present. Never enable this in production: any caller
    /// could act as any tenant.
    pub dev_tenant_header_insecure: bool,
}

/// The payments API as a Lift app.
pub fn app(payments: Payments) -> App {
    App::new()
        .post("/payments", create_payment)
        .get("/payments", list_payments)
        .get("/payments/:id", get_payment)
        .post("/payments/:id/refunds", refund_payment)
        .with_state(payments)
}

fn invalid(err: Invalid) -> Error {
    Error::validation(err.field, err.detail)
}

fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::Duplicate => Error::conflict("a payment with this id already exists"),
        StoreError::NotFound => Error::not_found().with_detail("payment not found"),
        StoreError::OverRefund { refundable } => {
            Error::unprocessable(format!("the refund exceeds the refundable amount of {refundable}"))
        }
        err @ StoreError::Unavailable(_) => Error::service_unavailable(1)
            .with_detail("the payments store is busy; retry later")
            .with_source(err),
        other => Error::internal(other),
    }
}

/// The caller's tenant: the authenticated principal's, or in development the header's.
fn tenant(req: &Request, payments: &Payments) -> Result<String, Error> {
    if let Some(tenant) = Context::of(req).and_then(Context::tenant) {
        return Ok(tenant.to_owned());
    }
    if payments.dev_tenant_header_insecure {
        if let Some(tenant) = req.headers().get(DEV_TENANT_HEADER).and_then(|v| v.to_str().ok()) {
            if valid_id(tenant) {
                return Ok(tenant.to_owned());
            }
            return Err(Error::bad_request("the tenant header is not a valid tenant id"));
        }
    }
    Err(Error::unauthorized("Bearer").with_detail("authentication is required"))
}

async fn create_payment(req: Request) -> Result<Response, Error> {
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req, payments)?;
    let body: CreatePayment = read_json(&req)?;
    let new = body.validate().map_err(invalid)?;
    let payment = payments.store.create(&tenant, new).await.map_err(store_error)?;
    let mut res = json_response(StatusCode::CREATED, &payment);
    if let Ok(location) = http::HeaderValue::from_str(&format!("/payments/{}", payment.id)) {
        res.headers_mut().insert(http::header::LOCATION, location);
    }
    Ok(res)
}

async fn get_payment(req: Request) -> Result<Response, Error> {
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req, payments)?;
    let id = lift::path_param(&req, "id").unwrap_or_default();
    if !valid_id(id) {
        return Err(Error::not_found().with_detail("payment not found"));
    }
    let payment = payments.store.get(&tenant, id).await.map_err(store_error)?;
    Ok(json_response(StatusCode::OK, &payment))
}

async fn list_payments(req: Request) -> Result<Response, Error> {
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req, payments)?;
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

async fn refund_payment(req: Request) -> Result<Response, Error> {
    let payments = lift::app::state::<Payments>(&req)?;
    let tenant = tenant(&req, payments)?;
    let id = lift::path_param(&req, "id").unwrap_or_default().to_owned();
    if !valid_id(&id) {
        return Err(Error::not_found().with_detail("payment not found"));
    }
    let body: CreateRefund = read_json(&req)?;
    let amount = validate_amount("amount", body.amount).map_err(invalid)?;
    if body.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(Error::validation("reason", "the reason must be at most 500 characters"));
    }
    let refund = payments.store.refund(&tenant, &id, amount, body.reason).await.map_err(store_error)?;
    Ok(json_response(StatusCode::CREATED, &refund))
}
