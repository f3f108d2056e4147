//! HTTP routes of the billing layer (mounted under `/api/v1`).
use actix_web::{HttpRequest, HttpResponse, get, http::header, middleware::from_fn, post, web};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    BillingError, BillingState, Customer, cancel, catalogue,
    catalogue::Product,
    customer::RequireVerifiedEmail,
    signature, views,
    views::{CheckoutRequest, CheckoutResponse, LicenseView, OrderView},
    webhook::{self, WebhookAck},
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

/// Stripe's webhook endpoint. Verifies `Stripe-Signature` over the raw body, then records and applies
/// the event in one transaction. 200 once recorded (including duplicates, unknown orders and types
/// we do not handle); 500 when processing failed and nothing was kept, so Stripe retries.
#[utoipa::path(
    tag = "billing",
    request_body(content = Object, content_type = "application/json", description = "A Stripe event, as Stripe sends it"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix time>,v1=<HMAC-SHA256>[,v1=...]")),
    responses(
        (status = 200, description = "Event recorded", body = WebhookAck),
        (status = 400, description = "Missing or invalid signature, or not a Stripe event", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Processing failed; nothing was kept and Stripe will retry", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/webhooks/stripe")]
pub async fn stripe_webhook(
    app: web::Data<BillingState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<web::Json<WebhookAck>, BillingError> {
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
        &body,
        &secrets,
        config.webhook_tolerance.as_secs() as i64,
        chrono::Utc::now().timestamp(),
    )?;
    let (envelope, raw) = webhook::parse(&body)?;
    let started = std::time::Instant::now();
    let result = webhook::process(&app, &envelope, raw).await;
    let outcome = result.as_ref().map_or("failed", |ack| ack.outcome.as_str());
    app.metrics
        .observe_webhook(&envelope.event_type, outcome, started.elapsed());
    Ok(web::Json(result?))
}
