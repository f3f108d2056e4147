//! What other layers use to protect routes:
//!
//! - [`AuthUser`]: an extractor; a valid bearer access token or 401. Stateless (signature and claims
//!   only), so it costs no query; a revoked session's token keeps working on routes that use only
//!   this until it expires (at most the access-token lifetime, 15 minutes by default).
//! - [`RequireMfa::within`]: middleware declared on the route. Also checks in the database that
//!   the session is live, that the user has MFA on, that the token is `aal2` and that its MFA is
//!   recent enough.
//! - [`RequireRole`]: middleware declared on the route; checks the *current* role in the database
//!   and the session's liveness.
//!
//! ```ignore
//! #[utoipa::path(...)]
//! #[put("/billing/email", wrap = "RequireMfa::within(Duration::from_secs(300))")]
//! async fn change_billing_email(user: AuthUser, ...) { ... }
//! ```
use std::{
    future::{Ready, ready},
    net::{IpAddr, SocketAddr},
    rc::Rc,
    time::Duration,
};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest,
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::header,
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
    tokens::TokenError,
    users::{SELECT_USER, UserRow},
};
use crate::db::stmt;

/// The caller, as proven by a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
    pub aal: Aal,
    pub amr: Vec<String>,
    /// Last second-factor verification in this session (`None` at `aal1`).
    pub mfa_at: Option<DateTime<Utc>>,
}

fn app_state(req: &HttpRequest) -> Result<&web::Data<AuthState>, AuthError> {
    req.app_data::<web::Data<AuthState>>()
        .ok_or_else(|| AuthError::Unexpected(anyhow::anyhow!("AuthState is not registered")))
}

/// Verifies the `Authorization: Bearer` access token of `req`.
pub fn authenticate(req: &HttpRequest) -> Result<AuthUser, AuthError> {
    if let Some(user) = req.extensions().get::<AuthUser>() {
        return Ok(user.clone());
    }
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
    let claims = state.config.jwt.verify(token).map_err(|e| match e {
        TokenError::Expired => AuthError::Unauthenticated("the access token has expired".into()),
        TokenError::Invalid(reason) => {
            tracing::debug!(%reason, "access token refused");
            AuthError::Unauthenticated("the access token is not valid".into())
        }
    })?;
    Ok(AuthUser {
        user_id: claims.sub,
        session_id: claims.sid,
        role: claims.role,
        aal: claims.aal,
        amr: claims.amr,
        mfa_at: claims
            .mfa_time
            .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)),
    })
}

