//! Checking a second factor: a TOTP code or a recovery code, each usable once (an atomic
//! compare-and-set on the TOTP step, a single-use recovery code row), throttled per account and IP.
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult};
use serde_json::json;
use uuid::Uuid;

use super::{
    AuthState, account_mail,
    audit::{self, Event},
    error::AuthError,
    request_meta::RequestMeta,
    throttle::{self, Limit},
    tokens::{normalize_recovery_code, token_hash},
    totp,
    users::UserRow,
};
use crate::db::stmt;

/// Which second factor a code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    RecoveryCode,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::RecoveryCode => "recovery_code",
        }
    }
}

#[derive(FromQueryResult)]
pub(super) struct TotpRow {
    secret_encrypted: Vec<u8>,
}

/// The secret of the user's confirmed authenticator.
async fn totp_secret(
    conn: &impl ConnectionTrait,
    app: &AuthState,
    user_id: Uuid,
) -> Result<Option<Vec<u8>>, AuthError> {
    let sql =
        "SELECT secret_encrypted FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL";
    let Some(row) = TotpRow::find_by_statement(stmt(sql, [user_id.into()]))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(totp::decrypt_secret(
        &app.config.totp_key,
        user_id,
        &row.secret_encrypted,
    )?))
}

/// Checks `code` as a TOTP code of the user's confirmed authenticator, or as one of their recovery
/// codes, and uses it up. `None`: wrong, expired or already used. Run it in the transaction that
/// acts on the result, so a rollback gives the code back.
pub async fn verify_code(
    txn: &DatabaseTransaction,
    app: &AuthState,
    user_id: Uuid,
    code: &str,
) -> Result<Option<Factor>, AuthError> {
    if totp::looks_like_totp(code) {
        let Some(secret) = totp_secret(txn, app, user_id).await? else {
            return Ok(None);
        };
        let Some(step) = totp::matching_step(&secret, code, totp::now_unix())? else {
            return Ok(None);
        };
        // RFC 6238 §5.2: a code is accepted once. Only a step later than the last one used goes
        // through; two concurrent uses of one code serialise on the row lock and the second
        // finds the step already taken.
        let claimed = txn
            .execute_raw(stmt(
                "UPDATE user_totp SET last_used_step = $1
                 WHERE user_id = $2 AND confirmed_at IS NOT NULL
                   AND (last_used_step IS NULL OR last_used_step < $1)",
                [(step as i64).into(), user_id.into()],
            ))
            .await?
            .rows_affected();
        if claimed != 1 {
            tracing::warn!(%user_id, step, "TOTP code replayed");
            return Ok(None);
        }
        return Ok(Some(Factor::Totp));
    }
    let normalized = normalize_recovery_code(code);
    if normalized.is_empty() || normalized.len() > 64 {
        return Ok(None);
    }
    let used = txn
        .execute_raw(stmt(
            "UPDATE recovery_codes SET used_at = now()
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            [user_id.into(), token_hash(&normalized).into()],
        ))
        .await?
        .rows_affected();
    Ok((used == 1).then_some(Factor::RecoveryCode))
}

/// Audits the use of a recovery code and tells the user by email (someone may hold their codes).
pub(super) async fn record_factor_use(
    txn: &DatabaseTransaction,
    app: &AuthState,
    user: &UserRow,
    factor: Factor,
    session_id: Option<Uuid>,
    meta: &RequestMeta,
) -> Result<(), AuthError> {
    if factor == Factor::RecoveryCode {
        let remaining = remaining_recovery_codes(txn, user.id).await?;
        audit::record(
            txn,
            Event::RecoveryCodeUsed,
            Some(user.id),
            session_id,
            meta,
            json!({"remaining": remaining}),
        )
        .await?;
        account_mail::security_notice(
            txn,
            app,
            &user.email,
            "A recovery code was used",
            &format!("One of your recovery codes was used to sign in. {remaining} remain unused. If this was not you, reset your password and regenerate your recovery codes."),
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn remaining_recovery_codes(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<i64, AuthError> {
    let row = conn
        .query_one_raw(stmt(
            "SELECT count(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            [user_id.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}

/// Counts an MFA attempt against the user and the IP (429 past the limits).
pub(super) async fn throttle_attempt(
    app: &AuthState,
    meta: &RequestMeta,
    user_id: Uuid,
) -> Result<(Limit, Limit), AuthError> {
    let cfg = &app.config.throttle;
    let account = Limit::account("mfa", &user_id.to_string(), cfg.mfa_per_account);
    let ip = Limit::ip("mfa", meta.ip.as_deref(), cfg.mfa_per_ip);
    throttle::attempt(&app.db, &[account.clone(), ip.clone()], cfg.window).await?;
    Ok((account, ip))
}
