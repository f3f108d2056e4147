//! What other layers use to protect routes:
//!
//! - [`AuthUser`]: an extractor; a valid bearer access token **whose session is live**, with the
//!   account as it stands now, or 401. One indexed query per request (the session by primary key,
//!   joined to its user), so an ended session (logout, logout-all, password reset or change, reuse
//!   detection, a deleted account) is refused at once on every route. There is deliberately no
//!   stateless variant: no route of this starter is hot enough to trade that guarantee for a query.
//! - [`RequireMfa::within`]: middleware declared on the route: the user has MFA on, the token is
//!   `aal2` and its MFA is recent enough ([`RequireMfa::when_enrolled`]: the same for accounts
//!   with MFA on, while accounts without it pass).
//! - [`RequireRole`]: middleware declared on the route: the *current* role (from the database).
//! - [`RequireVerifiedEmail`]: middleware declared on the route: the account's email address is
//!   verified (else 403 `email-verification-required`). Declare it on anything an unverified
//!   squatter of someone else's address must not do: enrolling MFA, buying, creating what others
//!   will trust.
//!
//! Guards and the extractor share one lookup per request, made before routing by [`identify`]:
//! the outcome (an [`AuthUser`] or the refusal) is stored in the request's extensions and each
//! reuses it. The checks themselves ([`Policy::check`]) are pure.
//!
//! ```ignore
//! #[utoipa::path(...)]
//! #[delete("/me/mfa/totp", wrap = "RequireMfa::within(Duration::from_secs(300))")]
//! async fn disable_mfa(user: AuthUser, ...) { ... }
//! ```
use std::time::Duration;

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web,
};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use sea_orm::{ConnectionTrait, FromQueryResult};
use uuid::Uuid;

use super::{
    AuthState,
    domain::{Aal, Role},
    error::AuthError,
    tokens::{AccessClaims, TokenError},
    users::{SELECT_USER, UserRow},
};
use crate::{
    db::stmt,
    http::guard::{RouteGuard, route_guard},
};

/// The caller: a valid access token of a live session, and the account as it stands now.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub aal: Aal,
    pub amr: Vec<String>,
    /// Last second-factor verification in this session (`None` at `aal1`).
    pub mfa_at: Option<DateTime<Utc>>,
    /// The account, read with the session: its current role, MFA state, verified email, …
    pub account: UserRow,
}

impl AuthUser {
    /// The caller from its verified claims and its account as read with the live session.
    pub fn new(claims: AccessClaims, account: UserRow) -> Self {
        Self {
            user_id: claims.sub,
            session_id: claims.sid,
            aal: claims.aal,
            amr: claims.amr,
            mfa_at: claims
                .mfa_time
                .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)),
            account,
        }
    }

    pub fn email_verified(&self) -> bool {
        self.account.email_verified_at.is_some()
    }
}

fn app_state(req: &HttpRequest) -> Result<&web::Data<AuthState>, AuthError> {
    req.app_data::<web::Data<AuthState>>()
        .ok_or_else(|| AuthError::Unexpected(anyhow::anyhow!("AuthState is not registered")))
}

/// How API keys (`ic_live_…`, `ic_test_…`) begin: never a JWT, which begins `eyJ`.
const API_KEY_PREFIX: &str = "ic_";

/// The verified claims of the `Authorization: Bearer` access token of `req` (signature, expiry,
/// audience, issuer; nothing read from the database).
pub fn bearer_claims(req: &HttpRequest) -> Result<AccessClaims, AuthError> {
    let state = app_state(req)?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::MissingToken)?
        .to_str()
        .map_err(|_| AuthError::Unauthenticated("malformed Authorization header".into()))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(AuthError::MissingToken),
    };
    if token.starts_with(API_KEY_PREFIX) {
        // A key authenticates as its organisation (the orgs layer's guard), never as a person.
        return Err(AuthError::Unauthenticated(
            "API keys are accepted only on their organisation's routes; sign in for this one"
                .into(),
        ));
    }
    state.config.jwt.verify(token).map_err(|e| match e {
        TokenError::Expired => AuthError::Unauthenticated("the access token has expired".into()),
        TokenError::Invalid(reason) => {
            tracing::debug!(%reason, "access token refused");
            AuthError::Unauthenticated("the access token is not valid".into())
        }
    })
}

