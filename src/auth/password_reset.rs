//! Passwords: the reset link (forgot, reset) and the signed-in change; each ends other sessions.
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::{
    AuthState,
    account_mail::account_of,
    account_mail::consume_email_token,
    account_mail::email_token,
    account_mail::link_request,
    account_mail::peek_email_token,
    account_mail::security_notice,
    audit::{self, Event},
    domain::NewPassword,
    dto::ResetPasswordRequest,
    error::AuthError,
    guard::AuthUser,
    mfa::remove_second_factors,
    password, reauth,
    request_meta::RequestMeta,
    sessions,
    users::find_by_id,
};
use crate::{
    auth::jobs::RequestPasswordReset,
    db::stmt,
    jobs::{Enqueued, JobOptions},
    mail::SendEmail,
};

/// `POST /auth/password/forgot`. The answer must not depend on whether an account uses the address,
/// in content or in timing, so the request only counts the attempt and enqueues a
/// [`RequestPasswordReset`] job (one insert, whoever asks); the job looks the account up. Being in
/// the queue, the request survives a crash right after the 202.
pub async fn forgot_password(
    app: &AuthState,
    meta: &RequestMeta,
    email: &str,
) -> Result<(), AuthError> {
    let cfg = &app.config.throttle;
    let limits = (cfg.forgot_password_per_account, cfg.forgot_password_per_ip);
    // Whether a well-formed address has an account is the job's business, out of the answer's reach.
    let email = link_request(app, meta, "forgot_password", email, limits).await?;
    let job = RequestPasswordReset {
        email: email.as_str().to_owned(),
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
    };
    app.jobs.push(&app.db, &job, JobOptions::default()).await?;
    Ok(())
}

/// The work of one [`RequestPasswordReset`] job: if an account uses `email`, a single-use token and
/// the email carrying it, in one transaction.
///
/// `request_id` (the job id, stable across reruns) keys the email job and its Message-ID: a rerun of
/// a request already handled finds that email queued, rolls back its own token and sends nothing.
pub async fn send_reset_link(
    app: &AuthState,
    meta: &RequestMeta,
    email: &str,
    request_id: &str,
) -> Result<(), AuthError> {
    let txn = app.db.begin().await?;
    let Some(user) = account_of(&txn, email).await? else {
        return Ok(());
    };
    let token = email_token(
        &txn,
        user.id,
        "password_reset",
        app.config.password_reset_ttl,
    )
    .await?;
    let base = &app.public_url;
    let key = format!("password-reset-{request_id}");
    let reset_email = SendEmail {
        to: user.email.clone(),
        template: "password_reset".into(),
        context: json!({"token": token, "link": format!("{base}/reset-password?token={token}"), "app_url": base}),
        message_key: Some(key.clone()),
    };
    if app
        .jobs
        .push(&txn, &reset_email, JobOptions::idempotency_key(key))
        .await?
        == Enqueued::Duplicate
    {
        tracing::info!(
            request_id,
            "password reset already handled; nothing sent again"
        );
        txn.rollback().await?;
        return Ok(());
    }
    audit::record(
        &txn,
        Event::PasswordResetRequested,
        Some(user.id),
        None,
        meta,
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// `POST /auth/password/reset`: single use; ends every session of the user.
///
/// The link proves the mailbox, so an account not verified yet becomes verified, and the second
/// factors it had lose their standing: whoever registered the address before its owner could have
/// bound their own authenticator (pre-account takeover), so they are removed with the sessions.
pub async fn reset_password(
    app: &AuthState,
    meta: &RequestMeta,
    request: &ResetPasswordRequest,
) -> Result<(), AuthError> {
    // The link's account first, without using the link up: the new password is judged against
    // that account's address, and a refused password leaves the link as it was.
    let owner = match peek_email_token(&app.db, &request.token, "password_reset").await? {
        Some(user_id) => find_by_id(&app.db, user_id).await?,
        None => None,
    }
    .ok_or(AuthError::InvalidEmailToken)?;
    let password = request.new_password(&owner.address()?, &app.config.totp_issuer)?;
    let hash = password::hash(password.secret()).await?;
    let txn = app.db.begin().await?;
    let user_id = consume_email_token(&txn, &request.token, "password_reset")
        .await?
        .filter(|id| *id == owner.id)
        .ok_or(AuthError::InvalidEmailToken)?;
    let updated = txn
        .query_one_raw(stmt(
            "UPDATE users u SET password_hash = $1,
                                email_verified_at = coalesce(u.email_verified_at, now())
             FROM users prev WHERE u.id = $2 AND prev.id = u.id
             RETURNING prev.email_verified_at IS NULL AS was_unverified",
            [hash.into(), user_id.into()],
        ))
        .await?
        .ok_or(AuthError::InvalidEmailToken)?;
    let was_unverified: bool = updated.try_get("", "was_unverified")?;
    if was_unverified {
        remove_second_factors(&txn, user_id).await?;
    }
    let ended = end_old_credentials(&txn, user_id, None, "password_reset").await?;
    audit::record(
        &txn,
        Event::PasswordReset,
        Some(user_id),
        None,
        meta,
        json!({"sessions_ended": ended, "second_factors_removed": was_unverified}),
    )
    .await?;
    security_notice(
        &txn,
        app,
        &owner.email,
        "Your password was reset",
        "Your password was reset and every session was signed out. If this was not you, contact support.",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// `POST /me/password`: needs the current password. Other sessions end (this one stays), and so
/// do the reset links and MFA logins made for the old password.
pub async fn change_password(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    current: &SecretString,
    new: NewPassword,
) -> Result<(), AuthError> {
    reauth::confirm_password(app, meta, user, current, "change_password").await?;
    let hash = password::hash(new.secret()).await?;
    let txn = app.db.begin().await?;
    txn.execute_raw(stmt(
        "UPDATE users SET password_hash = $1 WHERE id = $2",
        [hash.into(), user.user_id.into()],
    ))
    .await?;
    let ended = end_old_credentials(
        &txn,
        user.user_id,
        Some(user.session_id),
        "password_changed",
    )
    .await?;
    audit::record(
        &txn,
        Event::PasswordChanged,
        Some(user.user_id),
        Some(user.session_id),
        meta,
        json!({"sessions_ended": ended}),
    )
    .await?;
    security_notice(
        &txn,
        app,
        &user.account.email,
        "Your password was changed",
        "Your password was changed and your other sessions were signed out. If this was not you, reset your password now.",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// What a new password ends, in the caller's transaction: every session but `keep`, the reset
/// links not used yet and the logins waiting for their second factor (all made with the old
/// password). Returns how many sessions ended.
async fn end_old_credentials(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<u64, AuthError> {
    let ended = sessions::revoke_all(txn, user_id, keep, reason).await?;
    txn.execute_raw(stmt(
        "UPDATE email_tokens SET used_at = now()
         WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL",
        [user_id.into()],
    ))
    .await?;
    txn.execute_raw(stmt(
        "UPDATE mfa_challenges SET consumed_at = now() WHERE user_id = $1 AND consumed_at IS NULL",
        [user_id.into()],
    ))
    .await?;
    Ok(ended)
}
