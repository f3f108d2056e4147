//! What auth keeps only while it can still matter: everything here is deleted by housekeeping
//! (`crate::housekeeping`) once no request can use it any more.
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};

use super::AuthConfig;
use crate::db::delete_in_batches;

/// Deletes, in batches, and returns how many rows went from which table:
/// - sessions that expired longer than `keep_ended_sessions` ago (revoked ones too: they expire
///   like the others), with their refresh tokens. Until then a session stays in the audit's reach
///   and a reused refresh token of it is still recognised as reuse;
/// - email links and MFA challenges past their expiry: they can no longer be redeemed;
/// - brute-force counters whose window has ended: the next attempt would start them over anyway.
pub async fn prune(
    conn: &impl ConnectionTrait,
    config: &AuthConfig,
    keep_ended_sessions: Duration,
) -> Result<Vec<(&'static str, u64)>, DbErr> {
    let secs = |d: Duration| vec![d.as_secs_f64().into()];
    Ok(vec![
        (
            "sessions",
            delete_in_batches(
                conn,
                "sessions",
                "expires_at < now() - make_interval(secs => $1)",
                secs(keep_ended_sessions),
            )
            .await?,
        ),
        (
            "email_tokens",
            delete_in_batches(conn, "email_tokens", "expires_at <= now()", vec![]).await?,
        ),
        (
            "mfa_challenges",
            delete_in_batches(conn, "mfa_challenges", "expires_at <= now()", vec![]).await?,
        ),
        (
            "auth_throttle",
            delete_in_batches(
                conn,
                "auth_throttle",
                "window_started_at <= now() - make_interval(secs => $1)",
                secs(config.throttle.window),
            )
            .await?,
        ),
    ])
}
