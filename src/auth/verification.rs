//! Registration and email verification (and asking for a new link).
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::{
    AuthState,
    account_mail::{account_of, consume_email_token, email_token, link_request, send, throttled},
    audit::{self, Event},
    dto::{NewAccount, RegisterResponse},
    error::AuthError,
    jobs::ResendVerification,
    password,
    request_meta::RequestMeta,
    throttle::Limit,
};
use crate::{
    db::stmt,
    jobs::{Enqueued, JobOptions},
};

/// `POST /auth/register`. A taken email gets the same response after the same work (a hash, one
/// insert attempt, one email); its owner is told by email instead of a second account being made.
#[tracing::instrument(level = "info", skip_all)]
pub async fn register(
    app: &AuthState,
    meta: &RequestMeta,
    account: NewAccount,
) -> Result<RegisterResponse, AuthError> {
    let NewAccount { email, password } = account;
    let cfg = &app.config.throttle;
    throttled(
        app,
        meta,
        "register",
        &[Limit::ip(
            "register",
            meta.ip.as_deref(),
            cfg.register_per_ip,
        )],
        email.as_str(),
    )
    .await?;
    let hash = password::hash(password.secret()).await?;

    let txn = app.db.begin().await?;
    let created = txn
        .query_one_raw(stmt(
            "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO NOTHING RETURNING id",
            [Uuid::now_v7().into(), email.as_str().into(), hash.into()],
        ))
        .await?;
    match created {
        Some(row) => {
            let user_id: Uuid = row.try_get("", "id")?;
            verification_link(&txn, app, user_id, email.as_str(), JobOptions::default()).await?;
            audit::record(
                &txn,
                Event::Registered,
                Some(user_id),
                None,
                meta,
                json!({}),
            )
            .await?;
        }
        None => {
            let base = &app.public_url;
            tracing::info!(
                target: "ironclad::audit",
                event = Event::RegisterExistingEmail.as_str(),
                ip = meta.ip.as_deref(),
                "auth event"
            );
            send(
                &txn,
                app,
                email.as_str(),
                "account_exists",
                json!({"reset_link": format!("{base}/forgot-password"), "app_url": base}),
                JobOptions::default(),
            )
            .await?;
            txn.execute_raw(stmt(
                "INSERT INTO auth_events (user_id, event, ip, user_agent)
                 SELECT id, $2, $3, $4 FROM users WHERE email = $1",
                [
                    email.as_str().into(),
                    Event::RegisterExistingEmail.as_str().into(),
                    meta.ip.clone().into(),
                    meta.user_agent.clone().into(),
                ],
            ))
            .await?;
        }
    }
    txn.commit().await?;
    Ok(RegisterResponse {
        email: email.to_string(),
        message: "If this address can be registered, a verification email is on its way.".into(),
    })
}

/// Queues, in `conn`'s transaction, an email with a new single-use verification link.
async fn verification_link(
    conn: &impl ConnectionTrait,
    app: &AuthState,
    user_id: Uuid,
    email: &str,
    options: JobOptions,
) -> Result<Enqueued, AuthError> {
    let token = email_token(
        conn,
        user_id,
        "verify_email",
        app.config.email_verification_ttl,
    )
    .await?;
    let base = &app.public_url;
    send(
        conn,
        app,
        email,
        "verify_email",
        json!({"token": token, "link": format!("{base}/verify-email?token={token}"), "app_url": base}),
        options,
    )
    .await
}

/// `POST /auth/verify-email/resend`. Like a password reset request, the answer must not tell
/// whether an account uses the address: the request counts the attempt and enqueues a
/// [`ResendVerification`] job, which looks the account up.
pub async fn resend_verification(
    app: &AuthState,
    meta: &RequestMeta,
    email: &str,
) -> Result<(), AuthError> {
    let cfg = &app.config.throttle;
    let limits = (
        cfg.resend_verification_per_account,
        cfg.resend_verification_per_ip,
    );
    let email = link_request(app, meta, "resend_verification", email, limits).await?;
    let job = ResendVerification {
        email: email.as_str().to_owned(),
    };
    app.jobs.push(&app.db, &job, JobOptions::default()).await?;
    Ok(())
}

/// The work of one [`ResendVerification`] job: if an unverified account uses `email`, a new link.
/// `request_id` (the job id) keys the email, so a rerun sends nothing twice.
pub async fn send_verification_link(
    app: &AuthState,
    email: &str,
    request_id: &str,
) -> Result<(), AuthError> {
    let txn = app.db.begin().await?;
    let Some(user) = account_of(&txn, email).await? else {
        return Ok(());
    };
    if user.email_verified_at.is_some() {
        return Ok(());
    }
    let key = format!("verify-email-{request_id}");
    let options = JobOptions::idempotency_key(key);
    if verification_link(&txn, app, user.id, &user.email, options).await? == Enqueued::Duplicate {
        txn.rollback().await?;
        return Ok(());
    }
    txn.commit().await?;
    Ok(())
}

/// `POST /auth/verify-email`.
#[tracing::instrument(level = "info", skip_all)]
pub async fn verify_email(
    app: &AuthState,
    meta: &RequestMeta,
    token: &str,
) -> Result<(), AuthError> {
    let txn = app.db.begin().await?;
    let user_id = consume_email_token(&txn, token, "verify_email")
        .await?
        .ok_or(AuthError::InvalidEmailToken)?;
    txn.execute_raw(stmt(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1",
        [user_id.into()],
    ))
    .await?;
    audit::record(
        &txn,
        Event::EmailVerified,
        Some(user_id),
        None,
        meta,
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