/// A refusal of the caller, remembered for the rest of the request like an [`AuthUser`] is.
#[derive(Debug, Clone)]
enum Refused {
    MissingToken,
    Unauthenticated(String),
}

impl Refused {
    fn of(error: &AuthError) -> Option<Self> {
        match error {
            AuthError::MissingToken => Some(Self::MissingToken),
            AuthError::Unauthenticated(detail) => Some(Self::Unauthenticated(detail.clone())),
            // Not the caller's fault (the database, say): the next extractor may try again.
            _ => None,
        }
    }

    fn error(&self) -> AuthError {
        match self {
            Self::MissingToken => AuthError::MissingToken,
            Self::Unauthenticated(detail) => AuthError::Unauthenticated(detail.clone()),
        }
    }
}

/// The caller of `req`: its token verified and its session found live (see [`AuthUser`]). The
/// outcome is stored in the request's extensions, so one request looks it up once.
pub async fn authenticate(req: &HttpRequest) -> Result<AuthUser, AuthError> {
    if let Some(user) = req.extensions().get::<AuthUser>() {
        return Ok(user.clone());
    }
    if let Some(refused) = req.extensions().get::<Refused>() {
        return Err(refused.error());
    }
    let outcome = async {
        let claims = bearer_claims(req)?;
        let state = app_state(req)?;
        let account = live_session(&state.db, claims.sid, claims.sub).await?;
        Ok(AuthUser::new(claims, account))
    }
    .await;
    match &outcome {
        Ok(user) => {
            req.extensions_mut().insert(user.clone());
        }
        Err(error) => {
            if let Some(refused) = Refused::of(error) {
                req.extensions_mut().insert(refused);
            }
        }
    }
    outcome
}

/// App-wide middleware (the composition root installs it): a request carrying credentials has
/// its caller identified before routing. Extractors of one handler are polled together, so
/// without this a malformed body (400) could answer before an ended session (401); with it, the
/// caller's extractor finds the outcome ready and answers first, whatever else the handler takes.
pub async fn identify(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let guarded = req
        .app_data::<web::Data<SelfAuthenticating>>()
        .is_some_and(|paths| paths.0.iter().any(|p| req.path().starts_with(p)));
    if !guarded && req.headers().contains_key(header::AUTHORIZATION) {
        // Remembered in the request either way; routes that need no caller ignore it.
        let _ = authenticate(req.request()).await;
    }
    next.call(req).await
}

impl FromRequest for AuthUser {
    type Error = AuthError;
    type Future = LocalBoxFuture<'static, Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// The account behind a live session, as SQL (`$1` the session id, `$2` the user id) another
/// layer's guard may wrap (`WITH caller AS (…)`) to read its own facts in the same query.
pub fn live_session_sql() -> String {
    format!(
        "{SELECT_USER} JOIN sessions s ON s.user_id = u.id \
         WHERE s.id = $1 AND u.id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()"
    )
}

/// Keeps `user` as the caller of `req`, for the guards and extractors that run after the one
/// that authenticated it.
pub fn remember(req: &HttpRequest, user: &AuthUser) {
    req.extensions_mut().insert(user.clone());
}

/// Paths (prefixes) whose routes all authenticate in their own route guard, in one query with
/// what else that guard reads: [`identify`] leaves them alone, so the session is not read twice.
/// Registered by the composition root.
#[derive(Debug, Clone, Copy)]
pub struct SelfAuthenticating(pub &'static [&'static str]);

/// The account behind session `session_id` of `user_id` as it stands now, if the session is still
/// live (not revoked, not expired) and the account still exists; otherwise 401.
async fn live_session(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    user_id: Uuid,
) -> Result<UserRow, AuthError> {
    UserRow::find_by_statement(stmt(
        &live_session_sql(),
        [session_id.into(), user_id.into()],
    ))
    .one(conn)
    .await?
    .ok_or_else(|| AuthError::Unauthenticated("the session has ended".into()))
}

