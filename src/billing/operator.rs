//! Operator routes of the billing layer, under `/api/v1/admin` beside the other operator tools:
//! webhook events to review and replay, stuck orders to reconcile, revenue recovery. Each route declares both guards
//! (the role first, then a recent second factor) and records what it did in the admin audit trail.
use std::time::Duration;

use actix_web::{get, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    app::BillingState,
    error::BillingError,
    orders::reconcile::{self, ReconcileResult, StuckOrder},
    stripe::{
        replay::{self, Replayed},
        review::{self, ReviewReason, WebhookEventView},
    },
    subscriptions::recovery::{self, RecoveryView},
};
use crate::{
    admin::{self, MAX_LIMIT, STEP_UP, limit},
    auth::{AuthUser, RequireMfa, RequireRole},
    http::Problem,
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_webhook_events)
        .service(replay_webhook_event)
        .service(list_stuck_orders)
        .service(reconcile_stuck_orders)
        .service(reconcile_order)
        .service(revenue_recovery);
}

/// Revenue recovery: MRR, MRR at risk (past due and unpaid), invoices in dunning with their
/// attempts, revenue recovered in the last 30 days and involuntary churn. From our copy of
/// Stripe's subscriptions and the dunning ledger.
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 200, description = "Recovery figures", body = RecoveryView),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get(
    "/admin/billing/recovery",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn revenue_recovery(app: web::Data<BillingState>) -> Handled<RecoveryView> {
    Ok(web::Json(
        recovery::recovery(&app.db, &app.config.currency).await?,
    ))
}

type Handled<T> = Result<web::Json<T>, BillingError>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookEventsQuery {
    /// Only events listed for this reason.
    pub reason: Option<ReviewReason>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StuckOrdersQuery {
    /// Awaiting payment for longer than this many seconds (default `BILLING_RECONCILE_AFTER_SECS`).
    pub older_than_secs: Option<u64>,
}

/// Webhook events needing a look: failed (rolled back), naming no order, of a type we do not handle,
/// or rejected as contradicting their order. Newest first.
#[utoipa::path(
    tag = "admin",
    params(WebhookEventsQuery),
    responses(
        (status = 200, description = "Events for review", body = [WebhookEventView]),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get(
    "/admin/webhook-events",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn list_webhook_events(
    app: web::Data<BillingState>,
    query: web::Query<WebhookEventsQuery>,
) -> Handled<Vec<WebhookEventView>> {
    let events =
        review::webhook_events_for_review(&app.db, query.reason, limit(query.limit)).await?;
    Ok(web::Json(events))
}

/// Runs a stored event through the inbox processor now: a pending or failing one at once, a dead one
/// or one that named no order (e.g. once its order exists) again. Idempotent: an event already
/// applied or ignored is left alone (`replayed: false`), so it never applies twice.
#[utoipa::path(
    tag = "admin",
    params(("event_id" = String, Path, description = "Stripe event id (evt_...)")),
    responses(
        (status = 200, description = "The event's outcome", body = Replayed),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event was received", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post(
    "/admin/webhook-events/{event_id}/replay",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn replay_webhook_event(
    app: web::Data<BillingState>,
    admin: AuthUser,
    event_id: web::Path<String>,
) -> Handled<Replayed> {
    let replayed = replay::replay(&app, &event_id)
        .await?
        .ok_or_else(|| BillingError::EventNotFound(event_id.clone()))?;
    if replayed.replayed {
        let details = json!(replayed);
        admin::audit::record(
            &app.db,
            admin.user_id,
            "webhook_event_replayed",
            &event_id,
            details,
        )
        .await?;
    }
    Ok(web::Json(replayed))
}

/// Orders still `pending_payment` or `payment_processing` after `older_than_secs`: candidates for
/// reconciliation with Stripe, in the order the sweep takes them (least recently checked first).
#[utoipa::path(
    tag = "admin",
    params(StuckOrdersQuery),
    responses(
        (status = 200, description = "Stuck orders", body = [StuckOrder]),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get(
    "/admin/stuck-orders",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn list_stuck_orders(
    app: web::Data<BillingState>,
    query: web::Query<StuckOrdersQuery>,
) -> Handled<Vec<StuckOrder>> {
    let older_than = older_than(&app, &query);
    let orders = reconcile::stuck_orders(&app.db, older_than, MAX_LIMIT).await?;
    Ok(web::Json(orders))
}

fn older_than(app: &BillingState, query: &StuckOrdersQuery) -> Duration {
    query
        .older_than_secs
        .map_or(app.config.reconcile_after, Duration::from_secs)
}

/// Reconciles the stuck orders (up to 100, least recently checked first) with what Stripe knows of
/// their payment, as the periodic sweep does.
#[utoipa::path(
    tag = "admin",
    params(StuckOrdersQuery),
    responses(
        (status = 200, description = "One result per order", body = [ReconcileResult]),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post(
    "/admin/stuck-orders/reconcile",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn reconcile_stuck_orders(
    app: web::Data<BillingState>,
    admin: AuthUser,
    query: web::Query<StuckOrdersQuery>,
) -> Handled<Vec<ReconcileResult>> {
    let results = reconcile::reconcile_stuck(&app, older_than(&app, &query)).await?;
    admin::audit::record(
        &app.db,
        admin.user_id,
        "stuck_orders_reconciled",
        "*",
        json!(results),
    )
    .await?;
    Ok(web::Json(results))
}

/// Reconciles one order with its Checkout Session at Stripe: a paid session makes it `paid` (licence
/// and receipt follow), an expired one `expired`. For an order in `payment_processing`, its
/// PaymentIntent decides: `succeeded` makes it `paid`, a failed debit `payment_failed`. An open
/// session, a payment still processing, or an order no longer awaiting payment is left as it is.
/// Safe to repeat.
#[utoipa::path(
    tag = "admin",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "What reconciliation did", body = ReconcileResult),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe could not be reached; try again", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post(
    "/admin/stuck-orders/{id}/reconcile",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn reconcile_order(
    app: web::Data<BillingState>,
    admin: AuthUser,
    id: web::Path<Uuid>,
) -> Handled<ReconcileResult> {
    let result = reconcile::reconcile_order(&app, *id).await?;
    admin::audit::record(
        &app.db,
        admin.user_id,
        "order_reconciled",
        &id.to_string(),
        json!(result),
    )
    .await?;
    Ok(web::Json(result))
}
