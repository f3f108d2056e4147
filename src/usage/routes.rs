//! HTTP only: the meter catalogue, an org's usage, and members' caps (mounted under `/api/v1`).
use actix_web::{HttpResponse, delete, get, put, web};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    UsageState, caps,
    error::UsageError,
    views::{self, MeterUsage, MeterView},
};
use crate::{
    http::Problem,
    orgs::{Action, OrgMember, RequireOrgPermission},
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_meters)
        .service(org_usage)
        .service(set_cap)
        .service(remove_cap);
}

/// The meters and what each plan (and the free allowance) includes of them.
#[utoipa::path(
    tag = "usage",
    responses((status = 200, description = "Meters", body = [MeterView])),
)]
#[get("/usage/meters")]
pub async fn list_meters(
    state: web::Data<UsageState>,
) -> Result<web::Json<Vec<MeterView>>, UsageError> {
    Ok(web::Json(views::meters(&state.db).await?))
}

/// The organisation's use of each meter in the period running now, with members' capped shares.
#[utoipa::path(
    tag = "usage",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "Use per meter", body = [MeterUsage]),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get("/orgs/{org}/usage", wrap = "RequireOrgPermission(Action::Read)")]
pub async fn org_usage(
    state: web::Data<UsageState>,
    member: OrgMember,
) -> Result<web::Json<Vec<MeterUsage>>, UsageError> {
    Ok(web::Json(views::org_usage(&state, member.org_id).await?))
}

/// Caps one member's share of a meter per period (admins and owners).
#[utoipa::path(
    tag = "usage",
    params(
        ("org" = Uuid, Path, description = "Organisation id"),
        ("meter" = String, Path, description = "Meter key", example = "ai_tokens"),
        ("member" = Uuid, Path, description = "The member's user id"),
    ),
    request_body = caps::SetCap,
    responses(
        (status = 204, description = "Capped"),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not (`org-permission-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation, member (`member-not-found`) or meter (`meter-not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A negative cap", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[put(
    "/orgs/{org}/usage/caps/{meter}/{member}",
    wrap = "RequireOrgPermission(Action::ManageMembers)"
)]
pub async fn set_cap(
    state: web::Data<UsageState>,
    member: OrgMember,
    path: web::Path<(Uuid, String, Uuid)>,
    body: web::Json<caps::SetCap>,
) -> Result<HttpResponse, UsageError> {
    let (_, meter, capped) = path.into_inner();
    caps::set(&state, &member, &meter, capped, body.cap).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lifts a member's cap: they share the organisation's limit again.
#[utoipa::path(
    tag = "usage",
    params(
        ("org" = Uuid, Path, description = "Organisation id"),
        ("meter" = String, Path, description = "Meter key", example = "ai_tokens"),
        ("member" = Uuid, Path, description = "The member's user id"),
    ),
    responses(
        (status = 204, description = "No cap any more"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not (`org-permission-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation, member or meter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[delete(
    "/orgs/{org}/usage/caps/{meter}/{member}",
    wrap = "RequireOrgPermission(Action::ManageMembers)"
)]
pub async fn remove_cap(
    state: web::Data<UsageState>,
    member: OrgMember,
    path: web::Path<(Uuid, String, Uuid)>,
) -> Result<HttpResponse, UsageError> {
    let (_, meter, capped) = path.into_inner();
    caps::remove(&state, &member, &meter, capped).await?;
    Ok(HttpResponse::NoContent().finish())
}
