//! The audit trail: every security event becomes a row in `auth_events` (written on the caller's
//! connection, so inside its transaction when there is one) and a log line.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde_json::Value;
use uuid::Uuid;

use super::{dto::AuditEvent, request_meta::RequestMeta};
use crate::db::stmt;

/// The kinds of security events. The string is what `auth_events.event` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Registered,
    RegisterExistingEmail,
    EmailVerified,
    LoginSucceeded,
    LoginFailed,
    MfaChallengeIssued,
    MfaFailed,
    MfaEnrolmentStarted,
    MfaEnabled,
    MfaDisabled,
    StepUp,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    RefreshReuseDetected,
    Logout,
    LogoutAll,
    SessionRevoked,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    RateLimited,
    AdminCreated,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Registered => "registered",
            Event::RegisterExistingEmail => "register_existing_email",
            Event::EmailVerified => "email_verified",
            Event::LoginSucceeded => "login_succeeded",
            Event::LoginFailed => "login_failed",
            Event::MfaChallengeIssued => "mfa_challenge_issued",
            Event::MfaFailed => "mfa_failed",
            Event::MfaEnrolmentStarted => "mfa_enrolment_started",
            Event::MfaEnabled => "mfa_enabled",
            Event::MfaDisabled => "mfa_disabled",
            Event::StepUp => "step_up",
            Event::RecoveryCodeUsed => "recovery_code_used",
            Event::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Event::RefreshReuseDetected => "refresh_reuse_detected",
            Event::Logout => "logout",
            Event::LogoutAll => "logout_all",
            Event::SessionRevoked => "session_revoked",
            Event::PasswordChanged => "password_changed",
            Event::PasswordResetRequested => "password_reset_requested",
            Event::PasswordReset => "password_reset",
            Event::RateLimited => "rate_limited",
            Event::AdminCreated => "admin_created",
        }
    }
}

/// Records `event` for `user_id` (None when no account is known, e.g. a failed login for an unknown
/// email) on `conn`.
pub async fn record(
    conn: &impl ConnectionTrait,
    event: Event,
    user_id: Option<Uuid>,
    session_id: Option<Uuid>,
    meta: &RequestMeta,
    details: Value,
) -> Result<(), DbErr> {
    tracing::info!(
        target: "ironclad::audit",
        event = event.as_str(),
        user_id = user_id.map(|u| u.to_string()),
        session_id = session_id.map(|s| s.to_string()),
        ip = meta.ip.as_deref(),
        details = %details,
        "auth event"
    );
    conn.execute_raw(stmt(
        "INSERT INTO auth_events (user_id, event, session_id, ip, user_agent, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
        [
            user_id.into(),
            event.as_str().into(),
            session_id.into(),
            meta.ip.clone().into(),
            meta.user_agent.clone().into(),
            details.into(),
        ],
    ))
    .await?;
    Ok(())
}

#[derive(FromQueryResult)]
struct AuditRow {
    id: i64,
    user_id: Option<Uuid>,
    event: String,
    session_id: Option<Uuid>,
    ip: Option<String>,
    user_agent: Option<String>,
    details: serde_json::Value,
    created_at: DateTime<Utc>,
}

/// The latest 100 events, newest first (`GET /admin/auth-events`).
pub async fn recent(db: &impl ConnectionTrait) -> Result<Vec<AuditEvent>, DbErr> {
    let rows = AuditRow::find_by_statement(stmt(
        "SELECT id, user_id, event, session_id, ip, user_agent, details, created_at
         FROM auth_events ORDER BY id DESC LIMIT 100",
        [],
    ))
    .all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| AuditEvent {
            id: r.id,
            user_id: r.user_id,
            event: r.event,
            session_id: r.session_id,
            ip: r.ip,
            user_agent: r.user_agent,
            details: r.details,
            created_at: r.created_at,
        })
        .collect())
}
