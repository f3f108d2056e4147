//! HTTP routes of an organisation's API keys (mounted under `/api/v1` with the rest of the orgs
//! layer). Only people manage keys: a key has no scope for it.
use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    OrgError, OrgsState, STEP_UP, api_keys,
    dto::{ApiKeyView, CreateApiKey, CreatedApiKey},
    guard::{OrgMember, RequireOrgPermission},
    policy::Action,
};
use crate::{
    auth::{RequireMfa, RequireVerifiedEmail},
    http::Problem,
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_key)
        .service(list_keys)
        .service(revoke_key);
}

#[derive(Debug, Deserialize)]
pub struct KeyPath {
    /// The `{id}` segment (`{org}` is the guard's).
    id: Uuid,
}

/// Creates an API key (admins and owners with a verified email address; with a second factor
/// verified in the last 5 minutes when the account has MFA). The key is in this answer only: it is stored as a hash. Send it as
/// `Authorization: Bearer ic_…` on the organisation's routes its scopes allow.
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created; store the key now", body = CreatedApiKey),
        (status = 400, description = "Malformed body, or an unknown scope", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or the second factor must be verified again", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not; a scope beyond your role; or the email address is not verified yet (`email-verification-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, no scope, an expiry in the past, or too many keys", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[post(
    "/orgs/{org}/api-keys",
    wrap = "RequireMfa::when_enrolled(STEP_UP)",
    wrap = "RequireVerifiedEmail",
    wrap = "RequireOrgPermission(Action::ManageApiKeys)"
)]
pub async fn create_key(
    app: web::Data<OrgsState>,
    member: OrgMember,
    body: web::Json<CreateApiKey>,
) -> Result<HttpResponse, OrgError> {
    let created = api_keys::create(&app, &member, &body, app.live_keys).await?;
    Ok(HttpResponse::Created().json(created))
}

/// The organisation's API keys (not revoked), newest first: never the keys themselves.
#[utoipa::path(
    tag = "orgs",
    params(("org" = Uuid, Path, description = "Organisation id")),
    responses(
        (status = 200, description = "Keys", body = [ApiKeyView]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[get(
    "/orgs/{org}/api-keys",
    wrap = "RequireOrgPermission(Action::ManageApiKeys)"
)]
pub async fn list_keys(
    app: web::Data<OrgsState>,
    member: OrgMember,
) -> Result<web::Json<Vec<ApiKeyView>>, OrgError> {
    Ok(web::Json(api_keys::list(&app.db, member.org_id).await?))
}

/// Revokes an API key: the next request with it gets 401.
#[utoipa::path(
    tag = "orgs",
    params(
        ("org" = Uuid, Path, description = "Organisation id"),
        ("id" = Uuid, Path, description = "API key id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Members may not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours, or no such key (`api-key-not-found`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[delete(
    "/orgs/{org}/api-keys/{id}",
    wrap = "RequireOrgPermission(Action::ManageApiKeys)"
)]
pub async fn revoke_key(
    app: web::Data<OrgsState>,
    member: OrgMember,
    path: web::Path<KeyPath>,
) -> Result<HttpResponse, OrgError> {
    api_keys::revoke(&app, &member, path.id).await?;
    Ok(HttpResponse::NoContent().finish())
}
