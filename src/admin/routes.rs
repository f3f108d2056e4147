//! HTTP routes of the operator tools (mounted under `/api/v1`). Each route declares both guards:
//! `wrap`s apply inside-out, so the role is checked first (a non-admin gets 403 whatever their MFA)
//! and then the step-up (an admin without a fresh second factor gets 401, or 403 to enrol).
use std::time::Duration;

use actix_web::{get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    AdminError,
    service::{self, ReviewReason, WebhookEventView},
};
use crate::{
    auth::{AuthUser, RequireMfa, RequireRole},
    billing::{
        reconcile::{self, ReconcileResult, StuckOrder},
        webhook::{self, Replayed},
    },
    http::Problem,
    jobs::{DeadJob, JobQueue},
    startup::AppState,
};

/// How recent the admin's second factor must be.
const STEP_UP: Duration = Duration::from_secs(300);
const MAX_LIMIT: u64 = 1000;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_dead_jobs)
        .service(retry_dead_jobs)
        .service(retry_dead_job)
        .service(list_webhook_events)
        .service(replay_webhook_event)
        .service(list_stuck_orders)
        .service(reconcile_stuck_orders)
        .service(reconcile_order);
}

type Handled<T> = Result<web::Json<T>, AdminError>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadJobsQuery {
    /// Only jobs of this queue (e.g. `email`).
    pub queue: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"retried": 1, "jobs": [{
    "id": "01JDQ4M8K9X2V7T3N5R6P8W0YZ", "queue": "email",
    "args": {"to": "ada@example.com", "template": "receipt", "context": {}, "message_key": null},
    "attempts": 8, "max_attempts": 8, "last_error": "template receipt: not found",
    "failed_at": "2026-11-23T12:00:00Z"}]}))]
pub struct RetriedJobs {
    pub retried: usize,
    /// The jobs as they were when dead (their last error included); they are now pending.
    pub jobs: Vec<DeadJob>,
}

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

fn limit(requested: Option<u64>) -> u64 {
    requested.unwrap_or(100).clamp(1, MAX_LIMIT)
}

/// Dead jobs (out of attempts), most recently dead first, with their last error.
#[utoipa::path(
    tag = "admin",
    params(DeadJobsQuery),
    responses(
        (status = 200, description = "Dead jobs", body = [DeadJob]),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get(
    "/admin/jobs/dead",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn list_dead_jobs(
    app: web::Data<AppState>,
    query: web::Query<DeadJobsQuery>,
) -> Handled<Vec<DeadJob>> {
    let jobs = JobQueue::dead_jobs(&app.db, query.queue.as_deref(), limit(query.limit)).await?;
    Ok(web::Json(jobs))
}

/// Retries every dead job (of `queue`, when given; up to 1000): each becomes pending again with a
/// fresh budget of attempts. Their last errors are returned and kept in the admin audit trail.
#[utoipa::path(
    tag = "admin",
    params(DeadJobsQuery),
    responses(
        (status = 200, description = "The jobs retried", body = RetriedJobs),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post(
    "/admin/jobs/dead/retry",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn retry_dead_jobs(
    app: web::Data<AppState>,
    admin: AuthUser,
    query: web::Query<DeadJobsQuery>,
) -> Handled<RetriedJobs> {
    let queue = query.queue.as_deref();
    let jobs = JobQueue::retry_dead(&app.db, None, queue, limit(query.limit)).await?;
    let details = json!({"queue": queue, "jobs": jobs});
    service::audit(
        &app.db,
        admin.user_id,
        "dead_jobs_retried",
        queue.unwrap_or("*"),
        details,
    )
    .await?;
    Ok(web::Json(RetriedJobs {
        retried: jobs.len(),
        jobs,
    }))
}

/// Retries one dead job: it becomes pending again with a fresh budget of attempts. Returns it as it
/// was when dead (its last error is also kept in the admin audit trail).
#[utoipa::path(
    tag = "admin",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job, as it was when dead; now pending", body = DeadJob),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead job (perhaps already retried)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post(
    "/admin/jobs/dead/{id}/retry",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn retry_dead_job(
    app: web::Data<AppState>,
    admin: AuthUser,
    id: web::Path<String>,
) -> Handled<DeadJob> {
    let job = JobQueue::retry_dead(&app.db, Some(&id), None, 1)
        .await?
        .pop()
        .ok_or_else(|| AdminError::JobNotDead(id.clone()))?;
    service::audit(
        &app.db,
        admin.user_id,
        "dead_job_retried",
        &job.id,
        json!(job),
    )
    .await?;
    Ok(web::Json(job))
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
    app: web::Data<AppState>,
    query: web::Query<WebhookEventsQuery>,
) -> Handled<Vec<WebhookEventView>> {
    let events =
        service::webhook_events_for_review(&app.db, query.reason, limit(query.limit)).await?;
    Ok(web::Json(events))
}

/// Runs a received event through webhook processing again (e.g. once its order exists). Idempotent:
/// an event already applied or ignored is left alone (`replayed: false`), so it never applies twice.
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
    app: web::Data<AppState>,
    admin: AuthUser,
    event_id: web::Path<String>,
) -> Handled<Replayed> {
    let replayed = webhook::replay(&app, &event_id)
        .await?
        .ok_or_else(|| AdminError::EventNotFound(event_id.clone()))?;
    if replayed.replayed {
        let details = json!(replayed);
        service::audit(
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
    app: web::Data<AppState>,
    query: web::Query<StuckOrdersQuery>,
) -> Handled<Vec<StuckOrder>> {
    let older_than = older_than(&app, &query);
    let orders = reconcile::stuck_orders(&app.db, older_than, MAX_LIMIT).await?;
    Ok(web::Json(orders))
}

fn older_than(app: &AppState, query: &StuckOrdersQuery) -> Duration {
    query
        .older_than_secs
        .map_or(app.config.billing.reconcile_after, Duration::from_secs)
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
    app: web::Data<AppState>,
    admin: AuthUser,
    query: web::Query<StuckOrdersQuery>,
) -> Handled<Vec<ReconcileResult>> {
    let results = reconcile::reconcile_stuck(&app, older_than(&app, &query)).await?;
    service::audit(
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
    app: web::Data<AppState>,
    admin: AuthUser,
    id: web::Path<Uuid>,
) -> Handled<ReconcileResult> {
    let result = reconcile::reconcile_order(&app, *id).await?;
    service::audit(
        &app.db,
        admin.user_id,
        "order_reconciled",
        &id.to_string(),
        json!(result),
    )
    .await?;
    Ok(web::Json(result))
}
