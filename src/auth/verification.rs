//! Registration and email verification.
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::{
    AuthState,
    account_mail::consume_email_token,
    account_mail::email_token,
    account_mail::send,
    account_mail::throttled,
    audit::{self, Event},
    dto::NewAccount,
    dto::RegisterResponse,
    error::AuthError,
    guard::RequestMeta,
    password::{self},
    throttle::Limit,
};
use crate::{db::stmt, jobs::JobOptions};

/// `POST /auth/register`. A taken email gets the same response after the same work (a hash, one
/// insert attempt, one email); its owner is told by email instead of a second account being made.
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
    let base = &app.public_url;

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
            let token = email_token(
                &txn,
                user_id,
                "verify_email",
                app.config.email_verification_ttl,
            )
            .await?;
            send(
                &txn,
                app,
                email.as_str(),
                "verify_email",
                json!({"token": token, "link": format!("{base}/verify-email?token={token}"), "app_url": base}),
                JobOptions::default(),
            )
            .await?;
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

/// `POST /auth/verify-email`.
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
