//! The first billing routes (`/billing/…`, mounted under `/api/v1`), kept so existing clients keep
//! working: each acts on the signed-in user's **personal organisation**, through the same functions
//! as its `/orgs/{org}/billing/…` route, and is marked deprecated in the OpenAPI document.
#![allow(deprecated)]

use actix_web::{HttpResponse, get, middleware::from_fn, post, put, web};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    cancel,
    org_routes::{STEP_UP, answer_checkout, find_order},
    views::{self, CheckoutRequest, CheckoutResponse, LicenseView, OrderView},
};
use crate::billing::{
    app::BillingState,
    contact::{self, BillingEmail, BillingEmailRequest},
    customer::{Buyer, Customer},
    error::BillingError,
};
use crate::{
    auth::RequireMfa,
    http::{
        Problem,
        idempotency::{self, IdempotencyKey},
    },
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(checkout)
        .service(list_orders)
        .service(get_order)
        .service(cancel_order)
        .service(list_licenses)
        .service(get_billing_email)
        .service(change_billing_email);
}

/// `POST /orgs/{org}/billing/checkout` for the caller's personal organisation.
#[utoipa::path(
    tag = "billing",
    operation_id = "personal_checkout",
    request_body = CheckoutRequest,
    params(("Idempotency-Key" = String, Header, description = "A unique key per purchase attempt (e.g. a UUID); resend it on retries")),
    responses(
        (status = 201, description = "Order created; pay at checkout_url", body = CheckoutResponse),
        (status = 200, description = "The order this key already created", body = CheckoutResponse),
        (status = 400, description = "Missing or invalid Idempotency-Key, or malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The email address is not verified yet (`email-verification-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product on sale", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is still in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid quantity, or the key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[deprecated = "use POST /orgs/{org}/billing/checkout"]
#[post("/billing/checkout", wrap = "from_fn(idempotency::required::<Buyer>)")]
pub async fn checkout(
    app: web::Data<BillingState>,
    buyer: Buyer,
    key: IdempotencyKey,
    body: web::Json<CheckoutRequest>,
) -> Result<HttpResponse, BillingError> {
    answer_checkout(&app, buyer, &key, &body, "/api/v1/billing/orders").await
}

/// `GET /orgs/{org}/billing/orders` for the caller's personal organisation.
#[utoipa::path(
    tag = "billing",
    operation_id = "personal_list_orders",
    responses(
        (status = 200, description = "Orders", body = [OrderView]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[deprecated = "use GET /orgs/{org}/billing/orders"]
#[get("/billing/orders")]
pub async fn list_orders(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<Vec<OrderView>>, BillingError> {
    Ok(web::Json(
        views::list_for_org(&app.db, customer.org_id).await?,
    ))
}

/// `GET /orgs/{org}/billing/orders/{id}` for the caller's personal organisation.
#[utoipa::path(
    tag = "billing",
    operation_id = "personal_get_order",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[deprecated = "use GET /orgs/{org}/billing/orders/{id}"]
#[get("/billing/orders/{id}")]
pub async fn get_order(
    app: web::Data<BillingState>,
    customer: Customer,
    id: web::Path<Uuid>,
) -> Result<web::Json<OrderView>, BillingError> {
    find_order(&app, customer, *id).await
}

/// `POST /orgs/{org}/billing/orders/{id}/cancel` for the caller's personal organisation.
#[utoipa::path(
    tag = "billing",
    operation_id = "personal_cancel_order",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order, canceled", body = OrderView),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is paid, being paid, or otherwise closed: it cannot be canceled", body = Problem, content_type = "application/problem+json",
            example = json!({
                "type": "urn:ironclad:problem:order-not-cancelable",
                "title": "The order cannot be canceled",
                "status": 409,
                "detail": "the order is paid and can no longer be canceled"
            })),
        (status = 502, description = "Stripe could not be reached; nothing was changed, retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[deprecated = "use POST /orgs/{org}/billing/orders/{id}/cancel"]
#[post("/billing/orders/{id}/cancel")]
pub async fn cancel_order(
    app: web::Data<BillingState>,
    customer: Customer,
    id: web::Path<Uuid>,
) -> Result<web::Json<OrderView>, BillingError> {
    Ok(web::Json(cancel::cancel(&app, customer.org_id, *id).await?))
}

/// `GET /orgs/{org}/billing/licenses` for the caller's personal organisation.
#[utoipa::path(
    tag = "billing",
    operation_id = "personal_list_licenses",
    responses(
        (status = 200, description = "Licences", body = [LicenseView]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[deprecated = "use GET /orgs/{org}/billing/licenses"]
#[get("/billing/licenses")]
pub async fn list_licenses(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<Vec<LicenseView>>, BillingError> {
    Ok(web::Json(
        views::licenses_for_org(&app.db, customer.org_id).await?,
    ))
}

/// `GET /orgs/{org}/billing/email` for the caller's personal organisation.
#[utoipa::path(
    tag = "billing",
    operation_id = "personal_get_billing_email",
    responses(
        (status = 200, description = "The billing email (absent until set)", body = BillingEmail),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[deprecated = "use GET /orgs/{org}/billing/email"]
#[get("/billing/email")]
pub async fn get_billing_email(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<BillingEmail>, BillingError> {
    Ok(web::Json(
        contact::billing_email(&app.db, customer.org_id).await?,
    ))
}

/// `PUT /orgs/{org}/billing/email` for the caller's personal organisation: the canonical sensitive
/// route, behind a second factor verified in the last 5 minutes.
#[utoipa::path(
    tag = "billing",
    operation_id = "personal_change_billing_email",
    request_body = BillingEmailRequest,
    responses(
        (status = 200, description = "Billing email changed", body = BillingEmail),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Step-up needed (RFC 9470 challenge)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Enrol MFA first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an email address", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[deprecated = "use PUT /orgs/{org}/billing/email"]
#[put("/billing/email", wrap = "RequireMfa::within(STEP_UP)")]
pub async fn change_billing_email(
    app: web::Data<BillingState>,
    customer: Customer,
    body: web::Json<BillingEmailRequest>,
) -> Result<web::Json<BillingEmail>, BillingError> {
    Ok(web::Json(
        contact::change_billing_email(&app, customer, body.email()?).await?,
    ))
}
