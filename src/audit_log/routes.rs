//! `GET /orgs/{org}/audit-log` (mounted under `/api/v1`).
use actix_web::{get, web};
use chrono::{DateTime, Utc};
use sea_orm::FromQueryResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::{
    billing::RequireEntitlement,
    db::stmt,
    http::Problem,
    orgs::{Action, OrgError, OrgMember, OrgsState, RequireOrgPermission},
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(audit_log);
}

/// One recorded change to the organisation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, FromQueryResult)]
#[schema(example = json!({
    "id": 42, "actor_user_id": "0193a4c0-5555-7000-8000-000000000001", "actor_api_key_id": null,
    "action": "member.role_changed", "subject": "0193a4c0-5555-7000-8000-000000000002",
    "detail": {"from": "member", "to": "admin"}, "at": "2026-12-02T12:00:00Z"
}))]
pub struct AuditEntry {
    pub id: i64,
    /// The person who acted, or none for an API key (then `actor_api_key_id`).
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub action: String,
    pub subject: Option<String>,
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct Page {
    /// Entries before this id (the previous page's last `id`).
    before: Option<i64>,
    /// At most this many (1–200, default 50).
    limit: Option<u32>,
}

/// The organisation's audit log, newest first. Needs a plan with `audit_log`.
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id"), Page),
    responses(
        (status = 200, description = "Entries, newest first", body = [AuditEntry]),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The plan does not include the audit log (`feature-not-in-plan`), no subscription (`subscription-required`), or its payment is past due (`payment-past-due`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin of the organisation", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get(
    "/orgs/{org}/audit-log",
    wrap = "RequireEntitlement(\"audit_log\")",
    wrap = "RequireOrgPermission(Action::ManageMembers)"
)]
pub async fn audit_log(
    state: web::Data<OrgsState>,
    member: OrgMember,
    page: web::Query<Page>,
) -> Result<web::Json<Vec<AuditEntry>>, OrgError> {
    let limit = page.limit.unwrap_or(50).clamp(1, 200);
    let entries = AuditEntry::find_by_statement(stmt(
        "SELECT id, actor_user_id, actor_api_key_id, action, subject, detail, at FROM org_audit \
         WHERE org_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        [
            member.org_id.into(),
            page.before.into(),
            i64::from(limit).into(),
        ],
    ))
    .all(&state.db)
    .await?;
    Ok(web::Json(entries))
}
