//! HTTP routes of the orgs layer (mounted under `/api/v1`). `{org}` is the organisation's id in
//! every path. Guards are declared on each route; `wrap`s apply inside-out, so the membership
//! (404 for a non-member, 403 for a role that may not) is checked before any step-up.
use actix_web::{HttpResponse, delete, get, http::header, patch, post, web};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    OrgError, OrgsState, STEP_UP,
    dto::{ChangeRole, CreateOrg, MemberView, OrgView, UpdateOrg},
    guard::{OrgMember, RequireOrgPermission},
    members, organisations,
    policy::{Action, Change},
};
use crate::{
    auth::{AuthUser, RequireMfa, RequireVerifiedEmail},
    http::Problem,
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_org)
        .service(list_orgs)
        .service(get_org)
        .service(update_org)
        .service(delete_org)
        .service(list_members)
        .service(change_member)
        .service(remove_member);
}

type Handled<T> = Result<web::Json<T>, OrgError>;

#[derive(Debug, Deserialize)]
pub struct MemberPath {
    /// The `{user}` segment (`{org}` is the guard's).
    user: Uuid,
}

/// Creates an organisation with the caller as its owner.
#[utoipa::path(
    tag = "orgs",
    request_body = CreateOrg,
    responses(
        (status = 201, description = "Created", body = OrgView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The email address is not verified yet (`email-verification-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The slug is taken (`slug-taken`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or slug", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post("/orgs", wrap = "RequireVerifiedEmail")]
pub async fn create_org(
    app: web::Data<OrgsState>,
    user: AuthUser,
    body: web::Json<CreateOrg>,
) -> Result<HttpResponse, OrgError> {
    let (name, slug) = body.parse()?;
    let org = organisations::create(&app, user.user_id, &name, &slug).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/orgs/{}", org.id)))
        .json(org))
}

/// The caller's organisations (their personal one first) with their role in each.
#[utoipa::path(
    tag = "orgs",
    responses(
        (status = 200, description = "Organisations", body = [OrgView]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get("/orgs")]
pub async fn list_orgs(app: web::Data<OrgsState>, user: AuthUser) -> Handled<Vec<OrgView>> {
    Ok(web::Json(organisations::list(&app.db, user.user_id).await?))
}

/// One of the caller's organisations.
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "The organisation", body = OrgView),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours (`org-not-found`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get("/orgs/{org}", wrap = "RequireOrgPermission(Action::Read)")]
pub async fn get_org(member: OrgMember) -> Handled<OrgView> {
    // Read by the guard, with the membership.
    Ok(web::Json(member.org))
}

/// Renames the organisation or changes its slug (admins and owners).
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id")),
    request_body = UpdateOrg,
    responses(
        (status = 200, description = "The organisation, updated", body = OrgView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not (`org-permission-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The slug is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or slug", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[patch("/orgs/{org}", wrap = "RequireOrgPermission(Action::Update)")]
pub async fn update_org(
    app: web::Data<OrgsState>,
    member: OrgMember,
    body: web::Json<UpdateOrg>,
) -> Handled<OrgView> {
    let (name, slug) = body.parse()?;
    Ok(web::Json(
        organisations::update(&app, &member, name, slug).await?,
    ))
}

/// Deletes the organisation (owners; with a second factor verified in the last 5 minutes when
/// the owner has MFA). A personal organisation goes only with its account.
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not signed in, or the second factor must be verified again (`mfa-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only owners may", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A personal organisation (`personal-org`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[delete(
    "/orgs/{org}",
    wrap = "RequireMfa::when_enrolled(STEP_UP)",
    wrap = "RequireOrgPermission(Action::Delete)"
)]
pub async fn delete_org(
    app: web::Data<OrgsState>,
    member: OrgMember,
) -> Result<HttpResponse, OrgError> {
    organisations::delete(&app, &member).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The organisation's members, owners first.
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "Members", body = [MemberView]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[get("/orgs/{org}/members", wrap = "RequireOrgPermission(Action::Read)")]
pub async fn list_members(
    app: web::Data<OrgsState>,
    member: OrgMember,
) -> Handled<Vec<MemberView>> {
    Ok(web::Json(members::list(&app.db, member.org_id).await?))
}

/// Changes a member's role. Admins manage members and admins; only owners grant or take the
/// owner role, and that needs a second factor verified in the last 5 minutes when the owner has
/// MFA. The last owner cannot be demoted.
#[utoipa::path(
    tag = "orgs",
    params(
        ("org" = Uuid, Path, description = "Organisation id"),
        ("user" = Uuid, Path, description = "The member's user id"),
    ),
    request_body = ChangeRole,
    responses(
        (status = 200, description = "The membership, changed", body = MemberView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Your role may not make this change", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no such member (`member-not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would leave no owner (`last-owner`), or the personal organisation's owner (`personal-org`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[patch(
    "/orgs/{org}/members/{user}",
    wrap = "RequireOrgPermission(Action::ManageMembers)"
)]
pub async fn change_member(
    app: web::Data<OrgsState>,
    member: OrgMember,
    path: web::Path<MemberPath>,
    body: web::Json<ChangeRole>,
) -> Handled<MemberView> {
    let change = Change::SetRole(body.role);
    members::change(&app, &member, path.user, change)
        .await?
        .map(web::Json)
        .ok_or(OrgError::MemberNotFound)
}

/// Removes a member; any member may remove themself (leave). Admins remove members and admins,
/// owners anyone; the last owner cannot leave.
#[utoipa::path(
    tag = "orgs",
    params(
        ("org" = Uuid, Path, description = "Organisation id"),
        ("user" = Uuid, Path, description = "The member's user id (your own to leave)"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Your role may not remove this member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no such member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner (`last-owner`), or the personal organisation's owner (`personal-org`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[delete(
    "/orgs/{org}/members/{user}",
    wrap = "RequireOrgPermission(Action::Read)"
)]
pub async fn remove_member(
    app: web::Data<OrgsState>,
    member: OrgMember,
    path: web::Path<MemberPath>,
) -> Result<HttpResponse, OrgError> {
    members::change(&app, &member, path.user, Change::Remove).await?;
    Ok(HttpResponse::NoContent().finish())
}
