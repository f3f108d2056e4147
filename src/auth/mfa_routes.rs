//! HTTP routes of second factors (mounted with the rest of [`super::routes`]): TOTP enrolment
//! and removal, recovery codes, step-up. HTTP only, like `routes.rs`.
use std::time::Duration;

use actix_web::{HttpResponse, delete, http::StatusCode, post, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    AuthState,
    dto::{
        AccessToken, CodeRequest, RecoveryCodes, StartTotpRequest, TotpConfirmed, TotpEnrolment,
    },
    guard::{AuthUser, RequireMfa, RequireVerifiedEmail},
    mfa,
    request_meta::RequestMeta,
    routes::{Handled, no_store},
};
use crate::http::Problem;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(step_up)
        .service(start_totp)
        .service(confirm_totp)
        .service(disable_totp)
        .service(regenerate_recovery_codes);
}

#[utoipa::path(
    tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 200, description = "A fresh aal2 access token (MFA time: now)", body = AccessToken),
        (status = 401, description = "No valid access token, or a wrong/used code", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "MFA is not enabled for this account", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/auth/step-up")]
pub async fn step_up(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    user: AuthUser,
    body: web::Json<CodeRequest>,
) -> Handled {
    let token = mfa::step_up(&app, &meta, &user, &body.code).await?;
    Ok(no_store(StatusCode::OK).json(token))
}

#[utoipa::path(
    tag = "auth",
    request_body = StartTotpRequest,
    responses(
        (status = 200, description = "A pending authenticator: confirm it with a code from this session within 10 minutes", body = TotpEnrolment),
        (status = 401, description = "No valid access token or session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Wrong current password, or the email address is not verified yet (`email-verification-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "MFA is already enabled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The current password is missing", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many password attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/mfa/totp", wrap = "RequireVerifiedEmail")]
pub async fn start_totp(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    user: AuthUser,
    body: web::Json<StartTotpRequest>,
) -> Handled {
    let enrolment = mfa::start_enrolment(&app, &meta, &user, body.password.as_ref()).await?;
    Ok(no_store(StatusCode::OK).json(enrolment))
}

#[utoipa::path(
    tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 200, description = "MFA is on: recovery codes (shown once) and an aal2 access token; the account's other sessions have ended", body = TotpConfirmed),
        (status = 401, description = "No valid access token, or a wrong code", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The email address is not verified yet (`email-verification-required`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "MFA already enabled, or no enrolment started by this session in the last 10 minutes", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/mfa/totp/confirm", wrap = "RequireVerifiedEmail")]
pub async fn confirm_totp(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    user: AuthUser,
    body: web::Json<CodeRequest>,
) -> Handled {
    let confirmed = mfa::confirm_enrolment(&app, &meta, &user, &body.code).await?;
    Ok(no_store(StatusCode::OK).json(confirmed))
}

#[utoipa::path(
    tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 204, description = "MFA is off; recovery codes are deleted"),
        (status = 401, description = "Step-up needed (RFC 9470 challenge), or a wrong code", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "MFA is not enabled", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/me/mfa/totp", wrap = "RequireMfa::within(Duration::from_secs(300))")]
pub async fn disable_totp(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    user: AuthUser,
    body: web::Json<CodeRequest>,
) -> Handled {
    mfa::disable(&app, &meta, &user, &body.code).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "auth",
    responses(
        (status = 200, description = "New recovery codes (shown once); the old ones no longer work", body = RecoveryCodes),
        (status = 401, description = "Step-up needed (RFC 9470 challenge)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "MFA is not enabled", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post(
    "/me/mfa/recovery-codes",
    wrap = "RequireMfa::within(Duration::from_secs(300))"
)]
pub async fn regenerate_recovery_codes(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    user: AuthUser,
) -> Handled {
    let codes = mfa::regenerate_recovery_codes(&app, &meta, &user).await?;
    Ok(no_store(StatusCode::OK).json(codes))
}
