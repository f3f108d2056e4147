//! HTTP routes of the billing layer (mounted under `/api/v1`).
use actix_web::{HttpRequest, HttpResponse, get, http::header, middleware::from_fn, post, web};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    BillingError, BillingState, Customer, cancel, catalogue,
    catalogue::Product,
    customer::RequireVerifiedEmail,
    inbox::{Received, Stored},
    signature, views,
    views::{CheckoutRequest, CheckoutResponse, LicenseView, OrderView},
    webhook::{Delivery, WebhookAck},
};
use crate::http::{
    Problem,
    idempotency::{self, IdempotencyKey},
};

/// Registers the billing routes. Each handler is a `#[utoipa::path]` function added with `cfg.service`.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_products)
        .service(checkout)
        .service(list_orders)
        .service(get_order)
        .service(cancel_order)
        .service(list_licenses)
        .service(stripe_webhook);
}

/// The catalogue: products on sale with their price in the shop's currency.
#[utoipa::path(
    tag = "billing",
    responses((status = 200, description = "Products on sale", body = [Product])),
)]
#[get("/billing/products")]
pub async fn list_products(
    app: web::Data<BillingState>,
) -> Result<web::Json<Vec<Product>>, BillingError> {
    let products = catalogue::on_sale(&app.db, &app.config.currency).await?;
    Ok(web::Json(products))
}

/// Starts a purchase: creates an order and its Stripe Checkout Session; send the customer to
/// `checkout_url`. Requires an `Idempotency-Key`: a retry with the same key returns the same order
/// and session, never a second one.
#[utoipa::path(
    tag = "billing",
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
// Wraps run outermost last: the email is checked before a key is claimed, so a refused attempt
// leaves nothing to replay once the address is verified.
#[post(
    "/billing/checkout",
    wrap = "from_fn(idempotency::required::<Customer>)",
    wrap = "RequireVerifiedEmail"
)]
pub async fn checkout(
    app: web::Data<BillingState>,
    customer: Customer,
    key: IdempotencyKey,
    body: web::Json<CheckoutRequest>,
) -> Result<HttpResponse, BillingError> {
    let (response, created) =
        super::checkout::checkout(&app, customer.user_id, &key, &body).await?;
    let location = format!("/api/v1/billing/orders/{}", response.order_id);
    let mut builder = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(builder
        .insert_header((header::LOCATION, location))
        .json(response))
}

/// The signed-in customer's orders, newest first.
#[utoipa::path(
    tag = "billing",
    responses(
        (status = 200, description = "Orders", body = [OrderView]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get("/billing/orders")]
pub async fn list_orders(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<Vec<OrderView>>, BillingError> {
    Ok(web::Json(
        views::list_for_user(&app.db, customer.user_id).await?,
    ))
}

/// One of the customer's orders (another user's order is a 404).
#[utoipa::path(
    tag = "billing",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get("/billing/orders/{id}")]
pub async fn get_order(
    app: web::Data<BillingState>,
    customer: Customer,
    id: web::Path<Uuid>,
) -> Result<web::Json<OrderView>, BillingError> {
    views::find_for_user(&app.db, customer.user_id, *id)
        .await?
        .map(web::Json)
        .ok_or(BillingError::OrderNotFound)
}

/// Cancels one of the customer's unpaid orders. Its Stripe Checkout Session is expired first, so
/// once this answers the order can no longer be paid. Canceling a canceled order answers it again.
#[utoipa::path(
    tag = "billing",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order, canceled", body = OrderView,
            example = json!({
                "id": "0193a4c1-5b2e-7c3d-9a4f-2b1c0d9e8f7a",
                "status": "canceled",
                "currency": "usd",
                "amount_total": 4900,
                "lines": [{"product_id": "0193a4c0-0000-7000-8000-000000000001",
                           "product_name": "Ironclad Pro", "unit_amount": 4900, "quantity": 1}],
                "created_at": "2026-11-23T12:00:00Z",
                "paid_at": null,
                "fulfilled_at": null
            })),
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
#[post("/billing/orders/{id}/cancel")]
pub async fn cancel_order(
    app: web::Data<BillingState>,
    customer: Customer,
    id: web::Path<Uuid>,
) -> Result<web::Json<OrderView>, BillingError> {
    Ok(web::Json(
        cancel::cancel(&app, customer.user_id, *id).await?,
    ))
}

/// The customer's licences (revoked and suspended ones included).
#[utoipa::path(
    tag = "billing",
    responses(
        (status = 200, description = "Licences", body = [LicenseView]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get("/billing/licenses")]
pub async fn list_licenses(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<Vec<LicenseView>>, BillingError> {
    Ok(web::Json(
        views::licenses_for_user(&app.db, customer.user_id).await?,
    ))
}

/// Stripe's webhook endpoint. Verifies `Stripe-Signature` over the raw body, reads the envelope, and
/// stores the event in the inbox: 200 once it is durable (`received`, or `duplicate` for one stored
/// already). Processing happens afterwards, outside Stripe's request. 500 when it could not be
/// stored, so Stripe retries.
#[utoipa::path(
    tag = "billing",
    request_body(content = Object, content_type = "application/json", description = "A Stripe event, as Stripe sends it"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix time>,v1=<HMAC-SHA256>[,v1=...]")),
    responses(
        (status = 200, description = "Event stored (or stored already)", body = WebhookAck),
        (status = 400, description = "Missing or invalid signature, or not a Stripe event: nothing stored", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The event could not be stored; Stripe will retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/webhooks/stripe")]
pub async fn stripe_webhook(
    app: web::Data<BillingState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<web::Json<WebhookAck>, BillingError> {
    let started = std::time::Instant::now();
    let result = receive(&app, &req, &body).await;
    let outcome = match &result {
        Ok(ack) if ack.status == Delivery::Received => "received",
        Ok(_) => "duplicate",
        Err(BillingError::Internal(_) | BillingError::Database(_)) => "failed",
        Err(_) => "invalid",
    };
    app.metrics.observe_delivery(outcome, started.elapsed());
    Ok(web::Json(result?))
}

async fn receive(
    app: &BillingState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<WebhookAck, BillingError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(BillingError::UnsupportedMediaType);
    }
    let config = &app.config;
    let secrets: Vec<&[u8]> = config
        .webhook_secrets
        .iter()
        .map(|s| secrecy::ExposeSecret::expose_secret(s).as_bytes())
        .collect();
    signature::verify(
        req.headers()
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok()),
        body,
        &secrets,
        config.webhook_tolerance.as_secs() as i64,
        chrono::Utc::now().timestamp(),
    )?;
    let event = Received::parse(body)?;
    let event_id = event.id.clone();
    let status = match app.inbox.store(event).await? {
        Stored::New => Delivery::Received,
        Stored::Duplicate => Delivery::Duplicate,
    };
    Ok(WebhookAck { event_id, status })
}
