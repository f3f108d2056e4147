//! Logging in and out: password login (with the MFA challenge), MFA verification, refresh-token
//! rotation with reuse detection, and the user's view of their sessions.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::{
    AuthState,
    audit::{self, Event},
    domain::{Aal, Role},
    dto::{SessionView, TokenPair},
    error::AuthError,
    guard::AuthUser,
    request_meta::RequestMeta,
    tokens::{SessionFacts, random_token, token_hash},
};
use crate::db::{self, stmt};

/// Starts a session and returns its first token pair. Runs inside the caller's transaction.
pub(super) async fn start_session(
    txn: &DatabaseTransaction,
    app: &AuthState,
    user_id: Uuid,
    role: Role,
    aal: Aal,
    meta: &RequestMeta,
) -> Result<(Uuid, TokenPair), AuthError> {
    let cfg = &app.config;
    let now = Utc::now();
    let session_id = Uuid::now_v7();
    let mfa_at = (aal == Aal::Aal2).then_some(now);
    txn.execute_raw(stmt(
        "INSERT INTO sessions (id, user_id, aal, mfa_at, user_agent, ip, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            session_id.into(),
            user_id.into(),
            aal.as_str().into(),
            mfa_at.into(),
            meta.user_agent.clone().into(),
            meta.ip.clone().into(),
            (now + cfg.session_ttl).into(),
        ],
    ))
    .await?;
    let refresh_token = new_refresh_token(txn, session_id).await?;
    let facts = SessionFacts {
        user_id,
        session_id,
        role,
        aal,
        mfa_at,
    };
    Ok((session_id, token_pair(app, facts, refresh_token, now)))
}

pub(super) async fn new_refresh_token(
    txn: &DatabaseTransaction,
    session_id: Uuid,
) -> Result<String, AuthError> {
    let token = random_token();
    txn.execute_raw(stmt(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        [token_hash(&token).into(), session_id.into()],
    ))
    .await?;
    Ok(token)
}

pub(super) fn token_pair(
    app: &AuthState,
    facts: SessionFacts,
    refresh_token: String,
    now: DateTime<Utc>,
) -> TokenPair {
    let cfg = &app.config;
    TokenPair {
        access_token: cfg.jwt.issue(facts, cfg.access_token_ttl, now),
        refresh_token,
        token_type: "Bearer",
        expires_in: cfg.access_token_ttl.as_secs(),
    }
}

db::text_column!(Aal, |raw| raw.parse().ok());

#[derive(FromQueryResult)]
pub(super) struct RefreshableSession {
    id: Uuid,
    user_id: Uuid,
    aal: Aal,
    mfa_at: Option<DateTime<Utc>>,
    role: Role,
}

/// `POST /auth/refresh`: one use per refresh token. A token already used means two parties hold
/// this session's tokens (theft or replay): the whole session is revoked.
pub async fn refresh(
    app: &AuthState,
    meta: &RequestMeta,
    refresh_token: &str,
) -> Result<TokenPair, AuthError> {
    let hash = token_hash(refresh_token);
    let txn = app.db.begin().await?;
    // Compare-and-set: of two concurrent uses, one sees `used_at IS NULL`, the other waits for the
    // row lock and then sees it used (reuse).
    let claimed = txn
        .query_one_raw(stmt(
            "UPDATE refresh_tokens SET used_at = now()
             WHERE token_hash = $1 AND used_at IS NULL RETURNING session_id",
            [hash.clone().into()],
        ))
        .await?;
    let Some(claimed) = claimed else {
        txn.rollback().await?;
        revoke_on_reuse(app, meta, hash).await?;
        return Err(AuthError::InvalidRefreshToken);
    };
    let session_id: Uuid = claimed.try_get("", "session_id")?;
    let session = RefreshableSession::find_by_statement(stmt(
        "SELECT s.id, s.user_id, s.aal, s.mfa_at, u.role
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()",
        [session_id.into()],
    ))
    .one(&txn)
    .await?;
    let Some(session) = session else {
        txn.rollback().await?;
        return Err(AuthError::InvalidRefreshToken);
    };
    let new_refresh = new_refresh_token(&txn, session.id).await?;
    txn.execute_raw(stmt(
        "UPDATE sessions SET last_used_at = now() WHERE id = $1",
        [session.id.into()],
    ))
    .await?;
    let facts = SessionFacts {
        user_id: session.user_id,
        session_id: session.id,
        // The current role, not the one at login: a demotion takes effect at the next refresh.
        role: session.role,
        aal: session.aal,
        // Refreshing keeps the MFA time: only a new verification makes it fresh again.
        mfa_at: session.mfa_at,
    };
    let pair = token_pair(app, facts, new_refresh, Utc::now());
    txn.commit().await?;
    Ok(pair)
}

