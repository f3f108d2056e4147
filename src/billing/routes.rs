//! HTTP routes of the billing layer (mounted under `/api/v1`): the catalogue and Stripe's
//! webhook here; the rooms' own routes mounted from their folders (`orders/org_routes.rs`, their
//! older personal aliases in `orders/personal_routes.rs`, `subscriptions/routes.rs`).
use actix_web::{HttpRequest, get, http::header, post, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    app::BillingState,
    error::BillingError,
    orders::{
        self,
        catalogue::{self, Product},
    },
    stripe::{Delivery, Received, Stored, WebhookAck, signature},
    subscriptions,
};
use crate::http::Problem;

/// Registers the billing routes. Each handler is a `#[utoipa::path]` function added with `cfg.service`.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_products).service(stripe_webhook);
    orders::routes(cfg);
    subscriptions::routes::routes(cfg);
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
