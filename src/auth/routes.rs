//! HTTP routes of the auth layer (mounted under `/api/v1`). HTTP only: extract, call one service
//! function, shape the response. Sensitive routes declare their guard in the route attribute.
use actix_web::{
    HttpResponse, delete, get,
    http::{StatusCode, header},
    post, web,
};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    AuthState,
    dto::{
        Accepted, ChangePasswordRequest, Credentials, EmailRequest, LoginResponse, Me,
        MfaVerifyRequest, NewAccount, RefreshRequest, RegisterResponse, ResetPasswordRequest,
        SessionView, TokenPair, TokenRequest,
    },
    error::AuthError,
    guard::AuthUser,
    mfa_routes, password_reset,
    request_meta::RequestMeta,
    sessions, users, verification,
};
use crate::http::Problem;

pub(super) type Handled = Result<HttpResponse, AuthError>;

/// Registers the auth routes. Each handler is a `#[utoipa::path]` function added with `cfg.service`.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(register)
        .service(verify_email)
        .service(resend_verification)
        .service(login)
        .service(verify_mfa)
        .service(refresh)
        .service(logout)
        .service(logout_all)
        .service(forgot_password)
        .service(reset_password)
        .service(me)
        .service(change_password)
        .service(list_sessions)
        .service(revoke_session);
    mfa_routes::routes(cfg);
}

/// The `outcome` label of the login and MFA counters for a failure (see [`crate::metrics`]).
fn error_outcome(error: &AuthError) -> &'static str {
    match error {
        AuthError::InvalidCredentials => "invalid_credentials",
        AuthError::InvalidMfaCode => "invalid_code",
        AuthError::InvalidMfaToken => "invalid_mfa_token",
        AuthError::RateLimited { .. } => "rate_limited",
        AuthError::Validation { .. } => "invalid_request",
        _ => "error",
    }
}

/// Responses carrying tokens must not be cached (RFC 6749 §5.1).
pub(super) fn no_store(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    builder
}

#[utoipa::path(
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, description = "Accepted; the same answer whether or not the email was free", body = RegisterResponse),
        (status = 422, description = "Invalid email or password (length, too common)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations from this IP; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/register")]
pub async fn register(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<Credentials>,
) -> Handled {
    let response = verification::register(
        &app,
        &meta,
        NewAccount::parse(&body, &app.config.totp_issuer)?,
    )
    .await?;
    Ok(HttpResponse::Created().json(response))
}

#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 204, description = "Email address verified"),
        (status = 400, description = "Invalid, expired or used token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/verify-email")]
pub async fn verify_email(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<TokenRequest>,
) -> Handled {
    verification::verify_email(&app, &meta, &body.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "For any well-formed address: a new link follows if an unverified account uses it", body = Accepted),
        (status = 422, description = "Not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this address or IP; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/verify-email/resend")]
pub async fn resend_verification(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<EmailRequest>,
) -> Handled {
    verification::resend_verification(&app, &meta, &body.email).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        message:
            "If an unverified account uses this address, a new verification email is on its way."
                .into(),
    }))
}

#[utoipa::path(
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "Tokens, or `{mfa_required, mfa_token}` when the account has MFA", body = LoginResponse),
        (status = 401, description = "Wrong email or password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this account or IP; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/login")]
pub async fn login(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<Credentials>,
) -> Handled {
    let result = super::login::login(&app, &meta, &body.email, &body.password).await;
    app.metrics.count_login(match &result {
        Ok(LoginResponse::Tokens(_)) => "ok",
        Ok(LoginResponse::Mfa(_)) => "mfa_required",
        Err(error) => error_outcome(error),
    });
    Ok(no_store(StatusCode::OK).json(result?))
}

#[utoipa::path(
    tag = "auth",
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "MFA verified: an aal2 session", body = TokenPair),
        (status = 401, description = "Wrong or used code, or a dead mfa_token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/mfa/verify")]
pub async fn verify_mfa(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<MfaVerifyRequest>,
) -> Handled {
    let result = super::login::verify_mfa(&app, &meta, &body.mfa_token, &body.code).await;
    app.metrics
        .count_mfa_verification(result.as_ref().map_or_else(error_outcome, |_| "ok"));
    Ok(no_store(StatusCode::OK).json(result?))
}

#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair; the presented refresh token is spent", body = TokenPair),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token (reuse revokes the session)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/refresh")]
pub async fn refresh(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<RefreshRequest>,
) -> Handled {
    let pair = sessions::refresh(&app, &meta, &body.refresh_token).await?;
    Ok(no_store(StatusCode::OK).json(pair))
}

#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "The session of this refresh token has ended"))
)]
#[post("/auth/logout")]
pub async fn logout(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<RefreshRequest>,
) -> Handled {
    sessions::logout(&app, &meta, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "auth",
    responses(
        (status = 204, description = "Every session of the user has ended"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/auth/logout-all")]
pub async fn logout_all(app: web::Data<AuthState>, meta: RequestMeta, user: AuthUser) -> Handled {
    sessions::logout_all(&app, &meta, &user).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "For any well-formed address: an email follows if an account uses it", body = Accepted),
        (status = 422, description = "Not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this address or IP; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/password/forgot")]
pub async fn forgot_password(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<EmailRequest>,
) -> Handled {
    password_reset::forgot_password(&app, &meta, &body.email).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        message: "If an account uses this address, a password reset email is on its way.".into(),
    }))
}

#[utoipa::path(
    tag = "auth",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password replaced; every session, reset link and pending MFA login has ended (an account not verified yet becomes verified and loses any second factor bound before)"),
        (status = 400, description = "Invalid, expired or used token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is not acceptable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/password/reset")]
pub async fn reset_password(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    body: web::Json<ResetPasswordRequest>,
) -> Handled {
    password_reset::reset_password(&app, &meta, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "auth",
    responses(
        (status = 200, description = "The caller's account", body = Me),
        (status = 401, description = "No valid access token or session", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/me")]
pub async fn me(user: AuthUser) -> Handled {
    Ok(HttpResponse::Ok().json(users::me(&user)))
}

#[utoipa::path(
    tag = "auth",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed; other sessions, reset links and pending MFA logins have ended"),
        (status = 401, description = "No valid access token or session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The current password is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is not acceptable", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/password")]
pub async fn change_password(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    user: AuthUser,
    body: web::Json<ChangePasswordRequest>,
) -> Handled {
    let new = body.new_password(&user.account.address()?, &app.config.totp_issuer)?;
    password_reset::change_password(&app, &meta, &user, &body.current_password, new).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "auth",
    responses(
        (status = 200, description = "Live sessions, newest first", body = Vec<SessionView>),
        (status = 401, description = "No valid access token or session", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/me/sessions")]
pub async fn list_sessions(app: web::Data<AuthState>, user: AuthUser) -> Handled {
    Ok(HttpResponse::Ok().json(sessions::list(&app, &user).await?))
}

#[utoipa::path(
    tag = "auth",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "The session has ended"),
        (status = 401, description = "No valid access token or session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No live session of yours with this id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/me/sessions/{id}")]
pub async fn revoke_session(
    app: web::Data<AuthState>,
    meta: RequestMeta,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Handled {
    sessions::revoke(&app, &meta, &user, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
