//! HTTP routes of invitations (mounted under `/api/v1` with the rest of the orgs layer).
use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    OrgError, OrgsState,
    dto::{AcceptInvitation, InvitationView, InviteRequest, InviteResponse, InviteStatus, Joined},
    guard::{OrgMember, RequireOrgPermission},
    invitations,
    policy::Action,
};
use crate::{
    auth::{AuthUser, RequireVerifiedEmail, domain::Email},
    http::Problem,
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(invite)
        .service(list_invitations)
        .service(revoke_invitation)
        .service(accept_invitation);
}

#[derive(Debug, Deserialize)]
pub struct InvitationPath {
    /// The `{id}` segment (`{org}` is the guard's).
    id: Uuid,
}

/// Invites an address (admins and owners). The person gets an email with a single-use link; the
/// same address again while pending sends a new link (the old one stops working); a member's
/// address is a no-op.
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id")),
    request_body = InviteRequest,
    responses(
        (status = 201, description = "Invited (`sent`)", body = InviteResponse),
        (status = 200, description = "Sent again (`resent`), or already a member (`already_member`)", body = InviteResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "No seat left (`seat-limit-reached`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not invite", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email address, or the owner role", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many invitations sent (per inviter per hour, per org per day)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post(
    "/orgs/{org}/invitations",
    wrap = "RequireOrgPermission(Action::InviteMembers)"
)]
pub async fn invite(
    app: web::Data<OrgsState>,
    member: OrgMember,
    body: web::Json<InviteRequest>,
) -> Result<HttpResponse, OrgError> {
    let email = Email::parse(&body.email).map_err(|m| OrgError::validation("email", m))?;
    let (status, invitation) = invitations::invite(&app, &member, &email, body.role).await?;
    let response = InviteResponse { status, invitation };
    Ok(match status {
        InviteStatus::Sent => HttpResponse::Created().json(response),
        _ => HttpResponse::Ok().json(response),
    })
}

/// The organisation's pending invitations, newest first (admins and owners).
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "Pending invitations", body = [InvitationView]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get(
    "/orgs/{org}/invitations",
    wrap = "RequireOrgPermission(Action::InviteMembers)"
)]
pub async fn list_invitations(
    app: web::Data<OrgsState>,
    member: OrgMember,
) -> Result<web::Json<Vec<InvitationView>>, OrgError> {
    Ok(web::Json(
        invitations::pending(&app.db, member.org_id).await?,
    ))
}

/// Revokes a pending invitation: its link stops working (admins and owners).
#[utoipa::path(
    tag = "orgs",
    params(
        ("org" = Uuid, Path, description = "Organisation id"),
        ("id" = Uuid, Path, description = "Invitation id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no such pending invitation (`invitation-not-found`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[delete(
    "/orgs/{org}/invitations/{id}",
    wrap = "RequireOrgPermission(Action::InviteMembers)"
)]
pub async fn revoke_invitation(
    app: web::Data<OrgsState>,
    member: OrgMember,
    path: web::Path<InvitationPath>,
) -> Result<HttpResponse, OrgError> {
    invitations::revoke(&app, &member, path.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Accepts an invitation with the token from its email. The signed-in account's address must be
/// verified and be the invited one (case does not matter). Someone invited without an account
/// registers and verifies first; the invitation waits. Accepting again answers the same.
#[utoipa::path(
    tag = "orgs",
    request_body = AcceptInvitation,
    responses(
        (status = 200, description = "A member now", body = Joined),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "No seat left (`seat-limit-reached`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The address is not verified (`email-verification-required`), or the invitation is for another address (`invitation-for-another-address`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, used, revoked or expired (`invitation-not-found`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post("/invitations/accept", wrap = "RequireVerifiedEmail")]
pub async fn accept_invitation(
    app: web::Data<OrgsState>,
    user: AuthUser,
    body: web::Json<AcceptInvitation>,
) -> Result<web::Json<Joined>, OrgError> {
    Ok(web::Json(
        invitations::accept(&app, &user, &body.token).await?,
    ))
}
