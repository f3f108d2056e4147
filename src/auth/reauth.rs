//! Proving again who you are before a change that would let a thief keep the account (a new
//! password, a new authenticator): a bearer token alone is not enough, since tokens leak.
use secrecy::SecretString;
use serde_json::json;

use super::{
    AuthState,
    audit::{self, Event},
    error::AuthError,
    guard::AuthUser,
    password::{self, Verified},
    request_meta::RequestMeta,
    throttle::{self, Limit},
};

/// Checks the caller's current password, throttled and audited like a login (`step` names the
/// action in the audit trail). A wrong one is 403: the token is fine, the proof is not.
pub(super) async fn confirm_password(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    current: &SecretString,
    step: &str,
) -> Result<(), AuthError> {
    let cfg = &app.config.throttle;
    let limit = Limit::account("password", &user.user_id.to_string(), cfg.login_per_account);
    let ip = Limit::ip("password", meta.ip.as_deref(), cfg.login_per_ip);
    throttle::attempt(&app.db, &[limit.clone(), ip.clone()], cfg.window).await?;
    let hash = user.account.password_hash.clone();
    if password::verify(current, Some(hash)).await? == Verified::No {
        audit::record(
            &app.db,
            Event::LoginFailed,
            Some(user.user_id),
            Some(user.session_id),
            meta,
            json!({"step": step}),
        )
        .await?;
        return Err(AuthError::WrongCurrentPassword);
    }
    throttle::succeeded(&app.db, &limit, &ip).await?;
    Ok(())
}