impl FromRequest for AuthUser {
    type Error = AuthError;
    type Future = Ready<Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// The account behind `user`'s token as it stands now (role, MFA state, email, …), if the token's
/// session is still live (not revoked, not expired); otherwise 401. One query: guards, `/me` and
/// every account action read the live session through here.
pub async fn live_session(
    conn: &impl ConnectionTrait,
    user: &AuthUser,
) -> Result<UserRow, AuthError> {
    UserRow::find_by_statement(stmt(
        &format!(
            "{SELECT_USER} JOIN sessions s ON s.user_id = u.id \
             WHERE s.id = $1 AND u.id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()"
        ),
        [user.session_id.into(), user.user_id.into()],
    ))
    .one(conn)
    .await?
    .ok_or_else(|| AuthError::Unauthenticated("the session has ended".into()))
}

/// The step-up rule of [`RequireMfa`], without I/O.
pub fn check_mfa(
    user: &AuthUser,
    mfa_enabled: bool,
    max_age: Duration,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    if !mfa_enabled {
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
}

impl RequireMfa {
    pub fn within(max_age: Duration) -> Self {
        Self { max_age }
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

#[derive(Debug, Clone, Copy)]
enum Policy {
    Mfa(Duration),
    Role(Role),
}

impl Policy {
    async fn check(self, req: &ServiceRequest) -> Result<AuthUser, AuthError> {
        let user = authenticate(req.request())?;
        let state = app_state(req.request())?;
        let live = live_session(&state.db, &user).await?;
        match self {
            Policy::Mfa(max_age) => check_mfa(&user, live.mfa_enabled, max_age, Utc::now())?,
            Policy::Role(role) => {
                if live.role != role {
                    return Err(AuthError::Forbidden(format!(
                        "this action needs the {} role",
                        role.as_str()
                    )));
                }
            }
        }
        Ok(user)
    }
}

pub struct GuardMiddleware<S> {
    service: Rc<S>,
    policy: Policy,
}

macro_rules! guard_transform {
    ($guard:ty, $policy:expr) => {
        impl<S, B> Transform<S, ServiceRequest> for $guard
        where
            S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
            B: 'static,
        {
            type Response = ServiceResponse<B>;
            type Error = Error;
            type Transform = GuardMiddleware<S>;
            type InitError = ();
            type Future = Ready<Result<Self::Transform, Self::InitError>>;

            fn new_transform(&self, service: S) -> Self::Future {
                let policy: fn(&$guard) -> Policy = $policy;
                ready(Ok(GuardMiddleware {
                    service: Rc::new(service),
                    policy: policy(self),
                }))
            }
        }
    };
}

guard_transform!(RequireMfa, |g| Policy::Mfa(g.max_age));
guard_transform!(RequireRole, |g| Policy::Role(g.role));

impl<S, B> Service<ServiceRequest> for GuardMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let policy = self.policy;
        Box::pin(async move {
            let user = policy.check(&req).await?;
            // The handler's `AuthUser` extractor reuses this instead of verifying again.
            req.extensions_mut().insert(user);
            service.call(req).await
        })
    }
}

/// Who is calling from where, for the audit trail and per-IP limits.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    pub fn of(req: &HttpRequest) -> Self {
        let trust_proxy = app_state(req)
            .map(|s| s.config.trust_proxy_headers)
            .unwrap_or(false);
        // The peer address unless told to trust proxy headers: `X-Forwarded-For` is set by whoever
        // sends the request, so honouring it without a proxy that overwrites it would let any
        // client pick the IP its failed attempts are counted against.
        let ip = if trust_proxy {
            req.connection_info().realip_remote_addr().map(normalise_ip)
        } else {
            req.peer_addr().map(|a| a.ip().to_string())
        };
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Self { ip, user_agent }
    }
}

fn normalise_ip(raw: &str) -> String {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return addr.ip().to_string();
    }
    if let Ok(ip) = raw.trim_matches(['[', ']']).parse::<IpAddr>() {
        return ip.to_string();
    }
    raw.chars().take(64).collect()
}

impl FromRequest for RequestMeta {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(aal: Aal, mfa_ago: Option<i64>) -> AuthUser {
        AuthUser {
            user_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            role: Role::User,
            aal,
            amr: aal.amr(),
            mfa_at: mfa_ago.map(|s| Utc::now() - chrono::Duration::seconds(s)),
        }
    }

    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn fresh_aal2_passes() {
        assert!(check_mfa(&user(Aal::Aal2, Some(10)), true, WINDOW, Utc::now()).is_ok());
    }

    #[test]
    fn without_mfa_enrolment_is_required() {
        assert!(matches!(
            check_mfa(&user(Aal::Aal2, Some(10)), false, WINDOW, Utc::now()),
            Err(AuthError::MfaEnrolmentRequired)
        ));
    }

    #[test]
    fn aal1_stale_or_future_mfa_needs_step_up_with_the_route_window() {
        for u in [
            user(Aal::Aal1, None),
            user(Aal::Aal2, Some(301)),
            user(Aal::Aal2, Some(-60)),
            user(Aal::Aal2, None),
        ] {
            match check_mfa(&u, true, WINDOW, Utc::now()) {
                Err(AuthError::MfaRequired { max_age }) => assert_eq!(max_age, WINDOW),
                other => panic!("{u:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn proxy_addresses_are_normalised() {
        assert_eq!(normalise_ip("203.0.113.7:5555"), "203.0.113.7");
        assert_eq!(normalise_ip("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(normalise_ip("2001:db8::1"), "2001:db8::1");
        assert_eq!(normalise_ip(" 198.51.100.2 "), "198.51.100.2");
    }
}
