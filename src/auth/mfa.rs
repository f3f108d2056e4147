//! TOTP enrolment, second-factor verification (TOTP or recovery code, each usable once), step-up,
//! disabling MFA and regenerating recovery codes.
use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::second_factor::{Factor, record_factor_use, throttle_attempt, verify_code};
use super::{
    AuthState, account_mail,
    audit::{self, Event},
    domain::{Aal, Role},
    dto::{AccessToken, RecoveryCodes, TotpConfirmed, TotpEnrolment},
    error::AuthError,
    guard::AuthUser,
    reauth,
    request_meta::RequestMeta,
    sessions,
    throttle::{self, Limit},
    tokens::{SessionFacts, normalize_recovery_code, recovery_code, token_hash},
    totp,
};
use crate::db::stmt;

pub const RECOVERY_CODE_COUNT: usize = 10;

/// How long a pending authenticator may wait for its confirming code.
pub const ENROLMENT_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// `POST /me/mfa/totp` (verified email only): a new secret, pending until confirmed from this
/// session within [`ENROLMENT_TTL`]. A bearer token is not enough to bind an authenticator
/// (a stolen one would let the thief keep the account): the current password comes with the
/// request. Starting again replaces a pending secret; with MFA already on, disable it first.
pub async fn start_enrolment(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    password: Option<&SecretString>,
) -> Result<TotpEnrolment, AuthError> {
    if user.account.mfa_enabled {
        return Err(AuthError::MfaAlreadyEnabled);
    }
    let password = password.ok_or_else(|| {
        AuthError::validation(
            "password",
            "is required: confirm your current password to add an authenticator",
        )
    })?;
    reauth::confirm_password(app, meta, user, password, "mfa_enrolment").await?;
    let secret = totp::generate_secret();
    let encrypted = totp::encrypt_secret(&app.config.totp_key, user.user_id, &secret);
    let txn = app.db.begin().await?;
    // Never overwrite a confirmed authenticator, even if one was confirmed since the check above.
    let written = txn
        .execute_raw(stmt(
            "INSERT INTO user_totp (user_id, secret_encrypted, started_by_session) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE
                 SET secret_encrypted = excluded.secret_encrypted, last_used_step = NULL,
                     started_by_session = excluded.started_by_session, created_at = now()
                 WHERE user_totp.confirmed_at IS NULL",
            [user.user_id.into(), encrypted.into(), user.session_id.into()],
        ))
        .await?
        .rows_affected();
    if written != 1 {
        txn.rollback().await?;
        return Err(AuthError::MfaAlreadyEnabled);
    }
    audit::record(
        &txn,
        Event::MfaEnrolmentStarted,
        Some(user.user_id),
        Some(user.session_id),
        meta,
        json!({"method": "totp"}),
    )
    .await?;
    txn.commit().await?;
    let enrolment = totp::enrolment(&secret, &app.config.totp_issuer, &user.account.email)?;
    Ok(TotpEnrolment {
        secret: enrolment.secret_base32,
        otpauth_uri: enrolment.otpauth_uri,
        qr_code: enrolment.qr_code,
    })
}

