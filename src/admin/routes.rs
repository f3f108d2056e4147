//! HTTP routes of the operator tools (mounted under `/api/v1`). Each route declares both guards:
//! `wrap`s apply inside-out, so the role is checked first (a non-admin gets 403 whatever their MFA)
//! and then the step-up (an admin without a fresh second factor gets 401, or 403 to enrol).
use actix_web::{HttpResponse, get, post, web};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{AdminError, STEP_UP, audit, limit};
use crate::{
    auth::{AuthUser, RequireMfa, RequireRole, dto::AuditEvent},
    http::Problem,
    jobs::{DeadJob, JobQueue},
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_dead_jobs)
        .service(retry_dead_jobs)
        .service(retry_dead_job)
        .service(list_auth_events);
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
    db: web::Data<DatabaseConnection>,
    query: web::Query<DeadJobsQuery>,
) -> Handled<Vec<DeadJob>> {
    let jobs =
        JobQueue::dead_jobs(db.get_ref(), query.queue.as_deref(), limit(query.limit)).await?;
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
    db: web::Data<DatabaseConnection>,
    admin: AuthUser,
    query: web::Query<DeadJobsQuery>,
) -> Handled<RetriedJobs> {
    let queue = query.queue.as_deref();
    let jobs = JobQueue::retry_dead(db.get_ref(), None, queue, limit(query.limit)).await?;
    let details = json!({"queue": queue, "jobs": jobs});
    audit::record(
        db.get_ref(),
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
    db: web::Data<DatabaseConnection>,
    admin: AuthUser,
    id: web::Path<String>,
) -> Handled<DeadJob> {
    let job = JobQueue::retry_dead(db.get_ref(), Some(&id), None, 1)
        .await?
        .pop()
        .ok_or_else(|| AdminError::JobNotDead(id.clone()))?;
    audit::record(
        db.get_ref(),
        admin.user_id,
        "dead_job_retried",
        &job.id,
        json!(job),
    )
    .await?;
    Ok(web::Json(job))
}

#[utoipa::path(
    tag = "auth",
    responses(
        (status = 200, description = "The latest 100 security events", body = Vec<AuditEvent>),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins with MFA only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get(
    "/admin/auth-events",
    wrap = "RequireMfa::within(STEP_UP)",
    wrap = "RequireRole::admin()"
)]
pub async fn list_auth_events(
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, AdminError> {
    Ok(HttpResponse::Ok().json(crate::auth::audit::recent(&**db).await?))
}
