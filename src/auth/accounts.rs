//! Accounts: registration and email verification, password reset and change, the profile, the
//! billing email, admins, and the security emails.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, TransactionTrait};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::AuthState;
use super::{
    audit::{self, Event},
    domain::{Email, NewPassword, Role},
    dto::{BillingEmail, CurrentSession, Me, RegisterResponse},
    error::AuthError,
    guard::{AuthUser, RequestMeta, live_session},
    password::{self, Verified},
    sessions,
    throttle::{self, Limit},
    tokens::{random_token, token_hash},
};
use crate::db::stmt;
use crate::{
    auth::jobs::RequestPasswordReset,
    jobs::{Enqueued, JobOptions},
    mail::SendEmail,
};

#[derive(Debug, Clone, FromQueryResult)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub billing_email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub mfa_enabled: bool,
}

pub(super) const SELECT_USER: &str = r#"
SELECT u.id, u.email, u.password_hash, u.role, u.email_verified_at, u.billing_email, u.created_at,
       EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL)
           AS mfa_enabled
FROM users u
"#;

pub async fn find_by_email(
    conn: &impl ConnectionTrait,
    email: &Email,
) -> Result<Option<UserRow>, AuthError> {
    Ok(UserRow::find_by_statement(stmt(
        &format!("{SELECT_USER} WHERE u.email = $1"),
        [email.as_str().into()],
    ))
    .one(conn)
    .await?)
}

pub async fn find_by_id(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<UserRow>, AuthError> {
    Ok(
        UserRow::find_by_statement(stmt(&format!("{SELECT_USER} WHERE u.id = $1"), [id.into()]))
            .one(conn)
            .await?,
    )
}

fn parse_email(raw: &str) -> Result<Email, AuthError> {
    Email::parse(raw).map_err(|m| AuthError::validation("email", m))
}

fn parse_password(field: &'static str, raw: &SecretString) -> Result<NewPassword, AuthError> {
    NewPassword::parse(raw.clone()).map_err(|m| AuthError::validation(field, m))
}

/// Enqueues an email in `conn`'s transaction: it is sent if and only if the change commits.
async fn send(
    conn: &impl ConnectionTrait,
    app: &AuthState,
    to: &str,
    template: &str,
    context: serde_json::Value,
    options: JobOptions,
) -> Result<Enqueued, AuthError> {
    let email = SendEmail {
        to: to.to_owned(),
        template: template.to_owned(),
        context,
        message_key: None,
    };
    Ok(app.jobs.push(conn, &email, options).await?)
}

/// Tells the account owner about a change to their security settings.
pub(super) async fn security_notice(
    conn: &impl ConnectionTrait,
    app: &AuthState,
    to: &str,
    title: &str,
    body: &str,
) -> Result<(), AuthError> {
    send(
        conn,
        app,
        to,
        "security_notice",
        json!({
            "title": title,
            "body": body,
            "when": Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            "app_url": app.public_url,
        }),
        JobOptions::default(),
    )
    .await?;
    Ok(())
}

/// Stores a single-use email token for `user_id` and returns it in clear (for the link).
async fn email_token(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: &str,
    ttl: std::time::Duration,
) -> Result<String, AuthError> {
    let token = random_token();
    conn.execute_raw(stmt(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)",
        [
            token_hash(&token).into(),
            user_id.into(),
            purpose.into(),
            (Utc::now() + ttl).into(),
        ],
    ))
    .await?;
    Ok(token)
}

