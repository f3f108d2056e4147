//! The organisation's billing routes (`/orgs/{org}/billing/…`, mounted under `/api/v1`): members
//! whose role allows `manage_billing`, or the org's API keys with `billing:write`. HTTP only: each
//! handler extracts, calls one function of the layer and answers; the older personal routes
//! (`personal_routes.rs`) answer through the same functions.
use actix_web::{HttpResponse, get, http::header, middleware::from_fn, post, put, web};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    cancel,
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
    orgs::{Action, RequireOrgPermission},
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

/// How recent the second factor must be to change where receipts go.
pub const STEP_UP: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, serde::Deserialize)]
pub struct OrderPath {
    /// The `{id}` segment (`{org}` is the guard's).
    id: Uuid,
}

/// Starts a purchase for the organisation: creates an order and its Stripe Checkout Session; send
/// the buyer to `checkout_url`. Requires an `Idempotency-Key` (per caller and organisation): a
/// retry with the same key returns the same order and session, never a second one.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id"),
        ("Idempotency-Key" = String, Header, description = "A unique key per purchase attempt (e.g. a UUID); resend it on retries")),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "Order created; pay at checkout_url", body = CheckoutResponse),
        (status = 200, description = "The order this key already created", body = CheckoutResponse),
        (status = 400, description = "Missing or invalid Idempotency-Key, or malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission (`org-permission-required`), or the email address is not verified yet (`email-verification-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no such product on sale", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is still in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid quantity, or the key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[post(
    "/orgs/{org}/billing/checkout",
    wrap = "from_fn(idempotency::required::<Buyer>)",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn checkout(
    app: web::Data<BillingState>,
    buyer: Buyer,
    key: IdempotencyKey,
    body: web::Json<CheckoutRequest>,
) -> Result<HttpResponse, BillingError> {
    let orders = format!("/api/v1/orgs/{}/billing/orders", buyer.0.org_id);
    answer_checkout(&app, buyer, &key, &body, &orders).await
}

/// Checkout, answered: 201 with `Location` for a new order, 200 for the one this key made.
pub(super) async fn answer_checkout(
    app: &BillingState,
    buyer: Buyer,
    key: &IdempotencyKey,
    body: &CheckoutRequest,
    orders_path: &str,
) -> Result<HttpResponse, BillingError> {
    let (response, created) = super::checkout::checkout(app, buyer.0, key, body).await?;
    let location = format!("{orders_path}/{}", response.order_id);
    let mut builder = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(builder
        .insert_header((header::LOCATION, location))
        .json(response))
}

/// The organisation's orders, newest first (the latest 200).
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "Orders", body = [OrderView]),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get(
    "/orgs/{org}/billing/orders",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn list_orders(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<Vec<OrderView>>, BillingError> {
    Ok(web::Json(
        views::list_for_org(&app.db, customer.org_id).await?,
    ))
}

/// One of the organisation's orders (another org's order is a 404).
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id"),
        ("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no such order of it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get(
    "/orgs/{org}/billing/orders/{id}",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn get_order(
    app: web::Data<BillingState>,
    customer: Customer,
    path: web::Path<OrderPath>,
) -> Result<web::Json<OrderView>, BillingError> {
    find_order(&app, customer, path.id).await
}

pub(super) async fn find_order(
    app: &BillingState,
    customer: Customer,
    id: Uuid,
) -> Result<web::Json<OrderView>, BillingError> {
    views::find_for_org(&app.db, customer.org_id, id)
        .await?
        .map(web::Json)
        .ok_or(BillingError::OrderNotFound)
}

/// Cancels one of the organisation's unpaid orders. Its Stripe Checkout Session is expired first,
/// so once this answers the order can no longer be paid. Canceling a canceled order answers it
/// again.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id"),
        ("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order, canceled", body = OrderView),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no such order of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is paid, being paid, or otherwise closed (`order-not-cancelable`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached; nothing was changed, retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[post(
    "/orgs/{org}/billing/orders/{id}/cancel",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn cancel_order(
    app: web::Data<BillingState>,
    customer: Customer,
    path: web::Path<OrderPath>,
) -> Result<web::Json<OrderView>, BillingError> {
    Ok(web::Json(
        cancel::cancel(&app, customer.org_id, path.id).await?,
    ))
}

/// The organisation's licences (revoked and suspended ones included).
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "Licences", body = [LicenseView]),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get(
    "/orgs/{org}/billing/licenses",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn list_licenses(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<Vec<LicenseView>>, BillingError> {
    Ok(web::Json(
        views::licenses_for_org(&app.db, customer.org_id).await?,
    ))
}

/// Where the organisation's receipts go.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The billing email (absent until set)", body = BillingEmail),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get(
    "/orgs/{org}/billing/email",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn get_billing_email(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<BillingEmail>, BillingError> {
    Ok(web::Json(
        contact::billing_email(&app.db, customer.org_id).await?,
    ))
}

/// Changes where the organisation's receipts go: a member with the billing permission, MFA on and
/// verified in the last 5 minutes (API keys may not). The owners, the member and the previous
/// address are told.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id")),
    request_body = BillingEmailRequest,
    responses(
        (status = 200, description = "Billing email changed", body = BillingEmail),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, an API key, or step-up needed (RFC 9470 challenge)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission, or enrol MFA first", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an email address", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[put(
    "/orgs/{org}/billing/email",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn change_billing_email(
    app: web::Data<BillingState>,
    customer: Customer,
    body: web::Json<BillingEmailRequest>,
) -> Result<web::Json<BillingEmail>, BillingError> {
    Ok(web::Json(
        contact::change_billing_email(&app, customer, body.email()?).await?,
    ))
}