pub(super) async fn revoke_on_reuse(
    app: &AuthState,
    meta: &RequestMeta,
    hash: Vec<u8>,
) -> Result<(), AuthError> {
    let txn = app.db.begin().await?;
    let revoked = txn
        .query_one_raw(stmt(
            "UPDATE sessions s SET revoked_at = coalesce(s.revoked_at, now()),
                                   revoked_reason = coalesce(s.revoked_reason, 'refresh_token_reuse')
             FROM refresh_tokens r
             WHERE r.token_hash = $1 AND r.used_at IS NOT NULL AND s.id = r.session_id
             RETURNING s.id, s.user_id",
            [hash.into()],
        ))
        .await?;
    if let Some(row) = revoked {
        let session_id: Uuid = row.try_get("", "id")?;
        let user_id: Uuid = row.try_get("", "user_id")?;
        tracing::warn!(%user_id, %session_id, "refresh token reuse: session revoked");
        audit::record(
            &txn,
            Event::RefreshReuseDetected,
            Some(user_id),
            Some(session_id),
            meta,
            json!({}),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// `POST /auth/logout`: ends the session the refresh token belongs to. Unknown tokens are ignored
/// (the outcome the caller wants holds either way).
pub async fn logout(
    app: &AuthState,
    meta: &RequestMeta,
    refresh_token: &str,
) -> Result<(), AuthError> {
    let txn = app.db.begin().await?;
    let revoked = txn
        .query_one_raw(stmt(
            "UPDATE sessions s SET revoked_at = now(), revoked_reason = 'logout'
             FROM refresh_tokens r
             WHERE r.token_hash = $1 AND s.id = r.session_id AND s.revoked_at IS NULL
             RETURNING s.id, s.user_id",
            [token_hash(refresh_token).into()],
        ))
        .await?;
    if let Some(row) = revoked {
        let session_id: Uuid = row.try_get("", "id")?;
        let user_id: Uuid = row.try_get("", "user_id")?;
        audit::record(
            &txn,
            Event::Logout,
            Some(user_id),
            Some(session_id),
            meta,
            json!({}),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Revokes every live session of `user_id` (except `keep`), inside the caller's transaction.
pub(super) async fn revoke_all(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<u64, AuthError> {
    Ok(conn
        .execute_raw(stmt(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
             WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
            [user_id.into(), keep.into(), reason.into()],
        ))
        .await?
        .rows_affected())
}

/// `POST /auth/logout-all`.
pub async fn logout_all(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
) -> Result<(), AuthError> {
    let txn = app.db.begin().await?;
    let count = revoke_all(&txn, user.user_id, None, "logout_all").await?;
    audit::record(
        &txn,
        Event::LogoutAll,
        Some(user.user_id),
        Some(user.session_id),
        meta,
        json!({"sessions": count}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

#[derive(FromQueryResult)]
pub(super) struct SessionRow {
    id: Uuid,
    aal: String,
    ip: Option<String>,
    user_agent: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// `GET /me/sessions`: the live sessions, newest first.
pub async fn list(app: &AuthState, user: &AuthUser) -> Result<Vec<SessionView>, AuthError> {
    let rows = SessionRow::find_by_statement(stmt(
        "SELECT id, aal, ip, user_agent, created_at, last_used_at, expires_at FROM sessions
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
         ORDER BY created_at DESC",
        [user.user_id.into()],
    ))
    .all(&app.db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(SessionView {
                current: r.id == user.session_id,
                id: r.id,
                aal: r.aal.parse().map_err(anyhow::Error::msg)?,
                ip: r.ip,
                user_agent: r.user_agent,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
                expires_at: r.expires_at,
            })
        })
        .collect()
}

/// `DELETE /me/sessions/{id}`: ends one of the caller's sessions (404 for anyone else's).
pub async fn revoke(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    session_id: Uuid,
) -> Result<(), AuthError> {
    let txn = app.db.begin().await?;
    let revoked = txn
        .execute_raw(stmt(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = 'revoked_by_user'
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            [session_id.into(), user.user_id.into()],
        ))
        .await?
        .rows_affected();
    if revoked == 0 {
        txn.rollback().await?;
        return Err(AuthError::NotFound);
    }
    audit::record(
        &txn,
        Event::SessionRevoked,
        Some(user.user_id),
        Some(session_id),
        meta,
        json!({"by_session": user.session_id}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