/// The step-up rule of [`RequireMfa`], without I/O.
pub fn check_mfa(user: &AuthUser, max_age: Duration, now: DateTime<Utc>) -> Result<(), AuthError> {
    if !user.account.mfa_enabled {
        return Err(AuthError::MfaEnrolmentRequired);
    }
    let fresh = match (user.aal, user.mfa_at) {
        (Aal::Aal2, Some(at)) => {
            let age = now.signed_duration_since(at);
            // A little tolerance for clocks of several instances; never a time in the future.
            age >= chrono::Duration::seconds(-5)
                && age <= chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX)
        }
        _ => false,
    };
    if fresh {
        Ok(())
    } else {
        Err(AuthError::MfaRequired { max_age })
    }
}

/// Route guard: the caller must have MFA enabled and have verified a second factor in this session
/// within `max_age` (else 401 with an RFC 9470 step-up challenge, or 403 to enrol first).
#[derive(Debug, Clone, Copy)]
pub struct RequireMfa {
    max_age: Duration,
    /// Accounts without MFA pass (else they must enrol first).
    when_enrolled: bool,
}

impl RequireMfa {
    pub fn within(max_age: Duration) -> Self {
        Self {
            max_age,
            when_enrolled: false,
        }
    }

    /// Like [`within`](Self::within) for accounts with MFA on; accounts without it pass. For
    /// actions every account may take but that an account with a second factor must confirm with
    /// it (deleting an organisation, handing over its ownership).
    pub fn when_enrolled(max_age: Duration) -> Self {
        Self {
            max_age,
            when_enrolled: true,
        }
    }

    fn policy(self) -> Policy {
        if self.when_enrolled {
            Policy::MfaWhenEnrolled(self.max_age)
        } else {
            Policy::Mfa(self.max_age)
        }
    }
}

/// Route guard: the caller's current role (read from the database) must be `role`.
#[derive(Debug, Clone, Copy)]
pub struct RequireRole {
    role: Role,
}

impl RequireRole {
    pub fn new(role: Role) -> Self {
        Self { role }
    }

    pub fn admin() -> Self {
        Self::new(Role::Admin)
    }
}

/// Route guard: the caller's email address must be verified (else 403
/// `email-verification-required`).
#[derive(Debug, Clone, Copy)]
pub struct RequireVerifiedEmail;

/// What a guard checks of the caller.
#[derive(Debug, Clone, Copy)]
pub enum Policy {
    Mfa(Duration),
    MfaWhenEnrolled(Duration),
    Role(Role),
    VerifiedEmail,
}

impl Policy {
    pub fn check(self, user: &AuthUser, now: DateTime<Utc>) -> Result<(), AuthError> {
        match self {
            Policy::Mfa(max_age) => check_mfa(user, max_age, now),
            Policy::MfaWhenEnrolled(_) if !user.account.mfa_enabled => Ok(()),
            Policy::MfaWhenEnrolled(max_age) => check_mfa(user, max_age, now),
            Policy::Role(role) if user.account.role != role => Err(AuthError::Forbidden(format!(
                "this action needs the {} role",
                role.as_str()
            ))),
            Policy::Role(_) => Ok(()),
            Policy::VerifiedEmail if !user.email_verified() => {
                Err(AuthError::EmailVerificationRequired)
            }
            Policy::VerifiedEmail => Ok(()),
        }
    }
}

/// The caller passes `policy` (and is kept in the request for what runs after).
async fn passes(req: &HttpRequest, policy: Policy) -> Result<(), AuthError> {
    let user = authenticate(req).await?;
    policy.check(&user, Utc::now())
}

impl RouteGuard for RequireMfa {
    type Refusal = AuthError;
    async fn check(self, req: &HttpRequest) -> Result<(), AuthError> {
        passes(req, self.policy()).await
    }
}

impl RouteGuard for RequireRole {
    type Refusal = AuthError;
    async fn check(self, req: &HttpRequest) -> Result<(), AuthError> {
        passes(req, Policy::Role(self.role)).await
    }
}

impl RouteGuard for RequireVerifiedEmail {
    type Refusal = AuthError;
    async fn check(self, req: &HttpRequest) -> Result<(), AuthError> {
        passes(req, Policy::VerifiedEmail).await
    }
}

route_guard!(RequireMfa);
route_guard!(RequireRole);
route_guard!(RequireVerifiedEmail);

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
