//! Login: the password step, then (for an account with MFA) the second-factor step.
use chrono::Utc;
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::{
    AuthState,
    audit::{self, Event},
    domain::{Aal, Email},
    dto::{LoginResponse, MfaChallenge, TokenPair},
    error::AuthError,
    password::{self, Verified},
    request_meta::RequestMeta,
    second_factor,
    sessions::start_session,
    throttle::{self, Limit},
    tokens::{random_token, token_hash},
    users::{self},
};
use crate::db::stmt;

/// An `mfa_token` has this many codes checked at most (so it dies after this many wrong ones).
pub const MFA_TOKEN_MAX_ATTEMPTS: i32 = 5;

/// `POST /auth/login`. Unknown emails and wrong passwords cost the same work and get the same answer.
#[tracing::instrument(level = "info", skip_all)]
pub async fn login(
    app: &AuthState,
    meta: &RequestMeta,
    email: &str,
    password: &SecretString,
) -> Result<LoginResponse, AuthError> {
    let cfg = &app.config;
    // Whatever was typed, so unparsable and unknown emails are throttled like real ones.
    let account_key = throttle::account_key(email);
    let account = Limit::account("login", &account_key, cfg.throttle.login_per_account);
    let ip = Limit::ip("login", meta.ip.as_deref(), cfg.throttle.login_per_ip);
    if let Err(error) =
        throttle::attempt(&app.db, &[account.clone(), ip.clone()], cfg.throttle.window).await
    {
        if matches!(error, AuthError::RateLimited { .. }) {
            audit::record(
                &app.db,
                Event::RateLimited,
                None,
                None,
                meta,
                json!({"action": "login", "email": account_key}),
            )
            .await?;
        }
        return Err(error);
    }

    let user = match Email::parse(email) {
        Ok(email) => users::find_by_email(&app.db, &email).await?,
        Err(_) => None,
    };
    let verified =
        password::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let (user, rehash) = match (verified, user) {
        (Verified::Yes { rehash }, Some(user)) => (user, rehash),
        (_, user) => {
            let user_id = user.map(|u| u.id);
            audit::record(
                &app.db,
                Event::LoginFailed,
                user_id,
                None,
                meta,
                json!({"email": account_key}),
            )
            .await?;
            return Err(AuthError::InvalidCredentials);
        }
    };
    throttle::succeeded(&app.db, &account, &ip).await?;
    if rehash {
        let new_hash = password::hash(password).await?;
        // Only if the hash is still the one we verified: a concurrent password change wins.
        app.db
            .execute_raw(stmt(
                "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
                [
                    new_hash.into(),
                    user.id.into(),
                    user.password_hash.clone().into(),
                ],
            ))
            .await?;
        tracing::info!(user_id = %user.id, "password rehashed with current parameters");
    }

    let txn = app.db.begin().await?;
    let response = if user.mfa_enabled {
        let mfa_token = random_token();
        txn.execute_raw(stmt(
            "INSERT INTO mfa_challenges (id, token_hash, user_id, expires_at) VALUES ($1, $2, $3, $4)",
            [
                Uuid::now_v7().into(),
                token_hash(&mfa_token).into(),
                user.id.into(),
                (Utc::now() + cfg.mfa_token_ttl).into(),
            ],
        ))
        .await?;
        audit::record(
            &txn,
            Event::MfaChallengeIssued,
            Some(user.id),
            None,
            meta,
            json!({}),
        )
        .await?;
        LoginResponse::Mfa(MfaChallenge {
            mfa_required: true,
            mfa_token,
            expires_in: cfg.mfa_token_ttl.as_secs(),
        })
    } else {
        let (session_id, pair) =
            start_session(&txn, app, user.id, user.role, Aal::Aal1, meta).await?;
        audit::record(
            &txn,
            Event::LoginSucceeded,
            Some(user.id),
            Some(session_id),
            meta,
            json!({"amr": ["pwd"]}),
        )
        .await?;
        LoginResponse::Tokens(pair)
    };
    txn.commit().await?;
    Ok(response)
}

#[derive(FromQueryResult)]
pub(super) struct ChallengeRow {
    id: Uuid,
    user_id: Uuid,
}

/// `POST /auth/mfa/verify`: the second step of a login.
#[tracing::instrument(level = "info", skip_all)]
pub async fn verify_mfa(
    app: &AuthState,
    meta: &RequestMeta,
    mfa_token: &str,
    code: &str,
) -> Result<TokenPair, AuthError> {
    let cfg = &app.config;
    let ip = Limit::ip("mfa", meta.ip.as_deref(), cfg.throttle.mfa_per_ip);
    throttle::attempt(&app.db, std::slice::from_ref(&ip), cfg.throttle.window).await?;
    // The attempt is counted before the code is checked, by the statement that refuses one past
    // the limit: of any number of concurrent guesses, at most five are ever checked.
    let challenge = ChallengeRow::find_by_statement(stmt(
        "UPDATE mfa_challenges SET attempts = attempts + 1
         WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > now() AND attempts < $2
         RETURNING id, user_id",
        [token_hash(mfa_token).into(), MFA_TOKEN_MAX_ATTEMPTS.into()],
    ))
    .one(&app.db)
    .await?
    .ok_or(AuthError::InvalidMfaToken)?;
    let account = Limit::account(
        "mfa",
        &challenge.user_id.to_string(),
        cfg.throttle.mfa_per_account,
    );
    throttle::attempt(&app.db, std::slice::from_ref(&account), cfg.throttle.window).await?;

    let txn = app.db.begin().await?;
    let Some(factor) = second_factor::verify_code(&txn, app, challenge.user_id, code).await? else {
        txn.rollback().await?;
        audit::record(
            &app.db,
            Event::MfaFailed,
            Some(challenge.user_id),
            None,
            meta,
            json!({"step": "login"}),
        )
        .await?;
        return Err(AuthError::InvalidMfaCode);
    };
    // Consume the challenge in the same transaction as the code: if another request consumed it
    // first, this one rolls back and its code (or recovery code) stays unused.
    let consumed = txn
        .execute_raw(stmt(
            "UPDATE mfa_challenges SET consumed_at = now()
             WHERE id = $1 AND consumed_at IS NULL AND expires_at > now()",
            [challenge.id.into()],
        ))
        .await?
        .rows_affected();
    if consumed != 1 {
        txn.rollback().await?;
        return Err(AuthError::InvalidMfaToken);
    }
    let user = users::find_by_id(&txn, challenge.user_id)
        .await?
        .ok_or(AuthError::InvalidMfaToken)?;
    let (session_id, pair) = start_session(&txn, app, user.id, user.role, Aal::Aal2, meta).await?;
    second_factor::record_factor_use(&txn, app, &user, factor, Some(session_id), meta).await?;
    audit::record(
        &txn,
        Event::LoginSucceeded,
        Some(user.id),
        Some(session_id),
        meta,
        json!({"amr": ["pwd", "otp"], "factor": factor.as_str()}),
    )
    .await?;
    txn.commit().await?;
    throttle::succeeded(&app.db, &account, &ip).await?;
    Ok(pair)
}
