//! Brute-force limits in Postgres, so they hold across every app instance.
//!
//! Each attempt is counted *before* the credential is checked (an atomic upsert), so concurrent
//! guesses cannot slip past the limit between a read and a write; a successful attempt is then
//! refunded. A key over its limit is refused until its fixed window ends (`Retry-After`).
//! Per-account keys use the normalised email or user id, whether or not the account exists, so the
//! limit itself reveals nothing.
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::error::AuthError;
use crate::db::stmt;

/// One counter and its limit.
#[derive(Debug, Clone)]
pub struct Limit {
    pub key: String,
    pub max: u32,
}

impl Limit {
    /// `account` may be anything a client typed: it is stored through [`account_key`].
    pub fn account(action: &str, account: &str, max: u32) -> Self {
        Self {
            key: format!("{action}:account:{}", account_key(account)),
            max,
        }
    }

    pub fn ip(action: &str, ip: Option<&str>, max: u32) -> Self {
        Self {
            key: format!("{action}:ip:{}", ip.unwrap_or("unknown")),
            max,
        }
    }
}

#[derive(FromQueryResult)]
struct Counted {
    key: String,
    attempts: i32,
    retry_after_secs: f64,
}

// Keys in a fixed order, so two requests upserting the same keys lock them in the same order.
const COUNT: &str = r#"
INSERT INTO auth_throttle AS t (key, attempts, window_started_at)
SELECT key, 1, now() FROM json_array_elements_text($1::json) AS key ORDER BY key
ON CONFLICT (key) DO UPDATE SET
    attempts = CASE WHEN t.window_started_at <= now() - make_interval(secs => $2)
                    THEN 1 ELSE t.attempts + 1 END,
    window_started_at = CASE WHEN t.window_started_at <= now() - make_interval(secs => $2)
                    THEN now() ELSE t.window_started_at END
RETURNING key, attempts,
          extract(epoch FROM t.window_started_at + make_interval(secs => $2) - now())::float8
              AS retry_after_secs
"#;

/// Counts one attempt on every limit (one statement); refuses with 429 if any is now over its
/// maximum.
pub async fn attempt(
    conn: &impl ConnectionTrait,
    limits: &[Limit],
    window: Duration,
) -> Result<(), AuthError> {
    let keys = serde_json::Value::from_iter(limits.iter().map(|l| l.key.clone()));
    let counted =
        Counted::find_by_statement(stmt(COUNT, [keys.into(), window.as_secs_f64().into()]))
            .all(conn)
            .await?;
    let mut retry_after: Option<Duration> = None;
    for limit in limits {
        let counted = counted
            .iter()
            .find(|c| c.key == limit.key)
            .ok_or_else(|| DbErr::RecordNotFound(format!("throttle key {}", limit.key)))?;
        if counted.attempts > limit.max as i32 {
            let wait = Duration::from_secs_f64(counted.retry_after_secs.max(1.0).ceil());
            tracing::warn!(key = %limit.key, attempts = counted.attempts, "rate limited");
            retry_after = Some(retry_after.map_or(wait, |w| w.max(wait)));
        }
    }
    match retry_after {
        Some(retry_after) => Err(AuthError::RateLimited { retry_after }),
        None => Ok(()),
    }
}

/// After a success: the account's counter starts over; the IP's attempt is given back (an IP may
/// host many honest users, so its successes must not wipe its failures).
pub async fn succeeded(
    conn: &impl ConnectionTrait,
    account: &Limit,
    ip: &Limit,
) -> Result<(), DbErr> {
    // Two statements, each locking one row: one statement locking both could take them in the
    // other order than a concurrent `attempt` and deadlock (found by `just bench`).
    conn.execute_raw(stmt(
        "DELETE FROM auth_throttle WHERE key = $1",
        [account.key.clone().into()],
    ))
    .await?;
    conn.execute_raw(stmt(
        "UPDATE auth_throttle SET attempts = greatest(attempts - 1, 0) WHERE key = $1",
        [ip.key.clone().into()],
    ))
    .await?;
    Ok(())
}

/// A storable, bounded key for any typed email: the normalised text when it is plausible, else its
/// digest (Postgres refuses NUL in text and jsonb, and a 100 KB "email" must not reach an index).
pub fn account_key(raw: &str) -> String {
    use sha2::{Digest, Sha256};
    let normalised = raw.trim().to_lowercase();
    if normalised.len() <= 254 && !normalised.chars().any(char::is_control) {
        normalised
    } else {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(normalised.as_bytes()))
        )
    }
}

#[cfg(test)]
mod key_tests {
    use super::account_key;

    #[test]
    fn account_keys_are_storable_whatever_was_typed() {
        assert_eq!(account_key("  Ada@Example.COM "), "ada@example.com");
        // NUL is refused by Postgres text and jsonb; a huge value must not reach an index.
        for hostile in ["a\0b@example.com".to_owned(), "x".repeat(100_000)] {
            let key = account_key(&hostile);
            assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
        }
        assert_eq!(
            account_key("a\0b"),
            account_key("A\0B"),
            "still normalised first"
        );
    }
}