/// The secret this session started enrolling, if it is still pending and recent enough.
async fn pending_secret(
    conn: &impl ConnectionTrait,
    app: &AuthState,
    user: &AuthUser,
) -> Result<Option<Vec<u8>>, AuthError> {
    let row = conn
        .query_one_raw(stmt(
            "SELECT secret_encrypted FROM user_totp
             WHERE user_id = $1 AND confirmed_at IS NULL AND started_by_session = $2
               AND created_at > $3",
            [
                user.user_id.into(),
                user.session_id.into(),
                (Utc::now() - ENROLMENT_TTL).into(),
            ],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let encrypted: Vec<u8> = row.try_get("", "secret_encrypted")?;
    Ok(Some(totp::decrypt_secret(
        &app.config.totp_key,
        user.user_id,
        &encrypted,
    )?))
}

/// Removes the user's authenticator and recovery codes, and drops their sessions to `aal1`:
/// nothing they hold proves a factor the account no longer has.
pub(super) async fn remove_second_factors(
    txn: &DatabaseTransaction,
    user_id: Uuid,
) -> Result<(), AuthError> {
    for sql in [
        "DELETE FROM user_totp WHERE user_id = $1",
        "DELETE FROM recovery_codes WHERE user_id = $1",
        "UPDATE sessions SET aal = 'aal1', mfa_at = NULL WHERE user_id = $1",
    ] {
        txn.execute_raw(stmt(sql, [user_id.into()])).await?;
    }
    Ok(())
}

/// Replaces the user's recovery codes with fresh ones (returned in clear, stored hashed).
pub(super) async fn new_recovery_codes(
    txn: &DatabaseTransaction,
    user_id: Uuid,
) -> Result<Vec<String>, AuthError> {
    txn.execute_raw(stmt(
        "DELETE FROM recovery_codes WHERE user_id = $1",
        [user_id.into()],
    ))
    .await?;
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT).map(|_| recovery_code()).collect();
    for code in &codes {
        txn.execute_raw(stmt(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)",
            [
                user_id.into(),
                token_hash(&normalize_recovery_code(code)).into(),
            ],
        ))
        .await?;
    }
    Ok(codes)
}

/// Marks the session `aal2` as of now and returns an access token saying so.
pub(super) async fn raise_session(
    txn: &DatabaseTransaction,
    app: &AuthState,
    user: &AuthUser,
    role: Role,
) -> Result<AccessToken, AuthError> {
    let now = Utc::now();
    let raised = txn
        .execute_raw(stmt(
            "UPDATE sessions SET aal = 'aal2', mfa_at = $1, last_used_at = now()
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL AND expires_at > now()",
            [now.into(), user.session_id.into(), user.user_id.into()],
        ))
        .await?
        .rows_affected();
    if raised != 1 {
        return Err(AuthError::Unauthenticated("the session has ended".into()));
    }
    let cfg = &app.config;
    let facts = SessionFacts {
        user_id: user.user_id,
        session_id: user.session_id,
        role,
        aal: Aal::Aal2,
        mfa_at: Some(now),
    };
    Ok(AccessToken {
        access_token: cfg.jwt.issue(facts, cfg.access_token_ttl, now),
        token_type: "Bearer",
        expires_in: cfg.access_token_ttl.as_secs(),
    })
}

/// `POST /me/mfa/totp/confirm` (verified email only): a valid code from the authenticator this
/// session started enrolling turns MFA on. The account's other sessions end (they were opened
/// without the second factor), and the account is told by email.
pub async fn confirm_enrolment(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    code: &str,
) -> Result<TotpConfirmed, AuthError> {
    if user.account.mfa_enabled {
        return Err(AuthError::MfaAlreadyEnabled);
    }
    let (account, ip) = throttle_attempt(app, meta, user.user_id).await?;
    let secret = pending_secret(&app.db, app, user)
        .await?
        .ok_or(AuthError::MfaNotPending)?;
    let step = if totp::looks_like_totp(code) {
        totp::matching_step(&secret, code, totp::now_unix())?
    } else {
        None
    };
    let Some(step) = step else {
        audit::record(
            &app.db,
            Event::MfaFailed,
            Some(user.user_id),
            Some(user.session_id),
            meta,
            json!({"step": "enrolment"}),
        )
        .await?;
        return Err(AuthError::InvalidMfaCode);
    };
    let txn = app.db.begin().await?;
    let confirmed = txn
        .execute_raw(stmt(
            "UPDATE user_totp SET confirmed_at = now(), last_used_step = $1, started_by_session = NULL
             WHERE user_id = $2 AND confirmed_at IS NULL AND started_by_session = $3",
            [(step as i64).into(), user.user_id.into(), user.session_id.into()],
        ))
        .await?
        .rows_affected();
    if confirmed != 1 {
        txn.rollback().await?;
        return Err(AuthError::MfaAlreadyEnabled);
    }
    let recovery_codes = new_recovery_codes(&txn, user.user_id).await?;
    let token = raise_session(&txn, app, user, user.account.role).await?;
    let ended =
        sessions::revoke_all(&txn, user.user_id, Some(user.session_id), "mfa_enabled").await?;
    audit::record(
        &txn,
        Event::MfaEnabled,
        Some(user.user_id),
        Some(user.session_id),
        meta,
        json!({"method": "totp", "sessions_ended": ended}),
    )
    .await?;
    account_mail::security_notice(
        &txn,
        app,
        &user.account.email,
        "A new authenticator was added to your account",
        "An authenticator app was added to your account and two-factor authentication is on; your other sessions were signed out. If this was not you, reset your password now.",
    )
    .await?;
    txn.commit().await?;
    throttle::succeeded(&app.db, &account, &ip).await?;
    Ok(TotpConfirmed {
        recovery_codes,
        access_token: token.access_token,
        token_type: token.token_type,
        expires_in: token.expires_in,
    })
}