/// Uses up an email token: `Some(user_id)` once, then never again; `None` when unknown or expired.
async fn consume_email_token(
    conn: &impl ConnectionTrait,
    token: &str,
    purpose: &str,
) -> Result<Option<Uuid>, AuthError> {
    let row = conn
        .query_one_raw(stmt(
            "UPDATE email_tokens SET used_at = now()
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
             RETURNING user_id",
            [token_hash(token).into(), purpose.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<Uuid>("", "user_id")).transpose()?)
}

/// `POST /auth/register`. A taken email gets the same response after the same work (a hash, one
/// insert attempt, one email); its owner is told by email instead of a second account being made.
pub async fn register(
    app: &AuthState,
    meta: &RequestMeta,
    email: &str,
    password: &SecretString,
) -> Result<RegisterResponse, AuthError> {
    let email = parse_email(email)?;
    let password = parse_password("password", password)?;
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
    // Whatever was typed, so unparsable and unknown emails are limited like real ones.
    let account_key = throttle::account_key(email);
    throttled(
        app,
        meta,
        "forgot_password",
        &[
            Limit::account(
                "forgot_password",
                &account_key,
                cfg.forgot_password_per_account,
            ),
            Limit::ip(
                "forgot_password",
                meta.ip.as_deref(),
                cfg.forgot_password_per_ip,
            ),
        ],
        &account_key,
    )
    .await?;
    // A malformed address can belong to no account: say so (422) rather than queue work for it.
    // Whether a well-formed one has an account is the job's business, out of the answer's reach.
    let email = parse_email(email)?;
    let job = RequestPasswordReset {
        email: email.as_str().to_owned(),
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
    };
    app.jobs.push(&app.db, &job, JobOptions::default()).await?;
    Ok(())
}

/// Counts an attempt at `action` on every limit; over one, the refusal (429) is audited.
async fn throttled(
    app: &AuthState,
    meta: &RequestMeta,
    action: &str,
    limits: &[Limit],
    email: &str,
) -> Result<(), AuthError> {
    let result = throttle::attempt(&app.db, limits, app.config.throttle.window).await;
    if let Err(AuthError::RateLimited { .. }) = &result {
        audit::record(
            &app.db,
            Event::RateLimited,
            None,
            None,
            meta,
            json!({"action": action, "email": email}),
        )
        .await?;
    }
    result
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
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    let txn = app.db.begin().await?;
    let Some(user) = find_by_email(&txn, &email).await? else {
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
pub async fn reset_password(
    app: &AuthState,
    meta: &RequestMeta,
    token: &str,
    password: &SecretString,
) -> Result<(), AuthError> {
    let password = parse_password("password", password)?;
    let hash = password::hash(password.secret()).await?;
    let txn = app.db.begin().await?;
    let user_id = consume_email_token(&txn, token, "password_reset")
        .await?
        .ok_or(AuthError::InvalidEmailToken)?;
    // Receiving the link proves the mailbox, so the address counts as verified.
    txn.execute_raw(stmt(
        "UPDATE users SET password_hash = $1, email_verified_at = coalesce(email_verified_at, now())
         WHERE id = $2",
        [hash.into(), user_id.into()],
    ))
    .await?;
    let ended = sessions::revoke_all(&txn, user_id, None, "password_reset").await?;
    // Other reset links and pending MFA logins were made for the old password.
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
    audit::record(
        &txn,
        Event::PasswordReset,
        Some(user_id),
        None,
        meta,
        json!({"sessions_ended": ended}),
    )
    .await?;
    let user = find_by_id(&txn, user_id)
        .await?
        .ok_or(AuthError::InvalidEmailToken)?;
    security_notice(
        &txn,
        app,
        &user.email,
        "Your password was reset",
        "Your password was reset and every session was signed out. If this was not you, contact support.",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// `POST /me/password`: other sessions end; this one stays.
pub async fn change_password(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    current: &SecretString,
    new: &SecretString,
) -> Result<(), AuthError> {
    let row = live_session(&app.db, user).await?;
    let new = parse_password("new_password", new)?;
    let cfg = &app.config.throttle;
    let limit = Limit::account("password", &user.user_id.to_string(), cfg.login_per_account);
    let ip = Limit::ip("password", meta.ip.as_deref(), cfg.login_per_ip);
    throttle::attempt(&app.db, &[limit.clone(), ip.clone()], cfg.window).await?;
    if password::verify(current, Some(row.password_hash.clone())).await? == Verified::No {
        audit::record(
            &app.db,
            Event::LoginFailed,
            Some(user.user_id),
            Some(user.session_id),
            meta,
            json!({"step": "change_password"}),
        )
        .await?;
        return Err(AuthError::WrongCurrentPassword);
    }
    throttle::succeeded(&app.db, &limit, &ip).await?;
    let hash = password::hash(new.secret()).await?;
    let txn = app.db.begin().await?;
    txn.execute_raw(stmt(
        "UPDATE users SET password_hash = $1 WHERE id = $2",
        [hash.into(), user.user_id.into()],
    ))
    .await?;
    let ended = sessions::revoke_all(
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
        &row.email,
        "Your password was changed",
        "Your password was changed and your other sessions were signed out. If this was not you, reset your password now.",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// `GET /me`.
pub async fn me(app: &AuthState, user: &AuthUser) -> Result<Me, AuthError> {
    let row = live_session(&app.db, user).await?;
    Ok(Me {
        id: row.id,
        role: row.role()?,
        email_verified: row.email_verified_at.is_some(),
        mfa_enabled: row.mfa_enabled,
        billing_email: row.billing_email,
        created_at: row.created_at,
        email: row.email,
        session: CurrentSession {
            id: user.session_id,
            aal: user.aal,
            amr: user.amr.clone(),
        },
    })
}

/// `PUT /billing/email` (behind `RequireMfa`).
pub async fn change_billing_email(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    email: &str,
) -> Result<BillingEmail, AuthError> {
    let email = parse_email(email)?;
    let txn = app.db.begin().await?;
    let old = txn
        .query_one_raw(stmt(
            "UPDATE users u SET billing_email = $1 FROM users prev
             WHERE u.id = $2 AND prev.id = u.id RETURNING prev.billing_email AS old, u.email",
            [email.as_str().into(), user.user_id.into()],
        ))
        .await?
        .ok_or(AuthError::NotFound)?;
    let previous: Option<String> = old.try_get("", "old")?;
    let account_email: String = old.try_get("", "email")?;
    audit::record(
        &txn,
        Event::BillingEmailChanged,
        Some(user.user_id),
        Some(user.session_id),
        meta,
        json!({"from": previous, "to": email.as_str()}),
    )
    .await?;
    security_notice(
        &txn,
        app,
        &account_email,
        "Your billing email was changed",
        &format!("Invoices will now go to {email}. If this was not you, reset your password now."),
    )
    .await?;
    txn.commit().await?;
    Ok(BillingEmail {
        billing_email: email.to_string(),
    })
}

/// Creates a verified admin account (`ironclad create-admin`).
pub async fn create_admin(
    db: &DatabaseConnection,
    email: &str,
    password: &SecretString,
) -> Result<Uuid, AuthError> {
    let email = parse_email(email)?;
    let password = parse_password("password", password)?;
    let hash = password::hash(password.secret()).await?;
    let txn = db.begin().await?;
    let id = Uuid::now_v7();
    let created = txn
        .execute_raw(stmt(
            "INSERT INTO users (id, email, password_hash, role, email_verified_at)
             VALUES ($1, $2, $3, $4, now()) ON CONFLICT (email) DO NOTHING",
            [
                id.into(),
                email.as_str().into(),
                hash.into(),
                Role::Admin.as_str().into(),
            ],
        ))
        .await?
        .rows_affected();
    if created != 1 {
        txn.rollback().await?;
        return Err(AuthError::validation("email", "is already registered"));
    }
    audit::record(
        &txn,
        Event::AdminCreated,
        Some(id),
        None,
        &RequestMeta::default(),
        json!({"via": "cli"}),
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}
