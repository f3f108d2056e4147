//! What the account flows share: single-use email links (verification, reset) and the emails
//! they send (links and security notices), each queued in the caller's transaction.
use chrono::Utc;
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

use super::{
    AuthState,
    audit::{self, Event},
    domain::Email,
    dto::email_field,
    error::AuthError,
    request_meta::RequestMeta,
    throttle::{self, Limit},
    tokens::{random_token, token_hash},
    users::{UserRow, find_by_email},
};
use crate::{
    db::stmt,
    jobs::{Enqueued, JobOptions},
    mail::SendEmail,
};

/// Enqueues an email in `conn`'s transaction: it is sent if and only if the change commits.
pub(super) async fn send(
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
pub(super) async fn email_token(
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
pub(super) async fn consume_email_token(
    conn: &impl ConnectionTrait,
    token: &str,
    purpose: &str,
) -> Result<Option<Uuid>, AuthError> {
    let sql = format!("UPDATE email_tokens SET used_at = now() WHERE {USABLE} RETURNING user_id");
    token_owner(conn, &sql, token, purpose).await
}

/// Whose `token` is, if it could still be used; nothing is used up.
pub(super) async fn peek_email_token(
    conn: &impl ConnectionTrait,
    token: &str,
    purpose: &str,
) -> Result<Option<Uuid>, AuthError> {
    let sql = format!("SELECT user_id FROM email_tokens WHERE {USABLE}");
    token_owner(conn, &sql, token, purpose).await
}

/// An email token that can still be used: `$1` its hash, `$2` its purpose.
const USABLE: &str = "token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()";

async fn token_owner(
    conn: &impl ConnectionTrait,
    sql: &str,
    token: &str,
    purpose: &str,
) -> Result<Option<Uuid>, AuthError> {
    let row = conn
        .query_one_raw(stmt(sql, [token_hash(token).into(), purpose.into()]))
        .await?;
    Ok(row.map(|r| r.try_get::<Uuid>("", "user_id")).transpose()?)
}

/// A request for an emailed link about `email` (`action`: a reset, a new verification link):
/// counted against its per-address and per-IP limits first, on whatever was typed, so unparsable
/// and unknown addresses are limited like real ones; then parsed. A malformed address can belong
/// to no account: it is a 422 rather than work queued for it.
pub(super) async fn link_request(
    app: &AuthState,
    meta: &RequestMeta,
    action: &str,
    email: &str,
    (per_account, per_ip): (u32, u32),
) -> Result<Email, AuthError> {
    let account_key = throttle::account_key(email);
    let limits = [
        Limit::account(action, &account_key, per_account),
        Limit::ip(action, meta.ip.as_deref(), per_ip),
    ];
    throttled(app, meta, action, &limits, &account_key).await?;
    email_field(email)
}

/// The account using `email`, if the address parses and one does: the lookup a link request's job
/// makes (the request itself said nothing about it).
pub(super) async fn account_of(
    conn: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<UserRow>, AuthError> {
    match Email::parse(email) {
        Ok(email) => find_by_email(conn, &email).await,
        Err(_) => Ok(None),
    }
}

/// Counts an attempt at `action` on every limit; over one, the refusal (429) is audited.
pub(super) async fn throttled(
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