/// Counts an attempt, then checks `code` in a new transaction, handed back with the proven factor
/// and the limits to credit once the caller commits. A wrong code is audited (as `step`) and refused.
pub(super) async fn prove_factor(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    code: &str,
    step: &str,
) -> Result<(DatabaseTransaction, Factor, (Limit, Limit)), AuthError> {
    let limits = throttle_attempt(app, meta, user.user_id).await?;
    let txn = app.db.begin().await?;
    let Some(factor) = verify_code(&txn, app, user.user_id, code).await? else {
        txn.rollback().await?;
        audit::record(
            &app.db,
            Event::MfaFailed,
            Some(user.user_id),
            Some(user.session_id),
            meta,
            json!({"step": step}),
        )
        .await?;
        return Err(AuthError::InvalidMfaCode);
    };
    Ok((txn, factor, limits))
}

/// `POST /auth/step-up`: proves the second factor again; the new access token's MFA time is now.
pub async fn step_up(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    code: &str,
) -> Result<AccessToken, AuthError> {
    if !user.account.mfa_enabled {
        return Err(AuthError::MfaEnrolmentRequired);
    }
    let (txn, factor, (account, ip)) = prove_factor(app, meta, user, code, "step_up").await?;
    let token = raise_session(&txn, app, user, user.account.role).await?;
    record_factor_use(
        &txn,
        app,
        &user.account,
        factor,
        Some(user.session_id),
        meta,
    )
    .await?;
    audit::record(
        &txn,
        Event::StepUp,
        Some(user.user_id),
        Some(user.session_id),
        meta,
        json!({"factor": factor.as_str()}),
    )
    .await?;
    txn.commit().await?;
    throttle::succeeded(&app.db, &account, &ip).await?;
    Ok(token)
}

/// `DELETE /me/mfa/totp` (behind `RequireMfa`): needs a current code as well, so a token alone,
/// however fresh, cannot remove the second factor.
pub async fn disable(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
    code: &str,
) -> Result<(), AuthError> {
    let (txn, factor, (account, ip)) = prove_factor(app, meta, user, code, "disable").await?;
    remove_second_factors(&txn, user.user_id).await?;
    audit::record(
        &txn,
        Event::MfaDisabled,
        Some(user.user_id),
        Some(user.session_id),
        meta,
        json!({"factor": factor.as_str()}),
    )
    .await?;
    account_mail::security_notice(
        &txn,
        app,
        &user.account.email,
        "Two-factor authentication is off",
        "Two-factor authentication was turned off for your account. If this was not you, reset your password and turn it back on.",
    )
    .await?;
    txn.commit().await?;
    throttle::succeeded(&app.db, &account, &ip).await?;
    Ok(())
}

/// `POST /me/mfa/recovery-codes` (behind `RequireMfa`): replaces every recovery code.
pub async fn regenerate_recovery_codes(
    app: &AuthState,
    meta: &RequestMeta,
    user: &AuthUser,
) -> Result<RecoveryCodes, AuthError> {
    let txn = app.db.begin().await?;
    let recovery_codes = new_recovery_codes(&txn, user.user_id).await?;
    audit::record(
        &txn,
        Event::RecoveryCodesRegenerated,
        Some(user.user_id),
        Some(user.session_id),
        meta,
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(RecoveryCodes { recovery_codes })
}
