//! Recurring billing's routes (mounted under `/api/v1`): the plan catalogue, and the org's
//! subscription under `/orgs/{org}/billing/…`. HTTP only: each handler extracts, calls one
//! function and answers.
use actix_web::{HttpResponse, get, http::header, middleware::from_fn, post, put, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    checkout::{self, SubscribeRequest, SubscribeResponse},
    manage::{self, ChangePreview, ChangeRequest, PortalSession, SubscriptionStatusView},
    plans::{self, PlanView},
};
use crate::{
    billing::{
        app::BillingState,
        customer::{Buyer, Customer},
        error::BillingError,
    },
    http::{
        Problem,
        idempotency::{self, IdempotencyKey},
    },
    orgs::{Action, OrgMember, RequireOrgPermission},
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_plans)
        .service(subscription_checkout)
        .service(get_subscription)
        .service(change_subscription)
        .service(preview_change)
        .service(cancel_subscription)
        .service(resume_subscription)
        .service(portal);
}

/// The plans on sale, with their per-seat prices.
#[utoipa::path(
    tag = "billing",
    responses((status = 200, description = "Plans on sale", body = [PlanView])),
)]
#[get("/billing/plans")]
pub async fn list_plans(
    app: web::Data<BillingState>,
) -> Result<web::Json<Vec<PlanView>>, BillingError> {
    Ok(web::Json(plans::on_sale(&app.db).await?))
}

/// Subscribes the organisation: a Stripe Checkout Session in subscription mode for its Stripe
/// customer (made once). Send the customer to `checkout_url`; the subscription appears once Stripe
/// reports it. One checkout is open per organisation: a new one closes the previous.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id"),
        ("Idempotency-Key" = String, Header, description = "A unique key per attempt; resend it on retries")),
    request_body = SubscribeRequest,
    responses(
        (status = 201, description = "Checkout opened", body = SubscribeResponse),
        (status = 400, description = "Missing or invalid Idempotency-Key, or malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission, or the email address is not verified", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no such plan (`plan-not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The organisation already has a subscription (`subscription-exists`), a newer checkout replaced this one (`checkout-superseded`), or a request with this key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Seats out of range, or fewer than the members (`seats-below-members`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[post(
    "/orgs/{org}/billing/subscription/checkout",
    wrap = "from_fn(idempotency::required::<Buyer>)",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn subscription_checkout(
    app: web::Data<BillingState>,
    buyer: Buyer,
    body: web::Json<SubscribeRequest>,
) -> Result<HttpResponse, BillingError> {
    let opened = checkout::subscribe(&app, buyer.0, &body).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/orgs/{}/billing/subscription", buyer.0.org_id),
        ))
        .json(opened))
}

/// The organisation's subscription, its billing status (for a banner) and the features granted
/// now. Any member may read it.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionStatusView),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get(
    "/orgs/{org}/billing/subscription",
    wrap = "RequireOrgPermission(Action::Read)"
)]
pub async fn get_subscription(
    app: web::Data<BillingState>,
    member: OrgMember,
) -> Result<web::Json<SubscriptionStatusView>, BillingError> {
    Ok(web::Json(manage::status(&app, member.org_id).await?))
}

/// Changes plan, interval or seats, prorated as configured (`BILLING_PRORATION`). A change whose
/// payment fails changes nothing (Stripe's `pending_if_incomplete`).
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id"),
        ("Idempotency-Key" = String, Header, description = "A unique key per change; resend it on retries")),
    request_body = ChangeRequest,
    responses(
        (status = 200, description = "Changed", body = SubscriptionStatusView),
        (status = 400, description = "Missing or invalid Idempotency-Key, or malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission, or the email address is not verified", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, no subscription, or no such plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The subscription is not active (`subscription-not-changeable`), or a request with this key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Seats out of range, or fewer than the members", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[put(
    "/orgs/{org}/billing/subscription",
    wrap = "from_fn(idempotency::required::<Buyer>)",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn change_subscription(
    app: web::Data<BillingState>,
    buyer: Buyer,
    key: IdempotencyKey,
    body: web::Json<ChangeRequest>,
) -> Result<web::Json<SubscriptionStatusView>, BillingError> {
    Ok(web::Json(
        manage::change(&app, buyer.0, &body, key.as_str()).await?,
    ))
}

/// What `PUT /orgs/{org}/billing/subscription` with this body would be invoiced; changes
/// nothing.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id")),
    request_body = ChangeRequest,
    responses(
        (status = 200, description = "The prorated amount", body = ChangePreview),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, no subscription, or no such plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The subscription is not active (`subscription-not-changeable`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Seats out of range, or fewer than the members", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[post(
    "/orgs/{org}/billing/subscription/preview",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn preview_change(
    app: web::Data<BillingState>,
    customer: Customer,
    body: web::Json<ChangeRequest>,
) -> Result<web::Json<ChangePreview>, BillingError> {
    Ok(web::Json(manage::preview(&app, customer, &body).await?))
}

/// Cancels at the period's end (a past-due or unpaid subscription ends at once).
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id"),
        ("Idempotency-Key" = String, Header, description = "A unique key per attempt; resend it on retries")),
    responses(
        (status = 200, description = "Canceled (at the period's end, or now)", body = SubscriptionStatusView),
        (status = 400, description = "Missing or invalid Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission, or the email address is not verified", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no live subscription", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[post(
    "/orgs/{org}/billing/subscription/cancel",
    wrap = "from_fn(idempotency::required::<Buyer>)",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn cancel_subscription(
    app: web::Data<BillingState>,
    buyer: Buyer,
    key: IdempotencyKey,
) -> Result<web::Json<SubscriptionStatusView>, BillingError> {
    Ok(web::Json(
        manage::cancel(&app, buyer.0, key.as_str()).await?,
    ))
}

/// Undoes a cancellation at the period's end, while the period lasts.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id"),
        ("Idempotency-Key" = String, Header, description = "A unique key per attempt; resend it on retries")),
    responses(
        (status = 200, description = "Resumed", body = SubscriptionStatusView),
        (status = 400, description = "Missing or invalid Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission, or the email address is not verified", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no live subscription", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not set to cancel (`subscription-not-changeable`), or a request with this key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[post(
    "/orgs/{org}/billing/subscription/resume",
    wrap = "from_fn(idempotency::required::<Buyer>)",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn resume_subscription(
    app: web::Data<BillingState>,
    buyer: Buyer,
    key: IdempotencyKey,
) -> Result<web::Json<SubscriptionStatusView>, BillingError> {
    Ok(web::Json(
        manage::resume(&app, buyer.0, key.as_str()).await?,
    ))
}

/// A Stripe customer-portal session: payment methods, invoices, plan changes and cancellation,
/// hosted by Stripe. Changes made there reach us by webhook.
#[utoipa::path(
    tag = "billing",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "Portal session", body = PortalSession),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No billing permission", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or it never subscribed", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[post(
    "/orgs/{org}/billing/portal",
    wrap = "RequireOrgPermission(Action::ManageBilling)"
)]
pub async fn portal(
    app: web::Data<BillingState>,
    customer: Customer,
) -> Result<web::Json<PortalSession>, BillingError> {
    Ok(web::Json(manage::portal(&app, customer).await?))
}
